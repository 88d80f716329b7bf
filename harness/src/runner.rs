//! The run flow of one test, in-process: work dir, disks, seed, HTTP server, packed
//! installer, install phase, install verdict, boot phase with the output disk, collect,
//! expectations, verdict files, keep-data; and running many tests (serially or in
//! parallel) with progress, a summary table and JUnit XML.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Boot, Disk, DiskBus, Nic, Outcome, PhaseSpec};
use crate::config::{DiskDriver, InstallerKind, TestConfig};
use crate::http::{Content, HttpServer};
use crate::settings::Settings;
use crate::userdata::{self, OUTPUT_DISK_SERIAL};
use crate::verdict;
use crate::workdir::{WorkDir, create_sparse_disk};

/// Size of the output disk the collect scripts tar onto (curtin used 10 MiB; larger
/// costs nothing while sparse).
pub const OUTPUT_DISK_SIZE: u64 = 64 << 20;
/// Most that collect/ may receive from the guest.
pub const COLLECT_BUDGET: u64 = OUTPUT_DISK_SIZE;

/// The files of an install image, and whatever keeps them from being removed meanwhile.
pub struct ImageFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    pub version: String,
    pub _guard: Option<Box<dyn std::any::Any + Send>>,
}

pub trait ImageProvider: Send + Sync {
    fn find(&self, release: &str, arch: &str) -> anyhow::Result<ImageFiles>;
}

/// Images from the image store (IMAGE_DIR): the newest valid one, locked while in use.
pub struct StoreImages {
    pub dir: PathBuf,
}

impl ImageProvider for StoreImages {
    fn find(&self, release: &str, arch: &str) -> anyhow::Result<ImageFiles> {
        let store = images::ImageStore::open(&self.dir)?;
        let img = store.find_newest(release, arch)?;
        Ok(ImageFiles {
            kernel: img.kernel.clone(),
            initrd: img.initrd.clone(),
            squashfs: img.squashfs.clone(),
            version: img.version.clone(),
            _guard: Some(Box::new(img)),
        })
    }
}

/// One image's files in a directory (`kernel`, `initrd`, `squashfs`), without a store:
/// for tests and benchmarks that drive the runner with a fake backend.
pub struct DirImages(pub PathBuf);

