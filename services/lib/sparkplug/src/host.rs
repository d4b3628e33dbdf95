//! The host application's state machine: per edge node the session of its last NBIRTH (its
//! `bdSeq`, the `seq` expected next, its metrics and its devices' births), fed one MQTT
//! message at a time by [`HostState::handle`], which returns what to do as [`Action`]s.
//!
//! The rules, in the order they are applied:
//! - Topics outside `spBv1.0`, and payloads that are not protobuf, are dead letters.
//!   NCMD, DCMD and other hosts' STATE are ignored.
//! - NBIRTH starts a session: it must carry `seq` and a `bdSeq` metric, at most
//!   [`HostConfig::max_birth_metrics`] metrics, each with a name, and unique names and
//!   aliases. The devices of the previous session must DBIRTH again: they keep their status
//!   until the node's first message that is not a DBIRTH, then those that did not are
//!   offline (so a rebirth does not flap statuses). An
//!   NBIRTH whose timestamp is not newer than the last accepted NBIRTH with the same
//!   `bdSeq` is a replay: dead letter, the session is untouched. (A rebirth keeps its
//!   `bdSeq` and a restarted node may reuse one, but their births are newer; births without
//!   a timestamp cannot be told apart and are accepted.)
//! - Every NDATA, DBIRTH, DDATA and DDEATH must carry the `seq` expected next (0-255,
//!   wrapping). On a gap the message is dropped, the node waits for a rebirth (everything
//!   until its next NBIRTH is dropped) and a rebirth is requested.
//! - Data for a node or device without a birth, or with an alias its birth does not know,
//!   requests a rebirth too. Requests are rate-limited to one per node per
//!   [`HostConfig::rebirth_interval_ms`], and a node whose NBIRTH was refused is not asked
//!   again until it sends another one (asking would only repeat the refused birth).
//! - A metric named in data but missing from the birth, a value of the wrong datatype, or a
//!   non-finite number is a dead letter; the message's other metrics still count.
//! - Numeric and Boolean metrics become readings (`f64`), grouped by timestamp and by
//!   `is_historical`; other datatypes (strings, bytes, data sets, templates) are skipped.
//! - NDEATH ends the session when its `bdSeq` matches it: the node's machines go offline.
//!   One with another `bdSeq` is stale (a late will of an older connection): dead letter.

use crate::proto::{decode_payload, DataType, Metric, MetricValue, Payload};
use crate::topic::{EdgeNodeId, MessageType, Topic};
use dtwin_schema::MachineId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Most metrics a birth may declare; a larger birth is refused (dead letter), so one edge
/// node cannot make the host hold unbounded alias tables.
pub const MAX_BIRTH_METRICS: usize = 10_000;

/// Least time between two rebirth requests to one edge node: a node that keeps failing (a
/// broken sequence counter) is asked at this pace, not once per message.
pub const REBIRTH_INTERVAL_MS: u64 = 5_000;

/// Most edge nodes tracked; messages from further nodes are dead letters, so topics made up
/// by a client cannot grow the host's memory without bound.
pub const MAX_NODES: usize = 100_000;

/// Most devices per edge node, for the same reason.
pub const MAX_DEVICES_PER_NODE: usize = 10_000;

/// The metric of NBIRTH and NDEATH that names the MQTT session.
pub const BD_SEQ_METRIC: &str = "bdSeq";

/// Name prefixes of control metrics: part of births, never readings or profile sensors.
const CONTROL_PREFIXES: [&str; 3] = ["Node Control/", "Device Control/", "Properties/"];

/// Limits of a [`HostState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Most metrics a birth may declare ([`MAX_BIRTH_METRICS`]).
    pub max_birth_metrics: usize,
    /// Least milliseconds between two rebirth requests to a node ([`REBIRTH_INTERVAL_MS`]).
    pub rebirth_interval_ms: u64,
    /// Most edge nodes tracked ([`MAX_NODES`]).
    pub max_nodes: usize,
    /// Most devices per edge node ([`MAX_DEVICES_PER_NODE`]).
    pub max_devices_per_node: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_birth_metrics: MAX_BIRTH_METRICS,
            rebirth_interval_ms: REBIRTH_INTERVAL_MS,
            max_nodes: MAX_NODES,
            max_devices_per_node: MAX_DEVICES_PER_NODE,
        }
    }
}

