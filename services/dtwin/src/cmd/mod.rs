//! Subcommands with more to do than calling one service.

pub mod broker;
pub mod train;
pub mod up;
