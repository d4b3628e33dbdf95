//! test harness
pub mod contract;
pub mod fuzz;
pub mod harness;
pub mod nats;
