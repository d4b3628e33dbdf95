//! Sparkplug B for the twin (`dtwin twin --protocol sparkplug`) and the load test, pure: no
//! MQTT, no clock. Readings in, `(topic, payload)` messages out.
//!
//! - One edge node per MQTT connection (a gateway per connection, as a cell's PLC gateway
//!   is): [`EdgeSession`] holds its [`EdgeNode`] (`bdSeq`, `seq` 0-255 wrapping) and its
//!   devices, one per machine, named by the machine's own id. The host turns device `d` of
//!   node `n` in group `g` into machine `g.n.d` ([`dtwin_sparkplug::machine_id`]), e.g.
//!   `dtwin.twin-0.machine-003`: what the verdicts, statuses and the dashboard show.
//! - Births: an NBIRTH (with `bdSeq` and `Node Control/Rebirth`), then a DBIRTH per device
//!   naming the seven milling metrics ([`METRICS`], the sensor keys of
//!   `dtwin_profile::Profile::milling()`, so the host gives the device the milling profile),
//!   each a Double with alias `index + 1`. A DBIRTH carries the device's last values, each
//!   stamped with the time of its reading (so a rebirth repeats them without making a new
//!   reading: the feature service drops a reading with the same `ts`); before the first
//!   reading the metrics are null.
//! - Data: a DDATA per reading, metrics by alias only, stamped with the reading's time.
//! - The NDEATH ([`EdgeSession::will`]) is the connection's will; a new connection takes a
//!   new `bdSeq` ([`next_bd_seq`]).
//! - [`is_rebirth`]: whether an NCMD asks the node to publish its births again.

use crate::{TwinError, TwinMetrics, WorkerSetup};
use dtwin_bus::{BusClient, BusConfig, Connection, LinkState, QoS, Subscription};
use dtwin_schema::{MachineId, Telemetry};
use dtwin_sparkplug::messages::REBIRTH_METRIC;
use dtwin_sparkplug::{
    by_alias, decode_payload, DataType, EdgeNode, EdgeNodeId, Metric, MetricValue,
};
use dtwin_twin_sim::{Clock, Fault, Machine};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use dtwin_sparkplug::edge::Message;

/// The Sparkplug group of the twin's edge nodes.
pub const GROUP: &str = "dtwin";

/// The milling metric names, in alias order (alias = index + 1): the sensor keys of the
/// built-in milling profile.
pub const METRICS: [&str; 7] = [
    "temperature_c",
    "ambient_temperature_c",
    "vibration_mm_s",
    "pressure_bar",
    "spindle_rpm",
    "torque_nm",
    "tool_wear_min",
];

/// A reading's values in [`METRICS`] order (`None`: the sensor did not report).
pub type Values = [Option<f64>; 7];

/// The alias of metric `index` of [`METRICS`].
pub fn alias(index: usize) -> u64 {
    index as u64 + 1
}

/// The edge node of the twin's connection `k` in `group`: `twin-{k}`.
pub fn twin_node(group: &str, k: usize) -> EdgeNodeId {
    EdgeNodeId::new(group, &format!("twin-{k}"))
}

/// The `bdSeq` of the connection after one with `bd_seq` (0-255, wrapping).
pub fn next_bd_seq(bd_seq: u64) -> u64 {
    (bd_seq + 1) % 256
}

/// The values of a reading, in [`METRICS`] order.
pub fn values(t: &Telemetry) -> Values {
    [
        t.temperature_c,
        t.ambient_temperature_c,
        t.vibration_mm_s,
        t.pressure_bar,
        t.spindle_rpm,
        t.torque_nm,
        t.tool_wear_min,
    ]
}

/// A DBIRTH's metrics: every metric named, Double, with its alias, and the values of the
/// reading at `ts` when there is one (null otherwise, or for a sensor that did not report).
pub fn birth_metrics(last: Option<(&Values, u64)>) -> Vec<Metric> {
    METRICS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut m = Metric::named(name, Some(alias(i)), DataType::Double);
            match last.and_then(|(v, ts)| v[i].map(|x| (x, ts))) {
                Some((x, ts)) => {
                    m.value = Some(MetricValue::DoubleValue(x));
                    m.timestamp = Some(ts);
                }
                None => m.is_null = Some(true),
            }
            m
        })
        .collect()
}

/// A DDATA's metrics: the values that are there, by alias only.
pub fn data_metrics(values: &Values) -> Vec<Metric> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| by_alias(alias(i), MetricValue::DoubleValue(x))))
        .collect()
}

