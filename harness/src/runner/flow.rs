//! The run flow of one test as phase functions, each returning a typed [`RunError`] on
//! the first thing that stops it: [`prepare`] (work dir, disks, image, HTTP server, packed
//! installer, install seed), [`install`] (the install VM and its verdict), [`boot`] (output
//! disk, boot seed, the installed system's VM) and [`collect_and_verify`] (the output disk
//! into collect/, one check result per expectation).

use std::sync::Arc;

use super::error::{RunError, SerialTail};
use super::heartbeat::run_phase_with_heartbeat;
use super::timer::Timer;
use super::{COLLECT_BUDGET, OUTPUT_DISK_SIZE, RunContext, TestResult};
use crate::backend::{Boot, Disk, DiskBus, Nic, Outcome, Phase, PhaseResult, PhaseSpec};
use crate::config::{DiskDriver, InstallerKind, TestConfig};
use crate::handoff::{HANDOFF_DISK_FILE, HANDOFF_DISK_SERIAL, HANDOFF_DISK_SIZE};
use crate::http::{Content, HttpServer};
use crate::installer;
use crate::userdata::{self, OUTPUT_DISK_SERIAL};
use crate::verdict;
use crate::workdir::{WorkDir, create_sparse_disk};

/// One test's run in progress: what the phases share and record.
pub(super) struct Run<'a> {
    pub test: &'a TestConfig,
    pub ctx: &'a RunContext<'a>,
    pub r: &'a mut TestResult,
    pub timer: Timer,
}

impl Run<'_> {
    fn say(&self, msg: &str) {
        self.ctx.progress.say(&self.test.name, msg);
    }

    /// Runs one VM phase with the heartbeat and records its wall time. A phase left at
    /// the console stops the run; any other outcome is for the caller to judge.
    fn run_vm(&mut self, spec: &PhaseSpec) -> Result<PhaseResult, RunError> {
        let res =
            run_phase_with_heartbeat(self.ctx, &self.test.name, spec).map_err(
                |source| match source {
                    crate::backend::BackendError::Interrupted(i) => RunError::Interrupted {
                        phase: spec.phase,
                        signal: i.signal,
                    },
                    source => RunError::Backend {
                        phase: spec.phase,
                        source,
                    },
                },
            )?;
        self.timer.skip();
        self.r.phases.push((spec.phase, res.wall));
        if let Outcome::Interrupted(signal) = res.outcome {
            return Err(RunError::Interrupted {
                phase: spec.phase,
                signal,
            });
        }
        Ok(res)
    }
}

/// The serial tail shown with a phase's failure.
fn tail(spec: &PhaseSpec) -> SerialTail {
    SerialTail {
        phase: spec.phase,
        text: crate::serial_log::tail(&spec.serial_log, 25),
    }
}

fn write(file: &'static str, path: std::path::PathBuf, data: &[u8]) -> Result<(), RunError> {
    std::fs::write(path, data).map_err(|source| RunError::Write { file, source })
}

/// Everything the install phase needs, made by [`prepare`]. The HTTP server serves the
/// install seed and squashfs for as long as this lives.
pub(super) struct Prepared {
    http: HttpServer,
    spec: PhaseSpec,
    /// Keeps the image locked in its store while the install VM reads it.
    _image: super::ImageFiles,
}

/// The VM's disks as the install phase attaches them: the storage config's disks on the
/// test's bus (NVMe for those curtin's vmtest makes NVMe, [`crate::config::DiskSpec::is_nvme`]), then the
/// extra disks (virtio).
fn install_disks(test: &TestConfig, w: &WorkDir) -> Vec<Disk> {
    let v = &test.vmtest;
    test.disks
        .iter()
        .map(|d| {
            let mut disk =
                Disk::virtio(w.disks().join(&d.file_name), &d.serial, d.block_size, false);
            disk.bus = match d.attached_as(v) {
                DiskDriver::VirtioBlk => DiskBus::VirtioBlk,
                DiskDriver::Nvme => DiskBus::Nvme,
                DiskDriver::Scsi => DiskBus::Scsi,
            };
            if !d.is_extra() {
                disk.wwn = d.wwn.clone();
                if v.multipath {
                    // Multipath needs a path identity (WWN/serial) the guest sees twice.
                    disk.paths = 2;
                }
            }
            disk
        })
        .collect()
}

