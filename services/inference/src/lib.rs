//! The inference service: scores every feature vector with the deployed Random Forest and the
//! expert rules, and publishes a risk verdict per reading. A model published (retained) on
//! `{prefix}/models/current` replaces the running one without a restart, if its feature set
//! matches; otherwise it is refused with a clear log line and a dead letter.
//!
//! # Layout
//! - [`rules`]: the expert system, rules as TOML data.
//! - [`scorer`]: [`Scorer`], the pure core (features in, risk out) and [`scorer::decide`].
//! - [`model`]: loading and checking artifacts (the shipped default, a file, or MQTT bytes).
//! - [`run`]: the async shell.

pub mod model;
pub mod rules;
pub mod scorer;

pub use model::{load_model, ModelSource, SHIPPED_MODEL};
pub use rules::{RuleSet, RulesError, DEFAULT_RULES};
pub use scorer::{decide, Scorer};

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_features::WindowConfig;
use dtwin_schema::{from_json, to_json, DeadLetter, Features, TopicKind, Topics};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The name under which this service dead-letters.
pub const SERVICE: &str = "inference";

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
        }
    }

    /// Loads the rules text named by the config.
    ///
    /// # Errors
    /// When the rules file cannot be read.
    pub fn rules_text(&self) -> anyhow::Result<String> {
        match &self.rules_path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read rules file {}", p.display())),
            None => Ok(DEFAULT_RULES.to_owned()),
        }
    }
}

/// Builds the scorer for the configured model and rules, checking the feature set.
///
/// # Errors
/// A bad or mismatched model, or a bad rules file (with line and reason).
pub fn build_scorer(config: &InferenceConfig) -> anyhow::Result<Scorer> {
    let (_, expected) = dtwin_features::feature_set(&config.window);
    let model = load_model(&config.model, &expected)?;
    let rules = RuleSet::parse(&config.rules_text()?, &model.feature_names)?;
    Ok(Scorer::new(Arc::new(model), Arc::new(rules)))
}

/// Runs the inference service until `shutdown` fires.
///
/// # Errors
/// A bad model or rules file at start, or a closed connection.
pub async fn run(config: InferenceConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut scorer = build_scorer(&config)?;
    let rules_text = config.rules_text()?;
    let (_, expected) = dtwin_features::feature_set(&config.window);
    let topics = Topics::new(&config.prefix);
    let mut node = dtwin_cluster::Node::new(&config.prefix, SERVICE, config.instance.as_deref());
    let mut subs = vec![
        Subscription::new(topics.all(TopicKind::Features), QoS::AtLeastOnce),
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
        _ => config.client_id.clone(),
    };
    let mut bus = BusConfig::new(config.broker.clone(), &client_id);
    bus.last_will = node.last_will().map_err(anyhow::Error::msg)?;
    let mut conn = dtwin_bus::connect(&bus, subs);
    if let Some((topic, payload)) = node.online().map_err(anyhow::Error::msg)? {
        conn.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await?;
    }
    info!(model = %scorer.model().model_id, version = %scorer.model().version, "inference service started");
    let model_topic = topics.model_current();
    let (mut scored, mut rejected) = (0u64, 0u64);
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break },
        };
        if let Some(change) = node.handle(&msg.topic, &msg.payload) {
            if let Some(change) = change {
                info!(?change, "inference cluster changed");
            }
            continue;
        }
        if let Some((_, machine)) = topics.parse(&msg.topic) {
            if !node.owns(machine) {
                continue;
            }
        }
        if msg.topic == model_topic {
            if msg.payload.is_empty() {
                continue; // a cleared retained message
            }
            match model::swap(&msg.payload, &expected, &rules_text) {
                Ok(next) => {
                    info!(
                        old = %format!("{} {}", scorer.model().model_id, scorer.model().version),
                        new = %format!("{} {}", next.model().model_id, next.model().version),
                        "model swapped"
                    );
                    scorer = next;
                }
                Err(rejection) => {
                    warn!(error = %rejection, "refused deployed model; keeping the running one");
                    let dl = DeadLetter::new(
                        SERVICE,
                        &msg.topic,
                        &msg.payload,
                        rejection.reason,
                        rejection.detail,
                    );
                    conn.client
                        .publish(
                            topics.deadletter(SERVICE),
                            QoS::AtLeastOnce,
                            false,
                            to_json(&dl),
                        )
                        .await?;
                }
            }
            continue;
        }
        // Scoring one row takes microseconds, so it runs inline rather than on a blocking pool.
        let verdict = from_json::<Features>(&msg.payload)
            .map_err(|e| {
                dtwin_schema::Rejection::new(dtwin_schema::RejectReason::WrongType, e.to_string())
            })
            .and_then(|f| scorer.score(&f, dtwin_schema::time_fmt::now()));
        match verdict {
            Ok(risk) => {
                scored += 1;
                conn.client
                    .publish(
                        topics.risk(&risk.machine_id),
                        QoS::AtLeastOnce,
                        false,
                        to_json(&risk),
                    )
                    .await?;
            }
            Err(rejection) => {
                rejected += 1;
                debug!(topic = %msg.topic, error = %rejection, "features rejected");
                let dl = DeadLetter::new(
                    SERVICE,
                    &msg.topic,
                    &msg.payload,
                    rejection.reason,
                    rejection.detail,
                );
                conn.client
                    .publish(
                        topics.deadletter(SERVICE),
                        QoS::AtLeastOnce,
                        false,
                        to_json(&dl),
                    )
                    .await?;
            }
        }
    }
    info!(scored, rejected, "inference service stopping");
    if tokio::time::timeout(Duration::from_secs(1), conn.close())
        .await
        .is_err()
    {
        warn!("inference service did not disconnect in time");
    }
    Ok(())
}