/// What the caller should do after a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Values of one machine at one time, to enter the feature path.
    Reading {
        /// The edge node's or device's machine id.
        machine: MachineId,
        /// Milliseconds since the Unix epoch: the metrics' timestamp, else the payload's,
        /// else the time of handling.
        ts: u64,
        /// The payload's `seq`.
        seq: u8,
        /// Metric name and value (Booleans as 0 or 1), in payload order.
        values: Vec<(String, f64)>,
        /// The metrics were flagged `is_historical`: late data, not a live reading.
        historical: bool,
    },
    /// The machine was born (set its retained status online). Online and Offline alternate
    /// per machine: each is sent only on a change.
    Online {
        /// The machine.
        machine: MachineId,
    },
    /// The machine died or its node's session ended (set its retained status offline).
    Offline {
        /// The machine.
        machine: MachineId,
    },
    /// Ask the edge node to publish its births again: publish
    /// [`rebirth_request`](crate::rebirth_request) on its
    /// [`ncmd_topic`](EdgeNodeId::ncmd_topic), and count it.
    Rebirth {
        /// The edge node.
        node: EdgeNodeId,
        /// Why.
        reason: RebirthReason,
    },
    /// A message, or part of one, that was not used.
    DeadLetter {
        /// Machine-readable reason.
        reason: DeadLetterReason,
        /// The topic and what exactly was wrong.
        detail: String,
    },
    /// A machine's birth certificate: its data metrics (control metrics and `bdSeq` left
    /// out) and their datatypes, to pick or draft its profile. Sent on every accepted birth.
    Birth {
        /// The machine.
        machine: MachineId,
        /// Metric names and datatypes, in birth order.
        metrics: Vec<(String, DataType)>,
    },
}

/// Why a rebirth is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebirthReason {
    /// A message's `seq` was not the one expected.
    SeqGap {
        /// The `seq` expected.
        expected: u8,
        /// The `seq` received.
        got: u8,
    },
    /// A data metric's alias is not in the birth.
    UnknownAlias(u64),
    /// Data from a node or device without a birth in the current session.
    NoBirth,
    /// A message arrived while the node was still waiting for a requested rebirth (the
    /// earlier request may have been lost).
    StillWaiting,
}

impl fmt::Display for RebirthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebirthReason::SeqGap { expected, got } => {
                write!(f, "seq gap: expected {expected}, got {got}")
            }
            RebirthReason::UnknownAlias(a) => write!(f, "unknown alias {a}"),
            RebirthReason::NoBirth => f.write_str("data before birth"),
            RebirthReason::StillWaiting => f.write_str("still waiting for a rebirth"),
        }
    }
}

/// Why a message (or one metric of it) became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The topic is not a Sparkplug B topic.
    BadTopic,
    /// The payload is not a Sparkplug B protobuf payload.
    NotProtobuf,
    /// A message that must carry `seq` has none, or one above 255.
    BadSeq,
    /// A birth without `bdSeq`, a metric without a name or datatype, duplicate names or
    /// aliases.
    BadBirth,
    /// A birth with more metrics than [`HostConfig::max_birth_metrics`].
    TooManyMetrics,
    /// An NBIRTH replaying an earlier birth: its timestamp is not newer than the last
    /// accepted NBIRTH with the same `bdSeq`.
    ReplayedBdSeq,
    /// An NDEATH or DDEATH that does not end the current session or a born device.
    StaleDeath,
    /// An NDEATH without `bdSeq`.
    BadDeath,
    /// Data from a node or device without a birth in the current session.
    NoBirth,
    /// A message whose `seq` was not the one expected (the node is asked to rebirth).
    SeqGap,
    /// A message dropped while waiting for the rebirth a gap or an unknown alias asked for.
    AwaitingRebirth,
    /// A data metric whose alias the birth does not know.
    UnknownAlias,
    /// A data metric named but missing from the birth, or with neither name nor alias.
    NotInBirth,
    /// A value whose type does not match the birth's datatype.
    WrongDatatype,
    /// A NaN or infinite number.
    NotFinite,
    /// More nodes than [`HostConfig::max_nodes`], or devices than
    /// [`HostConfig::max_devices_per_node`].
    TooManyNodes,
}

