//! The live twin: machines stepped one reading at a time.
//!
//! A step is one reading and lasts `plant_seconds_per_step` of plant time. Unlike AI4I's
//! independent cycles, a live machine runs an operating regime (a torque set point with slow
//! noise) so failures build up instead of striking at random, and faults develop over plant
//! time. Tool wear grows by AI4I's 5/3/2 min per process cycle of [`CYCLE_SECONDS`].

use crate::faults::{Fault, Sensor};
use crate::physics::{self, gauss};
use crate::rng::machine_rng;
use dtwin_schema::{FailureMode, MachineId, ProductType, Telemetry};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::OffsetDateTime;

/// Plant seconds of one process cycle (AI4I's wear increments are per cycle).
pub const CYCLE_SECONDS: f64 = 300.0;
/// Vibration (mm/s) at which a degraded bearing fails (ISO 10816 "damage").
pub const BEARING_FAIL_MM_S: f64 = 11.0;
/// Process-air difference (K) at which a coolant fault ends in a failure.
pub const COOLANT_FAIL_DIFF_K: f64 = 20.0;
/// Healthy pressure band (bar); a valve fault fails outside it.
pub const PRESSURE_BAND: (f64, f64) = (3.0, 9.0);

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed: the same seed gives the same fleet and readings.
    pub seed: u64,
    /// Plant seconds per reading.
    pub plant_seconds_per_step: f64,
    /// Spontaneous fault onsets (bearing, coolant, valve) per machine per plant hour.
    pub fault_rate_per_hour: f64,
    /// Spikes, stuck values, dropouts and drift onsets.
    pub sensor_glitches: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            plant_seconds_per_step: 60.0,
            fault_rate_per_hour: 0.05,
            sensor_glitches: true,
        }
    }
}

/// One reading of one machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reading {
    /// Per-machine sequence number, from 1.
    pub seq: u64,
    /// Plant time since the machine started, s.
    pub plant_time_s: f64,
    /// Product made.
    pub product_type: ProductType,
    /// Process temperature, °C (`None`: sensor dropout).
    pub temperature_c: Option<f64>,
    /// Air temperature, °C.
    pub ambient_temperature_c: Option<f64>,
    /// Vibration velocity, mm/s.
    pub vibration_mm_s: Option<f64>,
    /// Pressure, bar.
    pub pressure_bar: Option<f64>,
    /// Spindle speed, rpm.
    pub spindle_rpm: Option<f64>,
    /// Torque, N·m.
    pub torque_nm: Option<f64>,
    /// Power, W.
    pub power_w: Option<f64>,
    /// Tool wear, min.
    pub tool_wear_min: Option<f64>,
    /// Operating hours.
    pub operating_hours: f64,
    /// Whether the part was OK.
    pub quality_ok: bool,
    /// Whether the machine failed on this reading.
    pub failure: bool,
    /// Why.
    pub failure_mode: Option<FailureMode>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Glitch {
    drift_per_hour: f64,
    drift: f64,
    stuck_for: u32,
    stuck_value: Option<f64>,
    dropout_for: u32,
}

/// One simulated machine.
#[derive(Debug, Clone)]
pub struct Machine {
    id: MachineId,
    rng: ChaCha8Rng,
    dt: f64,
    fault_rate: f64,
    glitches_on: bool,
    product: ProductType,
    seq: u64,
    plant_time: f64,
    air_k: f64,
    process_noise: f64,
    torque_set: f64,
    torque_noise: f64,
    wear: f64,
    tool_life: f64,
    tool_fails: bool,
    /// Bearing defect amplitude (mm/s) and its growth time constant (s).
    bearing: Option<(f64, f64)>,
    /// Coolant fault: extra process heat (K) and its rise per second.
    coolant: Option<(f64, f64)>,
    /// Valve fault: pressure offset (bar), its rate per second and direction.
    valve: Option<(f64, f64)>,
    glitches: [Glitch; 7],
}

