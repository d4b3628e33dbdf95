//! The service's pure core: what each [`Action`] of the Sparkplug host state machine
//! ([`dtwin_sparkplug::HostState`]) becomes on dtwin's own topics. No I/O and no clock of its
//! own: an action, the message it came from and the time in; publishes ([`Out`]) out.
//!
//! - `Birth`: the machine gets the known profile whose every sensor `key` is among the
//!   birth's numeric metric names (the one with most sensors; on a tie the one given first,
//!   the built-in milling, then the drafted ones last). None fits: a profile drafted from the
//!   birth (every numeric metric a sensor, id `spb_{machine}`), published retained on
//!   `{prefix}/profiles/{id}` as TOML (the feature service serves it; a user saves and edits
//!   it) and known from then on, so a device with the same metrics gets it too. With drafting
//!   off (or a birth without a numeric metric): an `unknown_profile` dead letter listing the
//!   numeric metric names, so a user can write that profile (`--profile FILE`).
//! - `Reading` of a machine with a profile: a v2 reading
//!   `{"schema":"dtwin.telemetry.v2","machine_id":..,"ts":<epoch ms>,"profile":..,"values":{..}}`
//!   on `{prefix}/machines/{id}/telemetry`, without `seq` (the feature service orders by
//!   `ts`), so Sparkplug readings take exactly the JSON path. `values` holds the profile's
//!   sensor keys: a live reading carries the last value of the metrics it does not repeat
//!   (Sparkplug reports by exception: a metric keeps its value until it changes); a
//!   historical one only its own values and `"historical": true` (late data, not the current
//!   state; the host hands them over first, in timestamp order). Of a machine
//!   without a profile: an `unknown_profile` dead letter.
//! - `Online`/`Offline`: the machine's retained status (`dtwin.status.v1`).
//! - `Rebirth`: `Node Control/Rebirth` on the node's NCMD topic (QoS 1, not retained).
//! - `DeadLetter`: `{prefix}/deadletter/sparkplug`, reason `sparkplug`, the host's own reason
//!   (`not_protobuf`, `seq_gap`, ...) first in the detail.

use dtwin_bus::QoS;
use dtwin_profile::Profile;
use dtwin_schema::{
    to_json, DeadLetter, MachineId, MachineStatus, Presence, RejectReason, Topics, STATUS_SCHEMA,
    TELEMETRY_V2_SCHEMA,
};
use dtwin_sparkplug::{rebirth_request, Action, DataType, Topic};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// The service's name: its dead-letter topic segment, metrics prefix and client id.
pub const SERVICE: &str = "sparkplug";

/// The dead-letter reason (metric label) of a birth no profile fits and of readings of a
/// machine without a profile.
pub const UNKNOWN_PROFILE: &str = "unknown_profile";

/// What a publish is, for the service's metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    /// A v2 reading on the machine's telemetry topic.
    Telemetry,
    /// A machine's retained status.
    Status,
    /// A profile drafted from a birth, retained on `{prefix}/profiles/{id}`.
    Profile,
    /// A rebirth request (NCMD) to an edge node.
    Rebirth,
    /// A dead letter, with its specific reason (the host's, or [`UNKNOWN_PROFILE`]).
    DeadLetter(&'static str),
}

/// One publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Retained.
    pub retain: bool,
    /// The QoS to publish at.
    pub qos: QoS,
    /// What it is.
    pub kind: OutKind,
}

/// The message an action came from, for dead letters.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its payload.
    pub payload: &'a [u8],
}

/// A machine's profile and the last value of each of its sensor keys.
#[derive(Debug, Clone)]
struct Assigned {
    /// Index in [`Translator::profiles`].
    profile: usize,
    /// Sensor key and its last live value.
    last: BTreeMap<String, f64>,
}

/// Host actions in, dtwin publishes out; the profile of every born machine.
#[derive(Debug, Clone)]
pub struct Translator {
    topics: Topics,
    /// The loaded profiles in the order given, then milling, then the drafted ones.
    profiles: Vec<Profile>,
    machines: HashMap<MachineId, Assigned>,
    /// Draft a profile from a birth none fits.
    draft: bool,
}

impl Translator {
    /// A translator publishing under `prefix`, knowing the built-in milling profile and
    /// `loaded` (the feature service's `--profile` files; one with the id `milling` replaces
    /// nothing: the built-in one is always there).
    pub fn new(prefix: &str, loaded: Vec<Profile>) -> Self {
        let mut profiles: Vec<Profile> = loaded.into_iter().filter(|p| p.id != "milling").collect();
        profiles.push(Profile::milling());
        Self {
            topics: Topics::new(prefix),
            profiles,
            machines: HashMap::new(),
            draft: true,
        }
    }

