//! What a command selects (kernels, arches, flavour, cells) and how many
//! cells run at once; a bad value is a usage error: one line naming the
//! valid values, exit 2.

use std::process::ExitCode;

use harness::kernels::manifest::{KernelEntry, Manifest};
use harness::model::{Accel, Arch, CellId};

#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Kernels (suite aliases from vm-images/kernels.toml), comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Guest architectures, comma separated [default: x86_64,arm64].
    #[arg(long, value_delimiter = ',')]
    pub arch: Vec<String>,
    /// Kernel flavour (default: generic), e.g. `cloud`.
    #[arg(long)]
    pub flavour: Option<String>,
}

/// Exit code 2 with one line naming the valid values.
pub fn usage_error(msg: String) -> ExitCode {
    eprintln!("harness: {msg}");
    ExitCode::from(2)
}

/// Cells at once. Under TCG a guest runs all its vCPUs on one host thread
/// (`TCG_ONE_THREAD`), busy from boot to power-off: one guest per core
/// (measured on 2 cores: a bookworm/x86_64 cell took 50-56 s two at a time
/// and 105 s three at a time, so a third guest only slowed the other two).
/// With KVM a guest waits on 9p and its own timers part of the time, so 1.5
/// cells per core keep the cores busy. Each needs 1 GiB plus QEMU's own
/// ~0.5 GiB.
pub fn default_jobs(accel: Accel) -> usize {
    let cores = cores();
    let mem_gib = nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total() / (1 << 30))
        .unwrap_or(2) as usize;
    jobs_for(accel, cores, mem_gib)
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn jobs_for(accel: Accel, cores: usize, mem_gib: usize) -> usize {
    let per_cpu = match accel {
        Accel::Kvm => cores * 3 / 2,
        _ => cores,
    };
    per_cpu.min(mem_gib * 2 / 3).max(1)
}

/// The selection's kernels and arches, or the usage error to exit 2 with.
pub fn select(
    manifest: &Manifest,
    sel: &Selection,
) -> std::result::Result<(Vec<KernelEntry>, Vec<Arch>), String> {
    let mut kernels = Vec::new();
    for k in &sel.kernels {
        match manifest.get(k) {
            Some(e) => kernels.push(e.clone()),
            None => {
                return Err(format!(
                    "unknown kernel `{k}`; known kernels: {}",
                    manifest.aliases().join(", ")
                ))
            }
        }
    }
    if sel.kernels.is_empty() {
        kernels = manifest.kernel.clone();
    }
    let mut arches = Vec::new();
    for a in &sel.arch {
        match Arch::parse(a) {
            Some(arch) if !arches.contains(&arch) => arches.push(arch),
            Some(_) => {}
            None => {
                return Err(format!(
                    "unknown arch `{a}`; valid: {}",
                    Arch::ALL.map(|a| a.name()).join(", ")
                ))
            }
        }
    }
    if sel.arch.is_empty() {
        arches = Arch::ALL.to_vec();
    }
    Ok((kernels, arches))
}

/// `CELL=SECS` (`sid/arm64=600`).
pub fn parse_cell_timeout(s: &str) -> std::result::Result<(CellId, u64), String> {
    let bad = || format!("--cell-timeout `{s}`: expected KERNEL/ARCH=SECS, e.g. sid/arm64=600");
    let (cell, secs) = s.split_once('=').ok_or_else(bad)?;
    let (alias, arch) = cell.split_once('/').ok_or_else(bad)?;
    let arch = Arch::parse(arch).ok_or_else(bad)?;
    let secs = secs.parse().map_err(|_| bad())?;
    // The same range as --boot-timeout and --run-timeout.
    if !(1..=86_400).contains(&secs) {
        return Err(format!(
            "--cell-timeout `{s}`: SECS must be a whole number from 1 to 86400"
        ));
    }
    Ok((
        CellId {
            alias: alias.to_string(),
            arch,
        },
        secs,
    ))
}

/// A clap parser of a whole number in `lo..=hi`; a refusal names the range.
pub fn in_range<T>(lo: T, hi: T) -> impl Fn(&str) -> std::result::Result<T, String> + Clone
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(format!("`{s}` is not a whole number from {lo} to {hi}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_from_cores_and_memory() {
        let cases = [
            (Accel::Kvm, 2, 24, 3),
            (Accel::Kvm, 8, 24, 12),
            (Accel::Kvm, 16, 8, 5),
            (Accel::Tcg, 2, 24, 2),
            (Accel::Tcg, 8, 24, 8),
            (Accel::Tcg, 16, 8, 5),
            (Accel::Tcg, 2, 1, 1),
            (Accel::Kvm, 1, 0, 1),
        ];
        for (accel, cores, mem, want) in cases {
            assert_eq!(
                jobs_for(accel, cores, mem),
                want,
                "{accel:?}: {cores} cores, {mem} GiB"
            );
        }
    }

    #[test]
    fn cell_timeouts() {
        let ok = parse_cell_timeout("sid/arm64=600").unwrap();
        assert_eq!((ok.0.to_string(), ok.1), ("sid/arm64".to_string(), 600));
        for bad in ["sid=5", "sid/sparc=5", "sid/arm64=x", "sid/arm64"] {
            let e = parse_cell_timeout(bad).unwrap_err();
            assert!(e.contains("expected KERNEL/ARCH=SECS"), "{bad}: {e}");
        }
        for out_of_range in ["sid/arm64=0", "sid/arm64=86401"] {
            let e = parse_cell_timeout(out_of_range).unwrap_err();
            assert!(e.contains("from 1 to 86400"), "{out_of_range}: {e}");
        }
    }

    #[test]
    fn numbers_out_of_range_name_the_range() {
        let jobs = in_range::<usize>(1, 64);
        assert_eq!(jobs("3"), Ok(3));
        for bad in ["0", "65", "-1", "x", ""] {
            assert_eq!(
                jobs(bad),
                Err(format!("`{bad}` is not a whole number from 1 to 64")),
                "{bad}"
            );
        }
    }
}
