use super::*;
use crate::spool::tests::record;
use proptest::prelude::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn pending(machine: &str, kind: MailKind, queued_s: i64) -> Pending {
    Pending {
        record: record(machine, kind, queued_s),
        maybe_sent: false,
        queued: T0 + Duration::seconds(queued_s),
    }
}

fn default_to() -> Vec<Mailbox> {
    vec!["ops@example.com".parse().expect("address")]
}

fn policy() -> Policy {
    Policy {
        group_wait: Duration::seconds(2),
        digest_min: 3,
        rate_limit: 0,
        rate_window: Duration::hours(1),
    }
}

fn sends(p: &Plan) -> Vec<Vec<String>> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Send { names, .. } => Some(names.clone()),
            Step::Silence { .. } => None,
        })
        .collect()
}

#[test]
fn new_alerts_wait_for_the_group_then_go_as_one_digest() {
    let ps: Vec<Pending> = (0..4)
        .map(|i| pending(&format!("m-{i}"), MailKind::Firing, 0))
        .collect();
    let log = SendLog::default();
    let early = plan(
        &ps,
        T0 + Duration::seconds(1),
        &Routing::default(),
        &default_to(),
        &[],
        &policy(),
        &log,
    );
    assert!(early.steps.is_empty());
    assert_eq!(early.wake_at, Some(T0 + Duration::seconds(2)));
    let due = plan(
        &ps,
        T0 + Duration::seconds(2),
        &Routing::default(),
        &default_to(),
        &[],
        &policy(),
        &log,
    );
    let s = sends(&due);
    assert_eq!(s.len(), 1, "one digest: {s:?}");
    assert_eq!(s[0].len(), 4);
    assert_eq!(due.wake_at, None);
}

#[test]
fn few_alerts_go_one_by_one_and_follow_ups_at_once() {
    let ps = vec![
        pending("m-1", MailKind::Firing, 0),
        pending("m-2", MailKind::Firing, 0),
        pending("m-3", MailKind::Resolved, 0),
    ];
    let log = SendLog::default();
    let now = plan(
        &ps,
        T0,
        &Routing::default(),
        &default_to(),
        &[],
        &policy(),
        &log,
    );
    assert_eq!(
        sends(&now),
        vec![vec![ps[2].record.name()]],
        "the resolution goes at once"
    );
    let later = plan(
        &ps,
        T0 + Duration::seconds(5),
        &Routing::default(),
        &default_to(),
        &[],
        &policy(),
        &log,
    );
    assert_eq!(sends(&later).len(), 3, "two singles and the resolution");
}

#[test]
fn digests_list_by_risk_times_criticality() {
    let mut ps: Vec<Pending> = ["a-1", "b-1", "c-1"]
        .iter()
        .map(|m| pending(m, MailKind::Firing, 0))
        .collect();
    ps[0].record.mail.probability = 0.9;
    ps[1].record.mail.probability = 0.6;
    ps[2].record.mail.probability = 0.5;
    let routing = Routing::parse(
        r#"
        [[machine]]
        machines = ["c-*"]
        criticality = 3
        "#,
    )
    .expect("parses");
    let p = plan(
        &ps,
        T0 + Duration::seconds(9),
        &routing,
        &default_to(),
        &[],
        &policy(),
        &SendLog::default(),
    );
    let order: Vec<String> = sends(&p)[0].iter().map(|n| n[..3].to_owned()).collect();
    assert_eq!(order, ["c-1", "a-1", "b-1"], "0.5 x 3 first, then 0.9, 0.6");
}

