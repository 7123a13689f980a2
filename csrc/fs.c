/* File descriptors: openat2(2) for confined path resolution, close_range(2), fstatfs(2). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/openat2.h>
#include <sys/vfs.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

int pr_openat2(int dirfd, const char *path, unsigned long long flags,
               unsigned long long mode, unsigned long long resolve)
{
    struct open_how how;

    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int pr_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

long pr_fstatfs_type(int fd)
{
    struct statfs st;

    if (fstatfs(fd, &st) < 0)
        return -1;
    return (long)st.f_type;
}
