//! `xlb-bench`: per-packet cost and live-frames throughput of xlb's XDP data
//! plane, end-to-end throughput against nftables and plain forwarding, and
//! control-plane costs. Needs root. See `xlb_tests::bench` for the method, and
//! `--help`.

use std::{process::ExitCode, time::Instant};

use anyhow::{bail, Context, Result};
use xlb_tests::bench::{
    control, dataplane_table, e2e,
    env::{last_allowed_cpu, pin_to_cpu, BenchEnv, SIZES},
    live,
    machine::Machine,
    options::{Command, USAGE},
    per_packet, plot, required_keys, scale, scenarios, Options, Part, Report,
};

/// Bumped when a key of the JSON report changes meaning or disappears.
const REPORT_SCHEMA: u32 = 1;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xlb-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let opts = match Options::parse(std::env::args().skip(1))? {
        Command::Help => {
            print!("{USAGE}");
            return Ok(());
        }
        Command::Plot { report, dir } => {
            let report = Report::read(&report)?;
            for p in plot::write(&report, &dir)? {
                println!("plot: {}", p.display());
            }
            return Ok(());
        }
        Command::Run(o) => o,
    };
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "xlb-bench must run as root: it loads BPF programs and creates a network namespace \
             (try `sudo -E cargo run --release -p xlb-tests --bin xlb-bench`)"
        );
    }
    let started = Instant::now();
    let machine = Machine::detect();
    let mut report = Report::new();
    report.insert("machine", machine.to_json());

    // One core for every measurement: the last one this process may use (the
    // first tends to take more interrupts). e2e also uses another one.
    let cpu = last_allowed_cpu()?;
    let e2e_cpus = e2e::Cpus::pick(&e2e::cpu::allowed_cpus()?, cpu);
    pin_to_cpu(cpu)?;
    let warmup = per_packet::warmup_calls(opts.calls);
    record_config(&mut report, &opts, cpu, warmup);

    let mut pp_results = None;
    if opts.runs(Part::PerPacket) || opts.runs(Part::Live) {
        pp_results = run_dataplane(&opts, &mut report, cpu, warmup)?;
    }
    let mut scale_results = None;
    if opts.runs(Part::Scale) {
        let t = Instant::now();
        let r = scale::run(opts.calls, opts.quick, cpu);
        r.record(&mut report);
        scale_results = Some(r);
        report.insert("timing.scale_s", round2(t.elapsed().as_secs_f64()));
    }
    let mut e2e_results = None;
    if opts.runs(Part::E2e) {
        let t = Instant::now();
        let config = e2e::Config {
            rounds: opts.e2e_rounds,
            window: std::time::Duration::from_millis(opts.e2e_window_ms.into()),
            ..e2e::Config::new(opts.quick)
        };
        match e2e::run(config, e2e_cpus) {
            Ok(r) => {
                r.record(&mut report);
                e2e_results = Some(r);
            }
            Err(e) => {
                eprintln!("e2e: {e:#}");
                report.insert(&format!("{}.error", e2e::SECTION), format!("{e:#}"));
            }
        }
        report.insert("timing.e2e_s", round2(t.elapsed().as_secs_f64()));
    }
    let mut control_results = None;
    if opts.runs(Part::Control) {
        let t = Instant::now();
        match control::run(opts.quick) {
            Ok(r) => {
                r.record(&mut report);
                control_results = Some(r);
            }
            Err(e) => {
                eprintln!("control: {e:#}");
                report.insert("control.error", format!("{e:#}"));
            }
        }
        report.insert("timing.control_s", round2(t.elapsed().as_secs_f64()));
    }
    report.insert("timing.total_s", round2(started.elapsed().as_secs_f64()));

    print_summary(&report, &machine, pp_results.as_ref());
    if let Some(r) = &scale_results {
        println!();
        print!("{}", r.table().render());
        println!(
            "scale: per-packet medians (as above) at each point, each measured interleaved with \
             floor_pass; {} flows, all to one VIP (\"spread\": over all the point's VIPs); \
             \"above floor\" = median - floor_pass median; max / min over the points, flagged \
             NOT FLAT over x{} (\"vs floor\": of median / floor_pass, which cancels the VM's \
             drift between points).",
            scale::workload::FLOWS,
            scale::FLAT
        );
        for cr in r.curves.iter().filter(|c| c.error.is_some()) {
            println!(
                "scale {}: error: {}",
                cr.curve.name(),
                cr.error.as_deref().unwrap_or_default()
            );
        }
    }
    if let Some(r) = &e2e_results {
        println!();
        print!("{}", r.table().render());
        for line in r.notes() {
            println!("{line}");
        }
    } else if let Some(e) = report.get("e2e.error") {
        println!("\ne2e: error: {}", e.as_str().unwrap_or_default());
    }
    if let Some(r) = &control_results {
        println!();
        print!("{}", r.table().render());
    } else if let Some(e) = report.get("control.error") {
        println!("\ncontrol: error: {}", e.as_str().unwrap_or_default());
    }
    if let Some(t) = report.get("timing").and_then(|v| v.as_object()) {
        let parts: Vec<String> = t.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("timing: {}", parts.join(", "));
    }
    if let Some(path) = &opts.json {
        report
            .write(path)
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
        println!("\nJSON report: {}", path.display());
    }
    if let Some(dir) = &opts.plot_dir {
        match plot::write(&report, dir) {
            Ok(paths) => {
                for p in paths {
                    println!("plot: {}", p.display());
                }
            }
            // The figures are in the table and the JSON: a plot that cannot
            // be drawn is reported, not fatal.
            Err(e) => eprintln!("xlb-bench: plots: {e:#}"),
        }
    }
    if opts.check_keys {
        let missing = report.missing(&required_keys(|p| opts.runs(p)));
        if !missing.is_empty() {
            bail!("the report lacks {}", missing.join(", "));
        }
        println!("the report holds every required key");
    }
    Ok(())
}

