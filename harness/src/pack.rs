//! Packing the installer into a self-extracting shell archive, the shape `curtin pack`
//! gives: a `#!/bin/bash` header with variables and an extractor, a `_____PAYLOAD_____`
//! marker line, then the base64 of a tar.gz holding the installer tree and its configs.
//! cloud-init runs it as a user-data part; it unpacks into a temporary directory and runs
//! the installer command there.

use std::io::Write;
use std::path::Path;

use base64::Engine;

pub const MARKER: &str = "_____PAYLOAD_____";

/// A tree that could not be read into the archive.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// An entry of a directory being read (its type, its permissions) could not be had.
    #[error(transparent)]
    Entry(#[from] std::io::Error),
}

/// An archive being assembled: files (path inside the archive, contents, mode) and the
/// command to run from the unpacked directory.
#[derive(Default)]
pub struct Pack {
    files: Vec<(String, Vec<u8>, u32)>,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

/// Quotes a word for bash.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Pack {
    pub fn new() -> Pack {
        Pack::default()
    }

    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.files.push((path.to_string(), data.into(), mode));
        self
    }

    /// The contents of the file added as `path`, if one was.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, data, _)| data.as_slice())
    }

    /// Adds every regular file under `dir` as `prefix/<relative path>` (skipping VCS
    /// metadata and Python caches), in sorted order so the archive is reproducible.
    pub fn tree(&mut self, dir: &Path, prefix: &str) -> Result<&mut Self, PackError> {
        let mut stack = vec![dir.to_path_buf()];
        let mut found = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|source| PackError::Read {
                path: d.clone(),
                source,
            })? {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name == ".git"
                    || name == "__pycache__"
                    || name == ".tox"
                    || name.ends_with(".pyc")
                {
                    continue;
                }
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    found.push(e.path());
                }
            }
        }
        found.sort();
        for p in found {
            use std::os::unix::fs::PermissionsExt;
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            let mode = std::fs::metadata(&p)?.permissions().mode() & 0o777;
            let data = std::fs::read(&p).map_err(|source| PackError::Read {
                path: p.clone(),
                source,
            })?;
            self.files.push((format!("{prefix}/{rel}"), data, mode));
        }
        Ok(self)
    }

    /// The command run from the unpacked directory (words, quoted for bash at pack time).
    pub fn command<S: AsRef<str>>(&mut self, words: &[S]) -> &mut Self {
        self.command = words.iter().map(|w| w.as_ref().to_string()).collect();
        self
    }

    /// An environment variable for the command; `$PACK_DIR` in its value is the unpacked
    /// directory.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The tar.gz payload.
    pub fn payload(&self) -> std::io::Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data, mode) in &self.files {
            let mut h = tar::Header::new_gnu();
            h.set_path(path)?;
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(0);
            h.set_cksum();
            tar.append(&h, &data[..])?;
        }
        tar.into_inner()?.finish()
    }

    /// The self-extracting script.
    pub fn render(&self) -> std::io::Result<String> {
        let payload = base64::engine::general_purpose::STANDARD.encode(self.payload()?);
        let mut s = String::with_capacity(payload.len() + payload.len() / 76 + 1024);
        s.push_str("#!/bin/bash\n# vmtest packed installer: self-extracting archive (header, marker line, base64 tar.gz).\n");
        s.push_str("PACK_VERSION=1\n");
        s.push_str(&format!(
            "PACK_COMMAND=({})\n",
            self.command
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        s.push_str("set -e\n");
        s.push_str("PACK_DIR=$(mktemp -d \"${TMPDIR:-/tmp}/vmtest-pack.XXXXXX\")\n");
        s.push_str("export PACK_DIR\n");
        s.push_str(&format!(
            "sed '1,/^{MARKER}$/d' \"$0\" | base64 -d | tar -xzf - -C \"$PACK_DIR\"\n"
        ));
        for (k, v) in &self.env {
            // Double quotes so $PACK_DIR expands; everything else is escaped.
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('`', "\\`")
                .replace("$PACK_DIR", "\u{0}")
                .replace('$', "\\$")
                .replace('\u{0}', "$PACK_DIR");
            s.push_str(&format!("export {k}=\"{v}\"\n"));
        }
        s.push_str("cd \"$PACK_DIR\"\nset +e\n\"${PACK_COMMAND[@]}\"\nrc=$?\n");
        s.push_str("[ $rc -eq 0 ] || echo \"vmtest-pack: installer exited with status $rc\"\n");
        s.push_str("cd /\nrm -rf \"$PACK_DIR\"\nexit $rc\n");
        s.push_str(MARKER);
        s.push('\n');
        for chunk in payload.as_bytes().chunks(76) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        Ok(s)
    }

    /// Writes the script to `path` (mode 0755).
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)?;
        f.write_all(self.render()?.as_bytes())
    }
}

/// The script installer's files, kept in the repo and compiled in.
pub const INSTALL_SH: &str = include_str!("../installer/install.sh");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_extracts_and_runs() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Pack::new();
        p.file("installer/run.sh", "#!/bin/sh\necho \"ran with $1 in $(basename $PWD) cfg=$(cat config/c.yaml) e=$E\"\nexit 3\n", 0o755)
            .file("config/c.yaml", "a: 1", 0o644)
            .command(&["sh", "installer/run.sh", "it's"])
            .env("E", "x $PACK_DIR/y \"q\"");
        let script = d.path().join("packed");
        p.write_to(&script).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.contains("\n_____PAYLOAD_____\n"));
        let out = std::process::Command::new("timeout")
            .arg("20")
            .arg("bash")
            .arg(&script)
            .env("TMPDIR", d.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("ran with it's in vmtest-pack."), "{stdout}");
        assert!(stdout.contains("cfg=a: 1"), "{stdout}");
        assert!(stdout.contains("/y \"q\""), "{stdout}");
        assert!(!stdout.contains("$PACK_DIR"), "{stdout}");
        assert!(stdout.contains("installer exited with status 3"));
        // Cleaned up after itself.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/d-1"), "abc/d-1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