impl DeadLetterReason {
    /// The reason as a snake_case word, for dead-letter messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::BadTopic => "bad_topic",
            DeadLetterReason::NotProtobuf => "not_protobuf",
            DeadLetterReason::BadSeq => "bad_seq",
            DeadLetterReason::BadBirth => "bad_birth",
            DeadLetterReason::TooManyMetrics => "too_many_metrics",
            DeadLetterReason::ReplayedBdSeq => "replayed_bd_seq",
            DeadLetterReason::StaleDeath => "stale_death",
            DeadLetterReason::BadDeath => "bad_death",
            DeadLetterReason::NoBirth => "no_birth",
            DeadLetterReason::SeqGap => "seq_gap",
            DeadLetterReason::AwaitingRebirth => "awaiting_rebirth",
            DeadLetterReason::UnknownAlias => "unknown_alias",
            DeadLetterReason::NotInBirth => "not_in_birth",
            DeadLetterReason::WrongDatatype => "wrong_datatype",
            DeadLetterReason::NotFinite => "not_finite",
            DeadLetterReason::TooManyNodes => "too_many_nodes",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One birth certificate: metric definitions by name and by alias.
#[derive(Debug, Clone, Default)]
struct BirthCert {
    /// Name, datatype, in birth order.
    metrics: Vec<(String, DataType)>,
    by_name: HashMap<String, usize>,
    by_alias: HashMap<u64, usize>,
}

impl BirthCert {
    /// The data metrics (no control metrics, no `bdSeq`).
    fn data_metrics(&self) -> Vec<(String, DataType)> {
        self.metrics
            .iter()
            .filter(|(n, _)| !is_control(n))
            .cloned()
            .collect()
    }
}

fn is_control(name: &str) -> bool {
    name == BD_SEQ_METRIC || CONTROL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A live session: from an accepted NBIRTH to its NDEATH or the next NBIRTH.
#[derive(Debug, Clone)]
struct Session {
    bd_seq: u64,
    next_seq: u8,
    /// A gap or an unknown alias was seen: drop everything until the next NBIRTH.
    awaiting_rebirth: bool,
    node: BirthCert,
    /// The node itself is a machine (its birth has data metrics).
    node_is_machine: bool,
    devices: HashMap<String, BirthCert>,
    /// Devices born before this NBIRTH and not yet born again: they keep their status until
    /// the node's first message that is not a DBIRTH, so a rebirth does not flap them.
    pending: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    session: Option<Session>,
    /// Per `bdSeq` (0-255), the timestamp of the last accepted NBIRTH with it.
    birth_ts: HashMap<u8, u64>,
    last_rebirth_ms: Option<u64>,
    /// Its last NBIRTH was refused: asking again would only repeat it.
    birth_refused: bool,
}

/// The host application's view of every edge node. See the [module](self) for the rules.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    config: HostConfig,
    nodes: HashMap<EdgeNodeId, Node>,
}

/// Actions being collected for one message, with its topic for details.
struct Out<'a> {
    topic: &'a str,
    actions: Vec<Action>,
}

impl Out<'_> {
    fn dead(&mut self, reason: DeadLetterReason, detail: impl fmt::Display) {
        self.actions.push(Action::DeadLetter {
            reason,
            detail: format!("{}: {detail}", self.topic),
        });
    }
}

impl HostState {
    /// An empty host state with these limits.
    pub fn new(config: HostConfig) -> Self {
        Self {
            config,
            nodes: HashMap::new(),
        }
    }

    /// How many edge nodes are tracked.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the node has a live session (an NBIRTH not yet ended by its NDEATH).
    pub fn is_node_born(&self, node: &EdgeNodeId) -> bool {
        self.nodes.get(node).is_some_and(|n| n.session.is_some())
    }

    /// Whether the node's session waits for a rebirth (after a `seq` gap or an unknown
    /// alias), dropping its messages until then.
    pub fn is_awaiting_rebirth(&self, node: &EdgeNodeId) -> bool {
        self.nodes
            .get(node)
            .and_then(|n| n.session.as_ref())
            .is_some_and(|s| s.awaiting_rebirth)
    }

