//! The backend-side decapsulator (`xlb_decap`) and its address sets: the
//! tunnel addresses it terminates, the balancers it accepts tunnels from,
//! the VIPs inner packets may be addressed to, and the UDP ports it takes
//! GUE on.

use std::net::IpAddr;

use aya::{
    maps::{HashMap, MapData, MapError, PerCpuArray},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_common::{decap_stat, map_names, program_names, DecapKey};

use super::{
    attach::{attach_pinned, AttachError, Attached, InstancePaths, Mode},
    bpffs_reach::{bpffs_reach, BpffsReach},
    load_program, map_err,
    map_specs::{self, MapPlan},
    netns_claim::{self, NetnsClaimError},
    typed, xdp_program, DataplaneError,
};
use crate::ebpf_objects;

pub struct Decap {
    ebpf: Ebpf,
    addrs: HashMap<MapData, DecapKey, u32>,
    sources: HashMap<MapData, DecapKey, u32>,
    vips: HashMap<MapData, DecapKey, u32>,
    gue_ports: HashMap<MapData, u16, u32>,
    stats: PerCpuArray<MapData, u64>,
}

/// Counters of the decap program, summed over CPUs (`decap_stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapStats {
    pub decapsulated: u64,
    pub passed: u64,
    pub malformed: u64,
    pub refused_source: u64,
    pub refused_inner_dst: u64,
    pub ecn_dropped: u64,
}

impl Decap {
    /// Loads and verifies `xlb_decap` (not attached).
    pub fn load() -> Result<Self, DataplaneError> {
        Self::load_pinned(None)
    }

    /// Like [`load`](Self::load), with the address and stats maps pinned under
    /// `pins` (adopted if already there), so a later run updates the same ones.
    pub fn load_pinned(pins: Option<&InstancePaths>) -> Result<Self, DataplaneError> {
        let bytes = ebpf_objects::require("decap", ebpf_objects::DECAP)?;
        let maps = MapPlan::resolve(map_specs::DECAP, &())?;
        let mut loader = EbpfLoader::new();
        let pin_dir = pins.map(InstancePaths::maps);
        maps.configure(&mut loader, pin_dir.as_deref())?;
        let mut ebpf = loader
            .load(bytes)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        if pin_dir.is_some() {
            maps.check_adopted(&ebpf)?;
        }
        let program = xdp_program(&mut ebpf, program_names::DECAP)?;
        load_program(program, program_names::DECAP)?;
        Ok(Self {
            addrs: typed(&mut ebpf, map_names::DECAP_ADDRS)?,
            sources: typed(&mut ebpf, map_names::DECAP_SOURCES)?,
            vips: typed(&mut ebpf, map_names::DECAP_VIPS)?,
            gue_ports: typed(&mut ebpf, map_names::DECAP_GUE_PORTS)?,
            stats: typed(&mut ebpf, map_names::DECAP_STATS)?,
            ebpf,
        })
    }

    pub fn program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        xdp_program(&mut self.ebpf, program_names::DECAP)
    }

    /// Accept tunnel packets whose outer destination is `addr`.
    pub fn add_address(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        insert(&mut self.addrs, map_names::DECAP_ADDRS, addr)
    }

    pub fn remove_address(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        remove(&mut self.addrs, map_names::DECAP_ADDRS, addr)
    }

    /// Accept tunnel packets whose outer source is `addr` (a balancer's
    /// `outer_source_v4`/`_v6`).
    pub fn add_allowed_source(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        insert(&mut self.sources, map_names::DECAP_SOURCES, addr)
    }

    pub fn remove_allowed_source(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        remove(&mut self.sources, map_names::DECAP_SOURCES, addr)
    }

    /// Accept tunnel packets whose inner destination is `addr`.
    pub fn add_vip(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        insert(&mut self.vips, map_names::DECAP_VIPS, addr)
    }

    pub fn remove_vip(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        remove(&mut self.vips, map_names::DECAP_VIPS, addr)
    }

    /// Decapsulate GUE (variant 1) sent to UDP port `port`.
    pub fn add_gue_port(&mut self, port: u16) -> Result<(), DataplaneError> {
        self.gue_ports
            .insert(port, 1, 0)
            .map_err(|e| map_err(map_names::DECAP_GUE_PORTS, e))
    }

    pub fn remove_gue_port(&mut self, port: u16) -> Result<(), DataplaneError> {
        match self.gue_ports.remove(&port) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(map_names::DECAP_GUE_PORTS, e)),
        }
    }

    /// The GUE ports taken, sorted.
    pub fn gue_ports(&self) -> Result<Vec<u16>, DataplaneError> {
        let mut ports = self
            .gue_ports
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| map_err(map_names::DECAP_GUE_PORTS, e))?;
        ports.sort_unstable();
        Ok(ports)
    }

    pub fn stats(&self) -> Result<DecapStats, DataplaneError> {
        let get = |slot: u32| -> Result<u64, DataplaneError> {
            let v = self
                .stats
                .get(&slot, 0)
                .map_err(|e| map_err(map_names::DECAP_STATS, e))?;
            Ok(v.iter().sum())
        };
        Ok(DecapStats {
            decapsulated: get(decap_stat::DECAPSULATED)?,
            passed: get(decap_stat::PASSED)?,
            malformed: get(decap_stat::MALFORMED)?,
            refused_source: get(decap_stat::REFUSED_SOURCE)?,
            refused_inner_dst: get(decap_stat::REFUSED_INNER_DST)?,
            ecn_dropped: get(decap_stat::ECN_DROPPED)?,
        })
    }
}

