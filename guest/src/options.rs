//! The options scenario: every tracer option that changes what is reported,
//! exercised on one workload. The agent unlinks while a second process
//! (`unlink-guest other`, under its own comm) unlinks at the same time, and
//! one tracer per option watches both (see [`OptionProbe`]): text output,
//! `--pid`, `--comm`, `--count`, `--duration`, all attached together. The
//! host judges each tracer's output against the calls both processes
//! recorded themselves.
//!
//! Files, in the scenario's directory: `NAME.out` / `NAME.err` per tracer,
//! `workload.json` (the agent's calls, then the other process's).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use unlink_schema::{
    CliRun, EmptyModeRun, OptionProbe, OptionTracer, OptionsRun, RunOutcome, Step,
};

use crate::workload::{self, At};

/// The other process's comm: the command `--comm` chooses.
pub const OTHER_COMM: &str = "unlink-other";
/// The processes beside the agent, each (comm, file prefix): the chosen
/// command twice (two processes with one name: `--comm` takes both), and
/// two names that almost match it (a prefix of it, and it with one more
/// byte), which `--comm` must leave out.
pub const OTHERS: [(&str, &str); 4] = [
    (OTHER_COMM, "o"),
    (OTHER_COMM, "p"),
    ("unlink-othe", "q"),
    ("unlink-other2", "r"),
];
/// The agent's second thread: its calls are the agent's (`--pid` takes
/// them, a tid taken for the pid would not), made after the main thread's.
const HELPER_COMM: &str = "agent-helper";
/// `--count`: fewer than the agent's calls, so the tracer must stop early.
const COUNT: u64 = 3;
/// `--duration`, seconds: short, so waiting for it costs the cell little
/// (the scenario's run time is mostly the five tracers attaching), and
/// long enough that a tracer stopping at three times it is told apart
/// from one stopping on time (the gate allows 1.5 s late).
const DURATION_S: f64 = 1.0;
/// Calls each process makes, one every `PACE`.
const CALLS: usize = 6;
const PACE: Duration = Duration::from_millis(15);

/// The arguments of each option's tracer (pure).
pub fn tracer_args(probe: OptionProbe, agent_pid: u32) -> Vec<String> {
    let (pid, count, secs) = (
        agent_pid.to_string(),
        COUNT.to_string(),
        DURATION_S.to_string(),
    );
    let v: Vec<&str> = match probe {
        OptionProbe::Text => vec![],
        OptionProbe::Pid => vec!["--json", "--pid", &pid],
        OptionProbe::Comm => vec!["--json", "--comm", OTHER_COMM],
        OptionProbe::Count => vec!["--json", "--pid", &pid, "--count", &count],
        OptionProbe::Duration => vec!["--json", "--duration", &secs],
    };
    v.into_iter().map(str::to_string).collect()
}

/// The calls each process makes: files created and unlinked, then an
/// ENOENT and an EISDIR, so the reported errnos vary too.
fn calls(prefix: &str) -> Result<Vec<Step>> {
    // Each process in a directory of its own: the processes never queue on
    // one directory's lock inside the traced function, so no more calls are
    // in it at once than there are CPUs (a kretprobe before 6.2 without
    // CONFIG_PREEMPTION has that many return instances; the contention
    // scenario is the one that queues).
    let home = format!("{prefix}.d");
    let dir = format!("{home}/{prefix}-dir");
    for d in [&home, &dir] {
        match nix::unistd::mkdir(d.as_str(), nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkdir {d}")),
        }
    }
    let mut steps = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let name = match i {
            _ if i + 2 < CALLS => {
                let n = format!("{home}/{prefix}{i}");
                workload::create(n.as_bytes())?;
                n
            }
            _ if i + 2 == CALLS => format!("{home}/{prefix}-missing"),
            _ => dir.clone(),
        };
        steps.push(workload::call(At::Plain, name.as_bytes(), false));
        std::thread::sleep(PACE);
    }
    Ok(steps)
}

