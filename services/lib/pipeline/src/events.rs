//! The event-level view practitioners use: alerts and failures instead of rows.
//!
//! Rows say little on their own (a failure is preceded by `horizon` positive rows, and an
//! alarm one reading too early counts as a false positive). What matters on the shop floor:
//!
//! - **Alerts** are raised as the alerter raises them: when `confirm_k` of the last
//!   `confirm_n` readings alarm (`p >= threshold`); an alert stays open until `resolve_after`
//!   consecutive readings do not alarm, or until the machine fails (it is then repaired).
//! - An alert is **true** when the machine fails while it is open or within `horizon` readings
//!   after its last open reading; otherwise it is a **false alarm**. Alerts whose `horizon`
//!   readings after closing run past the end of the data are not judged (pending).
//! - **False-alarm share** = false alarms / judged alerts. **False alarms per machine-day** =
//!   false alarms / (machines × days of readings).
//! - A failure is **caught** when an alert was open at one of the `horizon` readings before it;
//!   its **lead time** is the failure's reading minus the start of the latest such alert.
//!   Failures with no scored reading in that window (right after the start, while the window
//!   is cold) are not scored.
//! - Only failures the label counts ([`Failure::counted`]) make an alert true and enter the event
//!   recall; the others are listed per mode (caught or not) for information.

use crate::dataset::Failure;
use std::collections::BTreeMap;

/// How alarms become alerts (the alerter's defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertPolicy {
    /// Alarming readings among the last `confirm_n` needed to raise an alert.
    pub confirm_k: usize,
    /// Size of the confirmation window.
    pub confirm_n: usize,
    /// Consecutive quiet readings that resolve an alert.
    pub resolve_after: usize,
    /// A reading counts as quiet only below this probability (hysteresis; capped at the
    /// threshold).
    pub resolve_below: f32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            confirm_k: 2,
            confirm_n: 3,
            resolve_after: 3,
            resolve_below: 0.3,
        }
    }
}

/// Caught / total of one failure mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModeCount {
    /// Failures scored.
    pub failures: usize,
    /// Failures caught.
    pub caught: usize,
}

/// The event-level metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventReport {
    /// Failures of the label's modes scored.
    pub failures: usize,
    /// Of them, caught by an alert.
    pub caught: usize,
    /// `caught / failures`: share of failures preceded by an alert.
    pub event_recall: f64,
    /// Failures of other modes scored, reported apart.
    pub other_failures: usize,
    /// Of them, caught.
    pub other_caught: usize,
    /// Failures not scored (no scored reading before them).
    pub unscored_failures: usize,
    /// Per failure mode (all modes).
    pub per_mode: BTreeMap<String, ModeCount>,
    /// Judged alerts.
    pub alerts: usize,
    /// Alerts not followed by a failure.
    pub false_alarms: usize,
    /// Alerts not judged yet (too close to the end of the data).
    pub pending_alerts: usize,
    /// `false_alarms / alerts`.
    pub false_alarm_share: f64,
    /// Machine-days of readings.
    pub machine_days: f64,
    /// `false_alarms / machine_days`.
    pub false_alarms_per_machine_day: f64,
    /// Median lead time of caught failures of the label's modes, readings.
    pub median_lead_readings: f64,
    /// The same in minutes of plant time.
    pub median_lead_minutes: f64,
}

/// One machine's scored readings.
#[derive(Debug, Clone)]
pub struct MachineScores<'a> {
    /// Readings of the machine (steps `0..readings`).
    pub readings: u32,
    /// `(step, probability)` of every scored reading, by step.
    pub scores: Vec<(u32, f32)>,
    /// The machine's failures, by step.
    pub failures: Vec<&'a Failure>,
}

#[derive(Debug, Clone, Copy)]
struct Alert {
    start: u32,
    /// Last step it was open.
    end: u32,
}

