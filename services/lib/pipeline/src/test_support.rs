//! Hand-made data sets for the unit tests: small enough to reason about row by row.

use crate::dataset::{Dataset, LabelSpec};
use crate::tabular::Tabular;
use ndarray::Array2;
use std::ops::Range;

/// One machine of a hand-made twin data set: its readings, and the steps that are rows.
#[derive(Debug, Clone)]
pub(crate) struct MachineSpec {
    /// Readings of the machine (steps `0..readings`).
    pub(crate) readings: u32,
    /// Steps that are labelled rows.
    pub(crate) rows: Range<u32>,
}

/// Machines of `readings` readings each, rows at steps `rows`.
pub(crate) fn machines(n: usize, readings: u32, rows: Range<u32>) -> Vec<MachineSpec> {
    vec![MachineSpec { readings, rows }; n]
}

/// A twin data set with features `names`; `row(machine, step)` gives a row's features and
/// label. Rows are grouped by machine, in step order, as [`crate::dataset::DatasetBuilder`]
/// makes them. No failures (add them to `failures`), 60 s per reading, horizon 10.
pub(crate) fn twin(
    names: &[&str],
    machines: &[MachineSpec],
    row: impl Fn(u32, u32) -> (Vec<f32>, bool),
) -> Dataset {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let (mut data, mut y, mut machine, mut step) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (m, spec) in machines.iter().enumerate() {
        for s in spec.rows.clone() {
            let (x, label) = row(m as u32, s);
            assert_eq!(x.len(), names.len(), "one value per feature");
            data.extend(x);
            y.push(label);
            machine.push(m as u32);
            step.push(s);
        }
    }
    Dataset {
        x: Array2::from_shape_vec((y.len(), names.len()), data).expect("rows have the width"),
        y,
        machine,
        step,
        feature_set: dtwin_schema::feature_set_hash(&names),
        names,
        machine_ids: (0..machines.len()).map(|m| format!("m-{m}")).collect(),
        readings: machines.iter().map(|m| m.readings).collect(),
        failures: Vec::new(),
        seconds_per_step: 60.0,
        labels: LabelSpec {
            horizon: 10,
            ..LabelSpec::default()
        },
        description: "test label".to_owned(),
        recipe: None,
        target: crate::dataset::Target::Failure,
    }
}

/// A table of one all-zero feature with labels `y`.
pub(crate) fn table(y: Vec<bool>) -> Tabular {
    let names = vec!["zero".to_owned()];
    Tabular {
        x: Array2::zeros((y.len(), 1)),
        mode: vec![None; y.len()],
        y,
        feature_set: dtwin_schema::feature_set_hash(&names),
        names,
    }
}

/// A deterministic value in `[0, 1)` from two integers (a multiplicative hash), for features
/// that look random but are the same on every run.
pub(crate) fn unit(a: u32, b: u32) -> f32 {
    let h = (a.wrapping_mul(0x9E37_79B9) ^ b.wrapping_mul(0x85EB_CA6B)).wrapping_mul(0xC2B2_AE35);
    (h >> 8) as f32 / (1u32 << 24) as f32
}
