//! `harness run`: a command in a cell's guest, its output on stdout, its
//! exit code the harness's; a deadline ends it with nothing left behind.

use serde_json::Value;

use super::*;

/// `harness run bookworm/x86_64 [ARGS] -- COMMAND` with its report in a
/// fresh directory (kept for the caller: its console log).
fn run_in_guest(args: &[&str], command: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let report = tempfile::tempdir().expect("temp dir");
    let out = harness()
        .args(["run", "bookworm/x86_64", "--accel", "tcg", "--report"])
        .arg(report.path())
        .args(args)
        .arg("--")
        .args(command)
        .output()
        .expect("running harness run");
    (report, out)
}

/// The tracer on the guest's PATH answers `--show-target` with its target
/// JSON, the command's stdout is the harness's and its exit code (here 3)
/// the harness's; a command past its deadline is cut off (exit 124) and
/// nothing the run started is left.
#[test]
fn a_command_runs_in_a_cells_guest() {
    let _g = guests(1, 60);
    let (_r, out) = run_in_guest(&[], &["sh", "-c", "unlink-tracer --show-target && exit 3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let target: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--show-target printed no JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(target["symbol"], "do_unlinkat", "{target:#}");

    let tmp = tempfile::tempdir().expect("temp dir");
    let report = tempfile::tempdir().expect("temp dir");
    let mut child = harness()
        .env("TMPDIR", tmp.path())
        .args([
            "run",
            "bookworm/x86_64",
            "--accel",
            "tcg",
            "--run-timeout",
            "20",
            "--report",
        ])
        .arg(report.path())
        .args(["--", "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting harness run");
    let mut seen: std::collections::BTreeMap<(u32, u64), String> = Default::default();
    let status = loop {
        for p in processes::descendants(child.id()) {
            seen.entry(p).or_insert_with(|| processes::comm(p.0));
        }
        if let Some(status) = child.try_wait().expect("waiting for harness run") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(
        err.contains("the guest run did not finish within its 20s deadline"),
        "{err}"
    );
    assert!(
        seen.values().any(|c| c.starts_with("qemu-system")),
        "{seen:?}"
    );
    let tree: Vec<(u32, u64)> = seen.keys().copied().collect();
    let left = processes::survivors(&tree, 5);
    assert!(left.is_empty(), "still alive after the run ended: {left:?}");
    assert!(
        std::fs::read_dir(tmp.path())
            .expect("TMPDIR")
            .next()
            .is_none(),
        "files left in TMPDIR"
    );
}
