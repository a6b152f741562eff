//! Watching the drivers' XDP error counters: a frame the program sent
//! (XDP_TX, XDP_REDIRECT) can still be dropped by the driver, and then
//! xlb's own `tx`/`redirect` counts overstate what left. The daemon reads
//! the counters periodically and warns when they grow; `xlb stats` and the
//! metrics show them (`crate::netdev::driver_stats`).

use std::collections::HashMap;

use tracing::warn;

use crate::{netdev::driver_stats, stats::DriverSample};

/// The counters when the daemon started: what `xlb stats` reports as
/// accrued "since the daemon started" is measured from here, so drops that
/// a setup fixed since (before this daemon) do not read as current.
#[derive(Debug, Default)]
pub struct DriverBaseline(HashMap<(String, String), u64>);

impl DriverBaseline {
    pub fn take<'a>(interfaces: impl Iterator<Item = &'a String>) -> Self {
        Self(
            read(interfaces)
                .into_iter()
                .map(|d| ((d.interface, d.counter), d.value))
                .collect(),
        )
    }

    /// The counters now, with how much of each accrued since the baseline;
    /// an interface whose driver has no statistics has none.
    pub fn samples<'a>(&self, interfaces: impl Iterator<Item = &'a String>) -> Vec<DriverSample> {
        let mut out = read(interfaces);
        for d in &mut out {
            let base = self
                .0
                .get(&(d.interface.clone(), d.counter.clone()))
                .copied()
                .unwrap_or(0);
            d.since_start = d.value.saturating_sub(base);
        }
        out
    }
}

fn read<'a>(interfaces: impl Iterator<Item = &'a String>) -> Vec<DriverSample> {
    let mut out = Vec::new();
    for ifname in interfaces {
        for (counter, value) in driver_stats::xdp_errors(ifname).unwrap_or_default() {
            out.push(DriverSample {
                interface: ifname.clone(),
                counter,
                value,
                since_start: 0,
            });
        }
    }
    out
}

pub struct DriverWatch {
    interfaces: Vec<String>,
    last: HashMap<(String, String), u64>,
}

impl DriverWatch {
    /// Starts from the counters' current values: what happened before this
    /// daemon is not news.
    pub fn new(interfaces: Vec<String>) -> Self {
        let mut w = Self {
            interfaces,
            last: HashMap::new(),
        };
        w.poll_quietly();
        w
    }

    /// Reads the counters and warns about every one that grew.
    pub fn poll(&mut self) {
        for (ifname, counter, delta, total) in self.poll_quietly() {
            warn!(
                interface = %ifname,
                counter = %counter,
                dropped = delta,
                total,
                "the driver dropped {delta} XDP frames since the last check ({counter}): packets \
                 xlb counted as sent did not leave. On a veth, the peer needs a native XDP \
                 program (`xlb pass attach --interface PEER` in the peer's namespace, or \
                 `xlb run --veth-peer attach`); elsewhere, the transmit ring is overrun"
            );
        }
    }

    /// (interface, counter, growth, value) of the counters that grew.
    fn poll_quietly(&mut self) -> Vec<(String, String, u64, u64)> {
        let mut grew = Vec::new();
        for ifname in &self.interfaces {
            let Ok(counters) = driver_stats::xdp_errors(ifname) else {
                continue;
            };
            for (counter, value) in counters {
                let key = (ifname.clone(), counter.clone());
                let before = self.last.insert(key, value);
                if let Some(b) = before {
                    if value > b {
                        grew.push((ifname.clone(), counter, value - b, value));
                    }
                }
            }
        }
        grew
    }
}
