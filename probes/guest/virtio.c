/*
 * A minimal virtio-mmio (version 2) driver for the probes: finds devices through the
 * DSDT (_HID "LNRO0005", _CRS Memory32Fixed), sets up one split virtqueue and polls it.
 * virtio-blk: GET_ID (serial), capacity, read sector 0, write + read back sector 1.
 */
#include "probe.h"
#include "virtio.h"

#define VIRTIO_MAGIC 0x74726976
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC 0x080
#define R_QUEUE_DRIVER 0x090
#define R_QUEUE_DEVICE 0x0a0
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define QSIZE 8
struct desc { u64 addr; u32 len; u16 flags, next; };
#define D_NEXT 1
#define D_WRITE 2

static struct desc descs[QSIZE] __attribute__((aligned(16)));
static struct { u16 flags, idx, ring[QSIZE], used_event; } avail __attribute__((aligned(4)));
static struct { u16 flags, idx; struct { u32 id, len; } ring[QSIZE]; u16 avail_event; } used
    __attribute__((aligned(4)));
static u16 last_used;

static u32 rd(u64 base, u32 off) { return *(volatile u32 *)(base + off); }
static void wr(u64 base, u32 off, u32 v) { *(volatile u32 *)(base + off) = v; }
static void wr64(u64 base, u32 off, u64 v) { wr(base, off, (u32)v); wr(base, off + 4, v >> 32); }

/* Finds the n-th LNRO0005 window in the DSDT; 0 when there is none. */
u64 virtio_window(const u8 *dsdt, u32 n)
{
    u32 len = rd32(dsdt + 4);
    for (u32 i = 36; i + 9 < len; i++) {
        if (memcmp(dsdt + i, "LNRO0005", 8) != 0)
            continue;
        for (u32 j = i; j < i + 96 && j + 8 < len; j++)
            if (dsdt[j] == 0x86 && dsdt[j + 1] == 0x09 && dsdt[j + 2] == 0x00) {
                if (n-- == 0)
                    return rd32(dsdt + j + 4);
                break;
            }
    }
    return 0;
}

/* Resets and initialises the device with VERSION_1 only, queue 0 of QSIZE entries.
 * Returns the device id, 0 for an empty slot, -1 on failure. */
