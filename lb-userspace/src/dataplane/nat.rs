//! Typed access to full NAT's maps (`forwarding = "nat"`): the program that
//! does it (`xlb_nat`, reached from `xlb_balancer` by a tail call through
//! `XLB_NAT_PROG`), its sessions in both directions (`XLB_NAT_FWD`,
//! `XLB_NAT_REV`) and its counters (`XLB_NAT_STATS`). Its settings live in
//! `XLB_CONFIG` (`GlobalConfig::nat`).

use aya::{
    maps::{HashMap, MapData, PerCpuArray, ProgramArray},
    Ebpf,
};
use lb_common::{map_names, program_names, FlowKey, NatEntry, NatSession, NatStats};

use super::{load_program, map_err, typed, xdp_program, Dataplane, DataplaneError};

/// The NAT maps of a loaded balancer.
pub(super) struct NatMaps {
    forward: HashMap<MapData, FlowKey, NatSession>,
    reverse: HashMap<MapData, FlowKey, NatEntry>,
    stats: PerCpuArray<MapData, NatStats>,
    /// Kept so the program stays installed while the balancer is loaded.
    _program: ProgramArray<MapData>,
}

impl NatMaps {
    /// Loads (verifies) `xlb_nat` and installs it where `xlb_balancer`'s
    /// tail call finds it. A pinned `XLB_NAT_PROG` adopted from an earlier
    /// run gets this run's program.
    pub(super) fn load(ebpf: &mut Ebpf) -> Result<Self, DataplaneError> {
        let program = xdp_program(ebpf, program_names::NAT)?;
        load_program(program, program_names::NAT)?;
        let fd = program
            .fd()
            .map_err(|source| DataplaneError::Program {
                name: program_names::NAT,
                source: Box::new(source),
            })?
            .try_clone()
            .map_err(|source| DataplaneError::Program {
                name: program_names::NAT,
                source: Box::new(source.into()),
            })?;
        let mut prog_array: ProgramArray<MapData> = typed(ebpf, map_names::NAT_PROG)?;
        prog_array
            .set(0, &fd, 0)
            .map_err(|e| map_err(map_names::NAT_PROG, e))?;
        Ok(Self {
            forward: typed(ebpf, map_names::NAT_FWD)?,
            reverse: typed(ebpf, map_names::NAT_REV)?,
            stats: typed(ebpf, map_names::NAT_STATS)?,
            _program: prog_array,
        })
    }
}

impl Dataplane {
    /// Full NAT's counters summed over CPUs.
    pub fn nat_stats(&self) -> Result<NatStats, DataplaneError> {
        let per_cpu = self
            .nat
            .stats
            .get(&0, 0)
            .map_err(|e| map_err(map_names::NAT_STATS, e))?;
        Ok(per_cpu.iter().fold(NatStats::default(), |a, s| a + *s))
    }

    /// NAT sessions in the reverse map (walks it; LRU maps have no count).
    pub fn nat_session_count(&self) -> Result<usize, DataplaneError> {
        let mut n = 0;
        for k in self.nat.reverse.keys() {
            k.map_err(|e| map_err(map_names::NAT_REV, e))?;
            n += 1;
        }
        Ok(n)
    }

    /// The session of the client's flow `key`, if any.
    pub fn nat_session(&self, key: &FlowKey) -> Result<Option<NatSession>, DataplaneError> {
        match self.nat.forward.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::NAT_FWD, e)),
        }
    }

    /// The reverse entry of the backend's reply flow `key`, if any.
    pub fn nat_entry(&self, key: &FlowKey) -> Result<Option<NatEntry>, DataplaneError> {
        match self.nat.reverse.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::NAT_REV, e)),
        }
    }

    /// Writes a reverse entry (tests: a port taken, or a session of a given
    /// age and state).
    pub fn insert_nat_entry(&mut self, key: &FlowKey, e: &NatEntry) -> Result<(), DataplaneError> {
        self.nat
            .reverse
            .insert(key, e, 0)
            .map_err(|e| map_err(map_names::NAT_REV, e))
    }
}