    /// The current birth of a node (`device` `None`) or device, all metrics with their
    /// datatypes in birth order, if it has one.
    pub fn birth(
        &self,
        node: &EdgeNodeId,
        device: Option<&str>,
    ) -> Option<Vec<(String, DataType)>> {
        let session = self.nodes.get(node)?.session.as_ref()?;
        let cert = match device {
            None => &session.node,
            Some(d) => session.devices.get(d)?,
        };
        Some(cert.metrics.clone())
    }

    /// Handles one message received on `topic` at `now_ms` (milliseconds since the Unix
    /// epoch: the fallback timestamp of readings and the clock of the rebirth rate limit).
    pub fn handle(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> Vec<Action> {
        let mut out = Out {
            topic,
            actions: Vec::new(),
        };
        let (kind, node, device) = match Topic::parse(topic) {
            Ok(Topic::Edge { kind, node, device }) => (kind, node, device),
            Ok(Topic::State { .. }) => return out.actions,
            Err(e) => {
                out.dead(DeadLetterReason::BadTopic, e);
                return out.actions;
            }
        };
        if matches!(kind, MessageType::NCmd | MessageType::DCmd) {
            return out.actions;
        }
        let payload = match decode_payload(payload) {
            Ok(p) => p,
            Err(e) => {
                out.dead(DeadLetterReason::NotProtobuf, e);
                return out.actions;
            }
        };
        if !self.nodes.contains_key(&node) && self.nodes.len() >= self.config.max_nodes {
            out.dead(
                DeadLetterReason::TooManyNodes,
                format_args!("already tracking {} edge nodes", self.nodes.len()),
            );
            return out.actions;
        }
        let config = self.config;
        let entry = self.nodes.entry(node.clone()).or_default();
        let mut ctx = Ctx {
            config,
            node: &node,
            state: entry,
            out: &mut out,
            now_ms,
        };
        match (kind, device) {
            (MessageType::NBirth, _) => ctx.nbirth(&payload),
            (MessageType::NDeath, _) => ctx.ndeath(&payload),
            (MessageType::NData, _) => ctx.data(None, &payload),
            (MessageType::DBirth, Some(d)) => ctx.dbirth(&d, &payload),
            (MessageType::DData, Some(d)) => ctx.data(Some(&d), &payload),
            (MessageType::DDeath, Some(d)) => ctx.ddeath(&d, &payload),
            // Topic::parse gives D* types a device and N* types none; commands returned above.
            _ => {}
        }
        out.actions
    }
}

/// One message being applied to one node.
struct Ctx<'a, 'b> {
    config: HostConfig,
    node: &'a EdgeNodeId,
    state: &'a mut Node,
    out: &'a mut Out<'b>,
    now_ms: u64,
}

impl Ctx<'_, '_> {
    fn request_rebirth(&mut self, reason: RebirthReason) {
        if self.state.birth_refused {
            return;
        }
        let due = self
            .state
            .last_rebirth_ms
            .is_none_or(|t| self.now_ms.saturating_sub(t) >= self.config.rebirth_interval_ms);
        if due {
            self.state.last_rebirth_ms = Some(self.now_ms);
            self.out.actions.push(Action::Rebirth {
                node: self.node.clone(),
                reason,
            });
        }
    }

    /// Ends the current session, if any. With `carry`, its devices are returned to wait for
    /// their DBIRTH in the next session; without, they go offline. Its node machine goes
    /// offline unless `keep_node_machine`. Returns the carried devices and whether the node
    /// machine was online.
    fn end_session(&mut self, keep_node_machine: bool, carry: bool) -> (BTreeSet<String>, bool) {
        let Some(session) = self.state.session.take() else {
            return (BTreeSet::new(), false);
        };
        let mut devices = session.pending;
        devices.extend(session.devices.into_keys());
        if !carry {
            for d in std::mem::take(&mut devices) {
                self.out.actions.push(Action::Offline {
                    machine: self.node.machine_id(Some(&d)),
                });
            }
        }
        if session.node_is_machine && !keep_node_machine {
            self.out.actions.push(Action::Offline {
                machine: self.node.machine_id(None),
            });
        }
        (devices, session.node_is_machine)
    }

