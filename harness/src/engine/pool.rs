//! The worker pool: `plan.jobs` scoped threads take cells off one queue;
//! kernels and guest roots come from the run's [`Prefetch`] (each fetched
//! or built once, shared).

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use super::cell::{interrupted_row, run_cell};
use super::prefetch::Prefetch;
use super::{GuestImage, MatrixEvent, Plan};
use crate::model::CellResult;

/// Runs every cell, `plan.jobs` at a time; returns their results in plan
/// order. `prefetch` was started with (at least) the plan's cells.
pub fn run(
    plan: &Plan,
    images: &[GuestImage],
    prefetch: &Prefetch,
    tx: &Sender<MatrixEvent>,
) -> Vec<CellResult> {
    let queue = Mutex::new(plan.cells.iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<CellResult>>> = Mutex::new(vec![None; plan.cells.len()]);
    std::thread::scope(|s| {
        for _ in 0..plan.jobs.max(1) {
            let tx = tx.clone();
            let (queue, results) = (&queue, &results);
            s.spawn(move || {
                while let Some((i, cell)) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    if crate::process::stop::cancelled().is_some() {
                        break;
                    }
                    let image = images.iter().find(|g| g.arch == cell.id.arch);
                    let r = run_cell(plan, cell, image, prefetch, &tx);
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
