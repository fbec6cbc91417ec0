//! The kernel manifest (`vm-images/kernels.toml`) and the arch names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::Arch;
use crate::paths::repo_root;

/// One suite alias of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct KernelEntry {
    pub alias: String,
    pub suite: String,
    pub series: String,
    pub meta: String,
    /// Kernel splats this kernel is known to print, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_splat: Vec<KnownSplat>,
}

/// A declared kernel splat (`[[kernel.known_splat]]`): the cell's
/// `console` verdict passes while it appears, and fails once it no
/// longer does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnownSplat {
    /// A substring of the splat's console line (from its `WARNING:`,
    /// `BUG:`, ... marker on).
    pub pattern: String,
    /// Only on this arch (None: on every arch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Why it is there (a bug report), never empty.
    pub reason: String,
}

impl KernelEntry {
    /// The splats declared for this kernel on `arch`.
    pub fn known_splats(&self, arch: Arch) -> Vec<KnownSplat> {
        self.known_splat
            .iter()
            .filter(|k| k.arch.is_none_or(|a| a == arch))
            .cloned()
            .collect()
    }

    /// The meta package for an arch and flavour (`None` = generic).
    pub fn meta_package(&self, arch: Arch, flavour: Option<&str>) -> String {
        let flavour = flavour.map(|f| format!("{f}-")).unwrap_or_default();
        self.meta
            .replace("{flavour}", &flavour)
            .replace("{arch}", arch.debian())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub kernel: Vec<KernelEntry>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text).context("parsing the kernel manifest")?;
        anyhow::ensure!(!m.kernel.is_empty(), "the kernel manifest lists no kernel");
        for k in &m.kernel {
            for s in &k.known_splat {
                anyhow::ensure!(
                    !s.pattern.trim().is_empty(),
                    "kernel `{}`: a known_splat has an empty pattern",
                    k.alias
                );
                anyhow::ensure!(
                    !s.reason.trim().is_empty(),
                    "kernel `{}`: known_splat `{}` has no reason (say why it is there, e.g. its bug report)",
                    k.alias,
                    s.pattern
                );
            }
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| path.display().to_string())
    }

    /// The manifest of this checkout.
    pub fn default_path() -> PathBuf {
        repo_root().join("vm-images").join("kernels.toml")
    }

    pub fn aliases(&self) -> Vec<&str> {
        self.kernel.iter().map(|k| k.alias.as_str()).collect()
    }

    pub fn get(&self, alias: &str) -> Option<&KernelEntry> {
        self.kernel.iter().find(|k| k.alias == alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_packages() {
        let k = KernelEntry {
            alias: "bookworm".into(),
            suite: "bookworm".into(),
            series: "6.1".into(),
            meta: "linux-image-{flavour}{arch}".into(),
            known_splat: Vec::new(),
        };
        let cases = [
            (Arch::X86_64, None, "linux-image-amd64"),
            (Arch::Arm64, None, "linux-image-arm64"),
            (Arch::X86_64, Some("cloud"), "linux-image-cloud-amd64"),
        ];
        for (arch, flavour, want) in cases {
            assert_eq!(k.meta_package(arch, flavour), want);
        }
    }

    #[test]
    fn the_committed_manifest_parses() {
        let m = Manifest::load(&Manifest::default_path()).unwrap();
        assert_eq!(
            m.aliases(),
            ["bullseye", "bookworm", "trixie", "sid", "experimental"]
        );
    }

    #[test]
    fn known_splats() {
        let base = "[[kernel]]\nalias = \"sid\"\nsuite = \"sid\"\nseries = \"7.x\"\nmeta = \"m\"\n";
        let m = Manifest::parse(&format!(
            "{base}[[kernel.known_splat]]\npattern = \"at fs/foo.c\"\narch = \"arm64\"\nreason = \"Debian bug #1\"\n\
             [[kernel.known_splat]]\npattern = \"BUG: bar\"\nreason = \"Debian bug #2\"\n"
        ))
        .unwrap();
        let k = m.get("sid").unwrap();
        let patterns = |arch| {
            k.known_splats(arch)
                .into_iter()
                .map(|s| s.pattern)
                .collect::<Vec<_>>()
        };
        assert_eq!(patterns(Arch::Arm64), ["at fs/foo.c", "BUG: bar"]);
        assert_eq!(patterns(Arch::X86_64), ["BUG: bar"]);
        assert!(Manifest::parse(base).unwrap().kernel[0]
            .known_splat
            .is_empty());

        let errors = [
            (
                "pattern = \"x\"\nreason = \" \"\n",
                "kernel `sid`: known_splat `x` has no reason",
            ),
            ("pattern = \"x\"\n", "missing field `reason`"),
            (
                "pattern = \"\"\nreason = \"r\"\n",
                "kernel `sid`: a known_splat has an empty pattern",
            ),
            (
                "pattern = \"x\"\nreason = \"r\"\narch = \"mips\"\n",
                "unknown variant `mips`",
            ),
            (
                "pattern = \"x\"\nreason = \"r\"\narc = \"arm64\"\n",
                "unknown field `arc`",
            ),
        ];
        for (splat, want) in errors {
            let e = Manifest::parse(&format!("{base}[[kernel.known_splat]]\n{splat}")).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains(want), "{splat}: {msg}");
        }
    }
}