/// Whether `topic`/`payload` is an NCMD to `node` setting `Node Control/Rebirth` true.
pub fn is_rebirth(node: &EdgeNodeId, topic: &str, payload: &[u8]) -> bool {
    topic == node.ncmd_topic()
        && decode_payload(payload).is_ok_and(|p| {
            p.metrics.iter().any(|m| {
                m.name.as_deref() == Some(REBIRTH_METRIC)
                    && m.value == Some(MetricValue::BooleanValue(true))
            })
        })
}

/// One edge node's session: its `seq` and `bdSeq`, its devices and each device's last
/// reading (for births).
#[derive(Debug, Clone)]
pub struct EdgeSession {
    edge: EdgeNode,
    devices: Vec<String>,
    last: Vec<Option<(Values, u64)>>,
}

impl EdgeSession {
    /// The session of `node` on a connection numbered `bd_seq`, with `devices` (each a
    /// device id; index `i` in later calls is `devices[i]`).
    pub fn new(node: EdgeNodeId, bd_seq: u64, devices: Vec<String>) -> Self {
        let last = vec![None; devices.len()];
        Self {
            edge: EdgeNode::new(node, bd_seq),
            devices,
            last,
        }
    }

    /// The edge node.
    pub fn node(&self) -> &EdgeNodeId {
        self.edge.node()
    }

    /// The session's `bdSeq`.
    pub fn bd_seq(&self) -> u64 {
        self.edge.bd_seq()
    }

    /// The `seq` the next message carries.
    pub fn seq(&self) -> u8 {
        self.edge.seq()
    }

    /// The device ids.
    pub fn devices(&self) -> &[String] {
        &self.devices
    }

    /// The machine id the host gives device `i`.
    pub fn machine_id(&self, i: usize) -> MachineId {
        self.edge.node().machine_id(Some(&self.devices[i]))
    }

    /// The NDEATH to set as the connection's will.
    pub fn will(&self) -> Message {
        self.edge.ndeath()
    }

    /// A new session of the same node and devices for the next connection: the next `bdSeq`,
    /// the last readings kept.
    pub fn reconnected(&self) -> Self {
        Self {
            edge: EdgeNode::new(self.edge.node().clone(), next_bd_seq(self.edge.bd_seq())),
            devices: self.devices.clone(),
            last: self.last.clone(),
        }
    }

    /// Records device `i`'s reading at `ts` (milliseconds since the Unix epoch) without
    /// publishing it: the next births carry it.
    pub fn record(&mut self, i: usize, values: Values, ts: u64) {
        self.last[i] = Some((values, ts));
    }

    /// The births, stamped `ts`: the NBIRTH (`seq` 0), then a DBIRTH per device with its
    /// last reading.
    pub fn births(&mut self, ts: u64) -> Vec<Message> {
        let control = Metric::named(REBIRTH_METRIC, None, DataType::Boolean)
            .with_value(MetricValue::BooleanValue(false));
        let mut out = Vec::with_capacity(self.devices.len() + 1);
        out.push(self.edge.nbirth(&[control], ts));
        for (device, last) in self.devices.iter().zip(&self.last) {
            let metrics = birth_metrics(last.as_ref().map(|(v, t)| (v, *t)));
            out.push(self.edge.dbirth(device, &metrics, ts));
        }
        out
    }

    /// Device `i`'s reading at `ts`, as a DDATA by alias.
    pub fn data(&mut self, i: usize, values: Values, ts: u64) -> Message {
        self.last[i] = Some((values, ts));
        let metrics = data_metrics(&values);
        let (topic, payload) = self.edge.ddata(&self.devices[i], &metrics, ts);
        (topic, payload)
    }
}

