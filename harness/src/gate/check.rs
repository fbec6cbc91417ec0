//! Stage 6, check: a cell's normalised trace against the insta snapshot
//! committed in `harness/snapshots/`, and the tutorial's printk lines.
//!
//! The test suite checks the same files with `insta::assert_snapshot!`;
//! `harness matrix` reads them here so that a run outside `cargo test`
//! gates on exactly the same reviewed content.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use unlink_schema::escape_bytes;

use crate::paths::repo_root;

/// Where the reviewed snapshots live.
pub fn snapshot_dir() -> PathBuf {
    repo_root().join("harness").join("snapshots")
}

/// The snapshot names that can hold a scenario's reviewed trace for a
/// cell, most specific first: `errors@sid-arm64`, `errors@sid`,
/// `errors@arm64`, `errors`. A variant exists only where a kernel's trace
/// really differs.
pub fn snapshot_candidates(scenario: &str, alias: &str, arch: &str) -> [String; 4] {
    [
        format!("{scenario}@{alias}-{arch}"),
        format!("{scenario}@{alias}"),
        format!("{scenario}@{arch}"),
        scenario.to_string(),
    ]
}

/// The snapshot a cell's scenario is checked against: the most specific
/// that exists, else the generic name (reported missing).
pub fn snapshot_for(dir: &Path, scenario: &str, alias: &str, arch: &str) -> String {
    let c = snapshot_candidates(scenario, alias, arch);
    c.iter()
        .find(|n| dir.join(format!("{n}.snap")).is_file())
        .cloned()
        .unwrap_or_else(|| scenario.to_string())
}

/// One record of the tracefs oracle: an entry or a return, with the
/// thread (and its thread group, with `options/record-tgid`) and the
/// event's time on the instance's `mono` clock, in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OracleLine {
    Entry {
        tid: u32,
        tgid: Option<u32>,
        ts_us: u64,
        comm: Option<String>,
        name: String,
    },
    Exit {
        tid: u32,
        ts_us: u64,
        ret: i64,
    },
}

