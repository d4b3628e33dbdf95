use super::*;
use crate::email::MailKind;
use dtwin_schema::{AlertEventKind, Level, ALERT_SCHEMA};
use std::collections::BTreeMap;
use time::macros::datetime;
use time::Duration;

pub(crate) fn record(machine: &str, kind: MailKind, secs: i64) -> Record {
    let machine_id = MachineId::parse(machine).expect("valid id");
    let since = datetime!(2026-11-22 10:00:00 UTC);
    let ts = since + Duration::seconds(secs);
    let alert_id = crate::lifecycle::alert_id(&machine_id, since);
    let tag = match kind {
        MailKind::Firing => "firing".to_owned(),
        MailKind::Escalated => "escalated".to_owned(),
        MailKind::Repeat => format!("repeat-{secs}"),
        MailKind::Resolved => "resolved".to_owned(),
        MailKind::Acknowledged => "acknowledged".to_owned(),
        MailKind::Cleared => "cleared".to_owned(),
    };
    let firing = (kind != MailKind::Resolved && kind != MailKind::Cleared).then(|| Firing {
        alert_id: alert_id.clone(),
        since,
        level: Level::Critical,
        last_notified: ts,
        repeats: 0,
        healthy_run: 0,
        acknowledged: None,
    });
    Record {
        mail: AlertMail {
            machine_id: machine_id.clone(),
            alert_id: alert_id.clone(),
            tag,
            kind,
            level: Level::Critical,
            probability: 0.9,
            ts,
            actions: Vec::new(),
            factors: Vec::new(),
            latest: BTreeMap::new(),
            profile: None,
            dashboard_url: None,
            cause: crate::lifecycle::Cause::Failure,
            supersedes: None,
            insights: Default::default(),
            acted: None,
        },
        event: AlertEvent {
            schema: ALERT_SCHEMA.to_owned(),
            machine_id,
            ts,
            alert_id,
            event: match kind {
                MailKind::Firing => AlertEventKind::Firing,
                MailKind::Resolved => AlertEventKind::Resolved,
                _ => AlertEventKind::Updated,
            },
            level: Level::Critical,
            probability: 0.9,
            actions: Vec::new(),
            detail: None,
            cause: None,
            by: None,
            comment: None,
            channel: None,
        },
        firing,
    }
}

#[test]
fn a_record_is_queued_once_and_leaves_only_when_finished() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Spool::open(dir.path().join("spool")).expect("opens");
    let r = record("m-1", MailKind::Firing, 0);
    assert!(spool.put(&r).expect("queues"));
    assert!(
        spool.put(&r).expect("queues again"),
        "rewrites the same file"
    );
    let (pending, bad) = spool.pending().expect("lists");
    assert!(bad.is_empty());
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].record, r, "round-trips through JSON");
    assert!(!pending[0].maybe_sent);

    spool.mark_sending(&r.name()).expect("marks");
    assert!(spool.pending().expect("lists").0[0].maybe_sent);
    spool.finish(&r.name(), Done::Sent).expect("finishes");
    assert!(spool.pending().expect("lists").0.is_empty());
    assert_eq!(spool.counts().expect("counts"), [0, 1, 0, 0]);
    assert!(
        !spool.put(&r).expect("answers"),
        "a redelivered verdict does not queue a delivered mail again"
    );
    assert!(spool.pending().expect("lists").0.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(spool.root().join("pending"))
        .expect("reads")
        .collect();
    assert!(leftovers.is_empty(), "no marker or temp file left");
}

#[test]
fn firing_states_come_from_each_machines_newest_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Spool::open(dir.path()).expect("opens");
    // m-1 fired and resolved; m-2 fired and escalated; m-3 fired (still pending).
    for r in [
        record("m-1", MailKind::Firing, 0),
        record("m-1", MailKind::Resolved, 30),
        record("m-2", MailKind::Firing, 0),
        record("m-2", MailKind::Escalated, 10),
    ] {
        spool.put(&r).expect("queues");
        spool.finish(&r.name(), Done::Sent).expect("finishes");
    }
    spool
        .put(&record("m-3", MailKind::Firing, 5))
        .expect("queues");
    let firing = spool.firing_states().expect("reads");
    let machines: Vec<&str> = firing.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(machines, ["m-2", "m-3"]);
    assert_eq!(
        firing[0].1.last_notified,
        datetime!(2026-11-22 10:00:10 UTC),
        "the escalation's state, not the firing's"
    );
}

#[test]
fn a_spool_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = Spool::open(dir.path()).expect("opens");
    let clone = first.clone();
    let err = Spool::open_waiting(dir.path().to_path_buf(), std::time::Duration::ZERO)
        .expect_err("a second alerter is refused");
    assert!(matches!(err, SpoolError::InUse(_)), "{err}");
    assert!(err.to_string().contains("its own"), "{err}");
    drop(first);
    assert!(
        Spool::open_waiting(dir.path().to_path_buf(), std::time::Duration::ZERO).is_err(),
        "a clone still holds it"
    );
    drop(clone);
    Spool::open_waiting(dir.path().to_path_buf(), std::time::Duration::ZERO)
        .expect("free once every clone is gone");
}

#[test]
fn bad_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Spool::open(dir.path()).expect("opens");
    std::fs::write(dir.path().join("pending/junk.json"), b"{not json").expect("writes");
    spool
        .put(&record("m-1", MailKind::Firing, 0))
        .expect("queues");
    let (pending, bad) = spool.pending().expect("lists");
    assert_eq!(pending.len(), 1);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].0.ends_with("junk.json"));
}

#[test]
fn prune_keeps_the_memory_of_firing_alerts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Spool::open(dir.path()).expect("opens");
    for r in [
        record("m-1", MailKind::Firing, 0),
        record("m-1", MailKind::Resolved, 30),
        record("m-2", MailKind::Firing, 0),
        record("m-2", MailKind::Repeat, 10),
    ] {
        spool.put(&r).expect("queues");
        spool.finish(&r.name(), Done::Sent).expect("finishes");
    }
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    assert_eq!(spool.prune(later).expect("prunes"), 3);
    let firing = spool.firing_states().expect("reads");
    assert_eq!(firing.len(), 1, "m-2 still firing after the prune");
    assert_eq!(firing[0].0.as_str(), "m-2");
}