/// Milliseconds since the Unix epoch of `t` (0 before the epoch).
pub fn epoch_ms(t: time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The connection of `session`: its NDEATH as will, subscribed to its NCMD topic.
fn connect(bus: &BusConfig, session: &EdgeSession) -> Connection {
    let mut cfg = bus.clone();
    cfg.last_will = Some(session.will());
    cfg.last_will_retain = false;
    dtwin_bus::connect(
        &cfg,
        vec![Subscription::new(
            session.node().ncmd_topic(),
            QoS::AtLeastOnce,
        )],
    )
}

/// Wait after a lost link before the next connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Why a connection's loop ended.
enum End {
    /// Shutdown, the steps done, or a publish on a closed client: stop.
    Stop,
    /// The link went down: open a new connection with the next `bdSeq`.
    Reconnect,
}

/// Steps and publishes one shard of the fleet as edge node `node`: births on every
/// connection (and on a `Node Control/Rebirth` NCMD), then a DDATA per reading. A lost link
/// closes the connection and opens the next one with the next `bdSeq` (the broker sends the
/// old one's NDEATH). Births and data go at the twin's QoS, not retained.
pub(crate) async fn worker(
    setup: WorkerSetup,
    bus: BusConfig,
    node: EdgeNodeId,
    mut commands: mpsc::Receiver<(usize, Fault)>,
    stop: CancellationToken,
) -> Result<(), TwinError> {
    let WorkerSetup {
        mut machines,
        mut due,
        clock,
        qos,
        afap,
        steps,
        period,
        topics: _,
        metrics,
    } = setup;
    due.sort_by_key(|d| d.before_seq);
    let devices = machines.iter().map(|(_, m)| m.id().to_string()).collect();
    let mut session = EdgeSession::new(node, 0, devices);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut published: u64 = 0;
    loop {
        let mut conn = connect(&bus, &session);
        let ready = tokio::select! {
            _ = stop.cancelled() => false,
            up = conn.client.wait_ready(Duration::from_secs(3600)) => up,
        };
        let end = if ready {
            let mut link = conn.client.link_state();
            link.mark_unchanged();
            let births = session.births(epoch_ms(dtwin_schema::time_fmt::now()));
            let mut end = send(&conn.client, births, qos, &metrics).await;
            while end.is_none() {
                if steps.is_some_and(|n| published >= n) {
                    end = Some(End::Stop);
                    break;
                }
                tokio::select! {
                    _ = stop.cancelled() => end = Some(End::Stop),
                    changed = link.changed() => {
                        // A closed watch: the poll task is gone, as good as a lost link.
                        if changed.is_err() || *link.borrow_and_update() == LinkState::Down {
                            end = Some(End::Reconnect);
                        }
                    }
                    msg = conn.inbox.recv() => match msg {
                        None => end = Some(End::Reconnect),
                        Some(m) if is_rebirth(session.node(), &m.topic, &m.payload) => {
                            info!(node = %session.node(), "rebirth requested");
                            let births = session.births(epoch_ms(dtwin_schema::time_fmt::now()));
                            end = send(&conn.client, births, qos, &metrics).await;
                        }
                        Some(_) => {}
                    },
                    _ = pace(&mut tick, afap) => {
                        let shard = Shard { machines: &mut machines, due: &mut due, commands: &mut commands };
                        end = step(shard, &mut session, published, clock, afap, &conn.client, qos, &metrics).await;
                        published += 1;
                    }
                }
            }
            end.unwrap_or(End::Stop)
        } else {
            End::Stop
        };
        match end {
            End::Stop => {
                // A clean DISCONNECT: the broker drops the will, so the node says it is gone.
                let (topic, payload) = session.will();
                let _ = metrics.publish_result(
                    conn.client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await,
                );
                let flush = if steps.is_some() {
                    Duration::from_secs(60)
                } else {
                    Duration::from_secs(2)
                };
                if tokio::time::timeout(flush + Duration::from_secs(1), conn.close_within(flush))
                    .await
                    .is_err()
                {
                    warn!("twin worker did not disconnect in time");
                }
                return Ok(());
            }
            End::Reconnect => {
                warn!(node = %session.node(), "edge node connection lost; reconnecting with the next bdSeq");
                conn.task.abort();
                session = session.reconnected();
                // Give the broker a moment to see the old socket close and publish its will
                // (rumqttd keys wills by client id: a new CONNECT first would replace it).
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                }
            }
        }
    }
}

/// Publishes `messages`; `Some(End::Stop)` when the client is closed.
async fn send(
    client: &BusClient,
    messages: Vec<Message>,
    qos: QoS,
    metrics: &TwinMetrics,
) -> Option<End> {
    for (topic, payload) in messages {
        if metrics
            .publish_result(client.publish(topic, qos, false, payload).await)
            .is_err()
        {
            return Some(End::Stop);
        }
    }
    None
}

/// The next tick (at once when as fast as possible).
async fn pace(tick: &mut tokio::time::Interval, afap: bool) {
    if !afap {
        tick.tick().await;
    }
}

/// A worker's machines and the faults waiting for them.
struct Shard<'a> {
    machines: &'a mut [(usize, Machine)],
    due: &'a mut Vec<crate::Due>,
    commands: &'a mut mpsc::Receiver<(usize, Fault)>,
}

