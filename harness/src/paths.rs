//! Where things are: the checkout the harness runs from, and its cache.

use std::path::{Path, PathBuf};

/// The workspace root (the harness always runs from a checkout).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The harness's cache directory (`$XDG_CACHE_HOME/unlink-harness`).
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("UNLINK_HARNESS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("unlink-harness")
}
