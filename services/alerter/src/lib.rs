//! The alerter: turns risk verdicts into alert lifecycle events and HTML e-mails.
//!
//! It subscribes to every machine's risk topic with a persistent session and manual acks.
//! Per verdict it steps the machine's alert state machine; on a transition it renders the
//! e-mail, writes it to the outbox, publishes the lifecycle event and a `sent` event, and only
//! then acks the verdict, so a crash anywhere redelivers the verdict instead of losing it.
//! Outbox file names are stable per notification, so a redelivery rewrites the same file.
//!
//! # Layout
//! - [`lifecycle`]: the pure per-machine state machine ([`step`]): confirm k of n, escalate,
//!   repeat, resolve with hysteresis.
//! - [`email`]: pure rendering of an [`AlertMail`] into a multipart lettre [`Message`] with
//!   askama templates from `templates/`.
//! - [`outbox`]: [`Outbox`], the durable `.eml` drop (atomic write + fsync + rename).
//! - [`processor`]: [`Processor`], the pure core: topic + bytes in, [`Outcome`] out.
//! - [`run`]: the async shell: one connection, one worker, write → publish → ack.
//!
//! [`Message`]: lettre::Message

pub mod email;
pub mod lifecycle;
pub mod outbox;
pub mod processor;

pub use email::{render, AlertMail, MailConfig, MailError, MailKind};
pub use lettre::message::Mailbox;
pub use lifecycle::{
    step, AlertState, Firing, LifecycleConfig, LifecycleConfigError, Transition, VerdictInput,
};
pub use outbox::{Outbox, OutboxError};
pub use processor::{Notification, Outcome, Processor, ProcessorStats};

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusClient, BusConfig, QoS, Subscription};
use dtwin_schema::{time_fmt, AlertEventKind, TopicKind, Topics};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Longest wait between outbox write retries (disk full, permissions): the verdict stays
/// unacknowledged meanwhile, so nothing is lost while the operator fixes the disk.
pub const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of the alerter.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id; fixed so the persistent session survives restarts.
    pub client_id: String,
    /// Where e-mails are written as `.eml` files.
    pub outbox_dir: PathBuf,
    /// When alerts fire, repeat and resolve.
    pub lifecycle: LifecycleConfig,
    /// Sender, recipients and subject prefix.
    pub mail: MailConfig,
    /// Dashboard link shown in e-mails.
    pub dashboard_url: Option<String>,
}

impl AlerterConfig {
    /// Defaults for a broker at `broker`: prefix `dtwin/v1`, client id `dtwin-alerter`,
    /// outbox `outbox/`, default lifecycle and addresses, no dashboard link.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-alerter".to_owned(),
            outbox_dir: PathBuf::from("outbox"),
            lifecycle: LifecycleConfig::default(),
            mail: MailConfig::default(),
            dashboard_url: None,
        }
    }
}

/// Runs the alerter until `shutdown` fires, then disconnects cleanly.
///
/// # Errors
/// When the lifecycle settings are invalid, the outbox folder cannot be created, or the
/// connection closes under a publish or ack.
pub async fn run(config: AlerterConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config
        .lifecycle
        .validate()
        .context("alerter lifecycle settings")?;
    let outbox = Outbox::new(&config.outbox_dir).context("opening the outbox")?;
    let topics = Topics::new(&config.prefix);
    let subs = vec![Subscription::new(
        topics.all(TopicKind::Risk),
        QoS::AtLeastOnce,
    )];
    let mut bus = BusConfig::new(config.broker.clone(), &config.client_id);
    bus.clean_session = false;
    bus.manual_acks = true;
    let mut conn = dtwin_bus::connect(&bus, subs);
    let mut processor = Processor::new(topics, config.lifecycle, config.mail, config.dashboard_url);
    info!(broker = %config.broker, outbox = %outbox.dir().display(), "alerter started");
    let result = loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
        };
        let outcome = processor.handle(&msg.topic, &msg.payload);
        let done = match outcome {
            Outcome::Quiet => {
                debug!(topic = %msg.topic, "verdict applied");
                Ok(true)
            }
            Outcome::DeadLetter {
                topic,
                payload,
                reason,
            } => {
                warn!(topic = %msg.topic, reason = reason.as_str(), "risk verdict rejected");
                publish(&conn.client, topic, payload).await.map(|()| true)
            }
            Outcome::Notify(n) => deliver(&conn.client, &outbox, &n, &shutdown).await,
        };
        match done {
            // Acked only after the work: a crash before this line redelivers the verdict.
            Ok(true) => {
                if let Err(e) = conn.client.ack(&msg).await {
                    break Err(e).context("acking a risk verdict");
                }
            }
            // Shut down while the outbox was failing: leave it unacked for the next session.
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let stats = processor.stats();
    info!(
        verdicts = stats.verdicts,
        rejected = stats.rejected,
        notifications = stats.notifications,
        firing = stats.firing,
        "alerter stopping"
    );
    conn.close().await;
    result
}

/// Writes the mail, then publishes the lifecycle event and `sent` (or `failed`). Returns
/// false when shut down before the mail could be written.
async fn deliver(
    client: &BusClient,
    outbox: &Outbox,
    n: &Notification,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let follow_up = match &n.mail {
        Ok(bytes) => match write_with_retry(outbox, &n.file_name, bytes, shutdown).await {
            Some(path) => (AlertEventKind::Sent, path.display().to_string()),
            None => return Ok(false),
        },
        Err(e) => {
            error!(machine_id = %n.machine_id, alert_id = %n.event.alert_id, error = %e, "alert e-mail could not be rendered");
            (AlertEventKind::Failed, e.clone())
        }
    };
    let (id, alert_id, level) = (&n.machine_id, &n.event.alert_id, n.event.level.as_str());
    match n.event.event {
        AlertEventKind::Firing => info!(machine_id = %id, alert_id, level, "alert fired"),
        AlertEventKind::Resolved => info!(machine_id = %id, alert_id, level, "alert resolved"),
        _ => debug!(machine_id = %id, alert_id, level, tag = %n.transition.tag(), "alert updated"),
    }
    publish(client, n.topic.clone(), dtwin_schema::to_json(&n.event)).await?;
    let (kind, detail) = follow_up;
    let event = n.delivery_event(kind, detail, time_fmt::now());
    publish(client, n.topic.clone(), dtwin_schema::to_json(&event)).await?;
    Ok(true)
}

/// Writes on a blocking thread (fsync can take a while), retrying with backoff until it
/// works or `shutdown` fires (then `None`).
async fn write_with_retry(
    outbox: &Outbox,
    name: &str,
    bytes: &[u8],
    shutdown: &CancellationToken,
) -> Option<PathBuf> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (o, n, b) = (outbox.clone(), name.to_owned(), bytes.to_vec());
        let result = tokio::task::spawn_blocking(move || o.write(&n, &b)).await;
        let err = match result {
            Ok(Ok(path)) => return Some(path),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(file = name, error = %err, retry_in_ms = backoff.as_millis() as u64, "outbox write failed");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_WRITE_BACKOFF);
    }
}

async fn publish(client: &BusClient, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .context("publishing from the alerter")
}
