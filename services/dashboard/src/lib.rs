//! The dashboard: the seed's what-if form and a live view of the fleet, served on 127.0.0.1 by
//! default with every asset inside the binary (factories are often offline).
//!
//! # Layout
//! - [`state`]: the fleet as seen on the bus (pure, bounded).
//! - [`whatif`]: the form, its validation and scoring through the feature and inference code.
//! - [`profile_whatif`]: the same for another machine profile: its sensors' ranges, its
//!   window, its model (retained on `{prefix}/models/{profile}`) or a rules-only verdict.
//! - `whatif_page` (private): the what-if page and its profile selector; its inputs have
//!   sliders over each sensor's typical span.
//! - [`advice`]: what-if that advises: scoring any profile's values the services' way, the
//!   risk across each input's span, and the optimiser's advice on the controllable inputs
//!   (public: [`advice::advise_verdict`] words it for a published verdict).
//! - [`whatif_api`]: `POST /api/whatif`, the live verdict, sensitivity and advice as JSON.
//! - [`profiles`]: the machine profiles known (configured plus milling) and readings with
//!   their labels and units.
//! - [`routes`]: lines and criticality of machines, from the alerter's routing file.
//! - [`alerts`]: alerts as people act on them (open, acknowledged, resolved or cleared; who,
//!   when, why), the history of alerts, its filters and CSV; `alerts_page` (private): the
//!   pages, and Acknowledge / Clear, which the service publishes as `dtwin.alert-action.v1`.
//! - [`charts`]: trend charts as SVG (plotters).
//! - [`insights`]: a verdict's other models (quality risk, anomaly, remaining life) and a
//!   deployed model's key metrics, formatted for people.
//! - [`modelcard`]: a deployed model's card from its artifact: metrics as tables, the event
//!   view, the charts of `dtwin evaluate` (same SVG code); `model_page` (private) lists every
//!   model's card and the expert rules in use.
//! - [`web`]: the router, a function of its state.
//! - [`DashboardService`]: the shell on a `dtwin_runtime::Runtime`: `build` binds and
//!   subscribes, `serve` answers HTTP and feeds the fleet view from the bus until shutdown.

pub mod advice;
pub mod alerts;
mod alerts_page;
pub mod charts;
pub mod insights;
mod model_page;
pub mod modelcard;
pub mod profile_whatif;
pub mod profiles;
pub mod routes;
pub mod state;
pub mod web;
pub mod whatif;
pub mod whatif_api;
mod whatif_page;

use dtwin_bus::{Brokers, QoS};
use dtwin_inference::kinds::KindModels;
use dtwin_inference::profiles::ProfileModels;
use dtwin_inference::InferenceConfig;
use dtwin_runtime::{CommonConfig, Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_schema::{from_json, AlertEvent, MachineStatus, Risk, Telemetry, TopicKind, Topics};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Messages buffered between the broker and the fleet state: the dashboard takes every
/// machine's telemetry, so a burst after a reconnect must not stall the connection.
pub const INBOX_CAPACITY: usize = 65_536;

/// People's alert actions waiting to be published: a person acts every few seconds at most;
/// a full queue means the broker is away, and the page says to try again.
pub const CONTROL_QUEUE: usize = 64;

/// Settings of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Broker, prefix, client id (default `dtwin-dashboard`).
    pub common: CommonConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Model, rules and window: the inference service's, so the what-if form agrees with it.
    pub inference: InferenceConfig,
    /// Access token; required when listening beyond loopback.
    pub token: Option<String>,
    /// Machine profiles besides the built-in milling one (read with
    /// `dtwin_feature::load_profiles`): the fleet view labels readings with them and the
    /// what-if form offers them.
    pub profiles: Vec<dtwin_profile::Profile>,
    /// Lines and criticality of machines (the alerter's routing file, `--routes`); without
    /// one, the fleet view shows no lines.
    pub routes: routes::Routes,
}

