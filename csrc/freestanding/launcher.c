/* pyrunc: the installed entry point. It starts the interpreter on pyrunc's main script, as
 * a "#!PYTHON -IS" line would, but from a read-only view of the interpreter's file.
 *
 * Every runtime process that enters a container is a fork of this interpreter, so its
 * /proc/PID/exe is the interpreter's file until it execs pyrunc-init. A container that may
 * open that link (one granted CAP_SYS_PTRACE, racing the few milliseconds an `exec` is
 * still Python in its pid namespace) could keep an fd on it and reopen it for writing once
 * no Python runs on the host (CVE-2019-5736). Exec'd from a private read-only bind mount of
 * the file (open_tree + mount_setattr; the mount is attached nowhere, so nobody can make it
 * writable), the process's exe is that mount's file, and such a reopening fails with EROFS.
 * Without the privilege or the kernel for it (not root, Linux before 5.12), the interpreter
 * is exec'd by its path, as the shebang line would have.
 *
 * Built by scripts/setup.sh with PYRUNC_PYTHON and PYRUNC_MAIN (absolute paths) defined.
 * argv: pyrunc [ARG...]  ->  PYRUNC_PYTHON -IS PYRUNC_MAIN [ARG...]   (environ passed on)
 */
#include <asm/fcntl.h>
#include <linux/mount.h>
#include "syscall.h"

#ifndef AT_FDCWD
#define AT_FDCWD -100
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

#define MAX_ARGS 65536  /* keeps the copy of argv on the stack small */

static const char python[] = PYRUNC_PYTHON;
static const char script[] = PYRUNC_MAIN;

__attribute__((noreturn, used)) void program_main(long *sp)
{
    long argc = sp[0] <= MAX_ARGS ? sp[0] : 0;
    char **argv = (char **)(sp + 1);
    char **envp = argv + sp[0] + 1;
    char *args[argc + 3];
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    };
    long fd;
    long i;

    if (argc == 0) {
        say("pyrunc: too many arguments\n");
        sys_exit(1);
    }
    args[0] = (char *)python;
    args[1] = "-IS";
    args[2] = (char *)script;
    for (i = 1; i <= argc; i++)  /* with the NULL that ends argv */
        args[i + 2] = argv[i];
    fd = sys3(__NR_open_tree, AT_FDCWD, (long)python, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd >= 0) {
        if (sys6(__NR_mount_setattr, fd, (long)"", AT_EMPTY_PATH, (long)&attr, sizeof(attr), 0) == 0)
            sys6(__NR_execveat, fd, (long)"", (long)args, (long)envp, AT_EMPTY_PATH, 0);
        sys3(__NR_close, fd, 0, 0);  /* on the way to the fallback, which needs nothing of it */
    }
    sys3(__NR_execve, (long)python, (long)args, (long)envp);
    say("pyrunc: cannot start the interpreter " PYRUNC_PYTHON "\n");
    sys_exit(127);
}
