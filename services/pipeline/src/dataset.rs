//! Labelled data sets from the twin.
//!
//! Label of the reading at step t: the machine fails at one of the steps t+1 ..= t+horizon (or,
//! with `include_nok`, fails or makes a NOK part). The model therefore predicts ahead instead of
//! describing the present. NOK parts are drawn at random (their probability rises with wear and
//! vibration), so folding them into the label mostly adds noise: the default leaves them out.
//! Readings whose window is still cold are left out, as the alerter ignores them live.

use dtwin_features::{feature_set, MachineWindow, WindowConfig};
use dtwin_twin_sim::{Fleet, SimConfig};
use ndarray::Array2;
use time::OffsetDateTime;

/// What to simulate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TwinDataSpec {
    /// Machines in the fleet.
    pub machines: usize,
    /// Readings per machine.
    pub steps: usize,
    /// Simulation seed.
    pub seed: u64,
    /// Plant seconds per reading (as the live twin's accel / rate).
    pub plant_seconds_per_step: f64,
    /// Steps ahead the label looks.
    pub horizon: usize,
    /// Window configuration (must match the feature service's).
    pub window: WindowConfig,
    /// Count NOK parts as events too (default: failures only).
    #[serde(default)]
    pub include_nok: bool,
}

impl Default for TwinDataSpec {
    fn default() -> Self {
        Self {
            machines: 200,
            steps: 1500,
            seed: 7,
            plant_seconds_per_step: 60.0,
            horizon: 10,
            window: WindowConfig::default(),
            include_nok: false,
        }
    }
}

/// A labelled feature matrix.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Rows × features, NaN = missing.
    pub x: Array2<f32>,
    /// Labels.
    pub y: Vec<bool>,
    /// The fleet index of each row's machine (for splits by machine).
    pub machine: Vec<u32>,
    /// The step of each row (for splits by time).
    pub step: Vec<u32>,
    /// Feature names in column order.
    pub names: Vec<String>,
    /// Their hash.
    pub feature_set: String,
}

impl Dataset {
    /// The rows whose machine satisfies `keep`.
    pub fn rows_where(&self, keep: impl Fn(u32) -> bool) -> Vec<usize> {
        (0..self.y.len())
            .filter(|&i| keep(self.machine[i]))
            .collect()
    }

    /// A copy of the given rows.
    pub fn select(&self, rows: &[usize]) -> (Array2<f32>, Vec<bool>) {
        let x = self.x.select(ndarray::Axis(0), rows);
        let y = rows.iter().map(|&i| self.y[i]).collect();
        (x, y)
    }

    /// Share of positive rows.
    pub fn positive_rate(&self) -> f64 {
        self.y.iter().filter(|&&b| b).count() as f64 / self.y.len().max(1) as f64
    }
}

/// Simulates the fleet and builds the labelled data set. `progress(machines_done)` is called
/// after each machine.
pub fn build(spec: &TwinDataSpec, progress: &dyn Fn(usize)) -> Dataset {
    let sim = SimConfig {
        seed: spec.seed,
        plant_seconds_per_step: spec.plant_seconds_per_step,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(spec.machines, &sim);
    let (names, hash) = feature_set(&spec.window);
    let width = names.len();
    let mut data = Vec::new();
    let (mut y, mut machine, mut step) = (Vec::new(), Vec::new(), Vec::new());
    for (index, mut m) in fleet.machines.into_iter().enumerate() {
        let mut window = MachineWindow::new(&spec.window);
        let mut rows: Vec<(Vec<f64>, bool)> = Vec::with_capacity(spec.steps);
        let mut events = Vec::with_capacity(spec.steps);
        for s in 0..spec.steps {
            let reading = m.step();
            events.push(reading.failure || (spec.include_nok && !reading.quality_ok));
            let ts = OffsetDateTime::UNIX_EPOCH
                + time::Duration::seconds_f64(s as f64 * spec.plant_seconds_per_step);
            let fv = window.update(&reading.to_telemetry(m.id(), ts));
            rows.push((fv.values, fv.cold));
        }
        // Suffix scan: does an event happen in (t, t + horizon]?
        for (t, (values, cold)) in rows.into_iter().enumerate() {
            if cold || t + spec.horizon >= spec.steps {
                continue;
            }
            let label = events[t + 1..=t + spec.horizon].iter().any(|&e| e);
            data.extend(values.iter().map(|&v| v as f32));
            y.push(label);
            machine.push(index as u32);
            step.push(t as u32);
        }
        progress(index + 1);
    }
    let n = y.len();
    // The vector length is n × width by construction.
    let x = Array2::from_shape_vec((n, width), data).expect("rows have the feature width");
    Dataset {
        x,
        y,
        machine,
        step,
        names,
        feature_set: hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_look_ahead_and_cold_rows_are_dropped() {
        let spec = TwinDataSpec {
            machines: 3,
            steps: 200,
            horizon: 5,
            ..TwinDataSpec::default()
        };
        let d = build(&spec, &|_| {});
        let per_machine = 200 - (spec.window.short - 1) - spec.horizon;
        assert_eq!(d.y.len(), 3 * per_machine);
        assert_eq!(d.x.ncols(), d.names.len());
        assert_eq!(d.step[0] as usize, spec.window.short - 1);
        let again = build(&spec, &|_| {});
        assert_eq!(again.y, d.y, "deterministic");
        // NOK parts as events only add positives.
        let with_nok = build(
            &TwinDataSpec {
                include_nok: true,
                ..spec.clone()
            },
            &|_| {},
        );
        assert_eq!(with_nok.y.len(), d.y.len());
        assert!(d.y.iter().zip(&with_nok.y).all(|(a, b)| !a || *b));
        assert!(with_nok.positive_rate() > d.positive_rate());
    }
}
