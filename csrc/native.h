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
int pr_open_tree(int dirfd, const char *path, unsigned int flags);
int pr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                  unsigned int flags);

/* uts.c */
int pr_sethostname(const char *name, int len);
int pr_setdomainname(const char *name, int len);

/* fs.c */
int pr_openat2(int dirfd, const char *path, unsigned long long flags,
               unsigned long long mode, unsigned long long resolve);
int pr_close_range(unsigned int first, unsigned int last, unsigned int flags);
long pr_fstatfs_type(int fd);

/* sched.c */
int pr_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice,
                     unsigned int priority, unsigned long long runtime,
                     unsigned long long deadline, unsigned long long period);
int pr_ioprio_set(int which, int who, int ioprio);
int pr_personality(unsigned long persona);
int pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);

/* keyring.c: keyctl(2) JOIN_SESSION_KEYRING (returns the keyring's serial), DESCRIBE
 * (the bytes the kernel would write, NUL included), SETPERM. */
long pr_keyctl_join_session_keyring(const char *name);
long pr_keyctl_describe(int id, char *buf, unsigned long len);
long pr_keyctl_setperm(int id, unsigned int perm);

/* caps.c: capset(2) of this process (the three sets as bit masks) and prlimit(2) of
 * this process (RLIM_INFINITY is ~0). */
int pr_capset(unsigned long long effective, unsigned long long permitted,
              unsigned long long inheritable);
int pr_setrlimit(int resource, unsigned long long soft, unsigned long long hard);
int pr_getrlimit(int resource, unsigned long long *soft, unsigned long long *hard);

/* prctl.c */
int pr_prctl(int option, unsigned long arg2, unsigned long arg3,
             unsigned long arg4, unsigned long arg5);

/* seccomp.c: libseccomp (compile, in the runtime) and seccomp(2) (load, in the init).
 * libseccomp's -errno returns become -1 with errno; seccomp_init returns NULL. Two calls
 * return the library's own "unknown" value instead: arch_resolve_name 0, and
 * syscall_resolve_name __NR_SCMP_ERROR (-1; other negative numbers are libseccomp's
 * pseudo syscall numbers, valid for rule_add). */
#define PR_SECCOMP_MAX_CMPS 6
void *pr_seccomp_init(unsigned int def_action);
void pr_seccomp_release(void *ctx);
int pr_seccomp_attr_set(void *ctx, int attr, unsigned int value);
unsigned int pr_seccomp_arch_resolve_name(const char *name);
unsigned int pr_seccomp_arch_native(void);
int pr_seccomp_arch_add(void *ctx, unsigned int arch_token);
int pr_seccomp_syscall_resolve_name(const char *name);
int pr_seccomp_syscall_resolve_name_arch(unsigned int arch_token, const char *name);
int pr_seccomp_rule_add(void *ctx, unsigned int action, int syscall_nr, unsigned int count,
                        const unsigned int *arg, const unsigned int *op,
                        const unsigned long long *datum_a, const unsigned long long *datum_b);
int pr_seccomp_export_bpf(void *ctx, int fd);
int pr_seccomp_version(unsigned int *major, unsigned int *minor, unsigned int *micro);
/* seccomp(SECCOMP_SET_MODE_FILTER, flags, {count, bpf}): 0, or the listener fd. */
int pr_seccomp_set_mode_filter(unsigned int flags, const char *bpf, unsigned int count);
/* seccomp(2) as is, for probes (GET_ACTION_AVAIL, a flag check with NULL args). */
int pr_seccomp(unsigned int operation, unsigned int flags, void *args);

/* bpf.c: bpf(2) for cgroup device programs (pyrunc.cgroups builds the program).
 * pr_bpf_prog_query: *prog_cnt in = room in prog_ids, out = programs attached. */
int pr_bpf_prog_load(unsigned int prog_type, unsigned int expected_attach_type,
                     const void *insns, unsigned int insn_cnt, const char *license,
                     const char *name, char *log_buf, unsigned int log_size);
int pr_bpf_prog_attach(int target_fd, int prog_fd, unsigned int attach_type,
                       unsigned int flags, int replace_fd);
int pr_bpf_prog_detach(int target_fd, int prog_fd, unsigned int attach_type);
int pr_bpf_prog_query(int target_fd, unsigned int attach_type, unsigned int *attach_flags,
                      unsigned int *prog_ids, unsigned int *prog_cnt);
int pr_bpf_prog_get_fd_by_id(unsigned int prog_id);

#endif
