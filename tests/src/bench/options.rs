//! Command-line options of `xlb-bench` (plain `std::env::args`, no parser crate).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// A benchmark part, selectable with `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    PerPacket,
    Live,
    /// End-to-end throughput through a balancer namespace (`bench::e2e`).
    E2e,
    /// Control-plane costs (`bench::control`).
    Control,
    /// Per-packet cost as VIPs, connections and backends grow (`bench::scale`).
    Scale,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::PerPacket,
        Part::Live,
        Part::E2e,
        Part::Control,
        Part::Scale,
    ];

    /// The name `--only` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Part::PerPacket => "per-packet",
            Part::Live => "live",
            Part::E2e => "e2e",
            Part::Control => "control",
            Part::Scale => "scale",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

pub const USAGE: &str = "\
usage: xlb-bench [--quick] [--json FILE] [--only PART]... [--calls N] [--live-repeat N]
                 [--e2e-rounds N] [--e2e-window-ms N] [--check-keys] [--plot-dir DIR]
       xlb-bench --plot-from FILE --plot-dir DIR

Benchmarks xlb's XDP data plane (needs root: BPF and network namespaces).

  --quick          fewer iterations (5,000 calls per scenario, 200,000 live frames,
                   one e2e round of 1 s windows, a smaller control-plane scale, the
                   smallest and largest point of each scale curve)
  --json FILE      also write the results as JSON to FILE
  --only PART      run only PART (per-packet, live, e2e, control, scale); may be
                   repeated
  --calls N        BPF_PROG_TEST_RUN calls per per-packet scenario (default 100,000)
  --live-repeat N  frames per live-frames scenario, 256 per call (default 10,000,000)
  --e2e-rounds N   e2e rounds, each measures every case once (default 7, quick 1)
  --e2e-window-ms N  e2e measurement window per case and round (default 700, quick 1,000)
  --check-keys     fail unless the report holds every key the selected parts promise
                   (CI's smoke run)
  --plot-dir DIR   also draw per_packet.svg and scale.svg into DIR
  --plot-from FILE only draw the plots of a saved JSON report (with --plot-dir)
  --scenario NAME  per-packet and live parts: run only scenario NAME (may be
                   repeated; e.g. to profile one path under perf)
  -h, --help       this text
";

/// What to run and how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub quick: bool,
    pub json: Option<PathBuf>,
    /// Empty: every part.
    pub only: Vec<Part>,
    /// `repeat = 1` calls per per-packet scenario.
    pub calls: u32,
    /// Frames per live-frames scenario.
    pub live_repeat: u32,
    /// End-to-end rounds (each measures every case once).
    pub e2e_rounds: u32,
    /// End-to-end measurement window per case, in milliseconds.
    pub e2e_window_ms: u32,
    /// Fail unless the report holds every required key of the parts run.
    pub check_keys: bool,
    /// Where to draw the plots (none: no plots).
    pub plot_dir: Option<PathBuf>,
    /// Empty: every per-packet and live scenario.
    pub scenarios: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quick: false,
            json: None,
            only: Vec::new(),
            calls: 100_000,
            live_repeat: 10_000_000,
            e2e_rounds: 7,
            e2e_window_ms: 700,
            check_keys: false,
            plot_dir: None,
            scenarios: Vec::new(),
        }
    }
}

