//! Building blocks of xlb's XDP programs. The programs themselves are the bins:
//! `balancer.rs` (the fast path, read it top to bottom), `decap.rs` (runs on
//! backends) and `aux_programs.rs` (XDP_PASS for veth peers, benchmark floors).
//!
//! The crate also builds on the host (as an empty shell) so that
//! `cargo clippy/test --workspace` type-check it; only the bpfel build is loaded.
#![no_std]

pub mod encap;
pub mod mem;
pub mod packet;
pub mod parse;
