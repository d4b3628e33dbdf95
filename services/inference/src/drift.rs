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
//! A distribution drifts when KS > `ks_threshold` or JS > `js_threshold`; a model without
//! reference is `no_reference`.
//!
//! # A window that represents the fleet
//!
//! A fleet that is merely starting up is not drift, so a verdict is only given on a window
//! that represents the fleet ([`Readiness`]); until then the status is `warming_up`:
//!
//! - **warm vectors only**: a vector enters the window once its machine's rolling window is
//!   full (`window_len >= warm_len`, the feature service's long window, 60 readings): the
//!   `*_dev_60` features of a window still filling are deviations from a shorter mean, which
//!   the training data (full-length runs) barely has. Cold and filling vectors still count
//!   the machine as part of the fleet.
//! - **enough of them**: at least `min_samples` warm vectors in the window;
//! - **enough machines**: at least `min(min_machines, fleet)` distinct machines in the window,
//!   the fleet being the distinct machines among the last `window` vectors (warm or not);
//! - **enough time**: warm vectors seen over at least `min_span` of message time (their
//!   `source_ts`, first to latest, since the window started).

use dtwin_ml::{Binned, TrainingReference};
use dtwin_schema::{DriftScore, DriftState, DriftStatus, ModelRef, DRIFT_SCHEMA};
use std::collections::HashMap;
use std::sync::Arc;
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
/// Readings a machine's window holds before its vectors enter the drift window: the feature
/// service's long window (`dtwin_windows::WindowConfig::default().long`).
pub const DEFAULT_WARM_LEN: u32 = 60;
/// Distinct machines a verdict needs in the window (or the whole fleet, when smaller).
pub const DEFAULT_MIN_MACHINES: usize = 10;
/// Message time (seconds of `source_ts`) warm vectors must span before a verdict.
pub const DEFAULT_MIN_SPAN_S: f64 = 60.0;

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
    /// A vector enters the window once its machine's window holds this many readings
    /// (`window_len`), and is not cold.
    pub warm_len: u32,
    /// Distinct machines needed in the window before a verdict (capped by the fleet seen).
    pub min_machines: usize,
    /// Seconds of message time the warm vectors must span before a verdict.
    pub min_span_s: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
            ks_threshold: DEFAULT_KS_THRESHOLD,
            js_threshold: DEFAULT_JS_THRESHOLD,
            warm_len: DEFAULT_WARM_LEN,
            min_machines: DEFAULT_MIN_MACHINES,
            min_span_s: DEFAULT_MIN_SPAN_S,
        }
    }
}

/// One scored vector as the drift monitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Its machine.
    pub machine: &'a str,
    /// The `source_ts` of the reading behind it (message time).
    pub source_ts: OffsetDateTime,
    /// Readings in the machine's window ([`dtwin_schema::Features::window_len`]).
    pub window_len: u32,
    /// The vector's `cold` flag.
    pub cold: bool,
    /// The model input, in the model's feature order (NaN = missing).
    pub row: &'a [f32],
    /// The predicted probability.
    pub probability: f64,
}

/// How far the window is from representing the fleet (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readiness {
    /// Warm vectors in the window.
    pub samples: usize,
    /// Distinct machines among them.
    pub machines: usize,
    /// Distinct machines among the last `window` vectors, warm or not.
    pub fleet: usize,
    /// Machines needed: `min(min_machines, fleet)`, at least 1.
    pub machines_needed: usize,
    /// Seconds of message time the warm vectors span so far.
    pub span_s: f64,
    /// True when every rule holds and a verdict can be given.
    pub ready: bool,
}

/// Machine ids of the last `cap` vectors, with a count per machine.
#[derive(Debug, Clone)]
struct Tally {
    ring: Vec<Option<Arc<str>>>,
    head: usize,
    counts: HashMap<Arc<str>, u32>,
}

impl Tally {
    fn new(cap: usize) -> Self {
        Self {
            ring: vec![None; cap.max(1)],
            head: 0,
            counts: HashMap::new(),
        }
    }

