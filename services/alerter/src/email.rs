//! Alert e-mail rendering: an [`AlertMail`] in, a multipart/alternative [`Message`] out.
//!
//! The bodies come from the askama templates `templates/alert.html` (HTML-escaped
//! automatically, inline styles for mail clients) and `templates/alert.txt`. Every string from
//! the bus (action texts, feature names) is data, never markup, and the subject is stripped of
//! control characters before lettre encodes it, so a verdict cannot inject headers or HTML.
//! Readings are shown with the machine profile's labels and units ([`crate::readings`]);
//! labels come from profile files, so they are escaped like any other data.
//!
//! A verdict's other models ([`Insights`]: quality risk, anomaly score, remaining useful life)
//! are shown beside the failure risk when the verdict carries them, as coloured badges (HTML)
//! and lines (text); a verdict without them renders as before they existed. An anomaly
//! alert ([`Cause::Anomaly`]) is headed ANOMALY with its score instead of the failure risk.

use crate::lifecycle::{Cause, Transition};
pub(crate) use crate::readings::number;
use crate::readings::{profile_name, readings, Profiles, Reading};
use askama::Template;
use dtwin_schema::{time_fmt, Action, Factor, Insights, Level, MachineId, Risk, RulEstimate};
use lettre::message::{header::ContentType, Mailbox, MultiPart};
use lettre::Message;
use std::collections::BTreeMap;
use std::time::SystemTime;
use time::OffsetDateTime;

/// Factors listed in an e-mail at most.
pub const MAX_FACTORS: usize = 5;

/// Who alert e-mails come from and go to.
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    /// The From address.
    pub from: Mailbox,
    /// The recipients (at least one).
    pub to: Vec<Mailbox>,
    /// Start of every subject.
    pub subject_prefix: String,
    /// Also show times in this zone (UTC is always shown).
    pub time_zone: Option<jiff::tz::TimeZone>,
}

impl Default for MailConfig {
    fn default() -> Self {
        // Both are constant, valid addresses (checked by `default_addresses_parse`).
        let from = "dtwin <dtwin@localhost>".parse().expect("constant address");
        let to = "maintenance@localhost".parse().expect("constant address");
        Self {
            from,
            to: vec![to],
            subject_prefix: "[dtwin]".to_owned(),
            time_zone: None,
        }
    }
}

/// Why an e-mail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A template failed to render.
    #[error("rendering the alert template: {0}")]
    Template(#[from] askama::Error),
    /// lettre refused the message (e.g. no recipient).
    #[error("building the alert e-mail: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Which notification an e-mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// The alert started firing.
    Firing,
    /// The alert went from WARNING to CRITICAL.
    Escalated,
    /// A reminder that the alert is still firing.
    Repeat,
    /// The alert resolved.
    Resolved,
    /// A person acknowledged the alert (no more reminders).
    Acknowledged,
    /// A person cleared the alert by hand.
    Cleared,
}

/// Everything one alert e-mail shows (kept in the spool as JSON until it is sent).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertMail {
    /// The machine.
    pub machine_id: MachineId,
    /// The alert (one per firing period).
    pub alert_id: String,
    /// Unique within the alert (`firing`, `escalated`, `repeat-N`, `resolved`,
    /// `acknowledged`, `cleared`); names the Message-ID and the outbox file.
    pub tag: String,
    /// Which notification this is.
    pub kind: MailKind,
    /// The alert's level.
    pub level: Level,
    /// The latest risk probability, 0..1.
    pub probability: f64,
    /// When the verdict behind it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Recommended actions, most severe first.
    pub actions: Vec<Action>,
    /// Top contributing factors.
    pub factors: Vec<Factor>,
    /// Latest raw sensor readings.
    pub latest: BTreeMap<String, f64>,
    /// The machine's profile as the verdict names it (`None` = milling). Records spooled
    /// before profiles existed have none, which is what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Link to the dashboard, if one runs.
    pub dashboard_url: Option<String>,
    /// Why the alert fires (left out for a failure alert, so records from before causes
    /// existed read as what they were).
    #[serde(default, skip_serializing_if = "Cause::is_failure")]
    pub cause: Cause,
    /// The anomaly alert this failure alert replaces (its firing e-mail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// What the profile's other models said in the verdict (quality risk, anomaly, remaining
    /// useful life); left out when none spoke.
    #[serde(default, skip_serializing_if = "Insights::is_empty")]
    pub insights: Insights,
    /// Who acknowledged or cleared the alert, when and why (those two notifications only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted: Option<dtwin_schema::Acknowledgement>,
}

