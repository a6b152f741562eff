//! The auxiliary XDP programs: `xlb_pass` (for veth peers of XDP_TX
//! interfaces), the benchmark floor `xlb_floor_tx`, and the counting sink.

use aya::{
    maps::{MapData, PerCpuArray},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_common::map_names;

use super::{map_err, program_error, typed, xdp_program, DataplaneError};
use crate::ebpf_objects;

pub struct AuxPrograms {
    ebpf: Ebpf,
    sink: PerCpuArray<MapData, u64>,
}

impl AuxPrograms {
    pub fn load() -> Result<Self, DataplaneError> {
        let bytes = ebpf_objects::require("aux", ebpf_objects::AUX)?;
        let mut ebpf = EbpfLoader::new()
            .load(bytes)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        Ok(Self {
            sink: typed(&mut ebpf, map_names::SINK_COUNT)?,
            ebpf,
        })
    }

    /// One of `lb_common::program_names::{PASS, FLOOR_TX, COUNT_DROP}`,
    /// loaded (verified) on first use.
    pub fn program(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        let p = xdp_program(&mut self.ebpf, name)?;
        if p.fd().is_err() {
            p.load().map_err(|e| program_error(name, e))?;
        }
        Ok(p)
    }

    /// Packets counted (and dropped) by `xlb_count_drop`, summed over CPUs.
    pub fn sink_count(&self) -> Result<u64, DataplaneError> {
        let v = self
            .sink
            .get(&0, 0)
            .map_err(|e| map_err(map_names::SINK_COUNT, e))?;
        Ok(v.iter().sum())
    }
}