/// The phase's VM, as both phases share it: size, NICs, logs, timeout, console.
fn phase_spec(run: &Run, w: &WorkDir, phase: Phase, boot: Boot, disks: Vec<Disk>) -> PhaseSpec {
    let (s, v) = (run.ctx.settings, &run.test.vmtest);
    let test_timeout = match phase {
        Phase::Install => v.timeouts.install,
        Phase::Boot => v.timeouts.boot,
    };
    // Beyond the harness's own ports the guest reaches only what the run and the test
    // allow, in both phases.
    let mut outbound = s.outbound.clone();
    outbound.extend(&v.outbound);
    PhaseSpec {
        phase,
        boot,
        disks,
        nics: run
            .test
            .macs
            .iter()
            .map(|m| Nic { mac: m.clone() })
            .collect(),
        memory_mib: s.memory_mib(v.memory_mib),
        vcpus: s.vcpus(v.cpus),
        serial_log: w.logs().join(format!("{phase}-serial.log")),
        serial_log_cap: s.serial_log_cap,
        log_dir: w.logs(),
        host_ports: Vec::new(),
        outbound,
        timeout: s.timeout(phase, test_timeout),
        interactive: run.ctx.console == Some(phase),
        uefi_nvram: v.uefi.then(|| w.disks().join(UEFI_NVRAM)),
    }
}

/// The test's own UEFI variable store under disks/ (curtin's vmtest name), made before
/// the install phase and used by both phases.
pub const UEFI_NVRAM: &str = "ovmf_vars.fd";

/// What curtin's webhook events say about a failed install: the step that failed and
/// the end of curtin's install log (nothing when curtin did not run or report).
fn curtin_failure(w: &WorkDir) -> Vec<verdict::InstallProblem> {
    // An unreadable events file only means there is nothing more to tell.
    crate::curtin_events::read(&w.logs().join("webhooks-events.json"))
        .map(|report| report.problems())
        .unwrap_or_default()
}

/// Whether the boot phase boots the installed kernel directly, from the handoff the
/// install phase writes ([`crate::handoff`]), rather than through firmware and the
/// installed boot loader: on a backend without firmware (the builtin microVM), and under
/// BIOS for a first disk with 4 KiB sectors, which SeaBIOS cannot boot (UEFI can).
pub fn boots_directly(test: &TestConfig, backend: &dyn crate::backend::Backend) -> bool {
    let bios_cannot = !test.vmtest.uefi && test.disks.first().is_some_and(|d| d.block_size == 4096);
    !backend.boots_firmware() || bios_cannot
}

