//! `cargo xtask demo [--keep | --fleet | --l7]`: installs what is missing, builds xlb
//! in release mode, and runs the demo driver (`xlb-demo`, in the tests crate)
//! as root.

use anyhow::Result;

use crate::release_tool;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Leave the rack up after the report (with instructions) until Ctrl-C.
    #[arg(long, conflicts_with = "fleet")]
    pub keep: bool,
    /// A fleet instead: three xlb nodes announcing the VIPs by BGP (BIRD)
    /// to a router that spreads flows over them (ECMP); one node is killed
    /// under 150 live TCP streams, and the demo counts broken connections.
    #[arg(long)]
    pub fleet: bool,
    /// The L4 -> L7 architecture: xlb (l2-dsr) in front of two real nginx
    /// nodes routing /api/ and /static/ to their pools; one node killed.
    #[arg(long, conflicts_with_all = ["fleet", "keep"])]
    pub l7: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let mut extra = Vec::new();
    if args.keep {
        extra.push("--keep".into());
    }
    if args.fleet {
        extra.push("--fleet".into());
    }
    if args.l7 {
        extra.push("--l7".into());
    }
    release_tool::build_and_run("xlb-demo", "the demo", &extra)
}
