//! Typed topics. Every topic the services use is built here from the prefix, and every
//! incoming topic is parsed back here; no service writes a topic string by hand.
//!
//! ```text
//! {prefix}/machines/{machine_id}/telemetry   sensor readings
//! {prefix}/machines/{machine_id}/features    feature vector
//! {prefix}/machines/{machine_id}/risk        risk verdict
//! {prefix}/machines/{machine_id}/status      online/offline (retained)
//! {prefix}/alerts/{machine_id}               alert events
//! {prefix}/alert-state/{machine_id}          the machine's open alert, if any (retained)
//! {prefix}/deadletter/{service}              rejected input + reason
//! {prefix}/models/current                    deployed model (retained; milling machines)
//! {prefix}/models/{profile}                  deployed model of another profile (retained)
//! {prefix}/models/{profile}/{kind}           a profile's quality, anomaly or rul model (retained)
//! {prefix}/publishers/{client_id}/status     a publisher's online/offline (retained, LWT)
//! {prefix}/drift/{service}                   drift status of a service's inputs (retained)
//! {prefix}/drift/{service}/{profile}/{kind}  drift status of a profile's other-kind model
//! {prefix}/control/silences/{silence_id}      an operator's silence (retained; empty = removed)
//! {prefix}/control/alerts/{machine_id}        a person acknowledges or clears an alert
//! ```

use crate::machine_id::MachineId;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "dtwin/v1";

/// What a machine-scoped topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// `{prefix}/machines/{id}/telemetry`
    Telemetry,
    /// `{prefix}/machines/{id}/features`
    Features,
    /// `{prefix}/machines/{id}/risk`
    Risk,
    /// `{prefix}/machines/{id}/status`
    Status,
    /// `{prefix}/alerts/{id}`
    Alert,
}

impl TopicKind {
    fn suffix(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Features => "features",
            Self::Risk => "risk",
            Self::Status => "status",
            Self::Alert => "",
        }
    }
}

