//! Where e-mails go: an SMTP server through lettre (STARTTLS, implicit TLS, AUTH, pooled
//! connections, all from one `SMTP_URL`), or the `.eml` [`Outbox`] when no server is set.

use crate::outbox::Outbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Longest one SMTP command may take before the attempt counts as failed.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused or dropped, timeout, 4xx.
    #[error("{detail}")]
    Transient {
        /// What failed.
        detail: String,
        /// The server may have the mail anyway (the session broke or timed out after the
        /// data went out); false when it refused or was never reached.
        maybe_delivered: bool,
    },
    /// Never going to work as is: 5xx (bad recipient, message refused).
    #[error("{0}")]
    Permanent(String),
}

/// Why a mail transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The SMTP URL does not parse or names an unknown scheme.
    #[error("SMTP URL {url}: {source}")]
    SmtpUrl {
        /// The URL with any password replaced.
        url: String,
        /// What lettre found wrong with it.
        source: lettre::transport::smtp::Error,
    },
}

/// A configured mail transport.
#[derive(Clone)]
pub enum Mailer {
    /// Write `.eml` files.
    Outbox(Outbox),
    /// Send over SMTP.
    Smtp {
        /// The pooled lettre transport.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The URL with any password replaced, for logs.
        shown: String,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Mailer {
    /// An SMTP mailer for `url` (`smtp://host:port`, `smtp://user:pass@host?tls=required`
    /// for STARTTLS, `smtps://user:pass@host` for implicit TLS; see lettre's `from_url`).
    ///
    /// # Errors
    /// [`MailerError::SmtpUrl`]: the URL does not parse or names an unknown scheme.
    pub fn smtp(url: &str) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|source| MailerError::SmtpUrl {
                url: redact(url),
                source,
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self::Smtp {
            transport,
            shown: redact(url),
        })
    }

    /// For logs: `outbox <dir>` or the SMTP URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Outbox(o) => format!("outbox {}", o.dir().display()),
            Self::Smtp { shown, .. } => shown.clone(),
        }
    }

    /// Whether the transport works now: the SMTP server answers a NOOP (within
    /// [`SMTP_TIMEOUT`]), or the outbox folder exists. Sends nothing.
    pub async fn probe(&self) -> bool {
        match self {
            Self::Outbox(outbox) => outbox.dir().is_dir(),
            Self::Smtp { transport, .. } => {
                tokio::time::timeout(SMTP_TIMEOUT, transport.test_connection())
                    .await
                    .is_ok_and(|r| r.unwrap_or(false))
            }
        }
    }

    /// Sends `message` (`name` is its spool name, used as the outbox file name). Returns a
    /// detail for the `sent` event: the outbox path or the server's reply.
    ///
    /// # Errors
    /// [`SendError`], transient or permanent.
    pub async fn send(&self, name: &str, message: Message) -> Result<String, SendError> {
        match self {
            Self::Outbox(outbox) => {
                let (o, n, bytes) = (outbox.clone(), name.to_owned(), message.formatted());
                match tokio::task::spawn_blocking(move || o.write(&n, &bytes)).await {
                    Ok(Ok(path)) => Ok(path.display().to_string()),
                    // The write is atomic: a failed one left nothing behind.
                    Ok(Err(e)) => Err(SendError::Transient {
                        detail: e.to_string(),
                        maybe_delivered: false,
                    }),
                    Err(e) => Err(SendError::Transient {
                        detail: e.to_string(),
                        maybe_delivered: false,
                    }),
                }
            }
            Self::Smtp { transport, shown } => match transport.send(message).await {
                Ok(resp) => Ok(format!(
                    "{shown}: {} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                )),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("{shown}: {e}"))),
                Err(e) => {
                    // A 4xx reply, a failed connect or TLS handshake: the server has nothing.
                    let refused = e.is_transient()
                        || e.is_tls()
                        || e.to_string().starts_with("Connection error");
                    Err(SendError::Transient {
                        detail: format!("{shown}: {e}"),
                        maybe_delivered: !refused,
                    })
                }
            },
        }
    }
}

/// `scheme://user:***@host...`: the URL without its password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("smtps://ops:s3cr%40t@mail.example.com:465"),
            "smtps://ops:***@mail.example.com:465"
        );
        assert_eq!(
            redact("smtp://u:p@h:587?tls=required"),
            "smtp://u:***@h:587?tls=required"
        );
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        assert_eq!(redact("not a url"), "not a url");
    }

    // The pooled transport needs a runtime to exist (and to be dropped in).
    #[tokio::test]
    async fn bad_urls_are_refused_without_the_password() {
        let e = Mailer::smtp("ftp://u:hunter2@h").unwrap_err();
        let MailerError::SmtpUrl { url, .. } = &e;
        assert_eq!(url, "ftp://u:***@h");
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        assert!(Mailer::smtp("smtp://127.0.0.1:2525").is_ok());
    }

    #[tokio::test]
    async fn probes_say_whether_the_transport_works() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Mailer::Outbox(Outbox::new(dir.path().join("out")).unwrap());
        assert!(outbox.probe().await);
        std::fs::remove_dir(dir.path().join("out")).unwrap();
        assert!(!outbox.probe().await, "a vanished outbox folder is down");
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let smtp = Mailer::smtp(&format!("smtp://127.0.0.1:{port}")).unwrap();
        assert!(!smtp.probe().await);
    }
}
