//! Who may connect to the embedded broker: a password file of Argon2id hashes (never plain
//! text), and the rule that a broker reachable beyond loopback never runs without it.
//!
//! The file has one `user:hash` line per client, like Mosquitto's, with PHC-format Argon2id
//! hashes; `#` starts a comment. `dtwin broker passwd FILE USER` adds or replaces a user,
//! reading the password from standard input.
//!
//! ```text
//! # services
//! dtwin-feature:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$...
//! gateway-line1:$argon2id$v=19$m=19456,t=2,p=1$...
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Why a password file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A line is not `user:hash`.
    #[error("password file line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file has no users: nobody could connect.
    #[error("password file has no users")]
    Empty,
    /// A user name the broker cannot use.
    #[error("user name {0:?} must be 1-64 characters without ':' or whitespace")]
    BadUser(String),
    /// Hashing failed (parameters out of range; does not happen with the defaults).
    #[error("cannot hash password: {0}")]
    Hash(String),
    /// Anonymous access on an address reachable from other hosts.
    #[error(
        "refusing to listen on {0} without authentication: anyone on the network could publish \
         telemetry or models. Give a password file (--password-file / DTWIN_PASSWORD_FILE) or \
         listen on 127.0.0.1"
    )]
    ExposedAnonymous(SocketAddr),
}

/// Users and their password hashes, as read from a password file.
#[derive(Clone, Default)]
pub struct PasswordFile {
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are not secrets in the way passwords are, but there is no reason to print them.
        f.debug_struct("PasswordFile")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.chars().count() <= 64
        && !user.contains(':')
        && !user.chars().any(char::is_whitespace)
}

impl PasswordFile {
    /// Parses the text of a password file.
    ///
    /// # Errors
    /// A line that is not `user:hash` with a valid PHC hash, a duplicate user, or no users.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut users = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| AuthError::BadLine {
                line: i + 1,
                reason: reason.to_owned(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !valid_user(user) {
                return Err(bad("bad user name"));
            }
            PasswordHash::new(hash).map_err(|e| {
                bad(&format!(
                    "not a password hash ({e}); make one with `dtwin broker passwd`"
                ))
            })?;
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(bad(&format!("user {user:?} appears twice")));
            }
        }
        if users.is_empty() {
            return Err(AuthError::Empty);
        }
        Ok(Self { users })
    }

    /// The users, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether `user` exists and `password` matches its hash. Takes tens of milliseconds
    /// (Argon2id's cost is the point), so call it off the async runtime's worker threads.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    /// Adds or replaces `user` with a hash of `password`, salted with `salt` (16 random
    /// bytes; the caller draws them so this stays pure).
    ///
    /// # Errors
    /// A bad user name.
    pub fn set(&mut self, user: &str, password: &str, salt: [u8; 16]) -> Result<(), AuthError> {
        if !valid_user(user) {
            return Err(AuthError::BadUser(user.to_owned()));
        }
        let hash = hash_password(password, salt)?;
        self.users.insert(user.to_owned(), hash);
        Ok(())
    }

    /// The file's text: a header comment and one `user:hash` line per user.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# dtwin embedded broker users: user:argon2id-hash (edit with `dtwin broker passwd`)\n",
        );
        for (u, h) in &self.users {
            out.push_str(u);
            out.push(':');
            out.push_str(h);
            out.push('\n');
        }
        out
    }
}

/// An Argon2id PHC string for `password` with the given salt.
///
/// # Errors
/// Only if the salt could not be encoded (it always can: 16 bytes).
pub fn hash_password(password: &str, salt: [u8; 16]) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The rule for exposure: a broker listening on anything but loopback must authenticate.
///
/// # Errors
/// [`AuthError::ExposedAnonymous`] when `listen` is not a loopback address and there is no
/// password file.
pub fn check_exposure(listen: SocketAddr, authenticated: bool) -> Result<(), AuthError> {
    if listen.ip().is_loopback() || authenticated {
        Ok(())
    } else {
        Err(AuthError::ExposedAnonymous(listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PasswordFile {
        let mut f = PasswordFile::default();
        f.set("gateway-line1", "correct horse", [7; 16]).unwrap();
        f.set("dtwin-feature", "battery staple", [9; 16]).unwrap();
        f
    }

    #[test]
    fn verifies_only_the_right_password() {
        let f = file();
        assert!(f.verify("gateway-line1", "correct horse"));
        assert!(!f.verify("gateway-line1", "battery staple"));
        assert!(!f.verify("gateway-line1", ""));
        assert!(!f.verify("nobody", "correct horse"));
    }

    #[test]
    fn stores_hashes_not_passwords_and_round_trips() {
        let text = file().render();
        assert!(!text.contains("correct horse") && !text.contains("battery staple"));
        assert!(text.contains("gateway-line1:$argon2id$"));
        let back = PasswordFile::parse(&text).unwrap();
        assert_eq!(
            back.users().collect::<Vec<_>>(),
            ["dtwin-feature", "gateway-line1"]
        );
        assert!(back.verify("dtwin-feature", "battery staple"));
        // The same password with another salt gives another hash.
        assert_ne!(
            hash_password("x", [1; 16]).unwrap(),
            hash_password("x", [2; 16]).unwrap()
        );
    }

    #[test]
    fn bad_files_say_which_line() {
        let e = PasswordFile::parse("# c\n\nuser-without-hash\n").unwrap_err();
        assert_eq!(
            e,
            AuthError::BadLine {
                line: 3,
                reason: "expected user:hash".into()
            }
        );
        let e = PasswordFile::parse("alice:plaintext-password\n").unwrap_err();
        assert!(
            e.to_string().contains("line 1") && e.to_string().contains("dtwin broker passwd"),
            "{e}"
        );
        assert_eq!(
            PasswordFile::parse("# only comments\n").unwrap_err(),
            AuthError::Empty
        );
        let h = hash_password("p", [3; 16]).unwrap();
        let e = PasswordFile::parse(&format!("a:{h}\na:{h}\n")).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = PasswordFile::parse(&format!("a b:{h}\n")).unwrap_err();
        assert!(e.to_string().contains("bad user name"), "{e}");
        assert!(matches!(
            PasswordFile::default().set("a:b", "p", [0; 16]),
            Err(AuthError::BadUser(_))
        ));
    }

    #[test]
    fn exposure_needs_authentication() {
        let lo: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let lo6: SocketAddr = "[::1]:1883".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        let lan: SocketAddr = "192.168.1.10:8883".parse().unwrap();
        assert!(check_exposure(lo, false).is_ok());
        assert!(check_exposure(lo6, false).is_ok());
        assert!(check_exposure(any, true).is_ok());
        let e = check_exposure(any, false).unwrap_err();
        assert!(
            e.to_string().contains("0.0.0.0:1883") && e.to_string().contains("--password-file")
        );
        assert!(check_exposure(lan, false).is_err());
    }

    #[test]
    fn debug_hides_hashes() {
        let s = format!("{:?}", file());
        assert!(s.contains("gateway-line1") && !s.contains("argon2"), "{s}");
    }
}
