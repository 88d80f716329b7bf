#pragma once
#include "probe.h"
u64 virtio_window(const u8 *dsdt, u32 n);
int virtio_init(u64 base);
void virtio_blk_report(u32 index, u64 base);
