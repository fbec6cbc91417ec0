//! One declarative record per scenario: what the guest agent and the gate
//! both need to know of it. The agent loops over these to run a scenario
//! (its workload is the agent's own function of the scenario), the gate to
//! judge it; adding a scenario is one record, one workload function and
//! its verdict function.

use crate::{Scenario, TracerMode};

/// What a load scenario's ring must do with its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Losses {
    /// Its consumer is stopped and its ring small: records are lost, and
    /// the loss accounting is exercised on every cell (the storm).
    Certain,
    /// The default ring holds it whole (the burst).
    None,
    /// Not about the ring (contention).
    Any,
}

/// A load scenario: the tracer filtered to the agent's pid and counting
/// (`--quiet`), its events counted as they stream, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSpec {
    pub losses: Losses,
    /// `--ringbuf-kib`, where the scenario needs a ring of its own size.
    pub ringbuf_kib: Option<u32>,
    /// `--maxactive`, where the scenario needs fewer return instances than
    /// the tracer's default (the storm's, fewer than the calls it holds
    /// inside the function: returns are missed, and each must be counted).
    pub maxactive: Option<u32>,
    /// The kernel's BPF run statistics on, so the summary's `programs`
    /// are there to be checked (off in every other run: absent there).
    pub bpf_stats: bool,
}

/// Everything about one scenario more than one program needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioSpec {
    pub scenario: Scenario,
    /// How the agent runs the tracer.
    pub mode: TracerMode,
    /// The kernel's own kprobe tracer runs beside it (`oracle` verdict).
    pub oracle: bool,
    /// Its normalised trace is a reviewed snapshot.
    pub snapshot: bool,
    /// Every event is checked field by field against the agent's record
    /// (`fields` verdict).
    pub fields: bool,
    pub load: Option<LoadSpec>,
    /// The gate's verdicts this scenario's run is judged by on its own
    /// (the options run: one per option; the others: their own name).
    pub verdicts: &'static [&'static str],
}

const fn call_by_call(
    scenario: Scenario,
    mode: TracerMode,
    verdicts: &'static [&'static str],
) -> ScenarioSpec {
    ScenarioSpec {
        scenario,
        mode,
        oracle: false,
        snapshot: false,
        fields: false,
        load: None,
        verdicts,
    }
}

/// The storm's ring, in KiB: about a hundred calls (a call is an entry and
/// a return record, ~600 bytes).
pub const STORM_RINGBUF_KIB: u32 = 64;
/// The storm's `--maxactive`: the kernel's own default in a 2-CPU guest
/// (max(10, 2 x CPUs)), fewer than the 24 calls it holds in the function.
pub const STORM_MAXACTIVE: u32 = 10;

/// Every scenario, in the order the agent runs them.
pub const SCENARIO_SPECS: &[ScenarioSpec] = &[
    ScenarioSpec {
        oracle: true,
        snapshot: true,
        fields: true,
        ..call_by_call(Scenario::Tutorial, TracerMode::Kprobe, &["tutorial"])
    },
    ScenarioSpec {
        oracle: true,
        snapshot: true,
        fields: true,
        ..call_by_call(Scenario::Errors, TracerMode::Kprobe, &["errors"])
    },
    ScenarioSpec {
        snapshot: true,
        fields: true,
        ..call_by_call(Scenario::Names, TracerMode::Kprobe, &["names"])
    },
    ScenarioSpec {
        oracle: true,
        fields: true,
        ..call_by_call(Scenario::Callers, TracerMode::Kprobe, &["callers"])
    },
    call_by_call(Scenario::Printk, TracerMode::Printk, &["printk"]),
    ScenarioSpec {
        fields: true,
        ..call_by_call(Scenario::Fentry, TracerMode::Fentry, &["fentry"])
    },
    ScenarioSpec {
        load: Some(LoadSpec {
            losses: Losses::Certain,
            ringbuf_kib: Some(STORM_RINGBUF_KIB),
            maxactive: Some(STORM_MAXACTIVE),
            bpf_stats: false,
        }),
        ..call_by_call(Scenario::Storm, TracerMode::Kprobe, &["storm"])
    },
    // Not with BPF statistics: timing 5,000 calls' programs doubled its
    // workload under TCG.
    ScenarioSpec {
        load: Some(LoadSpec {
            losses: Losses::None,
            ringbuf_kib: None,
            maxactive: None,
            bpf_stats: false,
        }),
        ..call_by_call(Scenario::Burst, TracerMode::Kprobe, &["burst"])
    },
    ScenarioSpec {
        load: Some(LoadSpec {
            losses: Losses::Any,
            ringbuf_kib: None,
            maxactive: None,
            bpf_stats: true,
        }),
        ..call_by_call(Scenario::Contention, TracerMode::Kprobe, &["contention"])
    },
    call_by_call(
        Scenario::Options,
        TracerMode::Kprobe,
        &[
            "text",
            "pid-filter",
            "comm-filter",
            "count",
            "duration",
            "cli",
        ],
    ),
];

impl Scenario {
    /// This scenario's record.
    pub fn spec(self) -> &'static ScenarioSpec {
        SCENARIO_SPECS
            .iter()
            .find(|s| s.scenario == self)
            .unwrap_or_else(|| unreachable!("every scenario has a record (tested)"))
    }

    /// The scenarios whose record says `pick`, in order.
    pub fn those(pick: impl Fn(&ScenarioSpec) -> bool) -> Vec<Scenario> {
        SCENARIO_SPECS
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.scenario)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_one_record_in_order() {
        let order: Vec<Scenario> = SCENARIO_SPECS.iter().map(|s| s.scenario).collect();
        assert_eq!(
            order,
            Scenario::ALL,
            "one record per scenario, in the vocabulary's order"
        );
        for s in Scenario::ALL {
            assert_eq!(s.spec().scenario, *s);
        }
        // A snapshot is of a call-by-call trace; a load run stores none.
        for s in SCENARIO_SPECS {
            assert!(
                !(s.load.is_some() && (s.snapshot || s.fields || s.oracle)),
                "{:?}",
                s.scenario
            );
        }
        assert_eq!(
            Scenario::those(|s| s.snapshot),
            [Scenario::Tutorial, Scenario::Errors, Scenario::Names]
        );
    }
}
