//! Stage 3, boot: virtme-ng command lines (pure builders, table-tested)
//! and a runner that enforces a deadline, keeps the console log and
//! recognises kernel failures (fatal) and splats (recorded) in it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::model::{Accel, Arch};

/// Everything one guest boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    pub vng: PathBuf,
    pub arch: Arch,
    pub accel: Accel,
    pub vmlinuz: PathBuf,
    pub cpus: u32,
    pub memory_mb: u32,
    /// Host directories the guest may write (results), and where the guest sees them.
    pub rwdirs: Vec<Share>,
    /// Extra QEMU options (e.g. `-icount shift=0,sleep=off`).
    pub qemu_opts: Option<String>,
    /// The guest's root directory (None: the host's root, read-only).
    pub root: Option<PathBuf>,
    /// A busybox for the guest's arch (virtme-ng's initramfs), when not the host's.
    pub busybox: Option<PathBuf>,
    /// How the root and the shares reach the guest.
    pub transport: Transport,
    /// The command run inside the guest.
    pub command: String,
}

/// virtio-fs is about twice as fast as 9p under TCG here and the only way
/// into kernels built without 9p (the `cloud` flavour); virtme-ng uses it
/// whenever it finds `virtiofsd` on PATH, and 9p otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    NineP,
    /// virtio-fs, with the directory holding `virtiofsd`.
    VirtioFs(PathBuf),
}

/// A host directory shared read-write with the guest at `guest`. The
/// explicit guest path works with any root (vng refuses a plain --rwdir
/// outside a --root); it should sit on a guest tmpfs such as /run, where
/// the mount point can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub guest: PathBuf,
    pub host: PathBuf,
}

/// TCG runs every vCPU of a guest on one host thread. Multi-threaded TCG
/// (QEMU's default) aborts now and then while a guest sets up its PCI
/// devices: one vCPU's stale TLB entry meets the memory map another vCPU
/// just changed (`iotlb_to_section: Assertion section_index <
/// d->map.sections_nb`, `msix_table_mmio_write: Assertion addr + size <=
/// ...`: QEMU 10.0, bookworm's 6.1 guest, 3 of about 90 boots with two
/// guests at once). With one thread per guest the race cannot happen, and
/// two guests at a time still keep both host cores busy.
pub const TCG_ONE_THREAD: &str = "-accel tcg,thread=single";

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
    if spec.arch != Arch::host() {
        args.push("--arch".into());
        args.push(
            match spec.arch {
                Arch::X86_64 => "x86_64",
                Arch::Arm64 => "arm64",
            }
            .into(),
        );
    }
    if let Some(root) = &spec.root {
        args.push("--root".into());
        args.push(root.display().to_string());
    }
    if let Some(bb) = &spec.busybox {
        args.push("--busybox".into());
        args.push(bb.display().to_string());
    }
    for d in &spec.rwdirs {
        args.push(format!(
            "--rwdir={}={}",
            d.guest.display(),
            d.host.display()
        ));
    }
    let opts: Vec<&str> = (spec.accel == Accel::Tcg)
        .then_some(TCG_ONE_THREAD)
        .into_iter()
        .chain(spec.qemu_opts.as_deref())
        .collect();
    if !opts.is_empty() {
        args.push(format!("--qemu-opts={}", opts.join(" ")));
    }
    args.push("--exec".into());
    args.push(spec.command.clone());
    args
}

/// A kernel failure recognised in the console log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleFailure {
    pub kind: &'static str,
    pub line: String,
}

/// How long a guest goes on after its kernel's first failure line, so the
/// rest of the report (an RCU stall's backtraces, a panic's call trace)
/// reaches the log before the guest is killed.
const FAILURE_REPORT_GRACE: Duration = Duration::from_secs(5);

/// A line for the console log at a kernel failure: the host's load then,
/// so a stall can be told from a host that had no CPU for the guest.
fn host_load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "harness: host load at this failure (/proc/loadavg): {} on {} cores\n",
        load.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// The kind of a [`ConsoleFailure`] that is QEMU's own assertion, not
/// the guest's: the cell is an error of the emulator, not a failure of
/// the kernel or the tracer.
pub const QEMU_ABORT: &str = "QEMU assertion";

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
    // virtme-ng's initramfs when the root share does not mount.
    (SHARE_FAILURE_LINE, SHARE_FAILURE),
];