    /// The DBIRTHs after an NBIRTH are over: devices that did not send theirs go offline.
    fn flush_pending(&mut self) {
        let Some(session) = self.state.session.as_mut() else {
            return;
        };
        for d in std::mem::take(&mut session.pending) {
            self.out.actions.push(Action::Offline {
                machine: self.node.machine_id(Some(&d)),
            });
        }
    }

    fn nbirth(&mut self, payload: &Payload) {
        let Some(seq) = seq_of(payload) else {
            self.out
                .dead(DeadLetterReason::BadSeq, "NBIRTH without a seq in 0-255");
            return;
        };
        let Some(bd_seq) = bd_seq_of(payload) else {
            self.refuse_birth(DeadLetterReason::BadBirth, "NBIRTH without a bdSeq metric");
            return;
        };
        // A restarted node may legitimately reuse a bdSeq (not every client persists it), and
        // a rebirth keeps it, but such a birth is newer; an old birth sent again is not.
        let replay = match (payload.timestamp, self.state.birth_ts.get(&bd_key(bd_seq))) {
            (Some(ts), Some(seen)) => ts <= *seen,
            _ => false,
        };
        if replay {
            self.out.dead(
                DeadLetterReason::ReplayedBdSeq,
                format_args!(
                    "NBIRTH with bdSeq {bd_seq} of an earlier birth and no newer timestamp"
                ),
            );
            return;
        }
        let cert = match build_birth(&payload.metrics, self.config.max_birth_metrics) {
            Ok(c) => c,
            Err((reason, detail)) => {
                self.refuse_birth(reason, detail);
                return;
            }
        };
        let data = cert.data_metrics();
        let node_is_machine = !data.is_empty();
        let (pending, node_was_online) = self.end_session(node_is_machine, true);
        self.state.birth_refused = false;
        if let Some(ts) = payload.timestamp {
            self.state.birth_ts.insert(bd_key(bd_seq), ts);
        }
        let machine = self.node.machine_id(None);
        if node_is_machine {
            self.out.actions.push(Action::Birth {
                machine: machine.clone(),
                metrics: data,
            });
            if !node_was_online {
                self.out.actions.push(Action::Online {
                    machine: machine.clone(),
                });
            }
        }
        push_readings(
            self.out,
            &machine,
            &cert,
            payload,
            seq,
            self.now_ms,
            node_is_machine,
        );
        self.state.session = Some(Session {
            bd_seq,
            next_seq: seq.wrapping_add(1),
            awaiting_rebirth: false,
            node: cert,
            node_is_machine,
            devices: HashMap::new(),
            pending,
        });
    }

    fn refuse_birth(&mut self, reason: DeadLetterReason, detail: impl fmt::Display) {
        self.out.dead(reason, detail);
        self.end_session(false, false);
        self.state.birth_refused = true;
    }

    fn ndeath(&mut self, payload: &Payload) {
        let Some(bd_seq) = bd_seq_of(payload) else {
            self.out
                .dead(DeadLetterReason::BadDeath, "NDEATH without a bdSeq metric");
            return;
        };
        match &self.state.session {
            Some(s) if s.bd_seq == bd_seq => {
                self.end_session(false, false);
            }
            Some(s) => self.out.dead(
                DeadLetterReason::StaleDeath,
                format_args!(
                    "NDEATH bdSeq {bd_seq} does not match the session's {}",
                    s.bd_seq
                ),
            ),
            None => self.out.dead(
                DeadLetterReason::StaleDeath,
                format_args!("NDEATH bdSeq {bd_seq} for a node without a session"),
            ),
        }
    }

