use super::*;
use crate::spool::tests::record;

fn routing(text: &str) -> Routing {
    Routing::parse(text).expect("parses")
}

const ROUTES: &str = r#"
[[machine]]
machines = ["press-*"]
line = "line-a"

[[channel]]
name = "pd"
kind = "pagerduty"
routing_key = "R0UT1NGKEY"

[[channel]]
name = "slack-a"
kind = "slack"
url = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"

[[channel]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9095/hook"
every = true

[[route]]
lines = ["line-a"]
min_level = "CRITICAL"
channels = ["pd", "slack-a"]
"#;

fn ctx(mail: &MailConfig) -> Context<'_> {
    Context {
        mail,
        line: None,
        possible_duplicate: false,
    }
}

#[test]
fn routes_choose_channels_per_line_and_level_and_every_channel_gets_all() {
    let r = routing(ROUTES);
    let names = |machine: &str, kind: MailKind, level: Level| -> Vec<String> {
        let mut rec = record(machine, kind, 0);
        rec.mail.level = level;
        targets(&r, &rec).iter().map(|c| c.name.clone()).collect()
    };
    assert_eq!(
        names("press-1", MailKind::Firing, Level::Critical),
        ["pd", "slack-a", "am"]
    );
    assert_eq!(names("press-1", MailKind::Firing, Level::Warning), ["am"]);
    assert_eq!(names("mill-1", MailKind::Firing, Level::Critical), ["am"]);
    // Repeats are PagerDuty's own business; acknowledgements have no Alertmanager status.
    assert_eq!(
        names("press-1", MailKind::Repeat, Level::Critical),
        ["slack-a", "am"]
    );
    assert_eq!(
        names("press-1", MailKind::Acknowledged, Level::Critical),
        ["pd", "slack-a"]
    );
    // A route may name channels only: e-mail then goes to the default recipients.
    let default: Vec<lettre::message::Mailbox> = vec!["x@example.com".parse().unwrap()];
    assert_eq!(r.recipients("press-1", Level::Critical, &default), default);
}

#[test]
fn bad_channels_and_routes_are_refused_without_their_secrets() {
    let cases = [
        (
            "[[channel]]\nname = \"a b\"\nkind = \"slack\"\nurl = \"https://x/SECRET\"",
            "channel name \"a b\"",
        ),
        (
            "[[channel]]\nname = \"s\"\nkind = \"slack\"",
            "needs a url",
        ),
        (
            "[[channel]]\nname = \"s\"\nkind = \"slack\"\nurl = \"ftp://u:SECRET@h/SECRET\"",
            "ftp://h/*** is not an http",
        ),
        (
            "[[channel]]\nname = \"p\"\nkind = \"pagerduty\"",
            "needs a routing_key",
        ),
        (
            "[[channel]]\nname = \"s\"\nkind = \"email\"\nurl = \"https://x\"",
            "unknown variant",
        ),
        (
            "[[channel]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://x/SECRET\"\n[[channel]]\nname = \"s\"\nkind = \"teams\"\nurl = \"https://y/SECRET\"",
            "two channels are called \"s\"",
        ),
        (
            "[[route]]\nchannels = [\"nope\"]",
            "route 1 names the channel \"nope\"",
        ),
        ("[[route]]\nlines = [\"a\"]", "no recipients"),
    ];
    for (text, want) in cases {
        let e = Routing::parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(!e.contains("SECRET"), "{e}");
    }
    let mut r = routing(ROUTES);
    assert!(r
        .add_channel(Channel::webhook("http://127.0.0.1:1/x"))
        .is_ok());
    let e = r
        .add_channel(Channel::webhook("http://127.0.0.1:1/x"))
        .unwrap_err();
    assert_eq!(e, ChannelError::Duplicate("webhook".into()));
    assert_eq!(r.channels.len(), 4, "a refused channel is not kept");
}

