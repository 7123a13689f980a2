/* prctl(2) for the options python-prctl lacks (ambient capabilities). */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include "native.h"

int pr_prctl(int option, unsigned long arg2, unsigned long arg3,
             unsigned long arg4, unsigned long arg5)
{
    return prctl(option, arg2, arg3, arg4, arg5);
}