    /// Checks the session and the `seq` of an NDATA, DBIRTH, DDATA or DDEATH. `Some` when the
    /// message may be applied.
    fn check_seq(&mut self, payload: &Payload) -> Option<u8> {
        let Some(session) = self.state.session.as_mut() else {
            self.out.dead(
                DeadLetterReason::NoBirth,
                "message from an edge node without a live NBIRTH",
            );
            self.request_rebirth(RebirthReason::NoBirth);
            return None;
        };
        if session.awaiting_rebirth {
            self.out.dead(
                DeadLetterReason::AwaitingRebirth,
                "dropped until the edge node's next NBIRTH",
            );
            self.request_rebirth(RebirthReason::StillWaiting);
            return None;
        }
        let Some(seq) = seq_of(payload) else {
            self.out
                .dead(DeadLetterReason::BadSeq, "message without a seq in 0-255");
            return None;
        };
        if seq != session.next_seq {
            let expected = session.next_seq;
            session.awaiting_rebirth = true;
            self.out.dead(
                DeadLetterReason::SeqGap,
                format_args!("seq {seq}, expected {expected}"),
            );
            self.request_rebirth(RebirthReason::SeqGap { expected, got: seq });
            return None;
        }
        session.next_seq = seq.wrapping_add(1);
        Some(seq)
    }

    fn dbirth(&mut self, device: &str, payload: &Payload) {
        let Some(seq) = self.check_seq(payload) else {
            return;
        };
        let machine = self.node.machine_id(Some(device));
        let max_devices = self.config.max_devices_per_node;
        let built = build_birth(&payload.metrics, self.config.max_birth_metrics);
        let Some(session) = self.state.session.as_mut() else {
            return;
        };
        let cert = match built {
            Ok(c) => c,
            Err((reason, detail)) => {
                self.out.dead(reason, detail);
                let was_online =
                    session.devices.remove(device).is_some() | session.pending.remove(device);
                if was_online {
                    self.out.actions.push(Action::Offline { machine });
                }
                return;
            }
        };
        let was_born = session.devices.contains_key(device);
        if !was_born && session.devices.len() >= max_devices {
            // A pending device stays pending: it goes offline with the others.
            self.out.dead(
                DeadLetterReason::TooManyNodes,
                format_args!("edge node already has {max_devices} devices"),
            );
            return;
        }
        self.out.actions.push(Action::Birth {
            machine: machine.clone(),
            metrics: cert.data_metrics(),
        });
        let was_online = was_born | session.pending.remove(device);
        if !was_online {
            self.out.actions.push(Action::Online {
                machine: machine.clone(),
            });
        }
        push_readings(self.out, &machine, &cert, payload, seq, self.now_ms, true);
        session.devices.insert(device.to_owned(), cert);
    }

    fn ddeath(&mut self, device: &str, payload: &Payload) {
        if self.check_seq(payload).is_none() {
            return;
        }
        self.flush_pending();
        let Some(session) = self.state.session.as_mut() else {
            return;
        };
        if session.devices.remove(device).is_some() {
            self.out.actions.push(Action::Offline {
                machine: self.node.machine_id(Some(device)),
            });
        } else {
            self.out
                .dead(DeadLetterReason::StaleDeath, "DDEATH of a device not born");
        }
    }

    fn data(&mut self, device: Option<&str>, payload: &Payload) {
        let Some(seq) = self.check_seq(payload) else {
            return;
        };
        self.flush_pending();
        let Some(session) = self.state.session.as_ref() else {
            return;
        };
        let cert = match device {
            None => Some(&session.node),
            Some(d) => session.devices.get(d),
        };
        let Some(cert) = cert else {
            self.out.dead(
                DeadLetterReason::NoBirth,
                "DDATA from a device without a DBIRTH",
            );
            self.request_rebirth(RebirthReason::NoBirth);
            return;
        };
        let unknown = payload
            .metrics
            .iter()
            .filter(|m| m.name.is_none())
            .filter_map(|m| m.alias)
            .find(|a| !cert.by_alias.contains_key(a));
        if let Some(alias) = unknown {
            if let Some(s) = self.state.session.as_mut() {
                s.awaiting_rebirth = true;
            }
            self.out.dead(
                DeadLetterReason::UnknownAlias,
                format_args!("alias {alias} is not in the birth"),
            );
            self.request_rebirth(RebirthReason::UnknownAlias(alias));
            return;
        }
        let machine = self.node.machine_id(device);
        let is_machine = device.is_some() || session.node_is_machine;
        push_readings(
            self.out,
            &machine,
            cert,
            payload,
            seq,
            self.now_ms,
            is_machine,
        );
    }
}

/// The key of a `bdSeq` (0-255 by the spec; larger values share keys rather than grow the map).
fn bd_key(bd_seq: u64) -> u8 {
    (bd_seq % 256) as u8
}

/// `seq` when present and in 0-255.
fn seq_of(payload: &Payload) -> Option<u8> {
    payload.seq.and_then(|s| u8::try_from(s).ok())
}

/// The `bdSeq` metric's value (Int64 by the spec; a UInt in `int_value` is accepted too).
fn bd_seq_of(payload: &Payload) -> Option<u64> {
    payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(BD_SEQ_METRIC))
        .and_then(|m| match m.value {
            Some(MetricValue::LongValue(v)) => Some(v),
            Some(MetricValue::IntValue(v)) => Some(u64::from(v)),
            _ => None,
        })
}

