//! Boot benchmark: process start → exit for the same PVH probe (report line, then ACPI
//! power-off) under the builtin VMM, `qemu -M microvm` and `qemu -M pc`, plus the builtin
//! VMM embedded in-process (`vmm::run`, no process start). Runs are interleaved so drift in
//! the host's load hits every column alike; medians of BENCH_RUNS (default 15) runs.
//!
//! Run with `make bench-boot` (or `cargo bench -p harness --bench boot`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn time_process(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{cmd:?} failed: {status}");
            return start.elapsed();
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn qemu(machine: &str, accel: &str) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-M",
        machine,
        "-accel",
        accel,
        "-m",
        "128",
        "-nographic",
        "-nodefaults",
    ])
    .args(["-no-reboot", "-serial", "stdio", "-kernel"])
    .arg(probes::pvh_elf())
    .args(["-append", "action=poweroff"]);
    c
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .max(10);
    let emulated = vmm::host::probe_kvm()
        .map(|r| r.is_emulated())
        .unwrap_or(true);
    // qemu gets KVM where KVM is real; on an emulated KVM its TCG is the faster choice.
    let accel = if emulated { "tcg" } else { "kvm" };
    let vmtest = env!("CARGO_BIN_EXE_vmtest");

    let mut cols: Vec<(String, Vec<Duration>)> = vec![
        ("builtin (vmtest vm)".into(), vec![]),
        ("builtin in-process (vmm::run)".into(), vec![]),
        (format!("qemu -M microvm ({accel})"), vec![]),
        (format!("qemu -M pc ({accel})"), vec![]),
    ];
    eprintln!(
        "boot benchmark: {runs} runs each, probe {}",
        probes::pvh_elf().display()
    );
    for i in 0..runs {
        cols[0].1.push(time_process(
            Command::new(vmtest)
                .args([
                    "vm",
                    "--quiet",
                    "--timeout",
                    "60",
                    "--memory",
                    "128M",
                    "--append",
                    "action=poweroff",
                    "--kernel",
                ])
                .arg(probes::pvh_elf()),
        ));
        let mut config = vmm::VmConfig::new(probes::pvh_elf());
        config.memory_mib = 128;
        config.timeout = Some(LIMIT);
        config.cmdline = "action=poweroff".into();
        let start = Instant::now();
        let reason = vmm::run(&config).expect("builtin VMM runs");
        assert_eq!(reason, vmm::ExitReason::PowerOff);
        cols[1].1.push(start.elapsed());
        cols[2].1.push(time_process(&mut qemu("microvm", accel)));
        cols[3].1.push(time_process(&mut qemu("pc", accel)));
        eprint!("\r  run {}/{runs}", i + 1);
    }
    eprintln!();

    let microvm_median = stats(cols[2].1.clone()).0;
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>14}",
        "process start -> exit", "median ms", "min ms", "max ms", "vs microvm"
    );
    for (name, v) in &cols {
        let (med, min, max) = stats(v.clone());
        println!(
            "{name:<32} {med:>10.1} {min:>10.1} {max:>10.1} {:>13.2}x",
            med / microvm_median
        );
    }
    let builtin = stats(cols[0].1.clone()).0;
    println!(
        "\ngoal: builtin <= 1/10 of qemu microvm -> builtin is {:.3} of microvm ({})",
        builtin / microvm_median,
        if builtin * 10.0 <= microvm_median {
            "met"
        } else {
            "NOT met"
        }
    );
    if emulated {
        println!(
            "note: KVM on this host is emulated (PVM), so the builtin VMM's guest runs in KVM's\n\
             instruction emulator and qemu uses TCG; on a KVM host both use hardware."
        );
    }
}
