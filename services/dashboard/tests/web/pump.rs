//! A pump profile as a plant writes it, and a tiny model trained on its features: risk when
//! the voltage is high.

use dtwin_ml::{Forest, ForestParams, ModelArtifact, TrainingMeta};
use dtwin_profile::Profile;

pub const PUMP: &str = r#"
id = "pump"
label = "Water pump"

[[sensor]]
name = "volt"
label = "Voltage"
unit = "V"
key = "voltage"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
label = "Rotation"
unit = "rpm"
range = [0.0, 5000.0]

[[sensor]]
name = "pressure"
label = "Pressure"
unit = "bar"
range = [0.0, 50.0]

[windows]
short = 3
short_stats = ["mean", "max"]

[[attribute]]
name = "model"
label = "Pump model"
values = ["model1", "model2"]
"#;

pub fn pump() -> Profile {
    Profile::parse(PUMP, "pump.toml").unwrap()
}

/// A forest over the pump's features: at risk when `volt` is high (every column of a sensor
/// is its value, as in a steady window).
pub fn pump_model() -> ModelArtifact {
    let p = pump();
    let (names, _) = dtwin_windows::profile_feature_set(&p);
    let per_sensor = (names.len() - p.attributes.len()) / p.sensors.len();
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for (i, volt) in [110.0f32, 120.0, 130.0, 300.0, 320.0, 380.0]
        .into_iter()
        .enumerate()
    {
        for v in [volt, 1500.0, 3.0] {
            rows.extend(std::iter::repeat_n(v, per_sensor));
        }
        rows.push(1.0);
        y.push(i >= 3);
    }
    let x = ndarray::Array2::from_shape_vec((y.len(), names.len()), rows).unwrap();
    let params = ForestParams {
        n_trees: 3,
        bootstrap: false,
        min_samples_split: 2,
        min_samples_leaf: 1,
        ..ForestParams::default()
    };
    let forest = Forest::fit(x.view(), &y, &params, &|| {}).unwrap();
    let meta = TrainingMeta {
        rows: y.len(),
        positives: 3,
        params,
        source: "test".into(),
        seconds: 0.0,
    };
    ModelArtifact::new("pump-rf", names, 0.5, "failure", meta, forest)
}
