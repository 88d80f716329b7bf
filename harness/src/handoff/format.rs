//! The handoff disk's header (format version 1): pure bytes in, a checked list of
//! entries out. Written by `harness/installer/handoff.sh` in the install environment, so
//! nothing in it is trusted: the header is read from a fixed [`HEADER_LEN`] bytes, holds
//! at most [`MAX_ENTRIES`] entries, each entry's size is capped by its kind before anything
//! is read, every entry must lie inside the disk, and each path is checked before it is
//! used, even as a name.
//!
//! ```text
//! bytes 0..4096   vmtest-handoff 1
//!                 grub-cfg SIZE SHA256 PATH    (PATH: where it was in the target)
//!                 file SIZE SHA256 PATH        (PATH: as grub.cfg names it)
//!                 end
//!                 NUL padding
//! 1 MiB ...       each entry's bytes in header order, each at the next MiB boundary
//! ```

use super::HandoffError;

/// Bytes of the header at the start of the disk.
pub const HEADER_LEN: usize = 4096;
/// Where the first entry's data starts; every entry starts on such a boundary.
pub const DATA_ALIGN: u64 = 1 << 20;
/// The first line.
pub const MAGIC: &str = "vmtest-handoff";
/// The version this reader reads.
pub const VERSION: &str = "1";
/// Most entries (grub.cfg plus the kernels and initrds its menu entries name).
pub const MAX_ENTRIES: usize = 17;
/// Longest path an entry may name (Linux's PATH_MAX is 4096; /boot paths are short).
pub const MAX_PATH: usize = 255;
/// Largest grub.cfg. grub-mkconfig writes 5-30 KiB; a megabyte leaves room for many
/// kernels and custom entries.
pub const GRUB_CFG_CAP: u64 = 1 << 20;
/// Largest kernel or initrd. Distribution kernels are ~10 MiB and initrds 30-150 MiB
/// (with firmware); 512 MiB is well above any of them.
pub const FILE_CAP: u64 = 512 << 20;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The installed system's grub.cfg.
    GrubCfg,
    /// A kernel or initrd, named as grub.cfg names it.
    File,
}

impl Kind {
    fn cap(self) -> u64 {
        match self {
            Kind::GrubCfg => GRUB_CFG_CAP,
            Kind::File => FILE_CAP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::GrubCfg => "grub-cfg",
            Kind::File => "file",
        }
    }
}

/// One entry of the header, checked: its data lies inside the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// An absolute path of plain components (see [`check_path`]).
    pub path: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Where its data starts on the disk.
    pub offset: u64,
}

/// The checked header: exactly one grub.cfg, then files with distinct paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub entries: Vec<Entry>,
}

impl Header {
    pub fn grub_cfg(&self) -> &Entry {
        // parse() makes sure there is exactly one.
        self.entries
            .iter()
            .find(|e| e.kind == Kind::GrubCfg)
            .expect("a parsed header has a grub.cfg")
    }

    /// The file grub.cfg names `path`, if the handoff holds it.
    pub fn file(&self, path: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.kind == Kind::File && e.path == path)
    }

    /// The files' paths, for messages.
    pub fn file_paths(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.path.as_str())
            .collect()
    }
}