/// The agent's second thread's calls, after the main thread's: one with
/// every escape class's bytes in its name, one whose path overflows the
/// tracer's buffer, one the kernel cannot read (a bad pointer), so the text
/// output shows each of its name forms.
fn helper_calls() -> Result<Vec<Step>> {
    let comm = std::ffi::CString::new(HELPER_COMM).context("the helper's comm")?;
    nix::sys::prctl::set_name(&comm).context("naming the helper")?;
    let escaped: Vec<u8> = workload::ESCAPE_CLASSES
        .iter()
        .flat_map(|(b, _)| b.iter().copied())
        .collect();
    workload::create(&escaped)?;
    // 600 bytes through directories that do not exist: ENOENT, truncated.
    let deep = workload::deep_path(600);
    Ok(vec![
        workload::call(At::Plain, &escaped, false),
        workload::call(At::Plain, &deep, false),
        workload::call_with(At::Plain, workload::Arg::BadPointer, 0),
    ])
}

/// `unlink-guest other`: takes the comm given, waits for a byte on stdin,
/// makes its calls, prints them as JSON on stdout.
pub fn other_main(comm: &str, prefix: &str) -> Result<()> {
    let c = std::ffi::CString::new(comm).context("the comm")?;
    nix::sys::prctl::set_name(&c).context("setting the comm")?;
    let mut go = [0u8; 1];
    std::io::stdin()
        .read_exact(&mut go)
        .context("waiting for the start byte")?;
    let steps = calls(prefix)?;
    println!("{}", serde_json::to_string(&steps)?);
    Ok(())
}

struct Running {
    probe: OptionProbe,
    args: Vec<String>,
    child: Child,
    ready: PathBuf,
    /// When the ready file was first seen, and the last look that did
    /// not find it yet (it was written between the two).
    ready_at: Option<Instant>,
    not_ready_at: Instant,
    exited: Option<(Option<i32>, Instant)>,
    /// The last look that found the tracer still running.
    alive_at: Instant,
}

impl Running {
    fn poll(&mut self) -> Result<()> {
        if self.ready_at.is_none() {
            let now = Instant::now();
            if self.ready.exists() {
                self.ready_at = Some(now);
            } else {
                self.not_ready_at = now;
            }
        }
        if self.exited.is_none() {
            let now = Instant::now();
            match self.child.try_wait()? {
                Some(status) => self.exited = Some((status.code(), now)),
                None => self.alive_at = now,
            }
        }
        Ok(())
    }

    /// Bounds on the time from its ready file to its exit, whatever the
    /// agent's own scheduling delays: (at least, at most).
    fn ready_to_exit_bounds(&self, exit: Instant) -> (f64, f64) {
        let Some(ready) = self.ready_at else {
            return (0.0, 0.0);
        };
        (
            self.alive_at.saturating_duration_since(ready).as_secs_f64(),
            exit.saturating_duration_since(self.not_ready_at)
                .as_secs_f64(),
        )
    }
}

