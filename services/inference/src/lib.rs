//! The inference service: scores every feature vector with the deployed Random Forest and the
//! expert rules, and publishes a risk verdict per reading. A model published (retained) on
//! `{prefix}/models/current` replaces the running one without a restart, if its feature set
//! matches; otherwise it is refused with a clear log line and a dead letter.
//!
//! # Layout
//! - [`rules`]: the expert system, rules as TOML data.
//! - [`scorer`]: [`Scorer`], the pure core (features in, risk out) and [`scorer::decide`].
//! - [`model`]: loading and checking artifacts (the shipped default, a file, or MQTT bytes).
//! - [`drift`]: [`drift::DriftMonitor`], live feature and risk distributions against the
//!   model's training reference (KS and Jensen-Shannon over a rolling window); pure.
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`run`]: the async shell: one task reads the MQTT inbox, scores inline (microseconds per
//!   row) and publishes.

pub mod drift;
pub mod metrics;
pub mod model;
pub mod rules;
pub mod scorer;

pub use drift::{DriftConfig, DriftMonitor};
pub use metrics::InferenceMetrics;
pub use model::{load_model, ModelSource, SHIPPED_MODEL};
pub use rules::{RuleSet, RulesError, DEFAULT_RULES};
pub use scorer::{decide, Scorer};

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusClient, BusConfig, QoS, Subscription};
use dtwin_windows::WindowConfig;
use dtwin_schema::{from_json, to_json, DeadLetter, Features, Rejection, TopicKind, Topics};
use std::net::SocketAddr;
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
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id.
    pub client_id: String,
    /// Where the model at start comes from.
    pub model: ModelSource,
    /// Rules file; `None` uses the shipped rules.
    pub rules_path: Option<std::path::PathBuf>,
    /// The window configuration of the feature service (models must match its feature set).
    pub window: WindowConfig,
    /// This instance's name when several inference services share the fleet (scale-out, see
    /// `dtwin-cluster`); `None`: the only instance.
    pub instance: Option<String>,
    /// Subscribe to feature vectors as a member of this MQTT shared-subscription group (see
    /// `dtwin_bus::shared_filter`); excludes `instance`.
    pub share_group: Option<String>,
    /// Serve `/metrics` and `/healthz` here; `None`: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Add the metrics to this shared endpoint instead (`dtwin up` serves every in-process
    /// service on one port); takes precedence over `metrics_listen`.
    pub metrics_shared: Option<dtwin_obs::Exposition>,
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
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-inference".to_owned(),
            model: ModelSource::Shipped,
            rules_path: None,
            window: WindowConfig::default(),
            instance: None,
            share_group: None,
            metrics_listen: None,
            metrics_shared: None,
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
    let topics = Topics::new(&config.prefix);
    let mut node = dtwin_cluster::Node::new(&config.prefix, SERVICE, config.instance.as_deref());
    let mut registry = dtwin_obs::Registry::with_prefix("dtwin_inference");
    let metrics = InferenceMetrics::register(&mut registry);
    let health = dtwin_obs::Health::new();
    let server = dtwin_obs::expose(
        SERVICE,
        registry,
        health.clone(),
        config.metrics_shared.as_ref(),
        config.metrics_listen,
        shutdown.clone(),
    )
    .await?
    .map(tokio::spawn);
    anyhow::ensure!(
        config.share_group.is_none() || config.instance.is_none(),
        "--share-group and --instance are two ways to scale out; use one"
    );
    let features = dtwin_bus::shared_filter(
        config.share_group.as_deref(),
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
    let client_id = match &config.instance {
        Some(name) if config.client_id == "dtwin-inference" => format!("dtwin-inference-{name}"),
        None if config.share_group.is_some() && config.client_id == "dtwin-inference" => {
            dtwin_bus::unique_client_id("dtwin-inference")
        }
        _ => config.client_id.clone(),
    };
    let mut bus = BusConfig::new(config.broker.clone(), &client_id);
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
    let drift = DriftMonitor::new(scorer.model().reference.clone(), config.drift);
    let mut svc = Service {
        client: publisher.client.clone(),
        topics,
        metrics,
        scorer,
        expected,
        rules_text,
        drift,
        drift_service: drift_service(config.instance.as_deref()),
        drift_state: None,
    };
    svc.model_changed();
    let model_topic = svc.topics.model_current();
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
                    if let Err(e) = svc.publish_drift().await {
                        result = Err(e);
                        break;
                    }
                    continue;
                }
            }
        };
        svc.metrics
            .inbox
            .set(i64::try_from(conn.inbox.len()).unwrap_or(i64::MAX));
        if let Some(change) = node.handle(&msg.topic, &msg.payload) {
            if let Some(change) = change {
                info!(?change, "inference cluster changed");
            }
            continue;
        }
        let handled = match route(&svc.topics, &node, &msg) {
            Route::NotMine => continue,
            Route::Other if msg.topic == model_topic => {
                svc.deployed(&msg.topic, &msg.payload).await
            }
            Route::Other => svc.features(std::slice::from_ref(&msg)).await,
            Route::Features => {
                // Micro-batch: whatever else is already waiting, never waiting for more. The
                // batch ends at the first message of another kind, which is handled next, so
                // the order of model swaps and cluster changes relative to vectors holds.
                let mut batch = vec![msg];
                while batch.len() < config.max_batch {
                    let Ok(next) = conn.inbox.try_recv() else {
                        break;
                    };
                    match route(&svc.topics, &node, &next) {
                        Route::Features => batch.push(next),
                        Route::NotMine => {}
                        Route::Other => {
                            held = Some(next);
                            break;
                        }
                    }
                }
                svc.features(&batch).await
            }
        };
        if let Err(e) = handled {
            result = Err(e);
            break;
        }
    }
    let scored = svc.metrics.messages_out.get();
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