fn insert(
    set: &mut HashMap<MapData, DecapKey, u32>,
    name: &'static str,
    addr: IpAddr,
) -> Result<(), DataplaneError> {
    set.insert(DecapKey::new(addr), 1, 0)
        .map_err(|e| map_err(name, e))
}

fn remove(
    set: &mut HashMap<MapData, DecapKey, u32>,
    name: &'static str,
    addr: IpAddr,
) -> Result<(), DataplaneError> {
    match set.remove(&DecapKey::new(addr)) {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(map_err(name, e)),
    }
}

/// What a backend host decapsulates: tunnels to one of `addresses` (its own
/// addresses), sent by one of `allowed_sources` (the balancers' outer source
/// addresses), carrying a packet for one of `vips`. None may be empty.
/// IP-in-IP always; GUE to the `gue_ports` too (none: no GUE).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecapLists {
    pub addresses: Vec<IpAddr>,
    pub allowed_sources: Vec<IpAddr>,
    pub vips: Vec<IpAddr>,
    pub gue_ports: Vec<u16>,
}

impl DecapLists {
    /// Refuses an empty list and addresses that can never match a packet.
    pub fn validate(&self) -> Result<(), DecapHostError> {
        for (list, what) in [
            (&self.addresses, ListKind::Address),
            (&self.allowed_sources, ListKind::AllowedSource),
            (&self.vips, ListKind::Vip),
        ] {
            if list.is_empty() {
                return Err(DecapHostError::EmptyList { what });
            }
            for a in list {
                if let Some(reason) = unusable(*a) {
                    return Err(DecapHostError::UnusableAddress {
                        address: *a,
                        what,
                        reason,
                    });
                }
            }
        }
        if self.gue_ports.contains(&0) {
            return Err(DecapHostError::GuePortZero);
        }
        if self.gue_ports.len() > lb_common::MAX_DECAP_GUE_PORTS as usize {
            return Err(DecapHostError::TooManyGuePorts {
                count: self.gue_ports.len(),
                max: lb_common::MAX_DECAP_GUE_PORTS,
            });
        }
        Ok(())
    }
}

/// Why `a` can never be a packet's source or destination address here.
fn unusable(a: IpAddr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("it is the unspecified address")
    } else if a.is_multicast() {
        Some("it is a multicast address")
    } else if matches!(a, IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("it is the broadcast address")
    } else if matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()) {
        Some("it is an IPv4-mapped IPv6 address, which never appears in an IPv6 header here; give the IPv4 address")
    } else {
        None
    }
}

/// Which list of [`DecapLists`] (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Address,
    AllowedSource,
    Vip,
}

impl std::fmt::Display for ListKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Address => "tunnel address (--address)",
            Self::AllowedSource => "allowed outer source (--allow-source)",
            Self::Vip => "VIP (--vip)",
        })
    }
}