impl AlertMail {
    /// The e-mail for `transition`, caused by the verdict `risk`.
    pub fn new(risk: &Risk, transition: &Transition, dashboard_url: Option<String>) -> Self {
        let kind = match transition {
            Transition::Fire { .. } => MailKind::Firing,
            Transition::Escalate { .. } => MailKind::Escalated,
            Transition::Repeat { .. } => MailKind::Repeat,
            Transition::Resolve { .. } => MailKind::Resolved,
            Transition::Acknowledge { .. } => MailKind::Acknowledged,
            Transition::Clear { .. } => MailKind::Cleared,
        };
        let supersedes = match transition {
            Transition::Fire {
                supersedes: Some(old),
                ..
            } => Some(old.alert_id.clone()),
            _ => None,
        };
        Self {
            machine_id: risk.machine_id.clone(),
            alert_id: transition.alert_id().to_owned(),
            tag: transition.tag(),
            kind,
            level: transition.level(),
            probability: risk.probability,
            ts: risk.ts,
            actions: risk.actions.clone(),
            factors: risk.factors.iter().take(MAX_FACTORS).cloned().collect(),
            latest: risk.latest.clone(),
            profile: risk.profile.clone(),
            dashboard_url,
            cause: Cause::of_alert(&risk.machine_id, transition.alert_id()),
            supersedes,
            insights: risk.insights.clone(),
            acted: transition.person().cloned(),
        }
    }

    /// What orders it in a digest (times the machine's criticality): the failure risk, or an
    /// anomaly alert's score.
    pub fn priority(&self) -> f64 {
        match (self.cause, self.insights.anomaly) {
            (Cause::Anomaly, Some(score)) if score.is_finite() => score,
            _ => self.probability,
        }
    }

    /// The Message-ID of this e-mail, `<{alert_id}.{tag}@dtwin>`.
    pub fn message_id(&self) -> String {
        message_id(&self.alert_id, &self.tag)
    }

    /// The outbox file name (without extension): `{alert_id}.{tag}`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.alert_id, self.tag)
    }

    /// `(headline, note, colour)`: a firing failure alert's machine is AT RISK, red when
    /// CRITICAL and amber when WARNING; an anomaly alert's is ANOMALY, amber; a resolved one
    /// is green.
    fn tone(&self) -> (&'static str, &'static str, &'static str) {
        let anomaly = self.cause == Cause::Anomaly;
        let note = match self.kind {
            MailKind::Firing if self.supersedes.is_some() => {
                "NEW ALERT, REPLACES THE ANOMALY ALERT"
            }
            MailKind::Firing if anomaly => "NEW ANOMALY ALERT",
            MailKind::Firing => "NEW ALERT",
            MailKind::Escalated => "ESCALATED TO CRITICAL",
            MailKind::Repeat => "STILL FIRING",
            MailKind::Resolved if anomaly => "ANOMALY ALERT RESOLVED",
            MailKind::Resolved => "ALERT RESOLVED",
            MailKind::Acknowledged => "ACKNOWLEDGED, NO MORE REMINDERS",
            MailKind::Cleared => "CLEARED BY HAND, NOT RESOLVED BY THE MODEL",
        };
        match (self.kind, self.level) {
            (MailKind::Resolved, _) => ("RESOLVED", note, GREEN),
            (MailKind::Acknowledged, _) => ("ACKNOWLEDGED", note, GREY),
            (MailKind::Cleared, _) => ("CLEARED", note, GREEN),
            _ if anomaly => ("ANOMALY", note, AMBER),
            (_, Level::Critical) => ("AT RISK", note, RED),
            _ => ("AT RISK", note, AMBER),
        }
    }

    /// What the subject and the headline badge say the alert is about: `87 % risk` (a failure
    /// alert), `anomaly 0.81` (an anomaly alert).
    fn summary(&self) -> String {
        match self.cause {
            Cause::Failure => format!("{} risk", percent(self.probability)),
            Cause::Anomaly => format!("anomaly {}", score(self.insights.anomaly)),
        }
    }
}

