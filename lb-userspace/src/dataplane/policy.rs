//! Typed access to the policy maps: each VIP's policy record
//! (`XLB_POLICY`), its source prefixes (`XLB_SRC_V4`/`XLB_SRC_V6`), the
//! token-bucket state (`XLB_RATE_VIPS`, `XLB_RATE_SRCS`), the drop counters
//! (`XLB_POLICY_ST`) and flood mode's per-CPU state (`XLB_FLOOD`).

use std::net::IpAddr;

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, MapData, PerCpuArray,
    },
    Ebpf,
};
use lb_common::{
    map_names, FloodState, PolicyStats, SourceBucketKey, SourceV4, SourceV6, VipPolicy,
    SOURCE_KEY_VIP_BITS,
};

use super::{map_err, per_cpu_zeroes, typed, Dataplane, DataplaneError};

/// One source prefix of one VIP, as the tries key it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePrefix {
    pub vip_id: u32,
    pub addr: IpAddr,
    pub len: u8,
}

/// The policy maps of a loaded balancer.
pub(super) struct PolicyMaps {
    policy: Array<MapData, VipPolicy>,
    v4: LpmTrie<MapData, SourceV4, u32>,
    v6: LpmTrie<MapData, SourceV6, u32>,
    rate_vips: Array<MapData, u64>,
    rate_sources: HashMap<MapData, SourceBucketKey, u64>,
    stats: PerCpuArray<MapData, PolicyStats>,
    flood: PerCpuArray<MapData, FloodState>,
}

impl PolicyMaps {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DataplaneError> {
        Ok(Self {
            policy: typed(ebpf, map_names::POLICY)?,
            v4: typed(ebpf, map_names::SRC_V4)?,
            v6: typed(ebpf, map_names::SRC_V6)?,
            rate_vips: typed(ebpf, map_names::RATE_VIPS)?,
            rate_sources: typed(ebpf, map_names::RATE_SOURCES)?,
            stats: typed(ebpf, map_names::POLICY_STATS)?,
            flood: typed(ebpf, map_names::FLOOD)?,
        })
    }
}

fn v4_key(p: &SourcePrefix, a: [u8; 4]) -> Key<SourceV4> {
    Key::new(
        SOURCE_KEY_VIP_BITS + u32::from(p.len),
        SourceV4::new(p.vip_id, a),
    )
}

fn v6_key(p: &SourcePrefix, a: [u8; 16]) -> Key<SourceV6> {
    Key::new(
        SOURCE_KEY_VIP_BITS + u32::from(p.len),
        SourceV6::new(p.vip_id, a),
    )
}

impl Dataplane {
    /// VIP `vip_id`'s policy record.
    pub fn vip_policy(&self, vip_id: u32) -> Result<VipPolicy, DataplaneError> {
        self.policy
            .policy
            .get(&vip_id, 0)
            .map_err(|e| map_err(map_names::POLICY, e))
    }

    pub fn set_vip_policy(&mut self, vip_id: u32, p: &VipPolicy) -> Result<(), DataplaneError> {
        self.policy
            .policy
            .set(vip_id, p, 0)
            .map_err(|e| map_err(map_names::POLICY, e))
    }

    /// Adds or replaces a source prefix (`PREFIX_ALLOW` / `PREFIX_DENY`).
    pub fn set_source_prefix(
        &mut self,
        p: &SourcePrefix,
        value: u32,
    ) -> Result<(), DataplaneError> {
        match p.addr {
            IpAddr::V4(a) => self
                .policy
                .v4
                .insert(&v4_key(p, a.octets()), value, 0)
                .map_err(|e| map_err(map_names::SRC_V4, e)),
            IpAddr::V6(a) => self
                .policy
                .v6
                .insert(&v6_key(p, a.octets()), value, 0)
                .map_err(|e| map_err(map_names::SRC_V6, e)),
        }
    }

    pub fn remove_source_prefix(&mut self, p: &SourcePrefix) -> Result<(), DataplaneError> {
        match p.addr {
            IpAddr::V4(a) => self
                .policy
                .v4
                .remove(&v4_key(p, a.octets()))
                .map_err(|e| map_err(map_names::SRC_V4, e)),
            IpAddr::V6(a) => self
                .policy
                .v6
                .remove(&v6_key(p, a.octets()))
                .map_err(|e| map_err(map_names::SRC_V6, e)),
        }
    }

