//! Stage 1, kernel fetch: suite alias → exact Debian kernel package(s),
//! downloaded through a private apt configuration, verified against the
//! index's SHA256, extracted into the cache, modules indexed with depmod.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::apt::{self, PackageInfo, PrivateApt};
use crate::manifest::{Arch, KernelEntry};

/// How long a fetched apt index is trusted before `apt-get update` again.
const INDEX_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// An extracted, ready-to-boot kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KernelImage {
    pub alias: String,
    pub suite: String,
    pub arch: Arch,
    /// The package that holds the kernel (`linux-image-6.1.0-47-amd64`).
    pub package: String,
    /// Its Debian version (`6.1.170-1`).
    pub version: String,
    /// `uname -r` of the kernel (`6.1.0-47-amd64`).
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `<root>/lib/modules/<release>`.
    pub modules: PathBuf,
    /// Every package extracted, with the SHA256 it was verified against.
    pub debs: Vec<PackageInfo>,
}

/// The harness's cache directory (`$XDG_CACHE_HOME/unlink-harness`).
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("UNLINK_HARNESS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("unlink-harness")
}

/// Kernel packages among a package's dependencies.
fn is_kernel_package(name: &str) -> bool {
    ["linux-image-", "linux-binary-", "linux-modules-"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Resolves the alias to the package set to extract (meta package excluded).
pub fn resolve(apt: &PrivateApt, meta: &str, arch: Arch) -> Result<Vec<PackageInfo>> {
    let mut queue = VecDeque::from([meta.to_string()]);
    let mut seen = vec![meta.to_string()];
    let mut out = Vec::new();
    while let Some(name) = queue.pop_front() {
        let info = apt
            .show(&name, arch.debian())?
            .into_iter()
            .next()
            .with_context(|| format!("{name}: no version in {}", apt.suite))?;
        for dep in &info.depends {
            if is_kernel_package(dep) && !seen.contains(dep) {
                seen.push(dep.clone());
                queue.push_back(dep.clone());
            }
        }
        if name != meta {
            out.push(info);
        }
    }
    if out.is_empty() {
        bail!("{meta} in {} depends on no kernel package", apt.suite);
    }
    Ok(out)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    crate::cmd::run_checked(cmd, what, 3)
}

/// Fetches (or finds in the cache) the kernel of `entry` for `arch`.
pub fn fetch(
    cache: &Path,
    entry: &KernelEntry,
    arch: Arch,
    flavour: Option<&str>,
    progress: &dyn Fn(&str),
) -> Result<KernelImage> {
    let apt = PrivateApt::new(cache, &entry.suite);
    let mirror = apt::system_mirror()?;
    apt.write_config(&mirror)?;
    if !apt.index_fresh(INDEX_MAX_AGE) {
        progress(&format!("apt-get update ({})", entry.suite));
        run(
            Command::new("apt-get")
                .args(apt.options())
                .args(["-q", "update"]),
            &format!("apt-get update for {}", entry.suite),
        )?;
    }
    let meta = entry.meta_package(arch, flavour);
    let debs = resolve(&apt, &meta, arch)?;
    let main = debs
        .iter()
        .find(|p| p.package.starts_with("linux-image-"))
        .unwrap_or(&debs[0])
        .clone();
    let key = format!("{}_{}_{}", main.package, main.version, main.architecture);
    let kdir = cache.join("kernels").join(&key);
    let marker = kdir.join("kernel.json");
    if let Some(img) = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<KernelImage>(&b).ok())
        .filter(|img| img.debs == debs && img.vmlinuz.is_file() && img.modules.is_dir())
    {
        return Ok(img);
    }

    let deb_dir = cache.join("debs");
    std::fs::create_dir_all(&deb_dir)?;
    let mut files = Vec::new();
    for p in &debs {
        files.push(download_verified(&apt, p, &deb_dir, progress)?);
    }

    progress(&format!("extracting {}", main.package));
    if kdir.exists() {
        std::fs::remove_dir_all(&kdir).with_context(|| format!("removing {}", kdir.display()))?;
    }
    let root = kdir.join("root");
    std::fs::create_dir_all(&root)?;
    for f in &files {
        run(
            Command::new("dpkg-deb").arg("-x").arg(f).arg(&root),
            &format!("dpkg-deb -x {}", f.display()),
        )?;
    }
    let (vmlinuz, release) = find_kernel(&root)?;
    let modules = modules_dir(&root, &release)?;
    progress(&format!("depmod {release}"));
    run(
        Command::new("depmod").arg("-b").arg(&root).arg(&release),
        "depmod",
    )?;
    let img = KernelImage {
        alias: entry.alias.clone(),
        suite: entry.suite.clone(),
        arch,
        package: main.package.clone(),
        version: main.version.clone(),
        release,
        vmlinuz,
        modules,
        debs,
    };
    std::fs::write(&marker, serde_json::to_vec_pretty(&img)?)?;
    Ok(img)
}

/// Downloads one package unless a verified copy is cached; a copy whose
/// SHA256 does not match the index is deleted and fetched again.
pub fn download_verified(
    apt: &PrivateApt,
    p: &PackageInfo,
    deb_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    let path = deb_dir.join(p.deb_file_name());
    for attempt in 0..2 {
        if path.is_file() {
            if sha256_file(&path)? == p.sha256 {
                return Ok(path);
            }
            progress(&format!(
                "{}: SHA256 mismatch, fetching again",
                path.display()
            ));
            std::fs::remove_file(&path)?;
        }
        if attempt == 1 {
            break;
        }
        progress(&format!(
            "downloading {} {} ({} MB)",
            p.package,
            p.version,
            p.size / 1_000_000
        ));
        run(
            Command::new("apt-get")
                .current_dir(deb_dir)
                .args(apt.options())
                .args(["-q", "download"])
                .arg(format!("{}:{}={}", p.package, p.architecture, p.version)),
            &format!("apt-get download {}", p.package),
        )?;
    }
    bail!(
        "{}: SHA256 does not match the apt index ({}) after a fresh download",
        path.display(),
        p.sha256
    )
}

/// Finds vmlinuz and the release in an extracted package root.
fn find_kernel(root: &Path) -> Result<(PathBuf, String)> {
    // Up to 6.x: /boot/vmlinuz-<release>; 7.x: /usr/lib/modules/<release>/vmlinuz.
    if let Ok(dir) = std::fs::read_dir(root.join("boot")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                return Ok((e.path(), release.to_string()));
            }
        }
    }
    for base in ["usr/lib/modules", "lib/modules"] {
        if let Ok(dir) = std::fs::read_dir(root.join(base)) {
            for e in dir.flatten() {
                let v = e.path().join("vmlinuz");
                if v.is_file() {
                    return Ok((v, e.file_name().to_string_lossy().into_owned()));
                }
            }
        }
    }
    bail!("no vmlinuz in {}", root.display())
}

/// The modules directory, made reachable as `<root>/lib/modules/<release>`
/// (where depmod -b and virtme-ng look).
fn modules_dir(root: &Path, release: &str) -> Result<PathBuf> {
    let lib = root.join("lib/modules").join(release);
    if lib.is_dir() {
        return Ok(lib);
    }
    let usr = root.join("usr/lib/modules").join(release);
    if usr.is_dir() {
        if !root.join("lib").exists() {
            std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        }
        return Ok(lib);
    }
    bail!("no modules for {release} in {}", root.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_packages() {
        let cases = [
            ("linux-image-6.1.0-47-amd64", true),
            ("linux-binary-7.2.13+deb14-amd64", true),
            ("linux-modules-7.2.13+deb14-amd64", true),
            ("linux-base", false),
            ("kmod", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_kernel_package(name), want, "{name}");
        }
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
