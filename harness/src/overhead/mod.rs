//! Stage 6, measure: what a probe costs one unlink. The guest agent ran
//! the criterion bench of the unlink path (`benches/benches/unlink_path.rs`)
//! once per probe mode and round; this module reads the rounds' raw
//! samples per mode and bench, and turns them into figures: the cost per
//! unlink (the median of the round means) with its 95 % confidence
//! interval, the overhead over the baseline, and the tracer's overhead
//! over the empty probe pair's.
//!
//! Two clocks, never mixed: `wall` (guest nanoseconds of a normal TCG or
//! KVM boot) and `icount` (a boot with `-icount shift=0,sleep=off`, where
//! a guest nanosecond is one guest instruction: reproducible, and the one
//! the regression check uses).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use unlink_schema::{OverheadRound, OverheadRun};

use crate::kernels::facts::{FentryExpectation, DIRECT_CALLS};
use crate::model::figures::{
    BenchFigures, CellOverhead, Clock, ClockFigures, Estimate, ModeFigures,
};
use crate::model::{CellResult, Status};

/// Every mode, in report order.
pub use unlink_schema::OVERHEAD_MODES as MODES;

/// What each mode is, for reports.
pub fn mode_description(mode: &str) -> &'static str {
    match mode {
        "baseline" => "no probe",
        "empty-kprobe" => "a kprobe whose program does nothing",
        "empty-kretprobe" => "a kretprobe whose program does nothing",
        "empty-pair" => "an empty kprobe + kretprobe: the mechanism alone",
        "kprobe" => "the tracer (kprobe + kretprobe), every event decoded in user space",
        "kprobe-json" => "the tracer, every event printed as a JSON line (to a file)",
        "fentry" => "the tracer in fentry mode, every event decoded in user space",
        "printk" => "the tutorial as written: bpf_printk, trace_pipe read and printed to a file",
        "bpftrace" => "bpftrace's one-liner of the tutorial, printing to a file",
        _ => "",
    }
}

/// The benches of `benches/benches/unlink_path.rs` (criterion group `unlink`).
pub const BENCHES: &[&str] = &["create_unlink", "unlink_missing"];

/// The mode whose overhead is the tracer's, and the one it is held against.
pub const TRACER_MODE: &str = "kprobe";
pub const EMPTY_PAIR: &str = "empty-pair";

/// How an overhead run measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub clocks: Vec<Clock>,
    pub rounds: u32,
    /// Runs joined with `--from` that made more rounds than `rounds` (their
    /// fewest): the most any of them made.
    pub rounds_max: Option<u32>,
    /// criterion's warm-up and measurement seconds (guest seconds), samples.
    pub warm_up: String,
    pub measure: String,
    pub samples: u32,
    pub modes: Vec<&'static str>,
    /// Have the guest kernel keep BPF run statistics (the tracer's programs'
    /// own cost; adds a little to every BPF mode).
    pub bpf_stats: bool,
}

impl Settings {
    /// Mode rounds one boot runs.
    pub fn steps(&self) -> u32 {
        self.rounds * self.modes.len() as u32
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            clocks: vec![Clock::Wall, Clock::Icount],
            rounds: 3,
            rounds_max: None,
            warm_up: "0.1".into(),
            measure: "0.5".into(),
            samples: 10,
            modes: MODES.to_vec(),
            bpf_stats: false,
        }
    }
}

/// The guest agent's command line for an overhead boot (pure).
pub fn guest_command(agent: &Path, tracer: &Path, bench: &Path, out: &str, s: &Settings) -> String {
    let mut c = format!(
        "{} overhead --tracer {} --bench {} --out {out} --rounds {} --warm-up {} --measure {} --samples {}",
        agent.display(),
        tracer.display(),
        bench.display(),
        s.rounds,
        s.warm_up,
        s.measure,
        s.samples
    );
    for m in &s.modes {
        c.push_str(" --mode ");
        c.push_str(m);
    }
    if s.bpf_stats {
        c.push_str(" --bpf-stats");
    }
    c
}

/// One round of one bench: criterion's samples, each a number of
/// iterations and the time (or instructions) they took together.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RoundSamples {
    pub iters: Vec<f64>,
    pub times: Vec<f64>,
}

