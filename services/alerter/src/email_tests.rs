use super::*;
use crate::readings::Profiles;
use dtwin_schema::{Insights, ModelRef, RiskStatus, RulEstimate, RISK_SCHEMA};
use time::macros::datetime;

fn risk() -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse("m-1").expect("valid id"),
        ts: datetime!(2026-11-22 10:00:00 UTC),
        source_ts: datetime!(2026-11-22 10:00:00 UTC),
        seq: 7,
        probability: 0.87,
        status: RiskStatus::AtRisk,
        level: Level::Critical,
        health_score: 13.0,
        actions: vec![Action {
            code: "HIGH_VIBRATION".to_owned(),
            text: r#"<script>alert(1)</script> & "q""#.to_owned(),
            severity: Level::Critical,
        }],
        factors: vec![Factor {
            feature: "torque_mean".to_owned(),
            value: Some(61.5),
            contribution: 0.31,
        }],
        model: ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: BTreeMap::from([
            ("air_temp_k".to_owned(), 300.25),
            ("rpm".to_owned(), 1400.0),
        ]),
        profile: None,
        insights: Default::default(),
    }
}

fn fire() -> Transition {
    Transition::Fire {
        alert_id: "m-1-20261122T100000000Z".to_owned(),
        level: Level::Critical,
        supersedes: None,
    }
}

/// The raw message, with quoted-printable / base64 bodies decoded enough to search: lettre
/// picks the encoding, so tests look at the decoded parts.
fn parts(msg: &Message) -> (String, String, String) {
    let raw = String::from_utf8(msg.formatted()).expect("ascii mail");
    let (headers, _) = raw.split_once("\r\n\r\n").expect("headers end");
    let text = body_of(&raw, "text/plain");
    let html = body_of(&raw, "text/html");
    (headers.to_owned(), text, html)
}