int virtio_init(u64 base)
{
    if (rd(base, R_MAGIC) != VIRTIO_MAGIC || rd(base, R_VERSION) != 2)
        return -1;
    int id = rd(base, R_DEVICE_ID);
    if (id == 0)
        return 0;
    wr(base, R_STATUS, 0);
    wr(base, R_STATUS, S_ACK);
    wr(base, R_STATUS, S_ACK | S_DRIVER);
    wr(base, R_DEV_FEATURES_SEL, 1);
    if (!(rd(base, R_DEV_FEATURES) & 1)) /* VIRTIO_F_VERSION_1 */
        return -1;
    wr(base, R_DRV_FEATURES_SEL, 1);
    wr(base, R_DRV_FEATURES, 1);
    wr(base, R_DRV_FEATURES_SEL, 0);
    wr(base, R_DRV_FEATURES, 0);
    wr(base, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(rd(base, R_STATUS) & S_FEATURES_OK))
        return -1;
    wr(base, R_QUEUE_SEL, 0);
    if (rd(base, R_QUEUE_NUM_MAX) < QSIZE)
        return -1;
    memset(descs, 0, sizeof(descs));
    memset(&avail, 0, sizeof(avail));
    memset(&used, 0, sizeof(used));
    last_used = 0;
    wr(base, R_QUEUE_NUM, QSIZE);
    wr64(base, R_QUEUE_DESC, (u64)descs);
    wr64(base, R_QUEUE_DRIVER, (u64)&avail);
    wr64(base, R_QUEUE_DEVICE, (u64)&used);
    wr(base, R_QUEUE_READY, 1);
    wr(base, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    return id;
}

/* Submits the chain starting at descriptor 0 and polls for its completion. */
static int submit(u64 base)
{
    avail.ring[avail.idx % QSIZE] = 0;
    __asm__ volatile("" ::: "memory");
    avail.idx++;
    __asm__ volatile("mfence" ::: "memory");
    wr(base, R_QUEUE_NOTIFY, 0);
    for (u32 i = 0; i < 2000000; i++) {
        if (*(volatile u16 *)&used.idx != last_used) {
            last_used++;
            wr(base, R_INT_ACK, rd(base, R_INT_STATUS));
            return 0;
        }
    }
    return -1;
}

struct blk_req { u32 type, reserved; u64 sector; };
static struct blk_req req;
static u8 status;
static u8 sector_buf[4096] __attribute__((aligned(512)));

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8

/* One request: header, optional data, status. Returns the virtio status or -1. */
static int blk_request(u64 base, u32 type, u64 sector, void *data, u32 len)
{
    req.type = type;
    req.reserved = 0;
    req.sector = sector;
    status = 0xff;
    descs[0] = (struct desc){(u64)&req, sizeof(req), D_NEXT, 1};
    u16 next = 1;
    if (len) {
        descs[1] = (struct desc){(u64)data, len, D_NEXT | (type == T_OUT ? 0 : D_WRITE), 2};
        next = 2;
    } else
        descs[0].next = 1;
    descs[next] = (struct desc){(u64)&status, 1, D_WRITE, 0};
    if (submit(base) < 0)
        return -1;
    return status;
}

static u32 fnv(const u8 *p, u32 n)
{
    u32 h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static const char *status_name(int s)
{
    return s == 0 ? "ok" : s == 1 ? "ioerr" : s == 2 ? "unsupp" : "timeout";
}

/* Probes the blk device at `base` and prints one line. */
void virtio_blk_report(u32 index, u64 base)
{
    char serial[21] = {0};
    int s = blk_request(base, T_GET_ID, 0, sector_buf, 20);
    if (s == 0)
        memcpy(serial, sector_buf, 20);
    u64 capacity = rd(base, R_CONFIG) | ((u64)rd(base, R_CONFIG + 4) << 32);
    u32 blk_size = rd(base, R_CONFIG + 20);
    puts("PROBE blk index=");
    put_dec(index);
    puts(" base=");
    put_hex(base);
    puts(" serial=");
    puts(serial[0] ? serial : "-");
    puts(" get_id=");
    puts(status_name(s));
    puts(" sectors=");
    put_dec(capacity);
    puts(" blk_size=");
    put_dec(blk_size);

    memset(sector_buf, 0, 512);
    s = blk_request(base, T_IN, 0, sector_buf, 512);
    puts(" read0=");
    puts(status_name(s));
    puts(" sector0_fnv=");
    put_hex(fnv(sector_buf, 512));

    /* Sector 1 gets "PROBE-WRITE <serial>" padded with '.', then is read back. */
    memset(sector_buf, '.', 512);
    memcpy(sector_buf, "PROBE-WRITE ", 12);
    memcpy(sector_buf + 12, serial, strlen(serial));
    u32 want = fnv(sector_buf, 512);
    s = blk_request(base, T_OUT, 1, sector_buf, 512);
    puts(" write1=");
    puts(status_name(s));
    if (s == 0) {
        s = blk_request(base, T_FLUSH, 0, 0, 0);
        puts(" flush=");
        puts(status_name(s));
        memset(sector_buf, 0, 512);
        s = blk_request(base, T_IN, 1, sector_buf, 512);
        puts(" readback=");
        puts(s == 0 && fnv(sector_buf, 512) == want ? "match" : "MISMATCH");
    }
    /* A read past the end must be refused, not answered. */
    s = blk_request(base, T_IN, capacity, sector_buf, 512);
    puts(" read_past_end=");
    puts(status_name(s));
    puts("\n");
}
