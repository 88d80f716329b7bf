//! Turning a guest descriptor chain into a checked block request, and executing it.
//!
//! Everything in the chain is hostile until checked: descriptor addresses must lie inside
//! guest memory, lengths must not overflow, device-readable parts must precede
//! device-writable ones, and data lengths must be whole sectors inside the disk. The layout
//! is taken framing-agnostic (virtio 1.2, 2.6.4): the header is the first 16 readable bytes,
//! the status the last writable byte, whatever the descriptor boundaries.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use std::mem::{offset_of, size_of};

use smallvec::SmallVec;
use virtio_bindings::virtio_blk::{
    self as blk, virtio_blk_discard_write_zeroes, virtio_blk_outhdr,
};
use virtio_queue::DescriptorChain;
use virtio_queue::desc::split::Descriptor;
use vm_memory::endian::{Le32, Le64};
use vm_memory::{Address, ByteValued, GuestAddress, GuestMemoryBackend, VolatileSlice};

use super::config::{DiskImage, MAX_SERIAL_LEN, SECTOR_SIZE};
use crate::virtio::GuestMemoryMmap;

pub use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};

/// A request status as the one byte the device writes (the header gives them as `u32`).
const fn status_byte(status: u32) -> u8 {
    assert!(status <= u8::MAX as u32);
    status as u8
}
pub const VIRTIO_BLK_S_OK: u8 = status_byte(blk::VIRTIO_BLK_S_OK);
pub const VIRTIO_BLK_S_IOERR: u8 = status_byte(blk::VIRTIO_BLK_S_IOERR);
pub const VIRTIO_BLK_S_UNSUPP: u8 = status_byte(blk::VIRTIO_BLK_S_UNSUPP);

/// Most discard/write-zeroes segments one request may carry (advertised in config space).
pub const MAX_DISCARD_SEGMENTS: u32 = 16;

/// `struct virtio_blk_outhdr`: the first 16 device-readable bytes of every request.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct RequestHeader {
    kind: Le32,
    ioprio: Le32,
    sector: Le64,
}

/// `struct virtio_blk_discard_write_zeroes`: one segment of a discard or write-zeroes
/// request.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Segment {
    sector: Le64,
    num_sectors: Le32,
    flags: Le32,
}

// SAFETY: both are `repr(C)` structs of vm-memory's `repr(transparent)` little-endian
// integers, naturally aligned and without padding (their sizes equal the sums of their
// fields, checked below), so any bytes are a valid value.
unsafe impl ByteValued for RequestHeader {}
// SAFETY: as for `RequestHeader`.
unsafe impl ByteValued for Segment {}

const _: () = {
    assert!(size_of::<RequestHeader>() == size_of::<virtio_blk_outhdr>());
    assert!(size_of::<RequestHeader>() == 4 + 4 + 8);
    assert!(offset_of!(RequestHeader, kind) == offset_of!(virtio_blk_outhdr, type_));
    assert!(offset_of!(RequestHeader, ioprio) == offset_of!(virtio_blk_outhdr, ioprio));
    assert!(offset_of!(RequestHeader, sector) == offset_of!(virtio_blk_outhdr, sector));
    assert!(size_of::<Segment>() == size_of::<virtio_blk_discard_write_zeroes>());
    assert!(size_of::<Segment>() == 8 + 4 + 4);
    assert!(offset_of!(Segment, sector) == offset_of!(virtio_blk_discard_write_zeroes, sector));
    assert!(
        offset_of!(Segment, num_sectors)
            == offset_of!(virtio_blk_discard_write_zeroes, num_sectors)
    );
    assert!(offset_of!(Segment, flags) == offset_of!(virtio_blk_discard_write_zeroes, flags));
};

const HEADER_LEN: usize = size_of::<RequestHeader>();
const SEGMENT_LEN: usize = size_of::<Segment>();

type Slice<'a> = VolatileSlice<'a, ()>;
/// Lists of guest buffers; Linux sends one data descriptor per page or segment, so a few
/// inline entries avoid heap allocations on the hot path.
pub type Slices<'a> = SmallVec<[Slice<'a>; 4]>;

