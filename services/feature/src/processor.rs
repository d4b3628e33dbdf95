//! The pure core of the feature service: one telemetry payload in, publishes out.
//!
//! Per payload: the topic's machine id and its profile (cached per machine, see
//! [`crate::profiles`]), then [`Telemetry::decode_for`] (one reading or a gateway batch, v1 or
//! v2, checked against the topic's machine), then per reading: its profile (the payload's, or
//! the machine's; `unknown_profile`) and, for a profile other than milling, its values
//! checked against that profile's sensors (`out_of_range`, `wrong_type`, unknown keys
//! counted); then the machine's [`Sequencer`] (duplicates, reordering, gaps, too late) or,
//! for a v2 reading without `seq`, the order by `ts` (strictly increasing, duplicates = same
//! `ts`, see `order_by_ts`), and its window (milling's `MachineWindow` or the profile's
//! `ProfileWindow`). Everything it cannot use becomes a dead letter with a reason; nothing
//! else stops.

use crate::machine::{Item, Window};
use crate::order::{Fate, OrderConfig, Released, Sequencer};
use crate::profiles::{ProfileSet, Slot};
use dtwin_schema::{
    to_json, DeadLetter, MachineId, Reading, RejectReason, Rejection, Telemetry, TopicKind, Topics,
};
use dtwin_windows::{feature_set, WindowConfig};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::OffsetDateTime;
use tracing::debug;

/// The name under which this service dead-letters.
pub const SERVICE: &str = "feature";

/// Something to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A feature vector for `topic`.
    Features {
        /// `{prefix}/machines/{id}/features`
        topic: String,
        /// `dtwin.features.v1` JSON.
        payload: Vec<u8>,
    },
    /// A rejected input for `{prefix}/deadletter/feature`.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// Why.
        reason: RejectReason,
        /// `dtwin.deadletter.v1` JSON.
        payload: Vec<u8>,
    },
}

impl Outgoing {
    /// (topic, payload).
    pub fn into_parts(self) -> (String, Vec<u8>) {
        match self {
            Self::Features { topic, payload } | Self::DeadLetter { topic, payload, .. } => {
                (topic, payload)
            }
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    /// Readings turned into features.
    pub processed: u64,
    /// Inputs (payloads or readings of a batch) dead-lettered.
    pub rejected: u64,
    /// Machines with a window.
    pub machines: usize,
    /// Payloads received.
    pub messages: u64,
    /// Readings decoded (a batch counts each reading).
    pub readings: u64,
    /// Readings dropped as duplicates (seen before by `seq`).
    pub duplicates: u64,
    /// Readings missing by `seq` (lost, or given up on after the reorder tolerance).
    pub gaps: u64,
    /// Readings that arrived out of order and were put back in order.
    pub reordered: u64,
    /// Publishers that restarted their sequence.
    pub restarts: u64,
    /// Idle machines whose window was dropped.
    pub evicted: u64,
    /// Readings currently held waiting for missing ones.
    pub held: u64,
    /// Readings dropped unprocessed because they were older than `max_lag_ms` on arrival
    /// (load shedding; the next reading then shows the gap).
    pub stale: u64,
    /// Keys of v2 `values` that are not sensors of the reading's profile (and sensor fields
    /// sent at the top level of a v2 reading): ignored, the reading is still processed.
    pub unknown_values: u64,
}

/// Settings of the pure core.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Window sizes, missing-value policy and feature set.
    pub window: WindowConfig,
    /// Reorder tolerance.
    pub order: OrderConfig,
    /// A machine silent this long (milliseconds of the caller's clock) loses its window; when
    /// it reports again its window starts cold.
    pub idle_evict_ms: u64,
    /// Readings whose `ts` is more than this many milliseconds behind the clock on arrival
    /// are dropped and counted, not processed (0: off). Under overload this sheds the backlog
    /// instead of scoring readings nobody can act on any more; leave it off to replay history
    /// or accept a gateway's late backlog.
    pub max_lag_ms: u64,
    /// The machine profiles served besides milling and the machine-id map (shared by the
    /// workers; milling only by default).
    pub profiles: Arc<ProfileSet>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::default(),
            order: OrderConfig::default(),
            idle_evict_ms: 10 * 60 * 1000,
            max_lag_ms: 0,
            profiles: Arc::new(ProfileSet::milling_only()),
        }
    }
}

