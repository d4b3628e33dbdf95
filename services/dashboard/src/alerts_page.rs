//! The alerts pages: the open alerts with Acknowledge and Clear (a name and a comment, behind
//! the dashboard's token), the event log, and the history of alerts with filters and CSV
//! export. An action is checked here (the machine's open alert, not acknowledged twice, a
//! name, a comment of at most 1,000 characters, a request from the dashboard's own pages),
//! then published as a `dtwin.alert-action.v1` on `{prefix}/control/alerts/{machine}` by the
//! service ([`AppState::control`]); the page says it waits for the alerter until the
//! alerter's `acknowledged` or `cleared` event (or its retained alert state) confirms it.

use crate::alerts::{history, AlertRecord, HistoryFilter, OpenAlert, PendingAction};
use crate::state::{ago, clock};
use crate::web::{escape, level_name, page, AppState};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use dtwin_schema::{
    AlertAction, AlertActionKind, ALERT_ACTION_BY_CHARS, ALERT_ACTION_COMMENT_CHARS,
    ALERT_ACTION_SCHEMA,
};
use time::OffsetDateTime;

/// The cookie that remembers who acts from this browser (a name, not a credential).
pub const USER_COOKIE: &str = "dtwin_user";

/// An open alert with its Acknowledge / Clear form.
pub(crate) struct OpenView {
    pub(crate) machine: String,
    pub(crate) alert_id: String,
    pub(crate) level: &'static str,
    pub(crate) cause: &'static str,
    pub(crate) since: String,
    pub(crate) since_ago: String,
    pub(crate) probability: String,
    pub(crate) detail: String,
    /// `unacknowledged` or `acknowledged`.
    pub(crate) state: &'static str,
    /// Who acknowledged, when, why.
    pub(crate) ack: Option<(String, String, String)>,
    /// An action of this dashboard the alerter has not confirmed yet, in words.
    pub(crate) pending: Option<String>,
}

impl OpenView {
    pub(crate) fn new(
        machine: &str,
        o: &OpenAlert,
        pending: Option<&PendingAction>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            machine: machine.to_owned(),
            alert_id: o.alert_id.clone(),
            level: level_name(o.level),
            cause: o.cause,
            since: clock(o.since),
            since_ago: ago((now - o.since).as_seconds_f64()),
            probability: o
                .probability
                .map_or_else(String::new, |p| format!("{p:.3}")),
            detail: o.detail.clone().unwrap_or_default(),
            state: if o.acknowledged.is_some() {
                "acknowledged"
            } else {
                "unacknowledged"
            },
            ack: o
                .acknowledged
                .as_ref()
                .map(|a| (a.by.clone(), clock(a.at), a.comment.clone())),
            pending: pending.map(|p| {
                format!(
                    "{} sent by {} {}; waiting for the alerter to confirm.",
                    match p.action {
                        AlertActionKind::Acknowledge => "Acknowledgement",
                        AlertActionKind::Clear => "Clear",
                    },
                    p.by,
                    ago((now - p.at).as_seconds_f64())
                )
            }),
        }
    }
}

/// The name this browser acts under (the cookie), percent-decoded.
pub(crate) fn user(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{USER_COOKIE}="))
                .map(decode)
        })
        .unwrap_or_default()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct LogRow {
    /// When, to the second (UTC).
    ts: String,
    /// When, exactly (RFC 3339).
    ts_exact: String,
    machine: String,
    alert_id: String,
    event: &'static str,
    /// `failure` or `anomaly`.
    cause: &'static str,
    level: &'static str,
    probability: f64,
    /// Who acted, and their comment (acknowledged and cleared events).
    by: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    open: Vec<OpenView>,
    alerts: Vec<LogRow>,
    user: String,
    back: String,
    /// Whether this dashboard can send actions.
    can_act: bool,
}