const RED: &str = "#cf222e";
const AMBER: &str = "#bf8700";
const GREEN: &str = "#1a7f37";
/// Badges that are neither good nor bad news (remaining life; a figure with no verdict).
const GREY: &str = "#57606a";

/// An anomaly score with two decimals (`0.81`); `n/a` when absent or not finite.
pub fn score(anomaly: Option<f64>) -> String {
    match anomaly {
        Some(x) if x.is_finite() => format!("{:.2}", x.clamp(0.0, 1.0)),
        _ => "n/a".to_owned(),
    }
}

/// A remaining useful life for people: `42 cycles (5–95 %: 30–55 cycles)`; a life in
/// seconds reads as minutes, hours or days (`2.5 h (5–95 %: 1.2 h – 4 h)`).
pub fn rul_text(r: &RulEstimate) -> String {
    format!(
        "{} left (5–95 %: {})",
        rul_amount(r.value, &r.unit),
        rul_interval(r)
    )
}

/// The short form for a badge: `42 cycles left (5–95 %: 30–55)`.
fn rul_badge(r: &RulEstimate) -> String {
    if r.unit == "seconds" {
        return format!(
            "{} left ({})",
            rul_amount(r.value, &r.unit),
            rul_interval(r)
        );
    }
    format!(
        "{} left (5–95 %: {}–{})",
        rul_amount(r.value, &r.unit),
        whole(r.low),
        whole(r.high)
    )
}

fn rul_interval(r: &RulEstimate) -> String {
    if r.unit == "seconds" {
        format!("{} – {}", duration(r.low), duration(r.high))
    } else {
        format!("{}–{} {}", whole(r.low), whole(r.high), r.unit)
    }
}

fn rul_amount(x: f64, unit: &str) -> String {
    if unit == "seconds" {
        duration(x)
    } else {
        format!("{} {unit}", whole(x))
    }
}

/// A count rounded to a whole number; `n/a` when not finite.
fn whole(x: f64) -> String {
    if x.is_finite() {
        number(x.round())
    } else {
        "n/a".to_owned()
    }
}

/// Seconds as `45 s`, `12 min`, `2.5 h` or `3.2 days`.
fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "n/a".to_owned();
    }
    let s = secs.max(0.0);
    if s < 120.0 {
        format!("{} s", number(s.round()))
    } else if s < 7200.0 {
        format!("{} min", number((s / 60.0).round()))
    } else if s < 172_800.0 {
        format!("{} h", number((s / 360.0).round() / 10.0))
    } else {
        format!("{} days", number((s / 8640.0).round() / 10.0))
    }
}

/// `<{alert_id}.{tag}@dtwin>`
pub fn message_id(alert_id: &str, tag: &str) -> String {
    format!("<{alert_id}.{tag}@dtwin>")
}

/// `87 %`; `n/a` for a non-finite probability.
pub fn percent(probability: f64) -> String {
    if probability.is_finite() {
        format!("{:.0} %", (probability.clamp(0.0, 1.0) * 100.0).round())
    } else {
        "n/a".to_owned()
    }
}

/// Removes CR, LF and every other control character (tabs become spaces), so the text is
/// one header line whatever it held.
pub fn sanitize_header(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    cleaned.trim().to_owned()
}

