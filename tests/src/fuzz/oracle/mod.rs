//! The fuzzer's oracle: what xlb's documented behaviour allows for a frame,
//! decided independently of the data plane. Frames are parsed with
//! etherparse (never the eBPF parser), and no decision code of lb-common is
//! called; the oracle reads only the configuration the fuzzer installed
//! ([`model::Model`]).
//!
//! - [`expect`]: frame + model -> [`expect::Expectation`] (which passes,
//!   drops and encapsulations are allowed, with which verdict reasons);
//! - [`judge`]: the data plane's action and output frame against it;
//! - [`flows`]: every packet of a flow reaches the same backend;
//! - `icmp`: fragments, echo requests, ICMP errors and too-big answers.

pub mod expect;
pub mod flows;
mod icmp;
pub mod judge;
pub mod model;

pub use expect::{expect, Answer, Expectation, FlowId, Forward};
pub use flows::FlowMemory;
pub use judge::{judge, Accepted, Problem};
pub use model::{
    BackendModel, Iface, Mode, Model, NatModel, Path, PolicyModel, Tag, VerdictSet, VipModel,
};

#[cfg(test)]
mod tests;
