//! The end-to-end benchmark's three namespaces and what runs in them.
//!
//! ```text
//!  xlb-e2eb-<pid>-gen       xlb-e2eb-<pid>-lb                     xlb-e2eb-<pid>-sink
//!  xlbe-gen0 ---- veth ---- xlbe-lbin  [forwarding]  xlbe-lbout ---- veth ---- xlbe-sink0
//!  10.31.0.2/24             10.31.0.1/24             10.32.0.1/24              10.32.0.2/24
//!  xlb_gen (test runs)      xlb_pass | xlb_balancer  (10.33.0.0/24 on-link,   xlb_count_drop
//!                           | xlb_fwd_floor           the sink's MAC)
//!                           [nftables DNAT]
//! ```
//!
//! - The generator is `xlb_gen` in live-frames test runs "received" on
//!   `xlbe-gen0`: its XDP_TX puts the frame on the wire toward `xlbe-lbin`.
//!   It also sits, natively attached, on the down veth `xlbe-gh0`: that keeps
//!   it in the kernel's XDP dispatcher, so a test run with `repeat > 1` does
//!   not wait for an RCU grace period (~25 ms) at its start and end.
//! - `xlbe-lbin` always runs a native XDP program (a veth delivers XDP_TX
//!   frames only to a peer with one): `xlb_pass` for the kernel cases, the
//!   balancer for xlb, `xlb_fwd_floor` (the sink's MACs, redirect to
//!   `xlbe-lbout`) for the XDP floor. They share one bpf_link, whose program is swapped
//!   atomically, so the veth's NAPI instance (and its thread) lives through
//!   the whole run.
//! - Backends 10.33.0.1-3 are on `xlbe-lbout`'s link, with the sink's MAC
//!   as their static neighbour entry (on-link, so `l2-dsr` can reach them
//!   too): whatever the balancer namespace forwards to them ends in
//!   `xlb_count_drop`.
//! - IPv6 is off in all three namespaces (no router solicitations or MLD
//!   reports in the measurement) and every neighbour is static.
//!
//! Receive processing of a veth runs in the NAPI instance of the receiving
//! end. With threaded NAPI (`/sys/class/net/DEV/threaded`) that is a kernel
//! thread per instance, which can be pinned to a core and whose CPU time is
//! exactly the namespace's receive work: `xlbe-lbin`'s thread does everything
//! the balancer namespace does with a packet (XDP program, stack, nftables,
//! forwarding, transmission into the sink's ring); `xlbe-sink0`'s does the
//! sink's.

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr},
};

use anyhow::{bail, ensure, Context, Result};
use aya::{
    maps::{Array, DevMap, MapData, PerCpuArray},
    programs::{xdp::XdpLink, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{
    floor_lb::{self, FloorLbHop},
    fwd_floor,
    gen_frame::{self, GenFrame},
    program_names, Backend, Forwarding, VipInfo,
};
use lb_userspace::{
    dataplane::{Dataplane, LoadOptions, Sizes},
    ebpf_objects,
    reconcile::Reconciler,
};

use super::{
    cpu,
    workload::{self, desired_state, nft_ruleset, vip_key, Proto, BACKENDS, NFT_TABLE},
};
use crate::netns::{enter_by_name, unique_name, NetNs};

pub const GEN_DEV: &str = "xlbe-gen0";
pub const LB_IN: &str = "xlbe-lbin";
pub const LB_OUT: &str = "xlbe-lbout";
pub const SINK_DEV: &str = "xlbe-sink0";
/// The down veth pair that holds `xlb_gen` in the XDP dispatcher.
const GEN_HOLDER: (&str, &str) = ("xlbe-gh0", "xlbe-gh1");

pub const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 31, 0, 2);
pub const LB_IN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 31, 0, 1);
pub const LB_OUT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 32, 0, 1);
pub const SINK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 32, 0, 2);

/// Namespaces are `xlb-e2eb-<pid>-{gen,lb,sink}`.
const NS_TAG: &str = "e2eb";

/// Which program runs on `xlbe-lbin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbProgram {
    Pass,
    Balancer,
    FwdFloor,
    LbFloor,
}

/// CPU-time counters on the NAPI threads.
#[derive(Debug)]
pub struct ThreadClocks {
    pub lb: Vec<cpu::TaskClock>,
    pub sink: Vec<cpu::TaskClock>,
}

