//! The auxiliary XDP programs: `xlb_pass` (for veth peers of XDP_TX
//! interfaces), the benchmark floors (`xlb_floor_tx`, the essential-work
//! `xlb_floor_lb`/`xlb_floor_lb16`), and the counting sink.

use std::path::Path;

use aya::{
    maps::{MapData, PerCpuArray},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_common::map_names;

use super::{
    attach::{attach_pinned, detach_pinned, AttachError, Attached, Mode},
    load_program, map_err, typed, xdp_program, DataplaneError,
};
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
            load_program(p, name)?;
        }
        Ok(p)
    }

    /// Map `name` of the object: the benchmark fills the essential-work
    /// floors' maps (`lb_common::floor_lb`) through it.
    pub fn map_mut(&mut self, name: &str) -> Option<&mut aya::maps::Map> {
        self.ebpf.map_mut(name)
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

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(
        "the driver of {ifname} refused native XDP ({reason}); a generic-mode program does not \
         make a veth deliver XDP_TX frames, so xlb_pass was not attached"
    )]
    NativeRefused { ifname: String, reason: String },
}

/// Attaches `xlb_pass` to `ifname` (in the calling thread's network
/// namespace) in native mode, its link pinned at `pin` so it outlives this
/// process; a link already pinned there gets the current program. Generic
/// mode would not help a veth peer, so a refused native attach is an error
/// and leaves nothing behind.
pub fn attach_pass_pinned(ifname: &str, pin: &Path) -> Result<Attached, PassError> {
    let mut aux = AuxPrograms::load()?;
    let program = aux.program(lb_common::program_names::PASS)?;
    match attach_pinned(program, ifname, Mode::Native, pin)? {
        Attached::Fallback { reason } => {
            detach_pinned(pin)?;
            Err(PassError::NativeRefused {
                ifname: ifname.to_string(),
                reason,
            })
        }
        done => Ok(done),
    }
}
