//! Stage 7, report (overhead): `overhead.json` (every cell's figures per
//! clock, and the baseline comparison), `summary.md` (one table per clock
//! and bench) and `overhead.svg` ([`crate::report::chart`]); and the committed
//! baseline file the regression check reads and `--update-baseline` writes.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::figures::{Clock, ClockFigures};
use crate::model::{CellResult, Status};
use crate::overhead::{self, Baseline, Comparison, Settings, BENCHES, EMPTY_PAIR, TRACER_MODE};
use crate::report::matrix::status_mark;

#[derive(Debug, Serialize)]
struct OverheadJson<'a> {
    accel_reason: &'a str,
    wall_s: f64,
    rounds: u32,
    modes: &'a [&'static str],
    criterion: CriterionSettings<'a>,
    fail_above_pct: Option<f64>,
    bpf_stats: bool,
    comparisons: &'a [Comparison],
    cells: &'a [CellResult],
}

#[derive(Debug, Serialize)]
struct CriterionSettings<'a> {
    warm_up_s: &'a str,
    measurement_s: &'a str,
    samples: u32,
}

/// The cells' icount figures, keyed `alias/arch`.
fn icount_cells(cells: &[CellResult]) -> Vec<(String, &ClockFigures)> {
    cells
        .iter()
        .filter_map(|c| {
            let f = c.overhead.as_ref()?.clock(Clock::Icount)?;
            Some((format!("{}/{}", c.alias, c.arch), f))
        })
        .collect()
}

