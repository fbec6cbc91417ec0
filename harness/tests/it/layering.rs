//! The harness's module layering (ARCHITECTURE.md), file by file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The harness's layering (ARCHITECTURE.md): the crate modules each
/// top-level module of `harness/src` may use. `model` is the leaf; `gate`,
/// `overhead` and `report` never use the engine; nothing uses `cli` (the
/// binary: `main.rs` and `cli/`, which may use anything).
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("paths", &[]),
    ("process", &[]),
    ("cache", &["paths"]),
    ("kernels", &["model", "paths", "process", "cache"]),
    ("vm", &["model", "paths", "process"]),
    ("images", &["model", "paths", "process", "cache", "kernels"]),
    ("gate", &["model", "paths", "kernels", "vm"]),
    ("overhead", &["model", "kernels"]),
    ("mutants", &["model", "paths", "gate"]),
    ("report", &["model", "overhead", "mutants"]),
    (
        "engine",
        &[
            "model", "paths", "process", "cache", "kernels", "vm", "images", "gate", "overhead",
        ],
    ),
    (
        "host",
        &[
            "model", "paths", "process", "cache", "kernels", "vm", "images",
        ],
    ),
];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The crate modules one source file uses, with the line of each use:
/// `crate::NAME` and `super::` chains that leave the file's top-level
/// module, resolved from the file's module path (`gate/check.rs` is
/// `gate::check`; a trailing `mod tests` block is one level deeper).
fn crate_uses(module: &[String], text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut in_tests = false;
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with("mod tests {") {
            in_tests = true;
        }
        let code = raw.split("//").next().unwrap_or("");
        let mut path: Vec<String> = module.to_vec();
        if in_tests {
            path.push("tests".into());
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let boundary = at == 0
                || !rest[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if boundary && !name.is_empty() {
                out.push((i + 1, name, raw.trim().to_string()));
            }
            rest = after;
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let mut after = &rest[at..];
            let mut up = 0;
            while let Some(r) = after.strip_prefix("super::") {
                up += 1;
                after = r;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if up >= path.len() && !name.is_empty() && name != "*" {
                out.push((i + 1, name, raw.trim().to_string()));
            }
            rest = after;
        }
    }
    out
}

/// The layering holds: no file uses a module its top-level module may not
/// (model none at all), the table itself has no cycle, and every
/// top-level module is in it.
#[test]
fn the_module_layering_holds() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = |top: &str| LAYERS.iter().find(|(m, _)| *m == top).map(|(_, a)| *a);
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).expect("under src");
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let top = module[0].as_str();
        // The binary (main.rs, cli/) may use anything; lib.rs is the root.
        if matches!(top, "main" | "cli" | "lib") {
            continue;
        }
        let Some(may) = allowed(top) else {
            broken.push(format!(
                "harness/src/{}: top-level module `{top}` is not in LAYERS (tests/it/main.rs): place it in the layering",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, used, code) in crate_uses(&module, &text) {
            if used != top && !may.contains(&used.as_str()) {
                broken.push(format!(
                    "harness/src/{}:{line}: {top} -> {used} is a forbidden edge ({top} may use: {}): `{code}`",
                    rel.display(),
                    if may.is_empty() { "nothing".to_string() } else { may.join(", ") }
                ));
            }
        }
    }
    // No cycle: each module's allowed set only names modules listed before it.
    for (i, (m, may)) in LAYERS.iter().enumerate() {
        for dep in *may {
            assert!(
                LAYERS[..i].iter().any(|(d, _)| d == dep),
                "LAYERS: {m} may use {dep}, which is not below it (a cycle, or an unknown module)"
            );
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The sibling files one file of a folder uses (pure): `super::NAME`,
/// alone or in a `super::{…}` group (each entry's first segment), and
/// `crate::FOLDER::NAME`, where NAME is one of `siblings`. Its tests
/// (`#[cfg(test)]` on) are left out: their `super` is the file itself.
fn sibling_uses(folder: &str, siblings: &[String], text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    let within = format!("crate::{folder}::");
    for (at, _) in code
        .match_indices("super::")
        .chain(code.match_indices(&within))
    {
        let start = at
            + if code[at..].starts_with("super::") {
                7
            } else {
                within.len()
            };
        let after = &code[start..];
        if after.starts_with("super::") {
            continue; // two levels up: not a sibling
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut entry = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(ident(&entry));
                        entry.clear();
                        continue;
                    }
                    _ => {}
                }
                entry.push(c);
            }
            names.push(ident(&entry));
        } else {
            names.push(ident(after));
        }
    }
    names.into_iter().filter(|n| siblings.contains(n)).collect()
}

/// A cycle in `edges` (file -> files it uses), as the files around it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn sibling_uses_read_groups_and_paths() {
    let siblings: Vec<String> = ["cell", "guest", "check"].map(String::from).to_vec();
    let text = "use super::failure::X;\nuse super::{\n    check::{boot, Checked},\n    guest::Y, // super::cell::Z in a comment\n    CellSpec,\n};\nlet a = crate::engine::cell::f();\nuse super::super::model::Q;\n#[cfg(test)]\nmod tests { use super::cell::T; }\n";
    let got: Vec<String> = sibling_uses("engine", &siblings, text)
        .into_iter()
        .collect();
    assert_eq!(got, ["cell", "check", "guest"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(cycle(&edges), None);
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        cycle(&edges),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}

/// No import circle between the files of one folder (the binary's `cli/`
/// included): each file's sibling uses, as a graph, have no cycle.
#[test]
fn no_folder_has_an_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut circles = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src").flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let folder = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("folder")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("mod.rs"))
            .collect();
        let siblings: Vec<String> = files
            .iter()
            .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
            .collect();
        let mut edges = BTreeMap::new();
        for (file, name) in files.iter().zip(&siblings) {
            let text = std::fs::read_to_string(file).expect("readable source");
            let mut uses = sibling_uses(&folder, &siblings, &text);
            uses.remove(name);
            edges.insert(name.clone(), uses);
        }
        if let Some(c) = cycle(&edges) {
            circles.push(format!("harness/src/{folder}/: {}", c.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}
