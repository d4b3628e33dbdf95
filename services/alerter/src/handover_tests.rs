use super::*;
use dtwin_schema::{Level, Presence};
use proptest::prelude::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn id(s: &str) -> MachineId {
    MachineId::parse(s).unwrap()
}

fn members(me: &str, all: &[&str]) -> Membership {
    let mut m = Membership::clustered(me);
    for x in all {
        m.apply(x, Presence::Online);
    }
    m
}

fn firing(machine: &str, secs: i64) -> Firing {
    let since = T0 + time::Duration::seconds(secs);
    Firing {
        alert_id: crate::lifecycle::alert_id(&id(machine), since),
        since,
        level: Level::Warning,
        last_notified: since,
        repeats: 0,
        healthy_run: 0,
        acknowledged: None,
    }
}

fn snapshot(machine: &str, secs: i64, firing: Option<Firing>) -> AlertSnapshot {
    AlertSnapshot {
        schema: ALERT_STATE_SCHEMA.to_owned(),
        machine_id: id(machine),
        ts: T0 + time::Duration::seconds(secs),
        firing,
    }
}

fn machines(n: usize) -> Vec<MachineId> {
    (0..n).map(|i| id(&format!("m-{i:03}"))).collect()
}

fn owner_of(m: &MachineId, all: &[&str]) -> String {
    dtwin_cluster::owner(m.as_str(), all.iter().copied())
        .unwrap()
        .to_owned()
}

#[test]
fn a_survivor_adopts_the_leavers_open_alerts_and_nothing_else() {
    let ms = machines(40);
    let mut h = Handover::new();
    for (i, m) in ms.iter().enumerate() {
        // Every third machine fired; the others resolved.
        let f = (i % 3 == 0).then(|| firing(m.as_str(), i as i64));
        h.received(&snapshot(m.as_str(), i as i64, f), false);
    }
    assert_eq!(h.len(), 40);
    let before = members("a", &["a", "b"]);
    let after = members("a", &["a"]);
    let mine: Vec<&MachineId> = ms
        .iter()
        .filter(|m| owner_of(m, &["a", "b"]) == "a")
        .collect();
    let r = h.reassign(mine.iter().copied(), &before, &after);
    assert!(r.forget.is_empty(), "a keeps its own machines");
    let gained: Vec<MachineId> = ms
        .iter()
        .filter(|m| owner_of(m, &["a", "b"]) == "b")
        .cloned()
        .collect();
    assert!(!gained.is_empty());
    let adopted: Vec<MachineId> = r.adopt.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(adopted, gained, "exactly b's machines move");
    for (m, f) in &r.adopt {
        assert_eq!(f.as_ref(), h.get(m).unwrap().1, "{m}: the published state");
    }
}

#[test]
fn a_joiner_takes_machines_away_and_a_starter_drops_what_it_does_not_own() {
    let ms = machines(30);
    let mut h = Handover::new();
    // b joins a: a forgets b's share and adopts nothing.
    let r = h.reassign(&ms, &members("a", &["a"]), &members("a", &["a", "b"]));
    assert!(r.adopt.is_empty());
    let expected: Vec<MachineId> = ms
        .iter()
        .filter(|m| owner_of(m, &["a", "b"]) == "b")
        .cloned()
        .collect();
    assert_eq!(r.forget, expected);
    // At start (not ready yet -> ready) the spool's machines owned by the peer are dropped,
    // and published states of machines it now owns are adopted.
    h.received(&snapshot("m-001", 5, Some(firing("m-001", 5))), false);
    let starting = Membership::clustered("a");
    let r = h.reassign(&ms, &starting, &members("a", &["a", "b"]));
    assert_eq!(r.forget, expected);
    let a_owns_m1 = owner_of(&id("m-001"), &["a", "b"]) == "a";
    assert_eq!(r.adopt.len(), usize::from(a_owns_m1));
}