/// Checks a path from the header: absolute, at most [`MAX_PATH`] bytes, components of
/// letters, digits and `._+~@%:,=-` only, none of them empty, `.` or `..`. Such a path
/// names nothing outside grub's root, and is safe to show and to use as a key.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_PATH {
        return Err("longer than 255 bytes");
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("not absolute");
    };
    for c in rest.split('/') {
        if c.is_empty() {
            return Err("has an empty component (`//` or a trailing `/`)");
        }
        if c == "." || c == ".." {
            return Err("has a `.` or `..` component");
        }
        if !c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~@%:,=-".contains(&b))
        {
            return Err("has a character other than letters, digits and ._+~@%:,=-");
        }
    }
    Ok(())
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses the header: `bytes` are the disk's first [`HEADER_LEN`] bytes (fewer when the
/// disk is smaller), `disk_len` the disk's size.
pub fn parse(bytes: &[u8], disk_len: u64) -> Result<Header, HandoffError> {
    let bytes = &bytes[..bytes.len().min(HEADER_LEN)];
    if bytes.iter().all(|&b| b == 0) {
        return Err(HandoffError::Blank);
    }
    // The text ends at the first NUL; past it there must be nothing but padding.
    let text_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if bytes[text_len..].iter().any(|&b| b != 0) {
        return Err(HandoffError::Header(
            "bytes after the NUL padding began (not a header this harness wrote)".into(),
        ));
    }
    let text = std::str::from_utf8(&bytes[..text_len])
        .map_err(|_| HandoffError::Header("not ASCII text".into()))?;
    if !text.is_ascii() {
        return Err(HandoffError::Header("not ASCII text".into()));
    }
    // The last line's newline ends it; a header cut short ends without `end`.
    let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
    let first = lines.next().unwrap_or_default();
    match first.split_once(' ') {
        Some((MAGIC, VERSION)) => {}
        Some((MAGIC, v)) => {
            return Err(HandoffError::Header(format!(
                "format version {v:.20}; this harness reads version {VERSION}"
            )));
        }
        _ => {
            return Err(HandoffError::Header(format!(
                "it does not start with `{MAGIC} {VERSION}` (first line: {:?})",
                &first[..first.len().min(40)]
            )));
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut next = DATA_ALIGN;
    let mut ended = false;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if ended {
            if line.is_empty() {
                continue;
            }
            return Err(HandoffError::Line {
                line: n,
                why: "text after `end`".into(),
            });
        }
        if line == "end" {
            ended = true;
            continue;
        }
        let bad = |why: String| HandoffError::Line { line: n, why };
        let words: Vec<&str> = line.split(' ').collect();
        let [kind, size, sum, path] = words[..] else {
            return Err(bad(format!(
                "{} words where `KIND SIZE SHA256 PATH` has 4",
                words.len()
            )));
        };
        let kind = match kind {
            "grub-cfg" => Kind::GrubCfg,
            "file" => Kind::File,
            other => {
                return Err(bad(format!(
                    "kind {:?} is neither grub-cfg nor file",
                    &other[..other.len().min(20)]
                )));
            }
        };
        check_path(path).map_err(|why| HandoffError::Path {
            line: n,
            path: path[..path.len().min(MAX_PATH)].to_string(),
            why,
        })?;
        let size: u64 = match size.parse() {
            Ok(s) if size.len() <= 20 && !size.starts_with('+') => s,
            _ => {
                return Err(bad(format!(
                    "size {:?} is not a number",
                    &size[..size.len().min(24)]
                )));
            }
        };
        if size > kind.cap() {
            return Err(HandoffError::TooLarge {
                path: path.to_string(),
                what: kind.name(),
                size,
                cap: kind.cap(),
            });
        }
        let sha256 = hex32(sum).ok_or_else(|| bad("the SHA-256 is not 64 hex digits".into()))?;
        if entries.len() == MAX_ENTRIES {
            return Err(HandoffError::Header(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        if kind == Kind::GrubCfg && entries.iter().any(|e| e.kind == Kind::GrubCfg) {
            return Err(bad("a second grub-cfg".into()));
        }
        if kind == Kind::File
            && entries
                .iter()
                .any(|e| e.kind == Kind::File && e.path == path)
        {
            return Err(bad(format!("{path} a second time")));
        }
        // Sizes are capped, entries counted: none of this overflows, but say so anyway.
        let end = next
            .checked_add(size)
            .filter(|&end| end <= disk_len)
            .ok_or(HandoffError::PastEnd {
                path: path.to_string(),
                offset: next,
                size,
                disk_len,
            })?;
        entries.push(Entry {
            kind,
            path: path.to_string(),
            size,
            sha256,
            offset: next,
        });
        next = end.div_ceil(DATA_ALIGN).saturating_mul(DATA_ALIGN);
    }
    if !ended {
        return Err(HandoffError::Header(
            "no `end` line: the header is cut short".into(),
        ));
    }
    if !entries.iter().any(|e| e.kind == Kind::GrubCfg) {
        return Err(HandoffError::Header(
            "no grub-cfg entry (the installed system's grub.cfg)".into(),
        ));
    }
    Ok(Header { entries })
}