fn ar_step(rng: &mut impl Rng, x: f64, mean: f64, sd: f64, phi: f64) -> f64 {
    mean + phi * (x - mean) + gauss(rng, 0.0, sd * (1.0 - phi * phi).sqrt())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Machine {
    /// Machine `index` of a fleet of `fleet_size` (the size only sets the id's zero padding).
    pub fn new(index: usize, fleet_size: usize, cfg: &SimConfig) -> Self {
        let width = fleet_size.max(1).to_string().len().max(3);
        // Only [A-Za-z0-9-] characters: always a valid id.
        let id = MachineId::parse(&format!("machine-{:0width$}", index + 1))
            .expect("generated ids are valid");
        let mut rng = machine_rng(cfg.seed, index as u64);
        let product = physics::draw_product(&mut rng);
        let air_k = gauss(&mut rng, physics::AIR_MEAN_K, physics::AIR_SD_K);
        let tool_life = rng.random_range(physics::TOOL_LIFE_MIN.0..physics::TOOL_LIFE_MIN.1);
        let mut m = Self {
            id,
            dt: cfg.plant_seconds_per_step.max(1e-3),
            fault_rate: cfg.fault_rate_per_hour.max(0.0),
            glitches_on: cfg.sensor_glitches,
            product,
            seq: 0,
            plant_time: 0.0,
            air_k,
            process_noise: 0.0,
            torque_set: 40.0,
            torque_noise: 0.0,
            wear: rng.random_range(0.0..200.0),
            tool_life,
            tool_fails: rng.random_bool(physics::TOOL_END_FAILURE_SHARE),
            bearing: None,
            coolant: None,
            valve: None,
            glitches: [Glitch::default(); 7],
            rng,
        };
        m.new_regime();
        m
    }

    /// The machine id, e.g. `machine-007`.
    pub fn id(&self) -> &MachineId {
        &self.id
    }

    /// The product it makes.
    pub fn product_type(&self) -> ProductType {
        self.product
    }

    /// Current true tool wear, min.
    pub fn tool_wear(&self) -> f64 {
        self.wear
    }

    fn new_regime(&mut self) {
        // Set points stay inside the power band; the noise around them can still cross it.
        self.torque_set = gauss(&mut self.rng, 40.0, 6.0).clamp(22.0, 58.0);
    }

    /// Starts a fault now.
    pub fn inject(&mut self, fault: Fault) {
        let rng = &mut self.rng;
        match fault {
            Fault::Bearing => {
                // From 0.1 to 11 mm/s (x110 = e^4.7) over 1-4 plant hours.
                let hours = rng.random_range(1.0..4.0);
                self.bearing = Some((0.1, hours * 3600.0 / 4.7));
            }
            Fault::Coolant => self.coolant = Some((0.0, rng.random_range(8.0..16.0) / 3600.0)),
            Fault::Valve => {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                self.valve = Some((0.0, sign * rng.random_range(2.0..4.0) / 3600.0));
            }
            Fault::ToolWearOut => {
                self.tool_fails = true;
                self.tool_life = self.wear + 5.0 * physics::wear_per_cycle(self.product);
            }
            Fault::SensorDrift(s) => {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                self.glitches[s as usize].drift_per_hour = sign * rng.random_range(0.02..0.06);
            }
            Fault::StuckSensor(s) => self.glitches[s as usize].stuck_for = rng.random_range(10..60),
            Fault::Dropout(s) => self.glitches[s as usize].dropout_for = rng.random_range(3..20),
        }
    }

    fn spontaneous_faults(&mut self) {
        let p = self.fault_rate * self.dt / 3600.0;
        if p > 0.0 && self.rng.random_bool(p.min(1.0)) {
            let fault = match self.rng.random_range(0..3) {
                0 => Fault::Bearing,
                1 => Fault::Coolant,
                _ => Fault::Valve,
            };
            self.inject(fault);
        }
        if self.glitches_on && self.rng.random_bool((2e-4 * self.dt / 60.0).min(1.0)) {
            let s = Sensor::ALL[self.rng.random_range(0..Sensor::ALL.len())];
            let g = match self.rng.random_range(0..3) {
                0 => Fault::SensorDrift(s),
                1 => Fault::StuckSensor(s),
                _ => Fault::Dropout(s),
            };
            self.inject(g);
        }
    }

    /// Advances one reading.
    pub fn step(&mut self) -> Reading {
        self.seq += 1;
        self.plant_time += self.dt;
        self.spontaneous_faults();
        let dt = self.dt;
        // Temperatures: slow normalised random walks (AR(1), ~30 plant-minute memory).
        let phi = (-dt / 1800.0).exp();
        self.air_k = ar_step(
            &mut self.rng,
            self.air_k,
            physics::AIR_MEAN_K,
            physics::AIR_SD_K,
            phi,
        );
        self.process_noise = ar_step(
            &mut self.rng,
            self.process_noise,
            0.0,
            physics::PROCESS_NOISE_SD_K,
            phi,
        );
        if let Some((heat, rate)) = &mut self.coolant {
            *heat += *rate * dt;
        }
        let coolant_heat = self.coolant.map_or(0.0, |c| c.0);
        let process_k = physics::PROCESS_MEAN_K
            + physics::PROCESS_AIR_SLOPE * (self.air_k - physics::AIR_MEAN_K)
            + self.process_noise
            + coolant_heat;
        // Load: a set point with slow noise; speed follows torque as in AI4I.
        self.torque_noise = ar_step(
            &mut self.rng,
            self.torque_noise,
            0.0,
            4.0,
            (-dt / 600.0).exp(),
        );
        let torque = (self.torque_set + self.torque_noise).max(physics::TORQUE_MIN_NM);
        let rpm = physics::rpm_for(&mut self.rng, torque);
        let power = physics::power_w(torque, rpm);
        self.wear += physics::wear_per_cycle(self.product) * dt / CYCLE_SECONDS;
        // Vibration: speed, tool wear and the bearing defect.
        if let Some((amp, tau)) = &mut self.bearing {
            *amp *= (dt / *tau).exp();
        }
        let bearing = self.bearing.map_or(0.0, |b| b.0);
        let vibration = (1.6
            + 0.0008 * (rpm - 1500.0)
            + 0.004 * self.wear
            + bearing
            + gauss(&mut self.rng, 0.0, 0.12))
        .max(0.05);
        if let Some((offset, rate)) = &mut self.valve {
            *offset += *rate * dt;
        }
        let valve = self.valve.map_or(0.0, |v| v.0);
        let wobble = if valve != 0.0 {
            0.4 * valve.abs() * (self.plant_time / 97.0).sin()
        } else {
            0.0
        };
        let pressure = (6.0 + valve + wobble + gauss(&mut self.rng, 0.0, 0.08)).max(0.0);

        let failure_mode = self.failure_mode(process_k, rpm, torque, vibration, pressure);
        let p_nok = 0.004
            + 0.04 * ((self.wear - 150.0) / 100.0).max(0.0)
            + 0.03 * ((vibration - 4.5) / 4.0).max(0.0);
        let quality_ok = failure_mode.is_none() && !self.rng.random_bool(p_nok.min(1.0));

        let truth = [
            process_k - 273.15,
            vibration,
            pressure,
            rpm,
            torque,
            self.wear,
            self.air_k - 273.15,
        ];
        let observed: Vec<Option<f64>> = Sensor::ALL
            .iter()
            .map(|&s| self.observe(s, truth[s as usize]))
            .collect();
        let reading = Reading {
            seq: self.seq,
            plant_time_s: self.plant_time,
            product_type: self.product,
            temperature_c: observed[Sensor::Temperature as usize],
            ambient_temperature_c: observed[Sensor::Ambient as usize],
            vibration_mm_s: observed[Sensor::Vibration as usize],
            pressure_bar: observed[Sensor::Pressure as usize],
            spindle_rpm: observed[Sensor::Speed as usize],
            torque_nm: observed[Sensor::Torque as usize],
            power_w: Some(round2(power)),
            tool_wear_min: observed[Sensor::ToolWear as usize],
            operating_hours: round2(self.plant_time / 3600.0),
            quality_ok,
            failure: failure_mode.is_some(),
            failure_mode,
        };
        if let Some(mode) = failure_mode {
            self.repair(mode);
        } else if self.wear >= self.tool_life {
            self.change_tool();
        }
        reading
    }

    fn failure_mode(
        &mut self,
        process_k: f64,
        rpm: f64,
        torque: f64,
        vibration: f64,
        pressure: f64,
    ) -> Option<FailureMode> {
        if self.wear >= self.tool_life && self.tool_fails {
            return Some(FailureMode::Twf);
        }
        if let Some(m) = physics::deterministic_failures(
            self.product,
            self.air_k,
            process_k,
            rpm,
            torque,
            self.wear,
        )
        .next()
        {
            return Some(m);
        }
        if vibration > BEARING_FAIL_MM_S {
            return Some(FailureMode::Bearing);
        }
        if process_k - self.air_k > COOLANT_FAIL_DIFF_K {
            return Some(FailureMode::Coolant);
        }
        if !(PRESSURE_BAND.0..=PRESSURE_BAND.1).contains(&pressure) {
            return Some(FailureMode::Valve);
        }
        let rnf = physics::RNF_PER_CYCLE * self.dt / CYCLE_SECONDS;
        self.rng
            .random_bool(rnf.min(1.0))
            .then_some(FailureMode::Rnf)
    }

    fn change_tool(&mut self) {
        self.wear = 0.0;
        self.tool_life = self
            .rng
            .random_range(physics::TOOL_LIFE_MIN.0..physics::TOOL_LIFE_MIN.1);
        self.tool_fails = self.rng.random_bool(physics::TOOL_END_FAILURE_SHARE);
    }

    /// After a failure the machine is repaired: the failed part is fixed, the tool changed
    /// where the tool was at fault, and a new operating regime begins.
    fn repair(&mut self, mode: FailureMode) {
        match mode {
            FailureMode::Twf | FailureMode::Osf => self.change_tool(),
            FailureMode::Bearing => self.bearing = None,
            FailureMode::Coolant => self.coolant = None,
            FailureMode::Valve => self.valve = None,
            FailureMode::Hdf | FailureMode::Pwf | FailureMode::Rnf => {}
        }
        self.new_regime();
    }

    /// What the sensor reports for the true value: drift, stuck values, dropouts and spikes.
    fn observe(&mut self, s: Sensor, truth: f64) -> Option<f64> {
        let dt = self.dt;
        let spike = self.glitches_on && self.rng.random_bool(5e-4);
        let g = &mut self.glitches[s as usize];
        g.drift += g.drift_per_hour * dt / 3600.0;
        if g.dropout_for > 0 {
            g.dropout_for -= 1;
            return None;
        }
        let mut v = truth * (1.0 + g.drift);
        if spike && s != Sensor::ToolWear {
            v *= 1.6;
        }
        if g.stuck_for > 0 {
            g.stuck_for -= 1;
            return Some(*g.stuck_value.get_or_insert(round2(v)));
        }
        g.stuck_value = None;
        Some(round2(v))
    }
}

impl Reading {
    /// The telemetry message for this reading.
    pub fn to_telemetry(&self, id: &MachineId, ts: OffsetDateTime) -> Telemetry {
        let mut t = Telemetry::new(id.clone(), ts, self.seq);
        t.temperature_c = self.temperature_c;
        t.ambient_temperature_c = self.ambient_temperature_c;
        t.vibration_mm_s = self.vibration_mm_s;
        t.pressure_bar = self.pressure_bar;
        t.spindle_rpm = self.spindle_rpm;
        t.torque_nm = self.torque_nm;
        t.power_w = self.power_w;
        t.tool_wear_min = self.tool_wear_min;
        t.operating_hours = Some(self.operating_hours);
        t.product_type = Some(self.product_type);
        t.quality_ok = Some(self.quality_ok);
        t.failure = Some(self.failure);
        t.failure_mode = self.failure_mode;
        t
    }
}

/// A fleet of machines.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The machines, by index.
    pub machines: Vec<Machine>,
}

impl Fleet {
    /// `n` machines under `cfg`.
    pub fn new(n: usize, cfg: &SimConfig) -> Self {
        Self {
            machines: (0..n).map(|i| Machine::new(i, n, cfg)).collect(),
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
