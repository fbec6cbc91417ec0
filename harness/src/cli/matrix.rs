//! `harness matrix`: every selected cell booted, traced and gated; the
//! report written, its summary printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use harness::engine::Job;
use harness::model::{Accel, Status};
use harness::report::matrix as report;

use super::clean::keep_cache_in_bounds;
use super::render::annotate;
use super::run::{run_engine, Ran};
use super::selection::Selection;

/// `harness matrix`: the options every booting command shares, and the
/// matrix's own.
#[derive(Debug, clap::Args)]
pub struct MatrixCmd {
    #[command(flatten)]
    pub run: MatrixArgs,
    /// Run the whole selection N times (1 to 100), each into DIR/run-K, and
    /// report each cell's pass rate (repeat.md): flakiness as a number.
    #[arg(long, default_value_t = 1, value_parser = super::selection::in_range::<u32>(1, 100))]
    pub repeat: u32,
}

/// What selects, boots and reports cells: shared by `matrix`, `overhead`
/// and `mutants` (an option only one of them honours lives in its own
/// arguments, so the others refuse it).
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub select: Selection,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: Accel,
    /// Probe KVM afresh instead of using the decision remembered for this
    /// host (QEMU binary, host kernel and /dev/kvm unchanged).
    #[arg(long)]
    pub reprobe_kvm: bool,
    /// Report directory [default: target/matrix-report, or target/overhead-report for `overhead`].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Cells run at once, 1 to 64 [default: one per core under TCG, 1.5 with KVM, bounded by memory].
    #[arg(long, value_parser = super::selection::in_range::<usize>(1, 64))]
    pub jobs: Option<usize>,
    /// Seconds a guest may take to boot to the agent, 1 to 86400 [default: 180 TCG, 60 KVM; x2 for a foreign arch].
    #[arg(long, value_parser = super::selection::in_range::<u64>(1, 86_400))]
    pub boot_timeout: Option<u64>,
    /// Seconds the agent may run once booted, 1 to 86400 [default: 420 TCG, 180 KVM; x2 for a foreign arch].
    #[arg(long, value_parser = super::selection::in_range::<u64>(1, 86_400))]
    pub run_timeout: Option<u64>,
    /// One cell's deadlines (boot and run), e.g. `sid/arm64=600`; repeatable.
    #[arg(long, value_name = "CELL=SECS")]
    pub cell_timeout: Vec<String>,
    /// How roots and results reach the guests: virtio-fs (falls back to 9p
    /// per cell when a kernel cannot mount it) or 9p only (no `cloud` kernels).
    #[arg(long, value_enum, default_value = "virtiofs")]
    pub transport: TransportArg,
    /// Re-resolve the selected kernels before running (rolling suites move).
    #[arg(long)]
    pub relock: bool,
    /// Boot your own kernel instead: an image file (bzImage / Image) or a built source tree.
    #[arg(long, value_name = "PATH")]
    pub kernel_image: Option<PathBuf>,
    /// The modules directory of --kernel-image (`.../lib/modules/<release>`).
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    pub kernel_modules: Option<PathBuf>,
    /// Gate this unlink-tracer binary instead of building the checkout's
    /// (built for the one --arch given); the agent is still the checkout's.
    #[arg(long, value_name = "PATH")]
    pub tracer: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TransportArg {
    Virtiofs,
    #[value(name = "9p")]
    NineP,
}

pub fn run(cmd: MatrixCmd) -> Result<ExitCode> {
    let args = cmd.run;
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/matrix-report"));
    if cmd.repeat > 1 {
        return repeat(&args, cmd.repeat, &report_dir);
    }
    let ran = match run_engine(&args, &report_dir, Job::Gate)? {
        Ok(ran) => ran,
        Err(code) => return Ok(code),
    };
    let Ran {
        results,
        accel_reason,
        wall,
    } = ran;
    report::write(&report_dir, &results, &accel_reason, wall)?;
    keep_cache_in_bounds()?;
    let failed = results.iter().filter(|c| c.status != Status::Pass).count();
    println!("{}", report::summary_md(&results, &accel_reason, wall));
    println!(
        "report: {} (summary.md, junit.xml, cells/)",
        report_dir.join("matrix.json").display()
    );
    annotate(&results);
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--repeat N`: the matrix N times, then each cell's pass rate.
fn repeat(args: &MatrixArgs, times: u32, report_dir: &std::path::Path) -> Result<ExitCode> {
    let mut runs: Vec<Vec<harness::model::CellResult>> = Vec::new();
    let mut walls = Vec::new();
    for k in 1..=times {
        super::note(&format!("run {k} of {times}"));
        let dir = report_dir.join(format!("run-{k}"));
        let ran = match run_engine(args, &dir, Job::Gate)? {
            Ok(ran) => ran,
            Err(code) => return Ok(code),
        };
        report::write(&dir, &ran.results, &ran.accel_reason, ran.wall)?;
        runs.push(ran.results);
        walls.push(ran.wall);
        if harness::process::stop::cancelled().is_some() {
            break;
        }
    }
    let table = report::repeat_md(&runs, &walls);
    std::fs::write(report_dir.join("repeat.md"), &table)?;
    println!("{table}");
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    let all_passed = runs.iter().flatten().all(|c| c.status == Status::Pass);
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
