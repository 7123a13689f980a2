/* Mounts: mount(2), umount2(2) and pivot_root(2). */
#define _GNU_SOURCE
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

int pr_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

int pr_umount2(const char *target, int flags)
{
    return umount2(target, flags);
}

int pr_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