/// Reads the committed baseline (an absent file is an empty baseline).
pub fn load_baseline(path: &Path) -> Result<Baseline> {
    if !path.exists() {
        return Ok(Baseline::default());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// This run's icount overheads as a baseline.
pub fn baseline_from(cells: &[CellResult]) -> Baseline {
    overhead::baseline_of(&icount_cells(cells))
}

/// Writes `fresh` over `old`: cells this run measured are replaced, the
/// others kept (a run of some cells refreshes only those).
pub fn save_baseline(path: &Path, old: &Baseline, fresh: &Baseline) -> Result<()> {
    let mut merged = old.clone();
    merged.clock = Some(Clock::Icount);
    // Per mode: a run of some modes refreshes those and keeps the others.
    for (cell, modes) in &fresh.cells {
        merged
            .cells
            .entry(cell.clone())
            .or_default()
            .extend(modes.clone());
    }
    let text = serde_json::to_string_pretty(&merged)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Compares this run's icount overheads with the baseline.
pub fn compare_overheads(
    cells: &[CellResult],
    base: &Baseline,
    fail_above: Option<f64>,
) -> Vec<Comparison> {
    overhead::compare(base, &icount_cells(cells), fail_above)
}

/// An overhead.json read back (`harness overhead --from`).
#[derive(Debug, Deserialize)]
pub struct SavedOverhead {
    pub accel_reason: String,
    pub wall_s: f64,
    pub rounds: u32,
    pub modes: Vec<String>,
    pub criterion: SavedCriterion,
    pub bpf_stats: bool,
    pub cells: Vec<CellResult>,
}

#[derive(Debug, Deserialize)]
pub struct SavedCriterion {
    pub warm_up_s: String,
    pub measurement_s: String,
    pub samples: u32,
}

/// Reads `dir/overhead.json` as an earlier run wrote it.
pub fn read_overhead(dir: &Path) -> Result<SavedOverhead> {
    let path = dir.join("overhead.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// What an overhead report is made of.
pub struct OverheadReport<'a> {
    pub cells: &'a [CellResult],
    pub accel_reason: &'a str,
    pub wall_s: f64,
    pub settings: &'a Settings,
    pub comparisons: &'a [Comparison],
    pub fail_above: Option<f64>,
}

/// Writes overhead.json, summary.md and overhead.svg into `dir`.
pub fn write_overhead(dir: &Path, report: &OverheadReport) -> Result<()> {
    let OverheadReport {
        cells,
        accel_reason,
        wall_s,
        settings,
        comparisons,
        fail_above,
    } = *report;
    std::fs::create_dir_all(dir)?;
    let json = OverheadJson {
        accel_reason,
        wall_s,
        rounds: settings.rounds,
        modes: &settings.modes,
        criterion: CriterionSettings {
            warm_up_s: &settings.warm_up,
            measurement_s: &settings.measure,
            samples: settings.samples,
        },
        fail_above_pct: fail_above,
        bpf_stats: settings.bpf_stats,
        comparisons,
        cells,
    };
    std::fs::write(
        dir.join("overhead.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(dir.join("summary.md"), overhead_md(report))?;
    let (clock, unit) = chart_clock(cells);
    let bars = crate::report::chart::bars(cells, clock, BENCHES[0]);
    let svg = crate::report::chart::svg(
        &bars,
        &format!(
            "Probe overhead per unlink (create + unlink on tmpfs), {} clock, in {unit}",
            clock.name()
        ),
        unit,
    )?;
    std::fs::write(dir.join("overhead.svg"), svg)?;
    Ok(())
}

/// The chart shows instructions where there are any, else wall time.
fn chart_clock(cells: &[CellResult]) -> (Clock, &'static str) {
    let has_icount = cells.iter().any(|c| {
        c.overhead
            .as_ref()
            .is_some_and(|o| o.clock(Clock::Icount).is_some())
    });
    let clock = if has_icount {
        Clock::Icount
    } else {
        Clock::Wall
    };
    (clock, clock.unit())
}

/// 12345.6 → "12,346" (pure).
pub fn thousands(x: f64) -> String {
    let neg = x < 0.0;
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if neg && out != "0" {
        format!("-{out}")
    } else {
        out
    }
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", thousands(x))
    } else {
        thousands(x)
    }
}

fn bench_title(bench: &str) -> &'static str {
    match bench {
        "create_unlink" => "create + unlink of a tmpfs file",
        "unlink_missing" => "unlink of a missing file (ENOENT)",
        _ => "",
    }
}

/// One table cell: the mode's overhead (or the baseline's cost) with the
/// 95 % confidence interval's half-width.
fn figure_cell(f: &ClockFigures, mode: &str, bench: &str) -> String {
    let Some(m) = f.mode(mode) else {
        return "-".into();
    };
    match m.status {
        Status::ExpectedLimitation => return "n/a".into(),
        s if !s.is_ok() => return "❌".into(),
        _ => {}
    }
    let Some(b) = m.benches.get(bench) else {
        return "-".into();
    };
    let e = b.overhead.unwrap_or(b.cost);
    let half = (e.hi - e.lo) / 2.0;
    if b.overhead.is_some() {
        format!("{} ±{}", signed(e.median), thousands(half))
    } else {
        format!("{} ±{}", thousands(e.median), thousands(half))
    }
}

/// Where a probe's output kept coming after the bench ended: consumer work
/// the figures above do not include (empty when there was none).
fn drain_md(cells: &[CellResult]) -> String {
    let mut lines = Vec::new();
    for c in cells {
        for f in c.overhead.iter().flat_map(|o| &o.clocks) {
            for m in f.modes.iter().filter(|m| m.drain_s > 0.0) {
                lines.push(format!(
                    "| {}/{} | {} | {} | {:.2} |",
                    c.alias,
                    c.arch,
                    f.clock.name(),
                    m.mode,
                    m.drain_s
                ));
            }
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "## Output drained after the bench\n\nThe consumer was still reading this mode's output when the bench ended; that work is not in the figures above.\n\n| cell | clock | mode | guest seconds, all rounds |\n|---|---|---|---:|\n{}\n\n",
        lines.join("\n")
    )
}

/// With `--bpf-stats`: the BPF programs' own cost per call, per clock
/// (empty without).
fn bpf_md(cells: &[CellResult], modes: &[&str]) -> String {
    let mut s = String::new();
    for clock in [Clock::Icount, Clock::Wall] {
        let rows: Vec<(&CellResult, &ClockFigures)> = cells
            .iter()
            .filter_map(|c| Some((c, c.overhead.as_ref()?.clock(clock)?)))
            .filter(|(_, f)| f.modes.iter().any(|m| m.bpf_per_call.is_some()))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let cols: Vec<&str> = modes
            .iter()
            .copied()
            .filter(|m| {
                rows.iter()
                    .any(|(_, f)| f.mode(m).is_some_and(|x| x.bpf_per_call.is_some()))
            })
            .collect();
        s.push_str(&format!(
            "## The BPF programs' own cost per call, {} ({} clock; kernel BPF run statistics, their clock reads included)\n\n| kernel | arch |",
            clock.unit(),
            clock.name()
        ));
        for m in &cols {
            s.push_str(&format!(" {m} |"));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---:|".repeat(cols.len()));
        s.push('\n');
        for (c, f) in rows {
            s.push_str(&format!("| {} | {} |", c.alias, c.arch));
            for m in &cols {
                let v = f.mode(m).and_then(|x| x.bpf_per_call);
                s.push_str(&format!(
                    " {} |",
                    v.map(thousands).unwrap_or_else(|| "-".into())
                ));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// The markdown summary: per clock and bench, one row per cell.
pub fn overhead_md(report: &OverheadReport) -> String {
    let OverheadReport {
        cells,
        accel_reason,
        wall_s,
        settings,
        comparisons,
        fail_above,
    } = *report;
    let passed = cells.iter().filter(|c| c.status == Status::Pass).count();
    let mut s = String::from("# Probe overhead\n\n");
    s.push_str(&format!(
        "{passed}/{} cells measured, wall time {wall_s:.1} s; accel: {accel_reason}\n\n",
        cells.len()
    ));
    let rounds = match settings.rounds_max {
        Some(most) => format!(
            "{}–{most} interleaved rounds (runs joined with --from: each mode's figures come from one run)",
            settings.rounds
        ),
        None => format!("{} interleaved rounds", settings.rounds),
    };
    s.push_str(&format!(
        "{rounds} of every mode in one boot per clock, one vCPU; criterion per round and bench: \
         {} s warm-up, {} s measurement, {} samples. Figures are per unlink: the median of the round means \
         (each round's total over its iterations), ± half its 95 % bootstrap confidence interval; probe modes show the overhead over the baseline.\n\n",
        settings.warm_up, settings.measure, settings.samples
    ));
    let modes: Vec<&str> = settings.modes.to_vec();
    for clock in [Clock::Icount, Clock::Wall] {
        let rows: Vec<(&CellResult, &ClockFigures)> = cells
            .iter()
            .filter_map(|c| Some((c, c.overhead.as_ref()?.clock(clock)?)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let accel = rows
            .iter()
            .find_map(|(_, f)| f.accel)
            .map(|a| format!("{a:?}").to_uppercase())
            .unwrap_or_else(|| "?".into());
        let what = match clock {
            Clock::Icount => format!(
                "guest instructions per unlink (icount clock, {accel}: reproducible, gated)"
            ),
            Clock::Wall => {
                format!("guest nanoseconds per unlink (wall clock, {accel}: noisy under emulation)")
            }
        };
        for bench in BENCHES {
            s.push_str(&format!("## {}: {what}\n\n", bench_title(bench)));
            s.push_str("| kernel | arch |");
            for m in &modes {
                s.push_str(&format!(" {m} |"));
            }
            s.push_str(&format!(
                " {TRACER_MODE} ÷ {EMPTY_PAIR} | {TRACER_MODE} ÷ bpftrace |\n|---|---|"
            ));
            s.push_str(&"---:|".repeat(modes.len() + 2));
            s.push('\n');
            for (c, f) in &rows {
                s.push_str(&format!(
                    "| {} ({}) | {} |",
                    c.alias,
                    c.release.as_deref().unwrap_or("?"),
                    c.arch
                ));
                for m in &modes {
                    s.push_str(&format!(" {} |", figure_cell(f, m, bench)));
                }
                let ratio =
                    |r: Option<&f64>| r.map(|x| format!("{x:.2}×")).unwrap_or_else(|| "-".into());
                s.push_str(&format!(
                    " {} | {} |\n",
                    ratio(f.tracer_to_empty_pair.get(*bench)),
                    ratio(f.tracer_to_bpftrace.get(*bench))
                ));
            }
            s.push('\n');
        }
    }
    s.push_str(&bpf_md(cells, &modes));
    s.push_str(&drain_md(cells));
    s.push_str("## Modes\n\n");
    for m in &modes {
        s.push_str(&format!("- `{m}`: {}\n", overhead::mode_description(m)));
    }
    s.push_str("\n## Cells\n\n| kernel | arch | symbol | status | clock | boot s | run s |\n|---|---|---|---|---|---|---|\n");
    for c in cells {
        let clocks = c
            .overhead
            .as_ref()
            .map(|o| o.clocks.as_slice())
            .unwrap_or(&[]);
        if clocks.is_empty() {
            s.push_str(&format!(
                "| {} | {} | {} | {} | - | - | - |\n",
                c.alias,
                c.arch,
                c.symbol.as_deref().unwrap_or("-"),
                status_mark(c.status)
            ));
        }
        for f in clocks {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                c.alias,
                c.arch,
                f.symbol.as_deref().unwrap_or("-"),
                status_mark(c.status),
                f.clock.name(),
                f.boot_s
                    .map(|x| format!("{x:.1}"))
                    .unwrap_or_else(|| "-".into()),
                f.run_s
                    .map(|x| format!("{x:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
    }
    s.push_str("\n## Against the baseline (icount)\n\n");
    if comparisons.is_empty() {
        s.push_str("No figure of this run is in the baseline file.\n");
    } else {
        let worst = comparisons
            .iter()
            .max_by(|a, b| a.growth_pct.total_cmp(&b.growth_pct));
        s.push_str(&format!(
            "{} overheads compared{}; largest growth: {}.\n\n",
            comparisons.len(),
            fail_above
                .map(|p| format!(", failing above +{p}%"))
                .unwrap_or_else(|| " (no --fail-above: report only)".into()),
            worst
                .map(|w| format!(
                    "{} {} {} {:+.1}% ({} → {})",
                    w.cell,
                    w.mode,
                    w.bench,
                    w.growth_pct,
                    thousands(w.baseline),
                    thousands(w.now)
                ))
                .unwrap_or_default()
        ));
        let regressed: Vec<&Comparison> = comparisons.iter().filter(|c| c.regressed).collect();
        if !regressed.is_empty() {
            s.push_str(
                "| cell | mode | bench | baseline | now | growth |\n|---|---|---|---:|---:|---:|\n",
            );
            for c in regressed {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | ❌ {:+.1}% |\n",
                    c.cell,
                    c.mode,
                    c.bench,
                    thousands(c.baseline),
                    thousands(c.now),
                    c.growth_pct
                ));
            }
        }
    }
    s.push_str(&crate::report::matrix::failures_md(cells));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        let cases = [
            (0.0, "0"),
            (12.4, "12"),
            (999.0, "999"),
            (1000.0, "1,000"),
            (25985.2, "25,985"),
            (1234567.0, "1,234,567"),
            (-6367.0, "-6,367"),
            (-0.2, "0"),
        ];
        for (x, want) in cases {
            assert_eq!(thousands(x), want, "{x}");
        }
        assert_eq!(signed(812.0), "+812");
        assert_eq!(signed(-3.0), "-3");
    }

    #[test]
    fn baseline_merges_cells_and_modes() {
        let bench = |x: f64| std::collections::BTreeMap::from([("create_unlink".to_string(), x)]);
        let mut old = Baseline::default();
        old.cells.insert("a/x86_64".into(), Default::default());
        old.cells.insert(
            "b/x86_64".into(),
            std::collections::BTreeMap::from([
                ("kprobe".to_string(), bench(9.0)),
                ("printk".to_string(), bench(7.0)),
            ]),
        );
        let mut fresh = Baseline::default();
        let mut modes = std::collections::BTreeMap::new();
        modes.insert(
            "kprobe".to_string(),
            std::collections::BTreeMap::from([("create_unlink".to_string(), 5.0)]),
        );
        fresh.cells.insert("b/x86_64".into(), modes);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.json");
        save_baseline(&path, &old, &fresh).expect("saved");
        let back = load_baseline(&path).expect("loaded");
        assert_eq!(back.clock, Some(Clock::Icount));
        assert_eq!(back.cells.len(), 2);
        assert_eq!(back.cells["b/x86_64"]["kprobe"]["create_unlink"], 5.0);
        assert_eq!(back.cells["b/x86_64"]["printk"]["create_unlink"], 7.0);
        assert!(load_baseline(&dir.path().join("none.json"))
            .expect("absent is empty")
            .cells
            .is_empty());
    }
}
