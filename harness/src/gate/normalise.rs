//! Stage 5, normalise: the tracer's raw output from one guest becomes
//! stable text for a snapshot. Pids become `[PID1]`, `[PID2]`… in order of
//! appearance, times and latencies are dropped, events of processes other
//! than the workload's are counted and left out, the kernel function's
//! name becomes `unlink_fn` (matrix.json records the real one).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

pub use unlink_schema::Step;
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

/// The normalised trace of the workload's own unlink calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub text: String,
    /// Events of the workload's processes.
    pub events: usize,
    /// Events of other processes in the guest, left out of the text.
    pub background: usize,
}

/// Names longer than this are shown by their ends and length.
const SHOWN: usize = 48;

/// A quoted, escaped name; long ones as `"start…end" [N chars]`.
fn shown(escaped: &str) -> String {
    let chars: Vec<char> = escaped.chars().collect();
    if chars.len() <= SHOWN {
        return format!("\"{escaped}\"");
    }
    let head: String = chars[..12].iter().collect();
    let tail: String = chars[chars.len() - 12..].iter().collect();
    format!("\"{head}…{tail}\" [{} chars]", chars.len())
}

fn errno_text(ret: i64) -> String {
    if ret >= 0 {
        return ret.to_string();
    }
    let e = nix::errno::Errno::from_raw(-ret as i32);
    format!("{ret} ({e:?})")
}

/// The event's side of a line: how the traced function saw the call.
fn traced(e: &TraceEvent, step: &Step) -> String {
    let dfd = match (e.dfd, step.dirfd, &step.dfd) {
        (Some(-100), _, _) => "AT_FDCWD".to_string(),
        (Some(fd), Some(d), Some(label)) if fd == d => label.clone(),
        (Some(fd), _, _) => format!("fd {fd}"),
        (None, _, _) => "-".to_string(),
    };
    let name = if e.filename_unreadable {
        "<unreadable>".to_string()
    } else if e.filename_truncated {
        // What the buffer held, in bytes (a cut character shows as `\xNN`).
        let held = unlink_schema::unescape_bytes(&e.filename)
            .map_or_else(|| e.filename.chars().count(), |b| b.len());
        let head: String = e.filename.chars().take(12).collect();
        format!("\"{head}…\" [truncated at {held} bytes]")
    } else {
        shown(&e.filename)
    };
    let ret = match &e.errno {
        Some(name) => format!("{} ({name})", e.ret),
        None => e.ret.to_string(),
    };
    format!("unlink_fn({dfd}, {name}) = {ret}")
}

/// Whether an event is the traced view of a step: same thread, and the
/// name the function saw of its path (see [`super::expect::filename`]).
pub fn event_matches(e: &TraceEvent, step: &Step) -> bool {
    e.tid == step.tid && e.filename == super::expect::filename(step)
}

/// Each step paired with the event it produced (None: not traced).
pub fn pair<'a>(steps: &[Step], events: &'a [TraceEvent]) -> Vec<Option<&'a TraceEvent>> {
    let mut used = vec![false; events.len()];
    steps
        .iter()
        .map(|s| {
            if !super::expect::reaches_unlink(s) {
                return None;
            }
            let i = (0..events.len()).find(|&i| !used[i] && event_matches(&events[i], s))?;
            used[i] = true;
            Some(&events[i])
        })
        .collect()
}

/// The normalised trace of one run: a line per workload call (what the
/// program asked and got, then what the traced function saw, or that it
/// was not traced), events of the workload's processes that no call
/// explains, and the pairing counters. Pids become placeholders; times,
/// latencies and the function's real name are left out.
pub fn normalise(steps: &[Step], events: &[TraceEvent], summary: &TracerSummary) -> Normalised {
    let mut pids = Pids(BTreeMap::new());
    let mut lines = Vec::new();
    let paired = pair(steps, events);
    for (s, e) in steps.iter().zip(&paired) {
        let pid = pids.name(s.pid);
        let uid = if s.uid == 0 {
            String::new()
        } else {
            format!(" uid {}", s.uid)
        };
        let dfd = s.dfd.as_ref().map(|d| format!("{d}, ")).unwrap_or_default();
        let traced = e
            .map(|e| traced(e, s))
            .unwrap_or_else(|| "not traced".into());
        let path = if s.bad_pointer {
            "<bad pointer>".to_string()
        } else {
            shown(&s.path)
        };
        lines.push(format!(
            "{pid}{uid} {}({dfd}{path}) = {} | {traced}",
            s.op,
            errno_text(s.ret)
        ));
    }
    let workload_pids: Vec<u32> = steps.iter().map(|s| s.pid).collect();
    let mine: Vec<&TraceEvent> = events
        .iter()
        .filter(|e| workload_pids.contains(&e.pid))
        .collect();
    let matched = paired.iter().flatten().count();
    for e in &mine {
        if !paired.iter().flatten().any(|p| std::ptr::eq(*p, *e)) {
            let pid = pids.name(e.pid);
            lines.push(format!(
                "{pid} unexpected: unlink_fn({:?}, {}) = {}",
                e.dfd,
                shown(&e.filename),
                e.ret
            ));
        }
    }
    lines.push(format!(
        "# paired events: {matched}, dropped: {}, returns without entry: {}",
        summary.counters.dropped, summary.counters.unpaired_returns
    ));
    Normalised {
        text: lines.join("\n") + "\n",
        events: mine.len(),
        background: events.len() - mine.len(),
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

    fn step(pid: u32, tid: u32, path: &str, ret: i64) -> Step {
        Step {
            pid,
            tid,
            ..crate::gate::fields::tests::step(path, ret, 0)
        }
    }

    #[test]
    fn steps_pair_with_their_events_and_background_is_left_out() {
        let steps = [
            step(700, 700, "a", 0),
            step(700, 700, "missing", -2),
            step(700, 700, "d", 0),
        ];
        let mut long = ev(700, "g", &"d".repeat(511), 0);
        long.filename_truncated = true;
        let steps_long = [step(700, 700, &"d".repeat(600), 0)];
        let events = [
            ev(12, "systemd", "x", 0),
            ev(700, "g", "a", 0),
            ev(700, "g", "missing", -2),
            ev(700, "g", "stray", 0),
        ];
        let n = normalise(&steps, &events, &TracerSummary::default());
        assert_eq!(
            n.text,
            "[PID1] unlink(\"a\") = 0 | unlink_fn(AT_FDCWD, \"a\") = 0\n\
             [PID1] unlink(\"missing\") = -2 (ENOENT) | unlink_fn(AT_FDCWD, \"missing\") = -2 (ENOENT)\n\
             [PID1] unlink(\"d\") = 0 | not traced\n\
             [PID1] unexpected: unlink_fn(Some(-100), \"stray\") = 0\n\
             # paired events: 2, dropped: 0, returns without entry: 0\n"
        );
        assert_eq!((n.events, n.background), (3, 1));
        let t = normalise(&steps_long, &[long], &TracerSummary::default());
        assert!(
            t.text.starts_with("[PID1] unlink(\"dddddddddddd…dddddddddddd\" [600 chars]) = 0 | unlink_fn(AT_FDCWD, \"dddddddddddd…\" [truncated at 511 bytes]) = 0\n"),
            "{}",
            t.text
        );
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
