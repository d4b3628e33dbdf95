//! The Sparkplug host service: industrial gateways' Sparkplug B edge nodes in, dtwin's own
//! topics out (issue 18). It subscribes `spBv1.0/#`, runs every message through the host state
//! machine ([`dtwin_sparkplug::HostState`]: births, aliases, `seq`/`bdSeq`, rebirths, deaths)
//! and carries out its actions through the [`Translator`]: readings become v2 telemetry on
//! `{prefix}/machines/{id}/telemetry` (so they take exactly the JSON path through the feature,
//! inference and alerter services), births and deaths retained statuses, gaps `Node
//! Control/Rebirth` requests on the node's NCMD topic, bad input dead letters on
//! `{prefix}/deadletter/sparkplug`. It announces itself as a Sparkplug 3.0 host application on
//! `spBv1.0/STATE/{host_id}` (retained, with the offline will).
//!
//! # Layout
//! - [`translate`]: [`Translator`], the pure core: an action in, publishes out, and each
//!   device's profile (picked from its birth's metric names).
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`SparkplugHostService`]: the async shell on a `dtwin_runtime::Runtime`. `build` checks
//!   the settings and connects with the STATE will; `serve` (`dtwin_runtime::Service`) loops:
//!   the inbox through `HostState` and the translator to `runtime.publisher`, counting. [`run`]
//!   is `build` then `serve`.

#![warn(missing_docs)]

pub mod metrics;
pub mod translate;

pub use metrics::SparkplugMetrics;
pub use translate::{Out, OutKind, Source, Translator, SERVICE};

use dtwin_bus::{Brokers, LinkState, QoS};
use dtwin_profile::Profile;
use dtwin_runtime::{CommonConfig, Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_sparkplug::{topic, Action, HostAnnouncement, HostConfig, HostState};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The host id by default: `spBv1.0/STATE/dtwin`.
pub const DEFAULT_HOST_ID: &str = "dtwin";

/// Settings of the Sparkplug host service.
#[derive(Debug, Clone)]
pub struct SparkplugHostConfig {
    /// Broker, prefix, client id, metrics endpoint (one instance: no `instance` or
    /// `share_group`).
    pub common: CommonConfig,
    /// The Sparkplug host application id (`spBv1.0/STATE/{host_id}`).
    pub host_id: String,
    /// The machine profiles a device's birth may match besides the built-in milling one: give
    /// the feature service's own (`--profile FILE`), or its readings are `unknown_profile`.
    pub profiles: Vec<Profile>,
    /// The host state machine's limits.
    pub host: HostConfig,
    /// Draft a profile from a birth no profile fits (published retained on
    /// `{prefix}/profiles/{id}`); off: such births are `unknown_profile` dead letters.
    pub draft_profiles: bool,
}

impl SparkplugHostConfig {
    /// Defaults for a broker at `broker`: host id [`DEFAULT_HOST_ID`], milling only.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            common: CommonConfig::new(broker),
            host_id: DEFAULT_HOST_ID.to_owned(),
            profiles: Vec::new(),
            host: HostConfig::default(),
            draft_profiles: true,
        }
    }
}

