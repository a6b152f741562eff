//! The daemon config of every node: the same VIPs and backends, announcing
//! on, each node with its own instance, socket and outer source.

use std::{fmt::Write as _, net::Ipv4Addr};

use super::{
    backend_address, backend_api_address, node_address, socket_path, FleetOptions, ANNOUNCE_TABLE,
    BACKENDS, VIP_API, VIP_WEB, WEB_WEIGHTS,
};
use crate::topology::IFACE;

/// The config of node `i` (instance and namespace `ns`).
pub fn node_config(ns: &str, i: usize, o: &FleetOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[global]\ninstance = \"{ns}\"\ninterfaces = [\"{IFACE}\"]\nxdp_mode = \"native\"\n\
         outer_source_v4 = \"{}\"\ntable_size = 65537\nflow_table_size = 65536\nmax_vips = 8\n\
         max_backends = 64\napi_socket = \"{}\"\nmetrics_address = \"127.0.0.1:9431\"\n\n\
         [announce]\nenabled = true\ntable = {ANNOUNCE_TABLE}\ndrain_on_stop = \"{}ms\"\n",
        node_address(i),
        socket_path(ns).display(),
        o.drain_on_stop.as_millis()
    );
    s.push_str(&vips_config(o, &standard_backends()));
    s
}

/// The fleet's backends of `web` and `api`: (address, weight) each.
pub type VipBackends = [Vec<(Ipv4Addr, u16)>; 2];

/// Every node's final backend set.
pub fn standard_backends() -> VipBackends {
    [
        (0..BACKENDS)
            .map(|i| (backend_address(i), WEB_WEIGHTS[i]))
            .collect(),
        (0..BACKENDS)
            .map(|i| (backend_api_address(i), 100))
            .collect(),
    ]
}

/// The `[[vip]]` tables of `web` and `api` with `backends`.
pub fn vips_config(o: &FleetOptions, backends: &VipBackends) -> String {
    let mut s = String::new();
    let (interval, fall) = o.check;
    let interval_ms = interval.as_millis();
    for ((vip_name, vip), list) in [("web", VIP_WEB), ("api", VIP_API)].iter().zip(backends) {
        let _ = writeln!(
            s,
            "[[vip]]\nname = \"{vip_name}\"\naddress = \"{vip}\"\nport = 80\nprotocol = \"tcp\"\n\
             announce = \"when-healthy\"\n  [vip.health_check]\n  kind = \"tcp\"\n  \
             interval = \"{interval_ms}ms\"\n  timeout = \"{}ms\"\n  rise = 2\n  fall = {fall}",
            interval_ms * 2 / 3
        );
        for (a, w) in list {
            let _ = writeln!(s, "  [[vip.backend]]\n  address = \"{a}\"\n  weight = {w}");
        }
        s.push('\n');
    }
    s
}
