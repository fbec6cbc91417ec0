//! Choosing KVM or TCG: KVM only when a short probe boot proves it works
//! (here /dev/kvm exists but QEMU cannot use it). One probe for the
//! matrix, the overhead meter and `harness doctor`: the same kernel pick,
//! the same boot.

use std::path::Path;

use anyhow::Result;

use crate::kernels::kernel::KernelSource;
use crate::model::{Accel, Arch};
use crate::vm::boot::{self, BootEnd, BootSpec};

/// Where the probe guest sees its results directory.
const PROBE_DIR: &str = "/run/kvm-probe";

/// Why the accel was chosen, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// The kernel a KVM probe boots: the first of `kernels` built for this
/// host's arch.
pub fn probe_kernel<'a>(
    kernels: impl IntoIterator<Item = &'a KernelSource>,
) -> Option<&'a KernelSource> {
    kernels.into_iter().find(|k| k.arch() == Arch::host())
}

/// Resolves `requested` with a probe boot of `kernel` (see [`choose`]),
/// fetched first when it is a locked one; Err when it cannot be had.
pub fn probe(
    requested: Accel,
    kernel: &KernelSource,
    cache: &Path,
    vng: &Path,
    scratch: &Path,
    progress: &dyn Fn(&str),
) -> Result<AccelChoice> {
    let img = kernel.image(cache, progress)?;
    Ok(choose(requested, kernel.arch(), vng, &img.vmlinuz, scratch))
}

/// Resolves `Auto` by booting `vmlinuz` once with KVM under a deadline.
pub fn choose(
    requested: Accel,
    arch: Arch,
    vng: &Path,
    vmlinuz: &Path,
    scratch: &Path,
) -> AccelChoice {
    match requested {
        Accel::Kvm => {
            return AccelChoice {
                accel: Accel::Kvm,
                reason: "requested".into(),
            }
        }
        Accel::Tcg => {
            return AccelChoice {
                accel: Accel::Tcg,
                reason: "requested".into(),
            }
        }
        Accel::Auto => {}
    }
    if arch != Arch::host() {
        return AccelChoice {
            accel: Accel::Tcg,
            reason: format!("{arch} guest on a {} host", Arch::host()),
        };
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return AccelChoice {
            accel: Accel::Tcg,
            reason: "/dev/kvm cannot be opened".into(),
        };
    }
    let out = scratch.join("kvm-probe");
    let _ = std::fs::remove_dir_all(&out);
    if std::fs::create_dir_all(&out).is_err() {
        return AccelChoice {
            accel: Accel::Tcg,
            reason: "no scratch dir for the KVM probe".into(),
        };
    }
    let spec = BootSpec {
        vng: vng.to_path_buf(),
        arch,
        accel: Accel::Kvm,
        vmlinuz: vmlinuz.to_path_buf(),
        cpus: 1,
        memory_mb: 512,
        rwdirs: vec![boot::Share {
            guest: PROBE_DIR.into(),
            host: out.clone(),
        }],
        qemu_opts: None,
        root: None,
        busybox: None,
        transport: boot::Transport::NineP,
        command: format!("echo ok > {PROBE_DIR}/ok"),
    };
    let res = boot::run(
        &spec,
        &scratch.join("kvm-probe.log"),
        boot::Deadlines::both(45),
        &|_| {},
    );
    match res {
        Ok(r) if out.join("ok").exists() => AccelChoice {
            accel: Accel::Kvm,
            reason: format!("KVM probe boot succeeded in {:.1}s", r.wall.as_secs_f64()),
        },
        Ok(r) => AccelChoice {
            accel: Accel::Tcg,
            reason: match r.end {
                BootEnd::Timeout(_) => "/dev/kvm is present but a KVM probe boot hung".into(),
                _ => "/dev/kvm is present but a KVM probe boot failed".into(),
            },
        },
        Err(e) => AccelChoice {
            accel: Accel::Tcg,
            reason: format!("KVM probe could not run: {e:#}"),
        },
    }
}
