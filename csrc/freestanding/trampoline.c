/* pyrunc-init: the one program that stands between the runtime and a container's process.
 *
 * The runtime's container-side processes are the host's Python interpreter, so an execve
 * from them resolves /proc/self/exe to the host's interpreter: an image whose entry point is
 * "#!/proc/self/exe" would run it inside the container and could keep an fd on it
 * (CVE-2019-5736). They exec this program instead, from a sealed memfd the runtime made,
 * and it execs the container's: /proc/self/exe is then an unwritable copy of these few
 * KiB. It also does the created init's waiting, so a container never sees the interpreter.
 *
 * argv: pyrunc-init WAIT-FD|- REPORT-FD|- [PATH ARGV0 [ARG...]]   (environ passed through)
 * With a WAIT-FD, first read one byte from it (the exec fifo: `start` writes it), then
 * close it. With a REPORT-FD (the runtime's sync socket, during `exec`), make it
 * close-on-exec, so that its EOF tells the runtime the exec succeeded. Then
 * execve(PATH, ARGV0..., environ). If that fails: {"type":"exec_failed","errno":N} to the
 * REPORT-FD, or else one line on stderr; exit 127. Any other failure: a line on stderr,
 * exit 127. Without a PATH (a container created without a process, which `start` refuses)
 * there is only the waiting. No decisions: what to run and when was decided by the runtime.
 *
 * argv: pyrunc-init relay FIFO-FD SOCK-FD   (the exec fifo's relay, in the host's pid namespace)
 * Wait until FIFO-FD is readable or SOCK-FD's peer is gone; in the first case move one byte
 * from FIFO-FD to SOCK-FD (the created init waits on the other end), then exit 0. Nothing
 * read from SOCK-FD is ever acted on. So the waiting init holds only a socket, which cannot
 * be reopened through /proc/PID/fd, and `start`'s byte reaches it from here alone.
 */
#include <asm/errno.h>
#include <asm/fcntl.h>
#include <linux/prctl.h>
#include "syscall.h"

static const char *describe(long err)
{
    switch (err) {
    case ENOENT: return "No such file or directory";
    case EACCES: return "Permission denied";
    case EPERM: return "Operation not permitted";
    case ENOEXEC: return "Exec format error";
    case ENOTDIR: return "Not a directory";
    case EISDIR: return "Is a directory";
    case ELOOP: return "Too many levels of symbolic links";
    case ETXTBSY: return "Text file busy";
    case E2BIG: return "Argument list too long";
    case ENOMEM: return "Cannot allocate memory";
    case ENAMETOOLONG: return "File name too long";
    case EBADF: return "Bad file descriptor";
    case EIO: return "Input/output error";
    case EINVAL: return "Invalid argument";
    default: return "system call failed";
    }
}

static __attribute__((noreturn)) void fail(const char *what, const char *path, long err)
{
    say("pyrunc: ");
    say(what);
    if (path) {
        say(" ");
        say(path);
    }
    say(": ");
    say(describe(err));
    say("\n");
    sys_exit(127);
}

/* "-" is -1, a decimal fd is itself, anything else is -2. */
static long parse_fd(const char *s)
{
    long fd = 0;
    unsigned long i;

    if (s[0] == '-' && s[1] == '\0')
        return -1;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 9)
            return -2;
        fd = fd * 10 + (s[i] - '0');
    }
    return i ? fd : -2;
}

static __attribute__((noreturn)) void report(long fd, long err)
{
    char msg[48] = "{\"type\":\"exec_failed\",\"errno\":";
    char digits[12];
    unsigned long n = length(msg);
    int i = 0;

    do
        digits[i++] = (char)('0' + err % 10);
    while ((err /= 10) > 0 && i < 11);
    while (i > 0)
        msg[n++] = digits[--i];
    msg[n++] = '}';
    sys3(__NR_write, fd, (long)msg, (long)n);  /* if lost, the runtime sees EOF, then exit 127 */
    sys_exit(127);
}

#define PR_POLLIN 0x0001
#define PR_POLLERR 0x0008
#define PR_POLLHUP 0x0010
#define PR_POLLNVAL 0x0020
#define PR_MSG_NOSIGNAL 0x4000

