//! The live-frames generator `xlb_gen` (lb-ebpf's `aux_programs.rs`), run
//! frame by frame through BPF_PROG_TEST_RUN (root): a template that varies
//! the source address sends frames from random addresses of its prefix,
//! each with a correct IPv4 header checksum and L4 checksum (recomputed in
//! full by etherparse); a template that does not keeps its address.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use aya::Ebpf;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lb_common::{
    gen_frame::{self, GenFrame, GEN_LEN},
    program_names,
};
use xlb_tests::{
    aux_object,
    balancer_fixture::run_program,
    expect::XDP_TX,
    frames::{Frame, L4, TCP_SYN},
    privileged::require_root,
};

const FRAMES: usize = 2_000;

/// A 60-byte TCP SYN from `src` to 10.100.0.1:80.
fn template(src: Ipv4Addr) -> [u8; GEN_LEN] {
    let mut f = Frame::tcp(
        IpAddr::V4(src),
        1024,
        IpAddr::from([10, 100, 0, 1]),
        80,
        [2, 0, 0, 0, 0, 2],
    );
    f.l4 = L4::Tcp { flags: TCP_SYN };
    let bytes = f.build();
    let mut frame = [0u8; GEN_LEN];
    frame[..bytes.len()].copy_from_slice(&bytes);
    frame
}

/// Runs the generator `FRAMES` times with template `t`; returns each
/// frame's (source address, source port), checking both checksums.
fn generate(ebpf: &mut Ebpf, t: GenFrame) -> Vec<(Ipv4Addr, u16)> {
    aux_object::set_slot0(ebpf, gen_frame::FRAME_MAP, t);
    let prog = aux_object::xdp(ebpf, program_names::GEN);
    // The input's bytes do not matter: the generator overwrites all 60.
    let junk = [0xa5u8; GEN_LEN];
    (0..FRAMES)
        .map(|i| {
            let r = run_program(prog, &junk);
            assert_eq!(r.action, XDP_TX, "frame {i}");
            let p =
                SlicedPacket::from_ethernet(&r.out).unwrap_or_else(|e| panic!("frame {i}: {e}"));
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("frame {i} is not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(
                h.header_checksum,
                h.calc_header_checksum(),
                "frame {i}: IPv4 header checksum"
            );
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                panic!("frame {i} is not TCP")
            };
            let full = tcp
                .to_header()
                .calc_checksum_ipv4_raw(h.source, h.destination, tcp.payload())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(tcp.checksum(), full, "frame {i}: TCP checksum");
            assert!(tcp.syn() && !tcp.ack(), "frame {i}: the template's flags");
            (Ipv4Addr::from(h.source), tcp.source_port())
        })
        .collect()
}

#[test]
fn a_varying_template_sends_from_random_addresses_of_its_prefix() {
    if !require_root("a_varying_template_sends_from_random_addresses_of_its_prefix") {
        return;
    }
    let mut ebpf = aux_object::load(&[program_names::GEN]);
    let base = Ipv4Addr::new(198, 18, 7, 0);
    let t = GenFrame::new(&template(base), 16)
        .and_then(|t| t.with_source_bits(8))
        .unwrap_or_else(|e| panic!("{e}"));
    let frames = generate(&mut ebpf, t);
    let sources: BTreeSet<Ipv4Addr> = frames.iter().map(|(a, _)| *a).collect();
    for a in &sources {
        assert_eq!(
            a.octets()[..3],
            [198, 18, 7],
            "{a} is outside 198.18.7.0/24"
        );
    }
    // 2,000 draws from 256 addresses leave none out but by a fluke
    // (each is missed with probability (255/256)^2000 < 0.1%).
    assert!(sources.len() >= 250, "{} distinct sources", sources.len());
    let flows: BTreeSet<(Ipv4Addr, u16)> = frames.iter().copied().collect();
    assert_eq!(flows.len(), FRAMES, "every frame is a flow of its own");

    // The same program with a template that does not vary the address.
    let fixed = GenFrame::new(&template(Ipv4Addr::new(198, 18, 0, 1)), 16)
        .unwrap_or_else(|e| panic!("{e}"));
    let frames = generate(&mut ebpf, fixed);
    assert!(frames
        .iter()
        .all(|(a, _)| *a == Ipv4Addr::new(198, 18, 0, 1)));
    let ports: BTreeSet<u16> = frames.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports.len(), FRAMES, "the ports still cycle");
}