impl ListKind {
    /// Why the list may not be empty.
    fn why_needed(self) -> &'static str {
        match self {
            Self::Address => "xlb_decap strips tunnel packets addressed to one of this host's addresses",
            Self::AllowedSource => {
                "xlb_decap strips only tunnel packets sent by a balancer (each balancer's \
                 outer_source_v4 / outer_source_v6), so that nobody else can tunnel packets \
                 with forged inner sources past this host's firewall"
            }
            Self::Vip => "xlb_decap strips only tunnel packets whose inner destination is a VIP this host serves",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecapHostError {
    #[error("no {what} given: {}", what.why_needed())]
    EmptyList { what: ListKind },
    #[error("GUE port 0 is refused: packets are never sent to port 0")]
    GuePortZero,
    #[error("{count} GUE ports exceed the {max} xlb_decap takes")]
    TooManyGuePorts { count: usize, max: u32 },
    #[error("{what} {address} is refused: {reason}")]
    UnusableAddress {
        address: IpAddr,
        what: ListKind,
        reason: &'static str,
    },
    #[error(
        "/sys/fs/bpf here is not the bpffs the rest of the system sees (process {pid} sees \
         another): this command runs in a private mount namespace (`ip netns exec` makes one), \
         so its pins, and xlb_decap with them, would vanish when it exits. Switch only the \
         network namespace: `nsenter --net=/var/run/netns/NAME xlb decap attach ...`"
    )]
    PrivateBpffs { pid: u32 },
    #[error("cannot inspect /sys/fs/bpf")]
    InspectBpffs(#[source] std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsClaimError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Attach(#[from] AttachError),
}

/// Sets a backend host up: `xlb_decap` attached to `ifname` with a pinned link
/// (it keeps running after this process exits), decapsulating what `lists`
/// allow. Running it again in the same network namespace swaps in the current
/// program and adds the addresses to the lists; an instance attached in
/// another network namespace is refused, and so is a bpffs that would vanish
/// with this process.
pub fn attach_host(
    ifname: &str,
    lists: &DecapLists,
    mode: Mode,
    pins: &InstancePaths,
) -> Result<Attached, DecapHostError> {
    lists.validate()?;
    super::attach::ensure_bpffs()?;
    match bpffs_reach().map_err(DecapHostError::InspectBpffs)? {
        BpffsReach::Shared { .. } => {}
        BpffsReach::Private { pid } => return Err(DecapHostError::PrivateBpffs { pid }),
        BpffsReach::Unknown => tracing::warn!(
            "cannot tell whether /sys/fs/bpf is the host's bpffs (no ancestor process can be \
             inspected): if this runs in a private mount namespace, xlb_decap detaches when it exits"
        ),
    }
    netns_claim::claim(pins)?;
    let mut d = Decap::load_pinned(Some(pins))?;
    for a in &lists.addresses {
        d.add_address(*a)?;
    }
    for a in &lists.allowed_sources {
        d.add_allowed_source(*a)?;
    }
    for a in &lists.vips {
        d.add_vip(*a)?;
    }
    for p in &lists.gue_ports {
        d.add_gue_port(*p)?;
    }
    let program = d.program()?;
    Ok(attach_pinned(program, ifname, mode, &pins.link(ifname))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn lists() -> DecapLists {
        DecapLists {
            addresses: vec![ip("10.0.0.11")],
            allowed_sources: vec![ip("10.0.0.2"), ip("fd00::2")],
            vips: vec![ip("10.100.0.1")],
            gue_ports: vec![6080],
        }
    }

    #[test]
    fn gue_ports_are_optional_but_never_zero() {
        let none = DecapLists {
            gue_ports: vec![],
            ..lists()
        };
        assert!(none.validate().is_ok(), "IP-in-IP only");
        let zero = DecapLists {
            gue_ports: vec![6080, 0],
            ..lists()
        };
        assert!(matches!(zero.validate(), Err(DecapHostError::GuePortZero)));
        let many = DecapLists {
            gue_ports: (1..=17).collect(),
            ..lists()
        };
        let msg = many.validate().expect_err("17 ports").to_string();
        assert!(msg.contains("17 GUE ports exceed the 16"), "{msg}");
    }

    #[test]
    fn complete_lists_are_accepted() {
        assert!(lists().validate().is_ok());
    }

    #[test]
    fn no_allowed_source_is_refused_with_the_reason() {
        let l = DecapLists {
            allowed_sources: vec![],
            ..lists()
        };
        let err = l.validate().expect_err("no allowed source");
        assert!(
            matches!(
                err,
                DecapHostError::EmptyList {
                    what: ListKind::AllowedSource
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("--allow-source"), "{msg}");
        assert!(msg.contains("outer_source_v4"), "{msg}");
    }

    #[test]
    fn every_list_is_required() {
        for (l, what) in [
            (
                DecapLists {
                    addresses: vec![],
                    ..lists()
                },
                ListKind::Address,
            ),
            (
                DecapLists {
                    vips: vec![],
                    ..lists()
                },
                ListKind::Vip,
            ),
        ] {
            match l.validate() {
                Err(DecapHostError::EmptyList { what: w }) => assert_eq!(w, what),
                r => panic!("{what}: expected EmptyList, got {r:?}"),
            }
        }
    }

    #[test]
    fn addresses_that_never_match_are_refused() {
        for (bad, reason) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::ffff:10.0.0.2", "IPv4-mapped"),
        ] {
            let l = DecapLists {
                allowed_sources: vec![ip("10.0.0.2"), ip(bad)],
                ..lists()
            };
            let err = l.validate().expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains(bad) && msg.contains(reason), "{bad}: {msg}");
            assert!(msg.contains("--allow-source"), "{msg}");
        }
    }
}
