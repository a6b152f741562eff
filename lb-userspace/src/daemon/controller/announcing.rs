//! The controller's side of announcing (`crate::announce`): the facts each
//! VIP's announcement depends on come from the effective config and the
//! health the controller holds, and every change the controller applies is
//! followed by a sync of the routes.

use std::time::Duration;

use super::{vip_key, Controller};
use crate::{
    announce::{Announcer, VipFacts, Wish},
    config::VipConfig,
};

impl Controller {
    /// Hands the announce routes to the controller (`None`: announcing off).
    pub fn set_announcer(&mut self, announcer: Option<Announcer>) {
        self.announcer = announcer;
        self.announce_sync();
    }

    /// The program is attached: addresses are announced from now on.
    pub fn announce_attached(&mut self) {
        let facts = self.announce_facts();
        if let Some(a) = &mut self.announcer {
            a.attached(&facts);
        }
    }

    /// Brings the routes in line with the VIPs (after every change, and
    /// periodically, to repair a table changed behind xlb's back).
    pub fn announce_sync(&mut self) {
        if self.announcer.is_none() {
            return;
        }
        let facts = self.announce_facts();
        let drain = self.config.announce.drain_on_stop;
        if let Some(a) = &mut self.announcer {
            a.set_drain_on_stop(drain);
            a.sync(&facts);
        }
    }

    /// A planned stop: withdraws every route and says how long to keep
    /// serving before exiting (`announce.drain_on_stop`; zero when
    /// announcing is off).
    pub fn announce_stop(&mut self) -> Duration {
        match &mut self.announcer {
            Some(a) => {
                a.stop();
                a.drain_on_stop()
            }
            None => Duration::ZERO,
        }
    }

    /// How each VIP of the config stands, in config order.
    pub(super) fn announce_states(&self) -> Vec<Wish> {
        let all = self.announce_facts();
        all.iter()
            .map(|v| match &self.announcer {
                None => Wish {
                    announce: false,
                    reason: "announcing is off (announce.enabled = false)".into(),
                },
                Some(a) => a.state(v, &all),
            })
            .collect()
    }

    fn announce_facts(&self) -> Vec<VipFacts> {
        self.config.vips.iter().map(|v| self.vip_facts(v)).collect()
    }

    fn vip_facts(&self, v: &VipConfig) -> VipFacts {
        let key = vip_key(v);
        VipFacts {
            name: v.name.clone(),
            address: v.address,
            mode: v.announce,
            backends: v
                .backends
                .iter()
                .map(|b| (b.weight, self.healthy(&(key, b.address))))
                .collect(),
        }
    }
}
