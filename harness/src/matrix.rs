//! The engine: plans cells (kernel × arch), runs each through the stages
//! fetch → image → boot → trace → normalise → check, and reports typed
//! events on a channel. It never prints.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::boot::{self, Accel, BootEnd, BootSpec};
use crate::check::{self, PrintkLine, SnapshotCheck};
use crate::image::GuestBinaries;
use crate::kernel::{self, KernelImage};
use crate::manifest::{Arch, KernelEntry};
use crate::normalise::{self, Step, TracerSummary};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellId {
    pub alias: String,
    pub arch: Arch,
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.alias, self.arch)
    }
}

/// Where a cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Fetching,
    Booting,
    Checking,
}

/// What the engine reports while it works.
#[derive(Debug, Clone)]
pub enum MatrixEvent {
    Stage { cell: CellId, stage: Stage },
    Note { cell: CellId, text: String },
    Done(Box<CellResult>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Timeout,
    Error,
}

/// One scenario's verdict in a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// One row of matrix.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub alias: String,
    pub suite: String,
    pub arch: Arch,
    /// The kernel package that was booted.
    pub kernel_package: Option<String>,
    /// Its exact Debian version.
    pub kernel: Option<String>,
    /// `uname -r` in the guest.
    pub release: Option<String>,
    pub accel: Accel,
    pub status: Status,
    /// The kernel function the tracer attached to.
    pub symbol: Option<String>,
    pub ret_width_bits: Option<u32>,
    pub boot_s: Option<f64>,
    pub total_s: f64,
    /// Workload events seen in the tutorial scenario.
    pub events: Option<usize>,
    pub scenarios: Vec<ScenarioResult>,
    pub error: Option<String>,
    /// Cell directory inside the report dir (console log, raw guest output).
    pub dir: PathBuf,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kernels: Vec<KernelEntry>,
    pub arches: Vec<Arch>,
    pub accel: Accel,
    pub flavour: Option<String>,
    pub report_dir: PathBuf,
    pub cache: PathBuf,
    pub vng: PathBuf,
    /// Deadline of one boot (whole guest run).
    pub boot_deadline: Duration,
    pub jobs: usize,
    /// Kernels already fetched (the one the KVM probe booted): not fetched again.
    pub prefetched: Vec<KernelImage>,
}

impl Plan {
    pub fn cells(&self) -> Vec<CellId> {
        let mut cells = Vec::new();
        for k in &self.kernels {
            for &arch in &self.arches {
                cells.push(CellId {
                    alias: k.alias.clone(),
                    arch,
                });
            }
        }
        cells
    }
}

/// The runs the guest agent makes in one boot: (name, tracer mode).
pub const GUEST_RUNS: &[(&str, &str)] = &[
    ("tutorial", "kprobe"),
    ("printk", "printk"),
    ("fentry", "fentry"),
];