/// `GET /alerts`: the open alerts with their actions, then the event log.
pub(crate) async fn alerts_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let now = dtwin_schema::time_fmt::now();
    let f = s.fleet();
    let open = f
        .open_alerts()
        .into_iter()
        .map(|(id, m, o)| OpenView::new(id, o, m.pending.as_ref(), now))
        .collect();
    let alerts = f
        .alert_log()
        .take(200)
        .map(|a| LogRow {
            ts: clock(a.ts),
            ts_exact: dtwin_schema::time_fmt::format(a.ts),
            machine: a.machine_id.to_string(),
            alert_id: a.alert_id.clone(),
            cause: crate::alerts::cause_of(a.machine_id.as_str(), &a.alert_id, a.cause),
            event: a.event.as_str(),
            level: level_name(a.level),
            probability: a.probability,
            by: match (&a.by, &a.comment) {
                (Some(b), Some(c)) if !c.is_empty() => format!("{b}: {c}"),
                (Some(b), _) => b.clone(),
                _ => String::new(),
            },
            detail: a.detail.clone().unwrap_or_default(),
        })
        .collect();
    drop(f);
    page(AlertsPage {
        open,
        alerts,
        user: user(&headers),
        back: "/alerts".to_owned(),
        can_act: s.control.is_some(),
    })
}

/// One alert of the history, for people.
struct HistoryRow {
    alert_id: String,
    machine: String,
    cause: &'static str,
    level: &'static str,
    state: &'static str,
    fired: String,
    probability: String,
    acknowledged: String,
    ended: String,
    duration: String,
}

fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    rows: Vec<HistoryRow>,
    filter: HistoryFilter,
    problems: Vec<String>,
    total: usize,
    csv: String,
}

fn records(s: &AppState, filter: &HistoryFilter) -> (Vec<AlertRecord>, usize) {
    let f = s.fleet();
    let open: Vec<(&str, &OpenAlert)> = f
        .open_alerts()
        .into_iter()
        .map(|(id, _, o)| (id, o))
        .collect();
    let all = history(f.alert_log(), &open);
    let total = all.len();
    (
        all.into_iter().filter(|r| filter.accepts(r)).collect(),
        total,
    )
}

/// `GET /alerts/history`: one row per alert, filtered by machine, cause, level, state and
/// time.
pub(crate) async fn history_page(
    State(s): State<AppState>,
    Query(filter): Query<HistoryFilter>,
) -> Response {
    let now = dtwin_schema::time_fmt::now();
    let (records, total) = records(&s, &filter);
    let rows = records
        .iter()
        .map(|r| HistoryRow {
            alert_id: r.alert_id.clone(),
            machine: r.machine_id.clone(),
            cause: r.cause,
            level: level_name(r.level),
            state: r.state(),
            fired: clock(r.fired_at),
            probability: r
                .probability
                .map_or_else(String::new, |p| format!("{p:.3}")),
            acknowledged: r.acknowledged.as_ref().map_or_else(String::new, |a| {
                let c = if a.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.comment)
                };
                format!("{} at {}{c}", a.by, clock(a.at))
            }),
            ended: r.ended.as_ref().map_or_else(String::new, |e| {
                let who =
                    e.by.as_ref()
                        .map_or_else(String::new, |b| format!(" by {b}"));
                let c = e
                    .comment
                    .as_ref()
                    .filter(|c| !c.is_empty())
                    .map_or_else(String::new, |c| format!(": {c}"));
                format!("{}{who} at {}{c}", e.how, clock(e.at))
            }),
            duration: duration(r.duration_s(now)),
        })
        .collect();
    let q = filter.query();
    page(HistoryPage {
        rows,
        problems: filter.problems(),
        csv: if q.is_empty() {
            "/alerts/history.csv".to_owned()
        } else {
            format!("/alerts/history.csv?{q}")
        },
        filter,
        total,
    })
}

/// `GET /alerts/history.csv`: the filtered history as CSV (a download).
pub(crate) async fn history_csv(
    State(s): State<AppState>,
    Query(filter): Query<HistoryFilter>,
) -> Response {
    let now = dtwin_schema::time_fmt::now();
    let (records, _) = records(&s, &filter);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dtwin-alerts.csv\"",
            ),
        ],
        crate::alerts::csv(&records, now),
    )
        .into_response()
}

