//! Defaults and limits of the config, in one place so that the docs, the
//! example file and the checks agree.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

/// `global.instance` when not set.
pub const DEFAULT_INSTANCE: &str = "default";
/// `global.api_socket` when not set.
pub const DEFAULT_API_SOCKET: &str = "/run/xlb/xlb.sock";
/// `global.metrics_address` when not set.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9431);
/// `global.outer_ttl` when not set.
pub use lb_common::DEFAULT_OUTER_TTL;
/// `global.table_size`, `flow_table_size`, `max_vips`, `max_backends` when
/// not set: the map sizes the XDP object is compiled with.
pub use lb_common::{
    DEFAULT_FLOW_TABLE_SIZE, DEFAULT_MAX_BACKENDS, DEFAULT_MAX_VIPS, DEFAULT_TABLE_SIZE,
};
/// `announce.table` when not set.
pub const DEFAULT_ANNOUNCE_TABLE: u32 = 4242;
/// Kernel routing tables xlb may not own: unspec (0), compat (252),
/// default (253), main (254) and local (255).
pub const RESERVED_ROUTE_TABLES: [u32; 5] = [0, 252, 253, 254, 255];
/// Longest `announce.drain_on_stop`.
pub const MAX_DRAIN_ON_STOP: Duration = Duration::from_secs(600);
/// 0 would be dropped by the first router; 255 is the field's maximum.
pub const MIN_OUTER_TTL: u8 = 1;
pub const MAX_OUTER_TTL: u8 = 255;
/// `global.gue_port` when not set (Katran's GUE port).
pub const DEFAULT_GUE_PORT: u16 = lb_common::forwarding::gue::DEFAULT_PORT;
/// Most ICMP messages of one kind per second per CPU (`global.icmp_rate_limit`):
/// enough for any path-MTU or ping load, and a bound on what a flood of
/// oversized packets can make the balancer send.
pub const MAX_ICMP_RATE_LIMIT: u32 = 1_000_000;
/// A backend's weight when not set.
pub const DEFAULT_WEIGHT: u16 = 100;
pub const DEFAULT_HTTP_PATH: &str = "/";
pub const DEFAULT_EXPECTED_STATUS: u16 = 200;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;

/// Instance names are directory names: at most this many characters.
pub const MAX_INSTANCE_LEN: usize = 32;
/// Linux interface names hold at most IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;
/// Attached plus egress interfaces: the redirect map's capacity.
pub const MAX_INTERFACES: usize = lb_common::MAX_TX_PORTS as usize;
/// Smallest table: Maglev needs a prime, and 2 is the smallest.
pub const MIN_TABLE_SIZE: u32 = 2;
/// Largest table the Maglev builder accepts (a prime; 64 MiB of slots).
pub const MAX_TABLE_SIZE: u32 = crate::maglev::MAX_TABLE_SIZE;
/// Bytes of one Maglev slot in the kernel map.
pub const TABLE_SLOT_BYTES: u64 = 4;
/// Cap on `max_vips * table_size * 4`: every VIP id owns a whole table, so
/// the map is sized for `max_vips` tables up front. With the default
/// max_vips of 64 this allows tables up to 4_194_301 slots.
pub const MAX_TABLE_MEMORY: u64 = 1 << 30;
pub const MIN_FLOW_TABLE_SIZE: u32 = 1024;
pub const MAX_FLOW_TABLE_SIZE: u32 = 1 << 26;
pub const MIN_MAX_VIPS: u32 = 1;
pub const MAX_MAX_VIPS: u32 = 4096;
/// Slot 0 is reserved, so 2 is the smallest useful capacity.
pub const MIN_MAX_BACKENDS: u32 = 2;
pub const MAX_MAX_BACKENDS: u32 = 1 << 20;
/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH_LEN: usize = 107;
/// VIP names are metric labels and CLI arguments: keep them short.
pub const MAX_VIP_NAME_LEN: usize = 64;
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
pub const MIN_RISE_FALL: u32 = 1;
pub const MAX_RISE_FALL: u32 = 100;
/// `vip.udp_idle_timeout` when not set (the data plane's default).
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration =
    Duration::from_millis(lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS as u64);
/// An active flow's entry is refreshed once it is 1/8 of the timeout old, so
/// shorter timeouts would expire flows that send every few hundred ms.
pub const MIN_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// A day: the data plane holds the timeout in milliseconds in a u32.
pub const MAX_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(86_400);
pub const MIN_STATUS: u16 = 100;
pub const MAX_STATUS: u16 = 599;
