//! The twin publisher: a thin shell around `dtwin-twin-sim` that steps the simulated fleet and
//! publishes each reading to `{prefix}/machines/{id}/telemetry`.
//!
//! - Modes: real time (`accel` 1), accelerated (`accel` N: N plant seconds per wall second) and
//!   as fast as possible (`afap`: no clock, publishing paced only by the broker connection;
//!   timestamps are then stream time, `start + (seq - 1) / rate`, so the stream is
//!   byte-identical for a seed).
//! - Workers: machines are spread over `connections` worker tasks (machine `i` to worker
//!   `i % connections`), each with its own MQTT connection. Every machine has its own random
//!   stream, so the number of workers never changes what a machine reports.
//! - Scenario: faults at given stream times (CLI flag or TOML file) and live from
//!   `{prefix}/control/twin` ([`control`]); a bad command becomes a dead letter on
//!   `{prefix}/deadletter/twin`.
//! - Protocol: JSON telemetry (above), or Sparkplug B ([`Protocol::Sparkplug`]): each worker
//!   connection is an edge node (`spBv1.0/dtwin/.../twin-{k}`) with one device per machine,
//!   births with aliases, then DDATA by alias; a Sparkplug host (`dtwin sparkplug`, or `up`)
//!   turns them into telemetry of machines `dtwin.twin-{k}.{machine}` (see [`sparkplug`]).
//! - Identity: each machine announces itself with a retained `online` status (with its
//!   product type) and is marked `offline` on a clean stop; the publisher's own retained status
//!   is its MQTT last will, so subscribers learn when it dies.
//!
//! # Layout
//! - [`scenario`]: "machine X enters fault F at time T" events and scenario files.
//! - [`control`]: the control topic's commands (pure decoder).
//! - [`sparkplug`]: the Sparkplug B encoding of the fleet (pure) and `sparkplug_worker`, the
//!   edge node connection that publishes it.
//! - [`metrics`]: [`TwinMetrics`], the Prometheus metrics behind `/metrics`; `/healthz`
//!   follows the control connection's broker link.
//! - [`TwinService`]: the shell on a `dtwin_runtime::Runtime`: `build` checks the settings and
//!   opens the control connection; `serve` runs the workers and control commands until
//!   shutdown.

pub mod control;
pub mod metrics;
pub mod scenario;
pub mod sparkplug;

pub use metrics::TwinMetrics;

pub use scenario::{ScenarioError, ScenarioEvent};

use dtwin_bus::{Brokers, BusClient, BusConfig, QoS};
use dtwin_runtime::{CommonConfig, Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_schema::{to_json, DeadLetter, MachineStatus, Presence, Topics, STATUS_SCHEMA};
use dtwin_twin_sim::{Clock, Fault, Fleet, Machine, SimConfig};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Control commands queued per worker; a full queue drops the command with a dead letter.
const CONTROL_QUEUE: usize = 256;

/// How the twin publishes its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// JSON telemetry on `{prefix}/machines/{id}/telemetry`.
    #[default]
    Json,
    /// Sparkplug B: an edge node per connection, a device per machine ([`sparkplug`]).
    Sparkplug,
}

/// Settings of the twin publisher.
#[derive(Debug, Clone)]
pub struct TwinConfig {
    /// Broker, prefix, client id (also the publisher's status topic segment; default
    /// `dtwin-twin`), metrics endpoint. The twin is not scaled out by instance: run one twin
    /// per client id.
    pub common: CommonConfig,
    /// Number of machines.
    pub machines: usize,
    /// Random seed: the same seed gives the same fleet and the same readings.
    pub seed: u64,
    /// Readings per machine per wall-clock second.
    pub rate_hz: f64,
    /// Time acceleration: plant seconds per wall-clock second (1 = real time).
    pub accel: f64,
    /// QoS of telemetry publishes.
    pub qos: QoS,
    /// Faults to inject at given times.
    pub scenario: Vec<ScenarioEvent>,
    /// Spontaneous fault onsets per machine per plant hour.
    pub fault_rate_per_hour: f64,
    /// Worker tasks, each with its own MQTT connection; on a broker cluster connection `k`
    /// starts on node `k` (modulo the nodes), so the twin's load spreads over them.
    pub connections: usize,
    /// As fast as possible: no clock, timestamps in stream time.
    pub afap: bool,
    /// Stop after this many readings per machine (`None`: until shutdown).
    pub steps: Option<u64>,
    /// Start of stream time (`None`: now). Fix it to reproduce an `afap` stream byte for byte.
    pub epoch: Option<OffsetDateTime>,
    /// JSON telemetry or Sparkplug B.
    pub protocol: Protocol,
}

