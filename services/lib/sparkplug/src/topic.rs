//! Sparkplug B topics: `spBv1.0/{group}/{type}/{edge_node}[/{device}]` and
//! `spBv1.0/STATE/{host_id}`, parsed into [`Topic`] and built back with [`Topic::topic`], and
//! the dtwin machine id of an edge node or device ([`EdgeNodeId::machine_id`]).

use crate::error::TopicError;
use dtwin_schema::machine_id::MAX_MACHINE_ID_LEN;
use dtwin_schema::MachineId;
use sha2::{Digest, Sha256};
use std::fmt;

/// The first level of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// The subscription a host application needs for every edge node and every other host.
pub const FILTER: &str = "spBv1.0/#";

/// The level naming a host application's STATE topic (Sparkplug 3.0).
pub const STATE: &str = "STATE";

/// Hex digits of the hash that keeps a shortened or cleaned machine id unique.
const HASH_HEX: usize = 16;

/// The message type level of an edge node or device topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Edge node birth certificate.
    NBirth,
    /// Edge node data.
    NData,
    /// Edge node death certificate (its MQTT will).
    NDeath,
    /// Device birth certificate.
    DBirth,
    /// Device data.
    DData,
    /// Device death certificate.
    DDeath,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
}

impl MessageType {
    /// Every message type.
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NData,
        MessageType::NDeath,
        MessageType::DBirth,
        MessageType::DData,
        MessageType::DDeath,
        MessageType::NCmd,
        MessageType::DCmd,
    ];

    /// The topic level (`NBIRTH`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NData => "NDATA",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DData => "DDATA",
            MessageType::DDeath => "DDEATH",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Parses a topic level.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the topic carries a device level (D* types).
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DData | MessageType::DDeath | MessageType::DCmd
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An edge node: its group id and edge node id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeNodeId {
    /// The group id.
    pub group: String,
    /// The edge node id.
    pub edge_node: String,
}

impl EdgeNodeId {
    /// An edge node id from its two parts (not checked: [`Topic::parse`] checks what comes
    /// from the network).
    pub fn new(group: &str, edge_node: &str) -> Self {
        Self {
            group: group.to_owned(),
            edge_node: edge_node.to_owned(),
        }
    }

    /// The machine id of this edge node (`device` `None`) or of one of its devices; see
    /// [`machine_id`].
    pub fn machine_id(&self, device: Option<&str>) -> MachineId {
        machine_id(&self.group, &self.edge_node, device)
    }

    /// The topic to send this node a command on (`spBv1.0/{group}/NCMD/{edge_node}`).
    pub fn ncmd_topic(&self) -> String {
        Topic::Edge {
            kind: MessageType::NCmd,
            node: self.clone(),
            device: None,
        }
        .topic()
    }
}

impl fmt::Display for EdgeNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.edge_node)
    }
}

/// A parsed Sparkplug B topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// An edge node (`device` `None`) or device topic.
    Edge {
        /// The message type.
        kind: MessageType,
        /// The edge node.
        node: EdgeNodeId,
        /// The device id, present exactly for the D* types.
        device: Option<String>,
    },
    /// A host application's STATE topic.
    State {
        /// The host id.
        host_id: String,
    },
}

impl Topic {
    /// Parses a topic name.
    ///
    /// # Errors
    /// [`TopicError`] when the namespace, the message type or the number of levels is wrong,
    /// or an id is empty or holds a wildcard.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.first() != Some(&NAMESPACE) {
            return Err(TopicError::Namespace(topic.to_owned()));
        }
        if levels.len() == 3 && levels[1] == STATE {
            return Ok(Topic::State {
                host_id: check_id(levels[2])?.to_owned(),
            });
        }
        if levels.len() < 4 {
            return Err(TopicError::Levels(topic.to_owned()));
        }
        let kind = MessageType::parse(levels[2])
            .ok_or_else(|| TopicError::MessageType(levels[2].to_owned()))?;
        let expected = if kind.is_device() { 5 } else { 4 };
        if levels.len() != expected {
            return Err(TopicError::Levels(topic.to_owned()));
        }
        let node = EdgeNodeId::new(check_id(levels[1])?, check_id(levels[3])?);
        let device = match levels.get(4) {
            Some(d) => Some(check_id(d)?.to_owned()),
            None => None,
        };
        Ok(Topic::Edge { kind, node, device })
    }

    /// The topic name.
    pub fn topic(&self) -> String {
        match self {
            Topic::Edge { kind, node, device } => {
                let mut t = format!("{NAMESPACE}/{}/{kind}/{}", node.group, node.edge_node);
                if let Some(d) = device {
                    t.push('/');
                    t.push_str(d);
                }
                t
            }
            Topic::State { host_id } => state_topic(host_id),
        }
    }
}

/// A host application's STATE topic, `spBv1.0/STATE/{host_id}`.
pub fn state_topic(host_id: &str) -> String {
    format!("{NAMESPACE}/{STATE}/{host_id}")
}

