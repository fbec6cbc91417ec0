//! `unlink-guest`: runs inside a test guest. For each scenario it starts the
//! tracer (and, where the scenario has one, the kernel's own kprobe tracer
//! as an oracle), waits until it is attached, runs the scenario's workload
//! (system calls made here, in Rust, on a guest-local tmpfs), stops the
//! tracer and writes everything to the shared results directory:
//!
//! - `OUT/NAME/trace.out`     the tracer's stdout (JSON lines; printk lines in printk mode)
//! - `OUT/NAME/tracer.err`    the tracer's stderr (its last line is the JSON summary)
//! - `OUT/NAME/workload.json` each call with its thread and result
//! - `OUT/NAME/oracle.txt`    the tracefs oracle's trace, where there is one
//! - `OUT/NAME/result.json`   the agent's own verdict, written last
//!
//! Load scenarios (storm, contention) count the tracer's events as they
//! stream instead of storing them. Nothing here prints to the console but
//! one marker line per scenario, so the console log stays a kernel log.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the guest agent's output is its protocol: console markers, and JSON from its subprocesses"
)]

mod exec;
mod held;
mod options;
mod oracle;
mod overhead;
mod workload;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use unlink_schema::protocol::{
    files, CONSOLE_MARKER, EXEC_EXIT, EXEC_OUTPUT, GUEST_START_MARKER, PRINTK_TRACE_BUFFER_KIB,
    WORKDIR,
};
use unlink_schema::{Failure, RunOutcome, Scenario, ScenarioSpec, Step, TracerError, TracerMode};

#[derive(Debug, Parser)]
#[command(name = "unlink-guest")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run scenarios, each with its own tracer run; results go to OUT/NAME/.
    Run(RunArgs),
    /// Measure what each probe mode costs an unlink (criterion, interleaved rounds).
    Overhead(overhead::OverheadArgs),
    /// Run a command as a cell's guest runs its agent (`harness run`): on
    /// the guest-local tmpfs, the tracer and this agent on PATH, each line
    /// it writes relayed to the console, its exit code written to OUT.
    Exec {
        /// Shared directory for results.
        #[arg(long)]
        out: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// One unlink as the current (dropped) user; its step as JSON on stdout.
    AsUser {
        #[arg(long)]
        unlink: String,
    },
    /// A process of the options scenario besides the agent: unlinks under
    /// the comm given once a byte arrives on stdin; its calls as JSON on
    /// stdout.
    Other {
        #[arg(long)]
        comm: String,
        /// The prefix of its file names.
        #[arg(long)]
        prefix: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The unlink-tracer binary to run.
    #[arg(long)]
    tracer: PathBuf,
    /// Shared directory for results.
    #[arg(long)]
    out: PathBuf,
    /// Scenarios in the order to run them (see SCENARIOS).
    #[arg(long = "scenario", required = true, value_parser = parse_scenario)]
    scenarios: Vec<&'static Spec>,
    /// Seconds to wait for the tracer to attach.
    #[arg(long, default_value_t = 120)]
    attach_timeout: u64,
    #[arg(long, default_value_t = 4)]
    storm_threads: u32,
    /// Calls per storm thread once the ring is full (the fill before them
    /// has filled it): every entry is lost, every return comes and must be
    /// counted as the return of a lost entry.
    #[arg(long, default_value_t = 100)]
    storm_calls: u32,
    /// Storm calls held inside the function while the ring fills: more than
    /// the storm's tracer has return instances (`--maxactive 10`), so the
    /// calls made meanwhile miss their returns; and their own return
    /// records then meet a ring full of 568-byte entries.
    #[arg(long, default_value_t = 24)]
    storm_held: u32,
    /// Calls per burst thread (4 threads): 5,000 calls, about 3 MB of
    /// records, fit the default 4 MiB ring even if the consumer stalls.
    #[arg(long, default_value_t = 1_250)]
    burst_calls: u32,
    #[arg(long, default_value_t = 8)]
    contention_threads: u32,
    /// Calls per contention thread: 800 in all, queueing on one directory.
    #[arg(long, default_value_t = 100)]
    contention_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Tutorial,
    /// The tutorial and a call from a second thread.
    TutorialThreaded,
    Errors,
    Names,
    Callers,
    /// Tutorial, then errors, in one tracer run.
    TutorialErrors,
    /// Threads of create+unlink while the tracer is stopped: its small
    /// ring overflows.
    Storm,
    /// Threads of create+unlink through the default ring, consumer running:
    /// nothing may be lost.
    Burst,
    Contention,
    /// Every reporting option, one tracer each, while a second process
    /// unlinks beside the agent.
    Options,
}

/// How the agent runs one scenario: its record (`unlink_schema::scenarios`:
/// the tracer's mode, the oracle beside it, the load's ring and counting)
/// and the agent's own workload for it.
#[derive(Debug)]
struct Spec {
    scenario: Scenario,
    work: Work,
}

impl Spec {
    fn record(&self) -> &'static ScenarioSpec {
        self.scenario.spec()
    }
}

