/* capset(2) and prlimit(2): the process's capability sets and resource limits, as Python
 * gives them (python-prctl's and the `resource` module's extension modules cost every
 * create a dlopen each, libcap's included). */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

int pr_capset(unsigned long long effective, unsigned long long permitted,
              unsigned long long inheritable)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(__u32)effective, (__u32)permitted, (__u32)inheritable},
        {(__u32)(effective >> 32), (__u32)(permitted >> 32), (__u32)(inheritable >> 32)},
    };

    return (int)syscall(SYS_capset, &header, data);
}

int pr_setrlimit(int resource, unsigned long long soft, unsigned long long hard)
{
    struct rlimit64 limit = {soft, hard};

    return prlimit64(0, resource, &limit, NULL);
}

int pr_getrlimit(int resource, unsigned long long *soft, unsigned long long *hard)
{
    struct rlimit64 limit;

    if (prlimit64(0, resource, NULL, &limit) < 0)
        return -1;
    *soft = limit.rlim_cur;
    *hard = limit.rlim_max;
    return 0;
}
