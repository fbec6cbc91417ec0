//! `harness lock`: resolve the selection to exact packages in
//! `vm-images/kernels.lock`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use harness::kernels::kernel;
use harness::kernels::lock::LockFile;
use harness::kernels::manifest::{KernelEntry, Manifest};
use harness::model::Arch;

use super::note;
use super::selection::{select, usage_error, Selection};

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub select: Selection,
    /// Re-resolve even what is locked already.
    #[arg(long)]
    pub update: bool,
}

/// Locks the selection (resolving what is not locked, or all of it with
/// `update`) and saves the lock file when it changed.
pub fn lock_selection(
    cache: &Path,
    kernels: &[KernelEntry],
    arches: &[Arch],
    sel: &Selection,
    update: bool,
) -> Result<Vec<kernel::LockOutcome>> {
    let path = LockFile::default_path();
    let mut lock = LockFile::load(&path)?;
    let before = lock.clone();
    let outcomes = kernel::lock_cells(
        cache,
        &mut lock,
        kernels,
        arches,
        sel.flavour.as_deref(),
        update,
        &note,
    )?;
    if lock != before {
        lock.save(&path)?;
        note(&format!("lock file updated: {}", path.display()));
    }
    Ok(outcomes)
}

pub fn run(args: LockArgs) -> Result<ExitCode> {
    let manifest = Manifest::load(&Manifest::default_path())?;
    let (kernels, arches) = match select(&manifest, &args.select) {
        Ok(x) => x,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let cache = harness::paths::cache_root();
    let path = LockFile::default_path();
    let outcomes = lock_selection(&cache, &kernels, &arches, &args.select, args.update)?;
    for o in &outcomes {
        let e = o.entry();
        let main = e
            .main_package()
            .map(|p| format!("{} {}", p.package, p.version))
            .unwrap_or_default();
        let what = match o {
            kernel::LockOutcome::Kept(_) => "locked".to_string(),
            kernel::LockOutcome::Resolved { previous: None, .. } => "resolved".to_string(),
            kernel::LockOutcome::Resolved {
                previous: Some(p), ..
            } if p == e => "unchanged".to_string(),
            kernel::LockOutcome::Resolved {
                previous: Some(p), ..
            } => format!(
                "updated from {}",
                p.main_package().map(|m| m.version.as_str()).unwrap_or("?")
            ),
        };
        println!("{}/{} ({}): {main} — {what}", e.alias, e.arch, e.flavour);
    }
    println!("lock file: {}", path.display());
    Ok(ExitCode::SUCCESS)
}
