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
