/* libc-like helpers, COM1 output and page tables shared by all probes. */
#include "probe.h"

void *memcpy(void *d, const void *s, size_t n) { u8 *a = d; const u8 *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, size_t n) { u8 *a = d; while (n--) *a++ = c; return d; }
int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n--; x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}
size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

#define COM1 0x3f8
#define UART_FIFO 16
/* Waits for an empty transmit FIFO (bounded: a broken UART must not hang the probe), then
 * writes up to a FIFO's worth with one `rep outsb`. On a VMM every port access is an exit,
 * and on an emulated KVM a costly one: this makes ~2 exits per 16 bytes instead of 2 per
 * byte. */
void puts(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        size_t chunk = n < UART_FIFO ? n : UART_FIFO;
        for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
            ;
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(chunk) : "d"(COM1) : "memory");
        n -= n < UART_FIFO ? n : UART_FIFO;
    }
}
void put_hex(u64 v)
{
    char b[19];
    int i = 18;
    b[i] = 0;
    do { b[--i] = "0123456789abcdef"[v & 0xf]; v >>= 4; } while (v);
    b[--i] = 'x';
    b[--i] = '0';
    puts(b + i);
}
void put_dec(u64 v)
{
    char b[21];
    int i = 20;
    b[i] = 0;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    puts(b + i);
}
u64 parse_dec(const char *s)
{
    u64 v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return v;
}

static int has_1g_pages(void)
{
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u));
    if (a < 0x80000001u)
        return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u));
    return (d >> 26) & 1; /* PDPE1GB */
}

/* Identity map of the low 4 GiB with 2 MiB pages, for probes entered with the loader's
 * (smaller) mapping, so that MMIO windows below 4 GiB are reachable. */
static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096), section(".noinit"))); /* written whole */
u64 identity_4g_pml4(void)
{
    if (has_1g_pages()) {
        for (u64 i = 0; i < 4; i++)
            pdpt[i] = (i << 30) | 0x83;
        pml4[0] = (u64)pdpt | 3;
        return (u64)pml4;
    }
    for (u64 i = 0; i < 4; i++) {
        for (u64 j = 0; j < 512; j++)
            pd[i][j] = ((i * 512 + j) << 21) | 0x83;
        pdpt[i] = (u64)pd[i] | 3;
    }
    pml4[0] = (u64)pdpt | 3;
    return (u64)pml4;
}
