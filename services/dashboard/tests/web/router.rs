//! The router without a browser (tower's `oneshot`): pages render, bad form input gets a
//! message next to the field (422, never a 500), and the what-if form agrees with the
//! streaming feature service + inference scorer fed the same readings.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dtwin_dashboard::profiles::Profiles;
use dtwin_dashboard::state::Fleet;
use dtwin_dashboard::web::{router, AppState};
use dtwin_dashboard::whatif::{self, WhatIfForm};
use dtwin_inference::InferenceConfig;
use dtwin_schema::{from_json, to_json, Features, RiskStatus, Topics};
use dtwin_windows::WindowConfig;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

fn state() -> AppState {
    let cfg = InferenceConfig::new(dtwin_bus::BrokerUrl::new("127.0.0.1", 1));
    AppState {
        fleet: Arc::new(Mutex::new(Fleet::default())),
        scorer: Arc::new(dtwin_inference::build_scorer(&cfg).unwrap()),
        window: WindowConfig::default(),
        profiles: Profiles::default(),
        models: Arc::default(),
        token: None,
    }
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
        ("/model", "Model card"),
        ("/assets/app.js", "EventSource"),
        ("/assets/style.css", ".badge"),
        ("/healthz", "ok"),
    ] {
        let (status, body) = get(&s, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(body.contains(needle), "{uri}: {needle}");
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
