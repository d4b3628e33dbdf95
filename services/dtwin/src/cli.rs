//! Command-line flags (each with its environment variable) and dispatch to the services.
//!
//! docker-compose.yml configures the containers with the same variables; a test checks the two
//! against each other, so renaming a flag here without updating compose fails the build.

use crate::telemetry::LogFormat;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dtwin_bus::{BrokerUrl, Brokers};
use dtwin_runtime::CommonConfig;
use std::path::PathBuf;

mod alerter;
pub use alerter::{AlerterOpts, AlerterServiceOpts};

/// Digital twin + predictive quality monitoring over MQTT.
#[derive(Debug, Parser)]
#[command(name = "dtwin", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "DTWIN_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded broker and every service in one process.
    Up(UpArgs),
    /// Run the embedded MQTT broker alone.
    Broker(BrokerArgs),
    /// Add or change a user in the embedded broker's password file (password on stdin).
    Passwd(crate::cmd::broker::PasswdArgs),
    /// Run the digital twin publisher.
    Twin(ServiceArgs<TwinServiceOpts>),
    /// Run the feature service.
    Feature(ServiceArgs<FeatureServiceOpts>),
    /// Run the inference service.
    Inference(ServiceArgs<InferenceServiceOpts>),
    /// Run the alerter.
    Alerter(ServiceArgs<AlerterServiceOpts>),
    /// Run the dashboard (what-if form and live fleet view) against a broker.
    Dashboard(ServiceArgs<DashboardOpts>),
    /// Run the Sparkplug B host: gateways' edge nodes and devices (spBv1.0/#) become machines.
    Sparkplug(ServiceArgs<SparkplugServiceOpts>),
    /// Write a labelled data set from the twin (telemetry CSV, or AI4I format).
    Generate(crate::cmd::generate::GenerateArgs),
    /// Play a CSV (telemetry or AI4I) back as live telemetry.
    Replay(crate::cmd::replay::ReplayArgs),
    /// Publish a model artifact to the running stack, retained: a failure classifier on
    /// {prefix}/models/current (or models/{profile}), other kinds on models/{profile}/{kind}.
    Deploy(crate::cmd::deploy::DeployArgs),
    /// Silence alert e-mails for machines or lines for a while (add, remove, list).
    Silence(crate::cmd::silence::SilenceArgs),
    /// Acknowledge (ack) or clear a machine's open alert, as a person would.
    Alert(crate::cmd::alert::AlertArgs),
    /// Score a CSV (telemetry or AI4I) with a model: probability and label per row.
    Predict(crate::cmd::predict::PredictArgs),
    /// Load-test the pipeline: N machines at R Hz, latency, loss, CPU and memory.
    Loadtest(crate::cmd::loadtest::LoadtestArgs),
    /// Train a model (failure or quality classifier, anomaly detector, remaining useful life) on
    /// twin data or a plant's export and write the artifact.
    Train(crate::cmd::train::TrainArgs),
    /// Evaluate a model on a CSV: metrics, confusion matrix, cross-validation, event view,
    /// threshold for a target; writes the model card (JSON, HTML) and SVG charts.
    Evaluate(crate::cmd::evaluate::EvaluateArgs),
    /// Explore a CSV: statistics, missing values, class balance, histograms and box plots by
    /// class, correlation, machines leading into a failure; writes report.html and SVG charts.
    Eda(crate::cmd::eda::EdaArgs),
    /// GET a health URL (e.g. http://127.0.0.1:9464/healthz): exit 0 for a 2xx answer, 1
    /// otherwise. For container healthchecks in images without curl.
    Healthcheck(crate::cmd::healthcheck::HealthcheckArgs),
    /// Machine profiles: draft one from a CSV export (init) or check one (check).
    Profile(crate::cmd::profile::ProfileArgs),
}

/// Where the broker is and which topics to use (standalone services).
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// Broker URL: mqtt://[user:password@]host[:port]. The nodes of a broker cluster: a
    /// comma-separated list, or the flag repeated; a link that fails moves to the next node.
    #[arg(
        long,
        env = "DTWIN_BROKER",
        default_value = "mqtt://127.0.0.1:1883",
        value_delimiter = ','
    )]
    pub broker: Vec<BrokerUrl>,
    /// Topic prefix.
    #[arg(long, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
}

