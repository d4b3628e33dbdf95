//! Scale-out: N instances of a stateful service (feature, inference, alerter) share the fleet,
//! each machine handled by exactly one live instance, so per-machine state (windows, alert
//! lifecycles) never splits.
//!
//! How it works, on any MQTT broker:
//!
//! - every instance announces itself, retained, on `{prefix}/instances/{service}/{instance}`
//!   (`dtwin.status.v1`, `online`), and registers the same topic with `offline` as its MQTT
//!   last will, so a crashed or killed instance is announced offline by the broker itself;
//! - every instance subscribes to `{prefix}/instances/{service}/+` and keeps the set of live
//!   instances ([`Membership`]);
//! - a machine belongs to the live instance with the highest rendezvous score
//!   `hash(instance, machine)` ([`owner`]). When an instance leaves, only its machines move (to
//!   the survivors), and a machine's new owner starts its window cold, which the risk message
//!   says; when an instance joins, it takes over about 1/N of the machines.
//! - until an instance has seen its own announcement come back from the broker it owns nothing
//!   ([`Membership::ready`]): the broker sends retained announcements of the others before it,
//!   so a starting instance never claims machines another live instance holds.
//!
//! Every instance still receives the whole stream and drops what it does not own, before
//! decoding (the topic names the machine). That costs broker egress x N; past a few instances use
//! a broker that keeps a shared subscription sticky per topic (EMQX:
//! `broker.shared_subscription_strategy = hash_topic` with `$share/{group}/...`), where the
//! broker does the partitioning: deploy/README.md compares both.
//!
//! # Layout
//! - [`stable_hash`], [`owner`]: the pure assignment.
//! - [`Membership`]: live instances from presence messages; `owns(machine)`.
//! - [`Presence`] topics and payloads: [`instance_topic`], [`instances_filter`], [`announcement`].

use dtwin_schema::{
    to_json, MachineId, MachineIdError, MachineStatus, Presence as State, STATUS_SCHEMA,
};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// FNV-1a over the bytes, then a SplitMix64 finaliser so that close ids spread evenly.
/// Stable across versions, platforms and processes (never `std`'s randomised hasher).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `key` by rendezvous (highest random weight) hashing, or `None` when
/// there are no members. Ties (astronomically unlikely) go to the smaller name.
pub fn owner<'a>(key: &str, members: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    members
        .into_iter()
        .map(|m| (stable_hash(&[m.as_bytes(), key.as_bytes()]), m))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, m)| m)
}

/// What an instance knows of its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    me: String,
    members: BTreeSet<String>,
    ready: bool,
    solo: bool,
}

/// A change of membership that moves machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An instance came online.
    Joined(String),
    /// An instance went offline (stopped, or its last will).
    Left(String),
    /// Our own announcement came back: we now own our share.
    Ready,
}

impl Membership {
    /// A single instance that owns every machine (no scale-out configured).
    pub fn solo(me: impl Into<String>) -> Self {
        let me = me.into();
        Self {
            members: BTreeSet::from([me.clone()]),
            me,
            ready: true,
            solo: true,
        }
    }

    /// One of several instances: owns nothing until its own announcement comes back.
    pub fn clustered(me: impl Into<String>) -> Self {
        Self {
            me: me.into(),
            members: BTreeSet::new(),
            ready: false,
            solo: false,
        }
    }

    /// This instance's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Whether scale-out is on.
    pub fn is_clustered(&self) -> bool {
        !self.solo
    }

    /// Whether this instance has seen its own announcement and owns its share.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The live instances, sorted.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(String::as_str)
    }

    /// Applies a presence message for `instance`; returns what changed, if anything.
    pub fn apply(&mut self, instance: &str, state: State) -> Option<Change> {
        if self.solo {
            return None;
        }
        match state {
            State::Online => {
                let new = self.members.insert(instance.to_owned());
                if instance == self.me && !self.ready {
                    self.ready = true;
                    return Some(Change::Ready);
                }
                new.then(|| Change::Joined(instance.to_owned()))
            }
            State::Offline => {
                // Our own stale last will (from a previous run under the same name) does not
                // take us out: we are alive and re-announce ourselves.
                if instance == self.me {
                    return None;
                }
                self.members
                    .remove(instance)
                    .then(|| Change::Left(instance.to_owned()))
            }
        }
    }

    /// Whether this instance handles `machine` now.
    pub fn owns(&self, machine: &str) -> bool {
        if self.solo {
            return true;
        }
        self.ready && owner(machine, self.members()) == Some(self.me.as_str())
    }
}

/// `{prefix}/instances/{service}/{instance}`: where an instance announces itself.
pub fn instance_topic(prefix: &str, service: &str, instance: &str) -> String {
    format!("{prefix}/instances/{service}/{instance}")
}

