//! Stage 7, report: `matrix.json` (one object per cell) and `summary.md`
//! (a kernel × arch table) in the report directory.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::matrix::{CellResult, Status};

#[derive(Debug, Serialize)]
struct MatrixJson<'a> {
    accel_reason: &'a str,
    wall_s: f64,
    cells: &'a [CellResult],
}

pub fn status_mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅ pass",
        Status::Fail => "❌ fail",
        Status::Timeout => "⏱️ timeout",
        Status::Error => "⚠️ error",
    }
}

/// The markdown summary: one row per cell.
pub fn summary_md(cells: &[CellResult], accel_reason: &str, wall_s: f64) -> String {
    let mut s = String::from("# Kernel matrix\n\n");
    s.push_str(&format!(
        "{} cells, wall time {wall_s:.1} s; accel: {accel_reason}\n\n",
        cells.len()
    ));
    s.push_str("| kernel | arch | package version | symbol | ret | status | boot s | total s |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for c in cells {
        s.push_str(&format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            c.alias,
            c.release.as_deref().unwrap_or("?"),
            c.arch,
            c.kernel.as_deref().unwrap_or("?"),
            c.symbol.as_deref().unwrap_or("-"),
            c.ret_width_bits
                .map(|b| format!("s{b}"))
                .unwrap_or_else(|| "-".into()),
            status_mark(c.status),
            c.boot_s
                .map(|b| format!("{b:.1}"))
                .unwrap_or_else(|| "-".into()),
            c.total_s
        ));
    }
    let failing: Vec<&CellResult> = cells.iter().filter(|c| c.status != Status::Pass).collect();
    if !failing.is_empty() {
        s.push_str("\n## Failures\n\n");
        for c in failing {
            s.push_str(&format!(
                "- **{}/{}**: {}\n",
                c.alias,
                c.arch,
                c.error.as_deref().unwrap_or("see scenarios")
            ));
            for sc in c.scenarios.iter().filter(|sc| sc.status != Status::Pass) {
                s.push_str(&format!("  - {}: {}\n", sc.name, sc.detail));
            }
        }
    }
    s
}

pub fn write(dir: &Path, cells: &[CellResult], accel_reason: &str, wall_s: f64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&MatrixJson {
        accel_reason,
        wall_s,
        cells,
    })?;
    std::fs::write(dir.join("matrix.json"), json).context("writing matrix.json")?;
    std::fs::write(
        dir.join("summary.md"),
        summary_md(cells, accel_reason, wall_s),
    )
    .context("writing summary.md")?;
    Ok(())
}
