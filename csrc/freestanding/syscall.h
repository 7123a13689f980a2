/* Raw system calls, the entry point and a line on stderr for pyrunc's freestanding programs
 * (no libc: the trampoline is copied into a memfd on every create and exec, and the
 * launcher starts every runtime call, so both are kept to a few KiB and a few syscalls). */
#ifndef PYRUNC_FREESTANDING_SYSCALL_H
#define PYRUNC_FREESTANDING_SYSCALL_H

#include <asm/errno.h>
#include <asm/unistd.h>

/* Each program defines program_main(sp): sp points at argc, argv..., NULL, envp..., NULL. */
#if defined(__x86_64__)

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call program_main\n"
        "  hlt\n");

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x0, sp\n"
        "  bl program_main\n"
        "  brk #0\n");

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;

    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}

#else
#error "pyrunc's freestanding programs know the system call convention of x86_64 and aarch64 only"
#endif

static inline long sys3(long nr, long a, long b, long c)
{
    return sys6(nr, a, b, c, 0, 0, 0);
}

static inline unsigned long length(const char *s)
{
    unsigned long n = 0;

    while (s[n])
        n++;
    return n;
}

/* A line on stderr, said before exiting: if it cannot be written there is nothing to do. */
static inline void say(const char *s)
{
    unsigned long n = length(s);

    while (n > 0) {
        long w = sys3(__NR_write, 2, (long)s, (long)n);

        if (w == -EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (unsigned long)w;
    }
}

static inline __attribute__((noreturn)) void sys_exit(long code)
{
    for (;;)
        sys6(__NR_exit_group, code, 0, 0, 0, 0, 0);
}

#endif
