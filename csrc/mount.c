/* Mounts: mount(2), umount2(2), pivot_root(2) and the new mount API (mount_setattr(2),
 * open_tree(2), move_mount(2)). */
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

int pr_mount_setattr(int dirfd, const char *path, unsigned int flags,
                     unsigned long long attr_set, unsigned long long attr_clr,
                     unsigned long long propagation, unsigned long long userns_fd)
{
    struct {
        unsigned long long attr_set, attr_clr, propagation, userns_fd;
    } attr = { attr_set, attr_clr, propagation, userns_fd };

    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int pr_open_tree(int dirfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int pr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                  unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}
