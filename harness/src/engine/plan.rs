//! What to run: the cells, each with its kernel and deadlines, the guest
//! side of each arch, and the job every guest does.

use std::path::PathBuf;
use std::time::Duration;

use crate::images::image::GuestBinaries;
use crate::kernels::kernel::KernelSource;
use crate::kernels::manifest::KnownSplat;
use crate::model::{Accel, Arch, CellId};
use crate::overhead;
use crate::vm::boot::Deadlines;

/// One cell to run.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub id: CellId,
    pub suite: String,
    pub kernel: KernelSource,
    pub deadlines: Deadlines,
    /// The splats the manifest declares for this kernel on this arch
    /// (none for a custom kernel): the `console` verdict's expectations.
    pub known_splats: Vec<KnownSplat>,
}

/// The guest side of one arch: binaries, and a root unless the host's is used.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub arch: Arch,
    pub binaries: GuestBinaries,
    /// The recipe of the guest root (None: the host's root, read-only).
    pub root_recipe: Option<PathBuf>,
}

/// What each cell's guest does.
#[derive(Debug, Clone)]
pub enum Job {
    /// The scenario gate (`harness matrix`).
    Gate,
    /// The overhead meter (`harness overhead`).
    Overhead(overhead::Settings),
    /// A user's command in the guest (`harness run`).
    Exec(Vec<String>),
}

/// Deadlines the command line sets, in seconds: every boot's, every run's
/// (`--boot-timeout`, `--run-timeout`), and both of one cell's
/// (`--cell-timeout`, which wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadlineOverrides {
    pub boot: Option<u64>,
    pub run: Option<u64>,
    pub cells: Vec<(CellId, u64)>,
}

impl Job {
    /// A cell's deadlines: this job's for the accel and arch (an overhead
    /// boot runs every mode's rounds), then the overrides.
    pub fn deadlines(&self, accel: Accel, id: &CellId, o: &DeadlineOverrides) -> Deadlines {
        let mut d = match self {
            Job::Gate | Job::Exec(_) => Deadlines::default_for(accel, id.arch),
            Job::Overhead(s) => Deadlines::for_overhead(accel, id.arch, s.steps()),
        };
        if let Some(s) = o.boot {
            d.boot = Duration::from_secs(s);
        }
        if let Some(s) = o.run {
            d.run = Duration::from_secs(s);
        }
        if let Some((_, s)) = o.cells.iter().find(|(c, _)| c == id) {
            d = Deadlines::both(*s);
        }
        d
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub job: Job,
    pub cells: Vec<CellSpec>,
    pub accel: Accel,
    pub report_dir: PathBuf,
    pub cache: PathBuf,
    pub vng: PathBuf,
    pub jobs: usize,
    /// The dir holding `virtiofsd` (None: every guest uses 9p).
    pub virtiofsd_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_in_order_and_a_cells_own_wins() {
        let sid = CellId {
            alias: "sid".into(),
            arch: Arch::host(),
        };
        let other = CellId {
            alias: "bookworm".into(),
            ..sid.clone()
        };
        let base = Job::Gate.deadlines(Accel::Tcg, &sid, &DeadlineOverrides::default());
        assert_eq!(base, Deadlines::default_for(Accel::Tcg, sid.arch));
        let o = DeadlineOverrides {
            boot: Some(7),
            run: None,
            cells: vec![(sid.clone(), 600)],
        };
        assert_eq!(
            Job::Gate.deadlines(Accel::Tcg, &sid, &o),
            Deadlines::both(600)
        );
        let d = Job::Gate.deadlines(Accel::Tcg, &other, &o);
        assert_eq!((d.boot, d.run), (Duration::from_secs(7), base.run));
    }
}
