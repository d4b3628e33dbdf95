//! The router without a browser (tower's `oneshot`): pages render, bad form input gets a
//! message next to the field (422, never a 500), and the what-if form agrees with the
//! streaming feature service + inference scorer fed the same readings.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dtwin_dashboard::profiles::Profiles;
use dtwin_dashboard::web::{router, AppState};
use dtwin_dashboard::whatif::{self, WhatIfForm};
use dtwin_inference::InferenceConfig;
use dtwin_schema::{from_json, to_json, Features, RiskStatus, Topics};
use dtwin_windows::WindowConfig;
use std::sync::Arc;
use tower::ServiceExt;

fn state() -> AppState {
    let cfg = InferenceConfig::new(dtwin_bus::BrokerUrl::new("127.0.0.1", 1));
    AppState::new(
        dtwin_inference::build_scorer(&cfg).unwrap(),
        WindowConfig::default(),
        Profiles::default(),
    )
}

/// The dashboard with the pump profile configured (no pump model yet).
fn pump_state() -> AppState {
    AppState {
        profiles: Profiles::new(&[crate::pump::pump()]),
        ..state()
    }
}

async fn post(s: &AppState, body: &str) -> (StatusCode, String) {
    post_form(s, body).await
}

async fn get(s: &AppState, uri: &str) -> (StatusCode, String) {
    let r = router(s.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post_form(s: &AppState, body: &str) -> (StatusCode, String) {
    let r = router(s.clone())
        .oneshot(
            Request::post("/whatif")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn risky() -> WhatIfForm {
    WhatIfForm {
        vibration_mm_s: "12.5".into(),
        tool_wear_min: "230".into(),
        ..WhatIfForm::healthy()
    }
}

fn encode(f: &WhatIfForm) -> String {
    let v = serde_json::to_value(f).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap().replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn pages_and_assets_are_served_by_the_binary() {
    let s = state();
    for (uri, needle) in [
        ("/", "<table class=\"fleet\""),
        ("/whatif", "name=\"vibration_mm_s\" value=\"2.2\""),
        ("/alerts", "No alerts yet"),
        ("/model", "<h2 id=\"rules\">Expert rules</h2>"),
        ("/assets/app.js", "EventSource"),
        ("/assets/style.css", ".badge"),
        ("/healthz", "ok"),
    ] {
        let (status, body) = get(&s, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(body.contains(needle), "{uri}: {needle}");
        // SVG charts (inline, or drawn by the scripts) name their XML namespace; nothing is
        // fetched from it.
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{uri} fetches nothing external"
        );
    }
    let (status, body) = get(&s, "/machine/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"));
}

#[tokio::test]
async fn bad_form_input_gets_a_message_next_to_the_field() {
    let s = state();
    let (status, body) = post_form(
        &s,
        "temperature_c=&vibration_mm_s=loud&pressure_bar=-4&spindle_rpm=99999999&tool_wear_min=NaN&product_type=Q",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, msg) in [
        ("temperature_c", "is required"),
        ("vibration_mm_s", "must be a number"),
        ("pressure_bar", "must be between"),
        ("spindle_rpm", "must be between"),
        ("tool_wear_min", "finite"),
        ("product_type", "L, M or H"),
    ] {
        let marker = format!("id=\"error-{field}\">");
        let at = body
            .find(&marker)
            .unwrap_or_else(|| panic!("no error next to {field}"));
        assert!(body[at..].contains(msg), "{field}: {msg}");
    }
    // What was typed is kept (and escaped).
    assert!(body.contains("value=\"loud\""));
    let (status, body) = post_form(&s, "vibration_mm_s=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!body.contains("<script>alert(1)"), "typed text is escaped");
}

#[tokio::test]
async fn risky_input_is_at_risk_with_the_seed_actions() {
    let s = state();
    let (status, body) = post_form(&s, &encode(&risky())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"result-status\">AT RISK"), "{body}");
    assert!(
        body.contains("check imbalance and bearing")
            || body.contains("inspect the spindle bearing")
    );
    assert!(body.contains("schedule a tool change"));
    let (_, body) = post_form(&s, &encode(&WhatIfForm::healthy())).await;
    assert!(
        body.contains("id=\"result-status\">HEALTHY"),
        "the healthy pre-fill is healthy"
    );
}

#[test]
fn what_if_equals_the_streaming_services_on_the_same_readings() {
    let s = state();
    for form in [WhatIfForm::healthy(), risky()] {
        let reading = form.validate().unwrap();
        let now = dtwin_schema::time_fmt::now();
        let via_dashboard = whatif::score(&s.scorer, &s.window, &reading, now);

        // The feature service's processor, fed the same readings as a gateway would send them.
        let mut p = dtwin_feature::Processor::new(Topics::default(), &s.window);
        let mut last = None;
        for seq in 1..=60u64 {
            let mut t = reading.clone();
            t.seq = seq;
            t.ts = now;
            let mut out = Vec::new();
            p.handle(
                "dtwin/v1/machines/what-if/telemetry",
                &to_json(&t),
                now,
                seq,
                &mut out,
            );
            last = out.pop();
        }
        let (_, payload) = last.unwrap().into_parts();
        let features: Features = from_json(&payload).unwrap();
        let via_services = s.scorer.score(&features, now).unwrap();
        assert_eq!(via_dashboard.probability, via_services.probability);
        assert_eq!(via_dashboard.status, via_services.status);
        assert_eq!(via_dashboard.health_score, via_services.health_score);
        assert_eq!(via_dashboard.actions, via_services.actions);
    }
    let r = whatif::score(
        &s.scorer,
        &s.window,
        &risky().validate().unwrap(),
        dtwin_schema::time_fmt::now(),
    );
    assert_eq!(r.status, RiskStatus::AtRisk);
}

#[tokio::test]
async fn a_token_guards_every_page_but_healthz() {
    let mut s = state();
    s.token = Some(Arc::from("s3cret-token"));
    let send = |req: Request<Body>| {
        let app = router(s.clone());
        async move { app.oneshot(req).await.unwrap() }
    };
    let r = send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(
        Request::get("/whatif?token=wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK, "probes need no token");
    let r = send(
        Request::get("/")
            .header("authorization", "Bearer s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(
        Request::get("/?token=s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("dtwin_token=s3cret-token") && cookie.contains("HttpOnly"));
    let r = send(
        Request::get("/alerts")
            .header("cookie", "other=1; dtwin_token=s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the cookie lets later requests in"
    );
}

#[tokio::test]
async fn beyond_loopback_the_dashboard_needs_a_token() {
    let mut c = dtwin_dashboard::DashboardConfig::new(dtwin_bus::BrokerUrl::new("127.0.0.1", 1));
    c.listen = "0.0.0.0:0".parse().unwrap();
    let e = dtwin_dashboard::bind(&c).await.err().expect("refused");
    assert!(format!("{e:#}").contains("--dashboard-token"), "{e:#}");
    c.token = Some("t".into());
    assert!(dtwin_dashboard::bind(&c).await.is_ok());
}

#[tokio::test]
async fn the_form_offers_profiles_and_builds_fields_from_the_chosen_one() {
    let (_, body) = get(&state(), "/whatif").await;
    assert!(
        !body.contains("id=\"profile\""),
        "milling only: no selector"
    );
    let s = pump_state();
    let (status, body) = get(&s, "/whatif").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<select id=\"profile\" name=\"profile\">"),
        "{body}"
    );
    assert!(body.contains("<option value=\"pump\">Water pump (pump)</option>"));
    assert!(
        body.contains("name=\"vibration_mm_s\" value=\"2.2\""),
        "milling by default"
    );
    let (status, body) = get(&s, "/whatif?profile=pump").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<option value=\"pump\" selected>"));
    assert!(body.contains("<label for=\"volt\">Voltage (V)"), "{body}");
    assert!(body.contains("type=\"number\" step=\"any\" min=\"0\" max=\"400\""));
    assert!(body.contains("<input type=\"hidden\" name=\"profile\" value=\"pump\">"));
    assert!(
        !body.contains("product_type"),
        "milling's product type is milling's"
    );
    let (volt, rotate) = (
        body.find("id=\"volt\"").unwrap(),
        body.find("id=\"rotate\"").unwrap(),
    );
    assert!(volt < rotate, "the profile's sensor order");
    let (status, body) = get(&s, "/whatif?profile=%3Cb%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("&lt;b&gt;") && body.contains("milling, pump"));
}

#[tokio::test]
async fn a_profile_what_if_refuses_out_of_range_values_by_label() {
    let s = pump_state();
    let (status, body) = post(&s, "profile=pump&volt=999&rotate=fast&pressure=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, msg) in [
        ("volt", "Voltage must be between 0 and 400 V"),
        ("rotate", "Rotation must be a number in rpm"),
        ("pressure", "Pressure is required"),
    ] {
        let at = body
            .find(&format!("id=\"error-{field}\">"))
            .unwrap_or_else(|| panic!("no error next to {field}"));
        assert!(body[at..].contains(msg), "{field}: {msg}");
    }
    assert!(body.contains("value=\"999\""), "what was typed is kept");
}

#[tokio::test]
async fn a_profile_without_a_model_is_rules_only_and_with_one_gets_a_probability() {
    let s = pump_state();
    let ok = "profile=pump&volt=380&rotate=1500&pressure=3";
    let (status, body) = post(&s, ok).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("No model for profile pump yet: rules only."),
        "{body}"
    );
    assert!(
        !body.contains("id=\"result-probability\""),
        "no probability without a model"
    );
    s.models
        .lock()
        .unwrap()
        .deploy("pump", &crate::pump::pump_model().to_json())
        .unwrap();
    let (_, body) = post(&s, ok).await;
    assert!(body.contains("id=\"result-status\">AT RISK"), "{body}");
    assert!(body.contains("id=\"result-probability\">1.000"), "{body}");
    assert!(!body.contains("No model"));
    let (_, body) = post(&s, "profile=pump&volt=115&rotate=1500&pressure=3").await;
    assert!(body.contains("id=\"result-status\">HEALTHY"), "{body}");
    // Milling what-ifs are unchanged by the selector.
    let (_, body) = post_form(&s, &encode(&risky())).await;
    assert!(body.contains("id=\"result-status\">AT RISK"), "{body}");
}

#[test]
fn a_pump_what_if_equals_the_streaming_services_on_the_same_readings() {
    let p = crate::pump::pump();
    let model = crate::pump::pump_model();
    let scorer =
        dtwin_inference::Scorer::new(Arc::new(model), Arc::new(dtwin_inference::RuleSet::none()));
    for volt in [115.0, 380.0] {
        let values = [volt, 1500.0, 3.0];
        let now = dtwin_schema::time_fmt::now();
        let entered = dtwin_dashboard::profile_whatif::Entered {
            values: values.to_vec(),
            attributes: vec![Some(1)],
        };
        let via_dashboard = dtwin_dashboard::profile_whatif::features(&p, &entered, now);

        // The feature service, fed the same values as a gateway would send them (the payload
        // key of `volt` is `voltage`), one second apart.
        let mut fp = dtwin_feature::Processor::with_config(
            Topics::default(),
            dtwin_feature::ProcessorConfig {
                profiles: Arc::new(
                    dtwin_feature::profiles::ProfileSet::new(vec![p.clone()], &[]).unwrap(),
                ),
                ..dtwin_feature::ProcessorConfig::default()
            },
        );
        let mut last = None;
        for seq in 1..=3u64 {
            let ts = dtwin_schema::time_fmt::format(now - time::Duration::seconds(3 - seq as i64));
            let payload = format!(
                r#"{{"profile":"pump","seq":{seq},"ts":"{ts}","values":{{"voltage":{volt},"rotate":1500,"pressure":3,"model":"model2"}}}}"#
            );
            let mut out = Vec::new();
            fp.handle(
                "dtwin/v1/machines/pump-01/telemetry",
                payload.as_bytes(),
                now,
                seq,
                &mut out,
            );
            last = out.pop();
        }
        let (_, payload) = last.unwrap().into_parts();
        let via_service: Features = from_json(&payload).unwrap();
        assert_eq!(via_dashboard.feature_set, via_service.feature_set);
        assert_eq!(via_dashboard.values, via_service.values);
        assert_eq!(via_dashboard.latest, via_service.latest);
        assert_eq!(via_dashboard.cold, via_service.cold);
        let a = scorer.score(&via_dashboard, now).unwrap();
        let b = scorer.score(&via_service, now).unwrap();
        assert_eq!((a.probability, a.status), (b.probability, b.status));
    }
}

#[tokio::test]
async fn a_pump_reads_as_a_pump_in_the_fleet_and_on_its_page() {
    let s = pump_state();
    let risk: dtwin_schema::Risk = from_json(
        br#"{"schema":"dtwin.risk.v1","machine_id":"pump-01","ts":"2026-11-22T10:00:00Z",
        "source_ts":"2026-11-22T10:00:00Z","seq":4,"probability":0.0,"status":"HEALTHY",
        "level":"NORMAL","health_score":100.0,"actions":[],"factors":[],
        "model":{"id":"none","version":"rules-only"},"cold":false,
        "latest":{"volt":176.2,"rotate":1500.0,"humidity":40.0},"profile":"pump"}"#,
    )
    .unwrap();
    s.fleet.lock().unwrap().risk(risk);
    let (_, body) = get(&s, "/").await;
    assert!(
        body.contains("<td class=\"profile\">Water pump</td>"),
        "{body}"
    );
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {body}"))
    };
    assert!(at("Voltage: 176.2 V") < at("Rotation: 1500 rpm"));
    assert!(
        at("Rotation: 1500 rpm") < at("humidity: 40"),
        "unknown sensors last"
    );
    let (status, body) = get(&s, "/machine/pump-01").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Profile: Water pump"), "{body}");
    assert!(
        body.contains("<li title=\"volt\">Voltage: 176.2 V</li>"),
        "{body}"
    );
    assert!(body.contains("Voltage"), "charted by label");
    let (_, body) = get(&s, "/whatif?from=pump-01").await;
    assert!(
        body.contains("<option value=\"pump\" selected>"),
        "the machine's profile"
    );
    assert!(body.contains("name=\"volt\" value=\"176.2\""), "{body}");
}

/// A milling verdict of `machine` with the other models' figures (a hostile rul unit: text
/// from the bus).
fn verdict_with_insights(machine: &str) -> dtwin_schema::Risk {
    from_json(
        format!(
            r#"{{"schema":"dtwin.risk.v1","machine_id":"{machine}","ts":"2026-11-22T10:00:00Z",
            "source_ts":"2026-11-22T10:00:00Z","seq":4,"probability":0.12,"status":"HEALTHY",
            "level":"WARNING","health_score":80.0,"actions":[],"factors":[],
            "model":{{"id":"rf","version":"1"}},"cold":false,"latest":{{}},
            "quality_risk":0.342,"quality_at_risk":true,"anomaly":0.8123,"anomalous":true,
            "rul":{{"value":42.4,"low":30.2,"high":55.1,"unit":"<b>cycles</b>"}},
            "models":{{"anomaly":{{"id":"iforest","version":"2"}},"quality":{{"id":"nok","version":"1"}}}}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_fleet_and_machine_pages_show_the_other_models_only_when_verdicts_carry_them() {
    let s = state();
    let plain: dtwin_schema::Risk = {
        let mut r = verdict_with_insights("mill-01");
        r.insights = Default::default();
        r
    };
    s.fleet.lock().unwrap().risk(plain);
    let (_, body) = get(&s, "/").await;
    assert!(
        body.contains("<table class=\"fleet\" id=\"fleet\" data-insights=\"no\" "),
        "no verdict has them: the column is left out"
    );
    assert!(!body.contains("class=\"badge ins"));
    let (_, body) = get(&s, "/machine/mill-01").await;
    assert!(
        !body.contains("Other models") && !body.contains("Anomaly score"),
        "{body}"
    );

    s.fleet
        .lock()
        .unwrap()
        .risk(verdict_with_insights("mill-02"));
    let (_, body) = get(&s, "/").await;
    assert!(
        body.contains("<table class=\"fleet\" id=\"fleet\" data-insights=\"yes\" "),
        "{body}"
    );
    for badge in [
        "<span class=\"badge ins quality flagged\" title=\"probability of a NOK part within the quality model&#39;s horizon\">quality 34 %</span>",
        ">anomaly 0.81</span>",
        ">life 42 &#60;b&#62;cycles&#60;/b&#62; (5–95 %: 30–55)</span>",
    ] {
        assert!(body.contains(badge), "{badge} in {body}");
    }
    assert!(!body.contains("<b>cycles"), "the unit is text");
    let json = get(&s, "/api/fleet").await.1;
    let snap: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(snap["insights"], true);

    let (_, body) = get(&s, "/machine/mill-02").await;
    assert!(body.contains("<h2>Other models</h2>"), "{body}");
    assert!(
        body.contains("id=\"insight-anomaly\" title=")
            && body.contains(
                "<strong>0.81 (anomalous)</strong> <span class=\"muted\">· model iforest v2</span>"
            ),
        "{body}"
    );
    assert!(body
        .contains("<strong>34 % (at risk)</strong> <span class=\"muted\">· model nok v1</span>"));
    assert!(body.contains(
        "<strong>42 &#60;b&#62;cycles&#60;/b&#62; (5–95 %: 30–55 &#60;b&#62;cycles&#60;/b&#62;)</strong>"
    ));
    assert!(
        !body.contains("<b>cycles"),
        "escaped on the page and in the charts"
    );
    for chart in [
        "Quality risk (0-1)",
        "Anomaly score (0-1)",
        "Remaining useful life",
    ] {
        assert!(body.contains(chart), "{chart} charted");
    }
}

#[tokio::test]
async fn the_alert_log_names_each_alert_s_cause() {
    let s = state();
    for (id, detail) in [
        (
            "m-1-anomaly-20261122T100000000Z",
            "anomaly alert: score 0.81",
        ),
        ("m-1-20261122T100500000Z", ""),
    ] {
        let e: dtwin_schema::AlertEvent = serde_json::from_value(serde_json::json!({
            "schema": "dtwin.alert.v1", "machine_id": "m-1", "ts": "2026-11-22T10:00:00Z",
            "alert_id": id, "event": "firing", "level": "WARNING", "probability": 0.3,
            "actions": [], "detail": detail
        }))
        .unwrap();
        s.fleet.lock().unwrap().alert(e);
    }
    let (_, body) = get(&s, "/alerts").await;
    let anomaly = body
        .find("<td class=\"cause\">anomaly</td>")
        .expect("anomaly alert");
    let failure = body
        .find("<td class=\"cause\">failure</td>")
        .expect("failure alert");
    assert!(failure < anomaly, "newest first");
    assert_eq!(
        dtwin_dashboard::web::alert_cause("m-anomaly", "m-anomaly-2026"),
        "failure"
    );
}

/// The pump dashboard with a pump classifier and the pump's quality, anomaly and rul models.
fn pump_with_every_kind() -> AppState {
    let s = pump_state();
    s.models
        .lock()
        .unwrap()
        .deploy("pump", &crate::pump::pump_model().to_json())
        .unwrap();
    let mut k = s.kinds.lock().unwrap();
    for (kind, model) in [
        ("anomaly", crate::pump::pump_anomaly_model()),
        ("rul", crate::pump::pump_rul_model()),
        ("quality", crate::pump::pump_quality_model()),
    ] {
        k.deploy("pump", kind, &model.to_json(), None).unwrap();
    }
    drop(k);
    s
}

#[tokio::test]
async fn the_model_page_lists_every_model_by_profile_and_kind() {
    let s = pump_with_every_kind();
    let (status, body) = get(&s, "/model").await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<&str> = body
        .match_indices("<tr data-profile=\"")
        .map(|(at, _)| &body[at..at + body[at..].find("</tr>").unwrap()])
        .collect();
    let keys: Vec<String> = rows
        .iter()
        .map(|r| {
            let attr = |name: &str| {
                let at = r.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                r[at..at + r[at..].find('"').unwrap()].to_owned()
            };
            format!("{}/{}", attr("data-profile"), attr("data-kind"))
        })
        .collect();
    assert_eq!(
        keys,
        [
            "milling/classifier",
            "pump/classifier",
            "pump/quality",
            "pump/anomaly",
            "pump/rul"
        ]
    );
    // The shipped milling model is an artifact from before kinds (no `kind` field): a
    // classifier, with its key metrics found in its nested report.
    assert!(rows[0].contains("failure classifier"), "{}", rows[0]);
    assert!(
        rows[0].contains("<span class=\"metric\">roc_auc 0.99"),
        "{}",
        rows[0]
    );
    let anomaly = rows[3];
    for needle in [
        "<td class=\"kind\">anomaly<br><span class=\"muted\">models/pump/anomaly</span>",
        "<td class=\"model\"><a href=\"#model-pump-anomaly\">pump-iforest v3</a></td>",
        "<td class=\"created muted\">2026-11-20T08:00:00Z</td>",
        "<td class=\"label\">unlike healthy pumps</td>",
        "<td class=\"threshold\">0.520</td>",
        "<span class=\"metric\">roc_auc 0.9700</span> <span class=\"metric\">test_healthy_flagged 0.0120</span>",
    ] {
        assert!(anomaly.contains(needle), "{needle} in {anomaly}");
    }
    let rul = rows[4];
    assert!(
        rul.contains("rul (seconds)") && rul.contains("<td class=\"threshold\">n/a</td>"),
        "{rul}"
    );
    assert!(
        rul.contains("rmse 812.5000") && rul.contains("<td class=\"created muted\">unknown</td>"),
        "{rul}"
    );
    // A model taken away (an empty retained message) leaves the page.
    s.kinds
        .lock()
        .unwrap()
        .deploy("pump", "rul", b"", None)
        .unwrap();
    let (_, body) = get(&s, "/model").await;
    assert!(!body.contains("data-kind=\"rul\""));
}

#[tokio::test]
async fn the_what_if_result_shows_the_profile_s_other_models() {
    let s = pump_with_every_kind();
    let (status, body) = post(
        &s,
        "profile=pump&volt=380&rotate=1500&pressure=3&model=model1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"result-status\">AT RISK"), "{body}");
    let figure = |kind: &str| {
        let at = body
            .find(&format!("id=\"result-{kind}\""))
            .unwrap_or_else(|| panic!("no {kind} figure in {body}"));
        let end = at + body[at..].find("</dd>").unwrap();
        body[at..end].to_owned()
    };
    assert!(
        figure("quality").contains("100 % (at risk)"),
        "{}",
        figure("quality")
    );
    assert!(figure("quality").contains("model pump-nok v1"));
    assert!(
        figure("anomaly").contains("(anomalous)"),
        "{}",
        figure("anomaly")
    );
    // (400 - 380) x 100 s; the forest only saw 100-140 V, so it says what it knows: short.
    let rul = figure("rul");
    assert!(
        rul.contains(" (5–95 %: ") && (rul.contains(" h") || rul.contains(" min")),
        "{rul}"
    );
    let (_, body) = post(
        &s,
        "profile=pump&volt=115&rotate=1500&pressure=3&model=model1",
    )
    .await;
    assert!(body.contains("id=\"result-status\">HEALTHY"), "{body}");
    assert!(body.contains("(ordinary)"), "{body}");

    // Without the pump classifier, the anomaly model decides (rules-only verdict), and the
    // page says so.
    let s = pump_state();
    s.kinds
        .lock()
        .unwrap()
        .deploy(
            "pump",
            "anomaly",
            &crate::pump::pump_anomaly_model().to_json(),
            None,
        )
        .unwrap();
    let (_, body) = post(&s, "profile=pump&volt=380&rotate=1500&pressure=3").await;
    assert!(body.contains("id=\"result-status\">AT RISK"), "{body}");
    assert!(
        body.contains("No failure classifier for profile pump yet"),
        "{body}"
    );
    assert!(
        body.contains("ANOMALY") || body.contains("unlike the healthy reference"),
        "{body}"
    );

    // A model trained on other features gives no figure, and says why.
    let milling_quality = dtwin_ml::ModelArtifact::from_json(dtwin_inference::SHIPPED_MODEL)
        .unwrap()
        .into_quality();
    s.kinds
        .lock()
        .unwrap()
        .deploy("pump", "quality", &milling_quality.to_json(), None)
        .unwrap();
    let (_, body) = post(&s, "profile=pump&volt=380&rotate=1500&pressure=3").await;
    assert!(!body.contains("id=\"result-quality\""));
    assert!(
        body.contains("The quality model of this profile was trained on other features"),
        "{body}"
    );

    // Milling: the same form, with milling's quality model.
    let s = state();
    s.kinds
        .lock()
        .unwrap()
        .deploy("milling", "quality", &milling_quality.to_json(), None)
        .unwrap();
    let (_, body) = post_form(&s, &encode(&risky())).await;
    assert!(body.contains("id=\"result-quality\""), "{body}");
    let (_, body) = post_form(&s, &encode(&WhatIfForm::healthy())).await;
    assert!(body.contains("id=\"result-quality\""), "{body}");
    assert!(
        !body.contains("id=\"result-anomaly\""),
        "only the kinds deployed"
    );
}

/// The part of `body` from the element with id `id` to the end of its section.
fn section<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let end = at + body[at..].find("</section>").unwrap_or(body.len() - at);
    &body[at..end]
}

#[tokio::test]
async fn the_model_page_shows_each_model_s_card_and_every_rule_in_use() {
    let s = pump_with_every_kind();
    let (status, body) = get(&s, "/model").await;
    assert_eq!(status, StatusCode::OK);
    for anchor in [
        "model-milling-classifier",
        "model-pump-classifier",
        "model-pump-quality",
        "model-pump-anomaly",
        "model-pump-rul",
    ] {
        assert!(
            body.contains(&format!("<section class=\"card\" id=\"{anchor}\"")),
            "{anchor}"
        );
        assert!(
            body.contains(&format!("href=\"#{anchor}\"")),
            "linked from the table"
        );
    }
    // The shipped classifier: trained on, metrics at its threshold, the event view, charts.
    let milling = section(&body, "model-milling-classifier");
    for needle in [
        "<th>trained on</th><td>twin: 200 machines x 1500 steps",
        "<th>created</th><td>2026-11-23T03:43:20.8596706Z</td>",
        "<th>true positives (TP)</th><td>1032</td>",
        "<th>failures caught</th><td>43 of 45 (96 %)</td>",
        "<th>median lead time</th><td>26 min (26 readings)</td>",
        "<th>false alarms per machine-day</th><td>0.0960 over 41.7 machine-days</td>",
        "<th>bearing</th><td>18</td><td>18</td>",
        "<div class=\"chart confusion\"><svg",
        "<div class=\"chart importance\"><svg",
        "TP 1032",
    ] {
        assert!(milling.contains(needle), "{needle}");
    }
    assert!(!milling.contains("{&quot;"), "no JSON on the page");
    // An anomaly model with only two figures: its key metrics, nothing invented.
    let anomaly = section(&body, "model-pump-anomaly");
    assert!(anomaly.contains("0.9700") && !anomaly.contains("chart roc"));
    let rul = section(&body, "model-pump-rul");
    assert!(rul.contains("<th>RMSE</th><td>812.5000</td>"), "{rul}");
    assert!(rul.contains("chart importance"), "a regressor's importance");
    // Every rule of the rules in use: condition, level, action.
    let rules = section(&body, "rules-table");
    let rows = rules.matches("<tr data-rule=").count();
    assert_eq!(rows, s.scorer.rules().len());
    assert!(rows >= 12, "{rows}");
    for needle in [
        "<tr data-rule=\"HEAT_DISSIPATION\"><td class=\"code\">HEAT_DISSIPATION</td><td class=\"level\"><span class=\"badge WARNING\">WARNING</span></td><td class=\"condition\"><code>temp_diff_c &#60; 8.6 and spindle_rpm &#60; 1380</code></td><td class=\"action\">Poor heat dissipation at low speed: raise spindle speed or check ventilation</td>",
        "<span class=\"badge CRITICAL\">CRITICAL</span></td><td class=\"condition\"><code>vibration_mm_s_mean_10 &#62; 11</code>",
    ] {
        assert!(rules.contains(needle), "{needle} in {rules}");
    }
    assert!(body.contains("apply the shipped rules (services/inference/rules/default.toml)"));
    assert!(body.contains("No expert rules apply to the machines of Water pump (pump)"));
}

async fn post_json(s: &AppState, uri: &str, body: serde_json::Value) -> (StatusCode, String) {
    let r = router(s.clone())
        .oneshot(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_what_if_api_answers_with_the_verdict_the_risk_across_each_input_and_advice() {
    let s = state();
    let hard = serde_json::json!({
        "values": {"temperature_c": 36.8, "vibration_mm_s": "2.2", "pressure_bar": 6.0,
            "spindle_rpm": 1540, "tool_wear_min": 210, "torque_nm": 62, "ambient_temperature_c": 26.9},
        "attributes": {"product_type": "M"}
    });
    let (status, body) = post_json(&s, "/api/whatif", hard.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The same verdict as the form's (the same scorer).
    let form = WhatIfForm {
        tool_wear_min: "210".into(),
        torque_nm: "62".into(),
        ..WhatIfForm::healthy()
    };
    let now = dtwin_schema::time_fmt::now();
    let expected = whatif::score(&s.scorer, &s.window, &form.validate().unwrap(), now);
    let v = &a["verdict"];
    assert_eq!(v["probability"].as_f64().unwrap(), expected.probability);
    assert_eq!(v["health"].as_f64().unwrap(), expected.health_score);
    assert!(v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["code"] == "OVERSTRAIN"));
    // The risk across each of the seven inputs' spans.
    let sweeps = a["sensitivity"].as_array().unwrap();
    assert_eq!(sweeps.len(), 7);
    assert!(sweeps
        .iter()
        .all(|s| s["points"].as_array().unwrap().len()
            == dtwin_dashboard::advice::SENSITIVITY_POINTS));
    // Advice on speed and torque: lower risk, within the bounds, the energy it takes.
    let adv = &a["advice"];
    let text = adv["text"].as_str().unwrap();
    assert!(
        text.starts_with("run at ") && text.contains(" -> ") && text.contains("energy"),
        "{text}"
    );
    assert!(
        adv["risk_after"].as_f64() < adv["risk_before"].as_f64(),
        "{adv}"
    );
    for c in adv["changes"].as_array().unwrap() {
        let to = c["to"].as_f64().unwrap();
        match c["sensor"].as_str().unwrap() {
            "spindle_rpm" => assert!((1200.0..=2800.0).contains(&to)),
            "torque_nm" => assert!((10.0..=70.0).contains(&to)),
            other => panic!("{other} is not controllable"),
        }
    }
    assert_eq!(
        adv["controls"],
        serde_json::json!(["spindle_rpm", "torque_nm"])
    );
    // Reproducible: the same question, the same advice.
    let (_, again) = post_json(&s, "/api/whatif", hard).await;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["advice"], a["advice"]);

    // A bad value gets the form's message for its field.
    let (status, body) = post_json(
        &s,
        "/api/whatif",
        serde_json::json!({"values": {"temperature_c": 36.8, "vibration_mm_s": "loud"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(e["errors"]["vibration_mm_s"]
        .as_str()
        .unwrap()
        .contains("must be a number"));
    assert!(e["errors"]["pressure_bar"]
        .as_str()
        .unwrap()
        .contains("required"));
    assert!(e["verdict"].is_null());

    // A pump: its three inputs, no controls so no advice, rules only.
    let s = pump_state();
    let (status, body) = post_json(
        &s,
        "/api/whatif",
        serde_json::json!({"profile": "pump", "values": {"volt": 176, "rotate": 1500, "pressure": 3}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(a["advice"].is_null());
    assert_eq!(a["sensitivity"].as_array().unwrap().len(), 3);
    assert!(a["verdict"]["no_model"]
        .as_str()
        .unwrap()
        .contains("No model for profile pump yet"));
    let (status, _) = post_json(&s, "/api/whatif", serde_json::json!({"profile": "kiln"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_what_if_page_has_sliders_over_typical_spans_and_marks_the_adjustable_inputs() {
    let (_, body) = get(&state(), "/whatif").await;
    assert!(
        body.contains("<input type=\"range\" class=\"slider\" id=\"spindle_rpm-slider\" data-for=\"spindle_rpm\" min=\"1000\" max=\"3000\" step=\"10\" value=\"1540\""),
        "{body}"
    );
    assert!(body.contains("id=\"vibration_mm_s-slider\" data-for=\"vibration_mm_s\" min=\"0\" max=\"15\" step=\"0.1\""));
    let rpm = &body[body.find("data-name=\"spindle_rpm\"").unwrap()..];
    assert!(rpm[..rpm.find("</label>").unwrap()].contains(">adjustable</span>"));
    let vib = &body[body.find("data-name=\"vibration_mm_s\"").unwrap()..];
    assert!(!vib[..vib.find("</label>").unwrap()].contains("adjustable"));
    assert!(body.contains("<svg class=\"sens\" id=\"sens-torque_nm\""));
    assert!(body.contains("<aside class=\"verdict\" id=\"live\" hidden"));
    assert!(body.contains("<script src=\"/assets/whatif.js\"></script>"));
}

/// A milling verdict of `machine` now.
fn verdict_now(machine: &str, p: f64) -> dtwin_schema::Risk {
    let mut r = verdict_with_insights(machine);
    r.insights = Default::default();
    r.probability = p;
    r.status = if p >= 0.5 {
        RiskStatus::AtRisk
    } else {
        RiskStatus::Healthy
    };
    r.ts = dtwin_schema::time_fmt::now();
    r.source_ts = r.ts;
    r
}

#[tokio::test]
async fn the_fleet_shows_lines_from_the_routing_file_sparklines_ages_and_the_last_hour() {
    let mut s = state();
    s.routes = Arc::new(
        dtwin_dashboard::routes::Routes::parse(
            "[[machine]]\nmachines = [\"press-*\"]\nline = \"line-a\"\ncriticality = 3\n\n[[route]]\nto = [\"a@example.com\"]\n",
        )
        .unwrap(),
    );
    {
        let mut f = s.fleet.lock().unwrap();
        for p in [0.2, 0.4, 0.9] {
            f.risk(verdict_now("press-01", p));
        }
        f.risk(verdict_now("press-02", 0.1));
        f.risk(verdict_now("mill-01", 0.2));
    }
    let (status, body) = get(&s, "/").await;
    assert_eq!(status, StatusCode::OK);
    let row = |id: &str| {
        let at = body.find(&format!("<tr data-machine=\"{id}\">")).unwrap();
        body[at..at + body[at..].find("</tr>").unwrap()].to_owned()
    };
    let press = row("press-01");
    assert!(
        press.contains("<td class=\"line\">line-a</td><td class=\"criticality\">3</td>"),
        "{press}"
    );
    assert!(press.contains("<svg class=\"spark AT_RISK\""), "{press}");
    assert!(
        press.contains("points=\"0.0,18.6 50.0,14.2 100.0,3.2\""),
        "risk 0.2, 0.4, 0.9 from left to right: {press}"
    );
    assert!(press.contains("<time datetime=\""), "{press}");
    assert!(
        press.contains(" UTC\">"),
        "the absolute time on hover: {press}"
    );
    assert!(
        press.contains(">just now</time>") || press.contains(" s ago</time>"),
        "{press}"
    );
    let mill = row("mill-01");
    assert!(
        mill.contains("<td class=\"line\"></td><td class=\"criticality\"></td>"),
        "no line guessed from the id: {mill}"
    );
    assert!(body.contains("data-criticality=\"yes\""));
    assert!(body.contains("<option value=\"line-a\">line-a</option>"));
    assert!(
        !body.contains("<option value=\"press\">"),
        "no line from ids"
    );
    // The last hour: one machine was at risk, two stayed healthy.
    assert!(
        body.contains("<span id=\"were-at-risk\">1</span>"),
        "{body}"
    );
    assert!(body.contains("<span id=\"stayed-healthy\">2</span>"));
    assert!(body.contains("<rect class=\"risky\""));
    // The same, live, as JSON; filtered by the routing file's line.
    let (_, json) = get(&s, "/api/fleet?line=line-a").await;
    let snap: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(snap["matching"], 2);
    assert_eq!(snap["lines"], serde_json::json!(["line-a"]));
    assert_eq!(snap["rows"][0]["spark"], serde_json::json!([0.2, 0.4, 0.9]));
    assert!(snap["rows"][0]["age_s"].as_f64().unwrap() < 60.0);
    assert_eq!(snap["hour"]["minutes"].as_array().unwrap().len(), 60);
    assert_eq!(snap["hour"]["peak_at_risk"], 1);
}

fn alert_event(machine: &str, id: &str, event: &str, by: Option<&str>) -> dtwin_schema::AlertEvent {
    let mut v = serde_json::json!({
        "schema": "dtwin.alert.v1", "machine_id": machine, "ts": dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()),
        "alert_id": id, "event": event, "level": "CRITICAL", "probability": 0.91,
        "actions": [], "detail": "risk 0.91: check the bearing"
    });
    if let Some(by) = by {
        v["by"] = by.into();
        v["comment"] = "on it, bearing ordered".into();
    }
    serde_json::from_value(v).unwrap()
}

/// Posts the Acknowledge / Clear form as the dashboard's own page does.
async fn act(s: &AppState, body: &str, origin: &str) -> axum::response::Response {
    router(s.clone())
        .oneshot(
            Request::post("/alerts/action")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("host", "dashboard.test")
                .header("origin", origin)
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn text_of(r: axum::response::Response) -> String {
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn acknowledge_and_clear_publish_the_action_and_the_pages_show_who_acted() {
    let mut s = state();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    s.control = Some(tx);
    let id = "press-1-20261122T100000000Z";
    s.fleet
        .lock()
        .unwrap()
        .alert(alert_event("press-1", id, "firing", None));
    let (_, body) = get(&s, "/alerts").await;
    let open = section(&body, "alert-press-1");
    assert!(open.contains("data-state=\"unacknowledged\""), "{open}");
    assert!(open.contains("value=\"acknowledge\" class=\"ack-button\">Acknowledge</button>"));
    assert!(open.contains("value=\"clear\" class=\"clear-button\""));
    let me = "http://dashboard.test";

    // Acknowledge: the action goes to the bus, the browser back to its page.
    let form = format!("machine=press-1&alert_id={id}&action=acknowledge&by=Ana+Lima&comment=on+it%2C+bearing+ordered&back=%2Fmachine%2Fpress-1");
    let r = act(&s, &form, me).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/machine/press-1");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("dtwin_user=Ana%20Lima;"), "{cookie}");
    let sent = rx.try_recv().expect("an action published");
    assert_eq!(sent.action, dtwin_schema::AlertActionKind::Acknowledge);
    assert_eq!(
        (sent.by.as_str(), sent.comment.as_str()),
        ("Ana Lima", "on it, bearing ordered")
    );
    assert_eq!(
        (sent.machine_id.as_str(), sent.alert_id.as_str()),
        ("press-1", id)
    );
    let json = serde_json::to_value(&sent).unwrap();
    assert_eq!(json["schema"], "dtwin.alert-action.v1");
    assert_eq!(json["action"], "acknowledge");
    // Until the alerter confirms, the machine page says it waits (and knows who acts).
    let r = router(s.clone())
        .oneshot(
            Request::get("/machine/press-1")
                .header("cookie", "dtwin_user=Ana%20Lima")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let page = text_of(r).await;
    assert!(page.contains("Acknowledgement sent by Ana Lima"), "{page}");
    assert!(
        page.contains("value=\"Ana Lima\""),
        "the name is remembered"
    );

    // The alerter's acknowledged event: who, when, the comment; no second Acknowledge.
    s.fleet
        .lock()
        .unwrap()
        .alert(alert_event("press-1", id, "acknowledged", Some("Ana Lima")));
    let (_, body) = get(&s, "/alerts").await;
    let open = section(&body, "alert-press-1");
    assert!(open.contains("data-state=\"acknowledged\""), "{open}");
    assert!(open
        .contains("Acknowledged by <strong class=\"by\">Ana Lima</strong> at <span class=\"at\">"));
    assert!(open.contains("<q class=\"comment\">on it, bearing ordered</q>"));
    assert!(!open.contains("ack-button") && open.contains("clear-button"));
    assert!(!open.contains("class=\"pending"), "confirmed");
    let r = act(&s, &form, me).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(text_of(r)
        .await
        .contains("Ana Lima acknowledged this alert already"));

    // Refused: another site's page, no name, an alert that is not open; nothing is sent.
    let r = act(
        &s,
        &form.replace("acknowledge", "clear"),
        "http://evil.example",
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = act(
        &s,
        &form
            .replace("acknowledge", "clear")
            .replace("Ana+Lima", "+"),
        me,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = act(
        &s,
        &form
            .replace("acknowledge", "clear")
            .replace(id, "press-1-old"),
        me,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = act(&s, &form.replace("acknowledge", "reboot"), me).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rx.try_recv().is_err());

    // Clear: sent, then the alerter's cleared event ends the alert, recorded as cleared by hand.
    let r = act(
        &s,
        &form
            .replace("acknowledge", "clear")
            .replace("Ana+Lima", "Bo"),
        me,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        rx.try_recv().unwrap().action,
        dtwin_schema::AlertActionKind::Clear
    );
    s.fleet
        .lock()
        .unwrap()
        .alert(alert_event("press-1", id, "cleared", Some("Bo")));
    let (_, body) = get(&s, "/alerts").await;
    assert!(body.contains("id=\"no-open\""), "nothing open");
    assert!(body.contains("<td class=\"event\">cleared</td>"));
    let (_, body) = get(&s, "/alerts/history?state=cleared").await;
    let row = section(&body, "history");
    assert!(
        row.contains(&format!("<tr data-alert=\"{id}\" data-state=\"cleared\">")),
        "{row}"
    );
    assert!(row.contains("<td class=\"acknowledged\">Ana Lima at "));
    assert!(row.contains("cleared by Bo at "), "{row}");
    let (_, body) = get(&s, "/alerts/history?state=resolved").await;
    assert!(body.contains("No alert matches."));
    let (status, csv) = get(&s, "/alerts/history.csv?machine=press").await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], dtwin_dashboard::alerts::CSV_HEADER);
    assert!(
        lines[1].starts_with(&format!("{id},press-1,failure,CRITICAL,cleared,")),
        "{csv}"
    );
    assert!(
        lines[1].contains(",Ana Lima,") && lines[1].contains(",Bo,"),
        "{csv}"
    );

    // A dashboard without a bus connection cannot act, and says so.
    let mut s = state();
    s.fleet
        .lock()
        .unwrap()
        .alert(alert_event("press-1", id, "firing", None));
    let r = act(&s, &form, me).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    s.control = None;
    let (_, body) = get(&s, "/alerts").await;
    assert!(!body.contains("ack-button"), "no buttons that cannot work");
}

#[tokio::test]
async fn the_retained_alert_state_tells_a_fresh_dashboard_what_is_open_and_who_acknowledged() {
    let s = state();
    let snapshot: dtwin_schema::AlertSnapshot = serde_json::from_value(serde_json::json!({
        "schema": "dtwin.alertstate.v1", "machine_id": "lathe-9", "ts": "2026-11-22T10:05:00Z",
        "firing": {"alert_id": "lathe-9-anomaly-20261122T100000000Z", "since": "2026-11-22T10:00:00Z",
            "level": "WARNING", "last_notified": "2026-11-22T10:00:00Z", "repeats": 0, "healthy_run": 0,
            "acknowledged": {"by": "Cy", "at": "2026-11-22T10:03:00Z", "comment": "<b>watching</b>"}}
    }))
    .unwrap();
    s.fleet.lock().unwrap().alert_state(snapshot.clone());
    let (_, body) = get(&s, "/alerts").await;
    let open = section(&body, "alert-lathe-9");
    assert!(
        open.contains("<span class=\"cause\">anomaly</span>"),
        "{open}"
    );
    assert!(open.contains("Acknowledged by <strong class=\"by\">Cy</strong> at <span class=\"at\">2026-11-22 10:03:00 UTC</span>"));
    assert!(
        open.contains("&#60;b&#62;watching&#60;/b&#62;"),
        "escaped: {open}"
    );
    let (_, body) = get(&s, "/alerts/history").await;
    assert!(body.contains("data-state=\"acknowledged\""), "{body}");
    // Resolved since: the retained state says nothing is open.
    let mut done = snapshot;
    done.firing = None;
    done.ts = time::macros::datetime!(2026-11-22 10:30 UTC);
    s.fleet.lock().unwrap().alert_state(done);
    let (_, body) = get(&s, "/alerts").await;
    assert!(body.contains("id=\"no-open\""));
}

#[tokio::test]
async fn a_machine_page_advises_on_its_latest_readings() {
    let s = state();
    let mut r = verdict_now("mill-07", 0.2);
    r.latest = [
        ("temperature_c", 36.8),
        ("ambient_temperature_c", 26.9),
        ("vibration_mm_s", 2.2),
        ("pressure_bar", 6.0),
        ("spindle_rpm", 1540.0),
        ("torque_nm", 62.0),
        ("tool_wear_min", 210.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    s.fleet.lock().unwrap().risk(r.clone());
    let (_, body) = get(&s, "/machine/mill-07").await;
    let at = body.find("id=\"advice\"").expect("advice shown");
    let advice = &body[at..at + body[at..].find("</p>").unwrap()];
    assert!(
        advice.contains("<strong>Run at ") && advice.contains("N·m: risk "),
        "{advice}"
    );
    assert!(advice.contains("href=\"/whatif?from=mill-07\""));
    // A machine in a good spot gets none.
    r.latest.insert("torque_nm".into(), 40.0);
    r.latest.insert("tool_wear_min".into(), 60.0);
    s.fleet.lock().unwrap().risk(r);
    let (_, body) = get(&s, "/machine/mill-07").await;
    assert!(!body.contains("id=\"advice\""));
}
