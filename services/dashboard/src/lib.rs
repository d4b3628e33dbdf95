//! The dashboard: the seed's what-if form and a live view of the fleet, served on 127.0.0.1 by
//! default with every asset inside the binary (factories are often offline).
//!
//! # Layout
//! - [`state`]: the fleet as seen on the bus (pure, bounded).
//! - [`whatif`]: the form, its validation and scoring through the feature and inference code.
//! - [`charts`]: trend charts as SVG (plotters).
//! - [`web`]: the router, a function of its state.
//! - [`run`]: binds, subscribes, serves until shutdown.

pub mod charts;
pub mod state;
pub mod web;
pub mod whatif;

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_inference::InferenceConfig;
use dtwin_schema::{from_json, AlertEvent, MachineStatus, Risk, Telemetry, TopicKind, Topics};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Settings of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// MQTT client id.
    pub client_id: String,
    /// Model, rules and window: the inference service's, so the what-if form agrees with it.
    pub inference: InferenceConfig,
    /// Access token; required when listening beyond loopback.
    pub token: Option<String>,
}

impl DashboardConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            inference: InferenceConfig::new(broker.clone()),
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            listen: DEFAULT_LISTEN.parse().expect("valid address"),
            client_id: "dtwin-dashboard".to_owned(),
            token: None,
        }
    }
}

/// Binds the listener (a taken port is a clear error) and builds the state.
///
/// # Errors
/// A taken port, or a bad model or rules file.
pub async fn bind(
    config: &DashboardConfig,
) -> anyhow::Result<(tokio::net::TcpListener, web::AppState)> {
    anyhow::ensure!(
        config.listen.ip().is_loopback() || config.token.as_deref().is_some_and(|t| !t.is_empty()),
        "refusing to serve the dashboard on {} without a token: anyone on the network could read \
         the fleet. Set --dashboard-token (DTWIN_DASHBOARD_TOKEN) or listen on 127.0.0.1",
        config.listen
    );
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "dashboard cannot listen on {} (choose another address with --dashboard-listen / DTWIN_DASHBOARD_LISTEN)",
            config.listen
        )
    })?;
    let scorer = dtwin_inference::build_scorer(&config.inference)?;
    let state = web::AppState {
        fleet: Arc::new(Mutex::new(state::Fleet::default())),
        scorer: Arc::new(scorer),
        window: config.inference.window.clone(),
        token: config.token.as_deref().map(Arc::from),
    };
    Ok((listener, state))
}

/// Feeds the fleet state from the bus until the connection closes.
async fn ingest(mut conn: dtwin_bus::Connection, topics: Topics, fleet: Arc<Mutex<state::Fleet>>) {
    while let Some(msg) = conn.inbox.recv().await {
        let Some((kind, _)) = topics.parse(&msg.topic) else {
            continue;
        };
        let mut f = fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Anything that does not decode is someone else's dead letter to write; skip it here.
        match kind {
            TopicKind::Telemetry => {
                if let Ok(t) = Telemetry::decode(&msg.payload) {
                    f.telemetry(t);
                }
            }
            TopicKind::Risk => {
                if let Ok(r) = from_json::<Risk>(&msg.payload) {
                    f.risk(r);
                }
            }
            TopicKind::Status => {
                if let Ok(s) = from_json::<MachineStatus>(&msg.payload) {
                    f.status(s);
                }
            }
            TopicKind::Alert => match from_json::<AlertEvent>(&msg.payload) {
                Ok(a) => f.alert(a),
                Err(e) => debug!(error = %e, "undecodable alert event"),
            },
            TopicKind::Features => {}
        }
    }
}

/// Serves the dashboard on `listener` until `shutdown` fires.
///
/// # Errors
/// A server error.
pub async fn serve(
    config: DashboardConfig,
    listener: tokio::net::TcpListener,
    state: web::AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.prefix);
    let subs = [
        TopicKind::Telemetry,
        TopicKind::Risk,
        TopicKind::Status,
        TopicKind::Alert,
    ]
    .into_iter()
    .map(|k| Subscription::new(topics.all(k), QoS::AtMostOnce))
    .collect();
    let mut bus = BusConfig::new(config.broker.clone(), &config.client_id);
    bus.inbox_capacity = 65_536;
    let conn = dtwin_bus::connect(&bus, subs);
    let client = conn.client.clone();
    let ingest = tokio::spawn(ingest(conn, topics, state.fleet.clone()));
    info!(url = %format!("http://{}", listener.local_addr()?), "dashboard listening");
    let app = web::router(state);
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("dashboard server")?;
    client.disconnect().await;
    ingest.abort();
    Ok(())
}

/// Service entry point: bind, then serve until `shutdown`.
///
/// # Errors
/// As [`bind`] and [`serve`].
pub async fn run(config: DashboardConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (listener, state) = bind(&config).await?;
    serve(config, listener, state, shutdown).await
}
