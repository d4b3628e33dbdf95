//! Labelled data sets from machine telemetry (simulated or read from a CSV).
//!
//! Features: every machine's readings go, in order, through [`dtwin_windows::MachineWindow`],
//! the very code the feature service runs live, so a model is trained on exactly what it is
//! served.
//!
//! Label of the reading at step t: the machine fails, in one of the label's failure modes
//! ([`LabelModes`]), at one of the steps t+1 ..= t+horizon (or, with `include_nok`, also makes a
//! NOK part there). The model therefore predicts ahead instead of describing the present.
//!
//! By default only degradation failures count (bearing, coolant, valve: they build up over
//! plant hours and show in the sensors first). The twin's other failures are AI4I's
//! process-cycle rules on the current operating point (HDF, PWF, OSF: the moment they fire is
//! set by per-reading noise, e.g. speed for HDF), tool wear-out at a random tool life (TWF) and
//! random failures (RNF); as labels they make the model alarm on every risky operating point,
//! and most such alarms are followed by nothing (measured: false-alarm share 0.6 at 0.9
//! event recall). Those are the expert rules' job (inference rules, AI4I floor rules).
//! NOK parts are drawn at random (their probability rises with wear and vibration), so folding
//! them into the label mostly adds noise: the default leaves them out.
//! Readings whose window is still cold are left out, as the alerter ignores them live, and so
//! are the last `horizon` readings of a machine, whose label is not known yet.

use dtwin_schema::{FailureMode, Telemetry};
use dtwin_twin_sim::{Fleet, SimConfig};
use dtwin_windows::{feature_set, MachineWindow, WindowConfig};
use ndarray::Array2;
use std::collections::HashMap;
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
    /// Which failures count.
    #[serde(default)]
    pub modes: LabelModes,
}

impl Default for TwinDataSpec {
    fn default() -> Self {
        Self {
            machines: 200,
            steps: 1500,
            seed: 7,
            plant_seconds_per_step: 60.0,
            horizon: DEFAULT_HORIZON,
            window: WindowConfig::default(),
            include_nok: false,
            modes: LabelModes::Degradation,
        }
    }
}

/// Default label horizon in readings (30 plant minutes at the default 60 s per reading).
pub const DEFAULT_HORIZON: usize = 30;

/// Which failures a label counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelModes {
    /// Degradation failures (bearing, coolant, valve) and failures of unknown mode.
    #[default]
    Degradation,
    /// Every failure.
    All,
}

impl LabelModes {
    /// Whether a failure of `mode` counts.
    pub fn counts(self, mode: Option<FailureMode>) -> bool {
        match self {
            Self::All => true,
            Self::Degradation => matches!(
                mode,
                None | Some(FailureMode::Bearing | FailureMode::Coolant | FailureMode::Valve)
            ),
        }
    }

    /// Human-readable name of the counted failures.
    pub fn describe(self) -> &'static str {
        match self {
            Self::All => "failure (any mode)",
            Self::Degradation => "degradation failure (bearing, coolant, valve)",
        }
    }
}

impl std::str::FromStr for LabelModes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "degradation" => Ok(Self::Degradation),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown label modes {other:?}; valid: degradation, all"
            )),
        }
    }
}

/// How rows are labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpec {
    /// Steps ahead the label looks.
    pub horizon: usize,
    /// Count NOK parts as events too.
    pub include_nok: bool,
    /// Which failures count.
    pub modes: LabelModes,
    /// Window configuration (must match the feature service's).
    pub window: WindowConfig,
}

impl LabelSpec {
    /// What a positive means, for the artifact and the model card.
    pub fn describe(&self) -> String {
        format!(
            "{}{} within the next {} readings",
            self.modes.describe(),
            if self.include_nok { " or NOK part" } else { "" },
            self.horizon
        )
    }
}

impl Default for LabelSpec {
    fn default() -> Self {
        Self {
            horizon: DEFAULT_HORIZON,
            include_nok: false,
            modes: LabelModes::Degradation,
            window: WindowConfig::default(),
        }
    }
}

/// A failure of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The machine's index in the data set.
    pub machine: u32,
    /// The reading (0-based step of that machine) that reported the failure.
    pub step: u32,
    /// Its label (the twin's failure mode, a plant's `comp1`), when known.
    pub label: Option<String>,
    /// Whether the data set's label counts it (the others are the rules' business).
    pub counted: bool,
}

impl Failure {
    /// A failure of the twin, counted as `modes` says.
    pub fn twin(machine: u32, step: u32, mode: Option<FailureMode>, modes: LabelModes) -> Self {
        Self {
            machine,
            step,
            label: mode.map(|m| m.as_str().to_owned()),
            counted: modes.counts(mode),
        }
    }

