//! Drift detection, pure: the live distribution of every model feature and of the predicted
//! probability over a rolling window, compared with the training reference stored in the
//! model artifact ([`dtwin_ml::TrainingReference`]).
//!
//! Each live value is binned once, at [`DriftMonitor::observe`], with the reference's own edges
//! (a byte per value), and per-bin counts are kept up to date as values enter and leave the
//! window: O(features) per scored vector, memory `window x (features + 1)` bytes plus the
//! counts. [`DriftMonitor::status`] turns the counts into a [`DriftStatus`]:
//!
//! - **KS** ([`ks_binned`]): the largest gap between the live and the reference CDF, evaluated
//!   at the reference's bin edges, over the non-missing values. 0 = same, 1 = disjoint. Binning
//!   can only hide gaps inside a bin, so this is a lower bound of the exact two-sample KS.
//! - **JS** ([`js_divergence`]): the Jensen-Shannon divergence of the two histograms, with
//!   missing values as one more bin, **in bits (log base 2)**: 0 for identical histograms, 1 for
//!   histograms with no bin in common (ln 2 = 0.693 in nats).
//!
//! A distribution drifts when KS > `ks_threshold` or JS > `js_threshold`. Too few values in
//! the window (`min_samples`) is `warming_up`; a model without reference, `no_reference`.

use dtwin_ml::{Binned, TrainingReference};
use dtwin_schema::{DriftScore, DriftState, DriftStatus, ModelRef, DRIFT_SCHEMA};
use time::OffsetDateTime;

/// Scored vectors the rolling window keeps (across all machines of the service).
pub const DEFAULT_WINDOW: usize = 2000;
/// Vectors needed in the window before scores are computed.
pub const DEFAULT_MIN_SAMPLES: usize = 500;
/// KS statistic above which a distribution counts as drifted.
pub const DEFAULT_KS_THRESHOLD: f64 = 0.3;
/// JS divergence (bits) above which a distribution counts as drifted.
pub const DEFAULT_JS_THRESHOLD: f64 = 0.2;
/// Scores listed in a status (the worst ones).
pub const TOP_SCORES: usize = 10;

/// How drift is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftConfig {
    /// Scored vectors in the rolling window (at least 1).
    pub window: usize,
    /// Vectors needed before a verdict (`warming_up` below).
    pub min_samples: usize,
    /// KS threshold (0..1).
    pub ks_threshold: f64,
    /// JS threshold in bits (0..1).
    pub js_threshold: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
            ks_threshold: DEFAULT_KS_THRESHOLD,
            js_threshold: DEFAULT_JS_THRESHOLD,
        }
    }
}

/// KS statistic of two histograms over the same bins (counts or shares; each is normalised):
/// the largest absolute difference of their cumulative shares. 0 when both are empty, 1 when
/// only one is.
pub fn ks_binned(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    match (sp > 0.0, sq > 0.0) {
        (false, false) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        (true, true) => {}
    }
    let (mut cp, mut cq, mut worst) = (0.0, 0.0, 0.0f64);
    for (a, b) in p.iter().zip(q) {
        cp += a / sp;
        cq += b / sq;
        worst = worst.max((cp - cq).abs());
    }
    worst.min(1.0)
}

/// Jensen-Shannon divergence in bits (log base 2) of two histograms over the same bins
/// (counts or shares; each is normalised): 0 for identical, 1 for disjoint histograms. An empty
/// histogram is as far from a non-empty one as can be (1).
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    match (sp > 0.0, sq > 0.0) {
        (false, false) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        (true, true) => {}
    }
    // x log2(x / m), with 0 log 0 = 0; m > 0 wherever x > 0.
    let term = |x: f64, m: f64| if x > 0.0 { x * (x / m).log2() } else { 0.0 };
    let js: f64 = p
        .iter()
        .zip(q)
        .map(|(a, b)| {
            let (a, b) = (a / sp, b / sq);
            let m = 0.5 * (a + b);
            0.5 * term(a, m) + 0.5 * term(b, m)
        })
        .sum();
    js.clamp(0.0, 1.0)
}

/// A byte that marks a missing value in the window (bins are fewer than 64).
const MISSING: u8 = u8::MAX;

/// The rolling window and its per-bin counts, for one model's reference.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    reference: Option<TrainingReference>,
    config: DriftConfig,
    /// Distributions tracked: every feature, then the probability.
    dims: usize,
    /// `window x dims` bin indices, oldest overwritten first.
    ring: Vec<u8>,
    /// Rows in the window.
    len: usize,
    /// Next row to write.
    head: usize,
    /// Per distribution: count per bin, then the missing count.
    counts: Vec<Vec<u32>>,
}

