//! The webhook senders: one task per channel ([`crate::channels`]) drains that channel's
//! spool ([`Spool::channel`]) in order, oldest first, with the e-mail sender's guarantees.
//!
//! - A delivery is marked `.sending` before its POST and leaves `pending/` only when the
//!   receiver answered 2xx (then a `sent` event with `channel` set).
//! - Connection refused, a timeout, 408, 429 or 5xx: the round stops (later deliveries wait,
//!   so a receiver sees an alert's notifications in order) and is retried with the e-mail
//!   sender's backoff and jitter ([`RetryPolicy`]); a `failed` event says `will retry`.
//! - Any other 4xx (and a redirect, which is not followed): refused for good, the delivery
//!   moves to `failed/` and a `failed` event says `refused, not retried`: the receiver said
//!   this request will never work (a revoked Slack URL, a bad PagerDuty key), and retrying it
//!   forever would hold up every later notification of the channel.
//! - A delivery whose earlier attempt may have arrived (the alerter died mid-request, or the
//!   request timed out after it was sent) is sent with `X-Dtwin-Possible-Duplicate: yes`;
//!   every delivery carries its id in `X-Dtwin-Delivery-Id`, so none arrives twice unmarked.
//!
//! URLs are secrets: logs and events name the channel and [`Channel::describe`] (scheme,
//! host and port only), and HTTP errors are stripped of their URL.

use crate::channels::{self, Channel, DELIVERY_HEADER, DUPLICATE_HEADER};
use crate::email::MailConfig;
use crate::metrics::AlerterMetrics;
use crate::plan::Routing;
use crate::processor::delivery_event;
use crate::sender::{DeliveryError, RetryPolicy};
use crate::spool::{Done, Pending, Spool};
use crate::transport::SendError;
use dtwin_bus::{BusClient, QoS};
use dtwin_schema::{AlertEventKind, Silence, Topics};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long one webhook request may take by default (connect, send, answer).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often delivered records are pruned from a channel's spool.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An HTTP client for webhooks: rustls with the system's roots, no redirects, `timeout` per
/// request.
///
/// # Errors
/// The TLS setup failed (reqwest's message).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dtwin-alerter/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// POSTs `body` to `channel`. Returns the status code of a 2xx answer.
///
/// # Errors
/// [`SendError::Transient`] for a refused connection, a timeout, 408, 429 or 5xx (with
/// `maybe_delivered` when the request may have reached the receiver), [`SendError::Permanent`]
/// for any other answer. The details never hold the URL.
pub async fn post(
    http: &reqwest::Client,
    channel: &Channel,
    body: &serde_json::Value,
    delivery_id: &str,
    possible_duplicate: bool,
) -> Result<u16, SendError> {
    let mut req = http
        .post(channel.target())
        .header(DELIVERY_HEADER, delivery_id)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default());
    if possible_duplicate {
        req = req.header(DUPLICATE_HEADER, "yes");
    }
    let shown = channel.describe();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let connect = e.is_connect();
            let e = e.without_url();
            let source = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return Err(SendError::Transient {
                detail: format!("{shown}: {e}{source}"),
                // Never connected: the receiver has nothing. A timeout or a broken answer:
                // it may have taken the request.
                maybe_delivered: !connect,
            });
        }
    };
    let status = resp.status();
    let code = status.as_u16();
    if status.is_success() {
        return Ok(code);
    }
    let text: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let detail = format!("{shown}: HTTP {code} {}", text.trim());
    if status.is_server_error() || code == 408 || code == 429 {
        Err(SendError::Transient {
            detail,
            maybe_delivered: false,
        })
    } else {
        Err(SendError::Permanent(detail))
    }
}

/// Drains one channel's spool into its receiver.
pub struct HookSender {
    /// The channel.
    pub channel: Channel,
    /// Its spool ([`Spool::channel`]).
    pub spool: Spool,
    /// The HTTP client ([`http_client`]).
    pub http: reqwest::Client,
    /// For alert events.
    pub client: BusClient,
    /// Topic builder.
    pub topics: Topics,
    /// The subject prefix the texts start with.
    pub mail: MailConfig,
    /// Lines (for silences and labels).
    pub routing: Arc<Routing>,
    /// Backoff.
    pub retry: RetryPolicy,
    /// Delivered records older than this are deleted.
    pub retention: Duration,
    /// The live silences.
    pub silences: watch::Receiver<Vec<Silence>>,
    /// Woken when a delivery is queued.
    pub wake: Arc<Notify>,
    /// Counters.
    pub metrics: AlerterMetrics,
}

