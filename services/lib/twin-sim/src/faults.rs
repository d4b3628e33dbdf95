//! What can go wrong with a machine, and how to name it on the command line.

use std::fmt;
use std::str::FromStr;

/// A sensor channel (for sensor glitches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Sensor {
    /// Process temperature.
    Temperature,
    /// Vibration velocity.
    Vibration,
    /// Pressure.
    Pressure,
    /// Spindle speed.
    Speed,
    /// Torque.
    Torque,
    /// Tool wear counter.
    ToolWear,
    /// Ambient (air) temperature.
    Ambient,
}

impl Sensor {
    /// Every sensor.
    pub const ALL: [Sensor; 7] = [
        Self::Temperature,
        Self::Vibration,
        Self::Pressure,
        Self::Speed,
        Self::Torque,
        Self::ToolWear,
        Self::Ambient,
    ];

    /// The name used in fault specs (`drift:vibration`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Temperature => "temperature",
            Self::Vibration => "vibration",
            Self::Pressure => "pressure",
            Self::Speed => "speed",
            Self::Torque => "torque",
            Self::ToolWear => "tool-wear",
            Self::Ambient => "ambient",
        }
    }
}

/// A fault that starts developing when injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Fault {
    /// Bearing degradation: vibration rises exponentially over 1-4 plant hours, then fails.
    Bearing,
    /// Coolant fault: process temperature climbs ~12 K per plant hour until it overheats.
    Coolant,
    /// Valve fault: pressure drifts away from 6 bar and oscillates until out of band.
    Valve,
    /// The current tool wears out and fails within a few cycles.
    ToolWearOut,
    /// The sensor's reading drifts slowly away from the truth.
    SensorDrift(Sensor),
    /// The sensor repeats its last value for a while.
    StuckSensor(Sensor),
    /// The sensor stops reporting for a while.
    Dropout(Sensor),
}

/// An unknown fault name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}; valid: bearing, coolant, valve, tool-wear, drift:SENSOR, stuck:SENSOR, dropout:SENSOR with SENSOR one of temperature, vibration, pressure, speed, torque, tool-wear, ambient")]
pub struct FaultParseError(pub String);

impl FromStr for Fault {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || FaultParseError(s.to_owned());
        let sensor = |name: &str| {
            Sensor::ALL
                .into_iter()
                .find(|x| x.name() == name)
                .ok_or_else(err)
        };
        match s.split_once(':') {
            None => match s {
                "bearing" => Ok(Self::Bearing),
                "coolant" => Ok(Self::Coolant),
                "valve" => Ok(Self::Valve),
                "tool-wear" => Ok(Self::ToolWearOut),
                _ => Err(err()),
            },
            Some(("drift", x)) => Ok(Self::SensorDrift(sensor(x)?)),
            Some(("stuck", x)) => Ok(Self::StuckSensor(sensor(x)?)),
            Some(("dropout", x)) => Ok(Self::Dropout(sensor(x)?)),
            Some(_) => Err(err()),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearing => f.write_str("bearing"),
            Self::Coolant => f.write_str("coolant"),
            Self::Valve => f.write_str("valve"),
            Self::ToolWearOut => f.write_str("tool-wear"),
            Self::SensorDrift(s) => write!(f, "drift:{}", s.name()),
            Self::StuckSensor(s) => write!(f, "stuck:{}", s.name()),
            Self::Dropout(s) => write!(f, "dropout:{}", s.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_choices() {
        for f in [
            Fault::Bearing,
            Fault::Coolant,
            Fault::Valve,
            Fault::ToolWearOut,
        ]
        .into_iter()
        .chain(Sensor::ALL.iter().flat_map(|&s| {
            [
                Fault::SensorDrift(s),
                Fault::StuckSensor(s),
                Fault::Dropout(s),
            ]
        })) {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
        }
        let e = "melt".parse::<Fault>().unwrap_err().to_string();
        assert!(e.contains("bearing") && e.contains("drift:SENSOR"), "{e}");
        assert!("drift:nose".parse::<Fault>().is_err());
    }
}
