/* Seccomp: libseccomp calls to compile a profile into BPF (in the runtime), and the
 * seccomp(2) syscall to load that BPF (in the container init).
 *
 * libseccomp returns -errno; these wrappers turn that into -1 with errno set, like every
 * other pr_* call. Which actions, architectures, rules, attributes and flags are used is
 * decided in Python (pyrunc.linux.seccomp); nothing here inspects a value. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

static int from_rc(int rc)
{
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return rc;
}

void *pr_seccomp_init(unsigned int def_action)
{
    scmp_filter_ctx ctx;

    errno = 0;
    ctx = seccomp_init(def_action);
    if (ctx == NULL && errno == 0)
        errno = EINVAL;  /* libseccomp says only "NULL on failure" */
    return ctx;
}

void pr_seccomp_release(void *ctx)
{
    seccomp_release(ctx);
}

int pr_seccomp_attr_set(void *ctx, int attr, unsigned int value)
{
    return from_rc(seccomp_attr_set(ctx, (enum scmp_filter_attr)attr, value));
}

unsigned int pr_seccomp_arch_resolve_name(const char *name)
{
    return seccomp_arch_resolve_name(name);
}

unsigned int pr_seccomp_arch_native(void)
{
    return seccomp_arch_native();
}

int pr_seccomp_arch_add(void *ctx, unsigned int arch_token)
{
    return from_rc(seccomp_arch_add(ctx, arch_token));
}

int pr_seccomp_syscall_resolve_name(const char *name)
{
    return seccomp_syscall_resolve_name(name);
}

int pr_seccomp_syscall_resolve_name_arch(unsigned int arch_token, const char *name)
{
    return seccomp_syscall_resolve_name_arch(arch_token, name);
}

int pr_seccomp_rule_add(void *ctx, unsigned int action, int syscall_nr, unsigned int count,
                        const unsigned int *arg, const unsigned int *op,
                        const unsigned long long *datum_a, const unsigned long long *datum_b)
{
    struct scmp_arg_cmp cmps[PR_SECCOMP_MAX_CMPS];
    unsigned int i;

    if (count > PR_SECCOMP_MAX_CMPS) {
        errno = E2BIG;
        return -1;
    }
    for (i = 0; i < count; i++) {
        cmps[i].arg = arg[i];
        cmps[i].op = (enum scmp_compare)op[i];
        cmps[i].datum_a = datum_a[i];
        cmps[i].datum_b = datum_b[i];
    }
    return from_rc(seccomp_rule_add_array(ctx, action, syscall_nr, count,
                                          count ? cmps : NULL));
}

int pr_seccomp_export_bpf(void *ctx, int fd)
{
    return from_rc(seccomp_export_bpf(ctx, fd));
}

int pr_seccomp_version(unsigned int *major, unsigned int *minor, unsigned int *micro)
{
    const struct scmp_version *v = seccomp_version();

    if (v == NULL) {
        errno = ENOSYS;
        return -1;
    }
    *major = v->major;
    *minor = v->minor;
    *micro = v->micro;
    return 0;
}

int pr_seccomp_set_mode_filter(unsigned int flags, const char *bpf, unsigned int count)
{
    struct sock_fprog prog;

    if (count > USHRT_MAX) {
        errno = EINVAL;
        return -1;
    }
    prog.len = (unsigned short)count;
    prog.filter = (struct sock_filter *)bpf;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

int pr_seccomp(unsigned int operation, unsigned int flags, void *args)
{
    return (int)syscall(SYS_seccomp, operation, flags, args);
}
