//! The alerter: turns risk verdicts into alert lifecycle events and HTML e-mails that are
//! never lost and never sent twice.
//!
//! It subscribes to every machine's risk topic with a persistent session (fixed client id,
//! clean session off, QoS 1) and manual acks. Per verdict it steps the machine's alert state
//! machine; on a transition it queues a [`spool::Record`] durably, publishes the lifecycle
//! event and only then acks the verdict, so a crash anywhere redelivers the verdict instead of
//! losing it, and the record's fixed name makes the redelivery queue nothing twice. The
//! [`sender`] drains the spool into SMTP (or the `.eml` outbox) with retries, digests, rate
//! limits and silences; a record leaves the spool only once the server accepted it.
//!
//! Delivery guarantee: every alert e-mail is delivered at least once; it is delivered twice
//! only when the alerter dies between the server accepting it and the record moving to
//! `sent/` (a window of one rename), and then the second copy has the same Message-ID and is
//! marked `[possible duplicate]` (header `X-Dtwin-Possible-Duplicate: yes`).
//!
//! # Layout
//! - [`lifecycle`]: the pure per-machine state machine ([`step`]): confirm k of n, escalate,
//!   repeat, resolve with hysteresis.
//! - [`processor`]: [`Processor`], the pure core: topic + bytes in, [`Outcome`] out.
//! - [`spool`]: [`Spool`], the durable queue and record of every notification.
//! - [`plan`]: pure: silences, routing, digests, rate limits.
//! - [`email`]: pure rendering (askama templates in `templates/`) of alerts and digests.
//! - [`transport`]: [`Mailer`]: lettre SMTP (pooled, STARTTLS/TLS/AUTH) or the [`Outbox`].
//! - [`sender`]: the async loop from spool to transport.
//! - [`handover`]: pure: scale-out (`--instance`), which machines this instance handles and
//!   the alert states that move with them.
//! - [`metrics`]: [`AlerterMetrics`], the Prometheus metrics behind `/metrics`; `/healthz`
//!   follows the broker link (an SMTP outage is the `smtp_up` gauge, not ill health: the
//!   spool holds the mail).
//! - [`run`]: the async shell: one connection in (plus one to publish), queue → publish →
//!   ack.

pub mod email;
pub mod fsutil;
pub mod handover;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod plan;
pub mod processor;
pub mod sender;
pub mod spool;
pub mod transport;

use dtwin_schema::AlertEventKind;
pub use email::{render, AlertMail, MailConfig, MailError, MailKind};
pub use lettre::message::Mailbox;
pub use lifecycle::{
    step, AlertState, Firing, LifecycleConfig, LifecycleConfigError, Transition, VerdictInput,
};
pub use metrics::AlerterMetrics;
pub use outbox::{Outbox, OutboxError};
pub use plan::{Policy, Routing};
pub use processor::{Notification, Outcome, Processor, ProcessorStats};
pub use sender::RetryPolicy;
pub use spool::Spool;
pub use transport::Mailer;

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusClient, BusConfig, QoS, Subscription};
use dtwin_schema::{Silence, TopicKind, Topics, SILENCE_SCHEMA};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Longest wait between spool write retries (disk full, permissions): the verdict stays
/// unacknowledged meanwhile, so nothing is lost while the operator fixes the disk.
pub const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of the alerter.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id; fixed so the persistent session survives restarts. With an
    /// `instance` and the default id, `dtwin-alerter-{instance}`.
    pub client_id: String,
    /// This instance's name when several alerters share the fleet (scale-out, see
    /// [`handover`]); `None`: the only instance. Each instance needs its own spool and outbox.
    pub instance: Option<String>,
    /// Where e-mails are written as `.eml` files when no SMTP server is set.
    pub outbox_dir: PathBuf,
    /// The durable spool.
    pub spool_dir: PathBuf,
    /// SMTP server URL (`smtp://`, `smtps://`, `?tls=required`); `None`: the outbox.
    pub smtp_url: Option<String>,
    /// When alerts fire, repeat and resolve.
    pub lifecycle: LifecycleConfig,
    /// Sender, recipients and subject prefix.
    pub mail: MailConfig,
    /// Dashboard link shown in e-mails.
    pub dashboard_url: Option<String>,
    /// Recipients by machine, line and level.
    pub routing: Routing,
    /// Grouping and rate limits.
    pub policy: Policy,
    /// Backoff after a failed send.
    pub retry: RetryPolicy,
    /// How long delivered records stay in the spool.
    pub retention: Duration,
    /// Serve `/metrics` and `/healthz` here; `None`: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Add the metrics to this shared endpoint instead (`dtwin up` serves every in-process
    /// service on one port); takes precedence over `metrics_listen`.
    pub metrics_shared: Option<dtwin_obs::Exposition>,
}

