//! The statistics of a mode's figure: criterion's raw samples per round,
//! pooled into the median of the round means with a 95 % bootstrap
//! interval (pure, deterministic).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::model::figures::Estimate;

/// One round of one bench: criterion's samples, each a number of
/// iterations and the time (or instructions) they took together.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RoundSamples {
    pub iters: Vec<f64>,
    pub times: Vec<f64>,
}

impl RoundSamples {
    /// The round's mean cost per iteration: everything it took over every
    /// iteration it made (pure). A consumer that works in bursts (a
    /// printing probe wakes every so many events) lands in some samples
    /// and not others; only the total spreads its cost over every unlink.
    pub fn mean(&self) -> f64 {
        self.times.iter().sum::<f64>() / self.iters.iter().sum::<f64>()
    }

    pub fn calls(&self) -> u64 {
        self.iters.iter().sum::<f64>() as u64
    }
}

/// Bootstrap resamples behind each confidence interval.
const RESAMPLES: usize = 2000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The cost per unlink over `rounds` (pure, deterministic): the median of
/// the round means, so one disturbed round cannot move it, and a 95 %
/// percentile-bootstrap interval of that median, each resample drawing
/// every round's samples with replacement (within the round).
pub fn estimate(rounds: &[RoundSamples]) -> Option<Estimate> {
    let rounds: Vec<&RoundSamples> = rounds.iter().filter(|r| !r.iters.is_empty()).collect();
    if rounds.is_empty() {
        return None;
    }
    let mut means: Vec<f64> = rounds.iter().map(|r| r.mean()).collect();
    let point = median(&mut means);
    let mut rng = fastrand::Rng::with_seed(0x756e_6c69_6e6b);
    let mut boot = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        means.clear();
        for r in &rounds {
            let (mut t, mut i) = (0.0, 0.0);
            for _ in 0..r.iters.len() {
                let k = rng.usize(..r.iters.len());
                t += r.times[k];
                i += r.iters[k];
            }
            means.push(t / i);
        }
        boot.push(median(&mut means));
    }
    boot.sort_by(f64::total_cmp);
    let at = |q: f64| boot[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some(Estimate {
        median: point,
        lo: at(0.025).min(point),
        hi: at(0.975).max(point),
        n: rounds.iter().map(|r| r.iters.len()).sum(),
    })
}

/// criterion's `sample.json` of one bench run.
pub fn read_samples(path: &Path) -> Result<RoundSamples> {
    let s: RoundSamples = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("no {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    check_samples(s)
}

fn check_samples(s: RoundSamples) -> Result<RoundSamples> {
    anyhow::ensure!(
        s.iters.len() == s.times.len() && !s.iters.is_empty(),
        "criterion samples: {} iteration counts for {} times",
        s.iters.len(),
        s.times.len()
    );
    anyhow::ensure!(
        s.iters.iter().all(|&i| i >= 1.0),
        "criterion samples: an iteration count below 1"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(iters: &[f64], times: &[f64]) -> RoundSamples {
        RoundSamples {
            iters: iters.to_vec(),
            times: times.to_vec(),
        }
    }

    #[test]
    fn round_means_count_every_iteration() {
        // A burst in one sample of three: the mean carries it, spread over
        // all 40 iterations.
        let r = samples(&[10.0, 10.0, 20.0], &[1000.0, 3000.0, 2000.0]);
        assert_eq!(r.mean(), 150.0);
        assert_eq!(r.calls(), 40);
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate(&[]), None);
        // Identical samples: no spread, the interval is the point.
        let flat = samples(&[10.0, 20.0], &[1000.0, 2000.0]);
        let e = estimate(&[flat.clone(), flat.clone(), flat.clone()]).expect("some");
        assert_eq!((e.median, e.lo, e.hi, e.n), (100.0, 100.0, 100.0, 6));
        // The median of the round means: one disturbed round (its consumer
        // starved, or a stall) does not move the figure.
        let r = |m: f64| samples(&[10.0, 20.0, 30.0], &[10.0 * m, 20.0 * m, 30.0 * m]);
        let e = estimate(&[r(100.0), r(50.0), r(101.0)]).expect("some");
        assert_eq!(e.median, 100.0);
        // Two rounds: the mean of their means.
        let e = estimate(&[r(100.0), r(102.0)]).expect("some");
        assert_eq!(e.median, 101.0);
        // Spread within rounds widens the interval around the point, and
        // the bootstrap is deterministic.
        let noisy = samples(&[10.0, 10.0, 10.0, 10.0], &[900.0, 1100.0, 950.0, 1050.0]);
        let e = estimate(&[noisy.clone(), noisy.clone(), noisy.clone()]).expect("some");
        assert_eq!(e.median, 100.0);
        assert!(
            e.lo < 100.0 && e.lo >= 90.0 && e.hi > 100.0 && e.hi <= 110.0,
            "{e:?}"
        );
        assert_eq!(Some(e), estimate(&[noisy.clone(), noisy.clone(), noisy]));
        let d = e.minus(&Estimate {
            median: 10.0,
            lo: 9.0,
            hi: 11.0,
            n: 20,
        });
        assert_eq!(
            (d.median, d.lo, d.hi, d.n),
            (90.0, e.lo - 11.0, e.hi - 9.0, 12)
        );
    }

    #[test]
    fn criterion_samples() {
        let ok = check_samples(samples(&[10.0, 20.0], &[1000.0, 3000.0])).expect("valid");
        assert_eq!(ok.calls(), 30);
        let bad = [
            (vec![], vec![]),
            (vec![1.0], vec![1.0, 2.0]),
            (vec![0.0], vec![5.0]),
        ];
        for (iters, times) in bad {
            assert!(check_samples(RoundSamples { iters, times }).is_err());
        }
    }
}
