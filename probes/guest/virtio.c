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

struct vq {
    struct desc d[QSIZE] __attribute__((aligned(16)));
    struct { u16 flags, idx, ring[QSIZE], used_event; } avail __attribute__((aligned(4)));
    struct { u16 flags, idx; struct { u32 id, len; } ring[QSIZE]; u16 avail_event; } used
        __attribute__((aligned(4)));
    u16 last_used;
};
static struct vq vqs[2];

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

/* Resets and initialises the device with VERSION_1 only and `nq` queues of QSIZE entries.
 * Returns the device id, 0 for an empty slot, -1 on failure. */
int virtio_init_queues(u64 base, u32 nq)
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
    for (u32 q = 0; q < nq; q++) {
        struct vq *v = &vqs[q];
        wr(base, R_QUEUE_SEL, q);
        if (rd(base, R_QUEUE_NUM_MAX) < QSIZE)
            return -1;
        memset(v, 0, sizeof(*v));
        wr(base, R_QUEUE_NUM, QSIZE);
        wr64(base, R_QUEUE_DESC, (u64)v->d);
        wr64(base, R_QUEUE_DRIVER, (u64)&v->avail);
        wr64(base, R_QUEUE_DEVICE, (u64)&v->used);
        wr(base, R_QUEUE_READY, 1);
    }
    wr(base, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    return id;
}

int virtio_device_id(u64 base)
{
    if (rd(base, R_MAGIC) != VIRTIO_MAGIC || rd(base, R_VERSION) != 2)
        return -1;
    return rd(base, R_DEVICE_ID);
}