#[test]
fn urls_and_keys_never_show() {
    for (url, shown) in [
        (
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://hooks.slack.com/***",
        ),
        (
            "https://u:pw@example.com:8443/hook?token=abc",
            "https://example.com:8443/***",
        ),
        ("http://127.0.0.1:9095", "http://127.0.0.1:9095"),
        ("http://127.0.0.1:9095/", "http://127.0.0.1:9095"),
        ("http://h?token=abc", "http://h/***"),
        ("not a url", "***"),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
    let r = routing(ROUTES);
    let all = format!(
        "{:?} {}",
        r.channels,
        r.channels
            .iter()
            .map(Channel::describe)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(!all.contains("SECRET") && !all.contains("R0UT1NG"), "{all}");
    assert!(
        all.contains("pd (pagerduty, https://events.pagerduty.com/***)"),
        "{all}"
    );
}

#[test]
fn alertmanager_payloads_are_version_4_firing_then_resolved() {
    let mail = MailConfig::default();
    let ch = Channel::webhook("http://127.0.0.1:9/x");
    let firing = record("m-1", MailKind::Firing, 0);
    let v = payload(&ch, &firing, &ctx(&mail)).expect("a payload");
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "webhook");
    assert_eq!(v["truncatedAlerts"], 0);
    let a = &v["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["alertname"], "DtwinMachineAtRisk");
    assert_eq!(a["labels"]["machine_id"], "m-1");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["startsAt"], "2026-11-22T10:00:00Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
    assert_eq!(a["annotations"]["delivery_id"], firing.name());
    assert_eq!(
        v["groupKey"],
        format!("{{}}:{{alert_id=\"{}\"}}", firing.mail.alert_id)
    );
    for key in [
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let resolved = record("m-1", MailKind::Resolved, 60);
    let v = payload(&ch, &resolved, &ctx(&mail)).expect("a payload");
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["alerts"][0]["endsAt"], "2026-11-22T10:01:00Z");
    assert_eq!(
        v["alerts"][0]["fingerprint"], a["fingerprint"],
        "one alert, one fingerprint"
    );
    assert_eq!(
        payload(&ch, &record("m-1", MailKind::Acknowledged, 5), &ctx(&mail)),
        None
    );
    let cleared = record("m-1", MailKind::Cleared, 70);
    assert_eq!(
        payload(&ch, &cleared, &ctx(&mail)).unwrap()["status"],
        "resolved"
    );
}

#[test]
fn pagerduty_triggers_acknowledges_and_resolves_one_dedup_key() {
    let mail = MailConfig::default();
    let r = routing(ROUTES);
    let pd = r.channels.iter().find(|c| c.name == "pd").unwrap();
    let id = record("m-1", MailKind::Firing, 0).mail.alert_id;
    for (kind, action) in [
        (MailKind::Firing, "trigger"),
        (MailKind::Escalated, "trigger"),
        (MailKind::Acknowledged, "acknowledge"),
        (MailKind::Resolved, "resolve"),
        (MailKind::Cleared, "resolve"),
    ] {
        let v = payload(pd, &record("m-1", kind, 1), &ctx(&mail)).expect("a payload");
        assert_eq!(v["event_action"], action, "{kind:?}");
        assert_eq!(v["dedup_key"], id);
        assert_eq!(v["routing_key"], "R0UT1NGKEY");
        if action == "trigger" {
            assert_eq!(v["payload"]["source"], "m-1");
            assert_eq!(v["payload"]["severity"], "critical");
            assert!(v["payload"]["summary"]
                .as_str()
                .unwrap()
                .contains("AT RISK m-1"));
        } else {
            assert!(v.get("payload").is_none());
        }
    }
    assert_eq!(
        payload(pd, &record("m-1", MailKind::Repeat, 3600), &ctx(&mail)),
        None
    );
}

#[test]
fn slack_and_teams_get_the_subject_and_mark_a_possible_duplicate() {
    let mail = MailConfig::default();
    let r = routing(ROUTES);
    let slack = r.channels.iter().find(|c| c.name == "slack-a").unwrap();
    let mut rec = record("m-1", MailKind::Acknowledged, 5);
    rec.mail.acted = Some(dtwin_schema::Acknowledgement {
        by: "ops".into(),
        at: rec.mail.ts,
        comment: "on it".into(),
    });
    let dup = Context {
        possible_duplicate: true,
        ..ctx(&mail)
    };
    let text = payload(slack, &rec, &dup).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("*[possible duplicate] [dtwin] ACKNOWLEDGED m-1"),
        "{text}"
    );
    assert!(text.contains("Acknowledged by ops: on it"), "{text}");
    assert!(text.contains(&rec.name()), "names the delivery: {text}");
    let teams = Channel {
        name: "t".into(),
        kind: ChannelKind::Teams,
        url: Some(Secret::new("https://x.example/webhook")),
        routing_key: None,
        every: false,
    };
    let v = payload(&teams, &rec, &ctx(&mail)).unwrap();
    assert_eq!(v["type"], "message");
    let card = &v["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(card["content"]["body"][0]["text"]
        .as_str()
        .unwrap()
        .contains("ACKNOWLEDGED m-1"));
}

#[test]
fn since_is_read_back_from_the_alert_id() {
    let rec = record("m-1", MailKind::Resolved, 90);
    assert_eq!(
        since(&rec.mail),
        time::macros::datetime!(2026-11-22 10:00:00 UTC)
    );
    let mut odd = rec.mail.clone();
    odd.alert_id = "whatever".into();
    assert_eq!(since(&odd), odd.ts);
}