impl BusArgs {
    /// The common part of a service's config: this broker and prefix, defaults for the rest.
    pub fn common(&self) -> CommonConfig {
        CommonConfig {
            prefix: self.prefix.clone(),
            ..CommonConfig::new(self.brokers())
        }
    }

    /// The `--broker` URLs as one list.
    pub fn brokers(&self) -> Brokers {
        // Never empty: clap fills in the default, and an empty item is a parse error.
        Brokers::new(self.broker.clone())
            .unwrap_or_else(|_| BrokerUrl::new("127.0.0.1", 1883).into())
    }
}

/// A standalone service: the bus flags plus its own.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs<T: Args> {
    /// Broker and prefix.
    #[command(flatten)]
    pub bus: BusArgs,
    /// The service's own flags.
    #[command(flatten)]
    pub opts: T,
}

/// A service subcommand's own flags: they finish the common config (metrics address, instance)
/// and build the service's config. `dtwin up` builds each service from the same per-service
/// flag groups ([`FeatureOpts`], [`InferenceOpts`], ...), so a flag means the same in both.
pub trait ServiceOpts {
    /// The service's config.
    type Config;

    /// The service's config, on top of `common` (broker and prefix).
    ///
    /// # Errors
    /// A flag value the service cannot use.
    fn config(&self, common: CommonConfig) -> anyhow::Result<Self::Config>;
}

impl<T: Args + ServiceOpts> ServiceArgs<T> {
    /// The service's config from these flags.
    ///
    /// # Errors
    /// As [`ServiceOpts::config`].
    pub fn config(&self) -> anyhow::Result<T::Config> {
        self.opts.config(self.bus.common())
    }
}

/// Scale-out flags of the feature and inference services.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Scale-out: this instance's name among several (machines are shared out by rendezvous
    /// hashing over the live instances); unset: the only instance.
    #[arg(long, env = "DTWIN_INSTANCE")]
    pub instance: Option<String>,
    /// Scale-out by the broker instead: subscribe to the service's input as a member of this
    /// MQTT shared-subscription group ($share/GROUP/...); the broker must keep each machine on
    /// one member (EMQX: shared_subscription_strategy = hash_topic). Excludes --instance.
    #[arg(long, env = "DTWIN_SHARE_GROUP", conflicts_with = "instance")]
    pub share_group: Option<String>,
}

impl ScaleArgs {
    /// Sets the instance or share group of `common`.
    pub fn apply(&self, common: &mut CommonConfig) {
        common.instance = self.instance.clone();
        common.share_group = self.share_group.clone();
    }
}

/// `dtwin up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Use this external broker instead of starting the embedded one; the nodes of a broker
    /// cluster as a comma-separated list or the flag repeated (a link that fails moves to the
    /// next node).
    #[arg(long, env = "DTWIN_BROKER", value_delimiter = ',')]
    pub broker: Vec<BrokerUrl>,
    /// Port of the embedded broker on 127.0.0.1.
    #[arg(long, env = "DTWIN_PORT", default_value_t = 1883)]
    pub port: u16,
    /// Seconds of backlog the embedded broker keeps per subscribed topic filter, sized for
    /// 10,000 messages/s of 1 KiB (memory: ~10 MiB a second per busy filter): a service that
    /// stalls longer than this loses QoS 1 messages.
    #[arg(long, env = "DTWIN_BACKLOG_S", default_value_t = dtwin_broker::DEFAULT_BACKLOG_S)]
    pub backlog_s: f64,
    /// Topic prefix.
    #[arg(long, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Seconds between fleet summaries on the terminal (0 = none).
    #[arg(long, env = "DTWIN_SUMMARY_EVERY", default_value_t = 5)]
    pub summary_every: u64,
    /// Dashboard address (127.0.0.1 unless told otherwise).
    #[arg(long, env = "DTWIN_DASHBOARD_LISTEN", default_value = dtwin_dashboard::DEFAULT_LISTEN)]
    pub dashboard_listen: std::net::SocketAddr,
    /// Dashboard access token, required when it listens beyond 127.0.0.1.
    #[arg(long, env = "DTWIN_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// Serve every service's Prometheus /metrics and /healthz (twin, feature, inference,
    /// alerter) on this one address (off when unset).
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Drift detection flags.
    #[command(flatten)]
    pub drift: DriftOpts,
    /// Twin flags.
    #[command(flatten)]
    pub twin: TwinOpts,
    /// Feature service flags (its telemetry QoS follows --telemetry-qos).
    #[command(flatten)]
    pub feature: FeatureOpts,
    /// Inference flags.
    #[command(flatten)]
    pub inference: InferenceOpts,
    /// Alerter flags.
    #[command(flatten)]
    pub alerter: AlerterOpts,
    /// Sparkplug host flags (its devices may match the feature service's --profile files).
    #[command(flatten)]
    pub sparkplug: SparkplugOpts,
}

