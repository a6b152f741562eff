//! The end-to-end benchmark's XDP forwarding floor `xlb_fwd_floor` (lb-ebpf's
//! `aux_programs.rs`), run through BPF_PROG_TEST_RUN (root): it writes the
//! next hop's MACs from `XLB_FWD_MACS` over the frame's, leaves every other
//! byte alone and redirects through `XLB_FWD_PORT`; without a port it drops.

use std::net::IpAddr;

use aya::{
    maps::{DevMap, MapData},
    Ebpf,
};
use lb_common::fwd_floor;
use xlb_tests::{
    aux_object,
    balancer_fixture::run_program,
    expect::{XDP_DROP, XDP_REDIRECT},
    frames::Frame,
    privileged::require_root,
};

const DST: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const SRC: [u8; 6] = [0x02, 0x66, 0x77, 0x88, 0x99, 0xaa];

fn load() -> Ebpf {
    let mut ebpf = aux_object::load(&[fwd_floor::PROGRAM]);
    aux_object::set_slot0(
        &mut ebpf,
        fwd_floor::MACS_MAP,
        fwd_floor::macs_words(DST, SRC),
    );
    ebpf
}

fn run(ebpf: &Ebpf, frame: &[u8]) -> (u32, Vec<u8>) {
    let r = run_program(aux_object::xdp(ebpf, fwd_floor::PROGRAM), frame);
    (r.action, r.out)
}

fn udp_frame() -> Vec<u8> {
    Frame::udp(
        IpAddr::from([192, 0, 2, 7]),
        40000,
        IpAddr::from([10, 100, 0, 1]),
        53,
        [0x02, 0, 0, 0, 0, 0x01],
    )
    .build()
}

#[test]
fn rewrites_the_macs_and_redirects_to_the_port() {
    if !require_root("rewrites_the_macs_and_redirects_to_the_port") {
        return;
    }
    let mut ebpf = load();
    let mut port: DevMap<&mut MapData> = DevMap::try_from(
        ebpf.map_mut(fwd_floor::PORT_MAP)
            .unwrap_or_else(|| panic!("no {}", fwd_floor::PORT_MAP)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Loopback exists in every namespace; a test run does not transmit.
    port.set(0, 1, None, 0).unwrap_or_else(|e| panic!("{e}"));
    let frame = udp_frame();
    let (action, out) = run(&ebpf, &frame);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out.len(), frame.len());
    assert_eq!(out[..6], DST);
    assert_eq!(out[6..12], SRC);
    assert_eq!(out[12..], frame[12..], "only the MACs may change");
}

#[test]
fn drops_without_a_port() {
    if !require_root("drops_without_a_port") {
        return;
    }
    let ebpf = load();
    let (action, _) = run(&ebpf, &udp_frame());
    assert_eq!(action, XDP_DROP);
}