impl ImageProvider for DirImages {
    fn find(&self, _release: &str, _arch: &str) -> anyhow::Result<ImageFiles> {
        Ok(ImageFiles {
            kernel: self.0.join("kernel"),
            initrd: self.0.join("initrd"),
            squashfs: self.0.join("squashfs"),
            version: "fake".into(),
            _guard: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// The guest or the checks failed.
    Fail,
    /// The harness could not run the test (missing image, qemu, bad config, ...).
    Error,
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub name: String,
    pub backend: String,
    /// Which installer ran: `script` or `curtin`.
    pub installer: String,
    pub status: Status,
    /// What went wrong, one item per problem.
    pub errors: Vec<String>,
    /// Wall time per VM phase.
    pub phases: Vec<(String, Duration)>,
    /// Harness work outside the VMs, per step.
    pub steps: Vec<(String, Duration)>,
    pub total: Duration,
    pub workdir: PathBuf,
}

impl TestResult {
    pub fn overhead(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }
}

/// Where progress goes: stderr and the extended log (CURTIN_VMTEST_LOG).
#[derive(Clone)]
pub struct Progress {
    log: Arc<Mutex<Option<std::fs::File>>>,
    start: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(log: Option<&Path>, quiet: bool) -> Progress {
        let f = log.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Progress {
            log: Arc::new(Mutex::new(f)),
            start: Instant::now(),
            quiet,
        }
    }

    pub fn say(&self, test: &str, msg: &str) {
        let line = format!(
            "[{:>7.1}s] {test}: {msg}",
            self.start.elapsed().as_secs_f64()
        );
        if !self.quiet {
            eprintln!("{line}");
        }
        if let Some(f) = self.log.lock().unwrap().as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Everything a test run needs besides the test.
pub struct RunContext<'a> {
    pub settings: &'a Settings,
    pub backend: &'a dyn Backend,
    pub images: &'a dyn ImageProvider,
    pub curtin_src: Option<&'a Path>,
    pub progress: Progress,
    /// Attach the serial console of this phase (`install` / `boot`) to the terminal.
    pub console: Option<String>,
}

struct Timer {
    steps: Vec<(String, Duration)>,
    t: Instant,
}

impl Timer {
    fn new() -> Timer {
        Timer {
            steps: Vec::new(),
            t: Instant::now(),
        }
    }
    fn lap(&mut self, name: &str) {
        self.steps.push((name.into(), self.t.elapsed()));
        self.t = Instant::now();
    }
    /// Restart without recording (time spent in a VM).
    fn skip(&mut self) {
        self.t = Instant::now();
    }
}

/// Ctrl-A x at an attached console stopped `phase` on purpose: the test did not finish,
/// and neither the installer nor the installed system failed.
fn left_at_console(r: TestResult, phase: &str) -> TestResult {
    let why = format!(
        "{phase} phase {}: left with Ctrl-A x, test not finished",
        Outcome::Stopped
    );
    fail(r, Status::Error, vec![why])
}

fn fail(mut r: TestResult, status: Status, errs: Vec<String>) -> TestResult {
    r.status = status;
    r.errors.extend(errs);
    r
}

fn installer_name(kind: InstallerKind) -> &'static str {
    match kind {
        InstallerKind::Script => "script",
        InstallerKind::Curtin => "curtin",
    }
}

/// Runs one test end to end; never panics on guest or config problems.
pub fn run_test(test: &TestConfig, ctx: &RunContext) -> TestResult {
    let start = Instant::now();
    let s = ctx.settings;
    let mut r = TestResult {
        name: test.name.clone(),
        backend: ctx.backend.name(),
        installer: installer_name(test.installer(ctx.curtin_src.is_some())).into(),
        status: Status::Pass,
        errors: Vec::new(),
        phases: Vec::new(),
        steps: Vec::new(),
        total: Duration::ZERO,
        workdir: s.topdir.join(&test.name),
    };
    let mut r = if s.reuse_topdir {
        let w = WorkDir::existing(&s.topdir, &test.name);
        ctx.progress.say(
            &test.name,
            "re-verifying kept data (CURTIN_VMTEST_REUSE_TOPDIR)",
        );
        let mut timer = Timer::new();
        if !w.collect().is_dir() {
            r = fail(
                r,
                Status::Error,
                vec![format!(
                    "{} has no kept collect/ to re-verify",
                    w.root.display()
                )],
            );
        } else {
            let fails = verdict::check_expectations(&w.collect(), &test.vmtest.expect);
            timer.lap("verify");
            r.steps = timer.steps;
            if !fails.is_empty() {
                r = fail(r, Status::Fail, fails);
            }
        }
        r
    } else {
        run_phases(test, ctx, r)
    };
    r.total = start.elapsed();
    if !s.reuse_topdir {
        finish(test, ctx, &mut r);
    }
    let verdict = match r.status {
        Status::Pass => "PASS".to_string(),
        Status::Fail => format!("FAIL: {}", r.errors.first().cloned().unwrap_or_default()),
        Status::Error => format!("ERROR: {}", r.errors.first().cloned().unwrap_or_default()),
    };
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1}", d.as_secs_f64() * 1000.0))
        .collect();
    ctx.progress.say(
        &test.name,
        &format!(
            "{verdict} ({:.1}s; harness overhead {:.0} ms: {})",
            r.total.as_secs_f64(),
            r.overhead().as_secs_f64() * 1000.0,
            steps.join(", ")
        ),
    );
    r
}

/// Writes logs/success or logs/errors.json and applies KEEP_DATA_PASS/FAIL.
fn finish(test: &TestConfig, ctx: &RunContext, r: &mut TestResult) {
    let w = WorkDir {
        root: r.workdir.clone(),
    };
    if !w.root.is_dir() {
        return;
    }
    let _ = std::fs::create_dir_all(w.logs());
    let phases: serde_json::Map<String, serde_json::Value> = r
        .phases
        .iter()
        .map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64())))
        .collect();
    let steps: serde_json::Map<String, serde_json::Value> = r
        .steps
        .iter()
        .map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64() * 1000.0)))
        .collect();
    let record = serde_json::json!({
        "test": test.name, "backend": r.backend, "installer": r.installer,
        "status": format!("{:?}", r.status).to_lowercase(),
        "errors": r.errors, "phases_s": phases, "harness_steps_ms": steps,
        "total_s": r.total.as_secs_f64(),
    });
    let _ = match r.status {
        Status::Pass => std::fs::write(
            w.logs().join("success"),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        ),
        _ => std::fs::write(
            w.logs().join("errors.json"),
            serde_json::to_string_pretty(&record).unwrap_or_default(),
        ),
    };
    let keep = if r.status == Status::Pass {
        ctx.settings.keep_pass
    } else {
        ctx.settings.keep_fail
    };
    if let Err(e) = w.apply_keep(keep) {
        r.errors
            .push(format!("could not remove data not kept: {e}"));
    }
}

