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

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use harness::engine::Job;
use harness::host::setup;
use harness::model::{Accel, Arch, Status};
use harness::mutants::{self, bpf, rust, EquivalentList, Judged, Mutant, Outcome};
use harness::paths::repo_root;
use harness::report::mutants::{self as report, MutantsReport};

use super::matrix::{MatrixArgs, TransportArg};
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
    /// The BPF mutants' table [default: mutants/bpf.toml].
    #[arg(long, value_name = "PATH")]
    pub table: Option<PathBuf>,
    /// The cell every mutant runs on.
    #[arg(long, default_value = "bookworm/x86_64")]
    pub cell: String,
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
    if matches!(args.part, PartArg::Rust | PartArg::All) {
        let cache = harness::paths::cache_root();
        let bin = setup::ensure_cargo_mutants(&cache, &note)?;
        let out = Command::new(&bin)
            .current_dir(&root)
            .args(rust::list_args())
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
    if matches!(args.part, PartArg::Bpf | PartArg::All) {
        let table = args.table.clone().unwrap_or_else(|| root.join(BPF_TABLE));
        let text = std::fs::read_to_string(&table)
            .with_context(|| format!("reading {}", table.display()))?;
        match bpf::parse(&text, &source, harness::gate::VERDICTS) {
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
    let (alias, arch) = match args.cell.split_once('/') {
        Some((k, a)) if Arch::parse(a).is_some() => (k.to_string(), a.to_string()),
        _ => {
            return Ok(usage_error(format!(
                "--cell `{}`: expected KERNEL/ARCH, e.g. bookworm/x86_64",
                args.cell
            )))
        }
    };
    if Arch::parse(&arch) != Some(Arch::host()) {
        return Ok(usage_error(format!(
            "--cell {}: mutants are built for this host's arch ({})",
            args.cell,
            Arch::host()
        )));
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
        match run_mutants(&args, &report_dir, &alias, &arch, selected, stale)? {
            Ok(r) => Some(r),
            Err(code) => return Ok(code),
        }
    };
    let joined = report::join(earlier.into_iter().chain(ran).collect())
        .context("nothing to report: no mutant ran and no --from")?;
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
    let missed = joined
        .mutants
        .iter()
        .filter(|j| j.outcome == Outcome::Missed)
        .count();
    Ok(if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The mutants, one at a time, after the clean tracer's own run.
fn run_mutants(
    args: &MutantsArgs,
    report_dir: &Path,
    alias: &str,
    arch: &str,
    selected: Vec<Mutant>,
    stale: Vec<String>,
) -> Result<std::result::Result<MutantsReport, ExitCode>> {
    let margs = MatrixArgs {
        select: Selection {
            kernels: vec![alias.to_string()],
            arch: vec![arch.to_string()],
            flavour: None,
        },
        accel: args.accel,
        repeat: 1,
        reprobe_kvm: false,
        report: None,
        jobs: Some(1),
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
    note("the clean tracer first: the gate must pass it");
    let base = run_plan(&p.plan, &p.images, &p.prefetch, false);
    let base = base.first().context("the baseline ran no cell")?;
    if base.status != Status::Pass {
        p.prefetch.finish();
        bail!(
            "the clean tracer fails its own gate on {} ({:?}: {}): fix that first (report in {})",
            args.cell,
            base.status,
            base.error.clone().unwrap_or_default(),
            report_dir.join("baseline").display()
        );
    }
    let baseline_s = base.total_s;
    let run_deadline = Duration::from_secs_f64(base.run_s.unwrap_or(60.0) * 3.0 + 60.0);
    note(&format!(
        "baseline passed in {baseline_s:.0} s; each mutant's cell may run {:.0} s",
        run_deadline.as_secs_f64()
    ));

    let tree = Scratch::new(&repo_root())?;
    let budget = args.budget.map(|m| Duration::from_secs(m * 60));
    let total = selected.len();
    let mut judged = Vec::new();
    for (n, m) in selected.into_iter().enumerate() {
        let over = budget.is_some_and(|b| started.elapsed() > b);
        if over || harness::process::stop::cancelled().is_some() {
            judged.push(not_run(m, &tree));
            continue;
        }
        let slug = format!("{:03}-{}", n + 1, slug(&m.id));
        let dir = report_dir.join("runs").join(&slug);
        let building = Instant::now();
        let built = tree.build(&m);
        let build_s = building.elapsed().as_secs_f64();
        let diff = tree.diff(&m);
        let (outcome, detail, note_line, cell_s) = match built {
            Err(e) => (Outcome::Unviable { error: e.clone() }, e, None, 0.0),
            Ok(tracer) => {
                let mut plan = p.plan.clone();
                plan.report_dir = dir.clone();
                for c in &mut plan.cells {
                    c.deadlines.run = run_deadline;
                }
                let mut images = p.images.clone();
                for i in &mut images {
                    i.binaries.tracer = tracer.clone();
                }
                let cell = Instant::now();
                let rows = run_plan(&plan, &images, &p.prefetch, false);
                let cell_s = cell.elapsed().as_secs_f64();
                match rows.first() {
                    Some(row) => {
                        let (o, d, n) = mutants::judge(&m, row);
                        (o, d, n, cell_s)
                    }
                    None => (Outcome::NotRun, "no cell ran".into(), None, cell_s),
                }
            }
        };
        tree.restore(&m)?;
        let verdicts = match &outcome {
            Outcome::Caught { verdicts } => format!(" by {}", verdicts.join(", ")),
            _ => String::new(),
        };
        note(&format!(
            "[{}/{total}] {} {}{verdicts} ({build_s:.0} s build, {cell_s:.0} s cell){}",
            n + 1,
            m.key(),
            outcome.name(),
            note_line
                .as_ref()
                .map(|l| format!("; {l}"))
                .unwrap_or_default()
        ));
        judged.push(Judged {
            mutant: m,
            outcome,
            dir: format!("runs/{slug}"),
            diff,
            build_s,
            cell_s,
            detail,
            note: note_line,
        });
    }
    p.prefetch.finish();
    Ok(Ok(MutantsReport {
        cell: args.cell.clone(),
        wall_s: started.elapsed().as_secs_f64(),
        baseline_s,
        mutants: judged,
        stale_equivalents: stale,
    }))
}

fn not_run(m: Mutant, tree: &Scratch) -> Judged {
    Judged {
        diff: tree.diff(&m),
        mutant: m,
        outcome: Outcome::NotRun,
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

/// The copy of the checkout the mutants are built in; its files are kept
/// byte-equal to the checkout's (only changed files are rewritten, so
/// cargo rebuilds only what a mutant touches).
struct Scratch {
    root: PathBuf,
    tree: PathBuf,
    target: PathBuf,
}

impl Scratch {
    fn new(root: &Path) -> Result<Scratch> {
        let base = root.join("target").join("mutants");
        let tree = base.join("tree");
        let out = Command::new("git")
            .current_dir(root)
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
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
            root: root.to_path_buf(),
            tree,
            target: base.join("target"),
        })
    }

    fn original(&self, m: &Mutant) -> Result<String> {
        std::fs::read_to_string(self.root.join(&m.edit.file))
            .with_context(|| format!("reading {}", m.edit.file))
    }

    fn diff(&self, m: &Mutant) -> String {
        self.original(m)
            .map(|t| m.edit.diff(&t))
            .unwrap_or_default()
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
        let triple = Arch::host().rust_target();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(&self.tree)
            .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "unlink-tracer",
                "--target",
                triple,
            ])
            .arg("--target-dir")
            .arg(&self.target)
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(build_error(&err));
        }
        Ok(self
            .target
            .join(triple)
            .join("release")
            .join("unlink-tracer"))
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
