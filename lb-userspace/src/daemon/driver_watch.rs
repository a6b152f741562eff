//! Watching the drivers' XDP error counters: a frame the program sent
//! (XDP_TX, XDP_REDIRECT) can still be dropped by the driver, and then
//! xlb's own `tx`/`redirect` counts overstate what left. The daemon reads
//! the counters periodically and warns when they grow; `xlb stats` and the
//! metrics show them (`crate::netdev::driver_stats`).

use std::collections::HashMap;

use tracing::warn;

use crate::netdev::driver_stats;

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