/// The subject, e.g. `[dtwin] AT RISK machine-007: 87 % risk (CRITICAL)`.
pub fn subject(alert: &AlertMail, cfg: &MailConfig) -> String {
    let (headline, _, _) = alert.tone();
    let tail = match alert.kind {
        MailKind::Firing => format!("({})", alert.level.as_str()),
        MailKind::Escalated => "(escalated to CRITICAL)".to_owned(),
        MailKind::Repeat => format!("({}, still firing)", alert.level.as_str()),
        MailKind::Resolved => format!("(was {})", alert.level.as_str()),
        MailKind::Acknowledged => format!(
            "({}, acknowledged by {})",
            alert.level.as_str(),
            alert.acted.as_ref().map_or("?", |a| a.by.as_str())
        ),
        MailKind::Cleared => format!(
            "(was {}, cleared by {})",
            alert.level.as_str(),
            alert.acted.as_ref().map_or("?", |a| a.by.as_str())
        ),
    };
    sanitize_header(&format!(
        "{} {headline} {}: {} {tail}",
        cfg.subject_prefix,
        alert.machine_id,
        alert.summary()
    ))
}

/// How one send of an e-mail differs from the rendering: who gets it, and whether it may be
/// a second copy (a send was started before a crash; the server may have the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Recipients (at least one).
    pub to: Vec<Mailbox>,
    /// Mark the e-mail as a possible duplicate (subject prefix and
    /// `X-Dtwin-Possible-Duplicate: yes`); it keeps its Message-ID, so clients that
    /// deduplicate by it show one.
    pub possible_duplicate: bool,
}

/// Header marking a possible second copy.
pub const DUPLICATE_HEADER: &str = "X-Dtwin-Possible-Duplicate";

/// Renders `alert` to the configured recipients (see [`render_for`]).
///
/// # Errors
/// [`MailError`] when a template fails or lettre refuses the message (no recipient).
pub fn render(
    alert: &AlertMail,
    cfg: &MailConfig,
    profiles: &Profiles,
) -> Result<Message, MailError> {
    render_for(
        alert,
        cfg,
        profiles,
        &Envelope {
            to: cfg.to.clone(),
            possible_duplicate: false,
        },
    )
}

/// Renders `alert` as a multipart/alternative (text/plain + text/html) e-mail. Follow-ups
/// (escalation, repeat, resolution) reply to the firing e-mail, so clients thread them.
/// `profiles` give the readings their labels and units.
///
/// # Errors
/// [`MailError`] when a template fails or lettre refuses the message (no recipient).
pub fn render_for(
    alert: &AlertMail,
    cfg: &MailConfig,
    profiles: &Profiles,
    env: &Envelope,
) -> Result<Message, MailError> {
    let mut view = View::new(alert, cfg, profiles);
    if env.possible_duplicate {
        view.subject = format!("[possible duplicate] {}", view.subject);
    }
    let text = TextMail { v: &view }.render()?;
    let html = HtmlMail { v: &view }.render()?;
    let mut b = builder(cfg, env, &view.subject, alert.message_id(), alert.ts);
    let parent = match (&alert.kind, &alert.supersedes) {
        (MailKind::Firing, None) => None,
        // A failure alert that replaces an anomaly alert threads under that alert's mail.
        (MailKind::Firing, Some(old)) => Some(message_id(old, "firing")),
        _ => Some(message_id(&alert.alert_id, "firing")),
    };
    if let Some(parent) = parent {
        b = b.in_reply_to(parent.clone()).references(parent);
    }
    Ok(b.multipart(alternative(text, html))?)
}

