//! Baseline statistics: exponentially weighted moments of per-window counts, the seasonal
//! (hour of day × day type) table, and count tail probabilities from statrs.
//!
//! Counts are modelled as Poisson when their variance does not exceed their mean and as
//! negative binomial (mean μ, variance σ² > μ: r = μ²/(σ²−μ), p = r/(r+μ)) otherwise, with
//! a configurable overdispersion floor so a handful of quiet learning windows does not make
//! an ordinary busy hour look impossible.

use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

use crate::detect::sigma::Level;

pub const US_PER_HOUR: i64 = 3_600_000_000;
pub const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// Seasonal bucket of an instant: hour of day, weekdays 0–23, weekends 24–47.
pub fn bucket(t: i64) -> usize {
    let day = t.div_euclid(US_PER_DAY);
    let hour = (t.rem_euclid(US_PER_DAY) / US_PER_HOUR) as usize;
    if is_weekend(day) { 24 + hour } else { hour }
}

/// 0 = Monday (1970-01-01 was a Thursday).
pub fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

pub fn is_weekend(day: i64) -> bool {
    weekday(day) >= 5
}

pub fn bucket_name(b: usize) -> String {
    format!(
        "{} {:02}:00-{:02}:00",
        if b >= 24 { "weekend" } else { "weekday" },
        b % 24,
        b % 24 + 1
    )
}

/// Exponentially weighted mean and variance of per-window counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ew {
    pub mean: f32,
    pub var: f32,
    /// Windows learned (saturating).
    pub n: u16,
}

/// The weight of the newest window once a baseline has enough history.
pub const ALPHA_MIN: f64 = 0.1;

impl Ew {
    pub fn add(&mut self, x: f64) {
        self.n = self.n.saturating_add(1);
        let a = (1.0 / self.n as f64).max(ALPHA_MIN);
        let d = x - self.mean as f64;
        let mean = self.mean as f64 + a * d;
        let var = (1.0 - a) * (self.var as f64 + a * d * d);
        self.mean = mean as f32;
        self.var = var as f32;
    }

    /// `k` windows without any event.
    pub fn add_zeros(&mut self, k: u64) {
        for _ in 0..k.min(64) {
            self.add(0.0);
        }
    }

    pub fn model(&self, dispersion: f64) -> Model {
        Model::new(self.mean as f64, self.var as f64, dispersion)
    }
}

/// A non-negative value in 16 bits on a log scale (relative error < 0.04 %).
fn pack(x: f64) -> u16 {
    ((x.max(0.0) + 1.0).log2() * 2048.0)
        .round()
        .min(u16::MAX as f64) as u16
}

fn unpack(c: u16) -> f64 {
    (c as f64 / 2048.0).exp2() - 1.0
}

/// Per-bucket moments of window counts: 48 buckets, 5 bytes each.
#[derive(Debug, Clone, PartialEq)]
pub struct Seasonal {
    pub mean: [u16; 48],
    pub sd: [u16; 48],
    pub n: [u8; 48],
}

impl Default for Seasonal {
    fn default() -> Self {
        Seasonal {
            mean: [0; 48],
            sd: [0; 48],
            n: [0; 48],
        }
    }
}

/// What the seasonal table predicts for a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub mean: f64,
    pub var: f64,
    pub samples: u8,
    /// The bucket had too few windows: the busiest learned bucket stands in.
    pub fallback: Option<usize>,
}

impl Seasonal {
    pub fn learn(&mut self, b: usize, x: f64) {
        let n = self.n[b].saturating_add(1);
        let a = (1.0 / n as f64).max(ALPHA_MIN * 1.5);
        let (m, sd) = (unpack(self.mean[b]), unpack(self.sd[b]));
        let d = x - m;
        let mean = m + a * d;
        let var = (1.0 - a) * (sd * sd + a * d * d);
        self.mean[b] = pack(mean);
        self.sd[b] = pack(var.sqrt());
        self.n[b] = n;
    }

    pub fn predict(&self, b: usize, min_samples: u16) -> Option<Prediction> {
        let own = |b: usize| Prediction {
            mean: unpack(self.mean[b]),
            var: unpack(self.sd[b]).powi(2),
            samples: self.n[b],
            fallback: None,
        };
        if self.n[b] as u16 >= min_samples {
            return Some(own(b));
        }
        let busiest = (0..48)
            .filter(|&i| self.n[i] > 0)
            .max_by_key(|&i| (self.mean[i], std::cmp::Reverse(i)))?;
        Some(Prediction {
            fallback: Some(busiest),
            ..own(busiest)
        })
    }
}

/// A count distribution fitted to a mean and variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub mean: f64,
    pub var: f64,
}

impl Model {
    pub fn new(mean: f64, var: f64, dispersion: f64) -> Model {
        let mean = mean.max(0.05);
        let var = var.max(mean + (dispersion * mean).powi(2)).max(mean);
        Model { mean, var }
    }

