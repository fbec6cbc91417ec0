//! `harness mutants`: plants one bug at a time in the tracer and runs one
//! cell's whole gate on it. Rust mutants come from `cargo mutants --list`
//! over the tracer and the schema (its own config: `.cargo/mutants.toml`),
//! BPF-C mutants from the table `mutants/bpf.toml`; Rust mutants listed in
//! `mutants/equivalent.toml` are expected to survive, with their reason.
//!
//! The tracer of each mutant is built in a copy of the checkout
//! (`target/mutants/tree`, its own target dir, incremental), the agent is
//! the checkout's own; the cell's deadline is the clean tracer's run
//! time x3 + 60 s. Report: `mutants.json`, `mutants.md`, a cell report per
//! mutant under `runs/`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use harness::engine::Job;
use harness::host::setup;
use harness::model::{Accel, Arch, Status};
use harness::mutants::{self, bpf, rust, EquivalentList, Judged, Mutant, Outcome};
use harness::paths::repo_root;
use harness::process::commands;
use harness::report::mutants::{self as report, MutantsReport};

use super::args::{MatrixArgs, TransportArg};
use super::note;
use super::run::{prepare, run_plan};
use super::selection::{in_range, usage_error, Selection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartArg {
    Rust,
    Bpf,
    All,
}

#[derive(Debug, clap::Args)]
pub struct MutantsArgs {
    /// Which mutants: the Rust ones (cargo-mutants), the BPF table's, or both.
    #[arg(long, value_enum, default_value = "all")]
    pub part: PartArg,
    /// Only the mutants whose key (`rust <file>: <what>` or `bpf <id>`)
    /// contains this text; repeatable.
    #[arg(long)]
    pub only: Vec<String>,
    /// The K-th of N shards of the selection, e.g. `2/4` (one CI job each;
    /// join their reports with --from).
    #[arg(long, value_parser = mutants::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Minutes after which no further mutant starts (the rest are reported
    /// not-run), 1 to 10080 [default: no limit].
    #[arg(long, value_parser = in_range::<u64>(1, 10_080))]
    pub budget: Option<u64>,
    /// List the selected mutants and exit.
    #[arg(long)]
    pub list: bool,
    /// A table of hand-written mutants to run instead of the selected
    /// parts (the format of mutants/bpf.toml; entries may name Rust files).
    #[arg(long, value_name = "PATH")]
    pub table: Option<PathBuf>,
    /// The cells a mutant runs on, in order, until one fails it (each
    /// kernel lives different code: bullseye's 64-bit return, the
    /// kernel-reported missed count from 6.7, filename_unlinkat on 7.x).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bookworm/x86_64,sid/x86_64,bullseye/x86_64"
    )]
    pub cells: Vec<String>,
    /// Mutants built and run at once, 1 to 8 (each has its own copy of the
    /// checkout and its own guest).
    #[arg(long, default_value_t = 2, value_parser = in_range::<usize>(1, 8))]
    pub jobs: usize,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: Accel,
    /// Report directory [default: target/mutants-report].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Earlier runs' report directories to join (shards, re-runs); with no
    /// mutant selected, only joins them.
    #[arg(long, value_name = "DIR")]
    pub from: Vec<PathBuf>,
}

const EQUIVALENT_LIST: &str = "mutants/equivalent.toml";
const BPF_TABLE: &str = "mutants/bpf.toml";

