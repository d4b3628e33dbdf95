//! AI4I 2020 as a table: each row an independent process cycle, so there is no window to run;
//! the features are the row's own values plus engineered ones, never the failure-mode columns.
//!
//! Features, in order: product type (L/M/H as 0/1/2), air and process temperature (K), speed
//! (rpm), torque (N·m), tool wear (min), process-air temperature difference (K), mechanical
//! power (W), strain (wear × torque), and AI4I's three physical failure rules as features:
//! `rule_hdf` (difference < 8.6 K and speed < 1380 rpm), `rule_pwf` (power outside
//! 3500..=9000 W) and `rule_osf_ratio` (strain over the type's limit of 11,000 / 12,000 /
//! 13,000). The same rules are the artifact's floor rules: where one fires, the probability is 1.

use dtwin_ml::FloorRule;
use dtwin_schema::{FailureMode, ProductType};
use dtwin_twin_sim::Ai4iRow;
use ndarray::Array2;

/// The feature names, in column order.
pub const AI4I_FEATURES: [&str; 12] = [
    "type",
    "air_temp_k",
    "process_temp_k",
    "rpm",
    "torque_nm",
    "tool_wear_min",
    "temp_diff_k",
    "power_w",
    "strain",
    "rule_hdf",
    "rule_pwf",
    "rule_osf_ratio",
];

/// A table of independent rows.
#[derive(Debug, Clone)]
pub struct Tabular {
    /// Rows × features.
    pub x: Array2<f32>,
    /// "Machine failure".
    pub y: Vec<bool>,
    /// The first failure mode flagged on each row (None: no mode or no failure).
    pub mode: Vec<Option<FailureMode>>,
    /// [`AI4I_FEATURES`].
    pub names: Vec<String>,
    /// Their hash.
    pub feature_set: String,
}

/// The AI4I feature names and their hash.
pub fn ai4i_feature_set() -> (Vec<String>, String) {
    let names: Vec<String> = AI4I_FEATURES.iter().map(|s| (*s).to_owned()).collect();
    let hash = dtwin_schema::feature_set_hash(&names);
    (names, hash)
}

/// The features of one AI4I row, in [`AI4I_FEATURES`] order.
pub fn ai4i_features(r: &Ai4iRow) -> [f32; 12] {
    let kind = match r.product_type {
        ProductType::L => 0.0,
        ProductType::M => 1.0,
        ProductType::H => 2.0,
    };
    let limit = match r.product_type {
        ProductType::L => 11_000.0,
        ProductType::M => 12_000.0,
        ProductType::H => 13_000.0,
    };
    let diff = r.process_k - r.air_k;
    let power = r.torque_nm * r.rpm * std::f64::consts::TAU / 60.0;
    let strain = r.tool_wear_min * r.torque_nm;
    let hdf = diff < 8.6 && r.rpm < 1380.0;
    let pwf = !(3500.0..=9000.0).contains(&power);
    [
        kind,
        r.air_k as f32,
        r.process_k as f32,
        r.rpm as f32,
        r.torque_nm as f32,
        r.tool_wear_min as f32,
        diff as f32,
        power as f32,
        strain as f32,
        f32::from(u8::from(hdf)),
        f32::from(u8::from(pwf)),
        (strain / limit) as f32,
    ]
}

/// The floor rules matching the rule features: a flag above 0.5 or a strain ratio above 1.
pub fn ai4i_floor_rules() -> Vec<FloorRule> {
    vec![
        FloorRule {
            feature: "rule_hdf".into(),
            above: 0.5,
        },
        FloorRule {
            feature: "rule_pwf".into(),
            above: 0.5,
        },
        FloorRule {
            feature: "rule_osf_ratio".into(),
            above: 1.0,
        },
    ]
}

/// The table of AI4I rows.
pub fn from_ai4i(rows: &[Ai4iRow]) -> Tabular {
    let mut data = Vec::with_capacity(rows.len() * AI4I_FEATURES.len());
    for r in rows {
        data.extend_from_slice(&ai4i_features(r));
    }
    let (names, feature_set) = ai4i_feature_set();
    Tabular {
        // The vector holds 12 values per row by construction.
        x: Array2::from_shape_vec((rows.len(), AI4I_FEATURES.len()), data)
            .expect("12 features per row"),
        y: rows.iter().map(|r| r.failure).collect(),
        mode: rows
            .iter()
            .map(|r| {
                [
                    (r.twf, FailureMode::Twf),
                    (r.hdf, FailureMode::Hdf),
                    (r.pwf, FailureMode::Pwf),
                    (r.osf, FailureMode::Osf),
                    (r.rnf, FailureMode::Rnf),
                ]
                .into_iter()
                .find_map(|(hit, m)| (hit && r.failure).then_some(m))
            })
            .collect(),
        names,
        feature_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: ProductType, air: f64, process: f64, rpm: f64, torque: f64, wear: f64) -> Ai4iRow {
        Ai4iRow {
            udi: 1,
            product_id: "L1".into(),
            product_type: kind,
            air_k: air,
            process_k: process,
            rpm,
            torque_nm: torque,
            tool_wear_min: wear,
            failure: false,
            twf: false,
            hdf: false,
            pwf: false,
            osf: false,
            rnf: false,
        }
    }

    #[test]
    fn rule_features_follow_the_ai4i_readme() {
        let f = |r: Ai4iRow| ai4i_features(&r);
        let ok = f(row(ProductType::L, 300.0, 310.0, 1500.0, 40.0, 100.0));
        assert_eq!((ok[9], ok[10]), (0.0, 0.0));
        assert!(ok[11] < 1.0);
        assert_eq!(
            f(row(ProductType::L, 300.0, 308.5, 1300.0, 40.0, 100.0))[9],
            1.0
        );
        assert_eq!(
            f(row(ProductType::L, 300.0, 308.5, 1400.0, 40.0, 100.0))[9],
            0.0
        );
        assert_eq!(
            f(row(ProductType::L, 300.0, 310.0, 1500.0, 20.0, 10.0))[10],
            1.0
        ); // 3142 W
        assert_eq!(
            f(row(ProductType::L, 300.0, 310.0, 1500.0, 60.0, 10.0))[10],
            1.0
        ); // 9425 W
           // 45 × 250 = 11,250: over L's 11,000, under H's 13,000.
        assert!(f(row(ProductType::L, 300.0, 310.0, 1500.0, 45.0, 250.0))[11] > 1.0);
        assert!(f(row(ProductType::H, 300.0, 310.0, 1500.0, 45.0, 250.0))[11] < 1.0);
        let t = from_ai4i(&[row(ProductType::M, 300.0, 310.0, 1500.0, 40.0, 0.0)]);
        assert_eq!(t.x.dim(), (1, 12));
        assert_eq!(t.x[[0, 0]], 1.0);
        assert_eq!(t.names.len(), ai4i_floor_rules().len() + 9);
    }
}