/// The outcome of parsing the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    /// Draw the plots of a saved report (`--plot-from FILE`) into a directory.
    Plot {
        report: PathBuf,
        dir: PathBuf,
    },
    Help,
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command> {
        let mut o = Options::default();
        let (mut calls, mut live_repeat) = (None, None);
        let (mut e2e_rounds, mut e2e_window_ms) = (None, None);
        let mut plot_from = None;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--quick" => o.quick = true,
                "--check-keys" => o.check_keys = true,
                "--json" => o.json = Some(PathBuf::from(value("--json")?)),
                "--plot-dir" => o.plot_dir = Some(PathBuf::from(value("--plot-dir")?)),
                "--plot-from" => plot_from = Some(PathBuf::from(value("--plot-from")?)),
                "--scenario" => o.scenarios.push(value("--scenario")?),
                "--only" => {
                    let v = value("--only")?;
                    let part = Part::from_name(&v).with_context(|| {
                        let names: Vec<&str> = Part::ALL.iter().map(|p| p.name()).collect();
                        format!(
                            "--only {v}: expected one of {}\n\n{USAGE}",
                            names.join(", ")
                        )
                    })?;
                    if !o.only.contains(&part) {
                        o.only.push(part);
                    }
                }
                "--calls" => calls = Some(count("--calls", &value("--calls")?)?),
                "--live-repeat" => {
                    live_repeat = Some(count("--live-repeat", &value("--live-repeat")?)?)
                }
                "--e2e-rounds" => {
                    e2e_rounds = Some(count("--e2e-rounds", &value("--e2e-rounds")?)?)
                }
                "--e2e-window-ms" => {
                    e2e_window_ms = Some(count("--e2e-window-ms", &value("--e2e-window-ms")?)?)
                }
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        if let Some(report) = plot_from {
            let dir = o
                .plot_dir
                .with_context(|| format!("--plot-from needs --plot-dir\n\n{USAGE}"))?;
            return Ok(Command::Plot { report, dir });
        }
        if o.quick {
            o.calls = 5_000;
            o.live_repeat = 200_000;
            o.e2e_rounds = 1;
            o.e2e_window_ms = 1_000;
        }
        o.calls = calls.unwrap_or(o.calls);
        o.live_repeat = live_repeat.unwrap_or(o.live_repeat);
        o.e2e_rounds = e2e_rounds.unwrap_or(o.e2e_rounds);
        o.e2e_window_ms = e2e_window_ms.unwrap_or(o.e2e_window_ms);
        Ok(Command::Run(o))
    }

    /// Whether the scenario `name` was selected.
    pub fn runs_scenario(&self, name: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == name)
    }

    /// Whether `part` was selected.
    pub fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

fn count(flag: &str, v: &str) -> Result<u32> {
    let n: u32 = v
        .replace(['_', ','], "")
        .parse()
        .with_context(|| format!("{flag} {v}: not a positive integer"))?;
    if n == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    fn options(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_run_everything() {
        let o = options(&[]);
        assert_eq!(o, Options::default());
        assert!(Part::ALL.iter().all(|p| o.runs(*p)));
    }

    #[test]
    fn quick_json_and_only() {
        let o = options(&["--quick", "--json", "/tmp/x.json", "--only", "live"]);
        assert!(o.quick);
        assert_eq!(o.calls, 5_000);
        assert_eq!(o.live_repeat, 200_000);
        assert_eq!(o.json, Some(PathBuf::from("/tmp/x.json")));
        assert!(o.runs(Part::Live));
        assert!(!o.runs(Part::PerPacket));
        assert!(!o.runs(Part::E2e));
        assert_eq!((o.e2e_rounds, o.e2e_window_ms), (1, 1_000));
        assert!(!o.check_keys);
        assert!(options(&["--check-keys"]).check_keys);
    }

    #[test]
    fn every_part_has_a_name() {
        for p in Part::ALL {
            assert_eq!(Part::from_name(p.name()), Some(p));
        }
        let o = options(&["--only", "e2e", "--only", "control", "--e2e-rounds", "5"]);
        assert!(o.runs(Part::E2e) && o.runs(Part::Control) && !o.runs(Part::Live));
        assert_eq!(o.e2e_rounds, 5);
    }

    #[test]
    fn explicit_counts_override_quick() {
        let o = options(&["--calls", "1_000", "--quick", "--live-repeat", "50000"]);
        assert_eq!(o.calls, 1_000);
        assert_eq!(o.live_repeat, 50_000);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse(&["--only", "e2e-nope"]).is_err());
        assert!(parse(&["--json"]).is_err());
        assert!(parse(&["--calls", "0"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        assert_eq!(parse(&["--help"]).ok(), Some(Command::Help));
        assert!(parse(&["--plot-from", "r.json"]).is_err());
        assert!(parse(&["--scenario"]).is_err());
    }

    #[test]
    fn scenarios() {
        let o = options(&["--scenario", "v4_tcp_flow_hit"]);
        assert!(o.runs_scenario("v4_tcp_flow_hit"));
        assert!(!o.runs_scenario("floor_pass"));
        assert!(options(&[]).runs_scenario("floor_pass"));
    }

    #[test]
    fn plots() {
        assert_eq!(
            options(&["--plot-dir", "target/bench"]).plot_dir,
            Some(PathBuf::from("target/bench"))
        );
        assert_eq!(
            parse(&["--plot-from", "r.json", "--plot-dir", "d"]).ok(),
            Some(Command::Plot {
                report: PathBuf::from("r.json"),
                dir: PathBuf::from("d"),
            })
        );
    }
}