/// Where the receive work of the two veth ends runs.
#[derive(Debug)]
pub enum Napi {
    /// Threaded NAPI: task clocks on the kernel threads of `xlbe-lbin` and
    /// `xlbe-sink0`, or why perf could not count them.
    Threaded {
        clocks: Result<ThreadClocks, String>,
    },
    /// Softirq NAPI (threaded mode could not be enabled: why): everything
    /// runs on the generator's CPU and cannot be told apart per namespace.
    Softirq(String),
}

pub struct Topology {
    // Field order is drop order: the link on xlbe-lbin first, then the
    // programs (their links), then the namespaces.
    lb_link: Option<XdpLink>,
    on_lbin: LbProgram,
    nft_loaded: bool,
    pub dp: Dataplane,
    pub reconciler: Reconciler,
    aux: Ebpf,
    gen_frame: Array<MapData, GenFrame>,
    gen_seq: PerCpuArray<MapData, u32>,
    sink: PerCpuArray<MapData, u64>,
    /// `nf_conntrack_count` of the balancer namespace, opened inside it (a
    /// sysctl file answers for the namespace it was opened in).
    conntrack_count: std::fs::File,
    pub gen_ifindex: u32,
    lbout_ifindex: u32,
    /// The VIPs' forwarding mode as installed.
    forwarding: Forwarding,
    pub gen_mac: [u8; 6],
    pub lbin_mac: [u8; 6],
    pub napi: Napi,
    pub gen: NetNs,
    pub lb: NetNs,
    pub sink_ns: NetNs,
}

/// Sizes of the benchmarked balancer: the daemon's defaults.
pub fn sizes() -> Sizes {
    Sizes::default()
}

