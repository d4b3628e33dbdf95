use super::*;
use crate::dataset::Failure;
use crate::test_support::{machines, twin, unit};

/// 10 machines of 200 readings, rows at steps 0..190; each fails at step 190 (counted), and
/// from step 180 both features leave their normal range (a developing fault); label: the
/// failure within 10 readings (steps 180..190).
fn fleet() -> Dataset {
    let mut d = twin(&["a", "b"], &machines(10, 200, 0..190), |m, s| {
        let fault = if s >= 180 { 3.0 } else { 0.0 };
        (vec![fault + unit(m, s), fault + unit(s, m + 100)], s >= 180)
    });
    d.failures = (0..10)
        .map(|m| Failure {
            machine: m,
            step: 190,
            label: Some("bearing".into()),
            counted: true,
        })
        .collect();
    d
}

fn spec(rate: f64) -> AnomalySpec {
    AnomalySpec {
        model_id: "a".into(),
        version: "1".into(),
        source: "test".into(),
        rate,
        params: IsolationParams {
            n_trees: 50,
            ..IsolationParams::default()
        },
    }
}

#[test]
fn healthy_rules_pick_the_rows() {
    let d = fleet();
    let no_fail = healthy_mask(&d, &Healthy::NoFailureAhead, None);
    assert_eq!(no_fail.iter().filter(|&&h| h).count(), 10 * 180);
    let first = healthy_mask(&d, &Healthy::FirstReadings(50), None);
    assert_eq!(first.iter().filter(|&&h| h).count(), 10 * 50);
    // 60 s per reading: the first hour is 60 readings.
    let hour = Healthy::FirstTime {
        span: 3600.0,
        text: "1h".into(),
    };
    assert_eq!(
        healthy_mask(&d, &hour, None).iter().filter(|&&h| h).count(),
        10 * 60
    );
    // A plant's own times.
    let times: Vec<f64> = d.step.iter().map(|&s| f64::from(s) * 2.0).collect();
    let cycles = Healthy::FirstTime {
        span: 50.0,
        text: "50 cycles".into(),
    };
    assert_eq!(
        healthy_mask(&d, &cycles, Some(&times))
            .iter()
            .filter(|&&h| h)
            .count(),
        10 * 25
    );
    // A quarter of 200 readings.
    let share = healthy_mask(&d, &Healthy::FirstShare(0.25), None);
    assert_eq!(share.iter().filter(|&&h| h).count(), 10 * 50);
    assert_eq!(
        Healthy::FirstReadings(50).describe(&d),
        "each machine's first 50 readings"
    );
    assert_eq!(
        Healthy::NoFailureAhead.describe(&d),
        "readings with no test label"
    );
}

#[test]
fn healthy_first_parses_by_the_time_column() {
    assert_eq!(parse_first("50", None), Ok(Healthy::FirstReadings(50)));
    assert_eq!(
        parse_first("50", Some(TimeKind::Row)),
        Ok(Healthy::FirstReadings(50))
    );
    assert_eq!(
        parse_first("50", Some(TimeKind::Number)),
        Ok(Healthy::FirstTime {
            span: 50.0,
            text: "50 cycles (time-column units)".into()
        })
    );
    assert_eq!(
        parse_first("2d", Some(TimeKind::Instant)),
        Ok(Healthy::FirstTime {
            span: 172_800.0,
            text: "2d".into()
        })
    );
    assert_eq!(parse_first("25%", None), Ok(Healthy::FirstShare(0.25)));
    assert!(parse_first("50", Some(TimeKind::Instant))
        .unwrap_err()
        .contains("duration"));
    assert!(parse_first("2d", Some(TimeKind::Number))
        .unwrap_err()
        .contains("number such as 50"));
    for bad in ["0", "-3", "2.5", "150%", "soon"] {
        assert!(parse_first(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn trains_on_healthy_rows_and_ranks_the_faults_on_held_out_machines() {
    let d = fleet();
    let rule = Healthy::NoFailureAhead;
    let mask = healthy_mask(&d, &rule, None);
    let (artifact, r) = train(&d, &mask, &rule, &spec(0.01), &|| {}).unwrap();
    assert_eq!(artifact.kind, dtwin_ml::ModelKind::Anomaly);
    artifact.validate().unwrap();
    assert!(ModelArtifact::from_json(&artifact.to_json()).is_ok());
    assert_eq!(
        (r.machines.train, r.machines.validation, r.machines.test),
        (6, 2, 2)
    );
    // Healthy rows of the 6 training machines fit the forest.
    assert_eq!(r.fit_rows, 6 * 180);
    assert_eq!(artifact.training.rows, 6 * 180);
    assert_eq!(r.validation_healthy_rows, 2 * 180);
    // The cut flags at most the rate of the validation machines' healthy readings.
    assert!(r.validation_healthy_flagged <= 0.01 + 1e-9, "{r:?}");
    let (forest, meta) = artifact.isolation().unwrap();
    assert_eq!(forest.n_trees(), 50);
    assert_eq!(meta.rate, 0.01);
    assert!(r.threshold > 0.0 && r.threshold <= 1.0);
    // The developing faults score far above the healthy readings.
    let test = r.test.as_ref().expect("labels on the test machines");
    assert!(test.roc_auc > 0.95, "{test:?}");
    let e = r.events.as_ref().expect("failures: the event view");
    assert_eq!((e.failures, e.caught), (2, 2), "{e:?}");
    assert!(artifact.reference.is_some());
    assert_eq!(artifact.metrics["test"]["kind"], "anomaly");
}

#[test]
fn impossible_inputs_say_what_to_do() {
    let d = fleet();
    // Two machines.
    let two = twin(&["a"], &machines(2, 50, 0..50), |m, s| {
        (vec![unit(m, s)], false)
    });
    let mask = vec![true; two.y.len()];
    let err = train(&two, &mask, &Healthy::NoFailureAhead, &spec(0.01), &|| {}).unwrap_err();
    assert!(err.to_string().contains("at least 3"), "{err}");
    // No healthy reading on the training machines.
    let none = vec![false; d.y.len()];
    let err = train(&d, &none, &Healthy::FirstReadings(1), &spec(0.01), &|| {}).unwrap_err();
    assert!(err.to_string().contains("raise --healthy-first"), "{err}");
    let err = train(&d, &none, &Healthy::NoFailureAhead, &spec(0.01), &|| {}).unwrap_err();
    assert!(err.to_string().contains("--healthy-first N"), "{err}");
    let mask = healthy_mask(&d, &Healthy::NoFailureAhead, None);
    let err = train(&d, &mask, &Healthy::NoFailureAhead, &spec(1.0), &|| {}).unwrap_err();
    assert!(err.to_string().contains("--anomaly-rate"), "{err}");
}
