//! Stage 6, check: a cell's normalised trace against the insta snapshot
//! committed in `harness/snapshots/`, and the tutorial's printk lines.
//!
//! The test suite checks the same files with `insta::assert_snapshot!`;
//! `harness matrix` reads them here so that a run outside `cargo test`
//! gates on exactly the same reviewed content.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::manifest::repo_root;

/// Where the reviewed snapshots live.
pub fn snapshot_dir() -> PathBuf {
    repo_root().join("harness").join("snapshots")
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
