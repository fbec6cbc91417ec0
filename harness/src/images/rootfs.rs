//! Guest root directories for `vng --root` (a foreign `--arch` has no host
//! root to share), built from a recipe in `vm-images/` without emulation:
//! the recipe's packages are resolved to their dependency closure by apt's
//! own resolver over the private index ([`PrivateApt`]), each `.deb` is
//! verified against the index's SHA256 and extracted with `dpkg-deb -x`,
//! then the recipe's fixups stand in for the maintainer scripts that never
//! run. Same recipe and same index → same package versions, recorded in
//! the root's marker.
//!
//! Layout: `<cache>/roots/<suite>-<arch>-<key>/{root/,root.json}`; `key`
//! hashes the recipe text, the resolved packages (with their SHA256) and
//! [`FORMAT`]. A root is built under a `.partial-<pid>` name and renamed
//! into place after its marker is written, so an interrupted build is never
//! mistaken for a finished one; a root whose marker or required files do not
//! match is rebuilt.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cache::entry;
use crate::kernels::apt::{self, PackageInfo, PrivateApt};
use crate::kernels::kernel;
use crate::model::Arch;
use crate::process::commands;

/// Version of the build procedure; part of every key, so a change to how
/// roots are made never reuses a root made the old way.
pub const FORMAT: u32 = 1;

/// The marker file next to a finished root.
const MARKER: &str = "root.json";

/// A root recipe (`vm-images/*-root.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The Debian suite whose index the packages come from.
    pub suite: String,
    pub arch: Arch,
    /// Top-level packages; their Depends and Pre-Depends are added.
    pub packages: Vec<String>,
    /// Paths (relative to the root) removed after extraction.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Directories created after extraction.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Files copied inside the root.
    #[serde(default)]
    pub copy: Vec<CopyFixup>,
    /// Files written with a given content.
    #[serde(default)]
    pub file: Vec<FileFixup>,
    /// Symbolic links made.
    #[serde(default)]
    pub symlink: Vec<SymlinkFixup>,
    /// Paths a finished root must have (symlinks are not followed).
    #[serde(default)]
    pub require: Vec<String>,
    /// The guest-arch busybox inside the root, for `vng --busybox`
    /// (virtme-ng's initramfs); required like `require`.
    #[serde(default)]
    pub busybox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyFixup {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFixup {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkFixup {
    pub path: String,
    /// Kept as written: a relative target stays inside the root on the host too.
    pub target: String,
}

impl Recipe {
    /// Parses and validates a recipe: every path relative and inside the
    /// root, package names usable as apt arguments.
    pub fn parse(text: &str) -> Result<Self> {
        let r: Recipe = toml::from_str(text).context("parsing the root recipe")?;
        ensure!(!r.packages.is_empty(), "the root recipe lists no package");
        ensure!(
            is_plain_word(&r.suite),
            "`{}` is not a usable suite name",
            r.suite
        );
        for p in &r.packages {
            ensure!(
                is_package_name(p),
                "`{p}` is not a Debian package name (no arch or version suffix)"
            );
        }
        let paths = r
            .remove
            .iter()
            .chain(&r.dirs)
            .chain(&r.require)
            .chain(&r.busybox)
            .chain(r.copy.iter().flat_map(|c| [&c.from, &c.to]))
            .chain(r.file.iter().map(|f| &f.path))
            .chain(r.symlink.iter().map(|s| &s.path));
        for p in paths {
            safe_rel(p)?;
        }
        for s in &r.symlink {
            ensure!(!s.target.is_empty(), "symlink {}: empty target", s.path);
        }
        Ok(r)
    }

    /// Every path a finished root must have: `require` and the busybox.
    pub fn required(&self) -> Vec<String> {
        self.require.iter().chain(&self.busybox).cloned().collect()
    }
}

/// A finished guest root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRoot {
    /// The root directory (`vng --root`).
    pub dir: PathBuf,
    /// The guest-arch busybox in it (`vng --busybox`), if the recipe names one.
    pub busybox: Option<PathBuf>,
}

/// What a finished root was built from (its `root.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMarker {
    pub format: u32,
    pub key: String,
    pub suite: String,
    pub arch: Arch,
    /// SHA256 of the recipe file's text.
    pub recipe_sha256: String,
    /// Every package extracted, in extraction order, with the SHA256 it was
    /// verified against.
    pub packages: Vec<PackageInfo>,
}

