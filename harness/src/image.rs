//! Stage 2, guest image: what the guest runs besides the kernel. x86_64
//! guests use the host's root (shared read-only by virtme-ng), so the
//! image is the tracer and the guest agent, built in release mode for the
//! guest's arch into their own target directory.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::manifest::{repo_root, Arch};

/// The guest-side binaries for one arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestBinaries {
    pub tracer: PathBuf,
    pub agent: PathBuf,
}

/// `cargo build` arguments for the guest binaries (pure, tested).
pub fn cargo_args(arch: Arch, target_dir: &std::path::Path) -> Vec<String> {
    vec![
        "build".into(),
        "--release".into(),
        "--locked".into(),
        "-p".into(),
        "unlink-tracer".into(),
        "-p".into(),
        "unlink-guest".into(),
        "--target".into(),
        arch.rust_target().into(),
        "--target-dir".into(),
        target_dir.display().to_string(),
    ]
}

/// Builds (incrementally) the tracer and agent for `arch`.
pub fn build(arch: Arch) -> Result<GuestBinaries> {
    if arch != crate::boot::host_arch() {
        bail!(
            "{arch} guests are not supported yet: only the host's arch ({}) is",
            crate::boot::host_arch()
        );
    }
    let root = repo_root();
    let target_dir = root.join("target").join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    crate::cmd::run_checked(
        Command::new(cargo)
            .current_dir(&root)
            .args(cargo_args(arch, &target_dir)),
        "building the guest binaries",
        15,
    )?;
    let dir = target_dir.join(arch.rust_target()).join("release");
    Ok(GuestBinaries {
        tracer: dir.join("unlink-tracer"),
        agent: dir.join("unlink-guest"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_command() {
        assert_eq!(
            cargo_args(Arch::X86_64, std::path::Path::new("/t")).join(" "),
            "build --release --locked -p unlink-tracer -p unlink-guest --target x86_64-unknown-linux-gnu --target-dir /t"
        );
    }
}