/// What the service loop does with an inbox message.
enum Route {
    /// A feature vector of a machine this instance owns: scored, possibly in a batch.
    Features,
    /// A feature vector of a machine another instance owns: skipped.
    NotMine,
    /// Anything else (a deployed model, a topic that is not ours): handled on its own.
    Other,
}

fn route(topics: &Topics, node: &dtwin_cluster::Node, msg: &dtwin_bus::Message) -> Route {
    match topics.parse(&msg.topic) {
        Some((_, machine)) if !node.owns(machine) => Route::NotMine,
        Some((TopicKind::Features, _)) => Route::Features,
        _ => Route::Other,
    }
}

/// The service's state between messages.
struct Service {
    client: BusClient,
    topics: Topics,
    metrics: InferenceMetrics,
    scorer: Scorer,
    /// The feature set deployed models must match.
    expected: String,
    rules_text: String,
    drift: DriftMonitor,
    drift_service: String,
    /// The last published drift verdict (state changes are logged).
    drift_state: Option<dtwin_schema::DriftState>,
}

impl Service {
    fn model_changed(&self) {
        let m = self.scorer.model();
        self.metrics.model(&metrics::model_labels(
            &m.model_id,
            &m.version,
            &m.feature_set_hash,
        ));
    }

    /// A model published on `models/current`: swap to it, or refuse it with a dead letter.
    async fn deployed(&mut self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        if payload.is_empty() {
            return Ok(()); // a cleared retained message
        }
        match model::swap(payload, &self.expected, &self.rules_text) {
            Ok(next) => {
                let (old, new) = (self.scorer.model(), next.model());
                info!(
                    old = %format!("{} {}", old.model_id, old.version),
                    new = %format!("{} {}", new.model_id, new.version),
                    "model swapped"
                );
                self.scorer = next;
                // Another model, another reference: the window starts again.
                self.drift =
                    DriftMonitor::new(self.scorer.model().reference.clone(), *self.drift.config());
                self.metrics.swap(true);
                self.model_changed();
                Ok(())
            }
            Err(rejection) => {
                warn!(error = %rejection, "refused deployed model; keeping the running one");
                self.metrics.swap(false);
                self.dead_letter(topic, payload, rejection).await
            }
        }
    }

