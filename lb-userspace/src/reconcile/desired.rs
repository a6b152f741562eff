//! The desired state the reconciler installs: already validated, with health
//! applied, independent of how it was configured.

use std::{collections::BTreeSet, net::IpAddr};

use lb_common::{Forwarding, GlobalConfig, VipKey, VIP_F_FAIL_OPEN};

use super::policy::DesiredPolicy;

/// Everything the maps should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub global: GlobalConfig,
    /// Interfaces encapsulated packets may be redirected to (ifindexes).
    pub tx_ports: BTreeSet<u32>,
    pub vips: Vec<DesiredVip>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredVip {
    pub key: VipKey,
    /// For errors and logs only.
    pub name: String,
    /// `VIP_F_*` flags from the config (hashing, flow-table bypass);
    /// `VIP_F_FAIL_OPEN` is derived from the backends' health, see
    /// [`DesiredVip::entry_flags`].
    pub flags: u32,
    /// UDP connection-table entries idle longer than this expire.
    pub udp_idle_timeout_ms: u32,
    /// How packets reach the backends.
    pub forwarding: Forwarding,
    /// GUE VIPs: the outer UDP destination port (ignored otherwise).
    pub gue_port: u16,
    /// Source ranges and rate limits.
    pub policy: DesiredPolicy,
    pub backends: Vec<DesiredBackend>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredBackend {
    pub addr: IpAddr,
    /// 0 drains: no new flows, pinned flows stay.
    pub weight: u16,
    /// Failed health checks: out of the table (unless every backend failed).
    pub healthy: bool,
}

impl DesiredVip {
    /// The Maglev inputs: see [`super::table_inputs`].
    pub fn table_inputs(&self) -> Vec<(IpAddr, u16)> {
        super::table_inputs(self.backends.iter().map(|b| (b.addr, b.weight, b.healthy)))
    }

    /// Every weighted backend is unhealthy: see [`super::is_fail_open`].
    pub fn fail_open(&self) -> bool {
        super::is_fail_open(self.backends.iter().map(|b| (b.weight, b.healthy)))
    }

    /// The flags of the VIP's map entry: the configured ones, plus
    /// `VIP_F_FAIL_OPEN` while the VIP fails open.
    pub fn entry_flags(&self) -> u32 {
        let configured = self.flags & !VIP_F_FAIL_OPEN;
        if self.fail_open() {
            configured | VIP_F_FAIL_OPEN
        } else {
            configured
        }
    }
}
