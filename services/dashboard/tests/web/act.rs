//! People acting in real headless Chromium: a person moves the what-if sliders to a worn tool
//! cutting hard, reads the advice and follows it; another acknowledges an alert and clears it
//! with the alerter running (the alerter fires it from AT_RISK verdicts, the dashboard
//! publishes the actions on the control topic, the alerter's events come back to the pages),
//! then finds it in the alert history and exports it. Screenshots go to
//! `target/dashboard-screenshots/` (and to docs/ with `DTWIN_UPDATE_SCREENSHOTS=1`).

use crate::browser::{browser, driver, settled, shot, text};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{AlertAction, AlertActionKind, Level, MachineId, ModelRef, Risk, RiskStatus};
use fantoccini::{Client, Locator};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The dashboard's router alone on a port (the what-if needs no broker).
async fn what_if_server() -> String {
    let cfg = dtwin_inference::InferenceConfig::new(BrokerUrl::new("127.0.0.1", 1));
    let state = dtwin_dashboard::web::AppState::new(
        dtwin_inference::build_scorer(&cfg).unwrap(),
        Default::default(),
        Default::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, dtwin_dashboard::web::router(state))
            .await
            .unwrap();
    });
    http
}

async fn value(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Presses `key` `times` times on the slider of `field`, as a person does with the arrows
/// (a click would first move the thumb to where it lands).
async fn slide(c: &Client, field: &str, key: &str, times: usize) {
    let slider = c
        .find(Locator::Id(&format!("{field}-slider")))
        .await
        .unwrap();
    slider.send_keys(&key.repeat(times)).await.unwrap();
}

const ARROW_RIGHT: &str = "\u{E014}";
const ARROW_LEFT: &str = "\u{E012}";
const END: &str = "\u{E010}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_moves_the_sliders_reads_the_advice_and_follows_it() {
    let Some(d) = driver() else { return };
    let http = what_if_server().await;
    let c = browser(&d).await;
    c.goto(&format!("{http}/whatif")).await.unwrap();
    settled(&c).await;
    assert_eq!(text(&c, "#live-status").await, "HEALTHY");
    assert!(text(&c, "#advice-text")
        .await
        .starts_with("Keep the current settings"));

    // A worn tool (the slider to its end) cutting hard (torque up 22 N·m in 0.5 steps).
    slide(&c, "tool_wear_min", END, 1).await;
    slide(&c, "torque_nm", ARROW_RIGHT, 44).await;
    assert_eq!(
        value(&c, "tool_wear_min").await,
        "260",
        "the number follows the slider"
    );
    assert_eq!(value(&c, "torque_nm").await, "62");
    settled(&c).await;
    let risk_before: f64 = text(&c, "#live-risk").await.parse().unwrap();
    let actions = text(&c, "#live-actions").await;
    assert!(actions.contains("Overstrain"), "{actions}");
    // The risk across each input's span, with the others held.
    for field in ["torque_nm", "tool_wear_min", "vibration_mm_s"] {
        let points = c
            .find(Locator::Id(&format!("sens-{field}")))
            .await
            .unwrap()
            .attr("data-points")
            .await
            .unwrap();
        assert_eq!(points.as_deref(), Some("21"), "{field}");
    }
    let advice = text(&c, "#advice-text").await;
    assert!(
        advice.starts_with("Run at ") && advice.contains("N·m"),
        "{advice}"
    );
    assert!(
        advice.contains(&format!("risk {risk_before:.2} -> ")),
        "{advice}"
    );
    assert!(
        advice.contains("energy −"),
        "a lighter cut uses less: {advice}"
    );
    shot(&c, "whatif").await;

    // Following the advice: the inputs take its values and the risk falls to what it said.
    let promised: f64 = advice
        .split(" -> ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    c.find(Locator::Id("advice-apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settled(&c).await;
    let risk_after: f64 = text(&c, "#live-risk").await.parse().unwrap();
    assert!(risk_after < risk_before, "{risk_after} < {risk_before}");
    assert!(
        (risk_after - promised).abs() < 0.006,
        "{risk_after} vs {promised}"
    );
    let torque: f64 = value(&c, "torque_nm").await.parse().unwrap();
    assert!((10.0..62.0).contains(&torque), "{torque}");
    assert!(!text(&c, "#live-actions").await.contains("Overstrain"));
    assert!(text(&c, "#advice-text")
        .await
        .starts_with("Keep the current settings"));

    // Back up a notch: the sliders move the verdict again.
    let rpm: f64 = value(&c, "spindle_rpm").await.parse().unwrap();
    slide(&c, "torque_nm", ARROW_RIGHT, 60).await;
    slide(&c, "spindle_rpm", ARROW_LEFT, 10).await;
    settled(&c).await;
    assert_eq!(value(&c, "spindle_rpm").await, format!("{}", rpm - 100.0));
    let again: f64 = text(&c, "#live-risk").await.parse().unwrap();
    assert!(again > risk_after, "{again} > {risk_after}");
    c.close().await.unwrap();
}

/// An AT_RISK verdict of `machine` now.
fn at_risk(machine: &str, seq: u64) -> Risk {
    let now = dtwin_schema::time_fmt::now();
    Risk {
        schema: dtwin_schema::RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse(machine).unwrap(),
        ts: now,
        source_ts: now,
        seq,
        probability: 0.93,
        status: RiskStatus::AtRisk,
        level: Level::Critical,
        health_score: 7.0,
        actions: vec![dtwin_schema::Action {
            code: "SEVERE_VIBRATION".into(),
            text: "Severe vibration: stop and inspect the spindle bearing".into(),
            severity: Level::Critical,
        }],
        factors: Vec::new(),
        model: ModelRef {
            id: "dtwin-rf".into(),
            version: "2".into(),
        },
        cold: false,
        latest: BTreeMap::from([("vibration_mm_s".to_owned(), 12.4)]),
        profile: None,
        insights: Default::default(),
    }
}

/// Loads `path` until `css` is there (the page reloads itself while it waits, too).
async fn until_shown(c: &Client, url: &str, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if c.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never shown on {url}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if c.find(Locator::Css(css)).await.is_err() {
            c.goto(url).await.unwrap();
        }
    }
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let input = c.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_acknowledges_and_clears_an_alert_with_the_alerter_running() {
    let Some(d) = driver() else { return };
    let shutdown = CancellationToken::new();
    let port = dtwin_broker::free_port().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
    .unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    // The alerter, writing e-mails to a folder, firing at once.
    let outbox = tempfile::tempdir().unwrap();
    let mut alerter = dtwin_alerter::AlerterConfig::new(url.clone());
    alerter.outbox_dir = outbox.path().to_path_buf();
    alerter.spool_dir = outbox.path().join(".spool");
    alerter.policy.group_wait = time::Duration::ZERO;
    let alerter = dtwin_alerter::AlerterService::build(alerter).await.unwrap();
    dtwin_runtime::start_ready(alerter, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("alerter subscribed");
    // The dashboard, with the lines of a routing file.
    let mut dash = dtwin_dashboard::DashboardConfig::new(url.clone());
    dash.listen = "127.0.0.1:0".parse().unwrap();
    dash.routes = dtwin_dashboard::routes::Routes::parse(
        "[[machine]]\nmachines = [\"press-*\"]\nline = \"press line\"\ncriticality = 3\n",
    )
    .unwrap();
    let dash = dtwin_dashboard::DashboardService::build(dash)
        .await
        .unwrap();
    let http = format!("http://{}", dash.local_addr().unwrap());
    dtwin_runtime::start_ready(dash, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("dashboard subscribed");
    // What goes over the control topic, seen from outside.
    let mut probe = dtwin_bus::connect(
        &BusConfig::new(url.clone(), "control-probe"),
        vec![Subscription::new(
            "dtwin/v1/control/alerts/+",
            QoS::AtLeastOnce,
        )],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    let topics = dtwin_schema::Topics::default();
    let press = MachineId::parse("press-07").unwrap();
    for seq in 1..=3 {
        probe
            .client
            .publish(
                topics.risk(&press),
                QoS::AtLeastOnce,
                false,
                dtwin_schema::to_json(&at_risk("press-07", seq)),
            )
            .await
            .unwrap();
    }
    let c = browser(&d).await;

    // 1. The alert shows, unacknowledged; the person acknowledges it with a comment.
    let alerts = format!("{http}/alerts");
    c.goto(&alerts).await.unwrap();
    until_shown(&c, &alerts, "#alert-press-07[data-state='unacknowledged']").await;
    let what = text(&c, "#alert-press-07 .what").await;
    assert!(
        what.contains("CRITICAL") && what.contains("failure"),
        "{what}"
    );
    type_into(&c, "#act-press-07 input.by", "Ana Lima").await;
    type_into(
        &c,
        "#act-press-07 input.comment",
        "spindle stopped, bearing ordered",
    )
    .await;
    click(&c, "#act-press-07 .ack-button").await;
    // On the bus: the action, as the contract says.
    let msg = tokio::time::timeout(Duration::from_secs(10), probe.inbox.recv())
        .await
        .expect("an action on the control topic")
        .unwrap();
    assert_eq!(msg.topic, "dtwin/v1/control/alerts/press-07");
    let action: AlertAction = dtwin_schema::from_json(&msg.payload).unwrap();
    assert_eq!(action.schema, dtwin_schema::ALERT_ACTION_SCHEMA);
    assert_eq!(action.action, AlertActionKind::Acknowledge);
    assert_eq!(action.by, "Ana Lima");
    assert_eq!(action.comment, "spindle stopped, bearing ordered");
    assert!(
        action.alert_id.starts_with("press-07-"),
        "{}",
        action.alert_id
    );
    // The alerter confirms: who, when and why show on the page (it looks again by itself).
    until_shown(&c, &alerts, "#alert-press-07[data-state='acknowledged']").await;
    let ack = text(&c, "#ack-press-07").await;
    assert!(
        ack.starts_with("Acknowledged by Ana Lima at ")
            && ack.contains("spindle stopped, bearing ordered"),
        "{ack}"
    );
    assert!(c
        .find(Locator::Css("#act-press-07 .ack-button"))
        .await
        .is_err());
    let log = text(&c, "#alerts").await;
    assert!(log.contains("acknowledged"), "{log}");
    shot(&c, "alerts").await;

    // 2. On the machine page, the same person clears it once the bearing is in.
    let machine = format!("{http}/machine/press-07");
    c.goto(&machine).await.unwrap();
    assert!(text(&c, "#alert")
        .await
        .contains("Acknowledged by Ana Lima"));
    let by = c
        .find(Locator::Css("#act-press-07 input.by"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(by.as_deref(), Some("Ana Lima"), "the name is remembered");
    type_into(
        &c,
        "#act-press-07 input.comment",
        "bearing replaced, test cut OK",
    )
    .await;
    click(&c, "#act-press-07 .clear-button").await;
    let msg = tokio::time::timeout(Duration::from_secs(10), probe.inbox.recv())
        .await
        .expect("a clear on the control topic")
        .unwrap();
    let clear: AlertAction = dtwin_schema::from_json(&msg.payload).unwrap();
    assert_eq!(
        (clear.action, clear.alert_id.as_str()),
        (AlertActionKind::Clear, action.alert_id.as_str())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.find(Locator::Id("alert")).await.is_ok() {
        assert!(Instant::now() < deadline, "the alert never ended");
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.goto(&machine).await.unwrap();
    }

    // 3. The history: filtered to cleared alerts, who acknowledged and who cleared; as CSV.
    c.goto(&format!("{http}/alerts/history")).await.unwrap();
    c.find(Locator::Id("h-state"))
        .await
        .unwrap()
        .select_by_value("cleared")
        .await
        .unwrap();
    type_into(&c, "#h-machine", "press").await;
    click(&c, "#h-apply").await;
    until_shown(
        &c,
        &format!("{http}/alerts/history?machine=press&state=cleared"),
        "#history tr[data-state='cleared']",
    )
    .await;
    let row = text(&c, "#history tr[data-state='cleared']").await;
    assert!(
        row.contains("press-07") && row.contains("failure") && row.contains("CRITICAL"),
        "{row}"
    );
    assert!(
        row.contains("Ana Lima at ") && row.contains("cleared by Ana Lima at "),
        "{row}"
    );
    assert!(row.contains("bearing replaced, test cut OK"), "{row}");
    assert_eq!(text(&c, "#h-count").await, "1 of 1 alerts");
    shot(&c, "history").await;
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch(document.getElementById('csv').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains(",cleared,") && lines[1].contains("Ana Lima"),
        "{csv}"
    );

    // 4. The fleet: the press line from the routing file, the last hour's alerts.
    c.goto(&format!("{http}/")).await.unwrap();
    let line =
        crate::browser::wait_text(&c, "tr[data-machine='press-07'] td.line", |t| !t.is_empty())
            .await;
    assert_eq!(line, "press line");
    assert_eq!(
        text(&c, "tr[data-machine='press-07'] td.criticality").await,
        "3"
    );
    let fired = crate::browser::wait_text(&c, "#fired", |t| t == "1").await;
    assert_eq!(fired, "1");
    assert_eq!(text(&c, "#acknowledged").await, "1");
    assert_eq!(text(&c, "#ended").await, "1");

    c.close().await.unwrap();
    shutdown.cancel();
}
