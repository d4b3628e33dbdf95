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
//!   repeat, resolve with hysteresis; anomaly alerts on a sustained anomaly ([`Cause`]).
//! - [`router`]: [`Router`], the pure core of the loop: any message in, a [`Decision`] out
//!   (a verdict's outcome, a silence set or removed, a handover, or just the ack).
//! - [`processor`]: [`Processor`], the risk-verdict part of it: topic + bytes in, [`Outcome`]
//!   out.
//! - [`spool`]: [`Spool`], the durable queue and record of every notification.
//! - [`plan`]: pure: silences, routing, digests, rate limits.
//! - [`email`]: pure rendering (askama templates in `templates/`) of alerts and digests.
//! - [`readings`]: pure: a verdict's latest readings with its machine profile's labels and
//!   units ([`Profiles`]: the configured profiles plus milling).
//! - [`transport`]: [`Mailer`]: lettre SMTP (pooled, STARTTLS/TLS/AUTH) or the [`Outbox`].
//! - [`sender`]: the async loop from spool to transport.
//! - [`channels`]: pure: webhook channels (Alertmanager, Slack, Teams, PagerDuty), which
//!   notifications go to which, and each one's JSON; secrets redacted.
//! - [`webhook`]: one async loop per channel from its spool to its receiver (reqwest), with
//!   the e-mail sender's retries and guarantees.
//! - [`handover`]: pure: scale-out (`--instance`), which machines this instance handles and
//!   the alert states that move with them.
//! - [`metrics`]: [`AlerterMetrics`], the Prometheus metrics behind `/metrics`; `/healthz`
//!   follows the broker link (an SMTP outage is the `smtp_up` gauge, not ill health: the
//!   spool holds the mail).
//! - `shell` (private): carries out each [`Decision`]: saves the
//!   confirmation window, queues the record durably ([`MAX_WRITE_BACKOFF`]), publishes the
//!   event and the alert state, hands the silences to the sender, counts, logs; then the ack.
//! - [`AlerterService`]: the async shell on a `dtwin_runtime::Runtime` (the persistent session
//!   with manual acks, the publishing connection, metrics endpoint, instance announcement,
//!   readiness, clean close). `build` checks the settings, opens the spool and the mail
//!   transport, resumes the firing alerts and starts the runtime; `serve` (or
//!   `dtwin_runtime::Service::serve`) starts the [`sender`] and loops: inbox → [`Router`] →
//!   shell → ack. [`run`] is `build` then `serve`.

pub mod channels;
pub mod email;
pub mod fsutil;
pub mod handover;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod plan;
pub mod processor;
pub mod readings;
pub mod router;
pub mod sender;
mod shell;
pub mod spool;
pub mod transport;
pub mod webhook;

pub use email::{render, AlertMail, MailConfig, MailError, MailKind};
pub use lettre::message::Mailbox;
pub use lifecycle::{
    step, AlertState, AnomalyConfig, Cause, Firing, LifecycleConfig, LifecycleConfigError,
    Transition, VerdictInput,
};
pub use metrics::AlerterMetrics;
pub use outbox::{Outbox, OutboxError};
pub use plan::{Policy, Routing};
pub use processor::{Notification, Outcome, Processor, ProcessorStats};
pub use readings::Profiles;
pub use router::{silence_update, AckOnly, Decision, Ignored, Router, SilenceError};
pub use sender::RetryPolicy;
pub use shell::MAX_WRITE_BACKOFF;
pub use spool::Spool;
pub use transport::Mailer;

use dtwin_bus::{Brokers, BusError, QoS};
use dtwin_runtime::{Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_schema::{TopicKind, Topics};
use sender::Sender;
use shell::Shell;
use spool::SpoolError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::info;
use transport::MailerError;

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
    /// When sustained anomalies fire an alert of their own (default: 5 anomalous verdicts in
    /// a row fire, 3 ordinary ones resolve; [`AnomalyConfig::OFF`] turns them off).
    pub anomaly: AnomalyConfig,
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
    /// Machine profiles besides the built-in milling one (read with
    /// `dtwin_feature::load_profiles`): e-mails show a machine's readings with its profile's
    /// labels and units. A verdict of a profile not listed keeps its sensor names.
    pub profiles: Vec<dtwin_profile::Profile>,
    /// `--webhook-url`: every notification also goes to this receiver in Alertmanager's
    /// webhook format (the channel `webhook`). A secret: never logged.
    pub webhook_url: Option<String>,
    /// How long one webhook request may take ([`webhook::WEBHOOK_TIMEOUT`] by default).
    pub webhook_timeout: Duration,
}