/// A birth certificate from a birth's metrics, or why it is refused.
fn build_birth(metrics: &[Metric], max: usize) -> Result<BirthCert, (DeadLetterReason, String)> {
    if metrics.len() > max {
        return Err((
            DeadLetterReason::TooManyMetrics,
            format!(
                "birth declares {} metrics; at most {max} are accepted",
                metrics.len()
            ),
        ));
    }
    let mut cert = BirthCert::default();
    for (i, m) in metrics.iter().enumerate() {
        let Some(name) = m.name.as_deref() else {
            return Err((
                DeadLetterReason::BadBirth,
                format!("birth metric #{i} has no name"),
            ));
        };
        let Some(datatype) = m.datatype else {
            return Err((
                DeadLetterReason::BadBirth,
                format!("birth metric {name:?} has no datatype"),
            ));
        };
        // A datatype number from a later proto is kept as Unknown: not a reading, not fatal.
        let datatype = DataType::from_u32(datatype).unwrap_or(DataType::Unknown);
        if cert.by_name.insert(name.to_owned(), i).is_some() {
            return Err((
                DeadLetterReason::BadBirth,
                format!("birth declares metric {name:?} twice"),
            ));
        }
        if let Some(alias) = m.alias {
            if cert.by_alias.insert(alias, i).is_some() {
                return Err((
                    DeadLetterReason::BadBirth,
                    format!("birth gives alias {alias} to two metrics"),
                ));
            }
        }
        cert.metrics.push((name.to_owned(), datatype));
    }
    Ok(cert)
}

/// The numeric value of a metric of datatype `t`, `Ok(None)` for datatypes that are not
/// readings, `Err` when the value does not fit the datatype.
///
/// Signed integers narrower than 64 bits come two ways: Tahu's Java client sign-extends them
/// into `int_value` (Int8 -1 is `0xFFFF_FFFF`), its Python client adds 2^n to negative
/// values (Int8 -1 is 255); both are read, and a value that fits neither (Int8 300, UInt8
/// 256) is a wrong datatype. Integers up to 32
/// bits are taken from `long_value` too: Tahu's Java client writes UInt32 there (the spec
/// says `int_value`).
fn numeric(t: DataType, v: &MetricValue) -> Result<Option<f64>, ()> {
    use MetricValue as V;
    let narrow = match v {
        V::IntValue(i) => Some(u64::from(*i)),
        V::LongValue(l) => Some(*l),
        _ => None,
    };
    let x = match (t, v, narrow) {
        (DataType::Int8, _, Some(n)) => signed(n, 8)?,
        (DataType::Int16, _, Some(n)) => signed(n, 16)?,
        (DataType::Int32, _, Some(n)) => signed(n, 32)?,
        (DataType::UInt8, _, Some(n)) => unsigned(n, 8)?,
        (DataType::UInt16, _, Some(n)) => unsigned(n, 16)?,
        (DataType::UInt32, _, Some(n)) => unsigned(n, 32)?,
        (DataType::Int64, V::LongValue(l), _) => *l as i64 as f64,
        (DataType::UInt64, V::LongValue(l), _) => *l as f64,
        (DataType::Float, V::FloatValue(f), _) => f64::from(*f),
        (DataType::Double, V::DoubleValue(d), _) => *d,
        (DataType::Boolean, V::BooleanValue(b), _) => f64::from(u8::from(*b)),
        (t, _, _) if t.is_numeric() => return Err(()),
        _ => return Ok(None),
    };
    Ok(Some(x))
}

