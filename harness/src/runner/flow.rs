//! The run flow of one test: work dir, disks, seed, HTTP server, packed installer,
//! install phase, install verdict, boot phase with the output disk, collect, expectations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::heartbeat::run_phase_with_heartbeat;
use super::timer::Timer;
use super::{
    COLLECT_BUDGET, OUTPUT_DISK_SIZE, RunContext, Status, TestResult, fail, left_at_console,
};
use crate::backend::{Boot, Disk, DiskBus, Nic, Outcome, PhaseSpec};
use crate::config::{DiskDriver, InstallerKind, TestConfig};
use crate::http::{Content, HttpServer};
use crate::userdata::{self, OUTPUT_DISK_SERIAL};
use crate::verdict;
use crate::workdir::{WorkDir, create_sparse_disk};

pub(super) fn run_phases(test: &TestConfig, ctx: &RunContext, mut r: TestResult) -> TestResult {
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
    let tail = || {
        format!(
            "install serial log tail:\n{}",
            crate::serial_log::tail(&install.serial_log, 25)
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
            if let Err(e) = verdict::install_verdict_of_log(&install.serial_log) {
                errs.extend(e);
            }
            errs.push(tail());
            return fail(r, Status::Fail, errs);
        }
    }
    if let Err(mut e) = verdict::install_verdict_of_log(&install.serial_log) {
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
                crate::serial_log::tail(&boot.serial_log, 25)
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
        fails.push(format!("the output disk held no files (collect scripts did not run?); boot serial log tail:\n{}", crate::serial_log::tail(&boot.serial_log, 25)));
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
