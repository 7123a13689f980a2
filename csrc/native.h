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

/* uts.c */
int pr_sethostname(const char *name, int len);
int pr_setdomainname(const char *name, int len);

/* fs.c */
int pr_openat2(int dirfd, const char *path, unsigned long long flags,
               unsigned long long mode, unsigned long long resolve);
int pr_close_range(unsigned int first, unsigned int last, unsigned int flags);

#endif