/// Disks, image, HTTP server, packed installer and install seed.
pub(super) fn prepare(run: &mut Run, w: &WorkDir) -> Result<Prepared, RunError> {
    let (test, ctx) = (run.test, run.ctx);
    let s = ctx.settings;
    let v = &test.vmtest;
    for d in &test.disks {
        create_sparse_disk(&w.disks().join(&d.file_name), d.size).map_err(|source| {
            RunError::Disk {
                file: d.file_name.clone(),
                source,
            }
        })?;
    }
    if v.uefi {
        ctx.backend
            .new_uefi_nvram(&w.disks().join(UEFI_NVRAM))
            .map_err(RunError::UefiVars)?;
    }
    run.timer.lap("disks");
    let image = ctx
        .images
        .find(&v.release, &v.arch)
        .map_err(RunError::Image)?;
    run.timer.lap("image lookup");

    // HTTP: seed and squashfs for the install phase, webhook events into logs/.
    let http = HttpServer::start().map_err(RunError::Http)?;
    let _ = http.log_posts_to(w.logs().join("webhooks-events.json"));
    let webhook = format!("http://{}:{}/webhook", userdata::HOST_IP, http.port());
    let installer = test.installer(ctx.curtin_src.is_some());
    let handoff = boots_directly(test, ctx.backend);
    let pack = installer::pack_installer(
        test,
        &installer::PackInputs {
            curtin_src: ctx.curtin_src,
            webhook: &webhook,
            apt_proxy: s.apt_proxy.as_deref(),
            extra_config: s.extra_config.as_ref(),
            handoff,
        },
    )
    .map_err(RunError::Installer)?;
    let packed = pack
        .render()
        .map_err(|e| RunError::Installer(installer::InstallerError::Render(e)))?;
    if let Some(added) = pack.get(installer::CURTIN_VMTEST_CFG) {
        // What the harness adds to the test's config for curtin, for the developer to
        // read (the packed copy is inside install/user-data's base64 payload).
        write(
            "install/curtin-vmtest.yaml",
            w.install().join("curtin-vmtest.yaml"),
            added,
        )?;
    }
    run.timer.lap("pack");
    let user_data = userdata::install_user_data(&packed, s.apt_proxy.as_deref());
    let meta = userdata::meta_data(&test.name, "install");
    write(
        "install/user-data",
        w.install().join("user-data"),
        user_data.as_bytes(),
    )?;
    write(
        "install/meta-data",
        w.install().join("meta-data"),
        meta.as_bytes(),
    )?;
    http.serve(
        "/user-data",
        Content::Bytes(Arc::new(user_data.into_bytes())),
    );
    http.serve("/meta-data", Content::Bytes(Arc::new(meta.into_bytes())));
    http.serve("/vendor-data", Content::Bytes(Arc::new(Vec::new())));
    http.serve("/root/squashfs", Content::File(image.squashfs.clone()));
    run.timer.lap("seed+http");

    let boot = Boot::Direct {
        kernel: image.kernel.clone(),
        initrd: Some(image.initrd.clone()),
        cmdline: userdata::install_cmdline(http.port(), &test.macs[0], &v.extra_kernel_args),
    };
    let mut disks = install_disks(test, w);
    if handoff {
        // Attached last, so the storage config's disks keep the names they would have.
        let path = w.disks().join(HANDOFF_DISK_FILE);
        create_sparse_disk(&path, HANDOFF_DISK_SIZE).map_err(|source| RunError::Disk {
            file: format!("disks/{HANDOFF_DISK_FILE}"),
            source,
        })?;
        disks.push(Disk::virtio(path, HANDOFF_DISK_SERIAL, 512, false));
    }
    let mut spec = phase_spec(run, w, Phase::Install, boot, disks);
    spec.host_ports = vec![http.port()];
    run.say(&format!(
        "install: starting ({}, installer {}, image {}, {} MiB, {} vCPU, timeout {}s)",
        run.r.backend,
        match (installer, ctx.curtin_src) {
            (InstallerKind::Curtin, Some(src)) => format!("curtin from {}", src.display()),
            _ => "script".to_string(),
        },
        image.version,
        spec.memory_mib,
        spec.vcpus,
        spec.timeout.as_secs()
    ));
    run.timer.lap("prepare install");
    Ok(Prepared {
        http,
        spec,
        _image: image,
    })
}

/// The install VM, then its verdict: it must power off, and its serial log must say the
/// install finished with none of the failure patterns.
pub(super) fn install(
    run: &mut Run,
    w: &WorkDir,
    prepared: Prepared,
) -> Result<PhaseSpec, RunError> {
    let Prepared { http, spec, _image } = prepared;
    let res = run.run_vm(&spec)?;
    run.say(&format!(
        "install: {} after {:.1}s (served {} MiB in {} requests)",
        res.outcome,
        res.wall.as_secs_f64(),
        http.bytes_sent() >> 20,
        http.requests()
    ));
    drop(http);
    match res.outcome {
        Outcome::PowerOff => {}
        // Left at the console on purpose: the test did not finish, nor did it fail.
        Outcome::Stopped => return Err(RunError::LeftAtConsole(Phase::Install)),
        outcome => {
            return Err(RunError::PhaseEnded {
                phase: Phase::Install,
                outcome,
                problems: verdict::install_verdict_of_log(&spec.serial_log)
                    .err()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(curtin_failure(w))
                    .collect(),
                tail: tail(&spec),
            });
        }
    }
    verdict::install_verdict_of_log(&spec.serial_log).map_err(|mut problems| {
        problems.extend(curtin_failure(w));
        RunError::InstallVerdict {
            problems,
            tail: tail(&spec),
        }
    })?;
    run.timer.lap("install verdict");
    Ok(spec)
}

