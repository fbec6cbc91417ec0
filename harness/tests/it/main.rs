//! The harness's integration tests: real guests, real kernels, real
//! snapshots. One binary (see ARCHITECTURE.md).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests show what the guests saw (cargo test --show-output)"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, LazyLock, Mutex};

use serde_json::Value;
use unlink_schema::protocol::files;

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

/// The main job, as the README runs it: every kernel of the manifest on
/// both arches boots under QEMU and passes the regression gate: the tracer
/// attaches to the right function, the tutorial, errors and names traces
/// match their reviewed snapshots, and storm, contention, pairing, ret
/// width, fentry and the tracefs oracle hold or are limitations the kernel
/// itself establishes.
#[test]
fn the_whole_matrix_passes() {
    let _g = guests(ALL);
    let (report, json, out) = run_matrix(&[]);
    let all = cells(&json);
    eprintln!(
        "the whole matrix: {} cells in {:.1} s",
        all.len(),
        json["wall_s"].as_f64().unwrap_or_default()
    );
    let mut referenced = std::collections::BTreeSet::new();
    let manifest = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest");
    assert_eq!(
        all.len(),
        manifest.kernel.len() * 2,
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
        for scenario in harness::gate::SNAPSHOTTED.iter().map(|s| s.name()) {
            let text =
                std::fs::read_to_string(dir.join("out").join(scenario).join(files::NORMALISED))
                    .unwrap_or_else(|_| {
                        panic!("{alias}/{arch}: no normalised {scenario} trace; cell: {cell:#}")
                    });
            let snap = cell["snapshots"][scenario]
                .as_str()
                .unwrap_or_else(|| panic!("{alias}/{arch}: no snapshot name for {scenario}"))
                .to_string();
            referenced.insert(snap.clone());
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
        for &name in harness::gate::VERDICTS {
            let sc = scenario(cell, name);
            match sc["status"].as_str() {
                Some("pass") => {}
                Some("expected-limitation") => {
                    // fentry: the tracer's own refusal, by its kind; the
                    // missed returns: the kernel's rule, named.
                    let d = sc["detail"].as_str().unwrap_or_default();
                    assert!(
                        if name == "fentry" {
                            sc["failure"] == "no-trampolines"
                        } else {
                            d.contains("no CONFIG_PREEMPTION and before 6.2")
                        },
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
    // `--unreferenced=reject`: every committed snapshot is one a cell used.
    let snaps = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    for entry in std::fs::read_dir(&snaps).expect("snapshots dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".snap") {
            assert!(
                referenced.contains(stem),
                "snapshot {name} is used by no cell: remove it"
            );
        }
    }
    let summary = std::fs::read_to_string(report.path().join("summary.md")).expect("summary.md");
    assert!(summary.contains("| kernel | x86_64 | arm64 |"), "{summary}");
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

/// `--kernel-image` with `--kernel-modules`: a kernel the user has (here a
/// Debian 6.12 image taken out of the cache, as if built by hand) runs as a
/// `custom` cell through the same gate.
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

#[test]
fn a_users_own_kernel_image_is_a_cell() {
    let img = host_kernel("trixie");
    let _g = guests(1);
    let image = img.vmlinuz.to_string_lossy().into_owned();
    let modules = img.modules.to_string_lossy().into_owned();
    let (_report, json, out) =
        run_matrix(&["--kernel-image", &image, "--kernel-modules", &modules]);
    let all = cells(&json);
    assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    let cell = &all[0];
    assert_eq!(cell["alias"], "custom");
    assert_eq!(cell["release"], img.release.as_str(), "{cell:#}");
    assert_eq!(cell["status"], "pass", "{cell:#}");
    assert!(out.status.success());
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
    let _g = guests(1);
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

/// A damaged cache is noticed and repaired: a corrupted cached `.deb` is
/// fetched again (checked against the apt index's SHA256), and a damaged
/// extracted kernel is extracted again.
#[test]
fn a_corrupted_cached_deb_is_fetched_again() {
    use harness::kernels::kernel;
    let cache = tempfile::tempdir().expect("temp cache");
    let manifest = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest");
    let lock =
        harness::kernels::lock::LockFile::load(&harness::kernels::lock::LockFile::default_path())
            .expect("lock file");
    // The smallest kernel of the matrix keeps the download short.
    let entry = lock
        .entries
        .iter()
        .filter(|e| manifest.get(&e.alias).is_some())
        .min_by_key(|e| e.packages.iter().map(|p| p.size).sum::<u64>())
        .expect("a locked kernel");
    let notes = std::sync::Mutex::new(Vec::<String>::new());
    let note = |s: &str| notes.lock().expect("notes").push(s.to_string());

    let first = kernel::fetch(cache.path(), entry, &note).expect("first fetch");
    assert!(first.vmlinuz.is_file());
    let main = entry.main_package().expect("main package");
    let deb = cache.path().join("debs").join(format!(
        "{}_{}_{}.deb",
        main.package,
        main.version.replace(':', "%3a"),
        main.architecture
    ));
    assert!(deb.is_file(), "no cached {}", deb.display());

    // Corrupt the .deb (flip bytes in the middle) and the extracted kernel.
    let mut bytes = std::fs::read(&deb).expect("read deb");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&deb, &bytes).expect("corrupt deb");
    std::fs::write(&first.vmlinuz, b"not a kernel").expect("corrupt vmlinuz");
    notes.lock().expect("notes").clear();

    let second = kernel::fetch(cache.path(), entry, &note).expect("second fetch");
    let seen = notes.lock().expect("notes").join("\n");
    assert!(
        seen.contains("is damaged"),
        "damaged kernel not noticed:\n{seen}"
    );
    assert!(
        seen.contains("SHA256 mismatch, fetching again") || seen.contains("downloading"),
        "{seen}"
    );
    assert_eq!(
        harness::cache::entry::sha256_file(&deb).expect("sha"),
        main.sha256,
        "the .deb was not fetched again"
    );
    assert_eq!(second.vmlinuz_sha256, first.vmlinuz_sha256);
    assert_eq!(
        harness::cache::entry::sha256_file(&second.vmlinuz).expect("sha"),
        first.vmlinuz_sha256
    );
}

/// A bad --kernels or --arch value: exit 2 and one line naming the valid values.
#[test]
fn bad_selections_list_the_valid_values() {
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--kernels", "nosuch"],
            &["bullseye", "bookworm", "trixie", "sid", "experimental"],
        ),
        (&["--arch", "sparc"], &["x86_64, arm64"]),
        (&["--jobs", "0"], &["--jobs", "from 1 to 64"]),
        (
            &["--boot-timeout", "0"],
            &["--boot-timeout", "from 1 to 86400"],
        ),
        (
            &["--run-timeout", "x"],
            &["--run-timeout", "from 1 to 86400"],
        ),
        (&["--repeat", "101"], &["--repeat", "from 1 to 100"]),
    ];
    let overhead_cases: [(&[&str], &[&str]); 4] = [
        (&["--modes", "kprobe,nope"], &["baseline", "bpftrace"]),
        // A matrix option the overhead run would not honour is refused.
        (&["--repeat", "5"], &["unexpected argument '--repeat'"]),
        (&["--rounds", "0"], &["1 to 50"]),
        (&["--fail-above", "-3"], &["0 or more"]),
    ];
    let all = cases
        .iter()
        .map(|(a, v)| ("matrix", a, v))
        .chain(overhead_cases.iter().map(|(a, v)| ("overhead", a, v)));
    for (cmd, args, valid) in all {
        let out = harness()
            .arg(cmd)
            .args(*args)
            .output()
            .expect("running harness");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        for v in valid.iter() {
            assert!(err.contains(v), "{args:?}: {err}");
        }
    }
}

/// The workflow users copy: actionlint finds nothing in it, and its
/// kernel-matrix and overhead jobs run exactly the manifest's kernels
/// times the arches.
#[test]
fn the_workflow_lints_clean_and_matches_the_manifest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workflow = root.join(".github/workflows/ci.yml");
    let module = harness::host::setup::actionlint_module(&harness::paths::cache_root());
    assert!(
        module.join("main.wasm").is_file(),
        "actionlint is not installed at {}: run `cargo harness setup`",
        module.display()
    );
    let out = Command::new("node")
        .arg(root.join("harness/tools/actionlint.cjs"))
        .arg(&module)
        .arg(&workflow)
        .output()
        .expect("running node");
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!("{said}");
    assert!(
        out.status.success(),
        "actionlint: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&workflow).expect("ci.yml")).expect("yaml");
    let manifest = harness::kernels::manifest::Manifest::load(
        &harness::kernels::manifest::Manifest::default_path(),
    )
    .expect("manifest");
    for job in ["kernel-matrix", "overhead"] {
        let matrix = &yaml["jobs"][job]["strategy"]["matrix"];
        let list = |key: &str| -> Vec<String> {
            matrix[key]
                .as_sequence()
                .unwrap_or_else(|| panic!("no {job} matrix.{key} in ci.yml"))
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        assert_eq!(
            list("kernel"),
            manifest.aliases(),
            "ci.yml {job} kernels vs vm-images/kernels.toml"
        );
        assert_eq!(
            list("arch"),
            harness::model::Arch::ALL.map(|a| a.name()),
            "ci.yml {job} arches vs the harness's"
        );
    }
}

/// `harness doctor` lists every check, tries KVM, and names the fix for
/// what is missing.
#[test]
fn doctor_reports_each_check() {
    let out = harness()
        .arg("doctor")
        .output()
        .expect("running harness doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    for what in [
        "QEMU x86_64",
        "QEMU arm64",
        "virtme-ng",
        "virtiofsd",
        "clang",
        "Debian mirror",
        "KVM",
        "cache",
    ] {
        assert!(
            text.lines().any(|l| l.contains(what)),
            "no {what} line:\n{text}"
        );
    }
    let kvm = text
        .lines()
        .find(|l| l.contains(" KVM "))
        .expect("KVM line");
    assert!(
        kvm.contains("works") || kvm.contains("TCG will be used") || kvm.contains("no /dev/kvm"),
        "{kvm}"
    );
    assert!(
        out.status.success(),
        "the test command provisions everything doctor checks:\n{text}"
    );
}

/// An overhead run of one cell, instructions only: every mode is measured
/// and passes its checks, the figures are ordered as the mechanisms are
/// (nothing < an empty probe pair < the tracer), the report has its
/// table and chart, and a baseline the run exceeds fails it with
/// `--fail-above` and is refreshed by `--update-baseline`.
#[test]
fn an_overhead_run_measures_every_mode_and_gates_on_the_baseline() {
    // One guest; its figures are counted instructions, not time, so a
    // guest beside it changes none of them.
    let _g = guests(1);
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

/// The harness's layering (ARCHITECTURE.md): the crate modules each
/// top-level module of `harness/src` may use. `model` is the leaf; `gate`,
/// `overhead` and `report` never use the engine; nothing uses `cli` (the
/// binary: `main.rs` and `cli/`, which may use anything).
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("paths", &[]),
    ("process", &[]),
    ("cache", &["paths"]),
    ("kernels", &["model", "paths", "process", "cache"]),
    ("vm", &["model", "paths", "process"]),
    ("images", &["model", "paths", "process", "cache", "kernels"]),
    ("gate", &["model", "paths", "kernels", "vm"]),
    ("overhead", &["model", "kernels"]),
    ("mutants", &["model", "paths", "gate"]),
    ("report", &["model", "overhead", "mutants"]),
    (
        "engine",
        &[
            "model", "paths", "process", "cache", "kernels", "vm", "images", "gate", "overhead",
        ],
    ),
    (
        "host",
        &[
            "model", "paths", "process", "cache", "kernels", "vm", "images",
        ],
    ),
];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The crate modules one source file uses, with the line of each use:
/// `crate::NAME` and `super::` chains that leave the file's top-level
/// module, resolved from the file's module path (`gate/check.rs` is
/// `gate::check`; a trailing `mod tests` block is one level deeper).
fn crate_uses(module: &[String], text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut in_tests = false;
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with("mod tests {") {
            in_tests = true;
        }
        let code = raw.split("//").next().unwrap_or("");
        let mut path: Vec<String> = module.to_vec();
        if in_tests {
            path.push("tests".into());
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let boundary = at == 0
                || !rest[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if boundary && !name.is_empty() {
                out.push((i + 1, name, raw.trim().to_string()));
            }
            rest = after;
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let mut after = &rest[at..];
            let mut up = 0;
            while let Some(r) = after.strip_prefix("super::") {
                up += 1;
                after = r;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if up >= path.len() && !name.is_empty() && name != "*" {
                out.push((i + 1, name, raw.trim().to_string()));
            }
            rest = after;
        }
    }
    out
}

/// The layering holds: no file uses a module its top-level module may not
/// (model none at all), the table itself has no cycle, and every
/// top-level module is in it.
#[test]
fn the_module_layering_holds() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = |top: &str| LAYERS.iter().find(|(m, _)| *m == top).map(|(_, a)| *a);
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).expect("under src");
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let top = module[0].as_str();
        // The binary (main.rs, cli/) may use anything; lib.rs is the root.
        if matches!(top, "main" | "cli" | "lib") {
            continue;
        }
        let Some(may) = allowed(top) else {
            broken.push(format!(
                "harness/src/{}: top-level module `{top}` is not in LAYERS (tests/it/main.rs): place it in the layering",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, used, code) in crate_uses(&module, &text) {
            if used != top && !may.contains(&used.as_str()) {
                broken.push(format!(
                    "harness/src/{}:{line}: {top} -> {used} is a forbidden edge ({top} may use: {}): `{code}`",
                    rel.display(),
                    if may.is_empty() { "nothing".to_string() } else { may.join(", ") }
                ));
            }
        }
    }
    // No cycle: each module's allowed set only names modules listed before it.
    for (i, (m, may)) in LAYERS.iter().enumerate() {
        for dep in *may {
            assert!(
                LAYERS[..i].iter().any(|(d, _)| d == dep),
                "LAYERS: {m} may use {dep}, which is not below it (a cycle, or an unknown module)"
            );
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Every process of `root`'s tree now, as (pid, start time) from /proc (a
/// process is the same only if both match: pids are reused): its
/// descendants, and every member of a process group one of them leads
/// (daemons such as virtiofsd leave the tree for init but keep the group).
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut procs: Vec<(u32, ProcStat)> = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(st) = proc_stat(pid) {
            procs.push((pid, st));
        }
    }
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, st) in &procs {
            if st.ppid == p {
                out.push((*pid, st.start));
                frontier.push(*pid);
            }
        }
    }
    let groups: Vec<u32> = out.iter().map(|(pid, _)| *pid).collect();
    for (pid, st) in &procs {
        if groups.contains(&st.pgrp) && !out.iter().any(|(p, _)| p == pid) {
            out.push((*pid, st.start));
        }
    }
    out
}

struct ProcStat {
    ppid: u32,
    pgrp: u32,
    start: u64,
}

/// A live (not zombie) process's parent, group and start time.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice threads itrealvalue starttime
    let st = ProcStat {
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    };
    (f.first() != Some(&"Z")).then_some(st)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A two-cell matrix started in the background, once its guests run: the
/// child, its report dir, and its process tree at that moment.
#[allow(
    clippy::zombie_processes,
    reason = "the child is handed to the caller, which waits for it"
)]
/// Where [`matrix_with_guests_up`] keeps the harness's stderr.
const HARNESS_ERR: &str = "harness.err";

/// The harness's stderr and the tail of each cell's console, for a
/// failure message.
fn run_story(report: &Path) -> String {
    let mut story = std::fs::read_to_string(report.join(HARNESS_ERR)).unwrap_or_default();
    for log in glob_consoles(report) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        story.push_str(&format!("\n--- {} (last lines)\n", log.display()));
        for l in tail.into_iter().rev() {
            story.push_str(l);
            story.push('\n');
        }
    }
    story
}

fn glob_consoles(report: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(report.join("cells"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("console.log"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// A two-cell matrix whose guests are up: the harness, its report
/// directory, its process tree, and the TMPDIR it was given.
struct Running {
    child: std::process::Child,
    report: tempfile::TempDir,
    tree: Vec<(u32, u64)>,
    tmp: tempfile::TempDir,
}

// Every caller waits for the child it is handed.
#[allow(clippy::zombie_processes)]
fn matrix_with_guests_up() -> Running {
    let report = tempfile::tempdir().expect("temp dir");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut child = harness()
        .env("TMPDIR", tmp.path())
        .args([
            "matrix",
            "--kernels",
            "bookworm,trixie",
            "--arch",
            "x86_64",
            "--accel",
            "tcg",
            "--jobs",
            "2",
            "--report",
        ])
        .arg(report.path())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(report.path().join(HARNESS_ERR)).expect("harness stderr file"),
        )
        .spawn()
        .expect("starting harness matrix");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let tree = descendants(child.id());
        let qemus = tree
            .iter()
            .filter(|(p, _)| comm(*p).starts_with("qemu-system"))
            .count();
        if qemus >= 2 {
            // Let the guests get going (virtiofsd, the kernels booting).
            std::thread::sleep(std::time::Duration::from_secs(3));
            let tree = descendants(child.id());
            return Running {
                child,
                report,
                tree,
                tmp,
            };
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no two guests running within 300 s; tree: {tree:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// What a run left in the TMPDIR it was given (vng's sockets, pid files
/// and return-code files, before each boot had a directory of its own).
fn temp_files(tmp: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(tmp.path())
        .expect("reading TMPDIR")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits up to `secs` for every process of `tree` to be gone; the living.
fn survivors(tree: &[(u32, u64)], secs: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let alive: Vec<String> = tree
            .iter()
            .filter(|(pid, start)| proc_stat(*pid).is_some_and(|st| st.start == *start))
            .map(|(pid, _)| format!("{pid} {}", comm(*pid)))
            .collect();
        if alive.is_empty() || std::time::Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// SIGINT, SIGTERM, SIGKILL to a running two-cell matrix (before SIGINT,
/// a second run into its report directory is refused): within 5 s no
/// process it started is alive (QEMU, vng, virtiofsd: its whole tree, by
/// pid and start time); on SIGINT/SIGTERM the report marks the unfinished
/// cells `interrupted` and the exit code is 128 + the signal.
#[test]
fn a_signalled_matrix_leaves_nothing_behind() {
    use nix::sys::signal::{kill, Signal};
    use std::os::unix::process::ExitStatusExt;
    let _g = guests(ALL);
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        let Running {
            mut child,
            report,
            tree,
            tmp,
        } = matrix_with_guests_up();
        assert!(
            tree.iter().any(|(p, _)| comm(*p).starts_with("virtiofsd")),
            "{sig}: no virtiofsd in the tree: {tree:?}"
        );
        if sig == Signal::SIGINT {
            a_second_run_is_refused(report.path(), child.id());
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        kill(pid, sig).expect("signalling the harness");
        let sent = std::time::Instant::now();
        let status = child.wait().expect("waiting for the harness");
        let left = survivors(&tree, 5);
        assert!(
            left.is_empty(),
            "{sig}: still alive 5 s after the harness ended: {left:?}"
        );
        eprintln!(
            "{sig}: harness ended in {:.1}s ({status}); {} processes of its tree gone",
            sent.elapsed().as_secs_f64(),
            tree.len()
        );
        if sig == Signal::SIGKILL {
            assert_eq!(status.signal(), Some(9), "{status}");
            continue;
        }
        assert_eq!(status.code(), Some(128 + sig as i32), "{sig}: {status}");
        assert_eq!(
            temp_files(&tmp),
            Vec::<String>::new(),
            "{sig}: left in TMPDIR"
        );
        let json: Value = serde_json::from_slice(
            &std::fs::read(report.path().join("matrix.json")).expect("matrix.json written"),
        )
        .expect("matrix.json");
        for cell in cells(&json) {
            assert_eq!(cell["status"], "interrupted", "{sig}: {cell:#}");
        }
        let summary = std::fs::read_to_string(report.path().join("summary.md")).expect("summary");
        assert!(summary.contains("interrupted"), "{summary}");
        let junit = std::fs::read_to_string(report.path().join("junit.xml")).expect("junit");
        assert!(junit.contains("interrupted"), "{junit}");
    }
}

/// A matrix that ends by itself, one cell by a deadline it cannot meet:
/// that cell is a timeout (its QEMU killed), the other cell carries on and
/// passes, the run exits 1, and no process it started is left (the
/// guests, their virtiofsd daemons, the guard: every process seen in its
/// tree while it ran), nor a file in its TMPDIR.
#[test]
fn a_finished_matrix_leaves_nothing_behind() {
    let _g = guests(ALL);
    let report = tempfile::tempdir().expect("temp dir");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut child = harness()
        .env("TMPDIR", tmp.path())
        .args([
            "matrix",
            "--kernels",
            "bookworm,trixie",
            "--arch",
            "x86_64",
            "--accel",
            "tcg",
            "--jobs",
            "2",
            "--cell-timeout",
            "bookworm/x86_64=1",
            "--report",
        ])
        .arg(report.path())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(report.path().join(HARNESS_ERR)).expect("harness stderr file"),
        )
        .spawn()
        .expect("starting harness matrix");
    // Every process of its tree, with its name, as seen while it ran.
    let mut seen: std::collections::BTreeMap<(u32, u64), String> = Default::default();
    let status = loop {
        for p in descendants(child.id()) {
            seen.entry(p).or_insert_with(|| comm(p.0));
        }
        if let Some(status) = child.try_wait().expect("waiting for the harness") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let story = run_story(report.path());
    for daemon in ["qemu-system", "virtiofsd"] {
        assert!(
            seen.values().any(|c| c.starts_with(daemon)),
            "no {daemon} seen in the tree: {seen:?}\n{story}"
        );
    }
    let tree: Vec<(u32, u64)> = seen.keys().copied().collect();
    let left = survivors(&tree, 5);
    assert!(
        left.is_empty(),
        "still alive after the run ended ({status}): {left:?}"
    );
    assert_eq!(temp_files(&tmp), Vec::<String>::new(), "left in TMPDIR");
    let json: Value = serde_json::from_slice(
        &std::fs::read(report.path().join("matrix.json")).expect("matrix.json written"),
    )
    .expect("matrix.json");
    let all = cells(&json);
    let cell = |alias: &str| {
        all.iter()
            .find(|c| c["alias"] == alias)
            .unwrap_or_else(|| panic!("no {alias} cell: {json:#}"))
    };
    let (bookworm, trixie) = (cell("bookworm"), cell("trixie"));
    assert_eq!(bookworm["status"], "timeout", "{bookworm:#}");
    assert!(
        bookworm["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not boot within its 1s deadline")),
        "{bookworm:#}"
    );
    assert_eq!(trixie["status"], "pass", "{trixie:#}\n{story}");
    assert_eq!(status.code(), Some(1), "{status}");
    let junit = std::fs::read_to_string(report.path().join("junit.xml")).expect("junit");
    assert!(
        junit.contains("<testsuite name=\"bookworm/x86_64\""),
        "{junit}"
    );
    eprintln!(
        "a finished run: {status}; {} processes of its tree gone",
        tree.len()
    );
}

/// A second matrix into the report directory of a running one refuses in
/// one line naming the run that holds it, and exits 2.
fn a_second_run_is_refused(report: &Path, first: u32) {
    let second = bookworm_matrix()
        .arg(report)
        .output()
        .expect("running a second matrix");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("is in use by another harness run"))
        .unwrap_or_else(|| panic!("no refusal line: {err}"));
    assert!(line.contains(&format!("pid {first}")), "{line}");
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

/// A tmpfs mounted for one test, unmounted however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a size-limited tmpfs (root needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A kernel fetched into a cache filesystem too small for it: the cell
/// fails with one line naming the full cache and what to do, and no
/// half-written kernel entry is left; the same run with room recovers by
/// itself. (The cache's tools, venv, roots and apt indexes are the real
/// cache's, linked in: only the kernel goes to the small filesystem.)
#[test]
fn a_full_cache_fails_in_one_line_and_the_next_run_recovers() {
    let _g = guests(1);
    let real = harness::paths::cache_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(dir.path(), "120m");
    for d in ["venv", "tools", "roots", "apt"] {
        std::os::unix::fs::symlink(real.join(d), dir.path().join(d)).expect("linking the cache");
    }
    let run = || {
        let report = tempfile::tempdir().expect("temp dir");
        let out = bookworm_matrix()
            .arg(report.path())
            .env("UNLINK_HARNESS_CACHE", dir.path())
            .output()
            .expect("running harness matrix");
        let json: Value = serde_json::from_slice(
            &std::fs::read(report.path().join("matrix.json")).expect("matrix.json"),
        )
        .expect("matrix.json");
        (json, out)
    };
    let (json, out) = run();
    let cell = &cells(&json)[0];
    let error = cell["error"].as_str().unwrap_or_default();
    assert_eq!(cell["status"], "error", "{cell:#}");
    assert!(
        error.contains("the cache filesystem is full") && error.contains("cargo harness clean"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(!out.status.success());
    let kernels = dir.path().join("kernels");
    for e in std::fs::read_dir(&kernels).expect("kernels dir").flatten() {
        assert!(
            !e.path().is_dir() || e.path().join("kernel.json").is_file(),
            "a half-written kernel entry survived: {}",
            e.path().display()
        );
    }
    fs.resize("2g");
    let (json, out) = run();
    let cell = &cells(&json)[0];
    assert_eq!(
        cell["status"],
        "pass",
        "{cell:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    let _g = guests(ALL);
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