/// One line of apt's resolution: a package to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub package: String,
    pub version: String,
    pub architecture: String,
}

fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.~_".contains(c))
}

/// Debian package names: lower case letters, digits, `+ - .`; no `:arch`
/// or `=version` (the recipe names packages, the index picks versions).
pub fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A recipe path as a path relative to the root, refusing absolute paths
/// and `..` (a fixup never touches the host outside the root).
pub fn safe_rel(p: &str) -> Result<&Path> {
    let path = Path::new(p);
    ensure!(!p.is_empty(), "empty path in the root recipe");
    ensure!(
        path.components().all(|c| matches!(c, Component::Normal(_))),
        "`{p}`: recipe paths are relative to the root, without `..` or `.`"
    );
    Ok(path)
}

/// Parses `apt-get -s install` output: one [`Resolved`] per `Inst` line,
/// e.g. `Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64]) []`.
pub fn parse_simulated(text: &str) -> Result<Vec<Resolved>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let bad = || format!("unexpected apt-get -s line: {line}");
        let name = rest.split_whitespace().next().with_context(bad)?;
        let (_, paren) = rest.split_once('(').with_context(bad)?;
        let (inner, _) = paren.split_once(')').with_context(bad)?;
        let version = inner.split_whitespace().next().with_context(bad)?;
        let arch = inner
            .rsplit_once('[')
            .and_then(|(_, a)| a.split_once(']'))
            .map(|(a, _)| a)
            .with_context(bad)?;
        out.push(Resolved {
            package: name.split(':').next().unwrap_or(name).to_string(),
            version: version.to_string(),
            architecture: arch.to_string(),
        });
    }
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

/// The cache key of a root: format, recipe text and resolved packages.
pub fn root_key(recipe_text: &str, packages: &[PackageInfo]) -> String {
    let mut text = format!("format {FORMAT}\n{recipe_text}\n");
    for p in packages {
        text.push_str(&format!(
            "{} {} {} {}\n",
            p.package, p.version, p.architecture, p.sha256
        ));
    }
    entry::sha256_hex(text.as_bytes())[..16].to_string()
}

/// The directory name of a root.
pub fn root_dir_name(recipe: &Recipe, key: &str) -> String {
    format!("{}-{}-{key}", recipe.suite, recipe.arch.debian())
}

/// The pid of the process that owns a partial build directory of `name`
/// (`<name>.partial-<pid>`), if `entry` is one.
pub fn partial_owner(entry: &str, name: &str) -> Option<u32> {
    entry
        .strip_prefix(name)?
        .strip_prefix(".partial-")?
        .parse()
        .ok()
}

/// Required paths missing from `root` (symlinks count as present).
pub fn missing_required(root: &Path, require: &[String]) -> Vec<String> {
    require
        .iter()
        .filter(|p| std::fs::symlink_metadata(root.join(p)).is_err())
        .cloned()
        .collect()
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    crate::process::run_checked(cmd, what, 3)
}

/// `-o APT::Architecture=…`: resolve as if the guest arch were native, so
/// `Multi-Arch: foreign` dependencies are met by guest-arch packages.
fn arch_options(arch: Arch) -> [String; 2] {
    ["-o".into(), format!("APT::Architecture={}", arch.debian())]
}

