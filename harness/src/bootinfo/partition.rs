//! The partition tables of an installed disk, read on the host: MBR (the four primary
//! entries and the chain of logical partitions in an extended one) and GPT (primary
//! header, or the backup at the last sector when the primary is damaged).
//!
//! The disk was written by the guest, so every count, size and link in it is bounded
//! before use: at most [`MAX_LOGICAL_PARTITIONS`] links of an EBR chain, each strictly
//! after the one before (no loops); a GPT entry array of at most [`MAX_GPT_ARRAY_BYTES`],
//! read in entry-sized pieces; all offset arithmetic checked. (The `gpt` and `mbrman`
//! crates assert on and allocate from these fields, so they are not used for guest disks.)

use std::io::{Read, Seek, SeekFrom};

/// A byte range of a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

/// Most logical partitions followed in an MBR extended partition (Linux numbers them
/// from 5; real disks have a handful).
pub const MAX_LOGICAL_PARTITIONS: usize = 128;
/// Largest GPT partition entry array read: 8192 entries of 128 bytes (the usual is 128).
pub const MAX_GPT_ARRAY_BYTES: u64 = 1 << 20;
/// Largest GPT entry: the specification allows 128 * 2^n; nothing uses more than 128.
const MAX_GPT_ENTRY_BYTES: u32 = 4096;

