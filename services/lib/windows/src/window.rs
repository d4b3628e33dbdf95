//! Per-machine window state and the feature vector built from it.

use crate::names::{
    feature_names, FLAGS, PER_SENSOR, QUALITY, SENSORS, SHORT_WINDOW_STATS, WINDOW_STATS,
};
use crate::ring::RollingStats;
use crate::stats::{Ewma, Span, WindowStats};
use dtwin_schema::{Features, ProductType, Telemetry, FEATURES_SCHEMA};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Which features a window computes (see [`crate::names`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSetKind {
    /// The 40 features the shipped model is trained on.
    #[default]
    Default,
    /// The default features followed by every window statistic, EWMA, delta, threshold flags
    /// and data-quality features (needs a model trained on them).
    Extended,
}

impl std::str::FromStr for FeatureSetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "extended" => Ok(Self::Extended),
            other => Err(format!(
                "unknown feature set {other:?}; valid: default, extended"
            )),
        }
    }
}

/// Window sizes and the missing-value policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowConfig {
    /// Readings in the short count window (default set: mean, std, slope).
    pub short: usize,
    /// Readings in the long count window (default set: deviation of the last value from its
    /// mean).
    pub long: usize,
    /// Readings a missing sensor carries its last value forward before it counts as missing.
    pub carry_forward: u32,
    /// Also bound carry-forward in time: a value older than this many seconds (by message
    /// `ts`) counts as missing. `None`: bounded by `carry_forward` readings only.
    #[serde(default)]
    pub carry_forward_s: Option<u64>,
    /// Which features to compute.
    #[serde(default)]
    pub feature_set: FeatureSetKind,
    /// Time windows of the extended set, seconds of message time (default 60 and 600).
    #[serde(default = "default_time_windows")]
    pub time_windows_s: Vec<u64>,
    /// Most readings one time window holds (bounds memory for fast machines).
    #[serde(default = "default_max_time_points")]
    pub max_time_points: usize,
    /// Span of the EWMA in readings (`alpha = 2 / (span + 1)`).
    #[serde(default = "default_ewma_span")]
    pub ewma_span: u32,
}

fn default_time_windows() -> Vec<u64> {
    vec![60, 600]
}

const fn default_max_time_points() -> usize {
    1200
}

const fn default_ewma_span() -> u32 {
    10
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            short: 10,
            long: 60,
            carry_forward: 5,
            carry_forward_s: None,
            feature_set: FeatureSetKind::Default,
            time_windows_s: default_time_windows(),
            max_time_points: default_max_time_points(),
            ewma_span: default_ewma_span(),
        }
    }
}

impl WindowConfig {
    /// The default windows with the extended feature set.
    pub fn extended() -> Self {
        Self {
            feature_set: FeatureSetKind::Extended,
            ..Self::default()
        }
    }

    /// The count windows of the extended set: the short and the long one.
    pub fn count_windows(&self) -> Vec<usize> {
        if self.short == self.long {
            vec![self.short]
        } else {
            vec![self.short, self.long]
        }
    }

    fn spans(&self) -> Vec<Span> {
        let mut s: Vec<Span> = self.count_windows().into_iter().map(Span::Count).collect();
        s.extend(self.time_windows_s.iter().map(|&t| Span::Time {
            seconds: t as f64,
            max_points: self.max_time_points,
        }));
        s
    }
}

#[derive(Debug, Clone)]
struct ExtSensor {
    windows: Vec<WindowStats>,
    ewma: Ewma,
    /// The previous value pushed (for `delta`).
    prev: Option<f64>,
}

#[derive(Debug, Clone)]
struct SensorState {
    short: RollingStats,
    long: RollingStats,
    last: Option<f64>,
    /// `ts` of the last real value, seconds.
    last_ts: f64,
    /// Readings since the sensor last reported a real value.
    stale_for: u32,
    ext: Option<Box<ExtSensor>>,
}

