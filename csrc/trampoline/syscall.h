/* Raw system calls and the entry point for the freestanding trampoline (no libc: the
 * binary is copied into a memfd on every create and exec, so it is kept a few KiB). */
#ifndef PYRUNC_TRAMPOLINE_SYSCALL_H
#define PYRUNC_TRAMPOLINE_SYSCALL_H

#include <asm/unistd.h>

#if defined(__x86_64__)

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"          /* argc, argv..., NULL, envp..., NULL */
        "  and $-16, %rsp\n"
        "  call trampoline_main\n"
        "  hlt\n");

static inline long sys3(long nr, long a, long b, long c)
{
    long ret;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x0, sp\n"
        "  bl trampoline_main\n"
        "  brk #0\n");

static inline long sys3(long nr, long a, long b, long c)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;

    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}

#else
#error "pyrunc's trampoline knows the system call convention of x86_64 and aarch64 only"
#endif

#endif
