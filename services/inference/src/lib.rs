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
//! - [`profiles`]: one model per machine profile (`{prefix}/models/{profile}`) and the
//!   rules-only verdict of a profile without one; pure.
//! - [`kinds`]: each profile's quality, anomaly and rul models
//!   (`{prefix}/models/{profile}/{kind}`), which add `quality_risk`, `anomaly`/`anomalous` and
//!   `rul` to its verdicts; pure.
//! - [`drift`]: [`drift::DriftMonitor`], live feature and risk distributions against the
//!   model's training reference (KS and Jensen-Shannon over a rolling window); pure.
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`InferenceService`]: the async shell on a `dtwin_runtime::Runtime` (connections, metrics
//!   endpoint, instance announcement, readiness, clean close). `build` loads the model and
//!   rules and connects; `serve` (`dtwin_runtime::Service`) loops: the inbox, cluster
//!   announcements to `runtime.node`, micro-batches of what is already waiting to the processor
//!   (scoring is inline, microseconds per row), its outputs to `runtime.publisher`, metrics.
//!   [`run`] is `build` then `serve`.

pub mod drift;
pub mod kinds;
pub mod metrics;
pub mod model;
pub mod processor;
pub mod profiles;
pub mod rules;
pub mod scorer;

pub use drift::{DriftConfig, DriftMonitor};
pub use metrics::InferenceMetrics;
pub use model::{load_model, ModelError, ModelSource, SHIPPED_MODEL};
pub use processor::{Processor, ProcessorConfig};
pub use rules::{RuleSet, RulesError, DEFAULT_RULES};
pub use scorer::{decide, Scorer};

use dtwin_bus::{Brokers, BusClient, Message, QoS};
use dtwin_runtime::{CommonConfig, Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_schema::{ModelRef, TopicKind, Topics};
use dtwin_windows::WindowConfig;
use processor::{Event, Inbound, Outgoing, Route};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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
    pub common: CommonConfig,
    /// Where the model at start comes from.
    pub model: ModelSource,
    /// Rules file; `None` uses the shipped rules.
    pub rules_path: Option<PathBuf>,
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
    /// Load the shipped milling quality and anomaly models at start ([`model::SHIPPED_KINDS`];
    /// skipped with a log line when the windows are not the ones they were trained on).
    pub shipped_kinds: bool,
    /// Quality, anomaly or rul model files to load at start, each for the profile of its
    /// recipe (milling for twin data) under its kind. A model deployed retained on
    /// `models/{profile}/{kind}` replaces them as it arrives.
    pub kind_models: Vec<PathBuf>,
    /// A stall on purpose, for load tests (`dtwin loadtest --stall-inference-s`): once the
    /// first `Duration` has passed since start, stop taking messages for the second. The inbox
    /// fills, the connection stops acknowledging and the backlog waits in the broker.
    pub pause: Option<(Duration, Duration)>,
}

impl InferenceConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            common: CommonConfig::new(broker),
            model: ModelSource::Shipped,
            rules_path: None,
            window: WindowConfig::default(),
            drift: DriftConfig::default(),
            drift_interval: DEFAULT_DRIFT_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
            shipped_kinds: true,
            kind_models: Vec::new(),
            pause: None,
        }
    }

    /// Loads the rules text named by the config, with `{short}` and `{long}` replaced by the
    /// configured window sizes ([`rules::expand_windows`]).
    ///
    /// # Errors
    /// [`InferenceError::RulesFile`] when the rules file cannot be read.
    pub fn rules_text(&self) -> Result<String, InferenceError> {
        let text = match &self.rules_path {
            Some(p) => std::fs::read_to_string(p).map_err(|error| InferenceError::RulesFile {
                path: p.clone(),
                error,
            })?,
            None => DEFAULT_RULES.to_owned(),
        };
        Ok(rules::expand_windows(&text, &self.window))
    }
}

/// Why the inference service could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The model at start cannot be read, is invalid, or was trained on another feature set.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The rules file cannot be read.
    #[error("cannot read rules file {}", path.display())]
    RulesFile {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        error: std::io::Error,
    },
    /// The rules do not parse or do not fit the model (with line and reason).
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The runtime could not start (bad scale-out settings, metrics address taken).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The connection closed under a publish.
    #[error(transparent)]
    Bus(#[from] dtwin_bus::BusError),
}

