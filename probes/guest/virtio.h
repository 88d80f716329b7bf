#pragma once
#include "probe.h"
u64 virtio_window(const u8 *dsdt, u32 n);
int virtio_init_queues(u64 base, u32 nq);
int virtio_device_id(u64 base);
void virtio_net_report(u32 index, u64 base, u32 allow_port, u32 deny_port, u32 dst_ip,
                       u32 dst_port);
void virtio_blk_report(u32 index, u64 base);
