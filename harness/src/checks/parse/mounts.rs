//! What is mounted and used: fstab and crypttab (the files), `findmnt -J -l` (mounted
//! now) and `swapon --show --raw` (swap in use; curtin's `proc-swaps` when missing).

use super::{MAX_ITEMS, field, json};
use crate::checks::collected::{Artifact, Collected, DataError};

pub const FSTAB: &str = "fstab";
pub const CRYPTTAB: &str = "vmtest/crypttab";
pub const FINDMNT: &str = "vmtest/findmnt.json";
pub const SWAPON: &str = "vmtest/swapon.txt";
pub const PROC_SWAPS: &str = "proc-swaps";

/// fstab's octal escapes (`\040` for a blank).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let oct = rest.get(i + 1..i + 4);
        match oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The non-comment lines of a table file, split into fields.
fn rows(text: &str) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(MAX_ITEMS)
        .map(|l| (l.to_string(), l.split_whitespace().map(unescape).collect()))
}

/// One fstab line.
#[derive(Debug, Clone, PartialEq)]
pub struct FstabEntry {
    pub spec: String,
    pub file: String,
    pub vfstype: String,
    pub options: String,
    /// The line as written, for evidence.
    pub line: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fstab {
    pub entries: Vec<FstabEntry>,
}

impl Fstab {
    pub fn parse(text: &str) -> Fstab {
        let entries = rows(text)
            .filter(|(_, f)| f.len() >= 3)
            .map(|(line, f)| FstabEntry {
                spec: f[0].clone(),
                file: f[1].clone(),
                vfstype: f[2].clone(),
                options: f.get(3).cloned().unwrap_or_else(|| "defaults".into()),
                line,
            })
            .collect();
        Fstab { entries }
    }

    pub fn lines(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.line.clone()).collect()
    }
}

impl Artifact for Fstab {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Ok(Fstab::parse(&c.text(FSTAB)?))
    }
}

/// One crypttab line: `name source [keyfile [options]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CrypttabEntry {
    pub name: String,
    pub source: String,
    pub keyfile: String,
    pub options: String,
    pub line: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Crypttab {
    pub entries: Vec<CrypttabEntry>,
}

impl Crypttab {
    pub fn parse(text: &str) -> Crypttab {
        let entries = rows(text)
            .filter(|(_, f)| f.len() >= 2)
            .map(|(line, f)| CrypttabEntry {
                name: f[0].clone(),
                source: f[1].clone(),
                keyfile: f.get(2).cloned().unwrap_or_else(|| "none".into()),
                options: f.get(3).cloned().unwrap_or_default(),
                line,
            })
            .collect();
        Crypttab { entries }
    }
}

impl Artifact for Crypttab {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Ok(Crypttab::parse(&c.text(CRYPTTAB)?))
    }
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Mounted {
    pub target: String,
    /// `/dev/vda1`, `/dev/mapper/vg0-root`, `/dev/vdc[/@]` (btrfs subvolume), `tmpfs`.
    pub source: String,
    pub fstype: String,
    pub options: String,
}

impl Mounted {
    /// The source without a btrfs subvolume suffix (`/dev/vdc[/@]` → `/dev/vdc`).
    pub fn device(&self) -> &str {
        match self.source.find('[') {
            Some(i) if self.source.ends_with(']') => &self.source[..i],
            _ => &self.source,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} on {} type {} ({})",
            self.source, self.target, self.fstype, self.options
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findmnt {
    pub mounts: Vec<Mounted>,
}

impl Findmnt {
    pub fn parse(text: &str) -> Result<Findmnt, DataError> {
        let v = json(FINDMNT, text)?;
        let fs = v
            .get("filesystems")
            .and_then(|f| f.as_array())
            .ok_or_else(|| DataError::malformed(FINDMNT, "no `filesystems` array"))?;
        let mounts = fs
            .iter()
            .take(MAX_ITEMS)
            .filter_map(|m| {
                Some(Mounted {
                    target: field(m, "target")?,
                    source: field(m, "source").unwrap_or_default(),
                    fstype: field(m, "fstype").unwrap_or_default(),
                    options: field(m, "options").unwrap_or_default(),
                })
            })
            .collect();
        Ok(Findmnt { mounts })
    }

    /// What is mounted at `target` now (the last mount there is the visible one).
    pub fn at(&self, target: &str) -> Option<&Mounted> {
        self.mounts.iter().rev().find(|m| m.target == target)
    }
}

impl Artifact for Findmnt {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Findmnt::parse(&c.text(FINDMNT)?)
    }
}

/// One swap area in use.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapArea {
    /// `/dev/vda3`, `/dev/dm-1`, `/swap.img`.
    pub name: String,
    pub kind: String,
    pub line: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Swaps {
    pub areas: Vec<SwapArea>,
}

impl Swaps {
    /// `swapon --show --raw` or /proc/swaps: a header line, then `NAME TYPE ...`.
    pub fn parse(text: &str) -> Swaps {
        let areas = text
            .lines()
            .skip(1)
            .take(MAX_ITEMS)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let name = unescape(&f.next()?.replace("\\x20", " "));
                Some(SwapArea {
                    name,
                    kind: f.next().unwrap_or_default().to_string(),
                    line: l.trim().to_string(),
                })
            })
            .collect();
        Swaps { areas }
    }
}

impl Artifact for Swaps {
    fn load(c: &Collected) -> Result<Self, DataError> {
        match c.text(SWAPON) {
            Ok(t) if !t.trim().is_empty() || !c.has(PROC_SWAPS) => Ok(Swaps::parse(&t)),
            Ok(_) | Err(DataError::Missing { .. }) => Ok(Swaps::parse(&c.text(PROC_SWAPS)?)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_and_crypttab() {
        let f = Fstab::parse(
            "# comment\n/dev/disk/by-id/md-uuid-x / ext4 defaults 0 1\nUUID=1 /my\\040dir xfs\n\nbroken\n",
        );
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entries[1].file, "/my dir");
        assert_eq!(f.entries[1].options, "defaults");
        let c = Crypttab::parse("dmcrypt0 UUID=abc none luks\n#x\nshort\n");
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].keyfile, "none");
    }

    #[test]
    fn findmnt_and_swaps() {
        let m = Findmnt::parse(r#"{"filesystems": [{"target": "/", "source": "/dev/md127", "fstype": "ext4", "options": "rw"},
            {"target": "/btrfs", "source": "/dev/vdc[/@]", "fstype": "btrfs", "options": "rw"}, {"source": "x"}]}"#).unwrap();
        assert_eq!(m.at("/").unwrap().device(), "/dev/md127");
        assert_eq!(m.at("/btrfs").unwrap().device(), "/dev/vdc");
        assert!(Findmnt::parse("{}").is_err());
        let s = Swaps::parse(
            "NAME TYPE SIZE USED PRIO\n/dev/vda3 partition 1073737728 0 -2\n/swap\\x20x.img file 1 0 -3\n",
        );
        assert_eq!(s.areas[0].name, "/dev/vda3");
        assert_eq!(s.areas[1].name, "/swap x.img");
    }

    #[test]
    fn unescape_is_total() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\9z"), "a\\9z");
        assert_eq!(unescape("\\é1"), "\\é1");
    }
}