impl DriftMonitor {
    /// A monitor for a model's `reference` (`None`: the model has none).
    pub fn new(reference: Option<TrainingReference>, config: DriftConfig) -> Self {
        let config = DriftConfig {
            window: config.window.max(1),
            ..config
        };
        let hists: Vec<&Binned> = reference
            .iter()
            .flat_map(|r| r.features.iter().chain(std::iter::once(&r.risk)))
            .collect();
        let counts: Vec<Vec<u32>> = hists.iter().map(|b| vec![0; b.bins() + 1]).collect();
        let dims = counts.len();
        Self {
            ring: vec![0; if dims == 0 { 0 } else { config.window * dims }],
            reference,
            config,
            dims,
            len: 0,
            head: 0,
            counts,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// Vectors in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds one scored vector (`row` in the model's feature order) and its probability,
    /// dropping the oldest when the window is full. Does nothing without a reference.
    pub fn observe(&mut self, row: &[f32], probability: f64) {
        let Some(reference) = &self.reference else {
            return;
        };
        let start = self.head * self.dims;
        let slot = &mut self.ring[start..start + self.dims];
        if self.len == self.config.window {
            for (d, &bin) in slot.iter().enumerate() {
                let i = if bin == MISSING {
                    self.counts[d].len() - 1
                } else {
                    usize::from(bin)
                };
                self.counts[d][i] -= 1;
            }
        } else {
            self.len += 1;
        }
        let values = reference
            .features
            .iter()
            .enumerate()
            .map(|(i, b)| (b, row.get(i).map_or(f64::NAN, |&v| f64::from(v))))
            .chain(std::iter::once((&reference.risk, probability)));
        for (d, (b, v)) in values.enumerate() {
            let (byte, i) = match b.bin_of(v) {
                // Reference bins are fewer than MAX_REFERENCE_BINS (64), so this fits a byte.
                Some(bin) => (u8::try_from(bin).unwrap_or(MISSING - 1), bin),
                None => (MISSING, self.counts[d].len() - 1),
            };
            slot[d] = byte;
            self.counts[d][i] += 1;
        }
        self.head = (self.head + 1) % self.config.window;
    }

    /// Empties the window (e.g. after the model, and so the reference, changed).
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        for c in &mut self.counts {
            c.fill(0);
        }
    }

    /// How far distribution `d` (a feature index, or the feature count for the probability)
    /// is from the reference.
    fn score(&self, d: usize, reference: &Binned) -> DriftScore {
        let counts = &self.counts[d];
        let bins = counts.len() - 1;
        let live: Vec<f64> = counts.iter().map(|&c| f64::from(c)).collect();
        let ks = ks_binned(&live[..bins], &reference.proportions);
        let present = 1.0 - reference.missing;
        let expected: Vec<f64> = reference
            .proportions
            .iter()
            .map(|p| p * present)
            .chain(std::iter::once(reference.missing))
            .collect();
        let js = js_divergence(&live, &expected);
        let missing = live[bins] / (self.len.max(1) as f64);
        let round = |x: f64| (x * 1e4).round() / 1e4;
        DriftScore {
            feature: reference.name.clone(),
            ks: round(ks),
            js: round(js),
            missing: round(missing),
            drift: ks > self.config.ks_threshold || js > self.config.js_threshold,
        }
    }

    /// The drift status now, as `service` publishes it.
    pub fn status(&self, service: &str, model: ModelRef, now: OffsetDateTime) -> DriftStatus {
        let mut status = DriftStatus {
            schema: DRIFT_SCHEMA.to_owned(),
            service: service.to_owned(),
            ts: now,
            model,
            state: DriftState::NoReference,
            window: self.len as u64,
            ks_threshold: self.config.ks_threshold,
            js_threshold: self.config.js_threshold,
            drifted: Vec::new(),
            risk: None,
            features: Vec::new(),
        };
        let Some(reference) = &self.reference else {
            return status;
        };
        if self.len < self.config.min_samples.max(1) {
            status.state = DriftState::WarmingUp;
            return status;
        }
        let mut scores: Vec<DriftScore> = reference
            .features
            .iter()
            .enumerate()
            .map(|(d, b)| self.score(d, b))
            .collect();
        let risk = self.score(reference.features.len(), &reference.risk);
        // Worst first: by KS, then JS.
        scores.sort_by(|a, b| b.ks.total_cmp(&a.ks).then(b.js.total_cmp(&a.js)));
        let mut drifted: Vec<&DriftScore> = scores.iter().filter(|s| s.drift).collect();
        if risk.drift {
            drifted.push(&risk);
            drifted.sort_by(|a, b| b.ks.total_cmp(&a.ks).then(b.js.total_cmp(&a.js)));
        }
        status.drifted = drifted.iter().map(|s| s.feature.clone()).collect();
        status.state = if status.drifted.is_empty() {
            DriftState::Ok
        } else {
            DriftState::Drift
        };
        scores.truncate(TOP_SCORES);
        status.features = scores;
        status.risk = Some(risk);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ks_by_hand() {
        // CDFs (0.5, 1) vs (0.25, 1): gap 0.25 after the first bin.
        assert!(close(ks_binned(&[0.5, 0.5], &[0.25, 0.75]), 0.25));
        // Counts are normalised: 2 of 4 vs 1 of 4.
        assert!(close(ks_binned(&[2.0, 2.0], &[1.0, 3.0]), 0.25));
        // Three bins: CDFs (0.2, 0.7, 1) and (0.5, 0.6, 1): gaps 0.3, 0.1.
        assert!(close(ks_binned(&[0.2, 0.5, 0.3], &[0.5, 0.1, 0.4]), 0.3));
        assert!(close(ks_binned(&[1.0, 0.0], &[0.0, 1.0]), 1.0));
        assert_eq!(ks_binned(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(ks_binned(&[0.0, 0.0], &[0.3, 0.7]), 1.0);
    }

    #[test]
    fn js_by_hand_in_bits() {
        assert_eq!(js_divergence(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        // Disjoint: 1 bit (ln 2 nats).
        assert!(close(js_divergence(&[1.0, 0.0], &[0.0, 1.0]), 1.0));
        assert!(close(
            js_divergence(&[0.5, 0.5, 0.0, 0.0], &[0.0, 0.0, 0.2, 0.8]),
            1.0
        ));
        // P = (1, 0), Q = (1/2, 1/2): M = (3/4, 1/4);
        // KL(P||M) = log2(4/3); KL(Q||M) = 1/2 log2(2/3) + 1/2 log2(2);
        // JS = 1/2 (log2(4/3)) + 1/2 (1/2 log2(2/3) + 1/2) = 0.311278...
        let expected = 0.5 * (4.0f64 / 3.0).log2() + 0.5 * (0.5 * (2.0f64 / 3.0).log2() + 0.5);
        assert!(close(js_divergence(&[1.0, 0.0], &[0.5, 0.5]), expected));
        assert!(close(expected, 0.311_278_124_459_132_8));
        assert_eq!(js_divergence(&[], &[]), 0.0);
        assert_eq!(js_divergence(&[0.0], &[1.0]), 1.0);
    }

    proptest! {
        #[test]
        fn ks_and_js_are_bounded_symmetric_and_zero_on_self(
            pq in proptest::collection::vec((0.0f64..10.0, 0.0f64..10.0), 1..20)
        ) {
            let (p, q): (Vec<f64>, Vec<f64>) = pq.into_iter().unzip();
            for f in [ks_binned, js_divergence] {
                let d = f(&p, &q);
                prop_assert!((0.0..=1.0).contains(&d));
                prop_assert!((d - f(&q, &p)).abs() < 1e-12);
                prop_assert!(f(&p, &p).abs() < 1e-12);
                // Scaling a histogram changes nothing.
                let scaled: Vec<f64> = p.iter().map(|x| x * 3.5).collect();
                prop_assert!((f(&scaled, &q) - d).abs() < 1e-9);
            }
        }

        #[test]
        fn js_is_one_bit_on_disjoint_supports(
            a in proptest::collection::vec(0.01f64..10.0, 1..8),
            b in proptest::collection::vec(0.01f64..10.0, 1..8),
        ) {
            let p: Vec<f64> = a.iter().copied().chain(b.iter().map(|_| 0.0)).collect();
            let q: Vec<f64> = a.iter().map(|_| 0.0).chain(b.iter().copied()).collect();
            prop_assert!((js_divergence(&p, &q) - 1.0).abs() < 1e-9);
            prop_assert!((ks_binned(&p, &q) - 1.0).abs() < 1e-9);
        }

        #[test]
        fn window_counts_equal_a_recount_of_the_last_n(
            values in proptest::collection::vec(prop_oneof![9 => 0.0f32..100.0, 1 => Just(f32::NAN)], 1..300),
            window in 1usize..50,
        ) {
            let reference = reference_of(&[(0..100).map(|i| i as f32).collect()]);
            let mut m = DriftMonitor::new(Some(reference.clone()), DriftConfig { window, min_samples: 1, ..DriftConfig::default() });
            for &v in &values {
                m.observe(&[v], 0.5);
            }
            let last = &values[values.len().saturating_sub(window)..];
            prop_assert_eq!(m.len(), last.len());
            let b = &reference.features[0];
            let mut expected = vec![0u32; b.bins() + 1];
            for &v in last {
                expected[b.bin_of(f64::from(v)).unwrap_or(b.bins())] += 1;
            }
            prop_assert_eq!(&m.counts[0], &expected);
        }
    }

    /// A reference with one feature per column of `cols` (probability reference: uniform).
    fn reference_of(cols: &[Vec<f32>]) -> TrainingReference {
        let n = cols[0].len();
        let names: Vec<String> = (0..cols.len()).map(|i| format!("f{i}")).collect();
        let x = ndarray::Array2::from_shape_fn((n, cols.len()), |(r, c)| cols[c][r]);
        let risk: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
        TrainingReference::build(&names, x.view(), &risk, 10, "test")
    }

    fn model() -> ModelRef {
        ModelRef {
            id: "m".into(),
            version: "1".into(),
        }
    }

    #[test]
    fn same_distribution_is_ok_a_shifted_one_drifts() {
        let base: Vec<f32> = (0..1000).map(|i| (i % 100) as f32).collect();
        let other: Vec<f32> = (0..1000).map(|i| ((i * 7) % 100) as f32).collect();
        let reference = reference_of(&[base.clone(), other.clone()]);
        let config = DriftConfig {
            window: 500,
            min_samples: 100,
            ..DriftConfig::default()
        };
        let mut m = DriftMonitor::new(Some(reference), config);
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            m.status("inference", model(), now).state,
            DriftState::WarmingUp
        );
        for i in 0..500 {
            m.observe(&[base[i], other[i]], i as f64 / 500.0);
        }
        let s = m.status("inference", model(), now);
        assert_eq!(s.state, DriftState::Ok, "{s:?}");
        assert_eq!(s.window, 500);
        assert!(
            s.features.iter().all(|f| f.ks < 0.05 && f.js < 0.05),
            "{s:?}"
        );
        // Feature 1 moves up by half its range; feature 0 stays.
        for i in 0..500 {
            m.observe(&[base[i], other[i] + 50.0], i as f64 / 500.0);
        }
        let s = m.status("inference", model(), now);
        assert_eq!(s.state, DriftState::Drift);
        assert_eq!(s.drifted, vec!["f1".to_owned()], "{s:?}");
        let f1 = &s.features[0];
        assert_eq!(f1.feature, "f1");
        assert!(
            (f1.ks - 0.5).abs() < 0.02,
            "half the mass moved past the CDF: {f1:?}"
        );
        assert!(f1.js > 0.3, "{f1:?}");
        let risk = s.risk.unwrap();
        assert!(!risk.drift, "{risk:?}");
        // Back to normal as the window refills.
        for i in 0..500 {
            m.observe(&[base[i], other[i]], i as f64 / 500.0);
        }
        assert_eq!(m.status("inference", model(), now).state, DriftState::Ok);
    }

    #[test]
    fn missing_values_count_for_js_and_are_reported() {
        let reference = reference_of(&[(0..1000).map(|i| (i % 100) as f32).collect()]);
        let mut m = DriftMonitor::new(
            Some(reference),
            DriftConfig {
                window: 100,
                min_samples: 10,
                ..DriftConfig::default()
            },
        );
        for i in 0..100 {
            let v = if i % 2 == 0 {
                f32::NAN
            } else {
                (i % 100) as f32
            };
            m.observe(&[v], 0.5);
        }
        let s = m.status("inference", model(), OffsetDateTime::UNIX_EPOCH);
        let f = &s.features[0];
        assert_eq!(f.missing, 0.5);
        assert!(f.ks < 0.1, "present values still match: {f:?}");
        // Live: 0.05 in each of the 10 bins and 0.5 missing; reference: 0.1 each, none
        // missing. M = (0.075 x 10, 0.25); KL(live||M) = 0.5 log2(2/3) + 0.5 log2(2),
        // KL(ref||M) = log2(4/3); JS = the mean = 0.3113 bits.
        let by_hand = 0.5 * (0.5 * (2.0f64 / 3.0).log2() + 0.5) + 0.5 * (4.0f64 / 3.0).log2();
        assert!((f.js - by_hand).abs() < 1e-4, "{f:?} vs {by_hand}");
        assert!(f.drift, "{f:?}");
    }

    #[test]
    fn no_reference_and_clear() {
        let mut m = DriftMonitor::new(None, DriftConfig::default());
        m.observe(&[1.0], 0.5);
        assert!(m.is_empty());
        let s = m.status("inference", model(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(s.state, DriftState::NoReference);
        let reference = reference_of(&[(0..100).map(|i| i as f32).collect()]);
        let mut m = DriftMonitor::new(Some(reference), DriftConfig::default());
        m.observe(&[1.0], 0.5);
        assert_eq!(m.len(), 1);
        m.clear();
        assert!(m.is_empty());
        assert!(m.counts.iter().all(|c| c.iter().all(|&n| n == 0)));
    }
}
