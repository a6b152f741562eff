//! `cargo xtask demo [--keep]`: installs what is missing, builds xlb in release
//! mode, and runs the demo driver (`xlb-demo`, in the tests crate) as root.

use anyhow::Result;

use crate::release_tool;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Leave the rack up after the report (with instructions) until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let extra = if args.keep {
        vec!["--keep".into()]
    } else {
        Vec::new()
    };
    release_tool::build_and_run("xlb-demo", "the demo", &extra)
}