/// Resolves the recipe to the exact packages to extract (sorted by name),
/// each with the index entry it will be verified against.
pub fn resolve(apt: &PrivateApt, recipe: &Recipe) -> Result<Vec<PackageInfo>> {
    let arch = recipe.arch.debian();
    let mut install: Vec<String> = ["-q", "-s", "install", "--no-install-recommends"]
        .map(String::from)
        .to_vec();
    install.extend(recipe.packages.iter().map(|p| format!("{p}:{arch}")));
    let sim = run(
        &mut commands::apt_get(
            apt.options().into_iter().chain(arch_options(recipe.arch)),
            install,
        )?,
        &format!("resolving the root packages in {}", apt.suite),
    )?;
    let resolved = parse_simulated(&sim)?;
    ensure!(
        !resolved.is_empty(),
        "apt resolved the root recipe to no package"
    );
    for r in &resolved {
        ensure!(
            r.architecture == arch || r.architecture == "all",
            "{} resolved for {}, not {arch}",
            r.package,
            r.architecture
        );
    }
    let mut show: Vec<String> = ["show", "--no-all-versions"].map(String::from).to_vec();
    show.extend(
        resolved
            .iter()
            .map(|r| format!("{}:{}={}", r.package, r.architecture, r.version)),
    );
    let shown = run(
        &mut commands::apt_cache(
            apt.options().into_iter().chain(arch_options(recipe.arch)),
            show,
        )?,
        "apt-cache show of the root packages",
    )?;
    let infos = apt::parse_deb822(&shown)
        .iter()
        .map(PackageInfo::from_stanza)
        .collect::<Result<Vec<_>>>()?;
    resolved
        .iter()
        .map(|r| {
            infos
                .iter()
                .find(|i| {
                    i.package == r.package
                        && i.version == r.version
                        && i.architecture == r.architecture
                })
                .cloned()
                .with_context(|| {
                    format!(
                        "{} {} ({}) is not in the {} index",
                        r.package, r.version, r.architecture, apt.suite
                    )
                })
        })
        .collect()
}

/// Whether `dir` holds a finished root built from exactly `want`.
fn is_finished(dir: &Path, want: &RootMarker, recipe: &Recipe) -> bool {
    let marker = std::fs::read(dir.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<RootMarker>(&b).ok());
    marker.as_ref() == Some(want)
        && missing_required(&dir.join("root"), &recipe.required()).is_empty()
}