/// Builds the scorer for the configured model and rules, checking the feature set.
///
/// # Errors
/// A bad or mismatched model ([`InferenceError::Model`]), or a rules file that cannot be
/// read or does not fit the model ([`InferenceError::RulesFile`], [`InferenceError::Rules`]).
pub fn build_scorer(config: &InferenceConfig) -> Result<Scorer, InferenceError> {
    let (_, expected) = dtwin_windows::feature_set(&config.window);
    let model = load_model(&config.model, &expected)?;
    let rules = RuleSet::parse(&config.rules_text()?, &model.feature_names)?;
    Ok(Scorer::new(Arc::new(model), Arc::new(rules)))
}

/// The quality, anomaly and rul models to load at start: the shipped milling ones (when
/// their feature set is `expected`), then `--kind-model` files, as `(profile, kind, bytes)`.
/// Public so the dashboard (given the same settings) shows and scores with the same models.
///
/// # Errors
/// [`InferenceError::Model`] for a file that cannot be read or is not a model of those kinds
/// (or, for milling, of another feature set).
pub fn kind_models_at_start(
    config: &InferenceConfig,
    expected: &str,
) -> Result<Vec<(String, String, Vec<u8>)>, InferenceError> {
    let mut out = Vec::new();
    if config.shipped_kinds {
        for (kind, bytes) in model::SHIPPED_KINDS {
            let mut probe = kinds::KindModels::default();
            match probe.deploy(profiles::MILLING, kind, bytes, Some(expected)) {
                Ok(_) => out.push((
                    profiles::MILLING.to_owned(),
                    kind.to_owned(),
                    bytes.to_vec(),
                )),
                Err(e) => info!(kind, reason = %e, "shipped model not loaded (other windows)"),
            }
        }
    }
    for path in &config.kind_models {
        let bytes = std::fs::read(path).map_err(|error| ModelError::Read {
            path: path.clone(),
            error,
        })?;
        let invalid = |rejection| ModelError::Invalid {
            origin: ModelSource::File(path.clone()),
            rejection,
        };
        let artifact = dtwin_ml::ModelArtifact::from_json(&bytes).map_err(|e| {
            invalid(dtwin_schema::Rejection::new(
                dtwin_schema::RejectReason::BadModel,
                e.to_string(),
            ))
        })?;
        let profile = artifact
            .recipe
            .as_ref()
            .and_then(|r| r.profile_id())
            .unwrap_or_else(|| profiles::MILLING.to_owned());
        let kind = artifact.kind.as_str();
        let mut probe = kinds::KindModels::default();
        let check = (profile == profiles::MILLING).then_some(expected);
        probe
            .deploy(&profile, kind, &bytes, check)
            .map_err(invalid)?;
        out.push((profile, kind.to_owned(), bytes));
    }
    Ok(out)
}

/// The inference service, built: its model and rules loaded, connected (or connecting) and
/// subscribed (or subscribing), its metrics endpoint bound. [`Service::serve`] runs it.
pub struct InferenceService {
    runtime: Runtime,
    shell: Shell,
    drift_interval: Duration,
    max_batch: usize,
    pause: Option<(Duration, Duration)>,
}

impl InferenceService {
    /// Loads the model and rules, then starts the runtime: metrics endpoint, connections
    /// (features shared between instances, `models/current`, a second connection for
    /// publishing), instance announcement.
    ///
    /// # Errors
    /// A bad model or rules file, bad scale-out settings, or a metrics address that cannot be
    /// bound.
    pub async fn build(config: InferenceConfig) -> Result<Self, InferenceError> {
        // What can fail on the operator's files fails before anything is bound or connected.
        let scorer = build_scorer(&config)?;
        let rules_text = config.rules_text()?;
        let (_, expected) = dtwin_windows::feature_set(&config.window);
        let mut registry = dtwin_obs::Registry::with_prefix("dtwin_inference");
        let metrics = InferenceMetrics::register(&mut registry);
        let topics = Topics::new(&config.common.prefix);
        let spec = Spec::new(SERVICE, registry)
            .subscribe_shared(topics.all(TopicKind::Features), QoS::AtLeastOnce)
            // `models/+`: `current` (milling) and every other profile's model.
            .subscribe(topics.models(), QoS::AtLeastOnce)
            // `models/+/+`: every profile's quality, anomaly and rul models.
            .subscribe(topics.model_kinds(), QoS::AtLeastOnce)
            .with_publisher();
        let kind_models = kind_models_at_start(&config, &expected)?;
        let runtime = Runtime::start(&config.common, spec).await?;
        let mut processor = Processor::new(
            topics,
            scorer,
            ProcessorConfig {
                expected,
                rules_text,
                drift: config.drift,
                drift_service: drift_service(config.common.instance.as_deref()),
            },
        );
        for (profile, kind, bytes) in kind_models {
            let m = processor
                .preload_kind(&profile, &kind, &bytes)
                .expect("checked by kind_models_at_start");
            info!(%profile, %kind, model = %format!("{} {}", m.id, m.version), "model loaded");
        }
        metrics.model(&processor.model_labels());
        let shell = Shell {
            client: runtime.publisher.clone(),
            metrics,
            processor,
        };
        Ok(Self {
            runtime,
            shell,
            drift_interval: config.drift_interval,
            max_batch: config.max_batch.max(1),
            pause: config.pause,
        })
    }
}