fn run_phases(test: &TestConfig, ctx: &RunContext, mut r: TestResult) -> TestResult {
    let s = ctx.settings;
    let v = &test.vmtest;
    let say = |m: &str| ctx.progress.say(&test.name, m);
    let mut timer = Timer::new();
    macro_rules! try_or {
        ($e:expr, $status:expr, $what:expr) => {
            match $e {
                Ok(x) => x,
                Err(e) => {
                    r.steps = std::mem::take(&mut timer.steps);
                    return fail(r, $status, vec![format!("{}: {e:#}", $what)]);
                }
            }
        };
    }
    let w = try_or!(
        WorkDir::create(&s.topdir, &test.name),
        Status::Error,
        "work dir"
    );
    for d in &test.disks {
        try_or!(
            create_sparse_disk(&w.disks().join(&d.file_name), d.size),
            Status::Error,
            format!("disk {}", d.file_name)
        );
    }
    timer.lap("disks");
    let image = try_or!(ctx.images.find(&v.release, &v.arch), Status::Error, "image");
    timer.lap("image lookup");

    // HTTP: seed and squashfs for the install phase, webhook events into logs/.
    let http = try_or!(HttpServer::start(), Status::Error, "http server");
    let _ = http.log_posts_to(w.logs().join("webhooks-events.json"));
    let webhook = format!("http://{}:{}/webhook", userdata::HOST_IP, http.port());
    let installer = test.installer(ctx.curtin_src.is_some());
    let pack = try_or!(
        userdata::pack_installer(test, ctx.curtin_src, &webhook, s.apt_proxy.as_deref()),
        Status::Error,
        "installer"
    );
    let packed = try_or!(pack.render(), Status::Error, "installer");
    if installer == InstallerKind::Curtin {
        // What the harness adds to the test's config, for the developer to read (the
        // packed copy is inside install/user-data's base64 payload).
        let added = userdata::curtin_vmtest_config(&webhook, s.apt_proxy.as_deref());
        try_or!(
            std::fs::write(
                w.install().join("curtin-vmtest.yaml"),
                serde_yaml::to_string(&added).unwrap_or_default()
            ),
            Status::Error,
            "install/curtin-vmtest.yaml"
        );
    }
    timer.lap("pack");
    let user_data = userdata::install_user_data(&packed, s.apt_proxy.as_deref());
    let meta = userdata::meta_data(&test.name, "install");
    try_or!(
        std::fs::write(w.install().join("user-data"), &user_data),
        Status::Error,
        "install/user-data"
    );
    try_or!(
        std::fs::write(w.install().join("meta-data"), &meta),
        Status::Error,
        "install/meta-data"
    );
    http.serve(
        "/user-data",
        Content::Bytes(Arc::new(user_data.into_bytes())),
    );
    http.serve("/meta-data", Content::Bytes(Arc::new(meta.into_bytes())));
    http.serve("/vendor-data", Content::Bytes(Arc::new(Vec::new())));
    http.serve("/root/squashfs", Content::File(image.squashfs.clone()));
    timer.lap("seed+http");

    let memory_mib = v.memory_mib.unwrap_or(s.vmram_mib);
    let vcpus = v.cpus.unwrap_or(s.nr_cpus);
    let nics: Vec<Nic> = test.macs.iter().map(|m| Nic { mac: m.clone() }).collect();
    let install_disks: Vec<Disk> = test
        .disks
        .iter()
        .map(|d| {
            let mut disk =
                Disk::virtio(w.disks().join(&d.file_name), &d.serial, d.block_size, false);
            // The storage config's disks take the test's driver; extra disks stay virtio.
            if !d.id.starts_with("extra_disk_") {
                disk.bus = match v.disk_driver {
                    DiskDriver::VirtioBlk => DiskBus::VirtioBlk,
                    DiskDriver::Nvme => DiskBus::Nvme,
                    DiskDriver::Scsi => DiskBus::Scsi,
                };
                disk.wwn = d.wwn.clone();
                if v.multipath {
                    // Multipath needs a path identity (WWN/serial) the guest sees twice:
                    // that is SCSI, as in curtin's multipath tests.
                    disk.bus = DiskBus::Scsi;
                    disk.paths = 2;
                }
            }
            disk
        })
        .collect();
    let install = PhaseSpec {
        name: "install".into(),
        boot: Boot::Direct {
            kernel: image.kernel.clone(),
            initrd: Some(image.initrd.clone()),
            cmdline: userdata::install_cmdline(http.port(), &test.macs[0], &v.extra_kernel_args),
        },
        disks: install_disks.clone(),
        nics: nics.clone(),
        memory_mib,
        vcpus,
        serial_log: w.logs().join("install-serial.log"),
        log_dir: w.logs(),
        host_ports: vec![http.port()],
        timeout: match v.timeouts.install {
            Some(t) if !s.timeouts_from_env.0 => Duration::from_secs(t),
            _ => s.install_timeout,
        },
        interactive: ctx.console.as_deref() == Some("install"),
    };
    say(&format!(
        "install: starting ({}, installer {}, image {}, {} MiB, {} vCPU, timeout {}s)",
        r.backend,
        match (installer, ctx.curtin_src) {
            (InstallerKind::Curtin, Some(src)) => format!("curtin from {}", src.display()),
            _ => "script".to_string(),
        },
        image.version,
        memory_mib,
        vcpus,
        install.timeout.as_secs()
    ));
    timer.lap("prepare install");
    let res = try_or!(
        run_phase_with_heartbeat(ctx, &test.name, &install),
        Status::Error,
        "install phase"
    );
    timer.skip();
    r.phases.push(("install".into(), res.wall));
    say(&format!(
        "install: {} after {:.1}s (served {} MiB in {} requests)",
        res.outcome,
        res.wall.as_secs_f64(),
        http.bytes_sent() >> 20,
        http.requests()
    ));
    drop(http);
    let serial = String::from_utf8_lossy(&std::fs::read(&install.serial_log).unwrap_or_default())
        .into_owned();
    let tail = || {
        format!(
            "install serial log tail:\n{}",
            crate::backend::qemu::tail(&install.serial_log, 25)
        )
    };
    match &res.outcome {
        Outcome::PowerOff => {}
        // Left at the console on purpose: the test did not finish, nor did it fail.
        Outcome::Stopped => {
            r.steps = timer.steps;
            return left_at_console(r, "install");
        }
        other => {
            r.steps = timer.steps;
            let mut errs = vec![format!("install phase {other}")];
            if let Err(e) = verdict::install_verdict(&serial) {
                errs.extend(e);
            }
            errs.push(tail());
            return fail(r, Status::Fail, errs);
        }
    }
    if let Err(mut e) = verdict::install_verdict(&serial) {
        r.steps = timer.steps;
        e.push(tail());
        return fail(r, Status::Fail, e);
    }
    timer.lap("install verdict");

    // Boot phase: installed disks, output disk second, extra disks, read-only seed.
    let output = w.boot().join("output_disk.img");
    try_or!(
        create_sparse_disk(&output, OUTPUT_DISK_SIZE),
        Status::Error,
        "output disk"
    );
    let seed_path = w.boot().join("seed.img");
    let boot_ud = userdata::boot_user_data(test);
    let boot_meta = userdata::meta_data(&test.name, "boot");
    try_or!(
        std::fs::write(w.boot().join("user-data"), &boot_ud),
        Status::Error,
        "boot/user-data"
    );
    try_or!(
        seed::SeedImage::new()
            .file("user-data", boot_ud.into_bytes())
            .file("meta-data", boot_meta.into_bytes())
            .write_vfat(&seed_path),
        Status::Error,
        "boot seed"
    );
    let n_storage = test
        .disks
        .iter()
        .filter(|d| !d.id.starts_with("extra_disk_"))
        .count();
    let mut boot_disks: Vec<Disk> = install_disks[..n_storage].to_vec();
    boot_disks.push(Disk::virtio(output.clone(), OUTPUT_DISK_SERIAL, 512, false));
    boot_disks.extend(install_disks[n_storage..].iter().cloned());
    boot_disks.push(Disk::virtio(seed_path, "seed", 512, true));
    // BIOS (SeaBIOS) cannot boot from a disk with 4 KiB logical sectors; UEFI can.
    let bios_cannot = !v.uefi && install_disks.first().is_some_and(|d| d.block_size == 4096);
    if ctx.backend.boots_firmware() && bios_cannot {
        say(
            "boot: SeaBIOS cannot boot a disk with 4 KiB sectors: booting the installed grub entry directly",
        );
    }
    let boot_method = if ctx.backend.boots_firmware() && !bios_cannot {
        Boot::Firmware { uefi: v.uefi }
    } else {
        let disks: Vec<(PathBuf, u32)> = install_disks[..n_storage]
            .iter()
            .map(|d| (d.path.clone(), d.block_size))
            .collect();
        let entry = try_or!(
            crate::bootinfo::find_boot(&disks, &w.boot()),
            Status::Fail,
            "finding the installed kernel"
        );
        say(&format!(
            "boot: direct boot of {} ({})",
            entry.cmdline, entry.source
        ));
        Boot::Direct {
            kernel: entry.kernel,
            initrd: entry.initrd,
            cmdline: format!("{} panic=-1", entry.cmdline),
        }
    };
    let boot = PhaseSpec {
        name: "boot".into(),
        boot: boot_method,
        disks: boot_disks,
        nics,
        memory_mib,
        vcpus,
        serial_log: w.logs().join("boot-serial.log"),
        log_dir: w.logs(),
        host_ports: Vec::new(),
        timeout: match v.timeouts.boot {
            Some(t) if !s.timeouts_from_env.1 => Duration::from_secs(t),
            _ => s.boot_timeout,
        },
        interactive: ctx.console.as_deref() == Some("boot"),
    };
    timer.lap("prepare boot");
    say(&format!(
        "boot: starting (timeout {}s)",
        boot.timeout.as_secs()
    ));
    let res = try_or!(
        run_phase_with_heartbeat(ctx, &test.name, &boot),
        Status::Error,
        "boot phase"
    );
    timer.skip();
    r.phases.push(("boot".into(), res.wall));
    say(&format!(
        "boot: {} after {:.1}s",
        res.outcome,
        res.wall.as_secs_f64()
    ));
    if res.outcome == Outcome::Stopped {
        r.steps = timer.steps;
        return left_at_console(r, "boot");
    }
    if res.outcome != Outcome::PowerOff {
        r.steps = timer.steps;
        let errs = vec![
            format!("boot phase {}", res.outcome),
            format!(
                "boot serial log tail:\n{}",
                crate::backend::qemu::tail(&boot.serial_log, 25)
            ),
        ];
        return fail(r, Status::Fail, errs);
    }
    let rep = try_or!(
        crate::collect::extract_output_disk(&output, &w.collect(), COLLECT_BUDGET),
        Status::Fail,
        "collect"
    );
    if !rep.rejected.is_empty() {
        let lines: Vec<String> = rep
            .rejected
            .iter()
            .map(|(n, why)| format!("{n}\t{why}"))
            .collect();
        let _ = std::fs::write(
            w.logs().join("collect-rejected.txt"),
            lines.join("\n") + "\n",
        );
        say(&format!(
            "collect: rejected {} entries (see logs/collect-rejected.txt)",
            rep.rejected.len()
        ));
    }
    timer.lap("collect");
    let mut fails = Vec::new();
    if rep.files == 0 {
        fails.push(format!("the output disk held no files (collect scripts did not run?); boot serial log tail:\n{}", crate::backend::qemu::tail(&boot.serial_log, 25)));
    }
    fails.extend(verdict::check_expectations(&w.collect(), &v.expect));
    timer.lap("verify");
    r.steps = timer.steps;
    say(&format!(
        "collect: {} files, {} KiB; {} expectations, {} failed",
        rep.files,
        rep.bytes >> 10,
        v.expect.len(),
        fails.len()
    ));
    if fails.is_empty() {
        r
    } else {
        fail(r, Status::Fail, fails)
    }
}

