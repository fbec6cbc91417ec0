//! Stage 6, check: the regression gate of one cell. Every scenario the
//! guest agent ran is judged here — against a reviewed snapshot, or against
//! a stated invariant — and gets a verdict with its reason: pass, fail, or
//! an expected limitation that the kernel itself establishes (its config).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use unlink_schema::protocol::{files, PRINTK_TRACE_BUFFER_KIB};
use unlink_schema::{RunOutcome, Scenario, Step, FILENAME_BUF};

pub mod check;
pub mod console;
pub mod expect;
pub mod fields;
pub mod normalise;
pub mod options;
pub mod text;

use crate::kernels::facts::{fentry_expectation, reports_missed, FentryExpectation, DIRECT_CALLS};
use crate::kernels::kernel::KernelImage;
use crate::model::{ScenarioResult, Span, Status};
use check::{PrintkLine, SnapshotCheck};
use normalise::{Normalised, TraceEvent, TracerSummary};

/// The scenarios every cell runs, in order (the agent knows their
/// workloads).
pub const SCENARIOS: &[Scenario] = Scenario::ALL;

/// The verdicts judged across the scenarios' runs, after their own.
pub const ACROSS: &[&str] = &["fields", "pairing", "ret-width", "oracle", "console"];

/// Every verdict of a cell's gate table, in its order: each scenario's
/// own, as its record names them, then [`ACROSS`].
pub static VERDICTS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    unlink_schema::SCENARIO_SPECS
        .iter()
        .flat_map(|s| s.verdicts.iter().copied())
        .chain(ACROSS.iter().copied())
        .collect()
});

/// The runs whose every event is checked field by field against the
/// agent's record, as their records say (the options scenario's are
/// checked by its verdicts).
pub fn field_checked() -> Vec<Scenario> {
    Scenario::those(|s| s.fields)
}

/// The runs traced beside the kernel's own kprobe tracer (`oracle`), as
/// their records say.
pub fn oracle_checked() -> Vec<Scenario> {
    Scenario::those(|s| s.oracle)
}

/// A call-by-call run as parsed once for all its verdicts: its calls, the
/// tracer's events and summary.
type Parsed = (Vec<Step>, Vec<TraceEvent>, TracerSummary);

/// The scenarios whose normalised trace is a reviewed snapshot, as their
/// records say.
pub fn snapshotted() -> Vec<Scenario> {
    Scenario::those(|s| s.snapshot)
}

/// What a cell's gate found, besides the verdicts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub symbol: Option<String>,
    pub ret_width_bits: Option<u32>,
    /// Workload events of the tutorial.
    pub events: Option<usize>,
    /// Returns the kernel did not deliver in the contention scenario.
    pub missed_returns: Option<u64>,
    /// The snapshot each snapshotted scenario was checked against.
    pub snapshots: Vec<(String, String)>,
}

/// One run's files, as the agent wrote them.
pub struct Run {
    pub outcome: RunOutcome,
    pub steps: Vec<Step>,
    pub trace: String,
    pub stderr: String,
}