/// A kernel splat seen on the console: the kernel complained (a WARN, a
/// BUG, a sanitizer or lockdep report, a hung task) but kept running.
/// It fails the cell unless the kernel's manifest entry declares it
/// (`known_splat`), and it does not stop the boot: the console log keeps
/// the whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Splat {
    /// Its family, a stable name (`WARN splat`, `KASAN report`, ...).
    pub kind: &'static str,
    /// The console line from the family's marker on (without the printk
    /// time and caller prefixes), e.g. `WARNING: CPU: 1 PID: 7 at ...`.
    pub line: String,
}

/// What lockdep prints after `WARNING: ` (kernel/locking/lockdep.c and
/// RCU's lockdep checks); any other `WARNING:` message is a WARN splat.
const LOCKDEP_WARNINGS: &[&str] = &[
    "possible ",
    "inconsistent lock state",
    "bad unlock balance detected",
    "bad contention detected",
    "held lock freed",
    "lock held when returning to user space",
    "suspicious RCU usage",
    "Nested lock was not taken",
    "chain_key collision",
];

/// The kind of splat a console message (printk prefixes removed) starts,
/// if any. The marker must open the message: `RETBleed: WARNING: ...`
/// (a boot-time notice), `DEBUG: ...` or an agent line quoting a
/// marker is no splat.
fn splat_kind(msg: &str) -> Option<&'static str> {
    if let Some(rest) = msg.strip_prefix("WARNING:") {
        let rest = rest.trim_start();
        let lockdep = LOCKDEP_WARNINGS.iter().any(|w| rest.starts_with(w))
            || rest.contains("lock order detected");
        return Some(if lockdep {
            "lockdep report"
        } else {
            "WARN splat"
        });
    }
    if msg.starts_with("BUG: KASAN:") {
        return Some("KASAN report");
    }
    if msg.starts_with("BUG:") {
        return Some("BUG");
    }
    if msg.starts_with("UBSAN:") {
        return Some("UBSAN report");
    }
    if msg.starts_with("INFO: possible ")
        || msg.starts_with("INFO: trying to register non-static key")
    {
        return Some("lockdep report");
    }
    if msg.starts_with("INFO: task ") && msg.contains(" blocked for more than ") {
        return Some("hung task");
    }
    if msg.starts_with("refcount_t:") {
        return Some("refcount_t warning");
    }
    if msg.starts_with("kernel BUG at ") {
        return Some("kernel BUG");
    }
    None
}

/// A console line without the kernel's printk prefixes: the time
/// (`[    1.234567]`) and the caller (`[    T1]`), when present.
fn console_message(line: &str) -> &str {
    let mut s = line.trim();
    while let Some(rest) = s.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => s = rest[end + 1..].trim_start(),
            None => break,
        }
    }
    s
}

/// Recognises a kernel splat in one console line. A fatal failure
/// ([`console_failure`], checked first by [`run`]) is not a splat.
pub fn console_splat(line: &str) -> Option<Splat> {
    if console_failure(line).is_some() {
        return None;
    }
    let msg = console_message(line);
    splat_kind(msg).map(|kind| Splat {
        kind,
        line: msg.to_string(),
    })
}

/// virtme-ng's initramfs line when the root share cannot be mounted.
pub const SHARE_FAILURE_LINE: &str = "virtfs is broken";
/// The failure kind of that line.
pub const SHARE_FAILURE: &str = "shared root mount failure";

/// Recognises a failure in one console line.
pub fn console_failure(line: &str) -> Option<ConsoleFailure> {
    // QEMU's own abort (its stderr shares the console log), e.g. the
    // multi-threaded TCG race that [`TCG_ONE_THREAD`] avoids: any other
    // still fails its cell as the emulator's error, never the tracer's.
    if line.starts_with("qemu-system-") && line.contains("Assertion") {
        return Some(ConsoleFailure {
            kind: QEMU_ABORT,
            line: line.trim().to_string(),
        });
    }
    FAILURES
        .iter()
        .find(|(pat, _)| line.contains(pat))
        .map(|(_, kind)| ConsoleFailure {
            kind,
            line: line.trim().to_string(),
        })
}

