//! The kernel lock file (`vm-images/kernels.lock`): for every suite alias,
//! arch and flavour, the exact packages (version and SHA256) the alias
//! resolved to. Cells boot what the lock says, so a matrix run is
//! reproducible until someone re-resolves on purpose (`harness lock
//! --update`). Rolling suites (sid, experimental) drop old kernels from the
//! mirror: a locked version that is neither cached nor on the mirror is
//! reported as such, with the command that re-resolves it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cache::Kept;
use crate::kernels::apt::PackageInfo;
use crate::model::Arch;
use crate::paths::repo_root;

/// The flavour name recorded for the default (generic) kernels.
pub const GENERIC: &str = "generic";

/// One package as locked: enough to download and verify it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    pub filename: String,
}

impl From<&PackageInfo> for LockedPackage {
    fn from(p: &PackageInfo) -> Self {
        LockedPackage {
            package: p.package.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            sha256: p.sha256.clone(),
            size: p.size,
            filename: p.filename.clone(),
        }
    }
}

impl LockedPackage {
    /// The package as the fetch stage handles it (dependencies are not locked).
    pub fn info(&self) -> PackageInfo {
        PackageInfo {
            package: self.package.clone(),
            version: self.version.clone(),
            architecture: self.architecture.clone(),
            depends: Vec::new(),
            filename: self.filename.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
        }
    }
}

/// The resolution of one alias × arch × flavour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    pub alias: String,
    pub arch: Arch,
    pub flavour: String,
    pub suite: String,
    /// The meta package the packages were resolved from.
    pub meta: String,
    pub packages: Vec<LockedPackage>,
}

impl LockEntry {
    /// The package that names the kernel (its `linux-image-*`).
    pub fn main_package(&self) -> Option<&LockedPackage> {
        self.packages
            .iter()
            .find(|p| p.package.starts_with("linux-image-"))
            .or_else(|| self.packages.first())
    }
}

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    #[serde(default, rename = "kernel")]
    pub entries: Vec<LockEntry>,
}

const HEADER: &str = "\
# Written by `harness lock` (and by `harness matrix` for cells not yet
# locked): the exact kernel packages each suite alias resolved to. Cells boot
# exactly these; `cargo harness lock --update --kernels ALIAS` re-resolves.
# Commit it: CI caches kernels keyed on this file.

";