/// How often a running phase reports itself.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// The last non-empty line of the serial log, cleaned of escape sequences, for progress.
fn last_serial_line(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&data[start..]);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out = String::new();
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) if !c.is_control() => out.push(c),
            _ => {}
        }
    }
    out.chars().take(100).collect()
}

/// Runs a phase, printing every minute how long it has run and the console's last line,
/// so a slow (TCG) install is visibly alive.
fn run_phase_with_heartbeat(
    ctx: &RunContext,
    test: &str,
    spec: &PhaseSpec,
) -> anyhow::Result<crate::backend::PhaseResult> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let start = Instant::now();
            let mut next = HEARTBEAT;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                // With the console attached the guest's output is on the terminal
                // already; a progress line would land in the middle of it.
                if start.elapsed() >= next && !spec.interactive {
                    next += HEARTBEAT;
                    ctx.progress.say(
                        test,
                        &format!(
                            "{}: running {}s; console: {}",
                            spec.name,
                            start.elapsed().as_secs(),
                            last_serial_line(&spec.serial_log)
                        ),
                    );
                }
            }
        });
        let r = ctx.backend.run_phase(spec);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
}

/// Checks, before any VM starts, that every test's installer can be packed: a test
/// that needs curtin (`installer: curtin`, or any unpinned test when a curtin tree is
/// given) needs a valid curtin source tree. One error naming the tests and the fix.
pub fn check_installers(tests: &[TestConfig], curtin_src: Option<&Path>) -> anyhow::Result<()> {
    let need: Vec<&str> = tests
        .iter()
        .filter(|t| t.installer(curtin_src.is_some()) == InstallerKind::Curtin)
        .map(|t| t.name.as_str())
        .collect();
    if need.is_empty() {
        return Ok(());
    }
    match curtin_src {
        None => anyhow::bail!(
            "{} set{} `vmtest.installer: curtin` but no curtin source tree was given: pass --curtin DIR or set CURTIN_SRC (a curtin checkout), or leave out these tests",
            need.join(", "),
            if need.len() == 1 { "s" } else { "" }
        ),
        Some(src) => userdata::check_curtin_tree(src)
            .map_err(|e| anyhow::anyhow!("--curtin / CURTIN_SRC: {e:#}")),
    }
}

