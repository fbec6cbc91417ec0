//! The cache: a damaged entry repaired, a full filesystem named in one
//! line and recovered from.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::*;

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
/// half-written kernel entry is left; with room the next run recovers by
/// itself (the kernel fetched, its guest booted). (The cache's tools,
/// venv, roots and apt indexes are the real cache's, linked in: only the
/// kernel goes to the small filesystem.)
#[test]
fn a_full_cache_fails_in_one_line_and_the_next_run_recovers() {
    let _g = guests(1, 50);
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
    // With room, the same cell's kernel is fetched and boots: the tracer
    // in its guest finds its target (the gate itself runs elsewhere).
    fs.resize("2g");
    let report = tempfile::tempdir().expect("temp dir");
    let out = harness()
        .args(["run", "bookworm/x86_64", "--accel", "tcg", "--report"])
        .arg(report.path())
        .args(["--", "unlink-tracer", "--show-target"])
        .env("UNLINK_HARNESS_CACHE", dir.path())
        .output()
        .expect("running harness run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"do_unlinkat\""), "{stdout}");
}