/// Renders one digest e-mail listing `alerts` in the given order (highest priority first).
///
/// # Errors
/// [`MailError`] when a template fails or lettre refuses the message.
pub fn render_digest(
    alerts: &[AlertMail],
    cfg: &MailConfig,
    profiles: &Profiles,
    env: &Envelope,
    now: OffsetDateTime,
) -> Result<Message, MailError> {
    let rows: Vec<View> = alerts.iter().map(|a| View::new(a, cfg, profiles)).collect();
    let critical = alerts.iter().filter(|a| a.level == Level::Critical).count();
    let anomalies = alerts.iter().filter(|a| a.cause == Cause::Anomaly).count();
    // `AT RISK (2 CRITICAL)`; with anomaly alerts among them `AT RISK or ANOMALOUS (2
    // CRITICAL, 1 ANOMALY)`.
    let what = if anomalies == 0 {
        format!("AT RISK ({critical} CRITICAL)")
    } else {
        format!("AT RISK or ANOMALOUS ({critical} CRITICAL, {anomalies} ANOMALY)")
    };
    let mut subject = sanitize_header(&format!(
        "{} {} machines {what}: {}",
        cfg.subject_prefix,
        alerts.len(),
        alerts
            .iter()
            .take(3)
            .map(|a| a.machine_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
            + if alerts.len() > 3 { ", ..." } else { "" }
    ));
    if env.possible_duplicate {
        subject = format!("[possible duplicate] {subject}");
    }
    let digest = DigestView {
        subject: subject.clone(),
        count: alerts.len(),
        critical,
        anomalies,
        time_rfc3339: time_fmt::format(now),
        time_human: human_time(now),
        rows,
    };
    let text = DigestText { d: &digest }.render()?;
    let html = DigestHtml { d: &digest }.render()?;
    let names: Vec<String> = alerts.iter().map(AlertMail::file_name).collect();
    let id = digest_message_id(&names);
    let b = builder(cfg, env, &subject, id, now);
    Ok(b.multipart(alternative(text, html))?)
}

/// `<digest-{first}-{n}-{hash}@dtwin>`: the same records give the same id.
pub fn digest_message_id(names: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for n in names {
        for b in n.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let first = names.first().map_or("", String::as_str);
    format!("<digest-{first}-{}-{h:016x}@dtwin>", names.len())
}

fn builder(
    cfg: &MailConfig,
    env: &Envelope,
    subject: &str,
    message_id: String,
    date: OffsetDateTime,
) -> lettre::message::MessageBuilder {
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject(subject.to_owned())
        .message_id(Some(message_id))
        .date(SystemTime::from(date));
    for to in &env.to {
        b = b.to(to.clone());
    }
    if env.possible_duplicate {
        b = b.raw_header(lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str(DUPLICATE_HEADER),
            "yes".to_owned(),
        ));
    }
    b
}

fn alternative(text: String, html: String) -> MultiPart {
    MultiPart::alternative()
        .singlepart(
            lettre::message::SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        )
        .singlepart(
            lettre::message::SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        )
}

/// A digest: the alerts it lists, already formatted.
struct DigestView {
    subject: String,
    count: usize,
    critical: usize,
    /// Anomaly alerts among them.
    anomalies: usize,
    time_rfc3339: String,
    time_human: String,
    rows: Vec<View>,
}

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestHtml<'a> {
    d: &'a DigestView,
}

#[derive(Template)]
#[template(path = "digest.txt")]
struct DigestText<'a> {
    d: &'a DigestView,
}

/// What the templates show, pre-formatted so they hold no logic.
struct View {
    subject: String,
    headline: &'static str,
    headline_note: &'static str,
    colour: &'static str,
    machine_id: String,
    /// The profile's label and id when it is not milling.
    profile: Option<String>,
    alert_id: String,
    probability: String,
    /// The headline badge: `87 % risk`, `87 % failure risk` beside other figures,
    /// `anomaly 0.81` for an anomaly alert.
    badge: String,
    /// What a digest row shows: the failure risk (`87 %`), or an anomaly alert's score.
    digest_figure: String,
    /// The text mail's first figure line: its label (padded) and value.
    main_label: &'static str,
    main_value: String,
    /// An anomaly alert says why it fires.
    cause: Option<&'static str>,
    /// The anomaly alert a failure alert replaces.
    supersedes: Option<String>,
    /// `Acknowledged by ops at ...` / `Cleared by ...`: who acted on the alert, and when.
    acted: Option<String>,
    /// Their comment, if any.
    acted_comment: Option<String>,
    /// The other figures: failure risk (in an anomaly alert), quality risk, anomaly score,
    /// remaining life; empty for a verdict without insights.
    figures: Vec<Figure>,
    /// The figures in one line, for a digest row.
    figures_line: Option<String>,
    level: &'static str,
    time_rfc3339: String,
    time_human: String,
    time_local: Option<String>,
    actions: Vec<ActionView>,
    factors: Vec<FactorView>,
    latest: Vec<Reading>,
    dashboard_url: Option<String>,
}