    /// Every source prefix of every VIP, with its value.
    pub fn source_prefixes(&self) -> Result<Vec<(SourcePrefix, u32)>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.policy.v4.iter() {
            let (k, v) = item.map_err(|e| map_err(map_names::SRC_V4, e))?;
            let data = k.data();
            out.push((
                SourcePrefix {
                    vip_id: data.vip_id(),
                    addr: IpAddr::from(data.addr()),
                    len: k.prefix_len().saturating_sub(SOURCE_KEY_VIP_BITS) as u8,
                },
                v,
            ));
        }
        for item in self.policy.v6.iter() {
            let (k, v) = item.map_err(|e| map_err(map_names::SRC_V6, e))?;
            let data = k.data();
            out.push((
                SourcePrefix {
                    vip_id: data.vip_id(),
                    addr: IpAddr::from(data.addr()),
                    len: k.prefix_len().saturating_sub(SOURCE_KEY_VIP_BITS) as u8,
                },
                v,
            ));
        }
        Ok(out)
    }

    /// The value of the longest prefix of VIP `vip_id` that holds `source`
    /// (the data plane's own lookup, run by the kernel).
    pub fn source_match(&self, vip_id: u32, source: IpAddr) -> Result<Option<u32>, DataplaneError> {
        let r = match source {
            IpAddr::V4(a) => self.policy.v4.get(
                &Key::new(SOURCE_KEY_VIP_BITS + 32, SourceV4::new(vip_id, a.octets())),
                0,
            ),
            IpAddr::V6(a) => self.policy.v6.get(
                &Key::new(SOURCE_KEY_VIP_BITS + 128, SourceV6::new(vip_id, a.octets())),
                0,
            ),
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::SRC_V4, e)),
        }
    }

    /// The GCRA time of VIP `vip_id`'s new-connection bucket (0: unused).
    pub fn vip_bucket(&self, vip_id: u32) -> Result<u64, DataplaneError> {
        self.policy
            .rate_vips
            .get(&vip_id, 0)
            .map_err(|e| map_err(map_names::RATE_VIPS, e))
    }

    /// Empties VIP `vip_id`'s bucket state (its id goes to a new VIP).
    pub fn reset_vip_bucket(&mut self, vip_id: u32) -> Result<(), DataplaneError> {
        self.policy
            .rate_vips
            .set(vip_id, 0, 0)
            .map_err(|e| map_err(map_names::RATE_VIPS, e))
    }

    /// The GCRA time of one source prefix's bucket, if it has one.
    pub fn source_bucket(&self, key: &SourceBucketKey) -> Result<Option<u64>, DataplaneError> {
        match self.policy.rate_sources.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::RATE_SOURCES, e)),
        }
    }

    /// Policy drops of VIP `vip_id`, summed over CPUs.
    pub fn policy_stats(&self, vip_id: u32) -> Result<PolicyStats, DataplaneError> {
        let per_cpu = self
            .policy
            .stats
            .get(&vip_id, 0)
            .map_err(|e| map_err(map_names::POLICY_STATS, e))?;
        Ok(per_cpu.iter().fold(PolicyStats::default(), |a, s| a + *s))
    }

    pub fn reset_policy_stats(&mut self, vip_id: u32) -> Result<(), DataplaneError> {
        let zero =
            per_cpu_zeroes::<PolicyStats>().map_err(|e| map_err(map_names::POLICY_STATS, e))?;
        self.policy
            .stats
            .set(vip_id, zero, 0)
            .map_err(|e| map_err(map_names::POLICY_STATS, e))
    }

    /// Flood mode's state on every CPU.
    pub fn flood_states(&self) -> Result<Vec<FloodState>, DataplaneError> {
        let per_cpu = self
            .policy
            .flood
            .get(&0, 0)
            .map_err(|e| map_err(map_names::FLOOD, e))?;
        Ok(per_cpu.iter().copied().collect())
    }

    /// Overwrites flood mode's state on every CPU (tests move its window).
    pub fn set_flood_states(&mut self, state: FloodState) -> Result<(), DataplaneError> {
        let n = super::possible_cpus()? as usize;
        let values = aya::maps::PerCpuValues::try_from(vec![state; n]).map_err(|io_error| {
            map_err(
                map_names::FLOOD,
                aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "nr_cpus",
                    io_error,
                }),
            )
        })?;
        self.policy
            .flood
            .set(0, values, 0)
            .map_err(|e| map_err(map_names::FLOOD, e))
    }
}
