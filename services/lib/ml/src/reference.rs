//! The training reference stored in a model artifact, for drift detection: per feature (and
//! for the predicted probability) a fixed set of quantile bin edges and the share of training
//! values in each bin, plus the share of missing values.
//!
//! A value `v` falls in bin `i` = the number of edges `<= v` (so bin 0 is below the first edge
//! and the last bin is at or above the last edge); NaN is missing and counted apart. The
//! inference service bins its live values with [`Binned::bin_of`] and compares the two
//! histograms (KS statistic and Jensen-Shannon divergence, `dtwin-inference`'s `drift`).

use serde::{Deserialize, Serialize};

/// Bins per distribution written by training (deciles). Enough to see a shifted sensor, few
/// enough that a rolling window of a few thousand live values fills each bin.
pub const DEFAULT_REFERENCE_BINS: usize = 10;

/// Most bins a distribution may have (a live value's bin is stored in a byte).
pub const MAX_REFERENCE_BINS: usize = 64;

/// Why a [`Binned`] histogram is malformed (see [`Binned::validate`]). Every variant names the
/// distribution.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BinnedError {
    /// More bins than a live value's byte can index.
    #[error("reference for {name:?}: too many bins ({bins}, at most {MAX_REFERENCE_BINS})")]
    TooManyBins {
        /// The distribution.
        name: String,
        /// Its bins (`edges + 1`).
        bins: usize,
    },
    /// An edge is NaN or infinite, or the edges do not strictly ascend.
    #[error("reference for {name:?}: edges must be finite and strictly ascending")]
    Edges {
        /// The distribution.
        name: String,
    },
    /// The proportions do not match the bins one to one.
    #[error(
        "reference for {name:?}: needs one proportion per bin ({proportions} proportions for {bins} bins)"
    )]
    Proportions {
        /// The distribution.
        name: String,
        /// Proportions given.
        proportions: usize,
        /// Bins (`edges + 1`).
        bins: usize,
    },
    /// A proportion or the missing share is not in `0..=1`.
    #[error("reference for {name:?}: shares must be in 0..=1")]
    Shares {
        /// The distribution.
        name: String,
    },
}

/// Why a [`TrainingReference`] does not fit a model (see [`TrainingReference::validate`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    /// The feature histograms are not the model's features, one per name, in order.
    #[error(
        "reference features do not match the model's feature names ({reference} reference features for {model} names; first difference at position {position}: {found:?} where the model has {expected:?})"
    )]
    FeatureNames {
        /// Feature histograms in the reference.
        reference: usize,
        /// Feature names of the model.
        model: usize,
        /// Index of the first histogram or name that differs.
        position: usize,
        /// The reference's name there (`None`: the reference ends first).
        found: Option<String>,
        /// The model's name there (`None`: the model's names end first).
        expected: Option<String>,
    },
    /// One histogram is malformed.
    #[error(transparent)]
    Binned(#[from] BinnedError),
}

/// One distribution as a histogram over fixed edges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    /// Feature name, or `risk` for the predicted probability.
    pub name: String,
    /// Interior bin edges, strictly ascending (fewer than requested where values repeat).
    pub edges: Vec<f64>,
    /// Share of the non-missing values in each of the `edges.len() + 1` bins (sums to 1, or
    /// all 0 when every value was missing).
    pub proportions: Vec<f64>,
    /// Share of all values that were missing (NaN).
    pub missing: f64,
}

impl Binned {
    /// The bin of `v` (`None` when missing).
    pub fn bin_of(&self, v: f64) -> Option<usize> {
        (!v.is_nan()).then(|| self.edges.partition_point(|&e| e <= v))
    }

    /// Bins (not counting the missing one).
    pub fn bins(&self) -> usize {
        self.edges.len() + 1
    }

    /// A histogram with edges at the `bins`-quantiles of `values` (NaN = missing).
    pub fn from_values(name: &str, values: impl IntoIterator<Item = f64>, bins: usize) -> Self {
        let bins = bins.clamp(1, MAX_REFERENCE_BINS);
        let mut all = 0usize;
        let mut finite: Vec<f64> = Vec::new();
        for v in values {
            all += 1;
            if !v.is_nan() {
                finite.push(v);
            }
        }
        finite.sort_by(f64::total_cmp);
        let n = finite.len();
        let mut edges: Vec<f64> = Vec::with_capacity(bins.saturating_sub(1));
        if n > 0 {
            for k in 1..bins {
                let e = finite[(k * n / bins).min(n - 1)];
                // An edge at the minimum would leave bin 0 empty by construction.
                if e > finite[0] && edges.last().is_none_or(|&last| e > last) {
                    edges.push(e);
                }
            }
        }
        let mut counts = vec![0usize; edges.len() + 1];
        for &v in &finite {
            counts[edges.partition_point(|&e| e <= v)] += 1;
        }
        let proportions = counts
            .iter()
            .map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
            .collect();
        Self {
            name: name.to_owned(),
            edges,
            proportions,
            missing: if all == 0 {
                0.0
            } else {
                (all - n) as f64 / all as f64
            },
        }
    }

