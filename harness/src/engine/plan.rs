//! What to run: the cells, each with its kernel and deadlines, the guest
//! side of each arch, and the job every guest does.

use std::path::PathBuf;

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
}

impl Job {
    /// A cell's deadlines for this job before any override (`--boot-timeout`,
    /// `--run-timeout`, `--cell-timeout`): an overhead boot runs every
    /// mode's rounds.
    pub fn deadlines(&self, accel: Accel, arch: Arch) -> Deadlines {
        match self {
            Job::Gate => Deadlines::default_for(accel, arch),
            Job::Overhead(s) => Deadlines::for_overhead(accel, arch, s.steps()),
        }
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
