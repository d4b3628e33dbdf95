//! The machines' publishing connections. Connection k publishes machines k, k + C, k + 2C, ...
//! and spreads them over time slots of the period (at most one a millisecond, tokio's timer
//! resolution) instead of sending them in one burst. A reading's `ts` is the wall clock when
//! its slot is rendered.
//!
//! Over Sparkplug B, connection k is edge node `loadtest/c{k}` (its NDEATH the will, the step's
//! `bdSeq`): births of its machines' devices at connect and whenever its NCMD asks for a
//! rebirth, then a DDATA by alias per reading.

use super::template::{machine_id, TelemetryTopic, Template};
use super::{Ctx, Window};
use crate::cli::Protocol;
use dtwin_bus::{Brokers, BusConfig, Connection, QoS, Subscription};
use dtwin_schema::Topics;
use dtwin_sparkplug::EdgeNodeId;
use dtwin_twin_publisher::sparkplug::{epoch_ms, is_rebirth, EdgeSession};
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

/// Requests buffered per publisher connection before `publish` waits.
const PUBLISHER_REQUESTS: usize = 1 << 14;
/// The Sparkplug group of the load test's edge nodes.
pub(super) const SPARKPLUG_GROUP: &str = "loadtest";

/// The edge node of connection `k`: `loadtest/c{k}`.
pub(super) fn edge_node(k: usize) -> EdgeNodeId {
    EdgeNodeId::new(SPARKPLUG_GROUP, &format!("c{k}"))
}

/// What one connection publishes in a step.
struct Job {
    /// Its machines.
    mine: Vec<usize>,
    /// Per machine: the last seq published so far.
    seq: Vec<u64>,
    template: Arc<Template>,
    topic: TelemetryTopic,
    qos: QoS,
    /// `--slots`, before [`slot_count`] limits it.
    slots: usize,
    period: Duration,
    window: Window,
    /// Over Sparkplug: the edge node's session, a device per machine of `mine`.
    sparkplug: Option<EdgeSession>,
}

/// What one connection published in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sent {
    /// Its machines.
    mine: Vec<usize>,
    /// Per machine: the last seq published.
    seq: Vec<u64>,
    /// Per machine: first and last seq published in the measured window.
    window: Vec<Option<(u64, u64)>>,
}

/// A running publisher task.
pub(super) type Publisher = JoinHandle<(Sent, Connection)>;

/// Connects one publisher per connection (at most one per machine) and starts each publishing
/// its machines until the window ends; `seqs` holds each machine's last seq.
///
/// # Errors
/// A connection that is not up within 10 s.
pub(super) async fn start(
    ctx: &Ctx,
    topics: &Topics,
    machines: usize,
    seqs: &[u64],
    window: Window,
    protocol: Protocol,
    bd_seq: u64,
) -> anyhow::Result<Vec<Publisher>> {
    let period = Duration::from_secs_f64(1.0 / ctx.args.rate);
    let topic = TelemetryTopic::new(topics)?;
    let mut pubs = Vec::new();
    for k in 0..ctx.args.connections.min(machines) {
        let mine = machines_of(k, ctx.args.connections, machines);
        let sparkplug = (protocol == Protocol::Sparkplug).then(|| {
            EdgeSession::new(
                edge_node(k),
                bd_seq,
                mine.iter().map(|&m| machine_id(m)).collect(),
            )
        });
        let conn = connect(&ctx.url, k, sparkplug.as_ref()).await?;
        let job = Job {
            seq: mine.iter().map(|&m| seqs[m]).collect(),
            mine,
            template: ctx.template.clone(),
            topic: topic.clone(),
            qos: ctx.qos,
            slots: usize::from(ctx.args.slots),
            period,
            window,
            sparkplug,
        };
        pubs.push(tokio::spawn(publish(conn, job)));
    }
    Ok(pubs)
}

