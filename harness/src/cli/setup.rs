//! `harness setup`: provisions this host.

use anyhow::Result;

use harness::host::setup;
use harness::model::Arch;

use super::note;

/// Installs what the harness needs (root), or says what to run.
pub fn run() -> Result<()> {
    let cache = harness::paths::cache_root();
    setup::ensure(&cache, &Arch::ALL, &note)?;
    note(&format!("host ready (cache {})", cache.display()));
    Ok(())
}
