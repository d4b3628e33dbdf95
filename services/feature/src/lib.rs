//! The feature service: subscribes to every machine's telemetry, keeps a rolling window per
//! machine and publishes a feature vector per reading; anything it cannot use goes to
//! `{prefix}/deadletter/feature` with a machine-readable reason, and the stream goes on.
//!
//! # Layout
//! - [`processor`]: [`Processor`], the pure core (bytes in, publishes out), tested without a broker.
//! - [`run`]: the async shell: one connection, one worker that owns every machine's window,
//!   so one machine's readings are handled in order and its state needs no lock.

pub mod processor;

pub use processor::{Outgoing, Processor, ProcessorStats};

use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_features::WindowConfig;
use dtwin_schema::{TopicKind, Topics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Settings of the feature service.
#[derive(Debug, Clone)]
pub struct FeatureConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id.
    pub client_id: String,
    /// QoS of the telemetry subscription (0 or 1).
    pub telemetry_qos: QoS,
    /// Window sizes and missing-value policy.
    pub window: WindowConfig,
    /// This instance's name when several feature services share the fleet (scale-out, see
    /// `dtwin-cluster`); `None`: the only instance, owning every machine.
    pub instance: Option<String>,
}

impl FeatureConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-feature".to_owned(),
            telemetry_qos: QoS::AtMostOnce,
            window: WindowConfig::default(),
            instance: None,
        }
    }
}

/// Runs the feature service until `shutdown` fires.
///
/// # Errors
/// Only when publishing fails because the connection was closed under it.
pub async fn run(config: FeatureConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let topics = Topics::new(&config.prefix);
    let mut node = dtwin_cluster::Node::new(
        &config.prefix,
        processor::SERVICE,
        config.instance.as_deref(),
    );
    let mut subs = vec![Subscription::new(
        topics.all(TopicKind::Telemetry),
        config.telemetry_qos,
    )];
    subs.extend(
        node.subscription()
            .map(|f| Subscription::new(f, QoS::AtLeastOnce)),
    );
    // Instances of one service need distinct MQTT client ids, or the broker drops one for the
    // other.
    let client_id = match &config.instance {
        Some(name) if config.client_id == "dtwin-feature" => format!("dtwin-feature-{name}"),
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
    let mut processor = Processor::new(topics.clone(), &config.window);
    let mut not_mine: u64 = 0;
    info!(broker = %config.broker, feature_set = processor.feature_set(), "feature service started");
    let mut out = Vec::new();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break },
        };
        if let Some(change) = node.handle(&msg.topic, &msg.payload) {
            if let Some(change) = change {
                info!(?change, members = ?node.membership().members().collect::<Vec<_>>(), "feature cluster changed");
                processor.retain_machines(|id| node.owns(id));
            }
            continue;
        }
        if let Some((_, machine)) = topics.parse(&msg.topic) {
            if !node.owns(machine) {
                not_mine += 1;
                continue;
            }
        }
        processor.handle(
            &msg.topic,
            &msg.payload,
            dtwin_schema::time_fmt::now(),
            &mut out,
        );
        for o in out.drain(..) {
            if let Outgoing::DeadLetter { reason, .. } = &o {
                debug!(topic = %msg.topic, reason = reason.as_str(), "telemetry rejected");
            }
            let (topic, payload) = o.into_parts();
            conn.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
    }
    let stats = processor.stats();
    info!(
        processed = stats.processed,
        rejected = stats.rejected,
        machines = stats.machines,
        not_mine,
        "feature service stopping"
    );
    if tokio::time::timeout(Duration::from_secs(1), conn.close())
        .await
        .is_err()
    {
        warn!("feature service did not disconnect in time");
    }
    Ok(())
}
