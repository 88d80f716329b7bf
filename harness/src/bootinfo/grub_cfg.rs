//! grub.cfg: which menu entry grub boots by default, and its `linux` and `initrd` lines.
//! Pure text in, text out: the caller bounds how much text is read.

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CFG: &str = "set timeout=0\nset default=\"0\"\nsearch --set=root x\nmenuentry 'Debian' --class os {\n\tinsmod ext2\n\tlinux\t/vmlinuz-6.1 root=UUID=abc ro console=ttyS0 $vt_handoff\n\tinitrd\t/initrd.img-6.1\n}\nsubmenu 'Advanced' {\n menuentry 'x' {\n  linux /other\n }\n}\n";

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
}
