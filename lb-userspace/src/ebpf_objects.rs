//! The XDP objects built from `lb-ebpf` by build.rs, embedded in the binary so
//! `xlb` is a single file to deploy.

use thiserror::Error;

/// The balancer (`xlb_balancer`) and its maps.
pub static BALANCER: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xlb-balancer"));
/// The backend-side decapsulator (`xlb_decap`).
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xlb-decap"));
/// `xlb_pass`, the benchmark floors and the counting sink.
pub static AUX: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xlb-aux"));

#[derive(Debug, Error)]
#[error("the {name} eBPF object is empty: this binary was built with AYA_BUILD_SKIP set; rebuild without it (after `cargo xtask setup`)")]
pub struct MissingObject {
    pub name: &'static str,
}

/// `bytes` if the object was really built.
pub fn require(name: &'static str, bytes: &'static [u8]) -> Result<&'static [u8], MissingObject> {
    if bytes.is_empty() {
        Err(MissingObject { name })
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instructions of `program`'s entry function in the object `bytes`
    /// (named `object`), not counting the BPF functions it calls.
    fn entry_instructions(object: &'static str, bytes: &'static [u8], program: &str) -> usize {
        let bytes = require(object, bytes).expect("the eBPF object is built");
        let obj = aya_obj::Object::parse(bytes).expect("the eBPF object parses");
        let prog = &obj.programs[program];
        obj.functions[&(prog.section_index, prog.address)]
            .instructions
            .len()
    }

    /// The per-packet programs' bodies are inlined into the entry aya's
    /// `#[xdp]` wraps them in. Left to the compiler, `xlb_balancer`'s body
    /// stayed a BPF function of its own, called by a stub of a few
    /// instructions: every packet paid a BPF-to-BPF call and return (a
    /// return thunk on hosts with the SRSO mitigation), ~10 ns.
    #[test]
    fn each_program_entry_is_its_body_not_a_stub() {
        for (object, bytes, program) in [
            ("balancer", BALANCER, "xlb_balancer"),
            ("balancer", BALANCER, "xlb_nat"),
            ("decap", DECAP, "xlb_decap"),
        ] {
            let n = entry_instructions(object, bytes, program);
            assert!(
                n >= 100,
                "{program}'s entry is {n} instructions: a stub calling its body"
            );
        }
    }
}
