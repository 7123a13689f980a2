/* Namespaces: unshare(2) and setns(2), which Python 3.11's os module lacks. */
#define _GNU_SOURCE
#include <sched.h>
#include "native.h"

int pr_unshare(int flags)
{
    return unshare(flags);
}

int pr_setns(int fd, int nstype)
{
    return setns(fd, nstype);
}
