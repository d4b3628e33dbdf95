//! The inference service: scores every feature vector with the deployed Random Forest and the
//! expert rules, and publishes a risk verdict per reading. A model published (retained) on
//! `{prefix}/models/current` replaces the running one without a restart, if its feature set
//! matches; otherwise it is refused with a clear log line and a dead letter.
//!
//! # Layout
//! - [`rules`]: the expert system, rules as TOML data.
//! - [`processor`]: [`Processor`], the service's pure core: routed inbox messages and a clock
//!   in; verdicts, dead letters, model swaps and the drift status out ([`processor::route`]
//!   decides what the loop batches).
//! - [`scorer`]: [`Scorer`], one model with its rules (features in, risk out) and
//!   [`scorer::decide`].
//! - [`model`]: loading and checking artifacts (the shipped default, a file, or MQTT bytes).
//! - [`drift`]: [`drift::DriftMonitor`], live feature and risk distributions against the
//!   model's training reference (KS and Jensen-Shannon over a rolling window); pure.
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`run`]: the async shell: one task reads the MQTT inbox, gathers micro-batches of what is
//!   already waiting, hands them to the processor (scoring is inline, microseconds per row),
//!   publishes what it returns and records the metrics.

pub mod drift;
pub mod metrics;
pub mod model;
pub mod processor;
pub mod rules;
pub mod scorer;

pub use drift::{DriftConfig, DriftMonitor};
pub use metrics::InferenceMetrics;
pub use model::{load_model, ModelSource, SHIPPED_MODEL};
pub use processor::{Processor, ProcessorConfig};
pub use rules::{RuleSet, RulesError, DEFAULT_RULES};
pub use scorer::{decide, Scorer};

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusClient, BusConfig, QoS, Subscription};
use dtwin_schema::{TopicKind, Topics};
use dtwin_windows::WindowConfig;
use processor::{Event, Inbound, Outgoing, Route};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The name under which this service dead-letters.
pub const SERVICE: &str = "inference";

/// How often the drift status is published by default.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(5);

/// Most feature vectors scored in one micro-batch by default.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// The `{service}` segment of this instance's drift topic: `inference`, or
/// `inference.{instance}` when scaled out (each instance sees only its machines), cut to the
/// 64 characters a topic segment may have.
pub fn drift_service(instance: Option<&str>) -> String {
    match instance {
        None => SERVICE.to_owned(),
        Some(name) => format!("{SERVICE}.{name}").chars().take(64).collect(),
    }
}

/// Settings of the inference service.
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    /// Broker, prefix, client id, instance, share group, metrics endpoint.
    pub common: dtwin_runtime::CommonConfig,
    /// Where the model at start comes from.
    pub model: ModelSource,
    /// Rules file; `None` uses the shipped rules.
    pub rules_path: Option<std::path::PathBuf>,
    /// The window configuration of the feature service (models must match its feature set).
    pub window: WindowConfig,
    /// Drift window and thresholds.
    pub drift: DriftConfig,
    /// How often the drift status is published (retained on `{prefix}/drift/{service}`);
    /// zero: never.
    pub drift_interval: Duration,
    /// Most feature vectors scored together when several are already waiting in the inbox
    /// (micro-batch). The service never waits to fill a batch, so a light load gets no added
    /// latency; 1 scores one at a time.
    pub max_batch: usize,
}

impl InferenceConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            common: dtwin_runtime::CommonConfig::new(broker),
            model: ModelSource::Shipped,
            rules_path: None,
            window: WindowConfig::default(),
            drift: DriftConfig::default(),
            drift_interval: DEFAULT_DRIFT_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }

    /// Loads the rules text named by the config, with `{short}` and `{long}` replaced by the
    /// configured window sizes ([`rules::expand_windows`]).
    ///
    /// # Errors
    /// When the rules file cannot be read.
    pub fn rules_text(&self) -> anyhow::Result<String> {
        let text = match &self.rules_path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read rules file {}", p.display()))?,
            None => DEFAULT_RULES.to_owned(),
        };
        Ok(rules::expand_windows(&text, &self.window))
    }
}

