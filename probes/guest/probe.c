/*
 * The machine probe: a freestanding guest that checks, from inside, the machine a VMM built
 * (boot information, e820, initrd, ACPI tables, CPU count), prints one report line on COM1,
 * then powers off through ACPI S5, reboots through one of the reset paths, hangs, or
 * crashes, as its command line asks:
 *
 *   action=poweroff|reboot-acpi|reboot-i8042|reboot-triple|reboot-vector|hang|crash|echo
 *                     (default poweroff; echo: copy what COM1 receives back to it until
 *                     the echo-end byte, then power off)
 *   echo-end=N        with action=echo: the terminating byte value (default 4, Ctrl-D)
 *   cpus=N            expect N enabled local APICs in the MADT
 *   hids=A,B,...      expect these _HIDs in the DSDT
 *   virtio=1          drive every virtio-mmio device found in the DSDT (see virtio.c)
 *   net-allow=PORT    with virtio=1: TCP to this host port at the gateway should connect
 *   net-other=PORT    with virtio=1: TCP to this one should be refused
 *   net-dst=A.B.C.D:PORT  with virtio=1: also try TCP to this address beyond the gateway
 *
 * Output, one line each:
 *   PROBE entry=pvh ... key=value ...
 *   PROBE RESULT PASS | PROBE RESULT FAIL <what>
 */
#include "probe.h"
#include "virtio.h"

#define BOOT_PVH 1
#define BOOT_LINUX64 2

struct e820 { u64 addr, size; u32 type; };
struct boot {
    const char *entry;
    const char *cmdline;
    u64 rsdp;
    struct e820 map[128];
    u32 nmap;
    u64 initrd, initrd_size;
};

static struct boot B;
static char fail[256];
static u32 fail_len;

static void failed(const char *what)
{
    if (fail_len && fail_len < sizeof(fail) - 1)
        fail[fail_len++] = ',';
    while (*what && fail_len < sizeof(fail) - 1)
        fail[fail_len++] = *what++;
    fail[fail_len] = 0;
}

/* ---- boot information: PVH start_info or Linux zero page ---- */

struct hvm_start_info {
    u32 magic, version, flags, nr_modules;
    u64 modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    u32 memmap_entries, reserved;
};
struct hvm_modlist_entry { u64 paddr, size, cmdline_paddr, reserved; };
struct hvm_memmap_entry { u64 addr, size; u32 type, reserved; };
#define HVM_START_MAGIC 0x336ec578

static void read_pvh(u64 info_addr)
{
    struct hvm_start_info *si = (void *)info_addr;
    B.entry = "pvh";
    if (si->magic != HVM_START_MAGIC) {
        failed("start_info-magic");
        return;
    }
    B.cmdline = (const char *)si->cmdline_paddr;
    B.rsdp = si->rsdp_paddr;
    if (si->version >= 1 && si->memmap_paddr) {
        struct hvm_memmap_entry *m = (void *)si->memmap_paddr;
        for (u32 i = 0; i < si->memmap_entries && B.nmap < 128; i++, B.nmap++) {
            B.map[B.nmap].addr = m[i].addr;
            B.map[B.nmap].size = m[i].size;
            B.map[B.nmap].type = m[i].type;
        }
    }
    if (si->nr_modules) {
        struct hvm_modlist_entry *mod = (void *)si->modlist_paddr;
        B.initrd = mod[0].paddr;
        B.initrd_size = mod[0].size;
    }
}

