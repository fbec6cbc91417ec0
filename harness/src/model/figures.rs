//! What a cell's overhead figures hold (`harness overhead`): per clock,
//! per mode, per bench. Data and accessors only; the `overhead` module
//! computes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Accel, Status};

/// Which clock a figure was read from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Guest nanoseconds of a normal boot (TCG or KVM).
    Wall,
    /// Guest instructions: a boot with `-icount shift=0,sleep=off`.
    Icount,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::Icount => "icount",
        }
    }

    /// The unit of this clock's figures.
    pub fn unit(self) -> &'static str {
        match self {
            Clock::Wall => "ns",
            Clock::Icount => "instructions",
        }
    }

    /// Extra QEMU options for this clock's boot.
    pub fn qemu_opts(self) -> Option<&'static str> {
        match self {
            Clock::Wall => None,
            Clock::Icount => Some("-icount shift=0,sleep=off"),
        }
    }
}

/// A cost figure with its 95 % confidence interval: the median over the
/// rounds of each round's mean cost per unlink (see [`estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    /// Samples pooled.
    pub n: usize,
}

impl Estimate {
    /// `self - base`, with the interval's widest ends (conservative).
    pub fn minus(&self, base: &Estimate) -> Estimate {
        Estimate {
            median: self.median - base.median,
            lo: self.lo - base.hi,
            hi: self.hi - base.lo,
            n: self.n.min(base.n),
        }
    }
}

/// One bench's figures in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchFigures {
    /// Cost per unlink (create + unlink for `create_unlink`).
    pub cost: Estimate,
    /// Cost minus the baseline's (None for the baseline itself).
    pub overhead: Option<Estimate>,
}

/// One mode's figures on one clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeFigures {
    pub mode: String,
    pub status: Status,
    pub detail: String,
    /// Per bench (`overhead::BENCHES`).
    pub benches: BTreeMap<String, BenchFigures>,
    /// Calls the bench measured, all rounds and benches.
    pub measured_calls: u64,
    /// Calls the probe reported (events, lines), where it has output.
    pub probe_calls: Option<u64>,
    pub probe_dropped: Option<u64>,
    /// The BPF programs' own cost per call, from the kernel's BPF run
    /// statistics (`--bpf-stats` only): the sum over the mode's programs of
    /// run time / runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_per_call: Option<f64>,
    /// Guest seconds, all rounds, the probe's output kept coming after the
    /// bench ended: consumer work deferred past the measurement.
    pub drain_s: f64,
}

/// One clock's boot of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockFigures {
    pub clock: Clock,
    pub unit: String,
    /// How the guest ran (icount boots are always TCG).
    pub accel: Option<Accel>,
    pub rounds: u32,
    /// The function the probes were attached to.
    pub symbol: Option<String>,
    pub boot_s: Option<f64>,
    pub run_s: Option<f64>,
    pub modes: Vec<ModeFigures>,
    /// Tracer overhead / empty-pair overhead, per bench.
    pub tracer_to_empty_pair: BTreeMap<String, f64>,
    /// Tracer overhead / bpftrace overhead, per bench.
    pub tracer_to_bpftrace: BTreeMap<String, f64>,
    pub error: Option<String>,
}

impl ClockFigures {
    pub fn new(clock: Clock, rounds: u32) -> Self {
        ClockFigures {
            clock,
            unit: clock.unit().into(),
            accel: None,
            rounds,
            symbol: None,
            boot_s: None,
            run_s: None,
            modes: Vec::new(),
            tracer_to_empty_pair: BTreeMap::new(),
            tracer_to_bpftrace: BTreeMap::new(),
            error: None,
        }
    }

    pub fn mode(&self, mode: &str) -> Option<&ModeFigures> {
        self.modes.iter().find(|m| m.mode == mode)
    }

    /// The overhead of `mode` on `bench`, if it was measured.
    pub fn overhead(&self, mode: &str, bench: &str) -> Option<f64> {
        self.mode(mode)?
            .benches
            .get(bench)?
            .overhead
            .map(|e| e.median)
    }

    /// Whether every mode passed (or is an expected limitation).
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && self.modes.iter().all(|m| m.status.is_ok())
    }
}

/// A cell's overhead figures, one entry per clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellOverhead {
    pub clocks: Vec<ClockFigures>,
}

impl CellOverhead {
    pub fn clock(&self, clock: Clock) -> Option<&ClockFigures> {
        self.clocks.iter().find(|c| c.clock == clock)
    }
}
