//! What a test keeps of its work dir when it ends (CURTIN_VMTEST_KEEP_DATA_PASS and
//! _FAIL), in curtin's format.

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

    /// Parses `boot,collect,disks,install,logs`, `all` or `none` (curtin's format). An
    /// empty value is no value: the caller's default applies (never "keep nothing").
    pub fn parse(s: &str) -> Result<KeepSet, String> {
        let mut k = KeepSet::NONE;
        if s.trim().is_empty() {
            return Err("an empty value keeps nothing: say `none` for that".into());
        }
        for part in s.split(',').map(str::trim) {
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
                        "`{other}` is not one of boot, collect, disks, install, logs, all, none (comma-separated)"
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
