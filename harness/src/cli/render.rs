//! The engine's events on the terminal (a live line per cell) or as plain
//! lines; failing cells as GitHub Actions annotations.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use harness::engine::{MatrixEvent, Stage};
use harness::model::{CellId, CellResult, Status};
use harness::report::matrix as report;

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Fetching => "fetching kernel",
        Stage::BuildingRoot => "building guest root",
        Stage::Booting => "booting",
        Stage::Tracing => "tracing",
        Stage::Measuring => "measuring",
        Stage::Running => "running the command",
        Stage::Checking => "checking",
    }
}

/// Live lines per cell on a terminal, plain lines otherwise.
pub fn render(cells: &[CellId], rx: mpsc::Receiver<MatrixEvent>) {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:<20} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<CellId, ProgressBar> = HashMap::new();
    if tty {
        for c in cells {
            let pb = multi.add(ProgressBar::new_spinner());
            pb.set_style(style.clone());
            pb.set_prefix(c.to_string());
            pb.set_message("queued");
            pb.enable_steady_tick(Duration::from_millis(200));
            bars.insert(c.clone(), pb);
        }
    }
    for ev in rx {
        match ev {
            MatrixEvent::Stage { cell, stage } => match bars.get(&cell) {
                Some(pb) => {
                    if stage == Stage::Fetching {
                        pb.reset_elapsed();
                    }
                    pb.set_message(stage_text(stage))
                }
                None => eprintln!("[{cell}] {}", stage_text(stage)),
            },
            MatrixEvent::Note { cell, text } => match bars.get(&cell) {
                Some(pb) => pb.set_message(text),
                None => eprintln!("[{cell}] {text}"),
            },
            // The command's own output, as it comes (stdout: it is the
            // command's, the progress lines are on stderr).
            MatrixEvent::Output { line, .. } => multi.suspend(|| println!("{line}")),
            MatrixEvent::Done(r) => {
                let cell = CellId {
                    alias: r.alias.clone(),
                    arch: r.arch,
                };
                let line = format!(
                    "{} in {:.1}s{}",
                    report::status_mark(r.status),
                    r.total_s,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                match bars.get(&cell) {
                    Some(pb) => pb.finish_with_message(line),
                    None => eprintln!("[{cell}] {line}"),
                }
            }
        }
    }
}

/// In GitHub Actions, each failing cell becomes an error annotation.
pub fn annotate(results: &[CellResult]) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        for c in results.iter().filter(|c| c.status != Status::Pass) {
            println!("{}", report::github_annotation(c));
        }
    }
}
