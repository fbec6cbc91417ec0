//! `harness doctor`: what this host has and lacks for the matrix, each
//! finding with the exact fix. KVM is judged by trying it (a probe boot),
//! never by the presence of /dev/kvm.

use std::path::Path;
use std::process::Command;

use crate::cache;
use crate::host::{accel, setup};
use crate::kernels::kernel::KernelSource;
use crate::kernels::{apt, lock};
use crate::model::{Accel, Arch};

/// How a finding reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Needed and absent: the fix says how to get it.
    Missing,
    /// Worth knowing, not blocking.
    Note,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub level: Level,
    pub found: String,
    pub fix: Option<String>,
}

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|_| out.status.success())
}

/// A tool's `--version`: its first line, or missing with the fix.
fn tool(what: &str, program: impl AsRef<Path>, fix: &str) -> Finding {
    let line = crate::process::commands::program(program, ["--version"])
        .ok()
        .and_then(|mut cmd| first_line(&mut cmd));
    match line {
        Some(v) => Finding {
            what: what.into(),
            level: Level::Ok,
            found: v,
            fix: None,
        },
        None => Finding {
            what: what.into(),
            level: Level::Missing,
            found: "not found".into(),
            fix: Some(fix.into()),
        },
    }
}

/// Every check; `progress` hears about the slow ones (the KVM probe).
pub fn run(cache_dir: &Path, progress: &dyn Fn(&str)) -> Vec<Finding> {
    let backports =
        "cargo harness setup (adds bookworm-backports from your apt sources' mirror and installs it)";
    let mut out = vec![
        tool(
            "QEMU x86_64",
            "qemu-system-x86_64",
            &format!("apt-get install -t bookworm-backports qemu-system-x86; or {backports}"),
        ),
        tool(
            "QEMU arm64",
            "qemu-system-aarch64",
            &format!("apt-get install -t bookworm-backports qemu-system-arm; or {backports}"),
        ),
        tool(
            "virtme-ng",
            setup::vng_path(cache_dir),
            &format!(
                "python3 -m venv {0} && {0}/bin/pip install {1}",
                setup::venv_dir(cache_dir).display(),
                setup::VIRTME_NG
            ),
        ),
        tool(
            "virtiofsd",
            setup::virtiofsd_dir(cache_dir).join("virtiofsd"),
            &format!(
                "cargo install --locked --root {} {}",
                setup::tools_dir(cache_dir).display(),
                setup::VIRTIOFSD
            ),
        ),
        tool(
            "clang (BPF compiler)",
            "clang",
            "apt-get install clang llvm",
        ),
        tool(
            "arm64 cross compiler",
            "aarch64-linux-gnu-gcc",
            "apt-get install gcc-aarch64-linux-gnu",
        ),
    ];
    for pkg in setup::APT_PACKAGES.iter().chain(
        setup::cross_packages(Arch::Arm64)
            .map(|(_, p)| p)
            .unwrap_or(&[]),
    ) {
        if !setup::installed(pkg) {
            out.push(Finding {
                what: format!("package {pkg}"),
                level: Level::Missing,
                found: "not installed".into(),
                fix: Some(if pkg.ends_with(":arm64") {
                    format!(
                        "dpkg --add-architecture arm64 && apt-get update && apt-get install {pkg}"
                    )
                } else {
                    format!("apt-get install {pkg}")
                }),
            });
        }
    }
    let target = Arch::Arm64.rust_target();
    let has_target = setup::rust_target_installed(target);
    out.push(Finding {
        what: "rust target for arm64".into(),
        level: if has_target {
            Level::Ok
        } else {
            Level::Missing
        },
        found: if has_target {
            target.into()
        } else {
            "not installed".into()
        },
        fix: (!has_target).then(|| format!("rustup target add {target}")),
    });
    out.push(match apt::system_mirror() {
        Ok(_) => Finding {
            what: "Debian mirror".into(),
            level: Level::Ok,
            found: format!("found in {}", apt::SYSTEM_SOURCES.join(", ")),
            fix: None,
        },
        Err(e) => Finding {
            what: "Debian mirror".into(),
            level: Level::Missing,
            found: format!("{e:#}"),
            fix: Some("add the Debian archive to /etc/apt/sources.list.d/".into()),
        },
    });
    let virtiofsd = setup::virtiofsd_dir(cache_dir);
    if virtiofsd.join("virtiofsd").is_file() {
        out.push(match super::virtiofs::check(&virtiofsd) {
            Ok(()) => Finding {
                what: "virtio-fs".into(),
                level: Level::Ok,
                found: "virtiofsd serves a directory here".into(),
                fix: None,
            },
            Err(why) => Finding {
                what: "virtio-fs".into(),
                level: Level::Note,
                found: format!("virtiofsd cannot run here ({why}); guests use 9p"),
                fix: None,
            },
        });
    }
    out.push(kvm(cache_dir, progress));
    let usage = cache::usage(cache_dir);
    let total: u64 = usage.iter().map(|(_, b)| b).sum();
    out.push(Finding {
        what: "cache".into(),
        level: Level::Note,
        found: format!(
            "{} in {}{}",
            cache::human(total),
            cache_dir.display(),
            if usage.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    usage
                        .iter()
                        .map(|(n, b)| format!("{n} {}", cache::human(*b)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
        fix: Some("cargo harness clean (removes kernels the lock file does not name)".into()),
    });
    out
}

/// KVM, tried: a probe boot of the host-arch kernel the lock names first.
fn kvm(cache_dir: &Path, progress: &dyn Fn(&str)) -> Finding {
    let what = "KVM".to_string();
    if !Path::new("/dev/kvm").exists() {
        return Finding {
            what,
            level: Level::Note,
            found: "no /dev/kvm: guests run under TCG (software emulation, ~10x slower)".into(),
            fix: None,
        };
    }
    let host = Arch::host();
    let lock = lock::LockFile::load(&lock::LockFile::default_path()).unwrap_or_default();
    let generic: Vec<KernelSource> = lock
        .entries
        .iter()
        .filter(|e| e.flavour == lock::GENERIC)
        .map(|e| KernelSource::Locked(e.clone()))
        .collect();
    let Some(kernel) = accel::probe_kernel(&generic).map(|i| &generic[i]) else {
        return Finding {
            what,
            level: Level::Note,
            found: "/dev/kvm present; not tried (no locked kernel to boot)".into(),
            fix: Some("cargo harness lock".into()),
        };
    };
    progress(&format!("trying KVM with {} {}", kernel.alias(), host));
    let tried = tempfile::tempdir()
        .map_err(anyhow::Error::from)
        .and_then(|scratch| {
            accel::probe(
                Accel::Auto,
                kernel,
                cache_dir,
                &setup::vng_path(cache_dir),
                scratch.path(),
                progress,
            )
        });
    let choice = match tried {
        Ok(choice) => {
            // Doctor decides afresh: later runs on this host use its answer.
            let key = accel::host_key(accel::qemu_binary(host).as_deref());
            let _ = accel::remember(cache_dir, &key, &choice);
            choice
        }
        Err(e) => {
            return Finding {
                what,
                level: Level::Note,
                found: format!("/dev/kvm present; not tried: {e:#}"),
                fix: None,
            }
        }
    };
    match choice.accel {
        Accel::Kvm => Finding {
            what,
            level: Level::Ok,
            found: format!("works: {}", choice.reason),
            fix: None,
        },
        _ => Finding {
            what,
            level: Level::Note,
            found: format!("present but unusable ({}): TCG will be used", choice.reason),
            fix: Some(
                "nothing to do here; on a host with working KVM the matrix uses it by itself"
                    .into(),
            ),
        },
    }
}
