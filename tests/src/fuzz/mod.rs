//! `xlb-fuzz`: frames generated with knowledge of their structure, and
//! valid frames mutated at random, run through the real `xlb_balancer`
//! (BPF_PROG_TEST_RUN, one run per frame) with maps filled by the
//! reconciler; every result is checked by an oracle written independently of
//! the data plane, and the verdict counters by batch.
//!
//! - [`world`]: the namespace, routes, neighbours and VIPs; the oracle's
//!   model of them;
//! - [`generate`], [`mutate`] (with [`dice`] and [`wire`]): the frames;
//! - [`oracle`]: what each frame may become (etherparse, the installed
//!   configuration, the README's rules);
//! - [`runner`], [`report`], [`options`]: the loop, the counters, the output.

pub mod dice;
pub mod generate;
pub mod mutate;
pub mod options;
pub mod oracle;
pub mod report;
pub mod runner;
pub mod wire;
pub mod world;
