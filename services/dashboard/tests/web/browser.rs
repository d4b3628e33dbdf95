//! The dashboard in real headless Chromium (Debian's `chromium` + `chromium-driver`, installed
//! by tests/run.sh), driven over WebDriver as a person would use it: fill the what-if form with
//! a risky machine and read the verdict; watch the fleet view update live while the twin runs;
//! hostile text in an alert is shown as text, never run; pick a pump profile in the what-if
//! form and read its answer, without and with a pump model; read a pump's quality risk,
//! anomaly and remaining life in the fleet, on its page, on the model page and in the what-if
//! answer, and an anomaly alert's cause in the log. Screenshots go to
//! `target/dashboard-screenshots/`.

use dtwin_bus::{BrokerUrl, BusConfig, QoS};
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub(crate) struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
    /// One browser at a time: five Chromiums and their stacks at once starve a small machine
    /// and make waits time out.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Chromedriver on a free port, or `None` (test skipped) when Chromium is not installed and
/// this is not CI.
pub(crate) fn driver() -> Option<Driver> {
    if !(std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromium-driver must be installed in CI (tests/run.sh installs them)"
        );
        eprintln!(
            "skipping: {CHROMIUM} or {CHROMEDRIVER} missing (bash tests/run.sh installs them)"
        );
        return None;
    }
    let turn = ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let port = dtwin_broker::free_port().unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    wait_for_port(port);
    Some(Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
        _turn: turn,
    })
}

pub(crate) async fn browser(d: &Driver) -> Client {
    let profile = d._profile.path().display().to_string();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,900", format!("--user-data-dir={profile}")
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a Chromium session")
}

/// Where docs/dashboard.md's screenshots live, when `DTWIN_UPDATE_SCREENSHOTS=1` asks the
/// browser tests to take them again.
pub(crate) fn docs_dir() -> Option<PathBuf> {
    (std::env::var_os("DTWIN_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1"))
        .then(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")))
}

/// A screenshot of the whole page (up to 3,000 px tall) as `name`.png in
/// target/dashboard-screenshots/, and as docs/dashboard-`name`.png when the docs' are asked
/// for.
pub(crate) async fn shot(c: &Client, name: &str) {
    let height = c
        .execute(
            // The window's own bars take part of its height.
            "return Math.min(3000, Math.max(900, document.documentElement.scrollHeight + window.outerHeight - window.innerHeight));",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900) as u32;
    c.set_window_size(1280, height).await.unwrap();
    let png = c.screenshot().await.unwrap();
    c.set_window_size(1280, 900).await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), &png).unwrap();
    if let Some(docs) = docs_dir() {
        std::fs::write(docs.join(format!("dashboard-{name}.png")), &png).unwrap();
    }
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/dashboard-screenshots"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The broker, twin, feature and inference services and the dashboard, in this process.
async fn stack(shutdown: &CancellationToken) -> (BrokerUrl, String) {
    let port = dtwin_broker::free_port().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
    .unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    let mut dash = dtwin_dashboard::DashboardConfig::new(url.clone());
    dash.listen = format!("127.0.0.1:{}", dtwin_broker::free_port().unwrap())
        .parse()
        .unwrap();
    // Lines and criticality as the alerter's routing file gives them.
    dash.routes = dtwin_dashboard::routes::Routes::parse(
        "[[machine]]\nmachines = [\"machine-001\", \"machine-002\", \"machine-003\", \"machine-004\"]\nline = \"line A\"\ncriticality = 3\n\n[[machine]]\nmachines = [\"machine-*\"]\nline = \"line B\"\ncriticality = 1\n",
    )
    .unwrap();
    let dash = dtwin_dashboard::DashboardService::build(dash)
        .await
        .unwrap();
    let http = format!("http://{}", dash.local_addr().unwrap());
    tokio::spawn(dtwin_runtime::Service::serve(dash, shutdown.clone()));
    tokio::spawn(dtwin_feature::run(
        dtwin_feature::FeatureConfig::new(url.clone()),
        shutdown.clone(),
    ));
    tokio::spawn(dtwin_inference::run(
        dtwin_inference::InferenceConfig::new(url.clone()),
        shutdown.clone(),
    ));
    let mut twin = dtwin_twin_publisher::TwinConfig::new(url.clone());
    twin.machines = 8;
    twin.rate_hz = 4.0;
    tokio::spawn(dtwin_twin_publisher::run(twin, shutdown.clone()));
    (url, http)
}

