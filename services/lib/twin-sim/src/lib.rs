//! The physics of the digital twin: simulated manufacturing machines whose readings look like
//! real equipment and fail the way it does.
//!
//! Calibrated to the AI4I 2020 data set (see `tests/calibration.rs`): air and process
//! temperature as normalised random walks, torque ~ N(40, 10), speed from torque (fitted on
//! AI4I: rpm = 1075.7 + 17135 / torque + N(0, 71)), tool wear of 5/3/2 min per cycle for H/M/L
//! products, and AI4I's five failure rules (TWF, HDF, PWF, OSF, RNF). Beyond AI4I: vibration and
//! pressure channels, bearing degradation, coolant and valve faults that develop over plant time
//! (so a model can see them coming), sensor drift, spikes, stuck values and dropouts, tool
//! changes, repairs, and NOK parts whose probability rises with wear and vibration.
//!
//! Everything is deterministic: machine `i` draws from its own ChaCha8 stream seeded by
//! `(seed, i)`, so its readings never depend on the fleet size or on how many tasks step it.
//!
//! # Layout
//! - [`physics`]: AI4I constants and failure rules, shared by both generators.
//! - [`faults`]: [`Fault`] and [`Sensor`], what can be injected, and their parsers.
//! - [`machine`]: [`Machine`], [`Fleet`], [`SimConfig`] and [`Reading`]: the live twin.
//! - [`ai4i`]: the AI4I-format generator and CSV reader/writer.
//! - [`rng`]: per-machine seeding.
//! - [`stream`]: deterministic rendering of the telemetry stream (any number of workers, same
//!   bytes) and the project's telemetry CSV.

pub mod ai4i;
pub mod faults;
pub mod machine;
pub mod physics;
pub mod rng;
pub mod stream;

pub use ai4i::{ai4i_rows, read_ai4i_csv, write_ai4i_csv, Ai4iParseError, Ai4iRow, AI4I_HEADER};
pub use dtwin_schema::{FailureMode, ProductType};
pub use faults::{Fault, FaultParseError, Sensor};
pub use machine::{Fleet, Machine, Reading, SimConfig};
pub use stream::{Clock, TELEMETRY_CSV_HEADER};
