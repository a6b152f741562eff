//! The planner's policy steps: one VIP id's trie entries and policy record,
//! changed in the order that never admits a source both the old and the new
//! policy refuse.
//!
//! Order: (1) every new or changed trie entry is written, deny entries
//! before allow entries, (2) then the record (flags: prefixes present, allow
//! list; rates), (3) then the entries the new policy no longer has are
//! removed, allow entries before deny entries, (4) then, when the prefixes
//! changed, the record once more with a new access generation (see
//! `VipPolicy::access_generation`: established flows skip the trie while
//! their entry holds the current one). In between, the trie
//! holds the union of both entry sets, with the new values: a source that
//! both policies deny matches a deny prefix in either set, and the longest
//! match among the union is a deny prefix (no set holds an allow prefix
//! inside one of its deny prefixes, and a longer allow prefix of the other
//! set would have made the source allowed there); a source refused by both
//! for want of an allow prefix matches no allow prefix of either. Each
//! entry and the record are replaced atomically by the kernel.
//!
//! A new VIP's policy is complete before its VIP entry appears; a removed
//! VIP's entries and record are cleared after its VIP entry is gone, so its
//! recycled id starts empty.

use std::net::IpAddr;

use lb_common::{VipPolicy, PREFIX_ALLOW, PREFIX_DENY};

use super::{Op, Planner};
use crate::{
    dataplane::SourcePrefix,
    reconcile::policy::{DesiredPolicy, InstalledPolicy},
};

impl Planner {
    /// Moves vip id `vip_id`'s policy to `want` (`None`: no policy).
    pub(super) fn sync_policy(&mut self, vip_id: u32, want: Option<&DesiredPolicy>) {
        let have = self
            .plan
            .next
            .policies
            .get(&vip_id)
            .cloned()
            .unwrap_or_default();
        let prefixes = want.map(|w| w.prefixes.clone()).unwrap_or_default();
        let desired = want.map_or(VipPolicy::NONE, DesiredPolicy::record);
        let removed: Vec<((IpAddr, u8), u32)> = have
            .prefixes
            .iter()
            .filter(|(k, _)| !prefixes.contains_key(k))
            .map(|(&k, &v)| (k, v))
            .collect();
        // The access generation: 0 without prefixes (nothing to look up);
        // a new one when the prefixes or the allow list change, written once
        // the tries are final, so that an entry stamped with it was checked
        // against them; else the one the VIP has.
        let access_changed =
            have.prefixes != prefixes || have.record.has_allow_list() != desired.has_allow_list();
        let settled_generation = if prefixes.is_empty() {
            0
        } else if access_changed {
            self.next_access_generation()
        } else {
            have.record.access_generation
        };
        let settled = desired.with_access_generation(settled_generation);
        // Written between the additions and the removals, the record keeps
        // the old generation: an entry checked against the union of both
        // entry sets must be checked again once the old entries are gone.
        let interim = if removed.is_empty() || prefixes.is_empty() {
            settled
        } else {
            desired.with_access_generation(have.record.access_generation)
        };
        // Deny entries first: a source both policies refuse may sit in an
        // old deny prefix that the new policy turns into an allow prefix,
        // inside a new deny prefix not yet written.
        for deny_pass in [true, false] {
            for (&(addr, len), &value) in &prefixes {
                if (value == PREFIX_DENY) == deny_pass
                    && have.prefixes.get(&(addr, len)) != Some(&value)
                {
                    self.push(Op::SetPrefix {
                        prefix: SourcePrefix { vip_id, addr, len },
                        value,
                    });
                }
            }
        }
        if have.record != interim {
            self.push(Op::SetPolicy {
                vip_id,
                policy: interim,
            });
        }
        // Allow entries go first: removing an old deny prefix before an old
        // allow prefix inside it would uncover the allow.
        for allow_pass in [true, false] {
            for &((addr, len), value) in &removed {
                if (value == PREFIX_ALLOW) == allow_pass {
                    self.push(Op::RemovePrefix {
                        prefix: SourcePrefix { vip_id, addr, len },
                    });
                }
            }
        }
        if interim != settled {
            self.push(Op::SetPolicy {
                vip_id,
                policy: settled,
            });
        }
        let next = InstalledPolicy {
            prefixes,
            record: settled,
        };
        if next.is_empty() {
            self.plan.next.policies.remove(&vip_id);
        } else {
            self.plan.next.policies.insert(vip_id, next);
        }
    }

    /// A generation never given out before (0 is skipped: it means "check
    /// every packet").
    fn next_access_generation(&mut self) -> u32 {
        let mut g = self.plan.next.access_generation.wrapping_add(1);
        if g == 0 {
            g = 1;
        }
        self.plan.next.access_generation = g;
        g
    }
}