/// The text of `css`; found again when the live view replaced it in between (stale).
pub(crate) async fn text(c: &Client, css: &str) -> String {
    for _ in 0..20 {
        let found = c.find(Locator::Css(css)).await.unwrap();
        match found.text().await {
            Ok(t) => return t,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
    panic!("{css} kept being replaced")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_dashboard_in_chromium() {
    let Some(d) = driver() else { return };
    let shutdown = CancellationToken::new();
    let (url, http) = stack(&shutdown).await;
    let c = browser(&d).await;
    let shots = screenshot_dir();

    // 1. What-if: a worn tool on a vibrating spindle.
    c.goto(&format!("{http}/whatif")).await.unwrap();
    for (field, value) in [("vibration_mm_s", "12.5"), ("tool_wear_min", "230")] {
        let input = c.find(Locator::Id(field)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    c.find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settled(&c).await;
    assert_eq!(text(&c, "#live-status").await, "AT RISK");
    let actions = text(&c, "#live-actions").await;
    assert!(actions.contains("bearing"), "{actions}");
    assert!(actions.contains("schedule a tool change"), "{actions}");
    let p: f64 = text(&c, "#live-probability").await.parse().unwrap();
    assert!((0.0..=1.0).contains(&p));
    std::fs::write(shots.join("whatif-form.png"), c.screenshot().await.unwrap()).unwrap();

    // 2. Bad input: a message next to the field, not an error page.
    let input = c.find(Locator::Id("spindle_rpm")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys("fast").await.unwrap();
    c.find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("error-spindle_rpm"))
        .await
        .unwrap();
    assert!(text(&c, "#error-spindle_rpm")
        .await
        .contains("must be a number"));

    // 3. Fleet view: rows arrive and change without a reload.
    c.goto(&format!("{http}/")).await.unwrap();
    c.execute("window.__notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    let heard = "tr[data-machine='machine-001'] td.ago time";
    let first = wait_attr(&c, heard, "datetime", |t| !t.is_empty()).await;
    let changed = wait_attr(&c, heard, "datetime", |t| !t.is_empty() && t != first).await;
    // Said as people say it, the exact time on hover.
    let ago = text(&c, heard).await;
    assert!(ago == "just now" || ago.ends_with(" s ago"), "{ago}");
    let title = wait_attr(&c, heard, "title", |t| t.ends_with(" UTC")).await;
    assert_eq!(title.len(), "2026-11-22 10:00:04 UTC".len(), "{title}");
    assert_ne!(first, changed, "machine-001's last update moved on");
    let same_page = c
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        serde_json::Value::Bool(true),
        "updated in place, no reload"
    );
    assert_eq!(text(&c, "#live").await, "live");
    let rows = c.find_all(Locator::Css("#rows tr")).await.unwrap().len();
    assert_eq!(rows, 8, "every machine listed");
    // Lines from the routing file; a sparkline of each machine's recent risk.
    assert_eq!(
        text(&c, "tr[data-machine='machine-002'] td.line").await,
        "line A"
    );
    assert_eq!(
        text(&c, "tr[data-machine='machine-007'] td.line").await,
        "line B"
    );
    assert_eq!(
        text(&c, "tr[data-machine='machine-002'] td.criticality").await,
        "3"
    );
    wait_attr(
        &c,
        "tr[data-machine='machine-001'] svg.spark polyline",
        "points",
        |p| p.split(' ').count() >= 2,
    )
    .await;
    c.find(Locator::Id("f-line"))
        .await
        .unwrap()
        .select_by_value("line A")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find_all(Locator::Css("#rows tr")).await.unwrap().len() != 4 {
        assert!(Instant::now() < deadline, "the line filter never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.find(Locator::Id("f-line"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    let hour = text(&c, "#hour").await;
    assert!(hour.contains("stayed HEALTHY"), "{hour}");
    shot(&c, "fleet").await;
    // A machine's page: its verdict, actions, readings and trends.
    c.goto(&format!("{http}/machine/machine-001"))
        .await
        .unwrap();
    shot(&c, "machine").await;

    // 4. Hostile text from the bus is shown as text.
    let hostile = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    let event = serde_json::json!({
        "schema": "dtwin.alert.v1", "machine_id": "machine-001", "ts": "2026-11-22T10:00:00Z",
        "alert_id": "machine-001-x", "event": "firing", "level": "WARNING", "probability": 0.8,
        "actions": [], "detail": hostile
    });
    let pubc = dtwin_bus::connect(&BusConfig::new(url.clone(), "xss-test"), vec![]);
    assert!(pubc.client.wait_ready(Duration::from_secs(5)).await);
    pubc.client
        .publish(
            "dtwin/v1/alerts/machine-001",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&event).unwrap(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.goto(&format!("{http}/alerts")).await.unwrap();
        let detail = c.find(Locator::Css("#alerts td.detail")).await.map(|_| ());
        if detail.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "alert event not shown");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        text(&c, "#alerts td.detail").await,
        hostile,
        "shown literally"
    );
    let pwned = c
        .execute("return window.__pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(
        pwned,
        serde_json::Value::Bool(true),
        "nothing from the bus ran"
    );
    // The machine page escapes it too.
    c.goto(&format!("{http}/machine/machine-001"))
        .await
        .unwrap();
    let page = text(&c, "main").await;
    assert!(page.contains("<script>window.__pwned=2</script>"), "{page}");
    let pwned = c
        .execute("return window.__pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, serde_json::Value::Bool(true));
    assert!(
        c.find(Locator::Css(".chart svg")).await.is_ok(),
        "trend charts drawn"
    );
    std::fs::write(
        shots.join("machine-escaped.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // 5. The model page: the shipped model's card and the rules in use.
    c.goto(&format!("{http}/model")).await.unwrap();
    assert!(text(&c, "#model-milling-classifier table.events")
        .await
        .contains("failures caught"));
    assert!(c
        .find(Locator::Css(
            "#model-milling-classifier .chart.importance svg"
        ))
        .await
        .is_ok());
    let rules = c
        .find_all(Locator::Css("#rules-table tr[data-rule]"))
        .await
        .unwrap();
    assert!(rules.len() >= 12, "every rule listed");
    shot(&c, "model").await;

    c.close().await.unwrap();
    shutdown.cancel();
}

/// Waits until the what-if page's live verdict has answered the latest values.
pub(crate) async fn settled(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = c
            .execute(
                "const l = document.getElementById('live'); return !!l && l.dataset.state === 'ready' && l.dataset.seq !== '0';",
                vec![],
            )
            .await
            .unwrap();
        if ready == serde_json::Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "the live verdict never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn wait_attr(
    c: &Client,
    css: &str,
    attr: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(Some(t)) = e.attr(attr).await {
                if ok(&t) {
                    return t;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css} [{attr}] never satisfied the condition"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css} never satisfied the condition"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The broker and a dashboard that knows the pump profile.
async fn pump_stack(shutdown: &CancellationToken) -> (BrokerUrl, String) {
    let port = dtwin_broker::free_port().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
    .unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    let mut dash = dtwin_dashboard::DashboardConfig::new(url.clone());
    dash.listen = format!("127.0.0.1:{}", dtwin_broker::free_port().unwrap())
        .parse()
        .unwrap();
    dash.profiles = vec![crate::pump::pump()];
    let dash = dtwin_dashboard::DashboardService::build(dash)
        .await
        .unwrap();
    let ready = dtwin_runtime::Service::ready(&dash);
    let http = format!("http://{}", dash.local_addr().unwrap());
    tokio::spawn(dtwin_runtime::Service::serve(dash, shutdown.clone()));
    ready
        .wait_for(Duration::from_secs(10))
        .await
        .expect("dashboard subscribed");
    (url, http)
}

/// Picks `profile` in the what-if form and waits for its fields.
async fn pick_profile(c: &Client, profile: &str, field: &str) {
    let select = c.find(Locator::Id("profile")).await.unwrap();
    select.select_by_value(profile).await.unwrap();
    c.wait().for_element(Locator::Id(field)).await.unwrap();
}

async fn fill_and_submit(c: &Client, values: &[(&str, &str)]) {
    for (field, value) in values {
        let input = c.find(Locator::Id(field)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    c.find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("result")).await.unwrap();
    settled(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_asks_what_if_of_a_pump() {
    let Some(d) = driver() else { return };
    let shutdown = CancellationToken::new();
    let (url, http) = pump_stack(&shutdown).await;
    let c = browser(&d).await;
    let shots = screenshot_dir();

    // The selector starts on milling; picking the pump shows its sensors.
    c.goto(&format!("{http}/whatif")).await.unwrap();
    assert!(c.find(Locator::Id("vibration_mm_s")).await.is_ok());
    pick_profile(&c, "pump", "volt").await;
    let labels = text(&c, "#whatif").await;
    for label in ["Voltage (V)", "Rotation (rpm)", "Pressure (bar)"] {
        assert!(labels.contains(label), "{label} in {labels}");
    }
    assert!(!labels.contains("Vibration"), "milling's fields are gone");
    let volt = c.find(Locator::Id("volt")).await.unwrap();
    assert_eq!(volt.attr("max").await.unwrap().as_deref(), Some("400"));

    // No model deployed for pumps yet: a rules-only answer, said in words.
    let pump = [("volt", "380"), ("rotate", "1500"), ("pressure", "3")];
    fill_and_submit(&c, &pump).await;
    let result = text(&c, "#live-note").await;
    assert!(
        result.contains("No model for profile pump yet: rules only"),
        "{result}"
    );
    let figures = c.find(Locator::Id("live-figures")).await.unwrap();
    assert!(
        !figures.is_displayed().await.unwrap(),
        "no probability without a model"
    );
    std::fs::write(shots.join("whatif-pump.png"), c.screenshot().await.unwrap()).unwrap();

    // A pump model deployed retained on models/pump: the same values get a probability.
    let pubc = dtwin_bus::connect(&BusConfig::new(url.clone(), "model-test"), vec![]);
    assert!(pubc.client.wait_ready(Duration::from_secs(5)).await);
    pubc.client
        .publish(
            "dtwin/v1/models/pump",
            QoS::AtLeastOnce,
            true,
            crate::pump::pump_model().to_json(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        c.goto(&format!("{http}/whatif?profile=pump"))
            .await
            .unwrap();
        fill_and_submit(&c, &pump).await;
        if text(&c, "#live-note").await.is_empty() {
            break text(&c, "#live-probability").await;
        }
        assert!(Instant::now() < deadline, "the pump model never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let p: f64 = p.parse().unwrap();
    assert!(p > 0.5, "a high voltage is a risk: {p}");
    assert_eq!(text(&c, "#live-status").await, "AT RISK");

    // A value beyond the sensor's range (typed past the browser's bounds check) is refused
    // next to the field with the sensor's label and range.
    c.execute(
        "document.getElementById('whatif').noValidate = true; return null;",
        vec![],
    )
    .await
    .unwrap();
    let input = c.find(Locator::Id("volt")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys("999").await.unwrap();
    c.find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("error-volt"))
        .await
        .unwrap();
    assert_eq!(
        text(&c, "#error-volt").await,
        "Voltage must be between 0 and 400 V"
    );

    // The fleet view names a pump's profile and reads its sensors with their labels.
    let risk = serde_json::json!({
        "schema": "dtwin.risk.v1", "machine_id": "pump-01", "ts": "2026-11-22T10:00:00Z",
        "source_ts": "2026-11-22T10:00:00Z", "seq": 4, "probability": 0.0,
        "status": "HEALTHY", "level": "NORMAL", "health_score": 100.0,
        "actions": [], "factors": [], "model": {"id": "none", "version": "rules-only"},
        "cold": false, "latest": {"volt": 176.2, "rotate": 1500.0}, "profile": "pump"
    });
    pubc.client
        .publish(
            "dtwin/v1/machines/pump-01/risk",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&risk).unwrap(),
        )
        .await
        .unwrap();
    c.goto(&format!("{http}/")).await.unwrap();
    let readings = wait_text(&c, "tr[data-machine='pump-01'] td.readings", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(readings, "Voltage: 176.2 V Rotation: 1500 rpm");
    assert_eq!(
        text(&c, "tr[data-machine='pump-01'] td.profile").await,
        "Water pump"
    );
    std::fs::write(shots.join("fleet-pump.png"), c.screenshot().await.unwrap()).unwrap();

    c.close().await.unwrap();
    shutdown.cancel();
}

/// Publishes `payload` on `topic` (retained or not).
pub(crate) async fn publish(
    c: &dtwin_bus::Connection,
    topic: &str,
    retain: bool,
    payload: Vec<u8>,
) {
    c.client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .unwrap();
}

/// A pump verdict; `with_insights` adds the other models' figures.
fn pump_verdict(machine: &str, probability: f64, with_insights: bool) -> Vec<u8> {
    let mut v = serde_json::json!({
        "schema": "dtwin.risk.v1", "machine_id": machine, "ts": "2026-11-22T10:00:00Z",
        "source_ts": "2026-11-22T10:00:00Z", "seq": 4, "probability": probability,
        "status": "HEALTHY", "level": "NORMAL", "health_score": 90.0,
        "actions": [], "factors": [], "model": {"id": "pump-rf", "version": "1"},
        "cold": false, "latest": {"volt": 176.2, "rotate": 1500.0}, "profile": "pump"
    });
    if with_insights {
        let extra = serde_json::json!({
            "quality_risk": 0.34, "quality_at_risk": true, "anomaly": 0.81, "anomalous": true,
            "rul": {"value": 5400.0, "low": 3600.0, "high": 9000.0, "unit": "seconds"},
            "models": {"anomaly": {"id": "pump-iforest", "version": "3"}}
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_quality_anomaly_and_remaining_life() {
    let Some(d) = driver() else { return };
    let shutdown = CancellationToken::new();
    let (url, http) = pump_stack(&shutdown).await;
    let c = browser(&d).await;
    let shots = screenshot_dir();
    let pubc = dtwin_bus::connect(&BusConfig::new(url.clone(), "insights-test"), vec![]);
    assert!(pubc.client.wait_ready(Duration::from_secs(5)).await);

    // 1. The fleet: a verdict without other models' figures leaves their column out...
    c.goto(&format!("{http}/")).await.unwrap();
    publish(
        &pubc,
        "dtwin/v1/machines/pump-02/risk",
        false,
        pump_verdict("pump-02", 0.2, false),
    )
    .await;
    wait_text(&c, "tr[data-machine='pump-02'] td.profile", |t| {
        t == "Water pump"
    })
    .await;
    let column = c.find(Locator::Css("#fleet th.insights")).await.unwrap();
    assert!(
        !column.is_displayed().await.unwrap(),
        "no figures: no column"
    );
    // ...one with them gets badges, live.
    publish(
        &pubc,
        "dtwin/v1/machines/pump-01/risk",
        false,
        pump_verdict("pump-01", 0.1, true),
    )
    .await;
    let badges = wait_text(&c, "tr[data-machine='pump-01'] td.insights", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(
        badges,
        "quality 34 % anomaly 0.81 life 90 min (5–95 %: 60 min – 2.5 h)"
    );
    assert!(column.is_displayed().await.unwrap(), "the column appears");
    let anomaly = c
        .find(Locator::Css("tr[data-machine='pump-01'] .badge.anomaly"))
        .await
        .unwrap();
    assert_eq!(
        anomaly.attr("class").await.unwrap().as_deref(),
        Some("badge ins anomaly flagged")
    );
    assert_eq!(text(&c, "tr[data-machine='pump-02'] td.insights").await, "");
    std::fs::write(
        shots.join("fleet-insights.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // 2. The machine page: each figure with its model, and their trends.
    c.goto(&format!("{http}/machine/pump-01")).await.unwrap();
    assert_eq!(text(&c, "#insight-quality").await, "34 % (at risk)");
    assert_eq!(
        text(&c, "#insight-anomaly").await,
        "0.81 (anomalous) · model pump-iforest v3"
    );
    assert_eq!(
        text(&c, "#insight-rul").await,
        "90 min (5–95 %: 60 min – 2.5 h)"
    );
    let insights = text(&c, "#insights").await;
    assert!(insights.contains("Remaining useful life"), "{insights}");
    let charts = text(&c, ".charts").await;
    assert!(charts.contains("Anomaly score"), "{charts}");
    std::fs::write(
        shots.join("machine-insights.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // 3. The model page lists the pump's models as they are deployed.
    for (kind, model) in [
        ("anomaly", crate::pump::pump_anomaly_model()),
        ("rul", crate::pump::pump_rul_model()),
        ("quality", crate::pump::pump_quality_model()),
    ] {
        publish(
            &pubc,
            &format!("dtwin/v1/models/pump/{kind}"),
            true,
            model.to_json(),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.goto(&format!("{http}/model")).await.unwrap();
        if c.find_all(Locator::Css("#models tr[data-profile='pump']"))
            .await
            .unwrap()
            .len()
            == 3
        {
            break;
        }
        assert!(Instant::now() < deadline, "the pump's models never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = |kind: &str| format!("#models tr[data-profile='pump'][data-kind='{kind}']");
    assert_eq!(
        text(&c, &format!("{} td.model", row("anomaly"))).await,
        "pump-iforest v3"
    );
    // Each model has its card.
    assert!(c
        .find(Locator::Css("section.card#model-pump-anomaly"))
        .await
        .is_ok());
    assert_eq!(
        text(&c, &format!("{} td.threshold", row("anomaly"))).await,
        "0.520"
    );
    assert_eq!(
        text(&c, &format!("{} td.metrics", row("anomaly"))).await,
        "roc_auc 0.9700 test_healthy_flagged 0.0120"
    );
    assert!(text(&c, &format!("{} td.kind", row("rul")))
        .await
        .starts_with("rul (seconds)"));
    assert_eq!(
        text(&c, &format!("{} td.label", row("quality"))).await,
        "NOK part within 10 readings"
    );
    c.execute(
        "document.getElementById('models').scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
    std::fs::write(shots.join("models.png"), c.screenshot().await.unwrap()).unwrap();

    // 4. What-if: a pump at 380 V with no failure classifier: the anomaly model decides, and
    // the quality risk and remaining life are read off their models.
    c.goto(&format!("{http}/whatif?profile=pump"))
        .await
        .unwrap();
    fill_and_submit(
        &c,
        &[("volt", "380"), ("rotate", "1500"), ("pressure", "3")],
    )
    .await;
    assert_eq!(text(&c, "#live-status").await, "AT RISK");
    assert!(text(&c, "#live-anomaly").await.contains("(anomalous)"));
    assert!(text(&c, "#live-quality")
        .await
        .starts_with("100 % (at risk)"));
    assert!(text(&c, "#live-rul").await.contains("(5–95 %: "));
    assert!(text(&c, "#live-note")
        .await
        .contains("No failure classifier for profile pump yet"));
    std::fs::write(
        shots.join("whatif-insights.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.goto(&format!("{http}/whatif?profile=pump"))
        .await
        .unwrap();
    fill_and_submit(
        &c,
        &[("volt", "115"), ("rotate", "1500"), ("pressure", "3")],
    )
    .await;
    assert_eq!(text(&c, "#live-status").await, "HEALTHY");
    assert!(text(&c, "#live-anomaly").await.contains("(ordinary)"));

    // 5. The alert log names an anomaly alert's cause.
    let event = serde_json::json!({
        "schema": "dtwin.alert.v1", "machine_id": "pump-01", "ts": "2026-11-22T10:00:00Z",
        "alert_id": "pump-01-anomaly-20261122T100000000Z", "event": "firing", "level": "WARNING",
        "probability": 0.1, "actions": [], "detail": "anomaly alert: score 0.81"
    });
    let alerts = first_alert_cause(&c, &http, &pubc, event).await;
    assert_eq!(alerts, "anomaly");

    c.close().await.unwrap();
    shutdown.cancel();
}

/// Publishes an alert event and returns the cause the alert log shows first, once it shows.
async fn first_alert_cause(
    c: &Client,
    http: &str,
    pubc: &dtwin_bus::Connection,
    event: serde_json::Value,
) -> String {
    let machine = event["machine_id"].as_str().unwrap().to_owned();
    publish(
        pubc,
        &format!("dtwin/v1/alerts/{machine}"),
        false,
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.goto(&format!("{http}/alerts")).await.unwrap();
        if let Ok(e) = c.find(Locator::Css("#alerts td.cause")).await {
            return e.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "alert event not shown");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