    /// The label for people (`unknown` when none).
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or("unknown")
    }
}

/// What a data set's positive rows come before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A counted failure: the failure classifier's label, with the event view (failures
    /// caught, false alarms).
    #[default]
    Failure,
    /// A NOK part: the quality classifier's label; failures are not counted and there is no
    /// event view.
    Nok,
}

/// A labelled feature matrix.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Rows × features, NaN = missing.
    pub x: Array2<f32>,
    /// Labels.
    pub y: Vec<bool>,
    /// The index of each row's machine (for splits by machine).
    pub machine: Vec<u32>,
    /// The step of each row within its machine (for splits by time and the event view).
    pub step: Vec<u32>,
    /// Feature names in column order.
    pub names: Vec<String>,
    /// Their hash.
    pub feature_set: String,
    /// Machine ids, by index.
    pub machine_ids: Vec<String>,
    /// Readings per machine, by index (including cold and unlabelled ones).
    pub readings: Vec<u32>,
    /// Every failure, by machine then step.
    pub failures: Vec<Failure>,
    /// Plant seconds between readings (median over the data).
    pub seconds_per_step: f64,
    /// How the rows were labelled.
    pub labels: LabelSpec,
    /// What a positive means, for the artifact and the model card.
    pub description: String,
    /// How to rebuild these features from raw data (None: the twin's windows, told by
    /// [`crate::train::train_on`] from the hash).
    pub recipe: Option<Box<dtwin_ml::artifact::FeatureRecipe>>,
    /// What the positive rows come before.
    pub target: Target,
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

    /// Number of machines.
    pub fn n_machines(&self) -> usize {
        self.machine_ids.len()
    }
}

/// Builds a [`Dataset`] machine by machine.
#[derive(Debug)]
pub struct DatasetBuilder {
    spec: LabelSpec,
    names: Vec<String>,
    hash: String,
    data: Vec<f32>,
    y: Vec<bool>,
    machine: Vec<u32>,
    step: Vec<u32>,
    machine_ids: Vec<String>,
    readings: Vec<u32>,
    failures: Vec<Failure>,
    gaps: Vec<f64>,
    target: Target,
}

impl DatasetBuilder {
    /// An empty data set labelled by `spec`.
    pub fn new(spec: LabelSpec) -> Self {
        let (names, hash) = feature_set(&spec.window);
        Self {
            spec,
            names,
            hash,
            data: Vec::new(),
            y: Vec::new(),
            machine: Vec::new(),
            step: Vec::new(),
            machine_ids: Vec::new(),
            readings: Vec::new(),
            failures: Vec::new(),
            gaps: Vec::new(),
            target: Target::Failure,
        }
    }

    /// Label NOK parts instead (the quality classifier's label): a row is positive when one
    /// of the next `horizon` readings made a NOK part (`quality_ok` false on a reading that
    /// reports no failure); no failure counts.
    pub fn nok(mut self) -> Self {
        self.target = Target::Nok;
        self
    }

    /// Adds one machine's readings, in the order they were taken.
    pub fn push_machine<'a>(&mut self, readings: impl IntoIterator<Item = &'a Telemetry>) {
        let index = self.machine_ids.len() as u32;
        let mut window = MachineWindow::new(&self.spec.window);
        let mut rows: Vec<(Vec<f64>, bool)> = Vec::new();
        let mut events = Vec::new();
        let mut id = String::new();
        let mut last_ts: Option<OffsetDateTime> = None;
        for (s, t) in readings.into_iter().enumerate() {
            if s == 0 {
                id = t.machine_id.to_string();
            }
            if let Some(prev) = last_ts {
                self.gaps.push((t.ts - prev).as_seconds_f64());
            }
            last_ts = Some(t.ts);
            let failed = t.failure == Some(true);
            // A reading that reports a failure made no part (the twin writes quality_ok false
            // there): only the other NOK readings are NOK parts.
            let nok = t.quality_ok == Some(false) && !failed;
            if failed {
                let mut f = Failure::twin(index, s as u32, t.failure_mode, self.spec.modes);
                f.counted &= self.target == Target::Failure;
                self.failures.push(f);
            }
            let counted = failed && self.spec.modes.counts(t.failure_mode);
            events.push(match self.target {
                Target::Failure => counted || (self.spec.include_nok && nok),
                Target::Nok => nok,
            });
            let fv = window.update(t);
            rows.push((fv.values, fv.cold));
        }
        let n = rows.len();
        let h = self.spec.horizon;
        for (t, (values, cold)) in rows.into_iter().enumerate() {
            if cold || t + h >= n {
                continue;
            }
            self.data.extend(values.iter().map(|&v| v as f32));
            self.y.push(events[t + 1..=t + h].iter().any(|&e| e));
            self.machine.push(index);
            self.step.push(t as u32);
        }
        self.machine_ids.push(id);
        self.readings.push(n as u32);
    }

    /// The data set.
    pub fn finish(mut self) -> Dataset {
        let n = self.y.len();
        let width = self.names.len();
        // The vector length is n × width by construction.
        let x = Array2::from_shape_vec((n, width), self.data).expect("rows have the feature width");
        let seconds_per_step = if self.gaps.is_empty() {
            f64::NAN
        } else {
            let mid = self.gaps.len() / 2;
            *self.gaps.select_nth_unstable_by(mid, f64::total_cmp).1
        };
        Dataset {
            x,
            y: self.y,
            machine: self.machine,
            step: self.step,
            names: self.names,
            feature_set: self.hash,
            machine_ids: self.machine_ids,
            readings: self.readings,
            failures: self.failures,
            seconds_per_step,
            description: match self.target {
                Target::Failure => self.spec.describe(),
                Target::Nok => format!("NOK part within the next {} readings", self.spec.horizon),
            },
            labels: self.spec,
            recipe: None,
            target: self.target,
        }
    }
}

