//! The tracer's integration tests on this host. The BPF side itself is
//! exercised inside guests by the harness's tests.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests may show what they saw"
)]

use std::path::Path;
use std::process::Command;

use unlink_tracer::btf::{Btf, CType};
use unlink_tracer::target;

/// On a host that cannot run the tracer (no kprobes, or BPF refused) the
/// CLI says why in one line and exits non-zero; where it can, it runs.
#[test]
fn cli_on_this_host_fails_in_one_clear_line_or_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_unlink-tracer"))
        .args(["--duration", "1"])
        .output()
        .expect("running unlink-tracer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        assert!(!out.status.success());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("unlink-tracer: this kernel has no kprobes"),
            "{err}"
        );
        eprintln!("host without kprobes: {}", err.trim());
    } else if !out.status.success() {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("unlink-tracer: "), "{err}");
        eprintln!("host refuses the tracer: {}", err.trim());
    } else {
        assert!(err.contains("events"), "summary missing: {err}");
    }
}

/// With `--json` a refusal is one JSON error object naming its kind: on a
/// host without kprobes, kprobe mode's is `no-kprobes`; an unknown
/// function is `other`, on any host.
#[test]
fn a_refusal_in_json_names_its_kind() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_unlink-tracer"))
            .args(args)
            .output()
            .expect("running unlink-tracer");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    let (code, err) = run(&[
        "--json",
        "--symbol",
        "no_such_function_xyz",
        "--duration",
        "1",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let e = unlink_schema::TracerError::last_in(&err).expect("a JSON error object");
    assert_eq!(e.error, unlink_schema::Failure::Other, "{err}");
    assert!(e.message.contains("no_such_function_xyz"), "{err}");
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        let (code, err) = run(&["--json", "--duration", "1"]);
        assert_eq!(code, Some(1), "{err}");
        let e = unlink_schema::TracerError::last_in(&err).expect("a JSON error object");
        assert_eq!(e.error, unlink_schema::Failure::NoKprobes, "{err}");
        eprintln!("host without kprobes, in JSON: {}", err.trim());
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--mode", "nosuch"][..],
        &["--duration", "-1"],
        &["--duration", "abc"],
        &["--comm", "a-name-of-16-byte"],
        &["--comm", ""],
        &["--count", "0"],
        &["--count", "-1"],
        &["--ringbuf-kib", "3"],
        &["--ringbuf-kib", "2"],
        &["--ringbuf-kib", "2097152"],
        &["--trace-buffer-kib", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_unlink-tracer"))
            .args(args)
            .output()
            .expect("running unlink-tracer");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// The host's own BTF: the resolver finds an unlink function whose return
/// width is the one BTF records.
#[test]
fn resolves_against_this_hosts_btf() {
    let path = Path::new(target::VMLINUX_BTF);
    assert!(
        path.exists(),
        "this host has no {}: the test needs a kernel with BTF",
        target::VMLINUX_BTF
    );
    let btf = Btf::from_path(path).expect("host BTF parses");
    let t = target::resolve(&btf, None).expect("an unlink function is found");
    assert!(target::CANDIDATES.contains(&t.symbol.as_str()));
    let proto = btf.func_proto(&t.symbol).expect("prototype");
    let bytes = match proto.ret {
        CType::Int { bytes, .. } => bytes,
        other => panic!("unexpected return type {other}"),
    };
    assert_eq!(t.ret_is_int, bytes == 4);
    eprintln!("host: {} {}", t.symbol, t.proto);
    let err = target::resolve(&btf, Some("no_such_fn"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&t.symbol), "{err}");
}

/// The README's section on the tracer, from its heading to the next.
fn readme_tracer_section() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let start = readme
        .find("\n## unlink-tracer\n")
        .expect("the unlink-tracer section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    rest[..end].to_string()
}

/// The README's usage block names exactly the options `--help` has, and
/// its `--json` field table exactly the fields a JSON event has.
#[test]
fn the_readme_says_what_the_tracer_has() {
    let section = readme_tracer_section();
    // Options: every `--long` (and `-v`) of the usage block vs --help's.
    let usage = section.split("```").nth(1).expect("the usage block");
    let longs = |text: &str| -> std::collections::BTreeSet<String> {
        text.split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | ',' | '|'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.split('=').next().unwrap_or(w).to_string())
            .collect()
    };
    let help = Command::new(env!("CARGO_BIN_EXE_unlink-tracer"))
        .arg("--help")
        .output()
        .expect("running unlink-tracer --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut documented = longs(usage);
    let mut has = longs(&help);
    // clap's own.
    has.remove("--help");
    has.remove("--version");
    documented.remove("--help");
    assert_eq!(documented, has, "README usage block vs --help");
    assert!(usage.contains("[-v|--verbose]") && help.contains("-v, --verbose"));

    // Fields: the first column of the `--json` table vs a serialized event.
    let table_start = section.find("| field |").expect("the --json field table");
    let mut fields = std::collections::BTreeSet::new();
    for line in section[table_start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        for name in first.split(',') {
            fields.insert(name.trim().trim_matches('`').to_string());
        }
    }
    let event = unlink_schema::JsonEvent {
        time_ns: 0,
        pid: 0,
        tid: 0,
        comm: String::new(),
        dfd: None,
        filename: String::new(),
        filename_truncated: false,
        filename_unreadable: false,
        ret: 0,
        errno: None,
        latency_ns: 0,
        symbol: String::new(),
    };
    let keys: std::collections::BTreeSet<String> = serde_json::to_value(&event)
        .expect("an event serializes")
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(fields, keys, "README --json field table vs JsonEvent");
}