impl RoundSamples {
    /// The round's mean cost per iteration: everything it took over every
    /// iteration it made (pure). A consumer that works in bursts (a
    /// printing probe wakes every so many events) lands in some samples
    /// and not others; only the total spreads its cost over every unlink.
    pub fn mean(&self) -> f64 {
        self.times.iter().sum::<f64>() / self.iters.iter().sum::<f64>()
    }

    pub fn calls(&self) -> u64 {
        self.iters.iter().sum::<f64>() as u64
    }
}

/// Bootstrap resamples behind each confidence interval.
const RESAMPLES: usize = 2000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The cost per unlink over `rounds` (pure, deterministic): the median of
/// the round means, so one disturbed round cannot move it, and a 95 %
/// percentile-bootstrap interval of that median, each resample drawing
/// every round's samples with replacement (within the round).
pub fn estimate(rounds: &[RoundSamples]) -> Option<Estimate> {
    let rounds: Vec<&RoundSamples> = rounds.iter().filter(|r| !r.iters.is_empty()).collect();
    if rounds.is_empty() {
        return None;
    }
    let mut means: Vec<f64> = rounds.iter().map(|r| r.mean()).collect();
    let point = median(&mut means);
    let mut rng = fastrand::Rng::with_seed(0x756e_6c69_6e6b);
    let mut boot = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        means.clear();
        for r in &rounds {
            let (mut t, mut i) = (0.0, 0.0);
            for _ in 0..r.iters.len() {
                let k = rng.usize(..r.iters.len());
                t += r.times[k];
                i += r.iters[k];
            }
            means.push(t / i);
        }
        boot.push(median(&mut means));
    }
    boot.sort_by(f64::total_cmp);
    let at = |q: f64| boot[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some(Estimate {
        median: point,
        lo: at(0.025).min(point),
        hi: at(0.975).max(point),
        n: rounds.iter().map(|r| r.iters.len()).sum(),
    })
}

