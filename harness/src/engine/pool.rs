//! The worker pool: `plan.jobs` scoped threads take cells off one queue;
//! guest roots are built once per recipe and shared.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use anyhow::Result;

use super::cell::{interrupted_row, run_cell};
use super::{GuestImage, MatrixEvent, Plan};
use crate::images::rootfs::{self, GuestRoot};
use crate::model::CellResult;

/// Guest roots built during a run, one per recipe (built once, shared).
pub(super) type Roots = Mutex<HashMap<PathBuf, std::result::Result<GuestRoot, String>>>;

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
                    if crate::process::stop::cancelled().is_some() {
                        break;
                    }
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
    // Every cell gets a row: those never started are interrupted.
    let results = results.into_inner().unwrap_or_default();
    plan.cells
        .iter()
        .zip(results)
        .map(|(cell, r)| r.unwrap_or_else(|| interrupted_row(plan, cell)))
        .collect()
}

/// The guest root for a recipe: built by the first cell that needs it
/// (the others wait on the lock), then shared.
pub(super) fn guest_root(
    plan: &Plan,
    recipe: &Path,
    roots: &Roots,
    note: &dyn Fn(&str),
) -> Result<GuestRoot> {
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