/// Why a chain could not be turned into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("chain has no device-writable status byte")]
    NoStatus,
    #[error("descriptor outside guest memory")]
    BadAddress,
    #[error("descriptor lengths overflow")]
    Overflow,
    #[error("device-readable descriptor after a device-writable one")]
    WrongOrder,
    #[error("header shorter than 16 bytes")]
    ShortHeader,
}

/// A parsed request whose memory has been checked; `status` is where the result goes.
pub struct Request<'a> {
    pub kind: u32,
    pub sector: u64,
    /// Device-readable bytes after the header (write data, discard segments).
    pub readable: Slices<'a>,
    pub readable_len: u64,
    /// Device-writable bytes before the status byte (read data, GET_ID buffer).
    pub writable: Slices<'a>,
    pub writable_len: u64,
    pub status: Slice<'a>,
}

/// Outcome of a parse: a request, or an error plus the status byte if one could be found so
/// the guest still gets IOERR for a malformed request it can identify.
// Returned by value once per request; boxing the large variant would put a heap
// allocation on the hot path for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    Ok(Request<'a>),
    Bad(ParseError, Option<Slice<'a>>),
}

fn slices_of<'a>(
    mem: &'a GuestMemoryMmap,
    addr: GuestAddress,
    len: u64,
    out: &mut Slices<'a>,
) -> Result<(), ParseError> {
    if len == 0 {
        return Ok(());
    }
    let len = usize::try_from(len).map_err(|_| ParseError::Overflow)?;
    // The end must not wrap: get_slices checks each piece lies in a region.
    addr.checked_add(len as u64).ok_or(ParseError::BadAddress)?;
    for s in GuestMemoryBackend::get_slices(mem, addr, len) {
        out.push(s.map_err(|_| ParseError::BadAddress)?);
    }
    Ok(())
}

/// Copies up to `buf.len()` bytes out of `slices` (gather).
fn gather(slices: &[Slice<'_>], buf: &mut [u8]) -> usize {
    let mut done = 0;
    for s in slices {
        if done == buf.len() {
            break;
        }
        done += s.copy_to(&mut buf[done..]);
    }
    done
}

/// Drops the first `n` bytes of `slices`.
fn skip_front<'a>(slices: Slices<'a>, mut n: usize) -> Slices<'a> {
    let mut out = Slices::new();
    for s in slices {
        if n >= s.len() {
            n -= s.len();
            continue;
        }
        // offset() cannot fail: n < s.len().
        out.push(s.offset(n).expect("offset inside slice"));
        n = 0;
    }
    out
}

/// Parses one chain. Never panics on guest input; the chain iterator itself bounds the walk
/// (loops end after queue-size descriptors).
pub fn parse<'a>(
    mem: &'a GuestMemoryMmap,
    chain: DescriptorChain<&'a GuestMemoryMmap>,
) -> Parsed<'a> {
    let descs: Vec<Descriptor> = chain.collect();

    // The status byte is the last byte of the last descriptor, which must be writable.
    let Some(last) = descs.last().filter(|d| d.is_write_only() && d.len() > 0) else {
        return Parsed::Bad(ParseError::NoStatus, None);
    };
    let status_addr = match last.addr().checked_add(u64::from(last.len()) - 1) {
        Some(a) => a,
        None => return Parsed::Bad(ParseError::NoStatus, None),
    };
    let status = match mem.get_slice(status_addr, 1) {
        Ok(s) => s,
        Err(_) => return Parsed::Bad(ParseError::NoStatus, None),
    };
    let bad = |e| Parsed::Bad(e, Some(status));

    let mut readable = Slices::new();
    let mut writable = Slices::new();
    let (mut rlen, mut wlen) = (0u64, 0u64);
    let n = descs.len();
    let mut seen_writable = false;
    for (i, d) in descs.iter().enumerate() {
        let mut len = u64::from(d.len());
        if i == n - 1 {
            len -= 1; // the status byte
        }
        if d.is_write_only() {
            seen_writable = true;
            wlen = match wlen.checked_add(len) {
                Some(v) => v,
                None => return bad(ParseError::Overflow),
            };
            if let Err(e) = slices_of(mem, d.addr(), len, &mut writable) {
                return bad(e);
            }
        } else {
            if seen_writable {
                return bad(ParseError::WrongOrder);
            }
            rlen = match rlen.checked_add(len) {
                Some(v) => v,
                None => return bad(ParseError::Overflow),
            };
            if let Err(e) = slices_of(mem, d.addr(), len, &mut readable) {
                return bad(e);
            }
        }
    }

    let mut header = RequestHeader::default();
    if rlen < HEADER_LEN as u64 || gather(&readable, header.as_mut_slice()) != HEADER_LEN {
        return bad(ParseError::ShortHeader);
    }
    Parsed::Ok(Request {
        kind: header.kind.into(),
        sector: header.sector.into(),
        readable: skip_front(readable, HEADER_LEN),
        readable_len: rlen - HEADER_LEN as u64,
        writable,
        writable_len: wlen,
        status,
    })
}

