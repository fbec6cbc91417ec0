//! The cache directory's size and its pruning: extracted kernels and
//! `.deb`s that no lock entry names are removed; what the lock file names
//! is always kept (CI restores it keyed on the lock file).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub mod entry;

/// What to do about a failed fetch or root build, from its error text
/// (pure): a full cache filesystem, an unreachable mirror, a download cut
/// short. None when the error is none of those.
pub fn fault_hint(error: &str, cache: &Path) -> Option<String> {
    let e = error.to_ascii_lowercase();
    if e.contains("no space left on device") || e.contains("disk quota exceeded") {
        return Some(format!(
            "the cache filesystem is full ({}): free space there (`cargo harness clean`) or point UNLINK_HARNESS_CACHE at a bigger one; the partial entry was removed and the next run fetches it again",
            cache.display()
        ));
    }
    if [
        "temporary failure resolving",
        "could not resolve",
        "could not connect",
        "connection timed out",
        "network is unreachable",
        "connection refused",
    ]
    .iter()
    .any(|p| e.contains(p))
    {
        return Some(
            "the Debian mirror named in this machine's apt sources cannot be reached: check the network (or proxy) and run again".into(),
        );
    }
    if [
        "connection reset",
        "connection failed",
        "hash sum mismatch",
        "size mismatch",
        "unexpected end of file",
        "short read",
    ]
    .iter()
    .any(|p| e.contains(p))
    {
        return Some("a download was cut short: run again (the partial file is not kept)".into());
    }
    None
}

/// The cache size above which `harness matrix` prunes what the lock file
/// does not name: `$UNLINK_HARNESS_CACHE_MAX_GIB`, default 20 GiB (the full
/// matrix needs about 3.5 GiB).
pub fn max_bytes() -> u64 {
    let gib = std::env::var("UNLINK_HARNESS_CACHE_MAX_GIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20);
    gib << 30
}

/// Bytes under `path` (symlinks not followed; unreadable entries skipped).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// Size per top-level cache entry (`kernels`, `debs`, …), largest first.
pub fn usage(cache: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        size_of(&e.path()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// `1536 * 1024 * 1024` → `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The cache names a lock file keeps (`LockFile::kept`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// Extracted-kernel dirs (`<package>_<version>_<arch>`).
    pub kernels: Vec<String>,
    /// `.deb` file names.
    pub debs: Vec<String>,
}

/// What pruning would remove (pure over the listing): kernel dirs (and
/// their `.lock` files) and kernel `.deb`s the lock does not name. Other
/// `.deb`s (guest-root packages) are kept.
pub fn prune_plan(kept: &Kept, kernel_entries: &[String], deb_entries: &[String]) -> Vec<String> {
    let Kept { kernels, debs } = kept;
    let mut out = Vec::new();
    for k in kernel_entries {
        let base = k.strip_suffix(".lock").unwrap_or(k);
        if !kernels.iter().any(|keep| keep == base) {
            out.push(format!("kernels/{k}"));
        }
    }
    for d in deb_entries {
        let kernel_deb = [
            "linux-image-",
            "linux-binary-",
            "linux-modules-",
            "linux-base-",
        ]
        .iter()
        .any(|p| d.starts_with(p));
        if kernel_deb && !debs.contains(d) {
            out.push(format!("debs/{d}"));
        }
    }
    out
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes what the lock does not name; returns (path, bytes) removed.
pub fn prune(cache: &Path, kept: &Kept) -> Result<Vec<(PathBuf, u64)>> {
    let plan = prune_plan(
        kept,
        &names(&cache.join("kernels")),
        &names(&cache.join("debs")),
    );
    let mut removed = Vec::new();
    for rel in plan {
        let path = cache.join(&rel);
        let bytes = size_of(&path);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
        removed.push((path, bytes));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_only_what_the_lock_does_not_name() {
        let kept = Kept {
            kernels: vec!["linux-image-7.2-amd64_7.2-1_amd64".into()],
            debs: vec![
                "linux-image-7.2-amd64_7.2-1_amd64.deb".into(),
                "linux-binary-7.2-amd64_7.2-1_amd64.deb".into(),
            ],
        };
        let kernels = [
            "linux-image-7.2-amd64_7.2-1_amd64".to_string(),
            "linux-image-7.2-amd64_7.2-1_amd64.lock".to_string(),
            "linux-image-7.1-amd64_7.1-1_amd64".to_string(),
            "linux-image-7.1-amd64_7.1-1_amd64.lock".to_string(),
        ];
        let debs = [
            "linux-image-7.2-amd64_7.2-1_amd64.deb".to_string(),
            "linux-binary-7.2-amd64_7.2-1_amd64.deb".to_string(),
            "linux-binary-7.1-amd64_7.1-1_amd64.deb".to_string(),
            "libc6_2.36-9_arm64.deb".to_string(),
        ];
        assert_eq!(
            prune_plan(&kept, &kernels, &debs),
            [
                "kernels/linux-image-7.1-amd64_7.1-1_amd64",
                "kernels/linux-image-7.1-amd64_7.1-1_amd64.lock",
                "debs/linux-binary-7.1-amd64_7.1-1_amd64.deb",
            ]
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        let cases = [(512, "512 B"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB")];
        for (b, want) in cases {
            assert_eq!(human(b), want);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), [0u8; 50]).unwrap();
        assert_eq!(size_of(dir.path()), 150);
        assert_eq!(usage(dir.path())[0], ("a".to_string(), 100));
    }

    #[test]
    fn fetch_faults_say_what_to_do() {
        let cache = Path::new("/c");
        let cases = [
            ("dpkg-deb -x a.deb failed (exit status: 2): ... cannot copy extracted data for './x': No space left on device", Some("the cache filesystem is full (/c)")),
            ("apt-get download linux-image failed (exit status: 100): E: Failed to fetch http://m/x  Temporary failure resolving 'm'", Some("the Debian mirror")),
            ("apt-get download x failed: E: Failed to fetch http://m/x  Connection reset by peer", Some("a download was cut short")),
            ("no vmlinuz in /c/kernels/x/root", None),
        ];
        for (error, want) in cases {
            let got = fault_hint(error, cache);
            match want {
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(w)),
                    "{error}: {got:?}"
                ),
                None => assert_eq!(got, None, "{error}"),
            }
        }
    }
}