impl TwinConfig {
    /// Defaults for a broker at `broker`: 20 machines at 2 Hz, one plant minute per reading.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            common: CommonConfig::new(broker),
            machines: 20,
            seed: 42,
            rate_hz: 2.0,
            accel: 120.0,
            qos: QoS::AtMostOnce,
            scenario: Vec::new(),
            fault_rate_per_hour: SimConfig::default().fault_rate_per_hour,
            connections: 1,
            afap: false,
            steps: None,
            epoch: None,
            protocol: Protocol::Json,
        }
    }

    /// The simulation settings these imply.
    pub fn sim(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            plant_seconds_per_step: self.accel / self.rate_hz,
            fault_rate_per_hour: self.fault_rate_per_hour,
            ..SimConfig::default()
        }
    }
}

fn status(
    id: &dtwin_schema::MachineId,
    state: Presence,
    product: Option<dtwin_schema::ProductType>,
) -> Vec<u8> {
    to_json(&MachineStatus {
        schema: STATUS_SCHEMA.to_owned(),
        machine_id: id.clone(),
        ts: dtwin_schema::time_fmt::now(),
        state,
        product_type: product,
    })
}

/// A fault due for machine `index` before its reading number `before_seq`.
#[derive(Debug, Clone, Copy)]
struct Due {
    index: usize,
    before_seq: u64,
    fault: Fault,
}

