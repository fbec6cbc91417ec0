//! Mutation testing of the tracer against the gate: each mutant is one
//! plausible bug planted in the tracer (a Rust mutant from `cargo mutants
//! --list`, or a BPF-C mutant from the project's table `mutants/bpf.toml`),
//! built, and run through one cell's whole gate. A mutant is caught when
//! the cell fails; the verdicts that failed say which check caught it.
//!
//! This module is pure: the mutants, how each is applied to a source text,
//! the committed lists (BPF table, equivalent Rust mutants) and what a
//! cell's row makes of a mutant. `cli/mutants.rs` builds and runs them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{CellResult, Status};

pub mod bpf;
pub mod rust;

/// Which side of the tracer a mutant changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The tracer's and the schema's Rust (cargo-mutants).
    Rust,
    /// `bpf/unlink.bpf.c` (the project's table).
    Bpf,
}

impl Part {
    pub const ALL: [Part; 2] = [Part::Rust, Part::Bpf];

    pub fn name(self) -> &'static str {
        match self {
            Part::Rust => "rust",
            Part::Bpf => "bpf",
        }
    }

    /// The part a file belongs to: Rust sources, or the BPF side.
    pub fn of_file(file: &str) -> Part {
        if file.ends_with(".rs") {
            Part::Rust
        } else {
            Part::Bpf
        }
    }
}

/// One edit of one file: the text at `start..end` (byte offsets) becomes
/// `replacement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    /// Relative to the repository root.
    pub file: String,
    pub start: usize,
    pub end: usize,
    pub replacement: String,
}

impl Edit {
    /// The file's text with the edit made (None: the span is not in it).
    pub fn apply(&self, text: &str) -> Option<String> {
        let (start, end) = (self.start, self.end);
        if start > end
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            return None;
        }
        Some(format!(
            "{}{}{}",
            &text[..start],
            self.replacement,
            &text[end..]
        ))
    }

    /// The lines of `text` the edit changes, before and after, as a
    /// unified-diff-like excerpt (for the report).
    pub fn diff(&self, text: &str) -> String {
        let Some(after) = self.apply(text) else {
            return String::new();
        };
        let line_start = text[..self.start].rfind('\n').map_or(0, |i| i + 1);
        let old_end = text[self.end..]
            .find('\n')
            .map_or(text.len(), |i| self.end + i);
        let new_end_at = self.start + self.replacement.len();
        let new_end = after[new_end_at..]
            .find('\n')
            .map_or(after.len(), |i| new_end_at + i);
        let line_no = text[..line_start].matches('\n').count() + 1;
        let mut out = format!("--- {}:{line_no}\n", self.file);
        for l in text[line_start..old_end].lines() {
            out.push_str(&format!("-{l}\n"));
        }
        for l in after[line_start..new_end].lines() {
            out.push_str(&format!("+{l}\n"));
        }
        out
    }
}

/// One planted bug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutant {
    pub part: Part,
    /// Stable within a part: cargo-mutants' name without its line and
    /// column (`tracer/src/pair.rs: replace == with != in Pairer::find`,
    /// numbered `#2` when a function has the same change twice), or the
    /// BPF table's `id`.
    pub id: String,
    /// What the bug is, in words.
    pub what: String,
    pub edit: Edit,
    /// The verdicts the BPF table says must catch it (empty for Rust).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caught_by: Vec<String>,
    /// Why it cannot change what the tracer documents, where a committed
    /// list says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalent: Option<String>,
}

impl Mutant {
    /// `rust tracer/src/…` or `bpf filter-tgid-is-tid`.
    pub fn key(&self) -> String {
        format!("{} {}", self.part.name(), self.id)
    }
}

/// What the gate made of a mutant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// The cell failed: these verdicts (or the cell's status) said so.
    Caught { verdicts: Vec<String> },
    /// Every verdict passed: the gate cannot tell this bug from the tracer.
    Missed,
    /// Every verdict passed, but the crate's own unit tests fail it (these
    /// tests): code no guest run can reach (a verifier rejection, a
    /// corrupt record), checked where it can be. Not counted as the gate's.
    Unit { tests: Vec<String> },
    /// Listed as unable to change documented output, and indeed not caught.
    Equivalent,
    /// It did not build.
    Unviable { error: String },
    /// The cell ran out of its deadline.
    Timeout,
    /// The cell could not run the gate (the emulator aborted, the host
    /// failed): the mutant is not judged; rerun it with `--only`.
    Error,
    /// Not run: the budget was spent, or the run was stopped.
    NotRun,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Caught { .. } => "caught",
            Outcome::Missed => "missed",
            Outcome::Unit { .. } => "unit",
            Outcome::Equivalent => "equivalent",
            Outcome::Unviable { .. } => "unviable",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::NotRun => "not-run",
        }
    }

    /// The order of the report's columns.
    pub const NAMES: [&'static str; 8] = [
        "caught",
        "missed",
        "unit",
        "equivalent",
        "unviable",
        "timeout",
        "error",
        "not-run",
    ];
}