struct Machine {
    window: Window,
    order: Sequencer<Item>,
    /// The profile of its readings that name none, resolved once (see [`crate::profiles`]).
    slot: Slot,
    last_seen_ms: u64,
    /// Readings shed (too far behind the clock) since the last one processed: they count as
    /// missing for the next one's gap.
    shed: u64,
    /// Readings without `seq`: the newest one's `ts` and the synthetic `seq` it was given.
    by_ts: Option<(OffsetDateTime, u64)>,
}

/// Every machine's window and order state, and the topic/feature-set context.
pub struct Processor {
    topics: Topics,
    cfg: ProcessorConfig,
    names: Vec<String>,
    hash: String,
    machines: HashMap<MachineId, Machine>,
    /// Machines holding readings (checked by [`Processor::tick`]).
    holding: HashSet<MachineId>,
    stats: ProcessorStats,
    released: Vec<Released<Item>>,
}

/// The signed change of one machine's held-reading count.
fn held_delta(before: usize, after: usize) -> i64 {
    after as i64 - before as i64
}

impl Processor {
    /// A processor with no machines yet, default order and eviction settings.
    pub fn new(topics: Topics, cfg: &WindowConfig) -> Self {
        Self::with_config(
            topics,
            ProcessorConfig {
                window: cfg.clone(),
                ..ProcessorConfig::default()
            },
        )
    }

    /// A processor with no machines yet.
    pub fn with_config(topics: Topics, cfg: ProcessorConfig) -> Self {
        let (names, hash) = feature_set(&cfg.window);
        Self {
            topics,
            cfg,
            names,
            hash,
            machines: HashMap::new(),
            holding: HashSet::new(),
            stats: ProcessorStats::default(),
            released: Vec::new(),
        }
    }

    /// The feature-set hash stamped on every vector.
    pub fn feature_set(&self) -> &str {
        &self.hash
    }

    /// Counters since start.
    ///
    /// O(1): the shell calls it after every message. The held count is kept up to date at
    /// every change; summing it over the holding machines here was O(machines) per message
    /// (35 % of all CPU in an overloaded load test, where most machines hold a reading).
    pub fn stats(&self) -> ProcessorStats {
        ProcessorStats {
            machines: self.machines.len(),
            ..self.stats
        }
    }

    fn add_held(&mut self, delta: i64) {
        self.stats.held = self.stats.held.saturating_add_signed(delta);
    }

    /// Bytes of window state across machines.
    pub fn state_bytes(&self) -> usize {
        self.machines
            .values()
            .map(|m| m.window.state_bytes() + std::mem::size_of::<Machine>())
            .sum()
    }

    /// Serves `profiles` from now on: a profile published at run time was added
    /// ([`crate::profiles::ProfileSet::adopt`]). It must keep every slot of the set it
    /// replaces (adopt only appends), since the machines keep theirs.
    pub fn set_profiles(&mut self, profiles: Arc<ProfileSet>) {
        debug_assert!(profiles.profiles().len() >= self.cfg.profiles.profiles().len());
        self.cfg.profiles = profiles;
    }

    /// Forgets the windows of machines `keep` rejects (they moved to another instance); if one
    /// comes back, its window starts again, cold.
    pub fn retain_machines(&mut self, keep: impl Fn(&str) -> bool) {
        let mut dropped_held = 0;
        self.machines.retain(|id, m| {
            let kept = keep(id.as_str());
            if !kept {
                dropped_held += m.order.held();
            }
            kept
        });
        self.add_held(held_delta(dropped_held, 0));
        let machines = &self.machines;
        self.holding.retain(|id| machines.contains_key(id));
    }