/// The line the guest agent prints first: the guest is up.
pub use unlink_schema::protocol::GUEST_START_MARKER;

/// A boot's two deadlines: until the guest agent starts, then for its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub boot: Duration,
    pub run: Duration,
}

impl Deadlines {
    /// Deadlines of an overhead boot that runs `steps` mode rounds: a
    /// minute each under TCG (ten seconds with KVM), twice that for
    /// another arch, on top of the usual boot.
    pub fn for_overhead(accel: Accel, arch: Arch, steps: u32) -> Self {
        let base = Self::default_for(accel, arch);
        let per_step = match accel {
            Accel::Kvm => 10,
            _ => 60,
        } * if arch == Arch::host() { 1 } else { 2 };
        Deadlines {
            boot: base.boot,
            run: base.run + Duration::from_secs(per_step * u64::from(steps)),
        }
    }

    /// The same boot counting instructions (`-icount`): emulation runs
    /// several times slower, so every deadline triples.
    pub fn icount(self) -> Self {
        Deadlines {
            boot: self.boot * 3,
            run: self.run * 3,
        }
    }

    /// Defaults: KVM boots in seconds; TCG is ~10x slower, and emulating
    /// another arch slower again.
    pub fn default_for(accel: Accel, arch: Arch) -> Self {
        let (boot, run) = match accel {
            Accel::Kvm => (60, 180),
            _ => (180, 420),
        };
        let factor = if arch == Arch::host() { 1 } else { 2 };
        Deadlines {
            boot: Duration::from_secs(boot * factor),
            run: Duration::from_secs(run * factor),
        }
    }

