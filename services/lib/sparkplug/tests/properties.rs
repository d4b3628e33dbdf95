//! Property tests: the decoder on arbitrary bytes, encode/decode round trips, and the host
//! state machine under any sequence of births, data, gaps, deaths, reconnects and replays.

use dtwin_schema::MachineId;
use dtwin_sparkplug::{
    by_alias, decode_payload, encode_payload, Action, DataType, DeadLetterReason, EdgeNode,
    EdgeNodeId, HostConfig, HostState, Metric, MetricValue, Payload, RebirthReason,
};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const T0: u64 = 1_700_000_000_000;
const NODES: [&str; 2] = ["n0", "n1"];
const DEVICES: [&str; 2] = ["d0", "d1"];

fn value() -> impl Strategy<Value = MetricValue> {
    prop_oneof![
        any::<u32>().prop_map(MetricValue::IntValue),
        any::<u64>().prop_map(MetricValue::LongValue),
        (-1e6f32..1e6).prop_map(MetricValue::FloatValue),
        (-1e12f64..1e12).prop_map(MetricValue::DoubleValue),
        any::<bool>().prop_map(MetricValue::BooleanValue),
        ".{0,8}".prop_map(MetricValue::StringValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(MetricValue::BytesValue),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        proptest::option::of(".{0,12}"),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(0u32..40),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(value()),
    )
        .prop_map(
            |(name, alias, timestamp, datatype, is_historical, is_transient, is_null, value)| {
                Metric {
                    name,
                    alias,
                    timestamp,
                    datatype,
                    is_historical,
                    is_transient,
                    is_null,
                    value,
                }
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(metric(), 0..6),
        proptest::option::of(any::<u64>()),
        proptest::option::of(".{0,8}"),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
    )
        .prop_map(|(timestamp, metrics, seq, uuid, body)| Payload {
            timestamp,
            metrics,
            seq,
            uuid,
            body,
        })
}

/// What an edge node (or someone pretending) does next.
#[derive(Debug, Clone)]
enum Op {
    /// NBIRTH on the current connection (a rebirth, or a birth after a death).
    NBirth(usize),
    /// A new connection: bdSeq + 1 and NBIRTH, without an NDEATH first.
    Reconnect(usize),
    /// DBIRTH of a device, with the metrics picked by the mask.
    DBirth(usize, usize, u8),
    /// NDATA by alias.
    NData(usize, f64),
    /// DDATA by alias and one by name.
    DData(usize, usize, f64),
    /// `seq` skips ahead, then a DDATA.
    Gap(usize, usize, u8),
    /// DDATA with an alias no birth has.
    UnknownAlias(usize, usize),
    /// The current connection's NDEATH.
    NDeath(usize),
    /// The NDEATH of an earlier connection.
    StaleDeath(usize),
    /// An NBIRTH sent earlier, again.
    Replay(usize),
    /// DDEATH.
    DDeath(usize, usize),
    /// Anything on a node's DDATA topic.
    Garbage(usize, Vec<u8>),
    /// Time passes.
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NODES.len();
    let d = 0..DEVICES.len();
    prop_oneof![
        2 => n.clone().prop_map(Op::NBirth),
        1 => n.clone().prop_map(Op::Reconnect),
        3 => (n.clone(), d.clone(), any::<u8>()).prop_map(|(n, d, m)| Op::DBirth(n, d, m)),
        2 => (n.clone(), -1e3f64..1e3).prop_map(|(n, v)| Op::NData(n, v)),
        6 => (n.clone(), d.clone(), -1e3f64..1e3).prop_map(|(n, d, v)| Op::DData(n, d, v)),
        1 => (n.clone(), d.clone(), 1u8..=255).prop_map(|(n, d, k)| Op::Gap(n, d, k)),
        1 => (n.clone(), d.clone()).prop_map(|(n, d)| Op::UnknownAlias(n, d)),
        1 => n.clone().prop_map(Op::NDeath),
        1 => n.clone().prop_map(Op::StaleDeath),
        1 => n.clone().prop_map(Op::Replay),
        1 => (n.clone(), d.clone()).prop_map(|(n, d)| Op::DDeath(n, d)),
        1 => (n.clone(), proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(n, b)| Op::Garbage(n, b)),
        1 => (0u64..12_000).prop_map(Op::Tick),
    ]
}

/// The device metrics a DBIRTH may declare (alias = index + 1).
const DEVICE_METRICS: [(&str, DataType); 4] = [
    ("a", DataType::Double),
    ("b", DataType::Int32),
    ("c", DataType::Boolean),
    ("s", DataType::String),
];

fn device_birth(mask: u8) -> Vec<Metric> {
    DEVICE_METRICS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(i, (name, t))| Metric::named(name, Some(i as u64 + 1), *t))
        .collect()
}

fn node_birth() -> Vec<Metric> {
    vec![Metric::named("load", Some(50), DataType::Double)]
}

/// The simulated fleet: one `EdgeNode` per node, with its connection count and what it sent.
struct Fleet {
    edges: Vec<EdgeNode>,
    old_deaths: Vec<Vec<(String, Vec<u8>)>>,
    births: Vec<Vec<(String, Vec<u8>)>>,
}

impl Fleet {
    fn new() -> Self {
        Self {
            edges: NODES
                .iter()
                .map(|n| EdgeNode::new(EdgeNodeId::new("g", n), 0))
                .collect(),
            old_deaths: vec![Vec::new(); NODES.len()],
            births: vec![Vec::new(); NODES.len()],
        }
    }

    /// The messages of one op (most ops are one message).
    fn messages(&mut self, op: &Op, now: u64) -> Vec<(String, Vec<u8>)> {
        match op.clone() {
            Op::NBirth(n) => {
                let m = self.edges[n].nbirth(&node_birth(), now);
                self.births[n].push(m.clone());
                vec![m]
            }
            Op::Reconnect(n) => {
                self.old_deaths[n].push(self.edges[n].ndeath());
                let node = self.edges[n].node().clone();
                let bd = (self.edges[n].bd_seq() + 1) % 256;
                self.edges[n] = EdgeNode::new(node, bd);
                let m = self.edges[n].nbirth(&node_birth(), now);
                self.births[n].push(m.clone());
                vec![m]
            }
            Op::DBirth(n, d, mask) => {
                vec![self.edges[n].dbirth(DEVICES[d], &device_birth(mask), now)]
            }
            Op::NData(n, v) => {
                vec![self.edges[n].ndata(&[by_alias(50, MetricValue::DoubleValue(v))], now)]
            }
            Op::DData(n, d, v) => vec![self.edges[n].ddata(
                DEVICES[d],
                &[
                    by_alias(1, MetricValue::DoubleValue(v)),
                    Metric::named("c", None, DataType::Boolean)
                        .with_value(MetricValue::BooleanValue(v > 0.0)),
                ],
                now,
            )],
            Op::Gap(n, d, k) => {
                self.edges[n].skip(k);
                vec![self.edges[n].ddata(
                    DEVICES[d],
                    &[by_alias(1, MetricValue::DoubleValue(0.0))],
                    now,
                )]
            }
            Op::UnknownAlias(n, d) => vec![self.edges[n].ddata(
                DEVICES[d],
                &[by_alias(77, MetricValue::DoubleValue(0.0))],
                now,
            )],
            Op::NDeath(n) => vec![self.edges[n].ndeath()],
            Op::StaleDeath(n) => self.old_deaths[n].first().cloned().into_iter().collect(),
            Op::Replay(n) => self.births[n].first().cloned().into_iter().collect(),
            Op::DDeath(n, d) => vec![self.edges[n].ddeath(DEVICES[d], now)],
            Op::Garbage(n, bytes) => {
                vec![(
                    format!("spBv1.0/g/DDATA/{}/{}", NODES[n], DEVICES[0]),
                    bytes,
                )]
            }
            Op::Tick(_) => Vec::new(),
        }
    }
}

fn node_of(op: &Op) -> Option<usize> {
    match op {
        Op::NBirth(n)
        | Op::Reconnect(n)
        | Op::DBirth(n, ..)
        | Op::NData(n, _)
        | Op::DData(n, ..)
        | Op::Gap(n, ..)
        | Op::UnknownAlias(n, _)
        | Op::NDeath(n)
        | Op::StaleDeath(n)
        | Op::Replay(n)
        | Op::DDeath(n, _)
        | Op::Garbage(n, _) => Some(*n),
        Op::Tick(_) => None,
    }
}

/// Every machine id of the fleet, with its node index and device.
fn machines() -> HashMap<MachineId, (usize, Option<&'static str>)> {
    let mut m = HashMap::new();
    for (i, n) in NODES.iter().enumerate() {
        let node = EdgeNodeId::new("g", n);
        m.insert(node.machine_id(None), (i, None));
        for d in DEVICES {
            m.insert(node.machine_id(Some(d)), (i, Some(d)));
        }
    }
    m
}

/// Runs `ops` through a host, checking the invariants after every message. `step_ms` is
/// the time between two ops (on top of ticks).
fn run(ops: &[Op], step_ms: u64) -> Result<(), TestCaseError> {
    let config = HostConfig::default();
    let mut host = HostState::new(config);
    let mut fleet = Fleet::new();
    let machines = machines();
    let mut now = T0;
    // Per node: an NDEATH ended its session and no NBIRTH was accepted since.
    let mut dead = [false; NODES.len()];
    // Per node: the times rebirths were requested.
    let mut asked: Vec<Vec<u64>> = vec![Vec::new(); NODES.len()];
    // Machines whose last status action was Online.
    let mut online: HashSet<MachineId> = HashSet::new();
    for op in ops {
        now += step_ms;
        if let Op::Tick(ms) = op {
            now += ms;
        }
        for (topic, bytes) in fleet.messages(op, now) {
            let n = node_of(op).unwrap_or(0);
            let node = EdgeNodeId::new("g", NODES[n]);
            let live_before = host.is_node_born(&node) && !host.is_awaiting_rebirth(&node);
            let actions = host.handle(&topic, &bytes, now);
            let born_after = host.is_node_born(&node);
            if matches!(op, Op::NDeath(_)) && !born_after {
                dead[n] = true;
            }
            let mut gap_rebirths = 0;
            for a in &actions {
                match a {
                    Action::Reading {
                        machine, values, ..
                    } => {
                        let (rn, device) = machines[machine];
                        let rnode = EdgeNodeId::new("g", NODES[rn]);
                        prop_assert!(!dead[rn], "reading after NDEATH: {op:?} {a:?}");
                        let birth = host.birth(&rnode, device);
                        prop_assert!(birth.is_some(), "reading without a birth: {a:?}");
                        let birth = birth.unwrap_or_default();
                        for (name, v) in values {
                            prop_assert!(
                                birth.iter().any(|(b, t)| b == name && t.is_numeric()),
                                "{name} not a numeric metric of the birth {birth:?}"
                            );
                            prop_assert!(v.is_finite());
                        }
                    }
                    Action::Rebirth {
                        node: rnode,
                        reason,
                    } => {
                        let rn = NODES.iter().position(|x| *x == rnode.edge_node);
                        prop_assert_eq!(rn, Some(n));
                        if let Some(last) = asked[n].last() {
                            prop_assert!(
                                now - last >= config.rebirth_interval_ms,
                                "two rebirth requests to {} within the interval",
                                rnode
                            );
                        }
                        asked[n].push(now);
                        if matches!(reason, RebirthReason::SeqGap { .. }) {
                            gap_rebirths += 1;
                        }
                    }
                    Action::Online { machine } => {
                        prop_assert!(machines.contains_key(machine));
                        prop_assert!(online.insert(machine.clone()), "Online twice: {a:?}");
                    }
                    Action::Offline { machine } => {
                        prop_assert!(online.remove(machine), "Offline while offline: {a:?}");
                    }
                    Action::Birth { machine, metrics } => {
                        let (rn, device) = machines[machine];
                        let birth = host
                            .birth(&EdgeNodeId::new("g", NODES[rn]), device)
                            .unwrap_or_default();
                        for m in metrics {
                            prop_assert!(birth.contains(m));
                        }
                    }
                    Action::DeadLetter { .. } => {}
                }
            }
            if !born_after {
                // No session: none of the node's machines is online.
                for (m, (mn, _)) in &machines {
                    prop_assert!(
                        *mn != n || !online.contains(m),
                        "{m} online without a session"
                    );
                }
            }
            if matches!(op, Op::NBirth(_) | Op::Reconnect(_)) && born_after {
                dead[n] = false;
            }
            let gaps = actions
                .iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::DeadLetter {
                            reason: DeadLetterReason::SeqGap,
                            ..
                        }
                    )
                })
                .count();
            prop_assert!(gaps <= 1);
            // With more than the interval between ops, every gap gets exactly one request.
            if step_ms >= config.rebirth_interval_ms {
                prop_assert_eq!(gap_rebirths, gaps, "{:?}", op);
                if let Op::Gap(..) = op {
                    prop_assert_eq!(gaps, usize::from(live_before), "{:?}", op);
                }
            } else {
                prop_assert!(gap_rebirths <= gaps);
            }
            if gaps == 1 {
                prop_assert!(host.is_awaiting_rebirth(&node));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_payload(&bytes);
    }

    #[test]
    fn arbitrary_messages_never_panic_the_host(
        msgs in proptest::collection::vec(
            (prop_oneof![
                Just("spBv1.0/g/NBIRTH/e".to_owned()),
                Just("spBv1.0/g/NDATA/e".to_owned()),
                Just("spBv1.0/g/NDEATH/e".to_owned()),
                Just("spBv1.0/g/DBIRTH/e/d".to_owned()),
                Just("spBv1.0/g/DDATA/e/d".to_owned()),
                Just("spBv1.0/g/DDEATH/e/d".to_owned()),
                "[a-zA-Z0-9/+#.]{0,24}",
            ], prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                payload().prop_map(|p| encode_payload(&p)),
            ], 0u64..20_000),
            0..40,
        )
    ) {
        let mut host = HostState::new(HostConfig::default());
        let mut now = T0;
        for (topic, bytes, dt) in msgs {
            now += dt;
            let _ = host.handle(&topic, &bytes, now);
        }
    }

    #[test]
    fn encode_then_decode_round_trips(p in payload()) {
        let bytes = encode_payload(&p);
        prop_assert_eq!(decode_payload(&bytes).unwrap(), p);
    }

    #[test]
    fn any_session_history_keeps_the_state_consistent(
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        run(&ops, 1)?;
    }

    #[test]
    fn with_time_between_messages_every_gap_asks_exactly_once(
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        run(&ops, HostConfig::default().rebirth_interval_ms)?;
    }
}
