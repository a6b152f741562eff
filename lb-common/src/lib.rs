//! Types and pure logic shared by the XDP programs (`lb-ebpf`) and the daemon
//! (`lb-userspace`).
//!
//! Everything that crosses the kernel boundary is defined here once: map keys and
//! values (`#[repr(C)]`, explicitly padded, sizes pinned by tests), the verdict
//! reasons the data plane counts, and the flow hash, so userspace computes exactly
//! the backend the kernel picks.
#![no_std]

pub mod checksum;
pub mod flow_hash;
pub mod gen_frame;
pub mod maps;
pub mod verdict;

pub use flow_hash::{flow_hash, source_hash};
pub use maps::*;
pub use verdict::Verdict;