/// The rolling state of one machine. Update it with every reading, in order.
#[derive(Debug, Clone)]
pub struct MachineWindow {
    cfg: WindowConfig,
    sensors: Vec<SensorState>,
    readings: u64,
    product_type: Option<ProductType>,
}

/// The features after one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    /// Values in [`crate::feature_names`] order; NaN means missing.
    pub values: Vec<f64>,
    /// True until the short window has filled.
    pub cold: bool,
    /// Readings seen so far (capped at the long window).
    pub window_len: u32,
    /// The latest value of every sensor after carry-forward.
    pub latest: BTreeMap<String, f64>,
    /// Readings missing (by `seq`) just before this one, as told to
    /// [`MachineWindow::update_with_gap`].
    pub gap: u64,
}

fn sensor_value(t: &Telemetry, i: usize) -> Option<f64> {
    match i {
        0 => t.temperature_c,
        1 => t.ambient_temperature_c,
        2 => t.vibration_mm_s,
        3 => t.pressure_bar,
        4 => t.spindle_rpm,
        5 => t.torque_nm,
        6 => t.tool_wear_min,
        _ => None,
    }
}

/// Seconds since the Unix epoch of `ts`, as f64.
fn seconds(ts: OffsetDateTime) -> f64 {
    ts.unix_timestamp() as f64 + f64::from(ts.nanosecond()) * 1e-9
}

fn flag(cond: Option<bool>) -> f64 {
    match cond {
        Some(true) => 1.0,
        Some(false) => 0.0,
        None => f64::NAN,
    }
}