    /// With `draft` false, a birth no profile fits is an `unknown_profile` dead letter
    /// instead of a drafted profile (a plant that wants only its declared profiles).
    pub fn drafting(mut self, draft: bool) -> Self {
        self.draft = draft;
        self
    }

    /// The ids of the known profiles, milling last.
    pub fn profile_ids(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.id.as_str()).collect()
    }

    /// The profile `machine` was given at its last birth, if one fitted.
    pub fn profile_of(&self, machine: &MachineId) -> Option<&str> {
        self.machines
            .get(machine)
            .map(|a| self.profiles[a.profile].id.as_str())
    }

    /// The publishes `action` (from the message `source`, handled at `now_ms`, milliseconds
    /// since the Unix epoch) becomes.
    pub fn apply(&mut self, action: Action, source: Source<'_>, now_ms: u64) -> Vec<Out> {
        match action {
            Action::Birth { machine, metrics } => self.birth(machine, &metrics, source, now_ms),
            Action::Reading {
                machine,
                ts,
                values,
                historical,
                ..
            } => self.reading(&machine, ts, &values, historical, source, now_ms),
            Action::Online { machine } => vec![self.status(&machine, Presence::Online, now_ms)],
            Action::Offline { machine } => vec![self.status(&machine, Presence::Offline, now_ms)],
            Action::Rebirth { node, .. } => vec![Out {
                topic: node.ncmd_topic(),
                payload: rebirth_request(now_ms),
                retain: false,
                qos: QoS::AtLeastOnce,
                kind: OutKind::Rebirth,
            }],
            Action::DeadLetter { reason, detail } => vec![self.dead_letter(
                reason.as_str(),
                RejectReason::Sparkplug,
                format!("{reason}: {detail}"),
                machine_of(source.topic),
                source,
                now_ms,
            )],
        }
    }

    fn birth(
        &mut self,
        machine: MachineId,
        metrics: &[(String, DataType)],
        source: Source<'_>,
        now_ms: u64,
    ) -> Vec<Out> {
        let numeric: Vec<&str> = metrics
            .iter()
            .filter(|(_, t)| t.is_numeric())
            .map(|(n, _)| n.as_str())
            .collect();
        let fits = |p: &Profile| {
            !p.sensors.is_empty() && p.sensors.iter().all(|s| numeric.contains(&s.key.as_str()))
        };
        // Most sensors wins; `max_by_key` keeps the last maximum, so walk backwards to keep
        // the first given on a tie.
        let best = self
            .profiles
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, p)| fits(p))
            .max_by_key(|(_, p)| p.sensors.len())
            .map(|(i, _)| i);
        let mut out = Vec::new();
        let best = match best {
            None if self.draft && !numeric.is_empty() => self
                .draft_profile(&machine, &numeric, source)
                .map(|(index, published)| {
                    out.push(published);
                    index
                }),
            best => best,
        };
        match best {
            Some(profile) => {
                let keep = self
                    .machines
                    .get(&machine)
                    .filter(|a| a.profile == profile)
                    .map(|a| a.last.clone())
                    .unwrap_or_default();
                self.machines.insert(
                    machine,
                    Assigned {
                        profile,
                        last: keep,
                    },
                );
                out
            }
            None => {
                self.machines.remove(&machine);
                let detail = format!(
                    "no profile fits machine {machine}: its birth's numeric metrics are [{}]; give a profile whose sensor keys are among those names (--profile FILE; a sensor's `key` is the metric name). Known: {}",
                    numeric.join(", "),
                    self.missing_keys(&numeric),
                );
                vec![self.dead_letter(
                    UNKNOWN_PROFILE,
                    RejectReason::UnknownProfile,
                    detail,
                    Some(machine),
                    source,
                    now_ms,
                )]
            }
        }
    }

    /// Drafts a profile from the birth's numeric metric names `numeric`, knows it from now on
    /// and returns its index and its retained publish. The id is `spb_{machine}` (made unique
    /// among the known ids), so the same device drafts the same profile after a restart.
    fn draft_profile(
        &mut self,
        machine: &MachineId,
        numeric: &[&str],
        source: Source<'_>,
    ) -> Option<(usize, Out)> {
        let base: String = format!("spb_{machine}").chars().take(60).collect();
        let mut id = base.clone();
        let mut k = 2;
        while self.profiles.iter().any(|p| p.id == id) {
            id = format!("{base}_{k}");
            k += 1;
        }
        let text = dtwin_profile::draft::draft_from_names(
            &id,
            &format!(
                "the Sparkplug birth of machine {machine} ({})",
                source.topic
            ),
            numeric,
        );
        // A draft always parses (tested in dtwin-profile); should one not, the machine is
        // left without a profile (an unknown_profile dead letter) rather than the service
        // stopping.
        let profile = Profile::parse(&text, &id)
            .map_err(|e| tracing::error!(error = %e, "a drafted profile did not parse"))
            .ok()?;
        self.profiles.push(profile);
        let out = Out {
            topic: self.topics.profile(&id),
            payload: text.into_bytes(),
            retain: true,
            qos: QoS::AtLeastOnce,
            kind: OutKind::Profile,
        };
        Some((self.profiles.len() - 1, out))
    }

    /// A profile this translator drafted, by id.
    pub fn drafted(&self, id: &str) -> Option<&Profile> {
        let milling = self.profiles.iter().position(|p| p.id == "milling")?;
        self.profiles[milling + 1..].iter().find(|p| p.id == id)
    }

    /// Each known profile with the sensor keys the birth lacks (the first few).
    fn missing_keys(&self, numeric: &[&str]) -> String {
        self.profiles
            .iter()
            .map(|p| {
                let missing: Vec<&str> = p
                    .sensors
                    .iter()
                    .map(|s| s.key.as_str())
                    .filter(|k| !numeric.contains(k))
                    .collect();
                let shown = missing
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = if missing.len() > 5 { ", ..." } else { "" };
                format!("{} (lacks {shown}{more})", p.id)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn reading(
        &mut self,
        machine: &MachineId,
        ts: u64,
        values: &[(String, f64)],
        historical: bool,
        source: Source<'_>,
        now_ms: u64,
    ) -> Vec<Out> {
        let Some(assigned) = self.machines.get_mut(machine) else {
            let detail = format!(
                "machine {machine} has no profile (none fitted its birth, see its unknown_profile dead letter); its readings are dropped until a birth a profile fits"
            );
            return vec![self.dead_letter(
                UNKNOWN_PROFILE,
                RejectReason::UnknownProfile,
                detail,
                Some(machine.clone()),
                source,
                now_ms,
            )];
        };
        let profile = &self.profiles[assigned.profile];
        let is_key = |name: &str| profile.sensors.iter().any(|s| s.key == name);
        let mut out = serde_json::Map::new();
        if historical {
            for (name, v) in values.iter().filter(|(n, _)| is_key(n)) {
                out.insert(name.clone(), serde_json::Value::from(*v));
            }
        } else {
            for (name, v) in values.iter().filter(|(n, _)| is_key(n)) {
                assigned.last.insert(name.clone(), *v);
            }
            for (name, v) in &assigned.last {
                out.insert(name.clone(), serde_json::Value::from(*v));
            }
        }
        if out.is_empty() {
            // No sensor of the profile in it (only other metrics): nothing to compute from.
            return Vec::new();
        }
        let mut body = serde_json::json!({
            "schema": TELEMETRY_V2_SCHEMA,
            "machine_id": machine.as_str(),
            "ts": ts,
            "profile": profile.id,
            "values": out,
        });
        if historical {
            body["historical"] = serde_json::Value::Bool(true);
        }
        vec![Out {
            topic: self.topics.telemetry(machine),
            payload: body.to_string().into_bytes(),
            retain: false,
            qos: QoS::AtLeastOnce,
            kind: OutKind::Telemetry,
        }]
    }

    fn status(&self, machine: &MachineId, state: Presence, now_ms: u64) -> Out {
        Out {
            topic: self.topics.status(machine),
            payload: to_json(&MachineStatus {
                schema: STATUS_SCHEMA.to_owned(),
                machine_id: machine.clone(),
                ts: at(now_ms),
                state,
                product_type: None,
            }),
            retain: true,
            qos: QoS::AtLeastOnce,
            kind: OutKind::Status,
        }
    }

    fn dead_letter(
        &self,
        label: &'static str,
        reason: RejectReason,
        detail: String,
        machine: Option<MachineId>,
        source: Source<'_>,
        now_ms: u64,
    ) -> Out {
        let mut dl = DeadLetter::new(SERVICE, source.topic, source.payload, reason, detail);
        dl.ts = at(now_ms);
        dl.machine_id = machine;
        Out {
            topic: self.topics.deadletter(SERVICE),
            payload: to_json(&dl),
            retain: false,
            qos: QoS::AtLeastOnce,
            kind: OutKind::DeadLetter(label),
        }
    }
}

/// The machine a Sparkplug topic names (its device, else its edge node), if it parses.
fn machine_of(topic: &str) -> Option<MachineId> {
    match Topic::parse(topic).ok()? {
        Topic::Edge { node, device, .. } => Some(node.machine_id(device.as_deref())),
        _ => None,
    }
}

/// `now_ms` as a time (the epoch for an impossible value).
fn at(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
