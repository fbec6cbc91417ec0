//! Hand-written mutants: cargo-mutants cannot mutate C, so the project
//! keeps a table of BPF-C mutants (`mutants/bpf.toml`), at least one per
//! statement of `bpf/unlink.bpf.c` that writes a record field, applies a
//! filter or counts a loss. Each names the text it replaces (found exactly
//! once) and the verdicts that must catch it, or why nothing can. A table
//! may name a Rust file too (`--table`: the test suite's own two mutants);
//! its part follows the file.

use serde::Deserialize;

use super::{Edit, Mutant, Part};

/// The table, as committed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub mutant: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    /// The bug, in words.
    pub what: String,
    /// Relative to the repository root [default: bpf/unlink.bpf.c].
    #[serde(default = "default_file")]
    pub file: String,
    pub find: String,
    pub replace: String,
    /// The verdicts expected to catch it.
    #[serde(default)]
    pub caught_by: Vec<String>,
    /// Why no verdict can: the mutant cannot change what the tracer
    /// documents (say what would show it instead).
    #[serde(default)]
    pub equivalent: Option<String>,
}

fn default_file() -> String {
    "bpf/unlink.bpf.c".into()
}

/// The table's mutants against the current sources; `source` gives a
/// file's text. Err names every entry that does not apply: its text found
/// not exactly once, no expectation (or both kinds), a verdict the gate
/// does not have, an id used twice.
pub fn parse(
    text: &str,
    source: &dyn Fn(&str) -> Option<String>,
    verdicts: &[&str],
) -> Result<Vec<Mutant>, Vec<String>> {
    let table: Table = toml::from_str(text).map_err(|e| vec![format!("mutants/bpf.toml: {e}")])?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for e in table.mutant {
        let id = &e.id;
        if !ids.insert(id.clone()) {
            errors.push(format!("{id}: the id is used twice"));
        }
        match (e.caught_by.is_empty(), &e.equivalent) {
            (true, None) => errors.push(format!("{id}: says neither caught_by nor equivalent")),
            (false, Some(_)) => errors.push(format!("{id}: says both caught_by and equivalent")),
            _ => {}
        }
        for v in e
            .caught_by
            .iter()
            .filter(|v| !verdicts.contains(&v.as_str()))
        {
            errors.push(format!("{id}: `{v}` is not a verdict of the gate"));
        }
        let Some(src) = source(&e.file) else {
            errors.push(format!("{id}: cannot read {}", e.file));
            continue;
        };
        let found: Vec<usize> = src.match_indices(&e.find).map(|(i, _)| i).collect();
        if found.len() != 1 {
            errors.push(format!(
                "{id}: `{}` is in {} {} times, not once",
                e.find,
                e.file,
                found.len()
            ));
            continue;
        }
        if e.find == e.replace {
            errors.push(format!("{id}: the replacement changes nothing"));
        }
        out.push(Mutant {
            part: Part::of_file(&e.file),
            id: e.id,
            what: e.what,
            edit: Edit {
                file: e.file,
                start: found[0],
                end: found[0] + e.find.len(),
                replacement: e.replace,
            },
            caught_by: e.caught_by,
            equivalent: e.equivalent,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "if (a != b)\n\treturn 0;\ne->pid = id >> 32;\n";

    #[test]
    fn entries_apply_once_or_are_named() {
        let src = |f: &str| (f == "bpf/unlink.bpf.c").then(|| SRC.to_string());
        let good = r#"
[[mutant]]
id = "pid-is-tid"
what = "the pid field holds the thread id"
find = "e->pid = id >> 32;"
replace = "e->pid = (__u32)id;"
caught_by = ["fields"]

[[mutant]]
id = "speed-only"
what = "x"
find = "return 0;"
replace = "return  0;"
equivalent = "the same program"
"#;
        let ms = parse(good, &src, &["fields"]).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(
            ms[0].edit.apply(SRC).as_deref(),
            Some("if (a != b)\n\treturn 0;\ne->pid = (__u32)id;\n")
        );
        assert_eq!(ms[1].equivalent.as_deref(), Some("the same program"));

        let bad = r#"
[[mutant]]
id = "twice"
what = "x"
find = "id"
replace = "c"
caught_by = ["fields"]

[[mutant]]
id = "nothing"
what = "x"
find = "a != b"
replace = "a == b"

[[mutant]]
id = "nothing"
what = "x"
find = "a != b"
replace = "a == b"
caught_by = ["no-such"]
"#;
        let errs = parse(bad, &src, &["fields"]).unwrap_err();
        let want = [
            "twice: `id` is in bpf/unlink.bpf.c 2 times, not once",
            "nothing: says neither caught_by nor equivalent",
            "nothing: the id is used twice",
            "nothing: `no-such` is not a verdict of the gate",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e == w), "{w}: {errs:?}");
        }
    }
}

/// The committed table applies to the committed sources, every entry once.
#[cfg(test)]
#[test]
fn the_committed_table_applies() {
    let root = crate::paths::repo_root();
    let text = std::fs::read_to_string(root.join("mutants/bpf.toml")).expect("mutants/bpf.toml");
    let src = |f: &str| std::fs::read_to_string(root.join(f)).ok();
    let ms = parse(&text, &src, &crate::gate::VERDICTS).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(ms.len() >= 30, "{} mutants", ms.len());
    let hand = std::fs::read_to_string(root.join("mutants/hand.toml")).expect("mutants/hand.toml");
    let ms = parse(&hand, &src, &crate::gate::VERDICTS).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(!ms.is_empty());
}
