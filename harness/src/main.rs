//! `harness`: the command line. Parses arguments, provisions the host,
//! runs the engine and renders its events; the only module that prints.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI: renders the engine's events and results"
)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use harness::engine::{self, CellSpec, GuestImage, Job, MatrixEvent, Plan, Stage};
use harness::host::{accel, setup};
use harness::images::image;
use harness::kernels::kernel;
use harness::kernels::kernel::KernelSource;
use harness::kernels::lock::LockFile;
use harness::kernels::manifest::{KernelEntry, Manifest};
use harness::model::figures::Clock;
use harness::model::{Accel, Arch, CellId, CellResult, Status};
use harness::overhead;
use harness::report::{matrix as report, overhead as overhead_report};
use harness::vm::boot::Deadlines;

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
    /// Measure what each probe mode costs an unlink, per cell (criterion in the guests).
    Overhead(OverheadArgs),
    /// Resolve kernels to exact packages and record them in vm-images/kernels.lock.
    Lock(LockArgs),
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
}

#[derive(Debug, clap::Args)]
struct Selection {
    /// Kernels (suite aliases from vm-images/kernels.toml), comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Guest architectures, comma separated [default: x86_64,arm64].
    #[arg(long, value_delimiter = ',')]
    arch: Vec<String>,
    /// Kernel flavour (default: generic), e.g. `cloud`.
    #[arg(long)]
    flavour: Option<String>,
}

