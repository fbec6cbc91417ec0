//! The main job's cells at the matrix's ends (the oldest and the newest
//! kernel, on the foreign arch), every committed snapshot one a cell of
//! the whole matrix uses, a guest kernel's panic. The whole matrix is the
//! main job (`cargo harness matrix`), which `.ci/run` runs after the tests.

use std::path::Path;

use serde_json::Value;
use unlink_schema::protocol::files;

use super::*;

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

/// The main job at its ends, as the README runs it: the oldest kernel
/// (5.10: a `long` return, a kretprobe of NR_CPUS instances, no
/// trampolines on arm64) and the first of the renamed unlink path (7.2:
/// `filename_unlinkat`), on arm64 (the cross-built tracer, the debootstrap
/// root). (x86_64's gate passes in the mutation runner's clean run and
/// beside the finished matrix's timeout; the whole matrix is the main job,
/// which `.ci/run` runs after the tests.)
#[test]
fn the_matrix_at_its_ends_passes() {
    let _g = guests(ALL, 90);
    a_matrix_passes(&["--kernels", "bullseye,sid", "--arch", "arm64"], 2);
}

/// The whole matrix through the same checks: what writes a new
/// scenario's snapshots for every cell (`INSTA_UPDATE=new`), run by hand.
#[test]
#[ignore = "the whole matrix is the main job (`cargo harness matrix`, run by .ci/run after the tests); run it with --ignored to write every cell's snapshots"]
fn the_whole_matrix_passes() {
    let _g = guests(ALL, 600);
    let kernels = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest")
    .kernel
    .len();
    a_matrix_passes(&[], kernels * harness::model::Arch::ALL.len());
}