impl AlerterConfig {
    /// Defaults for a broker at `broker`: prefix `dtwin/v1`, client id `dtwin-alerter`,
    /// outbox `outbox/`, spool `outbox/.spool/`, no SMTP, default lifecycle, addresses and policy.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-alerter".to_owned(),
            instance: None,
            outbox_dir: PathBuf::from("outbox"),
            spool_dir: PathBuf::from("outbox/.spool"),
            smtp_url: None,
            lifecycle: LifecycleConfig::default(),
            mail: MailConfig::default(),
            dashboard_url: None,
            routing: Routing::default(),
            policy: Policy::default(),
            retry: RetryPolicy::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            metrics_listen: None,
            metrics_shared: None,
        }
    }
}

/// Runs the alerter until `shutdown` fires, then disconnects cleanly.
///
/// # Errors
/// When the settings are invalid, the spool or outbox folder cannot be opened, the metrics
/// port cannot be bound, or the connection closes under a publish or ack.
pub async fn run(config: AlerterConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config
        .lifecycle
        .validate()
        .context("alerter lifecycle settings")?;
    anyhow::ensure!(
        config.retention > config.lifecycle.repeat_interval.unsigned_abs(),
        "the spool retention must be longer than the repeat interval"
    );
    let spool = Spool::open(&config.spool_dir).context("opening the alert spool")?;
    let mailer = match &config.smtp_url {
        Some(url) => Mailer::smtp(url).map_err(anyhow::Error::msg)?,
        None => Mailer::Outbox(Outbox::new(&config.outbox_dir).context("opening the outbox")?),
    };
    let topics = Topics::new(&config.prefix);
    let mut processor = Processor::new(topics.clone(), config.lifecycle, config.dashboard_url);
    let firing = spool.firing_states().context("reading the alert spool")?;
    if !firing.is_empty() {
        info!(
            firing = firing.len(),
            "alerts still firing from before the restart"
        );
    }
    processor.resume(firing);
    processor.resume_windows(spool.windows().context("reading the alert spool")?);
    let mut registry = dtwin_obs::Registry::with_prefix("dtwin_alerter");
    let metrics = AlerterMetrics::register(&mut registry);
    metrics.processor(&processor.stats());
    let health = dtwin_obs::Health::new();
    let server = dtwin_obs::expose(
        "alerter",
        registry,
        health.clone(),
        config.metrics_shared.as_ref(),
        config.metrics_listen,
        shutdown.clone(),
    )
    .await?
    .map(tokio::spawn);
    let mut node = dtwin_cluster::Node::new(
        topics.prefix(),
        processor::SERVICE,
        config.instance.as_deref(),
    );
    let mut handover = handover::Handover::new();
    let mut subs = vec![
        Subscription::new(topics.all(TopicKind::Risk), QoS::AtLeastOnce),
        Subscription::new(topics.silences(), QoS::AtLeastOnce),
    ];
    if let Some(filter) = node.subscription() {
        // The peers, and the alert states they publish (the handover).
        subs.push(Subscription::new(filter, QoS::AtLeastOnce));
        subs.push(Subscription::new(topics.alert_states(), QoS::AtLeastOnce));
    }
    let client_id = match &config.instance {
        Some(name) if config.client_id == "dtwin-alerter" => format!("dtwin-alerter-{name}"),
        _ => config.client_id.clone(),
    };
    let mut bus = BusConfig::new(config.broker.clone(), &client_id);
    bus.clean_session = false;
    bus.manual_acks = true;
    bus.last_will = node.last_will().map_err(anyhow::Error::msg)?;
    let (mut conn, publisher) = dtwin_bus::connect_with_publisher(&bus, subs);
    if let Some((topic, payload)) = node.online().map_err(anyhow::Error::msg)? {
        conn.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await?;
    }
    // Healthy while subscribed; an SMTP outage is the smtp_up gauge (the spool holds the mail).
    tokio::spawn(health.follow(
        conn.client.link_state(),
        dtwin_bus::LinkState::check_subscribed,
        shutdown.clone(),
    ));
    let (silence_tx, silence_rx) = watch::channel(Vec::new());
    let mut silences: BTreeMap<String, Silence> = BTreeMap::new();
    let wake = Arc::new(Notify::new());
    let sender = sender::Sender {
        spool: spool.clone(),
        mailer,
        client: publisher.client.clone(),
        topics: topics.clone(),
        mail: config.mail,
        routing: config.routing,
        policy: config.policy,
        retry: config.retry,
        retention: config.retention,
        silences: silence_rx,
        wake: wake.clone(),
        metrics: metrics.clone(),
    };
    let sender_stop = shutdown.child_token();
    let sender_task = tokio::spawn(sender.run(sender_stop.clone()));
    info!(broker = %config.broker, spool = %spool.root().display(), instance = config.instance.as_deref(), "alerter started");
    let result = loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
        };
        if let Some(id) = topics.parse_silence(&msg.topic) {
            match silence_update(id, &msg.payload) {
                Ok(Some(s)) => {
                    info!(silence = %s.silence_id, until = %s.until, machines = ?s.machines, lines = ?s.lines, "silence set");
                    silences.insert(id.to_owned(), s);
                }
                Ok(None) => {
                    if silences.remove(id).is_some() {
                        info!(silence = id, "silence removed");
                    }
                }
                Err(e) => warn!(topic = %msg.topic, error = %e, "bad silence ignored"),
            }
            silence_tx.send_replace(silences.values().cloned().collect());
            if let Err(e) = conn.client.ack(&msg).await {
                break Err(e).context("acking a silence");
            }
            continue;
        }
        match cluster_message(&msg, &topics, &mut node, &mut handover, &mut processor) {
            Cluster::NotCluster => {}
            Cluster::Handled { adopted } => {
                metrics.handovers.inc_by(adopted);
                metrics.processor(&processor.stats());
                if let Err(e) = conn.client.ack(&msg).await {
                    break Err(e).context("acking a cluster message");
                }
                continue;
            }
        }
        let outcome = processor.handle(&msg.topic, &msg.payload);
        metrics.processor(&processor.stats());
        if let Some((machine, window)) = processor.take_window_change() {
            // Before the ack, so a restart still counts this verdict towards firing.
            let s = spool.clone();
            match tokio::task::spawn_blocking(move || s.save_window(&machine, window)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "confirmation window not saved"),
                Err(e) => warn!(error = %e, "confirmation window not saved"),
            }
        }
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
                metrics.rejected(reason.as_str());
                publish(&publisher.client, topic, payload)
                    .await
                    .map(|()| true)
            }
            Outcome::Notify(n) => {
                if node.membership().is_clustered() {
                    handover.produced(&n.state);
                }
                queue(&publisher.client, &spool, &n, &metrics, &shutdown).await
            }
        };
        if matches!(done, Ok(true)) {
            wake.notify_one();
        }
        match done {
            // Acked only after the work: a crash before this line redelivers the verdict.
            Ok(true) => {
                if let Err(e) = conn.client.ack(&msg).await {
                    break Err(e).context("acking a risk verdict");
                }
            }
            // Shut down while the spool was failing: leave it unacked for the next session.
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
    // Let the sender finish the mail in hand, then stop it.
    sender_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), sender_task).await;
    tokio::join!(publisher.close(), conn.close());
    // It stops on shutdown by itself; a run that ends on its own (`--steps`, a closed
    // connection) stops it here.
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// A silence message: `Some` to set, `None` (empty payload) to remove.
///
/// # Errors
/// Not a silence, a different id than the topic's, or a bad pattern.
pub fn silence_update(id: &str, payload: &[u8]) -> Result<Option<Silence>, String> {
    if payload.is_empty() {
        return Ok(None);
    }
    let s: Silence = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if s.schema != SILENCE_SCHEMA {
        return Err(format!(
            "schema is {:?}; expected {SILENCE_SCHEMA:?}",
            s.schema
        ));
    }
    if s.silence_id != id {
        return Err(format!(
            "silence_id {:?} differs from the topic's {id:?}",
            s.silence_id
        ));
    }
    if s.machines.is_empty() && s.lines.is_empty() {
        return Err("a silence needs machines or lines".to_owned());
    }
    Ok(Some(s))
}