#[test]
fn routes_pick_recipients_by_line_and_level() {
    let routing = Routing::parse(
        r#"
        [[machine]]
        machines = ["press-*"]
        line = "line-a"

        [[route]]
        lines = ["line-a"]
        to = ["Line A <a@example.com>"]

        [[route]]
        min_level = "CRITICAL"
        to = ["oncall@example.com"]
        "#,
    )
    .expect("parses");
    let who = |m: &str, l: Level| -> Vec<String> {
        routing
            .recipients(m, l, &default_to())
            .iter()
            .map(|m| m.email.to_string())
            .collect()
    };
    assert_eq!(who("press-1", Level::Warning), ["a@example.com"]);
    assert_eq!(
        who("press-1", Level::Critical),
        ["a@example.com", "oncall@example.com"]
    );
    assert_eq!(who("lathe-1", Level::Critical), ["oncall@example.com"]);
    assert_eq!(
        who("lathe-1", Level::Warning),
        ["ops@example.com"],
        "no route: the default"
    );
    let e = Routing::parse(
        "[[machine]]\nmachines = [\"m\"]\n[[route]]\nto = [\"x@y\"]\n[[route]]\nto = []",
    )
    .unwrap_err();
    assert!(matches!(e, RoutingError::NoRecipients(2)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "route 2 has no recipients (to = [...]) and no channels (channels = [...])"
    );
    let e = Routing::parse("[[route]]\nbogus = 1\nto = [\"x@y\"]").unwrap_err();
    assert!(matches!(e, RoutingError::Toml(_)), "{e:?}");
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn silences_record_instead_of_sending() {
    let s = Silence {
        schema: dtwin_schema::SILENCE_SCHEMA.to_owned(),
        silence_id: "maint".to_owned(),
        machines: vec!["m-1*".to_owned()],
        lines: Vec::new(),
        until: T0 + Duration::hours(1),
        reason: String::new(),
        created_by: String::new(),
    };
    let ps = vec![
        pending("m-10", MailKind::Resolved, 0),
        pending("m-2", MailKind::Resolved, 0),
    ];
    let p = plan(
        &ps,
        T0,
        &Routing::default(),
        &default_to(),
        std::slice::from_ref(&s),
        &policy(),
        &SendLog::default(),
    );
    assert_eq!(
        p.steps[0],
        Step::Silence {
            name: ps[0].record.name(),
            silence_id: "maint".to_owned()
        }
    );
    assert_eq!(sends(&p), vec![vec![ps[1].record.name()]]);
    let after = plan(
        &ps,
        T0 + Duration::hours(2),
        &Routing::default(),
        &default_to(),
        &[s],
        &policy(),
        &SendLog::default(),
    );
    assert_eq!(
        sends(&after).len(),
        2,
        "an expired silence silences nothing"
    );
}

#[test]
fn a_rate_limited_backlog_waits_then_goes_as_one_digest() {
    let pol = Policy {
        rate_limit: 2,
        ..policy()
    };
    let mut log = SendLog::default();
    log.record(&default_to(), T0);
    log.record(&default_to(), T0 + Duration::minutes(1));
    let ps: Vec<Pending> = (0..5)
        .map(|i| pending(&format!("m-{i}"), MailKind::Resolved, 0))
        .collect();
    let now = T0 + Duration::minutes(2);
    let held = plan(
        &ps,
        now,
        &Routing::default(),
        &default_to(),
        &[],
        &pol,
        &log,
    );
    assert!(held.steps.is_empty(), "limit reached");
    assert_eq!(held.wake_at, Some(T0 + Duration::hours(1)));
    let freed = plan(
        &ps,
        T0 + Duration::hours(1),
        &Routing::default(),
        &default_to(),
        &[],
        &pol,
        &log,
    );
    let s = sends(&freed);
    assert_eq!(s.len(), 1, "one slot: everything in one digest");
    assert_eq!(s[0].len(), 5);
}

proptest! {
    /// Whatever is pending, each record is handled at most once per plan (silenced or in
    /// exactly one e-mail), and a record not handled makes the plan wake up later.
    #[test]
    fn every_record_is_handled_at_most_once_and_none_is_forgotten(
        items in proptest::collection::vec((0u8..6, 0u8..4, 0i64..10), 0..30),
        now_s in 0i64..20,
        limit in 0usize..4,
        silence_m in proptest::option::of(0u8..6),
    ) {
        let kinds = [MailKind::Firing, MailKind::Escalated, MailKind::Repeat, MailKind::Resolved];
        let mut ps: Vec<Pending> = Vec::new();
        for (m, k, q) in items {
            let p = pending(&format!("m-{m}"), kinds[k as usize], q);
            if !ps.iter().any(|o| o.record.name() == p.record.name()) {
                ps.push(p);
            }
        }
        let silences: Vec<Silence> = silence_m.map(|m| Silence {
            schema: dtwin_schema::SILENCE_SCHEMA.to_owned(),
            silence_id: "s".to_owned(),
            machines: vec![format!("m-{m}")],
            lines: Vec::new(),
            until: T0 + Duration::hours(1),
            reason: String::new(),
            created_by: String::new(),
        }).into_iter().collect();
        let mut log = SendLog::default();
        for i in 0..limit {
            log.record(&default_to(), T0 + Duration::seconds(i as i64));
        }
        let pol = Policy { rate_limit: 2, ..policy() };
        let now = T0 + Duration::seconds(now_s);
        let p = plan(&ps, now, &Routing::default(), &default_to(), &silences, &pol, &log);
        let mut seen: Vec<String> = Vec::new();
        for s in &p.steps {
            match s {
                Step::Silence { name, .. } => seen.push(name.clone()),
                Step::Send { names, .. } => seen.extend(names.iter().cloned()),
            }
        }
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), seen.len(), "a record twice in one plan");
        let sent_mails = p.steps.iter().filter(|s| matches!(s, Step::Send { .. })).count();
        prop_assert!(sent_mails + limit <= 2 || sent_mails == 0, "rate limit broken");
        if seen.len() < ps.len() {
            prop_assert!(p.wake_at.is_some_and(|w| w > now), "waiting records need a wake-up");
        }
    }
}