/// `harness matrix ARGS` of `want` cells: every cell boots under QEMU and
/// passes the regression gate: the tracer attaches to the right function,
/// the tutorial, errors and names traces match their reviewed snapshots,
/// and storm, contention, pairing, ret width, fentry and the tracefs
/// oracle hold or are limitations the kernel itself establishes.
fn a_matrix_passes(args: &[&str], want: usize) {
    let (report, json, out) = run_matrix(args);
    let all = cells(&json);
    eprintln!(
        "the matrix {args:?}: {} cells in {:.1} s",
        all.len(),
        json["wall_s"].as_f64().unwrap_or_default()
    );
    let manifest = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest");
    assert_eq!(
        all.len(),
        want,
        "one cell per kernel and arch; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for cell in all {
        let (alias, arch) = (
            cell["alias"].as_str().expect("alias"),
            cell["arch"].as_str().expect("arch"),
        );
        eprintln!(
            "{alias}/{arch}: {} {} ({}) under {}: {} — boot {}s, run {}s, total {}s",
            cell["kernel_package"],
            cell["kernel"],
            cell["release"],
            cell["accel"],
            cell["status"],
            cell["boot_s"],
            cell["run_s"],
            cell["total_s"]
        );
        for sc in cell["scenarios"].as_array().expect("scenarios") {
            eprintln!("  {}: {} — {}", sc["name"], sc["status"], sc["detail"]);
        }
        let dir = cell_dir(report.path(), alias, arch);
        // Every snapshotted scenario against its reviewed snapshot (the
        // variant the engine chose, if one exists for this cell).
        for scenario in harness::gate::snapshotted().iter().map(|s| s.name()) {
            let text =
                std::fs::read_to_string(dir.join("out").join(scenario).join(files::NORMALISED))
                    .unwrap_or_else(|_| {
                        panic!("{alias}/{arch}: no normalised {scenario} trace; cell: {cell:#}")
                    });
            let snap = cell["snapshots"][scenario]
                .as_str()
                .unwrap_or_else(|| panic!("{alias}/{arch}: no snapshot name for {scenario}"))
                .to_string();
            snapshot_settings(cell).bind(|| insta::assert_snapshot!(snap, text));
        }
        assert_eq!(cell["status"], "pass", "{alias}/{arch}: {cell:#}");

        // 7.x renamed the unlink path; the tracer must follow.
        let series = &manifest.get(alias).expect("alias in manifest").series;
        let want_symbol = if series.starts_with("7.") {
            "filename_unlinkat"
        } else {
            "do_unlinkat"
        };
        assert_eq!(cell["symbol"], want_symbol, "{alias}/{arch}");
        // 5.10 returns long, later kernels int.
        let want_bits = if series == "5.10" { 64 } else { 32 };
        assert_eq!(cell["ret_width_bits"], want_bits, "{alias}/{arch}");
        assert_eq!(cell["events"], 3, "{alias}/{arch}");

        let pipe = std::fs::read_to_string(dir.join("out/printk/trace.out")).expect("printk trace");
        assert!(pipe.contains(", ret = -2"), "{alias}/{arch}: {pipe}");
        assert!(
            !pipe.contains("4294967294"),
            "{alias}/{arch}: ret read at the wrong width"
        );

        // The gate's table: every scenario present; an expected limitation
        // only where the kernel itself rules the feature out.
        for &name in harness::gate::VERDICTS.iter() {
            let sc = scenario(cell, name);
            match sc["status"].as_str() {
                Some("pass") => {}
                Some("expected-limitation") => {
                    // fentry only, the tracer's own refusal, by its kind:
                    // with return instances of its own (`--maxactive`) no
                    // kernel may miss a return the scenario did not make.
                    assert!(
                        name == "fentry" && sc["failure"] == "no-trampolines",
                        "{alias}/{arch} {name}: {sc:#}"
                    );
                }
                other => panic!("{alias}/{arch}: {name} {other:?}: {sc:#}"),
            }
        }
        assert!(dir.join("console.log").is_file());
        eprintln!("  contention: returns missed {}", cell["missed_returns"]);
    }
    // x86_64 has had trampolines since 5.5: no x86_64 cell may skip fentry.
    for cell in all.iter().filter(|c| c["arch"] == "x86_64") {
        assert_eq!(scenario(cell, "fentry")["status"], "pass", "{cell:#}");
    }
    let summary = std::fs::read_to_string(report.path().join("summary.md")).expect("summary.md");
    assert!(summary.contains("| kernel |"), "{summary}");
    let junit = std::fs::read_to_string(report.path().join("junit.xml")).expect("junit.xml");
    assert_eq!(
        junit.matches("<testcase ").count(),
        all.len() * harness::gate::VERDICTS.len(),
        "one testcase per cell and scenario:\n{junit}"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--unreferenced=reject` without a guest: every committed snapshot is
/// the one some cell of the whole matrix (each kernel of the manifest on
/// each arch) checks a scenario against, so a snapshot no cell uses any
/// more is named for removal.
#[test]
fn every_snapshot_is_one_a_cell_uses() {
    let manifest = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest");
    let snaps = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let mut referenced = std::collections::BTreeSet::new();
    for k in &manifest.kernel {
        for arch in harness::model::Arch::ALL {
            for scenario in harness::gate::snapshotted() {
                referenced.insert(harness::gate::check::snapshot_for(
                    &snaps,
                    scenario.name(),
                    &k.alias,
                    arch.name(),
                ));
            }
        }
    }
    let mut files = 0;
    for entry in std::fs::read_dir(&snaps).expect("snapshots dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".snap") {
            files += 1;
            assert!(
                referenced.contains(stem),
                "snapshot {name} is used by no cell: remove it"
            );
        }
    }
    assert!(
        files >= harness::gate::snapshotted().len(),
        "{files} snapshots"
    );
}

/// A guest kernel that panics (sysrq's crash) fails its boot as a kernel
/// panic, and the console log keeps the report after the first line (the
/// call trace) and the host's load at that moment, for whoever has to
/// tell a kernel bug from a starved emulator.
#[test]
fn a_kernel_failure_keeps_its_whole_report() {
    use harness::vm::boot;
    let cache = harness::paths::cache_root();
    let img = host_kernel("bookworm");
    let _g = guests(1, 15);
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = boot::BootSpec {
        vng: harness::host::setup::vng_path(&cache),
        arch: harness::model::Arch::host(),
        accel: harness::model::Accel::Tcg,
        vmlinuz: img.vmlinuz.clone(),
        cpus: 1,
        memory_mb: 512,
        rwdirs: Vec::new(),
        qemu_opts: None,
        root: None,
        busybox: None,
        transport: boot::Transport::NineP,
        command: "echo c > /proc/sysrq-trigger".into(),
    };
    let log = dir.path().join("console.log");
    let r = boot::run(&spec, &log, boot::Deadlines::both(120), &|_| {}).expect("vng ran");
    let text = std::fs::read_to_string(&log).expect("console log");
    match &r.end {
        boot::BootEnd::Failure(f) => assert_eq!(f.kind, "kernel panic", "{f:?}"),
        other => panic!("ended {other:?}, not with a kernel panic:\n{text}"),
    }
    let panic_at = text.find("Kernel panic").expect("the panic line");
    let after = &text[panic_at..];
    assert!(
        after.contains("harness: host load at this failure (/proc/loadavg): "),
        "{after}"
    );
    assert!(
        text.contains("Call Trace:"),
        "the report's call trace is in the log:\n{text}"
    );
}
