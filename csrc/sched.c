/* Process scheduling knobs Python's os module lacks: sched_setattr(2), ioprio_set(2),
 * personality(2), set_mempolicy(2) (through syscall(2): no libnuma). */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

struct pr_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int pr_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice,
                     unsigned int priority, unsigned long long runtime,
                     unsigned long long deadline, unsigned long long period)
{
    struct pr_sched_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.sched_policy = policy;
    attr.sched_flags = flags;
    attr.sched_nice = nice;
    attr.sched_priority = priority;
    attr.sched_runtime = runtime;
    attr.sched_deadline = deadline;
    attr.sched_period = period;
    return (int)syscall(SYS_sched_setattr, pid, &attr, 0);
}

int pr_ioprio_set(int which, int who, int ioprio)
{
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

int pr_personality(unsigned long persona)
{
    return personality(persona);
}

int pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return (int)syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}
