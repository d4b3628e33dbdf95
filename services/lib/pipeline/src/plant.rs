//! A plant's own data through a machine profile: any CSV export with a machine-id column, a
//! time column and the profile's sensor columns, failure labels from a label column or from a
//! separate events log (machine, time, label: how plants keep failure and maintenance
//! records), labelled "a counted failure follows within the horizon" (readings or time).
//!
//! Features come from [`dtwin_windows::ProfileWindow`], the code the feature service runs for
//! the profile's machines live, each machine's readings in time order. Pure: text in, values
//! out; the CLI reads the files.
//!
//! Reading the files is [`read`] (its own module); labelling and features are here.
//!
//! Time: RFC 3339; `YYYY-MM-DD HH:MM:SS` (also with `T`, fractions, without seconds, or a bare
//! date) and `M/D/YYYY H:MM:SS AM` taken in UTC unless a time zone is given; or a plain number
//! such as a cycle count. One column holds one kind.

use crate::dataset::{Dataset, Failure, LabelModes, LabelSpec};
use dtwin_ml::artifact::FeatureRecipe;
use dtwin_profile::Profile;
use dtwin_windows::{profile_feature_set, ProfileWindow};
use ndarray::Array2;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Which columns of an export hold what (saved in the model's recipe, so `dtwin predict`
/// needs no flags).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Columns {
    /// The machine id column.
    pub id: String,
    /// The time column (None: file order, the row number as time).
    #[serde(default)]
    pub time: Option<String>,
    /// A failure-label column in the data itself (empty, `0`, `false`, `none`: no failure).
    #[serde(default)]
    pub label: Option<String>,
    /// IANA time zone of times written without an offset (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// How far ahead a label looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Horizon {
    /// This many readings of the machine.
    Readings(usize),
    /// This many seconds (or time-column units, for a plain-number time such as cycles).
    Time(f64),
}

impl std::str::FromStr for Horizon {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<usize>() {
            return if n >= 1 {
                Ok(Self::Readings(n))
            } else {
                Err("the horizon must be at least 1 reading".to_owned())
            };
        }
        dtwin_profile::duration::parse(s)
            .map(|d| Self::Time(d.as_secs_f64()))
            .ok_or_else(|| {
                format!("{s:?} is neither a number of readings (30) nor a duration (24h, 90m, 7d)")
            })
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Readings(n) => write!(f, "{n}"),
            Self::Time(s) => f.write_str(&dtwin_windows::profile::span_name(
                std::time::Duration::from_secs_f64(*s),
            )),
        }
    }
}

/// What the time column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeKind {
    /// Instants (seconds since the epoch).
    Instant,
    /// Plain numbers (cycles, hours of operation).
    Number,
    /// No time column: row order.
    Row,
}

/// One machine's readings, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its id.
    pub id: String,
    /// Time of each reading (seconds since the epoch, or the number as written).
    pub t: Vec<f64>,
    /// Sensor values, reading-major (`t.len()` × sensors), NaN where missing.
    pub values: Vec<f64>,
    /// Attribute codes, reading-major (`t.len()` × attributes).
    pub attrs: Vec<Option<usize>>,
    /// The label column's failure label per reading (None: no failure).
    pub labels: Vec<Option<String>>,
    /// The CSV line each reading came from.
    pub lines: Vec<usize>,
}

impl Series {
    /// Readings.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// True without readings.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
}

/// An export read through a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantData {
    /// Machines in order of first appearance.
    pub machines: Vec<Series>,
    /// What the time column holds.
    pub time: TimeKind,
    /// Rows left out: CSV line and why.
    pub skipped: Vec<(usize, String)>,
    /// Attribute values the profile does not list (read as unknown).
    pub unknown_attribute_values: usize,
    /// Columns of the file the profile does not use.
    pub unused_columns: Vec<String>,
}

impl PlantData {
    /// Readings kept.
    pub fn rows(&self) -> usize {
        self.machines.iter().map(Series::len).sum()
    }
}

/// A failure or maintenance record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The machine.
    pub machine: String,
    /// When.
    pub t: f64,
    /// Its label (None: a failure without a label).
    pub label: Option<String>,
}