/// Every mutant of the selected parts, equivalents marked.
fn load(
    args: &MutantsArgs,
    stale: &mut Vec<String>,
) -> Result<std::result::Result<Vec<Mutant>, String>> {
    let root = repo_root();
    let source = |f: &str| std::fs::read_to_string(root.join(f)).ok();
    let mut all = Vec::new();
    let generated = args.table.is_none() && matches!(args.part, PartArg::Rust | PartArg::All);
    if generated {
        let cache = harness::paths::cache_root();
        let bin = setup::ensure_cargo_mutants(&cache, &note)?;
        let out = commands::program(&bin, rust::list_args())?
            .current_dir(&root)
            .output()
            .context("running cargo mutants --list")?;
        if !out.status.success() {
            bail!(
                "cargo mutants --list failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut ms = rust::parse_list(&String::from_utf8_lossy(&out.stdout), &source)
            .map_err(anyhow::Error::msg)?;
        let list_text = std::fs::read_to_string(root.join(EQUIVALENT_LIST))
            .with_context(|| format!("reading {EQUIVALENT_LIST}"))?;
        let list = EquivalentList::parse(&list_text)
            .map_err(|e| anyhow::anyhow!("{EQUIVALENT_LIST}: {e}"))?;
        if let Err(s) = list.mark(&mut ms) {
            stale.extend(s);
        }
        all.extend(ms);
    }
    if args.table.is_some() || matches!(args.part, PartArg::Bpf | PartArg::All) {
        let table = args.table.clone().unwrap_or_else(|| root.join(BPF_TABLE));
        let text = std::fs::read_to_string(&table)
            .with_context(|| format!("reading {}", table.display()))?;
        match bpf::parse(&text, &source, &harness::gate::VERDICTS) {
            Ok(ms) => all.extend(ms),
            Err(errs) => return Ok(Err(format!("{}: {}", table.display(), errs.join("; ")))),
        }
    }
    Ok(Ok(all))
}

pub fn run(args: MutantsArgs) -> Result<ExitCode> {
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/mutants-report"));
    let mut cells = Vec::new();
    for c in &args.cells {
        match c.split_once('/').map(|(k, a)| (k, Arch::parse(a))) {
            Some((k, Some(a))) if a == Arch::host() => cells.push((k.to_string(), a)),
            Some((_, Some(_))) => {
                return Ok(usage_error(format!(
                    "--cells {c}: mutants are built for this host's arch ({})",
                    Arch::host()
                )))
            }
            _ => {
                return Ok(usage_error(format!(
                    "--cells `{c}`: expected KERNEL/ARCH, e.g. bookworm/x86_64"
                )))
            }
        }
    }
    let mut stale = Vec::new();
    let selected = if args.only.is_empty() && !args.from.is_empty() && args.shard.is_none() {
        Vec::new()
    } else {
        let all = match load(&args, &mut stale)? {
            Ok(all) => all,
            Err(msg) => return Ok(usage_error(msg)),
        };
        let picked = mutants::select(all, &args.only, args.shard.unwrap_or((1, 1)));
        if picked.is_empty() {
            return Ok(usage_error(format!(
                "no mutant matches --only {:?}",
                args.only
            )));
        }
        picked
    };
    if args.list {
        for m in &selected {
            println!(
                "{}{}",
                m.key(),
                m.equivalent
                    .as_ref()
                    .map(|r| format!("  (equivalent: {r})"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut earlier = Vec::new();
    for dir in &args.from {
        earlier.push(report::read(dir)?);
    }
    let ran = if selected.is_empty() {
        None
    } else {
        match run_mutants(&args, &report_dir, &cells, selected, stale)? {
            Ok(r) => Some(r),
            Err(code) => return Ok(code),
        }
    };
    let mut joined = report::join(earlier.into_iter().chain(ran).collect())
        .context("nothing to report: no mutant ran and no --from")?;
    // Earlier runs were judged against the list of their day.
    if !args.from.is_empty() {
        let text = std::fs::read_to_string(repo_root().join(EQUIVALENT_LIST))
            .with_context(|| format!("reading {EQUIVALENT_LIST}"))?;
        EquivalentList::parse(&text)
            .map_err(|e| anyhow::anyhow!("{EQUIVALENT_LIST}: {e}"))?
            .settle(&mut joined.mutants);
    }
    report::write(&report_dir, &joined)?;
    println!("{}", report::markdown(&joined));
    println!(
        "report: {} (mutants.md, runs/)",
        report_dir.join("mutants.json").display()
    );
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    let unsettled = joined
        .mutants
        .iter()
        .filter(|j| matches!(j.outcome, Outcome::Missed | Outcome::Error))
        .count();
    Ok(if unsettled == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One cell of the escalation: its plan (that cell alone) and the run
/// deadline its clean tracer's run gives.
struct CellPlan {
    name: String,
    plan: harness::engine::Plan,
    run_deadline: Duration,
    baseline_s: f64,
}

/// The mutants after the clean tracer's own runs: `jobs` workers, each
/// with a copy of the checkout, take the next mutant, build it and run it
/// on the cells in order until one fails it.
fn run_mutants(
    args: &MutantsArgs,
    report_dir: &Path,
    cells: &[(String, Arch)],
    selected: Vec<Mutant>,
    stale: Vec<String>,
) -> Result<std::result::Result<MutantsReport, ExitCode>> {
    let margs = MatrixArgs {
        select: Selection {
            kernels: cells.iter().map(|(k, _)| k.clone()).collect(),
            arch: vec![Arch::host().to_string()],
            flavour: None,
        },
        accel: args.accel,
        reprobe_kvm: false,
        report: None,
        jobs: Some(args.jobs),
        boot_timeout: None,
        run_timeout: None,
        cell_timeout: Vec::new(),
        transport: TransportArg::Virtiofs,
        relock: false,
        kernel_image: None,
        kernel_modules: None,
        tracer: None,
    };
    let started = Instant::now();
    let p = match prepare(&margs, &report_dir.join("baseline"), Job::Gate)? {
        Ok(p) => p,
        Err(code) => return Ok(Err(code)),
    };
    note("the clean tracer first: the gate must pass it on every cell");
    // The first scratch copy and the mutants' dependencies build on the
    // core the clean cell leaves free: each mutant then rebuilds only
    // what it touches.
    let root = repo_root();
    let (base, warmed) = std::thread::scope(|s| {
        let warm = s.spawn(|| Scratch::new(&root, 0).and_then(|t| t.warm(&root)));
        let base = run_plan(&p.plan, &p.images, &p.prefetch, false);
        let warmed = warm
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the scratch build panicked")));
        (base, warmed)
    });
    warmed.context("building the unmutated scratch copy")?;
    let mut plans = Vec::new();
    for (alias, arch) in cells {
        let name = format!("{alias}/{arch}");
        let row = base
            .iter()
            .find(|r| r.alias == *alias && r.arch == *arch)
            .with_context(|| format!("the baseline ran no {name} cell"))?;
        if row.status != Status::Pass {
            p.prefetch.finish();
            bail!(
                "the clean tracer fails its own gate on {name} ({:?}: {}): fix that first (report in {})",
                row.status,
                row.error.clone().unwrap_or_default(),
                report_dir.join("baseline").display()
            );
        }
        let mut plan = p.plan.clone();
        plan.cells
            .retain(|c| c.id.alias == *alias && c.id.arch == *arch);
        plan.jobs = 1;
        let run_deadline = Duration::from_secs_f64(row.run_s.unwrap_or(60.0) * 3.0 + 60.0);
        for c in &mut plan.cells {
            c.deadlines.run = run_deadline;
        }
        note(&format!(
            "baseline {name} passed in {:.0} s; a mutant's cell there may run {:.0} s",
            row.total_s,
            run_deadline.as_secs_f64()
        ));
        plans.push(CellPlan {
            name,
            plan,
            run_deadline,
            baseline_s: row.total_s,
        });
    }

    let budget = args.budget.map(|m| Duration::from_secs(m * 60));
    let total = selected.len();
    let queue = std::sync::Mutex::new(selected.into_iter().enumerate());
    let results = std::sync::Mutex::new(Vec::new());
    let workers: Result<()> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..args.jobs)
                .map(|w| {
                    let (queue, results, plans, p, root) = (&queue, &results, &plans, &p, &root);
                    s.spawn(move || -> Result<()> {
                        let tree = Scratch::new(root, w)?;
                        loop {
                            let next = queue
                                .lock()
                                .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                                .next();
                            let Some((n, m)) = next else { return Ok(()) };
                            let over = budget.is_some_and(|b| started.elapsed() > b);
                            let judged =
                                if over || harness::process::stop::cancelled().is_some() {
                                    not_run(m, &tree)
                                } else {
                                    let j = one_mutant(n, m, &tree, plans, p, report_dir)?;
                                    let verdicts = match &j.outcome {
                                        Outcome::Caught { verdicts } => {
                                            format!(" by {} on {}", verdicts.join(", "), j.cell)
                                        }
                                        _ => String::new(),
                                    };
                                    note(&format!(
                                "[{}/{total}] {} {}{verdicts} ({:.0} s build, {:.0} s cells){}",
                                n + 1,
                                j.mutant.key(),
                                j.outcome.name(),
                                j.build_s,
                                j.cell_s,
                                j.note.as_ref().map(|l| format!("; {l}")).unwrap_or_default()
                            ));
                                    j
                                };
                            results
                                .lock()
                                .map_err(|_| anyhow::anyhow!("results poisoned"))?
                                .push((n, judged));
                        }
                    })
                })
                .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a mutant worker panicked"))??;
        }
        Ok(())
    });
    p.prefetch.finish();
    workers?;
    let mut judged = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results poisoned"))?;
    judged.sort_by_key(|(n, _)| *n);
    Ok(Ok(MutantsReport {
        cell: plans
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        wall_s: started.elapsed().as_secs_f64(),
        baseline_s: plans.iter().map(|c| c.baseline_s).sum(),
        mutants: judged.into_iter().map(|(_, j)| j).collect(),
        stale_equivalents: stale,
    }))
}

/// One mutant: built, then run on each cell in order until one fails it.
fn one_mutant(
    n: usize,
    m: Mutant,
    tree: &Scratch,
    cells: &[CellPlan],
    p: &super::run::Prepared,
    report_dir: &Path,
) -> Result<Judged> {
    let slug = format!("{:03}-{}", n + 1, slug(&m.id));
    let building = Instant::now();
    let built = tree.build(&m);
    let build_s = building.elapsed().as_secs_f64();
    let diff = tree.diff(&m);
    let mut judged = Judged {
        mutant: m,
        outcome: Outcome::NotRun,
        cell: String::new(),
        dir: String::new(),
        diff,
        build_s,
        cell_s: 0.0,
        detail: String::new(),
        note: None,
    };
    match built {
        Err(e) => {
            judged.detail = e.clone();
            judged.outcome = Outcome::Unviable { error: e };
        }
        Ok(tracer) => {
            for c in cells {
                let dir = format!("runs/{slug}/{}", c.name.replace('/', "-"));
                let mut plan = c.plan.clone();
                plan.report_dir = report_dir.join(&dir);
                let mut images = p.images.clone();
                for i in &mut images {
                    i.binaries.tracer = tracer.clone();
                }
                let t = Instant::now();
                let rows = run_plan(&plan, &images, &p.prefetch, false);
                judged.cell_s += t.elapsed().as_secs_f64();
                let Some(row) = rows.first() else {
                    judged.detail = "no cell ran".into();
                    break;
                };
                let (o, d, note_line) = mutants::judge(&judged.mutant, row);
                let decided = !matches!(o, Outcome::Missed | Outcome::Equivalent);
                judged.outcome = o;
                judged.detail = d;
                judged.note = note_line;
                judged.cell = c.name.clone();
                judged.dir = dir;
                if decided || harness::process::stop::cancelled().is_some() {
                    break;
                }
                let _ = c.run_deadline;
            }
            // What no guest run reaches may still be checked: a Rust
            // mutant every cell passed meets the crates' unit tests.
            if judged.outcome == Outcome::Missed && judged.mutant.part == mutants::Part::Rust {
                let failed = tree.unit_tests();
                if !failed.is_empty() {
                    judged.detail = format!("unit tests failed: {}", failed.join(", "));
                    judged.outcome = Outcome::Unit { tests: failed };
                }
            }
        }
    }
    tree.restore(&judged.mutant)?;
    Ok(judged)
}

fn not_run(m: Mutant, tree: &Scratch) -> Judged {
    Judged {
        diff: tree.diff(&m),
        mutant: m,
        outcome: Outcome::NotRun,
        cell: String::new(),
        dir: String::new(),
        build_s: 0.0,
        cell_s: 0.0,
        detail: "the budget was spent or the run stopped".into(),
        note: None,
    }
}

/// The compiler's own complaint in a failed build's stderr (rustc's, or
/// clang's through the build script), not cargo's wrapper lines.
fn build_error(stderr: &str) -> String {
    let wrapper = |l: &str| {
        l.starts_with("error: failed to run custom build command")
            || l.starts_with("error: could not compile")
    };
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.contains("error") && !wrapper(l))
        .or_else(|| stderr.lines().find(|l| l.starts_with("error")))
        .unwrap_or("the build failed")
        .to_string()
}

/// A file-name-safe form of a mutant's id.
fn slug(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    s.chars().take(80).collect()
}

/// The copy of the checkout the mutants are built in; its files are made
/// byte-equal to the checkout's when the run starts (only changed files
/// are rewritten, so cargo rebuilds only what a mutant touches), and each
/// mutant is planted in, and taken out of, that copy: the checkout may be
/// edited while a run of hours goes on without moving the mutants' edits.
/// The workers' copies build into one target directory (the
/// dependencies built once; each copy's own crates are packages of their
/// own there), one build at a time, each tracer copied out to the
/// worker's own `bin-W` before the next build replaces it.
struct Scratch {
    tree: PathBuf,
    target: PathBuf,
    bin: PathBuf,
    /// Each mutated file as the run found it.
    pristine: std::cell::RefCell<std::collections::HashMap<String, String>>,
}

impl Scratch {
    /// Worker `w`'s copy, `target/mutants/tree-W`, built into
    /// `target/mutants/target`, its tracer kept in `bin-W`.
    fn new(root: &Path, w: usize) -> Result<Scratch> {
        let base = root.join("target").join("mutants");
        let tree = base.join(format!("tree-{w}"));
        let out = commands::program(
            "git",
            [
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
        )?
        .current_dir(root)
        .output()
        .context("listing the checkout's files (git ls-files)")?;
        if !out.status.success() {
            bail!("the mutants are built from a git checkout; `git ls-files` failed here");
        }
        for f in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let rel = Path::new(std::str::from_utf8(f).context("a file name")?);
            let (from, to) = (root.join(rel), tree.join(rel));
            if !from.is_file() {
                continue;
            }
            let want =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            if std::fs::read(&to).ok().as_deref() != Some(&want[..]) {
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&to, &want).with_context(|| format!("writing {}", to.display()))?;
            }
        }
        Ok(Scratch {
            tree,
            target: base.join("target"),
            bin: base.join(format!("bin-{w}")),
            pristine: Default::default(),
        })
    }

    /// The mutant's file as the run started (read from the copy before
    /// any mutant of it was planted there).
    fn original(&self, m: &Mutant) -> Result<String> {
        let mut known = self.pristine.borrow_mut();
        if let Some(t) = known.get(&m.edit.file) {
            return Ok(t.clone());
        }
        let t = std::fs::read_to_string(self.tree.join(&m.edit.file))
            .with_context(|| format!("reading {}", m.edit.file))?;
        known.insert(m.edit.file.clone(), t.clone());
        Ok(t)
    }

    fn diff(&self, m: &Mutant) -> String {
        self.original(m)
            .map(|t| m.edit.diff(&t))
            .unwrap_or_default()
    }

    /// Builds the copy as it is (no mutant planted): the dependencies
    /// every mutant's build then finds built.
    ///
    /// A first run's target directory starts as a copy of the harness's
    /// own release build for this arch (`target/guest/TRIPLE`, built
    /// before the clean cell; times kept, so cargo finds the dependencies
    /// fresh and rebuilds only the copy's own crates: 4.5 s instead of a
    /// cold build's minutes). Should that copy not build, it is removed and
    /// the build starts cold.
    fn warm(&self, root: &Path) -> Result<()> {
        let triple = Arch::host().rust_target();
        let built = root.join("target").join("guest").join(triple);
        let seeded = !self.target.join(triple).exists() && built.is_dir();
        if seeded {
            std::fs::create_dir_all(&self.target)?;
            harness::process::run_checked(
                &mut commands::program(
                    "cp",
                    [OsStr::new("-a"), built.as_os_str(), self.target.as_os_str()],
                )?,
                "copying the guest build into the mutants' target directory",
                5,
            )?;
        }
        match self.cargo_build() {
            Ok(_) => Ok(()),
            Err(_) if seeded => {
                std::fs::remove_dir_all(self.target.join(triple))?;
                self.cargo_build()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// Plants the mutant and builds the tracer; Ok: the binary, Err: why
    /// it did not build (the compiler's last lines).
    fn build(&self, m: &Mutant) -> std::result::Result<PathBuf, String> {
        let text = self.original(m).map_err(|e| format!("{e:#}"))?;
        let mutated = m
            .edit
            .apply(&text)
            .ok_or_else(|| format!("the edit is not inside {}", m.edit.file))?;
        std::fs::write(self.tree.join(&m.edit.file), mutated).map_err(|e| e.to_string())?;
        self.cargo_build()
    }

    /// `cargo build` of the copy's tracer, under the one build lock, and
    /// the binary copied to this worker's `bin-W`.
    fn cargo_build(&self) -> std::result::Result<PathBuf, String> {
        static ONE_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE_BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let triple = Arch::host().rust_target();
        let out = commands::cargo([
            OsStr::new("build"),
            OsStr::new("--release"),
            OsStr::new("--locked"),
            OsStr::new("-p"),
            OsStr::new("unlink-tracer"),
            OsStr::new("--target"),
            OsStr::new(triple),
            OsStr::new("--target-dir"),
            self.target.as_os_str(),
        ])
        .map_err(|e| format!("{e:#}"))?
        .current_dir(&self.tree)
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(build_error(&err));
        }
        let built = self
            .target
            .join(triple)
            .join("release")
            .join("unlink-tracer");
        let kept = self.bin.join("unlink-tracer");
        std::fs::create_dir_all(&self.bin)
            .and_then(|()| std::fs::copy(&built, &kept))
            .map_err(|e| format!("copying {} to {}: {e}", built.display(), kept.display()))?;
        Ok(kept)
    }

    /// The tracer's and schema's unit tests (library and binary) with the
    /// mutant planted: the tests that failed (empty: none did, or they
    /// did not build).
    fn unit_tests(&self) -> Vec<String> {
        let unit = self.target.with_extension("unit");
        let out = commands::cargo([
            OsStr::new("test"),
            OsStr::new("--locked"),
            OsStr::new("-p"),
            OsStr::new("unlink-tracer"),
            OsStr::new("-p"),
            OsStr::new("unlink-schema"),
            OsStr::new("--lib"),
            OsStr::new("--bins"),
            OsStr::new("--target-dir"),
            unit.as_os_str(),
        ])
        .and_then(|mut c| Ok(c.current_dir(&self.tree).output()?));
        match out {
            Ok(o) if !o.status.success() => {
                mutants::failed_tests(&String::from_utf8_lossy(&o.stdout))
            }
            _ => Vec::new(),
        }
    }

    fn restore(&self, m: &Mutant) -> Result<()> {
        let text = self.original(m)?;
        std::fs::write(self.tree.join(&m.edit.file), text)
            .with_context(|| format!("restoring {}", m.edit.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("tracer/src/pair.rs: replace == with != in Pairer::find #2"),
            "tracer-src-pair-rs-replace-with-in-Pairer-find-2"
        );
        assert_eq!(slug("filter-pid-is-tid"), "filter-pid-is-tid");
    }

    #[test]
    fn build_errors_are_the_compilers() {
        let clang = "   Compiling unlink-tracer\nerror: failed to run custom build command for `unlink-tracer`\n  Error: building unlink.bpf.c\n  4: unlink.bpf.c:150:7: error: unused variable 'one'\n";
        assert_eq!(
            build_error(clang),
            "4: unlink.bpf.c:150:7: error: unused variable 'one'"
        );
        let rustc = "error[E0308]: mismatched types\n --> a.rs:1:1\nerror: could not compile `unlink-tracer`\n";
        assert_eq!(build_error(rustc), "error[E0308]: mismatched types");
        assert_eq!(build_error("nothing"), "the build failed");
    }

    #[test]
    fn parts_are_named() {
        use harness::mutants::Part;
        assert_eq!(Part::ALL.map(Part::name), ["rust", "bpf"]);
    }
}