    fn nb(&self) -> Option<NegativeBinomial> {
        if self.var <= self.mean * 1.000_001 {
            return None;
        }
        let r = self.mean * self.mean / (self.var - self.mean);
        NegativeBinomial::new(r, r / (r + self.mean)).ok()
    }

    /// P(X ≥ x).
    pub fn sf_ge(&self, x: u64) -> f64 {
        if x == 0 {
            return 1.0;
        }
        let p = match self.nb() {
            Some(nb) => nb.sf(x - 1),
            None => Poisson::new(self.mean).map_or(0.0, |p| p.sf(x - 1)),
        };
        p.clamp(0.0, 1.0)
    }

    /// P(X ≤ x).
    pub fn cdf_le(&self, x: u64) -> f64 {
        let p = match self.nb() {
            Some(nb) => nb.cdf(x),
            None => Poisson::new(self.mean).map_or(1.0, |p| p.cdf(x)),
        };
        p.clamp(0.0, 1.0)
    }

    /// The smallest count whose upper tail P(X ≥ x) is at most `p`.
    pub fn threshold(&self, p: f64) -> u64 {
        let mut lo = self.mean.floor() as u64;
        let mut hi = (self.mean.ceil() as u64).max(1) * 2 + 2;
        while self.sf_ge(hi) > p {
            lo = hi;
            hi = hi.saturating_mul(2);
            if hi > 1 << 40 {
                return u64::MAX;
            }
        }
        // invariant: sf_ge(hi) ≤ p, answer in (lo, hi]
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.sf_ge(mid) <= p {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        if self.sf_ge(lo) <= p { lo } else { hi }
    }

    /// The q-quantile (smallest x with P(X ≤ x) ≥ q).
    pub fn quantile(&self, q: f64) -> u64 {
        let mut x = self.mean.floor() as u64;
        while x > 0 && self.cdf_le(x - 1) >= q {
            x -= 1;
        }
        while self.cdf_le(x) < q && x < 1 << 40 {
            x += 1 + x / 64;
        }
        x
    }

    pub fn name(&self) -> String {
        match self.nb() {
            Some(nb) => format!("negative_binomial(r={:.3}, p={:.4})", nb.r(), nb.p()),
            None => format!("poisson(lambda={:.3})", self.mean),
        }
    }
}

/// −log10 of a probability (capped at 300).
pub fn score_of(p: f64) -> f64 {
    if p <= 0.0 {
        300.0
    } else {
        (-p.log10()).min(300.0)
    }
}

/// Maps a weighted score to a severity.
pub fn severity(score: f64, cfg: &super::config::SeverityCfg) -> Level {
    if score >= cfg.critical {
        Level::Critical
    } else if score >= cfg.high {
        Level::High
    } else if score >= cfg.medium {
        Level::Medium
    } else {
        Level::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_is_close() {
        for x in [0.0, 0.5, 1.0, 3.3, 42.0, 1234.5, 1e6] {
            let y = unpack(pack(x));
            assert!((y - x).abs() <= 1e-3 + x * 5e-4, "{x} -> {y}");
        }
    }

    #[test]
    fn threshold_matches_tail() {
        for (m, v) in [(0.2, 0.2), (3.0, 3.0), (20.0, 80.0), (150.0, 400.0)] {
            let md = Model::new(m, v, 0.0);
            for p in [1e-3, 1e-6, 1e-9] {
                let t = md.threshold(p);
                assert!(md.sf_ge(t) <= p, "{m} {v} {p} {t}");
                assert!(t == 0 || md.sf_ge(t - 1) > p, "{m} {v} {p} {t}");
            }
        }
    }

    #[test]
    fn poisson_and_nb_tails() {
        let p = Model::new(2.0, 2.0, 0.0);
        assert!((p.sf_ge(1) - (1.0 - (-2f64).exp())).abs() < 1e-9);
        let nb = Model::new(10.0, 50.0, 0.0);
        assert!(nb.sf_ge(40) > Model::new(10.0, 10.0, 0.0).sf_ge(40));
        assert_eq!(Model::new(10.0, 10.0, 0.0).quantile(0.5), 10);
    }

    #[test]
    fn seasonal_learns_and_falls_back() {
        let mut s = Seasonal::default();
        for _ in 0..5 {
            s.learn(14, 40.0);
            s.learn(3, 4.0);
        }
        let p = s.predict(14, 2).unwrap();
        assert!((p.mean - 40.0).abs() < 0.1 && p.fallback.is_none());
        let q = s.predict(20, 2).unwrap();
        assert_eq!(q.fallback, Some(14));
        assert_eq!(bucket(0), 0); // Thursday 00:00
        assert_eq!(bucket(2 * US_PER_DAY + 5 * US_PER_HOUR), 29); // Saturday 05:00
    }
}