/// criterion's `sample.json` of one bench run.
pub fn read_samples(path: &Path) -> Result<RoundSamples> {
    let s: RoundSamples = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("no {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    check_samples(s)
}

fn check_samples(s: RoundSamples) -> Result<RoundSamples> {
    anyhow::ensure!(
        s.iters.len() == s.times.len() && !s.iters.is_empty(),
        "criterion samples: {} iteration counts for {} times",
        s.iters.len(),
        s.times.len()
    );
    anyhow::ensure!(
        s.iters.iter().all(|&i| i >= 1.0),
        "criterion samples: an iteration count below 1"
    );
    Ok(s)
}

/// Per call, the sum over programs of their run time / runs (pure).
pub fn bpf_per_call(rounds: &[&OverheadRound]) -> Option<f64> {
    let mut per_prog: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in rounds {
        for p in &r.programs {
            let e = per_prog.entry(&p.name).or_default();
            e.0 += p.run_time_ns;
            e.1 += p.run_cnt;
        }
    }
    let costs: Vec<f64> = per_prog
        .values()
        .filter(|(_, cnt)| *cnt > 0)
        .map(|(t, cnt)| *t as f64 / *cnt as f64)
        .collect();
    (!costs.is_empty()).then(|| costs.iter().sum())
}

/// Turns an agent's overhead run (`out/overhead-run.json` and criterion's
/// files beside it) into one clock's figures. `fentry` is judged from the
/// kernel's own config: a failed fentry round is an expected limitation
/// only where the kernel cannot have trampolines.
pub fn figures(out: &Path, clock: Clock, fentry: FentryExpectation) -> Result<ClockFigures> {
    let run: OverheadRun = serde_json::from_slice(
        &std::fs::read(out.join("overhead-run.json"))
            .with_context(|| format!("no {}/overhead-run.json", out.display()))?,
    )
    .context("parsing overhead-run.json")?;
    let rounds = run.rounds.iter().map(|r| r.round + 1).max().unwrap_or(0);
    let mut f = ClockFigures::new(clock, rounds);
    f.symbol = run.target.as_ref().map(|t| t.symbol.clone());
    let mut modes: Vec<&str> = Vec::new();
    for r in &run.rounds {
        if !modes.contains(&r.mode.as_str()) {
            modes.push(&r.mode);
        }
    }
    modes.sort_by_key(|m| MODES.iter().position(|k| k == m).unwrap_or(usize::MAX));
    for mode in modes {
        let rounds: Vec<&OverheadRound> = run.rounds.iter().filter(|r| r.mode == mode).collect();
        f.modes.push(mode_figures(out, mode, &rounds, fentry));
    }
    // Overheads against the baseline.
    let baseline = f.mode("baseline").cloned();
    for m in &mut f.modes {
        for (bench, b) in &mut m.benches {
            if m.mode != "baseline" {
                b.overhead = baseline
                    .as_ref()
                    .and_then(|base| base.benches.get(bench))
                    .map(|base| b.cost.minus(&base.cost));
            }
        }
    }
    f.compute_ratios();
    Ok(f)
}

impl ClockFigures {
    /// The tracer's overhead over the empty pair's and bpftrace's, per bench.
    fn compute_ratios(&mut self) {
        self.tracer_to_empty_pair.clear();
        self.tracer_to_bpftrace.clear();
        for bench in BENCHES {
            let tracer = self.overhead(TRACER_MODE, bench);
            if let (Some(t), Some(p)) = (tracer, self.overhead(EMPTY_PAIR, bench)) {
                self.tracer_to_empty_pair
                    .insert(bench.to_string(), round3(t / p));
            }
            if let (Some(t), Some(b)) = (tracer, self.overhead("bpftrace", bench)) {
                self.tracer_to_bpftrace
                    .insert(bench.to_string(), round3(t / b));
            }
        }
    }

    /// Adds the modes `other` measured and `self` did not (each keeps its
    /// overhead over its own boot's baseline), in report order, and
    /// recomputes the ratios. For modes measured in separate runs, e.g.
    /// one CI job per mode group.
    pub fn merge(&mut self, other: &ClockFigures) {
        for m in &other.modes {
            if self.mode(&m.mode).is_none() {
                self.modes.push(m.clone());
            }
        }
        self.modes.sort_by_key(|m| {
            MODES
                .iter()
                .position(|k| *k == m.mode)
                .unwrap_or(usize::MAX)
        });
        if self.error.is_none() {
            self.error.clone_from(&other.error);
        }
        self.run_s = match (self.run_s, other.run_s) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.compute_ratios();
    }
}

/// Joins the cells of several overhead runs (pure): a cell (alias and
/// arch) measured by more than one run gets the modes of all of them,
/// clock by clock ([`ClockFigures::merge`]); it passes only if it passed in
/// every run.
pub fn merge_runs(runs: Vec<Vec<CellResult>>) -> Vec<CellResult> {
    let mut out: Vec<CellResult> = Vec::new();
    for cell in runs.into_iter().flatten() {
        let Some(have) = out
            .iter_mut()
            .find(|c| c.alias == cell.alias && c.arch == cell.arch)
        else {
            out.push(cell);
            continue;
        };
        if cell.status != Status::Pass {
            have.status = cell.status;
            if have.error.is_none() {
                have.error.clone_from(&cell.error);
            }
        }
        let Some(theirs) = cell.overhead else {
            continue;
        };
        let mine = have.overhead.get_or_insert_with(CellOverhead::default);
        for clock in theirs.clocks {
            match mine.clocks.iter_mut().find(|c| c.clock == clock.clock) {
                Some(c) => c.merge(&clock),
                None => mine.clocks.push(clock),
            }
        }
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn mode_figures(
    out: &Path,
    mode: &str,
    rounds: &[&OverheadRound],
    fentry: FentryExpectation,
) -> ModeFigures {
    let mut m = ModeFigures {
        mode: mode.to_string(),
        status: Status::Pass,
        detail: String::new(),
        benches: BTreeMap::new(),
        measured_calls: 0,
        probe_calls: None,
        probe_dropped: None,
        bpf_per_call: bpf_per_call(rounds),
        drain_s: rounds.iter().map(|r| r.drain_s).sum(),
    };
    let failed: Vec<String> = rounds
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "round {}: {}",
                r.round,
                r.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if !failed.is_empty() {
        let all_failed = failed.len() == rounds.len();
        if mode == "fentry" && all_failed && fentry == FentryExpectation::Unavailable {
            m.status = Status::ExpectedLimitation;
            m.detail = format!(
                "the kernel is built without {}: no BPF trampolines, fentry refused as it should",
                DIRECT_CALLS
            );
        } else {
            m.status = Status::Fail;
            m.detail = failed.join("; ");
        }
        return m;
    }
    if mode == "fentry" && fentry == FentryExpectation::Unavailable {
        m.status = Status::Fail;
        m.detail = format!(
            "fentry attached although the kernel config lacks {}",
            DIRECT_CALLS
        );
        return m;
    }
    let mut pooled: BTreeMap<&str, Vec<RoundSamples>> = BTreeMap::new();
    let mut problems = Vec::new();
    for r in rounds {
        let mut round_calls = 0;
        for bench in BENCHES {
            let path = out
                .join(&r.criterion_dir)
                .join("unlink")
                .join(bench)
                .join("new")
                .join("sample.json");
            match read_samples(&path) {
                Ok(samples) => {
                    round_calls += samples.calls();
                    pooled.entry(bench).or_default().push(samples);
                }
                Err(e) => problems.push(format!("round {}: {e:#}", r.round)),
            }
        }
        m.measured_calls += round_calls;
        if let Some(seen) = r.probe_calls {
            let dropped = r.probe_dropped.unwrap_or(0);
            *m.probe_calls.get_or_insert(0) += seen;
            *m.probe_dropped.get_or_insert(0) += dropped;
            // printk lines can be overwritten in the trace buffer before
            // they are read: only the counted probes must see every call.
            if mode != "printk" && seen + dropped < round_calls {
                problems.push(format!(
                    "round {}: the probe reported {seen} calls (+{dropped} dropped) but the bench made at least {round_calls}: was it attached?",
                    r.round
                ));
            }
            if seen == 0 {
                problems.push(format!("round {}: the probe saw no call", r.round));
            }
        }
    }
    for (bench, rounds) in pooled {
        if let Some(cost) = estimate(&rounds) {
            m.benches.insert(
                bench.to_string(),
                BenchFigures {
                    cost,
                    overhead: None,
                },
            );
        }
    }
    if !problems.is_empty() {
        m.status = Status::Fail;
        m.detail = problems.join("; ");
    }
    m
}

/// The committed baseline: icount overheads per cell, mode and bench.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Always `icount`: wall figures are too noisy to gate on.
    pub clock: Option<Clock>,
    /// `alias/arch` → mode → bench → overhead (instructions per unlink).
    pub cells: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
}

/// One comparison against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub cell: String,
    pub mode: String,
    pub bench: String,
    pub baseline: f64,
    pub now: f64,
    /// Growth of the overhead in percent of the baseline's.
    pub growth_pct: f64,
    /// Past `--fail-above`.
    pub regressed: bool,
}

/// The baseline a run's icount figures make (pure).
pub fn baseline_of(cells: &[(String, &ClockFigures)]) -> Baseline {
    let mut b = Baseline {
        clock: Some(Clock::Icount),
        cells: BTreeMap::new(),
    };
    for (cell, f) in cells {
        let modes = b.cells.entry(cell.clone()).or_default();
        for m in &f.modes {
            for (bench, fig) in &m.benches {
                if let Some(o) = fig.overhead {
                    modes
                        .entry(m.mode.clone())
                        .or_default()
                        .insert(bench.clone(), o.median.round());
                }
            }
        }
    }
    b
}

/// Compares a run's icount overheads with the baseline's (pure): every
/// cell, mode and bench present in both.
pub fn compare(
    base: &Baseline,
    cells: &[(String, &ClockFigures)],
    fail_above: Option<f64>,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (cell, f) in cells {
        let Some(modes) = base.cells.get(cell) else {
            continue;
        };
        for m in &f.modes {
            let Some(benches) = modes.get(&m.mode) else {
                continue;
            };
            for (bench, fig) in &m.benches {
                let (Some(&was), Some(now)) = (benches.get(bench), fig.overhead) else {
                    continue;
                };
                let growth_pct = if was.abs() > f64::EPSILON {
                    (now.median - was) / was.abs() * 100.0
                } else {
                    0.0
                };
                out.push(Comparison {
                    cell: cell.clone(),
                    mode: m.mode.clone(),
                    bench: bench.clone(),
                    baseline: was,
                    now: now.median.round(),
                    growth_pct: (growth_pct * 10.0).round() / 10.0,
                    regressed: fail_above.is_some_and(|p| growth_pct > p),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(iters: &[f64], times: &[f64]) -> RoundSamples {
        RoundSamples {
            iters: iters.to_vec(),
            times: times.to_vec(),
        }
    }

    #[test]
    fn round_means_count_every_iteration() {
        // A burst in one sample of three: the mean carries it, spread over
        // all 40 iterations.
        let r = samples(&[10.0, 10.0, 20.0], &[1000.0, 3000.0, 2000.0]);
        assert_eq!(r.mean(), 150.0);
        assert_eq!(r.calls(), 40);
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate(&[]), None);
        // Identical samples: no spread, the interval is the point.
        let flat = samples(&[10.0, 20.0], &[1000.0, 2000.0]);
        let e = estimate(&[flat.clone(), flat.clone(), flat.clone()]).expect("some");
        assert_eq!((e.median, e.lo, e.hi, e.n), (100.0, 100.0, 100.0, 6));
        // The median of the round means: one disturbed round (its consumer
        // starved, or a stall) does not move the figure.
        let r = |m: f64| samples(&[10.0, 20.0, 30.0], &[10.0 * m, 20.0 * m, 30.0 * m]);
        let e = estimate(&[r(100.0), r(50.0), r(101.0)]).expect("some");
        assert_eq!(e.median, 100.0);
        // Two rounds: the mean of their means.
        let e = estimate(&[r(100.0), r(102.0)]).expect("some");
        assert_eq!(e.median, 101.0);
        // Spread within rounds widens the interval around the point, and
        // the bootstrap is deterministic.
        let noisy = samples(&[10.0, 10.0, 10.0, 10.0], &[900.0, 1100.0, 950.0, 1050.0]);
        let e = estimate(&[noisy.clone(), noisy.clone(), noisy.clone()]).expect("some");
        assert_eq!(e.median, 100.0);
        assert!(
            e.lo < 100.0 && e.lo >= 90.0 && e.hi > 100.0 && e.hi <= 110.0,
            "{e:?}"
        );
        assert_eq!(Some(e), estimate(&[noisy.clone(), noisy.clone(), noisy]));
        let d = e.minus(&Estimate {
            median: 10.0,
            lo: 9.0,
            hi: 11.0,
            n: 20,
        });
        assert_eq!(
            (d.median, d.lo, d.hi, d.n),
            (90.0, e.lo - 11.0, e.hi - 9.0, 12)
        );
    }

    #[test]
    fn criterion_samples() {
        let ok = check_samples(samples(&[10.0, 20.0], &[1000.0, 3000.0])).expect("valid");
        assert_eq!(ok.calls(), 30);
        let bad = [
            (vec![], vec![]),
            (vec![1.0], vec![1.0, 2.0]),
            (vec![0.0], vec![5.0]),
        ];
        for (iters, times) in bad {
            assert!(check_samples(RoundSamples { iters, times }).is_err());
        }
    }

    #[test]
    fn bpf_cost_per_call() {
        let round = |progs: &[(&str, u64, u64)]| OverheadRound {
            mode: "kprobe".into(),
            round: 0,
            ok: true,
            error: None,
            attach_s: 0.0,
            bench_s: 0.0,
            drain_s: 0.0,
            probe_calls: None,
            probe_dropped: None,
            programs: progs
                .iter()
                .map(|(n, cnt, t)| unlink_schema::ProgramStats {
                    name: n.to_string(),
                    run_cnt: *cnt,
                    run_time_ns: *t,
                })
                .collect(),
            criterion_dir: String::new(),
        };
        let a = round(&[("entry", 10, 1000), ("exit", 10, 500)]);
        let b = round(&[("entry", 30, 2600), ("exit", 30, 1700)]);
        // entry: 3600 / 40 = 90; exit: 2200 / 40 = 55.
        assert_eq!(bpf_per_call(&[&a, &b]), Some(145.0));
        assert_eq!(bpf_per_call(&[&round(&[])]), None);
        assert_eq!(bpf_per_call(&[&round(&[("idle", 0, 0)])]), None);
    }

    #[test]
    fn guest_command_line() {
        let s = Settings {
            modes: vec!["baseline", "kprobe"],
            ..Settings::default()
        };
        assert_eq!(
            guest_command(Path::new("/b/agent"), Path::new("/b/tracer"), Path::new("/b/bench"), "/o", &s),
            "/b/agent overhead --tracer /b/tracer --bench /b/bench --out /o --rounds 3 --warm-up 0.1 --measure 0.5 --samples 10 --mode baseline --mode kprobe"
        );
        let stats = Settings {
            bpf_stats: true,
            ..s
        };
        assert!(
            guest_command(Path::new("a"), Path::new("t"), Path::new("b"), "/o", &stats)
                .ends_with("--mode kprobe --bpf-stats")
        );
    }

    fn clock_with(overheads: &[(&str, f64)]) -> ClockFigures {
        let mut f = ClockFigures::new(Clock::Icount, 3);
        for (mode, o) in overheads {
            let e = Estimate {
                median: *o,
                lo: *o,
                hi: *o,
                n: 30,
            };
            f.modes.push(ModeFigures {
                mode: mode.to_string(),
                status: Status::Pass,
                detail: String::new(),
                benches: BTreeMap::from([(
                    "create_unlink".to_string(),
                    BenchFigures {
                        cost: e,
                        overhead: Some(e),
                    },
                )]),
                measured_calls: 1,
                probe_calls: None,
                probe_dropped: None,
                bpf_per_call: None,
                drain_s: 0.0,
            });
        }
        f
    }

    #[test]
    fn runs_of_different_modes_merge_into_one_cell() {
        use crate::model::{test_cell, Arch};
        let run = |clock: ClockFigures, status| {
            let mut c = test_cell("sid", Arch::X86_64, status);
            c.overhead = Some(CellOverhead {
                clocks: vec![clock],
            });
            c
        };
        let tracer = clock_with(&[("kprobe", 2600.0), ("empty-pair", 900.0)]);
        // The second run measured the kprobe mode too: the first run's stays.
        let peers = clock_with(&[("kprobe", 9999.0), ("bpftrace", 26000.0), ("baseline", 1.0)]);
        let other_cell = test_cell("bookworm", Arch::Arm64, Status::Pass);
        let merged = merge_runs(vec![
            vec![run(tracer, Status::Pass)],
            vec![run(peers, Status::Fail), other_cell],
        ]);
        assert_eq!(merged.len(), 2);
        let sid = &merged[0];
        assert_eq!(
            sid.status,
            Status::Fail,
            "a failure in any run fails the cell"
        );
        let f = sid
            .overhead
            .as_ref()
            .and_then(|o| o.clock(Clock::Icount))
            .expect("icount");
        let modes: Vec<&str> = f.modes.iter().map(|m| m.mode.as_str()).collect();
        assert_eq!(modes, ["baseline", "empty-pair", "kprobe", "bpftrace"]);
        assert_eq!(f.overhead("kprobe", "create_unlink"), Some(2600.0));
        assert_eq!(f.tracer_to_empty_pair["create_unlink"], 2.889);
        assert_eq!(f.tracer_to_bpftrace["create_unlink"], 0.1);
        assert_eq!(merged[1].alias, "bookworm");
    }

    #[test]
    fn regression_check() {
        let then = clock_with(&[("kprobe", 1000.0), ("fentry", 300.0)]);
        let base = baseline_of(&[("sid/x86_64".into(), &then)]);
        assert_eq!(base.cells["sid/x86_64"]["kprobe"]["create_unlink"], 1000.0);
        let now = clock_with(&[("kprobe", 1150.0), ("fentry", 303.0), ("printk", 9.0)]);
        let cells = [("sid/x86_64".to_string(), &now)];
        let c = compare(&base, &cells, Some(10.0));
        let got: Vec<(&str, f64, bool)> = c
            .iter()
            .map(|c| (c.mode.as_str(), c.growth_pct, c.regressed))
            .collect();
        // printk is not in the baseline: not compared.
        assert_eq!(got, vec![("kprobe", 15.0, true), ("fentry", 1.0, false)]);
        assert!(compare(&base, &cells, None).iter().all(|c| !c.regressed));
        let other = [("bookworm/arm64".to_string(), &now)];
        assert!(compare(&base, &other, Some(1.0)).is_empty());
    }
}
