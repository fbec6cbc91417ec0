//! The options every booting command shares (`matrix`, `overhead`,
//! `mutants`): a leaf of the binary's modules, so the commands and the
//! engine driver (`run.rs`) all use it and none of them uses another.

use std::path::PathBuf;

use harness::model::Accel;

use super::selection::Selection;

/// What selects, boots and reports cells: shared by `matrix`, `overhead`
/// and `mutants` (an option only one of them honours lives in its own
/// arguments, so the others refuse it).
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub select: Selection,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: Accel,
    /// Probe KVM afresh instead of using the decision remembered for this
    /// host (QEMU binary, host kernel and /dev/kvm unchanged).
    #[arg(long)]
    pub reprobe_kvm: bool,
    /// Report directory [default: target/matrix-report, or target/overhead-report for `overhead`].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Cells run at once, 1 to 64 [default: one per core (a matrix with KVM:
    /// 1.5), bounded by memory].
    #[arg(long, value_parser = super::selection::in_range::<usize>(1, 64))]
    pub jobs: Option<usize>,
    /// Seconds a guest may take to boot to the agent, 1 to 86400 [default:
    /// 180 TCG, 60 KVM; x2 for a foreign arch, x3 counting instructions].
    #[arg(long, value_parser = super::selection::in_range::<u64>(1, 86_400))]
    pub boot_timeout: Option<u64>,
    /// Seconds the agent may run once booted, 1 to 86400 [default: 420 TCG,
    /// 180 KVM, an overhead run 60 s (KVM 10 s) more per mode and round;
    /// x2 for a foreign arch, x3 counting instructions].
    #[arg(long, value_parser = super::selection::in_range::<u64>(1, 86_400))]
    pub run_timeout: Option<u64>,
    /// One cell's deadlines (boot and run), e.g. `sid/arm64=600`; repeatable.
    #[arg(long, value_name = "CELL=SECS")]
    pub cell_timeout: Vec<String>,
    /// How roots and results reach the guests: virtio-fs (falls back to 9p
    /// per cell when a kernel cannot mount it) or 9p only (no `cloud` kernels).
    #[arg(long, value_enum, default_value = "virtiofs")]
    pub transport: TransportArg,
    /// Re-resolve the selected kernels before running (rolling suites move).
    #[arg(long)]
    pub relock: bool,
    /// Boot your own kernel: an image file (bzImage / Image) or a built
    /// source tree, as the cell `custom` (beside it only the kernels named
    /// with --kernels).
    #[arg(long, value_name = "PATH")]
    pub kernel_image: Option<PathBuf>,
    /// The modules directory of --kernel-image (`.../lib/modules/<release>`).
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    pub kernel_modules: Option<PathBuf>,
    /// Gate (overhead: measure) this unlink-tracer binary instead of
    /// building the checkout's (built for the one --arch given); the agent
    /// is still the checkout's.
    #[arg(long, value_name = "PATH")]
    pub tracer: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TransportArg {
    Virtiofs,
    #[value(name = "9p")]
    NineP,
}
