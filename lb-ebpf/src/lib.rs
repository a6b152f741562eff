//! Building blocks of xlb's XDP programs. The programs themselves are the bins:
//! `balancer.rs` (the fast path, read it top to bottom), `decap.rs` (runs on
//! backends) and `aux_programs.rs` (XDP_PASS for veth peers, benchmark floors).
//!
//! The crate also builds on the host (as an empty shell) so that
//! `cargo clippy/test --workspace` type-check it; only the bpfel build is loaded.
#![no_std]
// The BPF target's `core` has no compare-and-swap on its atomic types (its
// target spec leaves it out); the intrinsic compiles to the BPF_CMPXCHG
// instruction (`policy::compare_exchange`).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(internal_features, reason = "core_intrinsics: BPF_CMPXCHG, see above")
)]

pub mod clock;
pub mod encap;
pub mod icmp;
pub mod l2_dsr;
pub mod mem;
pub mod nat;
pub mod packet;
pub mod parse;
pub mod policy;

/// The verifier rejects any program with a path that could reach a panic, so
/// this is never called; it exists because `no_std` binaries need one.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// What every XDP object (each bin of this crate) needs besides its programs:
/// the license section the kernel checks (GPL: the helpers xlb calls, such as
/// `bpf_fib_lookup`, are GPL-only), and on the host an empty `main` so that
/// `cargo clippy/test --workspace` can build the bins.
#[macro_export]
macro_rules! xdp_object {
    () => {
        #[cfg(target_arch = "bpf")]
        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 4] = *b"GPL\0";

        #[cfg(not(target_arch = "bpf"))]
        fn main() {}
    };
}
