//! The engine: plans cells (kernel × arch), runs each through the stages
//! fetch → image → boot → trace → normalise → check, and reports typed
//! events on a channel. It never prints.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gate;
use crate::gate::console;
use crate::images::image::GuestBinaries;
use crate::images::rootfs::{self, GuestRoot};
use crate::kernels::facts;
use crate::kernels::kernel::{self, KernelImage};
use crate::kernels::lock::LockEntry;
use crate::kernels::manifest::KnownSplat;
use crate::model::figures::{CellOverhead, Clock, ClockFigures};
use crate::model::{Accel, Arch, CellId, CellResult, Status};
use crate::overhead;
use crate::vm::boot::{self, BootEnd, BootSpec, Deadlines};

/// Where a cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Fetching,
    BuildingRoot,
    Booting,
    Tracing,
    /// Running the overhead benches.
    Measuring,
    Checking,
}

/// What the engine reports while it works.
#[derive(Debug, Clone)]
pub enum MatrixEvent {
    Stage { cell: CellId, stage: Stage },
    Note { cell: CellId, text: String },
    Done(Box<CellResult>),
}

/// Where a cell's kernel comes from.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// A Debian kernel, exactly as the lock file names it.
    Locked(LockEntry),
    /// The user's own kernel (`--kernel-image`).
    Custom(KernelImage),
}

/// One cell to run.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub id: CellId,
    pub suite: String,
    pub kernel: KernelSource,
    pub deadlines: Deadlines,
    /// The splats the manifest declares for this kernel on this arch
    /// (none for a custom kernel): the `console` verdict's expectations.
    pub known_splats: Vec<KnownSplat>,
}

/// The guest side of one arch: binaries, and a root unless the host's is used.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub arch: Arch,
    pub binaries: GuestBinaries,
    /// The recipe of the guest root (None: the host's root, read-only).
    pub root_recipe: Option<PathBuf>,
}

/// What each cell's guest does.
#[derive(Debug, Clone)]
pub enum Job {
    /// The scenario gate (`harness matrix`).
    Gate,
    /// The overhead meter (`harness overhead`).
    Overhead(overhead::Settings),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub job: Job,
    pub cells: Vec<CellSpec>,
    pub accel: Accel,
    pub report_dir: PathBuf,
    pub cache: PathBuf,
    pub vng: PathBuf,
    pub jobs: usize,
    /// The dir holding `virtiofsd` (None: every guest uses 9p).
    pub virtiofsd_dir: Option<PathBuf>,
}

/// Guest roots built during a run, one per recipe (built once, shared).
type Roots = Mutex<HashMap<PathBuf, std::result::Result<GuestRoot, String>>>;

