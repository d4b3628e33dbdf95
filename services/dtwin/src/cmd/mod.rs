//! Subcommands with more to do than calling one service.

pub mod alert;
pub mod anomaly;
pub mod broker;
pub mod common;
pub mod deploy;
pub mod eda;
pub mod evaluate;
pub mod generate;
pub mod healthcheck;
pub mod loadtest;
pub mod predict;
pub mod profile;
pub mod quality;
pub mod replay;
pub mod silence;
pub mod train;
pub mod up;