const SPECS: &[Spec] = &[
    Spec {
        scenario: Scenario::Tutorial,
        work: Work::Tutorial,
    },
    Spec {
        scenario: Scenario::Errors,
        work: Work::Errors,
    },
    Spec {
        scenario: Scenario::Names,
        work: Work::Names,
    },
    Spec {
        scenario: Scenario::Callers,
        work: Work::Callers,
    },
    Spec {
        scenario: Scenario::Printk,
        work: Work::TutorialThreaded,
    },
    Spec {
        scenario: Scenario::Fentry,
        work: Work::TutorialErrors,
    },
    Spec {
        scenario: Scenario::Storm,
        work: Work::Storm,
    },
    Spec {
        scenario: Scenario::Burst,
        work: Work::Burst,
    },
    Spec {
        scenario: Scenario::Contention,
        work: Work::Contention,
    },
    Spec {
        scenario: Scenario::Options,
        work: Work::Options,
    },
];

/// The agent's way of running a scenario (every scenario has one: a test
/// checks).
fn spec(s: Scenario) -> Option<&'static Spec> {
    SPECS.iter().find(|sp| sp.scenario == s)
}

fn parse_scenario(s: &str) -> Result<&'static Spec, String> {
    let scenario = Scenario::parse(s)?;
    spec(scenario).ok_or_else(|| format!("the agent cannot run scenario `{scenario}`"))
}

/// The kernel's switch for BPF run statistics.
const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Calls per thread (two threads) that fill the storm's ring while its
/// held calls wait: 200 entries of 568 bytes, more than the 64 KiB ring
/// holds (115).
const STORM_FILL_CALLS: u32 = 100;

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::AsUser { unlink } => {
            if let Err(e) = workload::as_user_main(&unlink) {
                eprintln!("unlink-guest: {e:#}");
                std::process::exit(1);
            }
        }
        Cmd::Other { comm, prefix } => {
            if let Err(e) = options::other_main(&comm, &prefix) {
                eprintln!("unlink-guest other: {e:#}");
                std::process::exit(1);
            }
        }
        Cmd::Run(args) => run_all(&args),
        Cmd::Exec { out, command } => {
            let release = release();
            println!("{GUEST_START_MARKER} {release}");
            let code = match exec::run(&out, &command) {
                Ok(code) => code,
                Err(e) => {
                    println!("{CONSOLE_MARKER}{EXEC_OUTPUT}unlink-guest exec: {e:#}");
                    127
                }
            };
            let _ = fs::write(out.join(files::EXIT_CODE), format!("{code}\n"));
            let _ = fs::write(out.join(files::DONE), "ok\n");
            println!("{CONSOLE_MARKER}{EXEC_EXIT}{code}");
        }
        Cmd::Overhead(args) => {
            let release = release();
            println!("{GUEST_START_MARKER} {release}");
            let ok = match prepare_workdir() {
                Ok(()) => overhead::run(&args, &release, Path::new(WORKDIR)),
                Err(e) => {
                    println!("{CONSOLE_MARKER}overhead FAIL {e:#}");
                    false
                }
            };
            if !ok {
                std::process::exit(1);
            }
        }
    }
}

