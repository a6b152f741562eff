//! Command-line options of `xlb-bench` (plain `std::env::args`, no parser crate).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// A benchmark part, selectable with `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    PerPacket,
    Live,
}

impl Part {
    pub const ALL: [Part; 2] = [Part::PerPacket, Part::Live];

    /// The name `--only` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Part::PerPacket => "per-packet",
            Part::Live => "live",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

pub const USAGE: &str = "\
usage: xlb-bench [--quick] [--json FILE] [--only PART]... [--calls N] [--live-repeat N]

Benchmarks xlb's XDP data plane (needs root: BPF and network namespaces).

  --quick          fewer iterations (5,000 calls per scenario, 200,000 live frames)
  --json FILE      also write the results as JSON to FILE
  --only PART      run only PART (per-packet, live); may be repeated
  --calls N        BPF_PROG_TEST_RUN calls per per-packet scenario (default 100,000)
  --live-repeat N  frames per live-frames scenario, 256 per call (default 10,000,000)
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quick: false,
            json: None,
            only: Vec::new(),
            calls: 100_000,
            live_repeat: 10_000_000,
        }
    }
}

/// The outcome of parsing the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command> {
        let mut o = Options::default();
        let (mut calls, mut live_repeat) = (None, None);
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--quick" => o.quick = true,
                "--json" => o.json = Some(PathBuf::from(value("--json")?)),
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
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        if o.quick {
            o.calls = 5_000;
            o.live_repeat = 200_000;
        }
        o.calls = calls.unwrap_or(o.calls);
        o.live_repeat = live_repeat.unwrap_or(o.live_repeat);
        Ok(Command::Run(o))
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
    }
}
