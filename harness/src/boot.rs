//! Stage 3, boot: virtme-ng command lines (pure builders, table-tested)
//! and a runner that enforces a deadline, keeps the console log and
//! recognises kernel failures in it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::manifest::Arch;

/// CPU acceleration for QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when a probe boot proves it works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// Everything one guest boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    pub vng: PathBuf,
    pub arch: Arch,
    pub accel: Accel,
    pub vmlinuz: PathBuf,
    pub cpus: u32,
    pub memory_mb: u32,
    /// Host directories the guest may write (results).
    pub rwdirs: Vec<PathBuf>,
    /// Extra QEMU options (e.g. `-icount shift=0,sleep=off`).
    pub qemu_opts: Option<String>,
    /// The command run inside the guest.
    pub command: String,
}

/// The vng argument list for a spec (without the program name).
pub fn vng_args(spec: &BootSpec) -> Vec<String> {
    let mut args = vec![
        "--run".to_string(),
        spec.vmlinuz.display().to_string(),
        "--verbose".to_string(),
        "--disable-monitor".to_string(),
        "--cpus".to_string(),
        spec.cpus.to_string(),
        "--memory".to_string(),
        format!("{}M", spec.memory_mb),
    ];
    if spec.accel == Accel::Tcg {
        args.push("--disable-kvm".into());
    }
    if spec.arch != host_arch() {
        args.push("--arch".into());
        args.push(
            match spec.arch {
                Arch::X86_64 => "x86_64",
                Arch::Arm64 => "arm64",
            }
            .into(),
        );
    }
    for d in &spec.rwdirs {
        args.push(format!("--rwdir={}", d.display()));
    }
    if let Some(opts) = &spec.qemu_opts {
        args.push(format!("--qemu-opts={opts}"));
    }
    args.push("--exec".into());
    args.push(spec.command.clone());
    args
}

pub fn host_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::Arm64
    } else {
        Arch::X86_64
    }
}

/// A kernel failure recognised in the console log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleFailure {
    pub kind: &'static str,
    pub line: String,
}

/// Console patterns that mean the guest kernel is broken.
const FAILURES: &[(&str, &str)] = &[
    ("Kernel panic", "kernel panic"),
    ("BUG: soft lockup", "soft lockup"),
    ("rcu_sched detected stalls", "RCU stall"),
    ("rcu_preempt detected stalls", "RCU stall"),
    ("detected stall on CPU", "RCU stall"),
    ("Oops:", "oops"),
    ("BUG: kernel NULL pointer", "oops"),
    ("general protection fault", "oops"),
];

/// Recognises a failure in one console line.
pub fn console_failure(line: &str) -> Option<ConsoleFailure> {
    FAILURES
        .iter()
        .find(|(pat, _)| line.contains(pat))
        .map(|(_, kind)| ConsoleFailure {
            kind,
            line: line.trim().to_string(),
        })
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// vng exited by itself with this code.
    Exited(Option<i32>),
    /// The deadline passed; QEMU was killed.
    Timeout,
    /// A kernel failure was seen on the console; QEMU was killed.
    Failure(ConsoleFailure),
}

#[derive(Debug, Clone)]
pub struct BootResult {
    pub end: BootEnd,
    pub wall: Duration,
    /// Seconds from start to the first line the guest kernel printed.
    pub first_kernel_line_s: Option<f64>,
}

/// Runs vng, writing every console line to `console_log`, killing the whole
/// process group at `deadline` or at the first kernel failure.
pub fn run(spec: &BootSpec, console_log: &Path, deadline: Duration) -> Result<BootResult> {
    use std::os::unix::process::CommandExt;
    let mut log = std::fs::File::create(console_log)
        .with_context(|| format!("creating {}", console_log.display()))?;
    let start = Instant::now();
    // vng calls its helpers (virtme-run) through PATH: put its own dir first.
    let mut path = std::ffi::OsString::new();
    if let Some(dir) = spec.vng.parent().filter(|d| !d.as_os_str().is_empty()) {
        path.push(dir);
        path.push(":");
    }
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let mut child = Command::new(&spec.vng)
        .args(vng_args(spec))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", spec.vng.display()))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);

    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                buf.clear();
            }
        }));
    }
    drop(tx);

    let mut first_kernel_line = None;
    let kill = || {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    };
    let end = loop {
        let left = deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            kill();
            break BootEnd::Timeout;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                use std::io::Write;
                let _ = log.write_all(line.as_bytes());
                if first_kernel_line.is_none() && line.contains("] Linux version") {
                    first_kernel_line = Some(start.elapsed().as_secs_f64());
                }
                if let Some(f) = console_failure(&line) {
                    kill();
                    break BootEnd::Failure(f);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().context("waiting for vng")?;
                break BootEnd::Exited(status.code());
            }
        }
    };
    if !matches!(end, BootEnd::Exited(_)) {
        let _ = child.wait();
    }
    // Drain what the readers still hold into the log.
    for line in rx.try_iter() {
        use std::io::Write;
        let _ = log.write_all(line.as_bytes());
    }
    Ok(BootResult {
        end,
        wall: start.elapsed(),
        first_kernel_line_s: first_kernel_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel, arch: Arch, qemu_opts: Option<&str>) -> BootSpec {
        BootSpec {
            vng: "vng".into(),
            arch,
            accel,
            vmlinuz: "/k/vmlinuz".into(),
            cpus: 2,
            memory_mb: 1024,
            rwdirs: vec!["/out".into()],
            qemu_opts: qemu_opts.map(str::to_string),
            command: "/bin/guest --out /out".into(),
        }
    }

    #[test]
    fn vng_command_lines() {
        let base = "--run /k/vmlinuz --verbose --disable-monitor --cpus 2 --memory 1024M";
        let cases = [
            (spec(Accel::Tcg, Arch::X86_64, None), format!("{base} --disable-kvm --rwdir=/out --exec /bin/guest --out /out")),
            (spec(Accel::Kvm, Arch::X86_64, None), format!("{base} --rwdir=/out --exec /bin/guest --out /out")),
            (
                spec(Accel::Tcg, Arch::X86_64, Some("-icount shift=0,sleep=off")),
                format!("{base} --disable-kvm --rwdir=/out --qemu-opts=-icount shift=0,sleep=off --exec /bin/guest --out /out"),
            ),
            (spec(Accel::Tcg, Arch::Arm64, None), format!("{base} --disable-kvm --arch arm64 --rwdir=/out --exec /bin/guest --out /out")),
        ];
        for (s, want) in cases {
            assert_eq!(vng_args(&s).join(" "), want);
        }
    }

    #[test]
    fn console_failures() {
        let cases = [
            (
                "[   12.3] Kernel panic - not syncing: VFS",
                Some("kernel panic"),
            ),
            (
                "[    1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!",
                Some("soft lockup"),
            ),
            (
                "[   30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
                Some("RCU stall"),
            ),
            ("[    5.5] Oops: 0000 [#1] PREEMPT SMP", Some("oops")),
            ("[    0.0] Linux version 6.1.0", None),
        ];
        for (line, want) in cases {
            assert_eq!(console_failure(line).map(|f| f.kind), want, "{line}");
        }
    }
}
