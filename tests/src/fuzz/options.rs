//! Command-line options of `xlb-fuzz` (plain `std::env::args`).

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
usage: xlb-fuzz [--frames N] [--seed S] [--show N]
       xlb-fuzz --frame HEX

Runs generated and mutated frames through the real xlb_balancer (BPF_PROG_TEST_RUN,
maps filled by the reconciler) and checks every result against an independent
oracle. Needs root. Exits non-zero on any violation.

  --frames N   frames to run (default 10,000,000)
  --seed S     seed of the frame generator (default 1): a run is reproducible
  --show N     violations printed in full, with their frames (default 24; every
               violation is counted)
  --frame HEX  run one frame (hex bytes) and print the oracle's expectation and
               the data plane's result
  -h, --help   this text
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub frames: u64,
    pub seed: u64,
    pub show: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            frames: 10_000_000,
            seed: 1,
            show: 24,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Options),
    /// Judge one frame.
    Frame(Vec<u8>),
}

impl Command {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match a.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--frames" => o.frames = number(&value("--frames")?, "--frames")?,
                "--seed" => o.seed = number(&value("--seed")?, "--seed")?,
                "--show" => o.show = number(&value("--show")?, "--show")? as usize,
                "--frame" => return Ok(Command::Frame(hex(&value("--frame")?)?)),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(Command::Run(o))
    }
}

/// A number, with `_` or `,` allowed as digit separators.
fn number(s: &str, name: &str) -> Result<u64> {
    let digits: String = s.chars().filter(|c| *c != '_' && *c != ',').collect();
    digits
        .parse()
        .with_context(|| format!("{name}: {s:?} is not a whole number"))
}

/// Hex bytes; spaces and colons are ignored.
pub fn hex(s: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        bail!("--frame: an odd number of hex digits ({})", digits.len());
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let text = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(text, 16)
                .with_context(|| format!("--frame: {text:?} at byte {i} is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command> {
        Command::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse(&[]).unwrap(), Command::Run(Options::default()));
        assert_eq!(
            parse(&["--frames", "200,000", "--seed", "7", "--show", "3"]).unwrap(),
            Command::Run(Options {
                frames: 200_000,
                seed: 7,
                show: 3
            })
        );
        assert_eq!(
            parse(&["--frame", "0a:0B ff"]).unwrap(),
            Command::Frame(vec![0x0a, 0x0b, 0xff])
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let e = parse(&["--frames", "ten"]).unwrap_err().to_string();
        assert!(e.contains("--frames") && e.contains("ten"), "{e}");
        assert!(parse(&["--frames"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        let e = parse(&["--frame", "abc"]).unwrap_err().to_string();
        assert!(e.contains("odd"), "{e}");
        assert!(parse(&["--frame", "zz"]).is_err());
    }
}