/// Runs every cell, `plan.jobs` at a time; returns their results in plan order.
pub fn run(
    plan: &Plan,
    binaries: &[(Arch, GuestBinaries)],
    tx: &Sender<MatrixEvent>,
) -> Vec<CellResult> {
    let cells = plan.cells();
    let queue = Mutex::new(cells.iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<CellResult>>> = Mutex::new(vec![None; cells.len()]);
    std::thread::scope(|s| {
        for _ in 0..plan.jobs.max(1) {
            let tx = tx.clone();
            let (queue, results) = (&queue, &results);
            s.spawn(move || {
                while let Some((i, cell)) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let bins = binaries
                        .iter()
                        .find(|(a, _)| *a == cell.arch)
                        .map(|(_, b)| b);
                    let r = run_cell(plan, cell, bins, &tx);
                    let _ = tx.send(MatrixEvent::Done(Box::new(r.clone())));
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

fn run_cell(
    plan: &Plan,
    cell: &CellId,
    bins: Option<&GuestBinaries>,
    tx: &Sender<MatrixEvent>,
) -> CellResult {
    let start = Instant::now();
    let entry = plan.kernels.iter().find(|k| k.alias == cell.alias);
    let dir = plan
        .report_dir
        .join("cells")
        .join(format!("{}-{}", cell.alias, cell.arch));
    let mut r = CellResult {
        alias: cell.alias.clone(),
        suite: entry.map(|e| e.suite.clone()).unwrap_or_default(),
        arch: cell.arch,
        kernel_package: None,
        kernel: None,
        release: None,
        accel: plan.accel,
        status: Status::Error,
        symbol: None,
        ret_width_bits: None,
        boot_s: None,
        total_s: 0.0,
        events: None,
        scenarios: Vec::new(),
        error: None,
        dir: dir.clone(),
    };
    let outcome = (|| -> Result<()> {
        let entry = entry.context("not in the manifest")?;
        let bins = bins.with_context(|| format!("no guest binaries for {}", cell.arch))?;
        let _ = tx.send(MatrixEvent::Stage {
            cell: cell.clone(),
            stage: Stage::Fetching,
        });
        let note = |text: &str| {
            let _ = tx.send(MatrixEvent::Note {
                cell: cell.clone(),
                text: text.to_string(),
            });
        };
        let prefetched = plan
            .prefetched
            .iter()
            .find(|k| k.alias == cell.alias && k.arch == cell.arch);
        let img = match prefetched {
            Some(img) => img.clone(),
            None => kernel::fetch(
                &plan.cache,
                entry,
                cell.arch,
                plan.flavour.as_deref(),
                &note,
            )
            .with_context(|| format!("fetching the {} kernel", entry.alias))?,
        };
        r.kernel_package = Some(img.package.clone());
        r.kernel = Some(img.version.clone());
        r.release = Some(img.release.clone());
        boot_and_check(plan, cell, &img, bins, &dir, &mut r, tx)
    })();
    if let Err(e) = outcome {
        r.error = Some(format!("{e:#}"));
        if r.status == Status::Pass {
            r.status = Status::Error;
        }
    }
    r.total_s = round2(start.elapsed().as_secs_f64());
    r
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[allow(clippy::too_many_arguments)]
fn boot_and_check(
    plan: &Plan,
    cell: &CellId,
    img: &KernelImage,
    bins: &GuestBinaries,
    dir: &Path,
    r: &mut CellResult,
    tx: &Sender<MatrixEvent>,
) -> Result<()> {
    let out = dir.join("out");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut command = format!(
        "{} --tracer {} --out {}",
        bins.agent.display(),
        bins.tracer.display(),
        out.display()
    );
    for (name, mode) in GUEST_RUNS {
        command.push_str(&format!(" --run {name}={mode}"));
    }
    let spec = BootSpec {
        vng: plan.vng.clone(),
        arch: cell.arch,
        accel: plan.accel,
        vmlinuz: img.vmlinuz.clone(),
        cpus: 2,
        memory_mb: 1024,
        rwdirs: vec![out.clone()],
        qemu_opts: None,
        command,
    };
    let _ = tx.send(MatrixEvent::Stage {
        cell: cell.clone(),
        stage: Stage::Booting,
    });
    let console = dir.join("console.log");
    let boot = boot::run(&spec, &console, plan.boot_deadline)?;
    r.boot_s = boot.first_kernel_line_s.map(round2);
    match &boot.end {
        BootEnd::Timeout => {
            r.status = Status::Timeout;
            anyhow::bail!(
                "no result within {}s; console log: {}",
                plan.boot_deadline.as_secs(),
                console.display()
            );
        }
        BootEnd::Failure(f) => {
            r.status = Status::Fail;
            anyhow::bail!("{} in the guest: {}", f.kind, f.line);
        }
        BootEnd::Exited(_) => {}
    }
    if !out.join("done").exists() {
        anyhow::bail!(
            "the guest agent did not finish (no {}); console log: {}",
            out.join("done").display(),
            console.display()
        );
    }
    let _ = tx.send(MatrixEvent::Stage {
        cell: cell.clone(),
        stage: Stage::Checking,
    });
    let tutorial = check_tutorial(&out.join("tutorial"), r);
    r.scenarios.push(tutorial);
    r.scenarios.push(check_printk(&out.join("printk")));
    r.scenarios.push(check_fentry(&out.join("fentry")));
    r.status = if r.scenarios.iter().all(|s| s.status == Status::Pass) {
        Status::Pass
    } else {
        Status::Fail
    };
    Ok(())
}

#[derive(Debug, Deserialize)]
struct AgentOutcome {
    ok: bool,
    error: Option<String>,
}

/// Reads what the agent wrote for one run; Err names what is missing or failed.
fn read_run(dir: &Path) -> Result<(Vec<Step>, String, String)> {
    let outcome: AgentOutcome = serde_json::from_slice(
        &std::fs::read(dir.join("result.json"))
            .with_context(|| format!("no {}/result.json", dir.display()))?,
    )
    .context("result.json")?;
    let stderr = std::fs::read_to_string(dir.join("tracer.err")).unwrap_or_default();
    if !outcome.ok {
        let tracer_said = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("unlink-tracer:"))
            .unwrap_or("");
        anyhow::bail!("{} {}", outcome.error.unwrap_or_default(), tracer_said);
    }
    let steps: Vec<Step> = serde_json::from_slice(&std::fs::read(dir.join("workload.json"))?)
        .context("workload.json")?;
    let trace = std::fs::read_to_string(dir.join("trace.out")).context("trace.out")?;
    Ok((steps, trace, stderr))
}

fn scenario(name: &str, result: Result<String>) -> ScenarioResult {
    match result {
        Ok(detail) => ScenarioResult {
            name: name.into(),
            status: Status::Pass,
            detail,
        },
        Err(e) => ScenarioResult {
            name: name.into(),
            status: Status::Fail,
            detail: format!("{e:#}"),
        },
    }
}

/// The normalised trace of the tutorial run, as the snapshot sees it.
pub fn tutorial_trace(dir: &Path) -> Result<(normalise::Normalised, TracerSummary)> {
    let (steps, trace, stderr) = read_run(dir)?;
    let events = normalise::parse_events(&trace)?;
    let summary = normalise::parse_summary(&stderr).context("the tracer wrote no JSON summary")?;
    Ok((normalise::normalise(&steps, &events, &summary), summary))
}

/// Keeps a kprobe/fentry run's normalised text beside its raw output and
/// gates it on the reviewed tutorial snapshot and on nothing lost in decoding.
fn gate_on_tutorial_snapshot(
    dir: &Path,
    n: &normalise::Normalised,
    summary: &TracerSummary,
) -> Result<()> {
    std::fs::write(dir.join("normalised.txt"), &n.text)?;
    anyhow::ensure!(
        summary.counters.decode_errors == 0,
        "{} ring buffer records did not decode",
        summary.counters.decode_errors
    );
    match check::check_snapshot(&check::snapshot_dir(), "tutorial", &n.text)? {
        SnapshotCheck::Match => Ok(()),
        other => anyhow::bail!("snapshot {other}"),
    }
}

fn check_tutorial(dir: &Path, r: &mut CellResult) -> ScenarioResult {
    scenario(
        "tutorial",
        (|| {
            let (n, summary) = tutorial_trace(dir)?;
            r.symbol = Some(summary.symbol.clone());
            r.ret_width_bits = Some(summary.ret_width_bits);
            r.events = Some(n.events);
            gate_on_tutorial_snapshot(dir, &n, &summary)?;
            Ok(format!(
                "snapshot matches: {} events, {} background, dropped {}, unpaired {}",
                n.events, n.background, summary.counters.dropped, summary.counters.unpaired_returns
            ))
        })(),
    )
}

/// fentry/fexit mode must produce the same normalised trace as kprobe mode.
fn check_fentry(dir: &Path) -> ScenarioResult {
    scenario(
        "fentry",
        (|| {
            let (n, summary) = tutorial_trace(dir)?;
            gate_on_tutorial_snapshot(dir, &n, &summary)?;
            Ok(format!(
                "same trace as kprobe mode (tutorial snapshot): {} events, dropped {}",
                n.events, summary.counters.dropped
            ))
        })(),
    )
}

/// The tutorial's printk lines for the workload's rm steps, with the right ret.
pub fn check_printk(dir: &Path) -> ScenarioResult {
    scenario(
        "printk",
        (|| {
            let (steps, trace, _) = read_run(dir)?;
            let lines: Vec<PrintkLine> = trace.lines().filter_map(check::parse_printk).collect();
            let mut checked = 0;
            for s in steps.iter().filter(|s| s.argv[0] == "rm") {
                let name = &s.argv[1];
                let want_ret = if s.exit_code == Some(0) { 0 } else { -2 };
                let entry = PrintkLine::Entry {
                    pid: s.pid,
                    filename: name.clone(),
                };
                let exit = PrintkLine::Exit {
                    pid: s.pid,
                    ret: want_ret,
                };
                anyhow::ensure!(
                    lines.contains(&entry),
                    "no `KPROBE ENTRY pid = {}, filename = {name}` line",
                    s.pid
                );
                anyhow::ensure!(
                lines.contains(&exit),
                "no `KPROBE EXIT: pid = {}, ret = {want_ret}` line (rm {name}); exits seen for that pid: {:?}",
                s.pid,
                lines.iter().filter(|l| matches!(l, PrintkLine::Exit { pid, .. } if *pid == s.pid)).collect::<Vec<_>>()
            );
                checked += 1;
            }
            anyhow::ensure!(checked > 0, "the workload ran no rm");
            Ok(format!(
                "{checked} entry/exit line pairs found in trace_pipe with the expected ret"
            ))
        })(),
    )
}
