//! Subcommands with more to do than calling one service.

pub mod broker;
pub mod generate;
pub mod replay;
pub mod train;
pub mod up;