struct pr_pollfd {
    int fd;
    short events;
    short revents;
};

static __attribute__((noreturn)) void relay(long fifo_fd, long sock_fd)
{
    struct pr_pollfd fds[2];
    long ret;
    char byte;

    fds[0].fd = (int)fifo_fd;
    fds[0].events = PR_POLLIN;
    fds[1].fd = (int)sock_fd;
    fds[1].events = 0;  /* only its hang-up matters: what arrives there is never read */
    for (;;) {
        fds[0].revents = 0;
        fds[1].revents = 0;
        ret = sys6(__NR_ppoll, (long)fds, 2, 0, 0, 0, 0);
        if (ret == -EINTR)
            continue;
        if (ret < 0)
            fail("relay: ppoll", 0, -ret);
        if (fds[1].revents & (PR_POLLHUP | PR_POLLERR | PR_POLLNVAL))
            sys_exit(0);  /* the init is gone: nobody to start */
        if (fds[0].revents & (PR_POLLERR | PR_POLLNVAL))
            fail("relay: the exec fifo", 0, EBADF);
        if (fds[0].revents & PR_POLLIN)
            break;
    }
    do
        ret = sys3(__NR_read, fifo_fd, (long)&byte, 1);
    while (ret == -EINTR);
    if (ret != 1)
        fail("relay: reading the exec fifo", 0, ret == 0 ? EIO : -ret);
    do
        ret = sys6(__NR_sendto, sock_fd, (long)&byte, 1, PR_MSG_NOSIGNAL, 0, 0);
    while (ret == -EINTR);
    sys_exit(ret == 1 ? 0 : 1);  /* EPIPE: the init died meanwhile */
}

static int is(const char *a, const char *b)
{
    unsigned long i;

    for (i = 0; a[i] && a[i] == b[i]; i++)
        ;
    return a[i] == b[i];
}

__attribute__((noreturn, used)) void program_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    long wait_fd = -2;
    long report_fd = -2;
    long ret;
    char byte;

    /* Like the runtime's process we replace: not dumpable, so the container's other
     * processes cannot open our /proc/PID/fd links (the exec fifo) or ptrace us. Execve
     * resets it. A seccomp profile may refuse prctl: then we are merely as dumpable as
     * the container's own process will be, which is no reason not to run it. */
    sys3(__NR_prctl, PR_SET_DUMPABLE, 0, 0);
    if (argc == 4 && is(argv[1], "relay")) {
        wait_fd = parse_fd(argv[2]);
        report_fd = parse_fd(argv[3]);
        if (wait_fd >= 0 && report_fd >= 0)
            relay(wait_fd, report_fd);
    }
    if (argc == 3 || argc >= 5) {
        wait_fd = parse_fd(argv[1]);
        report_fd = parse_fd(argv[2]);
    }
    if (wait_fd == -2 || report_fd == -2) {
        say("pyrunc-init: run by pyrunc only, as: "
            "pyrunc-init WAIT-FD|- REPORT-FD|- [PATH ARGV0 [ARG...]], or pyrunc-init relay FIFO-FD SOCK-FD\n");
        sys_exit(127);
    }
    if (wait_fd >= 0) {
        do
            ret = sys3(__NR_read, wait_fd, (long)&byte, 1);
        while (ret == -EINTR);
        if (ret != 1)
            fail("waiting on the exec fifo", 0, ret == 0 ? EIO : -ret);
        sys3(__NR_close, wait_fd, 0, 0);  /* read succeeded: the fd is valid, and done with */
    }
    if (argc == 3) {
        say("pyrunc: the container has no process to run\n");
        sys_exit(127);
    }
    if (report_fd >= 0) {
        ret = sys3(__NR_fcntl, report_fd, F_SETFD, FD_CLOEXEC);
        if (ret < 0)
            fail("making the sync socket close-on-exec", 0, -ret);
    }
    ret = sys3(__NR_execve, (long)argv[3], (long)(argv + 4), (long)envp);
    if (report_fd >= 0)
        report(report_fd, -ret);
    fail("exec", argv[3], -ret);
}