impl Service for InferenceService {
    type Error = InferenceError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Runs until `shutdown` fires (or the inbox closes), then closes the connections.
    ///
    /// # Errors
    /// [`InferenceError::Bus`] when a publish finds the connection closed.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), InferenceError> {
        let Self {
            mut runtime,
            mut shell,
            drift_interval,
            max_batch,
            mut pause,
        } = self;
        let started = std::time::Instant::now();
        let model = shell.processor.model();
        runtime.log_started(&format!(
            "model {} {}, batches up to {max_batch}",
            model.model_id, model.version
        ));
        let drift_on = !drift_interval.is_zero();
        // The first tick fires at once: the status (warming up, or no reference) is there from
        // the start.
        let mut drift_tick = tokio::time::interval(if drift_on {
            drift_interval
        } else {
            Duration::from_secs(3600)
        });
        drift_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A message taken from the inbox while gathering a batch that is not part of it.
        let mut held: Option<Message> = None;
        let result = loop {
            if let Some((after, stall)) = pause {
                if started.elapsed() >= after {
                    pause = None;
                    tracing::warn!(
                        seconds = stall.as_secs_f64(),
                        "inference stalls on purpose (load test)"
                    );
                    tokio::time::sleep(stall).await;
                }
            }
            let msg = match held.take() {
                Some(m) => m,
                None => tokio::select! {
                    _ = shutdown.cancelled() => break Ok(()),
                    msg = runtime.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
                    _ = drift_tick.tick(), if drift_on => match shell.publish_drift().await {
                        Ok(()) => continue,
                        Err(e) => break Err(e),
                    },
                },
            };
            shell.metrics.inbox.set(depth(&runtime.inbox));
            if let Some(change) = runtime.node.handle(&msg.topic, &msg.payload) {
                if let Some(change) = change {
                    info!(?change, "inference cluster changed");
                }
                continue;
            }
            let node = &runtime.node;
            let route = |topic: &str| shell.processor.route(topic, |m| node.owns(m));
            let batch = match route(&msg.topic) {
                Route::NotMine => continue,
                Route::Model | Route::Other => vec![msg],
                Route::Features => {
                    let (batch, next) = gather(msg, &mut runtime.inbox, route, max_batch);
                    held = next;
                    batch
                }
            };
            if let Err(e) = shell.handle(&batch).await {
                break Err(e);
            }
        };
        let scored = shell.metrics.messages_out.get();
        info!(scored, "inference service stopping");
        runtime.close().await;
        result
    }
}

/// Runs the inference service until `shutdown` fires: [`InferenceService::build`], then
/// [`InferenceService::serve`].
///
/// # Errors
/// As those two.
pub async fn run(
    config: InferenceConfig,
    shutdown: CancellationToken,
) -> Result<(), InferenceError> {
    InferenceService::build(config).await?.serve(shutdown).await
}

/// The inbox depth for the gauge.
fn depth(inbox: &mpsc::Receiver<Message>) -> i64 {
    i64::try_from(inbox.len()).unwrap_or(i64::MAX)
}

