//! Stage 6, measure: what a probe costs one unlink. The guest agent ran
//! the criterion bench of the unlink path (`benches/unlink-path/benches/unlink_path.rs`)
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

use std::path::Path;

pub mod baseline;
pub mod figures;
pub mod stats;

pub use baseline::{baseline_of, compare, Baseline, Comparison};
pub use figures::{figures, guest_release, merge_runs};

use crate::model::figures::Clock;

/// Every mode, in report order.
pub use unlink_schema::OVERHEAD_MODES as MODES;

/// What each mode is, for reports.
pub fn mode_description(mode: &str) -> &'static str {
    use unlink_schema::OverheadMode as M;
    match M::parse(mode) {
        Ok(M::Baseline) => "no probe",
        Ok(M::EmptyKprobe) => "a kprobe whose program does nothing",
        Ok(M::EmptyKretprobe) => "a kretprobe whose program does nothing",
        Ok(M::EmptyPair) => "an empty kprobe + kretprobe: the mechanism alone",
        Ok(M::Kprobe) => "the tracer (kprobe + kretprobe), every event decoded in user space",
        Ok(M::KprobeJson) => "the tracer, every event printed as a JSON line (to a file)",
        Ok(M::Fentry) => "the tracer in fentry mode, every event decoded in user space",
        Ok(M::Printk) => {
            "the tutorial as written: bpf_printk, trace_pipe read and printed to a file"
        }
        Ok(M::Bpftrace) => "bpftrace's one-liner of the tutorial, printing to a file",
        Err(_) => "",
    }
}

/// The benches of `benches/unlink-path/benches/unlink_path.rs` (criterion group `unlink`).
pub const BENCHES: &[&str] = &["create_unlink", "unlink_missing"];

/// The mode whose overhead is the tracer's, and the one it is held against.
pub const TRACER_MODE: &str = unlink_schema::OverheadMode::Kprobe.name();
pub const EMPTY_PAIR: &str = unlink_schema::OverheadMode::EmptyPair.name();
/// The mode every other is measured against, and the peer held beside the
/// tracer.
pub const BASELINE: &str = unlink_schema::OverheadMode::Baseline.name();
pub const BPFTRACE: &str = unlink_schema::OverheadMode::Bpftrace.name();
pub const PRINTK: &str = unlink_schema::OverheadMode::Printk.name();

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