/// Result of executing a request: the status for the guest and how many bytes (excluding the
/// status byte) the device wrote into guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u8,
    pub written: u32,
}

impl Outcome {
    fn status(status: u8) -> Self {
        Self { status, written: 0 }
    }
}

/// Byte range `[sector*512, +len)` if it is inside the disk.
fn disk_range(disk: &DiskImage, sector: u64, len: u64) -> Option<u64> {
    let start = sector.checked_mul(SECTOR_SIZE)?;
    let end = start.checked_add(len)?;
    (end <= disk.capacity).then_some(start)
}

/// preadv/pwritev the whole of `slices` at `offset`, resuming after short transfers.
fn transfer(file: &File, slices: &[Slice<'_>], mut offset: u64, write: bool) -> io::Result<()> {
    let mut iovs: SmallVec<[libc::iovec; 4]> = slices
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| libc::iovec {
            iov_base: s.ptr_guard_mut().as_ptr().cast(),
            iov_len: s.len(),
        })
        .collect();
    let mut first = 0;
    while first < iovs.len() {
        let batch = &iovs[first..iovs.len().min(first + 1024)];
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset"))?;
        // SAFETY: every iovec points into a guest memory mapping that outlives this call
        // (`slices` borrows it) and was bounds-checked when the request was parsed.
        let r = unsafe {
            if batch.len() == 1 {
                // The common single-buffer case: plain pread/pwrite skip the iovec copy-in.
                if write {
                    libc::pwrite(file.as_raw_fd(), batch[0].iov_base, batch[0].iov_len, off)
                } else {
                    libc::pread(file.as_raw_fd(), batch[0].iov_base, batch[0].iov_len, off)
                }
            } else if write {
                libc::pwritev(file.as_raw_fd(), batch.as_ptr(), batch.len() as i32, off)
            } else {
                libc::preadv(file.as_raw_fd(), batch.as_ptr(), batch.len() as i32, off)
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "image shorter than its capacity",
            ));
        }
        let mut n = r as usize;
        offset += n as u64;
        while n > 0 && first < iovs.len() {
            let iov = &mut iovs[first];
            if n >= iov.iov_len {
                n -= iov.iov_len;
                first += 1;
            } else {
                iov.iov_base = iov.iov_base.wrapping_byte_add(n);
                iov.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

fn fallocate(file: &File, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an owned fd.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `[offset, +len)` read as zeros: punch a hole (stays sparse), else write zeros.
fn zero_range(file: &File, offset: u64, len: u64) -> io::Result<()> {
    match fallocate(
        file,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            use std::os::unix::fs::FileExt;
            let zeros = vec![0u8; 1 << 20];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn log_io_error(disk: &DiskImage, what: &str, e: &io::Error) {
    tracing::warn!("virtio-blk {}: {what} failed: {e}", disk.path.display());
}

/// Executes a parsed request against the disk. Guest mistakes become IOERR/UNSUPP, never a
/// panic; host I/O errors become IOERR and are logged.
pub fn execute(disk: &DiskImage, req: &Request<'_>) -> Outcome {
    match req.kind {
        VIRTIO_BLK_T_IN => {
            // Data must be device-writable (a readable data buffer is the wrong direction)
            // and whole sectors inside the disk.
            if req.readable_len != 0 || !req.writable_len.is_multiple_of(SECTOR_SIZE) {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            let Some(off) = disk_range(disk, req.sector, req.writable_len) else {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            };
            match transfer(&disk.file, &req.writable, off, false) {
                Ok(()) => Outcome {
                    status: VIRTIO_BLK_S_OK,
                    written: req.writable_len as u32,
                },
                Err(e) => {
                    log_io_error(disk, "read", &e);
                    Outcome::status(VIRTIO_BLK_S_IOERR)
                }
            }
        }
        VIRTIO_BLK_T_OUT => {
            if disk.read_only
                || req.writable_len != 0
                || !req.readable_len.is_multiple_of(SECTOR_SIZE)
            {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            let Some(off) = disk_range(disk, req.sector, req.readable_len) else {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            };
            match transfer(&disk.file, &req.readable, off, true) {
                Ok(()) => Outcome::status(VIRTIO_BLK_S_OK),
                Err(e) => {
                    log_io_error(disk, "write", &e);
                    Outcome::status(VIRTIO_BLK_S_IOERR)
                }
            }
        }
        VIRTIO_BLK_T_FLUSH => {
            if disk.read_only {
                return Outcome::status(VIRTIO_BLK_S_OK);
            }
            match disk.file.sync_data() {
                Ok(()) => Outcome::status(VIRTIO_BLK_S_OK),
                Err(e) => {
                    log_io_error(disk, "flush", &e);
                    Outcome::status(VIRTIO_BLK_S_IOERR)
                }
            }
        }
        VIRTIO_BLK_T_GET_ID => {
            let n = req.writable_len.min(MAX_SERIAL_LEN as u64) as usize;
            let mut done = 0;
            for s in &req.writable {
                if done == n {
                    break;
                }
                let k = s.len().min(n - done);
                s.subslice(0, k)
                    .expect("k <= len")
                    .copy_from(&disk.serial[done..done + k]);
                done += k;
            }
            Outcome {
                status: VIRTIO_BLK_S_OK,
                written: n as u32,
            }
        }
        VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
            if disk.read_only || req.writable_len != 0 {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            let n = req.readable_len / SEGMENT_LEN as u64;
            if !req.readable_len.is_multiple_of(SEGMENT_LEN as u64)
                || n == 0
                || n > u64::from(MAX_DISCARD_SEGMENTS)
            {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            let mut raw = vec![0u8; req.readable_len as usize];
            if gather(&req.readable, &mut raw) != raw.len() {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            // Check every segment before touching the disk, so a bad one changes nothing.
            let mut ranges = Vec::with_capacity(n as usize);
            for bytes in raw.chunks_exact(SEGMENT_LEN) {
                let mut seg = Segment::default();
                seg.as_mut_slice().copy_from_slice(bytes);
                let sector = u64::from(seg.sector);
                let sectors = u32::from(seg.num_sectors);
                let flags = u32::from(seg.flags);
                let allowed = if req.kind == VIRTIO_BLK_T_WRITE_ZEROES {
                    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
                } else {
                    0
                };
                if flags & !allowed != 0 {
                    return Outcome::status(VIRTIO_BLK_S_UNSUPP);
                }
                let len = u64::from(sectors) * SECTOR_SIZE;
                let Some(off) = disk_range(disk, sector, len) else {
                    return Outcome::status(VIRTIO_BLK_S_IOERR);
                };
                ranges.push((off, len));
            }
            for (off, len) in ranges {
                // A discarded range of a raw sparse file reads back as zeros, so both
                // requests are a hole punch; write-zeroes falls back to writing zeros.
                let r = if req.kind == VIRTIO_BLK_T_DISCARD {
                    fallocate(
                        &disk.file,
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        off,
                        len,
                    )
                    .or_else(|e| {
                        // Discard is advisory; a filesystem without hole punching is fine.
                        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                } else {
                    zero_range(&disk.file, off, len)
                };
                if let Err(e) = r {
                    log_io_error(disk, "discard/write-zeroes", &e);
                    return Outcome::status(VIRTIO_BLK_S_IOERR);
                }
            }
            Outcome::status(VIRTIO_BLK_S_OK)
        }
        _ => Outcome::status(VIRTIO_BLK_S_UNSUPP),
    }
}
