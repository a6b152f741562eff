//! The xlb daemon and CLI as a library: config, Maglev, the map reconciler, the
//! runtime API, health checks and metrics. `src/main.rs` is a thin binary on top.

pub mod announce;
pub mod api_client;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod ebpf_objects;
pub mod explain;
pub mod health;
pub mod logging;
pub mod maglev;
pub mod metrics;
pub mod netdev;
pub mod reconcile;
pub mod stats;
pub mod vlan_devices;
