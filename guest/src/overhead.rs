//! `unlink-guest overhead`: what a probe costs one unlink. Rounds
//! interleave the probe modes (the order rotates by one each round); in
//! each, the mode's probe is attached, the criterion bench of the unlink
//! path runs with its results in `OUT/criterion/MODE-rROUND/`, and the
//! probe is stopped. The host pools the rounds ([`unlink_schema::OverheadRun`]
//! in `OUT/overhead-run.json` says what ran).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use unlink_schema::protocol::{files, CONSOLE_MARKER};
use unlink_schema::{OverheadRound, OverheadRun, Summary, TargetInfo};

const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// bpftrace's perf buffer and the kernel's trace buffer (printk mode) get
/// room for a whole round's output, so neither drops events: a lossy
/// consumer would make its mode cheaper by a varying amount, and two runs
/// would not agree. 2048 pages and 8192 KiB are 8 MiB each.
const BPFTRACE_PERF_PAGES: &str = "2048";
const TRACE_BUFFER_KIB: &str = "8192";

use unlink_schema::OverheadMode as M;

/// The tracer's command line for a mode (pure): `kprobe` and `fentry`
/// deliver every event to user space, which decodes and counts it
/// (`--quiet`); `kprobe-json` prints each as a JSON line, as a user
/// logging the output would.
pub fn tracer_args(mode: M) -> Vec<&'static str> {
    match mode {
        M::KprobeJson => vec!["--json", "--mode", "kprobe"],
        M::Kprobe | M::Fentry => vec!["--json", "--quiet", "--mode", mode.name()],
        M::Printk => vec![
            "--json",
            "--mode",
            "printk",
            "--trace-buffer-kib",
            TRACE_BUFFER_KIB,
        ],
        other => vec!["--json", "--mode", other.name()],
    }
}

#[derive(Debug, clap::Args)]
pub struct OverheadArgs {
    /// The unlink-tracer binary.
    #[arg(long)]
    tracer: PathBuf,
    /// The criterion bench binary of the unlink path (benches/unlink-path/benches/unlink_path.rs).
    #[arg(long)]
    bench: PathBuf,
    /// Shared directory for results.
    #[arg(long)]
    out: PathBuf,
    /// Modes to measure (`OverheadMode`), interleaved in this order.
    #[arg(long = "mode", required = true, value_parser = M::parse)]
    modes: Vec<M>,
    /// Rounds of all modes.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// bpftrace binary (for the bpftrace mode).
    #[arg(long, default_value = "bpftrace")]
    bpftrace: PathBuf,
    /// criterion: warm-up seconds per bench.
    #[arg(long, default_value = "0.2")]
    warm_up: String,
    /// criterion: measurement seconds per bench.
    #[arg(long, default_value = "1")]
    measure: String,
    /// criterion: samples per bench.
    #[arg(long, default_value_t = 20)]
    samples: u32,
    /// Have the kernel keep BPF run statistics (`kernel.bpf_stats_enabled`):
    /// the tracer then reports what its programs cost. It adds a little to
    /// every BPF mode, so it is off unless asked for.
    #[arg(long)]
    bpf_stats: bool,
    /// Seconds to wait for a probe to attach.
    #[arg(long, default_value_t = 300)]
    attach_timeout: u64,
}

/// The modes of round `round`: `modes` rotated left by `round` (pure).
pub fn round_order<T: Copy>(modes: &[T], round: u32) -> Vec<T> {
    if modes.is_empty() {
        return Vec::new();
    }
    let k = round as usize % modes.len();
    modes[k..].iter().chain(&modes[..k]).copied().collect()
}