fn body_of(raw: &str, ctype: &str) -> String {
    let start = raw
        .find(&format!("Content-Type: {ctype}"))
        .expect("part present");
    let part = &raw[start..];
    let (head, rest) = part.split_once("\r\n\r\n").expect("part headers end");
    let body = &rest[..rest.find("\r\n--").unwrap_or(rest.len())];
    if head.contains("quoted-printable") {
        decode_qp(body)
    } else if head.contains("base64") {
        panic!("unexpected base64 part: {head}");
    } else {
        body.to_owned()
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("qp hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 body")
}

#[test]
fn default_addresses_parse() {
    let cfg = MailConfig::default();
    assert_eq!(cfg.from.to_string(), "dtwin <dtwin@localhost>");
    assert_eq!(cfg.to[0].to_string(), "maintenance@localhost");
}

#[test]
fn html_is_escaped_and_text_is_plain() {
    let mail = AlertMail::new(&risk(), &fire(), Some("http://127.0.0.1:8080/".to_owned()));
    let msg = render(&mail, &MailConfig::default(), &Profiles::default()).expect("renders");
    let (headers, text, html) = parts(&msg);
    assert!(
        headers.contains("Content-Type: multipart/alternative"),
        "{headers}"
    );
    assert!(headers.contains("Message-ID: <m-1-20261122T100000000Z.firing@dtwin>"));
    assert!(!headers.contains("In-Reply-To"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert!(
        text.contains(r#"<script>alert(1)</script> & "q""#),
        "{text}"
    );
    for body in [&text, &html] {
        assert!(body.contains("m-1"));
        assert!(body.contains("87 %"));
        assert!(body.contains("2026-11-22T10:00:00Z"));
        assert!(body.contains("Sunday, 22 November 2026 10:00:00 UTC"));
        assert!(body.contains("torque_mean"));
        assert!(body.contains("300.25") && body.contains("1400"));
        assert!(body.contains("http://127.0.0.1:8080/"));
    }
    assert!(html.contains("#cf222e"), "critical alerts are red");
}

#[test]
fn subject_names_status_machine_risk_and_level() {
    let mail = AlertMail::new(&risk(), &fire(), None);
    assert_eq!(
        subject(&mail, &MailConfig::default()),
        "[dtwin] AT RISK m-1: 87 % risk (CRITICAL)"
    );
    let msg = render(&mail, &MailConfig::default(), &Profiles::default()).expect("renders");
    let (headers, _, _) = parts(&msg);
    assert!(headers.contains("Subject: [dtwin] AT RISK m-1: 87 % risk (CRITICAL)"));
}

#[test]
fn subject_cannot_inject_headers() {
    let cfg = MailConfig {
        subject_prefix: "[dtwin]\r\nBcc: x@evil.example\n\u{7}".to_owned(),
        ..MailConfig::default()
    };
    let mail = AlertMail::new(&risk(), &fire(), None);
    let s = subject(&mail, &cfg);
    assert!(!s.contains('\r') && !s.contains('\n') && !s.chars().any(char::is_control));
    let msg = render(&mail, &cfg, &Profiles::default()).expect("renders");
    let (headers, _, _) = parts(&msg);
    assert!(
        !headers.lines().any(|l| l.starts_with("Bcc")),
        "injected header: {headers}"
    );
}

#[test]
fn follow_ups_thread_under_the_firing_mail_and_resolution_is_green() {
    let resolve = Transition::Resolve {
        alert_id: "m-1-20261122T100000000Z".to_owned(),
        level: Level::Critical,
        since: datetime!(2026-11-22 09:00:00 UTC),
    };
    let mut r = risk();
    r.probability = 0.12;
    let mail = AlertMail::new(&r, &resolve, None);
    assert_eq!(mail.file_name(), "m-1-20261122T100000000Z.resolved");
    let msg = render(&mail, &MailConfig::default(), &Profiles::default()).expect("renders");
    let (headers, _, html) = parts(&msg);
    assert!(headers.contains("In-Reply-To: <m-1-20261122T100000000Z.firing@dtwin>"));
    assert!(headers.contains("References: <m-1-20261122T100000000Z.firing@dtwin>"));
    assert!(headers.contains("Subject: [dtwin] RESOLVED m-1: 12 % risk (was CRITICAL)"));
    assert!(html.contains("#1a7f37"));
}

#[test]
fn no_recipient_is_an_error_not_a_panic() {
    let cfg = MailConfig {
        to: Vec::new(),
        ..MailConfig::default()
    };
    let mail = AlertMail::new(&risk(), &fire(), None);
    assert!(matches!(
        render(&mail, &cfg, &Profiles::default()),
        Err(MailError::Build(_))
    ));
}

#[test]
fn percent_and_numbers_format_for_people() {
    assert_eq!(percent(0.874), "87 %");
    assert_eq!(percent(1.5), "100 %");
    assert_eq!(percent(f64::NAN), "n/a");
    assert_eq!(number(1400.0), "1400");
    assert_eq!(number(-0.001), "0");
    assert_eq!(number(300.256), "300.26");
}

#[test]
fn a_configured_time_zone_is_shown_beside_utc() {
    let mail = AlertMail::new(&risk(), &fire(), None);
    let cfg = MailConfig {
        time_zone: Some(jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled tzdb")),
        ..MailConfig::default()
    };
    let (_, text, html) = parts(&render(&mail, &cfg, &Profiles::default()).expect("renders"));
    for body in [&text, &html] {
        assert!(
            body.contains("Sunday, 22 November 2026 10:00:00 UTC"),
            "UTC stays"
        );
        assert!(
            body.contains("Sun, 22 Nov 2026 11:00:00 CET (Europe/Berlin)"),
            "{body}"
        );
    }
    // Summer time: the offset follows the zone's rules, not a fixed hour.
    let summer = OffsetDateTime::from_unix_timestamp(1_783_000_000).expect("valid");
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled tzdb");
    assert!(local_time(summer, &tz).contains("CEST"));
}

#[test]
fn a_digest_lists_every_alert_and_marks_duplicates() {
    let mut first = AlertMail::new(&risk(), &fire(), None);
    first.probability = 0.95;
    let mut second = first.clone();
    second.machine_id = MachineId::parse("m-2").expect("valid");
    second.alert_id = "m-2-20261122T100000000Z".to_owned();
    let env = Envelope {
        to: vec!["ops@example.com".parse().expect("address")],
        possible_duplicate: true,
    };
    let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid");
    let msg = render_digest(
        &[first.clone(), second.clone()],
        &MailConfig::default(),
        &Profiles::default(),
        &env,
        now,
    )
    .expect("renders");
    let (headers, text, html) = parts(&msg);
    let headers = headers.replace("\r\n ", " ");
    assert!(
        headers.contains(
            "Subject: [possible duplicate] [dtwin] 2 machines AT RISK (2 CRITICAL): m-1, m-2"
        ),
        "{headers}"
    );
    assert!(headers.contains("X-Dtwin-Possible-Duplicate: yes"));
    let names = [first.file_name(), second.file_name()];
    assert!(headers.contains(&format!("Message-ID: {}", digest_message_id(&names))));
    assert_eq!(
        digest_message_id(&names),
        digest_message_id(&names),
        "stable"
    );
    for body in [&text, &html] {
        let (a, b) = (
            body.find("m-1").expect("m-1"),
            body.find("m-2").expect("m-2"),
        );
        assert!(a < b, "listed in the given order");
        assert!(body.contains("95 %"));
    }
    assert!(
        html.contains("&lt;script&gt;"),
        "actions escaped in the digest too"
    );
    assert!(!html.contains("<script>"));
}

const PUMP: &str = r#"
id = "pump"
label = "Water pump"

[[sensor]]
name = "volt"
label = "<b>Volt</b>"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
label = "Rotation"
unit = "rpm"
range = [0.0, 5000.0]

[[sensor]]
name = "pressure"
label = "Pressure"
unit = "bar"
range = [0.0, 50.0]
"#;

fn pump_mail() -> AlertMail {
    let mut r = risk();
    r.machine_id = MachineId::parse("pump-01").expect("valid id");
    r.profile = Some("pump".to_owned());
    r.latest = BTreeMap::from([
        ("volt".to_owned(), 176.2),
        ("pressure".to_owned(), 3.5),
        ("rotate".to_owned(), 1500.0),
        ("extra_key".to_owned(), 7.0),
    ]);
    AlertMail::new(&r, &fire(), None)
}

fn pump_profiles() -> Profiles {
    Profiles::new(&[dtwin_profile::Profile::parse(PUMP, "pump.toml").expect("valid")])
}

#[test]
fn a_pump_mail_shows_its_profile_labels_units_and_order() {
    let msg = render(&pump_mail(), &MailConfig::default(), &pump_profiles()).expect("renders");
    let (_, text, html) = parts(&msg);
    let text = text.replace("\r\n", "\n");
    assert!(text.contains("Profile:  Water pump (pump)"), "{text}");
    assert!(html.contains("profile Water pump (pump)"), "{html}");
    assert!(text.contains("  - <b>Volt</b>: 176.2 V (volt)"), "{text}");
    assert!(text.contains("  - Rotation: 1500 rpm (rotate)"), "{text}");
    assert!(text.contains("  - Pressure: 3.5 bar (pressure)"), "{text}");
    assert!(
        text.contains("  - extra_key: 7\n"),
        "unknown keys by name: {text}"
    );
    for body in [&text, &html] {
        let at = |s: &str| body.find(s).unwrap_or_else(|| panic!("{s} in {body}"));
        assert!(at("176.2 V") < at("1500 rpm"), "profile order");
        assert!(at("1500 rpm") < at("3.5 bar"), "profile order");
        assert!(at("3.5 bar") < at("extra_key"), "unknown sensors last");
    }
    assert!(html.contains("<td>&lt;b&gt;Volt&lt;/b&gt;</td>"), "{html}");
    assert!(!html.contains("<b>Volt"), "labels from files are data");
    assert!(html.contains("<td style=\"text-align:right;\">176.2 V</td>"));
}

#[test]
fn a_profile_the_alerter_does_not_know_keeps_names_and_is_named() {
    let msg = render(&pump_mail(), &MailConfig::default(), &Profiles::default()).expect("renders");
    let (_, text, _) = parts(&msg);
    let text = text.replace("\r\n", "\n");
    assert!(text.contains("Profile:  pump"), "{text}");
    assert!(text.contains("  - volt: 176.2\n"), "{text}");
    assert!(text.contains("  - extra_key: 7\n"), "{text}");
}

#[test]
fn a_milling_mail_uses_milling_labels_and_names_no_profile() {
    let mut r = risk();
    r.latest = BTreeMap::from([
        ("vibration_mm_s".to_owned(), 9.5),
        ("temperature_c".to_owned(), 36.5),
    ]);
    let mail = AlertMail::new(&r, &fire(), None);
    let (_, text, html) =
        parts(&render(&mail, &MailConfig::default(), &pump_profiles()).expect("renders"));
    let text = text.replace("\r\n", "\n");
    assert!(!text.contains("Profile:"), "{text}");
    assert!(!html.contains("profile "), "{html}");
    assert!(
        text.contains("  - Process temperature: 36.5 °C (temperature_c)\n  - Vibration: 9.5 mm/s (vibration_mm_s)"),
        "milling sensor order: {text}"
    );
    assert!(html.contains("<td>Vibration</td><td style=\"text-align:right;\">9.5 mm/s</td>"));
    assert!(
        html.contains("<code>vibration_mm_s</code>"),
        "the name stays"
    );
}

#[test]
fn spooled_mails_without_a_profile_still_load() {
    let mail = AlertMail::new(&risk(), &fire(), None);
    let mut json = serde_json::to_value(&mail).expect("json");
    assert!(json.get("profile").is_none(), "milling writes no field");
    json.as_object_mut().expect("object").remove("profile");
    let back: AlertMail = serde_json::from_value(json).expect("old record");
    assert_eq!(back, mail);
    let pump = pump_mail();
    let back: AlertMail =
        serde_json::from_str(&serde_json::to_string(&pump).expect("json")).expect("parses");
    assert_eq!(back.profile.as_deref(), Some("pump"));
}

fn insights() -> Insights {
    Insights {
        quality_risk: Some(0.34),
        quality_at_risk: Some(true),
        anomaly: Some(0.812),
        anomalous: Some(true),
        rul: Some(RulEstimate {
            value: 42.4,
            low: 30.2,
            high: 55.1,
            unit: "cycles".to_owned(),
        }),
        models: BTreeMap::from([(
            "anomaly".to_owned(),
            ModelRef {
                id: "iforest".to_owned(),
                version: "2".to_owned(),
            },
        )]),
    }
}

fn anomaly_fire() -> Transition {
    Transition::Fire {
        alert_id: "m-1-anomaly-20261122T100000000Z".to_owned(),
        level: Level::Warning,
        supersedes: None,
    }
}

/// The text body with LF line ends.
fn text_of(mail: &AlertMail) -> (String, String, String) {
    let msg = render(mail, &MailConfig::default(), &Profiles::default()).expect("renders");
    let (headers, text, html) = parts(&msg);
    (
        headers.replace("\r\n ", " "),
        text.replace("\r\n", "\n"),
        html,
    )
}

#[test]
fn a_verdict_with_insights_shows_every_figure_escaped_and_coloured() {
    let mut r = risk();
    r.insights = insights();
    if let Some(rul) = r.insights.rul.as_mut() {
        rul.unit = "<i>cycles</i>".to_owned();
    }
    let mail = AlertMail::new(&r, &fire(), None);
    let (headers, text, html) = text_of(&mail);
    // The failure alert's subject is as before; both risks are in the bodies.
    assert!(headers.contains("Subject: [dtwin] AT RISK m-1: 87 % risk (CRITICAL)"));
    assert!(
        text.contains(
            "Failure:  87 % (CRITICAL)\n\
             Quality:  34 % risk of a NOK part (at risk)\n\
             Anomaly:  0.81 (anomalous)\n\
             Life:     42 <i>cycles</i> left (5–95 %: 30–55 <i>cycles</i>)\n\
             Machine:  m-1\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("Cause:"),
        "a failure alert names no other cause"
    );
    let badge = |colour: &str, label: &str| {
        format!(
            "background:{colour};color:#ffffff;font-weight:bold;font-size:14px;\">{label}</span>"
        )
    };
    assert!(
        html.contains("font-size:18px;\">87 % failure risk</span>"),
        "{html}"
    );
    assert!(
        html.contains(&badge("#bf8700", "34 % quality risk")),
        "amber: at risk"
    );
    assert!(
        html.contains(&badge("#bf8700", "anomaly 0.81")),
        "amber: anomalous"
    );
    assert!(
        html.contains(&badge(
            "#57606a",
            "42 &lt;i&gt;cycles&lt;/i&gt; left (5–95 %: 30–55)"
        )),
        "the unit is data: {html}"
    );
    assert!(!html.contains("<i>"));
    // Not flagged: green; no flag at all: grey.
    r.insights.quality_at_risk = Some(false);
    r.insights.anomalous = None;
    let (_, text, html) = text_of(&AlertMail::new(&r, &fire(), None));
    assert!(
        html.contains(&badge("#1a7f37", "34 % quality risk")),
        "{html}"
    );
    assert!(html.contains(&badge("#57606a", "anomaly 0.81")), "{html}");
    assert!(
        text.contains("Quality:  34 % risk of a NOK part (ok)\n"),
        "{text}"
    );
    assert!(text.contains("Anomaly:  0.81\n"), "{text}");
}

#[test]
fn only_the_figures_a_verdict_carries_are_shown() {
    let mut r = risk();
    r.insights.rul = insights().rul;
    let (_, text, html) = text_of(&AlertMail::new(&r, &fire(), None));
    assert!(
        text.contains("Failure:  87 % (CRITICAL)\nLife:     42 cycles left"),
        "{text}"
    );
    assert!(
        !text.contains("Quality") && !text.contains("Anomaly"),
        "{text}"
    );
    assert!(
        !html.contains("quality risk") && !html.contains("anomaly "),
        "{html}"
    );
    // None at all: the mail of before (one badge, the `Risk:` line).
    let (_, text, html) = text_of(&AlertMail::new(&risk(), &fire(), None));
    assert!(
        text.contains("Risk:     87 % (CRITICAL)\nMachine:"),
        "{text}"
    );
    assert!(html.contains("font-size:18px;\">87 % risk</span>"));
    assert!(!html.contains("class=\"figures\""));
}

#[test]
fn an_anomaly_alert_is_headed_anomaly_with_its_score_and_says_why() {
    let mut r = risk();
    r.probability = 0.12;
    r.status = RiskStatus::Healthy;
    r.insights = insights();
    let mail = AlertMail::new(&r, &anomaly_fire(), None);
    assert_eq!(mail.cause, Cause::Anomaly);
    assert_eq!(mail.priority(), 0.812, "ordered by its score in a digest");
    let (headers, text, html) = text_of(&mail);
    assert!(
        headers.contains("Subject: [dtwin] ANOMALY m-1: anomaly 0.81 (WARNING)"),
        "{headers}"
    );
    assert!(
        text.starts_with("ANOMALY - m-1 (NEW ANOMALY ALERT)\n\nCause:    sustained anomaly"),
        "{text}"
    );
    assert!(
        text.contains("Anomaly:  0.81, anomalous (WARNING)\nFailure:  12 %\nQuality:  34 % risk"),
        "{text}"
    );
    assert!(
        html.contains("<strong>Cause:</strong> sustained anomaly"),
        "{html}"
    );
    assert!(html.contains(
        "background:#bf8700;color:#ffffff;font-weight:bold;font-size:18px;\">anomaly 0.81</span>"
    ));
    assert!(html.contains("12 % failure risk"));
    // Its resolution: green, still named by its score.
    let resolve = Transition::Resolve {
        alert_id: "m-1-anomaly-20261122T100000000Z".to_owned(),
        level: Level::Warning,
        since: datetime!(2026-11-22 09:00:00 UTC),
    };
    r.insights.anomaly = Some(0.42);
    r.insights.anomalous = Some(false);
    let (headers, text, html) = text_of(&AlertMail::new(&r, &resolve, None));
    assert!(
        headers.contains("Subject: [dtwin] RESOLVED m-1: anomaly 0.42 (was WARNING)"),
        "{headers}"
    );
    assert!(headers.contains("In-Reply-To: <m-1-anomaly-20261122T100000000Z.firing@dtwin>"));
    assert!(text.contains("(ANOMALY ALERT RESOLVED)") && text.contains("0.42, ordinary"));
    assert!(html.contains("#1a7f37"));
    // An anomaly alert whose verdict lost its score (the model was withdrawn) still renders.
    r.insights = Insights::default();
    let (headers, _, _) = text_of(&AlertMail::new(&r, &anomaly_fire(), None));
    assert!(headers.contains("Subject: [dtwin] ANOMALY m-1: anomaly n/a (WARNING)"));
}

#[test]
fn a_failure_alert_that_supersedes_an_anomaly_alert_names_it_and_threads_under_it() {
    let mut r = risk();
    r.insights = insights();
    let t = Transition::Fire {
        alert_id: "m-1-20261122T100500000Z".to_owned(),
        level: Level::Critical,
        supersedes: Some(crate::lifecycle::Superseded {
            alert_id: "m-1-anomaly-20261122T100000000Z".to_owned(),
            level: Level::Warning,
            since: datetime!(2026-11-22 10:00:00 UTC),
        }),
    };
    let mail = AlertMail::new(&r, &t, None);
    assert_eq!(mail.cause, Cause::Failure);
    assert_eq!(mail.file_name(), "m-1-20261122T100500000Z.firing");
    let (headers, text, html) = text_of(&mail);
    assert!(headers.contains("Subject: [dtwin] AT RISK m-1: 87 % risk (CRITICAL)"));
    assert!(headers.contains("In-Reply-To: <m-1-anomaly-20261122T100000000Z.firing@dtwin>"));
    assert!(
        text.contains("(NEW ALERT, REPLACES THE ANOMALY ALERT)\n\nReplaces: anomaly alert m-1-anomaly-20261122T100000000Z (resolved by this alert)\nFailure:  87 %"),
        "{text}"
    );
    assert!(
        html.contains("Replaces the anomaly alert <code>m-1-anomaly-20261122T100000000Z</code>")
    );
}

#[test]
fn remaining_life_reads_in_its_unit() {
    let rul = |value, low, high, unit: &str| RulEstimate {
        value,
        low,
        high,
        unit: unit.to_owned(),
    };
    assert_eq!(
        rul_text(&rul(42.4, 30.2, 55.6, "cycles")),
        "42 cycles left (5–95 %: 30–56 cycles)"
    );
    assert_eq!(
        rul_text(&rul(900.0, 600.0, 1500.0, "readings")),
        "900 readings left (5–95 %: 600–1500 readings)"
    );
    assert_eq!(
        rul_text(&rul(9000.0, 45.0, 400_000.0, "seconds")),
        "2.5 h left (5–95 %: 45 s – 4.6 days)"
    );
    assert_eq!(
        rul_text(&rul(f64::NAN, 600.0, 3600.0, "seconds")),
        "n/a left (5–95 %: 10 min – 60 min)"
    );
    assert_eq!(score(Some(0.815)), "0.81");
    assert_eq!(score(Some(f64::INFINITY)), "n/a");
    assert_eq!(score(None), "n/a");
}

#[test]
fn a_digest_with_anomaly_alerts_says_so_and_lists_their_figures() {
    let mut r = risk();
    r.insights = insights();
    let failure = AlertMail::new(&r, &fire(), None);
    let mut anomaly = AlertMail::new(&r, &anomaly_fire(), None);
    anomaly.machine_id = MachineId::parse("m-2").expect("valid");
    anomaly.alert_id = "m-2-anomaly-20261122T100000000Z".to_owned();
    let env = Envelope {
        to: vec!["ops@example.com".parse().expect("address")],
        possible_duplicate: false,
    };
    let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid");
    let msg = render_digest(
        &[failure, anomaly],
        &MailConfig::default(),
        &Profiles::default(),
        &env,
        now,
    )
    .expect("renders");
    let (headers, text, html) = parts(&msg);
    let headers = headers.replace("\r\n ", " ");
    let text = text.replace("\r\n", "\n");
    assert!(
        headers.contains(
            "Subject: [dtwin] 2 machines AT RISK or ANOMALOUS (1 CRITICAL, 1 ANOMALY): m-1, m-2"
        ),
        "{headers}"
    );
    assert!(text.contains("1. m-1: 87 % risk (CRITICAL), alert m-1-20261122T100000000Z\n   34 % quality risk · anomaly 0.81 · 42 cycles left (5–95 %: 30–55)\n"), "{text}");
    assert!(
        text.contains("2. m-2: anomaly 0.81 (WARNING), alert m-2-anomaly-"),
        "{text}"
    );
    assert!(html.contains("machines AT RISK or ANOMALOUS &middot; 1 CRITICAL &middot; 1 ANOMALY"));
    assert!(html.contains(">anomaly 0.81</span><br><span style=\"font-size:12px;color:#57606a;\">87 % failure risk · 34 % quality risk"), "{html}");
}

#[test]
fn mails_with_insights_and_causes_round_trip_and_failure_mails_keep_their_old_form() {
    let mut r = risk();
    r.insights = insights();
    let mail = AlertMail::new(&r, &anomaly_fire(), None);
    let json = serde_json::to_value(&mail).expect("json");
    assert_eq!(json["cause"], "anomaly");
    assert_eq!(json["insights"]["rul"]["unit"], "cycles");
    let back: AlertMail = serde_json::from_value(json).expect("parses");
    assert_eq!(back, mail);
    let old = serde_json::to_value(AlertMail::new(&risk(), &fire(), None)).expect("json");
    for field in ["cause", "supersedes", "insights"] {
        assert!(
            old.get(field).is_none(),
            "a failure mail without insights writes no {field}"
        );
    }
}
