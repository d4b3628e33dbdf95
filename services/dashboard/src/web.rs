//! The HTTP side: [`router`] is a function of [`AppState`], so tests drive it without a
//! socket (tower's `oneshot`) and the service serves the same router.

use crate::profiles::Profiles;
use crate::routes::Routes;
use crate::state::{Filter, Fleet, Snapshot};
use crate::whatif_page::{whatif_page, whatif_submit};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dtwin_inference::kinds::KindModels;
use dtwin_inference::profiles::ProfileModels;
use dtwin_inference::Scorer;
use dtwin_schema::{Level, Risk, RiskStatus};
use dtwin_windows::WindowConfig;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a browser's live view is refreshed at most (coalesces any number of messages).
pub const PUSH_EVERY: Duration = Duration::from_millis(500);

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The fleet as seen on the bus. A std mutex: held only to copy out, never across await.
    pub fleet: Arc<Mutex<Fleet>>,
    /// The inference service's scorer (same model and rules).
    pub scorer: Arc<Scorer>,
    /// The feature service's window settings.
    pub window: WindowConfig,
    /// The machine profiles known (configured plus milling).
    pub profiles: Profiles,
    /// The models of profiles other than milling, as deployed retained on
    /// `{prefix}/models/{profile}` (the what-if form scores with them).
    pub models: Arc<Mutex<ProfileModels>>,
    /// Every profile's models of other kinds (quality, anomaly, rul), as deployed retained on
    /// `{prefix}/models/{profile}/{kind}`: the model page lists them, the what-if result
    /// shows their figures.
    pub kinds: Arc<Mutex<KindModels>>,
    /// When set, every request must carry it (`Authorization: Bearer`, the `dtwin_token`
    /// cookie, or `?token=` once, which sets the cookie).
    pub token: Option<Arc<str>>,
    /// Where the expert rules come from (the model page says so).
    pub rules_source: Arc<str>,
    /// Lines and criticality of machines (the routing file's `[[machine]]` entries).
    pub routes: Arc<Routes>,
    /// Where a person's acknowledgements and clears go: the service publishes them on
    /// `{prefix}/control/alerts/{machine}` (none: this dashboard cannot act on alerts).
    pub control: Option<tokio::sync::mpsc::Sender<dtwin_schema::AlertAction>>,
}

/// What the model page says of the shipped rules.
pub const SHIPPED_RULES: &str = "the shipped rules (services/inference/rules/default.toml)";

impl AppState {
    /// A dashboard scoring with `scorer` on `window`'s features, knowing `profiles`, with
    /// no models of other profiles or kinds yet, no token and the shipped rules.
    pub fn new(scorer: Scorer, window: WindowConfig, profiles: Profiles) -> Self {
        Self {
            fleet: Arc::new(Mutex::new(Fleet::default())),
            scorer: Arc::new(scorer),
            window,
            profiles,
            models: Arc::default(),
            kinds: Arc::default(),
            token: None,
            rules_source: Arc::from(SHIPPED_RULES),
            routes: Arc::default(),
            control: None,
        }
    }

    /// A page of the fleet as of now.
    pub(crate) fn snapshot(&self, f: &Filter) -> Snapshot {
        let ctx = crate::state::Context {
            profiles: &self.profiles,
            routes: &self.routes,
            now: dtwin_schema::time_fmt::now(),
        };
        self.fleet().snapshot_at(f, &ctx)
    }

    pub(crate) fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        // A panic while holding the lock would poison it; the data is still usable.
        self.fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess was
/// right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Lets a request through only with the dashboard's token.
async fn require_token(
    State(token): State<Arc<str>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("dtwin_token="));
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    if bearer.is_some_and(|t| same(t, &token)) || cookie.is_some_and(|t| same(t, &token)) {
        return next.run(req).await;
    }
    if query.is_some_and(|t| same(t, &token)) {
        let mut r = next.run(req).await;
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
            "dtwin_token={token}; HttpOnly; SameSite=Strict; Path=/"
        )) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "the dashboard needs its token: open it once as /?token=TOKEN (--dashboard-token)",
    )
        .into_response()
}

/// The dashboard's routes (behind the token check when a token is set; `/healthz` stays open
/// for probes).
pub fn router(state: AppState) -> Router {
    let token = state.token.clone();
    let app = routes(state);
    let app = match token {
        Some(t) => app.layer(axum::middleware::from_fn_with_state(t, require_token)),
        None => app,
    };
    app.route("/healthz", get(|| async { "ok" }))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/events", get(events))
        .route("/api/fleet", get(fleet_json))
        .route("/machine/{id}", get(machine_page))
        .route("/whatif", get(whatif_page).post(whatif_submit))
        .route(
            "/api/whatif",
            axum::routing::post(crate::whatif_api::whatif_api),
        )
        .route("/alerts", get(crate::alerts_page::alerts_page))
        .route("/alerts/history", get(crate::alerts_page::history_page))
        .route("/alerts/history.csv", get(crate::alerts_page::history_csv))
        .route(
            "/alerts/action",
            axum::routing::post(crate::alerts_page::alert_action),
        )
        .route("/model", get(crate::model_page::model_page))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css", include_str!("../assets/style.css")) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", include_str!("../assets/app.js")) }),
        )
        .route(
            "/assets/whatif.js",
            get(|| async { asset("text/javascript", include_str!("../assets/whatif.js")) }),
        )
        .route(
            "/assets/alerts.js",
            get(|| async { asset("text/javascript", include_str!("../assets/alerts.js")) }),
        )
        .with_state(state)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A 500 saying what failed.