/// One tick: every machine of the shard steps once and its reading goes out as a DDATA.
#[allow(clippy::too_many_arguments)]
async fn step(
    shard: Shard<'_>,
    session: &mut EdgeSession,
    published: u64,
    clock: Clock,
    afap: bool,
    client: &BusClient,
    qos: QoS,
    metrics: &TwinMetrics,
) -> Option<End> {
    crate::inject_due(shard.machines, shard.due, shard.commands, published + 1);
    let now = dtwin_schema::time_fmt::now();
    for (i, (_, m)) in shard.machines.iter_mut().enumerate() {
        let reading = m.step();
        let ts = if afap { clock.at(reading.seq) } else { now };
        let t = reading.to_telemetry(m.id(), ts);
        let message = session.data(i, values(&t), epoch_ms(ts));
        if let Some(end) = send(client, vec![message], qos, metrics).await {
            return Some(end);
        }
        metrics.readings.inc();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_sparkplug::{Action, HostConfig, HostState, Payload, Topic};

    const T0: u64 = 1_700_000_000_000;

    fn reading(k: u32) -> Values {
        let k = f64::from(k);
        [
            Some(35.0 + k),
            Some(25.0),
            Some(2.5),
            Some(6.0),
            Some(1500.0 + k),
            None,
            Some(10.0 * k),
        ]
    }

    fn session() -> EdgeSession {
        EdgeSession::new(
            twin_node(GROUP, 0),
            3,
            vec!["machine-000".into(), "machine-002".into()],
        )
    }

    fn decode((_, payload): &Message) -> Payload {
        decode_payload(payload).unwrap()
    }

    #[test]
    fn the_metric_names_are_the_milling_sensor_keys() {
        let milling = dtwin_profile::Profile::milling();
        let keys: Vec<&str> = milling.sensors.iter().map(|s| s.key.as_str()).collect();
        let mut mine = METRICS.to_vec();
        mine.sort_unstable();
        let mut theirs = keys.clone();
        theirs.sort_unstable();
        assert_eq!(mine, theirs);
    }

    #[test]
    fn births_name_every_metric_with_a_stable_alias_and_data_uses_only_aliases() {
        let mut s = session();
        s.record(0, reading(1), T0 - 500);
        let births = s.births(T0);
        assert_eq!(births.len(), 3);
        assert_eq!(births[0].0, "spBv1.0/dtwin/NBIRTH/twin-0");
        assert_eq!(births[1].0, "spBv1.0/dtwin/DBIRTH/twin-0/machine-000");
        assert_eq!(births[2].0, "spBv1.0/dtwin/DBIRTH/twin-0/machine-002");
        let nbirth = decode(&births[0]);
        assert_eq!(nbirth.seq, Some(0));
        assert_eq!(nbirth.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(nbirth.metrics[0].value, Some(MetricValue::LongValue(3)));
        assert_eq!(nbirth.metrics[1].name.as_deref(), Some(REBIRTH_METRIC));

        let with_values = decode(&births[1]);
        assert_eq!(with_values.seq, Some(1));
        for (i, m) in with_values.metrics.iter().enumerate() {
            assert_eq!(m.name.as_deref(), Some(METRICS[i]));
            assert_eq!(m.alias, Some(i as u64 + 1));
            assert_eq!(m.datatype, Some(DataType::Double.as_u32()));
            match reading(1)[i] {
                Some(x) => {
                    assert_eq!(m.value, Some(MetricValue::DoubleValue(x)));
                    assert_eq!(m.timestamp, Some(T0 - 500), "the reading's time");
                }
                None => assert_eq!((m.value.as_ref(), m.is_null), (None, Some(true))),
            }
        }
        let never_read = decode(&births[2]);
        assert!(never_read
            .metrics
            .iter()
            .all(|m| m.value.is_none() && m.is_null == Some(true)));

        let data = s.data(1, reading(2), T0 + 1000);
        assert_eq!(data.0, "spBv1.0/dtwin/DDATA/twin-0/machine-002");
        let p = decode(&data);
        assert_eq!((p.seq, p.timestamp), (Some(3), Some(T0 + 1000)));
        let got: Vec<(u64, MetricValue)> = p
            .metrics
            .iter()
            .map(|m| {
                assert_eq!(m.name, None, "by alias only");
                (m.alias.unwrap(), m.value.clone().unwrap())
            })
            .collect();
        let want: Vec<(u64, MetricValue)> = reading(2)
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|x| (alias(i), MetricValue::DoubleValue(x))))
            .collect();
        assert_eq!(got, want);

        // A rebirth names the same aliases and now carries device 1's last reading.
        let again = s.births(T0 + 2000);
        assert_eq!(decode(&again[0]).seq, Some(0));
        let reborn = decode(&again[2]);
        let aliases: Vec<_> = reborn.metrics.iter().map(|m| m.alias).collect();
        let first: Vec<_> = with_values.metrics.iter().map(|m| m.alias).collect();
        assert_eq!(aliases, first);
        assert_eq!(
            reborn.metrics[4].value,
            Some(MetricValue::DoubleValue(1502.0))
        );
        assert_eq!(reborn.metrics[4].timestamp, Some(T0 + 1000));
    }

    #[test]
    fn seq_wraps_after_255_and_a_new_connection_takes_the_next_bd_seq() {
        let mut s = session();
        s.births(T0);
        let mut seqs = Vec::new();
        for k in 0..300u32 {
            let p = decode(&s.data((k % 2) as usize, reading(k), T0 + u64::from(k)));
            seqs.push(p.seq.unwrap());
        }
        // NBIRTH 0, DBIRTHs 1 and 2, data from 3.
        assert_eq!(seqs[0], 3);
        assert_eq!(seqs[252], 255);
        assert_eq!(seqs[253], 0);
        assert_eq!(seqs[299], 46);
        assert!(seqs.iter().all(|&q| q <= 255));

        let will = decode(&s.will());
        assert_eq!(s.will().0, "spBv1.0/dtwin/NDEATH/twin-0");
        assert_eq!(will.metrics[0].value, Some(MetricValue::LongValue(3)));
        assert_eq!(will.seq, None);
        let next = s.reconnected();
        assert_eq!((next.bd_seq(), next.seq()), (4, 0));
        assert_eq!(next_bd_seq(255), 0);
        assert_eq!(next.devices(), s.devices());
    }

    #[test]
    fn the_host_takes_the_session_as_milling_readings_of_the_twins_machine_ids() {
        let mut host = HostState::new(HostConfig::default());
        let mut s = session();
        s.record(0, reading(1), T0);
        let mut actions = Vec::new();
        for (topic, payload) in s.births(T0) {
            actions.extend(host.handle(&topic, &payload, T0));
        }
        for k in 2..300u32 {
            let (topic, payload) = s.data(0, reading(k), T0 + u64::from(k) * 1000);
            actions.extend(host.handle(&topic, &payload, T0));
        }
        assert_eq!(s.machine_id(0).as_str(), "dtwin.twin-0.machine-000");
        let mut births = 0;
        let mut readings = Vec::new();
        for a in &actions {
            match a {
                Action::Birth { machine, metrics } => {
                    births += 1;
                    let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
                    assert_eq!(names, METRICS);
                    assert!(machine.as_str().starts_with("dtwin.twin-0.machine-00"));
                }
                Action::Reading {
                    machine,
                    ts,
                    values,
                    ..
                } => {
                    assert_eq!(machine, &s.machine_id(0));
                    readings.push((*ts, values.clone()));
                }
                Action::Online { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(births, 2);
        // The birth's values (reading 1) and readings 2..299, past the seq wrap.
        assert_eq!(readings.len(), 299);
        assert_eq!(readings[0].0, T0);
        assert_eq!(readings[298].0, T0 + 299_000);
        let want: Vec<(String, f64)> = reading(299)
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|x| (METRICS[i].to_owned(), x)))
            .collect();
        assert_eq!(readings[298].1, want);
    }

    #[test]
    fn only_a_true_rebirth_ncmd_to_this_node_is_a_rebirth() {
        let node = twin_node(GROUP, 1);
        let request = dtwin_sparkplug::rebirth_request(T0);
        assert!(is_rebirth(&node, "spBv1.0/dtwin/NCMD/twin-1", &request));
        assert!(!is_rebirth(&node, "spBv1.0/dtwin/NCMD/twin-2", &request));
        assert!(!is_rebirth(&node, "spBv1.0/dtwin/NCMD/twin-1", b"junk"));
        let no = dtwin_sparkplug::encode_payload(&Payload {
            metrics: vec![Metric::named(REBIRTH_METRIC, None, DataType::Boolean)
                .with_value(MetricValue::BooleanValue(false))],
            ..Payload::default()
        });
        assert!(!is_rebirth(&node, "spBv1.0/dtwin/NCMD/twin-1", &no));
        let Ok(Topic::Edge { node: parsed, .. }) = Topic::parse(&node.ncmd_topic()) else {
            panic!()
        };
        assert_eq!(parsed, node);
    }
}
