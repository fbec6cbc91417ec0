//! Stage 1, kernel fetch: suite alias → exact Debian kernel package(s),
//! downloaded through a private apt configuration, verified against the
//! index's SHA256, extracted into the cache, modules indexed with depmod.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cache::entry::{lock_entry, sha256_file};
use crate::kernels::apt::{self, PackageInfo, PrivateApt};
use crate::kernels::lock::{self, LockEntry, LockedPackage};
use crate::kernels::manifest::KernelEntry;
use crate::model::Arch;
use crate::process::commands;

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
    /// SHA256 of vmlinuz at extraction: a damaged cache entry is noticed.
    #[serde(default)]
    pub vmlinuz_sha256: String,
    /// `<root>/lib/modules/<release>`.
    pub modules: PathBuf,
    /// The kernel's build configuration, when the packages ship it.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Every package extracted, with the SHA256 it was verified against.
    pub debs: Vec<PackageInfo>,
}

/// Kernel packages among a package's dependencies. From 7.x the kernel's
/// config sits in `linux-base-<version>` (not the `linux-base` scripts).
fn is_kernel_package(name: &str) -> bool {
    [
        "linux-image-",
        "linux-binary-",
        "linux-modules-",
        "linux-base-",
    ]
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

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    crate::process::run_checked(cmd, what, 3)
}

/// The private apt setup of a suite, its index refreshed when stale.
pub fn index(cache: &Path, suite: &str, progress: &dyn Fn(&str)) -> Result<PrivateApt> {
    let apt = PrivateApt::new(cache, suite);
    let _lock = lock_entry(&cache.join("apt").join(format!("{suite}.lock")))?;
    let mirror = apt::system_mirror()?;
    apt.write_config(&mirror)?;
    if !apt.index_fresh(INDEX_MAX_AGE) {
        progress(&format!("apt-get update ({suite})"));
        run(
            &mut commands::apt_get(apt.options(), ["-q", "update"])?,
            &format!("apt-get update for {suite}"),
        )?;
    }
    Ok(apt)
}

/// Resolves an alias for an arch and flavour to the exact packages to lock.
pub fn resolve_entry(
    cache: &Path,
    entry: &KernelEntry,
    arch: Arch,
    flavour: Option<&str>,
    progress: &dyn Fn(&str),
) -> Result<LockEntry> {
    let apt = index(cache, &entry.suite, progress)?;
    let meta = entry.meta_package(arch, flavour);
    let debs = resolve(&apt, &meta, arch)?;
    Ok(LockEntry {
        alias: entry.alias.clone(),
        arch,
        flavour: lock::flavour_name(flavour).to_string(),
        suite: entry.suite.clone(),
        meta,
        packages: debs.iter().map(LockedPackage::from).collect(),
    })
}

/// What locking did for one alias × arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Already locked; left as it was.
    Kept(LockEntry),
    /// Resolved now (new, or re-resolved on request).
    Resolved {
        entry: LockEntry,
        previous: Option<LockEntry>,
    },
}

impl LockOutcome {
    pub fn entry(&self) -> &LockEntry {
        match self {
            LockOutcome::Kept(e) | LockOutcome::Resolved { entry: e, .. } => e,
        }
    }
}

