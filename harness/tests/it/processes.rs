//! Nothing we start outlives us: signalled and finished runs leave no
//! process or file; a second run on one report directory is refused.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// Every process of `root`'s tree now, as (pid, start time) from /proc (a
/// process is the same only if both match: pids are reused): its
/// descendants, and every member of a process group one of them leads
/// (daemons such as virtiofsd leave the tree for init but keep the group).
pub(crate) fn descendants(root: u32) -> Vec<(u32, u64)> {
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

pub(crate) fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

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

/// `harness matrix` of two x86_64 cells (bookworm and `second`: a kernel
/// alias, or `--kernel-image` and its arguments) under TCG, two at a time,
/// with `extra` arguments, started in the background: the child, its
/// report dir (its stderr in [`HARNESS_ERR`] there) and the TMPDIR it was
/// given. Every caller waits for the child.
#[allow(clippy::zombie_processes)]
fn two_cell_matrix(
    second: &[&str],
    extra: &[&str],
) -> (std::process::Child, tempfile::TempDir, tempfile::TempDir) {
    let report = tempfile::tempdir().expect("temp dir");
    let tmp = tempfile::tempdir().expect("temp dir");
    let kernels = match second {
        [alias] => format!("bookworm,{alias}"),
        _ => "bookworm".to_string(),
    };
    let child = harness()
        .env("TMPDIR", tmp.path())
        .args(["matrix", "--kernels", &kernels])
        .args(if second.len() > 1 { second } else { &[] })
        .args(["--arch", "x86_64", "--accel", "tcg", "--jobs", "2"])
        .args(extra)
        .arg("--report")
        .arg(report.path())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(report.path().join(HARNESS_ERR)).expect("harness stderr file"),
        )
        .spawn()
        .expect("starting harness matrix");
    (child, report, tmp)
}

// Every caller waits for the child it is handed.
#[allow(clippy::zombie_processes)]
fn matrix_with_guests_up() -> Running {
    let (mut child, report, tmp) = two_cell_matrix(&["trixie"], &[]);
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
pub(crate) fn survivors(tree: &[(u32, u64)], secs: u64) -> Vec<String> {
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
    let _g = guests(ALL, 45);
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
/// tree while it ran), nor a file in its TMPDIR. The cell that passes is a
/// user's own kernel (`--kernel-image` with `--kernel-modules`: here the
/// Debian 6.12 image taken out of the cache, as if built by hand), run as
/// the cell `custom` through the same gate beside the Debian kernel named
/// with `--kernels`.
#[test]
fn a_finished_matrix_leaves_nothing_behind() {
    let img = host_kernel("trixie");
    // One slot: the other cell's QEMU lives a second (its deadline).
    let _g = guests(1, 60);
    let image = img.vmlinuz.to_string_lossy().into_owned();
    let modules = img.modules.to_string_lossy().into_owned();
    let (mut child, report, tmp) = two_cell_matrix(
        &["--kernel-image", &image, "--kernel-modules", &modules],
        &["--cell-timeout", "bookworm/x86_64=1"],
    );
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
    assert_eq!(all.len(), 2, "{json:#}");
    let cell = |alias: &str| {
        all.iter()
            .find(|c| c["alias"] == alias)
            .unwrap_or_else(|| panic!("no {alias} cell: {json:#}"))
    };
    let (bookworm, custom) = (cell("bookworm"), cell("custom"));
    assert_eq!(bookworm["status"], "timeout", "{bookworm:#}");
    assert!(
        bookworm["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not boot within its 1s deadline")),
        "{bookworm:#}"
    );
    assert_eq!(custom["status"], "pass", "{custom:#}\n{story}");
    assert_eq!(custom["release"], img.release.as_str(), "{custom:#}");
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