/// A micro-batch of feature vectors starting at `first`: whatever else is already waiting,
/// never waiting for more, up to `max` vectors. Vectors of machines another instance owns are
/// dropped. The batch ends at the first message of another kind, returned to be handled next,
/// so the order of model swaps and cluster changes relative to vectors holds.
fn gather(
    first: Message,
    inbox: &mut mpsc::Receiver<Message>,
    route: impl Fn(&str) -> Route,
    max: usize,
) -> (Vec<Message>, Option<Message>) {
    let mut batch = vec![first];
    while batch.len() < max {
        let Ok(next) = inbox.try_recv() else {
            break;
        };
        match route(&next.topic) {
            Route::Features => batch.push(next),
            Route::NotMine => {}
            Route::Model | Route::Other => return (batch, Some(next)),
        }
    }
    (batch, None)
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
    async fn handle(&mut self, batch: &[Message]) -> Result<(), InferenceError> {
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
            Event::ProfileModel { profile, old, new } => {
                let show = |m: Option<ModelRef>| {
                    m.map_or_else(|| "none".to_owned(), |m| format!("{} {}", m.id, m.version))
                };
                info!(%profile, old = %show(old), new = %show(new), "profile model deployed");
                self.metrics.swap(true);
            }
            Event::KindModel {
                profile,
                kind,
                old,
                new,
            } => {
                let show = |m: Option<ModelRef>| {
                    m.map_or_else(|| "none".to_owned(), |m| format!("{} {}", m.id, m.version))
                };
                info!(%profile, kind = kind.as_str(), old = %show(old), new = %show(new), "model deployed");
                self.metrics.swap(true);
            }
            Event::KindMismatch { profile, kind } => {
                debug!(%profile, kind = kind.as_str(), "vector of another feature set than the model");
                self.metrics
                    .kind_mismatch
                    .get_or_create(&dtwin_obs::label("kind", kind.as_str()))
                    .inc();
            }
            Event::Refused { rejection } => {
                warn!(error = %rejection, "refused deployed model; keeping the running one");
                self.metrics.swap(false);
            }
        }
    }

    /// Records what `o` says and publishes it.
    async fn publish(&self, o: Outgoing) -> Result<(), InferenceError> {
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
    async fn publish_drift(&mut self) -> Result<(), InferenceError> {
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
        self.publish(report.publish).await?;
        for report in self
            .processor
            .kind_drift_statuses(dtwin_schema::time_fmt::now())
        {
            let s = &report.status;
            if report.changed {
                let (profile, kind) = (s.profile.as_deref(), s.kind.as_deref());
                if s.state == dtwin_schema::DriftState::Drift {
                    warn!(?profile, ?kind, drifted = ?s.drifted, window = s.window, "live inputs drifted from the model's training reference");
                } else {
                    info!(?profile, ?kind, state = ?s.state, window = s.window, "drift status");
                }
            }
            self.publish(report.publish).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    fn config() -> InferenceConfig {
        InferenceConfig::new(dtwin_bus::BrokerUrl::parse("mqtt://127.0.0.1:1").unwrap())
    }

    #[test]
    fn the_shipped_kinds_load_for_their_windows_only() {
        let c = config();
        let (_, expected) = dtwin_windows::feature_set(&c.window);
        let loaded = kind_models_at_start(&c, &expected).unwrap();
        let kinds: Vec<(&str, &str)> = loaded
            .iter()
            .map(|(p, k, _)| (p.as_str(), k.as_str()))
            .collect();
        assert_eq!(kinds, [("milling", "quality"), ("milling", "anomaly")]);
        // Other windows: the shipped models do not fit, and the service starts without them.
        let (_, extended) = dtwin_windows::feature_set(&WindowConfig::extended());
        assert!(kind_models_at_start(&c, &extended).unwrap().is_empty());
        let off = InferenceConfig {
            shipped_kinds: false,
            ..config()
        };
        assert!(kind_models_at_start(&off, &expected).unwrap().is_empty());
    }

    #[test]
    fn a_kind_model_file_loads_under_its_kind_and_a_classifier_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("dtwin-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let anomaly = dir.join("anomaly.json");
        std::fs::write(&anomaly, model::SHIPPED_KINDS[1].1).unwrap();
        let classifier = dir.join("classifier.json");
        std::fs::write(&classifier, SHIPPED_MODEL).unwrap();
        let (_, expected) = dtwin_windows::feature_set(&WindowConfig::default());
        let c = InferenceConfig {
            shipped_kinds: false,
            kind_models: vec![anomaly],
            ..config()
        };
        let loaded = kind_models_at_start(&c, &expected).unwrap();
        assert_eq!(
            (loaded[0].0.as_str(), loaded[0].1.as_str()),
            ("milling", "anomaly")
        );
        let c = InferenceConfig {
            kind_models: vec![classifier],
            ..c
        };
        let e = kind_models_at_start(&c, &expected).unwrap_err().to_string();
        assert!(e.contains("models/current"), "{e}");
        let c = InferenceConfig {
            kind_models: vec![dir.join("missing.json")],
            ..c
        };
        assert!(kind_models_at_start(&c, &expected).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