/// `12.500001` → 12,500,001 µs.
fn parse_ts_us(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if frac.len() != 6 {
        return None;
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

/// Parses a line of the oracle instance's `trace`: `task-TID (TGID) [cpu]
/// flags ts: entry: (fn+0x0/0x..) dfd=-100 comm="x" name="y"` (the
/// `(TGID)` only with record-tgid, `(-------)` where it was not recorded).
pub fn parse_oracle(line: &str) -> Option<OracleLine> {
    if line.starts_with('#') {
        return None;
    }
    let cpu = line.find(" [")?;
    let mut task = line[..cpu].trim_end();
    let mut tgid = None;
    if task.ends_with(')') {
        let open = task.rfind('(')?;
        tgid = task[open + 1..task.len() - 1].trim().parse().ok();
        task = task[..open].trim_end();
    }
    let tid = task.trim().rsplit_once('-')?.1.parse().ok()?;
    let rest = &line[cpu..];
    let ts_of = |marker: &str| -> Option<(u64, usize)> {
        let i = rest.find(marker)?;
        let ts = rest[..i].rsplit(' ').next()?;
        Some((parse_ts_us(ts)?, i))
    };
    if let Some((ts_us, i)) = ts_of(": entry: ") {
        let args = &rest[i..];
        // A name tracefs could not fetch (the function got an error
        // pointer) is `name=(fault)`, unquoted: it stands as no name.
        let (before, name) = match args.split_once(" name=\"") {
            Some((before, name)) => (before, name.strip_suffix('"').unwrap_or(name)),
            None => (args.split_once(" name=(fault)")?.0, ""),
        };
        // tracefs prints both as raw bytes; the tracer escapes them.
        let comm = before
            .split_once(" comm=\"")
            .map(|(_, c)| escape_bytes(c.strip_suffix('"').unwrap_or(c).as_bytes()));
        return Some(OracleLine::Entry {
            tid,
            tgid,
            ts_us,
            comm,
            name: escape_bytes(name.as_bytes()),
        });
    }
    if let Some((ts_us, i)) = ts_of(": exit: ") {
        let ret = rest[i..].rsplit_once(" ret=")?.1.trim().parse().ok()?;
        return Some(OracleLine::Exit { tid, ts_us, ret });
    }
    None
}

/// One call as the kernel's own tracer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleCall {
    pub tid: u32,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub name: String,
    pub ret: i64,
    /// Entry and return times, µs on the `mono` clock.
    pub entry_us: u64,
    pub exit_us: u64,
}

/// The oracle's calls, entries joined with the next return of the same
/// thread.
pub fn oracle_calls(text: &str) -> Vec<OracleCall> {
    let mut open: Vec<OracleCall> = Vec::new();
    let mut out = Vec::new();
    for l in text.lines().filter_map(parse_oracle) {
        match l {
            OracleLine::Entry {
                tid,
                tgid,
                ts_us,
                comm,
                name,
            } => open.push(OracleCall {
                tid,
                tgid,
                comm,
                name,
                ret: 0,
                entry_us: ts_us,
                exit_us: ts_us,
            }),
            OracleLine::Exit { tid, ts_us, ret } => {
                if let Some(i) = open.iter().rposition(|c| c.tid == tid) {
                    let mut c = open.remove(i);
                    c.ret = ret;
                    c.exit_us = ts_us;
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The body of an insta `.snap` file (the text after its metadata header).
pub fn snapshot_body(file_text: &str) -> Option<&str> {
    let rest = file_text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(&rest[end + "\n---\n".len()..])
}

/// The outcome of comparing with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCheck {
    Match,
    /// The first line that differs: (line number, expected, actual).
    Differs {
        line: usize,
        expected: String,
        actual: String,
    },
    Missing(PathBuf),
}

/// Compares `actual` with the body of the snapshot `name`.
pub fn check_snapshot(dir: &Path, name: &str, actual: &str) -> Result<SnapshotCheck> {
    let path = dir.join(format!("{name}.snap"));
    if !path.exists() {
        return Ok(SnapshotCheck::Missing(path));
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let body = snapshot_body(&text)
        .with_context(|| format!("{}: not an insta snapshot", path.display()))?;
    Ok(compare(body, actual))
}

/// Line-by-line comparison, trailing newlines ignored (as insta does).
pub fn compare(expected: &str, actual: &str) -> SnapshotCheck {
    let e: Vec<&str> = expected.trim_end_matches('\n').lines().collect();
    let a: Vec<&str> = actual.trim_end_matches('\n').lines().collect();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            return SnapshotCheck::Differs {
                line: i + 1,
                expected: x.map(|s| s.to_string()).unwrap_or_else(|| "<end>".into()),
                actual: y.map(|s| s.to_string()).unwrap_or_else(|| "<end>".into()),
            };
        }
    }
    SnapshotCheck::Match
}

impl std::fmt::Display for SnapshotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotCheck::Match => write!(f, "matches"),
            SnapshotCheck::Differs {
                line,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "differs at line {line}: expected `{expected}`, got `{actual}`"
                )
            }
            SnapshotCheck::Missing(p) => write!(
                f,
                "no snapshot {} (run the tests to create and review it)",
                p.display()
            ),
        }
    }
}

/// One tutorial line found in trace_pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintkLine {
    Entry { pid: u32, filename: String },
    Exit { pid: u32, ret: i64 },
}

