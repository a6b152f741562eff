//! `XLB_ICMP_LIMIT`: the per-CPU rate limit of the ICMP messages the
//! balancer sends itself, one token bucket per kind.

/// Slot of the bucket for generated "fragmentation needed" / "packet too
/// big" errors.
pub const ICMP_BUCKET_TOO_BIG: u32 = 0;
/// Slot of the bucket for echo replies.
pub const ICMP_BUCKET_ECHO: u32 = 1;
/// Slots of `XLB_ICMP_LIMIT`.
pub const ICMP_BUCKETS: u32 = 2;

/// The rate limit when the config does not say: messages of each kind per
/// second per CPU (`global.icmp_rate_limit`).
pub const DEFAULT_ICMP_RATE: u32 = 100;

const SECOND_NS: u64 = 1_000_000_000;

/// Per-CPU value of `XLB_ICMP_LIMIT`: a token bucket kept as time. It
/// holds at most one second of credit, refilled as time passes; a message
/// costs `1 s / rate`. So each CPU sends up to `rate` messages of a kind in
/// a burst, then `rate` per second; the host sends up to `rate` times the
/// number of CPUs that receive the traffic. Each CPU keeps its own bucket
/// (no atomic operation on the fast path), so one client, whose packets a
/// NIC's RSS hashes to one CPU, gets at most `rate` per second.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IcmpBucket {
    /// Unspent credit, in nanoseconds (at most one second).
    credit_ns: u64,
    /// When credit was last added (coarse monotonic clock).
    last_ns: u64,
}

impl IcmpBucket {
    /// Whether one more message may be sent at `now_ns` under a limit of
    /// `per_second` messages a second (0: never); spends its credit if so.
    /// An empty bucket (never used) holds a full second of credit.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64, per_second: u32) -> bool {
        if per_second == 0 {
            return false;
        }
        let cost = SECOND_NS / per_second as u64;
        let mut credit = self
            .credit_ns
            .saturating_add(now_ns.saturating_sub(self.last_ns));
        if credit > SECOND_NS {
            credit = SECOND_NS;
        }
        self.last_ns = now_ns;
        let allowed = credit >= cost;
        self.credit_ns = if allowed { credit - cost } else { credit };
        allowed
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layout() {
        assert_eq!(size_of::<IcmpBucket>(), 16);
        assert_eq!(offset_of!(IcmpBucket, last_ns), 8);
    }

    const T0: u64 = 5_000 * SECOND_NS;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let mut b = IcmpBucket::default();
        for i in 0..10 {
            assert!(b.take(T0, 10), "message {i} of the burst");
        }
        assert!(!b.take(T0, 10), "the burst is spent");
        assert!(!b.take(T0 + SECOND_NS / 10 - 1, 10), "not yet a tenth");
        assert!(b.take(T0 + SECOND_NS / 10, 10), "a tenth of a second later");
        assert!(!b.take(T0 + SECOND_NS / 10, 10));
        // Idle for an hour: still one second of credit, not more.
        let later = T0 + 3600 * SECOND_NS;
        for i in 0..10 {
            assert!(b.take(later, 10), "message {i} after a pause");
        }
        assert!(!b.take(later, 10));
    }

    #[test]
    fn a_rate_of_zero_sends_nothing() {
        let mut b = IcmpBucket::default();
        assert!(!b.take(T0, 0));
        assert!(!b.take(T0 + 10 * SECOND_NS, 0));
    }

    #[test]
    fn a_clock_behind_the_bucket_adds_no_credit() {
        let mut b = IcmpBucket::default();
        assert!(b.take(T0, 1));
        assert!(!b.take(T0 - SECOND_NS, 1));
        assert!(!b.take(T0 - SECOND_NS / 2, 1));
        assert!(
            b.take(T0 + SECOND_NS / 2, 1),
            "a second after the last credit"
        );
    }

    #[test]
    fn high_rates() {
        let mut b = IcmpBucket::default();
        let mut sent = 0;
        for i in 0..3_000_000u64 {
            if b.take(T0 + i * 500, 1_000_000) {
                sent += 1;
            }
        }
        // A full second of burst (1,000,000) plus what 1.5 s refill (the
        // last 500 ns of it not yet a whole message).
        assert_eq!(sent, 2_499_999);
    }
}
