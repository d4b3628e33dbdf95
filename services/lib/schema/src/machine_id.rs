//! Machine identifiers: `[A-Za-z0-9_.-]{1,64}`, so an id can never be a wildcard, a level
//! separator or anything a mail header or HTML page would have to escape.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest machine id accepted.
pub const MAX_MACHINE_ID_LEN: usize = 64;

/// A validated machine id. The only way to get one is [`MachineId::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineId(String);

/// Why a string is not a machine id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineIdError {
    /// The id is empty.
    #[error("machine id is empty")]
    Empty,
    /// The id is longer than [`MAX_MACHINE_ID_LEN`] bytes.
    #[error("machine id is {0} bytes long; at most 64 are allowed")]
    TooLong(usize),
    /// The id holds a character outside `[A-Za-z0-9_.-]`.
    #[error("machine id contains {0:?}; only A-Z a-z 0-9 _ . - are allowed")]
    BadChar(char),
}

impl MachineId {
    /// Parses a machine id.
    ///
    /// # Errors
    /// [`MachineIdError`] when the string is empty, too long or holds a forbidden character.
    pub fn parse(s: &str) -> Result<Self, MachineIdError> {
        if s.is_empty() {
            return Err(MachineIdError::Empty);
        }
        if s.len() > MAX_MACHINE_ID_LEN {
            return Err(MachineIdError::TooLong(s.len()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(MachineIdError::BadChar(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MachineId {
    type Error = MachineIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)?;
        Ok(Self(s))
    }
}

impl From<MachineId> for String {
    fn from(id: MachineId) -> Self {
        id.0
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MachineId {
    type Err = MachineIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(MachineId::parse("machine-001").is_ok());
        assert!(MachineId::parse("a.b_c-D9").is_ok());
        assert_eq!(MachineId::parse(""), Err(MachineIdError::Empty));
        assert_eq!(MachineId::parse("a/b"), Err(MachineIdError::BadChar('/')));
        assert_eq!(MachineId::parse("+"), Err(MachineIdError::BadChar('+')));
        assert_eq!(MachineId::parse("#"), Err(MachineIdError::BadChar('#')));
        assert_eq!(
            MachineId::parse("<script>"),
            Err(MachineIdError::BadChar('<'))
        );
        assert_eq!(
            MachineId::parse(&"x".repeat(65)),
            Err(MachineIdError::TooLong(65))
        );
        assert!(MachineId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn serde_rejects_bad_ids() {
        let ok: MachineId = serde_json::from_str("\"m-1\"").unwrap();
        assert_eq!(ok.as_str(), "m-1");
        assert!(serde_json::from_str::<MachineId>("\"m/1\"").is_err());
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(s in "[A-Za-z0-9_.-]{1,64}") {
            let id = MachineId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<MachineId>(&json).unwrap(), id);
        }

        #[test]
        fn anything_with_a_forbidden_char_is_rejected(a in "[a-z]{0,10}", c in "[^A-Za-z0-9_.-]", b in "[a-z]{0,10}") {
            let s = format!("{a}{c}{b}");
            prop_assert!(MachineId::parse(&s).is_err());
        }
    }
}
