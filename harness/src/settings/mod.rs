//! Settings from the environment, under the names curtin's vmtest users know
//! (CURTIN_VMTEST_*, IMAGE_DIR, IMAGES_TO_KEEP, apt_proxy), with curtin's defaults,
//! boolean rule and precedence:
//!
//! - CURTIN_VMTEST_VMRAM and _NR_CPUS win over a test's `memory_mib`/`cpus` (curtin's
//!   environment overrides the test class), which win over 2048 MiB and 1 vCPU;
//! - a test's `timeouts:` win over CURTIN_VMTEST_INSTALL/BOOT_TIMEOUT (in curtin the
//!   environment sets the default a test class may override), which win over 3000/300 s;
//! - CURTIN_VMTEST_APT_PROXY, else apt_proxy, else the host's apt proxy; a variable that
//!   is set but empty means no proxy.
//!
//! And one of this project's own: VMTEST_OUTBOUND, what the guests may reach beyond the
//! harness's ports (usernet's outbound rules; nothing when unset).
//!
//! An empty value is the same as an unset one, except for the proxy. Zero memory, vCPUs
//! or timeouts are refused as the config refuses them.
//!
//! Here: [`Settings`] read from the variables. Beside it: `keep` (what a test keeps of
//! its work dir), `extra_config` (CURTIN_VMTEST_EXTRA_CONFIG's file), `topdir` (the
//! default TOPDIR and the rule that a run never mixes with another's), `vars` (the
//! boolean rule and which CURTIN_VMTEST_* variables are known).

mod extra_config;
mod keep;
mod topdir;
mod vars;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use extra_config::ExtraConfig;
pub use keep::KeepSet;
pub use topdir::timestamp;
pub use vars::{KNOWN_CURTIN_VARS, env_bool, unknown_curtin_vars};

/// Guest memory and vCPUs when neither the environment nor the test says (curtin's).
pub const DEFAULT_VMRAM_MIB: u64 = 2048;
pub const DEFAULT_NR_CPUS: u32 = 1;

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
    /// CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT: how long IMAGE_DIR's users wait for curtin's image
    /// sync to release it (`None`: for ever, as when unset or negative).
    pub image_lock_timeout: Option<Duration>,
    pub images_to_keep: u32,
    /// CURTIN_VMTEST_BOOT_TIMEOUT / _INSTALL_TIMEOUT, or 300 / 3000 s: what a test
    /// without `timeouts:` gets.
    pub boot_timeout: Duration,
    pub install_timeout: Duration,
    /// CURTIN_VMTEST_VMRAM (MiB) and _NR_CPUS, when set: they win over a test's own.
    pub vmram_mib: Option<u64>,
    pub nr_cpus: Option<u32>,
    pub extra_config: Option<ExtraConfig>,
    /// How many tests run at once (1 = serial).
    pub parallel: usize,
    pub reuse_topdir: bool,
    pub apt_proxy: Option<String>,
    /// What every test's guest may reach beyond the harness's ports (VMTEST_OUTBOUND, plus
    /// the apt proxy when it is given by address); a test's `outbound:` adds to it.
    pub outbound: usernet::Outbound,
    /// VMTEST_SERIAL_LOG_CAP, or 64 MiB: most each serial log holds (see [`vmm::CappedLog`]).
    pub serial_log_cap: u64,
    /// Derive checks from each test's storage and network configs (VMTEST_DERIVE_CHECKS,
    /// `vmtest run --no-derive-checks`); a test can also turn them off for itself.
    pub derive_checks: bool,
}

/// A variable's value, `None` when unset or empty.
fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// A positive count (vCPUs): 0 is refused as the config refuses it.
fn parse_count(name: &str, v: Option<String>) -> Result<Option<u32>, String> {
    given(v)
        .map(|s| match s.trim().parse::<u32>() {
            Ok(0) => Err(format!("{name}=0: at least 1 (as vmtest.cpus)")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("{name}={s:?} is not a number")),
        })
        .transpose()
}

