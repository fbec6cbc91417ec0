//! The committed baseline of icount overheads and the regression check
//! against it (pure).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::figures::{Clock, ClockFigures};

/// The committed baseline: icount overheads per cell, mode and bench.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Always `icount`: wall figures are too noisy to gate on.
    pub clock: Option<Clock>,
    /// `alias/arch` → mode → bench → overhead (instructions per unlink).
    pub cells: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
}

/// One comparison against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub cell: String,
    pub mode: String,
    pub bench: String,
    pub baseline: f64,
    pub now: f64,
    /// Growth of the overhead in percent of the baseline's.
    pub growth_pct: f64,
    /// Past `--fail-above`.
    pub regressed: bool,
}

/// The baseline a run's icount figures make (pure).
pub fn baseline_of(cells: &[(String, &ClockFigures)]) -> Baseline {
    let mut b = Baseline {
        clock: Some(Clock::Icount),
        cells: BTreeMap::new(),
    };
    for (cell, f) in cells {
        let modes = b.cells.entry(cell.clone()).or_default();
        for m in &f.modes {
            for (bench, fig) in &m.benches {
                if let Some(o) = fig.overhead {
                    modes
                        .entry(m.mode.clone())
                        .or_default()
                        .insert(bench.clone(), o.median.round());
                }
            }
        }
    }
    b
}

/// Compares a run's icount overheads with the baseline's (pure): every
/// cell, mode and bench present in both.
pub fn compare(
    base: &Baseline,
    cells: &[(String, &ClockFigures)],
    fail_above: Option<f64>,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (cell, f) in cells {
        let Some(modes) = base.cells.get(cell) else {
            continue;
        };
        for m in &f.modes {
            let Some(benches) = modes.get(&m.mode) else {
                continue;
            };
            for (bench, fig) in &m.benches {
                let (Some(&was), Some(now)) = (benches.get(bench), fig.overhead) else {
                    continue;
                };
                let growth_pct = if was.abs() > f64::EPSILON {
                    (now.median - was) / was.abs() * 100.0
                } else {
                    0.0
                };
                out.push(Comparison {
                    cell: cell.clone(),
                    mode: m.mode.clone(),
                    bench: bench.clone(),
                    baseline: was,
                    now: now.median.round(),
                    growth_pct: (growth_pct * 10.0).round() / 10.0,
                    regressed: fail_above.is_some_and(|p| growth_pct > p),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overhead::figures::clock_with;

    #[test]
    fn regression_check() {
        let then = clock_with(&[("kprobe", 1000.0), ("fentry", 300.0)]);
        let base = baseline_of(&[("sid/x86_64".into(), &then)]);
        assert_eq!(base.cells["sid/x86_64"]["kprobe"]["create_unlink"], 1000.0);
        let now = clock_with(&[("kprobe", 1150.0), ("fentry", 303.0), ("printk", 9.0)]);
        let cells = [("sid/x86_64".to_string(), &now)];
        let c = compare(&base, &cells, Some(10.0));
        let got: Vec<(&str, f64, bool)> = c
            .iter()
            .map(|c| (c.mode.as_str(), c.growth_pct, c.regressed))
            .collect();
        // printk is not in the baseline: not compared.
        assert_eq!(got, vec![("kprobe", 15.0, true), ("fentry", 1.0, false)]);
        assert!(compare(&base, &cells, None).iter().all(|c| !c.regressed));
        let other = [("bookworm/arm64".to_string(), &now)];
        assert!(compare(&base, &other, Some(1.0)).is_empty());
    }
}