fn release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn run_all(args: &RunArgs) {
    let release = release();
    // The host starts its run deadline at this line (its boot deadline ends).
    println!("{GUEST_START_MARKER} {release}");
    let prepared = prepare_workdir();
    // Which function the kernel can probe, as tracefs says: the gate holds
    // the tracer's `symbol` against it.
    let kernel_symbol = oracle::symbol().ok();
    let mut all_ok = true;
    for sc in &args.scenarios {
        let out = args.out.join(sc.scenario.name());
        let mut outcome = RunOutcome {
            ok: false,
            error: None,
            failure: None,
            kernel_release: release.clone(),
            scenario: sc.scenario.name().to_string(),
            mode: sc.record().mode.name().to_string(),
            attach_s: 0.0,
            workload_s: 0.0,
            total_s: 0.0,
            tracer_exit_code: None,
            oracle: false,
            load: None,
            kernel_symbol: kernel_symbol.clone(),
            options: None,
            trace_buffer_kib: None,
        };
        let began = Instant::now();
        let result = match &prepared {
            Ok(()) => fs::create_dir_all(&out)
                .context("creating the run directory")
                .and_then(|()| run(args, sc, &out, &mut outcome)),
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
        };
        match result {
            Ok(()) => outcome.ok = true,
            Err(e) => {
                outcome.failure = RunFailed::kind_of(&e);
                outcome.error = Some(format!("{e:#}"));
            }
        }
        outcome.total_s = began.elapsed().as_secs_f64();
        let written = serde_json::to_vec_pretty(&outcome)
            .map_err(anyhow::Error::from)
            .and_then(|b| fs::write(out.join(files::RESULT), b).map_err(Into::into));
        // One marker line per run on the console, for the host's log reader.
        match (&outcome.error, written) {
            (None, Ok(())) => println!("{CONSOLE_MARKER}{} OK", sc.scenario),
            (Some(e), _) => println!("{CONSOLE_MARKER}{} FAIL {e}", sc.scenario),
            (None, Err(e)) => println!(
                "{CONSOLE_MARKER}{} FAIL writing {}: {e:#}",
                sc.scenario,
                files::RESULT
            ),
        }
        all_ok &= outcome.ok;
    }
    let _ = fs::write(
        args.out.join(files::DONE),
        if all_ok { "ok\n" } else { "fail\n" },
    );
}

/// A run that failed for a reason of a known kind (the tracer's own, from
/// its `--json` error object, or the agent's): the kind goes into
/// `result.json` for the gate to decide on, the message to people.
#[derive(Debug)]
pub struct RunFailed {
    pub failure: Failure,
    pub message: String,
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunFailed {}

impl RunFailed {
    /// A tracer (`what`) that exited before attaching, with its kind and
    /// message as its stderr file says them (`silent` if it says nothing).
    pub fn exited_early(what: &str, status: &dyn std::fmt::Display, stderr: &Path) -> RunFailed {
        let said = fs::read_to_string(stderr)
            .ok()
            .and_then(|t| TracerError::last_in(&t));
        let (failure, why) = match said {
            Some(e) => (e.error, e.message),
            None => (Failure::Silent, format!("see {}", stderr.display())),
        };
        RunFailed {
            failure,
            message: format!("{what} exited before attaching ({status}): {why}"),
        }
    }