/// Queues the record, then publishes the lifecycle event. Returns false when shut down
/// before the record could be written.
async fn queue(
    client: &BusClient,
    spool: &Spool,
    n: &Notification,
    metrics: &AlerterMetrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    match write_with_retry(spool, &n.record, shutdown).await {
        None => return Ok(false),
        Some(true) => {
            metrics.spooled.inc();
            metrics.spool_pending.inc();
        }
        Some(false) => {}
    }
    let (id, alert_id, level) = (&n.machine_id, &n.event.alert_id, n.event.level.as_str());
    match n.event.event {
        AlertEventKind::Firing => info!(machine_id = %id, alert_id, level, "alert fired"),
        AlertEventKind::Resolved => info!(machine_id = %id, alert_id, level, "alert resolved"),
        _ => debug!(machine_id = %id, alert_id, level, tag = %n.transition.tag(), "alert updated"),
    }
    publish(client, n.topic.clone(), dtwin_schema::to_json(&n.event)).await?;
    metrics.event(n.event.event);
    client
        .publish(
            n.state_topic.clone(),
            QoS::AtLeastOnce,
            true,
            dtwin_schema::to_json(&n.state),
        )
        .await
        .context("publishing the alert state")?;
    Ok(true)
}

/// What [`cluster_message`] did.
enum Cluster {
    /// A risk verdict of this instance's, or a silence: handle it.
    NotCluster,
    /// A peer's announcement, an alert state, or a verdict another instance handles: done
    /// (ack it); `adopted` machines took over another instance's alert state.
    Handled { adopted: u64 },
}