/// Why the Sparkplug host could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SparkplugHostError {
    /// A host id that cannot be a topic level.
    #[error("Sparkplug host id {0:?} must be 1 to 64 characters without / + #")]
    BadHostId(String),
    /// `--instance` or `--share-group`: every host must see every message of a node.
    #[error("the Sparkplug host runs as one instance (a node's seq and aliases need all its messages): no --instance or --share-group")]
    ScaledOut,
    /// The runtime could not start (metrics address taken).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The connection closed under a publish.
    #[error(transparent)]
    Bus(#[from] dtwin_bus::BusError),
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Sparkplug host, built: connected (or connecting) with its STATE will, subscribed (or
/// subscribing) to `spBv1.0/#`. [`Service::serve`] runs it.
pub struct SparkplugHostService {
    runtime: Runtime,
    announcement: HostAnnouncement,
    host: HostState,
    translator: Translator,
    metrics: SparkplugMetrics,
}

impl SparkplugHostService {
    /// Checks the settings, then starts the runtime (metrics endpoint, the subscribing
    /// connection with the STATE will, a publishing one) and queues the retained STATE birth.
    ///
    /// # Errors
    /// A bad host id, scale-out settings, a metrics address that cannot be bound.
    pub async fn build(config: SparkplugHostConfig) -> Result<Self, SparkplugHostError> {
        let id = &config.host_id;
        if id.is_empty() || id.len() > 64 || id.contains(['/', '+', '#']) {
            return Err(SparkplugHostError::BadHostId(id.clone()));
        }
        if config.common.instance.is_some() || config.common.share_group.is_some() {
            return Err(SparkplugHostError::ScaledOut);
        }
        let mut registry = dtwin_obs::Registry::with_prefix("dtwin_sparkplug");
        let metrics = SparkplugMetrics::register(&mut registry);
        let announcement = HostAnnouncement::new(id, now_ms());
        let spec = Spec::new(SERVICE, registry)
            .subscribe(topic::FILTER.to_owned(), QoS::AtLeastOnce)
            .last_will(announcement.topic(), announcement.will())
            .with_publisher();
        let runtime = Runtime::start(&config.common, spec).await?;
        // On the connection that carries the will, so the two describe one session.
        runtime
            .client
            .publish(
                announcement.topic(),
                QoS::AtLeastOnce,
                true,
                announcement.birth(),
            )
            .await?;
        Ok(Self {
            translator: Translator::new(&config.common.prefix, config.profiles)
                .drafting(config.draft_profiles),
            host: HostState::new(config.host),
            runtime,
            announcement,
            metrics,
        })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &SparkplugMetrics {
        &self.metrics
    }
}

impl Service for SparkplugHostService {
    type Error = SparkplugHostError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Runs until `shutdown` fires (or the inbox closes), then publishes the STATE offline
    /// (retained) and closes the connections.
    ///
    /// # Errors
    /// [`SparkplugHostError::Bus`] when a publish finds the connection closed.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), SparkplugHostError> {
        let Self {
            mut runtime,
            announcement,
            mut host,
            mut translator,
            metrics,
        } = self;
        runtime.log_started(&format!(
            "Sparkplug host {} on {}, profiles {}",
            announcement.topic(),
            topic::FILTER,
            translator.profile_ids().join(", ")
        ));
        let mut link = runtime.client.link_state();
        link.mark_unchanged();
        let mut link_open = true;
        let result = loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                changed = link.changed(), if link_open => {
                    if changed.is_err() {
                        // The poll task ended; the inbox closes next.
                        link_open = false;
                        continue;
                    }
                    // A new session after a reconnect: the broker published the will, so
                    // say online again (retained).
                    let subscribed = *link.borrow_and_update() == LinkState::Subscribed;
                    if subscribed {
                        if let Err(e) = runtime.client.publish(
                            announcement.topic(), QoS::AtLeastOnce, true, announcement.birth(),
                        ).await {
                            break Err(e.into());
                        }
                    }
                    continue;
                }
                msg = runtime.inbox.recv() => match msg { Some(m) => m, None => break Ok(()) },
            };
            metrics.messages.inc();
            let now = now_ms();
            let source = Source {
                topic: &msg.topic,
                payload: &msg.payload,
            };
            let mut failed = None;
            for action in host.handle(&msg.topic, &msg.payload, now) {
                if let Action::Rebirth { node, reason } = &action {
                    info!(%node, %reason, "asking a Sparkplug edge node to rebirth");
                }
                let birth = match &action {
                    Action::Birth { machine, .. } => Some(machine.clone()),
                    _ => None,
                };
                let outs = translator.apply(action, source, now);
                if let Some(machine) = birth {
                    match translator.profile_of(&machine) {
                        Some(p) if translator.drafted(p).is_some() => info!(
                            %machine,
                            profile = p,
                            topic = %runtime.topics.profile(p),
                            "Sparkplug device born: no profile fitted its metrics, so one was drafted from its birth and published retained; save it (mosquitto_sub -C 1 -t <topic> > <profile>.toml), edit it and give it with --profile FILE"
                        ),
                        Some(p) => info!(%machine, profile = p, "Sparkplug device born"),
                        None => {
                            warn!(%machine, "Sparkplug device born: no profile fits its metrics")
                        }
                    }
                }
                for out in outs {
                    metrics.count(out.kind);
                    if let Err(e) = runtime
                        .publisher
                        .publish(out.topic, out.qos, out.retain, out.payload)
                        .await
                    {
                        metrics.publish_errors.inc();
                        failed = Some(e);
                        break;
                    }
                }
                if failed.is_some() {
                    break;
                }
            }
            if let Some(e) = failed {
                break Err(e.into());
            }
        };
        info!(
            messages = metrics.messages.get(),
            readings = metrics.readings.get(),
            rebirths = metrics.rebirths.get(),
            "Sparkplug host stopping"
        );
        // A clean disconnect does not fire the will: say offline before it (Sparkplug 3.0).
        if let Err(e) = runtime
            .client
            .publish(
                announcement.topic(),
                QoS::AtLeastOnce,
                true,
                announcement.will(),
            )
            .await
        {
            warn!(error = %e, "could not publish the STATE offline");
        }
        runtime.close().await;
        result
    }
}

/// Runs the Sparkplug host until `shutdown` fires: [`SparkplugHostService::build`], then
/// [`SparkplugHostService::serve`].
///
/// # Errors
/// As those two.
pub async fn run(
    config: SparkplugHostConfig,
    shutdown: CancellationToken,
) -> Result<(), SparkplugHostError> {
    SparkplugHostService::build(config)
        .await?
        .serve(shutdown)
        .await
}