    /// The kind of a run's error, if it is a `RunFailed` anywhere in its chain.
    pub fn kind_of(e: &anyhow::Error) -> Option<Failure> {
        e.chain()
            .find_map(|c| c.downcast_ref::<RunFailed>())
            .map(|r| r.failure)
    }
}

fn run(args: &RunArgs, sc: &Spec, out_dir: &Path, outcome: &mut RunOutcome) -> Result<()> {
    let work = Path::new(WORKDIR).join(sc.scenario.name());
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    std::env::set_current_dir(&work).with_context(|| format!("entering {}", work.display()))?;
    if sc.work == Work::Contention {
        workload::contention_setup(args.contention_threads, args.contention_calls)?;
    }
    if sc.work == Work::Options {
        let steps = options::run(
            &args.tracer,
            Duration::from_secs(args.attach_timeout),
            out_dir,
            outcome,
        )?;
        fs::write(
            out_dir.join(files::WORKLOAD),
            serde_json::to_vec_pretty(&steps)?,
        )
        .context("writing the workload's calls")?;
        return Ok(());
    }
    let load = sc.record().load;
    let counting = load.is_some();
    // The record says which runs have the kernel's BPF run statistics on
    // (the summary's per-program figures then there to be checked).
    let stats = load.is_some_and(|l| l.bpf_stats);
    if stats {
        fs::write(BPF_STATS_SYSCTL, "1").context("enabling kernel.bpf_stats_enabled")?;
    }

    // Removed before the oracle starts: the agent's own unlink of it is no
    // part of any workload.
    let ready = out_dir.join(files::READY);
    let _ = fs::remove_file(&ready);
    let mode = sc.record().mode;
    let oracle = if sc.record().oracle {
        Some(oracle::Oracle::start(&oracle::symbol()?)?)
    } else {
        None
    };
    let stderr =
        File::create(out_dir.join(files::TRACER_ERR)).context("creating the tracer's stderr")?;
    let stdout =
        File::create(out_dir.join(files::TRACE)).context("creating the tracer's stdout")?;
    let start = Instant::now();
    let mut tracer = Command::new(&args.tracer);
    tracer
        .args(["--json", "--mode", mode.name(), "--ready-file"])
        .arg(&ready);
    if counting {
        // Only this process, counted but not printed: the kernel-side
        // counters are then the workload's alone.
        tracer
            .arg("--quiet")
            .arg("--pid")
            .arg(std::process::id().to_string());
    }
    if mode == TracerMode::Printk {
        tracer.args(["--trace-buffer-kib", &PRINTK_TRACE_BUFFER_KIB.to_string()]);
    }
    if let Some(kib) = load.and_then(|l| l.ringbuf_kib) {
        // A ring of the scenario's own size (the storm's, too small for
        // it: records are lost, and the gate checks every loss is counted).
        tracer.args(["--ringbuf-kib", &kib.to_string()]);
    }
    if let Some(n) = load.and_then(|l| l.maxactive) {
        // Fewer return instances than the calls the scenario holds in the
        // function: returns are missed, and the gate checks each is counted.
        tracer.args(["--maxactive", &n.to_string()]);
    }
    let mut tracer = tracer
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", args.tracer.display()))?;

    let deadline = start + Duration::from_secs(args.attach_timeout);
    while !ready.exists() {
        if let Some(status) = tracer.try_wait()? {
            outcome.tracer_exit_code = status.code();
            return Err(RunFailed::exited_early(
                "the tracer",
                &status,
                &out_dir.join(files::TRACER_ERR),
            )
            .into());
        }
        if Instant::now() > deadline {
            stop(&mut tracer)?;
            return Err(RunFailed {
                failure: Failure::AttachTimeout,
                message: format!("the tracer did not attach within {}s", args.attach_timeout),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcome.attach_s = start.elapsed().as_secs_f64();
    if counting {
        // The kernel's own word on the return probe the tracer attached.
        oracle::copy_kprobe_events(&out_dir.join(files::KPROBE_EVENTS_ATTACHED))?;
    }
    if mode == TracerMode::Printk {
        outcome.trace_buffer_kib = oracle::trace_buffer_kib();
    }

    let work_start = Instant::now();
    let steps: Result<Vec<Step>> = match sc.work {
        Work::Tutorial => workload::tutorial(),
        Work::TutorialThreaded => workload::tutorial_threaded(),
        Work::Errors => workload::errors(&agent_path()?),
        Work::Names => workload::names(),
        Work::Callers => workload::callers(&agent_path()?),
        Work::TutorialErrors => workload::tutorial().and_then(|mut t| {
            t.extend(workload::errors(&agent_path()?)?);
            Ok(t)
        }),
        Work::Options => Err(anyhow::anyhow!(
            "the options scenario runs through options::run"
        )),
        Work::Storm => {
            // Every way a call can be lost, in one run, with the consumer
            // stopped (SIGSTOP) throughout so the ring overflows on every
            // kernel and arch, however fast the consumer: calls held inside
            // the function (their entries in the ring, every return
            // instance of the kretprobe taken) while two threads fill the
            // ring (their returns missed by the kernel); the held calls'
            // returns then meet the full ring (return records lost); then
            // the storm proper, whose entries are lost and whose returns
            // come (returns of lost entries).
            let held = held::HeldCalls::start(args.storm_held)?;
            let pid = Pid::from_raw(tracer.id() as i32);
            kill(pid, Signal::SIGSTOP).context("stopping the tracer")?;
            let fill = workload::storm(2, STORM_FILL_CALLS);
            let held_failures = held.finish();
            let mut load = workload::storm(args.storm_threads, args.storm_calls);
            kill(pid, Signal::SIGCONT).context("resuming the tracer")?;
            load.failures += held_failures? + fill.failures;
            load.calls += u64::from(args.storm_held) + fill.calls;
            load.held = args.storm_held;
            load.fill_calls = fill.calls;
            load.consumer_paused = true;
            outcome.load = Some(load);
            Ok(Vec::new())
        }
        Work::Burst => {
            outcome.load = Some(workload::storm(4, args.burst_calls));
            Ok(Vec::new())
        }
        Work::Contention => {
            outcome.load = Some(workload::contention(
                args.contention_threads,
                args.contention_calls,
            ));
            Ok(Vec::new())
        }
    };
    outcome.workload_s = work_start.elapsed().as_secs_f64();
    // No wait before the stop: the tracer prints what its ring holds, or
    // (printk mode) reads trace_pipe until it is empty, before it exits;
    // bpf_printk has written each line by the time its call returns.
    let code = stop(&mut tracer)?;
    if counting {
        oracle::copy_kprobe_events(&out_dir.join(files::KPROBE_EVENTS_AFTER))?;
    }
    if stats {
        fs::write(BPF_STATS_SYSCTL, "0").context("disabling kernel.bpf_stats_enabled")?;
        if let Some(load) = outcome.load.as_mut() {
            load.bpf_stats = true;
        }
    }
    outcome.tracer_exit_code = code;
    if let Some(o) = oracle {
        fs::write(out_dir.join(files::ORACLE), o.finish()?)
            .context("writing the oracle's trace")?;
        outcome.oracle = true;
    }
    let steps = steps?;
    fs::write(
        out_dir.join(files::WORKLOAD),
        serde_json::to_vec_pretty(&steps)?,
    )
    .context("writing the workload's calls")?;
    if code != Some(0) {
        bail!("the tracer exited with {code:?}; see tracer.err");
    }
    Ok(())
}

fn agent_path() -> Result<PathBuf> {
    std::env::current_exe().context("finding the agent's own binary")
}

pub(crate) fn prepare_workdir() -> Result<()> {
    let dir = Path::new(WORKDIR);
    fs::create_dir_all(dir).with_context(|| format!("creating {WORKDIR}"))?;
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64m,mode=0755"),
    )
    .with_context(|| format!("mounting a tmpfs on {WORKDIR}"))?;
    Ok(())
}

/// Set once a tracer outlived its grace after SIGINT: it ignores the
/// signal, and every later stop gives it a second only, so a tracer that
/// cannot be stopped fails its scenarios by name (a killed run has no exit
/// code) instead of running the cell out of its deadline.
static SIGINT_IGNORED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGINT, then wait up to 30 s (1 s once a tracer ignored it), then
/// SIGKILL.
pub(crate) fn stop(child: &mut Child) -> Result<Option<i32>> {
    use std::sync::atomic::Ordering;
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGINT);
    let grace = if SIGINT_IGNORED.load(Ordering::Relaxed) {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            SIGINT_IGNORED.store(true, Ordering::Relaxed);
            let _ = child.kill();
            let status = child.wait()?;
            return Ok(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_spec() {
        for s in Scenario::ALL {
            assert_eq!(parse_scenario(s.name()).map(|sp| sp.scenario), Ok(*s));
        }
        assert_eq!(
            parse_scenario("storm").map(|s| s.record().mode),
            Ok(TracerMode::Kprobe)
        );
        assert_eq!(
            parse_scenario("fentry").map(|s| s.record().mode),
            Ok(TracerMode::Fentry)
        );
        let e = parse_scenario("nope").unwrap_err();
        assert!(
            e.contains(
                "tutorial, errors, names, callers, printk, fentry, storm, burst, contention, options"
            ),
            "{e}"
        );
    }
}
