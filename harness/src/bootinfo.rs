//! Finding what grub would boot, from the installed disks on the host, for a boot phase
//! without firmware (the builtin microVM boots kernels directly). Reads the partition
//! table (MBR or GPT), opens each ext2/3/4 partition read-only with ext4-view, finds
//! `grub/grub.cfg` (in `/boot` of the root or at the top of a separate /boot), takes its
//! default menu entry's `linux` and `initrd` lines, and copies those files out.
//! No root, no loop devices, no mounting. A /boot inside LVM, RAID or an encrypted volume
//! cannot be read this way and is reported as such.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// What the boot phase boots.
#[derive(Debug, Clone, PartialEq)]
pub struct BootEntry {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Where it was found (for messages): disk, partition, grub.cfg path.
    pub source: String,
}

/// A byte range of a disk image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

/// Partitions of a disk image (the whole disk when it has no partition table).
pub fn partitions(disk: &Path, block_size: u32) -> anyhow::Result<Vec<Extent>> {
    let mut f = File::open(disk).with_context(|| format!("cannot open {}", disk.display()))?;
    let size = f.metadata()?.len();
    let mut sector0 = vec![0u8; 512];
    f.read_exact(&mut sector0)
        .with_context(|| format!("{} is too small", disk.display()))?;
    if sector0[510..512] != [0x55, 0xAA] {
        return Ok(vec![Extent {
            start: 0,
            len: size,
        }]);
    }
    // A protective MBR (type 0xEE) means GPT.
    let is_gpt = (0..4).any(|i| sector0[446 + i * 16 + 4] == 0xEE);
    if is_gpt {
        let lb = if block_size == 4096 {
            gpt::disk::LogicalBlockSize::Lb4096
        } else {
            gpt::disk::LogicalBlockSize::Lb512
        };
        let g = gpt::GptConfig::new()
            .writable(false)
            .logical_block_size(lb)
            .open(disk)
            .with_context(|| format!("{}: unreadable GPT", disk.display()))?;
        let mut v = Vec::new();
        for p in g.partitions().values().filter(|p| p.is_used()) {
            v.push(Extent {
                start: p.bytes_start(lb)?,
                len: p.bytes_len(lb)?,
            });
        }
        return Ok(v);
    }
    f.seek(SeekFrom::Start(0))?;
    let mbr = mbrman::MBR::read_from(&mut f, block_size)
        .with_context(|| format!("{}: unreadable MBR", disk.display()))?;
    let bs = u64::from(block_size);
    Ok(mbr
        .iter()
        .filter(|(_, p)| p.is_used() && !matches!(p.sys, 0x05 | 0x0f | 0x85))
        .map(|(_, p)| Extent {
            start: u64::from(p.starting_lba) * bs,
            len: u64::from(p.sectors) * bs,
        })
        .collect())
}

/// ext4-view reader over a byte range of a file.
struct SliceReader {
    f: File,
    ext: Extent,
}

impl ext4_view::Ext4Read for SliceReader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        if start.saturating_add(dst.len() as u64) > self.ext.len {
            return Err("read past the end of the partition".into());
        }
        self.f.seek(SeekFrom::Start(self.ext.start + start))?;
        self.f.read_exact(dst)?;
        Ok(())
    }
}

/// How grub's `default` names an entry at one menu level: its position, or its title or
/// `--id` (grub-mkconfig writes ids like `gnulinux-advanced-UUID>gnulinux-6.1...-UUID`).
#[derive(Debug, PartialEq)]
enum Selector {
    Index(usize),
    Name(String),
}

/// The last literal `set default=` (values built from variables, like the
/// `${next_entry}` branch grub-mkconfig writes, mean nothing outside grub), split at `>`
/// into one selector per menu level. None: grub's own default, the first entry.
fn default_selectors(text: &str) -> Option<Vec<Selector>> {
    let mut value = None;
    for l in text.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("set default=") {
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            if !v.contains('$') && !v.is_empty() {
                value = Some(v.to_string());
            }
        }
    }
    Some(
        value?
            .split('>')
            .map(|part| match part.parse() {
                Ok(i) => Selector::Index(i),
                Err(_) => Selector::Name(part.to_string()),
            })
            .collect(),
    )
}

