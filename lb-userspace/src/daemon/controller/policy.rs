//! The controller's side of the VIP policy: runtime changes of a VIP's
//! source ranges (`xlb vip allow|deny`), and the policy counters of the
//! stats snapshot (drops by reason per VIP, flood mode).

use serde::{Deserialize, Serialize};

use super::{vip_key, ControlError, Controller};
use crate::{
    config::IpPrefix,
    explain::coarse_now_ns,
    reconcile::ApplyReport,
    stats::{FloodSample, PolicySample},
};

/// Which list of a VIP a change is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixList {
    Allow,
    Deny,
}

/// The body of `POST /v1/vips/{vip}/allow` and `.../deny`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixChange {
    #[serde(default)]
    pub add: Vec<IpPrefix>,
    #[serde(default)]
    pub remove: Vec<IpPrefix>,
}

impl Controller {
    /// Adds and removes prefixes of a VIP's allow or deny list; the new
    /// config is validated and installed like any other change (the
    /// reconciler's policy order: new entries, then the record, then stale
    /// entries). Adding a listed prefix or removing an unlisted one is an
    /// error naming it.
    pub fn change_prefixes(
        &mut self,
        vip: &str,
        list: PrefixList,
        change: &PrefixChange,
    ) -> Result<ApplyReport, ControlError> {
        let i = self.vip_index(vip)?;
        let mut c = self.config.clone();
        let (prefixes, name) = match list {
            PrefixList::Allow => (&mut c.vips[i].allow, "allow"),
            PrefixList::Deny => (&mut c.vips[i].deny, "deny"),
        };
        for p in &change.remove {
            let Some(at) = prefixes.iter().position(|q| q == p) else {
                return Err(ControlError::Invalid {
                    field: "remove".into(),
                    message: format!("{p} is not in the {name} list of {vip}"),
                });
            };
            prefixes.remove(at);
        }
        for p in &change.add {
            if prefixes.contains(p) {
                return Err(ControlError::Invalid {
                    field: "add".into(),
                    message: format!("{p} is already in the {name} list of {vip}"),
                });
            }
            prefixes.push(*p);
        }
        self.replace_config(c)
    }

    /// Policy drops of the VIP `name` (zero for a VIP not installed).
    pub(super) fn policy_sample(&self, name: &str) -> Result<PolicySample, ControlError> {
        let i = self.vip_index(name)?;
        let key = vip_key(&self.config.vips[i]);
        let Some(id) = self.reconciler.vip_id(&key) else {
            return Ok(PolicySample::default());
        };
        let s = self.dp.policy_stats(id)?;
        Ok(PolicySample {
            source_denied: s.denied,
            source_not_allowed: s.not_allowed,
            vip_rate_limited: s.vip_rate_limited,
            source_rate_limited: s.source_rate_limited,
        })
    }

    /// Flood mode on every CPU now.
    pub(super) fn flood_sample(&self) -> Result<FloodSample, ControlError> {
        let threshold = self.config.global.flood_threshold;
        let now = coarse_now_ns();
        let states = self.dp.flood_states()?;
        Ok(FloodSample {
            threshold_per_cpu: threshold,
            flooding_cpus: states
                .iter()
                .filter(|s| lb_common::policy::is_flooding(s, now, threshold))
                .count() as u32,
            skipped_inserts: states.iter().map(|s| s.skipped_inserts).sum(),
            flood_windows: states.iter().map(|s| s.flood_windows).sum(),
        })
    }
}