/// The data set of recorded telemetry: rows grouped by machine (in order of first appearance),
/// each machine's rows in file order.
pub fn from_telemetry(rows: &[Telemetry], spec: LabelSpec) -> Dataset {
    telemetry_into(rows, DatasetBuilder::new(spec))
}

/// The quality data set of recorded telemetry: as [`from_telemetry`], labelled by NOK parts
/// within the horizon ([`DatasetBuilder::nok`]; `spec`'s modes and `include_nok` are unused).
pub fn quality_from_telemetry(rows: &[Telemetry], spec: LabelSpec) -> Dataset {
    telemetry_into(rows, DatasetBuilder::new(spec).nok())
}

fn telemetry_into(rows: &[Telemetry], mut b: DatasetBuilder) -> Dataset {
    let mut order: Vec<&str> = Vec::new();
    let mut by_machine: HashMap<&str, Vec<&Telemetry>> = HashMap::new();
    for t in rows {
        let list = by_machine.entry(t.machine_id.as_str()).or_default();
        if list.is_empty() {
            order.push(t.machine_id.as_str());
        }
        list.push(t);
    }
    for id in order {
        b.push_machine(by_machine[id].iter().copied());
    }
    b.finish()
}

/// Simulates the fleet and builds the labelled data set. `progress(machines_done)` is called
/// after each machine.
pub fn build(spec: &TwinDataSpec, progress: &dyn Fn(usize)) -> Dataset {
    simulate_into(spec, DatasetBuilder::new(label_spec(spec)), progress)
}

/// Simulates the fleet and builds the quality data set (NOK parts within the horizon, see
/// [`DatasetBuilder::nok`]).
pub fn build_quality(spec: &TwinDataSpec, progress: &dyn Fn(usize)) -> Dataset {
    simulate_into(spec, DatasetBuilder::new(label_spec(spec)).nok(), progress)
}

fn label_spec(spec: &TwinDataSpec) -> LabelSpec {
    LabelSpec {
        horizon: spec.horizon,
        include_nok: spec.include_nok,
        modes: spec.modes,
        window: spec.window.clone(),
    }
}