/// A run the agent says failed, with the kind it gave (if any).
#[derive(Debug)]
pub struct RunFailed {
    pub failure: Option<unlink_schema::Failure>,
    pub detail: String,
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for RunFailed {}

/// Reads what the agent wrote for one run; Err names what is missing or
/// failed (a [`RunFailed`] with its kind when the agent said the run failed).
pub fn read_run(dir: &Path) -> Result<Run> {
    let outcome: RunOutcome = serde_json::from_slice(
        &std::fs::read(dir.join(files::RESULT))
            .with_context(|| format!("no {}/result.json", dir.display()))?,
    )
    .context("result.json")?;
    let stderr = std::fs::read_to_string(dir.join(files::TRACER_ERR)).unwrap_or_default();
    if !outcome.ok {
        return Err(RunFailed {
            failure: outcome.failure,
            detail: outcome
                .error
                .unwrap_or_else(|| "the agent says the run failed".into()),
        }
        .into());
    }
    let steps: Vec<Step> = serde_json::from_slice(&std::fs::read(dir.join(files::WORKLOAD))?)
        .context("workload.json")?;
    let trace = std::fs::read_to_string(dir.join(files::TRACE)).unwrap_or_default();
    Ok(Run {
        outcome,
        steps,
        trace,
        stderr,
    })
}

/// Each scenario's phases as the agent timed them: attach, workload, and
/// the rest (stopping the tracer, the oracle, writing its files).
pub fn scenario_spans(out: &Path) -> Vec<Span> {
    let mut spans = Vec::new();
    for s in SCENARIOS {
        let Ok(bytes) = std::fs::read(out.join(s.name()).join(files::RESULT)) else {
            continue;
        };
        let Ok(o) = serde_json::from_slice::<RunOutcome>(&bytes) else {
            continue;
        };
        spans.push(Span::new(format!("{s} attach"), o.attach_s));
        spans.push(Span::new(format!("{s} workload"), o.workload_s));
        spans.push(Span::new(
            format!("{s} stop"),
            (o.total_s - o.attach_s - o.workload_s).max(0.0),
        ));
    }
    spans
}

/// `uname -r` as the guest agent reported it (in any scenario's result).
pub fn guest_release(out: &Path) -> Option<String> {
    SCENARIOS.iter().find_map(|s| {
        let bytes = std::fs::read(out.join(s.name()).join(files::RESULT)).ok()?;
        let o: RunOutcome = serde_json::from_slice(&bytes).ok()?;
        Some(o.kernel_release).filter(|r| !r.is_empty())
    })
}

fn summary_of(run: &Run) -> Result<TracerSummary> {
    normalise::parse_summary(&run.stderr).context("the tracer wrote no JSON summary")
}

/// A run normalised: its text (kept beside the raw output), events, summary.
fn normalised(dir: &Path) -> Result<(Run, Vec<TraceEvent>, Normalised, TracerSummary)> {
    let run = read_run(dir)?;
    let events = normalise::parse_events(&run.trace)?;
    let summary = summary_of(&run)?;
    let n = normalise::normalise(&run.steps, &events, &summary);
    std::fs::write(dir.join(files::NORMALISED), &n.text)?;
    anyhow::ensure!(
        summary.counters.decode_errors == 0,
        "{} ring buffer records did not decode",
        summary.counters.decode_errors
    );
    Ok((run, events, n, summary))
}

fn verdict(name: &str, result: Result<String>) -> ScenarioResult {
    match result {
        Ok(detail) => ScenarioResult::new(name, Status::Pass, detail),
        Err(e) => ScenarioResult {
            failure: e
                .chain()
                .find_map(|c| c.downcast_ref::<RunFailed>())
                .and_then(|r| r.failure),
            ..ScenarioResult::new(name, Status::Fail, format!("{e:#}"))
        },
    }
}

/// Judges every scenario of a cell from its results directory `out`.
pub fn gate(
    out: &Path,
    img: &KernelImage,
    alias: &str,
    arch: &str,
    release: &str,
) -> (Vec<ScenarioResult>, Facts) {
    let mut facts = Facts::default();
    let snaps = check::snapshot_dir();
    let mut results = Vec::new();
    let mut texts: BTreeMap<&str, String> = BTreeMap::new();
    let mut runs: BTreeMap<&str, Parsed> = BTreeMap::new();
    // What tracefs offered, per run, for the fields verdict.
    let mut symbols: BTreeMap<&str, Option<String>> = BTreeMap::new();

    for name in snapshotted().iter().map(|s| s.name()) {
        let r = (|| -> Result<String> {
            let (run, events, n, summary) = normalised(&out.join(name))?;
            if name == "tutorial" {
                facts.symbol = Some(summary.symbol.clone());
                facts.ret_width_bits = Some(summary.ret_width_bits);
                facts.events = Some(n.events);
            }
            let snap = check::snapshot_for(&snaps, name, alias, arch);
            facts.snapshots.push((name.to_string(), snap.clone()));
            texts.insert(name, n.text.clone());
            // Truncation must be visible, never silent.
            let truncation = if name == "names" {
                let long = run.steps.iter().filter(|s| expect::truncated(s)).count();
                let flagged = normalise::pair(&run.steps, &events)
                    .iter()
                    .zip(&run.steps)
                    .filter(|(e, s)| {
                        expect::truncated(s) && e.is_some_and(|e| e.filename_truncated)
                    })
                    .count();
                (long == 0 || flagged < long).then(|| {
                    format!("{flagged} of {long} paths longer than the tracer's {FILENAME_BUF}-byte buffer are marked truncated")
                })
            } else {
                None
            };
            runs.insert(name, (run.steps.clone(), events, summary));
            symbols.insert(name, run.outcome.kernel_symbol.clone());
            if let Some(problem) = truncation {
                anyhow::bail!("{problem}");
            }
            match check::check_snapshot(&snaps, &snap, &n.text)? {
                SnapshotCheck::Match => Ok(format!(
                    "matches snapshot {snap}: {} calls, {} workload events",
                    run.steps.len(),
                    n.events
                )),
                other => anyhow::bail!("snapshot {snap} {other}"),
            }
        })();
        results.push(verdict(name, r));
    }
    let callers = (|| -> Result<String> {
        let name = Scenario::Callers.name();
        let (run, events, _, summary) = normalised(&out.join(name))?;
        let exercised = callers_exercised(&run.steps).map_err(|e| anyhow::anyhow!(e))?;
        runs.insert(name, (run.steps, events, summary));
        symbols.insert(name, run.outcome.kernel_symbol);
        Ok(exercised)
    })();
    results.push(verdict(Scenario::Callers.name(), callers));
    results.push(verdict("printk", check_printk(&out.join("printk"))));
    let (fentry, fentry_run) = check_fentry(&out.join("fentry"), &texts, fentry_expectation(img));
    results.push(fentry);
    // Every load scenario, by its record's loss rule; contention's missed
    // returns are a fact of the cell.
    for spec in unlink_schema::SCENARIO_SPECS {
        let Some(load) = spec.load else { continue };
        let sc = spec.scenario;
        let (r, missed) = check_load(sc.name(), &out.join(sc.name()), release, load);
        if sc == Scenario::Contention {
            facts.missed_returns = missed;
        }
        results.push(r);
    }
    results.extend(check_options(&out.join("options"), facts.ret_width_bits));
    results.push(verdict(
        "fields",
        check_fields(&runs, &symbols, fentry_run.as_ref()),
    ));
    results.push(verdict("pairing", check_pairing(&runs)));
    results.push(verdict("ret-width", check_ret_width(&runs)));
    results.push(verdict("oracle", check_oracle(out, &runs)));
    (results, facts)
}

/// Whether the callers scenario made every kind of call it exists for
/// (pure): a second process, another uid, threads named unlike the
/// process (one at the comm's 15-byte limit), one comm that changed between
/// two calls of a thread, and races where exactly one of two threads
/// unlinked each file. The tracer is judged on them by `fields`, `oracle`
/// and `pairing`; this says the inputs were there to judge.
pub fn callers_exercised(steps: &[Step]) -> Result<String, String> {
    use std::collections::{BTreeMap, BTreeSet};
    let main_pid = steps
        .first()
        .map(|s| s.pid)
        .ok_or("the workload made no call")?;
    let pids: BTreeSet<u32> = steps.iter().map(|s| s.pid).collect();
    let threads: BTreeSet<u32> = steps
        .iter()
        .filter(|s| s.pid == main_pid && s.tid != main_pid)
        .map(|s| s.tid)
        .collect();
    let comms: BTreeSet<&str> = steps.iter().map(|s| s.comm.as_str()).collect();
    let full_comm = steps
        .iter()
        .any(|s| unlink_schema::unescape_bytes(&s.comm).is_some_and(|c| c.len() == 15));
    let renamed = steps
        .windows(2)
        .any(|w| w[0].tid == w[1].tid && w[0].comm != w[1].comm);
    // Consecutive calls more than half an hour apart on the wall clock
    // (the agent stepped it), both ways.
    const STEPPED_NS: u64 = 1_800_000_000_000;
    let forward = steps
        .windows(2)
        .any(|w| w[1].start_ns > w[0].end_ns + STEPPED_NS);
    let back = steps
        .windows(2)
        .any(|w| w[0].end_ns > w[1].start_ns + STEPPED_NS);
    let mut races: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for s in steps.iter().filter(|s| s.path.starts_with("race-")) {
        races.entry(&s.path).or_default().push(s.ret);
    }
    let lost_races = races
        .iter()
        .filter(|(_, r)| {
            let mut r = r.to_vec();
            r.sort();
            r != [-2, 0]
        })
        .count();
    let missing: Vec<&str> = [
        (pids.len() < 2, "a second process"),
        (!steps.iter().any(|s| s.uid != 0), "another uid"),
        (threads.len() < 3, "three threads besides the main one"),
        (comms.len() < 4, "four comms"),
        (!full_comm, "a 15-byte comm"),
        (!renamed, "a thread renamed between two calls"),
        (
            races.is_empty() || lost_races > 0,
            "races with one winner each",
        ),
        (
            !(forward && back),
            "calls after the wall clock was stepped forward and back",
        ),
    ]
    .into_iter()
    .filter_map(|(missing, what)| missing.then_some(what))
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the workload lacks {} ({} races without exactly one winner)",
            missing.join(", "),
            lost_races
        ));
    }
    Ok(format!(
        "{} calls from {} processes, {} threads, {} comms, {} races",
        steps.len(),
        pids.len(),
        threads.len() + 1,
        comms.len(),
        races.len()
    ))
}