/// The installed system's VM: installed disks, the output disk second, extra disks, a
/// read-only seed whose user-data runs the collect scripts. Returns the boot phase's
/// spec (its serial log) and the output disk.
pub(super) fn boot(
    run: &mut Run,
    w: &WorkDir,
    install: &PhaseSpec,
) -> Result<(PhaseSpec, std::path::PathBuf), RunError> {
    let (test, ctx) = (run.test, run.ctx);
    let v = &test.vmtest;
    let output = w.boot().join("output_disk.img");
    create_sparse_disk(&output, OUTPUT_DISK_SIZE).map_err(|source| RunError::Disk {
        file: "boot/output_disk.img".into(),
        source,
    })?;
    let seed_path = w.boot().join("seed.img");
    let boot_ud = userdata::boot_user_data(test);
    let boot_meta = userdata::meta_data(&test.name, "boot");
    write(
        "boot/user-data",
        w.boot().join("user-data"),
        boot_ud.as_bytes(),
    )?;
    seed::SeedImage::new()
        .file("user-data", boot_ud.into_bytes())
        .file("meta-data", boot_meta.into_bytes())
        .write_vfat(&seed_path)?;
    let n_storage = test.disks.iter().filter(|d| !d.is_extra()).count();
    // The installed disks, without the handoff disk (the install's alone).
    let installed: Vec<&Disk> = install
        .disks
        .iter()
        .filter(|d| d.serial != HANDOFF_DISK_SERIAL)
        .collect();
    let mut disks: Vec<Disk> = installed[..n_storage].iter().map(|&d| d.clone()).collect();
    disks.push(Disk::virtio(output.clone(), OUTPUT_DISK_SERIAL, 512, false));
    disks.extend(installed[n_storage..].iter().map(|&d| d.clone()));
    disks.push(Disk::virtio(
        seed_path,
        userdata::SEED_DISK_SERIAL,
        512,
        true,
    ));
    let method = if boots_directly(test, ctx.backend) {
        if ctx.backend.boots_firmware() {
            run.say("boot: SeaBIOS cannot boot a disk with 4 KiB sectors: booting the installed grub entry directly");
        }
        let entry = crate::handoff::boot_entry(&w.disks().join(HANDOFF_DISK_FILE), &w.boot())
            .map_err(RunError::Handoff)?;
        run.say(&format!(
            "boot: direct boot of {} ({})",
            entry.cmdline, entry.source
        ));
        Boot::Direct {
            kernel: entry.kernel,
            initrd: entry.initrd,
            cmdline: format!("{} panic=-1", entry.cmdline),
        }
    } else {
        Boot::Firmware { uefi: v.uefi }
    };
    let spec = phase_spec(run, w, Phase::Boot, method, disks);
    run.timer.lap("prepare boot");
    run.say(&format!(
        "boot: starting (timeout {}s)",
        spec.timeout.as_secs()
    ));
    let res = run.run_vm(&spec)?;
    run.say(&format!(
        "boot: {} after {:.1}s",
        res.outcome,
        res.wall.as_secs_f64()
    ));
    match res.outcome {
        Outcome::PowerOff => Ok((spec, output)),
        Outcome::Stopped => Err(RunError::LeftAtConsole(Phase::Boot)),
        outcome => Err(RunError::PhaseEnded {
            phase: Phase::Boot,
            outcome,
            problems: Vec::new(),
            tail: tail(&spec),
        }),
    }
}

/// Unpacks the output disk into collect/ and runs the checks on it. An output disk with
/// no files fails the test, after the checks ran (each then shows what is missing).
pub(super) fn collect_and_verify(
    run: &mut Run,
    w: &WorkDir,
    boot: &PhaseSpec,
    output: &std::path::Path,
) -> Result<(), RunError> {
    let rep = crate::collect::extract_output_disk(output, &w.collect(), COLLECT_BUDGET)
        .map_err(RunError::Collect)?;
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
        run.say(&format!(
            "collect: rejected {} entries (see logs/collect-rejected.txt)",
            rep.rejected.len()
        ));
    }
    run.timer.lap("collect");
    verify(run, w);
    let (_, failed) = crate::check::counts(&run.r.checks);
    run.say(&format!(
        "collect: {} files, {} KiB; {} checks, {} failed",
        rep.files,
        rep.bytes >> 10,
        run.r.checks.len(),
        failed
    ));
    if rep.files == 0 {
        return Err(RunError::NothingCollected { tail: tail(boot) });
    }
    Ok(())
}

/// The checks on collect/, one result each: those derived from the config (unless the
/// run or the test turned them off), then the test's own `expect:`.
pub(super) fn verify(run: &mut Run, w: &WorkDir) {
    let derive = crate::checks::derivation_on(run.test, run.ctx.settings.derive_checks);
    run.r.checks = crate::checks::verify(run.test, &w.collect(), derive);
    run.timer.lap("verify");
}

/// The whole flow in a work dir this run created.
pub(super) fn run_phases(run: &mut Run, w: &WorkDir) -> Result<(), RunError> {
    let prepared = prepare(run, w)?;
    let install = install(run, w, prepared)?;
    let (boot, output) = boot(run, w, &install)?;
    collect_and_verify(run, w, &boot, &output)
}
