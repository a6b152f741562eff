//! The backend-side decapsulator (`xlb_decap`) and its address table.

use std::net::IpAddr;

use aya::{
    maps::{HashMap, MapData, MapError, PerCpuArray},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_common::{decap_stat, map_names, program_names, DecapKey};

use super::{
    attach::{attach_pinned, AttachError, Attached, InstancePaths, Mode},
    map_err,
    map_specs::{self, MapPlan},
    program_error, typed, xdp_program, DataplaneError,
};
use crate::ebpf_objects;

pub struct Decap {
    ebpf: Ebpf,
    addrs: HashMap<MapData, DecapKey, u32>,
    stats: PerCpuArray<MapData, u64>,
}

/// Counters of the decap program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapStats {
    pub decapsulated: u64,
    pub passed: u64,
    pub malformed: u64,
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
        program
            .load()
            .map_err(|e| program_error(program_names::DECAP, e))?;
        Ok(Self {
            addrs: typed(&mut ebpf, map_names::DECAP_ADDRS)?,
            stats: typed(&mut ebpf, map_names::DECAP_STATS)?,
            ebpf,
        })
    }

    pub fn program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        xdp_program(&mut self.ebpf, program_names::DECAP)
    }

    /// Accept tunnel packets whose outer destination is `addr`.
    pub fn add_address(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        self.addrs
            .insert(DecapKey::new(addr), 1, 0)
            .map_err(|e| map_err(map_names::DECAP_ADDRS, e))
    }

    pub fn remove_address(&mut self, addr: IpAddr) -> Result<(), DataplaneError> {
        match self.addrs.remove(&DecapKey::new(addr)) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(map_names::DECAP_ADDRS, e)),
        }
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
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecapHostError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Attach(#[from] AttachError),
}

/// Sets a backend host up: `xlb_decap` attached to `ifname` with a pinned link
/// (it keeps running after this process exits), accepting tunnels to `addrs`.
/// Running it again swaps in the current program and adds the addresses.
pub fn attach_host(
    ifname: &str,
    addrs: &[IpAddr],
    mode: Mode,
    pins: &InstancePaths,
) -> Result<Attached, DecapHostError> {
    super::attach::ensure_bpffs()?;
    let mut d = Decap::load_pinned(Some(pins))?;
    for a in addrs {
        d.add_address(*a)?;
    }
    let program = d.program()?;
    Ok(attach_pinned(program, ifname, mode, &pins.link(ifname))?)
}