/// `{prefix}/instances/{service}/+`: every instance of a service.
pub fn instances_filter(prefix: &str, service: &str) -> String {
    format!("{prefix}/instances/{service}/+")
}

/// If `topic` is an instance announcement of `service`, the instance's name.
pub fn parse_instance_topic<'t>(prefix: &str, service: &str, topic: &'t str) -> Option<&'t str> {
    let rest = topic
        .strip_prefix(prefix)?
        .strip_prefix("/instances/")?
        .strip_prefix(service)?
        .strip_prefix('/')?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// An instance name that cannot be used in topics and announcements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance name {name:?} is not a valid id: {source}")]
pub struct InstanceNameError {
    /// The name as given.
    pub name: String,
    /// Why it is not an id.
    pub source: MachineIdError,
}

/// The announcement payload (`dtwin.status.v1`).
///
/// # Errors
/// The instance name is not a valid id (`[A-Za-z0-9_.-]{1,64}`).
pub fn announcement(
    instance: &str,
    state: State,
    ts: OffsetDateTime,
) -> Result<Vec<u8>, InstanceNameError> {
    let id = MachineId::parse(instance).map_err(|source| InstanceNameError {
        name: instance.to_owned(),
        source,
    })?;
    Ok(to_json(&MachineStatus {
        schema: STATUS_SCHEMA.to_owned(),
        machine_id: id,
        ts,
        state,
        product_type: None,
    }))
}

