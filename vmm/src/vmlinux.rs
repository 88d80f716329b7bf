//! Extracting the uncompressed kernel (vmlinux, an ELF) from a bzImage on the host.
//!
//! A bzImage carries its kernel compressed, plus a decompressor that runs in the guest.
//! Decompressing on the host instead and entering the ELF through PVH skips that step:
//! a few hundred milliseconds of guest time on hardware, and over a minute where KVM
//! emulates the guest. Distribution kernels are built with CONFIG_PVH, so their vmlinux
//! carries the PVH entry note.

use std::io::Read;

/// Linux boot protocol fields used here (offsets into the image).
const SETUP_SECTS: usize = 0x1f1;
const VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// The decompressed kernel is at most this big; a bound against hostile images.
const MAX_VMLINUX: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("boot protocol {0:#x} predates the payload fields (needs 2.08)")]
    OldProtocol(u16),
    #[error("the payload lies outside the file")]
    PayloadBounds,
    #[error("unknown payload compression (magic {0})")]
    UnknownCompression(String),
    #[error("{format} payload does not decompress: {detail}")]
    Decompress {
        format: &'static str,
        detail: String,
    },
    #[error("the decompressed payload is not an ELF")]
    NotElf,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// Returns the vmlinux ELF inside `bzimage`.
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>, ExtractError> {
    if bzimage.len() < 0x250 {
        return Err(ExtractError::PayloadBounds);
    }
    let version = u16_at(bzimage, VERSION);
    if version < 0x0208 {
        return Err(ExtractError::OldProtocol(version));
    }
    let setup = (usize::from(bzimage[SETUP_SECTS]).max(4) + 1) * 512;
    let start = setup
        .checked_add(u32_at(bzimage, PAYLOAD_OFFSET) as usize)
        .ok_or(ExtractError::PayloadBounds)?;
    let end = start
        .checked_add(u32_at(bzimage, PAYLOAD_LENGTH) as usize)
        .filter(|e| *e <= bzimage.len())
        .ok_or(ExtractError::PayloadBounds)?;
    let payload = &bzimage[start..end];
    let elf = decompress(payload)?;
    if !elf.starts_with(b"\x7fELF") {
        return Err(ExtractError::NotElf);
    }
    Ok(elf)
}

fn decompress(p: &[u8]) -> Result<Vec<u8>, ExtractError> {
    let err =
        |format: &'static str| move |e: String| ExtractError::Decompress { format, detail: e };
    let mut out = Vec::new();
    if p.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        lz4_legacy(p, &mut out).map_err(err("lz4"))?;
    } else if p.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(p)
            .take(MAX_VMLINUX as u64)
            .read_to_end(&mut out)
            .map_err(|e| err("gzip")(e.to_string()))?;
    } else if p.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut d =
            ruzstd::decoding::StreamingDecoder::new(p).map_err(|e| err("zstd")(e.to_string()))?;
        (&mut d)
            .take(MAX_VMLINUX as u64)
            .read_to_end(&mut out)
            .map_err(|e| err("zstd")(e.to_string()))?;
    } else if p.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(p), &mut out)
            .map_err(|e| err("xz")(e.to_string()))?;
    } else {
        let magic: String = p.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(ExtractError::UnknownCompression(magic));
    }
    Ok(out)
}

/// The legacy LZ4 frame Linux uses: a magic, then blocks of `[u32 size][lz4 block]`, each
/// decompressing to at most 8 MiB; the kernel build appends the total size as 4 bytes.
fn lz4_legacy(p: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    const MAGIC: u32 = 0x184c_2102;
    const BLOCK_MAX: usize = 8 << 20;
    let mut rest = &p[4..];
    while rest.len() >= 4 {
        let size = u32_at(rest, 0) as usize;
        rest = &rest[4..];
        if size as u32 == MAGIC {
            continue; // concatenated frames
        }
        if size > rest.len() {
            // The trailing 4-byte length appended by the kernel build ends the stream.
            break;
        }
        if out.len() + BLOCK_MAX > MAX_VMLINUX {
            return Err("decompressed size exceeds 1 GiB".into());
        }
        let at = out.len();
        out.resize(at + BLOCK_MAX, 0);
        let n = lz4_flex::block::decompress_into(&rest[..size], &mut out[at..])
            .map_err(|e| e.to_string())?;
        out.truncate(at + n);
        rest = &rest[size..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bzimage_with(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img[SETUP_SECTS] = 4;
        img[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        img[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0u32.to_le_bytes());
        img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.extend_from_slice(payload);
        img
    }

    #[test]
    fn gzip_payload_round_trips() {
        use std::io::Write;
        let elf = b"\x7fELF and the rest of a kernel".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let img = bzimage_with(&gz.finish().unwrap());
        assert_eq!(extract(&img).unwrap(), elf);
    }

    #[test]
    fn lz4_legacy_payload_round_trips() {
        let elf = b"\x7fELF lz4 legacy frame".repeat(1000);
        let block = lz4_flex::block::compress(&elf);
        let mut p = 0x184c_2102u32.to_le_bytes().to_vec();
        p.extend_from_slice(&(block.len() as u32).to_le_bytes());
        p.extend_from_slice(&block);
        p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(extract(&bzimage_with(&p)).unwrap(), elf);
    }

    #[test]
    fn hostile_images_are_refused() {
        assert!(matches!(
            extract(&[0u8; 16]),
            Err(ExtractError::PayloadBounds)
        ));
        let mut img = bzimage_with(b"????");
        assert!(matches!(
            extract(&img),
            Err(ExtractError::UnknownCompression(_))
        ));
        img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(extract(&img), Err(ExtractError::PayloadBounds)));
        let corrupt = [
            0x02, 0x21, 0x4c, 0x18, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(matches!(
            extract(&bzimage_with(&corrupt)),
            Err(ExtractError::Decompress { .. })
        ));
    }
}
