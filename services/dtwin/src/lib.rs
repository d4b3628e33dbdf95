//! The `dtwin` command-line front end.
//!
//! # Layout
//! - [`cli`]: the clap definitions (flags and their environment variables) and dispatch.
//! - [`cmd`]: one module per subcommand that needs more than a service call (`up`, `train`,
//!   `evaluate`, `eda`), and [`cmd::common`], what the ML subcommands share.
//! - [`monitor`]: the fleet summary `up` prints every few seconds (pure state + a subscriber).
//! - [`telemetry`]: tracing setup.
//! - [`shutdown`]: Ctrl-C / SIGTERM into a cancellation token.

pub mod cli;
pub mod cmd;
pub mod loadstats;
pub mod monitor;
pub mod shutdown;
pub mod telemetry;