static void read_zero_page(u64 zp)
{
    u8 *p = (u8 *)zp;
    B.entry = "linux64";
    u32 cmd = rd32(p + 0x228) ;
    u64 cmd64 = cmd | ((u64)rd32(p + 0x0c8) << 32);
    B.cmdline = (const char *)cmd64;
    B.rsdp = rd64(p + 0x070);
    B.initrd = rd32(p + 0x218) | ((u64)rd32(p + 0x0c0) << 32);
    B.initrd_size = rd32(p + 0x21c) | ((u64)rd32(p + 0x0c4) << 32);
    u32 n = p[0x1e8];
    for (u32 i = 0; i < n && i < 128; i++) {
        u8 *e = p + 0x2d0 + 20 * i;
        B.map[i].addr = rd64(e);
        B.map[i].size = rd64(e + 8);
        B.map[i].type = rd32(e + 16);
    }
    B.nmap = n;
    if (rd32(p + 0x202) != 0x53726448)
        failed("zero-page-HdrS");
}

/* ---- ACPI ---- */

struct gas { u8 space, width, offset, access; u64 addr; };
static struct {
    u8 *xsdt, *rsdt, *fadt, *madt, *dsdt;
    u32 lapics, ioapics;
    u32 flags;
    struct gas reset, sleep_ctl, pm1a_cnt;
    u8 reset_value;
    int s5;           /* SLP_TYP for S5, -1 when _S5_ is missing */
    char hids[256];
    char tables[128];
} A = { .s5 = -1 };

static int sum_ok(const u8 *p, u32 len)
{
    u8 s = 0;
    for (u32 i = 0; i < len; i++)
        s += p[i];
    return s == 0;
}

static void append(char *buf, u32 cap, const char *s, u32 n)
{
    u32 l = strlen(buf);
    if (l && l < cap - 1)
        buf[l++] = ',';
    while (n-- && *s && l < cap - 1)
        buf[l++] = *s++;
    buf[l] = 0;
}

static void read_gas(struct gas *g, const u8 *p)
{
    g->space = p[0];
    g->width = p[1];
    g->offset = p[2];
    g->access = p[3];
    g->addr = rd64(p + 4);
}

static u8 *find_rsdp(void)
{
    for (u64 a = 0xe0000; a < 0x100000; a += 16)
        if (memcmp((void *)a, "RSD PTR ", 8) == 0)
            return (u8 *)a;
    return 0;
}

/* Decodes a compressed EISA id (as AML stores it) into 7 characters. */
static void eisa_decode(u32 v, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    v = __builtin_bswap32(v);
    out[0] = '@' + ((v >> 26) & 0x1f);
    out[1] = '@' + ((v >> 21) & 0x1f);
    out[2] = '@' + ((v >> 16) & 0x1f);
    for (int i = 0; i < 4; i++)
        out[3 + i] = hex[(v >> (12 - 4 * i)) & 0xf];
}

static void scan_dsdt(u8 *t)
{
    u32 len = rd32(t + 4);
    for (u32 i = 36; i + 8 < len; i++) {
        if (memcmp(t + i, "_HID", 4) == 0 && t[i - 1] == 0x08 /* NameOp */) {
            u8 *v = t + i + 4;
            if (v[0] == 0x0c) {            /* DWordPrefix: EISAID */
                char id[8] = {0};
                eisa_decode(rd32(v + 1), id);
                append(A.hids, sizeof(A.hids), id, 7);
            } else if (v[0] == 0x0d) {     /* StringPrefix */
                append(A.hids, sizeof(A.hids), (const char *)v + 1, 16);
            }
        }
        if (memcmp(t + i, "_S5_", 4) == 0 && t[i + 4] == 0x12 /* PackageOp */) {
            u8 *v = t + i + 5;
            v += 1 + (v[0] >> 6);          /* PkgLength */
            v += 1;                        /* NumElements */
            if (v[0] == 0x0a)              /* BytePrefix */
                A.s5 = v[1];
            else if (v[0] == 0x00 || v[0] == 0x01)
                A.s5 = v[0];
        }
    }
}