/// Why the twin could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// A setting out of range (says which flag).
    #[error("{0}")]
    Config(&'static str),
    /// A scenario naming an unknown machine or fault.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The client id cannot be a status topic segment.
    #[error("client id {id:?} cannot name a status topic: {source}")]
    ClientId {
        /// The client id.
        id: String,
        /// Why it is not an id.
        source: dtwin_schema::MachineIdError,
    },
    /// The runtime could not start (metrics address taken).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The connection closed under a publish.
    #[error(transparent)]
    Bus(#[from] dtwin_bus::BusError),
    /// A worker panicked.
    #[error("twin worker panicked: {0}")]
    WorkerPanicked(String),
}

/// The twin, built: settings checked, fleet and scenario resolved, control connection opened.
pub struct TwinService {
    config: TwinConfig,
    runtime: Runtime,
    metrics: TwinMetrics,
    fleet: Fleet,
    due: Vec<Due>,
    publisher_id: dtwin_schema::MachineId,
}

impl TwinService {
    /// Checks the settings, builds the fleet, resolves the scenario and starts the control
    /// connection (publisher status with its last will, control commands in).
    ///
    /// # Errors
    /// An invalid configuration (no machines, rate not positive, a scenario naming an unknown
    /// machine, a client id that cannot name a topic) or a metrics address that cannot be
    /// bound.
    pub async fn build(config: TwinConfig) -> Result<Self, TwinError> {
        check(&config)?;
        let fleet = Fleet::new(config.machines, &config.sim());
        let due: Vec<Due> = scenario::resolve(&config.scenario, &fleet)?
            .into_iter()
            .map(|r| Due {
                index: r.index,
                // Reading k is at stream time (k - 1) / rate.
                before_seq: (r.at.as_secs_f64() * config.rate_hz).ceil() as u64 + 1,
                fault: r.fault,
            })
            .collect();
        let client_id = config.common.client_id("twin");
        let publisher_id =
            dtwin_schema::MachineId::parse(&client_id).map_err(|source| TwinError::ClientId {
                id: client_id.clone(),
                source,
            })?;
        let mut registry = dtwin_obs::Registry::with_prefix("dtwin_twin");
        let metrics = TwinMetrics::register(&mut registry);
        metrics
            .machines
            .set(i64::try_from(config.machines).unwrap_or(i64::MAX));
        let topics = Topics::new(&config.common.prefix);
        // The control connection: publisher status (with its last will), machine statuses,
        // control commands in, dead letters out.
        let spec = Spec::new("twin", registry)
            .subscribe(
                format!("{}/control/twin", topics.prefix()),
                QoS::AtLeastOnce,
            )
            .last_will(
                topics.publisher_status(&client_id),
                status(&publisher_id, Presence::Offline, None),
            );
        let runtime = Runtime::start(&config.common, spec).await?;
        Ok(Self {
            config,
            runtime,
            metrics,
            fleet,
            due,
            publisher_id,
        })
    }
}

impl Service for TwinService {
    type Error = TwinError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Runs until `shutdown` fires (or, with `steps`, until every machine has published that
    /// many readings), then marks the machines and the publisher offline and closes.
    ///
    /// # Errors
    /// A closed connection, or a worker that panicked.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), TwinError> {
        let Self {
            config,
            mut runtime,
            metrics,
            fleet,
            due,
            publisher_id,
        } = self;
        let topics = runtime.topics.clone();
        let client = runtime.client.clone();
        let client_id = runtime.client_id.clone();
        metrics.publish_result(
            client
                .publish(
                    topics.publisher_status(&client_id),
                    QoS::AtLeastOnce,
                    true,
                    status(&publisher_id, Presence::Online, None),
                )
                .await,
        )?;
        // Over Sparkplug the host announces the machines (from their births).
        let json = config.protocol == Protocol::Json;
        for m in fleet.machines.iter().filter(|_| json) {
            metrics.publish_result(
                client
                    .publish(
                        topics.status(m.id()),
                        QoS::AtLeastOnce,
                        true,
                        status(m.id(), Presence::Online, Some(m.product_type())),
                    )
                    .await,
            )?;
        }
        let statuses: Vec<_> = fleet
            .machines
            .iter()
            .map(|m| (m.id().clone(), m.product_type()))
            .collect();
        runtime.log_started(&format!(
            "{} machines at {} Hz, time x{}, afap {}, {} connections, {:?}",
            config.machines,
            config.rate_hz,
            config.accel,
            config.afap,
            config.connections,
            config.protocol
        ));

        // Workers.
        let clock = Clock {
            epoch: config.epoch.unwrap_or_else(dtwin_schema::time_fmt::now),
            period: time::Duration::seconds_f64(1.0 / config.rate_hz),
        };
        let stop_workers = shutdown.child_token();
        let mut shards: Vec<Vec<(usize, Machine)>> = vec![Vec::new(); config.connections];
        for (i, m) in fleet.machines.into_iter().enumerate() {
            shards[i % config.connections].push((i, m));
        }
        let mut senders = Vec::with_capacity(config.connections);
        let mut workers = tokio::task::JoinSet::new();
        for (k, machines) in shards.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
            senders.push(tx);
            let mine: Vec<Due> = due
                .iter()
                .copied()
                .filter(|d| d.index % config.connections == k)
                .collect();
            let worker_bus =
                BusConfig::new(config.common.broker.rotated(k), format!("{client_id}-{k}"));
            let setup = WorkerSetup {
                machines,
                due: mine,
                clock,
                qos: config.qos,
                afap: config.afap,
                steps: config.steps,
                period: Duration::from_secs_f64(1.0 / config.rate_hz),
                topics: topics.clone(),
                metrics: metrics.clone(),
            };
            if config.protocol == Protocol::Sparkplug {
                let node = sparkplug::twin_node(sparkplug::GROUP, k);
                workers.spawn(sparkplug::worker(
                    setup,
                    worker_bus,
                    node,
                    rx,
                    stop_workers.clone(),
                ));
                continue;
            }
            let worker_conn = dtwin_bus::connect(&worker_bus, Vec::new());
            workers.spawn(worker(setup, worker_conn, rx, stop_workers.clone()));
        }

        // Control commands until shutdown or until every worker is done.
        let mut result = Ok(());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                done = workers.join_next() => match done {
                    None => break,
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(e))) => { result = Err(e); break; }
                    Some(Err(e)) => { result = Err(TwinError::WorkerPanicked(e.to_string())); break; }
                },
                msg = runtime.inbox.recv() => {
                    let Some(msg) = msg else { break };
                    let rejected = apply_control(&msg.payload, &statuses, &senders);
                    metrics.control(rejected.is_none());
                    if let Some(r) = rejected {
                        warn!(reason = r.reason.as_str(), detail = %r.detail, "control command rejected");
                        let dl = DeadLetter::new("twin", &msg.topic, &msg.payload, r.reason, r.detail);
                        let _ = metrics.publish_result(client
                            .publish(topics.deadletter("twin"), QoS::AtLeastOnce, false, to_json(&dl))
                            .await);
                    }
                }
            }
        }
        stop_workers.cancel();
        while let Some(done) = workers.join_next().await {
            if let Ok(Err(e)) = done {
                warn!(error = %e, "twin worker stopped with an error");
            }
        }

        for (id, product) in statuses.iter().filter(|_| json) {
            metrics.publish_result(
                client
                    .publish(
                        topics.status(id),
                        QoS::AtLeastOnce,
                        true,
                        status(id, Presence::Offline, Some(*product)),
                    )
                    .await,
            )?;
        }
        metrics.publish_result(
            client
                .publish(
                    topics.publisher_status(&client_id),
                    QoS::AtLeastOnce,
                    true,
                    status(&publisher_id, Presence::Offline, None),
                )
                .await,
        )?;
        runtime.close().await;
        info!("twin stopped");
        result
    }
}

/// Runs the twin until `shutdown` fires (or, with `steps`, until every machine has published
/// that many readings): [`TwinService::build`], then [`TwinService::serve`].
///
/// # Errors
/// As those two.
pub async fn run(config: TwinConfig, shutdown: CancellationToken) -> Result<(), TwinError> {
    TwinService::build(config).await?.serve(shutdown).await
}