/// The scale-out part of the loop: membership changes move machines in and out of the
/// processor, alert states feed the [`handover::Handover`], verdicts of machines another
/// instance owns are skipped. A single instance (no `--instance`) handles everything itself.
fn cluster_message(
    msg: &dtwin_bus::Message,
    topics: &Topics,
    node: &mut dtwin_cluster::Node,
    handover: &mut handover::Handover,
    processor: &mut Processor,
) -> Cluster {
    if !node.membership().is_clustered() {
        return Cluster::NotCluster;
    }
    if let Some(id) = topics.parse_alert_state(&msg.topic) {
        let mut adopted = 0;
        match handover::decode(id, &msg.payload) {
            Ok(s) => {
                if let Some(firing) = handover.received(&s, node.owns(id)) {
                    debug!(machine_id = %s.machine_id, firing = firing.is_some(), "late alert state adopted");
                    processor.adopt(s.machine_id, firing);
                    adopted = 1;
                }
            }
            Err(e) => warn!(topic = %msg.topic, error = %e, "bad alert state ignored"),
        }
        return Cluster::Handled { adopted };
    }
    if let Some((TopicKind::Risk, id)) = topics.parse(&msg.topic) {
        return if node.owns(id) {
            Cluster::NotCluster
        } else {
            Cluster::Handled { adopted: 0 }
        };
    }
    let before = node.membership().clone();
    match node.handle(&msg.topic, &msg.payload) {
        None => Cluster::NotCluster,
        Some(None) => Cluster::Handled { adopted: 0 },
        Some(Some(change)) => {
            let r = handover.reassign(processor.machines(), &before, node.membership());
            info!(
                ?change,
                adopted = r.adopt.len(),
                forgotten = r.forget.len(),
                "alerter cluster changed"
            );
            for m in &r.forget {
                processor.forget(m);
            }
            let adopted = r.adopt.len() as u64;
            for (m, firing) in r.adopt {
                processor.adopt(m, firing);
            }
            Cluster::Handled { adopted }
        }
    }
}

/// Writes on a blocking thread (fsync can take a while), retrying with backoff until it
/// works (then whether it was queued; false: delivered before) or `shutdown` fires (`None`).
async fn write_with_retry(
    spool: &Spool,
    record: &spool::Record,
    shutdown: &CancellationToken,
) -> Option<bool> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (s, r) = (spool.clone(), record.clone());
        let result = tokio::task::spawn_blocking(move || s.put(&r)).await;
        let err = match result {
            Ok(Ok(queued)) => {
                if !queued {
                    debug!(record = %record.name(), "already delivered; not queued again");
                }
                return Some(queued);
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(record = %record.name(), error = %err, retry_in_ms = backoff.as_millis() as u64, "spool write failed");
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