/// The tutorial's printk lines for the workload's calls, with the right ret.
fn check_printk(dir: &Path) -> Result<String> {
    let run = read_run(dir)?;
    // The kernel rounds the size up to whole pages of its ring buffer
    // (2048 shows as 2051 on every kernel of the matrix): a page at most.
    anyhow::ensure!(
        run.outcome
            .trace_buffer_kib
            .is_some_and(|k| (PRINTK_TRACE_BUFFER_KIB..PRINTK_TRACE_BUFFER_KIB + 4).contains(&k)),
        "--trace-buffer-kib {PRINTK_TRACE_BUFFER_KIB}: tracefs buffer_size_kb was {:?} once the tracer attached",
        run.outcome.trace_buffer_kib
    );
    let lines: Vec<PrintkLine> = run.trace.lines().filter_map(check::parse_printk).collect();
    for s in &run.steps {
        let entry = PrintkLine::Entry {
            pid: s.pid,
            filename: s.path.clone(),
        };
        let exit = PrintkLine::Exit {
            pid: s.pid,
            ret: s.ret,
        };
        anyhow::ensure!(
            lines.contains(&entry),
            "no `KPROBE ENTRY pid = {}, filename = {}` line",
            s.pid,
            s.path
        );
        anyhow::ensure!(
            lines.contains(&exit),
            "no `KPROBE EXIT: pid = {}, ret = {}` line ({}); exits seen for that pid: {:?}",
            s.pid,
            s.ret,
            s.path,
            lines
                .iter()
                .filter(|l| matches!(l, PrintkLine::Exit { pid, .. } if *pid == s.pid))
                .collect::<Vec<_>>()
        );
    }
    anyhow::ensure!(!run.steps.is_empty(), "the workload made no call");
    Ok(format!(
        "{} entry/exit line pairs in trace_pipe with the expected ret",
        run.steps.len()
    ))
}

/// fentry/fexit must see exactly what kprobe mode saw for the tutorial and
/// errors workloads. Where the kernel's config rules trampolines out, the
/// tracer's refusal is an expected limitation; anywhere else a failure.
fn check_fentry(
    dir: &Path,
    kprobe: &BTreeMap<&str, String>,
    expect: FentryExpectation,
) -> (ScenarioResult, Option<(Parsed, Option<String>)>) {
    let mut parsed = None;
    let result = verdict(
        "fentry",
        (|| {
            let (run, events, n, summary) = normalised(dir)?;
            parsed = Some(((run.steps, events, summary), run.outcome.kernel_symbol));
            let body = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            };
            let mut want = Vec::new();
            for k in ["tutorial", "errors"] {
                want.extend(body(
                    kprobe.get(k).context("no kprobe-mode trace to compare")?,
                ));
            }
            let got = body(&n.text);
            // Pid placeholders restart per run; compare without them.
            let strip = |v: &[String]| -> Vec<String> {
                v.iter()
                    .map(|l| l.split_once(' ').map(|x| x.1).unwrap_or(l).to_string())
                    .collect()
            };
            let (w, g) = (strip(&want), strip(&got));
            if let Some(i) = (0..w.len().max(g.len())).find(|&i| w.get(i) != g.get(i)) {
                anyhow::bail!(
                    "fentry and kprobe disagree at call {}: kprobe `{}`, fentry `{}`",
                    i + 1,
                    w.get(i).map(String::as_str).unwrap_or("<none>"),
                    g.get(i).map(String::as_str).unwrap_or("<none>")
                );
            }
            Ok(format!("the same {} calls as kprobe mode", g.len()))
        })(),
    );
    (fentry_verdict(result, expect), parsed)
}

/// The fentry verdict from what the run showed and what the kernel's config
/// allows (pure). A refusal where the config rules trampolines out is an
/// expected limitation; traced calls there mean `--mode fentry` was not
/// honoured (the kernel cannot have run fentry programs), so they fail.
pub fn fentry_verdict(result: ScenarioResult, expect: FentryExpectation) -> ScenarioResult {
    match (result.status, expect) {
        (Status::Fail, FentryExpectation::Unavailable)
            if result.failure == Some(unlink_schema::Failure::NoTrampolines) =>
        {
            ScenarioResult {
                status: Status::ExpectedLimitation,
                detail: format!(
                    "the kernel is built without {DIRECT_CALLS}, so BPF trampolines cannot attach; the tracer refused as it should: {}",
                    result.detail
                ),
                ..result
            }
        }
        (Status::Pass, FentryExpectation::Unavailable) => ScenarioResult::new(
            result.name,
            Status::Fail,
            format!(
                "--mode fentry: calls were traced on a kernel built without {DIRECT_CALLS}, where BPF trampolines cannot attach: the mode was not honoured ({})",
                result.detail
            ),
        ),
        _ => result,
    }
}