impl DashboardConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        let broker = broker.into();
        Self {
            inference: InferenceConfig::new(broker.clone()),
            common: CommonConfig::new(broker),
            listen: DEFAULT_LISTEN.parse().expect("valid address"),
            token: None,
            profiles: Vec::new(),
            routes: routes::Routes::default(),
        }
    }
}

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// Listening beyond loopback without a token.
    #[error(
        "refusing to serve the dashboard on {0} without a token: anyone on the network could read \
         the fleet. Set --dashboard-token (DTWIN_DASHBOARD_TOKEN) or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    /// The address is taken or not available.
    #[error(
        "dashboard cannot listen on {listen} (choose another address with --dashboard-listen / \
         DTWIN_DASHBOARD_LISTEN): {source}"
    )]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The model or rules the what-if form scores with are bad.
    #[error("dashboard model: {0}")]
    Model(Box<dyn std::error::Error + Send + Sync>),
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The HTTP server failed.
    #[error("dashboard server: {0}")]
    Serve(std::io::Error),
}

/// Binds the listener (a taken port is a clear error) and builds the state.
///
/// # Errors
/// Beyond loopback without a token, a taken port, or a bad model or rules file.
pub async fn bind(
    config: &DashboardConfig,
) -> Result<(tokio::net::TcpListener, web::AppState), DashboardError> {
    Ok(bind_with_control(config).await?.0)
}

/// [`bind`], with the receiving end of the alert actions the pages send (the service
/// publishes them).
async fn bind_with_control(
    config: &DashboardConfig,
) -> Result<
    (
        (tokio::net::TcpListener, web::AppState),
        tokio::sync::mpsc::Receiver<dtwin_schema::AlertAction>,
    ),
    DashboardError,