fn simulate_into(spec: &TwinDataSpec, mut b: DatasetBuilder, progress: &dyn Fn(usize)) -> Dataset {
    let sim = SimConfig {
        seed: spec.seed,
        plant_seconds_per_step: spec.plant_seconds_per_step,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(spec.machines, &sim);
    for (index, mut m) in fleet.machines.into_iter().enumerate() {
        let telemetry: Vec<Telemetry> = (0..spec.steps)
            .map(|s| {
                let ts = OffsetDateTime::UNIX_EPOCH
                    + time::Duration::seconds_f64(s as f64 * spec.plant_seconds_per_step);
                let id = m.id().clone();
                m.step().to_telemetry(&id, ts)
            })
            .collect();
        b.push_machine(&telemetry);
        progress(index + 1);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::MachineId;

    /// 14 readings of one machine, 60 s apart: an HDF failure at step 3, a bearing failure at
    /// step 7, a NOK part at step 12.
    fn sequence() -> Vec<Telemetry> {
        let id = MachineId::parse("m-1").unwrap();
        (0..14u32)
            .map(|s| {
                let ts = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(60 * i64::from(s));
                let mut t = Telemetry::new(id.clone(), ts, u64::from(s));
                t.temperature_c = Some(40.0 + f64::from(s));
                t.quality_ok = Some(s != 12);
                t.failure = Some(matches!(s, 3 | 7));
                t.failure_mode = match s {
                    3 => Some(FailureMode::Hdf),
                    7 => Some(FailureMode::Bearing),
                    _ => None,
                };
                t
            })
            .collect()
    }

    /// The steps labelled positive when `spec` labels [`sequence`].
    fn labelled(spec: LabelSpec) -> (Vec<u32>, Vec<u32>) {
        let d = from_telemetry(&sequence(), spec);
        let positive = d
            .step
            .iter()
            .zip(&d.y)
            .filter(|p| *p.1)
            .map(|p| *p.0)
            .collect();
        (d.step.clone(), positive)
    }

    #[test]
    fn horizon_labels_exactly_the_readings_before_a_counted_event() {
        let spec = LabelSpec {
            horizon: 3,
            window: WindowConfig {
                short: 3,
                long: 5,
                ..WindowConfig::default()
            },
            ..LabelSpec::default()
        };
        let d = from_telemetry(&sequence(), spec.clone());
        // Rows: warm windows (from step short − 1 = 2) whose horizon is inside the data
        // (t + 3 < 14): steps 2..=10.
        assert_eq!(d.step, (2..=10).collect::<Vec<u32>>());
        assert_eq!(d.machine, vec![0; 9]);
        assert_eq!((d.readings.clone(), d.seconds_per_step), (vec![14], 60.0));
        assert_eq!(d.machine_ids, vec!["m-1".to_owned()]);
        assert_eq!(
            d.failures,
            vec![
                Failure::twin(0, 3, Some(FailureMode::Hdf), LabelModes::Degradation),
                Failure::twin(0, 7, Some(FailureMode::Bearing), LabelModes::Degradation)
            ]
        );
        // Degradation failures only: the bearing failure at 7 makes steps 4, 5, 6 positive
        // (7 is in t+1..=t+3); the failing reading itself looks at 8..=10 and is negative.
        assert_eq!(
            d.y,
            [false, false, true, true, true, false, false, false, false]
        );
        // Every mode: the HDF failure at 3 adds step 2 (0 and 1 are cold).
        let all = LabelSpec {
            modes: LabelModes::All,
            ..spec.clone()
        };
        assert_eq!(labelled(all).1, [2, 4, 5, 6]);
        // NOK parts too: the NOK at 12 adds steps 9 and 10 (11 has no full horizon).
        let nok = LabelSpec {
            include_nok: true,
            ..spec.clone()
        };
        assert_eq!(labelled(nok).1, [4, 5, 6, 9, 10]);
        // NOK parts only (the quality label): the NOK at 12 makes steps 9 and 10 positive, no
        // failure counts.
        let q = quality_from_telemetry(&sequence(), spec.clone());
        assert_eq!(q.target, Target::Nok);
        let positive: Vec<u32> = q
            .step
            .iter()
            .zip(&q.y)
            .filter(|p| *p.1)
            .map(|p| *p.0)
            .collect();
        assert_eq!(positive, [9, 10]);
        assert!(q.failures.iter().all(|f| !f.counted));
        assert_eq!(q.description, "NOK part within the next 3 readings");
        // A failure reading the twin marks not OK is a failure, not a NOK part.
        let mut seq = sequence();
        seq[7].quality_ok = Some(false);
        let q7 = quality_from_telemetry(&seq, spec.clone());
        assert_eq!(q7.y, q.y);
        // A horizon of 1: only the reading right before the failure, and rows up to 12.
        let one = LabelSpec {
            horizon: 1,
            ..spec.clone()
        };
        let (steps, positive) = labelled(one);
        assert_eq!(steps, (2..=12).collect::<Vec<u32>>());
        assert_eq!(positive, [6]);
        assert_eq!(
            spec.describe(),
            "degradation failure (bearing, coolant, valve) within the next 3 readings"
        );
    }

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
        assert_eq!(d.readings, vec![200; 3]);
        assert_eq!(d.seconds_per_step, 60.0);
        let again = build(&spec, &|_| {});
        assert_eq!(again.y, d.y, "deterministic");
        // Every labelled row is positive exactly when a counted failure follows within the
        // horizon; with every mode counted there are more positives.
        let all = build(
            &TwinDataSpec {
                modes: LabelModes::All,
                ..spec.clone()
            },
            &|_| {},
        );
        for data in [&d, &all] {
            for i in 0..data.y.len() {
                let (m, s) = (data.machine[i], data.step[i]);
                let expected = data.failures.iter().any(|f| {
                    f.machine == m && f.step > s && f.step <= s + spec.horizon as u32 && f.counted
                });
                assert_eq!(data.y[i], expected, "row {i}");
            }
        }
        assert!(all.positive_rate() > d.positive_rate());
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