/// A load scenario (storm, contention): the tracer ran with `--pid` of the
/// workload, so its kernel counters are the workload's alone. Nothing may
/// be lost without being counted: the kernel entered the function once per
/// call, each return is an event received or counted as dropped, and the
/// returns the kernel did not deliver (kernel-reported from 6.7, else
/// entries minus returns) are compared with what this kernel should do.
fn check_load(
    name: &str,
    dir: &Path,
    release: &str,
    spec: unlink_schema::LoadSpec,
) -> (ScenarioResult, Option<u64>) {
    let losses = spec.losses;
    let r = (|| -> Result<(u64, String, u32)> {
        let run = read_run(dir)?;
        let s = summary_of(&run)?;
        // With return instances of its own (`--maxactive`), no kernel's
        // default instances can run short: nothing excuses a missed return
        // the scenario did not make on purpose.
        let rp = return_probe_as_asked(s.return_probe, spec.maxactive)
            .map_err(|e| anyhow::anyhow!(e))?;
        let listed =
            |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"));
        kernel_lists_the_return_probe(
            &listed(files::KPROBE_EVENTS_ATTACHED)?,
            &listed(files::KPROBE_EVENTS_AFTER)?,
            rp,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let load = run.outcome.load.context("the run reported no load")?;
        let c = &s.counters;
        anyhow::ensure!(
            load.failures == 0,
            "{} of the workload's calls failed",
            load.failures
        );
        anyhow::ensure!(
            c.entries == load.calls,
            "{} unlink calls made but the kernel entered the probe {} times",
            load.calls,
            c.entries
        );
        anyhow::ensure!(
            c.events + c.dropped == c.returns,
            "events {} + dropped {} != returns {}: events lost without being counted",
            c.events,
            c.dropped,
            c.returns
        );
        anyhow::ensure!(
            s.printed == c.events,
            "the kernel sent {} events but the tracer received {}",
            c.events,
            s.printed
        );
        anyhow::ensure!(
            c.unpaired_returns == 0,
            "{} returns found no open entry on their thread: entries and returns are not paired per thread",
            c.unpaired_returns
        );
        losses_as_expected(losses, load.consumer_paused, c.dropped, load.calls)
            .map_err(|e| anyhow::anyhow!(e))?;
        never_returned_adds_up(c).map_err(|e| anyhow::anyhow!(e))?;
        programs_as_reported(&s, load.bpf_stats).map_err(|e| anyhow::anyhow!(e))?;
        match (reports_missed(release), c.kernel_missed) {
            (Some(true), None) => anyhow::bail!(
                "kernel_missed: the summary has none, but {release} reports a kprobe link's missed hits (6.7+)"
            ),
            (Some(false), Some(k)) => anyhow::bail!(
                "kernel_missed: the summary says {k}, but {release} reports no missed hits (before 6.7)"
            ),
            _ => {}
        }
        let counted = c.entries.saturating_sub(c.returns);
        let (missed, how) = match c.kernel_missed {
            // The kernel's count covers every process and both probes, ours
            // the workload's returns; nothing else in the guest unlinks (no
            // run of any cell has seen another process's call), so the two
            // are equal.
            Some(k) => {
                anyhow::ensure!(
                    counted == k,
                    "kernel_missed: {counted} returns never reached the tracer but the kernel reports {k} missed"
                );
                (counted, format!("kernel reports {k} missed"))
            }
            None => (counted, "counted as entries - returns".to_string()),
        };
        Ok((
            missed,
            format!(
                "{} threads x {}{}{}: {} calls = kernel entries; returns {} = events {} + dropped {}; returns missed {missed} ({how}); return probe via {} with {} instances",
                load.threads,
                load.calls_per_thread,
                if load.held > 0 {
                    format!(
                        " + {} held in the function while 2 threads x {} filled the ring",
                        load.held,
                        load.fill_calls / 2
                    )
                } else {
                    String::new()
                },
                if load.consumer_paused { " (tracer stopped)" } else { "" },
                load.calls,
                c.returns,
                c.events,
                c.dropped,
                rp.via.name(),
                rp.maxactive
            ),
            load.held,
        ))
    })();
    match r {
        Err(e) => (verdict(name, Err(e)), None),
        Ok((0, detail, _)) => (verdict(name, Ok(detail)), Some(0)),
        // The storm holds more calls inside the function than its tracer
        // has return instances (`--maxactive 10`): the calls made
        // meanwhile miss their returns on every kernel, and must be counted.
        Ok((missed, detail, held)) if held > 0 => (
            verdict(
                name,
                Ok(format!(
                    "{detail}: the {held} held calls took every return instance, so returns were missed by design, each counted"
                )),
            ),
            Some(missed),
        ),
        Ok((missed, detail, _)) => (
            verdict(
                name,
                Err(anyhow::anyhow!(
                    "{detail}: returns were missed though the return probe has more instances than the scenario has calls in the function (release {release})"
                )),
            ),
            Some(missed),
        ),
    }
}

/// The summary's return probe is the one the run asked for (pure): a
/// tracefs entry with `asked` instances (the tracer's default when the
/// scenario names none). The agent runs as root with tracefs mounted, so
/// the tracer's fallback to the kernel's default instances (for a user
/// tracefs refuses) is a failure here.
pub fn return_probe_as_asked(
    got: Option<unlink_schema::ReturnProbe>,
    asked: Option<u32>,
) -> Result<unlink_schema::ReturnProbe, String> {
    use unlink_schema::{ReturnAttach, DEFAULT_MAXACTIVE};
    let rp =
        got.ok_or("return_probe: the summary does not say how the return probe was attached")?;
    let want = asked.unwrap_or(DEFAULT_MAXACTIVE);
    match (rp.via, rp.maxactive) {
        (ReturnAttach::Tracefs, n) if n == want => Ok(rp),
        (via, n) => Err(format!(
            "return_probe: attached via {} with {n} instances, but a tracefs entry with {want} was asked for{}",
            via.name(),
            if asked.is_none() { " (the default)" } else { "" }
        )),
    }
}

/// The kernel's `kprobe_events` agree with the summary's return probe
/// (pure): while the tracer was attached it listed exactly one entry of
/// the tracer's group, a return probe of the summary's instances (`rN:`),
/// and once it exited none.
pub fn kernel_lists_the_return_probe(
    attached: &str,
    after: &str,
    rp: unlink_schema::ReturnProbe,
) -> Result<(), String> {
    let ours = options::tracer_entries;
    let want = format!("r{}:{}/", rp.maxactive, unlink_schema::RETPROBE_GROUP);
    match ours(attached).as_slice() {
        [one] if one.starts_with(&want) => {}
        found => {
            return Err(format!(
                "return_probe: the summary says tracefs with {} instances, but kprobe_events listed {found:?} while the tracer was attached",
                rp.maxactive
            ))
        }
    }
    let left = ours(after);
    if !left.is_empty() {
        return Err(format!(
            "return_probe: the tracer's kprobe_events entry outlived it: {left:?}"
        ));
    }
    Ok(())
}

/// Every entry whose return never came is counted (pure): as `inflight`
/// (its record arrived, or it was lost and remembered), or as
/// `lost_untracked` (lost and not remembered); together they are exactly
/// the entries the kernel saw minus the returns it delivered.
pub fn never_returned_adds_up(c: &unlink_schema::Counters) -> Result<(), String> {
    let never = c.entries.saturating_sub(c.returns);
    if c.inflight + c.lost_untracked != never {
        return Err(format!(
            "entries never returned {} + lost untracked {} != entries {} - returns {}: calls without a return were lost without being counted",
            c.inflight, c.lost_untracked, c.entries, c.returns
        ));
    }
    Ok(())
}

/// The summary's BPF run statistics (pure): with the kernel keeping them,
/// each program kprobe mode attaches, run at least once per call it saw
/// (the entry program runs for every process's unlink, before its filter),
/// with time spent; without, none.
pub fn programs_as_reported(s: &TracerSummary, stats_on: bool) -> Result<(), String> {
    if !stats_on {
        return match s.programs.first() {
            None => Ok(()),
            Some(p) => Err(format!(
                "programs: {} reported without the kernel keeping BPF statistics",
                p.name
            )),
        };
    }
    let c = &s.counters;
    let want = [
        ("kprobe_unlink", c.entries),
        ("kretprobe_unlink", c.returns),
    ];
    let names: Vec<&str> = s.programs.iter().map(|p| p.name.as_str()).collect();
    if names != want.map(|(n, _)| n) {
        return Err(format!(
            "programs: {names:?} reported, kprobe mode attaches {:?}",
            want.map(|(n, _)| n)
        ));
    }
    for (p, (name, saw)) in s.programs.iter().zip(want) {
        if p.run_cnt < saw || p.run_time_ns == 0 {
            return Err(format!(
                "programs: {name} ran {} times in {} ns for {saw} calls it saw",
                p.run_cnt, p.run_time_ns
            ));
        }
    }
    Ok(())
}

pub use unlink_schema::Losses;

/// Whether a load run lost what it had to (pure).
pub fn losses_as_expected(
    losses: Losses,
    consumer_paused: bool,
    dropped: u64,
    calls: u64,
) -> Result<(), String> {
    match losses {
        Losses::Certain if !consumer_paused => {
            Err("the agent did not stop the tracer for the storm: its ring need not overflow".into())
        }
        Losses::Certain if dropped == 0 => Err(format!(
            "the ring did not overflow ({calls} calls, consumer stopped, 0 dropped): the loss accounting was not exercised"
        )),
        Losses::None if dropped > 0 => Err(format!(
            "the default ring dropped {dropped} of {calls} calls of a burst it holds whole"
        )),
        _ => Ok(()),
    }
}

/// The function tracefs says the kernel can probe, as the agent read it.
fn kernel_symbol(run: &Run) -> Result<String> {
    run.outcome.kernel_symbol.clone().context(NO_SYMBOL)
}

const NO_SYMBOL: &str = "symbol: the agent could not read tracefs available_filter_functions";

/// Every event of the call-by-call runs (as the other verdicts parsed
/// them), field by field, against the agent's record of its call; the
/// summary's symbol against tracefs's. A run the kernel cannot do (fentry
/// where trampolines are ruled out) is judged by its own verdict and
/// skipped here.
fn check_fields(
    runs: &BTreeMap<&str, Parsed>,
    symbols: &BTreeMap<&str, Option<String>>,
    fentry: Option<&(Parsed, Option<String>)>,
) -> Result<String> {
    let mut done = Vec::new();
    for sc in &field_checked() {
        let name = sc.name();
        let ((steps, events, summary), symbol) = match (sc, fentry) {
            (Scenario::Fentry, Some((p, s))) => (p, s.as_ref()),
            (Scenario::Fentry, None) => continue,
            _ => (
                runs.get(name)
                    .with_context(|| format!("{name}: no run to check (see its verdict)"))?,
                symbols.get(name).and_then(Option::as_ref),
            ),
        };
        let symbol = symbol.context(NO_SYMBOL)?;
        anyhow::ensure!(
            summary.symbol == *symbol,
            "symbol: {name}: the tracer attached to {}, tracefs offers {symbol}",
            summary.symbol
        );
        let n = fields::check_run(steps, events, symbol, fields::Resolution::default())
            .map_err(|e| anyhow::anyhow!("{e} ({name})"))?;
        done.push(format!("{name} {n}"));
    }
    Ok(format!(
        "pid, tid, comm, dfd, filename (+ flags), ret, errno, time_ns (± {} µs of the call), latency_ns, symbol equal to the agent's record: {}",
        fields::TIME_SLACK_NS / 1_000,
        done.join(", ")
    ))
}

/// The options scenario's verdicts: text, pid-filter, comm-filter, count,
/// duration.
fn check_options(dir: &Path, ret_width_bits: Option<u32>) -> Vec<ScenarioResult> {
    use unlink_schema::OptionProbe;
    // Its verdicts, as its record names them.
    let names = Scenario::Options.spec().verdicts;
    let read = || -> Result<(Run, String, BTreeMap<OptionProbe, options::ProbeOutput>)> {
        let run = read_run(dir)?;
        let symbol = kernel_symbol(&run)?;
        let mut outs = BTreeMap::new();
        for p in OptionProbe::ALL {
            let stdout = std::fs::read_to_string(dir.join(format!("{}.out", p.name())))
                .with_context(|| format!("no {}.out", p.name()))?;
            let stderr =
                std::fs::read_to_string(dir.join(format!("{}.err", p.name()))).unwrap_or_default();
            let o = if p == OptionProbe::Text {
                options::ProbeOutput {
                    events: Vec::new(),
                    summary: None,
                }
            } else {
                options::ProbeOutput {
                    events: normalise::parse_events(&stdout)
                        .with_context(|| format!("{}.out", p.name()))?,
                    summary: normalise::parse_summary(&stderr),
                }
            };
            outs.insert(p, o);
        }
        Ok((run, symbol, outs))
    };
    let (run, symbol, outs) = match read() {
        Ok(x) => x,
        Err(e) => {
            let msg = format!("the options scenario: {e:#}");
            return names
                .iter()
                .map(|n| verdict(n, Err(anyhow::anyhow!("{msg}"))))
                .collect();
        }
    };
    let Some(opts) = &run.outcome.options else {
        return names
            .iter()
            .map(|n| {
                verdict(
                    n,
                    Err(anyhow::anyhow!("the options run reported no tracers")),
                )
            })
            .collect();
    };
    let input = options::OptionsInput {
        run: opts,
        steps: &run.steps,
        symbol: &symbol,
        reports_missed: reports_missed(&run.outcome.kernel_release),
    };
    let text_out = std::fs::read_to_string(dir.join("text.out")).unwrap_or_default();
    let text_err = std::fs::read_to_string(dir.join("text.err")).unwrap_or_default();
    let get = |p: OptionProbe| outs.get(&p).cloned().unwrap_or_default();
    let pid = get(OptionProbe::Pid);
    let results: [(&str, Result<String, String>); 6] = [
        (
            "text",
            options::check_text(&input, &text_out, &text_err, &pid),
        ),
        ("pid-filter", options::check_pid(&input, &pid)),
        (
            "comm-filter",
            options::check_comm(&input, &get(OptionProbe::Comm)),
        ),
        (
            "count",
            options::check_count(&input, &get(OptionProbe::Count)),
        ),
        (
            "duration",
            options::check_duration(&input, &get(OptionProbe::Duration)),
        ),
        ("cli", options::check_cli(&input, ret_width_bits)),
    ];
    results
        .into_iter()
        .map(|(n, r)| verdict(n, r.map_err(|e| anyhow::anyhow!("{e}"))))
        .collect()
}

/// Every entry paired with exactly one return in the call-by-call runs.
fn check_pairing(runs: &BTreeMap<&str, Parsed>) -> Result<String> {
    anyhow::ensure!(!runs.is_empty(), "no run to check");
    let mut total = 0;
    for (name, (_, _, s)) in runs {
        let c = &s.counters;
        anyhow::ensure!(
            c.unpaired_returns == 0 && c.inflight == 0 && c.entries == c.returns,
            "{name}: entries {}, returns {}, returns without entry {}, still in flight {}",
            c.entries,
            c.returns,
            c.unpaired_returns,
            c.inflight
        );
        anyhow::ensure!(
            c.events + c.dropped == c.returns,
            "{name}: events {} + dropped {} != returns {}",
            c.events,
            c.dropped,
            c.returns
        );
        programs_as_reported(s, false).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        total += c.returns;
    }
    Ok(format!(
        "{total} entries, each with exactly one return, in {}",
        runs.keys().copied().collect::<Vec<_>>().join(", ")
    ))
}

/// ret is -2 for ENOENT, at the function's real width, on every kernel.
fn check_ret_width(runs: &BTreeMap<&str, Parsed>) -> Result<String> {
    let mut checked = 0;
    for (name, (steps, events, _)) in runs {
        for (s, e) in steps.iter().zip(normalise::pair(steps, events)) {
            if s.ret != -2 {
                continue;
            }
            let e =
                e.with_context(|| format!("{name}: the ENOENT call on {} was not traced", s.path))?;
            anyhow::ensure!(
                e.ret == -2,
                "{name}: ENOENT on {} traced as ret {} (read at the wrong width?)",
                s.path,
                e.ret
            );
            checked += 1;
        }
    }
    anyhow::ensure!(checked > 0, "no ENOENT call to check");
    Ok(format!("{checked} ENOENT calls traced as ret = -2"))
}

/// How much tracefs's entry→return interval may exceed the tracer's
/// `latency_ns` for the same call: tracefs prints µs, so each of its two
/// stamps is up to 1 µs early and the interval is off by less than 1 µs
/// either way; 2 µs covers that. Both probes sit on the same function and
/// its return, and the tracer's two clock reads bracket tracefs's two
/// stamps (its handlers run between them: measured on every call of the
/// 10 cells, the tracer's latency was 6 µs to 6.4 ms longer, the upper
/// end on a call's first pass through code TCG had not yet translated),
/// so the tracer's latency lies between tracefs's interval and the
/// agent's own window of the call (checked in `fields`).
pub const ORACLE_LATENCY_SLACK_NS: u64 = 2_000;

/// The tracer's (thread, filename, ret) multiset equals the kernel's own
/// kprobe tracer's, for the workload threads of the runs that had one; and
/// call by call, tracefs's thread group, comm and entry→return interval
/// agree with the tracer's pid, comm and latency and with the agent's own
/// record of the call.
fn check_oracle(out: &Path, runs: &BTreeMap<&str, Parsed>) -> Result<String> {
    let mut compared = Vec::new();
    let mut worst = 0u64;
    for name in oracle_checked().iter().map(|s| s.name()) {
        let (steps, events, _) = runs.get(name).with_context(|| format!("no {name} run"))?;
        let text = std::fs::read_to_string(out.join(name).join("oracle.txt"))
            .with_context(|| format!("{name}: no oracle.txt"))?;
        let (n, w) = oracle_agrees(name, steps, events, &check::oracle_calls(&text))?;
        worst = worst.max(w);
        compared.push(format!("{name} {n}"));
    }
    Ok(format!(
        "equal to tracefs kprobe_events call by call (thread, filename, ret; pid, comm; latency at least tracefs's interval, at most {:.1} µs longer): {}",
        worst as f64 / 1e3,
        compared.join(", ")
    ))
}

/// One run against the oracle's calls (pure). Ok: calls compared and the
/// largest latency difference in ns.
pub fn oracle_agrees(
    name: &str,
    steps: &[Step],
    events: &[TraceEvent],
    oracle: &[check::OracleCall],
) -> Result<(usize, u64)> {
    let tids: Vec<u32> = steps.iter().map(|s| s.tid).collect();
    let mut theirs: Vec<&check::OracleCall> =
        oracle.iter().filter(|c| tids.contains(&c.tid)).collect();
    let mine: Vec<&TraceEvent> = events.iter().filter(|e| tids.contains(&e.tid)).collect();
    let key_o = |c: &check::OracleCall| (c.tid, c.name.clone(), c.ret);
    let key_t = |e: &TraceEvent| (e.tid, e.filename.clone(), e.ret);
    let mut a: Vec<_> = mine.iter().map(|e| key_t(e)).collect();
    let mut b: Vec<_> = theirs.iter().map(|c| key_o(c)).collect();
    a.sort();
    b.sort();
    if a != b {
        let only_tracer: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
        let only_oracle: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
        anyhow::bail!(
            "{name}: the tracer and tracefs disagree; only the tracer: {only_tracer:?}; only tracefs: {only_oracle:?}"
        );
    }
    let mut worst = 0;
    for e in &mine {
        let i = theirs
            .iter()
            .position(|c| key_o(c) == key_t(e))
            .context("paired above")?;
        let c = theirs.remove(i);
        let call = format!("{name}: `{}` (tid {})", e.filename, e.tid);
        let step = steps
            .iter()
            .find(|s| s.tid == e.tid && s.path == e.filename);
        match c.tgid {
            Some(t) if t == e.pid => {}
            t => anyhow::bail!(
                "pid: {call}: the tracer says pid {}, tracefs's tgid is {t:?}",
                e.pid
            ),
        }
        if let Some(s) = step {
            anyhow::ensure!(
                s.pid == e.pid,
                "pid: {call}: the agent's call ran in pid {}, tracefs and the tracer say {}",
                s.pid,
                e.pid
            );
        }
        match &c.comm {
            Some(comm) if *comm == e.comm => {}
            comm => anyhow::bail!(
                "comm: {call}: the tracer says {:?}, tracefs's $comm is {comm:?}",
                e.comm
            ),
        }
        let interval = (c.exit_us - c.entry_us) * 1_000;
        anyhow::ensure!(
            e.latency_ns + ORACLE_LATENCY_SLACK_NS >= interval,
            "latency_ns: {call}: the tracer says {} ns, shorter than tracefs's entry→return of {} µs",
            e.latency_ns,
            interval / 1_000
        );
        worst = worst.max(e.latency_ns.saturating_sub(interval));
    }
    Ok((mine.len(), worst))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts the gate emits, with the engine's console verdict, are
    /// exactly the table the scenarios' records give, in its order: a
    /// scenario's record, not a list kept by hand, says what is judged.
    #[test]
    fn the_gate_emits_the_records_verdicts() {
        let out = tempfile::tempdir().expect("temp dir");
        let img = KernelImage {
            alias: "custom".into(),
            suite: "custom".into(),
            arch: crate::model::Arch::X86_64,
            package: "custom".into(),
            version: "custom".into(),
            release: "6.1.0-50-amd64".into(),
            vmlinuz: "/nonexistent".into(),
            vmlinuz_sha256: String::new(),
            modules: std::path::PathBuf::new(),
            config: None,
            debs: Vec::new(),
        };
        let (results, _) = gate(out.path(), &img, "custom", "x86_64", &img.release);
        let mut emitted: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        emitted.push(console::VERDICT);
        assert_eq!(emitted, *VERDICTS);
        // Nothing ran: every verdict fails, none passes by default.
        assert!(
            results.iter().all(|r| r.status == Status::Fail),
            "{results:#?}"
        );
        assert_eq!(VERDICTS.len(), 20);
    }

    /// The oracle's calls for a correct trace, and each corruption of a
    /// field it vouches for, named.
    #[test]
    fn oracle_disagreements_are_named() {
        use fields::tests::{step, traced};
        let steps = [
            step("test1", 0, 1_000_000_000),
            step("missing", -2, 1_000_100_000),
        ];
        let events: Vec<TraceEvent> = steps.iter().map(traced).collect();
        let oracle: Vec<check::OracleCall> = events
            .iter()
            .map(|e| check::OracleCall {
                tid: e.tid,
                tgid: Some(e.pid),
                comm: Some(e.comm.clone()),
                name: e.filename.clone(),
                ret: e.ret,
                entry_us: 5_000,
                exit_us: 5_000 + e.latency_ns / 1_000 - 3,
            })
            .collect();
        assert_eq!(
            oracle_agrees("t", &steps, &events, &oracle).map_err(|e| e.to_string()),
            Ok((2, 3_000))
        );
        type Corrupt = fn(&mut TraceEvent);
        let cases: [(&str, Corrupt); 5] = [
            ("pid:", |e| e.pid += 1),
            ("comm:", |e| e.comm = "sh".into()),
            ("latency_ns:", |e| e.latency_ns /= 2),
            ("t: the tracer and tracefs disagree", |e| e.ret = -13),
            ("t: the tracer and tracefs disagree", |e| {
                e.filename = "x".into()
            }),
        ];
        for (want, corrupt) in cases {
            let mut bad = events.clone();
            bad.iter_mut().for_each(corrupt);
            let err = oracle_agrees("t", &steps, &bad, &oracle)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{want}: {err}");
        }
        // tracefs did not record the thread group: never taken as agreement.
        let mut no_tgid = oracle.clone();
        no_tgid[0].tgid = None;
        let err = oracle_agrees("t", &steps, &events, &no_tgid)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pid:"), "{err}");
    }

    /// The callers workload's classes: a full one passes, and each class
    /// taken away is named.
    #[test]
    fn callers_classes_are_each_required() {
        use fields::tests::step;
        let s = |path: &str, ret, at: u64, pid, tid, comm: &str, uid| Step {
            pid,
            tid,
            comm: comm.into(),
            uid,
            ..step(path, ret, at)
        };
        const H: u64 = 3_600_000_000_000;
        let full = || {
            vec![
                s("main-1", 0, 1_000, 10, 10, "unlink-guest", 0),
                s("thread-0", 0, 2_000, 10, 11, "worker-1", 0),
                s("thread-1", 0, 3_000, 10, 12, "fifteen-bytes-x", 0),
                s("renamed-1", 0, 4_000, 10, 13, "unlink-guest", 0),
                s("renamed-2", 0, 5_000, 10, 13, "renamed", 0),
                s("child", -2, 6_000, 20, 20, "unlink-guest", 65534),
                s("race-0", 0, 7_000, 10, 14, "racer-a", 0),
                s("race-0", -2, 7_000, 10, 15, "racer-b", 0),
                s(
                    "after-step-forward",
                    0,
                    H + 8_000,
                    10,
                    10,
                    "unlink-guest",
                    0,
                ),
                s("after-step-back", 0, 9_000, 10, 10, "unlink-guest", 0),
            ]
        };
        assert!(
            callers_exercised(&full()).is_ok(),
            "{:?}",
            callers_exercised(&full())
        );
        type Cut = fn(&mut Vec<Step>);
        let cases: [(&str, Cut); 7] = [
            ("a second process", |v| v.retain(|s| s.pid == 10)),
            ("another uid", |v| v.iter_mut().for_each(|s| s.uid = 0)),
            ("a 15-byte comm", |v| v[2].comm = "fourteen-bytes".into()),
            ("a thread renamed", |v| v[4].comm = "unlink-guest".into()),
            ("races with one winner", |v| v[7].ret = 0),
            ("calls after the wall clock was stepped", |v| {
                v[8].start_ns = 8_000
            }),
            ("three threads", |v| {
                v.iter_mut().for_each(|s| s.tid = s.pid)
            }),
        ];
        for (want, cut) in cases {
            let mut v = full();
            cut(&mut v);
            let e = callers_exercised(&v).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    /// `--mode fentry` proven against the kernel's config: a refusal is an
    /// expected limitation only where the config rules trampolines out, and
    /// traced calls there fail.
    #[test]
    fn fentry_verdicts_follow_the_config() {
        use unlink_schema::Failure;
        let r = |status, (detail, failure): (&str, Option<Failure>)| ScenarioResult {
            failure,
            ..ScenarioResult::new("fentry", status, detail)
        };
        let refused = ("no trampolines here", Some(Failure::NoTrampolines));
        let cases = [
            (
                Status::Fail,
                refused,
                FentryExpectation::Unavailable,
                Status::ExpectedLimitation,
            ),
            // The kind decides, not the words: a refusal of another kind
            // saying the same words is a failure.
            (
                Status::Fail,
                (
                    "fentry/fexit is not available for do_unlinkat",
                    Some(Failure::Verifier),
                ),
                FentryExpectation::Unavailable,
                Status::Fail,
            ),
            (
                Status::Fail,
                ("fentry/fexit is not available for do_unlinkat", None),
                FentryExpectation::Unavailable,
                Status::Fail,
            ),
            (
                Status::Fail,
                refused,
                FentryExpectation::Available,
                Status::Fail,
            ),
            (
                Status::Fail,
                refused,
                FentryExpectation::Unknown,
                Status::Fail,
            ),
            (
                Status::Pass,
                ("the same 11 calls", None),
                FentryExpectation::Available,
                Status::Pass,
            ),
            (
                Status::Pass,
                ("the same 11 calls", None),
                FentryExpectation::Unavailable,
                Status::Fail,
            ),
            (
                Status::Fail,
                ("fentry and kprobe disagree", None),
                FentryExpectation::Unavailable,
                Status::Fail,
            ),
        ];
        for (status, detail, expect, want) in cases {
            let v = fentry_verdict(r(status, detail), expect);
            assert_eq!(v.status, want, "{status:?} {expect:?}: {}", v.detail);
        }
        let v = fentry_verdict(r(Status::Pass, ("x", None)), FentryExpectation::Unavailable);
        assert!(v.detail.starts_with("--mode fentry:"), "{}", v.detail);
    }

    #[test]
    fn program_statistics_follow_the_switch() {
        let prog = |name: &str, run_cnt, run_time_ns| unlink_schema::ProgramStats {
            name: name.into(),
            run_cnt,
            run_time_ns,
        };
        let mut s = TracerSummary::default();
        s.counters.entries = 100;
        s.counters.returns = 90;
        assert_eq!(programs_as_reported(&s, false), Ok(()));
        assert!(programs_as_reported(&s, true)
            .unwrap_err()
            .starts_with("programs: []"));
        s.programs = vec![
            prog("kprobe_unlink", 120, 5),
            prog("kretprobe_unlink", 90, 5),
        ];
        assert_eq!(programs_as_reported(&s, true), Ok(()));
        assert!(programs_as_reported(&s, false).is_err());
        s.programs[1].run_cnt = 89;
        let e = programs_as_reported(&s, true).unwrap_err();
        assert!(
            e.starts_with("programs: kretprobe_unlink ran 89 times"),
            "{e}"
        );
        s.programs[1] = prog("kretprobe_unlink", 90, 0);
        assert!(programs_as_reported(&s, true).is_err());
        s.programs.pop();
        assert!(programs_as_reported(&s, true).is_err());
    }

    /// Entries without a return add up, on a kernel that delivers every
    /// return and on one that misses some (bullseye's figures).
    #[test]
    fn the_return_probe_is_the_one_asked_for() {
        use unlink_schema::{ReturnAttach as A, ReturnProbe as R, DEFAULT_MAXACTIVE as D};
        let rp = |via, maxactive| Some(R { via, maxactive });
        assert!(return_probe_as_asked(rp(A::Tracefs, D), None).is_ok());
        assert!(return_probe_as_asked(rp(A::Tracefs, 10), Some(10)).is_ok());
        let bad = [
            // A tracer that ignores --maxactive, or takes it for the default.
            (
                rp(A::Tracefs, D),
                Some(10),
                "tracefs with 1024 instances, but a tracefs entry with 10",
            ),
            (
                rp(A::Tracefs, 10),
                None,
                "with 10 instances, but a tracefs entry with 1024 was asked for (the default)",
            ),
            // One that falls back to the kernel's instances though root.
            (rp(A::Perf, 0), None, "via perf with 0 instances"),
            (None, None, "does not say how"),
        ];
        for (got, asked, want) in bad {
            let e = return_probe_as_asked(got, asked).unwrap_err();
            assert!(e.contains(want), "{got:?} {asked:?}: {e}");
        }
    }

    #[test]
    fn the_kernel_lists_the_return_probe_while_attached_only() {
        use unlink_schema::{ReturnAttach as A, ReturnProbe as R};
        let rp = R {
            via: A::Tracefs,
            maxactive: 10,
        };
        let oracle = "p:unlink_oracle/entry do_unlinkat dfd=$arg1:s32\n";
        let ours = "r10:unlink_tracer/ret_77_0 do_unlinkat\n";
        let both = format!("{oracle}{ours}");
        assert_eq!(kernel_lists_the_return_probe(&both, oracle, rp), Ok(()));
        let cases = [
            // A tracer that asks the kernel for other instances than it says.
            (
                "r1024:unlink_tracer/ret_77_0 do_unlinkat\n",
                "",
                "listed [\"r1024",
            ),
            // One that attached through the PMU but says tracefs.
            ("", "", "listed []"),
            // Two entries (one left by a dead run that was not removed).
            (
                "r10:unlink_tracer/ret_5_0 do_unlinkat\nr10:unlink_tracer/ret_77_0 do_unlinkat\n",
                "",
                "listed [\"r10",
            ),
            // One that never removes its entry.
            (ours, ours, "outlived it"),
        ];
        for (attached, after, want) in cases {
            let e = kernel_lists_the_return_probe(attached, after, rp).unwrap_err();
            assert!(e.contains(want), "{attached:?}: {e}");
        }
    }

    #[test]
    fn entries_never_returned_add_up() {
        let c = |entries, returns, inflight, lost_untracked| unlink_schema::Counters {
            entries,
            returns,
            inflight,
            lost_untracked,
            ..Default::default()
        };
        assert_eq!(never_returned_adds_up(&c(2000, 2000, 0, 0)), Ok(()));
        assert_eq!(never_returned_adds_up(&c(2000, 1608, 0, 392)), Ok(()));
        assert_eq!(never_returned_adds_up(&c(5000, 3732, 1268, 0)), Ok(()));
        // A lost entry whose return was missed, not counted.
        let e = never_returned_adds_up(&c(2000, 1608, 300, 0)).unwrap_err();
        assert!(e.starts_with("entries never returned 300"), "{e}");
    }

    /// The storm must lose records (and the agent must have stopped its
    /// consumer), the burst must lose none; contention may do either.
    #[test]
    fn load_losses_follow_the_scenario() {
        let cases = [
            (Losses::Certain, true, 1_890, Ok(())),
            (Losses::Certain, true, 0, Err("the ring did not overflow")),
            (
                Losses::Certain,
                false,
                5,
                Err("the agent did not stop the tracer"),
            ),
            (Losses::None, false, 0, Ok(())),
            (
                Losses::None,
                false,
                3,
                Err("the default ring dropped 3 of 2000"),
            ),
            (Losses::Any, false, 7, Ok(())),
        ];
        for (losses, paused, dropped, want) in cases {
            let got = losses_as_expected(losses, paused, dropped, 2_000);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{losses:?} {dropped}"),
                Err(w) => assert!(
                    got.as_ref().is_err_and(|e| e.starts_with(w)),
                    "{losses:?} {dropped}: {got:?}"
                ),
            }
        }
    }
}