/// One figure beside the headline: a badge in the HTML mail, a line in the text mail.
struct Figure {
    /// The text mail's label, padded to the value column (`Quality:  `).
    label: &'static str,
    /// The text mail's value (`34 % risk of a NOK part (at risk)`).
    text: String,
    /// The badge (`34 % quality risk`).
    badge: String,
    /// The badge's colour: amber when its model flags the machine, green when it does not,
    /// grey when it says nothing either way.
    colour: &'static str,
}

/// Green when `flag` is false, amber when true, grey when absent.
fn flag_colour(flag: Option<bool>) -> &'static str {
    match flag {
        Some(true) => AMBER,
        Some(false) => GREEN,
        None => GREY,
    }
}

/// The figures of `a` besides its headline (see [`View::figures`]).
fn figures(a: &AlertMail) -> Vec<Figure> {
    let i = &a.insights;
    let mut out = Vec::new();
    if a.cause == Cause::Anomaly {
        out.push(Figure {
            label: "Failure:  ",
            text: percent(a.probability),
            badge: format!("{} failure risk", percent(a.probability)),
            colour: GREY,
        });
    }
    if let Some(q) = i.quality_risk {
        let flag = match i.quality_at_risk {
            Some(true) => " (at risk)",
            Some(false) => " (ok)",
            None => "",
        };
        out.push(Figure {
            label: "Quality:  ",
            text: format!("{} risk of a NOK part{flag}", percent(q)),
            badge: format!("{} quality risk", percent(q)),
            colour: flag_colour(i.quality_at_risk),
        });
    }
    if let (Some(x), Cause::Failure) = (i.anomaly, a.cause) {
        let flag = match i.anomalous {
            Some(true) => " (anomalous)",
            Some(false) => " (ordinary)",
            None => "",
        };
        out.push(Figure {
            label: "Anomaly:  ",
            text: format!("{}{flag}", score(Some(x))),
            badge: format!("anomaly {}", score(Some(x))),
            colour: flag_colour(i.anomalous),
        });
    }
    if let Some(r) = &i.rul {
        out.push(Figure {
            label: "Life:     ",
            text: rul_text(r),
            badge: rul_badge(r),
            colour: GREY,
        });
    }
    out
}

struct ActionView {
    severity: &'static str,
    text: String,
    code: String,
}

struct FactorView {
    feature: String,
    value: String,
    contribution: String,
}

