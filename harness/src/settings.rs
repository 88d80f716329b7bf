//! Settings from the environment, under the names curtin's vmtest users know
//! (CURTIN_VMTEST_*, IMAGE_DIR, IMAGES_TO_KEEP, apt_proxy), with the same defaults and
//! boolean rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parts of a test's work dir that can be kept after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepSet {
    pub boot: bool,
    pub collect: bool,
    pub disks: bool,
    pub install: bool,
    pub logs: bool,
}

impl KeepSet {
    pub const ALL: KeepSet = KeepSet {
        boot: true,
        collect: true,
        disks: true,
        install: true,
        logs: true,
    };
    pub const NONE: KeepSet = KeepSet {
        boot: false,
        collect: false,
        disks: false,
        install: false,
        logs: false,
    };

    /// Parses `boot,collect,disks,install,logs`, `all` or `none` (curtin's format).
    pub fn parse(s: &str) -> Result<KeepSet, String> {
        let mut k = KeepSet::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => k = KeepSet::ALL,
                "none" => {}
                "boot" => k.boot = true,
                "collect" => k.collect = true,
                "disks" => k.disks = true,
                "install" => k.install = true,
                "logs" => k.logs = true,
                other => {
                    return Err(format!(
                        "`{other}` is not one of boot, collect, disks, install, logs, all, none"
                    ));
                }
            }
        }
        Ok(k)
    }

    pub fn is_none(&self) -> bool {
        *self == KeepSet::NONE
    }

    /// (subdirectory, keep it?) for every part.
    pub fn parts(&self) -> [(&'static str, bool); 5] {
        [
            ("boot", self.boot),
            ("collect", self.collect),
            ("disks", self.disks),
            ("install", self.install),
            ("logs", self.logs),
        ]
    }
}

/// curtin's boolean rule: true unless the value is (case-insensitively) `false`, `` or `0`.
pub fn env_bool(v: Option<&str>, default: bool) -> bool {
    match v {
        None => default,
        Some(v) => {
            let v = v.trim().to_ascii_lowercase();
            !(v.is_empty() || v == "false" || v == "0")
        }
    }
}

/// Everything the environment decides about a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub topdir: PathBuf,
    /// Whether TOPDIR was given (REUSE_TOPDIR needs it).
    pub topdir_given: bool,
    pub log: PathBuf,
    pub keep_pass: KeepSet,
    pub keep_fail: KeepSet,
    pub image_sync: bool,
    pub bridge: String,
    pub image_dir: PathBuf,
    pub images_to_keep: u32,
    pub boot_timeout: Duration,
    pub install_timeout: Duration,
    /// The timeouts were set in the environment: they then win over a test's `timeouts:`
    /// (so one variable shortens or lengthens a whole run).
    pub timeouts_from_env: (bool, bool),
    pub vmram_mib: u64,
    pub nr_cpus: u32,
    /// How many tests run at once (1 = serial).
    pub parallel: usize,
    pub reuse_topdir: bool,
    pub apt_proxy: Option<String>,
}

fn parse_num<T: std::str::FromStr>(name: &str, v: Option<String>, default: T) -> Result<T, String> {
    match v {
        None => Ok(default),
        Some(s) if s.trim().is_empty() => Ok(default),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{name}={s:?} is not a number")),
    }
}

/// `YYYYmmdd-HHMMSS` (UTC) for the default TOPDIR.
pub fn timestamp() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// Six random letters and digits for the default TOPDIR's name.
fn unique_suffix() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect()
}

