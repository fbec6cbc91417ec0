//! The Rust mutants, as `cargo mutants --list --json` generates them over
//! the tracer and the schema (honouring `.cargo/mutants.toml`): each
//! becomes a [`Mutant`] whose edit replaces its span with its replacement.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Edit, Mutant, Part};

/// `cargo mutants` arguments that list the tracer's mutants as JSON (pure).
pub fn list_args() -> Vec<String> {
    [
        "mutants",
        "--list",
        "--json",
        "--package",
        "unlink-tracer",
        "--package",
        "unlink-schema",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Debug, Deserialize)]
struct Listed {
    file: String,
    name: String,
    replacement: String,
    span: Span,
}

#[derive(Debug, Deserialize)]
struct Span {
    start: LineColumn,
    end: LineColumn,
}

/// 1-based line, 1-based column in characters (proc-macro2's column + 1).
#[derive(Debug, Deserialize)]
struct LineColumn {
    line: usize,
    column: usize,
}

/// The byte offset of a 1-based (line, column) in `text`.
fn offset(text: &str, at: &LineColumn) -> Option<usize> {
    let line_start = if at.line == 1 {
        0
    } else {
        text.match_indices('\n').nth(at.line - 2)?.0 + 1
    };
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    if at.column == line.chars().count() + 1 {
        return Some(line_start + line.len());
    }
    line.char_indices()
        .nth(at.column.checked_sub(1)?)
        .map(|(i, _)| line_start + i)
}

/// `tracer/src/a.rs:12:5: replace x with y` → `tracer/src/a.rs: replace x with y`.
fn stable_id(name: &str) -> String {
    let mut parts = name.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(l), Some(c), Some(rest))
            if l.chars().all(|ch| ch.is_ascii_digit())
                && c.chars().all(|ch| ch.is_ascii_digit()) =>
        {
            format!("{file}:{rest}")
        }
        _ => name.to_string(),
    }
}

/// The mutants of `cargo mutants --list --json` output; `source` gives a
/// file's text (relative path). Err: the JSON, or a span that is not in
/// its file.
pub fn parse_list(
    json: &str,
    source: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Mutant>, String> {
    let listed: Vec<Listed> =
        serde_json::from_str(json).map_err(|e| format!("cargo mutants --list --json: {e}"))?;
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for l in listed {
        if !texts.contains_key(&l.file) {
            let t = source(&l.file).ok_or_else(|| format!("{}: cannot read it", l.file))?;
            texts.insert(l.file.clone(), t);
        }
        let text = &texts[&l.file];
        let (start, end) = match (offset(text, &l.span.start), offset(text, &l.span.end)) {
            (Some(s), Some(e)) if s <= e => (s, e),
            _ => return Err(format!("{}: its span is not in {}", l.name, l.file)),
        };
        let base = stable_id(&l.name);
        let n = seen.entry(base.clone()).or_default();
        *n += 1;
        let id = if *n == 1 {
            base
        } else {
            format!("{base} #{n}")
        };
        out.push(Mutant {
            part: Part::Rust,
            what: l
                .name
                .split_once(": ")
                .map_or(l.name.clone(), |x| x.1.to_string()),
            id,
            edit: Edit {
                file: l.file,
                start,
                end,
                replacement: l.replacement,
            },
            caught_by: Vec::new(),
            equivalent: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "fn f(x: u32) -> bool {\n    x == 1 // é\n}\nfn g() -> u32 {\n    7\n}\n";

    fn listed() -> String {
        serde_json::json!([
            {"file": "t/src/a.rs", "name": "t/src/a.rs:2:7: replace == with != in f",
             "replacement": "!=", "genre": "BinaryOperator", "package": "t",
             "span": {"start": {"line": 2, "column": 7}, "end": {"line": 2, "column": 9}}},
            {"file": "t/src/a.rs", "name": "t/src/a.rs:5:5: replace g -> u32 with 0",
             "replacement": "0", "genre": "FnValue", "package": "t",
             "span": {"start": {"line": 5, "column": 5}, "end": {"line": 5, "column": 6}}},
            {"file": "t/src/a.rs", "name": "t/src/a.rs:5:5: replace g -> u32 with 0",
             "replacement": "0", "genre": "FnValue", "package": "t",
             "span": {"start": {"line": 5, "column": 5}, "end": {"line": 5, "column": 6}}}
        ])
        .to_string()
    }

    #[test]
    fn listed_mutants_become_edits() {
        let src = |f: &str| (f == "t/src/a.rs").then(|| SOURCE.to_string());
        let ms = parse_list(&listed(), &src).unwrap();
        let ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "t/src/a.rs: replace == with != in f",
                "t/src/a.rs: replace g -> u32 with 0",
                "t/src/a.rs: replace g -> u32 with 0 #2"
            ]
        );
        assert_eq!(
            ms[0].edit.apply(SOURCE).as_deref(),
            Some("fn f(x: u32) -> bool {\n    x != 1 // é\n}\nfn g() -> u32 {\n    7\n}\n")
        );
        assert_eq!(
            ms[1].edit.apply(SOURCE).as_deref(),
            Some("fn f(x: u32) -> bool {\n    x == 1 // é\n}\nfn g() -> u32 {\n    0\n}\n")
        );
        assert_eq!(ms[0].what, "replace == with != in f");
        let missing = |_: &str| None;
        assert!(parse_list(&listed(), &missing).is_err());
        let short = |_: &str| Some("fn f() {}\n".to_string());
        assert!(parse_list(&listed(), &short)
            .unwrap_err()
            .contains("its span is not in"));
    }

    #[test]
    fn offsets_count_characters() {
        let at = |line, column| LineColumn { line, column };
        let t = "é=1\nab\n";
        assert_eq!(offset(t, &at(1, 1)), Some(0));
        assert_eq!(offset(t, &at(1, 2)), Some(2));
        assert_eq!(offset(t, &at(1, 4)), Some(4));
        assert_eq!(offset(t, &at(2, 2)), Some(6));
        assert_eq!(offset(t, &at(3, 5)), None);
        assert_eq!(stable_id("a.rs:1:2: x: y"), "a.rs: x: y");
        assert_eq!(stable_id("odd name"), "odd name");
    }
}