/// Makes sure every requested alias × arch is in the lock: missing ones are
/// resolved, and all of them when `update` is set. Suites resolve in
/// parallel (their apt indexes are independent). The caller saves the lock.
pub fn lock_cells(
    cache: &Path,
    lock: &mut lock::LockFile,
    entries: &[KernelEntry],
    arches: &[Arch],
    flavour: Option<&str>,
    update: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<LockOutcome>> {
    let flavour_name = lock::flavour_name(flavour);
    let mut wanted = Vec::new();
    for e in entries {
        for &arch in arches {
            match lock.get(&e.alias, arch, flavour_name) {
                Some(locked) if !update => wanted.push((e, arch, Some(locked.clone()), false)),
                prev => wanted.push((e, arch, prev.cloned(), true)),
            }
        }
    }
    // One thread per suite: arches of a suite share its apt index.
    let mut suites: Vec<&str> = wanted.iter().map(|w| w.0.suite.as_str()).collect();
    suites.sort_unstable();
    suites.dedup();
    let one = |(e, arch, prev, resolve): &(&KernelEntry, Arch, Option<LockEntry>, bool)| {
        if !*resolve {
            if let Some(p) = prev {
                return Ok(LockOutcome::Kept(p.clone()));
            }
        }
        let entry = resolve_entry(cache, e, *arch, flavour, progress)
            .with_context(|| format!("resolving {}/{}", e.alias, arch))?;
        Ok(LockOutcome::Resolved {
            entry,
            previous: prev.clone(),
        })
    };
    let mut results: Vec<Option<Result<LockOutcome>>> = (0..wanted.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = suites
            .iter()
            .map(|suite| {
                let (wanted, one) = (&wanted, &one);
                s.spawn(move || {
                    wanted
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| w.0.suite == *suite)
                        .map(|(i, w)| (i, one(w)))
                        .collect::<Vec<(usize, Result<LockOutcome>)>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                Err(_) => results.push(Some(Err(anyhow::anyhow!("a resolver thread panicked")))),
            }
        }
    });
    let results: Vec<Result<LockOutcome>> = results.into_iter().flatten().collect();
    let mut out = Vec::new();
    for r in results {
        let r = r?;
        if let LockOutcome::Resolved { entry, .. } = &r {
            lock.put(entry.clone());
        }
        out.push(r);
    }
    Ok(out)
}

/// Fetches (or finds in the cache) the kernel a lock entry names. Cached
/// `.deb`s that still match their locked SHA256 are used even after the
/// mirror has dropped them; anything else is downloaded and verified.
pub fn fetch(cache: &Path, locked: &LockEntry, progress: &dyn Fn(&str)) -> Result<KernelImage> {
    let main = locked
        .main_package()
        .with_context(|| format!("{}/{}: empty lock entry", locked.alias, locked.arch))?
        .clone();
    let debs: Vec<PackageInfo> = locked.packages.iter().map(LockedPackage::info).collect();
    let key = format!("{}_{}_{}", main.package, main.version, main.architecture);
    let kdir = cache.join("kernels").join(&key);
    let _lock = lock_entry(&cache.join("kernels").join(format!("{key}.lock")))?;
    let marker = kdir.join("kernel.json");
    if let Some(img) = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<KernelImage>(&b).ok())
        .filter(|img| img.debs == debs && img.modules.is_dir())
    {
        match sha256_file(&img.vmlinuz) {
            Ok(sum) if sum == img.vmlinuz_sha256 => return Ok(img),
            _ => progress(&format!(
                "cached kernel {} is damaged (vmlinuz does not match its checksum): extracting again",
                kdir.display()
            )),
        }
    }

    let deb_dir = cache.join("debs");
    std::fs::create_dir_all(&deb_dir)?;
    let missing: Vec<&PackageInfo> = debs
        .iter()
        .filter(|p| {
            let path = deb_dir.join(p.deb_file_name());
            !(path.is_file() && sha256_file(&path).is_ok_and(|sum| sum == p.sha256))
        })
        .collect();
    if !missing.is_empty() {
        let apt = index(cache, &locked.suite, progress)?;
        for p in missing {
            if !apt.has_version(&p.package, &p.architecture, &p.version)? {
                let newest = apt
                    .show(&locked.meta, &p.architecture)
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|m| m.version);
                bail!("{}", lock::left_mirror_message(locked, newest.as_deref()));
            }
            download_verified(&apt, p, &deb_dir, progress)?;
        }
    }
    let files: Vec<PathBuf> = debs
        .iter()
        .map(|p| deb_dir.join(p.deb_file_name()))
        .collect();

    progress(&format!("extracting {}", main.package));
    if kdir.exists() {
        std::fs::remove_dir_all(&kdir).with_context(|| format!("removing {}", kdir.display()))?;
    }
    // A failed extraction leaves nothing behind (a full disk, say).
    extract(locked, &main, debs, &files, &kdir, &marker, progress).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&kdir);
    })
}

/// Extracts the packages into `kdir`, runs depmod, writes the marker last.
fn extract(
    locked: &LockEntry,
    main: &LockedPackage,
    debs: Vec<PackageInfo>,
    files: &[PathBuf],
    kdir: &Path,
    marker: &Path,
    progress: &dyn Fn(&str),
) -> Result<KernelImage> {
    let root = kdir.join("root");
    std::fs::create_dir_all(&root)?;
    for f in files {
        run(
            &mut commands::dpkg_extract(f, &root)?,
            &format!("dpkg-deb -x {}", f.display()),
        )?;
    }
    let (vmlinuz, release) = find_kernel(&root)?;
    let modules = modules_dir(&root, &release)?;
    let config = [
        root.join("boot").join(format!("config-{release}")),
        modules.join("config"),
    ]
    .into_iter()
    .find(|p| p.is_file());
    progress(&format!("depmod {release}"));
    run(&mut commands::depmod(&root, &release)?, "depmod")?;
    let img = KernelImage {
        alias: locked.alias.clone(),
        suite: locked.suite.clone(),
        arch: locked.arch,
        package: main.package.clone(),
        version: main.version.clone(),
        release,
        vmlinuz_sha256: sha256_file(&vmlinuz)?,
        vmlinuz,
        modules,
        config,
        debs,
    };
    // Written last: a partial extraction has no marker and is redone.
    std::fs::write(marker, serde_json::to_vec_pretty(&img)?)?;
    Ok(img)
}