/// Why an export cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    /// The CSV itself is broken.
    #[error("{file}: {source}")]
    Csv {
        /// The file.
        file: String,
        /// What broke.
        source: csv::Error,
    },
    /// A named column is not in the file.
    #[error("{file} has no column {column:?} ({what}); its columns: {columns}")]
    MissingColumn {
        /// The file.
        file: String,
        /// The column asked for.
        column: String,
        /// Who asked for it.
        what: String,
        /// The file's columns.
        columns: String,
    },
    /// An unknown time zone.
    #[error("unknown time zone {0:?}: give an IANA name such as Europe/Berlin or UTC")]
    TimeZone(String),
    /// The time column mixes numbers and instants.
    #[error("{file}:{line}: time {value:?} is {found}, but the column's earlier times are {expected}; one column holds one kind of time")]
    MixedTime {
        /// The file.
        file: String,
        /// Its line.
        line: usize,
        /// The cell.
        value: String,
        /// What it is.
        found: &'static str,
        /// What the column holds.
        expected: &'static str,
    },
    /// The label column is also a sensor or attribute of the profile: the model would read
    /// the answer from its input.
    #[error("--label-column {column:?} is also {what} of profile {profile}: the model would read the failure from its own input. Remove it from the profile (or draft it again with `dtwin profile init ... --label-column {column}`)")]
    LabelIsInput {
        /// The column.
        column: String,
        /// The sensor or attribute that reads it.
        what: String,
        /// The profile's id.
        profile: String,
    },
    /// Every row was left out.
    #[error("{file}: no usable row ({skipped} rows left out; first: {first})")]
    NoRows {
        /// The file.
        file: String,
        /// Rows left out.
        skipped: usize,
        /// The first reason.
        first: String,
    },
}

/// What labelling found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LabelReport {
    /// Failures per label (counted or not).
    pub failures: BTreeMap<String, usize>,
    /// Labels the model counts.
    pub counted: Vec<String>,
    /// Events of machines that are not in the data (ignored).
    pub events_of_unknown_machines: usize,
    /// Events after a machine's last reading (they still label the readings before them).
    pub events_after_data: usize,
    /// Rows labelled (warm, horizon known or positive).
    pub rows: usize,
    /// Positive rows among them.
    pub positives: usize,
}

/// Whether a failure labelled `label` counts under `profile`: its `counted` labels; a label
/// the profile does not list counts (a plant's log may carry labels the draft never saw: they
/// are failures all the same).
pub fn counts(profile: &Profile, label: Option<&str>) -> bool {
    match label {
        None => true,
        Some(l) => {
            let f = &profile.failures;
            f.labels.is_empty()
                || !f.labels.iter().any(|x| x == l)
                || f.counted.iter().any(|x| x == l)
        }
    }
}

/// The labelled data set: every machine's readings through the profile's windows in time
/// order; a reading is positive when a counted failure (label column or `events`) follows it
/// within `horizon` (strictly after it); cold readings, and readings whose horizon runs past
/// the data without a failure in it, are left out.
pub fn dataset(
    plant: &PlantData,
    profile: &Profile,
    events: &[Event],
    horizon: Horizon,
) -> (Dataset, LabelReport) {
    labelled(plant, profile, events, horizon, true, &|l| {
        counts(profile, l)
    })
}

/// The quality data set (the quality classifier's label): as [`dataset`], but a reading is
/// positive when a NOK part follows it within `horizon` (strictly after it); `nok[m][i]` says
/// whether reading `i` of machine `m` made one (see [`crate::quality::nok_flags`]). Failures
/// (the label column) are not read.
pub fn nok_dataset(
    plant: &PlantData,
    profile: &Profile,
    nok: &[Vec<bool>],
    horizon: Horizon,
) -> (Dataset, LabelReport) {
    let events: Vec<Event> = plant
        .machines
        .iter()
        .zip(nok)
        .flat_map(|(s, flags)| {
            flags
                .iter()
                .enumerate()
                .filter(|(_, &f)| f)
                .map(|(i, _)| Event {
                    machine: s.id.clone(),
                    t: s.t[i],
                    label: Some("NOK".to_owned()),
                })
        })
        .collect();
    let (mut d, report) = labelled(plant, profile, &events, horizon, false, &|_| true);
    d.target = crate::dataset::Target::Nok;
    d.description = format!(
        "NOK part within the next {}",
        match horizon {
            Horizon::Readings(h) => format!("{h} readings"),
            Horizon::Time(_) => horizon.to_string(),
        }
    );
    (d, report)
}