/// Runs the scenario; Err says what went wrong in the guest.
pub fn run(
    tracer: &Path,
    attach_timeout: Duration,
    out_dir: &Path,
    outcome: &mut RunOutcome,
) -> Result<Vec<Step>> {
    let agent = std::env::current_exe().context("finding the agent's own binary")?;
    let mut others = Vec::new();
    for (comm, prefix) in OTHERS {
        let child = Command::new(&agent)
            .args(["other", "--comm", comm, "--prefix", prefix])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the process `{comm}`"))?;
        others.push(child);
    }
    let other_pid = others[0].id();
    let pid = std::process::id();
    let kill_others = |others: &mut Vec<Child>| {
        for o in others.iter_mut() {
            let _ = o.kill();
            let _ = o.wait();
        }
    };

    // Every ready file is cleared before the first tracer starts: the
    // agent's own unlink of one would be a call the `--pid` tracer reports
    // (seen once: 7 events for 6 calls, when it attached before the loop
    // cleared the next tracer's file).
    let ready_of = |p: OptionProbe| out_dir.join(format!("{}.ready", p.name()));
    for probe in OptionProbe::ALL {
        let _ = fs::remove_file(ready_of(probe));
    }
    let start = Instant::now();
    let mut tracers = Vec::new();
    for probe in OptionProbe::ALL {
        let ready = ready_of(probe);
        let args = tracer_args(probe, pid);
        let out = File::create(out_dir.join(format!("{}.out", probe.name())))?;
        let err = File::create(out_dir.join(format!("{}.err", probe.name())))?;
        let child = Command::new(tracer)
            .args(&args)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", tracer.display()))?;
        tracers.push(Running {
            probe,
            args,
            child,
            ready,
            ready_at: None,
            not_ready_at: Instant::now(),
            exited: None,
            alive_at: Instant::now(),
        });
    }
    let stop_all = |tracers: &mut Vec<Running>| {
        for t in tracers.iter_mut() {
            let _ = crate::stop(&mut t.child);
        }
    };
    loop {
        for t in &mut tracers {
            t.poll()?;
        }
        let early = tracers
            .iter()
            .find(|t| t.ready_at.is_none() && t.exited.is_some())
            .map(|t| (t.probe.name(), t.exited.and_then(|e| e.0)));
        if let Some((name, code)) = early {
            stop_all(&mut tracers);
            kill_others(&mut others);
            return Err(crate::RunFailed::exited_early(
                &format!("the {name} tracer"),
                &format!("exit code {code:?}"),
                &out_dir.join(format!("{name}.err")),
            )
            .into());
        }
        if tracers.iter().all(|t| t.ready_at.is_some()) {
            break;
        }
        if start.elapsed() > attach_timeout {
            stop_all(&mut tracers);
            kill_others(&mut others);
            return Err(crate::RunFailed {
                failure: unlink_schema::Failure::AttachTimeout,
                message: format!(
                    "the tracers did not all attach within {}s",
                    attach_timeout.as_secs()
                ),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcome.attach_s = start.elapsed().as_secs_f64();

    // The agent unlinks while the other processes unlink one after
    // another beside it (the agent's helper thread after its main thread):
    // two calls at most inside the function at once, as many as a
    // kretprobe has return instances before 6.2 without CONFIG_PREEMPTION.
    let work_start = Instant::now();
    let starter = std::thread::spawn(move || -> Result<Vec<Step>> {
        let mut theirs = Vec::new();
        for mut o in others {
            o.stdin
                .take()
                .context("another process's stdin")?
                .write_all(b"g")
                .context("starting another process")?;
            let out = o
                .wait_with_output()
                .context("waiting for another process")?;
            anyhow::ensure!(
                out.status.success(),
                "another process failed ({})",
                out.status
            );
            let steps: Vec<Step> =
                serde_json::from_slice(&out.stdout).context("another process's calls")?;
            theirs.extend(steps);
        }
        Ok(theirs)
    });
    // The `--count` tracer is held (SIGSTOP) while the agent calls, so all
    // its calls wait in the ring and its first drain holds more than
    // `--count` of them: the count must stop the printing inside a drain,
    // not only between two (a tracer that checks it once per drain printed
    // all 9 and passed when the calls came one per drain).
    let count_pid = tracers
        .iter()
        .find(|t| t.probe == OptionProbe::Count)
        .map(|t| nix::unistd::Pid::from_raw(t.child.id() as i32))
        .context("the count tracer")?;
    nix::sys::signal::kill(count_pid, nix::sys::signal::Signal::SIGSTOP)
        .context("holding the count tracer")?;
    let mine = calls("a").and_then(|mut v| {
        let helper = std::thread::spawn(helper_calls)
            .join()
            .map_err(|_| anyhow::anyhow!("the helper thread panicked"))??;
        v.extend(helper);
        Ok(v)
    });
    nix::sys::signal::kill(count_pid, nix::sys::signal::Signal::SIGCONT)
        .context("resuming the count tracer")?;
    let theirs = starter
        .join()
        .map_err(|_| anyhow::anyhow!("the thread starting the other processes panicked"))??;
    outcome.workload_s = work_start.elapsed().as_secs_f64();
    let mut steps = mine?;
    steps.extend(theirs);

    // The count and duration tracers stop by themselves; the others are
    // stopped now: a tracer prints what its ring holds before it exits.
    let deadline = Instant::now() + Duration::from_secs_f64(DURATION_S) + Duration::from_secs(20);
    loop {
        for t in &mut tracers {
            t.poll()?;
        }
        let waiting = tracers.iter().any(|t| {
            matches!(t.probe, OptionProbe::Count | OptionProbe::Duration) && t.exited.is_none()
        });
        if !waiting || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGINT to every tracer still running at once, then collect them.
    for t in tracers.iter().filter(|t| t.exited.is_none()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(t.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
    let mut records = Vec::new();
    for t in &mut tracers {
        let by_itself = t.exited.is_some();
        let (code, at) = match t.exited {
            Some(e) => e,
            None => (crate::stop(&mut t.child)?, Instant::now()),
        };
        let (at_least, at_most) = t.ready_to_exit_bounds(at);
        records.push(OptionTracer {
            probe: t.probe,
            args: t.args.clone(),
            exit_code: code,
            exited_by_itself: by_itself,
            ready_to_exit_s: t
                .ready_at
                .map(|r| at.saturating_duration_since(r).as_secs_f64())
                .unwrap_or(0.0),
            ready_to_exit_min_s: at_least,
            ready_to_exit_max_s: at_most,
        });
    }
    outcome.options = Some(OptionsRun {
        pid,
        other_pid,
        other_comm: OTHER_COMM.to_string(),
        count: COUNT,
        duration_s: DURATION_S,
        tracers: records,
        cli: cli_runs(tracer)?,
        empty_modes: empty_mode_runs(tracer, out_dir, attach_timeout)?,
    });
    Ok(steps)
}

/// The arguments of the tracer's runs that trace nothing: `--show-target`,
/// then one bad value of each option that takes one (each at the edge of
/// what is valid: 0 and negative numbers, a comm of 0 and 16 bytes; a
/// negative number as `--opt=-1`, or clap takes it for an option).
pub const CLI_RUNS: [&[&str]; 17] = [
    &["--show-target"],
    &["--count", "0"],
    &["--duration", "0"],
    &["--duration=-1"],
    &["--comm", ""],
    &["--comm", "sixteen-bytes-xy"],
    &["--mode", "nosuch"],
    &["--pid=-1"],
    &["--ringbuf-kib", "3"],
    &["--ringbuf-kib", "2"],
    &["--trace-buffer-kib", "0"],
    &["--maxactive", "4097"],
    // A function the kernel does not have: refused once the BTF is read
    // (exit 1), naming the unlink functions it does have.
    &["--symbol", "no_such_unlinkat", "--show-target"],
    // The default's function asked for by name: the same target.
    &["--symbol", "SYMBOL", "--show-target"],
    // The same refusal with --json: one JSON error object, kind `other`.
    &["--json", "--symbol", "no_such_unlinkat"],
    // A trace buffer the kernel cannot give (4 GiB per CPU in a 1 GiB
    // guest: it refuses with ENOMEM before allocating): kind `trace-pipe`.
    &[
        "--json",
        "--mode",
        "printk",
        "--trace-buffer-kib",
        "4194304",
    ],
    // -v: libbpf's own messages of the load on stderr (none without it:
    // every other run's stderr is exactly what it documents).
    &["-v", "--duration", "1"],
];

/// Where the kernel lists every registered kprobe and kretprobe.
const KPROBES_LIST: &str = "/sys/kernel/debug/kprobes/list";

/// The tracer in each empty mode, one at a time (the kernel's list of
/// kprobes must be its alone): started with `--ready-file`, the kernel's
/// kprobe list copied once it attached, stopped.
fn empty_mode_runs(
    tracer: &Path,
    out_dir: &Path,
    attach_timeout: Duration,
) -> Result<Vec<EmptyModeRun>> {
    use unlink_schema::TracerMode as M;
    if !Path::new(KPROBES_LIST).exists() {
        nix::mount::mount(
            Some("debugfs"),
            "/sys/kernel/debug",
            Some("debugfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting debugfs for the kernel's kprobe list")?;
    }
    let mut runs = Vec::new();
    // First a tracer killed once attached (SIGKILL: its tracefs entry
    // outlives it), so the next one with a return probe must remove it.
    for (mode, kill) in [
        (M::EmptyKretprobe, true),
        (M::EmptyKretprobe, false),
        (M::EmptyKprobe, false),
        (M::EmptyPair, false),
    ] {
        let name = format!("{}{}", mode.name(), if kill { "-killed" } else { "" });
        let ready = out_dir.join(format!("{name}.ready"));
        let err = out_dir.join(format!("{name}.err"));
        let mut child = Command::new(tracer)
            .args(["--json", "--mode", mode.name(), "--ready-file"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(File::create(&err)?)
            .spawn()
            .with_context(|| format!("starting {} --mode {}", tracer.display(), mode.name()))?;
        let limit = Instant::now() + attach_timeout;
        let (mut kprobes, mut kprobe_events) = (String::new(), String::new());
        while Instant::now() < limit {
            if ready.exists() {
                kprobes = fs::read_to_string(KPROBES_LIST)
                    .with_context(|| format!("reading {KPROBES_LIST}"))?;
                kprobe_events = crate::oracle::kprobe_events()?;
                break;
            }
            if child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let exit_code = if kill {
            let _ = child.kill();
            child.wait()?.code()
        } else {
            crate::stop(&mut child)?
        };
        runs.push(EmptyModeRun {
            mode,
            exit_code,
            stderr: fs::read_to_string(&err).unwrap_or_default(),
            kprobes,
            kprobe_events,
            killed: kill,
        });
    }
    Ok(runs)
}

fn cli_runs(tracer: &Path) -> Result<Vec<CliRun>> {
    // All at once: each is a process start and little else.
    let symbol = crate::oracle::symbol().unwrap_or_default();
    let mut children = Vec::new();
    for args in CLI_RUNS {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "SYMBOL" { symbol.as_str() } else { a })
            .collect();
        let child = Command::new(tracer)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {} {}", tracer.display(), args.join(" ")))?;
        children.push((
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            child,
        ));
    }
    // Each is waited for on its own thread, so one that never exits (a bad
    // argument taken: the tracer traces) is killed at the limit and judged
    // by the cli verdict instead of holding the cell until its deadline.
    let mut waits = Vec::new();
    for (args, child) in children {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        waits.push((args, pid, rx));
    }
    let limit = Instant::now() + Duration::from_secs(unlink_schema::protocol::CLI_RUN_LIMIT_S);
    let mut out = Vec::new();
    for (args, pid, rx) in waits {
        let left = limit.saturating_duration_since(Instant::now());
        let (o, killed) = match rx.recv_timeout(left) {
            Ok(o) => (o, false),
            Err(_) => {
                // Not reaped yet (its thread still waits), so the pid is its.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let o = rx
                    .recv()
                    .with_context(|| format!("waiting for the killed {}", args.join(" ")))?;
                (o, true)
            }
        };
        let o =
            o.with_context(|| format!("waiting for {} {}", tracer.display(), args.join(" ")))?;
        out.push(CliRun {
            args,
            exit_code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            killed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_option_has_its_arguments() {
        let cases: [(OptionProbe, &[&str]); 5] = [
            (OptionProbe::Text, &[]),
            (OptionProbe::Pid, &["--json", "--pid", "7"]),
            (OptionProbe::Comm, &["--json", "--comm", "unlink-other"]),
            (
                OptionProbe::Count,
                &["--json", "--pid", "7", "--count", "3"],
            ),
            (OptionProbe::Duration, &["--json", "--duration", "1"]),
        ];
        for (probe, want) in cases {
            assert_eq!(tracer_args(probe, 7), want, "{probe:?}");
        }
        assert!(OTHER_COMM.len() < 16);
    }
}
