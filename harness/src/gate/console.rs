//! The `console` verdict of a gate cell: the kernel splats its boot printed
//! ([`boot::Splat`]) against the splats its manifest entry declares
//! ([`KnownSplat`]). An undeclared splat fails the cell; so does a
//! declaration whose splat no longer appears (a declaration never outlives
//! its bug). Pure.

use crate::kernels::manifest::KnownSplat;
use crate::model::{ScenarioResult, Status};
use crate::vm::boot::Splat;

/// The verdict's name in the gate table.
pub const VERDICT: &str = "console";

/// At most this many distinct undeclared splats are quoted (the console
/// log has them all).
const QUOTED: usize = 10;

/// The first declaration covering a splat (its pattern is in the line).
pub fn covering<'a>(splat: &Splat, declared: &'a [KnownSplat]) -> Option<&'a KnownSplat> {
    declared.iter().find(|k| splat.line.contains(&k.pattern))
}

/// The distinct splats no declaration covers, first seen first.
pub fn undeclared<'a>(splats: &'a [Splat], declared: &[KnownSplat]) -> Vec<&'a Splat> {
    let mut distinct = std::collections::HashSet::new();
    splats
        .iter()
        .filter(|s| covering(s, declared).is_none() && distinct.insert((s.kind, &s.line)))
        .collect()
}

/// What the undeclared splats are, one `KIND on the console: `LINE``
/// each (None when there is none).
pub fn undeclared_detail(splats: &[Splat], declared: &[KnownSplat]) -> Option<String> {
    let seen = undeclared(splats, declared);
    if seen.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = seen
        .iter()
        .take(QUOTED)
        .map(|s| format!("{} on the console: `{}`", s.kind, s.line))
        .collect();
    if seen.len() > QUOTED {
        parts.push(format!(
            "and {} more distinct splat lines (see console.log)",
            seen.len() - QUOTED
        ));
    }
    Some(parts.join("; "))
}