    /// Handles one payload received on `topic` at `now` (wall clock, stamped on the features)
    /// and `now_ms` (a monotonic clock for reorder holds and eviction), appending what to
    /// publish to `out`.
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: OffsetDateTime,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) {
        self.stats.messages += 1;
        let topic_id = match self.topic_machine(topic) {
            Ok(id) => id,
            Err(rejection) => return self.reject(topic, payload, rejection, None, out),
        };
        // Without a profile map every machine is milling: no lookup on that path.
        let machine_slot = if self.cfg.profiles.has_map() {
            match self.machines.get(&topic_id) {
                Some(m) => m.slot,
                None => self.cfg.profiles.for_machine(topic_id.as_str()),
            }
        } else {
            Slot::Milling
        };
        let machine_profile = self.cfg.profiles.id(machine_slot);
        let readings = match Telemetry::decode_for(&topic_id, now, payload, machine_profile) {
            Ok(r) => r,
            Err(rejection) => return self.reject(topic, payload, rejection, Some(topic_id), out),
        };
        for reading in readings {
            let r = match reading {
                Ok(r) => r,
                Err(r) => {
                    self.reject(topic, payload, r, Some(topic_id.clone()), out);
                    continue;
                }
            };
            self.stats.readings += 1;
            if !r.ignored.is_empty() {
                self.stats.unknown_values += r.ignored.len() as u64;
                debug!(machine = %topic_id, keys = ?r.ignored, "telemetry values that are not sensors of the profile were ignored");
            }
            let (has_seq, has_ts) = (r.has_seq, r.has_ts);
            let item = match self.item(r, machine_slot) {
                Ok(item) => item,
                Err(r) => {
                    self.reject(topic, payload, r, Some(topic_id.clone()), out);
                    continue;
                }
            };
            if has_seq {
                self.sequence(topic, payload, item, machine_slot, now, now_ms, out);
            } else {
                self.order_by_ts(topic, payload, item, has_ts, machine_slot, now, now_ms, out);
            }
        }
    }

    /// The reading's profile (the payload's, else the machine's) and, for a profile other
    /// than milling, its values checked against that profile.
    fn item(&mut self, r: Reading, machine_slot: Slot) -> Result<Item, Rejection> {
        let profiles = &self.cfg.profiles;
        let slot = match r.profile.as_deref() {
            None => machine_slot,
            Some(p) => profiles.by_id(p).ok_or_else(|| {
                Rejection::new(
                    RejectReason::UnknownProfile,
                    format!(
                        "profile {p:?} is not known; known profiles: {}",
                        profiles.ids().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
        };
        let mapped = match profiles.served(slot) {
            None => None,
            Some(served) => {
                let m = served.map(&r.values)?;
                if !m.ignored.is_empty() {
                    self.stats.unknown_values += m.ignored.len() as u64;
                    debug!(machine = %r.telemetry.machine_id, profile = %served.profile.id, keys = ?m.ignored, "telemetry values that are not sensors of the profile were ignored");
                }
                Some(Box::new(m))
            }
        };
        Ok(Item {
            telemetry: r.telemetry,
            slot,
            mapped,
        })
    }
}

/// The machine's state, created (cold) on its first reading: `slot` is the profile of its
/// readings that name none, `first` the profile of this one.
fn machine<'a>(
    machines: &'a mut HashMap<MachineId, Machine>,
    cfg: &ProcessorConfig,
    id: &MachineId,
    slot: Slot,
    first: Slot,
    now_ms: u64,
) -> &'a mut Machine {
    {
        let m = machines.entry(id.clone()).or_insert_with(|| Machine {
            window: Window::new(first, &cfg.profiles, &cfg.window),
            order: Sequencer::new(),
            slot,
            last_seen_ms: now_ms,
            shed: 0,
            by_ts: None,
        });
        m.last_seen_ms = now_ms;
        m
    }
}

impl Processor {
    /// Releases readings held longer than the reorder hold and evicts machines idle longer than
    /// `idle_evict_ms`; call it every few hundred milliseconds.
    pub fn tick(&mut self, now: OffsetDateTime, now_ms: u64, out: &mut Vec<Outgoing>) {
        let holding: Vec<MachineId> = self.holding.drain().collect();
        for id in holding {
            let mut released = std::mem::take(&mut self.released);
            if let Some(m) = self.machines.get_mut(&id) {
                let before = m.order.held();
                m.order.expire(&self.cfg.order, now_ms, &mut released);
                let after = m.order.held();
                if after > 0 {
                    self.holding.insert(id.clone());
                }
                self.add_held(held_delta(before, after));
            }
            self.emit(&id, &mut released, now, out);
            self.released = released;
        }
        let idle = self.cfg.idle_evict_ms;
        let before = self.machines.len();
        self.machines
            .retain(|_, m| now_ms.saturating_sub(m.last_seen_ms) < idle || m.order.held() > 0);
        self.stats.evicted += (before - self.machines.len()) as u64;
    }

    #[allow(clippy::too_many_arguments)]
    fn sequence(
        &mut self,
        topic: &str,
        payload: &[u8],
        t: Item,
        machine_slot: Slot,
        now: OffsetDateTime,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) {
        let id = t.telemetry.machine_id.clone();
        let seq = t.telemetry.seq;
        let m = machine(
            &mut self.machines,
            &self.cfg,
            &id,
            machine_slot,
            t.slot,
            now_ms,
        );
        let mut released = std::mem::take(&mut self.released);
        let before = m.order.held();
        let fate = m.order.push(t, &self.cfg.order, now_ms, &mut released);
        let after = m.order.held();
        if after > 0 {
            self.holding.insert(id.clone());
        }
        self.add_held(held_delta(before, after));
        match fate {
            Fate::Accepted => {}
            Fate::Reordered => self.stats.reordered += 1,
            Fate::Duplicate => self.stats.duplicates += 1,
            Fate::Restarted => self.stats.restarts += 1,
            Fate::TooLate { expected } => {
                let r = Rejection::new(
                    RejectReason::TooLate,
                    format!(
                        "seq {seq} arrived after seq {} was processed (reorder tolerance: {} readings or {} ms)",
                        expected.saturating_sub(1),
                        self.cfg.order.tolerance,
                        self.cfg.order.max_hold_ms
                    ),
                );
                self.reject(topic, payload, r, Some(id.clone()), out);
            }
        }
        self.emit(&id, &mut released, now, out);
        self.released = released;
    }

    /// Orders a reading without `seq` (v2) by its timestamp: the machine's readings without
    /// `seq` must have strictly increasing `ts`. One with the newest `ts` again is a duplicate
    /// (dropped and counted); an older one is `too_late` (nothing is held or reordered without
    /// `seq`: there is no way to know a reading is missing). An accepted reading gets a
    /// synthetic per-machine `seq` (1, 2, ... from the first such reading this instance saw
    /// of the machine, again from 1 after eviction), carried on its feature vector, and never
    /// a gap. A reading stamped with the arrival time (no `ts` either) is never a duplicate:
    /// when the clock has not moved past the previous reading, it is stamped 1 µs after it.
    #[allow(clippy::too_many_arguments)]
    fn order_by_ts(
        &mut self,
        topic: &str,
        payload: &[u8],
        mut item: Item,
        has_ts: bool,
        machine_slot: Slot,
        now: OffsetDateTime,
        now_ms: u64,
        out: &mut Vec<Outgoing>,
    ) {
        let id = item.telemetry.machine_id.clone();
        let m = machine(
            &mut self.machines,
            &self.cfg,
            &id,
            machine_slot,
            item.slot,
            now_ms,
        );
        let t = &mut item.telemetry;
        let mut seq = 1;
        if let Some((last, last_seq)) = m.by_ts {
            if !has_ts && t.ts <= last {
                t.ts = last + time::Duration::microseconds(1);
            }
            if t.ts == last {
                self.stats.duplicates += 1;
                return;
            }
            if t.ts < last {
                let r = Rejection::new(
                    RejectReason::TooLate,
                    format!(
                        "ts {} is before ts {} of the last reading processed; readings without seq are ordered by ts and never reordered",
                        dtwin_schema::time_fmt::format(t.ts),
                        dtwin_schema::time_fmt::format(last)
                    ),
                );
                return self.reject(topic, payload, r, Some(id), out);
            }
            seq = last_seq.saturating_add(1);
        }
        m.by_ts = Some((t.ts, seq));
        t.seq = seq;
        let mut released = std::mem::take(&mut self.released);
        released.push(Released {
            reading: item,
            gap: 0,
        });
        self.emit(&id, &mut released, now, out);
        self.released = released;
    }

    /// Turns released readings of machine `id` into feature vectors.
    fn emit(
        &mut self,
        id: &MachineId,
        released: &mut Vec<Released<Item>>,
        now: OffsetDateTime,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(m) = self.machines.get_mut(id) else {
            released.clear();
            return;
        };
        let max_lag_ms = i128::from(self.cfg.max_lag_ms);
        for r in released.drain(..) {
            self.stats.gaps += r.gap;
            // Shedding happens after ordering, so the sequencer still knows the reading was
            // seen (no waiting for it, no duplicate), and before the window, the expensive part.
            if max_lag_ms > 0 && (now - r.reading.telemetry.ts).whole_milliseconds() > max_lag_ms {
                self.stats.stale += 1;
                m.shed += r.gap + 1;
                continue;
            }
            let gap = r.gap + std::mem::take(&mut m.shed);
            let msg = m.window.features(
                &r.reading,
                gap,
                &self.cfg.profiles,
                &self.cfg.window,
                &self.names,
                &self.hash,
                now,
            );
            self.stats.processed += 1;
            out.push(Outgoing::Features {
                topic: self.topics.features(id),
                payload: to_json(&msg),
            });
        }
    }

    fn reject(
        &mut self,
        topic: &str,
        payload: &[u8],
        rejection: Rejection,
        machine_id: Option<MachineId>,
        out: &mut Vec<Outgoing>,
    ) {
        self.stats.rejected += 1;
        let mut dl = DeadLetter::new(SERVICE, topic, payload, rejection.reason, rejection.detail);
        dl.machine_id = machine_id;
        out.push(Outgoing::DeadLetter {
            topic: self.topics.deadletter(SERVICE),
            reason: rejection.reason,
            payload: to_json(&dl),
        });
    }

    fn topic_machine(&self, topic: &str) -> Result<MachineId, Rejection> {
        match self.topics.parse(topic) {
            Some((TopicKind::Telemetry, raw)) => MachineId::parse(raw).map_err(|e| {
                Rejection::new(RejectReason::BadMachineId, format!("topic machine id: {e}"))
            }),
            _ => Err(Rejection::new(
                RejectReason::TopicMismatch,
                format!("not a telemetry topic: {topic}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::{from_json, Features};

    fn processor() -> Processor {
        Processor::new(Topics::default(), &WindowConfig::default())
    }

    fn good(id: &str, seq: u64) -> Vec<u8> {
        let mut t = Telemetry::new(
            MachineId::parse(id).unwrap(),
            OffsetDateTime::UNIX_EPOCH,
            seq,
        );
        t.temperature_c = Some(36.0);
        t.vibration_mm_s = Some(2.0);
        t.encode()
    }

    #[test]
    fn good_telemetry_becomes_features_on_the_machine_topic() {
        let mut p = processor();
        let mut out = Vec::new();
        p.handle(
            "dtwin/v1/machines/m-1/telemetry",
            &good("m-1", 1),
            OffsetDateTime::UNIX_EPOCH,
            0,
            &mut out,
        );
        let [Outgoing::Features { topic, payload }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(topic, "dtwin/v1/machines/m-1/features");
        let f: Features = from_json(payload).unwrap();
        assert_eq!(f.seq, 1);
        assert_eq!(f.feature_set, p.feature_set());
        assert_eq!(f.values["temperature_c"], Some(36.0));
    }

    #[test]
    fn bad_inputs_are_dead_lettered_and_the_stream_goes_on() {
        let mut p = processor();
        let mut out = Vec::new();
        let cases: [(&str, &[u8], RejectReason); 5] = [
            (
                "dtwin/v1/machines/m-1/telemetry",
                b"{nope",
                RejectReason::NotJson,
            ),
            (
                "dtwin/v1/machines/m-1/telemetry",
                br#"{"schema":"dtwin.telemetry.v1"}"#,
                RejectReason::MissingField,
            ),
            (
                "dtwin/v1/machines/m-2/telemetry",
                &good("m-1", 1),
                RejectReason::TopicMismatch,
            ),
            (
                "dtwin/v1/machines/m%2/telemetry",
                &good("m-1", 1),
                RejectReason::BadMachineId,
            ),
            (
                "dtwin/v1/machines/m-1/telemetry",
                &String::from_utf8(good("m-1", 2))
                    .unwrap()
                    .replace("36.0", "-999")
                    .into_bytes(),
                RejectReason::OutOfRange,
            ),
        ];
        for (topic, payload, want) in cases {
            out.clear();
            p.handle(topic, payload, OffsetDateTime::UNIX_EPOCH, 0, &mut out);
            let [Outgoing::DeadLetter {
                topic: dl_topic,
                reason,
                payload: dl,
            }] = &out[..]
            else {
                panic!("{out:?}")
            };
            assert_eq!(*reason, want, "{topic}");
            assert_eq!(dl_topic, "dtwin/v1/deadletter/feature");
            let d: DeadLetter = from_json(dl).unwrap();
            assert_eq!(d.reason, want);
            assert_eq!(d.topic, topic);
        }
        out.clear();
        p.handle(
            "dtwin/v1/machines/m-1/telemetry",
            &good("m-1", 3),
            OffsetDateTime::UNIX_EPOCH,
            0,
            &mut out,
        );
        assert!(matches!(out[..], [Outgoing::Features { .. }]));
        let stats = p.stats();
        assert_eq!(
            (
                stats.processed,
                stats.rejected,
                stats.machines,
                stats.messages
            ),
            (1, 5, 1, 6)
        );
    }

    fn features_of(out: &[Outgoing]) -> Vec<Features> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::Features { payload, .. } => Some(from_json(payload).unwrap()),
                Outgoing::DeadLetter { .. } => None,
            })
            .collect()
    }

    fn reasons(out: &[Outgoing]) -> Vec<RejectReason> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::DeadLetter { reason, .. } => Some(*reason),
                Outgoing::Features { .. } => None,
            })
            .collect()
    }

    const T: &str = "dtwin/v1/machines/gw-1/telemetry";

    #[test]
    fn a_gateway_batch_is_processed_in_order_and_bad_readings_go_alone() {
        let mut p = processor();
        let mut out = Vec::new();
        let readings: Vec<String> = (1..=5)
            .map(|i| String::from_utf8(good("gw-1", i)).unwrap())
            .collect();
        let mut items = readings.clone();
        items[2] = items[2].replace("36.0", "\"hot\"");
        let batch = format!("[{}]", items.join(","));
        p.handle(T, batch.as_bytes(), OffsetDateTime::UNIX_EPOCH, 0, &mut out);
        let seqs: Vec<u64> = features_of(&out).iter().map(|f| f.seq).collect();
        // Reading 3 is rejected on its own; 4 waits for it, then is released with a gap.
        assert_eq!(reasons(&out), [RejectReason::WrongType]);
        assert_eq!(seqs, [1, 2]);
        out.clear();
        p.tick(OffsetDateTime::UNIX_EPOCH, 10_000, &mut out);
        let f = features_of(&out);
        assert_eq!(
            f.iter().map(|f| (f.seq, f.gap)).collect::<Vec<_>>(),
            [(4, 1), (5, 0)]
        );
        let s = p.stats();
        assert_eq!((s.messages, s.readings, s.gaps, s.rejected), (1, 4, 1, 1));
    }

    #[test]
    fn duplicates_are_dropped_reorders_fixed_and_late_readings_dead_lettered() {
        let mut p = processor();
        let mut out = Vec::new();
        for seq in [1, 2, 2, 4, 3, 5, 1] {
            p.handle(
                T,
                &good("gw-1", seq),
                OffsetDateTime::UNIX_EPOCH,
                0,
                &mut out,
            );
        }
        let seqs: Vec<u64> = features_of(&out).iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(
            reasons(&out).is_empty(),
            "duplicates are counted, not dead-lettered"
        );
        let s = p.stats();
        assert_eq!((s.duplicates, s.reordered, s.gaps), (2, 1, 0));
        // 6 is lost and given up on after 4 later readings; when it comes, it is too late.
        out.clear();
        for seq in [7, 8, 9, 10, 6] {
            p.handle(
                T,
                &good("gw-1", seq),
                OffsetDateTime::UNIX_EPOCH,
                0,
                &mut out,
            );
        }
        let f = features_of(&out);
        assert_eq!(f[0].seq, 7);
        assert_eq!(f[0].gap, 1, "the gap is flagged on the vector after it");
        assert_eq!(reasons(&out), [RejectReason::TooLate]);
        let Outgoing::DeadLetter { payload, .. } = out.last().unwrap() else {
            panic!()
        };
        let dl: DeadLetter = from_json(payload).unwrap();
        assert!(dl.detail.contains("seq 6"), "{}", dl.detail);
        assert_eq!(dl.machine_id.unwrap().as_str(), "gw-1");
    }

    #[test]
    fn readings_behind_max_lag_are_shed_counted_and_leave_a_gap() {
        let mut p = Processor::with_config(
            Topics::default(),
            ProcessorConfig {
                max_lag_ms: 5_000,
                ..ProcessorConfig::default()
            },
        );
        let mut out = Vec::new();
        // Readings stamped at the epoch; the clock says 4 s, then 6 s, then 6 s again.
        let at = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        p.handle(T, &good("gw-1", 1), at(4), 0, &mut out);
        assert_eq!(features_of(&out).len(), 1, "4 s behind: processed");
        out.clear();
        p.handle(T, &good("gw-1", 2), at(6), 0, &mut out);
        assert!(out.is_empty(), "6 s behind: shed, nothing published");
        assert_eq!(p.stats().stale, 1);
        let mut fresh = Telemetry::decode(&good("gw-1", 3)).unwrap();
        fresh.ts = at(6);
        p.handle(T, &fresh.encode(), at(6), 0, &mut out);
        let f = features_of(&out);
        assert_eq!(
            (f.len(), f[0].seq, f[0].gap),
            (1, 3, 1),
            "the shed reading is a gap"
        );
        let s = p.stats();
        assert_eq!((s.readings, s.stale, s.processed, s.rejected), (3, 1, 2, 0));
        // Off (the default): any lag is processed.
        let mut p = processor();
        out.clear();
        p.handle(T, &good("gw-1", 1), at(86_400), 0, &mut out);
        assert_eq!((features_of(&out).len(), p.stats().stale), (1, 0));
    }

    #[test]
    fn idle_machines_are_evicted_and_come_back_cold() {
        let mut p = Processor::with_config(
            Topics::default(),
            ProcessorConfig {
                idle_evict_ms: 1_000,
                ..ProcessorConfig::default()
            },
        );
        let mut out = Vec::new();
        for seq in 1..=12 {
            p.handle(
                T,
                &good("gw-1", seq),
                OffsetDateTime::UNIX_EPOCH,
                0,
                &mut out,
            );
        }
        assert!(!features_of(&out).last().unwrap().cold);
        p.tick(OffsetDateTime::UNIX_EPOCH, 999, &mut out);
        assert_eq!(p.stats().machines, 1);
        p.tick(OffsetDateTime::UNIX_EPOCH, 1_000, &mut out);
        assert_eq!((p.stats().machines, p.stats().evicted), (0, 1));
        out.clear();
        p.handle(
            T,
            &good("gw-1", 13),
            OffsetDateTime::UNIX_EPOCH,
            2_000,
            &mut out,
        );
        let f = features_of(&out);
        assert!(f[0].cold, "a rebuilt window is cold");
        assert_eq!(f[0].window_len, 1);
    }

    #[test]
    fn v2_readings_without_seq_are_ordered_by_ts() {
        let mut p = processor();
        let mut out = Vec::new();
        let at = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        let v2 = |ms: i64, t: f64| {
            format!(r#"{{"ts":{ms},"values":{{"temperature_c":{t},"vibration_mm_s":2}}}}"#)
        };
        let base = 1_795_000_000_000;
        for (ms, temp) in [
            (0, 36.0),
            (1_000, 37.0),
            (1_000, 99.0),
            (3_000, 38.0),
            (2_000, 50.0),
        ] {
            p.handle(T, v2(base + ms, temp).as_bytes(), at(0), 0, &mut out);
        }
        let f = features_of(&out);
        assert_eq!(
            f.iter().map(|f| (f.seq, f.gap)).collect::<Vec<_>>(),
            [(1, 0), (2, 0), (3, 0)],
            "synthetic seq, never a gap"
        );
        assert_eq!(f[2].values["temperature_c"], Some(38.0));
        assert_eq!(reasons(&out), [RejectReason::TooLate]);
        let Outgoing::DeadLetter { payload, .. } = out.last().unwrap() else {
            panic!()
        };
        let dl: DeadLetter = from_json(payload).unwrap();
        assert!(dl.detail.contains("without seq"), "{}", dl.detail);
        let s = p.stats();
        assert_eq!(
            (s.readings, s.duplicates, s.processed, s.rejected),
            (5, 1, 3, 1)
        );
    }

    #[test]
    fn v2_readings_without_ts_take_the_arrival_time_and_are_never_duplicates() {
        let mut p = processor();
        let mut out = Vec::new();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        for _ in 0..3 {
            // The clock does not move: each is stamped 1 µs after the one before.
            p.handle(T, br#"{"values":{"temperature_c":36.5}}"#, now, 0, &mut out);
        }
        let f = features_of(&out);
        assert_eq!(f.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(p.stats().duplicates, 0);
        // With seq but no ts: the sequencer, as v1.
        out.clear();
        let mut p = processor();
        for seq in [1, 2, 2, 3] {
            let body = format!(r#"{{"seq":{seq},"values":{{"temperature_c":36.5}}}}"#);
            p.handle(T, body.as_bytes(), now, 0, &mut out);
        }
        assert_eq!(
            features_of(&out).iter().map(|f| f.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(p.stats().duplicates, 1);
    }

    #[test]
    fn v2_rejections_and_unknown_values() {
        let mut p = processor();
        let mut out = Vec::new();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let cases: [(&[u8], RejectReason); 3] = [
            (
                br#"{"machine_id":"gw-2","values":{}}"#,
                RejectReason::TopicMismatch,
            ),
            (
                br#"{"profile":"turning","values":{}}"#,
                RejectReason::UnknownProfile,
            ),
            (
                br#"{"values":{"temperature_c":"hot"}}"#,
                RejectReason::WrongType,
            ),
        ];
        for (payload, want) in cases {
            out.clear();
            p.handle(T, payload, now, 0, &mut out);
            assert_eq!(reasons(&out), [want]);
        }
        out.clear();
        p.handle(
            T,
            br#"{"values":{"temperature_c":36.5,"humidity_pct":40,"oil_ok":true}}"#,
            now,
            0,
            &mut out,
        );
        assert_eq!(
            features_of(&out).len(),
            1,
            "accepted without the unknown keys"
        );
        let s = p.stats();
        assert_eq!((s.unknown_values, s.rejected, s.processed), (2, 3, 1));
    }

    proptest::proptest! {
        /// The held count kept at every change equals a scan of every machine's sequencer,
        /// through pushes with gaps, duplicates and reordering, expiry ticks and scale-out.
        #[test]
        fn held_count_matches_a_scan(
            steps in proptest::collection::vec((0usize..5, 1u64..40, 0u8..10), 0..300),
        ) {
            let mut p = processor();
            let mut out = Vec::new();
            let mut clock_ms = 0;
            for (machine, seq, action) in steps {
                clock_ms += 50;
                match action {
                    0 => p.tick(OffsetDateTime::UNIX_EPOCH, clock_ms, &mut out),
                    1 => p.retain_machines(|id| id != format!("m-{machine}")),
                    _ => {
                        let id = format!("m-{machine}");
                        let topic = format!("dtwin/v1/machines/{id}/telemetry");
                        p.handle(&topic, &good(&id, seq), OffsetDateTime::UNIX_EPOCH, clock_ms, &mut out);
                    }
                }
                out.clear();
                let scanned: u64 = p.machines.values().map(|m| m.order.held() as u64).sum();
                proptest::prop_assert_eq!(p.stats().held, scanned);
            }
        }
    }
}