fn check_id(s: &str) -> Result<&str, TopicError> {
    if s.is_empty() || s.contains(['+', '#']) {
        Err(TopicError::Id(s.to_owned()))
    } else {
        Ok(s)
    }
}

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The dtwin machine id of an edge node (`device` `None`) or a device.
///
/// When every part is made of `[A-Za-z0-9_-]` and the result fits in
/// [`MAX_MACHINE_ID_LEN`], it is the parts joined by dots: `plant1.line4.press2`. Otherwise
/// (a dot, a space, a non-ASCII letter in a part, or too long) it is the parts joined by dots
/// with every other character made `_`, cut to fit, then `..` and 16 hex digits of a SHA-256
/// of the exact parts: `plant_1.l_ne..3f2a9c0d11b7e845`. Plain ids never contain `..` (parts
/// are never empty), so the two forms cannot collide, and different parts give different ids
/// (up to a 64-bit hash collision).
pub fn machine_id(group: &str, edge_node: &str, device: Option<&str>) -> MachineId {
    let parts: Vec<&str> = [Some(group), Some(edge_node), device]
        .into_iter()
        .flatten()
        .collect();
    let joined = parts.join(".");
    if parts.iter().all(|p| !p.is_empty() && plain(p)) && joined.len() <= MAX_MACHINE_ID_LEN {
        if let Ok(id) = MachineId::parse(&joined) {
            return id;
        }
    }
    let mut hasher = Sha256::new();
    for p in &parts {
        hasher.update((p.len() as u64).to_le_bytes());
        hasher.update(p.as_bytes());
    }
    let digest = hasher.finalize();
    let hash: String = digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_MACHINE_ID_LEN - 2 - HASH_HEX;
    let cleaned: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(keep)
        .collect();
    let id = format!("{cleaned}..{hash}");
    // Every character is in the machine id alphabet and the length is at most 64 by
    // construction, so parse cannot fail; the fallback (a valid literal) only guards that.
    MachineId::parse(&id).unwrap_or_else(|_| fallback_id())
}

fn fallback_id() -> MachineId {
    // "sparkplug" is in the alphabet and 9 bytes long: parse succeeds.
    MachineId::parse("sparkplug").expect("a valid literal machine id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_kind() {
        let t = Topic::parse("spBv1.0/plant1/NBIRTH/line4").unwrap();
        assert_eq!(
            t,
            Topic::Edge {
                kind: MessageType::NBirth,
                node: EdgeNodeId::new("plant1", "line4"),
                device: None
            }
        );
        let t = Topic::parse("spBv1.0/plant1/DDATA/line4/press2").unwrap();
        assert_eq!(
            t,
            Topic::Edge {
                kind: MessageType::DData,
                node: EdgeNodeId::new("plant1", "line4"),
                device: Some("press2".into())
            }
        );
        assert_eq!(
            Topic::parse("spBv1.0/STATE/scada1").unwrap(),
            Topic::State {
                host_id: "scada1".into()
            }
        );
        for kind in MessageType::ALL {
            let t = if kind.is_device() {
                format!("spBv1.0/g/{kind}/e/d")
            } else {
                format!("spBv1.0/g/{kind}/e")
            };
            assert_eq!(Topic::parse(&t).unwrap().topic(), t);
        }
    }

    #[test]
    fn rejects_bad_topics() {
        assert!(matches!(
            Topic::parse("spAv1.0/g/NBIRTH/e"),
            Err(TopicError::Namespace(_))
        ));
        assert!(matches!(
            Topic::parse("dtwin/machines/m1/telemetry"),
            Err(TopicError::Namespace(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/NBORN/e"),
            Err(TopicError::MessageType(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/NBIRTH/e/d"),
            Err(TopicError::Levels(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/DDATA/e"),
            Err(TopicError::Levels(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g"),
            Err(TopicError::Levels(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0//NDATA/e"),
            Err(TopicError::Id(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/NDATA/+"),
            Err(TopicError::Id(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/STATE/"),
            Err(TopicError::Id(_))
        ));
    }

    #[test]
    fn ncmd_and_state_topics() {
        assert_eq!(EdgeNodeId::new("g", "e").ncmd_topic(), "spBv1.0/g/NCMD/e");
        assert_eq!(state_topic("dtwin"), "spBv1.0/STATE/dtwin");
    }

    #[test]
    fn plain_ids_are_joined_by_dots() {
        assert_eq!(
            machine_id("plant1", "line4", Some("press2")).as_str(),
            "plant1.line4.press2"
        );
        assert_eq!(machine_id("plant1", "line4", None).as_str(), "plant1.line4");
    }

    #[test]
    fn other_ids_are_cleaned_and_hashed() {
        let a = machine_id("plant 1", "line.4", Some("Presse Ü"));
        assert!(a.as_str().starts_with("plant_1.line.4.Presse__.."), "{a}");
        assert_eq!(a.as_str().len(), "plant_1.line.4.Presse__..".len() + 16);
        // The dot that was in a part does not make it equal to other parts.
        assert_ne!(machine_id("a.b", "c", None), machine_id("a", "b.c", None));
        let long = "x".repeat(60);
        let b = machine_id(&long, "e", Some("d"));
        assert_eq!(b.as_str().len(), MAX_MACHINE_ID_LEN);
        assert_ne!(b, machine_id(&long, "e", Some("d2")));
        assert_eq!(b, machine_id(&long, "e", Some("d")));
    }

    proptest! {
        #[test]
        fn topics_round_trip(
            g in "[^/+#]{1,12}", e in "[^/+#]{1,12}", d in "[^/+#]{1,12}",
            k in 0usize..8,
        ) {
            let kind = MessageType::ALL[k];
            let node = EdgeNodeId::new(&g, &e);
            let device = kind.is_device().then(|| d.clone());
            let t = Topic::Edge { kind, node, device };
            prop_assert_eq!(Topic::parse(&t.topic()).unwrap(), t);
        }

        #[test]
        fn machine_ids_are_always_valid_and_distinct(
            a in ("[^/+#]{1,40}", "[^/+#]{1,40}", proptest::option::of("[^/+#]{1,40}")),
            b in ("[^/+#]{1,40}", "[^/+#]{1,40}", proptest::option::of("[^/+#]{1,40}")),
        ) {
            let ia = machine_id(&a.0, &a.1, a.2.as_deref());
            let ib = machine_id(&b.0, &b.1, b.2.as_deref());
            prop_assert!(MachineId::parse(ia.as_str()).is_ok());
            prop_assert_eq!(ia == ib, a == b);
        }
    }
}