    /// Both deadlines set to `secs`.
    pub fn both(secs: u64) -> Self {
        Deadlines {
            boot: Duration::from_secs(secs),
            run: Duration::from_secs(secs),
        }
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the guest agent started.
    Boot,
    /// While the guest agent ran.
    Run,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// vng exited by itself with this code.
    Exited(Option<i32>),
    /// A deadline passed; QEMU was killed.
    Timeout(Phase),
    /// A kernel failure was seen on the console; QEMU was killed.
    Failure(ConsoleFailure),
    /// The run was cancelled (a signal to the harness); QEMU was killed.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct BootResult {
    pub end: BootEnd,
    pub wall: Duration,
    /// Seconds from start to the first line the guest kernel printed.
    pub first_kernel_line_s: Option<f64>,
    /// Seconds from start to the guest agent's start marker.
    pub guest_start_s: Option<f64>,
    /// How many console lines the boot printed.
    pub console_lines: usize,
    /// Every kernel splat on the console, in order.
    pub splats: Vec<Splat>,
}

/// Runs vng, writing every console line to `console_log`, killing the whole
/// process group when a deadline passes or at the first kernel failure.
/// Kernel splats are recorded, and the boot goes on (so the log keeps
/// their whole report). Lines the guest agent prints (`UNLINK-GUEST: ...`)
/// go to `on_guest`.
pub fn run(
    spec: &BootSpec,
    console_log: &Path,
    deadlines: Deadlines,
    on_guest: &dyn Fn(&str),
) -> Result<BootResult> {
    use std::os::unix::process::CommandExt;
    let mut log = std::fs::File::create(console_log)
        .with_context(|| format!("creating {}", console_log.display()))?;
    let start = Instant::now();
    // vng calls its helpers (virtme-run, virtiofsd) through PATH: put
    // their dirs first.
    let mut path = std::ffi::OsString::new();
    if let Transport::VirtioFs(dir) = &spec.transport {
        path.push(dir);
        path.push(":");
    }
    if let Some(dir) = spec.vng.parent().filter(|d| !d.as_os_str().is_empty()) {
        path.push(dir);
        path.push(":");
    }
    path.push(std::env::var_os("PATH").unwrap_or_default());
    // vng's own temporary files (virtiofsd sockets and pid files, the
    // guest's return-code file) go into a directory of this boot's, gone
    // with it: a killed vng cleans up nothing itself.
    let tmp = tempfile::Builder::new()
        .prefix("vng")
        .tempdir()
        .context("creating vng's temporary directory")?;
    let mut child = crate::process::commands::program(&spec.vng, vng_args(spec))?
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", spec.vng.display()))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Killed with the run, however it ends (see `process::stop`).
    let _group = crate::process::stop::Group::register(pgid.as_raw());

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
    let mut guest_start: Option<Duration> = None;
    let mut console_lines = 0;
    let mut splats = Vec::new();
    let kill = || {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    };
    // The first kernel failure, and when the guest is killed for it: the
    // report that follows its first line (the stalled CPU's backtrace, the
    // panic's call trace) still goes into the log until then.
    let mut failed: Option<(ConsoleFailure, Instant)> = None;
    let end = loop {
        if let Some((f, until)) = &failed {
            if Instant::now() >= *until {
                kill();
                break BootEnd::Failure(f.clone());
            }
        }
        let (phase, left) = match guest_start {
            None => (Phase::Boot, deadlines.boot.saturating_sub(start.elapsed())),
            Some(at) => (
                Phase::Run,
                (at + deadlines.run).saturating_sub(start.elapsed()),
            ),
        };
        if crate::process::stop::cancelled().is_some() {
            kill();
            break BootEnd::Interrupted;
        }
        if left.is_zero() {
            kill();
            break BootEnd::Timeout(phase);
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                use std::io::Write;
                let _ = log.write_all(line.as_bytes());
                console_lines += 1;
                if first_kernel_line.is_none() && line.contains("] Linux version") {
                    first_kernel_line = Some(start.elapsed().as_secs_f64());
                }
                if let Some(at) = line.find(unlink_schema::protocol::CONSOLE_MARKER) {
                    if guest_start.is_none() && line.contains(GUEST_START_MARKER) {
                        guest_start = Some(start.elapsed());
                    }
                    on_guest(line[at..].trim());
                }
                match console_failure(&line) {
                    Some(f) if failed.is_none() => {
                        let _ = log.write_all(host_load_line().as_bytes());
                        failed = Some((f, Instant::now() + FAILURE_REPORT_GRACE));
                    }
                    Some(_) => {}
                    None => splats.extend(console_splat(&line)),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().context("waiting for vng")?;
                if let Some((f, _)) = failed {
                    break BootEnd::Failure(f);
                }
                if crate::process::stop::cancelled().is_some() {
                    break BootEnd::Interrupted;
                }
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
        console_lines += 1;
        splats.extend(console_splat(&line));
    }
    Ok(BootResult {
        end,
        wall: start.elapsed(),
        first_kernel_line_s: first_kernel_line,
        guest_start_s: guest_start.map(|d| d.as_secs_f64()),
        console_lines,
        splats,
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
            rwdirs: vec![Share {
                guest: "/run/out".into(),
                host: "/h/out".into(),
            }],
            qemu_opts: qemu_opts.map(str::to_string),
            root: None,
            busybox: None,
            transport: Transport::NineP,
            command: "/bin/guest --out /out".into(),
        }
    }

    #[test]
    fn vng_command_lines() {
        let base = "--run /k/vmlinuz --verbose --disable-monitor --cpus 2 --memory 1024M";
        let cases = [
            (spec(Accel::Tcg, Arch::X86_64, None), format!("{base} --disable-kvm --rwdir=/run/out=/h/out --qemu-opts=-accel tcg,thread=single --exec /bin/guest --out /out")),
            (spec(Accel::Kvm, Arch::X86_64, None), format!("{base} --rwdir=/run/out=/h/out --exec /bin/guest --out /out")),
            (
                spec(Accel::Tcg, Arch::X86_64, Some("-icount shift=0,sleep=off")),
                format!("{base} --disable-kvm --rwdir=/run/out=/h/out --qemu-opts=-accel tcg,thread=single -icount shift=0,sleep=off --exec /bin/guest --out /out"),
            ),
            (spec(Accel::Tcg, Arch::Arm64, None), format!("{base} --disable-kvm --arch arm64 --rwdir=/run/out=/h/out --qemu-opts=-accel tcg,thread=single --exec /bin/guest --out /out")),
            (
                BootSpec { root: Some("/r".into()), busybox: Some("/r/bin/busybox".into()), ..spec(Accel::Tcg, Arch::Arm64, None) },
                format!("{base} --disable-kvm --arch arm64 --root /r --busybox /r/bin/busybox --rwdir=/run/out=/h/out --qemu-opts=-accel tcg,thread=single --exec /bin/guest --out /out"),
            ),
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
            (
                "qemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: Assertion `section_index < d->map.sections_nb' failed.",
                Some(QEMU_ABORT),
            ),
            ("[    0.0] Linux version 6.1.0", None),
            (
                "[ 3.7] virtme initramfs: your host's virtfs is broken -- using a fallback tmpfs",
                Some(SHARE_FAILURE),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(console_failure(line).map(|f| f.kind), want, "{line}");
        }
    }

    #[test]
    fn console_splats() {
        let cases = [
            (
                "[   12.345678] WARNING: CPU: 1 PID: 7 at kernel/foo.c:12 bar+0x1/0x2",
                Some(("WARN splat", "WARNING: CPU: 1 PID: 7 at kernel/foo.c:12 bar+0x1/0x2")),
            ),
            (
                "[    1.0][    T1] WARNING: CPU: 0 PID: 1 at fs/namei.c:9 f+0x1/0x2\r\n",
                Some(("WARN splat", "WARNING: CPU: 0 PID: 1 at fs/namei.c:9 f+0x1/0x2")),
            ),
            (
                "[    3.1] WARNING: possible circular locking dependency detected",
                Some(("lockdep report", "WARNING: possible circular locking dependency detected")),
            ),
            (
                "[    3.1] WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
                Some(("lockdep report", "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected")),
            ),
            (
                "[    3.1] WARNING: suspicious RCU usage",
                Some(("lockdep report", "WARNING: suspicious RCU usage")),
            ),
            (
                "[    4.2] BUG: KASAN: slab-use-after-free in foo+0x10/0x20",
                Some(("KASAN report", "BUG: KASAN: slab-use-after-free in foo+0x10/0x20")),
            ),
            (
                "[    4.2] BUG: sleeping function called from invalid context at mm/slab.h:1",
                Some(("BUG", "BUG: sleeping function called from invalid context at mm/slab.h:1")),
            ),
            (
                "[    4.2] UBSAN: shift-out-of-bounds in lib/foo.c:12:3",
                Some(("UBSAN report", "UBSAN: shift-out-of-bounds in lib/foo.c:12:3")),
            ),
            (
                "[    4.2] INFO: trying to register non-static key.",
                Some(("lockdep report", "INFO: trying to register non-static key.")),
            ),
            (
                "[    4.2] INFO: possible recursive locking detected",
                Some(("lockdep report", "INFO: possible recursive locking detected")),
            ),
            (
                "[  245.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
                Some(("hung task", "INFO: task kworker/0:1:12 blocked for more than 120 seconds.")),
            ),
            (
                "[    4.2] refcount_t: underflow; use-after-free.",
                Some(("refcount_t warning", "refcount_t: underflow; use-after-free.")),
            ),
            (
                "[    4.2] kernel BUG at mm/slub.c:123!",
                Some(("kernel BUG", "kernel BUG at mm/slub.c:123!")),
            ),
            // A kernel without printk times.
            ("WARNING: CPU: 0 PID: 1 at x.c:1 f", Some(("WARN splat", "WARNING: CPU: 0 PID: 1 at x.c:1 f"))),
            // Fatal failures stay failures, not splats.
            ("[    1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!", None),
            ("[    5.0] BUG: kernel NULL pointer dereference, address: 0000000000000000", None),
            ("[   30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", None),
            // Innocent lines.
            ("[    0.1] x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'", None),
            ("UNLINK-GUEST: tutorial OK", None),
            ("UNLINK-GUEST: fentry FAIL the tracer said WARNING: x", None),
            ("[    0.2] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!", None),
            ("[    0.2] Kernel compiled with WARNINGS enabled", None),
            ("[    0.2] WARNINGS: none", None),
            ("DEBUG: BUG: nothing", None),
            ("[    1.0] INFO: task list sorted", None),
            ("[    0.0] Linux version 6.1.0", None),
            ("[    1.0] ------------[ cut here ]------------", None),
        ];
        for (line, want) in cases {
            let got = console_splat(line);
            assert_eq!(
                got.as_ref().map(|s| (s.kind, s.line.as_str())),
                want,
                "{line}"
            );
        }
    }
}