pub use crate::cmd::broker::BrokerArgs;

/// Sparkplug host flags (`dtwin sparkplug` and `dtwin up`).
#[derive(Debug, Clone, Args)]
pub struct SparkplugOpts {
    /// Sparkplug host application id: announced retained on spBv1.0/STATE/{id} (offline as
    /// its will).
    #[arg(long, env = "DTWIN_SPARKPLUG_HOST_ID", default_value = dtwin_sparkplug_host::DEFAULT_HOST_ID)]
    pub sparkplug_host_id: String,
    /// A device whose birth no profile fits is dead-lettered (`unknown_profile`) instead of
    /// getting a profile drafted from its birth (published retained on
    /// {prefix}/profiles/spb_{machine} for you to save and edit).
    #[arg(long, env = "DTWIN_NO_DRAFT_PROFILES")]
    pub no_draft_profiles: bool,
}

impl SparkplugOpts {
    /// The Sparkplug host's config; a device's birth may match `profiles` (and milling).
    pub fn config(
        &self,
        common: CommonConfig,
        profiles: Vec<dtwin_profile::Profile>,
    ) -> dtwin_sparkplug_host::SparkplugHostConfig {
        let mut c = dtwin_sparkplug_host::SparkplugHostConfig::new(common.broker.clone());
        c.common = common;
        c.host_id.clone_from(&self.sparkplug_host_id);
        c.profiles = profiles;
        c.draft_profiles = !self.no_draft_profiles;
        c
    }
}

/// `dtwin sparkplug`: the host flags, the machine profiles a device may match, its metrics
/// endpoint.
#[derive(Debug, Clone, Args)]
pub struct SparkplugServiceOpts {
    /// Host id.
    #[command(flatten)]
    pub sparkplug: SparkplugOpts,
    /// Machine profiles (TOML) besides milling a device's birth may match (every sensor key
    /// among its metric names); give the feature service's own. Repeat or comma-separate.
    #[arg(
        long = "profile",
        env = "DTWIN_PROFILES",
        value_delimiter = ',',
        value_name = "PROFILE.toml"
    )]
    pub profiles: Vec<std::path::PathBuf>,
    /// Serve Prometheus /metrics and /healthz on this address (off when unset).
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ServiceOpts for SparkplugServiceOpts {
    type Config = dtwin_sparkplug_host::SparkplugHostConfig;

    fn config(&self, mut common: CommonConfig) -> anyhow::Result<Self::Config> {
        common.metrics_listen = self.metrics_listen;
        let profiles = dtwin_feature::load_profiles(&self.profiles)?;
        Ok(self.sparkplug.config(common, profiles))
    }
}

/// Dashboard flags.
#[derive(Debug, Clone, Args)]
pub struct DashboardOpts {
    /// Address to serve on (127.0.0.1 unless told otherwise).
    #[arg(long, env = "DTWIN_DASHBOARD_LISTEN", default_value = dtwin_dashboard::DEFAULT_LISTEN)]
    pub dashboard_listen: std::net::SocketAddr,
    /// Access token, required when listening beyond 127.0.0.1 (`/?token=...` once in a browser).
    #[arg(long, env = "DTWIN_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// The inference service's model and rules, so the what-if form agrees with it.
    #[command(flatten)]
    pub inference: InferenceOpts,
    /// Machine profiles (TOML) besides milling, for the what-if form and the readings' labels
    /// and units; repeat or comma-separate (`dtwin up` passes the feature service's).
    #[arg(
        long = "profile",
        env = "DTWIN_PROFILES",
        value_delimiter = ',',
        value_name = "PROFILE.toml"
    )]
    pub profiles: Vec<std::path::PathBuf>,
    /// The alerter's routing file (TOML): the fleet view shows each machine's line and
    /// criticality from its `[[machine]]` entries (no lines without one). `dtwin up` passes
    /// --alert-routes.
    #[arg(long, env = "DTWIN_ALERT_ROUTES", value_name = "ROUTES.toml")]
    pub routes: Option<std::path::PathBuf>,
}