> {
    if !(config.listen.ip().is_loopback() || config.token.as_deref().is_some_and(|t| !t.is_empty()))
    {
        return Err(DashboardError::NoToken(config.listen));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DashboardError::Bind {
            listen: config.listen,
            source,
        })?;
    let scorer = dtwin_inference::build_scorer(&config.inference)
        .map_err(|e| DashboardError::Model(e.into()))?;
    // The quality, anomaly and rul models the inference service loads at start (the shipped
    // milling ones, --kind-model files): the model page lists them, the what-if scores with
    // them; models deployed on the bus replace them as they arrive.
    let (_, expected) = dtwin_windows::feature_set(&config.inference.window);
    let at_start = dtwin_inference::kind_models_at_start(&config.inference, &expected)
        .map_err(|e| DashboardError::Model(e.into()))?;
    let profiles = profiles::Profiles::new(&config.profiles);
    let mut state = web::AppState::new(scorer, config.inference.window.clone(), profiles);
    for (profile, kind, bytes) in at_start {
        deploy_kind(&state.kinds, &profile, &kind, &bytes);
    }
    state.token = config.token.as_deref().map(Arc::from);
    state.routes = Arc::new(config.routes.clone());
    if let Some(path) = &config.inference.rules_path {
        state.rules_source = Arc::from(format!("the rules file {}", path.display()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(CONTROL_QUEUE);
    state.control = Some(tx);
    Ok(((listener, state), rx))
}

/// A profile's model arrived (retained on `{prefix}/models/{profile}`): the what-if form
/// scores that profile with it from now on (an empty payload takes it away). A bad artifact
/// is the inference service's to dead-letter; the form keeps what it had.
fn deploy_model(models: &Mutex<ProfileModels>, profile: &str, payload: &[u8]) {
    let mut m = models
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match m.deploy(profile, payload) {
        Ok((_, new)) => info!(profile, model = ?new.map(|m| m.id), "what-if model for profile"),
        Err(e) => warn!(profile, error = %e, "what-if model refused"),
    }
}

/// A profile's model of another kind arrived (retained on `{prefix}/models/{profile}/{kind}`:
/// quality, anomaly, rul): the model page lists it and the what-if form adds its figures
/// (an empty payload takes it away). A bad artifact is the inference service's to
/// dead-letter; the dashboard keeps what it had.
fn deploy_kind(kinds: &Mutex<KindModels>, profile: &str, kind: &str, payload: &[u8]) {
    let mut k = kinds
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match k.deploy(profile, kind, payload, None) {
        Ok((_, new)) => info!(profile, kind, model = ?new.map(|m| m.id), "model of another kind"),
        Err(e) => warn!(profile, kind, error = %e.detail, "model of another kind refused"),
    }
}

/// Applies one bus message to the fleet state (or a profile's model to the what-if form and
/// the model page); anything that does not decode is someone else's dead letter to write,
/// and is skipped here.
fn ingest(
    topics: &Topics,
    fleet: &Mutex<state::Fleet>,
    models: &Mutex<ProfileModels>,
    kinds: &Mutex<KindModels>,
    msg: &dtwin_bus::Message,
) {
    if let Some((profile, kind)) = topics.parse_model_kind(&msg.topic) {
        deploy_kind(kinds, profile, kind, &msg.payload);
        return;
    }
    if let Some(profile) = topics.parse_model(&msg.topic) {
        if profile != dtwin_inference::profiles::CURRENT {
            deploy_model(models, profile, &msg.payload);
        }
        return;
    }
    if topics.parse_alert_state(&msg.topic).is_some() {
        // An empty retained payload clears a machine's state: nothing to show.
        if let Ok(s) = from_json::<dtwin_schema::AlertSnapshot>(&msg.payload) {
            fleet
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .alert_state(s);
        }
        return;
    }
    let Some((kind, machine)) = topics.parse(&msg.topic) else {
        return;
    };
    let mut f = fleet
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    match kind {
        TopicKind::Telemetry => {
            // v1 or v2, one reading or a gateway's batch, as the feature service reads them.
            let Ok(machine) = dtwin_schema::MachineId::parse(machine) else {
                return;
            };
            let now = dtwin_schema::time_fmt::now();
            if let Ok(readings) = Telemetry::decode_on(&machine, now, &msg.payload) {
                for r in readings.into_iter().flatten() {
                    f.telemetry(r.telemetry);
                }
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
    // Whatever the message, the machine was heard from now (by the dashboard's clock: a
    // machine's own timestamps may be plant time).
    f.seen(machine, dtwin_schema::time_fmt::now());
}

/// Publishes a person's alert action on `{prefix}/control/alerts/{machine}` (QoS 1, not
/// retained: an action is applied once); the alerter that owns the machine applies it.
async fn publish_action(runtime: &Runtime, action: &dtwin_schema::AlertAction) {
    let topic = runtime.topics.alert_control(&action.machine_id);
    match runtime
        .publisher
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            dtwin_schema::to_json(action),
        )
        .await
    {
        Ok(()) => info!(
            machine = %action.machine_id,
            alert = %action.alert_id,
            action = action.action.as_str(),
            by = %action.by,
            "alert action sent"
        ),
        Err(e) => warn!(machine = %action.machine_id, error = %e, "alert action not sent"),
    }
}

/// The dashboard, built: listening, its fleet view subscribed (or subscribing).
pub struct DashboardService {
    listener: tokio::net::TcpListener,
    state: web::AppState,
    runtime: Runtime,
    control: tokio::sync::mpsc::Receiver<dtwin_schema::AlertAction>,
}

impl DashboardService {
    /// Binds the listener, builds the what-if scorer and subscribes to the fleet.
    ///
    /// # Errors
    /// As [`bind`], or a runtime that cannot start.
    pub async fn build(config: DashboardConfig) -> Result<Self, DashboardError> {
        let ((listener, state), control) = bind_with_control(&config).await?;
        let topics = Topics::new(&config.common.prefix);
        let mut spec =
            Spec::new("dashboard", dtwin_obs::Registry::default()).inbox_capacity(INBOX_CAPACITY);
        for kind in [
            TopicKind::Telemetry,
            TopicKind::Risk,
            TopicKind::Status,
            TopicKind::Alert,
        ] {
            spec = spec.subscribe(topics.all(kind), QoS::AtMostOnce);
        }
        // Only the configured profiles' models (retained): the milling model is the
        // inference settings', and models/current can be large.
        for p in state.profiles.all() {
            if p.id != profiles::MILLING {
                spec = spec.subscribe(topics.model_for(&p.id), QoS::AtLeastOnce);
            }
        }
        // Every profile's models of other kinds (quality, anomaly, rul; retained): the model
        // page lists them, the what-if form scores with them.
        spec = spec.subscribe(topics.model_kinds(), QoS::AtLeastOnce);
        // The alerter's retained alert states: the open alerts and who acknowledged them,
        // also those that fired before this dashboard started.
        spec = spec.subscribe(topics.alert_states(), QoS::AtLeastOnce);
        let runtime = Runtime::start(&config.common, spec).await?;
        Ok(Self {
            listener,
            state,
            runtime,
            control,
        })
    }

    /// Where it listens.
    ///
    /// # Errors
    /// The listener has no address (the OS says why).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Service for DashboardService {
    type Error = DashboardError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Serves until `shutdown` fires, feeding the fleet view from the bus meanwhile.
    ///
    /// # Errors
    /// A server error.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), DashboardError> {
        let Self {
            listener,
            state,
            mut runtime,
            mut control,
        } = self;
        let url = listener
            .local_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        runtime.log_started(&url);
        info!(url = %url, "dashboard listening");
        let fleet = state.fleet.clone();
        let models = state.models.clone();
        let kinds = state.kinds.clone();
        let app = web::router(state);
        let stop = shutdown.clone();
        let server = std::future::IntoFuture::into_future(
            axum::serve(listener, app).with_graceful_shutdown(async move {
                stop.cancelled().await;
            }),
        );
        tokio::pin!(server);
        let result = loop {
            tokio::select! {
                r = &mut server => break r.map_err(DashboardError::Serve),
                msg = runtime.inbox.recv() => match msg {
                    Some(msg) => ingest(&runtime.topics, &fleet, &models, &kinds, &msg),
                    None => break (&mut server).await.map_err(DashboardError::Serve),
                },
                Some(action) = control.recv() => publish_action(&runtime, &action).await,
            }
        };
        runtime.close().await;
        result
    }
}

/// Service entry point: [`DashboardService::build`], then serve until `shutdown`.
///
/// # Errors
/// As [`DashboardService::build`] and [`DashboardService::serve`].
pub async fn run(
    config: DashboardConfig,
    shutdown: CancellationToken,
) -> Result<(), DashboardError> {
    DashboardService::build(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod ingest_tests {
    use super::*;

    #[test]
    fn v1_and_v2_telemetry_both_reach_the_fleet_view() {
        let topics = Topics::default();
        let fleet = Mutex::new(state::Fleet::default());
        let models = Mutex::new(ProfileModels::default());
        let kinds = Mutex::new(KindModels::default());
        let v2 = br#"{"values":{"temperature_c":37.5,"vibration_mm_s":2.0}}"#;
        let pump = dtwin_schema::MachineId::parse("pump-07").unwrap();
        let msg = dtwin_bus::Message::new(topics.telemetry(&pump), &v2[..]);
        ingest(&topics, &fleet, &models, &kinds, &msg);
        let press = dtwin_schema::MachineId::parse("press-01").unwrap();
        let mut t = Telemetry::new(press.clone(), dtwin_schema::time_fmt::now(), 1);
        t.temperature_c = Some(40.0);
        let msg = dtwin_bus::Message::new(topics.telemetry(&press), t.encode());
        ingest(&topics, &fleet, &models, &kinds, &msg);
        let f = fleet.lock().unwrap();
        assert!(f.machine("pump-07").is_some(), "a v2 reading shows");
        assert!(f.machine("press-01").is_some(), "a v1 reading shows");
        assert!(f.machine("nobody").is_none());
    }
}