/// One mutant with what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub mutant: Mutant,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The cell that failed it (or the last one tried).
    #[serde(default)]
    pub cell: String,
    /// Where that cell's report is (relative to the mutants report).
    #[serde(default)]
    pub dir: String,
    /// The lines it changes (see [`Edit::diff`]).
    #[serde(default)]
    pub diff: String,
    /// Build and cell, seconds.
    pub build_s: f64,
    pub cell_s: f64,
    /// The first failing verdict's words, or the cell's error.
    #[serde(default)]
    pub detail: String,
    /// Something the lists should be told: caught by none of the verdicts
    /// the table expects, or caught although listed as equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The tests `cargo test` reports failed (`test NAME ... FAILED`), in
/// order (pure).
pub fn failed_tests(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .map(str::to_string)
        .collect()
}

/// The outcome a mutant's cell row gives it (pure).
pub fn judge(m: &Mutant, cell: &CellResult) -> (Outcome, String, Option<String>) {
    let failed: Vec<String> = cell
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Fail)
        .map(|s| s.name.clone())
        .collect();
    let detail = cell
        .scenarios
        .iter()
        .find(|s| s.status == Status::Fail)
        .map(|s| format!("{}: {}", s.name, s.detail))
        .or_else(|| cell.error.clone())
        .unwrap_or_default();
    let outcome = match cell.status {
        Status::Pass if m.equivalent.is_some() => Outcome::Equivalent,
        Status::Pass => Outcome::Missed,
        Status::Timeout => Outcome::Timeout,
        Status::Interrupted => Outcome::NotRun,
        Status::Fail if !failed.is_empty() => Outcome::Caught {
            verdicts: failed.clone(),
        },
        // A cell error (and a failure no verdict names) is the emulator's
        // or the host's, not the gate's judgement of the mutant.
        Status::Fail | Status::Error => Outcome::Error,
        Status::ExpectedLimitation => Outcome::Missed,
    };
    let note = match &outcome {
        Outcome::Caught { verdicts } if m.equivalent.is_some() => Some(format!(
            "listed as equivalent ({}) but caught by {}: remove it from the list",
            m.equivalent.as_deref().unwrap_or_default(),
            verdicts.join(", ")
        )),
        Outcome::Caught { verdicts }
            if !m.caught_by.is_empty() && !m.caught_by.iter().any(|v| verdicts.contains(v)) =>
        {
            Some(format!(
                "the table expects {} to catch it; caught by {} instead",
                m.caught_by.join(" or "),
                verdicts.join(", ")
            ))
        }
        _ => None,
    };
    (outcome, detail, note)
}

/// Which mutants a run takes (pure): those whose key contains one of
/// `only` (all when empty), then the `k`-th of `n` shards (1-based) by
/// position.
pub fn select(mutants: Vec<Mutant>, only: &[String], shard: (usize, usize)) -> Vec<Mutant> {
    let (k, n) = shard;
    mutants
        .into_iter()
        .filter(|m| only.is_empty() || only.iter().any(|o| m.key().contains(o.as_str())))
        .enumerate()
        .filter(|(i, _)| n <= 1 || i % n == k - 1)
        .map(|(_, m)| m)
        .collect()
}

/// `K/N` → (K, N), 1 ≤ K ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard `{s}`: expected K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Counts per part and outcome, for the report and the README figure.
pub fn counts(judged: &[Judged]) -> BTreeMap<Part, BTreeMap<&'static str, usize>> {
    let mut out: BTreeMap<Part, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for j in judged {
        *out.entry(j.mutant.part)
            .or_default()
            .entry(j.outcome.name())
            .or_default() += 1;
    }
    out
}

/// The committed list of Rust mutants that cannot change what the tracer
/// documents (`mutants/equivalent.toml`): `[[equivalent]] id = "…"
/// reason = "…"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EquivalentList {
    #[serde(default)]
    pub equivalent: Vec<EquivalentEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EquivalentEntry {
    pub id: String,
    pub reason: String,
}

impl EquivalentList {
    pub fn parse(text: &str) -> Result<Self, String> {
        let list: EquivalentList = toml::from_str(text).map_err(|e| e.to_string())?;
        for e in &list.equivalent {
            if e.reason.trim().is_empty() {
                return Err(format!("equivalent `{}` has no reason", e.id));
            }
        }
        Ok(list)
    }

