//! `harness`: the command line. Parses arguments, provisions the host,
//! runs the engine and renders its events; the only module that prints.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use harness::boot::Accel;
use harness::manifest::{Arch, Manifest};
use harness::matrix::{self, CellId, MatrixEvent, Plan, Stage, Status};
use harness::{accel, image, kernel, report, setup};

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
    Matrix(MatrixArgs),
    /// Install what the harness needs on this host (root), or print the commands.
    Setup,
    /// Provision the host, then run the whole test suite (guest boots included).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct MatrixArgs {
    /// Kernels (suite aliases from vm-images/kernels.toml), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "bookworm")]
    kernels: Vec<String>,
    /// Guest architectures, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "x86_64")]
    arch: Vec<String>,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    accel: Accel,
    /// Kernel flavour (default: generic), e.g. `cloud`.
    #[arg(long)]
    flavour: Option<String>,
    /// Report directory (matrix.json, summary.md, per-cell logs).
    #[arg(long, default_value = "target/matrix-report")]
    report: PathBuf,
    /// Cells run at once (default: from cores and memory).
    #[arg(long)]
    jobs: Option<usize>,
    /// Deadline of one cell's guest run, in seconds (default: 300 under TCG, 120 under KVM).
    #[arg(long)]
    boot_timeout: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Matrix(args) => matrix_cmd(args),
        Cmd::Setup => setup_cmd().map(|()| ExitCode::SUCCESS),
        Cmd::Test { args } => test_cmd(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn note(msg: &str) {
    eprintln!("harness: {msg}");
}

fn setup_cmd() -> Result<()> {
    let cache = kernel::cache_root();
    setup::ensure(&cache, &note)?;
    note(&format!("host ready (cache {})", cache.display()));
    Ok(())
}

fn test_cmd(args: &[String]) -> Result<ExitCode> {
    setup_cmd()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = harness::manifest::repo_root();
    note("running cargo test --workspace (the guest boots take a few minutes under TCG)");
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["test", "--workspace", "--locked"])
        .args(if args.is_empty() {
            // Show what the guest tests saw (kernel booted, snapshot checked).
            vec!["--".to_string(), "--show-output".to_string()]
        } else {
            args.to_vec()
        })
        .env("INSTA_UPDATE", "no")
        .status()
        .context("running cargo test")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Exit code 2 with one line naming the valid values.
fn usage_error(msg: String) -> ExitCode {
    eprintln!("harness: {msg}");
    ExitCode::from(2)
}

fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Each guest has 2 vCPUs and 1 GiB; keep one core for the host side.
    (cores / 2).max(1)
}

fn matrix_cmd(args: MatrixArgs) -> Result<ExitCode> {
    let manifest = Manifest::load(&Manifest::default_path())?;
    let mut kernels = Vec::new();
    for k in &args.kernels {
        match manifest.get(k) {
            Some(e) => kernels.push(e.clone()),
            None => {
                return Ok(usage_error(format!(
                    "unknown kernel `{k}`; known kernels: {}",
                    manifest.aliases().join(", ")
                )))
            }
        }
    }
    let mut arches = Vec::new();
    for a in &args.arch {
        match Arch::parse(a) {
            Some(arch) => arches.push(arch),
            None => {
                return Ok(usage_error(format!(
                    "unknown arch `{a}`; valid: {}",
                    Arch::ALL.map(|a| a.name()).join(", ")
                )))
            }
        }
    }
    let started = Instant::now();
    let cache = kernel::cache_root();
    setup::ensure(&cache, &note)?;
    let vng = setup::vng_path(&cache);

    let mut binaries = Vec::new();
    for &arch in &arches {
        note(&format!("building the tracer and guest agent for {arch}"));
        binaries.push((arch, image::build(arch)?));
    }

    // KVM or TCG: decided once, by a probe boot of the first kernel (only
    // for --accel auto). A failed fetch here is left to its cell to report.
    std::fs::create_dir_all(&args.report)?;
    let mut prefetched = Vec::new();
    let choice = if args.accel == Accel::Auto {
        match kernel::fetch(
            &cache,
            &kernels[0],
            arches[0],
            args.flavour.as_deref(),
            &note,
        ) {
            Ok(first) => {
                let c = accel::choose(args.accel, arches[0], &vng, &first.vmlinuz, &args.report);
                prefetched.push(first);
                c
            }
            Err(e) => accel::AccelChoice {
                accel: Accel::Tcg,
                reason: format!("no kernel to probe KVM with ({e:#})"),
            },
        }
    } else {
        accel::choose(args.accel, arches[0], &vng, Path::new(""), &args.report)
    };
    note(&format!("accel: {:?} ({})", choice.accel, choice.reason));
    let deadline = Duration::from_secs(args.boot_timeout.unwrap_or(match choice.accel {
        Accel::Kvm => 120,
        _ => 300,
    }));

    let plan = Plan {
        kernels,
        arches,
        accel: choice.accel,
        flavour: args.flavour.clone(),
        report_dir: args.report.clone(),
        cache,
        vng,
        boot_deadline: deadline,
        jobs: args.jobs.unwrap_or_else(default_jobs),
        prefetched,
    };
    let (tx, rx) = mpsc::channel();
    let ui = std::thread::spawn({
        let cells = plan.cells();
        move || render(&cells, rx)
    });
    let results = matrix::run(&plan, &binaries, &tx);
    drop(tx);
    let _ = ui.join();
    let wall = started.elapsed().as_secs_f64();
    report::write(&args.report, &results, &choice.reason, wall)?;
    let failed = results.iter().filter(|c| c.status != Status::Pass).count();
    println!("{}", report::summary_md(&results, &choice.reason, wall));
    println!("report: {}", args.report.join("matrix.json").display());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Fetching => "fetching kernel",
        Stage::Booting => "booting + tracing",
        Stage::Checking => "checking",
    }
}

/// Live lines per cell on a terminal, plain lines otherwise.
fn render(cells: &[CellId], rx: mpsc::Receiver<MatrixEvent>) {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:<20} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<CellId, ProgressBar> = HashMap::new();
    if tty {
        for c in cells {
            let pb = multi.add(ProgressBar::new_spinner());
            pb.set_style(style.clone());
            pb.set_prefix(c.to_string());
            pb.set_message("queued");
            pb.enable_steady_tick(Duration::from_millis(200));
            bars.insert(c.clone(), pb);
        }
    }
    for ev in rx {
        match ev {
            MatrixEvent::Stage { cell, stage } => match bars.get(&cell) {
                Some(pb) => pb.set_message(stage_text(stage)),
                None => eprintln!("[{cell}] {}", stage_text(stage)),
            },
            MatrixEvent::Note { cell, text } => match bars.get(&cell) {
                Some(pb) => pb.set_message(text),
                None => eprintln!("[{cell}] {text}"),
            },
            MatrixEvent::Done(r) => {
                let cell = CellId {
                    alias: r.alias.clone(),
                    arch: r.arch,
                };
                let line = format!(
                    "{} in {:.1}s{}",
                    report::status_mark(r.status),
                    r.total_s,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                match bars.get(&cell) {
                    Some(pb) => pb.finish_with_message(line),
                    None => eprintln!("[{cell}] {line}"),
                }
            }
        }
    }
}