/* Submits the chain starting at descriptor 0 and polls for its completion. */
static int submit(u64 base)
{
    struct vq *v = &vqs[0];
    v->avail.ring[v->avail.idx % QSIZE] = 0;
    __asm__ volatile("" ::: "memory");
    v->avail.idx++;
    __asm__ volatile("mfence" ::: "memory");
    wr(base, R_QUEUE_NOTIFY, 0);
    for (u32 i = 0; i < 2000000; i++) {
        if (*(volatile u16 *)&v->used.idx != v->last_used) {
            v->last_used++;
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
    struct desc *d = vqs[0].d;
    d[0] = (struct desc){(u64)&req, sizeof(req), D_NEXT, 1};
    u16 next = 1;
    if (len) {
        d[1] = (struct desc){(u64)data, len, D_NEXT | (type == T_OUT ? 0 : D_WRITE), 2};
        next = 2;
    }
    d[next] = (struct desc){(u64)&status, 1, D_WRITE, 0};
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

/* ---- virtio-net: DHCP and TCP reachability of the host ---- */

struct net_hdr { u8 flags, gso_type; u16 hdr_len, gso_size, csum_start, csum_offset, num_buffers; };
#define NET_HDR 12
#define FRAME_MAX 1536
static u8 rx_bufs[QSIZE][NET_HDR + FRAME_MAX] __attribute__((aligned(16)));
static u8 tx_buf[NET_HDR + FRAME_MAX] __attribute__((aligned(16)));
static u8 my_mac[6], gw_mac[6];
static u32 my_ip, gw_ip = 0x0a000202; /* 10.0.2.2, host order */

/* Waits are bounded by the TSC, not by loop counts: a loop's speed depends on how the
 * guest is run (KVM, KVM's emulator, TCG) and on how busy the host is, while the host
 * side (a NAT thread, an emulator's I/O thread) may take a while to be scheduled. Every
 * TSC in use here ticks at 1-4 GHz, so this is a few seconds. */
#define NET_WAIT_TSC (8ull * 1000 * 1000 * 1000)
static u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static u16 be16(u16 v) { return __builtin_bswap16(v); }
static u32 be32(u32 v) { return __builtin_bswap32(v); }

static u32 csum_add(u32 sum, const u8 *p, u32 n)
{
    for (u32 i = 0; i + 1 < n; i += 2)
        sum += (p[i] << 8) | p[i + 1];
    if (n & 1)
        sum += p[n - 1] << 8;
    return sum;
}
static u16 csum_fold(u32 sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return be16(~sum & 0xffff);
}

static void rx_post(u64 base, u16 i)
{
    struct vq *v = &vqs[0];
    v->d[i] = (struct desc){(u64)rx_bufs[i], sizeof(rx_bufs[i]), D_WRITE, 0};
    v->avail.ring[v->avail.idx % QSIZE] = i;
    __asm__ volatile("" ::: "memory");
    v->avail.idx++;
    __asm__ volatile("mfence" ::: "memory");
    wr(base, R_QUEUE_NOTIFY, 0);
}

/* Sends the frame in tx_buf (after the header) and waits until the device took it. */
static int tx_send(u64 base, u32 len)
{
    struct vq *v = &vqs[1];
    memset(tx_buf, 0, NET_HDR);
    v->d[0] = (struct desc){(u64)tx_buf, NET_HDR + len, 0, 0};
    v->avail.ring[v->avail.idx % QSIZE] = 0;
    __asm__ volatile("" ::: "memory");
    v->avail.idx++;
    __asm__ volatile("mfence" ::: "memory");
    wr(base, R_QUEUE_NOTIFY, 1);
    for (u64 start = rdtsc(); rdtsc() - start < NET_WAIT_TSC;)
        if (*(volatile u16 *)&v->used.idx != v->last_used) {
            v->last_used++;
            return 0;
        }
    return -1;
}

/* Waits for one received frame; returns its buffer (after the net header) and length,
 * and re-posts the buffer. */
static const u8 *rx_wait(u64 base, u32 *len, u8 *copy)
{
    struct vq *v = &vqs[0];
    for (u64 start = rdtsc(); rdtsc() - start < NET_WAIT_TSC;) {
        if (*(volatile u16 *)&v->used.idx != v->last_used) {
            u32 slot = v->last_used % QSIZE;
            u32 id = v->used.ring[slot].id, l = v->used.ring[slot].len;
            v->last_used++;
            if (id >= QSIZE || l < NET_HDR || l > NET_HDR + FRAME_MAX)
                return 0;
            *len = l - NET_HDR;
            memcpy(copy, rx_bufs[id] + NET_HDR, *len);
            rx_post(base, id);
            wr(base, R_INT_ACK, rd(base, R_INT_STATUS));
            return copy;
        }
    }
    return 0;
}

static u8 *eth(u8 *f, const u8 *dst, u16 type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, my_mac, 6);
    f[12] = type >> 8;
    f[13] = type & 0xff;
    return f + 14;
}

static u8 *ipv4(u8 *p, u32 src, u32 dst, u8 proto, u16 payload)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    *(u16 *)(p + 2) = be16(20 + payload);
    p[8] = 64;
    p[9] = proto;
    *(u32 *)(p + 12) = be32(src);
    *(u32 *)(p + 16) = be32(dst);
    *(u16 *)(p + 10) = csum_fold(csum_add(0, p, 20));
    return p + 20;
}

static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static u8 frame[FRAME_MAX];
#define XID 0x56544d31

static int dhcp_discover(u64 base)
{
    u8 *f = tx_buf + NET_HDR;
    u32 opts = 3 + 1;
    u32 bootp = 236 + 4 + opts;
    u8 *ip = eth(f, bcast, 0x0800);
    u8 *udp = ipv4(ip, 0, 0xffffffff, 17, 8 + bootp);
    *(u16 *)udp = be16(68);
    *(u16 *)(udp + 2) = be16(67);
    *(u16 *)(udp + 4) = be16(8 + bootp);
    *(u16 *)(udp + 6) = 0;
    u8 *b = udp + 8;
    memset(b, 0, bootp);
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    *(u32 *)(b + 4) = be32(XID);
    *(u16 *)(b + 10) = be16(0x8000); /* broadcast reply */
    memcpy(b + 28, my_mac, 6);
    *(u32 *)(b + 236) = be32(0x63825363);
    u8 *o = b + 240;
    o[0] = 53; o[1] = 1; o[2] = 1; /* DHCPDISCOVER */
    o[3] = 255;
    if (tx_send(base, 14 + 20 + 8 + bootp) < 0)
        return -1;
    for (u32 tries = 0; tries < 16; tries++) {
        u32 len;
        const u8 *r = rx_wait(base, &len, frame);
        if (!r)
            return -1;
        if (len < 14 + 20 + 8 + 240 || r[12] != 0x08 || r[13] != 0x00 || r[14 + 9] != 17)
            continue;
        const u8 *rb = r + 14 + 20 + 8;
        if (rb[0] != 2 || be32(*(const u32 *)(rb + 4)) != XID)
            continue;
        my_ip = be32(*(const u32 *)(rb + 16));
        memcpy(gw_mac, r + 6, 6);
        return 0;
    }
    return -1;
}

/* Sends a TCP SYN to `dst`:`port` (through the gateway); returns 1 for SYN-ACK, 0 for RST,
 * -1 for no answer. */
static int tcp_probe(u64 base, u32 dst, u16 port, u16 sport)
{
    u8 *f = tx_buf + NET_HDR;
    u8 *ip = eth(f, gw_mac, 0x0800);
    u8 *t = ipv4(ip, my_ip, dst, 6, 20);
    memset(t, 0, 20);
    *(u16 *)t = be16(sport);
    *(u16 *)(t + 2) = be16(port);
    *(u32 *)(t + 4) = be32(0x1000);
    t[12] = 5 << 4;
    t[13] = 0x02; /* SYN */
    *(u16 *)(t + 14) = be16(8192);
    u8 pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = 6;
    *(u16 *)(pseudo + 10) = be16(20);
    *(u16 *)(t + 16) = csum_fold(csum_add(csum_add(0, pseudo, 12), t, 20));
    if (tx_send(base, 14 + 20 + 20) < 0)
        return -1;
    for (u32 tries = 0; tries < 16; tries++) {
        u32 len;
        const u8 *r = rx_wait(base, &len, frame);
        if (!r)
            return -1;
        if (len < 14 + 40 || r[12] != 0x08 || r[13] != 0x00 || r[14 + 9] != 6)
            continue;
        const u8 *rt = r + 14 + (r[14] & 0xf) * 4;
        if (be16(*(const u16 *)rt) != port || be16(*(const u16 *)(rt + 2)) != sport)
            continue;
        if ((rt[13] & 0x12) == 0x12)
            return 1;
        if (rt[13] & 0x04)
            return 0;
    }
    return -1;
}

static void put_ip(u32 ip)
{
    for (int i = 3; i >= 0; i--) {
        put_dec((ip >> (8 * i)) & 0xff);
        if (i)
            puts(".");
    }
}

static void put_mac(const u8 *m)
{
    static const char hex[] = "0123456789abcdef";
    char s[18];
    for (int i = 0; i < 6; i++) {
        s[3 * i] = hex[m[i] >> 4];
        s[3 * i + 1] = hex[m[i] & 0xf];
        s[3 * i + 2] = i < 5 ? ':' : 0;
    }
    puts(s);
}

static const char *tcp_name(int r) { return r == 1 ? "open" : r == 0 ? "refused" : "timeout"; }

/* Probes the net device at `base`: DHCP, then TCP to the allowed and the other port at the
 * gateway, and to `dst_ip`:`dst_port` when given. */
void virtio_net_report(u32 index, u64 base, u32 allow_port, u32 deny_port, u32 dst_ip,
                       u32 dst_port)
{
    for (int i = 0; i < 6; i++)
        my_mac[i] = *(volatile u8 *)(base + R_CONFIG + i);
    for (u16 i = 0; i < QSIZE; i++)
        rx_post(base, i);
    puts("PROBE net index=");
    put_dec(index);
    puts(" mac=");
    put_mac(my_mac);
    if (dhcp_discover(base) < 0) {
        puts(" dhcp=timeout\n");
        return;
    }
    puts(" dhcp=");
    put_ip(my_ip);
    puts(" gw_mac=");
    put_mac(gw_mac);
    if (allow_port) {
        puts(" tcp_allowed=");
        puts(tcp_name(tcp_probe(base, gw_ip, allow_port, 40000 + index)));
    }
    if (deny_port) {
        puts(" tcp_other=");
        puts(tcp_name(tcp_probe(base, gw_ip, deny_port, 41000 + index)));
    }
    if (dst_ip && dst_port) {
        puts(" tcp_dst=");
        puts(tcp_name(tcp_probe(base, dst_ip, dst_port, 42000 + index)));
    }
    puts("\n");
}
