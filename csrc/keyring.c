/* keyctl(2) for the session keyring a container gets (no libkeyutils: three raw calls). */
#define _GNU_SOURCE
#include <linux/keyctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

long pr_keyctl_join_session_keyring(const char *name)
{
    return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
}

long pr_keyctl_describe(int id, char *buf, unsigned long len)
{
    return syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, buf, len, 0);
}

long pr_keyctl_setperm(int id, unsigned int perm)
{
    return syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm, 0, 0);
}
