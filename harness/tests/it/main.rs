//! The harness's integration tests: real guests, real kernels, real
//! snapshots. One binary (see ARCHITECTURE.md), a module per topic; the
//! helpers every topic shares are here.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what the guests saw (cargo test --show-output)"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the tests run the harness binary and the host's tools as a user would, by name"
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
/// timings and deadlines mean what they say. Of the tests waiting, the
/// one expected to run longest among those the free slots fit goes first
/// (longest first keeps both slots busy: the overhead run starts at once
/// and the short one-guest tests fill the other slot beside it; a test
/// waiting for every slot never leaves one idle).
struct Slots {
    state: Mutex<SlotState>,
    freed: Condvar,
}

struct SlotState {
    free: usize,
    /// Tests waiting: (ticket, slots, expected seconds).
    waiting: Vec<(u64, usize, u64)>,
    next_ticket: u64,
}

static SLOTS: LazyLock<(usize, Slots)> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (
        cores,
        Slots {
            state: Mutex::new(SlotState {
                free: cores,
                waiting: Vec::new(),
                next_ticket: 0,
            }),
            freed: Condvar::new(),
        },
    )
});

/// Slots held until dropped (how long is shown with the test's output).
struct Held(usize, std::time::Instant);

impl Drop for Held {
    fn drop(&mut self) {
        eprintln!(
            "held {} guest slot(s) for {:.0} s",
            self.0,
            self.1.elapsed().as_secs_f64()
        );
        let slots = &SLOTS.1;
        slots.state.lock().unwrap_or_else(|e| e.into_inner()).free += self.0;
        slots.freed.notify_all();
    }
}

/// Waits for `n` slots (at most the machine's cores); `expected_s`, about
/// how long the test holds them, orders the waiting tests only.
fn guests(n: usize, expected_s: u64) -> Held {
    let (cores, slots) = &*SLOTS;
    let n = n.min(*cores);
    let mut st = slots.state.lock().unwrap_or_else(|e| e.into_inner());
    let ticket = st.next_ticket;
    st.next_ticket += 1;
    st.waiting.push((ticket, n, expected_s));
    loop {
        let free = st.free;
        // The longest that fits, the earliest of equals.
        let first = st
            .waiting
            .iter()
            .filter(|(_, want, _)| *want <= free)
            .max_by_key(|(t, _, secs)| (*secs, std::cmp::Reverse(*t)))
            .map(|(t, _, _)| *t);
        if first == Some(ticket) {
            st.waiting.retain(|(t, _, _)| *t != ticket);
            st.free -= n;
            // Another waiter may fit what is left.
            slots.freed.notify_all();
            return Held(n, std::time::Instant::now());
        }
        st = slots.freed.wait(st).unwrap_or_else(|e| e.into_inner());
    }
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