/// Builds the scorer for the configured model and rules, checking the feature set.
///
/// # Errors
/// A bad or mismatched model, or a bad rules file (with line and reason).
pub fn build_scorer(config: &InferenceConfig) -> anyhow::Result<Scorer> {
    let (_, expected) = dtwin_windows::feature_set(&config.window);
    let model = load_model(&config.model, &expected)?;
    let rules = RuleSet::parse(&config.rules_text()?, &model.feature_names)?;
    Ok(Scorer::new(Arc::new(model), Arc::new(rules)))
}

/// Runs the inference service until `shutdown` fires.
///
/// # Errors
/// A bad model or rules file at start, the metrics port cannot be bound, or a closed
/// connection.
pub async fn run(config: InferenceConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scorer = build_scorer(&config)?;
    let rules_text = config.rules_text()?;
    let (_, expected) = dtwin_windows::feature_set(&config.window);
    let topics = Topics::new(&config.common.prefix);
    let mut node = dtwin_cluster::Node::new(
        &config.common.prefix,
        SERVICE,
        config.common.instance.as_deref(),
    );
    let mut registry = dtwin_obs::Registry::with_prefix("dtwin_inference");
    let metrics = InferenceMetrics::register(&mut registry);
    let health = dtwin_obs::Health::new();
    let server = dtwin_obs::expose(
        SERVICE,
        registry,
        health.clone(),
        config.common.metrics_shared.as_ref(),
        config.common.metrics_listen,
        shutdown.clone(),
    )
    .await?
    .map(tokio::spawn);
    anyhow::ensure!(
        config.common.share_group.is_none() || config.common.instance.is_none(),
        "--share-group and --instance are two ways to scale out; use one"
    );
    let features = dtwin_bus::shared_filter(
        config.common.share_group.as_deref(),
        topics.all(TopicKind::Features),
    )
    .map_err(anyhow::Error::msg)?;
    let mut subs = vec![
        Subscription::new(features, QoS::AtLeastOnce),
        Subscription::new(topics.model_current(), QoS::AtLeastOnce),
    ];
    subs.extend(
        node.subscription()
            .map(|f| Subscription::new(f, QoS::AtLeastOnce)),
    );
    // Instances of one service need distinct MQTT client ids, or the broker drops one for the
    // other.
    let client_id = config.common.client_id(SERVICE);
    let mut bus = BusConfig::new(config.common.broker.clone(), &client_id);
    bus.last_will = node.last_will().map_err(anyhow::Error::msg)?;
    let (mut conn, publisher) = dtwin_bus::connect_with_publisher(&bus, subs);
    tokio::spawn(health.clone().follow(
        conn.client.link_state(),
        dtwin_bus::LinkState::check_subscribed,
        shutdown.clone(),
    ));
    if let Some((topic, payload)) = node.online().map_err(anyhow::Error::msg)? {
        conn.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await?;
    }
    info!(model = %scorer.model().model_id, version = %scorer.model().version, "inference service started");
    let processor = Processor::new(
        topics,
        scorer,
        ProcessorConfig {
            expected,
            rules_text,
            drift: config.drift,
            drift_service: drift_service(config.common.instance.as_deref()),
        },
    );
    metrics.model(&processor.model_labels());
    let mut shell = Shell {
        client: publisher.client.clone(),
        metrics,
        processor,
    };
    // The first tick fires at once: the status (warming up, or no reference) is there from
    // the start.
    let mut drift_tick = tokio::time::interval(if config.drift_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        config.drift_interval
    });
    drift_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    // A message taken from the inbox while filling a batch that is not part of it.
    let mut held: Option<dtwin_bus::Message> = None;
    loop {
        let msg = if let Some(m) = held.take() {
            m
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = conn.inbox.recv() => match msg { Some(m) => m, None => break },
                _ = drift_tick.tick(), if !config.drift_interval.is_zero() => {
                    if let Err(e) = shell.publish_drift().await {
                        result = Err(e);
                        break;
                    }
                    continue;
                }
            }
        };
        shell
            .metrics
            .inbox
            .set(i64::try_from(conn.inbox.len()).unwrap_or(i64::MAX));
        if let Some(change) = node.handle(&msg.topic, &msg.payload) {
            if let Some(change) = change {
                info!(?change, "inference cluster changed");
            }
            continue;
        }
        let batch = match shell.processor.route(&msg.topic, |m| node.owns(m)) {
            Route::NotMine => continue,
            Route::Model | Route::Other => vec![msg],
            Route::Features => {
                // Micro-batch: whatever else is already waiting, never waiting for more. The
                // batch ends at the first message of another kind, which is handled next, so
                // the order of model swaps and cluster changes relative to vectors holds.
                let mut batch = vec![msg];
                while batch.len() < config.max_batch {
                    let Ok(next) = conn.inbox.try_recv() else {
                        break;
                    };
                    match shell.processor.route(&next.topic, |m| node.owns(m)) {
                        Route::Features => batch.push(next),
                        Route::NotMine => {}
                        Route::Model | Route::Other => {
                            held = Some(next);
                            break;
                        }
                    }
                }
                batch
            }
        };
        if let Err(e) = shell.handle(&batch).await {
            result = Err(e);
            break;
        }
    }
    let scored = shell.metrics.messages_out.get();
    info!(scored, "inference service stopping");
    let close = async { tokio::join!(publisher.close(), conn.close()) };
    if tokio::time::timeout(dtwin_bus::CLOSE_DRAIN * 2, close)
        .await
        .is_err()
    {
        warn!("inference service did not disconnect in time");
    }
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// The async side of the loop: hands batches to the [`Processor`], publishes what it returns
/// and records the metrics.
struct Shell {
    client: BusClient,
    metrics: InferenceMetrics,
    processor: Processor,
}