/// Reads an announcement; `None` when it is not one.
pub fn read_announcement(payload: &[u8]) -> Option<State> {
    dtwin_schema::from_json::<MachineStatus>(payload)
        .ok()
        .map(|s| s.state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("machine-{i:05}")).collect()
    }

    #[test]
    fn hash_is_stable_across_versions() {
        // Pinned: changing the hash would move every machine on upgrade.
        assert_eq!(
            stable_hash(&[b"machine-001"]),
            stable_hash(&[b"machine-001"])
        );
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[b"machine-001"]), 0x391d_2ad1_5fba_ff63);
    }

    #[test]
    fn shares_are_even() {
        let members = ["feature-a", "feature-b", "feature-c"];
        let mut count = [0usize; 3];
        for m in ids(30_000) {
            let o = owner(&m, members).unwrap();
            count[members.iter().position(|x| *x == o).unwrap()] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn nobody_owns_without_members() {
        assert_eq!(owner("machine-1", std::iter::empty()), None);
    }

    #[test]
    fn an_instance_owns_nothing_until_it_sees_itself() {
        let mut m = Membership::clustered("feature-b");
        assert!(!m.owns("machine-1"));
        assert_eq!(
            m.apply("feature-a", State::Online),
            Some(Change::Joined("feature-a".into()))
        );
        assert!(!m.ready());
        assert_eq!(m.apply("feature-b", State::Online), Some(Change::Ready));
        let mine = ids(1000).iter().filter(|x| m.owns(x)).count();
        assert!((400..600).contains(&mine), "{mine}");
        // A survivor takes everything when its peer leaves.
        assert_eq!(
            m.apply("feature-a", State::Offline),
            Some(Change::Left("feature-a".into()))
        );
        assert!(ids(1000).iter().all(|x| m.owns(x)));
        // Our own stale will does not take us out.
        assert_eq!(m.apply("feature-b", State::Offline), None);
        assert!(m.owns("machine-1"));
    }

    #[test]
    fn solo_owns_everything() {
        let mut m = Membership::solo("feature");
        assert!(m.owns("x") && m.ready() && !m.is_clustered());
        assert_eq!(m.apply("other", State::Online), None);
        assert!(m.owns("x"));
    }

    #[test]
    fn topics_round_trip() {
        let t = instance_topic("dtwin/v1", "feature", "feature-a");
        assert_eq!(t, "dtwin/v1/instances/feature/feature-a");
        assert_eq!(
            parse_instance_topic("dtwin/v1", "feature", &t),
            Some("feature-a")
        );
        assert_eq!(parse_instance_topic("dtwin/v1", "inference", &t), None);
        assert_eq!(
            parse_instance_topic("dtwin/v1", "feature", "dtwin/v1/instances/feature/"),
            None
        );
        assert_eq!(
            instances_filter("dtwin/v1", "feature"),
            "dtwin/v1/instances/feature/+"
        );
        let p = announcement("feature-a", State::Offline, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(read_announcement(&p), Some(State::Offline));
        assert!(announcement("a/b", State::Online, OffsetDateTime::UNIX_EPOCH).is_err());
        assert_eq!(read_announcement(b"nope"), None);
    }

    proptest! {
        /// Exactly one member owns each machine, whatever the member set.
        #[test]
        fn exactly_one_owner(members in prop::collection::btree_set("[a-z]{1,8}", 1..8), machine in "[a-z0-9-]{1,20}") {
            let owners: Vec<bool> = members.iter().map(|me| {
                let mut m = Membership::clustered(me.clone());
                for x in &members { m.apply(x, State::Online); }
                m.owns(&machine)
            }).collect();
            prop_assert_eq!(owners.iter().filter(|o| **o).count(), 1);
        }

        /// When a member leaves, only its machines move; everyone else keeps theirs.
        #[test]
        fn leaving_moves_only_the_leavers_machines(
            members in prop::collection::btree_set("[a-z]{1,8}", 2..8),
            machines in prop::collection::vec("[a-z0-9-]{1,20}", 1..50),
            leaver in 0usize..8,
        ) {
            let all: Vec<&str> = members.iter().map(String::as_str).collect();
            let gone = all[leaver % all.len()];
            let rest: Vec<&str> = all.iter().copied().filter(|m| *m != gone).collect();
            for machine in &machines {
                let before = owner(machine, all.iter().copied()).unwrap();
                let after = owner(machine, rest.iter().copied()).unwrap();
                if before != gone {
                    prop_assert_eq!(before, after);
                }
            }
        }
    }
}

/// One instance's view of its service's cluster: the membership plus the topics and payloads
/// it needs. Solo (scale-out off) when built without a name.
#[derive(Debug, Clone)]
pub struct Node {
    membership: Membership,
    prefix: String,
    service: String,
}

impl Node {
    /// `instance: None` is a single instance that owns every machine.
    pub fn new(prefix: &str, service: &str, instance: Option<&str>) -> Self {
        Self {
            membership: match instance {
                Some(name) => Membership::clustered(name),
                None => Membership::solo(service),
            },
            prefix: prefix.to_owned(),
            service: service.to_owned(),
        }
    }

    /// The membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Whether this instance handles `machine` now.
    pub fn owns(&self, machine: &str) -> bool {
        self.membership.owns(machine)
    }

    /// The filter of the service's announcements, when clustered.
    pub fn subscription(&self) -> Option<String> {
        self.membership
            .is_clustered()
            .then(|| instances_filter(&self.prefix, &self.service))
    }

    /// (topic, payload) for the MQTT last will, when clustered.
    ///
    /// # Errors
    /// The instance name is not a valid id.
    pub fn last_will(&self) -> Result<Option<(String, Vec<u8>)>, InstanceNameError> {
        self.announce(State::Offline)
    }

    /// (topic, payload) to publish retained once connected, when clustered.
    ///
    /// # Errors
    /// The instance name is not a valid id.
    pub fn online(&self) -> Result<Option<(String, Vec<u8>)>, InstanceNameError> {
        self.announce(State::Online)
    }

    fn announce(&self, state: State) -> Result<Option<(String, Vec<u8>)>, InstanceNameError> {
        if !self.membership.is_clustered() {
            return Ok(None);
        }
        let me = self.membership.me();
        Ok(Some((
            instance_topic(&self.prefix, &self.service, me),
            announcement(me, state, OffsetDateTime::now_utc())?,
        )))
    }

    /// If `topic` is an announcement of this service, applies it and returns `Some(change)`;
    /// `None` for every other topic (a message for the service itself).
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Option<Option<Change>> {
        if !self.membership.is_clustered() {
            return None;
        }
        let instance = parse_instance_topic(&self.prefix, &self.service, topic)?;
        Some(read_announcement(payload).and_then(|s| self.membership.apply(instance, s)))
    }
}

#[cfg(test)]
mod node_tests {
    use super::*;

    #[test]
    fn node_announces_and_follows_its_peers() {
        let solo = Node::new("dtwin/v1", "feature", None);
        assert!(solo.owns("m") && solo.subscription().is_none());
        assert_eq!(solo.last_will().unwrap(), None);
        let mut n = Node::new("dtwin/v1", "feature", Some("feature-a"));
        assert_eq!(n.subscription().unwrap(), "dtwin/v1/instances/feature/+");
        let (topic, will) = n.last_will().unwrap().unwrap();
        assert_eq!(topic, "dtwin/v1/instances/feature/feature-a");
        assert_eq!(read_announcement(&will), Some(State::Offline));
        assert!(!n.owns("m"));
        let (t, online) = n.online().unwrap().unwrap();
        assert_eq!(n.handle(&t, &online), Some(Some(Change::Ready)));
        assert!(n.owns("m"));
        assert_eq!(n.handle("dtwin/v1/machines/m/telemetry", b"{}"), None);
        let b = announcement("feature-b", State::Online, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            n.handle("dtwin/v1/instances/feature/feature-b", &b),
            Some(Some(Change::Joined("feature-b".into())))
        );
        assert_eq!(
            n.handle("dtwin/v1/instances/feature/feature-c", b"junk"),
            Some(None)
        );
    }
}
