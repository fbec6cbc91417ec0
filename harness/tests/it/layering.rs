//! The harness's module layering (ARCHITECTURE.md), file by file.

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