#[derive(Debug, clap::Args)]
struct MatrixArgs {
    #[command(flatten)]
    select: Selection,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    accel: Accel,
    /// Report directory [default: target/matrix-report, or target/overhead-report for `overhead`].
    #[arg(long)]
    report: Option<PathBuf>,
    /// Cells run at once [default: from cores and memory].
    #[arg(long)]
    jobs: Option<usize>,
    /// Seconds a guest may take to boot to the agent [default: 180 TCG, 60 KVM; x2 for a foreign arch].
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// Seconds the agent may run once booted [default: 420 TCG, 180 KVM; x2 for a foreign arch].
    #[arg(long)]
    run_timeout: Option<u64>,
    /// One cell's deadlines (boot and run), e.g. `sid/arm64=600`; repeatable.
    #[arg(long, value_name = "CELL=SECS")]
    cell_timeout: Vec<String>,
    /// How roots and results reach the guests: virtio-fs (falls back to 9p
    /// per cell when a kernel cannot mount it) or 9p only (no `cloud` kernels).
    #[arg(long, value_enum, default_value = "virtiofs")]
    transport: TransportArg,
    /// Re-resolve the selected kernels before running (rolling suites move).
    #[arg(long)]
    relock: bool,
    /// Boot your own kernel instead: an image file (bzImage / Image) or a built source tree.
    #[arg(long, value_name = "PATH")]
    kernel_image: Option<PathBuf>,
    /// The modules directory of --kernel-image (`.../lib/modules/<release>`).
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    kernel_modules: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct OverheadArgs {
    #[command(flatten)]
    run: MatrixArgs,
    /// Clocks to measure with, comma separated: wall (guest ns), icount (guest instructions).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "wall,icount")]
    clock: Vec<Clock>,
    /// Rounds per mode (the modes interleave within each round).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Modes to measure, comma separated; the baseline is always measured [default: all].
    #[arg(long, value_delimiter = ',')]
    modes: Vec<String>,
    /// Fail when a mode's icount overhead grew more than PCT percent over the baseline.
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    fail_above: Option<f64>,
    /// The committed baseline the icount overheads are compared with.
    #[arg(long, default_value = "vm-images/overhead-baseline.json")]
    baseline: PathBuf,
    /// Write this run's icount overheads to the baseline file (after review).
    #[arg(long)]
    update_baseline: bool,
    /// Also report the tracer's BPF programs' own cost per call (the
    /// guest kernel keeps BPF run statistics, which adds a little to every BPF mode).
    #[arg(long)]
    bpf_stats: bool,
    /// Boot nothing: build the report from earlier runs' report directories
    /// (their overhead.json), a cell's modes joined across runs. Repeat it.
    #[arg(long, value_name = "DIR")]
    from: Vec<PathBuf>,
}

/// Earlier overhead reports joined into one (`overhead --from`).
fn merged_runs(dirs: &[PathBuf]) -> Result<(Ran, overhead::Settings)> {
    let mut saved = Vec::new();
    for dir in dirs {
        saved.push(overhead_report::read_overhead(dir)?);
    }
    let first = &saved[0];
    let fewest = saved.iter().map(|s| s.rounds).min().unwrap_or(first.rounds);
    let most = saved.iter().map(|s| s.rounds).max().unwrap_or(first.rounds);
    let mut settings = overhead::Settings {
        clocks: Vec::new(),
        rounds: fewest,
        rounds_max: (most > fewest).then_some(most),
        warm_up: first.criterion.warm_up_s.clone(),
        measure: first.criterion.measurement_s.clone(),
        samples: first.criterion.samples,
        modes: Vec::new(),
        bpf_stats: saved.iter().any(|s| s.bpf_stats),
    };
    for s in &saved {
        for m in &s.modes {
            if let Some(known) = overhead::MODES.iter().find(|k| *k == m) {
                settings.modes.push(*known);
            }
        }
        for c in &s.cells {
            for f in c.overhead.iter().flat_map(|o| &o.clocks) {
                settings.clocks.push(f.clock);
            }
        }
    }
    settings
        .modes
        .sort_by_key(|m| overhead::MODES.iter().position(|k| k == m));
    settings.modes.dedup();
    settings.clocks.sort();
    settings.clocks.dedup();
    let ran = Ran {
        accel_reason: first.accel_reason.clone(),
        wall: saved.iter().map(|s| s.wall_s).sum(),
        results: overhead::merge_runs(saved.into_iter().map(|s| s.cells).collect()),
    };
    Ok((ran, settings))
}

/// The modes to measure: the baseline first, then the ones asked for in
/// report order (all when none are), or the usage error to exit 2 with.
fn select_modes(asked: &[String]) -> std::result::Result<Vec<&'static str>, String> {
    if let Some(bad) = asked
        .iter()
        .find(|a| !overhead::MODES.contains(&a.as_str()))
    {
        return Err(format!(
            "unknown mode `{bad}`; valid: {}",
            overhead::MODES.join(", ")
        ));
    }
    Ok(overhead::MODES
        .iter()
        .copied()
        .filter(|m| asked.is_empty() || *m == "baseline" || asked.iter().any(|a| a == m))
        .collect())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TransportArg {
    Virtiofs,
    #[value(name = "9p")]
    NineP,
}

#[derive(Debug, clap::Args)]
struct LockArgs {
    #[command(flatten)]
    select: Selection,
    /// Re-resolve even what is locked already.
    #[arg(long)]
    update: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Matrix(args) => matrix_cmd(args),
        Cmd::Overhead(args) => overhead_cmd(args),
        Cmd::Lock(args) => lock_cmd(args),
        Cmd::Setup => setup_cmd().map(|()| ExitCode::SUCCESS),
        Cmd::Doctor => doctor_cmd(),
        Cmd::Clean { all } => clean_cmd(all),
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
    let cache = harness::paths::cache_root();
    setup::ensure(&cache, &Arch::ALL, &note)?;
    note(&format!("host ready (cache {})", cache.display()));
    Ok(())
}

fn doctor_cmd() -> Result<ExitCode> {
    use harness::host::doctor::Level;
    let cache = harness::paths::cache_root();
    let findings = harness::host::doctor::run(&cache, &note);
    let width = findings.iter().map(|f| f.what.len()).max().unwrap_or(0);
    let mut missing = 0;
    for f in &findings {
        let mark = match f.level {
            Level::Ok => "ok  ",
            Level::Missing => {
                missing += 1;
                "MISS"
            }
            Level::Note => "note",
        };
        println!("{mark} {:<width$}  {}", f.what, f.found);
        if let (Some(fix), Level::Missing | Level::Note) = (&f.fix, f.level) {
            println!("     {:<width$}  fix: {fix}", "");
        }
    }
    println!(
        "{}",
        if missing == 0 {
            "doctor: nothing missing".to_string()
        } else {
            format!("doctor: {missing} missing; `cargo harness setup` (as root) installs them all")
        }
    );
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn clean_cmd(all: bool) -> Result<ExitCode> {
    use harness::cache;
    let dir = harness::paths::cache_root();
    let before = cache::size_of(&dir);
    if all {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!("removed {} ({})", dir.display(), cache::human(before));
        return Ok(ExitCode::SUCCESS);
    }
    let lock = LockFile::load(&LockFile::default_path())?;
    let removed = cache::prune(&dir, &lock.kept())?;
    for (path, bytes) in &removed {
        println!("removed {} ({})", path.display(), cache::human(*bytes));
    }
    let freed: u64 = removed.iter().map(|(_, b)| b).sum();
    println!(
        "cache {}: {} before, {} freed, {} now; kernels in {} kept",
        dir.display(),
        cache::human(before),
        cache::human(freed),
        cache::human(cache::size_of(&dir)),
        LockFile::default_path().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn test_cmd(args: &[String]) -> Result<ExitCode> {
    setup_cmd()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = harness::paths::repo_root();
    // The workspace lints are invariants (engine code never prints): clippy
    // is part of the tests.
    let has_clippy = std::process::Command::new(&cargo)
        .args(["clippy", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_clippy {
        anyhow::bail!("clippy is not installed; run: rustup component add clippy");
    }
    note("running cargo clippy --workspace --all-targets -- -D warnings (the workspace lints)");
    let lint = std::process::Command::new(&cargo)
        .current_dir(&root)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
        .status()
        .context("running cargo clippy")?;
    if !lint.success() {
        eprintln!("harness: the workspace lints failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
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

/// Cells at once: a guest waits on 9p and its own timers part of the time,
/// so 1.5 cells per core keep the cores busy (measured on 2 cores under
/// TCG: 2 jobs 168 s, 3 jobs 140 s, 4 jobs 161 s for the 10 cells); each
/// needs 1 GiB plus QEMU's own ~0.5 GiB.
fn default_jobs() -> usize {
    let cores = cores();
    let mem_gib = nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total() / (1 << 30))
        .unwrap_or(2) as usize;
    jobs_for(cores, mem_gib)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn jobs_for(cores: usize, mem_gib: usize) -> usize {
    (cores * 3 / 2).min(mem_gib * 2 / 3).max(1)
}

/// The selection's kernels and arches, or the usage error to exit 2 with.
fn select(
    manifest: &Manifest,
    sel: &Selection,
) -> std::result::Result<(Vec<KernelEntry>, Vec<Arch>), String> {
    let mut kernels = Vec::new();
    for k in &sel.kernels {
        match manifest.get(k) {
            Some(e) => kernels.push(e.clone()),
            None => {
                return Err(format!(
                    "unknown kernel `{k}`; known kernels: {}",
                    manifest.aliases().join(", ")
                ))
            }
        }
    }
    if sel.kernels.is_empty() {
        kernels = manifest.kernel.clone();
    }
    let mut arches = Vec::new();
    for a in &sel.arch {
        match Arch::parse(a) {
            Some(arch) if !arches.contains(&arch) => arches.push(arch),
            Some(_) => {}
            None => {
                return Err(format!(
                    "unknown arch `{a}`; valid: {}",
                    Arch::ALL.map(|a| a.name()).join(", ")
                ))
            }
        }
    }
    if sel.arch.is_empty() {
        arches = Arch::ALL.to_vec();
    }
    Ok((kernels, arches))
}

/// `CELL=SECS` (`sid/arm64=600`).
fn parse_cell_timeout(s: &str) -> std::result::Result<(CellId, u64), String> {
    let bad = || format!("--cell-timeout `{s}`: expected KERNEL/ARCH=SECS, e.g. sid/arm64=600");
    let (cell, secs) = s.split_once('=').ok_or_else(bad)?;
    let (alias, arch) = cell.split_once('/').ok_or_else(bad)?;
    let arch = Arch::parse(arch).ok_or_else(bad)?;
    let secs = secs.parse().map_err(|_| bad())?;
    Ok((
        CellId {
            alias: alias.to_string(),
            arch,
        },
        secs,
    ))
}

/// Locks the selection (resolving what is not locked, or all of it with
/// `update`) and saves the lock file when it changed.
fn lock_selection(
    cache: &Path,
    kernels: &[KernelEntry],
    arches: &[Arch],
    sel: &Selection,
    update: bool,
) -> Result<Vec<kernel::LockOutcome>> {
    let path = LockFile::default_path();
    let mut lock = LockFile::load(&path)?;
    let before = lock.clone();
    let outcomes = kernel::lock_cells(
        cache,
        &mut lock,
        kernels,
        arches,
        sel.flavour.as_deref(),
        update,
        &note,
    )?;
    if lock != before {
        lock.save(&path)?;
        note(&format!("lock file updated: {}", path.display()));
    }
    Ok(outcomes)
}

fn lock_cmd(args: LockArgs) -> Result<ExitCode> {
    let manifest = Manifest::load(&Manifest::default_path())?;
    let (kernels, arches) = match select(&manifest, &args.select) {
        Ok(x) => x,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let cache = harness::paths::cache_root();
    let path = LockFile::default_path();
    let outcomes = lock_selection(&cache, &kernels, &arches, &args.select, args.update)?;
    for o in &outcomes {
        let e = o.entry();
        let main = e
            .main_package()
            .map(|p| format!("{} {}", p.package, p.version))
            .unwrap_or_default();
        let what = match o {
            kernel::LockOutcome::Kept(_) => "locked".to_string(),
            kernel::LockOutcome::Resolved { previous: None, .. } => "resolved".to_string(),
            kernel::LockOutcome::Resolved {
                previous: Some(p), ..
            } if p == e => "unchanged".to_string(),
            kernel::LockOutcome::Resolved {
                previous: Some(p), ..
            } => format!(
                "updated from {}",
                p.main_package().map(|m| m.version.as_str()).unwrap_or("?")
            ),
        };
        println!("{}/{} ({}): {main} — {what}", e.alias, e.arch, e.flavour);
    }
    println!("lock file: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// What a run of the engine gave: results, how acceleration was chosen,
/// the engine's wall time.
struct Ran {
    results: Vec<CellResult>,
    accel_reason: String,
    wall: f64,
}

fn matrix_cmd(args: MatrixArgs) -> Result<ExitCode> {
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/matrix-report"));
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
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn overhead_cmd(args: OverheadArgs) -> Result<ExitCode> {
    if let Some(p) = args.fail_above {
        if !(p.is_finite() && p >= 0.0) {
            return Ok(usage_error(format!(
                "--fail-above {p}: give a percentage, 0 or more"
            )));
        }
    }
    if !(1..=50).contains(&args.rounds) {
        return Ok(usage_error(format!(
            "--rounds {}: give 1 to 50 rounds",
            args.rounds
        )));
    }
    let modes = match select_modes(&args.modes) {
        Ok(m) => m,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let report_dir = args
        .run
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/overhead-report"));
    let mut clocks = args.clock.clone();
    clocks.sort();
    clocks.dedup();
    let settings = overhead::Settings {
        clocks,
        rounds: args.rounds,
        modes,
        bpf_stats: args.bpf_stats,
        ..overhead::Settings::default()
    };
    let (ran, settings) = if args.from.is_empty() {
        match run_engine(&args.run, &report_dir, Job::Overhead(settings.clone()))? {
            Ok(ran) => (ran, settings),
            Err(code) => return Ok(code),
        }
    } else {
        merged_runs(&args.from)?
    };
    let baseline_path = harness::paths::repo_root().join(&args.baseline);
    let baseline = overhead_report::load_baseline(&baseline_path)?;
    let comparisons = overhead_report::compare_overheads(&ran.results, &baseline, args.fail_above);
    let report = overhead_report::OverheadReport {
        cells: &ran.results,
        accel_reason: &ran.accel_reason,
        wall_s: ran.wall,
        settings: &settings,
        comparisons: &comparisons,
        fail_above: args.fail_above,
    };
    overhead_report::write_overhead(&report_dir, &report)?;
    keep_cache_in_bounds()?;
    println!("{}", overhead_report::overhead_md(&report));
    println!(
        "report: {} (summary.md, overhead.svg, cells/)",
        report_dir.join("overhead.json").display()
    );
    if args.update_baseline {
        let fresh = overhead_report::baseline_from(&ran.results);
        if fresh.cells.is_empty() {
            note("no icount figures in this run: the baseline was not updated");
        } else {
            overhead_report::save_baseline(&baseline_path, &baseline, &fresh)?;
            note(&format!(
                "baseline updated: {} ({} cells)",
                baseline_path.display(),
                fresh.cells.len()
            ));
        }
    }
    annotate(&ran.results);
    let failed = ran
        .results
        .iter()
        .filter(|c| c.status != Status::Pass)
        .count();
    let regressed = comparisons.iter().filter(|c| c.regressed).count();
    if regressed > 0 {
        note(&format!(
            "{regressed} overhead(s) grew more than {}% over {}",
            args.fail_above.unwrap_or_default(),
            args.baseline.display()
        ));
    }
    Ok(if failed == 0 && regressed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// In GitHub Actions, each failing cell becomes an error annotation.
fn annotate(results: &[CellResult]) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        for c in results.iter().filter(|c| c.status != Status::Pass) {
            println!("{}", report::github_annotation(c));
        }
    }
}

/// Keeps the cache within its limit: what the lock does not name goes.
fn keep_cache_in_bounds() -> Result<()> {
    let cache = harness::paths::cache_root();
    let size = harness::cache::size_of(&cache);
    if size > harness::cache::max_bytes() {
        let lock = LockFile::load(&LockFile::default_path())?;
        let freed: u64 = harness::cache::prune(&cache, &lock.kept())?
            .iter()
            .map(|(_, b)| b)
            .sum();
        note(&format!(
            "cache {} over its limit ({}): pruned {} of kernels the lock file does not name",
            harness::cache::human(size),
            harness::cache::human(harness::cache::max_bytes()),
            harness::cache::human(freed)
        ));
    }
    Ok(())
}

/// Selects, provisions, locks, builds and runs the cells of `job`
/// (Err(code): a usage error, already printed).
fn run_engine(
    args: &MatrixArgs,
    report_dir: &Path,
    job: Job,
) -> Result<std::result::Result<Ran, ExitCode>> {
    let manifest = Manifest::load(&Manifest::default_path())?;
    let (kernels, mut arches) = match select(&manifest, &args.select) {
        Ok(x) => x,
        Err(msg) => return Ok(Err(usage_error(msg))),
    };
    let mut overrides = Vec::new();
    for s in &args.cell_timeout {
        match parse_cell_timeout(s) {
            Ok(o) => overrides.push(o),
            Err(msg) => return Ok(Err(usage_error(msg))),
        }
    }
    if args.kernel_image.is_some() && args.select.arch.is_empty() {
        arches = vec![Arch::host()];
    }
    let started = Instant::now();
    let cache = harness::paths::cache_root();
    setup::ensure(&cache, &arches, &note)?;
    let vng = setup::vng_path(&cache);

    // Every Debian cell boots exactly what the lock file names.
    let mut specs: Vec<(CellId, String, KernelSource)> = Vec::new();
    if let Some(image) = &args.kernel_image {
        if arches.len() != 1 {
            return Ok(Err(usage_error(
                "--kernel-image boots one kernel: give one --arch".to_string(),
            )));
        }
        let img = kernel::custom(
            &cache,
            "custom",
            arches[0],
            image,
            args.kernel_modules.as_deref(),
        )?;
        specs.push((
            CellId {
                alias: "custom".into(),
                arch: arches[0],
            },
            "custom".into(),
            KernelSource::Custom(img),
        ));
    } else {
        let outcomes = lock_selection(&cache, &kernels, &arches, &args.select, args.relock)?;
        for o in outcomes {
            let e = o.entry().clone();
            specs.push((
                CellId {
                    alias: e.alias.clone(),
                    arch: e.arch,
                },
                e.suite.clone(),
                KernelSource::Locked(e),
            ));
        }
    }

    let mut images = Vec::new();
    for &arch in &arches {
        note(&format!("building the tracer and guest agent for {arch}"));
        let mut binaries = image::build(arch)?;
        if matches!(job, Job::Overhead(_)) {
            note(&format!("building the unlink-path bench for {arch}"));
            binaries.bench = Some(image::build_bench(arch)?);
        }
        images.push(GuestImage {
            arch,
            binaries,
            root_recipe: image::root_recipe(arch),
        });
    }

    // KVM or TCG: decided once, by a probe boot of the first host-arch
    // kernel (only for --accel auto). A failed fetch is left to its cell;
    // a fetched one is found in the cache by its cell.
    std::fs::create_dir_all(report_dir)?;
    let probe_cell = specs.iter().find(|(id, _, _)| id.arch == Arch::host());
    let choice = match (args.accel, probe_cell) {
        (Accel::Auto, Some((id, _, source))) => {
            let img = match source {
                KernelSource::Custom(img) => Ok(img.clone()),
                KernelSource::Locked(e) => kernel::fetch(&cache, e, &note),
            };
            match img {
                Ok(img) => accel::choose(args.accel, id.arch, &vng, &img.vmlinuz, report_dir),
                Err(e) => accel::AccelChoice {
                    accel: Accel::Tcg,
                    reason: format!("no kernel to probe KVM with ({e:#})"),
                },
            }
        }
        _ => accel::choose(args.accel, arches[0], &vng, Path::new(""), report_dir),
    };
    note(&format!("accel: {:?} ({})", choice.accel, choice.reason));

    let cells = specs
        .into_iter()
        .map(|(id, suite, kernel)| {
            let mut deadlines = match &job {
                Job::Gate => Deadlines::default_for(choice.accel, id.arch),
                Job::Overhead(s) => {
                    Deadlines::for_overhead(choice.accel, id.arch, s.rounds * s.modes.len() as u32)
                }
            };
            if let Some(s) = args.boot_timeout {
                deadlines.boot = Duration::from_secs(s);
            }
            if let Some(s) = args.run_timeout {
                deadlines.run = Duration::from_secs(s);
            }
            if let Some((_, s)) = overrides.iter().find(|(c, _)| *c == id) {
                deadlines = Deadlines::both(*s);
            }
            // A custom kernel has no manifest entry, so no declared splat.
            let known_splats = match &kernel {
                KernelSource::Custom(_) => Vec::new(),
                KernelSource::Locked(_) => manifest
                    .get(&id.alias)
                    .map(|k| k.known_splats(id.arch))
                    .unwrap_or_default(),
            };
            CellSpec {
                id,
                suite,
                kernel,
                deadlines,
                known_splats,
            }
        })
        .collect::<Vec<_>>();
    let jobs = args.jobs.unwrap_or_else(|| match &job {
        Job::Gate => default_jobs(),
        // One vCPU per guest: one guest per core keeps wall figures
        // from fighting over the cores.
        Job::Overhead(_) => cores(),
    });
    let plan = Plan {
        job,
        cells,
        accel: choice.accel,
        report_dir: report_dir.to_path_buf(),
        cache: cache.clone(),
        vng,
        jobs,
        virtiofsd_dir: match args.transport {
            TransportArg::Virtiofs => Some(setup::virtiofsd_dir(&cache)),
            TransportArg::NineP => None,
        },
    };
    note(&format!(
        "{} cells, {} at a time",
        plan.cells.len(),
        plan.jobs
    ));
    let (tx, rx) = mpsc::channel();
    let ui = std::thread::spawn({
        let cells: Vec<CellId> = plan.cells.iter().map(|c| c.id.clone()).collect();
        move || render(&cells, rx)
    });
    let results = engine::run(&plan, &images, &tx);
    drop(tx);
    let _ = ui.join();
    let wall = started.elapsed().as_secs_f64();
    Ok(Ok(Ran {
        results,
        accel_reason: choice.reason,
        wall,
    }))
}

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Fetching => "fetching kernel",
        Stage::BuildingRoot => "building guest root",
        Stage::Booting => "booting",
        Stage::Tracing => "tracing",
        Stage::Measuring => "measuring",
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
                Some(pb) => {
                    if stage == Stage::Fetching {
                        pb.reset_elapsed();
                    }
                    pb.set_message(stage_text(stage))
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_from_cores_and_memory() {
        let cases = [(2, 24, 3), (8, 24, 12), (16, 8, 5), (2, 1, 1), (1, 0, 1)];
        for (cores, mem, want) in cases {
            assert_eq!(jobs_for(cores, mem), want, "{cores} cores, {mem} GiB");
        }
    }

    #[test]
    fn modes_selected_in_report_order_with_the_baseline() {
        let all = select_modes(&[]).expect("all");
        assert_eq!(all, overhead::MODES);
        let some =
            select_modes(&["bpftrace".into(), "kprobe".into(), "kprobe".into()]).expect("valid");
        assert_eq!(some, vec!["baseline", "kprobe", "bpftrace"]);
        let e = select_modes(&["kprobe".into(), "nope".into()]).unwrap_err();
        assert!(
            e.starts_with("unknown mode `nope`; valid: baseline, "),
            "{e}"
        );
    }

    #[test]
    fn cell_timeouts() {
        let ok = parse_cell_timeout("sid/arm64=600").unwrap();
        assert_eq!((ok.0.to_string(), ok.1), ("sid/arm64".to_string(), 600));
        for bad in ["sid=5", "sid/sparc=5", "sid/arm64=x", "sid/arm64"] {
            let e = parse_cell_timeout(bad).unwrap_err();
            assert!(e.contains("expected KERNEL/ARCH=SECS"), "{bad}: {e}");
        }
    }
}