    /// Checks the shape: ascending finite edges, one proportion per bin, shares in 0..=1.
    ///
    /// # Errors
    /// [`BinnedError`]: what is wrong, naming the distribution.
    pub fn validate(&self) -> Result<(), BinnedError> {
        let name = || self.name.clone();
        let bins = self.edges.len() + 1;
        if bins > MAX_REFERENCE_BINS {
            return Err(BinnedError::TooManyBins { name: name(), bins });
        }
        if self.edges.iter().any(|e| !e.is_finite()) || self.edges.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(BinnedError::Edges { name: name() });
        }
        if self.proportions.len() != bins {
            return Err(BinnedError::Proportions {
                name: name(),
                proportions: self.proportions.len(),
                bins,
            });
        }
        let share = |p: &f64| (0.0..=1.0).contains(p);
        if !self.proportions.iter().all(share) || !share(&self.missing) {
            return Err(BinnedError::Shares { name: name() });
        }
        Ok(())
    }
}

/// The training reference of a model: one histogram per feature (in the artifact's
/// `feature_names` order) and one of the predicted probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingReference {
    /// Rows the feature histograms were built from.
    pub rows: usize,
    /// What the rows were (e.g. "training machines").
    pub source: String,
    /// Per feature, in `feature_names` order.
    pub features: Vec<Binned>,
    /// The predicted probability.
    pub risk: Binned,
}

impl TrainingReference {
    /// Builds a reference from the rows of `x` (columns named by `names`) and the model's
    /// probabilities `risk` (which may come from other rows, e.g. held-out ones, so they are
    /// not the forest's optimistic in-sample scores).
    pub fn build(
        names: &[String],
        x: ndarray::ArrayView2<f32>,
        risk: &[f32],
        bins: usize,
        source: impl Into<String>,
    ) -> Self {
        let features = names
            .iter()
            .zip(x.columns())
            .map(|(name, col)| Binned::from_values(name, col.iter().map(|&v| f64::from(v)), bins))
            .collect();
        Self {
            rows: x.nrows(),
            source: source.into(),
            features,
            risk: Binned::from_values("risk", risk.iter().map(|&p| f64::from(p)), bins),
        }
    }

