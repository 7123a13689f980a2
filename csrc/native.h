/* pyrunc's C core: thin syscall wrappers. Each returns -1 with errno set on
 * failure (the Python side raises OSError naming the syscall) and makes no
 * decisions: flags, paths and order all come from Python. */
#ifndef PYRUNC_NATIVE_H
#define PYRUNC_NATIVE_H

/* ns.c */
int pr_unshare(int flags);
int pr_setns(int fd, int nstype);

/* mount.c */
int pr_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data);
int pr_umount2(const char *target, int flags);
int pr_pivot_root(const char *new_root, const char *put_old);
int pr_mount_setattr(int dirfd, const char *path, unsigned int flags,
                     unsigned long long attr_set, unsigned long long attr_clr,
                     unsigned long long propagation, unsigned long long userns_fd);

/* uts.c */
int pr_sethostname(const char *name, int len);
int pr_setdomainname(const char *name, int len);

/* fs.c */
int pr_openat2(int dirfd, const char *path, unsigned long long flags,
               unsigned long long mode, unsigned long long resolve);
int pr_close_range(unsigned int first, unsigned int last, unsigned int flags);

/* sched.c */
int pr_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice,
                     unsigned int priority, unsigned long long runtime,
                     unsigned long long deadline, unsigned long long period);
int pr_ioprio_set(int which, int who, int ioprio);
int pr_personality(unsigned long persona);

/* prctl.c */
int pr_prctl(int option, unsigned long arg2, unsigned long arg3,
             unsigned long arg4, unsigned long arg5);

#endif
