//! The overhead meter: every mode of one cell, gated on a baseline.

use serde_json::Value;

use super::*;

/// An overhead run of one cell, instructions only: every mode is measured
/// and passes its checks, the figures are ordered as the mechanisms are
/// (nothing < an empty probe pair < the tracer), the report has its
/// table and chart, and a baseline the run exceeds fails it with
/// `--fail-above` and is refreshed by `--update-baseline`.
#[test]
fn an_overhead_run_measures_every_mode_and_gates_on_the_baseline() {
    // One guest; its figures are counted instructions, not time, so a
    // guest beside it changes none of them.
    let _g = guests(1, 150);
    let report = tempfile::tempdir().expect("temp dir");
    // A baseline in which the tracer cost a tenth of what it costs.
    let baseline = report.path().join("baseline.json");
    std::fs::write(
        &baseline,
        r#"{"clock":"icount","cells":{"bookworm/x86_64":{"kprobe":{"create_unlink":100.0},"no-such-mode":{"create_unlink":1.0}}}}"#,
    )
    .expect("baseline written");
    let out = harness()
        .args([
            "overhead",
            "--kernels",
            "bookworm",
            "--arch",
            "x86_64",
            "--clock",
            "icount",
            "--rounds",
            "1",
            // A quicker look than the default (0.5 and 0.1): instruction
            // counts of 10 samples hardly move.
            "--measure-secs",
            "0.1",
            "--warm-up-secs",
            "0.05",
            "--fail-above",
            "25",
            "--update-baseline",
        ])
        .arg("--baseline")
        .arg(&baseline)
        .arg("--report")
        .arg(report.path())
        .output()
        .expect("running harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let json: Value = serde_json::from_slice(
        &std::fs::read(report.path().join("overhead.json"))
            .unwrap_or_else(|_| panic!("no overhead.json; stderr:\n{stderr}")),
    )
    .expect("overhead.json parses");
    let cell = &cells(&json)[0];
    assert_eq!(cell["status"], "pass", "{cell:#}\nstderr:\n{stderr}");
    let clocks = cell["overhead"]["clocks"].as_array().expect("clocks");
    assert_eq!(clocks.len(), 1);
    let f = &clocks[0];
    assert_eq!(f["clock"], "icount");
    assert_eq!(f["unit"], "instructions");
    let modes = f["modes"].as_array().expect("modes");
    let names: Vec<&str> = modes.iter().filter_map(|m| m["mode"].as_str()).collect();
    assert_eq!(names, harness::overhead::MODES, "every mode, in order");
    let median = |mode: &str, bench: &str, what: &str| -> f64 {
        let m = modes.iter().find(|m| m["mode"] == mode).expect("mode");
        assert_eq!(m["status"], "pass", "{mode}: {m:#}");
        m["benches"][bench][what]["median"]
            .as_f64()
            .unwrap_or_else(|| panic!("{mode} {bench} {what}: {m:#}"))
    };
    for bench in harness::overhead::BENCHES {
        let base = median("baseline", bench, "cost");
        assert!(
            base > 1000.0,
            "{bench}: an unlink is thousands of instructions, got {base}"
        );
        let pair = median("empty-pair", bench, "overhead");
        let kprobe = median("empty-kprobe", bench, "overhead");
        let tracer = median("kprobe", bench, "overhead");
        assert!(
            pair > 0.0 && kprobe > 0.0,
            "{bench}: an empty probe costs something"
        );
        assert!(
            pair > kprobe,
            "{bench}: a pair costs more than its entry half"
        );
        assert!(tracer > pair, "{bench}: the tracer does more than nothing");
        let ratio = f["tracer_to_empty_pair"][bench].as_f64().expect("ratio");
        assert!((ratio - tracer / pair).abs() < 0.01, "{bench}: {ratio}");
    }
    // Every counted probe saw at least the calls the bench measured.
    for m in modes.iter().filter(|m| m["probe_calls"].is_u64()) {
        if m["mode"] != "printk" {
            let seen =
                m["probe_calls"].as_u64().unwrap_or(0) + m["probe_dropped"].as_u64().unwrap_or(0);
            assert!(
                seen >= m["measured_calls"].as_u64().unwrap_or(u64::MAX),
                "{m:#}"
            );
        }
    }
    // The doctored baseline: the tracer grew past 25 %, so the run fails
    // though the cell passed; the unknown mode is not compared.
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let regressed: Vec<&Value> = json["comparisons"]
        .as_array()
        .expect("comparisons")
        .iter()
        .filter(|c| c["regressed"] == true)
        .collect();
    assert_eq!(regressed.len(), 1, "{:#}", json["comparisons"]);
    assert_eq!(regressed[0]["mode"], "kprobe");
    let summary = std::fs::read_to_string(report.path().join("summary.md")).expect("summary");
    assert!(
        summary.contains("| bookworm/x86_64 | kprobe | create_unlink | 100 |"),
        "{summary}"
    );
    assert!(
        summary.contains("guest instructions per unlink"),
        "{summary}"
    );
    assert!(summary.contains("| bookworm ("), "{summary}");
    let svg = std::fs::read_to_string(report.path().join("overhead.svg")).expect("svg");
    assert!(
        svg.starts_with("<svg") && svg.contains("\nbookworm\n"),
        "chart without the cell"
    );
    // --update-baseline: the file now holds this run's figures.
    let fresh: Value =
        serde_json::from_slice(&std::fs::read(&baseline).expect("baseline")).expect("parses");
    let now = fresh["cells"]["bookworm/x86_64"]["kprobe"]["create_unlink"]
        .as_f64()
        .expect("refreshed");
    assert!((now - median("kprobe", "create_unlink", "overhead")).abs() <= 1.0);

    // --from: the report rebuilt from this run's directory, joined with a
    // run of other modes (the bpftrace mode moved into a copy), boots
    // nothing and gives the same figures and the same verdict.
    let split = tempfile::tempdir().expect("temp dir");
    let mut peers = json.clone();
    let keep = |v: &mut Value, bpftrace: bool| {
        if let Some(modes) = v["cells"][0]["overhead"]["clocks"][0]["modes"].as_array_mut() {
            modes.retain(|m| (m["mode"] == "bpftrace") == bpftrace || m["mode"] == "baseline");
        }
    };
    let mut tracer_side = json.clone();
    keep(&mut tracer_side, false);
    keep(&mut peers, true);
    for (name, v) in [("a", &tracer_side), ("b", &peers)] {
        std::fs::create_dir_all(split.path().join(name)).expect("dir");
        std::fs::write(
            split.path().join(name).join("overhead.json"),
            serde_json::to_string(v).expect("json"),
        )
        .expect("written");
    }
    std::fs::write(
        &baseline,
        r#"{"clock":"icount","cells":{"bookworm/x86_64":{"kprobe":{"create_unlink":100.0}}}}"#,
    )
    .expect("baseline written");
    let joined = split.path().join("joined");
    let again = harness()
        .args(["overhead", "--fail-above", "25", "--from"])
        .arg(split.path().join("a"))
        .arg("--from")
        .arg(split.path().join("b"))
        .arg("--baseline")
        .arg(&baseline)
        .arg("--report")
        .arg(&joined)
        .output()
        .expect("running harness");
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rebuilt: Value = serde_json::from_slice(
        &std::fs::read(joined.join("overhead.json")).expect("joined overhead.json"),
    )
    .expect("parses");
    let figures = |v: &Value| {
        let f = &v["cells"][0]["overhead"]["clocks"][0];
        (
            f["modes"].clone(),
            f["tracer_to_empty_pair"].clone(),
            f["tracer_to_bpftrace"].clone(),
        )
    };
    assert_eq!(figures(&rebuilt), figures(&json), "the joined run differs");
}
