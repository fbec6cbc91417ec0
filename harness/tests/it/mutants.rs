//! The mutation runner on two known mutants.

use serde_json::Value;

use super::*;

/// Two bugs known to be caught, one in the BPF side and one in the
/// tracer's Rust (the schema's escaping, which the tracer prints with),
/// planted one at a time by `harness mutants` on bookworm/x86_64: the gate
/// fails each, naming the verdict the table expects, and the clean tracer
/// passes first.
const KNOWN_MUTANTS: &str = r#"
[[mutant]]
id = "filter-pid-is-tid"
what = "--pid compared with the thread id"
find = "if (filter_tgid != 0 && (__u32)(id >> 32) != filter_tgid)"
replace = "if (filter_tgid != 0 && (__u32)id != filter_tgid)"
caught_by = ["pid-filter"]

[[mutant]]
id = "tab-escaped-as-hex"
what = "a tab escaped as \\x09 instead of \\t"
file = "schema/src/lib.rs"
find = "'\\t' => out.push_str(\"\\\\t\"),"
replace = "'\\t' => out.push_str(\"\\\\x09\"),"
caught_by = ["names"]
"#;

#[test]
fn planted_bugs_fail_the_gate_by_name() {
    let _g = guests(ALL, 140);
    let tmp = tempfile::tempdir().expect("temp dir");
    let table = tmp.path().join("known.toml");
    std::fs::write(&table, KNOWN_MUTANTS).expect("writing the table");
    let report = tmp.path().join("report");
    let out = harness()
        .args([
            "mutants",
            "--cells",
            "bookworm/x86_64",
            "--jobs",
            "2",
            "--accel",
            "tcg",
        ])
        .arg("--table")
        .arg(&table)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("running harness mutants");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    let json: Value = serde_json::from_slice(
        &std::fs::read(report.join("mutants.json"))
            .unwrap_or_else(|_| panic!("no mutants.json; stderr:\n{err}")),
    )
    .expect("mutants.json parses");
    let mutants = json["mutants"].as_array().expect("mutants");
    assert_eq!(mutants.len(), 2, "{json:#}");
    for (id, part, verdict) in [
        ("filter-pid-is-tid", "bpf", "pid-filter"),
        ("tab-escaped-as-hex", "rust", "names"),
    ] {
        let m = mutants
            .iter()
            .find(|m| m["mutant"]["id"] == id)
            .unwrap_or_else(|| panic!("{id} did not run: {json:#}"));
        assert_eq!(m["mutant"]["part"], part, "{m:#}");
        assert_eq!(m["outcome"], "caught", "{id}: {m:#}");
        let verdicts: Vec<&str> = m["verdicts"]
            .as_array()
            .expect("verdicts")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            verdicts.contains(&verdict),
            "{id}: caught by {verdicts:?}, not {verdict}"
        );
        assert!(m["note"].is_null(), "{id}: {}", m["note"]);
        eprintln!("{id}: caught by {verdicts:?}");
    }
    assert!(out.status.success(), "nothing missed, so exit 0: {err}");
    let md = std::fs::read_to_string(report.join("mutants.md")).expect("mutants.md");
    assert!(
        md.contains("| rust | 1 | 0 |") && md.contains("| bpf | 1 | 0 |"),
        "{md}"
    );
}