impl Shell {
    /// Scores or deploys one routed batch and publishes the outcome.
    async fn handle(&mut self, batch: &[dtwin_bus::Message]) -> anyhow::Result<()> {
        let inbound: Vec<Inbound<'_>> = batch
            .iter()
            .map(|m| Inbound::new(&m.topic, &m.payload))
            .collect();
        // Scoring takes microseconds per row, so it runs inline rather than on a blocking pool.
        let started = Instant::now();
        let out = self
            .processor
            .handle(&inbound, dtwin_schema::time_fmt::now());
        let per_message = started.elapsed().as_secs_f64() / out.scored_messages().max(1) as f64;
        for event in out.events {
            self.record(event, per_message);
        }
        for o in out.publishes {
            self.publish(o).await?;
        }
        Ok(())
    }

    fn record(&self, event: Event, per_message: f64) {
        match event {
            Event::Batch { messages } => {
                self.metrics.messages_in.inc_by(messages as u64);
                self.metrics.batch.observe(messages as f64);
                for _ in 0..messages {
                    self.metrics.scoring.observe(per_message);
                }
            }
            Event::Swapped { old, new, labels } => {
                info!(
                    old = %format!("{} {}", old.id, old.version),
                    new = %format!("{} {}", new.id, new.version),
                    "model swapped"
                );
                self.metrics.swap(true);
                self.metrics.model(&labels);
            }
            Event::Refused { rejection } => {
                warn!(error = %rejection, "refused deployed model; keeping the running one");
                self.metrics.swap(false);
            }
        }
    }

    /// Records what `o` says and publishes it.
    async fn publish(&self, o: Outgoing) -> anyhow::Result<()> {
        let verdict = match &o {
            Outgoing::Verdict {
                status,
                level,
                cold,
                age,
                ..
            } => {
                self.metrics.verdict(*status, *level, *cold);
                if let Some(age) = age {
                    self.metrics.age.observe(*age);
                }
                true
            }
            Outgoing::DeadLetter {
                rejection, source, ..
            } => {
                debug!(topic = %source, error = %rejection, "input rejected");
                self.metrics.rejected(rejection.reason.as_str());
                false
            }
            Outgoing::Drift { .. } => false,
        };
        let retain = o.retained();
        let (topic, payload) = o.into_parts();
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await?;
        if verdict {
            self.metrics.messages_out.inc();
        }
        Ok(())
    }

    /// Publishes the drift status, retained, and records it in the metrics.
    async fn publish_drift(&mut self) -> anyhow::Result<()> {
        let report = self.processor.drift_status(dtwin_schema::time_fmt::now());
        let status = &report.status;
        self.metrics.drift(status);
        if report.changed {
            if status.state == dtwin_schema::DriftState::Drift {
                warn!(drifted = ?status.drifted, window = status.window, "live inputs drifted from the training reference");
            } else {
                info!(state = ?status.state, window = status.window, "drift status");
            }
        }
        self.publish(report.publish).await
    }
}