/// The host's apt proxy (`Acquire::HTTP::Proxy`), as curtin's vmtest hands it on.
fn host_apt_proxy() -> Option<String> {
    let out = std::process::Command::new("apt-config")
        .args(["shell", "P", "Acquire::HTTP::Proxy"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let v = s.trim().strip_prefix("P=")?.trim_matches('\'').to_string();
    (!v.is_empty()).then_some(v)
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, String> {
        Self::from_lookup(|k| std::env::var(k).ok(), true)
    }

    /// Reads settings through `get` (tests pass a map). `probe_host` allows asking
    /// apt-config for the host's proxy.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        probe_host: bool,
    ) -> Result<Settings, String> {
        let topdir_env = get("CURTIN_VMTEST_TOPDIR").filter(|s| !s.is_empty());
        let topdir_given = topdir_env.is_some();
        let topdir = match topdir_env {
            Some(t) => PathBuf::from(t),
            None => {
                let tmp = get("TMPDIR")
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "/tmp".into());
                // The time for people, a random suffix so two runs started in the same
                // second get two TOPDIRs (prepare_topdir creates it, refusing one that exists).
                Path::new(&tmp).join(format!("vmtest-{}-{}", timestamp(), unique_suffix()))
            }
        };
        let log = get("CURTIN_VMTEST_LOG")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let mut s = topdir.clone().into_os_string();
                s.push(".log");
                PathBuf::from(s)
            });
        let keep = |name: &str, default: KeepSet| -> Result<KeepSet, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => KeepSet::parse(&v).map_err(|e| format!("{name}={v:?}: {e}")),
            }
        };
        let parallel_raw: i64 =
            parse_num("CURTIN_VMTEST_PARALLEL", get("CURTIN_VMTEST_PARALLEL"), 0)?;
        let parallel = match parallel_raw {
            0 | 1 => 1,
            -1 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n if n > 1 => n as usize,
            n => {
                return Err(format!(
                    "CURTIN_VMTEST_PARALLEL={n}: use 0 (serial), -1 (one per core) or N"
                ));
            }
        };
        let bridge = get("CURTIN_VMTEST_BRIDGE")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "user".into());
        let apt_proxy = get("apt_proxy")
            .or_else(|| get("CURTIN_VMTEST_APT_PROXY"))
            .filter(|s| !s.is_empty())
            .or_else(|| if probe_host { host_apt_proxy() } else { None });
        let s = Settings {
            topdir,
            topdir_given,
            log,
            keep_pass: keep("CURTIN_VMTEST_KEEP_DATA_PASS", KeepSet::NONE)?,
            keep_fail: keep("CURTIN_VMTEST_KEEP_DATA_FAIL", KeepSet::ALL)?,
            image_sync: env_bool(get("CURTIN_VMTEST_IMAGE_SYNC").as_deref(), false),
            bridge,
            image_dir: get("IMAGE_DIR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| "/srv/images".into()),
            images_to_keep: parse_num("IMAGES_TO_KEEP", get("IMAGES_TO_KEEP"), 1)?,
            boot_timeout: Duration::from_secs(parse_num(
                "CURTIN_VMTEST_BOOT_TIMEOUT",
                get("CURTIN_VMTEST_BOOT_TIMEOUT"),
                300,
            )?),
            install_timeout: Duration::from_secs(parse_num(
                "CURTIN_VMTEST_INSTALL_TIMEOUT",
                get("CURTIN_VMTEST_INSTALL_TIMEOUT"),
                3000,
            )?),
            timeouts_from_env: (
                get("CURTIN_VMTEST_INSTALL_TIMEOUT").is_some_and(|v| !v.trim().is_empty()),
                get("CURTIN_VMTEST_BOOT_TIMEOUT").is_some_and(|v| !v.trim().is_empty()),
            ),
            vmram_mib: parse_num("CURTIN_VMTEST_VMRAM", get("CURTIN_VMTEST_VMRAM"), 2048)?,
            nr_cpus: parse_num("CURTIN_VMTEST_NR_CPUS", get("CURTIN_VMTEST_NR_CPUS"), 1)?,
            parallel,
            reuse_topdir: env_bool(get("CURTIN_VMTEST_REUSE_TOPDIR").as_deref(), false),
            apt_proxy,
        };
        if s.bridge != "user" {
            return Err(format!(
                "CURTIN_VMTEST_BRIDGE={}: only user-mode networking (`user`) is supported; host bridges would need root",
                s.bridge
            ));
        }
        if s.reuse_topdir && !s.topdir_given {
            return Err(
                "CURTIN_VMTEST_REUSE_TOPDIR needs CURTIN_VMTEST_TOPDIR naming the kept data".into(),
            );
        }
        Ok(s)
    }

    /// TOPDIR must be absent or empty (unless re-verifying kept data), so a run never
    /// mixes with or overwrites an earlier one. Creates it.
    pub fn prepare_topdir(&self) -> Result<(), String> {
        let t = &self.topdir;
        if self.reuse_topdir {
            if !t.is_dir() {
                return Err(format!(
                    "CURTIN_VMTEST_REUSE_TOPDIR is set but {} does not exist",
                    t.display()
                ));
            }
            return Ok(());
        }
        if !self.topdir_given {
            // The default TOPDIR is this run's own: made here, atomically, and never one
            // that exists already (another run's, started in the same second).
            if let Some(parent) = t.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            return std::fs::create_dir(t).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "TOPDIR {} exists already (another run's?): nothing there is touched; run again or set CURTIN_VMTEST_TOPDIR",
                    t.display()
                ),
                _ => format!("cannot create {}: {e}", t.display()),
            });
        }
        match std::fs::read_dir(t) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(format!(
                        "CURTIN_VMTEST_TOPDIR {} is not empty: give an absent or empty directory (nothing there is touched)",
                        t.display()
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", t.display())),
        }
        std::fs::create_dir_all(t).map_err(|e| format!("cannot create {}: {e}", t.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned(), false)
    }

    #[test]
    fn defaults() {
        let s = with(&[("TMPDIR", "/x")]).unwrap();
        assert!(s.topdir.to_str().unwrap().starts_with("/x/vmtest-"));
        assert_eq!(
            s.log.to_str().unwrap(),
            format!("{}.log", s.topdir.display())
        );
        assert_eq!(s.keep_pass, KeepSet::NONE);
        assert_eq!(s.keep_fail, KeepSet::ALL);
        assert!(!s.image_sync);
        assert_eq!(s.image_dir, Path::new("/srv/images"));
        assert_eq!(s.images_to_keep, 1);
        assert_eq!(s.boot_timeout, Duration::from_secs(300));
        assert_eq!(s.install_timeout, Duration::from_secs(3000));
        assert_eq!((s.vmram_mib, s.nr_cpus, s.parallel), (2048, 1, 1));
        assert!(!s.reuse_topdir);
        assert_eq!(s.apt_proxy, None);
    }

    #[test]
    fn booleans_follow_curtin() {
        for (v, want) in [
            ("", false),
            ("0", false),
            ("FALSE", false),
            ("false", false),
            ("1", true),
            ("yes", true),
            ("no", true),
        ] {
            assert_eq!(env_bool(Some(v), false), want, "{v}");
        }
        assert!(env_bool(None, true));
    }

    #[test]
    fn values() {
        let s = with(&[
            ("CURTIN_VMTEST_TOPDIR", "/t"),
            ("CURTIN_VMTEST_KEEP_DATA_PASS", "logs,collect"),
            ("CURTIN_VMTEST_KEEP_DATA_FAIL", "none"),
            ("CURTIN_VMTEST_PARALLEL", "2"),
            ("CURTIN_VMTEST_BOOT_TIMEOUT", "7"),
            ("CURTIN_VMTEST_IMAGE_SYNC", "true"),
            ("apt_proxy", "http://p:3128"),
        ])
        .unwrap();
        assert_eq!(s.topdir, Path::new("/t"));
        assert_eq!(s.log, Path::new("/t.log"));
        assert!(s.keep_pass.logs && s.keep_pass.collect && !s.keep_pass.disks);
        assert!(s.keep_fail.is_none());
        assert_eq!(s.parallel, 2);
        assert_eq!(s.boot_timeout, Duration::from_secs(7));
        assert!(s.image_sync);
        assert_eq!(s.apt_proxy.as_deref(), Some("http://p:3128"));
    }

    #[test]
    fn bad_values() {
        assert!(
            with(&[("CURTIN_VMTEST_KEEP_DATA_PASS", "logz")])
                .unwrap_err()
                .contains("logz")
        );
        assert!(
            with(&[("CURTIN_VMTEST_VMRAM", "lots")])
                .unwrap_err()
                .contains("CURTIN_VMTEST_VMRAM")
        );
        assert!(
            with(&[("CURTIN_VMTEST_BRIDGE", "br0")])
                .unwrap_err()
                .contains("br0")
        );
        assert!(with(&[("CURTIN_VMTEST_REUSE_TOPDIR", "1")]).is_err());
    }

    #[test]
    fn topdir_must_be_absent_or_empty() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("top");
        let s = with(&[("CURTIN_VMTEST_TOPDIR", t.to_str().unwrap())]).unwrap();
        s.prepare_topdir().unwrap(); // absent: created
        s.prepare_topdir().unwrap(); // empty: fine
        std::fs::write(t.join("precious"), "x").unwrap();
        let e = s.prepare_topdir().unwrap_err();
        assert!(e.contains("not empty"), "{e}");
        assert_eq!(std::fs::read(t.join("precious")).unwrap(), b"x");
    }

    /// Two runs started in the same second get TOPDIRs of their own, and a default TOPDIR
    /// that exists (even empty) belongs to someone else: refused, untouched.
    #[test]
    fn default_topdir_is_this_runs_own() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().to_str().unwrap();
        let a = with(&[("TMPDIR", tmp)]).unwrap();
        let b = with(&[("TMPDIR", tmp)]).unwrap();
        assert_ne!(a.topdir, b.topdir, "same second, two runs");
        assert_ne!(a.log, b.log);
        a.prepare_topdir().unwrap();
        b.prepare_topdir().unwrap();
        assert!(a.topdir.is_dir() && b.topdir.is_dir());
        let e = a.prepare_topdir().unwrap_err();
        assert!(e.contains("exists already"), "{e}");
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("20"));
    }
}
