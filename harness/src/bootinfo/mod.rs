//! What grub would boot: its config's default menu entry ([`parse_grub_cfg`]). The text
//! comes from the installed system's handoff ([`crate::handoff`]), which bounds it; the
//! host no longer opens the installed disks' filesystems to find it.

mod grub_cfg;

pub use grub_cfg::parse_grub_cfg;