    /// Marks the listed mutants; Err lists entries that match no mutant
    /// (stale: the code they named changed).
    pub fn mark(&self, mutants: &mut [Mutant]) -> Result<(), Vec<String>> {
        let mut stale = Vec::new();
        for e in &self.equivalent {
            let mut hit = false;
            for m in mutants
                .iter_mut()
                .filter(|m| m.part == Part::Rust && m.id == e.id)
            {
                m.equivalent = Some(e.reason.clone());
                hit = true;
            }
            if !hit {
                stale.push(e.id.clone());
            }
        }
        if stale.is_empty() {
            Ok(())
        } else {
            Err(stale)
        }
    }

    /// Earlier runs' outcomes read against today's list (a join): a Rust
    /// mutant the gate passed and the list now explains is equivalent, with
    /// its reason; one it caught although listed gets the note to remove it.
    pub fn settle(&self, judged: &mut [Judged]) {
        for j in judged.iter_mut().filter(|j| j.mutant.part == Part::Rust) {
            let Some(e) = self.equivalent.iter().find(|e| e.id == j.mutant.id) else {
                continue;
            };
            j.mutant.equivalent = Some(e.reason.clone());
            match &j.outcome {
                Outcome::Missed => j.outcome = Outcome::Equivalent,
                Outcome::Caught { verdicts } => {
                    j.note = Some(format!(
                        "listed as equivalent ({}) but caught by {}: remove it from the list",
                        e.reason,
                        verdicts.join(", ")
                    ))
                }
                _ => {}
            }
        }
    }
}

