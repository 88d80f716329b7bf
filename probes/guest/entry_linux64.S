/*
 * Linux boot protocol entry for the bzImage-format probe. The protected-mode payload is
 * loaded at 1 MiB; the VMM enters its 64-bit entry point (payload + 0x200) in long mode
 * with the loader's identity mapping and %rsi = zero page, exactly as it enters a real
 * kernel's startup_64. We zero .bss, switch to our own stack and call
 * probe_main(BOOT_LINUX64, boot_params). probe_main installs 4 GiB of page tables itself.
 */
        .section .text.entry, "ax"
        .code32
        .globl startup_32
startup_32:
        /* The 32-bit entry is not supported by this probe: stop visibly (triple fault). */
        ud2

        .org 0x200
        .code64
        .globl startup_64
startup_64:
        cli
        cld
        mov     %rsi, %r12
        mov     $__bss_start, %rdi
        mov     $__bss_end, %rcx
        sub     %rdi, %rcx
        shr     $3, %rcx
        xor     %eax, %eax
        rep stosq
        mov     $stack_top, %rsp
        mov     %r12, %rsi
        mov     $2, %edi                    /* BOOT_LINUX64 */
        call    probe_main
1:      cli
        hlt
        jmp     1b

        .section .noinit, "aw", @nobits
        .balign 4096
        .skip 16384
stack_top:
