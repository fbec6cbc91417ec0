//! `harness`: the command line. The definition and the dispatch; each
//! command lives in `cli/`, the only code here that prints.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI: renders the engine's events and results"
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "Boot Debian kernels under QEMU and check the unlink tracer in each"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the kernel matrix: fetch, boot, trace, check, report.
    Matrix(cli::matrix::MatrixCmd),
    /// Boot one cell's guest (its kernel, root, tracer and agent) and run a command in it; exit with its code.
    Run(cli::exec::RunCmd),
    /// Measure what each probe mode costs an unlink, per cell (criterion in the guests).
    Overhead(cli::overhead::OverheadArgs),
    /// Plant one bug at a time in the tracer (cargo-mutants, mutants/bpf.toml) and run one cell's gate on each.
    Mutants(cli::mutants::MutantsArgs),
    /// Resolve kernels to exact packages and record them in vm-images/kernels.lock.
    Lock(cli::lock::LockArgs),
    /// Install what the harness needs on this host (root), or print the commands.
    Setup,
    /// Check this host: what is there, what is missing, and the fix for each.
    Doctor,
    /// Prune the cache: kernels and .debs the lock file does not name.
    Clean {
        /// Remove the whole cache instead (kernels, roots, venv, tools).
        #[arg(long)]
        all: bool,
    },
    /// Provision the host, then run the whole test suite (guest boots included).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// (internal) Kills a run's guests if the harness dies.
    #[command(name = "__guard", hide = true)]
    Guard,
}

fn main() -> ExitCode {
    // A bad argument is one line and exit 2, like every other usage error
    // (help and version print as clap has them).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("harness: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let result = match cli.cmd {
        Cmd::Matrix(args) => cli::matrix::run(args),
        Cmd::Run(cmd) => cli::exec::run(cmd),
        Cmd::Overhead(args) => cli::overhead::run(args),
        Cmd::Mutants(args) => cli::mutants::run(args),
        Cmd::Lock(args) => cli::lock::run(args),
        Cmd::Setup => cli::setup::run().map(|()| ExitCode::SUCCESS),
        Cmd::Doctor => cli::doctor::run(),
        Cmd::Clean { all } => cli::clean::run(all),
        Cmd::Test { args } => cli::test::run(&args),
        Cmd::Guard => cli::signals::guard(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e:#}");
            ExitCode::FAILURE
        }
    }
}