/// The fleet view's lines and criticality from the routing file at `path`.
///
/// # Errors
/// The file cannot be read or is not a routing file (with its line).
pub fn read_routes(path: &std::path::Path) -> anyhow::Result<dtwin_dashboard::routes::Routes> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    dtwin_dashboard::routes::Routes::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl DashboardOpts {
    /// The dashboard's config.
    ///
    /// # Errors
    /// Bad window flags or a bad profile.
    pub fn config(&self, common: CommonConfig) -> anyhow::Result<dtwin_dashboard::DashboardConfig> {
        let mut c = dtwin_dashboard::DashboardConfig::new(common.broker.clone());
        c.listen = self.dashboard_listen;
        c.token = self.dashboard_token.clone();
        c.inference = self.inference.config(common.clone())?;
        c.profiles = dtwin_feature::load_profiles(&self.profiles)?;
        if let Some(path) = &self.routes {
            c.routes = read_routes(path)?;
        }
        c.common = common;
        Ok(c)
    }
}

impl ServiceOpts for DashboardOpts {
    type Config = dtwin_dashboard::DashboardConfig;

    fn config(&self, common: CommonConfig) -> anyhow::Result<Self::Config> {
        DashboardOpts::config(self, common)
    }
}

/// Twin publisher flags.
#[derive(Debug, Clone, Args)]
pub struct TwinOpts {
    /// Number of simulated machines.
    #[arg(long, env = "DTWIN_MACHINES", default_value_t = 20)]
    pub machines: usize,
    /// Random seed (same seed, same fleet, same readings).
    #[arg(long, env = "DTWIN_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Readings per machine per second.
    #[arg(long, env = "DTWIN_RATE", default_value_t = 2.0)]
    pub rate: f64,
    /// Time acceleration: plant seconds per wall-clock second.
    #[arg(long, env = "DTWIN_ACCEL", default_value_t = 120.0)]
    pub accel: f64,
    /// QoS of telemetry (0 or 1).
    #[arg(long, env = "DTWIN_TELEMETRY_QOS", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub telemetry_qos: u8,
    /// Inject a fault: MACHINE:FAULT[@SECONDS], e.g. machine-003:bearing@10 (repeatable).
    #[arg(long = "scenario", env = "DTWIN_SCENARIO", value_delimiter = ',')]
    pub scenario: Vec<dtwin_twin_publisher::ScenarioEvent>,
    /// Scenario file (TOML list of [[event]] machine, fault, at_s), added to --scenario.
    #[arg(long, env = "DTWIN_SCENARIO_FILE")]
    pub scenario_file: Option<std::path::PathBuf>,
    /// Worker tasks (each with its own MQTT connection) the fleet is spread over.
    #[arg(long, env = "DTWIN_TWIN_CONNECTIONS", default_value_t = 1)]
    pub connections: usize,
    /// As fast as possible: no clock; timestamps in stream time (start + seq / rate).
    #[arg(long, env = "DTWIN_AFAP")]
    pub afap: bool,
    /// Stop after this many readings per machine.
    #[arg(long, env = "DTWIN_STEPS")]
    pub steps: Option<u64>,
    /// JSON telemetry, or Sparkplug B (an edge node per connection, a device per machine;
    /// machines then appear as dtwin.twin-K.MACHINE through the Sparkplug host).
    #[arg(long, env = "DTWIN_TWIN_PROTOCOL", value_enum, default_value_t = Protocol::Json)]
    pub protocol: Protocol,
}

/// How readings are published (`dtwin twin` and `dtwin loadtest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// JSON telemetry on {prefix}/machines/{id}/telemetry.
    Json,
    /// Sparkplug B births and data by alias on spBv1.0/..., for the Sparkplug host.
    Sparkplug,
}

impl From<Protocol> for dtwin_twin_publisher::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Json => Self::Json,
            Protocol::Sparkplug => Self::Sparkplug,
        }
    }
}