/// Words of a grub script line with single and double quotes removed (enough for
/// menuentry headers; grub's full quoting rules are not needed for them).
fn script_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// One open `{ ... }` block of a grub.cfg.
enum Block {
    /// A menuentry; `chosen` when it is the default one.
    Entry { chosen: bool },
    /// A submenu; `on_path` when the default lies inside it.
    Submenu { on_path: bool },
    /// `function name {` and anything else that opens a block.
    Other,
}

/// The default entry of a grub.cfg: (kernel path, initrd path, arguments). Follows
/// grub's menu model: every line ending in `{` opens a block (menuentry, submenu,
/// function, ...) that a line starting with `}` closes; entries and submenus are numbered
/// per menu level; `set default=` picks one by number, title or id, with `>` between
/// levels. When it names nothing that exists, grub boots the first entry, and so does this.
pub fn parse_grub_cfg(text: &str) -> Option<(String, Option<String>, String)> {
    let selectors = default_selectors(text);
    let wanted = |level: usize, index: usize, words: &[String]| -> bool {
        match selectors.as_ref().and_then(|s| s.get(level)) {
            None => false,
            Some(Selector::Index(i)) => *i == index,
            Some(Selector::Name(n)) => {
                words.get(1) == Some(n)
                    || words
                        .windows(2)
                        .any(|w| (w[0] == "--id" || w[0] == "$menuentry_id_option") && &w[1] == n)
            }
        }
    };
    let depth_of_default = selectors.as_ref().map_or(0, Vec::len);
    let mut stack: Vec<Block> = Vec::new();
    // Items seen so far at each open menu level (top level first).
    let mut counters: Vec<usize> = vec![0];
    let mut chosen: Option<(String, Option<String>, String)> = None;
    let mut first: Option<(String, Option<String>, String)> = None;
    let (mut kernel, mut initrd, mut args) = (None::<String>, None::<String>, String::new());
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if l.starts_with('}') {
            match stack.pop() {
                Some(Block::Entry { chosen: is_chosen }) => {
                    if let Some(k) = kernel.take() {
                        let entry = (k, initrd.take(), std::mem::take(&mut args));
                        let top_level = counters.len() == 1;
                        if is_chosen && chosen.is_none() {
                            chosen = Some(entry.clone());
                        }
                        if top_level && first.is_none() {
                            first = Some(entry);
                        }
                    }
                    initrd = None;
                    args.clear();
                }
                Some(Block::Submenu { .. }) => {
                    counters.pop();
                }
                Some(Block::Other) | None => {}
            }
            continue;
        }
        if l.ends_with('{') {
            let words = script_words(l);
            let in_entry = stack.iter().any(|b| matches!(b, Block::Entry { .. }));
            let path_ok = stack
                .iter()
                .all(|b| !matches!(b, Block::Submenu { on_path: false }));
            let level = counters.len() - 1;
            let block = match words.first().map(String::as_str) {
                Some(kw @ ("menuentry" | "submenu")) if !in_entry => {
                    let index = counters[level];
                    counters[level] += 1;
                    let hit = path_ok && wanted(level, index, &words);
                    if kw == "submenu" {
                        counters.push(0);
                        Block::Submenu {
                            on_path: hit && level + 1 < depth_of_default,
                        }
                    } else {
                        kernel = None;
                        initrd = None;
                        args.clear();
                        Block::Entry {
                            chosen: hit && level + 1 == depth_of_default,
                        }
                    }
                }
                _ => Block::Other,
            };
            stack.push(block);
            continue;
        }
        if !stack.iter().any(|b| matches!(b, Block::Entry { .. })) {
            continue;
        }
        let mut words = l.split_whitespace();
        match words.next() {
            Some("linux") | Some("linux16") | Some("linuxefi") => {
                kernel = words.next().map(str::to_string);
                // grub variables ($vt_handoff, ...) have no meaning outside grub.
                args = words
                    .filter(|w| !w.starts_with('$'))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            Some("initrd") | Some("initrd16") | Some("initrdefi") => {
                initrd = words.next().map(str::to_string)
            }
            _ => {}
        }
    }
    chosen.or(first)
}

