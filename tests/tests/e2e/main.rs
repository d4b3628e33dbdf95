//! Workspace-level end-to-end, interop, contract and fuzz tests, one binary (one link instead
//! of one per file); each module keeps its own setup, and every test starts what it needs on
//! free ports (see `dtwin_tests::harness`).

mod cmapss;
mod contract_samples;
mod extended_features;
mod gateway_v2;
mod mosquitto_acl;
mod nats_cluster;
mod nats_failover;
mod observability;
mod offline_vs_streaming;
mod pipeline_e2e;
mod profiles;
mod restart;
mod scale_out;
mod shared_subscriptions;
mod sparkplug;
mod sparkplug_draft;
mod sparkplug_interop;
mod sparkplug_twin;