/// Alerts of one machine and, per failure, the alert that caught it (if any).
fn machine_alerts(m: &MachineScores<'_>, threshold: f32, policy: &AlertPolicy) -> Vec<Alert> {
    let mut scores = vec![None; m.readings as usize];
    for &(s, p) in &m.scores {
        if let Some(slot) = scores.get_mut(s as usize) {
            *slot = Some(p);
        }
    }
    let resolve_below = policy.resolve_below.min(threshold);
    let mut fail_at = vec![false; m.readings as usize];
    for f in &m.failures {
        if let Some(slot) = fail_at.get_mut(f.step as usize) {
            *slot = true;
        }
    }
    let mut alerts = Vec::new();
    let mut open: Option<Alert> = None;
    let mut recent: Vec<bool> = Vec::new();
    let mut quiet = 0;
    for s in 0..m.readings {
        if fail_at[s as usize] {
            // The reading that reports the failure: any open alert was right; repair.
            if let Some(a) = open.take() {
                alerts.push(a);
            }
            recent.clear();
            quiet = 0;
        }
        let Some(p) = scores[s as usize] else {
            continue;
        };
        let alarm = p >= threshold;
        recent.push(alarm);
        if recent.len() > policy.confirm_n {
            recent.remove(0);
        }
        match open.as_mut() {
            Some(a) => {
                quiet = if p < resolve_below { quiet + 1 } else { 0 };
                if quiet >= policy.resolve_after {
                    alerts.push(*a);
                    open = None;
                    recent.clear();
                    quiet = 0;
                } else {
                    a.end = s;
                }
            }
            None => {
                if recent.iter().filter(|&&b| b).count() >= policy.confirm_k {
                    open = Some(Alert { start: s, end: s });
                    quiet = 0;
                }
            }
        }
    }
    alerts.extend(open);
    alerts
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The event-level report over `machines` at `threshold`, with labels looking `horizon`
/// readings ahead, counting failures of `modes`, readings `seconds_per_step` apart.
pub fn event_report(
    machines: &[MachineScores<'_>],
    threshold: f32,
    horizon: u32,
    seconds_per_step: f64,
    policy: &AlertPolicy,
) -> EventReport {
    let mut r = EventReport {
        failures: 0,
        caught: 0,
        event_recall: f64::NAN,
        other_failures: 0,
        other_caught: 0,
        unscored_failures: 0,
        per_mode: BTreeMap::new(),
        alerts: 0,
        false_alarms: 0,
        pending_alerts: 0,
        false_alarm_share: f64::NAN,
        machine_days: 0.0,
        false_alarms_per_machine_day: f64::NAN,
        median_lead_readings: f64::NAN,
        median_lead_minutes: f64::NAN,
    };
    let mut leads = Vec::new();
    for m in machines {
        r.machine_days += f64::from(m.readings) * seconds_per_step / 86_400.0;
        let alerts = machine_alerts(m, threshold, policy);
        for a in &alerts {
            let true_alert = m
                .failures
                .iter()
                .any(|f| f.counted && f.step > a.start && f.step <= a.end + horizon);
            if true_alert {
                r.alerts += 1;
            } else if a.end + horizon >= m.readings {
                r.pending_alerts += 1;
            } else {
                r.alerts += 1;
                r.false_alarms += 1;
            }
        }
        for f in &m.failures {
            let from = f.step.saturating_sub(horizon);
            let scored = m.scores.iter().any(|&(s, _)| s >= from && s < f.step);
            if !scored {
                r.unscored_failures += 1;
                continue;
            }
            let by = alerts
                .iter()
                .filter(|a| a.start < f.step && a.end >= from)
                .map(|a| a.start)
                .max();
            let mode = f.label().to_lowercase();
            let count = r.per_mode.entry(mode).or_default();
            count.failures += 1;
            count.caught += usize::from(by.is_some());
            if f.counted {
                r.failures += 1;
                if let Some(start) = by {
                    r.caught += 1;
                    leads.push(f64::from(f.step - start));
                }
            } else {
                r.other_failures += 1;
                r.other_caught += usize::from(by.is_some());
            }
        }
    }
    if r.failures > 0 {
        r.event_recall = r.caught as f64 / r.failures as f64;
    }
    if r.alerts > 0 {
        r.false_alarm_share = r.false_alarms as f64 / r.alerts as f64;
    }
    if r.machine_days > 0.0 {
        r.false_alarms_per_machine_day = r.false_alarms as f64 / r.machine_days;
    }
    r.median_lead_readings = median(&mut leads);
    r.median_lead_minutes = r.median_lead_readings * seconds_per_step / 60.0;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::LabelModes;
    use dtwin_schema::FailureMode;

    fn fail(step: u32, mode: FailureMode) -> Failure {
        Failure::twin(0, step, Some(mode), LabelModes::Degradation)
    }

    fn scores(readings: u32, alarm_steps: &[u32]) -> Vec<(u32, f32)> {
        (0..readings)
            .map(|s| (s, if alarm_steps.contains(&s) { 0.9 } else { 0.1 }))
            .collect()
    }

    #[test]
    fn a_confirmed_alert_before_a_failure_catches_it_with_its_lead_time() {
        let f = [fail(50, FailureMode::Bearing)];
        let m = MachineScores {
            readings: 100,
            scores: scores(100, &[40, 41, 42, 43, 44, 45, 46, 47, 48, 49]),
            failures: f.iter().collect(),
        };
        let r = event_report(&[m], 0.5, 10, 60.0, &AlertPolicy::default());
        assert_eq!(
            (r.failures, r.caught, r.alerts, r.false_alarms),
            (1, 1, 1, 0)
        );
        // Confirmed at the second alarm (step 41): lead 9 readings = 9 minutes.
        assert_eq!(r.median_lead_readings, 9.0);
        assert_eq!(r.median_lead_minutes, 9.0);
        assert_eq!(
            r.per_mode["bearing"],
            ModeCount {
                failures: 1,
                caught: 1
            }
        );
        assert!((r.machine_days - 100.0 * 60.0 / 86_400.0).abs() < 1e-12);
    }

    #[test]
    fn single_spikes_do_not_alert_and_unfollowed_alerts_are_false() {
        let m = MachineScores {
            readings: 200,
            // A lone spike (never confirmed), then an alert 20..=25 with nothing after it.
            scores: scores(200, &[5, 20, 21, 22, 23, 24, 25]),
            failures: vec![],
        };
        let r = event_report(&[m], 0.5, 10, 60.0, &AlertPolicy::default());
        assert_eq!((r.alerts, r.false_alarms, r.pending_alerts), (1, 1, 0));
        assert_eq!(r.false_alarm_share, 1.0);
        assert!(r.event_recall.is_nan());
    }

    #[test]
    fn other_failures_are_reported_apart_and_cold_failures_unscored() {
        let f = [fail(3, FailureMode::Bearing), fail(60, FailureMode::Rnf)];
        let mut alarms = scores(100, &[]);
        alarms.retain(|&(s, _)| s >= 9); // cold window: no scores before step 9
        let m = MachineScores {
            readings: 100,
            scores: alarms,
            failures: f.iter().collect(),
        };
        let r = event_report(&[m], 0.5, 10, 60.0, &AlertPolicy::default());
        assert_eq!(r.unscored_failures, 1);
        assert_eq!((r.other_failures, r.other_caught), (1, 0));
        assert_eq!(r.failures, 0);
        assert_eq!(
            r.per_mode["rnf"],
            ModeCount {
                failures: 1,
                caught: 0
            }
        );
        assert!(r.median_lead_readings.is_nan());
    }

    #[test]
    fn an_alert_near_the_end_is_pending_not_false() {
        let m = MachineScores {
            readings: 100,
            scores: scores(100, &[95, 96, 97, 98, 99]),
            failures: vec![],
        };
        let r = event_report(&[m], 0.5, 10, 60.0, &AlertPolicy::default());
        assert_eq!((r.alerts, r.false_alarms, r.pending_alerts), (0, 0, 1));
    }
}
