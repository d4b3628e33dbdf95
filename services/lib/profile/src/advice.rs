//! What to change: a profile's controllable inputs ([`Control`]: bounds, step, cost of a
//! change) and the economics of the advice ([`AdviceSettings`]: what a failure costs, which
//! feature measures energy and what it costs), and the optimiser that finds the setting
//! minimising
//!
//! ```text
//! downtime_cost x risk(x) + sum_i cost_per_unit_i x |x_i - current_i| + energy_cost x (energy(x) - energy(current))
//! ```
//!
//! over the controls' grids, never raising the risk ([`optimise`]), and its advice for people
//! ([`advise`]: "run at 1,420 rpm: risk 0.81 -> 0.22, energy +3 %").
//!
//! Pure and deterministic: the caller scores a setting (its model and rules; the optimiser
//! only compares numbers), the search is a coordinate descent over each control's grid, coarse
//! then fine, with fixed tie-breaks, so the same inputs give the same advice.

use std::collections::HashMap;

/// Points of a control's grid tried in the coarse pass of a coordinate move (all of them
/// when the grid is smaller); the fine pass then tries every step within one coarse cell of
/// the best. Keeps a 1,000-point grid at about 60 scorings per move.
pub const COARSE_POINTS: usize = 24;

/// Passes over the controls at most (a pass that changes nothing ends the search first).
pub const MAX_PASSES: usize = 6;

/// The cost of a failure when a profile does not say (`[advice] downtime_cost`).
pub const DEFAULT_DOWNTIME_COST: f64 = 1000.0;

/// A setting an operator can change (`[[control]]` in a profile): one of its sensors, the
/// bounds the advice stays in, the step it moves by and what each unit of change costs
/// (throughput, wear, changeover), in the currency of [`AdviceSettings::downtime_cost`].
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// The sensor it sets.
    pub sensor: String,
    /// Smallest value advised.
    pub min: f64,
    /// Largest value advised.
    pub max: f64,
    /// The step between values advised (from `min`).
    pub step: f64,
    /// Cost of each unit of change away from the current value (either way).
    pub cost_per_unit: f64,
}

impl Control {
    /// `min, min + step, ..., max` (`max` included even when it is not a whole number of
    /// steps from `min`).
    pub fn grid(&self) -> Vec<f64> {
        let n = ((self.max - self.min) / self.step + 1e-9).floor() as usize;
        let mut g: Vec<f64> = (0..=n).map(|k| self.min + k as f64 * self.step).collect();
        if g.last().is_some_and(|&l| self.max - l > self.step * 1e-9) {
            g.push(self.max);
        }
        g
    }

    /// `v` within the bounds.
    pub fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.min, self.max)
    }
}

/// The economics of a profile's advice (`[advice]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdviceSettings {
    /// What a failure costs (downtime, repair): the risk is multiplied by it.
    pub downtime_cost: f64,
    /// The sensor or derived feature that measures energy use (e.g. `power_w`), if any.
    pub energy: Option<String>,
    /// Cost per unit of `energy` more (less saves as much).
    pub energy_cost: f64,
}

impl Default for AdviceSettings {
    fn default() -> Self {
        Self {
            downtime_cost: DEFAULT_DOWNTIME_COST,
            energy: None,
            energy_cost: 0.0,
        }
    }
}

/// What a setting scores: the risk (0..1) and the energy measure (NaN without one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Risk, 0..1.
    pub risk: f64,
    /// Energy measure (NaN when the profile has none).
    pub energy: f64,
}

/// A setting of the controls and what it scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The controls' values, in the order given.
    pub values: Vec<f64>,
    /// Its outcome.
    pub outcome: Outcome,
    /// The objective: downtime cost x risk + cost of the change + energy cost of the change.
    pub cost: f64,
}

/// The optimiser's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimum {
    /// The current setting (as given, even outside the bounds).
    pub current: Point,
    /// The setting advised: within the bounds, its risk never above the current one's (when
    /// the current setting is within the bounds), its objective never above it.
    pub advised: Point,
    /// Settings scored.
    pub evaluations: usize,
}

impl Optimum {
    /// Whether the advice changes anything.
    pub fn changes(&self) -> bool {
        self.current
            .values
            .iter()
            .zip(&self.advised.values)
            .any(|(a, b)| a != b)
    }
}