/// `dtwin twin`: the twin flags plus its metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct TwinServiceOpts {
    /// Fleet, rate and scenario.
    #[command(flatten)]
    pub twin: TwinOpts,
    /// Serve Prometheus /metrics and /healthz on this address (off when unset).
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `dtwin feature`: the feature flags plus its subscription QoS, windows, scale-out and
/// metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct FeatureServiceOpts {
    /// QoS of the telemetry subscription (0 or 1).
    #[arg(long, env = "DTWIN_TELEMETRY_QOS", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub telemetry_qos: u8,
    /// Scale-out.
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Workers, event order, eviction, load shedding.
    #[command(flatten)]
    pub feature: FeatureOpts,
    /// Windows and feature set.
    #[command(flatten)]
    pub window: WindowOpts,
    /// Serve Prometheus /metrics and /healthz on this address (off when unset).
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Feature service flags (`dtwin feature` and `dtwin up`).
#[derive(Debug, Clone, Args)]
pub struct FeatureOpts {
    /// Worker tasks machines are sharded over (by a hash of the machine id).
    #[arg(long, env = "DTWIN_FEATURE_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Reorder tolerance: readings a missing one may be overtaken by before it counts as a gap
    /// (0: no reordering; later readings are dead-lettered as too_late).
    #[arg(long, env = "DTWIN_REORDER_TOLERANCE", default_value_t = 4)]
    pub reorder_tolerance: u64,
    /// Longest a reading waits for a missing earlier one, in milliseconds.
    #[arg(long, env = "DTWIN_REORDER_HOLD_MS", default_value_t = 500)]
    pub reorder_hold_ms: u64,
    /// Seconds a silent machine keeps its window (then it restarts cold).
    #[arg(long, env = "DTWIN_IDLE_EVICT_S", default_value_t = 600)]
    pub idle_evict_s: u64,
    /// Shed load: drop (and count in dtwin_feature_stale_dropped_total) readings whose ts is
    /// more than this many seconds behind the clock on arrival (0: off; keep it off to replay
    /// history or take a gateway's late backlog).
    #[arg(long, env = "DTWIN_MAX_LAG_S", default_value_t = 0.0)]
    pub max_lag_s: f64,
    /// Machine profile (TOML, see `dtwin profile init`) of machines that are not the built-in
    /// milling kind; repeat (or comma-separate) for several. A reading names its profile in
    /// `profile`, or --profile-map maps its machine id to one.
    #[arg(
        long = "profile",
        env = "DTWIN_PROFILES",
        value_delimiter = ',',
        value_name = "PROFILE.toml"
    )]
    pub profiles: Vec<std::path::PathBuf>,
    /// PATTERN=PROFILE: machines whose id matches the pattern (`pump-*`) are of that profile
    /// (first match wins; the others are milling); repeat or comma-separate.
    #[arg(
        long = "profile-map",
        env = "DTWIN_PROFILE_MAP",
        value_delimiter = ',',
        value_name = "PATTERN=PROFILE"
    )]
    pub profile_map: Vec<String>,
}

/// The feature windows. The feature service, the inference service, training and scoring must
/// agree on them: they are part of the feature names, so a model trained on other windows is
/// refused with a clear error.
#[derive(Debug, Clone, Args)]
pub struct WindowOpts {
    /// Feature set: default (what the shipped model is trained on) or extended (adds min/max,
    /// time windows, EWMA, deltas, threshold flags; needs a model trained on it).
    #[arg(long, env = "DTWIN_FEATURE_SET", default_value = "default")]
    pub feature_set: dtwin_windows::FeatureSetKind,
    /// Readings in the short count window (mean, std and slope per sensor; warm once full).
    #[arg(long, env = "DTWIN_SHORT_WINDOW", default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=10_000))]
    pub short_window: u16,
    /// Readings in the long count window (each sensor's deviation from its mean).
    #[arg(long, env = "DTWIN_LONG_WINDOW", default_value_t = 60, value_parser = clap::value_parser!(u16).range(2..=10_000))]
    pub long_window: u16,
    /// Time windows of the extended set, seconds, comma-separated.
    #[arg(
        long,
        env = "DTWIN_TIME_WINDOWS_S",
        default_value = "60,600",
        value_delimiter = ','
    )]
    pub time_windows_s: Vec<u64>,
}