/// The criterion arguments of one bench run (pure).
pub fn bench_args(warm_up: &str, measure: &str, samples: u32) -> Vec<String> {
    [
        "--bench",
        "--noplot",
        "--warm-up-time",
        warm_up,
        "--measurement-time",
        measure,
        "--sample-size",
        &samples.to_string(),
        // Only criterion's own per-round estimate uses resamples; the host
        // pools the raw samples itself.
        "--nresamples",
        "1000",
        "unlink/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// bpftrace's version of the tutorial: filename on entry, ret on return,
/// `READY` once attached (pure). The path is read as the first member of
/// `struct filename` (`name`, the kernel's copy), the same two reads
/// `((struct filename *)argN)->name` compiles to: Debian's bpftrace 0.17
/// does not find that struct in 5.10's BTF, and declaring it in the script
/// would need kernel headers in every guest root.
pub fn bpftrace_script(t: &TargetInfo) -> String {
    let ret = if t.ret_is_int {
        "(int32)retval"
    } else {
        "retval"
    };
    format!(
        "BEGIN {{ printf(\"READY\\n\"); }}\n\
         kprobe:{sym} {{ printf(\"KPROBE ENTRY pid = %d, filename = %s\\n\", pid, str(*(uint64 *)arg{n})); }}\n\
         kretprobe:{sym} {{ printf(\"KPROBE EXIT: pid = %d, ret = %d\\n\", pid, {ret}); }}\n",
        sym = t.symbol,
        n = t.name_arg,
    )
}

/// Runs every round; writes `overhead-run.json` and `done`. Returns whether
/// every round succeeded.
pub fn run(args: &OverheadArgs, release: &str, workdir: &Path) -> bool {
    let target = show_target(&args.tracer);
    let bench_args = bench_args(&args.warm_up, &args.measure, args.samples);
    let mut run = OverheadRun {
        kernel_release: release.to_string(),
        target: target.as_ref().ok().cloned(),
        bench_args: bench_args.clone(),
        rounds: Vec::new(),
    };
    let bench_dir = workdir.join("bench");
    let prepared = fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))
        .and_then(|()| {
            if args.bpf_stats {
                fs::write(BPF_STATS_SYSCTL, "1")
                    .with_context(|| format!("enabling BPF statistics ({BPF_STATS_SYSCTL})"))
            } else {
                Ok(())
            }
        });
    for round in 0..args.rounds {
        for mode in round_order(&args.modes, round) {
            let criterion_dir = format!("criterion/{mode}-r{round}");
            let mut r = OverheadRound {
                mode: mode.name().to_string(),
                round,
                ok: false,
                error: None,
                failure: None,
                attach_s: 0.0,
                bench_s: 0.0,
                drain_s: 0.0,
                probe_calls: None,
                probe_dropped: None,
                programs: Vec::new(),
                criterion_dir: criterion_dir.clone(),
            };
            let result = match (&prepared, &target) {
                (Err(e), _) => Err(anyhow::anyhow!("{e:#}")),
                (_, Err(e)) if mode == M::Bpftrace => {
                    Err(anyhow::anyhow!("no target for bpftrace: {e:#}"))
                }
                _ => one_round(
                    args,
                    mode,
                    target.as_ref().ok(),
                    &args.out.join(&criterion_dir),
                    &bench_dir,
                    &bench_args,
                    &mut r,
                ),
            };
            match result {
                Ok(()) => r.ok = true,
                Err(e) => {
                    r.failure = crate::RunFailed::kind_of(&e);
                    r.error = Some(format!("{e:#}"));
                }
            }
            match &r.error {
                None => println!("{CONSOLE_MARKER}{mode} round {round} OK"),
                Some(e) => println!("{CONSOLE_MARKER}{mode} round {round} FAIL {e}"),
            }
            run.rounds.push(r);
        }
    }
    let all_ok = run.rounds.iter().all(|r| r.ok);
    let written = serde_json::to_vec_pretty(&run)
        .map_err(anyhow::Error::from)
        .and_then(|b| fs::write(args.out.join(files::OVERHEAD_RUN), b).map_err(Into::into));
    if let Err(e) = &written {
        println!(
            "{CONSOLE_MARKER}overhead FAIL writing {}: {e:#}",
            files::OVERHEAD_RUN
        );
    }
    let _ = fs::write(
        args.out.join(files::DONE),
        if all_ok && written.is_ok() {
            "ok\n"
        } else {
            "fail\n"
        },
    );
    all_ok && written.is_ok()
}