/// A judged Rust mutant `id` on `cell`, for tests of what reads outcomes.
#[cfg(test)]
pub(crate) fn test_judged(id: &str, cell: &str, outcome: Outcome) -> Judged {
    Judged {
        mutant: tests::mutant(Part::Rust, id),
        outcome,
        cell: cell.into(),
        dir: String::new(),
        diff: String::new(),
        build_s: 0.0,
        cell_s: 0.0,
        detail: String::new(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ScenarioResult;

    #[test]
    fn a_join_reads_outcomes_against_the_list() {
        let list = EquivalentList::parse(
            "[[equivalent]]\nid = \"a\"\nreason = \"speed only\"\n[[equivalent]]\nid = \"b\"\nreason = \"x\"\n",
        )
        .expect("list");
        let judged = |id: &str, outcome| test_judged(id, "", outcome);
        let mut js = vec![
            judged("a", Outcome::Missed),
            judged(
                "b",
                Outcome::Caught {
                    verdicts: vec!["fields".into()],
                },
            ),
            judged("c", Outcome::Missed),
        ];
        list.settle(&mut js);
        assert_eq!(js[0].outcome, Outcome::Equivalent);
        assert_eq!(js[0].mutant.equivalent.as_deref(), Some("speed only"));
        assert!(js[1]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("caught by fields")));
        assert_eq!(
            js[2].outcome,
            Outcome::Missed,
            "an unlisted survivor stays missed"
        );
    }

    #[test]
    fn failed_tests_are_cargos() {
        let out = "running 3 tests\ntest a::b ... ok\ntest probe::tests::verifier_reasons ... FAILED\ntest c ... ignored\ntest ring::tests::walks ... FAILED\n\nfailures:\n";
        assert_eq!(
            failed_tests(out),
            ["probe::tests::verifier_reasons", "ring::tests::walks"]
        );
        assert!(failed_tests("test result: ok. 3 passed").is_empty());
    }

    pub fn mutant(part: Part, id: &str) -> Mutant {
        Mutant {
            part,
            id: id.into(),
            what: id.into(),
            edit: Edit {
                file: "f.rs".into(),
                start: 0,
                end: 1,
                replacement: "y".into(),
            },
            caught_by: Vec::new(),
            equivalent: None,
        }
    }

    #[test]
    fn edits_apply_and_show_their_lines() {
        let text = "fn a() {\n    x == 1\n}\n";
        let at = text.find("==").unwrap();
        let e = Edit {
            file: "f.rs".into(),
            start: at,
            end: at + 2,
            replacement: "!=".into(),
        };
        assert_eq!(e.apply(text).as_deref(), Some("fn a() {\n    x != 1\n}\n"));
        assert_eq!(e.diff(text), "--- f.rs:2\n-    x == 1\n+    x != 1\n");
        let outside = Edit {
            start: 99,
            end: 100,
            ..e.clone()
        };
        assert_eq!(outside.apply(text), None);
        let inside_char = Edit {
            start: 1,
            end: 2,
            ..e
        };
        assert_eq!(inside_char.apply("é"), None);
    }

    fn cell(status: Status, failed: &[&str]) -> CellResult {
        let mut c: CellResult = serde_json::from_value(serde_json::json!({
            "alias": "bookworm", "suite": "bookworm", "arch": "x86_64",
            "accel": "tcg", "status": "pass", "total_s": 1.0,
            "scenarios": [], "dir": "d", "snapshots": {}, "timeline": []
        }))
        .expect("a minimal row");
        c.status = status;
        c.scenarios = ["tutorial", "fields", "pid-filter"]
            .iter()
            .map(|n| {
                let status = if failed.contains(n) {
                    Status::Fail
                } else {
                    Status::Pass
                };
                ScenarioResult::new(*n, status, format!("{n} said"))
            })
            .collect();
        c
    }

    #[test]
    fn a_cell_row_judges_its_mutant() {
        let plain = mutant(Part::Rust, "r");
        let mut expected = mutant(Part::Bpf, "b");
        expected.caught_by = vec!["pid-filter".into()];
        let mut equivalent = mutant(Part::Rust, "e");
        equivalent.equivalent = Some("only speed".into());
        let caught = |v: &[&str]| Outcome::Caught {
            verdicts: v.iter().map(|s| s.to_string()).collect(),
        };
        type Case<'a> = (&'a Mutant, Status, &'a [&'a str], Outcome, Option<&'a str>);
        let cases: [Case; 10] = [
            (&plain, Status::Pass, &[], Outcome::Missed, None),
            (&plain, Status::Fail, &["fields"], caught(&["fields"]), None),
            // QEMU aborted, the host failed: not the gate's judgement.
            (&plain, Status::Error, &[], Outcome::Error, None),
            (&plain, Status::Fail, &[], Outcome::Error, None),
            (&equivalent, Status::Error, &[], Outcome::Error, None),
            (&plain, Status::Timeout, &[], Outcome::Timeout, None),
            (
                &expected,
                Status::Fail,
                &["pid-filter", "fields"],
                caught(&["fields", "pid-filter"]),
                None,
            ),
            (
                &expected,
                Status::Fail,
                &["tutorial"],
                caught(&["tutorial"]),
                Some("the table expects pid-filter"),
            ),
            (&equivalent, Status::Pass, &[], Outcome::Equivalent, None),
            (
                &equivalent,
                Status::Fail,
                &["fields"],
                caught(&["fields"]),
                Some("listed as equivalent"),
            ),
        ];
        for (m, status, failed, want, note) in cases {
            let (got, detail, n) = judge(m, &cell(status, failed));
            assert_eq!(got, want, "{} {status:?}", m.id);
            match note {
                None => assert_eq!(n, None, "{}", m.id),
                Some(w) => assert!(n.as_deref().is_some_and(|n| n.starts_with(w)), "{n:?}"),
            }
            if let Some(first) = failed.first() {
                assert!(detail.ends_with("said"), "{detail}");
                let _ = first;
            }
        }
    }

    #[test]
    fn selection_filters_then_shards() {
        let all: Vec<Mutant> = ["a1", "a2", "b1", "b2", "b3"]
            .iter()
            .map(|i| mutant(Part::Rust, i))
            .collect();
        let ids = |v: Vec<Mutant>| v.into_iter().map(|m| m.id).collect::<Vec<_>>().join(",");
        assert_eq!(ids(select(all.clone(), &[], (1, 1))), "a1,a2,b1,b2,b3");
        assert_eq!(ids(select(all.clone(), &["b".into()], (1, 1))), "b1,b2,b3");
        assert_eq!(ids(select(all.clone(), &[], (2, 2))), "a2,b2");
        assert_eq!(ids(select(all, &["rust b".into()], (1, 2))), "b1,b3");
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        for bad in ["0/4", "5/4", "x", "1/"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn equivalents_mark_and_stale_ones_are_named() {
        let list = EquivalentList::parse(
            "[[equivalent]]\nid = \"a1\"\nreason = \"only the speed\"\n[[equivalent]]\nid = \"gone\"\nreason = \"x\"\n",
        )
        .unwrap();
        let mut ms = vec![mutant(Part::Rust, "a1"), mutant(Part::Rust, "a2")];
        assert_eq!(list.mark(&mut ms), Err(vec!["gone".to_string()]));
        assert_eq!(ms[0].equivalent.as_deref(), Some("only the speed"));
        assert_eq!(ms[1].equivalent, None);
        assert!(EquivalentList::parse("[[equivalent]]\nid = \"a\"\nreason = \" \"\n").is_err());
    }
}