impl Topology {
    /// Builds the namespaces, loads and attaches the programs, fills the
    /// balancer's maps (VIP 10.30.0.1:80 UDP and TCP, 3 backends each) and
    /// pins both NAPI threads to `lb_cpu`, the sink's with real-time
    /// priority (it runs as soon as packets wait, so its ring never
    /// overflows). The generator gets a CPU of its own (see the module
    /// documentation of `e2e` for why the sink shares the balancer's).
    pub fn setup(lb_cpu: usize) -> Result<Self> {
        let prefix = unique_name(NS_TAG);
        let gen = NetNs::create(&format!("{prefix}-gen"));
        let lb = NetNs::create(&format!("{prefix}-lb"));
        let sink_ns = NetNs::create(&format!("{prefix}-sink"));
        for ns in [&gen, &lb, &sink_ns] {
            ns.sysctl("net.ipv6.conf.all.disable_ipv6=1");
            ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
        }
        // One queue per veth: one NAPI instance (one thread) per receiver.
        let q = "numtxqueues 1 numrxqueues 1";
        gen.ip(&format!(
            "link add {GEN_DEV} {q} type veth peer name {LB_IN} {q} netns {}",
            lb.name()
        ));
        lb.ip(&format!(
            "link add {LB_OUT} {q} type veth peer name {SINK_DEV} {q} netns {}",
            sink_ns.name()
        ));
        gen.ip(&format!(
            "link add {} type veth peer name {}",
            GEN_HOLDER.0, GEN_HOLDER.1
        ));
        gen.ip(&format!("addr add {GEN_ADDR}/24 dev {GEN_DEV}"));
        lb.ip(&format!("addr add {LB_IN_ADDR}/24 dev {LB_IN}"));
        lb.ip(&format!("addr add {LB_OUT_ADDR}/24 dev {LB_OUT}"));
        sink_ns.ip(&format!("addr add {SINK_ADDR}/24 dev {SINK_DEV}"));
        for (ns, dev) in [
            (&gen, GEN_DEV),
            (&lb, LB_IN),
            (&lb, LB_OUT),
            (&sink_ns, SINK_DEV),
        ] {
            ns.ip(&format!("link set {dev} up"));
        }
        lb.sysctl("net.ipv4.conf.all.forwarding=1");
        lb.sysctl("net.ipv4.conf.all.rp_filter=0");
        lb.sysctl("net.ipv4.conf.default.rp_filter=0");
        let gen_mac = gen.mac(GEN_DEV);
        let lbin_mac = lb.mac(LB_IN);
        let sink_mac = sink_ns.mac(SINK_DEV);
        lb.ip(&format!("route add 10.33.0.0/24 dev {LB_OUT}"));
        for b in BACKENDS {
            lb.ip(&format!(
                "neigh replace {b} lladdr {} dev {LB_OUT} nud permanent",
                fmt_mac(sink_mac)
            ));
        }
        lb.ip(&format!(
            "neigh replace {SINK_ADDR} lladdr {} dev {LB_OUT} nud permanent",
            fmt_mac(sink_mac)
        ));
        lb.ip(&format!(
            "neigh replace {GEN_ADDR} lladdr {} dev {LB_IN} nud permanent",
            fmt_mac(gen_mac)
        ));
        gen.ip(&format!(
            "neigh replace {LB_IN_ADDR} lladdr {} dev {GEN_DEV} nud permanent",
            fmt_mac(lbin_mac)
        ));
        gen.ip(&format!("route add 10.30.0.0/24 via {LB_IN_ADDR}"));
        gen.ip(&format!("route add 10.33.0.0/24 via {LB_IN_ADDR}"));
        let gen_ifindex = gen.ifindex(GEN_DEV);
        let lbout_ifindex = lb.ifindex(LB_OUT);

        // The auxiliary object, our own instance: its generator maps are not
        // exposed by lb_userspace's AuxPrograms.
        let aux_bytes = ebpf_objects::require("aux", ebpf_objects::AUX)?;
        let mut aux = EbpfLoader::new()
            // The floor's connection table as large as the balancer's.
            .map_max_entries(floor_lb::E2E_FLOWS_MAP, sizes().flow_table_size)
            .load(aux_bytes)
            .context("loading the auxiliary XDP programs")?;
        for name in [
            program_names::GEN,
            program_names::PASS,
            program_names::COUNT_DROP,
            fwd_floor::PROGRAM,
            floor_lb::PROGRAM_E2E,
        ] {
            xdp_mut(&mut aux, name)?
                .load()
                .with_context(|| format!("loading {name}"))?;
        }
        let gen_frame = take_map(&mut aux, gen_frame::FRAME_MAP)?;
        let gen_seq = take_map(&mut aux, gen_frame::SEQ_MAP)?;
        let sink = take_map(&mut aux, lb_common::map_names::SINK_COUNT)?;
        let mut dp = Dataplane::load(&LoadOptions {
            sizes: sizes(),
            ..Default::default()
        })
        .context("loading the balancer (xlb_balancer)")?;

        {
            let _in = enter_by_name(sink_ns.name());
            xdp_mut(&mut aux, program_names::COUNT_DROP)?
                .attach(SINK_DEV, XdpMode::Driver)
                .with_context(|| format!("attaching xlb_count_drop to {SINK_DEV} (native)"))?;
        }
        {
            let _in = enter_by_name(gen.name());
            xdp_mut(&mut aux, program_names::GEN)?
                .attach(GEN_HOLDER.0, XdpMode::Driver)
                .with_context(|| {
                    format!(
                        "attaching xlb_gen to {} (dispatcher holder, native)",
                        GEN_HOLDER.0
                    )
                })?;
        }
        let mut reconciler = Reconciler::new(sizes());
        let lb_link = {
            // The devmap resolves tx_ports' ifindexes in the caller's namespace.
            let _in = enter_by_name(lb.name());
            let plan = reconciler
                .plan(&desired_state(lbout_ifindex, Forwarding::Ipip))
                .context("planning the e2e VIPs")?;
            reconciler
                .apply(plan, &mut dp)
                .context("writing the e2e VIPs into the balancer's maps")?;
            let pass = xdp_mut(&mut aux, program_names::PASS)?;
            let id = pass
                .attach(LB_IN, XdpMode::Driver)
                .with_context(|| format!("attaching xlb_pass to {LB_IN} (native)"))?;
            pass.take_link(id)?
        };
        {
            // The devmap resolves the ifindex in the caller's namespace.
            let _in = enter_by_name(lb.name());
            set_fwd_floor(&mut aux, sink_mac, lb.mac(LB_OUT), lbout_ifindex)?;
        }
        set_lb_floor(&mut aux, sink_mac, lb.mac(LB_OUT))?;
        let conntrack_count = {
            let _in = enter_by_name(lb.name());
            std::fs::File::open(CONNTRACK_COUNT)
                .with_context(|| format!("opening {CONNTRACK_COUNT}"))?
        };

        let napi = match enable_threaded(&lb, LB_IN).and_then(|lb_threads| {
            let sink_threads = enable_threaded(&sink_ns, SINK_DEV)?;
            for &t in &lb_threads {
                cpu::pin_task(t, lb_cpu)?;
            }
            for &t in &sink_threads {
                cpu::pin_task(t, lb_cpu)?;
                cpu::set_fifo(t, SINK_FIFO_PRIORITY)?;
            }
            let open = |tids: &[i32]| -> Result<Vec<cpu::TaskClock>> {
                tids.iter().map(|&t| cpu::TaskClock::open(t)).collect()
            };
            let clocks = open(&lb_threads)
                .and_then(|lb| {
                    Ok(ThreadClocks {
                        lb,
                        sink: open(&sink_threads)?,
                    })
                })
                .map_err(|e| format!("{e:#}"));
            Ok(Napi::Threaded { clocks })
        }) {
            Ok(n) => n,
            Err(e) => {
                // Back to softirq NAPI everywhere (best effort).
                for (ns, dev) in [(&lb, LB_IN), (&sink_ns, SINK_DEV)] {
                    let off = format!("echo 0 > /sys/class/net/{dev}/threaded");
                    let _ = ns.try_exec("sh", &["-c", &off]);
                }
                Napi::Softirq(format!("{e:#}"))
            }
        };

        Ok(Self {
            lb_link: Some(lb_link),
            on_lbin: LbProgram::Pass,
            nft_loaded: false,
            dp,
            reconciler,
            aux,
            gen_frame,
            gen_seq,
            sink,
            conntrack_count,
            gen_ifindex,
            lbout_ifindex,
            forwarding: Forwarding::Ipip,
            gen_mac,
            lbin_mac,
            napi,
            gen,
            lb,
            sink_ns,
        })
    }