impl LockFile {
    pub fn default_path() -> PathBuf {
        repo_root().join("vm-images").join("kernels.lock")
    }

    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).context("parsing the kernel lock file")
    }

    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).with_context(|| path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The file's text: entries sorted, so rewriting an unchanged lock is a no-op.
    pub fn render(&self) -> Result<String> {
        let mut sorted = self.clone();
        sorted
            .entries
            .sort_by(|a, b| (&a.alias, a.arch, &a.flavour).cmp(&(&b.alias, b.arch, &b.flavour)));
        Ok(format!(
            "{HEADER}{}",
            toml::to_string_pretty(&sorted).context("serialising the lock file")?
        ))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.render()?;
        let tmp = path.with_extension("lock.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn get(&self, alias: &str, arch: Arch, flavour: &str) -> Option<&LockEntry> {
        self.entries
            .iter()
            .find(|e| e.alias == alias && e.arch == arch && e.flavour == flavour)
    }

    /// The cache names this lock keeps: each entry's extracted-kernel dir
    /// (`<package>_<version>_<arch>`) and its `.deb` file names.
    pub fn kept(&self) -> Kept {
        let mut kept = Kept::default();
        for e in &self.entries {
            if let Some(m) = e.main_package() {
                kept.kernels
                    .push(format!("{}_{}_{}", m.package, m.version, m.architecture));
            }
            for p in &e.packages {
                kept.debs.push(p.info().deb_file_name());
            }
        }
        kept
    }

    /// Inserts or replaces the entry for its alias × arch × flavour; true if it changed.
    pub fn put(&mut self, entry: LockEntry) -> bool {
        match self
            .entries
            .iter_mut()
            .find(|e| e.alias == entry.alias && e.arch == entry.arch && e.flavour == entry.flavour)
        {
            Some(old) if *old == entry => false,
            Some(old) => {
                *old = entry;
                true
            }
            None => {
                self.entries.push(entry);
                true
            }
        }
    }
}

/// The flavour's name in the lock (`None` = generic).
pub fn flavour_name(flavour: Option<&str>) -> &str {
    flavour.unwrap_or(GENERIC)
}

/// The one line that tells a user their locked kernel is gone, and what to run.
pub fn left_mirror_message(entry: &LockEntry, newest: Option<&str>) -> String {
    let main = entry
        .main_package()
        .map(|p| format!("{} {}", p.package, p.version))
        .unwrap_or_else(|| "the locked kernel".into());
    let flavour = if entry.flavour == GENERIC {
        String::new()
    } else {
        format!(" --flavour {}", entry.flavour)
    };
    format!(
        "{}/{}: locked {main} has left the {} mirror and is not cached{}; re-resolve with `cargo harness lock --update --kernels {} --arch {}{flavour}`",
        entry.alias,
        entry.arch,
        entry.suite,
        newest
            .map(|v| format!(" (the suite now has {v})"))
            .unwrap_or_default(),
        entry.alias,
        entry.arch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            package: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            sha256: "ab".repeat(32),
            size: 10,
            filename: format!("pool/main/l/{name}.deb"),
        }
    }

    fn entry(alias: &str, arch: Arch, packages: Vec<LockedPackage>) -> LockEntry {
        LockEntry {
            alias: alias.into(),
            arch,
            flavour: GENERIC.into(),
            suite: alias.into(),
            meta: "linux-image-amd64".into(),
            packages,
        }
    }

    #[test]
    fn round_trip_sorted_and_stable() {
        let mut lock = LockFile::default();
        assert!(lock.put(entry(
            "sid",
            Arch::X86_64,
            vec![pkg("linux-binary-7.2-amd64", "7.2-1")]
        )));
        assert!(lock.put(entry(
            "bookworm",
            Arch::Arm64,
            vec![pkg("linux-image-6.1-arm64", "6.1-1")]
        )));
        assert!(lock.put(entry(
            "bookworm",
            Arch::X86_64,
            vec![pkg("linux-image-6.1-amd64", "6.1-1")]
        )));
        let text = lock.render().unwrap();
        let back = LockFile::parse(&text).unwrap();
        let order: Vec<_> = back
            .entries
            .iter()
            .map(|e| format!("{}/{}", e.alias, e.arch))
            .collect();
        assert_eq!(order, ["bookworm/x86_64", "bookworm/arm64", "sid/x86_64"]);
        assert_eq!(back.render().unwrap(), text);
        assert!(text.starts_with("# Written by `harness lock`"));
    }

    #[test]
    fn put_reports_changes() {
        let mut lock = LockFile::default();
        let e = entry(
            "sid",
            Arch::X86_64,
            vec![pkg("linux-image-7.2-amd64", "7.2-1")],
        );
        assert!(lock.put(e.clone()));
        assert!(!lock.put(e));
        assert!(lock.put(entry(
            "sid",
            Arch::X86_64,
            vec![pkg("linux-image-7.2-amd64", "7.2-2")]
        )));
        assert_eq!(lock.entries.len(), 1);
        assert_eq!(
            lock.get("sid", Arch::X86_64, GENERIC).unwrap().packages[0].version,
            "7.2-2"
        );
        assert!(lock.get("sid", Arch::Arm64, GENERIC).is_none());
    }

    #[test]
    fn main_package_prefers_the_image() {
        let e = entry(
            "sid",
            Arch::X86_64,
            vec![
                pkg("linux-binary-7.2-amd64", "1"),
                pkg("linux-image-7.2-amd64", "1"),
            ],
        );
        assert_eq!(e.main_package().unwrap().package, "linux-image-7.2-amd64");
    }

    #[test]
    fn left_mirror_names_the_fix() {
        let e = entry(
            "sid",
            Arch::X86_64,
            vec![pkg("linux-image-7.2-amd64", "7.2-1")],
        );
        let cases = [
            (None, "sid/x86_64: locked linux-image-7.2-amd64 7.2-1 has left the sid mirror and is not cached; re-resolve with `cargo harness lock --update --kernels sid --arch x86_64`"),
            (Some("7.3-1"), "sid/x86_64: locked linux-image-7.2-amd64 7.2-1 has left the sid mirror and is not cached (the suite now has 7.3-1); re-resolve with `cargo harness lock --update --kernels sid --arch x86_64`"),
        ];
        for (newest, want) in cases {
            assert_eq!(left_mirror_message(&e, newest), want);
        }
    }

    #[test]
    fn missing_file_is_an_empty_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockFile::load(&dir.path().join("none.lock")).unwrap();
        assert!(lock.entries.is_empty());
    }

    #[test]
    fn the_cache_keeps_what_the_lock_names() {
        let lock = LockFile {
            entries: vec![LockEntry {
                alias: "sid".into(),
                arch: Arch::X86_64,
                flavour: GENERIC.into(),
                suite: "sid".into(),
                meta: "linux-image-amd64".into(),
                packages: vec![
                    LockedPackage {
                        filename: "pool/x.deb".into(),
                        ..pkg("linux-image-7.2-amd64", "7.2-1")
                    },
                    LockedPackage {
                        filename: "pool/y.deb".into(),
                        ..pkg("linux-binary-7.2-amd64", "7.2-1")
                    },
                ],
            }],
        };
        assert_eq!(
            lock.kept(),
            Kept {
                kernels: vec!["linux-image-7.2-amd64_7.2-1_amd64".into()],
                debs: vec![
                    "linux-image-7.2-amd64_7.2-1_amd64.deb".into(),
                    "linux-binary-7.2-amd64_7.2-1_amd64.deb".into(),
                ],
            }
        );
    }
}