/// The `console` verdict of a cell whose console printed `lines` lines.
/// `declared` are the kernel's declarations for the cell's arch.
pub fn console_verdict(splats: &[Splat], declared: &[KnownSplat], lines: usize) -> ScenarioResult {
    let mut problems: Vec<String> = undeclared_detail(splats, declared).into_iter().collect();
    let (seen, gone): (Vec<&KnownSplat>, Vec<&KnownSplat>) = declared
        .iter()
        .partition(|k| splats.iter().any(|s| s.line.contains(&k.pattern)));
    problems.extend(gone.iter().map(|k| {
        format!(
            "declared splat `{}` ({}) no longer appears: remove it from vm-images/kernels.toml",
            k.pattern, k.reason
        )
    }));
    let (status, detail) = if !problems.is_empty() {
        (Status::Fail, problems.join("; "))
    } else if seen.is_empty() {
        (
            Status::Pass,
            format!("no kernel splat in {lines} console lines"),
        )
    } else {
        let declared: Vec<String> = seen
            .iter()
            .map(|k| format!("`{}` ({})", k.pattern, k.reason))
            .collect();
        (
            Status::Pass,
            format!(
                "no undeclared kernel splat in {lines} console lines; declared: {}",
                declared.join(", ")
            ),
        )
    };
    ScenarioResult::new(VERDICT, status, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splat(kind: &'static str, line: &str) -> Splat {
        Splat {
            kind,
            line: line.into(),
        }
    }

    fn known(pattern: &str, reason: &str) -> KnownSplat {
        KnownSplat {
            pattern: pattern.into(),
            arch: None,
            reason: reason.into(),
        }
    }

    const WARN: &str = "WARNING: CPU: 1 PID: 7 at kernel/foo.c:12 bar+0x1/0x2";
    const KASAN: &str = "BUG: KASAN: slab-use-after-free in baz+0x10/0x20";

    #[test]
    fn verdicts() {
        let bug = known("at kernel/foo.c", "Debian bug #1: foo warns");
        let gone = known("at fs/gone.c", "Debian bug #2: fixed upstream");
        let cases: Vec<(Vec<Splat>, Vec<KnownSplat>, Status, String)> = vec![
            (
                vec![],
                vec![],
                Status::Pass,
                "no kernel splat in 100 console lines".into(),
            ),
            (
                vec![splat("WARN splat", WARN)],
                vec![],
                Status::Fail,
                format!("WARN splat on the console: `{WARN}`"),
            ),
            // Every distinct one, first seen first; repeats once.
            (
                vec![
                    splat("KASAN report", KASAN),
                    splat("WARN splat", WARN),
                    splat("KASAN report", KASAN),
                ],
                vec![],
                Status::Fail,
                format!(
                    "KASAN report on the console: `{KASAN}`; WARN splat on the console: `{WARN}`"
                ),
            ),
            // Declared and seen (twice).
            (
                vec![splat("WARN splat", WARN), splat("WARN splat", WARN)],
                vec![bug.clone()],
                Status::Pass,
                "no undeclared kernel splat in 100 console lines; declared: `at kernel/foo.c` (Debian bug #1: foo warns)".into(),
            ),
            // Declared, and another one beside it.
            (
                vec![splat("WARN splat", WARN), splat("KASAN report", KASAN)],
                vec![bug.clone()],
                Status::Fail,
                format!("KASAN report on the console: `{KASAN}`"),
            ),
            // Declared but gone.
            (
                vec![],
                vec![gone.clone()],
                Status::Fail,
                "declared splat `at fs/gone.c` (Debian bug #2: fixed upstream) no longer appears: remove it from vm-images/kernels.toml".into(),
            ),
            // One declaration seen, one gone.
            (
                vec![splat("WARN splat", WARN)],
                vec![bug.clone(), gone.clone()],
                Status::Fail,
                "declared splat `at fs/gone.c` (Debian bug #2: fixed upstream) no longer appears: remove it from vm-images/kernels.toml".into(),
            ),
            // Undeclared and gone: both said, the splat first.
            (
                vec![splat("KASAN report", KASAN)],
                vec![gone.clone()],
                Status::Fail,
                format!("KASAN report on the console: `{KASAN}`; declared splat `at fs/gone.c` (Debian bug #2: fixed upstream) no longer appears: remove it from vm-images/kernels.toml"),
            ),
        ];
        for (splats, declared, status, detail) in cases {
            let v = console_verdict(&splats, &declared, 100);
            assert_eq!(v.name, "console");
            assert_eq!((v.status, v.detail.as_str()), (status, detail.as_str()));
        }
    }

    #[test]
    fn a_flood_is_quoted_in_part() {
        let splats: Vec<Splat> = (0..13)
            .map(|i| {
                splat(
                    "WARN splat",
                    &format!("WARNING: CPU: 0 PID: {i} at x.c:1 f"),
                )
            })
            .collect();
        let v = console_verdict(&splats, &[], 500);
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.detail.matches("WARN splat on the console").count(), 10);
        assert!(v
            .detail
            .starts_with("WARN splat on the console: `WARNING: CPU: 0 PID: 0 at"));
        assert!(v
            .detail
            .ends_with("; and 3 more distinct splat lines (see console.log)"));
    }

    #[test]
    fn declarations_are_matched_each_on_its_own() {
        let a = known("kernel/foo.c", "a");
        let b = known("foo.c", "b");
        let s = splat("WARN splat", WARN);
        assert_eq!(covering(&s, &[a.clone(), b.clone()]), Some(&a));
        let v = console_verdict(&[s], &[a, b], 1);
        assert_eq!(v.status, Status::Pass, "{}", v.detail);
        assert!(
            v.detail
                .ends_with("declared: `kernel/foo.c` (a), `foo.c` (b)"),
            "{}",
            v.detail
        );
    }
}