    /// Switches both VIPs to `forwarding` (through the reconciler, as the
    /// daemon does: each VIP entry is rewritten in place).
    pub fn set_forwarding(&mut self, forwarding: Forwarding) -> Result<()> {
        if self.forwarding == forwarding {
            return Ok(());
        }
        let _in = enter_by_name(self.lb.name());
        let plan = self
            .reconciler
            .plan(&desired_state(self.lbout_ifindex, forwarding))
            .with_context(|| format!("planning forwarding = {}", forwarding.as_str()))?;
        self.reconciler
            .apply(plan, &mut self.dp)
            .with_context(|| format!("switching the e2e VIPs to {}", forwarding.as_str()))?;
        self.forwarding = forwarding;
        Ok(())
    }

    /// Swaps the program on `xlbe-lbin` (atomically, keeping the link).
    pub fn set_lb_program(&mut self, want: LbProgram) -> Result<()> {
        if self.on_lbin == want {
            return Ok(());
        }
        let link = self.lb_link.take().context("xlbe-lbin lost its link")?;
        let prog = match want {
            LbProgram::Pass => xdp_mut(&mut self.aux, program_names::PASS)?,
            LbProgram::Balancer => self.dp.program()?,
            LbProgram::FwdFloor => xdp_mut(&mut self.aux, fwd_floor::PROGRAM)?,
            LbProgram::LbFloor => xdp_mut(&mut self.aux, floor_lb::PROGRAM_E2E)?,
        };
        let id = prog
            .attach_to_link(link)
            .with_context(|| format!("swapping {want:?} onto {LB_IN}"))?;
        self.lb_link = Some(prog.take_link(id)?);
        self.on_lbin = want;
        Ok(())
    }