impl WindowOpts {
    /// The window configuration.
    ///
    /// # Errors
    /// A long window shorter than the short one, or a zero or repeated time window.
    pub fn config(&self) -> anyhow::Result<dtwin_windows::WindowConfig> {
        anyhow::ensure!(
            self.long_window >= self.short_window,
            "--long-window ({}) must be at least --short-window ({})",
            self.long_window,
            self.short_window
        );
        let mut seen = std::collections::BTreeSet::new();
        for &t in &self.time_windows_s {
            anyhow::ensure!(
                t > 0 && seen.insert(t),
                "--time-windows-s: {t} is zero or given twice"
            );
        }
        Ok(dtwin_windows::WindowConfig {
            feature_set: self.feature_set,
            short: usize::from(self.short_window),
            long: usize::from(self.long_window),
            time_windows_s: self.time_windows_s.clone(),
            ..dtwin_windows::WindowConfig::default()
        })
    }
}

/// `dtwin inference`: the inference flags plus scale-out.
#[derive(Debug, Clone, Args)]
pub struct InferenceServiceOpts {
    /// Model and rules.
    #[command(flatten)]
    pub inference: InferenceOpts,
    /// Scale-out.
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Serve Prometheus /metrics and /healthz on this address (off when unset).
    #[arg(long, env = "DTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Drift detection.
    #[command(flatten)]
    pub drift: DriftOpts,
}

/// Drift detection flags of the inference service.
#[derive(Debug, Clone, Args)]
pub struct DriftOpts {
    /// Warm feature vectors (all machines together, each machine's 60-reading window full) in
    /// the rolling window compared with the model's training reference; a verdict needs a
    /// quarter of it.
    #[arg(long, env = "DTWIN_DRIFT_WINDOW", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(4..=1_000_000))]
    pub drift_window: u32,
    /// Distinct machines a drift verdict needs in the window (fewer when the whole fleet is
    /// smaller); warming_up until then.
    #[arg(long, env = "DTWIN_DRIFT_MIN_MACHINES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub drift_min_machines: u32,
    /// Seconds of message time (the readings' ts) the warm vectors must span before a drift
    /// verdict; warming_up until then.
    #[arg(long, env = "DTWIN_DRIFT_MIN_SPAN_S", default_value_t = dtwin_inference::drift::DEFAULT_MIN_SPAN_S)]
    pub drift_min_span_s: f64,
    /// KS statistic (0..1) above which a feature or the risk counts as drifted.
    #[arg(long, env = "DTWIN_DRIFT_KS", default_value_t = dtwin_inference::drift::DEFAULT_KS_THRESHOLD)]
    pub drift_ks: f64,
    /// Jensen-Shannon divergence (bits, 0..1) above which a feature or the risk counts as
    /// drifted.
    #[arg(long, env = "DTWIN_DRIFT_JS", default_value_t = dtwin_inference::drift::DEFAULT_JS_THRESHOLD)]
    pub drift_js: f64,
    /// Seconds between drift statuses, retained on {prefix}/drift/inference (0: none).
    #[arg(long, env = "DTWIN_DRIFT_INTERVAL_S", default_value_t = 5.0)]
    pub drift_interval_s: f64,
}

// The flag's default is the library's.
const _: () = assert!(dtwin_inference::drift::DEFAULT_WINDOW == 2000);
const _: () = assert!(dtwin_inference::drift::DEFAULT_MIN_MACHINES == 10);

impl DriftOpts {
    /// Sets the drift settings of an inference config.
    ///
    /// # Errors
    /// A threshold outside 0..1 or a negative interval.
    pub fn apply(&self, c: &mut dtwin_inference::InferenceConfig) -> anyhow::Result<()> {
        for (flag, v) in [("--drift-ks", self.drift_ks), ("--drift-js", self.drift_js)] {
            anyhow::ensure!((0.0..=1.0).contains(&v), "{flag} must be in 0..1, not {v}");
        }
        anyhow::ensure!(
            self.drift_interval_s.is_finite() && self.drift_interval_s >= 0.0,
            "--drift-interval-s must be 0 or more, not {}",
            self.drift_interval_s
        );
        anyhow::ensure!(
            self.drift_min_span_s.is_finite() && self.drift_min_span_s >= 0.0,
            "--drift-min-span-s must be 0 or more, not {}",
            self.drift_min_span_s
        );
        let window = self.drift_window as usize;
        c.drift = dtwin_inference::DriftConfig {
            window,
            min_samples: (window / 4).max(1),
            ks_threshold: self.drift_ks,
            js_threshold: self.drift_js,
            min_machines: self.drift_min_machines as usize,
            min_span_s: self.drift_min_span_s,
            ..Default::default()
        };
        c.drift_interval = std::time::Duration::from_secs_f64(self.drift_interval_s);
        Ok(())
    }
}