/// What the Acknowledge / Clear form sends.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ActionForm {
    machine: String,
    alert_id: String,
    action: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    comment: String,
    /// The page to return to.
    #[serde(default)]
    back: String,
}

/// Whether the request comes from the dashboard's own pages: a browser names the page's
/// origin on a POST, and a page elsewhere must not act for the person (cross-site request
/// forgery; the token cookie is SameSite=Strict, a dashboard on loopback has no token).
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
        _ => true,
    }
}

fn refuse(status: StatusCode, why: &str, back: &str) -> Response {
    (
        status,
        Html(format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not sent · dtwin</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body><main><p class=\"error\" id=\"action-error\">{}</p><p><a href=\"{}\">Back</a></p></main></body></html>",
            escape(why),
            escape(back)
        )),
    )
        .into_response()
}

/// `POST /alerts/action`: acknowledge or clear a machine's open alert; 303 back to the page
/// it came from.
pub(crate) async fn alert_action(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") {
        form.back.clone()
    } else {
        "/alerts".to_owned()
    };
    if !same_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Actions are taken from the dashboard's own pages.",
            &back,
        );
    }
    let Some(control) = s.control.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "This dashboard is not connected to the bus: it cannot send actions.",
            &back,
        );
    };
    let action = match form.action.as_str() {
        "acknowledge" => AlertActionKind::Acknowledge,
        "clear" => AlertActionKind::Clear,
        other => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{other:?} is not an action: acknowledge or clear."),
                &back,
            )
        }
    };
    let by = form.by.trim().to_owned();
    if by.is_empty() || by.chars().count() > ALERT_ACTION_BY_CHARS {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "Say who you are (1 to {ALERT_ACTION_BY_CHARS} characters): the alert records it."
            ),
            &back,
        );
    }
    let comment = form.comment.trim().to_owned();
    if comment.chars().count() > ALERT_ACTION_COMMENT_CHARS {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("The comment is longer than {ALERT_ACTION_COMMENT_CHARS} characters."),
            &back,
        );
    }
    let Some(machine) = crate::alerts::machine(&form.machine) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "No such machine.", &back);
    };
    {
        let f = s.fleet();
        let open = f.machine(machine.as_str()).and_then(|m| m.open.as_ref());
        match open {
            Some(o) if o.alert_id == form.alert_id => {
                if let (AlertActionKind::Acknowledge, Some(a)) = (action, &o.acknowledged) {
                    return refuse(
                        StatusCode::CONFLICT,
                        &format!(
                            "{} acknowledged this alert already, at {}.",
                            a.by,
                            clock(a.at)
                        ),
                        &back,
                    );
                }
            }
            _ => {
                return refuse(
                    StatusCode::CONFLICT,
                    &format!(
                        "{} is not {}'s open alert any more (it ended, or another replaced it).",
                        form.alert_id, machine
                    ),
                    &back,
                )
            }
        }
    }
    let now = dtwin_schema::time_fmt::now();
    let msg = AlertAction {
        schema: ALERT_ACTION_SCHEMA.to_owned(),
        machine_id: machine.clone(),
        alert_id: form.alert_id.clone(),
        action,
        by: by.clone(),
        comment,
        ts: now,
    };
    // Fail fast rather than hold the request: a full queue means the broker is away.
    if control.try_send(msg).is_err() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "The dashboard cannot reach the bus right now; try again in a moment.",
            &back,
        );
    }
    s.fleet().pending(
        machine.as_str(),
        PendingAction {
            action,
            by: by.clone(),
            at: now,
        },
    );
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "{USER_COOKIE}={}; SameSite=Strict; Path=/; Max-Age=31536000",
        encode(&by)
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_cookie() {
        for name in ["Ana", "Ana María, shift B", "ops;team=1", "100% sure"] {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                format!("a=b; {USER_COOKIE}={}", encode(name))
                    .parse()
                    .unwrap(),
            );
            assert_eq!(user(&h), name);
        }
        assert_eq!(user(&HeaderMap::new()), "");
    }

    #[test]
    fn only_the_dashboard_s_own_pages_may_act() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(
            same_origin(&h(&[("host", "127.0.0.1:8080")])),
            "curl with the token"
        );
    }
}
