//! Stage 5, normalise: the tracer's raw output from one guest becomes
//! stable text for a snapshot. Pids become `[PID1]`, `[PID2]`… in order of
//! appearance, times and latencies are dropped, events of processes other
//! than the workload's are counted and left out, the kernel function's
//! name becomes `unlink_fn` (matrix.json records the real one).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One workload step as the guest agent recorded it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Step {
    pub argv: Vec<String>,
    pub pid: u32,
    pub exit_code: Option<i32>,
}

pub use unlink_schema::{JsonEvent as TraceEvent, Summary as TracerSummary};

/// Parses JSON lines; a line that does not parse is an error naming it.
pub fn parse_events(text: &str) -> Result<Vec<TraceEvent>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("trace line {}: {l}", i + 1)))
        .collect()
}

/// Finds the JSON summary among the tracer's stderr lines (the last one that parses).
pub fn parse_summary(stderr: &str) -> Option<TracerSummary> {
    stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<TracerSummary>(l).ok())
}

/// Pid placeholders in order of first appearance.
struct Pids(BTreeMap<u32, usize>);

impl Pids {
    fn name(&mut self, pid: u32) -> String {
        let n = self.0.len() + 1;
        format!("[PID{}]", self.0.entry(pid).or_insert(n))
    }
}

fn dfd_text(dfd: Option<i32>) -> String {
    match dfd {
        Some(-100) => "AT_FDCWD".into(),
        Some(fd) => format!("fd{fd}"),
        None => "-".into(),
    }
}

/// The normalised trace of the workload's own unlink calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub text: String,
    /// Events of the workload's processes.
    pub events: usize,
    /// Events of other processes in the guest, left out of the text.
    pub background: usize,
}

/// Normalises the events of the workload's steps.
pub fn normalise(steps: &[Step], events: &[TraceEvent], summary: &TracerSummary) -> Normalised {
    let mut pids = Pids(BTreeMap::new());
    let mut lines = Vec::new();
    let workload: Vec<String> = steps.iter().map(|s| s.argv.join(" ")).collect();
    lines.push(format!("# workload: {}", workload.join("; ")));
    let mut n = 0;
    for e in events {
        if !steps.iter().any(|s| s.pid == e.pid) {
            continue;
        }
        n += 1;
        let pid = pids.name(e.pid);
        let tid = if e.tid == e.pid {
            pid.clone()
        } else {
            pids.name(e.tid)
        };
        let ret = match &e.errno {
            Some(name) => format!("{} ({name})", e.ret),
            None => e.ret.to_string(),
        };
        let trunc = if e.filename_truncated {
            "...<truncated>"
        } else {
            ""
        };
        lines.push(format!(
            "{} {pid}/{tid} unlink_fn({}, \"{}\"{trunc}) = {ret}",
            e.comm,
            dfd_text(e.dfd),
            e.filename
        ));
    }
    lines.push(format!(
        "# paired events: {n}, dropped: {}, returns without entry: {}",
        summary.counters.dropped, summary.counters.unpaired_returns
    ));
    Normalised {
        text: lines.join("\n") + "\n",
        events: n,
        background: events.len() - n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pid: u32, comm: &str, name: &str, ret: i64) -> TraceEvent {
        TraceEvent {
            time_ns: 1,
            pid,
            tid: pid,
            comm: comm.into(),
            dfd: Some(-100),
            filename: name.into(),
            filename_truncated: false,
            filename_unreadable: false,
            ret,
            errno: (ret == -2).then(|| "ENOENT".into()),
            latency_ns: 1234,
            symbol: "do_unlinkat".into(),
        }
    }

    fn step(pid: u32, argv: &str) -> Step {
        Step {
            argv: argv.split(' ').map(str::to_string).collect(),
            pid,
            exit_code: Some(0),
        }
    }

    #[test]
    fn pids_become_placeholders_and_background_is_left_out() {
        let steps = [step(700, "rm a"), step(705, "rm missing")];
        let events = [
            ev(12, "systemd", "x", 0),
            ev(700, "rm", "a", 0),
            ev(705, "rm", "missing", -2),
        ];
        let n = normalise(&steps, &events, &TracerSummary::default());
        assert_eq!(
            n.text,
            "# workload: rm a; rm missing\n\
             rm [PID1]/[PID1] unlink_fn(AT_FDCWD, \"a\") = 0\n\
             rm [PID2]/[PID2] unlink_fn(AT_FDCWD, \"missing\") = -2 (ENOENT)\n\
             # paired events: 2, dropped: 0, returns without entry: 0\n"
        );
        assert_eq!((n.events, n.background), (2, 1));
    }

    #[test]
    fn json_lines_and_summary() {
        let line = r#"{"time_ns":1,"pid":5,"tid":6,"comm":"rm","dfd":-100,"filename":"a\\nb","filename_truncated":false,"filename_unreadable":false,"ret":0,"errno":null,"latency_ns":9,"symbol":"do_unlinkat"}"#;
        let evs = parse_events(&format!("{line}\n\n")).unwrap();
        assert_eq!(evs[0].filename, "a\\nb");
        assert!(parse_events("{oops")
            .unwrap_err()
            .to_string()
            .contains("trace line 1"));
        let err = "unlink-tracer: Kprobe mode\n{\"mode\":\"kprobe\",\"symbol\":\"do_unlinkat\",\"ret_width_bits\":32,\"printed\":3,\"stopped_by\":\"signal\",\"entries\":3,\"returns\":3,\"events\":3,\"dropped\":0,\"unpaired_returns\":0,\"inflight\":0,\"stash_full\":0,\"kernel_missed\":null}\n";
        let s = parse_summary(err).unwrap();
        assert_eq!(
            (
                s.counters.events,
                s.ret_width_bits,
                s.counters.kernel_missed
            ),
            (3, 32, None)
        );
        assert_eq!(parse_summary("no json here"), None);
    }
}