/// Finds the default grub entry on `disks` ((path, block size)) and copies its kernel and
/// initrd into `out_dir`.
pub fn find_boot(disks: &[(PathBuf, u32)], out_dir: &Path) -> anyhow::Result<BootEntry> {
    let mut looked = Vec::new();
    for (disk, bs) in disks {
        let parts = match partitions(disk, *bs) {
            Ok(p) => p,
            Err(e) => {
                looked.push(format!("{}: {e:#}", disk.display()));
                continue;
            }
        };
        for (i, ext) in parts.iter().enumerate() {
            let Ok(f) = File::open(disk) else { continue };
            let Ok(fs) = ext4_view::Ext4::load(Box::new(SliceReader { f, ext: *ext })) else {
                looked.push(format!(
                    "{} partition {}: not ext2/3/4",
                    disk.display(),
                    i + 1
                ));
                continue;
            };
            for cfg in ["/boot/grub/grub.cfg", "/grub/grub.cfg"] {
                let Ok(text) = fs.read_to_string(cfg) else {
                    continue;
                };
                let Some((kernel, initrd, cmdline)) = parse_grub_cfg(&text) else {
                    bail!(
                        "{} partition {}: {cfg} has no menu entry with a `linux` line",
                        disk.display(),
                        i + 1
                    );
                };
                let source = format!("{} partition {} {cfg}", disk.display(), i + 1);
                let copy = |p: &str, name: &str| -> anyhow::Result<PathBuf> {
                    let data = fs
                        .read(p)
                        .map_err(|e| anyhow::anyhow!("{source}: cannot read {p}: {e}"))?;
                    let out = out_dir.join(name);
                    std::fs::write(&out, data)?;
                    Ok(out)
                };
                let kernel = copy(&kernel, "vmlinuz")?;
                let initrd = initrd.map(|p| copy(&p, "initrd.img")).transpose()?;
                return Ok(BootEntry {
                    kernel,
                    initrd,
                    cmdline,
                    source,
                });
            }
            looked.push(format!(
                "{} partition {}: ext4 without grub/grub.cfg",
                disk.display(),
                i + 1
            ));
        }
    }
    bail!(
        "no grub.cfg on a plain ext2/3/4 partition of the installed disks (a /boot inside LVM, RAID or \
         dm-crypt cannot be read from the host); looked at: {}",
        looked.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const CFG: &str = "set timeout=0\nset default=\"0\"\nsearch --set=root x\nmenuentry 'Debian' --class os {\n\tinsmod ext2\n\tlinux\t/vmlinuz-6.1 root=UUID=abc ro console=ttyS0 $vt_handoff\n\tinitrd\t/initrd.img-6.1\n}\nsubmenu 'Advanced' {\n menuentry 'x' {\n  linux /other\n }\n}\n";

    #[test]
    fn grub_cfg() {
        let (k, i, a) = parse_grub_cfg(CFG).unwrap();
        assert_eq!(k, "/vmlinuz-6.1");
        assert_eq!(i.as_deref(), Some("/initrd.img-6.1"));
        assert_eq!(a, "root=UUID=abc ro console=ttyS0");
        assert!(parse_grub_cfg("set default=0\n").is_none());
    }

    /// The shape grub-mkconfig (Debian 12) writes, trimmed: `function` blocks before the
    /// entries, the default set inside an if/else, a submenu with the normal and recovery
    /// entries, ids through `$menuentry_id_option`.
    const MKCONFIG: &str = r#"
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
else
   set default="0"
fi
function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
  fi
}
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  fi
}
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-U' {
	load_video
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	linux	/boot/vmlinuz-6.1 root=UUID=U ro  console=ttyS0
	initrd	/boot/initrd.img-6.1
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-U' {
	menuentry 'Debian GNU/Linux, with Linux 6.1' --class debian $menuentry_id_option 'gnulinux-6.1-advanced-U' {
		linux	/boot/vmlinuz-6.1 root=UUID=U ro  console=ttyS0 quiet
		initrd	/boot/initrd.img-6.1
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1 (recovery mode)' $menuentry_id_option 'gnulinux-6.1-recovery-U' {
		linux	/boot/vmlinuz-6.1 root=UUID=U ro single
		initrd	/boot/initrd.img-6.1
	}
}
if [ -f  ${config_directory}/custom.cfg ]; then
  source ${config_directory}/custom.cfg