    /// Adds `machine`, dropping the oldest once full.
    fn push(&mut self, machine: &str) {
        if let Some(old) = self.ring[self.head].take() {
            if let Some(c) = self.counts.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&old);
                }
            }
        }
        let key = match self.counts.get_key_value(machine) {
            Some((k, _)) => k.clone(),
            None => Arc::from(machine),
        };
        *self.counts.entry(key.clone()).or_insert(0) += 1;
        self.ring[self.head] = Some(key);
        self.head = (self.head + 1) % self.ring.len();
    }

    /// Distinct machines.
    fn distinct(&self) -> usize {
        self.counts.len()
    }

    fn clear(&mut self) {
        self.ring.fill(None);
        self.head = 0;
        self.counts.clear();
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
    /// Machines of the warm vectors in the window (same order as `ring`).
    warm_machines: Tally,
    /// Machines of the last `window` vectors, warm or not: the fleet.
    fleet: Tally,
    /// Earliest and latest `source_ts` of the warm vectors since the window started.
    span: Option<(OffsetDateTime, OffsetDateTime)>,
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
            warm_machines: Tally::new(config.window),
            fleet: Tally::new(config.window),
            span: None,
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

    /// True when a vector of a window holding `window_len` readings, `cold` or not, is warm
    /// enough to enter the window.
    pub fn is_warm(&self, window_len: u32, cold: bool) -> bool {
        !cold && window_len >= self.config.warm_len
    }

    /// Takes one scored vector: its machine counts as part of the fleet; a warm one (see
    /// [`DriftMonitor::is_warm`]) enters the window, dropping the oldest when it is full.
    /// Does nothing without a reference.
    pub fn observe(&mut self, v: Observed<'_>) {
        if self.reference.is_none() {
            return;
        }
        self.fleet.push(v.machine);
        if !self.is_warm(v.window_len, v.cold) {
            return;
        }
        self.warm_machines.push(v.machine);
        let t = v.source_ts;
        self.span = Some(match self.span {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        });
        self.push_row(v.row, v.probability);
    }

    /// Adds one warm vector's values to the histograms.
    fn push_row(&mut self, row: &[f32], probability: f64) {
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
        self.warm_machines.clear();
        self.fleet.clear();
        self.span = None;
    }

    /// Whether the window represents the fleet yet, and how far it is.
    pub fn readiness(&self) -> Readiness {
        let fleet = self.fleet.distinct();
        let machines = self.warm_machines.distinct();
        let machines_needed = self.config.min_machines.min(fleet).max(1);
        let span_s = self
            .span
            .map_or(0.0, |(a, b)| (b - a).as_seconds_f64().max(0.0));
        Readiness {
            samples: self.len,
            machines,
            fleet,
            machines_needed,
            span_s,
            ready: self.len >= self.config.min_samples.max(1)
                && machines >= machines_needed
                && span_s >= self.config.min_span_s,
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
            profile: None,
            kind: None,
        };
        let Some(reference) = &self.reference else {
            return status;
        };
        if !self.readiness().ready {
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

    /// Feeds one warm vector: machines `m0`..`m3` in turn, one second of message time apart.
    fn feed(m: &mut DriftMonitor, row: &[f32], probability: f64) {
        let n = m.span.map_or(0, |(_, last)| {
            (last - OffsetDateTime::UNIX_EPOCH).whole_seconds() + 1
        });
        let machine = format!("m{}", n % 4);
        m.observe(Observed {
            machine: &machine,
            source_ts: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(n),
            window_len: 60,
            cold: false,
            row,
            probability,
        });
    }

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
                feed(&mut m, &[v], 0.5);
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
            feed(&mut m, &[base[i], other[i]], i as f64 / 500.0);
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
            feed(&mut m, &[base[i], other[i] + 50.0], i as f64 / 500.0);
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
            feed(&mut m, &[base[i], other[i]], i as f64 / 500.0);
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
            feed(&mut m, &[v], 0.5);
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
        feed(&mut m, &[1.0], 0.5);
        assert!(m.is_empty());
        let s = m.status("inference", model(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(s.state, DriftState::NoReference);
        let reference = reference_of(&[(0..100).map(|i| i as f32).collect()]);
        let mut m = DriftMonitor::new(Some(reference), DriftConfig::default());
        feed(&mut m, &[1.0], 0.5);
        assert_eq!(m.len(), 1);
        m.clear();
        assert!(m.is_empty());
        assert!(m.counts.iter().all(|c| c.iter().all(|&n| n == 0)));
    }

    /// One vector of `machine` at `t` seconds of message time.
    fn at<'a>(
        machine: &'a str,
        t: i64,
        window_len: u32,
        cold: bool,
        row: &'a [f32],
    ) -> Observed<'a> {
        Observed {
            machine,
            source_ts: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(t),
            window_len,
            cold,
            row,
            probability: 0.5,
        }
    }

    fn uniform_reference() -> TrainingReference {
        reference_of(&[(0..1000).map(|i| (i % 100) as f32).collect()])
    }

    /// A window of 1000 asking 100 warm vectors, 4 machines and 60 s.
    fn small() -> DriftConfig {
        DriftConfig {
            window: 1000,
            min_samples: 100,
            min_machines: 4,
            min_span_s: 60.0,
            ..DriftConfig::default()
        }
    }

    #[test]
    fn only_warm_vectors_enter_the_window_but_every_machine_is_fleet() {
        let mut m = DriftMonitor::new(Some(uniform_reference()), small());
        assert!(m.is_warm(60, false) && m.is_warm(61, false));
        assert!(!m.is_warm(59, false) && !m.is_warm(60, true));
        // Machine a: cold, then filling its long window; b: warm.
        m.observe(at("a", 0, 5, true, &[1.0]));
        m.observe(at("a", 1, 30, false, &[1.0]));
        m.observe(at("b", 1, 60, false, &[1.0]));
        assert_eq!(m.len(), 1);
        let r = m.readiness();
        assert_eq!((r.samples, r.machines, r.fleet), (1, 1, 2));
        assert_eq!(r.span_s, 0.0, "the span counts warm vectors only");
        assert!(!r.ready);
    }

    /// The values of a fleet starting up: far from the reference (all in the top decile).
    fn far() -> [f32; 1] {
        [99.5]
    }

    #[test]
    fn a_verdict_needs_enough_machines_capped_by_the_fleet() {
        let mut m = DriftMonitor::new(Some(uniform_reference()), small());
        let now = OffsetDateTime::UNIX_EPOCH;
        // Six machines are seen, three of them warm: 3 < min(4, 6).
        for id in ["d", "e", "f"] {
            m.observe(at(id, 0, 10, false, &far()));
        }
        for t in 0..300 {
            let id = ["a", "b", "c"][t as usize % 3];
            m.observe(at(id, t, 60, false, &far()));
        }
        let r = m.readiness();
        assert_eq!((r.machines, r.fleet, r.machines_needed), (3, 6, 4));
        assert!(!r.ready && r.samples >= 100 && r.span_s >= 60.0, "{r:?}");
        assert_eq!(
            m.status("inference", model(), now).state,
            DriftState::WarmingUp
        );
        // A fourth warm machine: a verdict (and these values drift).
        m.observe(at("d", 300, 60, false, &far()));
        assert!(m.readiness().ready);
        assert_eq!(m.status("inference", model(), now).state, DriftState::Drift);
        // A fleet of one machine needs only that one.
        let mut one = DriftMonitor::new(Some(uniform_reference()), small());
        for t in 0..100 {
            one.observe(at("solo", t, 60, false, &far()));
        }
        let r = one.readiness();
        assert_eq!((r.machines, r.fleet, r.machines_needed), (1, 1, 1));
        assert!(r.ready, "{r:?}");
    }

    #[test]
    fn the_fleet_is_the_machines_of_the_last_window_vectors() {
        let config = DriftConfig {
            window: 50,
            ..small()
        };
        let mut m = DriftMonitor::new(Some(uniform_reference()), config);
        for t in 0..50 {
            m.observe(at(&format!("m{t}"), t, 10, false, &far()));
        }
        assert_eq!(m.readiness().fleet, 50);
        // The fleet shrinks to two machines: after a window of their vectors, two are needed.
        for t in 50..100 {
            m.observe(at(["x", "y"][t as usize % 2], t, 60, false, &far()));
        }
        let r = m.readiness();
        assert_eq!((r.fleet, r.machines, r.machines_needed), (2, 2, 2));
    }

    #[test]
    fn a_verdict_needs_a_span_of_message_time() {
        let mut m = DriftMonitor::new(Some(uniform_reference()), small());
        let now = OffsetDateTime::UNIX_EPOCH;
        // 400 warm vectors of 4 machines within 59 s: not yet.
        for i in 0..400 {
            let id = ["a", "b", "c", "d"][i % 4];
            m.observe(at(id, (i as i64 * 59) / 399, 60, false, &far()));
        }
        let r = m.readiness();
        assert_eq!(r.span_s, 59.0);
        assert!(!r.ready);
        assert_eq!(
            m.status("inference", model(), now).state,
            DriftState::WarmingUp
        );
        // Out of order: an older vector widens the span as well.
        m.observe(at("a", -1, 60, false, &far()));
        assert_eq!(m.readiness().span_s, 60.0);
        assert_eq!(m.status("inference", model(), now).state, DriftState::Drift);
        // Clearing starts the span again.
        m.clear();
        let r = m.readiness();
        assert_eq!((r.samples, r.machines, r.fleet, r.span_s), (0, 0, 0, 0.0));
    }

    #[test]
    fn a_verdict_needs_min_samples_warm_vectors() {
        let mut m = DriftMonitor::new(Some(uniform_reference()), small());
        for t in 0..99 {
            m.observe(at(
                ["a", "b", "c", "d"][t as usize % 4],
                t,
                60,
                false,
                &far(),
            ));
        }
        assert!(!m.readiness().ready);
        m.observe(at("a", 99, 60, false, &far()));
        assert!(m.readiness().ready);
    }

    proptest! {
        /// Whatever the stream, the monitor judges drift only on a window that holds the
        /// rules, recounted here from the stream itself; before that it is `warming_up`.
        #[test]
        fn no_verdict_before_the_window_represents_the_fleet(
            stream in proptest::collection::vec(
                (0usize..8, 0i64..5, prop_oneof![Just(10u32), Just(59), Just(60)], any::<bool>(), 0.0f32..100.0),
                0..400,
            ),
            window in 20usize..200,
        ) {
            let config = DriftConfig { window, min_samples: 20, min_machines: 5, min_span_s: 30.0, ..DriftConfig::default() };
            let mut m = DriftMonitor::new(Some(uniform_reference()), config);
            let mut t = 0i64;
            let mut seen: Vec<(String, i64, bool)> = Vec::new();
            for &(id, dt, window_len, cold, v) in &stream {
                t += dt;
                let id = format!("m{id}");
                m.observe(at(&id, t, window_len, cold, &[v]));
                seen.push((id, t, !cold && window_len >= 60));
            }
            let fleet: std::collections::BTreeSet<&str> =
                seen.iter().rev().take(window).map(|(id, _, _)| id.as_str()).collect();
            let warm: Vec<&(String, i64, bool)> = seen.iter().filter(|s| s.2).collect();
            let in_window = &warm[warm.len().saturating_sub(window)..];
            let machines: std::collections::BTreeSet<&str> =
                in_window.iter().map(|(id, _, _)| id.as_str()).collect();
            let span = match (warm.first(), warm.last()) {
                (Some(a), Some(b)) => (b.1 - a.1) as f64,
                _ => 0.0,
            };
            let ready = in_window.len() >= 20 && machines.len() >= fleet.len().clamp(1, 5) && span >= 30.0;
            let r = m.readiness();
            prop_assert_eq!(r.samples, in_window.len());
            prop_assert_eq!(r.fleet, fleet.len());
            prop_assert_eq!(r.machines, machines.len());
            prop_assert_eq!(r.span_s, span);
            prop_assert_eq!(r.ready, ready);
            let state = m.status("inference", model(), OffsetDateTime::UNIX_EPOCH).state;
            prop_assert_eq!(state == DriftState::WarmingUp, !ready);
        }
    }
}
