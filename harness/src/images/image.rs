//! Stage 2, guest image: what the guest runs besides the kernel: the
//! tracer and the guest agent, built in release mode for the guest's arch
//! into their own target directory (cross-built for a foreign arch), and,
//! for a foreign arch, a guest root built from a recipe in `vm-images/`
//! ([`crate::images::rootfs`]); host-arch guests use the host's root read-only.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::model::Arch;
use crate::paths::repo_root;
use crate::process::commands;

/// The guest-side binaries for one arch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestBinaries {
    pub tracer: PathBuf,
    pub agent: PathBuf,
    /// The criterion bench of the unlink path (overhead runs only).
    pub bench: Option<PathBuf>,
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

/// Environment for cross-building to `arch` from this host (pure, tested):
/// the GNU cross linker and C compiler, and pkg-config pointed at the
/// target's multiarch libraries (libelf, zlib).
pub fn cross_env(arch: Arch) -> Vec<(String, String)> {
    if arch == Arch::host() {
        return Vec::new();
    }
    let (gcc, multiarch) = match arch {
        Arch::Arm64 => ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu"),
        Arch::X86_64 => ("x86_64-linux-gnu-gcc", "x86_64-linux-gnu"),
    };
    let triple = arch.rust_target();
    vec![
        (
            format!(
                "CARGO_TARGET_{}_LINKER",
                triple.to_uppercase().replace('-', "_")
            ),
            gcc.to_string(),
        ),
        (format!("CC_{}", triple.replace('-', "_")), gcc.to_string()),
        ("PKG_CONFIG_ALLOW_CROSS".into(), "1".into()),
        (
            "PKG_CONFIG_PATH".into(),
            format!("/usr/lib/{multiarch}/pkgconfig"),
        ),
    ]
}

/// The guest root recipe for `arch` (None: the host's root is used).
pub fn root_recipe(arch: Arch) -> Option<PathBuf> {
    (arch != Arch::host()).then(|| {
        repo_root()
            .join("vm-images")
            .join(format!("{}-root.toml", arch.name()))
    })
}

/// Builds (incrementally) the tracer and agent for `arch`.
pub fn build(arch: Arch) -> Result<GuestBinaries> {
    let root = repo_root();
    let target_dir = root.join("target").join("guest");
    crate::process::run_checked(
        commands::cargo(cargo_args(arch, &target_dir))?
            .current_dir(&root)
            .envs(cross_env(arch)),
        &format!("building the guest binaries for {arch}"),
        15,
    )?;
    let dir = target_dir.join(arch.rust_target()).join("release");
    Ok(GuestBinaries {
        tracer: dir.join("unlink-tracer"),
        agent: dir.join("unlink-guest"),
        bench: None,
    })
}

/// `cargo bench --no-run` arguments for the guest's unlink-path bench (pure).
pub fn bench_cargo_args(arch: Arch, target_dir: &std::path::Path) -> Vec<String> {
    vec![
        "bench".into(),
        "--no-run".into(),
        "--locked".into(),
        "-p".into(),
        "unlink-path-bench".into(),
        "--bench".into(),
        "unlink_path".into(),
        "--target".into(),
        arch.rust_target().into(),
        "--target-dir".into(),
        target_dir.display().to_string(),
        "--message-format=json-render-diagnostics".into(),
    ]
}

/// The bench executable cargo reported building, from its JSON messages (pure).
pub fn bench_executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "unlink_path")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// Builds (incrementally) the criterion bench of the unlink path for `arch`.
pub fn build_bench(arch: Arch) -> Result<PathBuf> {
    let root = repo_root();
    let target_dir = root.join("target").join("guest");
    let out = commands::cargo(bench_cargo_args(arch, &target_dir))?
        .current_dir(&root)
        .envs(cross_env(arch))
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("running cargo to build the {arch} bench"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        anyhow::bail!(
            "building the unlink-path bench for {arch} failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    bench_executable(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("cargo built no unlink_path bench for {arch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_environment() {
        let env = cross_env(Arch::Arm64);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"),
            Some("aarch64-linux-gnu-gcc")
        );
        assert_eq!(
            get("CC_aarch64_unknown_linux_gnu"),
            Some("aarch64-linux-gnu-gcc")
        );
        assert_eq!(
            get("PKG_CONFIG_PATH"),
            Some("/usr/lib/aarch64-linux-gnu/pkgconfig")
        );
        assert!(cross_env(Arch::host()).is_empty());
        assert!(root_recipe(Arch::host()).is_none());
        assert!(root_recipe(Arch::Arm64).is_some_and(|p| p.is_file()));
    }

    #[test]
    fn bench_build() {
        assert_eq!(
            bench_cargo_args(Arch::Arm64, std::path::Path::new("/t")).join(" "),
            "bench --no-run --locked -p unlink-path-bench --bench unlink_path --target aarch64-unknown-linux-gnu --target-dir /t --message-format=json-render-diagnostics"
        );
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"host"},"executable":"/t/host-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"unlink_path"},"executable":"/t/unlink_path-2"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            bench_executable(messages),
            Some(PathBuf::from("/t/unlink_path-2"))
        );
        assert_eq!(bench_executable("not json\n"), None);
    }

    #[test]
    fn cargo_command() {
        assert_eq!(
            cargo_args(Arch::X86_64, std::path::Path::new("/t")).join(" "),
            "build --release --locked -p unlink-tracer -p unlink-guest --target x86_64-unknown-linux-gnu --target-dir /t"
        );
    }
}