    /// Feature vectors (one, or a micro-batch of several): score them together and publish a
    /// verdict for each in order, or dead-letter the ones that do not parse or fit the model.
    async fn features(&mut self, batch: &[dtwin_bus::Message]) -> anyhow::Result<()> {
        self.metrics.messages_in.inc_by(batch.len() as u64);
        self.metrics.batch.observe(batch.len() as f64);
        // Scoring takes microseconds per row, so it runs inline rather than on a blocking pool.
        let started = Instant::now();
        let now = dtwin_schema::time_fmt::now();
        let mut parsed = Vec::with_capacity(batch.len());
        let mut outcomes: Vec<Option<Rejection>> = Vec::with_capacity(batch.len());
        for msg in batch {
            match from_json::<Features>(&msg.payload) {
                Ok(f) => {
                    parsed.push(f);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Rejection::new(
                    dtwin_schema::RejectReason::WrongType,
                    e.to_string(),
                ))),
            }
        }
        let mut verdicts = self.scorer.score_batch(&parsed, now).into_iter();
        let per_message = started.elapsed().as_secs_f64() / batch.len().max(1) as f64;
        for (msg, outcome) in batch.iter().zip(outcomes) {
            self.metrics.scoring.observe(per_message);
            let verdict = match outcome {
                Some(rejection) => Err(rejection),
                None => verdicts.next().expect("one verdict per parsed vector"),
            };
            match verdict {
                Ok((risk, scored)) => {
                    // Cold windows are left out, as they are of the training rows.
                    if !risk.cold {
                        self.drift.observe(&scored.row, scored.probability);
                    }
                    self.metrics.verdict(risk.status, risk.level, risk.cold);
                    let age = (now - risk.source_ts).as_seconds_f64();
                    if age >= 0.0 {
                        self.metrics.age.observe(age);
                    }
                    self.client
                        .publish(
                            self.topics.risk(&risk.machine_id),
                            QoS::AtLeastOnce,
                            false,
                            to_json(&risk),
                        )
                        .await?;
                    self.metrics.messages_out.inc();
                }
                Err(rejection) => {
                    debug!(topic = %msg.topic, error = %rejection, "features rejected");
                    self.dead_letter(&msg.topic, &msg.payload, rejection)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Publishes the drift status, retained, and records it in the metrics.
    async fn publish_drift(&mut self) -> anyhow::Result<()> {
        let m = self.scorer.model();
        let model = dtwin_schema::ModelRef {
            id: m.model_id.clone(),
            version: m.version.clone(),
        };
        let status = self
            .drift
            .status(&self.drift_service, model, dtwin_schema::time_fmt::now());
        self.metrics.drift(&status);
        if self.drift_state != Some(status.state) {
            if status.state == dtwin_schema::DriftState::Drift {
                warn!(drifted = ?status.drifted, window = status.window, "live inputs drifted from the training reference");
            } else {
                info!(state = ?status.state, window = status.window, "drift status");
            }
            self.drift_state = Some(status.state);
        }
        self.client
            .publish(
                self.topics.drift(&self.drift_service),
                QoS::AtLeastOnce,
                true,
                to_json(&status),
            )
            .await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        topic: &str,
        payload: &[u8],
        rejection: Rejection,
    ) -> anyhow::Result<()> {
        self.metrics.rejected(rejection.reason.as_str());
        let dl = DeadLetter::new(SERVICE, topic, payload, rejection.reason, rejection.detail);
        self.client
            .publish(
                self.topics.deadletter(SERVICE),
                QoS::AtLeastOnce,
                false,
                to_json(&dl),
            )
            .await?;
        Ok(())
    }
}