/// Inference service flags.
#[derive(Debug, Clone, Args)]
pub struct InferenceOpts {
    /// Model artifact (JSON); default: the model shipped in the binary.
    #[arg(long, env = "DTWIN_MODEL")]
    pub model: Option<PathBuf>,
    /// Expert rules (TOML); default: the shipped rules.
    #[arg(long, env = "DTWIN_RULES")]
    pub rules: Option<PathBuf>,
    /// The feature service's windows (models must be trained on them).
    #[command(flatten)]
    pub window: WindowOpts,
    /// Most feature vectors scored together when several are already waiting (micro-batch;
    /// never waits for more, so a light load gets no added latency). 1: one at a time.
    #[arg(long, env = "DTWIN_MAX_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch: u32,
    /// A quality, anomaly or rul model (JSON, from `dtwin train --kind`) to load at start for
    /// the profile it was trained on (repeat, or comma-separate); one deployed retained on
    /// {prefix}/models/{profile}/{kind} replaces it.
    #[arg(
        long = "kind-model",
        env = "DTWIN_KIND_MODELS",
        value_delimiter = ',',
        value_name = "MODEL.json"
    )]
    pub kind_models: Vec<PathBuf>,
    /// Do not load the shipped milling quality and anomaly models at start.
    #[arg(long, env = "DTWIN_NO_SHIPPED_KINDS")]
    pub no_shipped_kinds: bool,
}

impl TwinOpts {
    /// The twin's service config.
    ///
    /// # Errors
    /// A QoS that does not exist.
    pub fn config(&self, common: CommonConfig) -> anyhow::Result<dtwin_twin_publisher::TwinConfig> {
        let mut c = dtwin_twin_publisher::TwinConfig::new(common.broker.clone());
        c.common = common;
        c.machines = self.machines;
        c.seed = self.seed;
        c.rate_hz = self.rate;
        c.accel = self.accel;
        c.qos = dtwin_bus::qos_from_u8(self.telemetry_qos)?;
        c.scenario = self.scenario.clone();
        if let Some(path) = &self.scenario_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading scenario file {}", path.display()))?;
            c.scenario
                .extend(dtwin_twin_publisher::scenario::parse_file(&text)?);
        }
        c.connections = self.connections;
        c.afap = self.afap;
        c.steps = self.steps;
        c.protocol = self.protocol.into();
        Ok(c)
    }
}

impl FeatureOpts {
    /// Sets the feature service's workers, event order, eviction, load shedding and machine
    /// profiles.
    ///
    /// # Errors
    /// A negative or non-finite --max-lag-s, an unreadable or bad profile (file, line,
    /// reason), or a --profile-map entry that is not PATTERN=PROFILE.
    pub fn apply(&self, c: &mut dtwin_feature::FeatureConfig) -> anyhow::Result<()> {
        c.workers = usize::from(self.workers);
        c.order = dtwin_feature::OrderConfig {
            tolerance: self.reorder_tolerance,
            max_hold_ms: self.reorder_hold_ms,
        };
        c.idle_evict = std::time::Duration::from_secs(self.idle_evict_s);
        c.max_lag = max_lag(self.max_lag_s)?;
        c.profiles = dtwin_feature::load_profiles(&self.profiles)?;
        c.profile_map = self
            .profile_map
            .iter()
            .map(|m| dtwin_feature::parse_profile_map(m))
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}

impl ServiceOpts for FeatureServiceOpts {
    type Config = dtwin_feature::FeatureConfig;

    fn config(&self, mut common: CommonConfig) -> anyhow::Result<Self::Config> {
        common.metrics_listen = self.metrics_listen;
        self.scale.apply(&mut common);
        let mut c = dtwin_feature::FeatureConfig::new(common.broker.clone());
        c.common = common;
        c.telemetry_qos = dtwin_bus::qos_from_u8(self.telemetry_qos)?;
        c.window = self.window.config()?;
        self.feature.apply(&mut c)?;
        Ok(c)
    }
}

impl ServiceOpts for TwinServiceOpts {
    type Config = dtwin_twin_publisher::TwinConfig;

