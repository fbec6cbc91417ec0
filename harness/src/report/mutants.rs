//! The mutation run's report: `mutants.json` (every mutant with its
//! outcome; read back by `harness mutants --from`) and `mutants.md` (the
//! counts per part, then what needs a person: every missed mutant with its
//! diff, timeouts, unviable ones, notes on the lists, then what caught the
//! rest).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::mutants::{counts, Judged, Outcome, Part};

/// What `mutants.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutantsReport {
    /// The cells the mutants ran on, in order, e.g. `bookworm/x86_64, sid/x86_64`.
    pub cell: String,
    /// Seconds the run took (joined runs: summed).
    pub wall_s: f64,
    /// The clean tracer's cell: seconds, and that it passed.
    pub baseline_s: f64,
    pub mutants: Vec<Judged>,
    /// Entries of the equivalent list that match no mutant any more.
    #[serde(default)]
    pub stale_equivalents: Vec<String>,
}

pub fn write(dir: &Path, r: &MutantsReport) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("mutants.json"), serde_json::to_vec_pretty(r)?)
        .context("writing mutants.json")?;
    std::fs::write(dir.join("mutants.md"), markdown(r)).context("writing mutants.md")?;
    Ok(())
}

pub fn read(dir: &Path) -> Result<MutantsReport> {
    let path = dir.join("mutants.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Joins runs (shards, or a run and its re-run of some mutants): a mutant
/// judged in a later run replaces its earlier outcome, unless that one is
/// not-run, or the earlier run caught it on another cell (the cells
/// escalate until one fails a mutant: caught on any is caught).
pub fn join(runs: Vec<MutantsReport>) -> Option<MutantsReport> {
    let mut it = runs.into_iter();
    let mut out = it.next()?;
    for r in it {
        out.wall_s += r.wall_s;
        for j in r.mutants {
            match out
                .mutants
                .iter_mut()
                .find(|o| o.mutant.part == j.mutant.part && o.mutant.id == j.mutant.id)
            {
                Some(o) if j.outcome != Outcome::NotRun && !caught_elsewhere(o, &j) => *o = j,
                Some(_) => {}
                None => out.mutants.push(j),
            }
        }
        for s in r.stale_equivalents {
            if !out.stale_equivalents.contains(&s) {
                out.stale_equivalents.push(s);
            }
        }
    }
    Some(out)
}

/// Whether `earlier` caught the mutant on another cell than the one where
/// `later` did not (pure).
fn caught_elsewhere(earlier: &Judged, later: &Judged) -> bool {
    matches!(earlier.outcome, Outcome::Caught { .. })
        && !matches!(later.outcome, Outcome::Caught { .. })
        && earlier.cell != later.cell
}

/// `caught 30 / 32 (94 %)`: what the README quotes, per part (pure).
pub fn figure(r: &MutantsReport, part: Part) -> String {
    let c = counts(&r.mutants);
    let n = |o: &str| c.get(&part).and_then(|m| m.get(o)).copied().unwrap_or(0);
    let judged = n("caught") + n("missed") + n("timeout");
    let pct = if judged == 0 {
        0.0
    } else {
        100.0 * (n("caught") + n("timeout")) as f64 / judged as f64
    };
    format!(
        "{} caught (+{} timeouts) of {judged} that build and can change the output ({pct:.0} %); {} no guest run can reach, caught by the unit tests; {} equivalent, {} unviable, {} not judged (the cell errored), {} not run",
        n("caught"),
        n("timeout"),
        n("unit"),
        n("equivalent"),
        n("unviable"),
        n("error"),
        n("not-run")
    )
}

pub fn markdown(r: &MutantsReport) -> String {
    let mut md = format!(
        "# Mutation testing on {}\n\nEach mutant is one bug planted in the tracer, built, and run through each cell's whole gate in turn until one fails it ({:.0} s for the clean tracer's cells); {:.0} min in all.\n\n",
        r.cell,
        r.baseline_s,
        r.wall_s / 60.0
    );
    let c = counts(&r.mutants);
    md.push_str("| part |");
    for o in Outcome::NAMES {
        md.push_str(&format!(" {o} |"));
    }
    md.push_str(" total |\n|---|");
    for _ in Outcome::NAMES {
        md.push_str("---:|");
    }
    md.push_str("---:|\n");
    for part in Part::ALL {
        let Some(m) = c.get(&part) else { continue };
        md.push_str(&format!("| {} |", part.name()));
        for o in Outcome::NAMES {
            md.push_str(&format!(" {} |", m.get(o).copied().unwrap_or(0)));
        }
        md.push_str(&format!(" {} |\n", m.values().sum::<usize>()));
    }
    for part in Part::ALL {
        if c.contains_key(&part) {
            md.push_str(&format!("\n{}: {}\n", part.name(), figure(r, part)));
        }
    }
    let section = |md: &mut String, title: &str, pick: &dyn Fn(&Judged) -> bool, diff: bool| {
        let v: Vec<&Judged> = r.mutants.iter().filter(|j| pick(j)).collect();
        if v.is_empty() {
            return;
        }
        md.push_str(&format!("\n## {title} ({})\n\n", v.len()));
        for j in v {
            md.push_str(&format!("- **{}** {}", j.mutant.key(), j.mutant.what));
            if !j.detail.is_empty() {
                md.push_str(&format!(": {}", first_line(&j.detail)));
            }
            md.push('\n');
            if diff {
                md.push_str(&format!("\n```diff\n{}```\n\n", j.diff));
            }
        }
    };
    section(
        &mut md,
        "Missed: the gate passed with the bug in",
        &|j| j.outcome == Outcome::Missed,
        true,
    );
    section(
        &mut md,
        "Unit: no guest run reaches it; the unit tests fail it",
        &|j| matches!(j.outcome, Outcome::Unit { .. }),
        true,
    );
    section(&mut md, "Timeout", &|j| j.outcome == Outcome::Timeout, true);
    section(
        &mut md,
        "Error: the cell could not run the gate (rerun with --only)",
        &|j| j.outcome == Outcome::Error,
        false,
    );
    section(
        &mut md,
        "Unviable: did not build",
        &|j| matches!(j.outcome, Outcome::Unviable { .. }),
        false,
    );
    let notes: Vec<&Judged> = r.mutants.iter().filter(|j| j.note.is_some()).collect();
    if !notes.is_empty() || !r.stale_equivalents.is_empty() {
        md.push_str("\n## For the lists\n\n");
        for j in notes {
            md.push_str(&format!(
                "- **{}**: {}\n",
                j.mutant.key(),
                j.note.as_deref().unwrap_or_default()
            ));
        }
        for s in &r.stale_equivalents {
            md.push_str(&format!(
                "- `{s}` in mutants/equivalent.toml matches no mutant: remove or update it\n"
            ));
        }
    }
    section(
        &mut md,
        "Equivalent (listed, and not caught)",
        &|j| j.outcome == Outcome::Equivalent,
        false,
    );
    let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &r.mutants {
        if let Outcome::Caught { verdicts } = &j.outcome {
            for v in verdicts {
                *by_verdict.entry(v).or_default() += 1;
            }
        }
    }
    if !by_verdict.is_empty() {
        md.push_str("\n## What caught them\n\n| verdict | mutants it failed on |\n|---|---:|\n");
        let mut v: Vec<_> = by_verdict.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (name, n) in v {
            md.push_str(&format!("| {name} | {n} |\n"));
        }
        md.push_str("\n| mutant | caught by | on |\n|---|---|---|\n");
        for j in &r.mutants {
            if let Outcome::Caught { verdicts } = &j.outcome {
                md.push_str(&format!(
                    "| {} | {} | {} |\n",
                    j.mutant.key().replace('|', "\\|"),
                    verdicts.join(", "),
                    j.cell
                ));
            }
        }
    }
    md
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or_default();
    match l.char_indices().nth(300) {
        Some((i, _)) => &l[..i],
        None => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutants::test_judged as judged;

    fn run(mutants: Vec<Judged>) -> MutantsReport {
        MutantsReport {
            cell: "bookworm/x86_64".into(),
            wall_s: 1.0,
            baseline_s: 1.0,
            mutants,
            stale_equivalents: Vec::new(),
        }
    }

    /// A later run's outcome wins, except that a mutant caught on one
    /// cell stays caught when a rerun on another cell passes it.
    #[test]
    fn a_join_keeps_a_catch_from_another_cell() {
        let caught = || Outcome::Caught {
            verdicts: vec!["storm".into()],
        };
        let joined = join(vec![
            run(vec![
                judged("a", "bookworm/x86_64", caught()),
                judged("b", "bookworm/x86_64", Outcome::Missed),
                judged("c", "bookworm/x86_64", caught()),
                judged("d", "bookworm/x86_64", Outcome::Missed),
            ]),
            run(vec![
                judged("a", "sid/x86_64", Outcome::Missed),
                judged("b", "sid/x86_64", caught()),
                judged("c", "bookworm/x86_64", Outcome::Missed),
                judged("d", "bookworm/x86_64", Outcome::NotRun),
            ]),
        ])
        .expect("joined");
        let by = |id: &str| {
            joined
                .mutants
                .iter()
                .find(|j| j.mutant.id == id)
                .map(|j| j.outcome.name())
        };
        assert_eq!(by("a"), Some("caught"), "caught on bookworm, passed on sid");
        assert_eq!(by("b"), Some("caught"), "passed on bookworm, caught on sid");
        assert_eq!(by("c"), Some("missed"), "a rerun on the same cell decides");
        assert_eq!(by("d"), Some("missed"), "not-run replaces nothing");
        assert_eq!(joined.wall_s, 2.0);
    }
}
