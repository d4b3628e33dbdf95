//! Rolling-window features of one machine's telemetry.
//!
//! The feature service runs [`MachineWindow::update`] per message and the ML pipeline runs the
//! very same function over recorded telemetry, so a model is trained on exactly the features it
//! is served (one implementation, not two).
//!
//! # Layout
//! - [`ring`]: [`ring::RollingStats`], O(1) mean / std / slope over the last N values (the
//!   default feature set).
//! - [`stats`]: [`stats::WindowStats`], count and time windows with mean, std, min, max and
//!   slope in O(1) amortised (monotonic deques for min/max), and [`stats::Ewma`] (the
//!   extended feature set).
//! - [`window`]: [`MachineWindow`], per-machine state: carry-forward of missing sensors, the
//!   rolling statistics of every sensor, and the feature vector built from them.
//! - [`profile`]: [`ProfileWindow`], the same for any machine profile (its sensors, windows,
//!   derived features and attributes).
//! - [`names`]: the ordered feature names (default and extended sets) and their hash.

pub mod names;
pub mod profile;
pub mod ring;
pub mod stats;
pub mod window;

pub use names::{feature_names, feature_set, SENSORS};
pub use profile::{profile_feature_set, ProfileFeatures, ProfileWindow};
pub use window::{row_from_message, FeatureSetKind, FeatureVector, MachineWindow, WindowConfig};
