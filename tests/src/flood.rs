//! A spoofed-packet flood into a rack: the benchmarks' live-frames
//! generator `xlb_gen` in a namespace of its own on the rack's switch,
//! sending 60-byte TCP frames (SYN or ACK) to a VIP from random spoofed
//! sources: each frame's source address is a pseudo-random one of a
//! spoofed prefix (up to a /16) and its source port cycles over 65,536
//! ports independently, so (address, port) pairs do not repeat for 2^32
//! frames, as fast as one thread makes it.
//!
//! ```text
//!   flood (xlb_gen, live frames) ── switch port (xlb_pass) ── bridge ── balancer
//! ```
//!
//! The frames go through the bridge to the balancer's MAC like a client's;
//! the balancer treats them as any other packet to the VIP.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::{
    maps::{Array, MapData},
    programs::{Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{
    gen_frame::{self, GenFrame, GEN_LEN},
    program_names,
};
use lb_userspace::ebpf_objects;

use crate::{
    bench::testrun,
    frames::{Frame, L4},
    topology::{attach_host, Host, Topology, CLIENT_MTU, IFACE},
};

/// The generator host's own address on the switch (its frames carry a
/// spoofed one).
pub const FLOOD_V4: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 90);
/// Switch port of the generator.
const PORT: &str = "xlbp-fl";
/// A down veth pair in the generator's namespace that holds `xlb_gen` in the
/// XDP dispatcher (a test run of an attached program does not wait for an
/// RCU grace period).
const HOLDER: (&str, &str) = ("xlbfh0", "xlbfh1");
/// Frames per live-frames call, and per batch.
const CALL_FRAMES: u32 = 1 << 16;
const BATCH: u32 = 64;
/// Source ports (flows) of one cycle: 2^16.
const FLOW_BITS: u8 = 16;

/// The generator, attached to a rack's switch.
pub struct Flood {
    host: Host,
    ebpf: Ebpf,
    template: Array<MapData, GenFrame>,
    balancer_mac: [u8; 6],
}

/// What one flood sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodRun {
    pub frames: u64,
    pub wall: Duration,
}

impl FloodRun {
    pub fn pps(&self) -> f64 {
        self.frames as f64 / self.wall.as_secs_f64()
    }
}

impl Flood {
    /// Attaches a generator host to `topo`'s switch.
    pub fn attach(topo: &Topology) -> Result<Self> {
        let host = attach_host(
            &topo.switch,
            &format!("{}-fl", topo.name),
            PORT,
            CLIENT_MTU,
            FLOOD_V4,
            Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 0x90),
            &[],
        );
        host.ns.ip(&format!(
            "link add {} type veth peer name {}",
            HOLDER.0, HOLDER.1
        ));
        let bytes = ebpf_objects::require("aux", ebpf_objects::AUX)?;
        let mut ebpf = EbpfLoader::new()
            .load(bytes)
            .context("loading the auxiliary XDP programs")?;
        for name in [program_names::GEN, program_names::PASS] {
            xdp(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading {name}"))?;
        }
        {
            // A veth delivers XDP_TX frames only to a peer with a native
            // XDP program: the switch port gets xlb_pass.
            let _in = topo.switch.enter();
            xdp(&mut ebpf, program_names::PASS)?
                .attach(PORT, XdpMode::Driver)
                .with_context(|| format!("attaching xlb_pass to {PORT}"))?;
        }
        {
            let _in = host.ns.enter();
            xdp(&mut ebpf, program_names::GEN)?
                .attach(HOLDER.0, XdpMode::Driver)
                .with_context(|| format!("attaching xlb_gen to {}", HOLDER.0))?;
        }
        let map = ebpf
            .take_map(gen_frame::FRAME_MAP)
            .context("the auxiliary object has no generator template map")?;
        let template = Array::try_from(map).context("the generator template map")?;
        let balancer_mac = topo.balancer.ns.mac(IFACE);
        Ok(Self {
            host,
            ebpf,
            template,
            balancer_mac,
        })
    }

    /// Floods `vip:port` with TCP frames carrying `tcp_flags` from random
    /// addresses of `spoofed` (a prefix of length 16 to 32), for
    /// `duration`, in a thread of its own (which owns the generator until
    /// the flood ends).
    pub fn start(
        mut self,
        spoofed: (Ipv4Addr, u8),
        vip: Ipv4Addr,
        port: u16,
        tcp_flags: u8,
        duration: Duration,
    ) -> Result<FloodHandle> {
        let (spoofed_src, prefix_len) = spoofed;
        let src_bits = 32u8
            .checked_sub(prefix_len)
            .filter(|bits| *bits <= gen_frame::MAX_SOURCE_BITS)
            .with_context(|| {
                format!("spoofed prefix {spoofed_src}/{prefix_len}: the generator takes /16 to /32")
            })?;
        let mut f = Frame::tcp(
            IpAddr::V4(spoofed_src),
            1024,
            IpAddr::V4(vip),
            port,
            self.balancer_mac,
        );
        f.l4 = L4::Tcp { flags: tcp_flags };
        f.src_mac = self.host.ns.mac(IFACE);
        let bytes = f.build();
        let mut frame = [0u8; GEN_LEN];
        frame[..bytes.len()].copy_from_slice(&bytes);
        let t = GenFrame::new(&frame, FLOW_BITS)
            .and_then(|t| t.with_source_bits(src_bits))
            .context("the flood's template")?;
        self.template
            .set(0, t, 0)
            .context("writing the flood's template")?;
        let ifindex = self.host.ns.ifindex(IFACE);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<(Self, FloodRun)> {
                let run = {
                    let _in = self.host.ns.enter();
                    let prog = xdp(&mut self.ebpf, program_names::GEN)?;
                    let start = Instant::now();
                    let mut frames = 0u64;
                    while start.elapsed() < duration && !stop.load(Ordering::SeqCst) {
                        testrun::run_live(prog, &frame, ifindex, CALL_FRAMES, BATCH)?;
                        frames += u64::from(CALL_FRAMES);
                    }
                    FloodRun {
                        frames,
                        wall: start.elapsed(),
                    }
                };
                Ok((self, run))
            })
        };
        Ok(FloodHandle { thread, stop })
    }
}

/// A flood in progress.
pub struct FloodHandle {
    thread: JoinHandle<Result<(Flood, FloodRun)>>,
    stop: Arc<AtomicBool>,
}

impl FloodHandle {
    /// Waits for the flood's end (its duration); gives the generator back.
    pub fn join(self) -> Result<(Flood, FloodRun)> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?
    }

    /// Ends the flood early.
    pub fn stop(self) -> Result<(Flood, FloodRun)> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p = ebpf
        .program_mut(name)
        .with_context(|| format!("the auxiliary object has no program {name}"))?;
    Ok(p.try_into()?)
}
