//! `harness overhead`: what each probe mode costs an unlink, per cell;
//! or (`--from`) earlier runs joined; compared with the baseline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use harness::engine::Job;
use harness::model::figures::Clock;
use harness::model::Status;
use harness::overhead;
use harness::report::overhead as overhead_report;

use super::args::MatrixArgs;
use super::clean::keep_cache_in_bounds;
use super::note;
use super::render::annotate;
use super::run::{run_engine, Ran};
use super::selection::usage_error;

#[derive(Debug, clap::Args)]
pub struct OverheadArgs {
    #[command(flatten)]
    pub run: MatrixArgs,
    /// Clocks to measure with, comma separated: wall (guest ns), icount (guest instructions).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "wall,icount")]
    pub clock: Vec<Clock>,
    /// Rounds per mode (the modes interleave within each round).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Modes to measure, comma separated; the baseline is always measured [default: all].
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Fail when a mode's icount overhead grew more than PCT percent over the baseline.
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub fail_above: Option<f64>,
    /// The committed baseline the icount overheads are compared with.
    #[arg(long, default_value = "vm-images/overhead-baseline.json")]
    pub baseline: PathBuf,
    /// Write this run's icount overheads to the baseline file (after review).
    #[arg(long)]
    pub update_baseline: bool,
    /// Also report the tracer's BPF programs' own cost per call (the
    /// guest kernel keeps BPF run statistics, which adds a little to every BPF mode).
    #[arg(long)]
    pub bpf_stats: bool,
    /// criterion's measurement time per bench, guest seconds, 0.01 to 60
    /// (shorter: a quicker look; an icount figure barely moves) [default: 0.5].
    #[arg(long, value_name = "SECS", value_parser = parse_bench_secs)]
    pub measure_secs: Option<String>,
    /// criterion's warm-up time per bench, guest seconds, 0.01 to 60 [default: 0.1].
    #[arg(long, value_name = "SECS", value_parser = parse_bench_secs)]
    pub warm_up_secs: Option<String>,
    /// Boot nothing: build the report from earlier runs' report directories
    /// (their overhead.json), a cell's modes joined across runs. Repeat it.
    #[arg(long, value_name = "DIR")]
    pub from: Vec<PathBuf>,
}

/// A criterion time in guest seconds, 0.01 to 60, kept as written (pure).
fn parse_bench_secs(s: &str) -> std::result::Result<String, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.01..=60.0).contains(&x) => Ok(s.to_string()),
        _ => Err(format!("`{s}`: give guest seconds from 0.01 to 60")),
    }
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
        .filter(|m| asked.is_empty() || *m == overhead::BASELINE || asked.iter().any(|a| a == m))
        .collect())
}

pub fn run(args: OverheadArgs) -> Result<ExitCode> {
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
    let defaults = overhead::Settings::default();
    let settings = overhead::Settings {
        clocks,
        rounds: args.rounds,
        modes,
        bpf_stats: args.bpf_stats,
        measure: args
            .measure_secs
            .clone()
            .unwrap_or(defaults.measure.clone()),
        warm_up: args
            .warm_up_secs
            .clone()
            .unwrap_or(defaults.warm_up.clone()),
        ..defaults
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
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    Ok(if failed == 0 && regressed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_seconds_are_bounded() {
        for (arg, ok) in [
            ("0.5", true),
            ("0.01", true),
            ("60", true),
            ("0.009", false),
            ("61", false),
            ("nan", false),
            ("-1", false),
            ("x", false),
        ] {
            assert_eq!(parse_bench_secs(arg).is_ok(), ok, "{arg}");
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
}