    /// Installs (or removes) the nftables DNAT load balancer in the balancer
    /// namespace. Conntrack's checksum verification is turned off there:
    /// frames from a veth carry no checksum state (CHECKSUM_NONE), while a
    /// real NIC verifies receive checksums in hardware.
    pub fn set_nftables(&mut self, on: bool) -> Result<()> {
        if on == self.nft_loaded {
            return Ok(());
        }
        if on {
            let path = std::env::temp_dir().join(format!("xlb-e2e-{}.nft", std::process::id()));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(nft_ruleset().as_bytes()))
                .with_context(|| format!("writing {}", path.display()))?;
            let r = self.lb_cmd("nft", &["-f", &path.to_string_lossy()]);
            let _ = std::fs::remove_file(&path);
            r.context("loading the nftables DNAT rules")?;
            self.lb_cmd("sysctl", &["-qw", "net.netfilter.nf_conntrack_checksum=0"])?;
        } else {
            self.lb_cmd("nft", &["delete", "table", "ip", NFT_TABLE])?;
        }
        self.nft_loaded = on;
        Ok(())
    }

    /// Runs a command inside the balancer namespace.
    pub fn lb_cmd(&self, program: &str, args: &[&str]) -> Result<String> {
        Ok(self.lb.try_exec(program, args)?)
    }

    /// Writes the generator's template: `proto` frames to `dst`:80 from
    /// 10.31.0.2, source ports `SPORT_BASE ..+ flows` (a power of two).
    pub fn set_frame(&mut self, proto: Proto, dst: Ipv4Addr, flows: u32) -> Result<GenFrame> {
        let template = workload::template(proto, dst, self.gen_mac, self.lbin_mac, flows)?;
        self.gen_frame
            .set(0, template, 0)
            .context("writing the generator's template")?;
        Ok(template)
    }

    /// The generator program (for test runs on `xlbe-gen0`).
    pub fn generator(&self) -> Result<&Xdp> {
        let p = self
            .aux
            .program(program_names::GEN)
            .context("the auxiliary object has no xlb_gen")?;
        Ok(p.try_into()?)
    }

    /// Frames the generator has built, over all CPUs.
    pub fn generated(&self) -> Result<u64> {
        Ok(self
            .generated_per_cpu()?
            .iter()
            .map(|&n| u64::from(n))
            .sum())
    }

    /// The generator's frame counter of every CPU.
    pub fn generated_per_cpu(&self) -> Result<Vec<u32>> {
        let v = self.gen_seq.get(&0, 0).context("reading XLB_GEN_SEQ")?;
        Ok(v.iter().copied().collect())
    }

    /// Connections conntrack holds in the balancer namespace.
    pub fn conntrack_entries(&self) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 32];
        let n = self
            .conntrack_count
            .read_at(&mut buf, 0)
            .with_context(|| format!("reading {CONNTRACK_COUNT}"))?;
        let text = String::from_utf8_lossy(&buf[..n]);
        text.trim()
            .parse()
            .with_context(|| format!("{CONNTRACK_COUNT}: {text:?}"))
    }

    /// Whether GRO is on on `xlbe-lbin` (off by default on a veth), if
    /// ethtool can tell.
    pub fn lbin_gro(&self) -> Option<bool> {
        let out = self.lb_cmd("ethtool", &["-k", LB_IN]).ok()?;
        out.lines().find_map(|l| {
            let v = l.trim().strip_prefix("generic-receive-offload:")?;
            Some(v.trim().starts_with("on"))
        })
    }

    /// What `xlbe-lbout` could not hand to the sink (its ring was full):
    /// dropped skbs plus failed XDP transmissions. Runs two commands, so it
    /// is read outside the measurement window.
    pub fn lost_at_sink(&self) -> Result<u64> {
        let link = self.lb_cmd("ip", &["-s", "-j", "link", "show", "dev", LB_OUT])?;
        let v: serde_json::Value =
            serde_json::from_str(&link).context("parsing `ip -s -j link` output")?;
        let dropped = v[0]["stats64"]["tx"]["dropped"]
            .as_u64()
            .context("no stats64.tx.dropped in `ip -s -j link` output")?;
        let stats = self.lb_cmd("ethtool", &["-S", LB_OUT])?;
        let xmit_errors: u64 = stats
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter(|(k, _)| k.ends_with("xdp_xmit_errors"))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum();
        Ok(dropped + xmit_errors)
    }

    /// Packets the sink has counted, over all CPUs.
    pub fn sink_count(&self) -> Result<u64> {
        let v = self.sink.get(&0, 0).context("reading XLB_SINK_COUNT")?;
        Ok(v.iter().sum())
    }

    /// The balancer's backend id of each backend of the `proto` VIP.
    pub fn backend_ids(&self, proto: Proto) -> Vec<u32> {
        let key = vip_key(proto);
        BACKENDS
            .iter()
            .filter_map(|b| self.reconciler.backend_id(&key, IpAddr::V4(*b)))
            .collect()
    }
}

const CONNTRACK_COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

/// Priority of the sink's NAPI thread: it shares the balancer namespace's CPU
/// and must run as soon as packets wait, or its ring (256 entries) overflows.
const SINK_FIFO_PRIORITY: i32 = 10;