/// What is wrong with a disk's partition table.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot read {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("logical sector size {0} is neither 512 nor 4096")]
    SectorSize(u32),
    #[error("GPT: {0}")]
    Gpt(String),
    #[error("MBR: {0}")]
    Mbr(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> PartitionError {
    move |source| PartitionError::Io { what, source }
}

fn read_at<R: Read + Seek>(
    disk: &mut R,
    offset: u64,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), PartitionError> {
    disk.seek(SeekFrom::Start(offset)).map_err(io(what))?;
    disk.read_exact(buf).map_err(io(what))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// One MBR partition entry (16 bytes).
#[derive(Debug, Clone, Copy)]
struct MbrEntry {
    sys: u8,
    start: u32,
    sectors: u32,
}

impl MbrEntry {
    fn parse(sector: &[u8], i: usize) -> MbrEntry {
        let e = &sector[446 + i * 16..446 + (i + 1) * 16];
        MbrEntry {
            sys: e[4],
            start: u32_at(e, 8),
            sectors: u32_at(e, 12),
        }
    }
    fn is_used(&self) -> bool {
        self.sys != 0 && self.sectors != 0
    }
    fn is_extended(&self) -> bool {
        matches!(self.sys, 0x05 | 0x0f | 0x85)
    }
}

fn has_boot_signature(sector: &[u8]) -> bool {
    sector[510..512] == [0x55, 0xAA]
}

/// The partitions of a disk of `size` bytes with `sector`-byte logical sectors (512 or
/// 4096), in table order. A disk without a partition table is one partition: itself.
pub fn read_partitions<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    sector: u32,
) -> Result<Vec<Extent>, PartitionError> {
    if sector != 512 && sector != 4096 {
        return Err(PartitionError::SectorSize(sector));
    }
    let mut mbr = [0u8; 512];
    read_at(disk, 0, &mut mbr, "the first sector")?;
    if !has_boot_signature(&mbr) {
        return Ok(vec![Extent {
            start: 0,
            len: size,
        }]);
    }
    // A protective MBR (type 0xEE) means GPT.
    if (0..4).any(|i| MbrEntry::parse(&mbr, i).sys == 0xEE) {
        return read_gpt(disk, size, sector);
    }
    read_mbr(disk, &mbr, sector)
}

fn read_mbr<R: Read + Seek>(
    disk: &mut R,
    mbr: &[u8],
    sector: u32,
) -> Result<Vec<Extent>, PartitionError> {
    let bs = u64::from(sector);
    let extent = |base: u64, e: &MbrEntry| Extent {
        start: (base + u64::from(e.start)) * bs,
        len: u64::from(e.sectors) * bs,
    };
    let mut out = Vec::new();
    let mut extended = None;
    for i in 0..4 {
        let e = MbrEntry::parse(mbr, i);
        if !e.is_used() {
            continue;
        }
        if e.is_extended() {
            // Only one extended partition is meaningful; Linux too follows the first.
            extended.get_or_insert(e);
        } else {
            out.push(extent(0, &e));
        }
    }
    let Some(ext) = extended else {
        return Ok(out);
    };
    // The chain of EBRs: entry 0 is a logical partition relative to its EBR, entry 1
    // the next EBR relative to the extended partition's start.
    let ext_start = u64::from(ext.start);
    let ext_end = ext_start + u64::from(ext.sectors);
    let mut rel: u64 = 0;
    let mut ebr = [0u8; 512];
    for _ in 0..MAX_LOGICAL_PARTITIONS {
        let lba = ext_start + rel;
        if lba >= ext_end {
            return Err(PartitionError::Mbr(format!(
                "an extended boot record at sector {lba} lies outside its extended partition"
            )));
        }
        read_at(disk, lba * bs, &mut ebr, "an extended boot record")?;
        if !has_boot_signature(&ebr) {
            // An empty extended partition need not hold an EBR; a broken link ends the
            // chain, as it does for Linux.
            return Ok(out);
        }
        let logical = MbrEntry::parse(&ebr, 0);
        if logical.is_used() {
            out.push(extent(lba, &logical));
        }
        let next = MbrEntry::parse(&ebr, 1);
        if !next.is_used() {
            return Ok(out);
        }
        let next_rel = u64::from(next.start);
        if next_rel <= rel {
            return Err(PartitionError::Mbr(format!(
                "the chain of logical partitions goes back (sector {next_rel} after {rel} in the extended partition)"
            )));
        }
        rel = next_rel;
    }
    Err(PartitionError::Mbr(format!(
        "more than {MAX_LOGICAL_PARTITIONS} logical partitions"
    )))
}

/// The fields of a GPT header this reader uses.
struct GptHeader {
    entries_lba: u64,
    entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// Reads and checks the GPT header at `lba`.
fn gpt_header<R: Read + Seek>(disk: &mut R, lba: u64, sector: u32) -> Result<GptHeader, String> {
    let offset = lba
        .checked_mul(u64::from(sector))
        .ok_or("header offset overflows")?;
    let mut h = vec![0u8; sector as usize];
    read_at(disk, offset, &mut h, "a GPT header").map_err(|e| e.to_string())?;
    if &h[..8] != b"EFI PART" {
        return Err(format!("no header signature at sector {lba}"));
    }
    let header_size = u32_at(&h, 12);
    if !(92..=sector).contains(&header_size) {
        return Err(format!("header size {header_size} at sector {lba}"));
    }
    let stored_crc = u32_at(&h, 16);
    h[16..20].fill(0);
    if crc32fast::hash(&h[..header_size as usize]) != stored_crc {
        return Err(format!("header checksum mismatch at sector {lba}"));
    }
    if u64_at(&h, 24) != lba {
        return Err(format!(
            "header at sector {lba} says it is at {}",
            u64_at(&h, 24)
        ));
    }
    let header = GptHeader {
        entries_lba: u64_at(&h, 72),
        entries: u32_at(&h, 80),
        entry_size: u32_at(&h, 84),
        entries_crc: u32_at(&h, 88),
    };
    if header.entry_size < 128
        || !header.entry_size.is_multiple_of(128)
        || header.entry_size > MAX_GPT_ENTRY_BYTES
    {
        return Err(format!("partition entry size {}", header.entry_size));
    }
    let array = u64::from(header.entries) * u64::from(header.entry_size);
    if array > MAX_GPT_ARRAY_BYTES {
        return Err(format!(
            "partition entry array of {array} bytes ({} entries) is over the {MAX_GPT_ARRAY_BYTES}-byte limit",
            header.entries
        ));
    }
    Ok(header)
}

/// Reads the entry array a header points to, one entry at a time, checking its CRC.
fn gpt_entries<R: Read + Seek>(
    disk: &mut R,
    h: &GptHeader,
    sector: u32,
) -> Result<Vec<Extent>, String> {
    let bs = u64::from(sector);
    let offset = h
        .entries_lba
        .checked_mul(bs)
        .ok_or("entry array offset overflows")?;
    disk.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("cannot read the partition entries: {e}"))?;
    let mut crc = crc32fast::Hasher::new();
    let mut entry = vec![0u8; h.entry_size as usize];
    let mut out = Vec::new();
    for _ in 0..h.entries {
        disk.read_exact(&mut entry)
            .map_err(|e| format!("cannot read the partition entries: {e}"))?;
        crc.update(&entry);
        if entry[..16].iter().all(|b| *b == 0) {
            continue; // unused entry
        }
        let (first, last) = (u64_at(&entry, 32), u64_at(&entry, 40));
        if last < first {
            continue;
        }
        let start = first.checked_mul(bs);
        let len = (last - first)
            .checked_add(1)
            .and_then(|n| n.checked_mul(bs));
        match (start, len) {
            (Some(start), Some(len)) => out.push(Extent { start, len }),
            _ => return Err(format!("partition at sector {first} overflows")),
        }
    }
    if crc.finalize() != h.entries_crc {
        return Err("partition entry array checksum mismatch".into());
    }
    Ok(out)
}

fn read_gpt<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    sector: u32,
) -> Result<Vec<Extent>, PartitionError> {
    let primary = gpt_header(disk, 1, sector).and_then(|h| gpt_entries(disk, &h, sector));
    let primary_err = match primary {
        Ok(parts) => return Ok(parts),
        Err(e) => e,
    };
    let last = (size / u64::from(sector)).saturating_sub(1);
    match gpt_header(disk, last, sector).and_then(|h| gpt_entries(disk, &h, sector)) {
        Ok(parts) => Ok(parts),
        Err(backup) => Err(PartitionError::Gpt(format!(
            "primary: {primary_err}; backup: {backup}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn mbr_entry(sector: &mut [u8], i: usize, sys: u8, start: u32, sectors: u32) {
        let e = &mut sector[446 + i * 16..446 + (i + 1) * 16];
        e[4] = sys;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
    }

    fn signed(sector: &mut [u8]) {
        sector[510] = 0x55;
        sector[511] = 0xAA;
    }

    fn parts(disk: &[u8], bs: u32) -> Result<Vec<Extent>, PartitionError> {
        read_partitions(&mut Cursor::new(disk), disk.len() as u64, bs)
    }

    #[test]
    fn no_table_is_the_whole_disk() {
        let disk = vec![0u8; 4096];
        assert_eq!(
            parts(&disk, 512).unwrap(),
            vec![Extent {
                start: 0,
                len: 4096
            }]
        );
        assert!(matches!(
            parts(&disk, 1024),
            Err(PartitionError::SectorSize(1024))
        ));
        assert!(matches!(
            parts(&[0u8; 100], 512),
            Err(PartitionError::Io { .. })
        ));
    }

    /// A table written by another implementation (mbrman) reads back the same.
    #[test]
    fn mbr_primary_and_logical_partitions() {
        let mut disk = vec![0u8; 64 << 10];
        {
            let mut c = Cursor::new(&mut disk[..]);
            let mut mbr = mbrman::MBR::new_from(&mut c, 512, [1, 2, 3, 4]).unwrap();
            for (i, (sys, start, n)) in [(0x83, 8, 8), (0x05, 20, 100)].into_iter().enumerate() {
                mbr[i + 1] = mbrman::MBRPartitionEntry {
                    boot: mbrman::BOOT_INACTIVE,
                    first_chs: mbrman::CHS::empty(),
                    sys,
                    last_chs: mbrman::CHS::empty(),
                    starting_lba: start,
                    sectors: n,
                };
            }
            mbr.align = 1;
            mbr.push(0x83, 22, 10).unwrap();
            mbr.push(0x83, 40, 20).unwrap();
            mbr.write_into(&mut c).unwrap();
        }
        let p = parts(&disk, 512).unwrap();
        let starts: Vec<u64> = p.iter().map(|e| e.start / 512).collect();
        // Each logical partition starts a sector after its EBR.
        assert_eq!(starts, vec![8, 23, 41], "{p:?}");
        assert_eq!(p[2].len, 19 * 512);
    }

    /// An EBR chain that points at itself, goes back, or leaves the extended partition
    /// is an error after a bounded number of reads; a long forward chain stops at the cap.
    #[test]
    fn ebr_chains_are_bounded() {
        let disk_with_chain = |links: &[(u32, u32)]| {
            // links[i] = (EBR sector relative to the extended partition, next EBR's).
            let mut disk = vec![0u8; 512 * 1100];
            mbr_entry(&mut disk[..512], 0, 0x05, 1, 1000);
            signed(&mut disk[..512]);
            for (rel, next) in links {
                let at = (1 + *rel as usize) * 512;
                let ebr = &mut disk[at..at + 512];
                mbr_entry(ebr, 0, 0x83, 1, 1);
                if *next != 0 {
                    mbr_entry(ebr, 1, 0x05, *next, 2);
                }
                signed(ebr);
            }
            disk
        };
        let e = parts(&disk_with_chain(&[(0, 0)]), 512).unwrap();
        assert_eq!(e.len(), 1);
        for chain in [vec![(0, 2), (2, 2)], vec![(0, 4), (4, 2), (2, 0)]] {
            let e = parts(&disk_with_chain(&chain), 512).unwrap_err();
            assert!(e.to_string().contains("goes back"), "{e}");
        }
        let e = parts(&disk_with_chain(&[(0, 5000)]), 512).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let long: Vec<(u32, u32)> = (0..200).map(|i| (i * 2, i * 2 + 2)).collect();
        let e = parts(&disk_with_chain(&long), 512).unwrap_err();
        assert!(e.to_string().contains("more than 128"), "{e}");
        // A 32-bit start near the top does not overflow.
        let mut disk = vec![0u8; 1024];
        mbr_entry(&mut disk[..512], 0, 0x83, u32::MAX, u32::MAX);
        signed(&mut disk[..512]);
        assert_eq!(
            parts(&disk, 4096).unwrap()[0].start,
            u64::from(u32::MAX) * 4096
        );
    }

    /// A GPT written by the `gpt` crate, then with the primary damaged (the backup is
    /// used), then with both damaged.
    #[test]
    fn gpt_primary_backup_and_damage() {
        let size = 4 << 20;
        let mut c = Cursor::new(vec![0u8; size]);
        let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(size / 512 - 1).unwrap());
        mbr.overwrite_lba0(&mut c).unwrap();
        let mut g = gpt::GptConfig::new()
            .writable(true)
            .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
            .create_from_device(c, None)
            .unwrap();
        g.add_partition("boot", 1 << 20, gpt::partition_types::LINUX_FS, 0, None)
            .unwrap();
        g.add_partition("root", 2 << 20, gpt::partition_types::LINUX_FS, 0, None)
            .unwrap();
        let mut disk = g.write().unwrap().into_inner();
        let want = parts(&disk, 512).unwrap();
        assert_eq!(want.len(), 2, "{want:?}");
        assert_eq!(want[0].len, 1 << 20);
        assert_eq!(want[1].len, 2 << 20);
        // Primary header damaged: the backup at the last sector gives the same.
        disk[512 + 8] ^= 0xff;
        assert_eq!(parts(&disk, 512).unwrap(), want);
        // Backup damaged too.
        disk[size - 512] ^= 0xff;
        let e = parts(&disk, 512).unwrap_err().to_string();
        assert!(e.contains("primary") && e.contains("backup"), "{e}");
    }

    /// A header claiming 2^32 - 1 entries (or a huge entry size) is refused before any
    /// allocation or read of the array.
    #[test]
    fn gpt_entry_array_is_capped() {
        let mut disk = vec![0u8; 64 << 10];
        mbr_entry(&mut disk[..512], 0, 0xEE, 1, u32::MAX);
        signed(&mut disk[..512]);
        for (entries, size, what) in [
            (u32::MAX, 128, "over the 1048576-byte limit"),
            (128, u32::MAX, "entry size"),
            (128, 100, "entry size"),
        ] {
            let h = &mut disk[512..1024];
            h[..8].copy_from_slice(b"EFI PART");
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&1u64.to_le_bytes());
            h[72..80].copy_from_slice(&2u64.to_le_bytes());
            h[80..84].copy_from_slice(&entries.to_le_bytes());
            h[84..88].copy_from_slice(&size.to_le_bytes());
            h[16..20].fill(0);
            let crc = crc32fast::hash(&h[..92]);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
            let e = parts(&disk, 512).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
