/*
 * PVH entry: the loader (our VMM, or qemu's PVH option ROM) jumps to pvh_start in 32-bit
 * protected mode, paging off, %ebx = physical address of struct hvm_start_info.
 * We zero .bss, identity-map the low 4 GiB with 2 MiB pages (so MMIO windows below 4 GiB
 * are reachable), enter long mode and call probe_main(BOOT_PVH, start_info).
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

        .section .note.Xen, "a", @note
        .balign 4
        .long 2f - 1f           /* namesz */
        .long 4f - 3f           /* descsz */
        .long XEN_ELFNOTE_PHYS32_ENTRY
1:      .asciz "Xen"
2:      .balign 4
3:      .long pvh_start
4:      .balign 4

        .section .text.entry, "ax"
        .code32
        .globl pvh_start
pvh_start:
        cli
        cld
        mov     %ebx, %esi                  /* keep start_info across the set-up */

        /* zero .bss (page tables and stack live there); 4 bytes a step, .bss is aligned */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        shr     $2, %ecx
        xor     %eax, %eax
        rep stosl

        mov     $pdpt, %eax
        or      $0x3, %eax
        mov     %eax, pml4

        /* 1 GiB pages when the CPU has them (4 entries instead of 2048: every guest
         * instruction is expensive on an emulated KVM) */
        mov     $0x80000000, %eax
        cpuid
        cmp     $0x80000001, %eax
        jb      2f
        mov     $0x80000001, %eax
        cpuid
        bt      $26, %edx
        jnc     2f
        movl    $0x00000083, pdpt
        movl    $0x40000083, pdpt + 8
        movl    $0x80000083, pdpt + 16
        movl    $0xc0000083, pdpt + 24
        jmp     4f

        /* otherwise PDPT[0..3] -> PD0..PD3; PDn[i] = 2 MiB pages */
2:      mov     $pd, %eax
        or      $0x3, %eax
        mov     $pdpt, %edi
        mov     $4, %ecx
1:      mov     %eax, (%edi)
        add     $0x1000, %eax
        add     $8, %edi
        loop    1b
        mov     $pd, %edi
        mov     $0x83, %eax                 /* present, writable, 2 MiB page */
        mov     $2048, %ecx
3:      mov     %eax, (%edi)
        add     $0x200000, %eax
        add     $8, %edi
        loop    3b

4:      mov     %cr4, %eax
        or      $0x20, %eax                 /* PAE */
        mov     %eax, %cr4
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx           /* EFER */
        rdmsr
        or      $0x100, %eax                /* LME */
        wrmsr
        lgdt    gdt_desc
        mov     %cr0, %eax
        or      $0x80000001, %eax           /* PG | PE */
        mov     %eax, %cr0
        ljmp    $0x08, $long_mode

        .code64
long_mode:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        mov     $stack_top, %rsp
        mov     %esi, %esi                  /* zero-extend start_info */
        mov     $1, %edi                    /* BOOT_PVH */
        call    probe_main
3:      cli
        hlt
        jmp     3b

        .section .rodata
        .balign 8
gdt:    .quad 0
        .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff            /* 0x10: data */
gdt_end:
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        .section .bss
        .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096

        .section .noinit, "aw", @nobits
        .balign 4096
pd:     .skip 4096 * 4                      /* written whole when used */
        .skip 16384
stack_top:
