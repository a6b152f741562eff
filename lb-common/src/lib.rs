//! Types and pure logic shared by the XDP programs (`lb-ebpf`) and the daemon
//! (`lb-userspace`).
//!
//! Everything that crosses the kernel boundary is defined here once: map keys and
//! values (`#[repr(C)]`, explicitly padded, built through typed constructors,
//! sizes pinned by tests), the verdict reasons the data plane counts, the flow
//! hash and the balancing decisions (`decision`), so userspace computes exactly
//! the backend the kernel picks.
#![no_std]

pub mod bytes;
pub mod checksum;
pub mod decision;
pub mod ecn;
pub mod floor_lb;
pub mod flow_hash;
pub mod forwarding;
pub mod fwd_floor;
pub mod gen_frame;
pub mod icmp;
pub mod ip;
pub mod mac_pair;
pub mod maps;
pub mod nat;
pub mod policy;
pub mod verdict;

pub use flow_hash::{flow_hash, source_hash, DEFAULT_HASH_SEED};
pub use forwarding::Forwarding;
pub use ip::{FamilyMismatch, FAMILY_V4, FAMILY_V6};
pub use mac_pair::MacPair;
pub use maps::*;
pub use verdict::Verdict;
