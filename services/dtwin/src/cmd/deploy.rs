//! `dtwin deploy MODEL`: publishes a model artifact, retained, by kind ([`topic_for`]): a
//! failure classifier to `{prefix}/models/current` (the milling model) or, for a model trained
//! through a machine profile, to `{prefix}/models/{profile}`; a quality, anomaly or rul model
//! to `{prefix}/models/{profile}/{kind}` (milling for the twin's and AI4I's models).
//! Running inference services swap to it without a restart (logging old and new version) when
//! its feature set matches theirs, and refuse it with a dead letter (`bad_model`) otherwise.
//! The artifact is checked here first, so a corrupt file never reaches the broker.

use anyhow::Context;
use clap::Args;
use dtwin_bus::{Brokers, BusConfig, QoS};
use dtwin_ml::{ModelArtifact, ModelKind};
use std::path::PathBuf;
use std::time::Duration;

/// `dtwin deploy` flags.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The model artifact (JSON, from `dtwin train`).
    pub model: PathBuf,
    /// Broker URL (a cluster's nodes: comma-separated).
    #[arg(long, env = "DTWIN_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    pub broker: Brokers,
    /// Topic prefix.
    #[arg(long, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
}

/// Validates and publishes the artifact; returns its id and version.
///
/// # Errors
/// An unreadable or invalid artifact, or a broker that does not take it within 10 s.
pub async fn run(args: DeployArgs) -> anyhow::Result<(String, String)> {
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let artifact = ModelArtifact::from_json(&bytes)
        .with_context(|| format!("{} is not a valid model artifact", args.model.display()))?;
    let topic = topic_for(&artifact, &args.prefix);
    let mut cfg = BusConfig::new(
        args.broker.clone(),
        format!("dtwin-deploy-{}", std::process::id()),
    );
    cfg.max_packet_bytes = cfg.max_packet_bytes.max(bytes.len() + 1024);
    let conn = dtwin_bus::connect(&cfg, vec![]);
    anyhow::ensure!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "cannot connect to {}",
        args.broker
    );
    conn.client
        .publish(topic.clone(), QoS::AtLeastOnce, true, bytes)
        .await
        .context("publishing the model")?;
    // A clean disconnect flushes the publish first.
    tokio::time::timeout(Duration::from_secs(10), conn.close())
        .await
        .context("the broker did not take the model within 10 s")?;
    eprintln!(
        "deployed {} {} version {} ({} features, set {}) to {topic}",
        artifact.kind.as_str(),
        artifact.model_id,
        artifact.version,
        artifact.feature_names.len(),
        artifact.feature_set_hash
    );
    Ok((artifact.model_id, artifact.version))
}

/// Where an artifact is published, by kind and profile: a failure classifier of milling (the
/// twin's windows, AI4I, or an artifact from before recipes) on `models/current`, one of
/// another profile on `models/{profile}`; every other kind (quality, anomaly, rul) on
/// `models/{profile}/{kind}`, milling's too (`models/milling/anomaly`).
pub fn topic_for(artifact: &ModelArtifact, prefix: &str) -> String {
    let topics = dtwin_schema::Topics::new(prefix);
    let profile = artifact
        .recipe
        .as_ref()
        .and_then(|r| r.profile_id())
        .unwrap_or_else(|| "milling".to_owned());
    match artifact.kind {
        ModelKind::Classifier if profile == "milling" => topics.model_current(),
        ModelKind::Classifier => topics.model_for(&profile),
        kind => topics.model_kind(&profile, kind.as_str()),
    }
}