/// [`dataset`]'s work: failures from the label column (when `label_column`) and `events`,
/// counted as `counted` says.
fn labelled(
    plant: &PlantData,
    profile: &Profile,
    events: &[Event],
    horizon: Horizon,
    label_column: bool,
    counted_label: &dyn Fn(Option<&str>) -> bool,
) -> (Dataset, LabelReport) {
    let (names, hash) = profile_feature_set(profile);
    let width = names.len();
    let (k, a) = (profile.sensors.len(), profile.attributes.len());
    let mut report = LabelReport {
        counted: profile.failures.counted.clone(),
        ..LabelReport::default()
    };
    let mut by_machine: HashMap<&str, Vec<&Event>> = HashMap::new();
    let known: HashMap<&str, ()> = plant.machines.iter().map(|s| (s.id.as_str(), ())).collect();
    for e in events {
        if known.contains_key(e.machine.as_str()) {
            by_machine.entry(e.machine.as_str()).or_default().push(e);
        } else {
            report.events_of_unknown_machines += 1;
        }
    }
    let mut data = Vec::new();
    let (mut y, mut machine, mut step) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    let mut readings = Vec::new();
    for (mi, s) in plant.machines.iter().enumerate() {
        let n = s.len();
        let mi = mi as u32;
        gaps.extend(s.t.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0.0));
        // Failures: (time, step, label).
        let mut fails: Vec<(f64, usize, Option<String>)> = s
            .labels
            .iter()
            .enumerate()
            .filter(|_| label_column)
            .filter_map(|(i, l)| l.as_ref().map(|l| (s.t[i], i, Some(l.clone()))))
            .collect();
        for e in by_machine.get(s.id.as_str()).into_iter().flatten() {
            let at = s.t.partition_point(|&t| t < e.t);
            if at == n {
                report.events_after_data += 1;
            }
            fails.push((e.t, at, e.label.clone()));
        }
        fails.sort_by(|x, y| x.0.total_cmp(&y.0));
        let counted: Vec<(f64, usize)> = fails
            .iter()
            .filter(|f| counted_label(f.2.as_deref()))
            .map(|f| (f.0, f.1))
            .collect();
        for (_, at, label) in &fails {
            *report
                .failures
                .entry(label.clone().unwrap_or_else(|| "failure".to_owned()))
                .or_default() += 1;
            failures.push(Failure {
                machine: mi,
                step: *at as u32,
                label: label.clone(),
                counted: counted_label(label.as_deref()),
            });
        }
        let last_t = s.t.last().copied().unwrap_or(f64::NAN);
        let mut window = ProfileWindow::new(profile);
        for i in 0..n {
            let f = window.update(
                profile,
                s.t[i],
                &s.values[i * k..(i + 1) * k],
                &s.attrs[i * a..(i + 1) * a],
            );
            if f.cold {
                continue;
            }
            let (positive, known) = match horizon {
                Horizon::Readings(h) => (
                    counted.iter().any(|&(_, at)| at > i && at <= i + h),
                    i + h < n,
                ),
                Horizon::Time(hs) => (
                    counted.iter().any(|&(t, _)| t > s.t[i] && t <= s.t[i] + hs),
                    s.t[i] + hs <= last_t,
                ),
            };
            if !(positive || known) {
                continue;
            }
            data.extend(f.values.iter().map(|&v| v as f32));
            y.push(positive);
            machine.push(mi);
            step.push(i as u32);
        }
        readings.push(n as u32);
    }
    report.rows = y.len();
    report.positives = y.iter().filter(|&&p| p).count();
    // Plain-number times (cycles) have no seconds: the event view's minutes and machine-days
    // are then unknown (NaN, null in JSON), its counts in readings stay.
    let gap = median(&mut gaps);
    let seconds_per_step = if plant.time == TimeKind::Instant {
        gap
    } else {
        f64::NAN
    };
    let horizon_readings = match horizon {
        Horizon::Readings(h) => h,
        Horizon::Time(hs) if gap > 0.0 => (hs / gap).round().max(1.0) as usize,
        Horizon::Time(_) => 1,
    };
    let rows = y.len();
    // The vector length is rows × width by construction.
    let x = Array2::from_shape_vec((rows, width), data).expect("rows have the feature width");
    // The labels that count: the profile's, else those the data carries.
    let counted_labels = if profile.failures.counted.is_empty() {
        let seen: Vec<&str> = report
            .failures
            .keys()
            .map(String::as_str)
            .filter(|l| counts(profile, Some(l)))
            .collect();
        if seen.is_empty() {
            "any label".to_owned()
        } else {
            seen.join(", ")
        }
    } else {
        profile.failures.counted.join(", ")
    };
    let dataset = Dataset {
        x,
        y,
        machine,
        step,
        names,
        feature_set: hash,
        machine_ids: plant.machines.iter().map(|s| s.id.clone()).collect(),
        readings,
        failures,
        seconds_per_step,
        labels: LabelSpec {
            horizon: horizon_readings,
            include_nok: false,
            modes: LabelModes::All,
            window: dtwin_windows::WindowConfig::default(),
        },
        description: format!(
            "{} failure ({counted_labels}) within the next {}",
            profile.id,
            match horizon {
                Horizon::Readings(h) => format!("{h} readings"),
                Horizon::Time(_) => horizon.to_string(),
            }
        ),
        recipe: None,
        target: crate::dataset::Target::Failure,
    };
    (dataset, report)
}