#[test]
fn a_late_snapshot_of_the_previous_owner_is_adopted_once_and_echoes_are_not() {
    let mut h = Handover::new();
    let mine = snapshot("m-1", 10, Some(firing("m-1", 10)));
    h.produced(&mine);
    // Our own message coming back changes nothing.
    assert_eq!(h.received(&mine, true), None);
    // An older one (reordered) neither.
    assert_eq!(h.received(&snapshot("m-1", 5, None), true), None);
    assert_eq!(h.get(&id("m-1")).unwrap().0, mine.ts, "the newest is kept");
    // The previous owner resolved it after our last transition: adopt.
    let late = snapshot("m-1", 20, None);
    assert_eq!(h.received(&late, true), Some(None));
    assert_eq!(h.received(&late, true), None, "only once");
    // Not ours: recorded, not adopted.
    let other = snapshot("m-2", 30, Some(firing("m-2", 30)));
    assert_eq!(h.received(&other, false), None);
    assert_eq!(h.get(&id("m-2")).unwrap().1, other.firing.as_ref());
}

#[test]
fn decode_rejects_what_is_not_a_snapshot_of_the_topics_machine() {
    let s = snapshot("m-1", 0, Some(firing("m-1", 0)));
    let bytes = dtwin_schema::to_json(&s);
    assert_eq!(decode("m-1", &bytes).unwrap(), s);
    let e = decode("m-2", &bytes).unwrap_err();
    assert!(
        matches!(&e, AlertStateError::MachineMismatch { topic_id, .. } if topic_id == "m-2"),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not match"), "{e}");
    let mut other = s.clone();
    other.schema = "dtwin.alert.v1".into();
    let e = decode("m-1", &dtwin_schema::to_json(&other)).unwrap_err();
    assert!(matches!(&e, AlertStateError::Schema(found) if found == "dtwin.alert.v1"));
    assert!(e.to_string().contains("schema"), "{e}");
    assert!(matches!(
        decode("m-1", b"{"),
        Err(AlertStateError::NotJson(_))
    ));
    assert!(matches!(
        decode("m-1", b""),
        Err(AlertStateError::NotJson(_))
    ));
    let big = vec![b' '; MAX_STATE_BYTES + 1];
    let e = decode("m-1", &big).unwrap_err();
    assert!(matches!(e, AlertStateError::Oversize(n) if n == MAX_STATE_BYTES + 1));
    assert!(e.to_string().contains("bytes"), "{e}");
}

proptest! {
    /// When one instance of several leaves, the survivors between them adopt each of its
    /// machines that has a published state exactly once, and nothing else.
    #[test]
    fn every_leavers_machine_is_adopted_by_exactly_one_survivor(
        names in prop::collection::btree_set("[a-z]{1,6}", 2..6),
        n in 1usize..80,
        leaver in 0usize..6,
    ) {
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let gone = all[leaver % all.len()];
        let rest: Vec<&str> = all.iter().copied().filter(|x| *x != gone).collect();
        let ms = machines(n);
        let mut adopted: HashMap<MachineId, usize> = HashMap::new();
        for me in &rest {
            let mut h = Handover::new();
            for (i, m) in ms.iter().enumerate() {
                h.received(&snapshot(m.as_str(), i as i64, None), false);
            }
            let local: Vec<&MachineId> = ms.iter().filter(|m| owner_of(m, &all) == *me).collect();
            let r = h.reassign(local, &members(me, &all), &members(me, &rest));
            prop_assert!(r.forget.is_empty());
            for (m, _) in r.adopt {
                *adopted.entry(m).or_default() += 1;
            }
        }
        let expected: BTreeSet<MachineId> =
            ms.iter().filter(|m| owner_of(m, &all) == gone).cloned().collect();
        prop_assert_eq!(adopted.keys().cloned().collect::<BTreeSet<_>>(), expected);
        prop_assert!(adopted.values().all(|&c| c == 1));
    }
}