/// A phase timeout in seconds (or with a unit: 90s, 5m); 0 is refused.
fn parse_timeout(name: &str, v: Option<String>, default: u64) -> Result<Duration, String> {
    match given(v) {
        None => Ok(Duration::from_secs(default)),
        Some(s) => crate::units::parse_duration(&s)
            .map_err(|e| format!("{name}={s:?}: {e}; at least 1 second (as vmtest.timeouts)")),
    }
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

/// The rule that lets the guest reach an apt proxy given as `http://A.B.C.D:PORT`: the run
/// hands the proxy to the guest, so the guest may use it. A proxy on the host's loopback
/// is `host:PORT` (reached at 10.0.2.2). A proxy given by name needs VMTEST_OUTBOUND: the
/// filter works on addresses, and resolving here could disagree with the guest.
fn apt_proxy_rule(url: &str) -> Option<usernet::OutboundRule> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (hostport, 80),
    };
    let addr: std::net::Ipv4Addr = host.parse().ok()?;
    let rule = if addr.is_loopback() {
        format!("host:{port}")
    } else {
        format!("{addr}:{port}")
    };
    rule.parse().ok()
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
                topdir::default_topdir(Path::new(&tmp))
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
        // Empty is unset: the default (keep everything of a failed test) applies, so an
        // empty variable never deletes logs. (curtin refuses an empty value.)
        let keep = |name: &str, default: KeepSet| -> Result<KeepSet, String> {
            match given(get(name)) {
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
        // The first of these that is set decides; set but empty means no proxy.
        let apt_proxy = match get("CURTIN_VMTEST_APT_PROXY").or_else(|| get("apt_proxy")) {
            Some(p) => Some(p).filter(|p| !p.trim().is_empty()),
            None if probe_host => host_apt_proxy(),
            None => None,
        };
        let vmram_mib = given(get("CURTIN_VMTEST_VMRAM"))
            .map(|v| {
                crate::units::parse_memory(&v)
                    .map_err(|e| format!("CURTIN_VMTEST_VMRAM={v:?}: {e}"))
            })
            .transpose()?;
        let extra_config = given(get("CURTIN_VMTEST_EXTRA_CONFIG"))
            .map(|p| ExtraConfig::load(Path::new(&p)))
            .transpose()?;
        let mut outbound: usernet::Outbound = get("VMTEST_OUTBOUND")
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("VMTEST_OUTBOUND: {e}"))?;
        if let Some(rule) = apt_proxy.as_deref().and_then(apt_proxy_rule)
            && !outbound.rules.contains(&rule)
        {
            outbound.rules.push(rule);
        }
        let serial_log_cap = match given(get("VMTEST_SERIAL_LOG_CAP")) {
            None => vmm::DEFAULT_LOG_CAP,
            Some(v) => crate::cmd_vm::parse_log_cap(&v)
                .map_err(|e| format!("VMTEST_SERIAL_LOG_CAP={v:?}: {e}"))?,
        };
        let image_lock_timeout = match given(get("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT")) {
            None => None,
            Some(v) => images::store::parse_lock_timeout(&v)
                .map_err(|e| format!("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT: {e}"))?,
        };
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
            image_lock_timeout,
            images_to_keep: parse_num("IMAGES_TO_KEEP", get("IMAGES_TO_KEEP"), 1)?,
            boot_timeout: parse_timeout(
                "CURTIN_VMTEST_BOOT_TIMEOUT",
                get("CURTIN_VMTEST_BOOT_TIMEOUT"),
                300,
            )?,
            install_timeout: parse_timeout(
                "CURTIN_VMTEST_INSTALL_TIMEOUT",
                get("CURTIN_VMTEST_INSTALL_TIMEOUT"),
                3000,
            )?,
            vmram_mib,
            nr_cpus: parse_count("CURTIN_VMTEST_NR_CPUS", get("CURTIN_VMTEST_NR_CPUS"))?,
            extra_config,
            parallel,
            reuse_topdir: env_bool(get("CURTIN_VMTEST_REUSE_TOPDIR").as_deref(), false),
            apt_proxy,
            outbound,
            serial_log_cap,
            derive_checks: env_bool(get("VMTEST_DERIVE_CHECKS").as_deref(), true),
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

    /// IMAGE_DIR's store, waiting for curtin's image sync at most
    /// CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT.
    pub fn image_store(&self) -> Result<images::ImageStore, images::StoreError> {
        Ok(images::ImageStore::open(&self.image_dir)?.with_lock_timeout(self.image_lock_timeout))
    }

    /// Guest memory for a test that asks for `test` MiB: CURTIN_VMTEST_VMRAM, else the
    /// test's, else 2048.
    pub fn memory_mib(&self, test: Option<u64>) -> u64 {
        self.vmram_mib.or(test).unwrap_or(DEFAULT_VMRAM_MIB)
    }

    /// vCPUs for a test that asks for `test`: CURTIN_VMTEST_NR_CPUS, else the test's,
    /// else 1.
    pub fn vcpus(&self, test: Option<u32>) -> u32 {
        self.nr_cpus.or(test).unwrap_or(DEFAULT_NR_CPUS)
    }

    /// A phase's limit for a test whose `timeouts:` say `test` seconds: the test's, else
    /// the environment's, else the default.
    pub fn timeout(&self, phase: crate::backend::Phase, test: Option<u64>) -> Duration {
        match (test, phase) {
            (Some(t), _) => Duration::from_secs(t),
            (None, crate::backend::Phase::Install) => self.install_timeout,
            (None, crate::backend::Phase::Boot) => self.boot_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(super) fn with(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned(), false)
    }

    #[test]
    fn serial_log_cap() {
        assert_eq!(with(&[]).unwrap().serial_log_cap, 64 << 20);
        let s = with(&[("VMTEST_SERIAL_LOG_CAP", "16M")]).unwrap();
        assert_eq!(s.serial_log_cap, 16 << 20);
        for bad in ["12", "lots", "99999999999T"] {
            let e = with(&[("VMTEST_SERIAL_LOG_CAP", bad)]).unwrap_err();
            assert!(e.contains("VMTEST_SERIAL_LOG_CAP"), "{e}");
        }
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
        assert_eq!(
            (s.memory_mib(None), s.vcpus(None), s.parallel),
            (2048, 1, 1)
        );
        assert_eq!(s.extra_config, None);
        assert!(!s.reuse_topdir);
        assert_eq!(s.apt_proxy, None);
        assert!(
            s.outbound.is_empty(),
            "the guest reaches nothing beyond the harness"
        );
    }

    #[test]
    fn outbound_rules_and_the_apt_proxy() {
        let s = with(&[("VMTEST_OUTBOUND", "internet, 192.168.1.5:3142")]).unwrap();
        assert_eq!(s.outbound.to_string(), "internet,192.168.1.5:3142");
        let e = with(&[("VMTEST_OUTBOUND", "everywhere")]).unwrap_err();
        assert!(
            e.starts_with("VMTEST_OUTBOUND: ") && e.contains("everywhere"),
            "{e}"
        );
        // The apt proxy handed to the guest is reachable when given by address.
        for (proxy, rule) in [
            ("http://10.245.168.1:3128", "10.245.168.1:3128"),
            ("http://user:pw@192.168.1.5:3142/", "192.168.1.5:3142"),
            ("http://127.0.0.1:3142", "host:3142"),
            ("http://10.1.2.3", "10.1.2.3:80"),
        ] {
            let s = with(&[("apt_proxy", proxy)]).unwrap();
            assert_eq!(s.outbound.to_string(), rule, "{proxy}");
        }
        let s = with(&[("apt_proxy", "http://squid.internal:3128")]).unwrap();
        assert!(s.outbound.is_empty(), "a named proxy needs VMTEST_OUTBOUND");
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
            ("CURTIN_VMTEST_VMRAM", "3G"),
            ("CURTIN_VMTEST_NR_CPUS", "2"),
            ("apt_proxy", "http://p:3128"),
        ])
        .unwrap();
        assert_eq!((s.memory_mib(Some(512)), s.vcpus(Some(4))), (3072, 2));
        assert_eq!(s.topdir, Path::new("/t"));
        assert_eq!(s.log, Path::new("/t.log"));
        assert!(s.keep_pass.logs && s.keep_pass.collect && !s.keep_pass.disks);
        assert!(s.keep_fail.is_none());
        assert_eq!(s.parallel, 2);
        assert_eq!(s.boot_timeout, Duration::from_secs(7));
        assert!(s.image_sync);
        assert_eq!(s.apt_proxy.as_deref(), Some("http://p:3128"));
    }

    /// CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT as curtin's jenkins-runner reads it: seconds,
    /// negative or unset for ever.
    #[test]
    fn image_lock_timeout() {
        assert_eq!(with(&[]).unwrap().image_lock_timeout, None);
        let s = with(&[("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT", "7")]).unwrap();
        assert_eq!(s.image_lock_timeout, Some(Duration::from_secs(7)));
        let s = with(&[("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT", "-1")]).unwrap();
        assert_eq!(s.image_lock_timeout, None);
        let e = with(&[("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT", "soon")]).unwrap_err();
        assert!(
            e.contains("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT") && e.contains("soon"),
            "{e}"
        );
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

    /// curtin's precedence: the environment's memory and vCPUs beat the test's; the
    /// test's timeouts beat the environment's.
    #[test]
    fn precedence_as_curtin_has_it() {
        use crate::backend::Phase;
        let s = with(&[]).unwrap();
        assert_eq!((s.memory_mib(Some(4096)), s.vcpus(Some(2))), (4096, 2));
        assert_eq!(s.timeout(Phase::Install, None), Duration::from_secs(3000));
        let s = with(&[
            ("CURTIN_VMTEST_VMRAM", "1024"),
            ("CURTIN_VMTEST_NR_CPUS", "3"),
            ("CURTIN_VMTEST_INSTALL_TIMEOUT", "5m"),
            ("CURTIN_VMTEST_BOOT_TIMEOUT", "60"),
        ])
        .unwrap();
        assert_eq!((s.memory_mib(Some(4096)), s.vcpus(Some(2))), (1024, 3));
        assert_eq!(s.timeout(Phase::Install, None), Duration::from_secs(300));
        assert_eq!(s.timeout(Phase::Install, Some(77)), Duration::from_secs(77));
        assert_eq!(s.timeout(Phase::Boot, None), Duration::from_secs(60));
        // Empty is unset.
        let s = with(&[("CURTIN_VMTEST_VMRAM", ""), ("CURTIN_VMTEST_NR_CPUS", " ")]).unwrap();
        assert_eq!((s.memory_mib(Some(4096)), s.vcpus(None)), (4096, 1));
    }

    #[test]
    fn zero_memory_cpus_and_timeouts_are_refused_as_the_config_refuses_them() {
        for var in [
            "CURTIN_VMTEST_VMRAM",
            "CURTIN_VMTEST_NR_CPUS",
            "CURTIN_VMTEST_INSTALL_TIMEOUT",
            "CURTIN_VMTEST_BOOT_TIMEOUT",
        ] {
            let e = with(&[(var, "0")]).unwrap_err();
            assert!(e.contains(var), "{var}: {e}");
        }
        assert!(with(&[("CURTIN_VMTEST_BOOT_TIMEOUT", "1e30")]).is_err());
    }

    /// An empty KEEP_DATA_FAIL is no value: failed tests keep everything (the default),
    /// never nothing. `none` says nothing.
    #[test]
    fn an_empty_keep_data_keeps_the_default() {
        let s = with(&[
            ("CURTIN_VMTEST_KEEP_DATA_FAIL", ""),
            ("CURTIN_VMTEST_KEEP_DATA_PASS", ""),
        ])
        .unwrap();
        assert_eq!((s.keep_fail, s.keep_pass), (KeepSet::ALL, KeepSet::NONE));
        assert!(
            with(&[("CURTIN_VMTEST_KEEP_DATA_FAIL", "none")])
                .unwrap()
                .keep_fail
                .is_none()
        );
        assert!(with(&[("CURTIN_VMTEST_KEEP_DATA_FAIL", "logs,,collect")]).is_err());
    }

    #[test]
    fn apt_proxy_as_curtin_picks_it() {
        let p = |vars: &[(&str, &str)]| with(vars).unwrap().apt_proxy;
        assert_eq!(
            p(&[
                ("CURTIN_VMTEST_APT_PROXY", "http://a:1"),
                ("apt_proxy", "http://b:2")
            ]),
            Some("http://a:1".into())
        );
        assert_eq!(p(&[("apt_proxy", "http://b:2")]), Some("http://b:2".into()));
        // Set but empty: no proxy, and the next variable is not asked.
        assert_eq!(
            p(&[("CURTIN_VMTEST_APT_PROXY", ""), ("apt_proxy", "http://b:2")]),
            None
        );
        let s = Settings::from_lookup(
            |k| (k == "apt_proxy").then(String::new),
            true, // would ask the host's apt-config, were the variable not set
        )
        .unwrap();
        assert_eq!(s.apt_proxy, None);
    }
}