/// The export as an EDA frame: the profile's sensors as columns (with units), every reading
/// classed as [`dataset`] labels it (cold or not, horizon known or not), the machines, their
/// failures and the attributes' tallies.
pub fn frame(
    plant: &PlantData,
    profile: &Profile,
    events: &[Event],
    horizon: Horizon,
) -> crate::eda::Frame {
    let (dataset, report) = dataset(plant, profile, events, horizon);
    let k = profile.sensors.len();
    let mut columns: Vec<crate::eda::Column> = profile
        .sensors
        .iter()
        .map(|s| crate::eda::Column {
            name: if s.unit.is_empty() {
                s.name.clone()
            } else {
                format!("{} [{}]", s.name, s.unit)
            },
            values: Vec::with_capacity(plant.rows()),
        })
        .collect();
    let (mut class, mut machine, mut step) = (Vec::new(), Vec::new(), Vec::new());
    for (mi, s) in plant.machines.iter().enumerate() {
        // Counted failures: steps (for a horizon in readings) and times (in time).
        let steps: Vec<usize> = dataset
            .failures
            .iter()
            .filter(|f| f.machine as usize == mi && f.counted)
            .map(|f| f.step as usize)
            .collect();
        let times: Vec<f64> = events
            .iter()
            .filter(|e| e.machine == s.id && counts(profile, e.label.as_deref()))
            .map(|e| e.t)
            .chain(
                s.labels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.as_deref().is_some_and(|l| counts(profile, Some(l))))
                    .map(|(i, _)| s.t[i]),
            )
            .collect();
        for i in 0..s.len() {
            for (c, col) in columns.iter_mut().enumerate() {
                let v = s.values[i * k + c];
                col.values.push((!v.is_nan()).then_some(v));
            }
            class.push(match horizon {
                Horizon::Readings(h) => steps.iter().any(|&at| at > i && at <= i + h),
                Horizon::Time(hs) => times.iter().any(|&t| t > s.t[i] && t <= s.t[i] + hs),
            });
            machine.push(mi as u32);
            step.push(i as u32);
        }
    }
    for c in &mut columns {
        c.values.shrink_to_fit();
    }
    let tallies = profile
        .attributes
        .iter()
        .enumerate()
        .map(|(a, attr)| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for s in &plant.machines {
                for i in 0..s.len() {
                    let v = s.attrs[i * profile.attributes.len() + a]
                        .map_or("unknown", |c| attr.values[c].as_str());
                    *counts.entry(v.to_owned()).or_default() += 1;
                }
            }
            (attr.label.clone(), counts.into_iter().collect())
        })
        .chain(std::iter::once((
            "failures by label".to_owned(),
            report.failures.clone().into_iter().collect(),
        )))
        .collect();
    crate::eda::Frame {
        kind: format!("{} export (profile {})", profile.label, profile.id),
        columns,
        other_missing: Vec::new(),
        class,
        class_label: dataset.description.clone(),
        tallies,
        machines: Some(crate::eda::Machines {
            ids: dataset.machine_ids.clone(),
            machine,
            step,
            failures: dataset.failures,
            modes: LabelModes::All,
        }),
    }
}

/// The recipe that rebuilds these features from a CSV: the profile's text, the columns, the
/// horizon.
pub fn recipe(profile_text: &str, columns: &Columns, horizon: Horizon) -> FeatureRecipe {
    FeatureRecipe::Profile {
        profile: profile_text.to_owned(),
        columns: serde_json::to_value(columns).unwrap_or_default(),
        horizon: horizon.to_string(),
    }
}

/// Every reading's features, machine by machine in time order (for scoring): the machine's
/// index, the reading's index in its series, the features and whether the window is cold.
pub fn features(plant: &PlantData, profile: &Profile) -> Vec<(usize, usize, Vec<f64>, bool)> {
    let (k, a) = (profile.sensors.len(), profile.attributes.len());
    let mut out = Vec::with_capacity(plant.rows());
    for (mi, s) in plant.machines.iter().enumerate() {
        let mut window = ProfileWindow::new(profile);
        for i in 0..s.len() {
            let f = window.update(
                profile,
                s.t[i],
                &s.values[i * k..(i + 1) * k],
                &s.attrs[i * a..(i + 1) * a],
            );
            out.push((mi, i, f.values, f.cold));
        }
    }
    out
}

/// Formats a reading's time as the file had it in kind: RFC 3339 for instants, the number
/// otherwise.
pub fn format_time(t: f64, kind: TimeKind) -> String {
    match kind {
        TimeKind::Instant => jiff::Timestamp::from_second(t.floor() as i64)
            .map(|ts| ts.to_string())
            .unwrap_or_else(|_| t.to_string()),
        TimeKind::Number | TimeKind::Row => t.to_string(),
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

mod read;

pub use read::{column_cells, parse_time, read, read_events};

#[cfg(test)]
mod tests;