/// Parses the message part of a trace_pipe line written by the tutorial
/// program (`... bpf_trace_printk: KPROBE ENTRY pid = 7, filename = a`).
pub fn parse_printk(line: &str) -> Option<PrintkLine> {
    if let Some(i) = line.find("KPROBE ENTRY pid = ") {
        let rest = &line[i + "KPROBE ENTRY pid = ".len()..];
        let (pid, name) = rest.split_once(", filename = ")?;
        return Some(PrintkLine::Entry {
            pid: pid.trim().parse().ok()?,
            filename: name.to_string(),
        });
    }
    if let Some(i) = line.find("KPROBE EXIT: pid = ") {
        let rest = &line[i + "KPROBE EXIT: pid = ".len()..];
        let (pid, ret) = rest.split_once(", ret = ")?;
        return Some(PrintkLine::Exit {
            pid: pid.trim().parse().ok()?,
            ret: ret.trim().parse().ok()?,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_bodies() {
        let file = "---\nsource: harness/tests/it/main.rs\nexpression: text\n---\nline 1\nline 2\n";
        assert_eq!(snapshot_body(file), Some("line 1\nline 2\n"));
        assert_eq!(snapshot_body("no header"), None);
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare("a\nb\n", "a\nb"), SnapshotCheck::Match);
        assert_eq!(
            compare("a\nb\n", "a\nc\n"),
            SnapshotCheck::Differs {
                line: 2,
                expected: "b".into(),
                actual: "c".into()
            }
        );
        assert_eq!(
            compare("a\n", "a\nextra\n"),
            SnapshotCheck::Differs {
                line: 2,
                expected: "<end>".into(),
                actual: "extra".into()
            }
        );
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(
            snapshot_candidates("errors", "sid", "arm64"),
            ["errors@sid-arm64", "errors@sid", "errors@arm64", "errors"]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("errors@sid.snap"), "").unwrap();
        assert_eq!(
            snapshot_for(dir.path(), "errors", "sid", "arm64"),
            "errors@sid"
        );
        assert_eq!(
            snapshot_for(dir.path(), "errors", "bookworm", "arm64"),
            "errors"
        );
    }

    #[test]
    fn oracle_lines() {
        let text = "# tracer: nop\n\
            unlink-guest-231     (    230) [001] ..... 12.500000: entry: (do_unlinkat+0x0/0x2a0) dfd=-100 comm=\"unlink-guest\" name=\"test1\"\n\
            unlink-guest-231     (    230) [001] ..... 12.500040: exit: (__x64_sys_unlink+0x1e/0x30 <- do_unlinkat) ret=0\n\
            kworker/u4:1-40 (-------) [000] ..... 12.700000: entry: (do_unlinkat+0x0/0x2a0) dfd=-100 comm=\"kworker/u4:1\" name=\"a b\"\n\
            kworker/u4:1-40 [000] ..... 12.800000: exit: (x <- do_unlinkat) ret=-2\n";
        assert_eq!(
            parse_oracle(
                "unlink-guest-231 [001] ..... 12.600000: exit: (x <- do_unlinkat) ret=-13"
            ),
            Some(OracleLine::Exit {
                tid: 231,
                ts_us: 12_600_000,
                ret: -13
            })
        );
        let calls = oracle_calls(text);
        assert_eq!(
            calls
                .iter()
                .map(|c| (
                    c.tid,
                    c.tgid,
                    c.comm.as_deref(),
                    c.name.as_str(),
                    c.ret,
                    c.exit_us - c.entry_us
                ))
                .collect::<Vec<_>>(),
            [
                (231, Some(230), Some("unlink-guest"), "test1", 0, 40),
                (40, None, Some("kworker/u4:1"), "a b", -2, 100_000)
            ]
        );
        // An old-style line without record-tgid or comm still parses.
        assert_eq!(
            parse_oracle("rm-7 [000] d.... 1.000001: entry: (f+0x0/0x1) dfd=-100 name=\"x\""),
            Some(OracleLine::Entry {
                tid: 7,
                tgid: None,
                ts_us: 1_000_001,
                comm: None,
                name: "x".into()
            })
        );
    }

    #[test]
    fn printk_lines() {
        let cases = [
            ("rm-123 [001] d..31 45.6: bpf_trace_printk: KPROBE ENTRY pid = 123, filename = test1",
             Some(PrintkLine::Entry { pid: 123, filename: "test1".into() })),
            ("rm-123 [001] d..31 45.7: bpf_trace_printk: KPROBE EXIT: pid = 123, ret = -2",
             Some(PrintkLine::Exit { pid: 123, ret: -2 })),
            ("rm-123 [001] 45.7: bpf_trace_printk: KPROBE EXIT: pid = 123, ret = 4294967294",
             Some(PrintkLine::Exit { pid: 123, ret: 4294967294 })),
            ("<idle>-0 [000] something else", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_printk(line), want, "{line}");
        }
    }
}