pub(crate) fn internal(what: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, what.to_owned()).into_response()
}

/// A page, or a 500 with the template error (never a panic).
pub(crate) fn page(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

pub(crate) fn status_text(s: RiskStatus) -> (&'static str, &'static str) {
    match s {
        RiskStatus::AtRisk => ("AT_RISK", "AT RISK"),
        RiskStatus::Healthy => ("HEALTHY", "HEALTHY"),
    }
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    snap: Snapshot,
}

async fn fleet_page(State(s): State<AppState>, Query(f): Query<Filter>) -> Response {
    let snap = s.snapshot(&f);
    page(FleetPage { snap })
}

async fn fleet_json(State(s): State<AppState>, Query(f): Query<Filter>) -> axum::Json<Snapshot> {
    axum::Json(s.snapshot(&f))
}

/// Server-sent events: a `fleet` event with the filtered page whenever the fleet changed,
/// at most every [`PUSH_EVERY`].
async fn events(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((s, f, u64::MAX, true), |(s, f, seen, first)| async move {
            loop {
                if !first {
                    tokio::time::sleep(PUSH_EVERY).await;
                }
                let version = s.fleet().version();
                if version != seen || first {
                    let snap = s.snapshot(&f);
                    let data = serde_json::to_string(&snap).unwrap_or_default();
                    let ev = Event::default().event("fleet").data(data);
                    return Some((Ok(ev), (s, f, version, false)));
                }
                tokio::time::sleep(PUSH_EVERY).await;
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Template)]
#[template(path = "machine.html")]
struct MachinePage {
    id: String,
    status: &'static str,
    status_text: &'static str,
    level: &'static str,
    risk: Option<Risk>,
    /// What to change, when the optimiser finds a better setting of the profile's
    /// controllable inputs for the latest readings.
    advice: Option<String>,
    /// The open alert with its Acknowledge / Clear form.
    open: Option<crate::alerts_page::OpenView>,
    user: String,
    back: String,
    can_act: bool,
    charts: Vec<String>,
    /// The profile's label, once a verdict named it.
    profile: Option<String>,
    /// The verdict's readings with the profile's labels and units.
    readings: Vec<crate::profiles::Reading>,
    /// The verdict's other models (quality risk, anomaly, remaining life), each with the
    /// model behind it (`id vN`).
    insights: Vec<(crate::insights::Badge, Option<String>)>,
}

/// The sensors charted on a machine page: milling's five main ones, or every sensor of the
/// machine's profile (by name when the dashboard does not know the profile).
fn chart_sensors(profiles: &Profiles, risk: Option<&Risk>) -> Vec<(String, String, String)> {
    let milling = || {
        [
            ("temperature_c", "Temperature", "°C"),
            ("vibration_mm_s", "Vibration", "mm/s"),
            ("pressure_bar", "Pressure", "bar"),
            ("spindle_rpm", "Spindle speed", "rpm"),
            ("tool_wear_min", "Tool wear", "min"),
        ]
        .map(|(n, l, u)| (n.to_owned(), l.to_owned(), u.to_owned()))
        .to_vec()
    };
    let Some(id) = risk
        .and_then(|r| r.profile.as_deref())
        .filter(|p| *p != crate::profiles::MILLING)
    else {
        return milling();
    };
    match profiles.get(Some(id)) {
        Some(p) => p
            .sensors
            .iter()
            .map(|s| (s.name.clone(), s.label.clone(), s.unit.clone()))
            .collect(),
        None => risk.map_or_else(Vec::new, |r| {
            r.latest
                .keys()
                .map(|k| (k.clone(), k.clone(), String::new()))
                .collect()
        }),
    }
}

pub(crate) fn level_name(l: Level) -> &'static str {
    match l {
        Level::Normal => "NORMAL",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    }
}

async fn machine_page(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(m) = s.fleet().machine(&id).cloned() else {
        return (StatusCode::NOT_FOUND, Html(format!(
            "<!DOCTYPE html><p>No machine called <code>{}</code> has reported yet. <a href=\"/\">Fleet</a></p>",
            escape(&id)
        )))
            .into_response();
    };
    let newest = m.trend.back().map(|p| p.ts);
    let secs = |ts: time::OffsetDateTime| newest.map_or(0.0, |n| (ts - n).as_seconds_f64());
    let risk_pts: Vec<(f64, f64)> = m
        .trend
        .iter()
        .filter_map(|p| p.risk.map(|r| (secs(p.ts), r)))
        .collect();
    let mut charts = vec![crate::charts::trend(
        "Risk probability",
        "0-1",
        &risk_pts,
        plotters::style::RED,
    )];
    for (name, label, unit) in chart_sensors(&s.profiles, m.risk.as_ref()) {
        let pts: Vec<(f64, f64)> = m
            .trend
            .iter()
            .filter_map(|p| {
                p.sensors
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (secs(p.ts), *v))
            })
            .collect();
        charts.push(crate::charts::trend(
            &label,
            &unit,
            &pts,
            plotters::style::BLUE,
        ));
    }
    // The other models' trends, when the machine's verdicts carried them.
    let extra = |pick: fn(&crate::state::TrendInsights) -> Option<f64>| -> Vec<(f64, f64)> {
        m.trend
            .iter()
            .filter_map(|p| {
                p.insights
                    .as_deref()
                    .and_then(pick)
                    .map(|v| (secs(p.ts), v))
            })
            .collect()
    };
    let rul_unit = m
        .trend
        .iter()
        .rev()
        .find_map(|p| p.insights.as_ref().and_then(|i| i.rul_unit.clone()))
        .unwrap_or_default();
    let amber = plotters::style::RGBColor(191, 135, 0);
    let others: Vec<String> = [
        (
            "Quality risk",
            "0-1".to_owned(),
            extra(|i| i.quality),
            amber,
        ),
        (
            "Anomaly score",
            "0-1".to_owned(),
            extra(|i| i.anomaly),
            amber,
        ),
        (
            "Remaining useful life",
            rul_unit,
            extra(|i| i.rul),
            plotters::style::RGBColor(87, 96, 106),
        ),
    ]
    .into_iter()
    .filter(|(_, _, pts, _)| !pts.is_empty())
    .map(|(title, unit, pts, colour)| crate::charts::trend(title, &unit, &pts, colour))
    .collect();
    // Right after the risk chart, before the sensors.
    charts.splice(1..1, others);
    let advice = match m.risk.clone() {
        Some(r) => {
            let s2 = s.clone();
            tokio::task::spawn_blocking(move || machine_advice(&s2, &r))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let (status, status_text) = m
        .risk
        .as_ref()
        .map_or(("UNKNOWN", "NO VERDICT"), |r| self::status_text(r.status));
    let insights = m.risk.as_ref().map_or_else(Vec::new, |r| {
        crate::insights::badges(&r.insights)
            .into_iter()
            .map(|b| {
                let model = r
                    .insights
                    .models
                    .get(b.kind)
                    .map(|m| format!("{} v{}", m.id, m.version));
                (b, model)
            })
            .collect()
    });
    let profile = m.risk.as_ref().map(|r| r.profile.as_deref());
    let readings = m.risk.as_ref().map_or_else(Vec::new, |r| {
        crate::profiles::readings(
            r.latest.iter().map(|(k, v)| (k.as_str(), *v)),
            s.profiles.get(r.profile.as_deref()),
        )
    });
    page(MachinePage {
        profile: profile.map(|p| s.profiles.label(p)),
        readings,
        insights,
        level: m.risk.as_ref().map_or("", |r| level_name(r.level)),
        advice,
        open: m.open.as_ref().map(|o| {
            crate::alerts_page::OpenView::new(
                &id,
                o,
                m.pending.as_ref(),
                dtwin_schema::time_fmt::now(),
            )
        }),
        user: crate::alerts_page::user(&headers),
        back: format!("/machine/{id}"),
        can_act: s.control.is_some(),
        id,
        status,
        status_text,
        risk: m.risk,
        charts,
    })
}

/// The advice for a machine's latest verdict ([`crate::advice::advise_verdict`], the same
/// scorer as the services), when it changes something.
fn machine_advice(s: &AppState, r: &Risk) -> Option<String> {
    let p = s.profiles.get(r.profile.as_deref())?;
    let model = (p.id != crate::profiles::MILLING)
        .then(|| {
            s.models
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&p.id)
                .cloned()
        })
        .flatten();
    let scoring = if p.id == crate::profiles::MILLING {
        crate::advice::Scoring::Milling {
            scorer: &s.scorer,
            window: &s.window,
        }
    } else {
        crate::advice::Scoring::Profile {
            model: model.as_ref(),
        }
    };
    let a = crate::advice::advise_verdict(r, p, scoring)?;
    (!a.changes.is_empty()).then(|| {
        let mut t = a.text;
        if let Some(first) = t.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        t
    })
}

/// HTML-escapes text for the few responses not made by a template.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Why an alert fires, from its id: the alerter names an anomaly alert
/// `{machine}-anomaly-{time}` and a failure alert `{machine}-{time}` (`alert.schema.json`).
pub fn alert_cause(machine: &str, alert_id: &str) -> &'static str {
    let anomaly = alert_id
        .strip_prefix(machine)
        .is_some_and(|rest| rest.starts_with("-anomaly-"));
    if anomaly {
        "anomaly"
    } else {
        "failure"
    }
}