/// Runs every cell, `plan.jobs` at a time; returns their results in plan order.
pub fn run(plan: &Plan, images: &[GuestImage], tx: &Sender<MatrixEvent>) -> Vec<CellResult> {
    let queue = Mutex::new(plan.cells.iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<CellResult>>> = Mutex::new(vec![None; plan.cells.len()]);
    let roots: Roots = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for _ in 0..plan.jobs.max(1) {
            let tx = tx.clone();
            let (queue, results, roots) = (&queue, &results, &roots);
            s.spawn(move || {
                while let Some((i, cell)) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let image = images.iter().find(|g| g.arch == cell.id.arch);
                    let r = run_cell(plan, cell, image, roots, &tx);
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

/// The guest root for a recipe: built by the first cell that needs it
/// (the others wait on the lock), then shared.
fn guest_root(plan: &Plan, recipe: &Path, roots: &Roots, note: &dyn Fn(&str)) -> Result<GuestRoot> {
    let mut built = roots
        .lock()
        .map_err(|_| anyhow::anyhow!("a cell panicked while building the guest root"))?;
    let entry = built
        .entry(recipe.to_path_buf())
        .or_insert_with(|| rootfs::build(&plan.cache, recipe, note).map_err(|e| format!("{e:#}")));
    entry
        .clone()
        .map_err(|e| anyhow::anyhow!("building the guest root from {}: {e}", recipe.display()))
}

fn run_cell(
    plan: &Plan,
    cell: &CellSpec,
    image: Option<&GuestImage>,
    roots: &Roots,
    tx: &Sender<MatrixEvent>,
) -> CellResult {
    let start = Instant::now();
    let id = &cell.id;
    let dir = plan
        .report_dir
        .join("cells")
        .join(format!("{}-{}", id.alias, id.arch));
    let mut r = CellResult {
        alias: id.alias.clone(),
        suite: cell.suite.clone(),
        arch: id.arch,
        kernel_package: None,
        kernel: None,
        release: None,
        accel: plan.accel,
        transport: None,
        status: Status::Error,
        symbol: None,
        ret_width_bits: None,
        banner_s: None,
        boot_s: None,
        run_s: None,
        total_s: 0.0,
        events: None,
        missed_returns: None,
        snapshots: Default::default(),
        scenarios: Vec::new(),
        overhead: None,
        error: None,
        dir: dir.clone(),
    };
    let stage = |stage: Stage| {
        let _ = tx.send(MatrixEvent::Stage {
            cell: id.clone(),
            stage,
        });
    };
    let note = |text: &str| {
        let _ = tx.send(MatrixEvent::Note {
            cell: id.clone(),
            text: text.to_string(),
        });
    };
    let outcome = (|| -> Result<()> {
        let image = image.with_context(|| format!("no guest image for {}", id.arch))?;
        stage(Stage::Fetching);
        let img = match &cell.kernel {
            KernelSource::Custom(img) => img.clone(),
            KernelSource::Locked(locked) => kernel::fetch(&plan.cache, locked, &note)
                .with_context(|| format!("fetching the {} kernel", id.alias))?,
        };
        r.kernel_package = Some(img.package.clone());
        r.kernel = Some(img.version.clone());
        r.release = Some(img.release.clone()).filter(|s| !s.is_empty());
        let root = match &image.root_recipe {
            Some(recipe) => {
                stage(Stage::BuildingRoot);
                Some(guest_root(plan, recipe, roots, &note)?)
            }
            None => None,
        };
        let run = CellRun {
            plan,
            cell,
            img: &img,
            image,
            root: root.as_ref(),
            dir: &dir,
            tx,
        };
        match &plan.job {
            Job::Gate => boot_and_check(&run, &mut r),
            Job::Overhead(settings) => boot_and_measure(&run, settings, &mut r),
        }
    })();
    if let Err(e) = outcome {
        r.error = Some(format!("{e:#}"));
        if r.status.is_ok() {
            r.status = Status::Error;
        }
    }
    r.total_s = round2(start.elapsed().as_secs_f64());
    r
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Where the guest sees its results directory (a tmpfs in every guest).
pub const GUEST_OUT: &str = "/run/unlink-out";

/// Copies the guest binaries into the results dir and returns their guest
/// paths (with a root of its own, host paths are not visible in the guest).
fn stage_binaries(bins: &GuestBinaries, out: &Path) -> Result<GuestBinaries> {
    let dir = out.join("bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let copy = |from: &Path| -> Result<PathBuf> {
        let name = from.file_name().context("binary without a name")?;
        let to = dir.join(name);
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(Path::new(GUEST_OUT).join("bin").join(name))
    };
    Ok(GuestBinaries {
        tracer: copy(&bins.tracer)?,
        agent: copy(&bins.agent)?,
        bench: bins.bench.as_deref().map(copy).transpose()?,
    })
}

/// One boot of a cell's guest: what runs, where its results and console go.
struct GuestBoot {
    /// KVM or TCG for this boot (icount needs TCG).
    accel: Accel,
    command: String,
    qemu_opts: Option<String>,
    cpus: u32,
    out: PathBuf,
    console: PathBuf,
    deadlines: Deadlines,
}

/// Seconds of one boot: to the banner, to the agent's start, and the
/// agent's run; and what its console showed (of the boot whose results
/// are used, when a cell boots again over 9p).
#[derive(Debug, Clone, Default)]
struct BootTimes {
    banner_s: Option<f64>,
    boot_s: Option<f64>,
    run_s: Option<f64>,
    console_lines: usize,
    splats: Vec<boot::Splat>,
}

/// A clean results directory with the guest binaries staged in it.
fn prepare_out(out: &Path, bins: &GuestBinaries) -> Result<GuestBinaries> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    stage_binaries(bins, out)
}

/// What the boot stages of one cell work with.
struct CellRun<'a> {
    plan: &'a Plan,
    cell: &'a CellSpec,
    img: &'a KernelImage,
    image: &'a GuestImage,
    root: Option<&'a GuestRoot>,
    /// The cell's directory in the report.
    dir: &'a Path,
    tx: &'a Sender<MatrixEvent>,
}

/// Boots the guest once and waits for its agent: the times, and Err when
/// it timed out, the kernel failed, or the agent did not finish (`done`
/// missing).
fn boot_guest(c: &CellRun, gb: &GuestBoot, r: &mut CellResult) -> (BootTimes, Result<()>) {
    let mut times = BootTimes::default();
    let result = boot_guest_inner(c, gb, r, &mut times);
    (times, result)
}

fn boot_guest_inner(
    c: &CellRun,
    gb: &GuestBoot,
    r: &mut CellResult,
    times: &mut BootTimes,
) -> Result<()> {
    let CellRun {
        plan,
        cell,
        img,
        root,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let spec = BootSpec {
        vng: plan.vng.clone(),
        arch: id.arch,
        accel: gb.accel,
        vmlinuz: img.vmlinuz.clone(),
        cpus: gb.cpus,
        memory_mb: 1024,
        rwdirs: vec![boot::Share {
            guest: GUEST_OUT.into(),
            host: gb.out.clone(),
        }],
        qemu_opts: gb.qemu_opts.clone(),
        root: root.map(|g| g.dir.clone()),
        busybox: root.and_then(|g| g.busybox.clone()),
        transport: match &plan.virtiofsd_dir {
            Some(dir) if !no_virtiofs_marker(img).is_some_and(|m| m.exists()) => {
                boot::Transport::VirtioFs(dir.clone())
            }
            _ => boot::Transport::NineP,
        },
        command: gb.command.clone(),
    };
    let _ = tx.send(MatrixEvent::Stage {
        cell: id.clone(),
        stage: Stage::Booting,
    });
    let console = &gb.console;
    let on_guest = |line: &str| {
        let ev = if line.starts_with(boot::GUEST_START_MARKER) {
            MatrixEvent::Stage {
                cell: id.clone(),
                stage: match plan.job {
                    Job::Gate => Stage::Tracing,
                    Job::Overhead(_) => Stage::Measuring,
                },
            }
        } else {
            MatrixEvent::Note {
                cell: id.clone(),
                text: format!(
                    "{}: {}",
                    match plan.job {
                        Job::Gate => "tracing",
                        Job::Overhead(_) => "measuring",
                    },
                    line.trim_start_matches("UNLINK-GUEST: ")
                ),
            }
        };
        let _ = tx.send(ev);
    };
    let mut boot = boot::run(&spec, console, gb.deadlines, &on_guest)?;
    // Some kernels cannot mount a virtio-fs root (arm64 5.10 here): the
    // share is plumbing, not what is tested, so boot once more over 9p and
    // say so.
    if matches!(&boot.end, BootEnd::Failure(f) if f.kind == boot::SHARE_FAILURE)
        && matches!(spec.transport, boot::Transport::VirtioFs(_))
    {
        let _ = tx.send(MatrixEvent::Note {
            cell: id.clone(),
            text: "virtio-fs root did not mount: booting again over 9p".into(),
        });
        let _ = std::fs::rename(console, console.with_extension("virtiofs.log"));
        let nine_p = BootSpec {
            transport: boot::Transport::NineP,
            ..spec.clone()
        };
        boot = boot::run(&nine_p, console, gb.deadlines, &on_guest)?;
        r.transport = Some("9p (virtio-fs root did not mount)".into());
        if let Some(marker) = no_virtiofs_marker(img) {
            let _ = std::fs::write(marker, "virtio-fs root did not mount; 9p is used\n");
        }
    } else {
        r.transport = Some(match spec.transport {
            boot::Transport::NineP if plan.virtiofsd_dir.is_some() => {
                "9p (virtio-fs root did not mount before)".into()
            }
            boot::Transport::NineP => "9p".into(),
            boot::Transport::VirtioFs(_) => "virtio-fs".into(),
        });
    }
    *times = BootTimes {
        banner_s: boot.first_kernel_line_s.map(round2),
        boot_s: boot.guest_start_s.map(round2),
        run_s: boot
            .guest_start_s
            .map(|s| round2(boot.wall.as_secs_f64() - s)),
        console_lines: boot.console_lines,
        splats: std::mem::take(&mut boot.splats),
    };
    match &boot.end {
        BootEnd::Timeout(phase) => {
            r.status = Status::Timeout;
            let (what, limit) = match phase {
                boot::Phase::Boot => ("the guest did not boot", gb.deadlines.boot),
                boot::Phase::Run => ("the guest run did not finish", gb.deadlines.run),
            };
            anyhow::bail!(
                "{what} within its {}s deadline; QEMU killed; console log: {}",
                limit.as_secs(),
                console.display()
            );
        }
        BootEnd::Failure(f) => {
            r.status = Status::Fail;
            anyhow::bail!("{} in the guest: {}", f.kind, f.line);
        }
        BootEnd::Exited(_) => {}
    }
    let done = gb.out.join("done");
    if !done.exists() {
        anyhow::bail!(
            "the guest agent did not finish (no {}); console log: {}",
            done.display(),
            console.display()
        );
    }
    Ok(())
}

fn boot_and_check(c: &CellRun, r: &mut CellResult) -> Result<()> {
    let CellRun {
        cell,
        img,
        image,
        dir,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let out = dir.join("out");
    let bins = prepare_out(&out, &image.binaries)?;
    let mut command = format!(
        "{} run --tracer {} --out {GUEST_OUT}",
        bins.agent.display(),
        bins.tracer.display(),
    );
    for name in gate::SCENARIOS {
        command.push_str(&format!(" --scenario {name}"));
    }
    let gb = GuestBoot {
        accel: c.plan.accel,
        command,
        qemu_opts: None,
        cpus: 2,
        out: out.clone(),
        console: dir.join("console.log"),
        deadlines: cell.deadlines,
    };
    let (t, booted) = boot_guest(c, &gb, r);
    r.banner_s = t.banner_s;
    r.boot_s = t.boot_s;
    r.run_s = t.run_s;
    // A boot that did not finish says which splats came first, if any.
    if let Err(e) = booted {
        return Err(
            match console::undeclared_detail(&t.splats, &cell.known_splats) {
                Some(splats) => anyhow::anyhow!("{e:#}; {splats}"),
                None => e,
            },
        );
    }
    let _ = tx.send(MatrixEvent::Stage {
        cell: id.clone(),
        stage: Stage::Checking,
    });
    // A user's image may not say its release; the guest always does.
    if r.release.is_none() {
        r.release = gate::guest_release(&out);
    }
    let release = r.release.clone().unwrap_or_default();
    let (scenarios, facts) = gate::gate(&out, img, &id.alias, id.arch.name(), &release);
    r.scenarios = scenarios;
    r.scenarios.push(console::console_verdict(
        &t.splats,
        &cell.known_splats,
        t.console_lines,
    ));
    r.symbol = facts.symbol;
    r.ret_width_bits = facts.ret_width_bits;
    r.events = facts.events;
    r.missed_returns = facts.missed_returns;
    r.snapshots = facts.snapshots.into_iter().collect();
    let failed: Vec<String> = r
        .scenarios
        .iter()
        .filter(|s| !s.status.is_ok())
        .map(|s| format!("{}: {}", s.name, named_failure(&s.detail)))
        .collect();
    if failed.is_empty() {
        r.status = Status::Pass;
        Ok(())
    } else {
        r.status = Status::Fail;
        anyhow::bail!("{}", failed.join("; "))
    }
}

/// An overhead cell: one boot per clock, each running every mode's rounds.
fn boot_and_measure(c: &CellRun, settings: &overhead::Settings, r: &mut CellResult) -> Result<()> {
    let CellRun {
        cell,
        img,
        image,
        dir,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let mut figures = CellOverhead::default();
    let mut errors = Vec::new();
    for &clock in &settings.clocks {
        let out = dir.join(format!("out-{}", clock.name()));
        let mut f = ClockFigures::new(clock, settings.rounds);
        let result = (|| -> Result<()> {
            let bins = prepare_out(&out, &image.binaries)?;
            let bench = bins
                .bench
                .as_ref()
                .context("no bench binary was built for this arch")?;
            let gb = GuestBoot {
                command: overhead::guest_command(
                    &bins.agent,
                    &bins.tracer,
                    bench,
                    GUEST_OUT,
                    settings,
                ),
                qemu_opts: clock.qemu_opts().map(str::to_string),
                // One vCPU: the probe's consumer runs on the bench's CPU, so
                // its cost is counted, and icount stays deterministic.
                cpus: 1,
                out: out.clone(),
                console: dir.join(format!("console-{}.log", clock.name())),
                // Instructions are counted by TCG only: an icount boot
                // never uses KVM, and gets TCG's deadlines.
                accel: match clock {
                    Clock::Wall => c.plan.accel,
                    Clock::Icount => Accel::Tcg,
                },
                deadlines: match (clock, c.plan.accel) {
                    (Clock::Wall, _) => cell.deadlines,
                    (Clock::Icount, Accel::Kvm) => {
                        Deadlines::for_overhead(Accel::Tcg, id.arch, settings.steps()).icount()
                    }
                    (Clock::Icount, _) => cell.deadlines.icount(),
                },
            };
            let _ = tx.send(MatrixEvent::Note {
                cell: id.clone(),
                text: format!("{} clock", clock.name()),
            });
            let (t, booted) = boot_guest(c, &gb, r);
            f.boot_s = t.boot_s;
            f.run_s = t.run_s;
            if r.boot_s.is_none() {
                r.banner_s = t.banner_s;
                r.boot_s = t.boot_s;
            }
            // The agent exits non-zero when a round failed; its figures
            // still say which, so read them whenever they are there.
            let booted = match booted {
                Err(e) if !out.join("overhead-run.json").exists() => return Err(e),
                other => other,
            };
            let _ = tx.send(MatrixEvent::Stage {
                cell: id.clone(),
                stage: Stage::Checking,
            });
            if r.release.is_none() {
                r.release = gate::guest_release(&out);
            }
            f = ClockFigures {
                accel: Some(gb.accel),
                boot_s: f.boot_s,
                run_s: f.run_s,
                error: booted.err().map(|e| format!("{e:#}")),
                ..overhead::figures(&out, clock, facts::fentry_expectation(img))?
            };
            Ok(())
        })();
        if let Err(e) = result {
            f.error = Some(format!("{e:#}"));
        }
        if !f.is_ok() {
            let failed: Vec<String> = f
                .modes
                .iter()
                .filter(|m| !m.status.is_ok())
                .map(|m| format!("{}: {}", m.mode, m.detail))
                .chain(f.error.clone())
                .collect();
            errors.push(format!("{} clock: {}", clock.name(), failed.join("; ")));
        }
        if r.symbol.is_none() {
            r.symbol = f.symbol.clone();
        }
        figures.clocks.push(f);
    }
    r.run_s = Some(round2(
        figures.clocks.iter().filter_map(|c| c.run_s).sum::<f64>(),
    ));
    r.overhead = Some(figures);
    if errors.is_empty() {
        r.status = Status::Pass;
        Ok(())
    } else {
        if r.status.is_ok() || r.status == Status::Error {
            r.status = Status::Fail;
        }
        anyhow::bail!("{}", errors.join("; "))
    }
}

/// Beside a cached Debian kernel: this kernel cannot mount a virtio-fs
/// root, go straight to 9p (user kernels are not written beside).
fn no_virtiofs_marker(img: &KernelImage) -> Option<PathBuf> {
    if img.debs.is_empty() {
        return None;
    }
    img.vmlinuz.parent().map(|d| d.join("harness-no-virtiofs"))
}

/// A scenario failure, with its kind named first when it is a known one.
pub fn named_failure(detail: &str) -> String {
    const KINDS: &[(&str, &str)] = &[
        ("verifier rejected", "BPF verifier rejection"),
        ("has no kprobes", "no kprobes"),
        ("did not attach within", "attach timeout"),
    ];
    match KINDS.iter().find(|(pat, _)| detail.contains(pat)) {
        Some((_, kind)) => format!("{kind}: {detail}"),
        None => detail.to_string(),
    }
}