static void table(u8 *t)
{
    u32 len = rd32(t + 4);
    append(A.tables, sizeof(A.tables), (const char *)t, 4);
    if (!sum_ok(t, len)) {
        char what[16] = "checksum-";
        memcpy(what + 9, t, 4);
        failed(what);
    }
    if (memcmp(t, "FACP", 4) == 0) {
        A.fadt = t;
        A.flags = rd32(t + 112);
        read_gas(&A.reset, t + 116);
        A.reset_value = t[128];
        u64 dsdt = rd32(t + 40);
        if (len >= 148 && rd64(t + 140))
            dsdt = rd64(t + 140);
        if (len >= 184 && rd64(t + 172 + 4)) {
            read_gas(&A.pm1a_cnt, t + 172);
        } else {
            A.pm1a_cnt.space = 1;
            A.pm1a_cnt.addr = rd32(t + 64);
        }
        if (len >= 256)
            read_gas(&A.sleep_ctl, t + 244);
        if (dsdt) {
            u8 *d = (u8 *)dsdt;
            if (memcmp(d, "DSDT", 4) != 0)
                failed("dsdt-signature");
            else {
                A.dsdt = d;
                table(d);
                scan_dsdt(d);
            }
        }
    } else if (memcmp(t, "APIC", 4) == 0) {
        A.madt = t;
        for (u32 off = 44; off + 2 <= len;) {
            u8 type = t[off], l = t[off + 1];
            if (l < 2)
                break;
            if (type == 0 && (rd32(t + off + 4) & 1))
                A.lapics++;
            if (type == 9 && (rd32(t + off + 8) & 1))
                A.lapics++;
            if (type == 1)
                A.ioapics++;
            off += l;
        }
    }
}

static void walk_acpi(void)
{
    u8 *rsdp = B.rsdp ? (u8 *)B.rsdp : find_rsdp();
    if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) != 0) {
        failed("no-rsdp");
        return;
    }
    B.rsdp = (u64)rsdp;
    if (!sum_ok(rsdp, 20))
        failed("rsdp-checksum");
    if (rsdp[15] >= 2) {
        if (!sum_ok(rsdp, rd32(rsdp + 20)))
            failed("rsdp-ext-checksum");
        A.xsdt = (u8 *)rd64(rsdp + 24);
    }
    if (!A.xsdt)
        A.rsdt = (u8 *)(u64)rd32(rsdp + 16);
    u8 *root = A.xsdt ? A.xsdt : A.rsdt;
    if (!root || memcmp(root, A.xsdt ? "XSDT" : "RSDT", 4) != 0) {
        failed("root-table");
        return;
    }
    u32 len = rd32(root + 4);
    if (!sum_ok(root, len))
        failed("root-checksum");
    u32 esz = A.xsdt ? 8 : 4;
    for (u32 off = 36; off + esz <= len; off += esz) {
        u64 a = A.xsdt ? rd64(root + off) : rd32(root + off);
        table((u8 *)a);
    }
    if (!A.fadt)
        failed("no-fadt");
    if (!A.madt)
        failed("no-madt");
    if (!A.dsdt)
        failed("no-dsdt");
}

/* ---- command line ---- */

static const char *arg(const char *key)
{
    const char *c = B.cmdline;
    u32 kl = strlen(key);
    if (!c)
        return 0;
    while (*c) {
        while (*c == ' ')
            c++;
        if (memcmp(c, key, kl) == 0 && c[kl] == '=')
            return c + kl + 1;
        while (*c && *c != ' ')
            c++;
    }
    return 0;
}

static int arg_is(const char *v, const char *s)
{
    u32 l = strlen(s);
    return v && memcmp(v, s, l) == 0 && (v[l] == 0 || v[l] == ' ');
}

/* ---- power ---- */

static void gas_write(const struct gas *g, u32 v)
{
    u32 width = g->width ? g->width : 8;
    if (g->space == 1) {
        if (width <= 8) outb(g->addr, v);
        else if (width <= 16) outw(g->addr, v);
        else outl(g->addr, v);
    } else if (g->space == 0) {
        if (width <= 8) *(volatile u8 *)g->addr = v;
        else if (width <= 16) *(volatile u16 *)g->addr = v;
        else *(volatile u32 *)g->addr = v;
    }
}