fn show_target(tracer: &Path) -> Result<TargetInfo> {
    let out = Command::new(tracer)
        .arg("--show-target")
        .output()
        .with_context(|| format!("running {} --show-target", tracer.display()))?;
    if !out.status.success() {
        bail!(
            "{} --show-target: {}",
            tracer.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the tracer's --show-target output")
}

/// A probe attached for one round. Its stdout goes to a file on the
/// guest's tmpfs, read only after the round: a reader process woken by
/// every line would compete with the bench for the one vCPU, at moments
/// that differ from run to run, and add its own cost to the mode's.
struct Probe {
    child: Child,
    /// The probe's stdout, still growing while output drains.
    output: PathBuf,
    /// The tracer's stderr (its summary), where the probe is the tracer.
    summary_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy)]
struct LineCount {
    /// Lines that report a call (JSON) or its entry or exit (tutorial lines).
    calls: u64,
    /// Events the tool said it lost (bpftrace's "Lost N events").
    lost: u64,
}

fn one_round(
    args: &OverheadArgs,
    mode: M,
    target: Option<&TargetInfo>,
    crit_dir: &Path,
    bench_dir: &Path,
    bench_args: &[String],
    r: &mut OverheadRound,
) -> Result<()> {
    fs::create_dir_all(crit_dir).with_context(|| format!("creating {}", crit_dir.display()))?;
    let start = Instant::now();
    let output = bench_dir.with_file_name(format!("probe-{mode}.out"));
    let probe = match mode {
        M::Baseline => None,
        M::Bpftrace => {
            let t = target.context("no attach target for bpftrace")?;
            Some(start_bpftrace(args, t, crit_dir, output)?)
        }
        tracer_mode => Some(start_tracer(args, tracer_mode, crit_dir, output)?),
    };
    r.attach_s = start.elapsed().as_secs_f64();

    let bench_start = Instant::now();
    let bench = Command::new(&args.bench)
        .args(bench_args)
        .env("CRITERION_HOME", crit_dir)
        .env("UNLINK_BENCH_DIR", bench_dir)
        .stdout(File::create(crit_dir.join("bench.out")).context("creating bench.out")?)
        .stderr(File::create(crit_dir.join("bench.err")).context("creating bench.err")?)
        .status()
        .with_context(|| format!("running {}", args.bench.display()));
    r.bench_s = bench_start.elapsed().as_secs_f64();

    // Stopped whatever the bench did, so no probe outlives its round.
    let stopped = probe.map(|p| stop_probe(p, mode)).transpose();
    if let Ok(Some(Some(seen))) = &stopped {
        r.drain_s = seen.drain_s;
    }
    let bench = bench?;
    if !bench.success() {
        bail!(
            "the bench exited with {bench}; see {}/bench.err",
            r.criterion_dir
        );
    }
    if let Some(seen) = stopped?.flatten() {
        if let Some((calls, dropped)) = seen.counted {
            r.probe_calls = Some(calls);
            r.probe_dropped = Some(dropped);
        }
        r.programs = seen.programs;
    }
    Ok(())
}

fn start_tracer(args: &OverheadArgs, mode: M, dir: &Path, output: PathBuf) -> Result<Probe> {
    let ready = dir.join(files::READY);
    let stderr = dir.join(files::TRACER_ERR);
    let child = Command::new(&args.tracer)
        .args(tracer_args(mode))
        .arg("--ready-file")
        .arg(&ready)
        .stdout(create(&output)?)
        .stderr(create(&stderr)?)
        .spawn()
        .with_context(|| format!("starting {}", args.tracer.display()))?;
    let mut probe = Probe {
        child,
        output,
        summary_file: Some(stderr),
    };
    wait_ready(&mut probe, args.attach_timeout, &|| ready.exists())?;
    Ok(probe)
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

fn start_bpftrace(
    args: &OverheadArgs,
    t: &TargetInfo,
    dir: &Path,
    output: PathBuf,
) -> Result<Probe> {
    let script = bpftrace_script(t);
    fs::write(dir.join("probe.bt"), &script).context("writing probe.bt")?;
    let child = Command::new(&args.bpftrace)
        .args(["-B", "line", "-e", &script])
        .env("BPFTRACE_PERF_RB_PAGES", BPFTRACE_PERF_PAGES)
        .stdout(create(&output)?)
        .stderr(create(&dir.join("bpftrace.err"))?)
        .spawn()
        .with_context(|| format!("starting {}", args.bpftrace.display()))?;
    let mut probe = Probe {
        child,
        output,
        summary_file: None,
    };
    let out = probe.output.clone();
    wait_ready(&mut probe, args.attach_timeout, &|| {
        fs::read_to_string(&out).is_ok_and(|s| s.lines().any(|l| l == "READY"))
    })?;
    Ok(probe)
}

fn wait_ready(probe: &mut Probe, timeout: u64, ready: &dyn Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while !ready() {
        if let Some(status) = probe.child.try_wait()? {
            // The tracer says why (its stderr's JSON error object);
            // bpftrace's stderr is its own.
            match &probe.summary_file {
                Some(stderr) => {
                    return Err(crate::RunFailed::exited_early("the probe", &status, stderr).into())
                }
                None => bail!("the probe exited before attaching ({status}); see its .err file"),
            }
        }
        if Instant::now() > deadline {
            let _ = crate::stop(&mut probe.child);
            return Err(crate::RunFailed {
                failure: unlink_schema::Failure::AttachTimeout,
                message: format!("the probe did not attach within {timeout}s"),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Counts the calls and losses in a probe's output.
fn count_lines(out: impl std::io::Read) -> Result<LineCount> {
    let mut count = LineCount::default();
    let mut reader = BufReader::with_capacity(1 << 16, out);
    let mut line = String::new();
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .context("reading the probe's output")?
            == 0
        {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("Lost ") {
            count.lost += rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        } else if line.starts_with('{') || line.contains("KPROBE ") {
            // A tracer JSON line, or a tutorial line (trace_pipe, bpftrace).
            count.calls += 1;
        }
    }
    Ok(count)
}

fn open_output(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// What a stopped probe reported.
struct Seen {
    /// Seconds output kept coming after the bench ended.
    drain_s: f64,
    /// Calls seen and dropped, where the probe counts them.
    counted: Option<(u64, u64)>,
    programs: Vec<unlink_schema::ProgramStats>,
}

/// Stops the probe; returns what it saw, where it can tell.
fn stop_probe(mut p: Probe, mode: M) -> Result<Option<Seen>> {
    // Output still buffered in the kernel (bpftrace's perf buffer, the
    // trace buffer) is read before the probe is stopped: bpftrace exits
    // without draining it.
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    let mut drain_s = 0.0;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    loop {
        let before = size(&p.output);
        std::thread::sleep(Duration::from_millis(300));
        if size(&p.output) == before || Instant::now() > deadline {
            break;
        }
        drain_s = start.elapsed().as_secs_f64();
    }
    let code = crate::stop(&mut p.child)?;
    let lines = count_lines(open_output(&p.output)?)?;
    // Tens of MB on the guest's tmpfs per round: not kept.
    let _ = fs::remove_file(&p.output);
    if code != Some(0) && mode != M::Bpftrace {
        bail!("the {mode} probe exited with {code:?}; see its .err file");
    }
    let summary = match &p.summary_file {
        Some(path) => {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                text.lines()
                    .rev()
                    .find_map(|l| serde_json::from_str::<Summary>(l).ok())
                    .context("the tracer wrote no summary")?,
            )
        }
        None => None,
    };
    let programs = summary
        .as_ref()
        .map(|s| s.programs.clone())
        .unwrap_or_default();
    let seen = |calls, dropped| {
        Some(Seen {
            drain_s,
            counted: Some((calls, dropped)),
            programs: programs.clone(),
        })
    };
    Ok(match (mode, &summary) {
        (M::Bpftrace, _) => seen(lines.calls / 2, lines.lost),
        // Both trace_pipe lines of a call (entry, exit).
        (M::Printk, _) => seen(lines.calls / 2, 0),
        (M::Kprobe | M::KprobeJson | M::Fentry, Some(s)) => {
            seen(s.counters.returns, s.counters.dropped)
        }
        // The empty modes count nothing, but their programs' statistics
        // (with --bpf-stats) are still worth reporting.
        (_, Some(s)) if !s.programs.is_empty() => Some(Seen {
            drain_s,
            counted: None,
            programs,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_modes() {
        let m = ["a", "b", "c"];
        let cases: &[(u32, &[&str])] = &[
            (0, &["a", "b", "c"]),
            (1, &["b", "c", "a"]),
            (2, &["c", "a", "b"]),
            (3, &["a", "b", "c"]),
        ];
        for (round, want) in cases {
            assert_eq!(round_order(&m, *round), *want, "round {round}");
        }
        assert!(round_order::<M>(&[], 4).is_empty());
    }

    #[test]
    fn modes_by_name() {
        assert_eq!(M::parse("empty-pair"), Ok(M::EmptyPair));
        let e = M::parse("nope").unwrap_err();
        assert!(e.contains("baseline, empty-kprobe"), "{e}");
    }

    #[test]
    fn tracer_command_lines() {
        let cases: &[(M, &str)] = &[
            (M::Kprobe, "--json --quiet --mode kprobe"),
            (M::Fentry, "--json --quiet --mode fentry"),
            (M::KprobeJson, "--json --mode kprobe"),
            (M::Printk, "--json --mode printk --trace-buffer-kib 8192"),
            (M::EmptyPair, "--json --mode empty-pair"),
        ];
        for (mode, want) in cases {
            assert_eq!(tracer_args(*mode).join(" "), *want, "{mode}");
        }
    }

    #[test]
    fn bench_arguments() {
        assert_eq!(
            bench_args("0.1", "0.5", 10).join(" "),
            "--bench --noplot --warm-up-time 0.1 --measurement-time 0.5 --sample-size 10 --nresamples 1000 unlink/"
        );
    }

    #[test]
    fn bpftrace_script_follows_the_target() {
        let t = TargetInfo {
            symbol: "filename_unlinkat".into(),
            proto: "int filename_unlinkat(int dfd, struct filename *name)".into(),
            ret_is_int: true,
            dfd_arg: Some(0),
            name_arg: 1,
        };
        let s = bpftrace_script(&t);
        assert!(s.contains("kprobe:filename_unlinkat {"), "{s}");
        assert!(s.contains("str(*(uint64 *)arg1)"), "{s}");
        assert!(s.contains("(int32)retval"), "{s}");
        let long = TargetInfo {
            ret_is_int: false,
            ..t
        };
        assert!(bpftrace_script(&long).contains(", retval); }"));
    }

    #[test]
    fn lines_counted_and_losses_summed() {
        let text = "Attaching 3 probes...\nREADY\nKPROBE ENTRY pid = 1, filename = a\nKPROBE EXIT: pid = 1, ret = 0\nLost 12 events\n\n";
        let c = count_lines(text.as_bytes()).unwrap();
        assert_eq!(c.lost, 12);
        assert_eq!(c.calls, 2);
        let json = count_lines("{\"pid\":1}\n{\"pid\":2}\n".as_bytes()).unwrap();
        assert_eq!(json.calls, 2);
    }
}
