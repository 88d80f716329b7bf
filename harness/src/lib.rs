//! The vmtest harness: runs installer test configs through install → poweroff → boot →
//! collect → verify on the builtin microVM or on qemu.

pub mod cli;
pub mod cmd_doctor;
pub mod cmd_list;
pub mod cmd_run;
pub mod cmd_show;
pub mod cmd_vm;
pub mod env_help;
pub mod exit;

/// Which virtual machine monitor runs the guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VmmChoice {
    /// Builtin where it can run the test end to end (KVM is real, the test needs nothing
    /// the microVM lacks, its installed system is handed off to boot); else qemu, with
    /// the reason printed.
    Auto,
    /// The builtin KVM microVM (this project's `vmm` crate).
    Builtin,
    /// qemu-system-x86_64 (KVM when it is real, TCG otherwise).
    Qemu,
}
pub mod backend;
pub mod bootinfo;
pub mod check;
pub mod checks;
pub mod collect;
pub mod config;
pub mod console;
pub mod curtin_events;
pub mod fuzzing;
pub mod handoff;
pub mod http;
pub mod installer;
pub mod pack;
pub mod partition;
pub mod plan;
pub mod progress;
pub mod report;
pub mod runner;
pub mod serial_log;
pub mod settings;
pub mod shutdown;
pub mod units;
pub mod userdata;
pub mod verdict;
pub mod vmm_choice;
pub mod workdir;
pub mod yaml;