    fn config(&self, mut common: CommonConfig) -> anyhow::Result<Self::Config> {
        common.metrics_listen = self.metrics_listen;
        self.twin.config(common)
    }
}

impl ServiceOpts for InferenceServiceOpts {
    type Config = dtwin_inference::InferenceConfig;

    fn config(&self, mut common: CommonConfig) -> anyhow::Result<Self::Config> {
        common.metrics_listen = self.metrics_listen;
        self.scale.apply(&mut common);
        let mut c = self.inference.config(common)?;
        self.drift.apply(&mut c)?;
        Ok(c)
    }
}

/// `--max-lag-s` as the feature service takes it: `None` for 0 (off).
///
/// # Errors
/// A negative or non-finite number.
pub fn max_lag(seconds: f64) -> anyhow::Result<Option<std::time::Duration>> {
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 0.0,
        "--max-lag-s must be a number of seconds, 0 or more (0: off)"
    );
    Ok((seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds)))
}

impl InferenceOpts {
    /// The inference service's config.
    ///
    /// # Errors
    /// Bad window flags.
    pub fn config(&self, common: CommonConfig) -> anyhow::Result<dtwin_inference::InferenceConfig> {
        let mut c = dtwin_inference::InferenceConfig::new(common.broker.clone());
        c.common = common;
        c.window = self.window.config()?;
        if let Some(p) = &self.model {
            c.model = dtwin_inference::ModelSource::File(p.clone());
        }
        c.rules_path = self.rules.clone();
        c.max_batch = self.max_batch as usize;
        c.shipped_kinds = !self.no_shipped_kinds;
        c.kind_models.clone_from(&self.kind_models);
        Ok(c)
    }
}

/// Runs the chosen subcommand.
///
/// # Errors
/// Whatever the subcommand reports.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    use crate::shutdown::on_signal;
    match cli.command {
        Command::Up(args) => crate::cmd::up::run(args).await,
        Command::Broker(args) => crate::cmd::broker::run(args).await,
        Command::Passwd(args) => crate::cmd::broker::passwd(args),
        Command::Twin(a) => Ok(dtwin_twin_publisher::run(a.config()?, on_signal()).await?),
        Command::Feature(a) => Ok(dtwin_feature::run(a.config()?, on_signal()).await?),
        Command::Inference(a) => Ok(dtwin_inference::run(a.config()?, on_signal()).await?),
        Command::Alerter(a) => Ok(dtwin_alerter::run(a.config()?, on_signal()).await?),
        Command::Dashboard(a) => Ok(dtwin_dashboard::run(a.config()?, on_signal()).await?),
        Command::Sparkplug(a) => Ok(dtwin_sparkplug_host::run(a.config()?, on_signal()).await?),
        Command::Train(args) => crate::cmd::train::run(args),
        Command::Evaluate(args) => crate::cmd::evaluate::run(&args).map(|_| ()),
        Command::Eda(args) => crate::cmd::eda::run(&args).map(|_| ()),
        Command::Healthcheck(args) => crate::cmd::healthcheck::run(&args),
        Command::Profile(args) => crate::cmd::profile::run(&args).map(|_| ()),
        Command::Loadtest(args) => {
            let json = args.json;
            let report = crate::cmd::loadtest::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.table());
            }
            Ok(())
        }
        Command::Predict(args) => crate::cmd::predict::run(&args).map(|_| ()),
        Command::Deploy(args) => crate::cmd::deploy::run(args).await.map(|_| ()),
        Command::Silence(args) => crate::cmd::silence::run(args).await,
        Command::Alert(args) => crate::cmd::alert::run(args).await,
        Command::Generate(args) => crate::cmd::generate::run(&args, true).map(|_| ()),
        Command::Replay(args) => crate::cmd::replay::run(args, crate::shutdown::on_signal())
            .await
            .map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn max_lag_is_off_at_zero_and_refuses_nonsense() {
        assert_eq!(max_lag(0.0).unwrap(), None);
        assert_eq!(
            max_lag(2.5).unwrap(),
            Some(std::time::Duration::from_millis(2500))
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = max_lag(bad).unwrap_err().to_string();
            assert!(e.contains("--max-lag-s"), "{e}");
        }
    }
}