/// The per-packet and live parts, in their shared namespace (left when done).
fn run_dataplane(
    opts: &Options,
    report: &mut Report,
    cpu: usize,
    warmup: usize,
) -> Result<Option<per_packet::Results>> {
    let mut env = BenchEnv::setup().context("setting up the benchmark namespace")?;
    env.install(&scenarios::desired_state())
        .context("installing the benchmark's VIPs")?;
    xlb_tests::floor_lb::install(
        &mut env.aux,
        &scenarios::floor_lb_flow(env.if_mac, env.ifindex),
    )
    .context("filling the essential-work floors' maps")?;
    xlb_tests::floor_lb::install6(
        &mut env.aux,
        &scenarios::floor_lb_flow6(env.if_mac, env.ifindex),
    )
    .context("filling the IPv6 floor's maps")?;
    let flow_miss_frames = if opts.runs(Part::PerPacket) {
        opts.calls as usize + warmup + 1
    } else {
        1
    };
    let all: Vec<_> = scenarios::all(env.if_mac, flow_miss_frames)
        .into_iter()
        .filter(|sc| opts.runs_scenario(sc.name))
        .collect();
    if all.is_empty() {
        bail!("no scenario is called {}", opts.scenarios.join(" or "));
    }
    eprintln!(
        "xlb-bench: namespace {}, CPU {cpu}, {} per-packet calls, {} live frames per scenario",
        env.namespace(),
        opts.calls,
        opts.live_repeat
    );

    let mut pp_results = None;
    if opts.runs(Part::PerPacket) {
        let t = Instant::now();
        let r = per_packet::run(&mut env, &all, opts.calls).context("per-packet benchmark")?;
        r.record(report);
        report.insert("timing.per_packet_s", round2(t.elapsed().as_secs_f64()));
        pp_results = Some(r);
    }
    if opts.runs(Part::Live) {
        let t = Instant::now();
        live::run(&mut env, &all, opts.live_repeat).record(report);
        report.insert("timing.live_s", round2(t.elapsed().as_secs_f64()));
    }
    drop(env);
    Ok(pp_results)
}

fn record_config(report: &mut Report, opts: &Options, cpu: usize, warmup: usize) {
    report.insert("schema", REPORT_SCHEMA);
    report.insert("config.quick", opts.quick);
    report.insert("config.per_packet_calls", opts.calls);
    report.insert("config.per_packet_warmup_calls", warmup);
    report.insert("config.live_repeat", opts.live_repeat);
    report.insert("config.live_batch", live::BATCH);
    report.insert("config.repeat_run", per_packet::REPEAT);
    report.insert("config.cpu", cpu);
    report.insert("config.table_size", SIZES.table_size);
    report.insert("config.backends_per_vip", scenarios::BACKENDS_PER_VIP);
}

fn print_summary(report: &Report, machine: &Machine, pp: Option<&per_packet::Results>) {
    println!(
        "xlb-bench on {} ({} cores, kernel {}, load {})",
        machine.cpu_model,
        machine.cores,
        machine.kernel,
        machine
            .load_avg_1m
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "?".into())
    );
    let dataplane = dataplane_table(report);
    if !dataplane.is_empty() {
        println!();
        print!("{}", dataplane.render());
    }
    if let Some(pp) = pp {
        let overhead = pp
            .timing("floor_pass")
            .map(|s| format!("{} ns", s.summary.median_ns))
            .unwrap_or_else(|| "?".into());
        println!();
        println!(
            "per-packet: kernel-reported time of single BPF_PROG_TEST_RUN calls (repeat = 1, so \
             every call sees the original frame), {} calls per scenario; it includes the fixed \
             test-run overhead (floor_pass: {overhead}). The kernel clock here has ~10 ns steps: \
             JSON mean_ns is finer. floor_lb / floor_lb16: the essential work of a hash-map \
             balancer (VIP lookup, connection lookup with a 40- / 16-byte key, backend read, \
             IP-in-IP push, XDP_TX); floor_entry: the same in xlb's order (connection first, \
             the VIP through its backend's VIP id); \"above floor_lb\" = median - floor_lb \
             median.",
            pp.timings.first().map_or(0, |s| s.summary.count)
        );
        let v = &pp.verifier;
        println!(
            "xlb_balancer: {} instructions processed by the verifier, {} xlated instructions, \
             {} JITed bytes",
            opt(v.instructions),
            v.xlated_bytes
                .map(|b| (b / 8).to_string())
                .unwrap_or_else(|| "?".into()),
            v.jited_bytes
        );
        for (name, ns) in &pp.repeated {
            println!(
                "repeat = {}: {name} {ns:.1} ns/packet (valid only for paths that do not rewrite \
                 the packet)",
                per_packet::REPEAT
            );
        }
    }
    if report.get(live::SECTION).is_some() {
        println!(
            "live: packets the sink on the veth peer counted / wall time, one core, {} fresh \
             frames per call (pages are recycled with their rewritten bytes otherwise); \
             {} is one long call on recycled pages.",
            live::BATCH,
            live::FLOOR_RECYCLED
        );
    }
    for (name, _) in report
        .get(live::SECTION)
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        if let Some(e) = report.get(&format!("{}.{name}.error", live::SECTION)) {
            println!("live {name}: {}", e.as_str().unwrap_or_default());
        }
    }
}

fn opt(v: Option<u32>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "?".into())
}

fn round2(x: f64) -> f64 {
    xlb_tests::bench::report::round(x, 2)
}
