//! The kernel manifest (`vm-images/kernels.toml`) and the arch names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One suite alias of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct KernelEntry {
    pub alias: String,
    pub suite: String,
    pub series: String,
    pub meta: String,
}

impl KernelEntry {
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

/// The workspace root (the harness always runs from a checkout).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
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
    fn arch_names() {
        for (s, want) in [
            ("x86_64", Some(Arch::X86_64)),
            ("aarch64", Some(Arch::Arm64)),
            ("mips", None),
        ] {
            assert_eq!(Arch::parse(s), want);
        }
    }
}
