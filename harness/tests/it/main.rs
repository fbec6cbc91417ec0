//! The harness's integration tests: real guests, real kernels, real
//! snapshots. One binary (see ARCHITECTURE.md), a module per topic; the
//! helpers every topic shares are here.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what the guests saw (cargo test --show-output)"
)]

mod cache;
mod cli;
mod exec;
mod layering;
mod matrix;
mod mutants;
mod overhead;
mod processes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, LazyLock, Mutex};

use serde_json::Value;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// Guest boots share the machine's cores: a TCG guest keeps one host
/// thread busy. Each test holds a slot per guest it runs at once (a
/// matrix: every slot), so two one-guest tests run side by side on two
/// cores and no test's guests ever wait for a core another test took:
/// timings and deadlines mean what they say.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

static SLOTS: LazyLock<(usize, Slots)> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (
        cores,
        Slots {
            free: Mutex::new(cores),
            freed: Condvar::new(),
        },
    )
});

/// Slots held until dropped.
struct Held(usize);

impl Drop for Held {
    fn drop(&mut self) {
        let slots = &SLOTS.1;
        *slots.free.lock().unwrap_or_else(|e| e.into_inner()) += self.0;
        slots.freed.notify_all();
    }
}

/// Waits for `n` slots (at most the machine's cores).
fn guests(n: usize) -> Held {
    let (cores, slots) = &*SLOTS;
    let n = n.min(*cores);
    let mut free = slots.free.lock().unwrap_or_else(|e| e.into_inner());
    while *free < n {
        free = slots.freed.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= n;
    Held(n)
}

/// Every slot: a matrix runs as many guests at once as there are cores.
const ALL: usize = usize::MAX;

/// Runs `harness matrix ARGS` into a fresh report dir.
fn run_matrix(args: &[&str]) -> (tempfile::TempDir, Value, std::process::Output) {
    let report = tempfile::tempdir().expect("temp dir");
    let out = harness()
        .arg("matrix")
        .args(args)
        .arg("--report")
        .arg(report.path())
        .output()
        .expect("running harness");
    let matrix = std::fs::read(report.path().join("matrix.json")).unwrap_or_else(|_| {
        panic!(
            "harness wrote no matrix.json; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json: Value = serde_json::from_slice(&matrix).expect("matrix.json parses");
    (report, json, out)
}

fn cell_dir(report: &Path, kernel: &str, arch: &str) -> PathBuf {
    report.join("cells").join(format!("{kernel}-{arch}"))
}

fn cells(json: &Value) -> &Vec<Value> {
    json["cells"].as_array().expect("cells")
}

fn scenario<'a>(cell: &'a Value, name: &str) -> &'a Value {
    cell["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} scenario in {cell:#}"))
}

/// The locked generic kernel of `alias` for the host's arch, fetched.
fn host_kernel(alias: &str) -> harness::kernels::kernel::KernelImage {
    let lock =
        harness::kernels::lock::LockFile::load(&harness::kernels::lock::LockFile::default_path())
            .expect("lock file");
    let entry = lock
        .get(
            alias,
            harness::model::Arch::host(),
            harness::kernels::lock::GENERIC,
        )
        .unwrap_or_else(|| panic!("{alias} is locked for the host arch"));
    harness::kernels::kernel::fetch(&harness::paths::cache_root(), entry, &|_| {})
        .unwrap_or_else(|e| panic!("fetching the {alias} kernel: {e:#}"))
}

/// `harness matrix` of the one bookworm/x86_64 cell under TCG, waiting for
/// its `--report DIR`.
fn bookworm_matrix() -> Command {
    let mut cmd = harness();
    cmd.args([
        "matrix",
        "--kernels",
        "bookworm",
        "--arch",
        "x86_64",
        "--accel",
        "tcg",
        "--report",
    ]);
    cmd
}
