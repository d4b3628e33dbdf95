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
//! - [`router`]: [`Router`], the pure core of the loop: any message in, a [`Decision`] out
//!   (a verdict's outcome, a silence set or removed, a handover, or just the ack).
//! - [`processor`]: [`Processor`], the risk-verdict part of it: topic + bytes in, [`Outcome`]
//!   out.
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
//! - [`run`]: the async shell: one connection in (plus one to publish); it moves each message
//!   through the [`Router`] and carries out the decision: queue → publish → ack.

pub mod email;
pub mod fsutil;
pub mod handover;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod plan;
pub mod processor;
pub mod router;
pub mod sender;
mod shell;
pub mod spool;
pub mod transport;

pub use email::{render, AlertMail, MailConfig, MailError, MailKind};
pub use lettre::message::Mailbox;
pub use lifecycle::{
    step, AlertState, Firing, LifecycleConfig, LifecycleConfigError, Transition, VerdictInput,
};
pub use metrics::AlerterMetrics;
pub use outbox::{Outbox, OutboxError};
pub use plan::{Policy, Routing};
pub use processor::{Notification, Outcome, Processor, ProcessorStats};
pub use router::{silence_update, AckOnly, Decision, Ignored, Router, SilenceError};
pub use sender::RetryPolicy;
pub use shell::MAX_WRITE_BACKOFF;
pub use spool::Spool;
pub use transport::Mailer;

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{TopicKind, Topics};
use shell::Shell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Settings of the alerter.
#[derive(Debug, Clone)]
pub struct AlerterConfig {
    /// Broker, prefix, client id, instance, metrics endpoint. The client id is fixed
    /// (`dtwin-alerter`, or `dtwin-alerter-{instance}` for one of several instances, see
    /// [`handover`]) so the persistent session survives restarts; each instance needs its own
    /// spool and outbox.
    pub common: dtwin_runtime::CommonConfig,
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
}

impl AlerterConfig {
    /// Defaults for a broker at `broker`: prefix `dtwin/v1`, client id `dtwin-alerter`,
    /// outbox `outbox/`, spool `outbox/.spool/`, no SMTP, default lifecycle, addresses and policy.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            common: dtwin_runtime::CommonConfig::new(broker),
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
        Some(url) => Mailer::smtp(url)?,
        None => Mailer::Outbox(Outbox::new(&config.outbox_dir).context("opening the outbox")?),
    };
    let topics = Topics::new(&config.common.prefix);
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
        config.common.metrics_shared.as_ref(),
        config.common.metrics_listen,
        shutdown.clone(),
    )
    .await?
    .map(tokio::spawn);
    let node = dtwin_cluster::Node::new(
        topics.prefix(),
        processor::SERVICE,
        config.common.instance.as_deref(),
    );
    let mut subs = vec![
        Subscription::new(topics.all(TopicKind::Risk), QoS::AtLeastOnce),
        Subscription::new(topics.silences(), QoS::AtLeastOnce),
    ];
    if let Some(filter) = node.subscription() {
        // The peers, and the alert states they publish (the handover).
        subs.push(Subscription::new(filter, QoS::AtLeastOnce));
        subs.push(Subscription::new(topics.alert_states(), QoS::AtLeastOnce));
    }
    let client_id = config.common.client_id("alerter");
    let mut bus = BusConfig::new(config.common.broker.clone(), &client_id);
    bus.clean_session = false;
    bus.manual_acks = true;
    bus.last_will = node.last_will()?;
    let (mut conn, publisher) = dtwin_bus::connect_with_publisher(&bus, subs);
    if let Some((topic, payload)) = node.online()? {
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
    let mut router = Router::new(topics.clone(), node, processor);
    let (silence_tx, silence_rx) = watch::channel(Vec::new());
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
    let shell = Shell {
        publisher: publisher.client.clone(),
        spool: spool.clone(),
        metrics,
        silences: silence_tx,
        wake,
        shutdown: shutdown.clone(),
    };
    info!(broker = %config.common.broker, spool = %spool.root().display(), instance = config.common.instance.as_deref(), "alerter started");
    let result = loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
        };
        let decision = router.handle(&msg.topic, &msg.payload);
        shell.metrics.processor(&router.stats());
        match shell.apply(&msg.topic, decision).await {
            // Acked only after the work: a crash before this line redelivers the message.
            Ok(Some(what)) => {
                if let Err(e) = conn.client.ack(&msg).await {
                    break Err(e).context(what);
                }
            }
            // Shut down while the spool was failing: leave it unacked for the next session.
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let stats = router.stats();
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
