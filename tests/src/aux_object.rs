//! The auxiliary XDP object (`lb-ebpf/src/aux_programs.rs`: generator,
//! floors, sink) loaded for tests that run its programs one frame at a time.

use aya::{
    maps::{Array, MapData},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_userspace::ebpf_objects;

/// The auxiliary object with `programs` loaded (verified). Panics, naming
/// what failed: for tests.
pub fn load(programs: &[&str]) -> Ebpf {
    let bytes = ebpf_objects::require("aux", ebpf_objects::AUX).unwrap_or_else(|e| panic!("{e}"));
    let mut ebpf = EbpfLoader::new()
        .load(bytes)
        .unwrap_or_else(|e| panic!("loading the auxiliary programs: {e}"));
    for name in programs {
        xdp_mut(&mut ebpf, name)
            .load()
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    }
    ebpf
}

/// Program `name` of `ebpf`.
pub fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> &'a Xdp {
    ebpf.program(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .try_into()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .try_into()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Writes `value` into slot 0 of the one-slot array map `name`.
pub fn set_slot0<T: aya::Pod>(ebpf: &mut Ebpf, name: &str, value: T) {
    let mut map: Array<&mut MapData, T> =
        Array::try_from(ebpf.map_mut(name).unwrap_or_else(|| panic!("no {name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    map.set(0, value, 0)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}
