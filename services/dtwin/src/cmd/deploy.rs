//! `dtwin deploy MODEL`: publishes a model artifact, retained, to `{prefix}/models/current`
//! (the milling model) or, for a model trained through a machine profile, to
//! `{prefix}/models/{profile}`.
//! Running inference services swap to it without a restart (logging old and new version) when
//! its feature set matches theirs, and refuse it with a dead letter (`bad_model`) otherwise.
//! The artifact is checked here first, so a corrupt file never reaches the broker.

use anyhow::Context;
use clap::Args;
use dtwin_bus::{BrokerUrl, BusConfig, QoS};
use dtwin_ml::ModelArtifact;
use std::path::PathBuf;
use std::time::Duration;

/// `dtwin deploy` flags.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The model artifact (JSON, from `dtwin train`).
    pub model: PathBuf,
    /// Broker URL.
    #[arg(long, env = "DTWIN_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
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
    anyhow::ensure!(
        artifact.kind == dtwin_ml::ModelKind::Classifier,
        "{} is a {}: the inference service scores failure classifiers only so far, so it is not deployed",
        args.model.display(),
        artifact.kind
    );
    // A plant profile's model goes to models/{profile}; milling's (the twin's windows, AI4I,
    // or an artifact from before recipes) stays on models/current.
    let topics = dtwin_schema::Topics::new(&args.prefix);
    let topic = match artifact.recipe.as_ref().and_then(|r| r.profile_id()) {
        Some(p) if p != "milling" => topics.model_for(&p),
        _ => topics.model_current(),
    };
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
        "deployed {} version {} ({} features, set {}) to {topic}",
        artifact.model_id,
        artifact.version,
        artifact.feature_names.len(),
        artifact.feature_set_hash
    );
    Ok((artifact.model_id, artifact.version))
}
