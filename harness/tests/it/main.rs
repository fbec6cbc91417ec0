//! The harness's integration tests: real guests, real kernels, real
//! snapshots. One binary (see ARCHITECTURE.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// Runs `harness matrix` for one cell into a fresh report dir.
fn run_cell(kernel: &str, arch: &str) -> (tempfile::TempDir, Value, std::process::Output) {
    let report = tempfile::tempdir().expect("temp dir");
    let out = harness()
        .args(["matrix", "--kernels", kernel, "--arch", arch, "--report"])
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

fn snapshot_settings(cell: &Value) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s.set_info(&serde_json::json!({
        "kernel_package": cell["kernel_package"],
        "kernel": cell["kernel"],
        "release": cell["release"],
        "arch": cell["arch"],
    }));
    s.set_omit_expression(true);
    s
}

/// The first slice end to end: the bookworm kernel boots under QEMU, the
/// tracer runs in it, the normalised trace matches the reviewed snapshot,
/// and the tutorial's printk lines carry the right ret.
#[test]
fn bookworm_x86_64_guest_traces_the_tutorial() {
    let (report, json, out) = run_cell("bookworm", "x86_64");
    let cell = &json["cells"][0];
    let dir = cell_dir(report.path(), "bookworm", "x86_64");
    let normalised = std::fs::read_to_string(dir.join("out/tutorial/normalised.txt"))
        .unwrap_or_else(|_| {
            panic!(
                "no normalised trace; cell: {cell:#}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    snapshot_settings(cell).bind(|| insta::assert_snapshot!("tutorial", normalised));

    eprintln!(
        "guest booted: {} {} ({}) under {}; kernel banner after {}s, cell {}s",
        cell["kernel_package"],
        cell["kernel"],
        cell["release"],
        cell["accel"],
        cell["boot_s"],
        cell["total_s"]
    );
    for sc in cell["scenarios"].as_array().expect("scenarios") {
        eprintln!(
            "  scenario {}: {} — {}",
            sc["name"], sc["status"], sc["detail"]
        );
    }
    assert_eq!(cell["status"], "pass", "cell: {cell:#}");
    assert_eq!(cell["symbol"], "do_unlinkat");
    assert_eq!(cell["events"], 3);
    assert!(cell["kernel"].as_str().is_some_and(|v| !v.is_empty()));
    for key in [
        "kernel", "suite", "arch", "accel", "status", "symbol", "total_s", "error",
    ] {
        assert!(cell.get(key).is_some(), "matrix.json cell lacks `{key}`");
    }
    let printk = cell["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "printk"))
        .expect("printk scenario");
    assert_eq!(printk["status"], "pass", "{printk:#}");
    let pipe = std::fs::read_to_string(dir.join("out/printk/trace.out")).expect("printk trace");
    assert!(
        pipe.contains("KPROBE ENTRY pid = ") && pipe.contains(", filename = missing"),
        "{pipe}"
    );
    assert!(pipe.contains(", ret = -2"), "{pipe}");
    assert!(
        !pipe.contains("4294967294"),
        "ret read at the wrong width: {pipe}"
    );
    assert!(dir.join("console.log").is_file());
    let fentry =
        std::fs::read_to_string(dir.join("out/fentry/normalised.txt")).expect("fentry trace");
    assert_eq!(fentry, normalised, "fentry and kprobe modes disagree");
}

/// A bad --kernels or --arch value: exit 2 and one line naming the valid values.
#[test]
fn bad_selections_list_the_valid_values() {
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["--kernels", "nosuch"],
            &["bullseye", "bookworm", "trixie", "sid", "experimental"],
        ),
        (&["--arch", "sparc"], &["x86_64, arm64"]),
    ];
    for (args, valid) in cases {
        let out = harness()
            .arg("matrix")
            .args(args)
            .output()
            .expect("running harness");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        for v in valid {
            assert!(err.contains(v), "{args:?}: {err}");
        }
    }
}

/// Architecture invariant: engine code never prints; only the CLIs do.
#[test]
fn engine_code_never_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    for dir in ["harness/src", "tracer/src"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("source dir") {
            let path = entry.expect("dir entry").path();
            if path.file_name().is_some_and(|n| n == "main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if ["println!", "eprintln!", "print!(", "eprint!("]
                    .iter()
                    .any(|m| code.contains(m))
                {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, code));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "engine code prints:\n{}",
        offenders.join("\n")
    );
}