fi
"#;

    #[test]
    fn grub_mkconfig_output_with_functions_and_submenus() {
        let with_default = |d: &str| MKCONFIG.replace(r#"set default="0""#, d);
        let args = |cfg: &str| parse_grub_cfg(cfg).unwrap().2;
        let (k, i, a) = parse_grub_cfg(MKCONFIG).unwrap();
        assert_eq!(k, "/boot/vmlinuz-6.1");
        assert_eq!(i.as_deref(), Some("/boot/initrd.img-6.1"));
        assert_eq!(a, "root=UUID=U ro console=ttyS0");
        // By position, with `>` between menu levels.
        assert_eq!(
            args(&with_default(r#"set default="1>0""#)),
            "root=UUID=U ro console=ttyS0 quiet"
        );
        assert_eq!(
            args(&with_default("set default=1>1")),
            "root=UUID=U ro single"
        );
        // By id and by title.
        assert_eq!(
            args(&with_default(
                r#"set default="gnulinux-advanced-U>gnulinux-6.1-recovery-U""#
            )),
            "root=UUID=U ro single"
        );
        assert_eq!(
            args(&with_default(
                r#"set default="Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1""#
            )),
            "root=UUID=U ro console=ttyS0 quiet"
        );
        // Naming nothing that exists (or only a submenu): grub boots the first entry.
        for d in [
            "set default=7",
            "set default=1",
            "set default=\"${saved_entry}\"",
            "set default=0>3",
        ] {
            assert_eq!(
                args(&with_default(d)),
                "root=UUID=U ro console=ttyS0",
                "{d}"
            );
        }
    }

    /// An msdos disk whose second partition is a separate /boot made by mkfs.ext4 -d
    /// (e2fsprogs): no root needed.
    #[test]
    fn finds_kernel_on_a_separate_boot_partition() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("grub")).unwrap();
        std::fs::write(tree.join("grub/grub.cfg"), CFG).unwrap();
        std::fs::write(tree.join("vmlinuz-6.1"), b"KERNEL").unwrap();
        std::fs::write(tree.join("initrd.img-6.1"), b"INITRD").unwrap();
        let disk = d.path().join("disk.img");
        std::fs::File::create(&disk)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&disk)
                .unwrap();
            let mut mbr = mbrman::MBR::new_from(&mut f, 512, [1, 2, 3, 4]).unwrap();
            mbr[1] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_INACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: 0x83,
                last_chs: mbrman::CHS::empty(),
                starting_lba: 2048,
                sectors: 16384,
            };
            mbr[2] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_ACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: 0x83,
                last_chs: mbrman::CHS::empty(),
                starting_lba: 20480,
                sectors: 40960,
            };
            mbr.write_into(&mut f).unwrap();
        }
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", &format!("offset={}", 20480 * 512), "-d"])
            .arg(&tree)
            .arg(&disk)
            .arg("20M")
            .status()
            .expect("prerequisite missing: mkfs.ext4 (Debian package e2fsprogs)");
        assert!(ok.success());
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let b = find_boot(&[(disk.clone(), 512)], &out).unwrap();
        assert_eq!(std::fs::read(&b.kernel).unwrap(), b"KERNEL");
        assert_eq!(
            std::fs::read(b.initrd.as_ref().unwrap()).unwrap(),
            b"INITRD"
        );
        assert_eq!(b.cmdline, "root=UUID=abc ro console=ttyS0");
        assert!(b.source.contains("partition 2"), "{}", b.source);

        // A disk without any grub.cfg says where it looked.
        let blank = d.path().join("blank.img");
        std::fs::File::create(&blank)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let e = find_boot(&[(blank, 512)], &out).unwrap_err().to_string();
        assert!(e.contains("no grub.cfg") && e.contains("blank.img"), "{e}");
    }
}
