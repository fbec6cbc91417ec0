//! Stage 7, report: `matrix.json` (one object per cell), `summary.md` (a
//! kernel × arch grid, then one row per cell) and `junit.xml` (one testcase
//! per cell and scenario) in the report directory.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::model::{Arch, CellResult, ScenarioResult, Status};

#[derive(Debug, Serialize)]
struct MatrixJson<'a> {
    accel_reason: &'a str,
    wall_s: f64,
    cells: &'a [CellResult],
}

pub fn status_mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅ pass",
        Status::Fail => "❌ fail",
        Status::Timeout => "⏱️ timeout",
        Status::Error => "⚠️ error",
        Status::ExpectedLimitation => "➖ expected limitation",
        Status::Interrupted => "⏹️ interrupted",
    }
}

fn opt_s(x: Option<f64>) -> String {
    x.map(|b| format!("{b:.1}")).unwrap_or_else(|| "-".into())
}

/// Kernel aliases in the order the cells came, each once.
fn aliases(cells: &[CellResult]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in cells {
        if !out.contains(&c.alias.as_str()) {
            out.push(&c.alias);
        }
    }
    out
}

/// The markdown summary: a kernel × arch grid, one row per cell, failures.
pub fn summary_md(cells: &[CellResult], accel_reason: &str, wall_s: f64) -> String {
    let passed = cells.iter().filter(|c| c.status == Status::Pass).count();
    let mut s = String::from("# Kernel matrix\n\n");
    s.push_str(&format!(
        "{passed}/{} cells pass, wall time {wall_s:.1} s; accel: {accel_reason}\n\n",
        cells.len()
    ));
    let arches: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|a| cells.iter().any(|c| c.arch == *a))
        .collect();
    s.push_str("| kernel |");
    for a in &arches {
        s.push_str(&format!(" {a} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(arches.len()));
    s.push('\n');
    for alias in aliases(cells) {
        s.push_str(&format!("| {alias} |"));
        for a in &arches {
            match cells.iter().find(|c| c.alias == alias && c.arch == *a) {
                Some(c) => {
                    let mark = if c.status == Status::Pass {
                        "✅"
                    } else {
                        "❌"
                    };
                    s.push_str(&format!(" {mark} {:.0} s |", c.total_s));
                }
                None => s.push_str(" |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\n## Cells\n\n");
    s.push_str("| kernel | arch | package | version | symbol | ret | status | boot s | run s | total s |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for c in cells {
        s.push_str(&format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            c.alias,
            c.release.as_deref().unwrap_or("?"),
            c.arch,
            c.kernel_package.as_deref().unwrap_or("?"),
            c.kernel.as_deref().unwrap_or("?"),
            c.symbol.as_deref().unwrap_or("-"),
            c.ret_width_bits
                .map(|b| format!("s{b}"))
                .unwrap_or_else(|| "-".into()),
            status_mark(c.status),
            opt_s(c.boot_s),
            opt_s(c.run_s),
            c.total_s
        ));
    }
    s.push_str(&gate_table(cells));
    s.push_str(&time_table(cells));
    let limited: Vec<(&CellResult, &ScenarioResult)> = cells
        .iter()
        .flat_map(|c| c.scenarios.iter().map(move |sc| (c, sc)))
        .filter(|(_, sc)| sc.status == Status::ExpectedLimitation)
        .collect();
    if !limited.is_empty() {
        s.push_str("\n## Expected limitations\n\n");
        for (c, sc) in limited {
            s.push_str(&format!(
                "- **{}/{}** {}: {}\n",
                c.alias, c.arch, sc.name, sc.detail
            ));
        }
    }
    s.push_str(&failures_md(cells));
    s
}

/// The command that boots a failed cell again with its agent running the
/// scenarios behind its failed verdicts (every scenario when a verdict
/// across them, or the boot, failed), for a person to watch (pure).
pub fn reproduce(c: &CellResult) -> String {
    use unlink_schema::{Scenario, SCENARIO_SPECS};
    let failed: Vec<&str> = c
        .scenarios
        .iter()
        .filter(|s| !s.status.is_ok())
        .map(|s| s.name.as_str())
        .collect();
    let mut scenarios: Vec<Scenario> = SCENARIO_SPECS
        .iter()
        .filter(|s| s.verdicts.iter().any(|v| failed.contains(v)))
        .map(|s| s.scenario)
        .collect();
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    let out = unlink_schema::protocol::GUEST_OUT;
    let cell = if c.alias == "custom" {
        format!("custom/{} --kernel-image PATH", c.arch)
    } else {
        format!("{}/{}", c.alias, c.arch)
    };
    let mut cmd = format!(
        "cargo harness run {cell} -- unlink-guest run --tracer {out}/bin/unlink-tracer --out {out}"
    );
    for s in scenarios {
        cmd.push_str(&format!(" --scenario {s}"));
    }
    cmd
}

/// A `## Failures` section listing every cell that did not pass, each
/// with the command that reproduces it (empty when all passed).
pub fn failures_md(cells: &[CellResult]) -> String {
    let mut s = String::new();
    let failing: Vec<&CellResult> = cells.iter().filter(|c| c.status != Status::Pass).collect();
    if !failing.is_empty() {
        s.push_str("\n## Failures\n\n");
        for c in failing {
            s.push_str(&format!(
                "- **{}/{}** ({}): {}\n  reproduce: `{}`\n",
                c.alias,
                c.arch,
                status_mark(c.status),
                c.error.as_deref().unwrap_or("see scenarios"),
                reproduce(c)
            ));
        }
    }
    s
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅",
        Status::ExpectedLimitation => "➖",
        Status::Timeout => "⏱️",
        Status::Interrupted => "⏹️",
        Status::Fail | Status::Error => "❌",
    }
}

/// The regression gate at a glance: a row per cell, a column per verdict
/// (✅ pass, ➖ expected limitation, ❌ fail), then the load figures.
/// `--repeat`: each cell's passes over the runs, and the first error of
/// each failed run, so flakiness is a number.
pub fn repeat_md(runs: &[Vec<CellResult>], walls: &[f64]) -> String {
    let mut ids: Vec<(String, Arch)> = Vec::new();
    for c in runs.iter().flatten() {
        if !ids.contains(&(c.alias.clone(), c.arch)) {
            ids.push((c.alias.clone(), c.arch));
        }
    }
    let mut s = format!(
        "# Pass rate over {} runs\n\n| cell | passed | rate | failures |\n|---|---:|---:|---|\n",
        runs.len()
    );
    let (mut total, mut passed_all) = (0, 0);
    for (alias, arch) in &ids {
        let rows: Vec<(usize, &CellResult)> = runs
            .iter()
            .enumerate()
            .filter_map(|(k, r)| {
                r.iter()
                    .find(|c| &c.alias == alias && c.arch == *arch)
                    .map(|c| (k + 1, c))
            })
            .collect();
        let passed = rows
            .iter()
            .filter(|(_, c)| c.status == Status::Pass)
            .count();
        total += rows.len();
        passed_all += passed;
        let failures: Vec<String> = rows
            .iter()
            .filter(|(_, c)| c.status != Status::Pass)
            .map(|(k, c)| {
                format!(
                    "run {k}: {:?}: {}",
                    c.status,
                    c.error
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .take(160)
                        .collect::<String>()
                )
            })
            .collect();
        s.push_str(&format!(
            "| {alias}/{arch} | {passed}/{} | {:.0} % | {} |\n",
            rows.len(),
            100.0 * passed as f64 / rows.len().max(1) as f64,
            failures.join("<br>")
        ));
    }
    s.push_str(&format!("\n{passed_all} of {total} cell runs passed.\n"));
    s.push_str(&time_per_run(runs, walls));
    s
}

/// Each run's wall time and its cells' spread: the figures a timing claim
/// is rerun with (`--repeat N`).
fn time_per_run(runs: &[Vec<CellResult>], walls: &[f64]) -> String {
    let mut s = String::from(
        "\n## Time per run\n\n| run | wall s | cells | cell s (min-max) | slowest cell |\n|---:|---:|---:|---|---|\n",
    );
    for (k, (cells, wall)) in runs.iter().zip(walls).enumerate() {
        let slowest = cells.iter().max_by(|a, b| a.total_s.total_cmp(&b.total_s));
        let fastest = cells
            .iter()
            .map(|c| c.total_s)
            .fold(f64::INFINITY, f64::min);
        s.push_str(&format!(
            "| {} | {wall:.1} | {} | {} | {} |\n",
            k + 1,
            cells.len(),
            slowest.map_or("-".to_string(), |c| format!(
                "{fastest:.1}-{:.1}",
                c.total_s
            )),
            slowest.map_or("-".to_string(), |c| format!("{}/{}", c.alias, c.arch)),
        ));
    }
    s
}

/// Where the cells' time went: each phase summed over cells, and each
/// scenario's share (attach + workload + stop), so the next slowdown shows
/// the day it lands.
pub fn time_table(cells: &[CellResult]) -> String {
    let total: f64 = cells.iter().map(|c| c.total_s).sum();
    if total <= 0.0 || cells.iter().all(|c| c.timeline.is_empty()) {
        return String::new();
    }
    let mut kinds: Vec<(String, f64)> = Vec::new();
    let mut scenarios: Vec<(String, f64)> = Vec::new();
    let add = |v: &mut Vec<(String, f64)>, k: &str, s: f64| match v.iter_mut().find(|(n, _)| n == k)
    {
        Some((_, t)) => *t += s,
        None => v.push((k.to_string(), s)),
    };
    for c in cells {
        for span in &c.timeline {
            add(&mut kinds, span.kind(), span.s);
            if let Some((sc, _)) = span.scenario() {
                add(&mut scenarios, sc, span.s);
            }
        }
    }
    let mut s = format!(
        "\n## Where the time went\n\nSummed over {} cells ({total:.1} s of cell time; cells run side by side, so this is more than the wall time):\n\n| phase | s | share |\n|---|---:|---:|\n",
        cells.len()
    );
    for (k, t) in &kinds {
        s.push_str(&format!("| {k} | {t:.1} | {:.0} % |\n", 100.0 * t / total));
    }
    if !scenarios.is_empty() {
        s.push_str("\n| scenario (attach + workload + stop) | s | share |\n|---|---:|---:|\n");
        for (k, t) in &scenarios {
            s.push_str(&format!("| {k} | {t:.1} | {:.0} % |\n", 100.0 * t / total));
        }
    }
    s
}

pub fn gate_table(cells: &[CellResult]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for c in cells {
        for sc in &c.scenarios {
            if !names.contains(&sc.name.as_str()) {
                names.push(&sc.name);
            }
        }
    }
    if names.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n## Gate\n\n| cell |");
    for n in &names {
        s.push_str(&format!(" {n} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(names.len()));
    s.push('\n');
    for c in cells {
        s.push_str(&format!("| {}/{} |", c.alias, c.arch));
        for n in &names {
            let m = c
                .scenarios
                .iter()
                .find(|sc| sc.name == *n)
                .map(|sc| mark(sc.status))
                .unwrap_or("");
            s.push_str(&format!(" {m} |"));
        }
        s.push('\n');
    }
    let loads: Vec<String> = cells
        .iter()
        .flat_map(|c| {
            c.scenarios
                .iter()
                // Every load scenario, as its record says.
                .filter(|sc| {
                    unlink_schema::Scenario::parse(&sc.name).is_ok_and(|s| s.spec().load.is_some())
                })
                .map(move |sc| format!("- {}/{} {}: {}\n", c.alias, c.arch, sc.name, sc.detail))
        })
        .collect();
    if !loads.is_empty() {
        s.push_str("\nLoad scenarios (drops and missed returns are exact counts):\n\n");
        s.extend(loads);
    }
    s
}

/// A GitHub Actions error annotation for a cell that did not pass (one
/// line: newlines and `%` escaped as the runner expects).
pub fn github_annotation(c: &CellResult) -> String {
    let esc = |t: &str| {
        t.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    format!(
        "::error title={}/{} {}::{} (reproduce: {})",
        c.alias,
        c.arch,
        esc(status_mark(c.status)),
        esc(c.error.as_deref().unwrap_or("see the report")),
        esc(&reproduce(c))
    )
}

/// junit.xml: a testsuite per cell, a testcase per scenario; a cell that
/// never reached its scenarios is one failing `boot` testcase.
pub fn junit(cells: &[CellResult]) -> Result<String> {
    let mut report = Report::new("unlink-harness matrix");
    for c in cells {
        let mut suite = TestSuite::new(format!("{}/{}", c.alias, c.arch));
        suite.set_time(Duration::from_secs_f64(c.total_s.max(0.0)));
        let class = format!("{}.{}", c.alias, c.arch);
        if c.scenarios.is_empty() {
            let mut status = match c.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                Status::Interrupted => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_type("interrupted");
                    s
                }
                _ => TestCaseStatus::non_success(NonSuccessKind::Failure),
            };
            if let Some(e) = &c.error {
                status.set_message(e.as_str());
            }
            let mut case = TestCase::new("boot", status);
            case.set_classname(class.as_str());
            if c.status != Status::Pass {
                case.set_system_err(format!("reproduce: {}", reproduce(c)));
            }
            case.set_time(Duration::from_secs_f64(c.total_s.max(0.0)));
            suite.add_test_case(case);
        }
        for sc in &c.scenarios {
            let mut status = match sc.status {
                Status::Pass => TestCaseStatus::success(),
                Status::ExpectedLimitation => TestCaseStatus::skipped(),
                Status::Error | Status::Interrupted => {
                    TestCaseStatus::non_success(NonSuccessKind::Error)
                }
                Status::Fail | Status::Timeout => {
                    TestCaseStatus::non_success(NonSuccessKind::Failure)
                }
            };
            if sc.status != Status::Pass {
                status.set_message(sc.detail.as_str());
            }
            let mut case = TestCase::new(sc.name.as_str(), status);
            case.set_classname(class.as_str());
            if sc.status == Status::Pass {
                case.set_system_out(sc.detail.as_str());
            } else if !sc.status.is_ok() {
                case.set_system_err(format!("reproduce: {}", reproduce(c)));
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().context("serialising junit.xml")
}

pub fn write(dir: &Path, cells: &[CellResult], accel_reason: &str, wall_s: f64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(&MatrixJson {
        accel_reason,
        wall_s,
        cells,
    })?;
    std::fs::write(dir.join("matrix.json"), json).context("writing matrix.json")?;
    std::fs::write(
        dir.join("summary.md"),
        summary_md(cells, accel_reason, wall_s),
    )
    .context("writing summary.md")?;
    std::fs::write(dir.join("junit.xml"), junit(cells)?).context("writing junit.xml")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(alias: &str, arch: Arch, status: Status, scenarios: &[(&str, Status)]) -> CellResult {
        CellResult {
            scenarios: scenarios
                .iter()
                .map(|(n, s)| ScenarioResult::new(*n, *s, format!("{n} detail <&>")))
                .collect(),
            ..crate::model::test_cell(alias, arch, status)
        }
    }

    fn sample() -> Vec<CellResult> {
        vec![
            cell(
                "bookworm",
                Arch::X86_64,
                Status::Pass,
                &[("tutorial", Status::Pass)],
            ),
            cell(
                "bookworm",
                Arch::Arm64,
                Status::Pass,
                &[
                    ("tutorial", Status::Pass),
                    ("fentry", Status::ExpectedLimitation),
                ],
            ),
            cell("sid", Arch::X86_64, Status::Timeout, &[]),
        ]
    }

    #[test]
    fn summary_grid_marks_each_cell() {
        let md = summary_md(&sample(), "requested", 42.0);
        assert!(md.contains("2/3 cells pass"), "{md}");
        assert!(md.contains("| kernel | x86_64 | arm64 |"), "{md}");
        assert!(md.contains("| bookworm | ✅ 16 s | ✅ 16 s |"), "{md}");
        assert!(md.contains("| sid | ❌ 16 s | |"), "{md}");
        assert!(md.contains("## Expected limitations"), "{md}");
        assert!(md.contains("| cell | tutorial | fentry |"), "{md}");
        assert!(md.contains("| bookworm/arm64 | ✅ | ➖ |"), "{md}");
        assert!(
            md.contains("- **sid/x86_64** (⏱️ timeout): it broke"),
            "{md}"
        );
    }

    #[test]
    fn annotations_are_one_line() {
        let mut c = cell("sid", Arch::Arm64, Status::Fail, &[]);
        c.error = Some("50% broke\nbadly".into());
        let a = github_annotation(&c);
        assert!(
            a.starts_with("::error title=sid/arm64 ❌ fail::50%25 broke%0Abadly (reproduce: "),
            "{a}"
        );
        assert!(!a.contains('\n'), "{a}");
    }

    /// A failed cell's reproduce command reruns the scenarios behind its
    /// failed verdicts (every one for a boot or a verdict across them).
    #[test]
    fn failed_cells_say_how_to_reproduce_them() {
        use crate::model::test_cell;
        let with = |failed: &[&str]| {
            let mut c = test_cell("sid", Arch::Arm64, Status::Fail);
            c.scenarios = ["storm", "pid-filter", "console"]
                .iter()
                .map(|n| {
                    let st = if failed.contains(n) {
                        Status::Fail
                    } else {
                        Status::Pass
                    };
                    ScenarioResult::new(*n, st, "")
                })
                .collect();
            reproduce(&c)
        };
        let base = "cargo harness run sid/arm64 -- unlink-guest run --tracer /run/unlink-out/bin/unlink-tracer --out /run/unlink-out";
        assert_eq!(with(&["storm"]), format!("{base} --scenario storm"));
        assert_eq!(
            with(&["storm", "pid-filter"]),
            format!("{base} --scenario storm --scenario options")
        );
        let all: String = unlink_schema::Scenario::ALL
            .iter()
            .map(|s| format!(" --scenario {s}"))
            .collect();
        assert_eq!(with(&["console"]), format!("{base}{all}"));
        let mut custom = test_cell("custom", Arch::X86_64, Status::Error);
        custom.scenarios.clear();
        assert!(reproduce(&custom)
            .starts_with("cargo harness run custom/x86_64 --kernel-image PATH -- "));
        let md = failures_md(&[custom.clone()]);
        assert!(
            md.contains("reproduce: `cargo harness run custom/x86_64"),
            "{md}"
        );
        assert!(github_annotation(&custom).contains("(reproduce: cargo harness run"));
        assert!(junit(&[custom])
            .unwrap()
            .contains("reproduce: cargo harness run"));
    }

    #[test]
    fn junit_has_a_case_per_scenario() {
        let xml = junit(&sample()).unwrap();
        let back = Report::deserialize_from_str(&xml).unwrap();
        let suites: Vec<_> = back.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(suites, ["bookworm/x86_64", "bookworm/arm64", "sid/x86_64"]);
        let counts: Vec<usize> = back
            .test_suites
            .iter()
            .map(|s| s.test_cases.len())
            .collect();
        assert_eq!(counts, [1, 2, 1]);
        assert_eq!(back.test_suites[1].test_cases[1].name.as_str(), "fentry");
        assert!(matches!(
            back.test_suites[1].test_cases[1].status,
            TestCaseStatus::Skipped { .. }
        ));
        assert_eq!(back.test_suites[2].test_cases[0].name.as_str(), "boot");
        assert!(xml.contains("&lt;&amp;&gt;"), "{xml}");
    }

    #[test]
    fn the_time_table_sums_phases_and_scenarios_over_cells() {
        use crate::model::{test_cell, Span};
        let mut a = test_cell("bookworm", Arch::X86_64, Status::Pass);
        let mut b = test_cell("sid", Arch::Arm64, Status::Pass);
        a.total_s = 10.0;
        b.total_s = 30.0;
        a.timeline = vec![
            Span::new("fetch", 1.0),
            Span::new("storm attach", 1.0),
            Span::new("storm workload", 4.0),
            Span::new("agent other", 0.5),
        ];
        b.timeline = vec![
            Span::new("fetch", 2.0),
            Span::new("storm workload", 20.0),
            Span::new("checks", 0.25),
        ];
        let t = time_table(&[a, b]);
        for want in [
            "Summed over 2 cells (40.0 s of cell time",
            "| fetch | 3.0 | 8 % |",
            "| attach | 1.0 | 2 % |",
            "| workload | 24.0 | 60 % |",
            "| agent other | 0.5 | 1 % |",
            "| checks | 0.2 | 1 % |",
            "| storm | 25.0 | 62 % |",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        assert!(!t.contains("| agent |"), "{t}");
        assert_eq!(
            time_table(&[test_cell("x", Arch::X86_64, Status::Pass)]),
            ""
        );
    }

    #[test]
    fn repeat_rates_count_each_cell_over_the_runs() {
        use crate::model::test_cell;
        let pass = |a: &str| test_cell(a, Arch::X86_64, Status::Pass);
        let run1 = vec![pass("bookworm"), pass("sid")];
        let mut stalled = test_cell("sid", Arch::X86_64, Status::Fail);
        stalled.error =
            Some("RCU stall in the guest: rcu: INFO: rcu_preempt detected stalls".into());
        let run2 = vec![pass("bookworm"), stalled];
        let t = repeat_md(&[run1, run2], &[20.25, 31.0]);
        assert!(t.contains("| bookworm/x86_64 | 2/2 | 100 % |  |"), "{t}");
        assert!(
            t.contains("| sid/x86_64 | 1/2 | 50 % | run 2: Fail: RCU stall in the guest"),
            "{t}"
        );
        assert!(t.contains("3 of 4 cell runs passed."), "{t}");
        assert!(t.contains("| 2 | 31.0 | 2 | "), "{t}");
        assert!(t.contains("| 1 | 20.2 | 2 | "), "{t}");
    }
}