/// Runs tests, `settings.parallel` at a time; results in the order given. When the
/// installers cannot be packed ([`check_installers`]) no VM starts and every test is an
/// error with that reason.
pub fn run_all(tests: &[TestConfig], ctx: &RunContext) -> Vec<TestResult> {
    if let Err(e) = check_installers(tests, ctx.curtin_src) {
        let msg = format!("{e:#}");
        ctx.progress.say("vmtest", &format!("no test run: {msg}"));
        return tests
            .iter()
            .map(|t| TestResult {
                name: t.name.clone(),
                backend: ctx.backend.name(),
                installer: installer_name(t.installer(ctx.curtin_src.is_some())).into(),
                status: Status::Error,
                errors: vec![msg.clone()],
                phases: Vec::new(),
                steps: Vec::new(),
                total: Duration::ZERO,
                workdir: ctx.settings.topdir.join(&t.name),
            })
            .collect();
    }
    let n = ctx.settings.parallel.max(1).min(tests.len().max(1));
    if n <= 1 {
        return tests.iter().map(|t| run_test(t, ctx)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; tests.len()]);
    std::thread::scope(|sc| {
        for _ in 0..n {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= tests.len() {
                        break;
                    }
                    let r = run_test(&tests[i], ctx);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

/// The summary table printed at the end of a run.
pub fn summary_table(results: &[TestResult]) -> String {
    let mut s = String::new();
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    s.push_str(&format!(
        "{:<w$}  {:<6}  {:<9}  {:<9}  {:>9}  {:>9}  {:>9}  {:>8}\n",
        "test", "result", "backend", "installer", "install", "boot", "total", "harness"
    ));
    for r in results {
        let phase = |n: &str| {
            r.phases
                .iter()
                .find(|(p, _)| p == n)
                .map(|(_, d)| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        };
        let st = match r.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
        };
        s.push_str(&format!(
            "{:<w$}  {:<6}  {:<9}  {:<9}  {:>9}  {:>9}  {:>8.1}s  {:>6.0}ms\n",
            r.name,
            st,
            r.backend,
            r.installer,
            phase("install"),
            phase("boot"),
            r.total.as_secs_f64(),
            r.overhead().as_secs_f64() * 1000.0
        ));
    }
    let pass = results.iter().filter(|r| r.status == Status::Pass).count();
    s.push_str(&format!(
        "{} passed, {} failed\n",
        pass,
        results.len() - pass
    ));
    s
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML for CI.
pub fn junit_xml(results: &[TestResult]) -> String {
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let errors = results.iter().filter(|r| r.status == Status::Error).count();
    let total: f64 = results.iter().map(|r| r.total.as_secs_f64()).sum();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vmtest\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">\n",
        results.len()
    );
    for r in results {
        s.push_str(&format!(
            "  <testcase classname=\"vmtest.{}\" name=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&r.backend),
            xml_escape(&r.name),
            r.total.as_secs_f64()
        ));
        let body = xml_escape(&r.errors.join("\n"));
        match r.status {
            Status::Pass => {}
            Status::Fail => s.push_str(&format!(
                "    <failure message=\"{}\">{body}</failure>\n",
                xml_escape(
                    r.errors
                        .first()
                        .map(|e| e.lines().next().unwrap_or(""))
                        .unwrap_or("")
                )
            )),
            Status::Error => s.push_str(&format!(
                "    <error message=\"{}\">{body}</error>\n",
                xml_escape(
                    r.errors
                        .first()
                        .map(|e| e.lines().next().unwrap_or(""))
                        .unwrap_or("")
                )
            )),
        }
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|(n, d)| format!("{n}={:.1}s", d.as_secs_f64()))
            .collect();
        s.push_str(&format!(
            "    <system-out>work dir: {}\ninstaller: {}\nphases: {}\nharness overhead: {:.0} ms</system-out>\n",
            xml_escape(&r.workdir.display().to_string()),
            xml_escape(&r.installer),
            phases.join(" "),
            r.overhead().as_secs_f64() * 1000.0
        ));
        s.push_str("  </testcase>\n");
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_line_for_progress() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.log");
        std::fs::write(
            &p,
            "a\n[\u{1b}[0;32m  OK  \u{1b}[0m] Reached target Network.\r\n\n",
        )
        .unwrap();
        assert_eq!(last_serial_line(&p), "[  OK  ] Reached target Network.");
        assert_eq!(last_serial_line(&d.path().join("none")), "");
    }
}
