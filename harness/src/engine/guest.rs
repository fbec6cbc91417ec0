//! One boot of a cell's guest: its results directory prepared, vng run
//! under the cell's deadlines (once more over 9p when a virtio-fs root
//! does not mount), and what the boot showed, whatever its end.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};

use super::failure::CellFailure;
use super::{CellSpec, GuestImage, Job, MatrixEvent, Plan, Stage};
use crate::images::image::GuestBinaries;
use crate::images::rootfs::GuestRoot;
use crate::kernels::kernel::KernelImage;
use crate::model::{Accel, Status};
use crate::vm::boot::{self, BootEnd, BootSpec, Deadlines};

/// Where the guest sees its results directory (a tmpfs in every guest).
pub use unlink_schema::protocol::GUEST_OUT;

/// What the boot stages of one cell work with.
pub(super) struct CellRun<'a> {
    pub plan: &'a Plan,
    pub cell: &'a CellSpec,
    pub img: &'a KernelImage,
    pub image: &'a GuestImage,
    pub root: Option<&'a GuestRoot>,
    /// The cell's directory in the report.
    pub dir: &'a Path,
    pub tx: &'a Sender<MatrixEvent>,
}

/// Copies the guest binaries into the results dir and returns their guest
/// paths (with a root of its own, host paths are not visible in the guest).
fn stage_binaries(bins: &GuestBinaries, out: &Path) -> Result<GuestBinaries> {
    let dir = out.join("bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let copy = |from: &Path| -> Result<PathBuf> {
        let name = from.file_name().context("binary without a name")?;
        let to = dir.join(name);
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(Path::new(GUEST_OUT).join("bin").join(name))
    };
    Ok(GuestBinaries {
        tracer: copy(&bins.tracer)?,
        agent: copy(&bins.agent)?,
        bench: bins.bench.as_deref().map(copy).transpose()?,
    })
}

/// A clean results directory with the guest binaries staged in it.
pub(super) fn prepare_out(out: &Path, bins: &GuestBinaries) -> Result<GuestBinaries> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    stage_binaries(bins, out)
}

/// One boot of a cell's guest: what runs, where its results and console go.
pub(super) struct GuestBoot {
    /// KVM or TCG for this boot (icount needs TCG).
    pub accel: Accel,
    pub command: String,
    pub qemu_opts: Option<String>,
    pub cpus: u32,
    pub out: PathBuf,
    pub console: PathBuf,
    pub deadlines: Deadlines,
}

/// What one boot showed, whatever its end: seconds to the banner, to the
/// agent's start, and of the agent's run; the console (of the boot whose
/// results are used, when a cell boots again over 9p); and how the root
/// and results reached the guest (None: QEMU never ran).
#[derive(Debug, Clone, Default)]
pub(super) struct BootFacts {
    pub banner_s: Option<f64>,
    pub boot_s: Option<f64>,
    pub run_s: Option<f64>,
    pub console_lines: usize,
    pub splats: Vec<boot::Splat>,
    pub transport: Option<String>,
}

/// A boot's outcome: what it showed, and Ok when the agent finished; else
/// a Timeout (a deadline passed), a Fail (the kernel failed) or an Error
/// (QEMU did not run, or the agent did not finish: `done` missing).
pub(super) struct Boot {
    pub facts: BootFacts,
    pub end: Result<(), CellFailure>,
}

