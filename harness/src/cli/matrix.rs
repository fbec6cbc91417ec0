//! `harness matrix`: every selected cell booted, traced and gated; the
//! report written, its summary printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use harness::engine::Job;
use harness::model::Status;
use harness::report::matrix as report;

use super::args::MatrixArgs;
use super::clean::keep_cache_in_bounds;
use super::render::annotate;
use super::run::{run_engine, Ran};

/// `harness matrix`: the options every booting command shares, and the
/// matrix's own.
#[derive(Debug, clap::Args)]
pub struct MatrixCmd {
    #[command(flatten)]
    pub run: MatrixArgs,
    /// Run the whole selection N times (1 to 100), each into DIR/run-K, and
    /// report each cell's pass rate (repeat.md): flakiness as a number.
    #[arg(long, default_value_t = 1, value_parser = super::selection::in_range::<u32>(1, 100))]
    pub repeat: u32,
}

pub fn run(cmd: MatrixCmd) -> Result<ExitCode> {
    let args = cmd.run;
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/matrix-report"));
    if cmd.repeat > 1 {
        return repeat(&args, cmd.repeat, &report_dir);
    }
    let ran = match run_engine(&args, &report_dir, Job::Gate)? {
        Ok(ran) => ran,
        Err(code) => return Ok(code),
    };
    let Ran {
        results,
        accel_reason,
        wall,
    } = ran;
    report::write(&report_dir, &results, &accel_reason, wall)?;
    keep_cache_in_bounds()?;
    let failed = results.iter().filter(|c| c.status != Status::Pass).count();
    println!("{}", report::summary_md(&results, &accel_reason, wall));
    println!(
        "report: {} (summary.md, junit.xml, cells/)",
        report_dir.join("matrix.json").display()
    );
    annotate(&results);
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--repeat N`: the matrix N times, then each cell's pass rate.
fn repeat(args: &MatrixArgs, times: u32, report_dir: &std::path::Path) -> Result<ExitCode> {
    let mut runs: Vec<Vec<harness::model::CellResult>> = Vec::new();
    let mut walls = Vec::new();
    for k in 1..=times {
        super::note(&format!("run {k} of {times}"));
        let dir = report_dir.join(format!("run-{k}"));
        let ran = match run_engine(args, &dir, Job::Gate)? {
            Ok(ran) => ran,
            Err(code) => return Ok(code),
        };
        report::write(&dir, &ran.results, &ran.accel_reason, ran.wall)?;
        runs.push(ran.results);
        walls.push(ran.wall);
        if harness::process::stop::cancelled().is_some() {
            break;
        }
    }
    let table = report::repeat_md(&runs, &walls);
    std::fs::write(report_dir.join("repeat.md"), &table)?;
    println!("{table}");
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    let all_passed = runs.iter().flatten().all(|c| c.status == Status::Pass);
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