    /// Checks every histogram and that there is one per feature name, in order.
    ///
    /// # Errors
    /// [`ReferenceError`]: the histograms are not the model's features, or one is malformed.
    pub fn validate(&self, names: &[String]) -> Result<(), ReferenceError> {
        let differs = (0..self.features.len().max(names.len()))
            .find(|&i| self.features.get(i).map(|b| &b.name) != names.get(i));
        if let Some(position) = differs {
            return Err(ReferenceError::FeatureNames {
                reference: self.features.len(),
                model: names.len(),
                position,
                found: self.features.get(position).map(|b| b.name.clone()),
                expected: names.get(position).cloned(),
            });
        }
        self.features
            .iter()
            .chain(std::iter::once(&self.risk))
            .try_for_each(Binned::validate)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_of_0_to_99() {
        let b = Binned::from_values("x", (0..100).map(f64::from), 10);
        assert_eq!(
            b.edges,
            vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
        assert!(b.proportions.iter().all(|&p| (p - 0.1).abs() < 1e-12));
        assert_eq!(b.missing, 0.0);
        assert_eq!(b.bin_of(-5.0), Some(0));
        assert_eq!(b.bin_of(10.0), Some(1), "an edge belongs to the bin above");
        assert_eq!(b.bin_of(1e9), Some(9));
        assert_eq!(b.bin_of(f64::NAN), None);
        b.validate().unwrap();
    }

    #[test]
    fn ties_and_missing_values() {
        // 80 zeros, 10 ones, 10 missing: one edge (at 1), two bins.
        let values = (0..100).map(|i| match i {
            0..80 => 0.0,
            80..90 => 1.0,
            _ => f64::NAN,
        });
        let b = Binned::from_values("flag", values, 10);
        assert_eq!(b.edges, vec![1.0]);
        assert!((b.proportions[0] - 8.0 / 9.0).abs() < 1e-12);
        assert!((b.proportions[1] - 1.0 / 9.0).abs() < 1e-12);
        assert!((b.missing - 0.1).abs() < 1e-12);
        b.validate().unwrap();
        // A constant or all-missing column: one bin.
        let c = Binned::from_values("c", [3.0; 5], 10);
        assert_eq!((c.edges.len(), c.proportions.clone()), (0, vec![1.0]));
        let m = Binned::from_values("m", [f64::NAN; 5], 10);
        assert_eq!((m.proportions.clone(), m.missing), (vec![0.0], 1.0));
        m.validate().unwrap();
    }

    #[test]
    fn build_and_validate_against_names() {
        let x = ndarray::Array2::from_shape_fn((50, 2), |(i, j)| (i * (j + 1)) as f32);
        let names = vec!["a".to_owned(), "b".to_owned()];
        let r = TrainingReference::build(&names, x.view(), &[0.1, 0.9], 10, "test");
        assert_eq!(r.rows, 50);
        r.validate(&names).unwrap();
        assert!(r.validate(&["a".to_owned()]).is_err());
        let mut broken = r.clone();
        broken.features[0].edges.reverse();
        assert!(broken.validate(&names).is_err());
    }

    #[test]
    fn each_malformation_has_its_own_error_naming_the_distribution() {
        let good = Binned::from_values("temp", (0..100).map(f64::from), 10);
        let broken = |change: &dyn Fn(&mut Binned)| {
            let mut b = good.clone();
            change(&mut b);
            b.validate().unwrap_err()
        };
        let e = broken(&|b| {
            b.edges = (0..MAX_REFERENCE_BINS).map(|i| i as f64).collect();
            b.proportions = vec![0.0; MAX_REFERENCE_BINS + 1];
        });
        assert_eq!(
            e,
            BinnedError::TooManyBins {
                name: "temp".into(),
                bins: MAX_REFERENCE_BINS + 1
            }
        );
        assert_eq!(
            e.to_string(),
            "reference for \"temp\": too many bins (65, at most 64)"
        );
        let e = broken(&|b| b.edges[3] = f64::NAN);
        assert_eq!(
            e,
            BinnedError::Edges {
                name: "temp".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "reference for \"temp\": edges must be finite and strictly ascending"
        );
        assert_eq!(
            broken(&|b| b.edges.swap(0, 1)),
            BinnedError::Edges {
                name: "temp".into()
            }
        );
        let e = broken(&|b| {
            b.proportions.pop();
        });
        assert_eq!(
            e,
            BinnedError::Proportions {
                name: "temp".into(),
                proportions: 9,
                bins: 10
            }
        );
        assert!(e.to_string().contains("needs one proportion per bin"));
        let e = broken(&|b| b.proportions[0] = 1.5);
        assert_eq!(
            e,
            BinnedError::Shares {
                name: "temp".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "reference for \"temp\": shares must be in 0..=1"
        );
        assert_eq!(
            broken(&|b| b.missing = -0.1),
            BinnedError::Shares {
                name: "temp".into()
            }
        );
    }

    #[test]
    fn reference_errors_say_which_feature_differs_or_which_histogram_is_bad() {
        let x = ndarray::Array2::from_shape_fn((20, 2), |(i, j)| (i + j) as f32);
        let names = vec!["a".to_owned(), "b".to_owned()];
        let r = TrainingReference::build(&names, x.view(), &[0.2, 0.8], 4, "test");
        let e = r.validate(&["a".to_owned()]).unwrap_err();
        assert_eq!(
            e,
            ReferenceError::FeatureNames {
                reference: 2,
                model: 1,
                position: 1,
                found: Some("b".into()),
                expected: None
            }
        );
        assert!(e
            .to_string()
            .starts_with("reference features do not match the model's feature names"));
        let swapped = ["b".to_owned(), "a".to_owned()];
        assert!(matches!(
            r.validate(&swapped),
            Err(ReferenceError::FeatureNames { position: 0, .. })
        ));
        let mut bad_risk = r.clone();
        bad_risk.risk.missing = 2.0;
        let e = bad_risk.validate(&names).unwrap_err();
        assert_eq!(
            e,
            ReferenceError::Binned(BinnedError::Shares {
                name: "risk".into()
            })
        );
        assert_eq!(
            e.to_string(),
            "reference for \"risk\": shares must be in 0..=1"
        );
    }
}