/// Turns on threaded NAPI for `dev` (which must have a native XDP program:
/// a veth has no NAPI instance otherwise) and returns the new threads' pids.
fn enable_threaded(ns: &NetNs, dev: &str) -> Result<Vec<i32>> {
    let prefix: String = format!("napi/{dev}-").chars().take(15).collect();
    let before = cpu::tasks_named(&prefix);
    ns.try_exec(
        "sh",
        &["-c", &format!("echo 1 > /sys/class/net/{dev}/threaded")],
    )
    .with_context(|| format!("enabling threaded NAPI on {dev}"))?;
    let after = cpu::tasks_named(&prefix);
    let new: Vec<i32> = after.difference(&before).copied().collect();
    if new.is_empty() {
        bail!("threaded NAPI on {dev}: no new {prefix}* kernel thread appeared");
    }
    Ok(new)
}

/// `xlb_fwd_floor`'s next hop: the sink's MAC from `xlbe-lbout`'s, out of
/// `xlbe-lbout` (whose ifindex is resolved in the calling thread's namespace).
fn set_fwd_floor(aux: &mut Ebpf, dst: [u8; 6], src: [u8; 6], egress: u32) -> Result<()> {
    let name = fwd_floor::MACS_MAP;
    let mut m: Array<&mut MapData, [u64; 2]> = aux
        .map_mut(name)
        .with_context(|| format!("the auxiliary object has no map {name}"))?
        .try_into()?;
    m.set(0, fwd_floor::macs_words(dst, src), 0)
        .with_context(|| format!("filling {name}"))?;
    let name = fwd_floor::PORT_MAP;
    let mut port: DevMap<&mut MapData> = aux
        .map_mut(name)
        .with_context(|| format!("the auxiliary object has no map {name}"))?
        .try_into()?;
    port.set(0, egress, None, 0)
        .with_context(|| format!("putting {LB_OUT} into {name}"))?;
    Ok(())
}

/// Fills `xlb_floor_e2e`'s maps: the backends, their IP-in-IP VIP and the
/// hop (outer source `xlbe-lbout`'s address, the sink's MAC). Its egress
/// port is `xlb_fwd_floor`'s (`set_fwd_floor`); its connection table fills
/// from the packets, as the balancer's does.
fn set_lb_floor(aux: &mut Ebpf, dst: [u8; 6], src: [u8; 6]) -> Result<()> {
    fn map<'a>(aux: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
        aux.map_mut(name)
            .with_context(|| format!("the auxiliary object has no map {name}"))
    }
    const VIP_ID: u32 = 1;
    ensure!(
        BACKENDS.len() == floor_lb::FLOOR_E2E_BACKENDS as usize,
        "xlb_floor_e2e spreads flows over {} backends",
        floor_lb::FLOOR_E2E_BACKENDS
    );
    let mut backends: Array<&mut MapData, Backend> =
        map(aux, floor_lb::BACKENDS_MAP)?.try_into()?;
    for (i, b) in BACKENDS.iter().enumerate() {
        backends
            .set(
                i as u32 + 1,
                Backend::new(IpAddr::V4(*b), VIP_ID, 100, true),
                0,
            )
            .with_context(|| format!("filling {}", floor_lb::BACKENDS_MAP))?;
    }
    let mut vips: Array<&mut MapData, VipInfo> = map(aux, floor_lb::VIPARR_MAP)?.try_into()?;
    vips.set(VIP_ID, VipInfo::new(VIP_ID, 0, 0, 0), 0)
        .with_context(|| format!("filling {}", floor_lb::VIPARR_MAP))?;
    let mut hop: Array<&mut MapData, FloorLbHop> = map(aux, floor_lb::HOP_MAP)?.try_into()?;
    hop.set(0, FloorLbHop::new(LB_OUT_ADDR, dst, src), 0)
        .with_context(|| format!("filling {}", floor_lb::HOP_MAP))?;
    Ok(())
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p = ebpf
        .program_mut(name)
        .with_context(|| format!("the auxiliary object has no program {name}"))?;
    Ok(p.try_into()?)
}

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf
        .take_map(name)
        .with_context(|| format!("the auxiliary object has no map {name}"))?;
    T::try_from(m).with_context(|| format!("map {name}"))
}

fn fmt_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
