//! The `dtwin` CLI's integration tests, one binary (one link instead of one per file; each
//! module was a test binary of its own and keeps its own setup).

mod alert_actions;
mod alert_delivery;
mod alert_scale_out;
mod broker_security;
mod common;
mod compose;
mod compose_run;
mod config_reference;
mod deploy;
mod evaluate_eda;
mod generate_replay;
mod healthcheck;
mod kinds;
mod loadtest;
mod mqtt5;
mod plant;
mod plant_live;
mod predict_recipe;
mod profile_init;
mod rul;
mod secrets;
mod up_config;
mod up_errors;
mod up_gateway;