impl AlerterConfig {
    /// Defaults for a broker at `broker`: prefix `dtwin/v1`, client id `dtwin-alerter`,
    /// outbox `outbox/`, spool `outbox/.spool/`, no SMTP, default lifecycle, addresses and policy.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            common: dtwin_runtime::CommonConfig::new(broker),
            outbox_dir: PathBuf::from("outbox"),
            spool_dir: PathBuf::from("outbox/.spool"),
            smtp_url: None,
            lifecycle: LifecycleConfig::default(),
            anomaly: AnomalyConfig::default(),
            mail: MailConfig::default(),
            dashboard_url: None,
            routing: Routing::default(),
            policy: Policy::default(),
            retry: RetryPolicy::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            profiles: Vec::new(),
            webhook_url: None,
            webhook_timeout: webhook::WEBHOOK_TIMEOUT,
        }
    }
}

/// Why the alerter could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AlerterError {
    /// The lifecycle settings are unusable.
    #[error("alerter lifecycle settings: {0}")]
    Lifecycle(#[from] LifecycleConfigError),
    /// Delivered records would be pruned while their alert may still repeat.
    #[error(
        "the spool retention ({retention:?}) must be longer than the repeat interval ({repeat})"
    )]
    Retention {
        /// The configured retention.
        retention: Duration,
        /// The configured repeat interval.
        repeat: time::Duration,
    },
    /// A share group: the alerter's persistent session needs a fixed client id, so it scales
    /// out by `--instance` only.
    #[error(
        "the alerter scales out with --instance, not a share group (its persistent session \
         needs a fixed client id)"
    )]
    ShareGroup,
    /// The spool cannot be opened (or another alerter holds it).
    #[error("opening the alert spool: {0}")]
    OpenSpool(#[source] SpoolError),
    /// The spool's records or windows cannot be read.
    #[error("reading the alert spool: {0}")]
    ReadSpool(#[source] SpoolError),
    /// The outbox folder cannot be created.
    #[error("opening the outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// The SMTP URL is unusable.
    #[error(transparent)]
    Mailer(#[from] MailerError),
    /// A webhook channel (`--webhook-url`) is unusable.
    #[error("webhook channel: {0}")]
    Channel(#[from] channels::ChannelError),
    /// The HTTP client for webhooks could not be set up.
    #[error("setting up the webhook HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The runtime could not start (bad instance name, metrics address taken).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The connection closed under a publish or an ack.
    #[error("{what}: {source}")]
    Bus {
        /// What was being done.
        what: &'static str,
        /// The bus error.
        source: BusError,
    },
}

/// The alerter, built: settings checked, spool and mail transport open, alert state resumed
/// from the spool, connected (or connecting) and subscribed (or subscribing), metrics endpoint
/// bound. [`Service::serve`] runs it.
pub struct AlerterService {
    runtime: Runtime,
    router: Router,
    spool: Spool,
    metrics: AlerterMetrics,
    sender: Sender,
    hooks: Vec<webhook::HookSender>,
    routing: Arc<Routing>,
    silences: watch::Sender<Vec<dtwin_schema::Silence>>,
    wake: Arc<Notify>,
}

impl AlerterService {
    /// Checks the settings, opens the spool and the mail transport, resumes the alerts still
    /// firing, then starts the runtime: metrics endpoint, a persistent session with manual
    /// acks on risk verdicts and silences (plus the peers' alert states when scaled out), a
    /// second connection for publishing, the instance's announcement.
    ///
    /// # Errors
    /// Bad settings ([`AlerterError::Lifecycle`], [`AlerterError::Retention`],
    /// [`AlerterError::ShareGroup`], [`AlerterError::Mailer`]), a spool or outbox that cannot
    /// be opened or read, or a runtime that cannot start.
    pub async fn build(config: AlerterConfig) -> Result<Self, AlerterError> {
        config.lifecycle.validate()?;
        config.anomaly.validate()?;
        let repeat = config.lifecycle.repeat_interval;
        if config.retention <= repeat.unsigned_abs() {
            return Err(AlerterError::Retention {
                retention: config.retention,
                repeat,
            });
        }
        if config.common.share_group.is_some() {
            return Err(AlerterError::ShareGroup);
        }
        let mut routing = config.routing.clone();
        if let Some(url) = config.webhook_url.as_deref().filter(|u| !u.is_empty()) {
            routing.add_channel(channels::Channel::webhook(url))?;
        }
        let routing = Arc::new(routing);
        let spool = Spool::open(&config.spool_dir).map_err(AlerterError::OpenSpool)?;
        let mailer = match &config.smtp_url {
            Some(url) => Mailer::smtp(url)?,
            None => Mailer::Outbox(Outbox::new(&config.outbox_dir)?),
        };
        let topics = Topics::new(&config.common.prefix);
        let mut processor = Processor::new(topics.clone(), config.lifecycle, config.dashboard_url)
            .with_anomaly(config.anomaly);
        let firing = spool.firing_records().map_err(AlerterError::ReadSpool)?;
        if !firing.is_empty() {
            info!(
                firing = firing.len(),
                "alerts still firing from before the restart"
            );
        }
        processor.resume_records(firing);
        processor.resume_windows(spool.windows().map_err(AlerterError::ReadSpool)?);
        let mut registry = dtwin_obs::Registry::with_prefix("dtwin_alerter");
        let metrics = AlerterMetrics::register(&mut registry);
        metrics.processor(&processor.stats());
        // The peers' alert states are the handover; the runtime adds the peers themselves.
        let spec = Spec::new(processor::SERVICE, registry)
            .subscribe(topics.all(TopicKind::Risk), QoS::AtLeastOnce)
            .subscribe(topics.silences(), QoS::AtLeastOnce)
            .subscribe(topics.alert_controls(), QoS::AtLeastOnce)
            .subscribe_when_clustered(topics.alert_states(), QoS::AtLeastOnce)
            .persistent()
            .with_publisher();
        let runtime = Runtime::start(&config.common, spec).await?;
        let router = Router::new(topics.clone(), runtime.node.clone(), processor);
        let (silences, silence_rx) = watch::channel(Vec::new());
        let wake = Arc::new(Notify::new());
        let mut hooks = Vec::new();
        if !routing.channels.is_empty() {
            let http = webhook::http_client(config.webhook_timeout).map_err(AlerterError::Http)?;
            for c in &routing.channels {
                hooks.push(webhook::HookSender {
                    channel: c.clone(),
                    spool: spool.channel(&c.name).map_err(AlerterError::OpenSpool)?,
                    http: http.clone(),
                    client: runtime.publisher.clone(),
                    topics: topics.clone(),
                    mail: config.mail.clone(),
                    routing: routing.clone(),
                    retry: config.retry,
                    retention: config.retention,
                    silences: silence_rx.clone(),
                    wake: Arc::new(Notify::new()),
                    metrics: metrics.clone(),
                });
            }
        }
        let sender = Sender {
            spool: spool.clone(),
            mailer,
            client: runtime.publisher.clone(),
            topics,
            mail: config.mail,
            profiles: Profiles::new(&config.profiles),
            routing: (*routing).clone(),
            policy: config.policy,
            retry: config.retry,
            retention: config.retention,
            silences: silence_rx,
            wake: wake.clone(),
            metrics: metrics.clone(),
        };
        Ok(Self {
            runtime,
            router,
            spool,
            metrics,
            sender,
            hooks,
            routing,
            silences,
            wake,
        })
    }
}

/// How long a stopping alerter lets the sender finish the mail in hand (the record stays
/// pending if it does not: it is sent after the restart).
const SENDER_STOP_TIMEOUT: Duration = Duration::from_secs(2);

impl Service for AlerterService {
    type Error = AlerterError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Runs until `shutdown` fires (or the inbox closes): each message goes through the
    /// [`Router`], the shell carries out its [`Decision`], then the message is acked. The
    /// [`sender`] drains the spool meanwhile. Then it lets the sender finish the mail in hand
    /// and closes the connections.
    ///
    /// # Errors
    /// [`AlerterError::Bus`] when the connection closes under a publish or an ack.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), AlerterError> {
        let Self {
            mut runtime,
            mut router,
            spool,
            metrics,
            sender,
            hooks,
            routing,
            silences,
            wake,
        } = self;
        let sender_stop = shutdown.child_token();
        let sender_task = tokio::spawn(sender.run(sender_stop.clone()));
        let mut channels = Vec::new();
        let mut hook_tasks = Vec::new();
        for h in hooks {
            channels.push(shell::ChannelSpool {
                channel: h.channel.clone(),
                spool: h.spool.clone(),
                wake: h.wake.clone(),
            });
            hook_tasks.push(tokio::spawn(h.run(sender_stop.clone())));
        }
        let instance = router
            .node()
            .membership()
            .is_clustered()
            .then(|| router.node().membership().me().to_owned());
        info!(broker = %runtime.broker(), spool = %spool.root().display(), instance = instance.as_deref(), "alerter started");
        let shell = Shell {
            publisher: runtime.publisher.clone(),
            spool,
            metrics,
            silences,
            wake,
            routing,
            channels,
            shutdown: shutdown.clone(),
        };
        let result = loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                msg = runtime.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
            };
            let decision = router.handle(&msg.topic, &msg.payload);
            shell.metrics.processor(&router.stats());
            match shell.apply(&msg.topic, decision).await {
                // Acked only after the work: a crash before this line redelivers the message.
                Ok(Some(what)) => {
                    if let Err(source) = runtime.client.ack(&msg).await {
                        break Err(AlerterError::Bus { what, source });
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
        let _ = tokio::time::timeout(SENDER_STOP_TIMEOUT, async {
            let _ = sender_task.await;
            for t in hook_tasks {
                let _ = t.await;
            }
        })
        .await;
        runtime.close().await;
        result
    }
}

/// Runs the alerter until `shutdown` fires, then disconnects cleanly:
/// [`AlerterService::build`], then [`AlerterService::serve`].
///
/// # Errors
/// As those two: invalid settings, a spool or outbox folder that cannot be opened, a metrics
/// port that cannot be bound, or a connection that closes under a publish or ack.
pub async fn run(config: AlerterConfig, shutdown: CancellationToken) -> Result<(), AlerterError> {
    AlerterService::build(config).await?.serve(shutdown).await
}
