//! Harness for tests that load xlb's real XDP programs: privileged-test gating,
//! network namespaces that clean up after themselves, packet builders, and a
//! balancer fixture driven through BPF_PROG_TEST_RUN.

pub mod aux_object;
pub mod balancer_fixture;
pub mod bench;
pub mod bird;
pub mod clients;
pub mod command;
pub mod expect;
pub mod fleet;
pub mod flood;
pub mod floor_lb;
pub mod frames;
pub mod fuzz;
pub mod http;
pub mod l7;
pub mod leftovers;
pub mod netns;
pub mod privileged;
pub mod rack;
pub mod servers;
pub mod stats_json;
pub mod test_rng;
pub mod topology;
pub mod weight_shares;
pub mod xlb_process;