fn known(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// AI4I's overstrain limit (N·m·min) for a product type.
fn overstrain_limit(p: ProductType) -> f64 {
    match p {
        ProductType::L => 11_000.0,
        ProductType::M => 12_000.0,
        ProductType::H => 13_000.0,
    }
}

impl MachineWindow {
    /// An empty window.
    pub fn new(cfg: &WindowConfig) -> Self {
        let ext = (cfg.feature_set == FeatureSetKind::Extended).then(|| {
            Box::new(ExtSensor {
                windows: cfg.spans().into_iter().map(WindowStats::new).collect(),
                ewma: Ewma::new(cfg.ewma_span),
                prev: None,
            })
        });
        let sensor = SensorState {
            short: RollingStats::new(cfg.short),
            long: RollingStats::new(cfg.long),
            last: None,
            last_ts: f64::NEG_INFINITY,
            stale_for: 0,
            ext,
        };
        Self {
            cfg: cfg.clone(),
            sensors: vec![sensor; SENSORS.len()],
            readings: 0,
            product_type: None,
        }
    }

    /// Readings seen so far.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// Bytes this machine's state takes (struct plus reserved heap). Count windows reserve
    /// their full size at once; time windows grow up to `max_time_points` readings each.
    pub fn state_bytes(&self) -> usize {
        let mut bytes = std::mem::size_of::<Self>()
            + self.sensors.capacity() * std::mem::size_of::<SensorState>();
        for s in &self.sensors {
            bytes += s.short.heap_bytes() + s.long.heap_bytes();
            if let Some(e) = &s.ext {
                bytes += std::mem::size_of::<ExtSensor>()
                    + e.windows.capacity() * std::mem::size_of::<WindowStats>()
                    + e.windows.iter().map(WindowStats::heap_bytes).sum::<usize>();
            }
        }
        bytes
    }

    /// Adds one reading and returns the features after it.
    pub fn update(&mut self, t: &Telemetry) -> FeatureVector {
        self.update_with_gap(t, 0)
    }

    /// Adds one reading that follows `gap` missing readings (known from `seq`) and returns the
    /// features after it. The gap only shows in [`FeatureVector::gap`] and in the extended
    /// set's `gap_readings`: the windows hold the readings that arrived.
    pub fn update_with_gap(&mut self, t: &Telemetry, gap: u64) -> FeatureVector {
        self.readings += 1;
        if t.product_type.is_some() {
            self.product_type = t.product_type;
        }
        let carry = self.cfg.carry_forward;
        let max_age = self.cfg.carry_forward_s.map(|s| s as f64);
        let ts = seconds(t.ts);
        let mut values = Vec::with_capacity(SENSORS.len() * PER_SENSOR + 5);
        let mut latest = BTreeMap::new();
        let mut now = [f64::NAN; SENSORS.len()];
        let (mut stale, mut missing) = (0u32, 0u32);
        for (i, s) in self.sensors.iter_mut().enumerate() {
            let value = match sensor_value(t, i) {
                Some(v) => {
                    s.last = Some(v);
                    s.last_ts = ts;
                    s.stale_for = 0;
                    Some(v)
                }
                None => {
                    s.stale_for = s.stale_for.saturating_add(1);
                    let fresh = max_age.is_none_or(|m| ts - s.last_ts <= m);
                    let v = s.last.filter(|_| s.stale_for <= carry && fresh);
                    if v.is_some() {
                        stale += 1;
                    }
                    v
                }
            };
            match value {
                Some(v) => {
                    s.short.push(v);
                    s.long.push(v);
                    if let Some(e) = &mut s.ext {
                        for w in &mut e.windows {
                            w.push(ts, v);
                        }
                        e.ewma.push(v);
                    }
                    now[i] = v;
                    latest.insert(SENSORS[i].to_owned(), v);
                    values.extend([
                        v,
                        s.short.mean(),
                        s.short.std(),
                        s.short.slope(),
                        v - s.long.mean(),
                    ]);
                }
                None => {
                    missing += 1;
                    values.extend([f64::NAN; PER_SENSOR]);
                }
            }
        }
        let [temp, ambient, vib, _pressure, rpm, torque, wear] = now;
        let temp_diff = temp - ambient;
        let power = torque * rpm * std::f64::consts::TAU / 60.0;
        let strain = wear * torque;
        values.push(temp_diff);
        values.push(power);
        values.push(strain);
        values.push(temp * vib);
        values.push(match self.product_type {
            Some(ProductType::L) => 0.0,
            Some(ProductType::M) => 1.0,
            Some(ProductType::H) => 2.0,
            None => f64::NAN,
        });
        if self.cfg.feature_set == FeatureSetKind::Extended {
            self.extend(&now, &mut values);
            let [heat, pwr, strain_f, wear_f, vib_f] = [
                known(temp_diff)
                    .zip(known(rpm))
                    .map(|(d, r)| d < 8.6 && r < 1380.0),
                known(power).map(|p| !(3500.0..=9000.0).contains(&p)),
                known(strain)
                    .zip(self.product_type)
                    .map(|(s, p)| s > overstrain_limit(p)),
                known(wear).map(|w| w >= 200.0),
                known(vib).map(|v| v > 7.1),
            ];
            debug_assert_eq!(FLAGS.len(), 5);
            values.extend([
                flag(heat),
                flag(pwr),
                flag(strain_f),
                flag(wear_f),
                flag(vib_f),
            ]);
            debug_assert_eq!(QUALITY.len(), 3);
            values.extend([gap as f64, f64::from(stale), f64::from(missing)]);
        }
        FeatureVector {
            values,
            cold: self.readings < self.cfg.short as u64,
            window_len: self.readings.min(self.cfg.long as u64) as u32,
            latest,
            gap,
        }
    }

    /// The extended per-sensor block: delta, EWMA and every window's statistics.
    fn extend(&mut self, now: &[f64; SENSORS.len()], values: &mut Vec<f64>) {
        let width =
            2 + SHORT_WINDOW_STATS.len() + WINDOW_STATS.len() * (self.cfg.spans().len() - 1);
        for (s, &v) in self.sensors.iter_mut().zip(now) {
            let Some(e) = &mut s.ext else { continue };
            if v.is_nan() {
                values.extend(std::iter::repeat_n(f64::NAN, width));
                continue;
            }
            values.push(e.prev.map_or(f64::NAN, |p| v - p));
            e.prev = Some(v);
            values.push(e.ewma.value());
            for (i, w) in e.windows.iter().enumerate() {
                if i == 0 {
                    // The short count window: mean, std and slope are in the default block.
                    values.extend([w.min(), w.max()]);
                } else {
                    values.extend([w.mean(), w.std(), w.min(), w.max(), w.slope()]);
                }
            }
        }
    }
}

impl FeatureVector {
    /// The `dtwin.features.v1` message for this vector.
    pub fn to_message(
        &self,
        names: &[String],
        feature_set: &str,
        source: &Telemetry,
        now: OffsetDateTime,
    ) -> Features {
        let values = names
            .iter()
            .zip(&self.values)
            .map(|(n, v)| (n.clone(), v.is_finite().then_some(*v)))
            .collect();
        Features {
            schema: FEATURES_SCHEMA.to_owned(),
            machine_id: source.machine_id.clone(),
            ts: now,
            source_ts: source.ts,
            seq: source.seq,
            feature_set: feature_set.to_owned(),
            window_len: self.window_len,
            cold: self.cold,
            values,
            latest: self.latest.clone(),
            product_type: source.product_type,
            gap: self.gap,
            profile: None,
        }
    }
}

/// Reads a model input row from a features message in `names` order (missing → NaN).
pub fn row_from_message(features: &Features, names: &[String]) -> Vec<f32> {
    names
        .iter()
        .map(|n| {
            features
                .values
                .get(n)
                .copied()
                .flatten()
                .map_or(f32::NAN, |v| v as f32)
        })
        .collect()
}

/// The number of features for `cfg` (checked against the names in tests).
pub fn feature_count(cfg: &WindowConfig) -> usize {
    feature_names(cfg).len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::MachineId;

    fn reading(seq: u64, temp: Option<f64>, vib: f64) -> Telemetry {
        let mut t = Telemetry::new(
            MachineId::parse("m").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
            seq,
        );
        t.temperature_c = temp;
        t.ambient_temperature_c = Some(25.0);
        t.vibration_mm_s = Some(vib);
        t.spindle_rpm = Some(1500.0);
        t.torque_nm = Some(40.0);
        t.tool_wear_min = Some(100.0);
        t.product_type = Some(ProductType::M);
        t
    }

    #[test]
    fn vector_matches_names_and_flags_cold() {
        let cfg = WindowConfig::default();
        let names = feature_names(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let f = w.update(&reading(1, Some(35.0), 2.0));
        assert_eq!(f.values.len(), names.len());
        assert!(f.cold);
        for i in 2..=10 {
            let f = w.update(&reading(i, Some(35.0), 2.0 + i as f64));
            assert_eq!(f.cold, i < 10);
        }
        let f = w.update(&reading(11, Some(35.0), 13.0));
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!((f.values[idx("vibration_mm_s_slope_10")] - 1.0).abs() < 1e-9);
        assert_eq!(f.values[idx("temp_diff_c")], 10.0);
        assert!(
            (f.values[idx("power_w")] - 40.0 * 1500.0 * std::f64::consts::TAU / 60.0).abs() < 1e-6
        );
        assert_eq!(f.values[idx("strain_nm_min")], 4000.0);
        assert_eq!(f.values[idx("product_type")], 1.0);
        assert!(
            f.values[idx("pressure_bar")].is_nan(),
            "never reported → missing"
        );
    }

    #[test]
    fn missing_sensor_carries_forward_then_goes_missing() {
        let cfg = WindowConfig {
            carry_forward: 2,
            ..WindowConfig::default()
        };
        let mut w = MachineWindow::new(&cfg);
        w.update(&reading(1, Some(40.0), 2.0));
        assert_eq!(w.update(&reading(2, None, 2.0)).values[0], 40.0);
        assert_eq!(w.update(&reading(3, None, 2.0)).values[0], 40.0);
        let f = w.update(&reading(4, None, 2.0));
        assert!(f.values[0].is_nan());
        assert!(!f.latest.contains_key("temperature_c"));
        assert_eq!(w.update(&reading(5, Some(41.0), 2.0)).values[0], 41.0);
    }

    #[test]
    fn message_round_trips_to_a_model_row() {
        let cfg = WindowConfig::default();
        let (names, hash) = crate::feature_set(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let t = reading(1, Some(35.0), 2.0);
        let f = w.update(&t);
        let msg = f.to_message(&names, &hash, &t, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(msg.values["temperature_c"], Some(35.0));
        assert_eq!(msg.values["pressure_bar"], None);
        let row = row_from_message(&msg, &names);
        assert_eq!(row.len(), feature_count(&cfg));
        assert_eq!(row[0], 35.0);
        assert!(row[15].is_nan());
    }

    fn idx(names: &[String], n: &str) -> usize {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n}"))
    }

    #[test]
    fn extended_features_name_every_value() {
        let cfg = WindowConfig::extended();
        let names = feature_names(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let mut last = None;
        for i in 0..120u64 {
            let mut t = reading(i + 1, Some(35.0), 2.0 + i as f64 * 0.1);
            t.ts = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64 * 2);
            let gap = u64::from(i == 119) * 3;
            let f = w.update_with_gap(&t, gap);
            assert_eq!(f.values.len(), names.len());
            last = Some(f);
        }
        let f = last.unwrap();
        let v = |n: &str| f.values[idx(&names, n)];
        let vib = 2.0 + 119.0 * 0.1;
        assert!((v("vibration_mm_s_max_60") - vib).abs() < 1e-9);
        assert!((v("vibration_mm_s_min_60") - (vib - 5.9)).abs() < 1e-9);
        assert!((v("vibration_mm_s_min_10") - (vib - 0.9)).abs() < 1e-9);
        // 0.1 per reading, a reading every 2 s.
        assert!((v("vibration_mm_s_slope_60s") - 0.05).abs() < 1e-9);
        assert!((v("vibration_mm_s_slope_600s") - 0.05).abs() < 1e-9);
        assert!((v("vibration_mm_s_delta") - 0.1).abs() < 1e-9);
        assert!(v("vibration_mm_s_ewma_10") < vib && v("vibration_mm_s_ewma_10") > vib - 1.0);
        assert_eq!(v("temperature_c_std_600s"), 0.0);
        assert_eq!(v("flag_vibration_high"), 1.0);
        assert_eq!(v("flag_tool_wear_high"), 0.0);
        assert_eq!(v("flag_heat_dissipation"), 0.0);
        assert_eq!(v("gap_readings"), 3.0);
        assert_eq!(f.gap, 3);
        assert_eq!(v("missing_sensors"), 1.0, "pressure never reported");
        assert!(v("pressure_bar_max_600s").is_nan());
        assert!(v("flag_power_out_of_band") == 0.0);
    }

    #[test]
    fn carry_forward_is_also_bounded_in_time_when_asked() {
        let cfg = WindowConfig {
            carry_forward: 100,
            carry_forward_s: Some(30),
            ..WindowConfig::extended()
        };
        let names = feature_names(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let at = |s: i64, temp| {
            let mut t = reading(s as u64 + 1, temp, 2.0);
            t.ts = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
            t
        };
        w.update(&at(0, Some(40.0)));
        let f = w.update(&at(20, None));
        assert_eq!(f.values[0], 40.0);
        assert_eq!(f.values[idx(&names, "stale_sensors")], 1.0);
        let f = w.update(&at(31, None));
        assert!(f.values[0].is_nan(), "older than 30 s");
        assert_eq!(f.values[idx(&names, "stale_sensors")], 0.0);
        assert_eq!(f.values[idx(&names, "missing_sensors")], 2.0);
    }

    #[test]
    fn state_per_machine_is_bounded() {
        for (label, cfg) in [
            ("default", WindowConfig::default()),
            ("extended", WindowConfig::extended()),
        ] {
            let mut w = MachineWindow::new(&cfg);
            let mut peak = 0;
            // Two hours at 1 Hz: every window full, time windows at their steady size.
            for i in 0..7200u64 {
                let mut t = reading(i + 1, Some(35.0 + (i % 7) as f64), 2.0);
                t.pressure_bar = Some(6.0);
                t.ts = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64);
                w.update(&t);
                peak = peak.max(w.state_bytes());
            }
            println!("state per machine ({label}, 1 Hz, full windows): {peak} bytes");
            let bound = match cfg.feature_set {
                FeatureSetKind::Default => 8 * 1024,
                // 7 sensors x (10 + 60 + 61 + 601 readings x 32 bytes, with VecDeque's
                // power-of-two growth).
                FeatureSetKind::Extended => 7 * 32 * 2048 + 16 * 1024,
            };
            assert!(peak < bound, "{label}: {peak} >= {bound}");
        }
    }

    proptest::proptest! {
        #[test]
        fn extended_window_stats_match_a_naive_recomputation(
            xs in proptest::collection::vec((0u8..4, 0.0f64..50.0), 1..150),
        ) {
            let cfg = WindowConfig { short: 4, long: 9, time_windows_s: vec![7], ..WindowConfig::extended() };
            let names = feature_names(&cfg);
            let mut w = MachineWindow::new(&cfg);
            let mut history: Vec<(i64, f64)> = Vec::new();
            let mut t = 0i64;
            for (i, &(dt, x)) in xs.iter().enumerate() {
                t += i64::from(dt);
                let mut r = reading(i as u64 + 1, Some(30.0), x);
                r.ts = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(t);
                let f = w.update(&r);
                history.push((t, x));
                let v = |n: &str| f.values[idx(&names, n)];
                let check = |name: &str, win: &[f64]| -> Result<(), proptest::test_runner::TestCaseError> {
                    let n = win.len() as f64;
                    let mean = win.iter().sum::<f64>() / n;
                    let std = (win.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                    let min = win.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = win.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let (got_mean, got_std) = (
                        v(&format!("vibration_mm_s_mean_{name}")),
                        v(&format!("vibration_mm_s_std_{name}")),
                    );
                    proptest::prop_assert!((got_mean - mean).abs() < 1e-9, "mean {} vs {}", got_mean, mean);
                    proptest::prop_assert!((got_std - std).abs() < 1e-6, "std {} vs {}", got_std, std);
                    proptest::prop_assert_eq!(v(&format!("vibration_mm_s_min_{name}")), min);
                    proptest::prop_assert_eq!(v(&format!("vibration_mm_s_max_{name}")), max);
                    Ok(())
                };
                let last9: Vec<f64> = history.iter().rev().take(9).map(|p| p.1).collect();
                check("9", &last9)?;
                let last4: Vec<f64> = history.iter().rev().take(4).map(|p| p.1).collect();
                proptest::prop_assert_eq!(v("vibration_mm_s_min_4"), last4.iter().copied().fold(f64::INFINITY, f64::min));
                proptest::prop_assert_eq!(v("vibration_mm_s_max_4"), last4.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                let in7: Vec<f64> = history.iter().filter(|p| p.0 >= t - 7).map(|p| p.1).collect();
                check("7s", &in7)?;
                let prev = history.len().checked_sub(2).map(|j| history[j].1);
                match prev {
                    Some(p) => proptest::prop_assert!((v("vibration_mm_s_delta") - (x - p)).abs() < 1e-12),
                    None => proptest::prop_assert!(v("vibration_mm_s_delta").is_nan()),
                }
            }
        }
    }
}
