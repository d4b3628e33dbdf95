//! Subcommands with more to do than calling one service.

pub mod broker;
pub mod deploy;
pub mod generate;
pub mod loadtest;
pub mod predict;
pub mod replay;
pub mod train;
pub mod up;
