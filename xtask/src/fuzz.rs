//! `cargo xtask fuzz [--frames N] [--seed S]`: installs what is missing,
//! builds the fuzzer in release mode and runs `xlb-fuzz`
//! (tests/src/bin/xlb-fuzz.rs) as root: generated and mutated frames through
//! the real balancer, every result checked by an independent oracle. Fails
//! on any violation. CI runs 200,000 frames ([`CI_FRAMES`]).

use std::ffi::OsString;

use anyhow::Result;

use crate::release_tool;

/// Frames of the fuzzing phase of `cargo xtask test`.
pub const CI_FRAMES: u64 = 200_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Frames to run.
    #[arg(long, default_value_t = 10_000_000)]
    pub frames: u64,
    /// Seed of the frame generator (the same seed gives the same frames).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Violations printed in full, with their frames.
    #[arg(long)]
    pub show: Option<u32>,
}

pub fn run(args: &Args) -> Result<()> {
    let mut extra: Vec<OsString> = vec![
        "--frames".into(),
        args.frames.to_string().into(),
        "--seed".into(),
        args.seed.to_string().into(),
    ];
    if let Some(n) = args.show {
        extra.push("--show".into());
        extra.push(n.to_string().into());
    }
    release_tool::build_and_run("xlb-fuzz", "the fuzzer", &extra)
}