/// Checks the settings that would make the fleet meaningless.
fn check(config: &TwinConfig) -> Result<(), TwinError> {
    if config.machines == 0 {
        return Err(TwinError::Config("--machines must be at least 1"));
    }
    if !(config.rate_hz > 0.0 && config.rate_hz.is_finite()) {
        return Err(TwinError::Config("--rate must be a positive number of Hz"));
    }
    if !(config.accel > 0.0 && config.accel.is_finite()) {
        return Err(TwinError::Config("--accel must be positive"));
    }
    if config.connections == 0 {
        return Err(TwinError::Config("--connections must be at least 1"));
    }
    Ok(())
}

/// Applies a control command: hands an injected fault to the machine's worker. Returns why it
/// was refused, if it was.
fn apply_control(
    payload: &[u8],
    statuses: &[(dtwin_schema::MachineId, dtwin_schema::ProductType)],
    senders: &[mpsc::Sender<(usize, Fault)>],
) -> Option<dtwin_schema::Rejection> {
    match control::decode(payload) {
        Ok(control::ControlCommand::Inject { machine_id, fault }) => {
            match statuses
                .iter()
                .position(|(id, _)| id.as_str() == machine_id)
            {
                None => Some(dtwin_schema::Rejection::new(
                    dtwin_schema::RejectReason::BadMachineId,
                    format!("machine {machine_id:?} is not in the fleet"),
                )),
                Some(index) => {
                    info!(machine = %machine_id, %fault, "control: injecting fault");
                    senders[index % senders.len()]
                        .try_send((index, fault))
                        .err()
                        .map(|_| {
                            dtwin_schema::Rejection::new(
                                dtwin_schema::RejectReason::Oversize,
                                "control queue full; command dropped",
                            )
                        })
                }
            }
        }
        Err(r) => Some(r),
    }
}

/// Injects the faults commanded since the last tick and those due before reading `next_seq`
/// (`due` sorted by `before_seq`).
fn inject_due(
    machines: &mut [(usize, Machine)],
    due: &mut Vec<Due>,
    commands: &mut mpsc::Receiver<(usize, Fault)>,
    next_seq: u64,
) {
    while let Ok((index, fault)) = commands.try_recv() {
        if let Some((_, m)) = machines.iter_mut().find(|(i, _)| *i == index) {
            m.inject(fault);
        }
    }
    while let Some(d) = due.first().filter(|d| d.before_seq <= next_seq) {
        if let Some((_, m)) = machines.iter_mut().find(|(i, _)| *i == d.index) {
            info!(machine = %m.id(), fault = %d.fault, "scenario: injecting fault");
            m.inject(d.fault);
        }
        due.remove(0);
    }
}

struct WorkerSetup {
    machines: Vec<(usize, Machine)>,
    due: Vec<Due>,
    clock: Clock,
    qos: QoS,
    afap: bool,
    steps: Option<u64>,
    period: Duration,
    topics: Topics,
    metrics: TwinMetrics,
}

/// Steps and publishes one shard of the fleet.
async fn worker(
    setup: WorkerSetup,
    conn: dtwin_bus::Connection,
    mut commands: mpsc::Receiver<(usize, Fault)>,
    stop: CancellationToken,
) -> Result<(), TwinError> {
    let WorkerSetup {
        mut machines,
        mut due,
        clock,
        qos,
        afap,
        steps,
        period,
        topics,
        metrics,
    } = setup;
    due.sort_by_key(|d| d.before_seq);
    let client: BusClient = conn.client.clone();
    // Topic strings are built once per machine, not per reading.
    let telemetry_topics: Vec<String> = machines
        .iter()
        .map(|(_, m)| topics.telemetry(m.id()))
        .collect();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut published: u64 = 0;
    'run: loop {
        if afap {
            if stop.is_cancelled() {
                break;
            }
        } else {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
        }
        if steps.is_some_and(|n| published >= n) {
            break;
        }
        inject_due(&mut machines, &mut due, &mut commands, published + 1);
        let now = dtwin_schema::time_fmt::now();
        for ((_, m), topic) in machines.iter_mut().zip(&telemetry_topics) {
            let reading = m.step();
            let ts = if afap { clock.at(reading.seq) } else { now };
            let payload = reading.to_telemetry(m.id(), ts).encode();
            tokio::select! {
                r = client.publish(topic.clone(), qos, false, payload) => metrics.publish_result(r)?,
                _ = stop.cancelled() => break 'run,
            }
            metrics.readings.inc();
        }
        published += 1;
    }
    // The last publishes may still sit in the request queue or wait for in-flight room:
    // the DISCONNECT goes out after them, so wait for it (generously when a --steps run
    // promised a fixed number of readings) rather than cut them off.
    let flush = if steps.is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(2)
    };
    if tokio::time::timeout(flush + Duration::from_secs(1), conn.close_within(flush))
        .await
        .is_err()
    {
        warn!("twin worker did not disconnect in time");
    }
    Ok(())
}
