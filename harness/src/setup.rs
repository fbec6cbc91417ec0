//! Host provisioning: the Debian packages, virtme-ng in a venv, and the
//! apt source they come from. `check` lists what is missing; `ensure`
//! installs it when running as root, or stops with the exact command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt;

/// Debian packages from the release itself.
pub const APT_PACKAGES: &[&str] = &[
    "clang",
    "llvm",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "kmod",
    "busybox-static",
    "python3-venv",
];
/// Packages taken from bookworm-backports (QEMU 10, matching the qemu-utils these machines have).
pub const BACKPORTS_PACKAGES: &[&str] = &["qemu-system-x86"];
pub const VIRTME_NG: &str = "virtme-ng==1.42";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/unlink-harness-backports.list";

/// What is missing on this host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Missing {
    pub apt: Vec<String>,
    pub backports: Vec<String>,
    pub venv: bool,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.apt.is_empty() && self.backports.is_empty() && !self.venv
    }
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn venv_dir(cache: &Path) -> PathBuf {
    cache.join("venv")
}

/// The vng to run: `$UNLINK_HARNESS_VNG`, else the harness's venv.
pub fn vng_path(cache: &Path) -> PathBuf {
    std::env::var_os("UNLINK_HARNESS_VNG")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_dir(cache).join("bin").join("vng"))
}

pub fn check(cache: &Path) -> Missing {
    Missing {
        apt: APT_PACKAGES
            .iter()
            .filter(|p| !installed(p))
            .map(|s| s.to_string())
            .collect(),
        backports: BACKPORTS_PACKAGES
            .iter()
            .filter(|p| !installed(p))
            .map(|s| s.to_string())
            .collect(),
        venv: !vng_path(cache).is_file(),
    }
}

/// The commands that provision what is missing (shown when not root).
pub fn commands(m: &Missing, cache: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !m.apt.is_empty() || !m.backports.is_empty() {
        out.push("apt-get update".to_string());
    }
    if !m.apt.is_empty() {
        out.push(format!("apt-get install -y {}", m.apt.join(" ")));
    }
    if !m.backports.is_empty() {
        out.push(format!(
            "echo 'deb <the Debian mirror of your apt sources> bookworm-backports main' > {BACKPORTS_LIST} && apt-get update && apt-get install -y -t bookworm-backports {}",
            m.backports.join(" ")
        ));
    }
    if m.venv {
        let venv = venv_dir(cache);
        out.push(format!(
            "python3 -m venv {} && {}/bin/pip install {VIRTME_NG}",
            venv.display(),
            venv.display()
        ));
    }
    out
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    crate::cmd::run_checked(cmd, what, 5).map(drop)
}

/// Installs whatever is missing. Progress goes through `note`.
pub fn ensure(cache: &Path, note: &dyn Fn(&str)) -> Result<()> {
    let m = check(cache);
    if m.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "missing host packages; as root run: {}",
            commands(&m, cache).join(" && ")
        );
    }
    let apt_env = [("DEBIAN_FRONTEND", "noninteractive")];
    if !m.apt.is_empty() || !m.backports.is_empty() {
        if !m.backports.is_empty() && !Path::new(BACKPORTS_LIST).exists() {
            let mirror = apt::system_mirror()?;
            std::fs::write(
                BACKPORTS_LIST,
                format!(
                    "deb [signed-by={}] {mirror} bookworm-backports main\n",
                    apt::KEYRING
                ),
            )
            .with_context(|| format!("writing {BACKPORTS_LIST}"))?;
        }
        note("apt-get update");
        run(
            Command::new("apt-get").envs(apt_env).args(["-q", "update"]),
            "apt-get update",
        )?;
    }
    if !m.apt.is_empty() {
        note(&format!("apt-get install {}", m.apt.join(" ")));
        run(
            Command::new("apt-get")
                .envs(apt_env)
                .args(["-q", "-y", "install"])
                .args(&m.apt),
            "apt-get install",
        )?;
    }
    if !m.backports.is_empty() {
        note(&format!(
            "apt-get install -t bookworm-backports {}",
            m.backports.join(" ")
        ));
        run(
            Command::new("apt-get")
                .envs(apt_env)
                .args(["-q", "-y", "install", "-t", "bookworm-backports"])
                .args(&m.backports),
            "apt-get install (backports)",
        )?;
    }
    if m.venv {
        let venv = venv_dir(cache);
        note(&format!("installing {VIRTME_NG} into {}", venv.display()));
        std::fs::create_dir_all(cache)?;
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
        run(
            Command::new(venv.join("bin/pip")).args(["install", "-q", VIRTME_NG]),
            "pip install virtme-ng",
        )?;
    }
    let left = check(cache);
    if !left.is_empty() {
        bail!("still missing after provisioning: {:?}", left);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_what_is_missing() {
        let m = Missing {
            apt: vec!["clang".into()],
            backports: vec![],
            venv: true,
        };
        let cmds = commands(&m, Path::new("/c"));
        assert_eq!(cmds[0], "apt-get update");
        assert_eq!(cmds[1], "apt-get install -y clang");
        assert_eq!(
            cmds[2],
            "python3 -m venv /c/venv && /c/venv/bin/pip install virtme-ng==1.42"
        );
        assert!(commands(&Missing::default(), Path::new("/c")).is_empty());
    }
}