static void halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

static void poweroff(void)
{
    if (A.s5 < 0) {
        puts("PROBE cannot power off: no _S5_ in the DSDT\n");
        halt_forever();
    }
    if (A.flags & (1u << 20)) /* HW_REDUCED_ACPI */
        gas_write(&A.sleep_ctl, (A.s5 << 2) | (1 << 5));
    else
        outw(A.pm1a_cnt.addr, (A.s5 << 10) | (1 << 13));
    /* Some machines (qemu's microvm) act on the write asynchronously: just wait. */
    halt_forever();
}

static void reboot_acpi(void)
{
    if (!(A.flags & (1u << 10))) { /* RESET_REG_SUP */
        puts("PROBE FADT has no reset register\n");
        halt_forever();
    }
    gas_write(&A.reset, A.reset_value);
    puts("PROBE reset-register write had no effect\n");
    halt_forever();
}

static void triple_fault(void)
{
    static const struct { u16 limit; u64 base; } __attribute__((packed)) empty = {0, 0};
    /* A #GP from a non-canonical access: with no IDT it becomes a double and then a
     * triple fault. (Not int3: KVM's instruction emulator on PVM hosts cannot deliver it.) */
    __asm__ volatile("lidt %0; movq $0x8000000000000000, %%rax; movq (%%rax), %%rax"
                     ::"m"(empty) : "rax");
}

/* The console check: copies every byte COM1 receives back to it, polling the line status
 * register's data-ready bit (the probe runs with interrupts off), until the terminating
 * byte; then says how many bytes it echoed and powers off. */
#define COM1_PORT 0x3f8
static void echo(void)
{
    const char *e = arg("echo-end");
    u8 end = e ? (u8)parse_dec(e) : 4;
    u64 n = 0;
    puts("PROBE echo ready\n");
    for (;;) {
        if (!(inb(COM1_PORT + 5) & 1)) {
            __asm__ volatile("pause");
            continue;
        }
        u8 c = inb(COM1_PORT);
        if (c == end)
            break;
        for (int i = 0; i < 100000 && !(inb(COM1_PORT + 5) & 0x20); i++)
            ;
        outb(COM1_PORT, c);
        n++;
    }
    puts("\nPROBE echo done bytes=");
    put_dec(n);
    puts("\n");
    poweroff();
}

/* The two loops below are the only ones the guest needs to run: keep them cheap, since
 * on an emulated KVM every guest instruction costs microseconds. */
