//! `harness run KERNEL/ARCH -- COMMAND`: boots exactly what that cell
//! boots (its locked kernel, its root, the freshly built tracer and agent
//! on PATH, tracefs, the guest-local tmpfs as the directory) and runs the
//! command there; its output streams to stdout, and the harness exits
//! with its exit code. Deadlines, signals and cleanup as for `matrix`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use harness::engine::Job;
use harness::model::{Accel, Status};

use super::args::{MatrixArgs, TransportArg};
use super::run::{run_engine, Ran};
use super::selection::{in_range, usage_error, Selection};

/// The exit code when the harness, not the command, failed (the guest did
/// not boot, the cell errored), as `docker run` and `env` use it.
pub const HARNESS_FAILED: u8 = 125;
/// The exit code when a deadline cut the command off, as `timeout` uses it.
pub const TIMED_OUT: u8 = 124;

#[derive(Debug, clap::Args)]
pub struct RunCmd {
    /// The cell whose guest runs the command: KERNEL/ARCH, e.g.
    /// bookworm/x86_64 (with --kernel-image: custom/ARCH).
    pub cell: String,
    /// QEMU acceleration: auto tries KVM with a probe boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: Accel,
    /// Seconds the guest may take to boot, 1 to 86400 [default: as matrix].
    #[arg(long, value_parser = in_range::<u64>(1, 86_400))]
    pub boot_timeout: Option<u64>,
    /// Seconds the command may run once the guest is up, 1 to 86400 [default: as matrix].
    #[arg(long, value_parser = in_range::<u64>(1, 86_400))]
    pub run_timeout: Option<u64>,
    /// Where the cell's console log and files go [default: target/run-report].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Boot your own kernel instead (the cell is then custom/ARCH).
    #[arg(long, value_name = "PATH")]
    pub kernel_image: Option<PathBuf>,
    /// The modules directory of --kernel-image.
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    pub kernel_modules: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The matrix arguments that select and boot `cmd`'s one cell (pure); Err
/// is the usage error.
pub fn matrix_args(cmd: &RunCmd) -> std::result::Result<MatrixArgs, String> {
    let bad = || {
        format!(
            "`{}`: expected KERNEL/ARCH, e.g. bookworm/x86_64 (custom/ARCH with --kernel-image)",
            cmd.cell
        )
    };
    let (kernel, arch) = cmd.cell.split_once('/').ok_or_else(bad)?;
    if kernel.is_empty() || arch.is_empty() {
        return Err(bad());
    }
    match (kernel == "custom", cmd.kernel_image.is_some()) {
        (true, false) => return Err("custom/ARCH boots --kernel-image PATH: give one".into()),
        (false, true) => {
            return Err(format!(
                "--kernel-image boots a custom cell: name it custom/{arch}"
            ))
        }
        _ => {}
    }
    Ok(MatrixArgs {
        select: Selection {
            kernels: if cmd.kernel_image.is_some() {
                Vec::new()
            } else {
                vec![kernel.to_string()]
            },
            arch: vec![arch.to_string()],
            flavour: None,
        },
        accel: cmd.accel,
        reprobe_kvm: false,
        report: cmd.report.clone(),
        jobs: Some(1),
        boot_timeout: cmd.boot_timeout,
        run_timeout: cmd.run_timeout,
        cell_timeout: Vec::new(),
        transport: TransportArg::Virtiofs,
        relock: false,
        kernel_image: cmd.kernel_image.clone(),
        kernel_modules: cmd.kernel_modules.clone(),
        tracer: None,
    })
}

pub fn run(cmd: RunCmd) -> Result<ExitCode> {
    let args = match matrix_args(&cmd) {
        Ok(a) => a,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/run-report"));
    let Ran { results, .. } = match run_engine(&args, &report_dir, Job::Exec(cmd.command))? {
        Ok(ran) => ran,
        Err(code) => return Ok(code),
    };
    harness::process::stop::release_guard();
    if let Some(code) = super::signals::cancelled_code() {
        return Ok(code);
    }
    let Some(row) = results.first() else {
        eprintln!("harness: no cell ran");
        return Ok(ExitCode::from(HARNESS_FAILED));
    };
    let console = row.dir.join("console.log");
    Ok(match (row.status, row.exit_code) {
        (Status::Pass, Some(code)) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        (Status::Timeout, _) => {
            eprintln!(
                "harness: {}: {} (console: {})",
                cmd.cell,
                row.error.as_deref().unwrap_or("timed out"),
                console.display()
            );
            ExitCode::from(TIMED_OUT)
        }
        _ => {
            eprintln!(
                "harness: {}: {} (console: {})",
                cmd.cell,
                row.error.as_deref().unwrap_or("the command did not run"),
                console.display()
            );
            ExitCode::from(HARNESS_FAILED)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        cmd: RunCmd,
    }

    fn parse(args: &[&str]) -> RunCmd {
        T::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .expect("parses")
            .cmd
    }

    #[test]
    fn a_cell_selects_one_kernel_and_arch() {
        let a = matrix_args(&parse(&["bookworm/x86_64", "--", "true"])).expect("args");
        assert_eq!(a.select.kernels, ["bookworm"]);
        assert_eq!(a.select.arch, ["x86_64"]);
        assert_eq!(a.jobs, Some(1));
        let c = parse(&[
            "custom/arm64",
            "--kernel-image",
            "/k/Image",
            "--",
            "ls",
            "-l",
        ]);
        assert_eq!(c.command, ["ls", "-l"]);
        let a = matrix_args(&c).expect("args");
        assert!(a.select.kernels.is_empty());
        assert_eq!(
            a.kernel_image.as_deref(),
            Some(std::path::Path::new("/k/Image"))
        );
        for (args, want) in [
            (&["bookworm", "--", "true"][..], "expected KERNEL/ARCH"),
            (&["/x86_64", "--", "true"], "expected KERNEL/ARCH"),
            (&["custom/x86_64", "--", "true"], "give one"),
            (
                &["sid/x86_64", "--kernel-image", "/k", "--", "true"],
                "name it custom/x86_64",
            ),
        ] {
            let e = matrix_args(&parse(args)).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        assert!(
            T::try_parse_from(["run", "bookworm/x86_64"]).is_err(),
            "a command is required"
        );
    }
}