/// A signed `bits`-bit integer carried as `n`: as is (0..2^(bits-1)), plus 2^bits when
/// negative, or sign-extended to 32 or 64 bits. Anything else does not fit.
fn signed(n: u64, bits: u32) -> Result<f64, ()> {
    let shift = 64 - bits;
    let low = n & (u64::MAX >> shift);
    let value = ((low << shift) as i64) >> shift;
    let fits = n == low || n == u64::from(value as i32 as u32) || n == value as u64;
    if fits {
        Ok(value as f64)
    } else {
        Err(())
    }
}

/// An unsigned `bits`-bit integer carried as `n`.
fn unsigned(n: u64, bits: u32) -> Result<f64, ()> {
    if n >> bits == 0 {
        Ok(n as f64)
    } else {
        Err(())
    }
}

/// Turns a message's metrics into readings (when `emit`), dead-lettering the metrics that do
/// not fit the birth. Metrics without a value, null ones and non-numeric ones are skipped.
fn push_readings(
    out: &mut Out<'_>,
    machine: &MachineId,
    cert: &BirthCert,
    payload: &Payload,
    seq: u8,
    now_ms: u64,
    emit: bool,
) {
    let mut groups: BTreeMap<(bool, u64), Vec<(String, f64)>> = BTreeMap::new();
    for m in &payload.metrics {
        let index = match (m.name.as_deref(), m.alias) {
            (Some(name), _) => match cert.by_name.get(name) {
                Some(i) => *i,
                None => {
                    out.dead(
                        DeadLetterReason::NotInBirth,
                        format_args!("metric {name:?} is not in the birth"),
                    );
                    continue;
                }
            },
            (None, Some(alias)) => match cert.by_alias.get(&alias) {
                Some(i) => *i,
                // Checked before for data; births name every metric.
                None => continue,
            },
            (None, None) => {
                out.dead(
                    DeadLetterReason::NotInBirth,
                    "metric with neither name nor alias",
                );
                continue;
            }
        };
        let Some((name, datatype)) = cert.metrics.get(index) else {
            continue;
        };
        if is_control(name) {
            continue;
        }
        if let Some(t) = m.datatype {
            if t != datatype.as_u32() {
                out.dead(
                    DeadLetterReason::WrongDatatype,
                    format_args!("metric {name:?} is {datatype} in the birth, datatype {t} here"),
                );
                continue;
            }
        }
        let Some(value) = m.value.as_ref() else {
            continue;
        };
        if m.is_null == Some(true) {
            continue;
        }
        let x = match numeric(*datatype, value) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(()) => {
                out.dead(
                    DeadLetterReason::WrongDatatype,
                    format_args!(
                        "metric {name:?} is {datatype} but carries {}",
                        value_kind(value)
                    ),
                );
                continue;
            }
        };
        if !x.is_finite() {
            out.dead(
                DeadLetterReason::NotFinite,
                format_args!("metric {name:?} is {x}"),
            );
            continue;
        }
        let ts = m.timestamp.or(payload.timestamp).unwrap_or(now_ms);
        let historical = m.is_historical == Some(true);
        groups
            .entry((!historical, ts))
            .or_default()
            .push((name.clone(), x));
    }
    if !emit {
        return;
    }
    // Historical groups first (the key's `!historical` is false for them), each kind in
    // timestamp order.
    for ((live, ts), values) in groups {
        out.actions.push(Action::Reading {
            machine: machine.clone(),
            ts,
            seq,
            values,
            historical: !live,
        });
    }
}

fn value_kind(v: &MetricValue) -> &'static str {
    match v {
        MetricValue::IntValue(_) => "int_value",
        MetricValue::LongValue(_) => "long_value",
        MetricValue::FloatValue(_) => "float_value",
        MetricValue::DoubleValue(_) => "double_value",
        MetricValue::BooleanValue(_) => "boolean_value",
        MetricValue::StringValue(_) => "string_value",
        MetricValue::BytesValue(_) => "bytes_value",
    }
}
