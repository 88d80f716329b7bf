//! Reading the kernel's own log (its console output, `[  12.345678] text` with
//! CONFIG_PRINTK_TIME): what it says about devices, and when (guest seconds).

use std::collections::BTreeSet;

use crate::disks::Disk;

/// One console line with its printk timestamp.
#[derive(Clone, Debug)]
pub struct Line {
    pub time: f64,
    pub text: String,
}

pub struct KernelLog {
    pub lines: Vec<Line>,
    pub raw: String,
}

impl KernelLog {
    pub fn parse(raw: &str) -> KernelLog {
        let lines = raw
            .lines()
            .filter_map(|l| {
                let l = l.trim_end_matches('\r');
                let rest = l.trim_start().strip_prefix('[')?;
                let (stamp, text) = rest.split_once(']')?;
                let time = stamp.trim().parse().ok()?;
                Some(Line {
                    time,
                    text: text.strip_prefix(' ').unwrap_or(text).to_string(),
                })
            })
            .collect();
        KernelLog {
            lines,
            raw: raw.to_string(),
        }
    }

    pub fn first(&self, needle: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.text.contains(needle))
    }

    pub fn all<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| l.text.contains(needle))
    }

    /// The last `n` lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.raw.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Names of ACPI LNRO0005 (virtio-mmio) devices the kernel created, and of those the
    /// virtio-mmio driver bound (CONFIG_DEBUG_DRIVER's "device_add" and "driver_bound").
    pub fn lnro_devices(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let quoted = |text: &str, after: &str| -> Option<String> {
            let rest = &text[text.find(after)? + after.len()..];
            let name = rest.split('\'').next()?;
            name.starts_with("LNRO0005:").then(|| name.to_string())
        };
        let added = self
            .all("': device_add")
            .filter_map(|l| quoted(&l.text, "device: '"))
            .collect();
        let bound = self
            .all("driver: 'virtio-mmio': driver_bound: bound to device '")
            .filter_map(|l| quoted(&l.text, "bound to device '"))
            .collect();
        (added, bound)
    }

    /// The kernel's name for `disk` (vda, ...) and the time of its line, found by its
    /// capacity and logical block size in virtio_blk's
    /// "[vda] 131072 512-byte logical blocks (67.1 MB/64.0 MiB)".
    pub fn disk_name(&self, disk: &Disk) -> Option<(String, f64)> {
        let want = format!(
            "] {} {}-byte logical blocks",
            disk.blocks(),
            disk.block_size
        );
        self.all("virtio_blk").find_map(|l| {
            let at = l.text.find(&want)?;
            let open = l.text[..at].rfind('[')?;
            Some((l.text[open + 1..at].to_string(), l.time))
        })
    }

    /// The partitions the kernel found on `name` (" vda: vda1 vda2"), with the time.
    pub fn partitions(&self, name: &str) -> Option<(Vec<String>, f64)> {
        let head = format!("{name}:");
        self.lines.iter().find_map(|l| {
            let text = l.text.trim_start();
            let rest = text.strip_prefix(&head)?;
            let parts: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            parts
                .iter()
                .all(|p| p.starts_with(name))
                .then_some((parts, l.time))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.000000] Linux version 6.1.192 (root@x) #1 SMP\r
[   45.372317] device: 'LNRO0005:00': device_add\r
[   45.443499] device: 'LNRO0005:01': device_add\r
[   45.500000] device: 'PNP0501:00': device_add\r
[   62.719052] driver: 'virtio-mmio': driver_bound: bound to device 'LNRO0005:00'\r
[   62.751168] virtio_blk virtio0: [vda] 131072 512-byte logical blocks (67.1 MB/64.0 MiB)\r
[   63.430385]  vda: vda1 vda2\r
[   63.9] not a disk: vdb: nothing\r
garbage without a stamp\r
";

    #[test]
    fn lines_parse_with_their_timestamps() {
        let log = KernelLog::parse(LOG);
        assert_eq!(log.lines.len(), 8);
        assert_eq!(log.first("Linux version").unwrap().time, 0.0);
        assert_eq!(log.first("vda: vda1").unwrap().time, 63.430385);
        let (added, bound) = log.lnro_devices();
        assert_eq!(
            added.into_iter().collect::<Vec<_>>(),
            ["LNRO0005:00", "LNRO0005:01"]
        );
        assert_eq!(bound.into_iter().collect::<Vec<_>>(), ["LNRO0005:00"]);
        let disk = Disk {
            name: "t",
            path: "/x".into(),
            size: 64 << 20,
            block_size: 512,
            read_only: false,
            partitions: vec![],
        };
        assert_eq!(log.disk_name(&disk), Some(("vda".to_string(), 62.751168)));
        let other = Disk {
            block_size: 4096,
            ..disk
        };
        assert_eq!(log.disk_name(&other), None);
        assert_eq!(
            log.partitions("vda"),
            Some((vec!["vda1".to_string(), "vda2".to_string()], 63.430385))
        );
        assert_eq!(log.partitions("vdb"), None);
    }
}
