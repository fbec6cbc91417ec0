//! Choosing KVM or TCG: KVM only when a short probe boot proves it works
//! (here /dev/kvm exists but QEMU cannot use it). One probe for the
//! matrix, the overhead meter and `harness doctor`: the same kernel pick,
//! the same boot.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::kernels::kernel::KernelSource;
use crate::model::{Accel, Arch};
use crate::vm::boot::{self, BootEnd, BootSpec};

/// Where the probe guest sees its results directory.
const PROBE_DIR: &str = "/run/kvm-probe";
/// Seconds a KVM probe boot may take. Under a working KVM it is done in
/// 2-5 s (a crowded CI runner included); a broken one hangs before the
/// kernel banner for as long as it is let. A slow success is only a TCG
/// run, so the deadline is short.
const PROBE_DEADLINE_S: u64 = 20;

/// Why the accel was chosen, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// The QEMU system emulator for `arch`, as found on PATH (vng runs that one).
pub fn qemu_binary(arch: Arch) -> Option<PathBuf> {
    let name = match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Arm64 => "qemu-system-aarch64",
    };
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What can change whether KVM works on this host, as one key: the QEMU
/// binary (path, size, mtime), the host kernel (`uname -r` and its build)
/// and `/dev/kvm` (device number, mode, owner). Any of them changing
/// means deciding again.
pub fn host_key(qemu: Option<&Path>) -> String {
    use std::os::unix::fs::MetadataExt;
    let file = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => format!(
            "{} size {} mtime {} rdev {:x} mode {:o} uid {}",
            p.display(),
            m.size(),
            m.mtime(),
            m.rdev(),
            m.mode(),
            m.uid()
        ),
        Err(_) => format!("{} absent", p.display()),
    };
    let kernel = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.release().to_string_lossy(),
                u.version().to_string_lossy()
            )
        })
        .unwrap_or_default();
    format!(
        "qemu: {}; kernel: {kernel}; kvm: {}",
        qemu.map(file).unwrap_or_else(|| "none".into()),
        file(Path::new("/dev/kvm"))
    )
}

/// A KVM decision kept for a host configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub key: String,
    pub accel: Accel,
    pub reason: String,
    /// Unix seconds of the probe.
    pub decided_at: u64,
}

/// Where the decision is kept.
pub fn remembered_path(cache: &Path) -> PathBuf {
    cache.join("kvm-decision.json")
}

/// The decision made before for this very host configuration, if any.
pub fn remembered(cache: &Path, key: &str) -> Option<Remembered> {
    let r: Remembered =
        serde_json::from_slice(&std::fs::read(remembered_path(cache)).ok()?).ok()?;
    (r.key == key).then_some(r)
}

/// Keeps `choice` for the host configuration `key` (a probe's result only).
pub fn remember(cache: &Path, key: &str, choice: &AccelChoice) -> Result<()> {
    let r = Remembered {
        key: key.to_string(),
        accel: choice.accel,
        reason: choice.reason.clone(),
        decided_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let path = remembered_path(cache);
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&r)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The kernel a KVM probe boots: the first of `kernels` built for this
/// host's arch (its index).
pub fn probe_kernel<'a>(kernels: impl IntoIterator<Item = &'a KernelSource>) -> Option<usize> {
    kernels.into_iter().position(|k| k.arch() == Arch::host())
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
        boot::Deadlines::both(PROBE_DEADLINE_S),
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
                BootEnd::Timeout(_) => {
                    format!("/dev/kvm is present but a KVM probe boot hung ({PROBE_DEADLINE_S} s)")
                }
                _ => "/dev/kvm is present but a KVM probe boot failed".into(),
            },
        },
        Err(e) => AccelChoice {
            accel: Accel::Tcg,
            reason: format!("KVM probe could not run: {e:#}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_kept_for_its_host_configuration_only() {
        let cache = tempfile::tempdir().expect("temp dir");
        let key = host_key(None);
        assert!(key.contains("qemu: none; kernel: "), "{key}");
        assert_eq!(remembered(cache.path(), &key), None);
        let choice = AccelChoice {
            accel: Accel::Tcg,
            reason: "/dev/kvm is present but a KVM probe boot hung".into(),
        };
        remember(cache.path(), &key, &choice).expect("remembered");
        let r = remembered(cache.path(), &key).expect("kept");
        assert_eq!(
            (r.accel, r.reason.as_str()),
            (Accel::Tcg, choice.reason.as_str())
        );
        // Another QEMU (or kernel, or /dev/kvm): decide again.
        let other = host_key(Some(Path::new("/nonexistent/qemu-system-x86_64")));
        assert_ne!(other, key);
        assert_eq!(remembered(cache.path(), &other), None);
    }
}
