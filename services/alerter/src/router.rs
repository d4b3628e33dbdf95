//! The pure core of the alerter's loop: every incoming message (topic + bytes) in, one
//! [`Decision`] out. Silences update the silence list; scale-out messages (peers'
//! announcements, alert states) go to the [`Handover`]; risk verdicts of the machines this
//! instance handles go to the [`Processor`]. No I/O and no clock: the shell in [`crate::run`]
//! carries the decision out (queue and publish, hand the silences to the sender, count, log)
//! and acks.

use crate::handover::{self, AlertStateError, Handover};
use crate::processor::{Outcome, Processor, ProcessorStats};
use dtwin_cluster::{Change, Node};
use dtwin_schema::{MachineId, Silence, TopicKind, Topics, SILENCE_SCHEMA};
use std::collections::BTreeMap;

/// What the shell does with one message. Every decision ends with the ack, after the work.
#[derive(Debug)]
pub enum Decision {
    /// A risk verdict this instance handles: save `window` (the confirmation window that
    /// changed), carry out `outcome`, then ack.
    Verdict {
        /// What the verdict did.
        outcome: Outcome,
        /// The machine whose confirmation window changed, and the new window.
        window: Option<(MachineId, u64)>,
    },
    /// A silence was set or replaced: the sender gets `silences`.
    SilenceSet {
        /// The new silence.
        silence: Silence,
        /// Every silence now set, by id.
        silences: Vec<Silence>,
    },
    /// A silence was lifted (an empty payload): the sender gets `silences`.
    SilenceRemoved {
        /// The lifted silence's id.
        silence_id: String,
        /// Every silence still set, by id.
        silences: Vec<Silence>,
    },
    /// The instances changed: this one took over the alert state of `adopted` machines and
    /// dropped `forgotten` others.
    ClusterChanged {
        /// What changed.
        change: Change,
        /// Machines gained with a published alert state.
        adopted: u64,
        /// Machines another instance handles now.
        forgotten: usize,
    },
    /// The alert state the previous owner of `machine_id` published after the machine moved
    /// here was taken over (one handover).
    Adopted {
        /// The machine.
        machine_id: MachineId,
        /// Whether its alert is firing.
        firing: bool,
    },
    /// A bad message: log it as a warning and ack (a redelivery would be just as bad).
    Ignored(Ignored),
    /// Nothing to do but ack.
    Ack(AckOnly),
}

/// A message the core refused, and why.
#[derive(Debug)]
pub enum Ignored {
    /// A silence that cannot be set; the silence list is unchanged.
    Silence(SilenceError),
    /// An alert state that cannot be read.
    AlertState(AlertStateError),
}

/// Why a message needs nothing but its ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOnly {
    /// A risk verdict or alert action of a machine another instance handles.
    NotOwned,
    /// An alert state, kept for a later handover.
    StateKept,
    /// A peer's announcement that changed nothing.
    NoChange,
    /// An empty payload for a silence that is not set.
    NoSuchSilence,
}

/// Why a silence was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// Not JSON, or not shaped like a [`Silence`].
    #[error("not a silence: {0}")]
    NotJson(#[source] serde_json::Error),
    /// Another schema than [`SILENCE_SCHEMA`].
    #[error("schema is {0:?}; expected {SILENCE_SCHEMA:?}")]
    Schema(String),
    /// The payload's id is not the topic's.
    #[error("silence_id {found:?} differs from the topic's {topic:?}")]
    IdMismatch {
        /// The payload's `silence_id`.
        found: String,
        /// The topic's last segment.
        topic: String,
    },
    /// Neither machines nor lines: it would silence nothing.
    #[error("a silence needs machines or lines")]
    NoTargets,
}

/// A silence message for the silence `id`: `Some` to set, `None` (empty payload) to remove.
///
/// # Errors
/// [`SilenceError`]: not a silence, another schema, a different id than the topic's, or no
/// machines or lines.
pub fn silence_update(id: &str, payload: &[u8]) -> Result<Option<Silence>, SilenceError> {
    if payload.is_empty() {
        return Ok(None);
    }
    let s: Silence = serde_json::from_slice(payload).map_err(SilenceError::NotJson)?;
    if s.schema != SILENCE_SCHEMA {
        return Err(SilenceError::Schema(s.schema));
    }
    if s.silence_id != id {
        return Err(SilenceError::IdMismatch {
            found: s.silence_id,
            topic: id.to_owned(),
        });
    }
    if s.machines.is_empty() && s.lines.is_empty() {
        return Err(SilenceError::NoTargets);
    }
    Ok(Some(s))
}

