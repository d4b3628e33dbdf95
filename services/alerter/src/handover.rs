//! Scale-out of the alerter: N instances share the fleet by machine (the membership and
//! rendezvous hashing of `dtwin-cluster`), and hand a machine's open alert over through the
//! broker, so a machine that moves to another instance neither fires its alert a second time
//! nor loses its resolution.
//!
//! Every alerter (scaled out or not) publishes each machine's alert state after every
//! lifecycle transition, retained, on `{prefix}/alert-state/{machine_id}`
//! ([`dtwin_schema::AlertSnapshot`]). Scaled-out instances subscribe to all of them and keep
//! the newest per machine ([`Handover`]). When an instance gains machines (it starts, or a
//! peer leaves) it takes their alert state from there ([`Handover::reassign`]); when it loses
//! machines (a peer joins) it forgets them. A snapshot that arrives for a machine it already
//! owns and is newer than anything it applied (the previous owner's last transition, still in
//! flight when the machine moved) is taken over too ([`Handover::received`]).
//!
//! What does not move: the confirmation window of an idle machine (it starts empty on the new
//! owner, so an alert that was about to fire needs `confirm_k` fresh AT_RISK verdicts), and
//! mail still pending in the old instance's spool (sent when that instance comes back, as
//! after any restart).

use dtwin_cluster::Membership;
use dtwin_schema::{AlertSnapshot, Firing, MachineId, ALERT_STATE_SCHEMA};
use std::collections::{BTreeSet, HashMap};
use time::OffsetDateTime;

/// Largest alert-state payload accepted (a snapshot is ~300 bytes).
pub const MAX_STATE_BYTES: usize = 16 * 1024;

/// What a membership change does to this instance's machines.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reassignment {
    /// Gained machines with a published alert state: take it over.
    pub adopt: Vec<(MachineId, Option<Firing>)>,
    /// Machines another instance handles now: drop their state.
    pub forget: Vec<MachineId>,
}

/// The newest published alert state of every machine, and what this instance applied.
#[derive(Debug, Default, Clone)]
pub struct Handover {
    latest: HashMap<MachineId, (OffsetDateTime, Option<Firing>)>,
    applied: HashMap<MachineId, OffsetDateTime>,
}

impl Handover {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Machines with a published state.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether no state has been seen.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The newest published state of `machine`: when, and its firing alert.
    pub fn get(&self, machine: &MachineId) -> Option<(OffsetDateTime, Option<&Firing>)> {
        self.latest.get(machine).map(|(ts, f)| (*ts, f.as_ref()))
    }

    /// Notes a transition this instance made (and is publishing).
    pub fn produced(&mut self, snapshot: &AlertSnapshot) {
        self.keep(snapshot);
        self.applied
            .insert(snapshot.machine_id.clone(), snapshot.ts);
    }

    /// Records a published snapshot. Returns the alert state to adopt when `owned` (this
    /// instance handles the machine now) and the snapshot is newer than anything applied
    /// here: a transition the previous owner made just before the machine moved.
    pub fn received(&mut self, snapshot: &AlertSnapshot, owned: bool) -> Option<Option<Firing>> {
        self.keep(snapshot);
        let m = &snapshot.machine_id;
        let newer = self.applied.get(m).is_none_or(|ts| snapshot.ts > *ts);
        if !(owned && newer) {
            return None;
        }
        self.applied.insert(m.clone(), snapshot.ts);
        Some(snapshot.firing.clone())
    }

    fn keep(&mut self, s: &AlertSnapshot) {
        match self.latest.get(&s.machine_id) {
            Some((ts, _)) if *ts > s.ts => {}
            _ => {
                self.latest
                    .insert(s.machine_id.clone(), (s.ts, s.firing.clone()));
            }
        }
    }

    /// What to do after the membership went from `before` to `after`, for the machines with
    /// local state (`local`) or a published one: adopt the published state of every machine
    /// gained (a gained machine with none keeps what it has, e.g. from this instance's spool),
    /// forget every local machine not owned any more.
    pub fn reassign<'a>(
        &mut self,
        local: impl IntoIterator<Item = &'a MachineId>,
        before: &Membership,
        after: &Membership,
    ) -> Reassignment {
        let local: BTreeSet<&MachineId> = local.into_iter().collect();
        let mut out = Reassignment::default();
        for m in &local {
            if !after.owns(m.as_str()) {
                out.forget.push((*m).clone());
                self.applied.remove(*m);
            }
        }
        for (m, (ts, firing)) in &self.latest {
            if after.owns(m.as_str()) && !before.owns(m.as_str()) {
                out.adopt.push((m.clone(), firing.clone()));
                self.applied.insert(m.clone(), *ts);
            }
        }
        out.adopt.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Why a published alert state was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AlertStateError {
    /// Larger than [`MAX_STATE_BYTES`].
    #[error("payload is {0} bytes; at most {MAX_STATE_BYTES}")]
    Oversize(usize),
    /// Not JSON, or not shaped like an [`AlertSnapshot`].
    #[error("not an alert state: {0}")]
    NotJson(#[source] serde_json::Error),
    /// Another schema than [`ALERT_STATE_SCHEMA`].
    #[error("schema is {0:?}; expected {ALERT_STATE_SCHEMA:?}")]
    Schema(String),
    /// The snapshot is about another machine than the topic's.
    #[error("machine_id {machine_id} does not match the topic's {topic_id:?}")]
    MachineMismatch {
        /// The snapshot's machine.
        machine_id: MachineId,
        /// The topic's machine.
        topic_id: String,
    },
}

/// Decodes a snapshot received on the alert-state topic of `topic_id`.
///
/// # Errors
/// [`AlertStateError`]: oversize, not a snapshot, another schema, or a machine other than the
/// topic's.
pub fn decode(topic_id: &str, payload: &[u8]) -> Result<AlertSnapshot, AlertStateError> {
    if payload.len() > MAX_STATE_BYTES {
        return Err(AlertStateError::Oversize(payload.len()));
    }
    let s: AlertSnapshot = dtwin_schema::from_json(payload).map_err(AlertStateError::NotJson)?;
    if s.schema != ALERT_STATE_SCHEMA {
        return Err(AlertStateError::Schema(s.schema));
    }
    if s.machine_id.as_str() != topic_id {
        return Err(AlertStateError::MachineMismatch {
            machine_id: s.machine_id,
            topic_id: topic_id.to_owned(),
        });
    }
    Ok(s)
}

#[cfg(test)]
#[path = "handover_tests.rs"]
mod tests;
