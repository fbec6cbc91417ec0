//! Every host program the harness runs, built in one place with xshell's
//! `cmd!`: each argument is spliced in as one argument, never quoted by
//! hand or passed through a shell. A builder hands back a
//! `std::process::Command` (xshell's `From<Cmd>`), so the caller can still
//! give it a process group of its own, pipes and a directory: the
//! stop-everything invariant stays where the process is spawned
//! ([`super::run_checked`], the boot, the guard).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

fn shell() -> Result<Shell> {
    Shell::new().context("reading the current directory for a host command")
}

/// `PROGRAM ARGS...`: a program the harness provisions or finds on PATH
/// (vng, virtiofsd, qemu, rustup, npm, python3, pip, dpkg, dpkg-query, git).
pub fn program<I>(program: impl AsRef<Path>, args: I) -> Result<Command>
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let sh = shell()?;
    let program = program.as_ref();
    Ok(cmd!(sh, "{program} {args...}").into())
}

/// `cargo ARGS...`, the cargo that runs the harness (`$CARGO`) if any.
pub fn cargo<I>(args: I) -> Result<Command>
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    program(cargo, args)
}

/// `apt-get OPTIONS... ARGS...` (a private configuration's `-o` options).
pub fn apt_get<O, A>(options: O, args: A) -> Result<Command>
where
    O: IntoIterator,
    O::Item: AsRef<OsStr>,
    A: IntoIterator,
    A::Item: AsRef<OsStr>,
{
    program("apt-get", collect(options).into_iter().chain(collect(args)))
}

/// `apt-cache OPTIONS... ARGS...`.
pub fn apt_cache<O, A>(options: O, args: A) -> Result<Command>
where
    O: IntoIterator,
    O::Item: AsRef<OsStr>,
    A: IntoIterator,
    A::Item: AsRef<OsStr>,
{
    program(
        "apt-cache",
        collect(options).into_iter().chain(collect(args)),
    )
}

/// `cargo install --locked --quiet --root ROOT CRATE`: a tool into the cache.
pub fn cargo_install(root: &Path, krate: &str) -> Result<Command> {
    let sh = shell()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Ok(cmd!(sh, "{cargo} install --locked --quiet --root {root} {krate}").into())
}

/// `dpkg-deb -x DEB INTO`: a package's files extracted into a directory.
pub fn dpkg_extract(deb: &Path, into: &Path) -> Result<Command> {
    let sh = shell()?;
    Ok(cmd!(sh, "dpkg-deb -x {deb} {into}").into())
}

/// `depmod -b ROOT RELEASE`: module dependencies of an extracted kernel.
pub fn depmod(root: &Path, release: &str) -> Result<Command> {
    let sh = shell()?;
    Ok(cmd!(sh, "depmod -b {root} {release}").into())
}

fn collect<I>(items: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    items
        .into_iter()
        .map(|i| i.as_ref().to_os_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line, cargo named `cargo` (under `cargo test` it is
    /// `$CARGO`, a full path).
    fn line(c: &Command) -> Vec<String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| {
                if a == cargo {
                    "cargo".into()
                } else {
                    a.to_string_lossy().into_owned()
                }
            })
            .collect()
    }

    #[test]
    fn arguments_are_spliced_one_by_one() {
        let cases: [(Command, &[&str]); 6] = [
            (
                apt_get(
                    ["-o", "Dir::Cache=/c d"],
                    ["-q", "download", "linux-image-6.1.0-50-amd64"],
                )
                .expect("apt-get"),
                &[
                    "apt-get",
                    "-o",
                    "Dir::Cache=/c d",
                    "-q",
                    "download",
                    "linux-image-6.1.0-50-amd64",
                ],
            ),
            (
                apt_cache(Vec::<String>::new(), ["show", "a b:arm64"]).expect("apt-cache"),
                &["apt-cache", "show", "a b:arm64"],
            ),
            (
                dpkg_extract(Path::new("/d/x y.deb"), Path::new("/r")).expect("dpkg-deb"),
                &["dpkg-deb", "-x", "/d/x y.deb", "/r"],
            ),
            (
                cargo_install(Path::new("/c/t"), "virtiofsd@1.14.0").expect("cargo install"),
                &[
                    "cargo",
                    "install",
                    "--locked",
                    "--quiet",
                    "--root",
                    "/c/t",
                    "virtiofsd@1.14.0",
                ],
            ),
            (
                depmod(Path::new("/r"), "6.1.0-50-amd64").expect("depmod"),
                &["depmod", "-b", "/r", "6.1.0-50-amd64"],
            ),
            (
                program("/v/bin/vng", ["--run", "$HOME; rm -rf /", ""]).expect("vng"),
                &["/v/bin/vng", "--run", "$HOME; rm -rf /", ""],
            ),
        ];
        for (c, want) in cases {
            assert_eq!(line(&c), want);
        }
    }
}
