//! One cell from its kernel to its row: fetch, root, then the job's boot
//! and check (or measure). Each stage hands back a value; the row is
//! assembled here, and its status comes from the one [`CellFailure`] that
//! stopped the cell, or is Pass.

use std::sync::mpsc::Sender;
use std::time::Instant;

use anyhow::Context;

use super::check::{boot_and_check, Checked};
use super::events::CellEvents;
use super::exec::{boot_and_exec, Executed};
use super::failure::CellFailure;
use super::guest::{round2, BootFacts, CellRun};
use super::measure::{boot_and_measure, Measured};
use super::prefetch::Prefetch;
use super::{CellSpec, GuestImage, Job, MatrixEvent, Plan, Stage};
use crate::model::{CellResult, Span, Status};

/// The row of a cell the run was cancelled before (it never started).
pub(super) fn interrupted_row(plan: &Plan, cell: &CellSpec) -> CellResult {
    CellResult {
        status: Status::Interrupted,
        error: Some("interrupted before the cell started".into()),
        ..blank_row(plan, cell)
    }
}

/// The row of a cell that has not run a stage yet.
fn blank_row(plan: &Plan, cell: &CellSpec) -> CellResult {
    let id = &cell.id;
    CellResult {
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
        timeline: Vec::new(),
        dir: plan
            .report_dir
            .join("cells")
            .join(format!("{}-{}", id.alias, id.arch)),
        exit_code: None,
    }
}

/// Runs one cell of the plan (its kernel is `prefetch`'s for its id).
pub(super) fn run_cell(
    plan: &Plan,
    cell: &CellSpec,
    image: Option<&GuestImage>,
    prefetch: &Prefetch,
    tx: &Sender<MatrixEvent>,
) -> CellResult {
    let start = Instant::now();
    let id = &cell.id;
    let events = CellEvents { cell: id, tx };
    let note = |text: &str| events.note(text);
    let mut row = blank_row(plan, cell);
    let dir = row.dir.clone();
    let end = (|| -> Result<(), CellFailure> {
        let image = image.with_context(|| format!("no guest image for {}", id.arch))?;
        events.stage(Stage::Fetching);
        let fetching = Instant::now();
        let img = prefetch
            .kernel(&id.to_string(), &note)
            .map_err(|e| with_fault_hint(e, &plan.cache))
            .with_context(|| format!("fetching the {} kernel", id.alias))?;
        row.kernel_package = Some(img.package.clone());
        row.kernel = Some(img.version.clone());
        row.release = Some(img.release.clone()).filter(|s| !s.is_empty());
        row.timeline
            .push(Span::new("fetch", fetching.elapsed().as_secs_f64()));
        let rooting = Instant::now();
        let root = match &image.root_recipe {
            Some(recipe) => {
                events.stage(Stage::BuildingRoot);
                Some(
                    prefetch
                        .root(recipe, &note)
                        .map_err(|e| with_fault_hint(e, &plan.cache))?,
                )
            }
            None => None,
        };
        row.timeline
            .push(Span::new("root", rooting.elapsed().as_secs_f64()));
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
            Job::Gate => record_check(&mut row, boot_and_check(&run)),
            Job::Overhead(settings) => record_measure(&mut row, boot_and_measure(&run, settings)),
            Job::Exec(command) => record_exec(&mut row, boot_and_exec(&run, command)),
        }
    })();
    match end {
        Ok(()) => row.status = Status::Pass,
        // Whatever a stage made of being cut short, the cell was interrupted.
        Err(failure) if crate::process::stop::cancelled().is_some() => {
            row.status = Status::Interrupted;
            row.error = Some(format!("interrupted: {:#}", failure.error));
        }
        Err(failure) => {
            row.status = failure.status;
            row.error = Some(format!("{:#}", failure.error));
        }
    }
    row.total_s = round2(start.elapsed().as_secs_f64());
    row
}

/// What one boot showed into the row: how the root reached the guest,
/// seconds to the banner, to the agent, and of its run.
fn record_boot(row: &mut CellResult, b: &BootFacts) {
    row.transport = b.transport.clone();
    row.banner_s = b.banner_s;
    row.boot_s = b.boot_s;
    row.run_s = b.run_s;
}

/// A gate cell's boot and verdicts into its row.
fn record_check(row: &mut CellResult, c: Checked) -> Result<(), CellFailure> {
    record_boot(row, &c.boot);
    if row.release.is_none() {
        row.release = c.guest_release;
    }
    if let (Some(banner), Some(agent)) = (c.boot.banner_s, c.boot.boot_s) {
        row.timeline.push(Span::new("qemu→banner", banner));
        row.timeline.push(Span::new("banner→agent", agent - banner));
    }
    let in_scenarios: f64 = c.scenario_spans.iter().map(|s| s.s).sum();
    row.timeline.extend(c.scenario_spans);
    if let Some(run) = c.boot.run_s {
        row.timeline
            .push(Span::new("agent other", (run - in_scenarios).max(0.0)));
    }
    if let Some(checks) = c.checks_s {
        row.timeline.push(Span::new("checks", checks));
    }
    if let Some(gate) = c.gate {
        row.scenarios = gate.scenarios;
        row.symbol = gate.facts.symbol;
        row.ret_width_bits = gate.facts.ret_width_bits;
        row.events = gate.facts.events;
        row.missed_returns = gate.facts.missed_returns;
        row.snapshots = gate.facts.snapshots.into_iter().collect();
    }
    c.end
}

/// A `harness run` cell's boot and its command's exit code into its row.
fn record_exec(row: &mut CellResult, e: Executed) -> Result<(), CellFailure> {
    record_boot(row, &e.boot);
    row.exit_code = e.exit_code;
    e.end
}

/// An overhead cell's boots and figures into its row.
fn record_measure(row: &mut CellResult, m: Measured) -> Result<(), CellFailure> {
    row.transport = m.transport;
    row.banner_s = m.banner_s;
    row.boot_s = m.boot_s;
    row.run_s = m.run_s;
    if row.release.is_none() {
        row.release = m.guest_release;
    }
    row.symbol = m.symbol;
    row.overhead = Some(m.overhead);
    m.end
}

/// A fetch or root-build error with what to do about it, when it is a
/// known fault (full disk, unreachable mirror, cut download).
fn with_fault_hint(e: anyhow::Error, cache: &std::path::Path) -> anyhow::Error {
    match crate::cache::fault_hint(&format!("{e:#}"), cache) {
        Some(hint) => e.context(hint),
        None => e,
    }
}
