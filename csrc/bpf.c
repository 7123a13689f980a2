/* bpf(2) for cgroup device programs: load, attach to / detach from a cgroup
 * directory fd, query what is attached, get a program fd by id. The program's
 * instructions, type, flags and order come from Python (pyrunc.cgroups). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "native.h"

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int pr_bpf_prog_load(unsigned int prog_type, unsigned int expected_attach_type,
                     const void *insns, unsigned int insn_cnt, const char *license,
                     const char *name, char *log_buf, unsigned int log_size)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.expected_attach_type = expected_attach_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_cnt;
    attr.license = (uint64_t)(uintptr_t)license;
    if (log_buf != NULL && log_size > 0) {
        attr.log_buf = (uint64_t)(uintptr_t)log_buf;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    if (name != NULL)
        strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
    return sys_bpf(BPF_PROG_LOAD, &attr);
}

int pr_bpf_prog_attach(int target_fd, int prog_fd, unsigned int attach_type,
                       unsigned int flags, int replace_fd)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)target_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = attach_type;
    attr.attach_flags = flags;
    if (replace_fd >= 0)
        attr.replace_bpf_fd = (uint32_t)replace_fd;
    return sys_bpf(BPF_PROG_ATTACH, &attr);
}

int pr_bpf_prog_detach(int target_fd, int prog_fd, unsigned int attach_type)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)target_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = attach_type;
    return sys_bpf(BPF_PROG_DETACH, &attr);
}

int pr_bpf_prog_query(int target_fd, unsigned int attach_type, unsigned int *attach_flags,
                      unsigned int *prog_ids, unsigned int *prog_cnt)
{
    union bpf_attr attr;
    int rc;

    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)target_fd;
    attr.query.attach_type = attach_type;
    attr.query.prog_ids = (uint64_t)(uintptr_t)prog_ids;
    attr.query.prog_cnt = *prog_cnt;
    rc = sys_bpf(BPF_PROG_QUERY, &attr);
    /* The kernel reports the real count on success and on ENOSPC alike. */
    *prog_cnt = attr.query.prog_cnt;
    *attach_flags = attr.query.attach_flags;
    return rc;
}

int pr_bpf_prog_get_fd_by_id(unsigned int prog_id)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_id = prog_id;
    return sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}
