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
static void putc(char c)
{
    /* Wait for THR empty, bounded: a broken UART must not hang the probe forever. */
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        ;
    outb(COM1, c);
}
void puts(const char *s) { while (*s) putc(*s++); }
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

/* Identity map of the low 4 GiB with 2 MiB pages, for probes entered with the loader's
 * (smaller) mapping, so that MMIO windows below 4 GiB are reachable. */
static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096)));
u64 identity_4g_pml4(void)
{
    for (u64 i = 0; i < 4; i++) {
        for (u64 j = 0; j < 512; j++)
            pd[i][j] = ((i * 512 + j) << 21) | 0x83;
        pdpt[i] = (u64)pd[i] | 3;
    }
    pml4[0] = (u64)pdpt | 3;
    return (u64)pml4;
}
