//! One clock's figures from an agent's overhead run: per mode and bench
//! the cost, the overhead over the baseline, the probe-saw-every-call
//! check, the tracer's ratios; and the join of a cell's modes across runs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use unlink_schema::{OverheadRound, OverheadRun};

use super::stats::{estimate, read_samples, RoundSamples};
use super::{BASELINE, BENCHES, BPFTRACE, EMPTY_PAIR, MODES, PRINTK, TRACER_MODE};
use crate::kernels::facts::{FentryExpectation, DIRECT_CALLS};
use crate::model::figures::{BenchFigures, CellOverhead, Clock, ClockFigures, ModeFigures};
use crate::model::{CellResult, Status};

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

/// The kernel release the agent of an overhead run reported (its
/// `overhead-run.json`); None when there is none or it is empty.
pub fn guest_release(out: &Path) -> Option<String> {
    let bytes = std::fs::read(out.join(unlink_schema::protocol::files::OVERHEAD_RUN)).ok()?;
    let run: OverheadRun = serde_json::from_slice(&bytes).ok()?;
    Some(run.kernel_release).filter(|r| !r.is_empty())
}

/// Turns an agent's overhead run (`out/overhead-run.json` and criterion's
/// files beside it) into one clock's figures. `fentry` is judged from the
/// kernel's own config: a failed fentry round is an expected limitation
/// only where the kernel cannot have trampolines.
pub fn figures(out: &Path, clock: Clock, fentry: FentryExpectation) -> Result<ClockFigures> {
    let run: OverheadRun = serde_json::from_slice(
        &std::fs::read(out.join(unlink_schema::protocol::files::OVERHEAD_RUN))
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
    let baseline = f.mode(BASELINE).cloned();
    for m in &mut f.modes {
        for (bench, b) in &mut m.benches {
            if m.mode != BASELINE {
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
            if let (Some(t), Some(b)) = (tracer, self.overhead(BPFTRACE, bench)) {
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
        // Only the tracer's own refusal for want of trampolines, in every
        // round, is the kernel's limitation.
        let refused = rounds
            .iter()
            .all(|r| r.failure == Some(unlink_schema::Failure::NoTrampolines));
        if mode == "fentry" && all_failed && refused && fentry == FentryExpectation::Unavailable {
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
            if mode != PRINTK && seen + dropped < round_calls {
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

/// A clock's figures with these overheads on `create_unlink`, for tests.
#[cfg(test)]
pub(super) fn clock_with(overheads: &[(&str, f64)]) -> ClockFigures {
    let mut f = ClockFigures::new(Clock::Icount, 3);
    for (mode, o) in overheads {
        let e = crate::model::figures::Estimate {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed fentry round is the kernel's limitation only when every
    /// round was refused for want of trampolines on a kernel whose config
    /// has none: the kind decides, not the error's words.
    #[test]
    fn fentry_refusals_are_limitations_by_their_kind() {
        use unlink_schema::Failure;
        let failed = |failure| OverheadRound {
            mode: "fentry".into(),
            round: 0,
            ok: false,
            error: Some("fentry/fexit is not available".into()),
            failure,
            attach_s: 0.0,
            bench_s: 0.0,
            drain_s: 0.0,
            probe_calls: None,
            probe_dropped: None,
            programs: Vec::new(),
            criterion_dir: String::new(),
        };
        let cases = [
            (
                Some(Failure::NoTrampolines),
                FentryExpectation::Unavailable,
                Status::ExpectedLimitation,
            ),
            (
                Some(Failure::Verifier),
                FentryExpectation::Unavailable,
                Status::Fail,
            ),
            (None, FentryExpectation::Unavailable, Status::Fail),
            (
                Some(Failure::NoTrampolines),
                FentryExpectation::Available,
                Status::Fail,
            ),
            (
                Some(Failure::NoTrampolines),
                FentryExpectation::Unknown,
                Status::Fail,
            ),
        ];
        for (failure, expect, want) in cases {
            let r = failed(failure);
            let m = mode_figures(Path::new("/nonexistent"), "fentry", &[&r], expect);
            assert_eq!(m.status, want, "{failure:?} {expect:?}: {}", m.detail);
        }
    }

    /// A user's image says no release; an overhead boot learns it from
    /// its own run file (it writes no gate scenario results).
    #[test]
    fn an_overhead_runs_release_is_its_agents() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(guest_release(dir.path()), None);
        let run = |release: &str| OverheadRun {
            kernel_release: release.into(),
            target: None,
            bench_args: Vec::new(),
            rounds: Vec::new(),
        };
        let file = dir
            .path()
            .join(unlink_schema::protocol::files::OVERHEAD_RUN);
        for (release, want) in [("6.12.48-custom", Some("6.12.48-custom")), ("", None)] {
            std::fs::write(&file, serde_json::to_vec(&run(release)).expect("json")).expect("write");
            assert_eq!(guest_release(dir.path()).as_deref(), want, "{release:?}");
        }
    }

    #[test]
    fn bpf_cost_per_call() {
        let round = |progs: &[(&str, u64, u64)]| OverheadRound {
            mode: "kprobe".into(),
            round: 0,
            ok: true,
            error: None,
            failure: None,
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
}