/// The alerter's state between messages: the processor (every machine's alert), this
/// instance's view of its peers, the published alert states, and the silences.
#[derive(Debug)]
pub struct Router {
    topics: Topics,
    processor: Processor,
    node: Node,
    handover: Handover,
    silences: BTreeMap<String, Silence>,
}

impl Router {
    /// A core around `processor` (already resumed from the spool) for the instance `node`.
    pub fn new(topics: Topics, node: Node, processor: Processor) -> Self {
        Self {
            topics,
            processor,
            node,
            handover: Handover::new(),
            silences: BTreeMap::new(),
        }
    }

    /// The processor's counters.
    pub fn stats(&self) -> ProcessorStats {
        self.processor.stats()
    }

    /// The processor, to look at.
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// This instance's view of its peers.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every silence set, by id.
    pub fn silences(&self) -> Vec<Silence> {
        self.silences.values().cloned().collect()
    }

    /// Handles one message from `topic`.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Decision {
        if let Some(id) = self.topics.parse_silence(topic) {
            return self.silence(id, payload);
        }
        if self.node.membership().is_clustered() {
            if let Some(d) = self.cluster(topic, payload) {
                return d;
            }
        }
        let outcome = self.processor.handle(topic, payload);
        if let Outcome::Notify(n) = &outcome {
            if self.node.membership().is_clustered() {
                self.handover.produced(&n.state);
            }
        }
        Decision::Verdict {
            outcome,
            window: self.processor.take_window_change(),
        }
    }

    fn silence(&mut self, id: &str, payload: &[u8]) -> Decision {
        match silence_update(id, payload) {
            Ok(Some(s)) => {
                self.silences.insert(id.to_owned(), s.clone());
                Decision::SilenceSet {
                    silence: s,
                    silences: self.silences(),
                }
            }
            Ok(None) if self.silences.remove(id).is_some() => Decision::SilenceRemoved {
                silence_id: id.to_owned(),
                silences: self.silences(),
            },
            Ok(None) => Decision::Ack(AckOnly::NoSuchSilence),
            Err(e) => Decision::Ignored(Ignored::Silence(e)),
        }
    }

    /// The scale-out part: membership changes move machines in and out of the processor,
    /// alert states feed the [`Handover`], verdicts of machines another instance owns are
    /// skipped. `None`: a verdict of this instance's (or anything else for the processor).
    fn cluster(&mut self, topic: &str, payload: &[u8]) -> Option<Decision> {
        if let Some(id) = self.topics.parse_alert_state(topic) {
            let s = match handover::decode(id, payload) {
                Ok(s) => s,
                Err(e) => return Some(Decision::Ignored(Ignored::AlertState(e))),
            };
            let Some(firing) = self.handover.received(&s, self.node.owns(id)) else {
                return Some(Decision::Ack(AckOnly::StateKept));
            };
            let is_firing = firing.is_some();
            self.processor.adopt(s.machine_id.clone(), firing);
            return Some(Decision::Adopted {
                machine_id: s.machine_id,
                firing: is_firing,
            });
        }
        if let Some((TopicKind::Risk, id)) = self.topics.parse(topic) {
            return (!self.node.owns(id)).then_some(Decision::Ack(AckOnly::NotOwned));
        }
        if let Some(id) = self.topics.parse_alert_control(topic) {
            return (!self.node.owns(id)).then_some(Decision::Ack(AckOnly::NotOwned));
        }
        let before = self.node.membership().clone();
        let change = match self.node.handle(topic, payload)? {
            None => return Some(Decision::Ack(AckOnly::NoChange)),
            Some(change) => change,
        };
        let r = self
            .handover
            .reassign(self.processor.machines(), &before, self.node.membership());
        for m in &r.forget {
            self.processor.forget(m);
        }
        let adopted = r.adopt.len() as u64;
        for (m, firing) in r.adopt {
            self.processor.adopt(m, firing);
        }
        Some(Decision::ClusterChanged {
            change,
            adopted,
            forgotten: r.forget.len(),
        })
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
