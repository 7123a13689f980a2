/* UTS names: sethostname(2) and setdomainname(2). */
#define _GNU_SOURCE
#include <stddef.h>
#include <unistd.h>
#include "native.h"

int pr_sethostname(const char *name, int len)
{
    return sethostname(name, (size_t)len);
}

int pr_setdomainname(const char *name, int len)
{
    return setdomainname(name, (size_t)len);
}