static u32 fnv1a(const u8 *p, u64 n)
{
    u32 h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

extern u64 identity_4g_pml4(void);

void probe_main(u32 how, u64 info)
{
    if (how == BOOT_PVH)
        read_pvh(info);
    else {
        read_zero_page(info);
        load_cr3(identity_4g_pml4());
    }

    walk_acpi();

    u64 ram = 0;
    for (u32 i = 0; i < B.nmap; i++)
        if (B.map[i].type == 1)
            ram += B.map[i].size;
    if (!B.nmap)
        failed("no-e820");

    puts("PROBE entry=");
    puts(B.entry);
    puts(" cmdline=\"");
    puts(B.cmdline ? B.cmdline : "");
    puts("\" e820=");
    put_dec(B.nmap);
    puts(" ram_kib=");
    put_dec(ram >> 10);
    if (B.initrd_size) {
        puts(" initrd=");
        put_hex(B.initrd);
        puts("+");
        put_dec(B.initrd_size);
        puts(" initrd_fnv=");
        put_hex(fnv1a((const u8 *)B.initrd, B.initrd_size));
    }
    puts(" rsdp=");
    put_hex(B.rsdp);
    puts(A.xsdt ? " root=XSDT" : " root=RSDT");
    puts(" tables=");
    puts(A.tables);
    puts(" hw_reduced=");
    put_dec(!!(A.flags & (1u << 20)));
    puts(" lapics=");
    put_dec(A.lapics);
    puts(" ioapics=");
    put_dec(A.ioapics);
    puts(" hids=");
    puts(A.hids);
    puts(" s5=");
    if (A.s5 < 0) puts("none"); else put_dec(A.s5);
    {
        u32 a, b, c, d;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
        puts(" cpuid1_ecx=");
        put_hex(c);
        puts(" cpuid1_edx=");
        put_hex(d);
    }
    puts("\n");

    const char *cpus = arg("cpus");
    if (cpus && parse_dec(cpus) != A.lapics)
        failed("lapic-count");
    const char *hids = arg("hids");
    while (hids && *hids && *hids != ' ') {
        u32 n = 0;
        while (hids[n] && hids[n] != ',' && hids[n] != ' ')
            n++;
        int found = 0;
        for (const char *h = A.hids; *h;) {
            u32 m = 0;
            while (h[m] && h[m] != ',')
                m++;
            if (m == n && memcmp(h, hids, n) == 0)
                found = 1;
            h += m + (h[m] == ',');
        }
        if (!found)
            failed("missing-hid");
        hids += n + (hids[n] == ',');
    }
    if (A.s5 < 0)
        failed("no-_S5_");

    if (arg_is(arg("virtio"), "1") && A.dsdt) {
        u32 blks = 0, nets = 0;
        const char *allow = arg("net-allow"), *other = arg("net-other");
        u32 dst_ip = 0, dst_port = 0;
        const char *dst = arg("net-dst");
        for (int i = 0; dst && i < 4; i++) {
            dst_ip = (dst_ip << 8) | (u32)(parse_dec(dst) & 0xff);
            while (*dst >= '0' && *dst <= '9')
                dst++;
            if (*dst == '.' || *dst == ':')
                dst++;
        }
        if (dst)
            dst_port = (u32)parse_dec(dst);
        for (u32 n = 0;; n++) {
            u64 base = virtio_window(A.dsdt, n);
            if (!base)
                break;
            int id = virtio_device_id(base);
            if (id == 2 && virtio_init_queues(base, 1) == 2)
                virtio_blk_report(blks++, base);
            else if (id == 1 && virtio_init_queues(base, 2) == 1)
                virtio_net_report(nets++, base, allow ? parse_dec(allow) : 0,
                                  other ? parse_dec(other) : 0, dst_ip, dst_port);
            else if (id != 0)
                failed("virtio-init");
        }
        puts("PROBE virtio blk_devices=");
        put_dec(blks);
        puts(" net_devices=");
        put_dec(nets);
        puts("\n");
    }

    if (fail_len) {
        puts("PROBE RESULT FAIL ");
        puts(fail);
        puts("\n");
    } else
        puts("PROBE RESULT PASS\n");

    const char *action = arg("action");
    if (!action || arg_is(action, "poweroff"))
        poweroff();
    else if (arg_is(action, "reboot-acpi"))
        reboot_acpi();
    else if (arg_is(action, "reboot-i8042"))
        outb(0x64, 0xfe);
    else if (arg_is(action, "reboot-triple"))
        triple_fault();
    else if (arg_is(action, "reboot-vector"))
        /* Jump to the reset vector (F000:FFF0 = 0xffff0, identity-mapped here), where
         * Linux's BIOS reboot path ends up: the VMM's stub there must reset the VM. */
        ((void (*)(void))0xffff0ul)();
    else if (arg_is(action, "hang"))
        halt_forever();
    else if (arg_is(action, "echo"))
        echo();
    else if (arg_is(action, "crash"))
        /* Execute from a guest-physical address with no memory behind it: KVM cannot
         * fetch the instruction and reports an internal (emulation) error. */
        ((void (*)(void))0xc0000000ul)();
    puts("PROBE action did not end the VM\n");
    halt_forever();
}