impl View {
    fn new(a: &AlertMail, cfg: &MailConfig, profiles: &Profiles) -> Self {
        let (headline, headline_note, colour) = a.tone();
        let profile = profiles.get(a.profile.as_deref());
        let figures = figures(a);
        let anomaly = a.cause == Cause::Anomaly;
        let (main_label, main_value) = match (a.cause, a.insights.is_empty()) {
            (Cause::Anomaly, _) => {
                let flag = match a.insights.anomalous {
                    Some(true) => ", anomalous",
                    Some(false) => ", ordinary",
                    None => "",
                };
                ("Anomaly:  ", format!("{}{flag}", score(a.insights.anomaly)))
            }
            (Cause::Failure, true) => ("Risk:     ", percent(a.probability)),
            (Cause::Failure, false) => ("Failure:  ", percent(a.probability)),
        };
        let badge = match (a.cause, a.insights.is_empty()) {
            (Cause::Failure, false) => format!("{} failure risk", percent(a.probability)),
            _ => a.summary(),
        };
        let figures_line = (!figures.is_empty()).then(|| {
            figures
                .iter()
                .map(|f| f.badge.as_str())
                .collect::<Vec<_>>()
                .join(" · ")
        });
        Self {
            subject: subject(a, cfg),
            headline,
            headline_note,
            colour,
            machine_id: a.machine_id.to_string(),
            profile: profile_name(a.profile.as_deref(), profile),
            alert_id: a.alert_id.clone(),
            probability: percent(a.probability),
            badge,
            digest_figure: if anomaly {
                a.summary()
            } else {
                percent(a.probability)
            },
            main_label,
            main_value,
            cause: anomaly.then_some(
                "sustained anomaly: the anomaly model flagged the machine's verdicts as \
                 unlike its healthy data, several in a row",
            ),
            supersedes: a.supersedes.clone(),
            acted: a.acted.as_ref().map(|p| {
                let what = if a.kind == MailKind::Cleared {
                    "Cleared"
                } else {
                    "Acknowledged"
                };
                format!("{what} by {} at {}", p.by, human_time(p.at))
            }),
            acted_comment: a
                .acted
                .as_ref()
                .map(|p| p.comment.clone())
                .filter(|c| !c.is_empty()),
            figures,
            figures_line,
            level: a.level.as_str(),
            time_rfc3339: time_fmt::format(a.ts),
            time_human: human_time(a.ts),
            time_local: cfg.time_zone.as_ref().map(|tz| local_time(a.ts, tz)),
            actions: a
                .actions
                .iter()
                .map(|x| ActionView {
                    severity: x.severity.as_str(),
                    text: x.text.clone(),
                    code: x.code.clone(),
                })
                .collect(),
            factors: a
                .factors
                .iter()
                .map(|f| FactorView {
                    feature: f.feature.clone(),
                    value: f.value.map_or_else(|| "missing".to_owned(), number),
                    contribution: format!("{:+.3}", f.contribution),
                })
                .collect(),
            latest: readings(&a.latest, profile),
            dashboard_url: a.dashboard_url.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "alert.html")]
struct HtmlMail<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "alert.txt")]
struct TextMail<'a> {
    v: &'a View,
}

/// The HTML escaper of `templates/*.html` (see `askama.toml`): `< > & " '` become
/// `&lt; &gt; &amp; &quot; &#39;`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NamedHtml;

impl askama::filters::Escaper for NamedHtml {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, s: &str) -> std::fmt::Result {
        let mut last = 0;
        for (i, c) in s.char_indices() {
            let entity = match c {
                '<' => "&lt;",
                '>' => "&gt;",
                '&' => "&amp;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            dest.write_str(&s[last..i])?;
            dest.write_str(entity)?;
            last = i + 1;
        }
        dest.write_str(&s[last..])
    }
}

/// `Sunday, 22 November 2026 10:00:00 UTC`
fn human_time(ts: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday], [day padding:none] [month repr:long] [year] [hour]:[minute]:[second] UTC"
    );
    ts.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_else(|_| time_fmt::format(ts))
}

/// `Mon, 23 Nov 2026 11:00:00 CET (Europe/Berlin)`: the time in the configured zone.
pub fn local_time(ts: OffsetDateTime, tz: &jiff::tz::TimeZone) -> String {
    let nanos = ts.unix_timestamp_nanos();
    let name = tz.iana_name().unwrap_or("local");
    match jiff::Timestamp::from_nanosecond(nanos) {
        Ok(t) => format!(
            "{} ({name})",
            t.to_zoned(tz.clone()).strftime("%a, %-d %b %Y %H:%M:%S %Z")
        ),
        Err(_) => human_time(ts),
    }
}

#[cfg(test)]
#[path = "email_tests.rs"]
mod tests;