/// The objective of `outcome` at `values`, from `current` (whose energy is `energy0`).
fn objective(
    controls: &[Control],
    settings: &AdviceSettings,
    current: &[f64],
    energy0: f64,
    values: &[f64],
    outcome: Outcome,
) -> f64 {
    let change: f64 = controls
        .iter()
        .zip(values.iter().zip(current))
        .map(|(c, (v, c0))| c.cost_per_unit * (v - c0).abs())
        .sum();
    let energy = if outcome.energy.is_finite() && energy0.is_finite() {
        settings.energy_cost * (outcome.energy - energy0)
    } else {
        0.0
    };
    settings.downtime_cost * outcome.risk + change + energy
}

/// The setting of `controls` that minimises the objective (see the module docs) without
/// raising the risk, starting from `current` (one value per control; clamped into the
/// bounds to start). `score` gives the outcome of a setting (same order as `controls`); it is
/// called once per distinct setting.
///
/// # Panics
/// When `current` does not have one value per control (a caller bug).
pub fn optimise(
    controls: &[Control],
    settings: &AdviceSettings,
    current: &[f64],
    mut score: impl FnMut(&[f64]) -> Outcome,
) -> Optimum {
    assert_eq!(controls.len(), current.len(), "one value per control");
    let mut seen: HashMap<Vec<u64>, Outcome> = HashMap::new();
    let mut eval = |x: &[f64]| -> Outcome {
        let key: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
        *seen.entry(key).or_insert_with(|| score(x))
    };
    let now = eval(current);
    let cost_of = |x: &[f64], o: Outcome| objective(controls, settings, current, now.energy, x, o);
    let current_point = Point {
        values: current.to_vec(),
        outcome: now,
        cost: cost_of(current, now),
    };
    let mut x: Vec<f64> = controls
        .iter()
        .zip(current)
        .map(|(c, v)| c.clamp(*v))
        .collect();
    let start = eval(&x);
    let ceiling = start.risk;
    let mut best = (start, cost_of(&x, start));
    // A move must win by more than rounding.
    let eps = 1e-9 * (1.0 + settings.downtime_cost.abs());
    for _ in 0..MAX_PASSES {
        let mut moved = false;
        for (i, c) in controls.iter().enumerate() {
            let grid = c.grid();
            let coarse: Vec<f64> = if grid.len() <= COARSE_POINTS {
                grid.clone()
            } else {
                (0..COARSE_POINTS)
                    .map(|k| grid[(k * (grid.len() - 1)).div_ceil(COARSE_POINTS - 1)])
                    .collect()
            };
            let cell = (c.max - c.min) / (COARSE_POINTS - 1) as f64;
            let mut pick = |candidates: &mut dyn Iterator<Item = f64>,
                            x: &mut Vec<f64>,
                            best: &mut (Outcome, f64)|
             -> bool {
                let mut changed = false;
                for v in candidates {
                    if v == x[i] {
                        continue;
                    }
                    let mut y = x.clone();
                    y[i] = v;
                    let o = eval(&y);
                    if o.risk > ceiling || !o.risk.is_finite() {
                        continue;
                    }
                    let j = cost_of(&y, o);
                    // A tie goes to the setting closer to the current one.
                    let closer = (v - current[i]).abs() < (x[i] - current[i]).abs();
                    if j < best.1 - eps || (j <= best.1 && closer) {
                        *x = y;
                        *best = (o, j);
                        changed = true;
                    }
                }
                changed
            };
            let a = pick(&mut coarse.iter().copied(), &mut x, &mut best);
            let centre = x[i];
            let mut fine = grid
                .iter()
                .copied()
                .filter(|g| (g - centre).abs() <= cell + c.step * 1e-9);
            let b = pick(&mut fine, &mut x, &mut best);
            moved |= a || b;
        }
        if !moved {
            break;
        }
    }
    let advised = Point {
        values: x,
        outcome: best.0,
        cost: best.1,
    };
    Optimum {
        current: current_point,
        advised,
        evaluations: seen.len(),
    }
}

/// One control's change in an [`Advice`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The sensor.
    pub sensor: String,
    /// Its label.
    pub label: String,
    /// Its unit.
    pub unit: String,
    /// The current value.
    pub from: f64,
    /// The value advised.
    pub to: f64,
    /// `1,420 rpm`.
    pub to_text: String,
}

/// The optimiser's answer for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// The controls that change (none: keep the current settings).
    pub changes: Vec<Change>,
    /// The risk now.
    pub risk_before: f64,
    /// The risk at the advised setting.
    pub risk_after: f64,
    /// The energy measure's change in percent, when the profile has one.
    pub energy_percent: Option<f64>,
    /// The objective now and at the advised setting.
    pub cost_before: f64,
    /// The objective at the advised setting.
    pub cost_after: f64,
    /// One sentence: `run at 1,420 rpm: risk 0.81 -> 0.22, energy +3 %`.
    pub text: String,
}

