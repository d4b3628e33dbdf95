//! The twin publisher: a thin shell that steps the simulated fleet of `dtwin-twin-sim` on a
//! wall-clock tick and publishes each reading to `{prefix}/machines/{id}/telemetry`.
//!
//! Each machine announces itself with a retained `online` status and is marked `offline` on a
//! clean stop; the publisher's own retained status is its MQTT last will, so subscribers learn
//! when it dies.
//!
//! # Layout
//! - [`scenario`]: "machine X enters fault F at time T" events, parsed from the CLI.
//! - [`run`]: the tick loop.

pub mod scenario;

pub use scenario::{ScenarioError, ScenarioEvent};

use dtwin_bus::{BrokerUrl, BusConfig, QoS};
use dtwin_schema::{to_json, MachineStatus, Presence, Topics, STATUS_SCHEMA};
use dtwin_twin_sim::{Fleet, SimConfig};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Settings of the twin publisher.
#[derive(Debug, Clone)]
pub struct TwinConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id (also the publisher's status topic segment).
    pub client_id: String,
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
}

impl TwinConfig {
    /// Defaults for a broker at `broker`: 20 machines at 2 Hz, one plant minute per reading.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-twin".to_owned(),
            machines: 20,
            seed: 42,
            rate_hz: 2.0,
            accel: 120.0,
            qos: QoS::AtMostOnce,
            scenario: Vec::new(),
            fault_rate_per_hour: SimConfig::default().fault_rate_per_hour,
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

/// Runs the twin until `shutdown` fires.
///
/// # Errors
/// An invalid configuration (no machines, rate not positive, a scenario naming an unknown
/// machine), or a closed connection.
pub async fn run(config: TwinConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(config.machines > 0, "--machines must be at least 1");
    anyhow::ensure!(
        config.rate_hz > 0.0 && config.rate_hz.is_finite(),
        "--rate must be a positive number of Hz"
    );
    anyhow::ensure!(
        config.accel > 0.0 && config.accel.is_finite(),
        "--accel must be positive"
    );
    let topics = Topics::new(&config.prefix);
    let mut fleet = Fleet::new(config.machines, &config.sim());
    let mut pending = scenario::resolve(&config.scenario, &fleet)?;

    let publisher_id = dtwin_schema::MachineId::parse(&config.client_id).map_err(|e| {
        anyhow::anyhow!(
            "client id {:?} cannot name a status topic: {e}",
            config.client_id
        )
    })?;
    let mut bus = BusConfig::new(config.broker.clone(), &config.client_id);
    bus.last_will = Some((
        topics.publisher_status(&config.client_id),
        status(&publisher_id, Presence::Offline, None),
    ));
    let conn = dtwin_bus::connect(&bus, Vec::new());
    let client = conn.client.clone();
    client
        .publish(
            topics.publisher_status(&config.client_id),
            QoS::AtLeastOnce,
            true,
            status(&publisher_id, Presence::Online, None),
        )
        .await?;
    for m in &fleet.machines {
        client
            .publish(
                topics.status(m.id()),
                QoS::AtLeastOnce,
                true,
                status(m.id(), Presence::Online, Some(m.product_type())),
            )
            .await?;
    }
    info!(
        machines = config.machines,
        rate_hz = config.rate_hz,
        accel = config.accel,
        "twin started"
    );

    let period = Duration::from_secs_f64(1.0 / config.rate_hz);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let elapsed = started.elapsed();
        while let Some(ev) = pending.first().filter(|e| e.at <= elapsed) {
            info!(machine = %fleet.machines[ev.index].id(), fault = ?ev.fault, "scenario: injecting fault");
            fleet.machines[ev.index].inject(ev.fault);
            pending.remove(0);
        }
        let now = dtwin_schema::time_fmt::now();
        for m in &mut fleet.machines {
            let reading = m.step();
            let payload = reading.to_telemetry(m.id(), now).encode();
            client
                .publish(topics.telemetry(m.id()), config.qos, false, payload)
                .await?;
        }
    }
    for m in &fleet.machines {
        client
            .publish(
                topics.status(m.id()),
                QoS::AtLeastOnce,
                true,
                status(m.id(), Presence::Offline, Some(m.product_type())),
            )
            .await?;
    }
    client
        .publish(
            topics.publisher_status(&config.client_id),
            QoS::AtLeastOnce,
            true,
            status(&publisher_id, Presence::Offline, None),
        )
        .await?;
    if tokio::time::timeout(Duration::from_secs(1), conn.close())
        .await
        .is_err()
    {
        warn!("twin did not disconnect in time");
    }
    info!("twin stopped");
    Ok(())
}
