//! `harness clean`: the cache pruned to what the lock file names, or
//! removed; and the automatic prune after a run.

use std::process::ExitCode;

use anyhow::{Context, Result};

use harness::kernels::lock::LockFile;

use super::note;

pub fn run(all: bool) -> Result<ExitCode> {
    use harness::cache;
    let dir = harness::paths::cache_root();
    let before = cache::size_of(&dir);
    if all {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!("removed {} ({})", dir.display(), cache::human(before));
        return Ok(ExitCode::SUCCESS);
    }
    let lock = LockFile::load(&LockFile::default_path())?;
    let removed = cache::prune(&dir, &lock.kept())?;
    for (path, bytes) in &removed {
        println!("removed {} ({})", path.display(), cache::human(*bytes));
    }
    let freed: u64 = removed.iter().map(|(_, b)| b).sum();
    println!(
        "cache {}: {} before, {} freed, {} now; kernels in {} kept",
        dir.display(),
        cache::human(before),
        cache::human(freed),
        cache::human(cache::size_of(&dir)),
        LockFile::default_path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Keeps the cache within its limit: what the lock does not name goes.
pub fn keep_cache_in_bounds() -> Result<()> {
    let cache = harness::paths::cache_root();
    let size = harness::cache::size_of(&cache);
    if size > harness::cache::max_bytes() {
        let lock = LockFile::load(&LockFile::default_path())?;
        let freed: u64 = harness::cache::prune(&cache, &lock.kept())?
            .iter()
            .map(|(_, b)| b)
            .sum();
        note(&format!(
            "cache {} over its limit ({}): pruned {} of kernels the lock file does not name",
            harness::cache::human(size),
            harness::cache::human(harness::cache::max_bytes()),
            harness::cache::human(freed)
        ));
    }
    Ok(())
}