/// Waits for every publisher, updates `seqs` with the last seq of each machine, and returns
/// what each machine published in the window, as (machine, (first seq, last seq)), with the
/// connections, still open.
///
/// # Errors
/// A publisher task that panicked.
pub(super) async fn join(
    pubs: Vec<Publisher>,
    seqs: &mut [u64],
) -> anyhow::Result<(Vec<(usize, (u64, u64))>, Vec<Connection>)> {
    let mut ranges = Vec::new();
    let mut conns = Vec::new();
    for p in pubs {
        let (sent, conn) = p.await?;
        sent.settle(seqs, &mut ranges);
        conns.push(conn);
    }
    Ok((ranges, conns))
}

/// Connects publisher `k`; an edge node's connection has its NDEATH as will and subscribes to
/// its NCMD topic.
async fn connect(
    url: &Brokers,
    k: usize,
    sparkplug: Option<&EdgeSession>,
) -> anyhow::Result<Connection> {
    let mut cfg = BusConfig::new(
        url.rotated(k),
        format!("dtwin-loadtest-{}-{k}", std::process::id()),
    );
    cfg.request_capacity = PUBLISHER_REQUESTS;
    let mut subs = Vec::new();
    if let Some(session) = sparkplug {
        cfg.last_will = Some(session.will());
        cfg.last_will_retain = false;
        subs.push(Subscription::new(
            session.node().ncmd_topic(),
            QoS::AtLeastOnce,
        ));
    }
    let conn = dtwin_bus::connect(&cfg, subs);
    anyhow::ensure!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "cannot connect to {}",
        url
    );
    Ok(conn)
}

/// Publishes `job`'s machines, one slot per tick, until the window ends or the connection
/// fails.
async fn publish(mut conn: Connection, job: Job) -> (Sent, Connection) {
    let Job {
        mine,
        mut seq,
        template,
        topic,
        qos,
        slots,
        period,
        window,
        mut sparkplug,
    } = job;
    let mut published: Vec<Option<(u64, u64)>> = vec![None; mine.len()];
    if let Some(session) = sparkplug.as_mut() {
        let births = session.births(epoch_ms(OffsetDateTime::now_utc()));
        if !send_all(&conn, births, qos).await {
            return (Sent::nothing(mine, seq), conn);
        }
    }
    let slots = slot_count(slots, mine.len(), period);
    let mut tick = tokio::time::interval(period / slots as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut slot = 0;
    'run: loop {
        tick.tick().await;
        let now = OffsetDateTime::now_utc();
        if window.is_over(now) {
            break;
        }
        let in_window = window.contains(now);
        if let Some(session) = sparkplug.as_mut() {
            // A rebirth request: births again (they carry no values: no extra reading).
            while let Ok(m) = conn.inbox.try_recv() {
                if is_rebirth(session.node(), &m.topic, &m.payload) {
                    let births = session.births(epoch_ms(now));
                    if !send_all(&conn, births, qos).await {
                        break 'run;
                    }
                }
            }
        }
        let ts = now.format(&Rfc3339).unwrap_or_default();
        let ts_ms = epoch_ms(now);
        for j in slot_members(slot, slots, mine.len()) {
            seq[j] += 1;
            let k = mine[j] + seq[j] as usize;
            let (topic, payload) = match sparkplug.as_mut() {
                Some(session) => session.data(j, template.values(k), ts_ms),
                None => {
                    let id = machine_id(mine[j]);
                    let payload = template.render(&id, &ts, seq[j], k);
                    (topic.of(&id), payload)
                }
            };
            if conn
                .client
                .publish(topic, qos, false, payload)
                .await
                .is_err()
            {
                break 'run;
            }
            if in_window {
                published[j] = widen(published[j], seq[j]);
            }
        }
        slot = (slot + 1) % slots;
    }
    let sent = Sent {
        mine,
        seq,
        window: published,
    };
    (sent, conn)
}

