//! Settings of `xlb run`'s command line that override the config file's.

use std::path::PathBuf;

use crate::config::{Config, XdpMode};

/// Settings the command line gives over the file's (`xlb run --xdp-mode`,
/// `--socket`, `--instance`): applied to the file at start and at every
/// reload, so that a reload neither loses them nor sees them as changes.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub xdp_mode: Option<XdpMode>,
    pub api_socket: Option<PathBuf>,
    pub instance: Option<String>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        let g = &mut config.global;
        if let Some(m) = self.xdp_mode {
            g.xdp_mode = m;
        }
        if let Some(s) = &self.api_socket {
            g.api_socket.clone_from(s);
        }
        if let Some(i) = &self.instance {
            g.instance.clone_from(i);
        }
    }
}