impl HookSender {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut next_prune = tokio::time::Instant::now();
        info!(channel = %self.channel.describe(), spool = %self.spool.root().display(), "webhook sender started");
        loop {
            if retry_at.is_none_or(|t| t <= tokio::time::Instant::now()) {
                retry_at = None;
                match self.round(&shutdown).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        let delay = self
                            .retry
                            .delay(failures, rand::random::<f64>() * 0.5 + 0.5);
                        warn!(channel = %self.channel.name, error = %e, failures, retry_in_ms = delay.as_millis() as u64, "webhook not delivered; will retry");
                        retry_at = Some(tokio::time::Instant::now() + delay);
                    }
                }
            }
            if tokio::time::Instant::now() >= next_prune {
                next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
                let before = std::time::SystemTime::now() - self.retention;
                if let Err(e) = self.spool.prune(before) {
                    warn!(channel = %self.channel.name, error = %e, "webhook spool prune failed");
                }
            }
            let until = retry_at.unwrap_or(next_prune).min(next_prune);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified(), if retry_at.is_none() => {}
                _ = self.silences.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        debug!(channel = %self.channel.name, "webhook sender stopped");
    }

    /// One pass over the pending deliveries, oldest first; stops at the first transient
    /// failure (or at shutdown).
    async fn round(&mut self, shutdown: &CancellationToken) -> Result<(), DeliveryError> {
        let (pending, bad) = self.spool.pending().map_err(DeliveryError::ReadPending)?;
        for (path, why) in bad {
            warn!(file = %path.display(), error = %why, "unreadable webhook record left in place");
        }
        for p in &pending {
            if shutdown.is_cancelled() {
                break;
            }
            self.deliver(p).await?;
        }
        Ok(())
    }

    async fn deliver(&self, p: &Pending) -> Result<(), DeliveryError> {
        let m = &p.record.mail;
        let name = p.record.name();
        let machine = m.machine_id.as_str();
        let line = self.routing.line(machine);
        let now = OffsetDateTime::now_utc();
        let silences = self.silences.borrow().clone();
        if let Some(s) = silences.iter().find(|s| s.matches(machine, line, now)) {
            let detail = format!("silence {}", s.silence_id);
            self.metrics.webhook(&self.channel.name, "silenced");
            return self
                .finish(p, Done::Silenced, AlertEventKind::Silenced, detail)
                .await;
        }
        let ctx = channels::Context {
            mail: &self.mail,
            line,
            possible_duplicate: p.maybe_sent,
        };
        let Some(body) = channels::payload(&self.channel, &p.record, &ctx) else {
            // Nothing for this kind of channel (queued by an older alerter): done, quietly.
            return self
                .spool
                .finish(&name, Done::Sent)
                .map_err(|source| DeliveryError::Finish {
                    name,
                    done: Done::Sent,
                    source,
                });
        };
        self.spool
            .mark_sending(&name)
            .map_err(|source| DeliveryError::MarkSending {
                name: name.clone(),
                source,
            })?;
        match post(&self.http, &self.channel, &body, &name, p.maybe_sent).await {
            Ok(code) => {
                self.metrics.webhook(&self.channel.name, "sent");
                info!(channel = %self.channel.name, machine_id = %m.machine_id, delivery = %name, code, duplicate = p.maybe_sent, "webhook delivered");
                let detail = format!("{}: HTTP {code}", self.channel.describe());
                self.finish(p, Done::Sent, AlertEventKind::Sent, detail)
                    .await
            }
            Err(SendError::Permanent(e)) => {
                self.metrics.webhook(&self.channel.name, "failed");
                warn!(channel = %self.channel.name, delivery = %name, error = %e, "webhook refused for good");
                let detail = format!("refused, not retried: {e}");
                self.finish(p, Done::Failed, AlertEventKind::Failed, detail)
                    .await
            }
            Err(
                e @ SendError::Transient {
                    maybe_delivered, ..
                },
            ) => {
                self.metrics.webhook(&self.channel.name, "retried");
                if !maybe_delivered {
                    self.spool.clear_sending(&name);
                }
                self.event(p, AlertEventKind::Failed, format!("{e}; will retry"))
                    .await;
                Err(DeliveryError::Transport(e))
            }
        }
    }

    async fn finish(
        &self,
        p: &Pending,
        done: Done,
        kind: AlertEventKind,
        detail: String,
    ) -> Result<(), DeliveryError> {
        let name = p.record.name();
        self.spool
            .finish(&name, done)
            .map_err(|source| DeliveryError::Finish { name, done, source })?;
        self.event(p, kind, detail).await;
        Ok(())
    }

    /// Publishes a delivery event naming the channel; a broker outage loses only the event.
    async fn event(&self, p: &Pending, kind: AlertEventKind, detail: String) {
        let mut event = delivery_event(&p.record.event, kind, detail, OffsetDateTime::now_utc());
        event.channel = Some(self.channel.name.clone());
        let topic = self.topics.alert(&p.record.mail.machine_id);
        match self
            .client
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                dtwin_schema::to_json(&event),
            )
            .await
        {
            Ok(()) => self.metrics.event(kind),
            Err(e) => warn!(error = %e, "alert event not published"),
        }
    }
}