/// Builds and parses the topics under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    /// Topics under `prefix` (a trailing slash is ignored).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The prefix, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic of `kind` for one machine.
    pub fn machine(&self, kind: TopicKind, id: &MachineId) -> String {
        match kind {
            TopicKind::Alert => format!("{}/alerts/{}", self.prefix, id),
            _ => format!("{}/machines/{}/{}", self.prefix, id, kind.suffix()),
        }
    }

    /// `{prefix}/machines/{id}/telemetry`
    pub fn telemetry(&self, id: &MachineId) -> String {
        self.machine(TopicKind::Telemetry, id)
    }
    /// `{prefix}/machines/{id}/features`
    pub fn features(&self, id: &MachineId) -> String {
        self.machine(TopicKind::Features, id)
    }
    /// `{prefix}/machines/{id}/risk`
    pub fn risk(&self, id: &MachineId) -> String {
        self.machine(TopicKind::Risk, id)
    }
    /// `{prefix}/machines/{id}/status`
    pub fn status(&self, id: &MachineId) -> String {
        self.machine(TopicKind::Status, id)
    }
    /// `{prefix}/alerts/{id}`
    pub fn alert(&self, id: &MachineId) -> String {
        self.machine(TopicKind::Alert, id)
    }
    /// `{prefix}/deadletter/{service}`
    pub fn deadletter(&self, service: &str) -> String {
        format!("{}/deadletter/{}", self.prefix, service)
    }
    /// `{prefix}/models/current` (retained)
    pub fn model_current(&self) -> String {
        format!("{}/models/current", self.prefix)
    }
    /// `{prefix}/models/{profile}` (retained): the model of a profile other than milling,
    /// whose model stays on [`Topics::model_current`].
    pub fn model_for(&self, profile: &str) -> String {
        format!("{}/models/{}", self.prefix, profile)
    }

    /// `{prefix}/models/+`: every deployed model, `current` included.
    pub fn models(&self) -> String {
        format!("{}/models/+", self.prefix)
    }

    /// `{prefix}/models/{profile}/{kind}` (retained): a profile's model of another kind than
    /// the failure classifier (`quality`, `anomaly`, `rul`); milling's too
    /// (`models/milling/anomaly`).
    pub fn model_kind(&self, profile: &str, kind: &str) -> String {
        format!("{}/models/{}/{}", self.prefix, profile, kind)
    }

    /// `{prefix}/models/+/+`: every deployed model of another kind.
    pub fn model_kinds(&self) -> String {
        format!("{}/models/+/+", self.prefix)
    }

    /// The `(profile, kind)` of a `{prefix}/models/{profile}/{kind}` topic.
    pub fn parse_model_kind<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic.strip_prefix(self.prefix.as_str())?;
        let (profile, kind) = rest.strip_prefix("/models/")?.split_once('/')?;
        (!profile.is_empty() && !kind.is_empty() && !kind.contains('/')).then_some((profile, kind))
    }

    /// The `{segment}` of a `{prefix}/models/{segment}` topic (`current` for the milling model).
    pub fn parse_model<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let rest = topic.strip_prefix(self.prefix.as_str())?;
        let seg = rest.strip_prefix("/models/")?;
        (!seg.is_empty() && !seg.contains('/')).then_some(seg)
    }

    /// `{prefix}/profiles/{id}` (retained): a machine profile published at run time (its TOML
    /// text), e.g. one the Sparkplug host drafted from a device's birth. The feature service
    /// serves every profile published here that its own `--profile` files do not name.
    pub fn profile(&self, id: &str) -> String {
        format!("{}/profiles/{}", self.prefix, id)
    }

    /// `{prefix}/profiles/+`: every profile published at run time.
    pub fn profiles(&self) -> String {
        format!("{}/profiles/+", self.prefix)
    }

    /// The `{id}` of a `{prefix}/profiles/{id}` topic.
    pub fn parse_profile<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/profiles/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// `{prefix}/publishers/{client_id}/status` (retained; the publisher's last will)
    pub fn publisher_status(&self, client_id: &str) -> String {
        format!("{}/publishers/{}/status", self.prefix, client_id)
    }

    /// `{prefix}/drift/{service}` (retained)
    pub fn drift(&self, service: &str) -> String {
        format!("{}/drift/{}", self.prefix, service)
    }

    /// `{prefix}/drift/{service}/{profile}/{kind}` (retained): the drift status of a profile's
    /// quality, anomaly or rul model.
    pub fn drift_kind(&self, service: &str, profile: &str, kind: &str) -> String {
        format!("{}/drift/{}/{}/{}", self.prefix, service, profile, kind)
    }

    /// `{prefix}/control/silences/{silence_id}` (retained)
    pub fn silence(&self, silence_id: &str) -> String {
        format!("{}/control/silences/{}", self.prefix, silence_id)
    }

    /// `{prefix}/control/silences/+`
    pub fn silences(&self) -> String {
        format!("{}/control/silences/+", self.prefix)
    }

    /// The silence id of a `{prefix}/control/silences/{id}` topic.
    pub fn parse_silence<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/control/silences/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// `{prefix}/control/alerts/{machine_id}`: a person's [`crate::AlertAction`] on the
    /// machine's alert (QoS 1, not retained: an action is applied once).
    pub fn alert_control(&self, id: &MachineId) -> String {
        format!("{}/control/alerts/{}", self.prefix, id)
    }

    /// `{prefix}/control/alerts/+`
    pub fn alert_controls(&self) -> String {
        format!("{}/control/alerts/+", self.prefix)
    }

    /// The raw machine segment of a `{prefix}/control/alerts/{machine_id}` topic.
    pub fn parse_alert_control<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/control/alerts/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// `{prefix}/alert-state/{machine_id}` (retained)
    pub fn alert_state(&self, id: &MachineId) -> String {
        format!("{}/alert-state/{}", self.prefix, id)
    }

    /// `{prefix}/alert-state/+`
    pub fn alert_states(&self) -> String {
        format!("{}/alert-state/+", self.prefix)
    }

    /// The raw machine segment of a `{prefix}/alert-state/{machine_id}` topic.
    pub fn parse_alert_state<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/alert-state/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// The filter matching `kind` for every machine, e.g. `{prefix}/machines/+/telemetry`.
    pub fn all(&self, kind: TopicKind) -> String {
        match kind {
            TopicKind::Alert => format!("{}/alerts/+", self.prefix),
            _ => format!("{}/machines/+/{}", self.prefix, kind.suffix()),
        }
    }

    /// The filter matching everything under the prefix.
    pub fn everything(&self) -> String {
        format!("{}/#", self.prefix)
    }

    /// Parses a machine-scoped topic back into its kind and the raw machine segment.
    ///
    /// The segment is returned raw (not as a [`MachineId`]) so that a caller can report a bad
    /// id precisely; `None` means the topic is not one of ours.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(TopicKind, &'t str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        if let Some(id) = rest.strip_prefix("alerts/") {
            return (!id.contains('/')).then_some((TopicKind::Alert, id));
        }
        let rest = rest.strip_prefix("machines/")?;
        let (id, kind) = rest.split_once('/')?;
        let kind = match kind {
            "telemetry" => TopicKind::Telemetry,
            "features" => TopicKind::Features,
            "risk" => TopicKind::Risk,
            "status" => TopicKind::Status,
            _ => return None,
        };
        Some((kind, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_the_documented_topics() {
        let t = Topics::default();
        let id = MachineId::parse("m-1").unwrap();
        assert_eq!(t.telemetry(&id), "dtwin/v1/machines/m-1/telemetry");
        assert_eq!(t.features(&id), "dtwin/v1/machines/m-1/features");
        assert_eq!(t.risk(&id), "dtwin/v1/machines/m-1/risk");
        assert_eq!(t.status(&id), "dtwin/v1/machines/m-1/status");
        assert_eq!(t.alert(&id), "dtwin/v1/alerts/m-1");
        assert_eq!(t.deadletter("feature"), "dtwin/v1/deadletter/feature");
        assert_eq!(t.model_current(), "dtwin/v1/models/current");
        assert_eq!(t.model_for("pump"), "dtwin/v1/models/pump");
        assert_eq!(t.models(), "dtwin/v1/models/+");
        assert_eq!(t.parse_model("dtwin/v1/models/pump"), Some("pump"));
        assert_eq!(t.parse_model(&t.model_current()), Some("current"));
        for bad in [
            "dtwin/v1/models/",
            "dtwin/v1/models/a/b",
            "dtwin/v2/models/pump",
            "dtwin/v1/machines/m/risk",
        ] {
            assert_eq!(t.parse_model(bad), None, "{bad}");
        }
        assert_eq!(t.model_kind("pump", "rul"), "dtwin/v1/models/pump/rul");
        assert_eq!(t.model_kinds(), "dtwin/v1/models/+/+");
        assert_eq!(
            t.parse_model_kind("dtwin/v1/models/milling/anomaly"),
            Some(("milling", "anomaly"))
        );
        for bad in [
            "dtwin/v1/models/pump",
            "dtwin/v1/models/pump/",
            "dtwin/v1/models//rul",
            "dtwin/v1/models/a/b/c",
            "dtwin/v2/models/a/rul",
        ] {
            assert_eq!(t.parse_model_kind(bad), None, "{bad}");
        }
        assert_eq!(t.drift("inference"), "dtwin/v1/drift/inference");
        assert_eq!(
            t.drift_kind("inference", "milling", "anomaly"),
            "dtwin/v1/drift/inference/milling/anomaly"
        );
        assert_eq!(t.alert_state(&id), "dtwin/v1/alert-state/m-1");
        assert_eq!(t.parse_alert_state("dtwin/v1/alert-state/m-1"), Some("m-1"));
        assert_eq!(t.parse_alert_state("dtwin/v1/alert-state/m/x"), None);
        assert_eq!(t.parse_alert_state("dtwin/v1/alerts/m-1"), None);
        assert_eq!(t.parse("dtwin/v1/alert-state/m-1"), None);
        assert_eq!(t.alert_control(&id), "dtwin/v1/control/alerts/m-1");
        assert_eq!(t.alert_controls(), "dtwin/v1/control/alerts/+");
        assert_eq!(
            t.parse_alert_control("dtwin/v1/control/alerts/m-1"),
            Some("m-1")
        );
        for bad in [
            "dtwin/v1/control/alerts/",
            "dtwin/v1/control/alerts/m/x",
            "dtwin/v1/control/silences/m-1",
            "dtwin/v1/alerts/m-1",
            "dtwin/v2/control/alerts/m-1",
        ] {
            assert_eq!(t.parse_alert_control(bad), None, "{bad}");
        }
        assert_eq!(t.parse_silence("dtwin/v1/control/alerts/m-1"), None);
        assert_eq!(t.parse("dtwin/v1/control/alerts/m-1"), None);
        assert_eq!(t.profile("spb_pump"), "dtwin/v1/profiles/spb_pump");
        assert_eq!(t.profiles(), "dtwin/v1/profiles/+");
        assert_eq!(
            t.parse_profile("dtwin/v1/profiles/spb_pump"),
            Some("spb_pump")
        );
        assert_eq!(t.parse_profile("dtwin/v1/profiles/a/b"), None);
        assert_eq!(t.parse_profile("dtwin/v1/profiles/"), None);
        assert_eq!(t.parse_profile("dtwin/v1/models/pump"), None);
        assert_eq!(t.all(TopicKind::Telemetry), "dtwin/v1/machines/+/telemetry");
        assert_eq!(Topics::new("plant/a/").prefix(), "plant/a");
    }

    #[test]
    fn parse_rejects_foreign_topics() {
        let t = Topics::default();
        assert_eq!(t.parse("other/v1/machines/m/telemetry"), None);
        assert_eq!(t.parse("dtwin/v1/machines/m/unknown"), None);
        assert_eq!(t.parse("dtwin/v1/machines/m"), None);
        assert_eq!(t.parse("dtwin/v1/alerts/a/b"), None);
        assert_eq!(t.parse("dtwin/v1x/machines/m/telemetry"), None);
    }

    proptest! {
        #[test]
        fn topics_round_trip(id in "[A-Za-z0-9_.-]{1,64}", prefix in "[a-z]{1,8}(/[a-z0-9]{1,8}){0,2}") {
            let t = Topics::new(&prefix);
            let mid = MachineId::parse(&id).unwrap();
            for kind in [TopicKind::Telemetry, TopicKind::Features, TopicKind::Risk, TopicKind::Status, TopicKind::Alert] {
                let topic = t.machine(kind, &mid);
                prop_assert_eq!(t.parse(&topic), Some((kind, id.as_str())));
                // A concrete topic matches its own wildcard filter.
                let filter = t.all(kind);
                let (fa, fb) = filter.split_once('+').unwrap();
                prop_assert!(topic.starts_with(fa) && topic.ends_with(fb));
            }
            let control = t.alert_control(&mid);
            prop_assert_eq!(t.parse_alert_control(&control), Some(id.as_str()));
            prop_assert_eq!(t.parse(&control), None);
            let (fa, fb) = t.alert_controls().split_once('+').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
            prop_assert!(control.starts_with(&fa) && control.ends_with(&fb));
        }
    }
}
