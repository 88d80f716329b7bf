use clap::{Parser, Subcommand};
use std::path::PathBuf;

use harness::exit::{CliError, Exit};
use harness::report::github;
use harness::{VmmChoice, cli, cmd_doctor, cmd_vm};

/// OS-installer testing on a built-in KVM microVM (or qemu).
#[derive(Debug, Parser)]
#[command(name = "vmtest", version)]
struct Cli {
    /// Virtual machine monitor to use.
    #[arg(long, global = true, value_enum, default_value_t = VmmChoice::Auto, env = "VMTEST_VMM")]
    vmm: VmmChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot one VM from a kernel (and initrd) directly; the exit code tells how it ended.
    Vm(cmd_vm::VmArgs),
    /// Check this host: /dev/kvm access, whether KVM is real or emulated, guest speed.
    Doctor(cmd_doctor::DoctorArgs),
    /// Build, list, sync and prune ephemeral install images.
    Images(images::cli::ImagesArgs),
    #[command(flatten)]
    Harness(cli::HarnessCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMTEST_LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vm(args) => cmd_vm::run(args),
        Command::Doctor(args) => cmd_doctor::run(args),
        Command::Images(args) => images::cli::run(args).map(|()| 0),
        Command::Harness(cmd) => harness_exit(cli::run(cmd, cli.vmm)),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vmtest: error: {}", one_line(&e));
            std::process::exit(1);
        }
    }
}

/// The exit code of a harness command (0 passed, 1 failed, 2 usage or config, 3
/// infrastructure); its error on stderr, and under GitHub Actions as an annotation.
fn harness_exit(r: Result<Exit, CliError>) -> ! {
    match r {
        Ok(exit) => std::process::exit(exit.code()),
        Err(e) => {
            let line = match &e {
                CliError::Config(c) => c.to_string(),
                CliError::Usage(a) | CliError::Infrastructure(a) => one_line(a),
            };
            eprintln!("vmtest: error: {line}");
            if github::enabled(std::env::var("GITHUB_ACTIONS").ok().as_deref()) {
                let workspace = std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from);
                let a = match &e {
                    CliError::Config(c) => github::config_error(c, workspace.as_deref()),
                    _ => github::Annotation {
                        title: Some("vmtest".into()),
                        message: line,
                        ..Default::default()
                    },
                };
                println!("{a}");
            }
            std::process::exit(e.exit().code());
        }
    }
}

/// The error and its causes on one line, leaving out a cause its parent already quoted
/// (library errors often include their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