/// Where a cell's kernel comes from.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// A Debian kernel, exactly as the lock file names it.
    Locked(LockEntry),
    /// The user's own kernel (`--kernel-image`).
    Custom(KernelImage),
}

impl KernelSource {
    pub fn alias(&self) -> &str {
        match self {
            KernelSource::Locked(e) => &e.alias,
            KernelSource::Custom(img) => &img.alias,
        }
    }

    pub fn arch(&self) -> Arch {
        match self {
            KernelSource::Locked(e) => e.arch,
            KernelSource::Custom(img) => img.arch,
        }
    }

    /// The kernel ready to boot: a locked one fetched (or found in the
    /// cache), a custom one as staged.
    pub fn image(&self, cache: &Path, progress: &dyn Fn(&str)) -> Result<KernelImage> {
        match self {
            KernelSource::Custom(img) => Ok(img.clone()),
            KernelSource::Locked(locked) => fetch(cache, locked, progress),
        }
    }
}

/// A kernel the user built: an image file (with its modules directory, or
/// none), or a built source tree (virtme-ng finds image and modules there).
pub fn custom(
    cache: &Path,
    name: &str,
    arch: Arch,
    image: &Path,
    modules: Option<&Path>,
) -> Result<KernelImage> {
    let image = std::fs::canonicalize(image)
        .with_context(|| format!("--kernel-image {}", image.display()))?;
    let mut img = KernelImage {
        alias: name.to_string(),
        suite: "custom".into(),
        arch,
        package: image.display().to_string(),
        version: "custom".into(),
        release: String::new(),
        vmlinuz: image.clone(),
        vmlinuz_sha256: String::new(),
        modules: PathBuf::new(),
        config: None,
        debs: Vec::new(),
    };
    if image.is_dir() {
        let kimg = image.join(custom_tree_image(arch));
        anyhow::ensure!(
            image.join(".config").is_file() && kimg.is_file(),
            "--kernel-image {}: a directory must be a built kernel tree (.config and {})",
            image.display(),
            custom_tree_image(arch)
        );
        if let Ok(rel) = std::fs::read_to_string(image.join("include/config/kernel.release")) {
            img.release = rel.trim().to_string();
        }
        img.config = Some(image.join(".config"));
        return Ok(img);
    }
    img.vmlinuz_sha256 = sha256_file(&image)?;
    let Some(modules) = modules else {
        return Ok(img);
    };
    let modules = std::fs::canonicalize(modules)
        .with_context(|| format!("--kernel-modules {}", modules.display()))?;
    let release = modules
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|_| modules.join("modules.order").is_file() || modules.join("kernel").is_dir())
        .with_context(|| {
            format!(
                "--kernel-modules {}: expected a lib/modules/<release> directory",
                modules.display()
            )
        })?;
    // virtme-ng looks for modules beside the image: stage both by symlink.
    let stage = cache
        .join("custom")
        .join(format!("{name}-{}", &img.vmlinuz_sha256[..12]));
    let boot = stage.join("boot");
    let libmod = stage.join("lib/modules");
    std::fs::create_dir_all(&boot)?;
    std::fs::create_dir_all(&libmod)?;
    let link = |target: &Path, at: &Path| -> Result<()> {
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(target, at).with_context(|| format!("linking {}", at.display()))
    };
    let vmlinuz = boot.join(format!("vmlinuz-{release}"));
    link(&image, &vmlinuz)?;
    link(&modules, &libmod.join(&release))?;
    img.vmlinuz = vmlinuz;
    img.modules = libmod.join(&release);
    img.release = release;
    Ok(img)
}

/// Where a built tree keeps its bootable image.
pub fn custom_tree_image(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "arch/x86/boot/bzImage",
        Arch::Arm64 => "arch/arm64/boot/Image",
    }
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
            commands::apt_get(
                apt.options(),
                [
                    "-q".to_string(),
                    "download".to_string(),
                    format!("{}:{}={}", p.package, p.architecture, p.version),
                ],
            )?
            .current_dir(deb_dir),
            &format!("apt-get download {}", p.package),
        )
        .inspect_err(|_| {
            // A download cut short keeps no partial file.
            let _ = std::fs::remove_file(&path);
        })?;
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
            ("linux-base-7.2.13+deb14-amd64", true),
            ("linux-base", false),
            ("kmod", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_kernel_package(name), want, "{name}");
        }
    }
}