/// `1,420` (thousands separated) with as many decimals as `step` needs (at most 3, trailing
/// zeros dropped: `45`, `37.5`).
pub fn format_value(x: f64, step: f64) -> String {
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 3.0) as usize
    } else {
        2
    };
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(a, b)| (a, b));
    let frac = frac.trim_end_matches('0');
    let mut grouped = String::new();
    for (k, ch) in int.chars().enumerate() {
        if k > 0 && (int.len() - k) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// The advice of `optimum` over `controls` of `profile`, in words.
pub fn advise(profile: &crate::Profile, controls: &[Control], optimum: &Optimum) -> Advice {
    let changes: Vec<Change> = controls
        .iter()
        .zip(optimum.current.values.iter().zip(&optimum.advised.values))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (from, to))| {
            let s = profile.sensor(&c.sensor);
            let unit = s.map_or_else(String::new, |s| s.unit.clone());
            let v = format_value(*to, c.step);
            Change {
                sensor: c.sensor.clone(),
                label: s.map_or_else(|| c.sensor.clone(), |s| s.label.clone()),
                to_text: if unit.is_empty() {
                    v
                } else {
                    format!("{v} {unit}")
                },
                unit,
                from: *from,
                to: *to,
            }
        })
        .collect();
    let (before, after) = (optimum.current.outcome, optimum.advised.outcome);
    let energy_percent = (before.energy.is_finite()
        && after.energy.is_finite()
        && before.energy.abs() > f64::EPSILON)
        .then(|| (after.energy - before.energy) / before.energy.abs() * 100.0);
    let text = if changes.is_empty() {
        format!(
            "keep the current settings: no change within the bounds lowers the risk ({:.2})",
            before.risk
        )
    } else {
        let settings: Vec<String> = changes
            .iter()
            .map(|c| {
                if c.unit.is_empty() {
                    format!("{} {}", c.label, c.to_text)
                } else {
                    c.to_text.clone()
                }
            })
            .collect();
        let mut t = format!(
            "run at {}: risk {:.2} -> {:.2}",
            settings.join(" and "),
            before.risk,
            after.risk
        );
        if let Some(e) = energy_percent {
            t.push_str(&format!(
                ", energy {}{:.0} %",
                if e >= 0.0 { "+" } else { "−" },
                e.abs()
            ));
        }
        t
    };
    Advice {
        changes,
        risk_before: before.risk,
        risk_after: after.risk,
        energy_percent,
        cost_before: optimum.current.cost,
        cost_after: optimum.advised.cost,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn control(sensor: &str, min: f64, max: f64, step: f64, cost: f64) -> Control {
        Control {
            sensor: sensor.to_owned(),
            min,
            max,
            step,
            cost_per_unit: cost,
        }
    }

    #[test]
    fn grids_include_both_bounds() {
        assert_eq!(
            control("a", 0.0, 1.0, 0.25, 0.0).grid(),
            [0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(
            control("a", 0.0, 1.0, 0.4, 0.0).grid(),
            [0.0, 0.4, 0.8, 1.0]
        );
        assert_eq!(control("a", 1200.0, 2800.0, 10.0, 0.0).grid().len(), 161);
    }

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(format_value(1420.0, 10.0), "1,420");
        assert_eq!(format_value(1234567.0, 1.0), "1,234,567");
        assert_eq!(format_value(37.5, 0.5), "37.5");
        assert_eq!(format_value(0.125, 0.005), "0.125");
        assert_eq!(format_value(-1500.0, 100.0), "-1,500");
        assert_eq!(format_value(999.0, 1.0), "999");
        assert_eq!(format_value(45.0, 0.5), "45");
    }

    /// A failure risk that falls as speed rises to 1,420 and as torque falls below 45 (a
    /// step, as rules are); energy = speed x torque.
    fn mill(x: &[f64]) -> Outcome {
        let speed = ((1420.0 - x[0]).max(0.0) / 400.0).min(0.5);
        let load = if x[1] > 45.0 { 0.3 } else { 0.0 };
        Outcome {
            risk: 0.1 + speed + load,
            energy: x[0] * x[1] / 10_000.0,
        }
    }

    fn settings() -> AdviceSettings {
        AdviceSettings {
            downtime_cost: 10_000.0,
            energy: Some("power".into()),
            energy_cost: 0.05,
        }
    }

    fn controls() -> Vec<Control> {
        vec![
            control("rpm", 1200.0, 2800.0, 10.0, 0.5),
            control("torque", 10.0, 70.0, 0.5, 20.0),
        ]
    }

    #[test]
    fn the_optimiser_finds_the_cheapest_safe_setting() {
        let o = optimise(&controls(), &settings(), &[1260.0, 60.0], mill);
        assert_eq!(o.advised.values, [1420.0, 45.0]);
        assert!((o.current.outcome.risk - 0.8).abs() < 1e-9);
        assert!((o.advised.outcome.risk - 0.1).abs() < 1e-9);
        assert!(o.evaluations < 400, "{}", o.evaluations);
        let profile = crate::Profile::milling();
        let ctl = vec![
            control("spindle_rpm", 1200.0, 2800.0, 10.0, 0.5),
            control("torque_nm", 10.0, 70.0, 0.5, 20.0),
        ];
        let a = advise(&profile, &ctl, &o);
        assert_eq!(
            a.text,
            "run at 1,420 rpm and 45 N·m: risk 0.80 -> 0.10, energy −15 %"
        );
        assert_eq!(a.changes.len(), 2);
    }

    #[test]
    fn a_safe_machine_is_told_to_keep_its_settings() {
        let o = optimise(&controls(), &settings(), &[1500.0, 40.0], mill);
        assert!(!o.changes(), "{o:?}");
        let a = advise(&crate::Profile::milling(), &controls(), &o);
        assert_eq!(
            a.text,
            "keep the current settings: no change within the bounds lowers the risk (0.10)"
        );
    }

    #[test]
    fn a_setting_outside_the_bounds_is_brought_inside() {
        let o = optimise(&controls(), &settings(), &[900.0, 40.0], mill);
        assert!(o.advised.values[0] >= 1200.0 && o.changes());
    }

    prop_compose! {
        fn problem()(n in 1usize..=3,
                     mins in proptest::collection::vec(-100.0f64..100.0, 3),
                     spans in proptest::collection::vec(0.5f64..500.0, 3),
                     steps in proptest::collection::vec(0.01f64..1.0, 3),
                     costs in proptest::collection::vec(0.0f64..5.0, 3),
                     at in proptest::collection::vec(0.0f64..1.0, 3),
                     targets in proptest::collection::vec(0.0f64..1.0, 3),
                     cliff in 0.0f64..1.0,
                     energy_cost in -0.5f64..0.5)
            -> (Vec<Control>, Vec<f64>, Vec<f64>, f64, f64) {
            let controls: Vec<Control> = (0..n).map(|i| control(
                &format!("c{i}"), mins[i], mins[i] + spans[i], spans[i] * steps[i] / 4.0, costs[i])).collect();
            let current = (0..n).map(|i| mins[i] + spans[i] * at[i]).collect();
            let targets = (0..n).map(|i| mins[i] + spans[i] * targets[i]).collect();
            (controls, current, targets, cliff, energy_cost)
        }
    }

    proptest! {
        /// Whatever the controls, costs and risk surface (a bowl with a cliff, as rules make),
        /// the advised setting is within the bounds, re-scores to the risk it reports, never
        /// riskier nor costlier than the current one, and the same every time.
        #[test]
        fn advice_is_in_bounds_no_worse_and_reproducible((controls, current, targets, cliff, energy_cost) in problem()) {
            let spans: Vec<f64> = controls.iter().map(|c| c.max - c.min).collect();
            let score = |x: &[f64]| {
                let d: f64 = x.iter().zip(&targets).zip(&spans).map(|((v, t), s)| ((v - t) / s).powi(2)).sum();
                let step = if (x[0] - controls[0].min) / spans[0] > cliff { 0.2 } else { 0.0 };
                Outcome { risk: (d / 3.0 + step).min(1.0), energy: x.iter().sum() }
            };
            let settings = AdviceSettings { downtime_cost: 1000.0, energy: Some("e".into()), energy_cost };
            let o = optimise(&controls, &settings, &current, score);
            for (c, v) in controls.iter().zip(&o.advised.values) {
                prop_assert!(*v >= c.min && *v <= c.max, "{v} outside {}..{}", c.min, c.max);
            }
            let again = score(&o.advised.values);
            prop_assert_eq!(again, o.advised.outcome);
            prop_assert!(o.advised.outcome.risk <= o.current.outcome.risk);
            prop_assert!(o.advised.cost <= o.current.cost + 1e-6);
            prop_assert_eq!(&optimise(&controls, &settings, &current, score), &o);
        }
    }
}
