//! The ML pipeline's data side.
//!
//! Training data comes from the twin (simulated in memory or read from a telemetry CSV) and
//! goes through [`dtwin_windows::MachineWindow`], the very code the feature service runs, so
//! the model sees in training exactly what it is served. AI4I 2020 is read as a table of
//! independent cycles. Everything here is pure: text and values in, values out.
//!
//! # Layout
//! - [`load`]: CSV text → telemetry rows or AI4I rows (format told from the header).
//! - [`dataset`]: [`TwinDataSpec`] / telemetry → [`Dataset`]: featurise, label ahead.
//! - [`plant`]: a plant's CSV export (and failure log) through a machine profile → [`Dataset`].
//! - [`tabular`]: AI4I rows → features (with the physical rules) and floor rules.
//! - [`events`]: the event-level view (alerts, caught failures, lead time, false alarms).
//! - [`evaluate`]: metrics, thresholds for targets, cross-validation by machine and time,
//!   the [`evaluate::EvalReport`] a model card is made of.
//! - [`modelcard`]: the model card as JSON and HTML, and its charts.
//! - [`eda`]: exploratory statistics of a data file (summaries, missing values, class balance,
//!   histograms and box plots by class, correlation, machines leading into a failure).
//! - [`edareport`]: the EDA report as HTML with SVG charts.
//! - [`plots`]: the SVG charts (plotters).
//! - [`train`]: split, fit, pick the threshold, evaluate, build the artifact.
//! - [`anomaly`]: anomaly detection without labels: the Isolation Forest on healthy readings,
//!   its threshold for a false-alarm rate on held-out machines, its evaluation and card.
//! - [`quality`]: the quality (NOK) classifier's label on a plant's export: the NOK column.
//! - [`rul`]: remaining useful life on a plant's export: capped targets, the forest
//!   regressor, scoring each machine's last reading against a truth file, its card.

pub mod anomaly;
pub mod dataset;
pub mod eda;
pub mod edareport;
pub mod evaluate;
pub mod events;
pub mod load;
pub mod modelcard;
pub mod plant;
pub mod plots;
pub mod quality;
pub mod rul;
pub mod tabular;
pub mod train;

#[cfg(test)]
mod test_support;

pub use dataset::{Dataset, LabelModes, LabelSpec, TwinDataSpec};
pub use evaluate::{evaluate, EvalData, EvalOptions, EvalReport, ThresholdTarget};
pub use train::{train_on, train_tabular, train_twin_model, TrainError, TrainReport, TrainSpec};
