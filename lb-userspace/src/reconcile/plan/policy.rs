//! The planner's policy steps: one VIP id's trie entries and policy record,
//! changed in the order that never admits a source both the old and the new
//! policy refuse.
//!
//! Order: (1) every new or changed trie entry is written, deny entries
//! before allow entries, (2) then the record (flags: prefixes present, allow
//! list; rates), (3) then the entries the new policy no longer has are
//! removed, allow entries before deny entries. In between, the trie
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
        let next = InstalledPolicy {
            prefixes: want.map(|w| w.prefixes.clone()).unwrap_or_default(),
            record: want.map_or(VipPolicy::NONE, DesiredPolicy::record),
        };
        // Deny entries first: a source both policies refuse may sit in an
        // old deny prefix that the new policy turns into an allow prefix,
        // inside a new deny prefix not yet written.
        for deny_pass in [true, false] {
            for (&(addr, len), &value) in &next.prefixes {
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
        if have.record != next.record {
            self.push(Op::SetPolicy {
                vip_id,
                policy: next.record,
            });
        }
        // Allow entries go first: removing an old deny prefix before an old
        // allow prefix inside it would uncover the allow.
        for allow_pass in [true, false] {
            for (&(addr, len), &value) in &have.prefixes {
                if (value == PREFIX_ALLOW) == allow_pass
                    && !next.prefixes.contains_key(&(addr, len))
                {
                    self.push(Op::RemovePrefix {
                        prefix: SourcePrefix { vip_id, addr, len },
                    });
                }
            }
        }
        if next.is_empty() {
            self.plan.next.policies.remove(&vip_id);
        } else {
            self.plan.next.policies.insert(vip_id, next);
        }
    }
}