impl Boot {
    fn not_run(e: anyhow::Error) -> Boot {
        Boot {
            facts: BootFacts::default(),
            end: Err(CellFailure::error(e)),
        }
    }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Boots the guest once (twice when its virtio-fs root does not mount)
/// and waits for its agent.
pub(super) fn boot_guest(c: &CellRun, gb: &GuestBoot) -> Boot {
    let CellRun {
        plan,
        cell,
        img,
        root,
        tx,
        ..
    } = *c;
    let id = &cell.id;
    let spec = BootSpec {
        vng: plan.vng.clone(),
        arch: id.arch,
        accel: gb.accel,
        vmlinuz: img.vmlinuz.clone(),
        cpus: gb.cpus,
        memory_mb: 1024,
        rwdirs: vec![boot::Share {
            guest: GUEST_OUT.into(),
            host: gb.out.clone(),
        }],
        qemu_opts: gb.qemu_opts.clone(),
        root: root.map(|g| g.dir.clone()),
        busybox: root.and_then(|g| g.busybox.clone()),
        transport: match &plan.virtiofsd_dir {
            Some(dir) if !no_virtiofs_marker(img).is_some_and(|m| m.exists()) => {
                boot::Transport::VirtioFs(dir.clone())
            }
            _ => boot::Transport::NineP,
        },
        command: gb.command.clone(),
    };
    let _ = tx.send(MatrixEvent::Stage {
        cell: id.clone(),
        stage: Stage::Booting,
    });
    let console = &gb.console;
    let on_guest = |line: &str| {
        let said = line.trim_start_matches(unlink_schema::protocol::CONSOLE_MARKER);
        let ev = if line.starts_with(boot::GUEST_START_MARKER) {
            MatrixEvent::Stage {
                cell: id.clone(),
                stage: match plan.job {
                    Job::Gate => Stage::Tracing,
                    Job::Overhead(_) => Stage::Measuring,
                    Job::Exec(_) => Stage::Running,
                },
            }
        } else if let (Job::Exec(_), Some(output)) = (
            &plan.job,
            said.strip_prefix(unlink_schema::protocol::EXEC_OUTPUT),
        ) {
            MatrixEvent::Output {
                cell: id.clone(),
                line: output.to_string(),
            }
        } else {
            MatrixEvent::Note {
                cell: id.clone(),
                text: format!(
                    "{}: {said}",
                    match plan.job {
                        Job::Gate => "tracing",
                        Job::Overhead(_) => "measuring",
                        Job::Exec(_) => "running",
                    },
                ),
            }
        };
        let _ = tx.send(ev);
    };
    let mut boot = match boot::run(&spec, console, gb.deadlines, &on_guest) {
        Ok(b) => b,
        Err(e) => return Boot::not_run(e),
    };
    // Some kernels cannot mount a virtio-fs root (arm64 5.10 here): the
    // share is plumbing, not what is tested, so boot once more over 9p and
    // say so.
    let transport = if matches!(&boot.end, BootEnd::Failure(f) if f.kind == boot::SHARE_FAILURE)
        && matches!(spec.transport, boot::Transport::VirtioFs(_))
    {
        let _ = tx.send(MatrixEvent::Note {
            cell: id.clone(),
            text: "virtio-fs root did not mount: booting again over 9p".into(),
        });
        let _ = std::fs::rename(console, console.with_extension("virtiofs.log"));
        let nine_p = BootSpec {
            transport: boot::Transport::NineP,
            ..spec.clone()
        };
        boot = match boot::run(&nine_p, console, gb.deadlines, &on_guest) {
            Ok(b) => b,
            Err(e) => return Boot::not_run(e),
        };
        if let Some(marker) = no_virtiofs_marker(img) {
            let _ = std::fs::write(marker, "virtio-fs root did not mount; 9p is used\n");
        }
        "9p (virtio-fs root did not mount)".to_string()
    } else {
        match spec.transport {
            boot::Transport::NineP if plan.virtiofsd_dir.is_some() => {
                "9p (virtio-fs root did not mount before)".into()
            }
            boot::Transport::NineP => "9p".into(),
            boot::Transport::VirtioFs(_) => "virtio-fs".into(),
        }
    };
    let facts = BootFacts {
        banner_s: boot.first_kernel_line_s.map(round2),
        boot_s: boot.guest_start_s.map(round2),
        run_s: boot
            .guest_start_s
            .map(|s| round2(boot.wall.as_secs_f64() - s)),
        console_lines: boot.console_lines,
        splats: std::mem::take(&mut boot.splats),
        transport: Some(transport),
    };
    let end = match &boot.end {
        BootEnd::Timeout(phase) => {
            let (what, limit) = match phase {
                boot::Phase::Boot => ("the guest did not boot", gb.deadlines.boot),
                boot::Phase::Run => ("the guest run did not finish", gb.deadlines.run),
            };
            Err(CellFailure::new(
                Status::Timeout,
                anyhow::anyhow!(
                    "{what} within its {}s deadline; QEMU killed; console log: {}",
                    limit.as_secs(),
                    console.display()
                ),
            ))
        }
        BootEnd::Interrupted => Err(CellFailure::new(
            Status::Interrupted,
            anyhow::anyhow!("the run was cancelled; QEMU killed"),
        )),
        BootEnd::Failure(f) if f.kind == boot::QEMU_ABORT => {
            Err(CellFailure::error(anyhow::anyhow!(
                "QEMU itself aborted (an emulator bug, not the kernel's or the tracer's): {}",
                f.line
            )))
        }
        BootEnd::Failure(f) => Err(CellFailure::new(
            Status::Fail,
            anyhow::anyhow!("{} in the guest: {}", f.kind, f.line),
        )),
        BootEnd::Exited(_) if !gb.out.join(unlink_schema::protocol::files::DONE).exists() => {
            Err(CellFailure::error(anyhow::anyhow!(
                "the guest agent did not finish (no {}); console log: {}",
                gb.out.join(unlink_schema::protocol::files::DONE).display(),
                console.display()
            )))
        }
        BootEnd::Exited(_) => Ok(()),
    };
    Boot { facts, end }
}

/// Beside a cached Debian kernel: this kernel cannot mount a virtio-fs
/// root, go straight to 9p (user kernels are not written beside).
fn no_virtiofs_marker(img: &KernelImage) -> Option<PathBuf> {
    if img.debs.is_empty() {
        return None;
    }
    img.vmlinuz.parent().map(|d| d.join("harness-no-virtiofs"))
}