/// Publishes `messages` in order; false when the connection is closed.
async fn send_all(conn: &Connection, messages: Vec<(String, Vec<u8>)>, qos: QoS) -> bool {
    for (topic, payload) in messages {
        if conn
            .client
            .publish(topic, qos, false, payload)
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

impl Sent {
    /// Nothing published: the connection failed before the first reading.
    fn nothing(mine: Vec<usize>, seq: Vec<u64>) -> Self {
        let window = vec![None; mine.len()];
        Self { mine, seq, window }
    }

    /// Writes each machine's last seq into `seqs` and appends its window's seqs to `ranges`.
    fn settle(self, seqs: &mut [u64], ranges: &mut Vec<(usize, (u64, u64))>) {
        for (j, m) in self.mine.iter().enumerate() {
            seqs[*m] = self.seq[j];
            if let Some(r) = self.window[j] {
                ranges.push((*m, r));
            }
        }
    }
}

/// Machines of connection `k` of `connections`: k, k + C, k + 2C, ... below `machines`.
fn machines_of(k: usize, connections: usize, machines: usize) -> Vec<usize> {
    (k..machines).step_by(connections).collect()
}

/// Slots per period for a connection with `machines` machines: `slots`, but no more than its
/// machines nor than the milliseconds in `period` (tokio's timer resolution), and at least 1.
fn slot_count(slots: usize, machines: usize, period: Duration) -> usize {
    slots
        .min(machines)
        .min(period.as_millis().max(1) as usize)
        .max(1)
}

/// Positions (in a connection's machines) published in slot `slot` of `slots`.
fn slot_members(slot: usize, slots: usize, machines: usize) -> impl Iterator<Item = usize> {
    (slot..machines).step_by(slots)
}

/// The first and last seq published in the window, after publishing `seq` in it.
fn widen(range: Option<(u64, u64)>, seq: u64) -> Option<(u64, u64)> {
    Some(range.map_or((seq, seq), |(lo, _)| (lo, seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_take_every_cth_machine() {
        assert_eq!(machines_of(0, 3, 8), vec![0, 3, 6]);
        assert_eq!(machines_of(2, 3, 8), vec![2, 5]);
        assert_eq!(machines_of(0, 1, 3), vec![0, 1, 2]);
        assert!(machines_of(4, 5, 4).is_empty());
        // Every machine has exactly one connection.
        let mut all: Vec<usize> = (0..4).flat_map(|k| machines_of(k, 4, 10)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn slots_are_bounded_by_machines_and_milliseconds() {
        let s = Duration::from_secs(1);
        assert_eq!(slot_count(50, 500, s), 50);
        assert_eq!(slot_count(50, 7, s), 7, "no empty slots");
        // 100 Hz: a 10 ms period has room for 10 slots.
        assert_eq!(slot_count(50, 500, Duration::from_millis(10)), 10);
        // 1000 Hz and beyond: one slot, a burst per period.
        assert_eq!(slot_count(50, 500, Duration::from_micros(500)), 1);
        assert_eq!(slot_count(50, 0, s), 1);
    }

    #[test]
    fn slots_cover_each_machine_once_per_period() {
        let (slots, n) = (4, 10);
        assert_eq!(slot_members(0, slots, n).collect::<Vec<_>>(), vec![0, 4, 8]);
        assert_eq!(slot_members(3, slots, n).collect::<Vec<_>>(), vec![3, 7]);
        let mut all: Vec<usize> = (0..slots).flat_map(|s| slot_members(s, slots, n)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        assert_eq!(slot_members(0, 1, 3).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn window_ranges_keep_the_first_seq_and_follow_the_last() {
        let r = widen(None, 5);
        assert_eq!(r, Some((5, 5)));
        assert_eq!(widen(widen(r, 6), 7), Some((5, 7)));
    }

    #[test]
    fn settling_hands_back_last_seqs_and_window_ranges() {
        let sent = Sent {
            mine: vec![1, 3],
            seq: vec![12, 30],
            window: vec![Some((10, 12)), None],
        };
        let mut seqs = vec![0; 4];
        let mut ranges = vec![(0, (1, 2))];
        sent.settle(&mut seqs, &mut ranges);
        assert_eq!(seqs, vec![0, 12, 0, 30]);
        assert_eq!(ranges, vec![(0, (1, 2)), (1, (10, 12))]);
    }
}
