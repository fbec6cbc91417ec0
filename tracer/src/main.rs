//! `unlink-tracer`: one line per unlink call on the running kernel.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI: its output is the trace and its summary"
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use unlink_schema::Summary;
use unlink_tracer::event::{json_event, text_line};
use unlink_tracer::probe::{Config, Mode, ObjectStorage, Output, Session};
use unlink_tracer::target;

/// Trace the kernel's unlink path: one line per call with pid, comm, path,
/// return value and latency.
#[derive(Debug, Parser)]
#[command(name = "unlink-tracer", version)]
struct Cli {
    /// How to probe: kprobe (kprobe + kretprobe), fentry (fentry + fexit),
    /// printk (the tutorial's bpf_printk lines); empty-kprobe,
    /// empty-kretprobe and empty-pair attach programs that do nothing (what
    /// the mechanism alone costs: the overhead meter's floor).
    #[arg(long, default_value = "kprobe", value_parser = Mode::parse)]
    mode: Mode,
    /// Kernel function to attach to (default: the first of do_unlinkat, filename_unlinkat found in BTF).
    #[arg(long)]
    symbol: Option<String>,
    /// Print JSON lines instead of text (fields: see README).
    #[arg(long)]
    json: bool,
    /// Trace only this process id.
    #[arg(long)]
    pid: Option<u32>,
    /// Trace only calls made by this command name (the kernel's comm, at
    /// most 15 bytes); filtered in the kernel, so the counters cover it alone.
    #[arg(long, value_parser = parse_comm)]
    comm: Option<String>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Stop after this many calls (lines in printk mode), at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Create this file once the probes are attached (for harnesses).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Print no calls: consume and count them only (the summary still goes
    /// to stderr). For load tests, where formatting would be the bottleneck.
    #[arg(long)]
    quiet: bool,
    /// Ring buffer size in KiB: a power of two from 4 (a page) to 1048576 [default: 4096].
    #[arg(long, value_parser = parse_ringbuf_kib)]
    ringbuf_kib: Option<u32>,
    /// Return instances of the kretprobe (kprobe, printk and the empty
    /// modes): calls that may be inside the function at once before a
    /// return is missed (and counted), 1 to 4096, through a tracefs
    /// kprobe_events entry; 0 takes the kernel's default (NR_CPUS on a
    /// non-preemptible kernel before 6.2) [default: 1024, or the kernel's
    /// where tracefs refuses the entry; the summary says which].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(unlink_schema::MAX_MAXACTIVE)))]
    maxactive: Option<u32>,
    /// printk mode: set the kernel's trace buffer to this many KiB per CPU
    /// (the tutorial's lines are lost when the reader falls behind a full buffer).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    trace_buffer_kib: Option<u32>,
    /// Show libbpf's own messages (verifier log included) on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Print the function the probes would attach to (JSON) and exit.
    #[arg(long)]
    show_target: bool,
}

fn parse_comm(s: &str) -> Result<String, String> {
    match s.len() {
        1..=15 => Ok(s.to_string()),
        n => Err(format!(
            "`{s}` is {n} bytes; a command name (the kernel's comm) is 1 to 15 bytes"
        )),
    }
}

fn parse_ringbuf_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(k) if k.is_power_of_two() && (4..=1 << 20).contains(&k) => Ok(k),
        _ => Err(format!(
            "`{s}`: the ring buffer is a power of two of KiB from 4 (a page) to 1048576"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{s}`: the duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.context("installing signal handler")?;
    }
    Ok(())
}

/// Why the session ended.
#[derive(Debug, Clone, Copy)]
enum StopReason {
    Signal,
    Duration,
    Count,
}

impl StopReason {
    fn name(self) -> &'static str {
        match self {
            StopReason::Signal => "signal",
            StopReason::Duration => "duration",
            StopReason::Count => "count",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With --json the error is JSON too: its kind for programs,
            // its message for people.
            let json = cli
                .json
                .then(|| serde_json::to_string(&error_object(&e)).ok())
                .flatten();
            match json {
                Some(line) => eprintln!("{line}"),
                None => eprintln!("unlink-tracer: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// An error as the `--json` error object: the probe's kind where the
/// error is one of the probe's, `other` for the rest.
fn error_object(e: &anyhow::Error) -> unlink_schema::TracerError {
    unlink_schema::TracerError {
        error: e
            .chain()
            .find_map(|c| c.downcast_ref::<unlink_tracer::probe::ProbeError>())
            .map_or(unlink_schema::Failure::Other, |p| p.kind()),
        message: format!("{e:#}"),
    }
}

fn run(cli: &Cli) -> Result<()> {
    unlink_tracer::probe::capture_libbpf_log(cli.verbose);
    let target = target::resolve_running(cli.symbol.as_deref())?;
    if cli.show_target {
        let info = unlink_schema::TargetInfo {
            symbol: target.symbol.clone(),
            proto: target.proto.to_string(),
            ret_is_int: target.ret_is_int,
            dfd_arg: target.dfd_arg,
            name_arg: target.name_arg,
        };
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    let cfg = Config {
        mode: cli.mode,
        target: target.clone(),
        pid: cli.pid,
        comm: cli.comm.as_ref().map(|c| c.as_bytes().to_vec()),
        ringbuf_bytes: cli.ringbuf_kib.map(|k| k.saturating_mul(1024)),
        trace_buffer_kib: cli.trace_buffer_kib,
        maxactive: cli.maxactive,
    };
    install_signal_handlers()?;
    let mut storage = ObjectStorage::uninit();
    let session = Session::start(&cfg, &mut storage);
    if cli.verbose {
        for line in unlink_tracer::probe::take_libbpf_log().lines() {
            // libbpf starts most of its messages with its name; the
            // verifier log's lines come without it.
            eprintln!("libbpf: {}", line.strip_prefix("libbpf: ").unwrap_or(line));
        }
    }
    let mut session = session?;
    if let Some(path) = &cli.ready_file {
        std::fs::write(path, format!("{}\n", target.symbol))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "unlink-tracer: {} mode on {} {} (ret {}-bit); Ctrl-C to stop",
        cli.mode.name(),
        target.symbol,
        target.proto,
        if target.ret_is_int { 32 } else { 64 }
    );

    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut p = Printer {
        cli,
        symbol: &target.symbol,
        clock: ClockOffset::now(),
        out: std::io::BufWriter::new(stdout.lock()),
        printed: 0,
        err: None,
    };
    let stopped_by = loop {
        if STOP.load(Ordering::SeqCst) {
            break StopReason::Signal;
        }
        if cli.duration.is_some_and(|d| started.elapsed() >= d) {
            break StopReason::Duration;
        }
        if p.full() {
            break StopReason::Count;
        }
        // The wall clock may be stepped (settimeofday, NTP): the offset is
        // read again before each drain, so a step shows in the calls
        // drained after it (within one poll, 100 ms).
        p.clock = ClockOffset::now();
        session.poll(Duration::from_millis(100), &mut |o| p.sink(o))?;
        if let Some(err) = p.err.take() {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                break StopReason::Signal;
            }
            return Err(err).context("writing to stdout");
        }
        p.out.flush().context("writing to stdout")?;
    };
    // What is already in the ring buffer is printed too (up to --count)
    // before counting: a call that returned before the stop is never lost.
    session.poll(Duration::ZERO, &mut |o| p.sink(o))?;
    match p.err.take().map(|e| (e.kind(), e)) {
        None | Some((std::io::ErrorKind::BrokenPipe, _)) => {}
        Some((_, e)) => return Err(e).context("writing to stdout"),
    }
    let _ = p.out.flush();
    let printed = p.printed;
    let summary = Summary {
        mode: cli.mode.name().to_string(),
        symbol: target.symbol.clone(),
        ret_width_bits: if target.ret_is_int { 32 } else { 64 },
        printed,
        stopped_by: stopped_by.name().to_string(),
        counters: session.counters(),
        programs: session.program_stats(),
        return_probe: session.return_probe(),
    };
    if cli.json {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!("{}", summary_text(&summary));
    }
    Ok(())
}

/// Turns each call (or trace_pipe line) into its output line and counts
/// what it printed; stops printing at `--count` or at the first write error.
struct Printer<'a, W: Write> {
    cli: &'a Cli,
    symbol: &'a str,
    clock: ClockOffset,
    out: W,
    printed: u64,
    err: Option<std::io::Error>,
}

impl<W: Write> Printer<'_, W> {
    /// `--count` lines printed.
    fn full(&self) -> bool {
        self.cli.count.is_some_and(|n| self.printed >= n)
    }

    fn sink(&mut self, o: Output) {
        if self.full() || self.err.is_some() {
            return;
        }
        let line = match o {
            Output::Call(e) => {
                if self.cli.quiet {
                    self.printed += 1;
                    return;
                }
                let unix_ns = self.clock.to_unix(e.ts_ns);
                if self.cli.json {
                    match serde_json::to_string(&json_event(e, self.symbol, unix_ns)) {
                        Ok(s) => s,
                        Err(err) => {
                            self.err = Some(std::io::Error::other(err));
                            return;
                        }
                    }
                } else {
                    text_line(e, self.symbol, unix_ns)
                }
            }
            Output::TraceLine(l) => l.to_string(),
        };
        self.printed += 1;
        if let Err(err) = writeln!(self.out, "{line}") {
            self.err = Some(err);
        }
    }
}

fn summary_text(s: &Summary) -> String {
    let c = &s.counters;
    let missed = match c.kernel_missed {
        Some(n) => n.to_string(),
        None => "not reported by this kernel".to_string(),
    };
    format!(
        "unlink-tracer: {} lines; events {}, dropped {}, returns without entry {}, \
         entries never returned {}, lost entries not remembered {}, undecodable records {}, kernel-reported missed {}",
        s.printed,
        c.events,
        c.dropped,
        c.unpaired_returns,
        c.inflight,
        c.lost_untracked,
        c.decode_errors,
        missed
    )
}

/// Maps CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall-clock time.
struct ClockOffset(i128);

impl ClockOffset {
    /// The two clocks cannot be read at once: a CLOCK_REALTIME read is
    /// bracketed by two CLOCK_MONOTONIC reads, the tightest bracket of a few
    /// tries is kept, and its midpoint taken, so the offset is off by at
    /// most half that gap. (One pair of reads was off by up to 0.8 ms in
    /// x86_64 guests under TCG, where a clock read can be slow or preempted.)
    fn now() -> Self {
        use nix::time::{clock_gettime, ClockId};
        let ns = |id| {
            clock_gettime(id)
                .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
                .unwrap_or(0)
        };
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..8 {
            let m1 = ns(ClockId::CLOCK_MONOTONIC);
            let r = ns(ClockId::CLOCK_REALTIME);
            let m2 = ns(ClockId::CLOCK_MONOTONIC);
            let gap = m2 - m1;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, r - (m1 + m2) / 2));
            }
        }
        ClockOffset(best.map(|(_, off)| off).unwrap_or(0))
    }

    fn to_unix(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.0).max(0) as u64
    }
}