/// Builds (or finds in the cache) the root of the recipe at `recipe_path`.
pub fn build(cache: &Path, recipe_path: &Path, progress: &dyn Fn(&str)) -> Result<GuestRoot> {
    let text = std::fs::read_to_string(recipe_path)
        .with_context(|| format!("reading {}", recipe_path.display()))?;
    let recipe = Recipe::parse(&text).with_context(|| recipe_path.display().to_string())?;

    let apt = kernel::index(cache, &recipe.suite, progress)?;
    let packages = resolve(&apt, &recipe)?;
    let key = root_key(&text, &packages);
    let want = RootMarker {
        format: FORMAT,
        key: key.clone(),
        suite: recipe.suite.clone(),
        arch: recipe.arch,
        recipe_sha256: entry::sha256_hex(text.as_bytes()),
        packages,
    };

    let roots = cache.join("roots");
    let name = root_dir_name(&recipe, &key);
    let dir = roots.join(&name);
    let _lock = entry::lock_entry(&roots.join(format!("{name}.lock")))?;
    let finished = || {
        let root = dir.join("root");
        GuestRoot {
            busybox: recipe.busybox.as_ref().map(|b| root.join(b)),
            dir: root,
        }
    };
    if is_finished(&dir, &want, &recipe) {
        return Ok(finished());
    }
    if dir.exists() {
        progress(&format!("{}: incomplete root, rebuilding", dir.display()));
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&roots).with_context(|| format!("creating {}", roots.display()))?;
    remove_stale_partials(&roots, &name)?;

    let partial = roots.join(format!("{name}.partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    let result = populate(cache, &apt, &recipe, &want, &partial, progress);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&partial, &dir) {
        let _ = std::fs::remove_dir_all(&partial);
        // Another build of the same key may have finished first.
        if is_finished(&dir, &want, &recipe) {
            return Ok(finished());
        }
        return Err(e).with_context(|| format!("moving the new root to {}", dir.display()));
    }
    progress(&format!(
        "root ready: {} ({} packages)",
        dir.display(),
        want.packages.len()
    ));
    Ok(finished())
}

/// Removes partial builds of `name` whose builder is gone.
fn remove_stale_partials(roots: &Path, name: &str) -> Result<()> {
    let entries =
        std::fs::read_dir(roots).with_context(|| format!("listing {}", roots.display()))?;
    for e in entries.flatten() {
        let entry = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = partial_owner(&entry, name) {
            if !Path::new("/proc").join(pid.to_string()).exists() {
                std::fs::remove_dir_all(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Downloads, verifies, extracts and fixes up into `dir/root`, then writes
/// the marker.
fn populate(
    cache: &Path,
    apt: &PrivateApt,
    recipe: &Recipe,
    marker: &RootMarker,
    dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let deb_dir = cache.join("debs");
    std::fs::create_dir_all(&deb_dir).with_context(|| format!("creating {}", deb_dir.display()))?;
    // One apt-get for everything not yet cached (one per package is slow);
    // download_verified then checks each file and retries a bad one alone.
    let missing: Vec<&PackageInfo> = marker
        .packages
        .iter()
        .filter(|p| !deb_dir.join(p.deb_file_name()).is_file())
        .collect();
    if !missing.is_empty() {
        let mb = missing.iter().map(|p| p.size).sum::<u64>() / 1_000_000;
        progress(&format!("downloading {} packages ({mb} MB)", missing.len()));
        let mut download: Vec<String> = ["-q", "download"].map(String::from).to_vec();
        download.extend(
            missing
                .iter()
                .map(|p| format!("{}:{}={}", p.package, p.architecture, p.version)),
        );
        run(
            commands::apt_get(apt.options(), download)?.current_dir(&deb_dir),
            "apt-get download of the root packages",
        )?;
    }
    let mut files = Vec::new();
    for p in &marker.packages {
        files.push(kernel::download_verified(apt, p, &deb_dir, progress)?);
    }

    let root = dir.join("root");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    progress(&format!(
        "extracting {} packages into {}",
        files.len(),
        root.display()
    ));
    for f in &files {
        run(
            &mut commands::dpkg_extract(f, &root)?,
            &format!("dpkg-deb -x {}", f.display()),
        )?;
    }
    apply_fixups(&root, recipe)?;
    let missing = missing_required(&root, &recipe.required());
    ensure!(
        missing.is_empty(),
        "the built root lacks {} (is a package missing from the recipe?)",
        missing.join(", ")
    );
    let marker_path = dir.join(MARKER);
    std::fs::write(&marker_path, serde_json::to_vec_pretty(marker)?)
        .with_context(|| format!("writing {}", marker_path.display()))?;
    Ok(())
}

/// The recipe's stand-ins for maintainer scripts, in a fixed order:
/// remove, dirs, copy, file, symlink.
fn apply_fixups(root: &Path, recipe: &Recipe) -> Result<()> {
    for p in &recipe.remove {
        let path = root.join(safe_rel(p)?);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => continue,
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    for d in &recipe.dirs {
        let path = root.join(safe_rel(d)?);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    for c in &recipe.copy {
        let from = root.join(safe_rel(&c.from)?);
        let to = root.join(safe_rel(&c.to)?);
        // A symlink could point outside the root (at the host's file).
        let meta = std::fs::symlink_metadata(&from)
            .with_context(|| format!("copy fixup: {} is not in the root", c.from))?;
        if !meta.is_file() {
            bail!("copy fixup: {} is not a regular file", c.from);
        }
        create_parent(&to)?;
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    for f in &recipe.file {
        let path = root.join(safe_rel(&f.path)?);
        create_parent(&path)?;
        std::fs::write(&path, &f.content).with_context(|| format!("writing {}", path.display()))?;
    }
    for s in &recipe.symlink {
        let path = root.join(safe_rel(&s.path)?);
        create_parent(&path)?;
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).with_context(|| format!("replacing {}", path.display()))?;
        }
        std::os::unix::fs::symlink(&s.target, &path)
            .with_context(|| format!("linking {} to {}", path.display(), s.target))?;
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, sha: &str) -> PackageInfo {
        PackageInfo {
            package: name.into(),
            version: version.into(),
            architecture: "arm64".into(),
            depends: vec![],
            filename: format!("pool/{name}.deb"),
            sha256: sha.into(),
            size: 1,
        }
    }

    #[test]
    fn simulated_installs() {
        let text = "Reading package lists...\nNOTE: This is only a simulation!\n\
            Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64]) []\n\
            Inst debconf (1.5.82 Debian:12.15/oldstable [all])\n\
            Inst bash:arm64 (5.2.15-2+b13 Debian:12.15/oldstable [arm64])\n\
            Inst x [1.0] (1:2.0~rc1 Debian:12.15/oldstable [arm64])\n\
            Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])\n";
        let got: Vec<(String, String, String)> = parse_simulated(text)
            .unwrap()
            .into_iter()
            .map(|r| (r.package, r.version, r.architecture))
            .collect();
        let want = [
            ("bash", "5.2.15-2+b13", "arm64"),
            ("debconf", "1.5.82", "all"),
            ("libc6", "2.36-9+deb12u14", "arm64"),
            ("x", "1:2.0~rc1", "arm64"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(parse_simulated("Inst broken line\n").is_err());
        assert!(parse_simulated("").unwrap().is_empty());
    }

    #[test]
    fn recipe_paths() {
        let cases = [
            ("etc/passwd", true),
            ("usr/share/doc", true),
            ("/etc/passwd", false),
            ("../etc", false),
            ("etc/../../x", false),
            ("./etc", false),
            ("", false),
        ];
        for (p, ok) in cases {
            assert_eq!(safe_rel(p).is_ok(), ok, "{p}");
        }
    }

    #[test]
    fn package_names() {
        let cases = [
            ("libc6", true),
            ("busybox-static", true),
            ("libstdc++6", true),
            ("g++-12", true),
            ("libc6:arm64", false),
            ("bash=5.2", false),
            ("-o", false),
            ("Bash", false),
            ("x", false),
        ];
        for (n, ok) in cases {
            assert_eq!(is_package_name(n), ok, "{n}");
        }
    }

    #[test]
    fn recipes() {
        let base = "suite = \"bookworm\"\narch = \"arm64\"\npackages = [\"bash\"]\n";
        let r = Recipe::parse(base).unwrap();
        assert_eq!(r.arch, Arch::Arm64);
        assert!(r.copy.is_empty() && r.require.is_empty());
        let cases = [
            (format!("{base}dirs = [\"opt\"]\n"), None),
            (
                "suite = \"bookworm\"\narch = \"arm64\"\npackages = []\n".to_string(),
                Some("no package"),
            ),
            (format!("{base}dirs = [\"/opt\"]\n"), Some("relative")),
            (
                format!("{base}busybox = \"/bin/busybox\"\n"),
                Some("relative"),
            ),
            (
                format!("{base}[[copy]]\nfrom = \"a\"\nto = \"../b\"\n"),
                Some("relative"),
            ),
            (
                format!("{base}[[symlink]]\npath = \"a\"\ntarget = \"\"\n"),
                Some("empty target"),
            ),
            (format!("{base}colour = 1\n"), Some("parsing")),
            (
                "suite = \"bookworm\"\narch = \"mips\"\npackages = [\"bash\"]\n".to_string(),
                Some("parsing"),
            ),
            (
                "suite = \"bookworm\"\narch = \"arm64\"\npackages = [\"bash:arm64\"]\n".to_string(),
                Some("package name"),
            ),
        ];
        for (text, want_err) in cases {
            match (Recipe::parse(&text), want_err) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(format!("{e:#}").contains(w), "{text}: {e:#}"),
                (got, want) => panic!("{text}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn the_committed_recipe_parses() {
        let path = crate::paths::repo_root().join("vm-images/arm64-root.toml");
        let r = Recipe::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(r.arch, Arch::Arm64);
        assert_eq!(r.busybox.as_deref(), Some("bin/busybox"));
        assert!(r.required().iter().any(|p| p == "bin/busybox"));
        for p in [
            "busybox-static",
            "libelf1",
            "zlib1g",
            "libzstd1",
            "coreutils",
        ] {
            assert!(r.packages.iter().any(|x| x == p), "{p}");
        }
    }

    #[test]
    fn keys() {
        let a = [pkg("bash", "5.2", "aa"), pkg("libc6", "2.36", "bb")];
        let k = root_key("r", &a);
        assert_eq!(k.len(), 16);
        assert_eq!(k, root_key("r", &a.clone()));
        let cases = [
            root_key("r2", &a),
            root_key("r", &[pkg("bash", "5.3", "aa"), pkg("libc6", "2.36", "bb")]),
            root_key("r", &[pkg("bash", "5.2", "cc"), pkg("libc6", "2.36", "bb")]),
            root_key("r", &a[..1]),
        ];
        for other in cases {
            assert_ne!(k, other);
        }
    }

    #[test]
    fn partial_dirs() {
        let name = "bookworm-arm64-0123456789abcdef";
        let cases = [
            (format!("{name}.partial-42"), Some(42)),
            (format!("{name}.partial-x"), None),
            (name.to_string(), None),
            ("bookworm-arm64-ffff.partial-42".to_string(), None),
        ];
        for (entry, want) in cases {
            assert_eq!(partial_owner(&entry, name), want, "{entry}");
        }
    }

    #[test]
    fn fixups_and_required_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/share/base-passwd")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/doc/bash")).unwrap();
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::write(root.join("usr/share/base-passwd/passwd.master"), "root:x\n").unwrap();
        std::fs::write(root.join("sbin/poweroff"), "old").unwrap();
        let recipe = Recipe::parse(
            "suite = \"bookworm\"\narch = \"arm64\"\npackages = [\"bash\"]\n\
             remove = [\"usr/share/doc\", \"not/there\"]\ndirs = [\"opt\"]\n\
             require = [\"etc/passwd\", \"sbin/poweroff\", \"opt\", \"etc/fstab\"]\n\
             [[copy]]\nfrom = \"usr/share/base-passwd/passwd.master\"\nto = \"etc/passwd\"\n\
             [[file]]\npath = \"etc/fstab\"\ncontent = \"\"\n\
             [[symlink]]\npath = \"sbin/poweroff\"\ntarget = \"../bin/busybox\"\n",
        )
        .unwrap();
        assert_eq!(
            missing_required(root, &recipe.require),
            ["etc/passwd", "opt", "etc/fstab"]
        );
        apply_fixups(root, &recipe).unwrap();
        assert!(missing_required(root, &recipe.require).is_empty());
        assert!(!root.join("usr/share/doc").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
            "root:x\n"
        );
        // A dangling symlink (its target is not in this root) still counts.
        assert_eq!(
            std::fs::read_link(root.join("sbin/poweroff")).unwrap(),
            Path::new("../bin/busybox")
        );

        let bad = Recipe::parse(
            "suite = \"bookworm\"\narch = \"arm64\"\npackages = [\"bash\"]\n\
             [[copy]]\nfrom = \"usr/share/nothing\"\nto = \"etc/x\"\n",
        )
        .unwrap();
        let err = format!("{:#}", apply_fixups(root, &bad).unwrap_err());
        assert!(err.contains("usr/share/nothing"), "{err}");
    }
}
