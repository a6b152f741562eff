//! Full NAT's rules (`forwarding = "nat"`), pure so that the data plane
//! (`lb-ebpf/src/nat.rs`) and `xlb explain` run the same code:
//!
//! - a session's state from the TCP flags it has seen (SYN only,
//!   established, closing after a FIN or RST; UDP has one state), which
//!   chooses its idle timeout (`nat.tcp_syn`, `tcp_established`,
//!   `tcp_closing`, `udp`);
//! - the NAT ports a new session tries, derived from its flow hash, a
//!   bounded number of them ([`PORT_TRIES`]): each try is an insert that
//!   fails if the (NAT address, NAT port, backend, backend port, protocol)
//!   is taken, which is what guarantees a port in use is never handed out
//!   twice; a taken one whose session has expired may be reclaimed;
//! - when a session's shared entry is written again (its state changed, or
//!   it has not been refreshed for [`REFRESH_NS`]), so that most packets
//!   write nothing shared.

use crate::{
    decision::{TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_RST, TCP_FLAG_SYN},
    maps::{NatConfig, NatEntry, PROTO_TCP},
};

/// A TCP session whose handshake has not completed.
pub const STATE_TCP_SYN: u8 = 0;
pub const STATE_TCP_ESTABLISHED: u8 = 1;
/// A FIN or RST was seen (either direction).
pub const STATE_TCP_CLOSING: u8 = 2;
pub const STATE_UDP: u8 = 3;

/// NAT ports a new session tries before it is dropped as `nat_exhausted`.
pub const PORT_TRIES: u32 = 8;

/// Distance between a session's successive port candidates: a prime, so
/// the candidates of one flow are distinct in any range that is not a
/// multiple of it, and flows whose first candidates collide spread apart.
pub const PORT_STEP: u32 = 7919;

/// A session's entry is refreshed at most this often while its state stays.
pub const REFRESH_NS: u64 = 1_000_000_000;

/// The state a session is in after a packet with `tcp_flags` (0 for UDP),
/// from `state` (`None`: a new session). Either direction's packets count.
#[inline(always)]
pub const fn next_state(proto: u8, state: Option<u8>, tcp_flags: u8) -> u8 {
    if proto != PROTO_TCP {
        return STATE_UDP;
    }
    if tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST) != 0 {
        return STATE_TCP_CLOSING;
    }
    let syn = tcp_flags & TCP_FLAG_SYN != 0;
    match state {
        // A new session (or a closed one re-opened by a new SYN) starts
        // in the handshake; anything else that creates one (an ACK of a
        // connection the NAT has lost) is taken as established.
        None | Some(STATE_TCP_CLOSING) if syn => STATE_TCP_SYN,
        None => STATE_TCP_ESTABLISHED,
        Some(STATE_TCP_SYN) if !syn && tcp_flags & TCP_FLAG_ACK != 0 => STATE_TCP_ESTABLISHED,
        Some(s) => s,
    }
}

/// Idle time (ns) after which a session in `state` is over.
#[inline(always)]
pub const fn timeout_ns(cfg: &NatConfig, state: u8) -> u64 {
    cfg.timeout_s(state) as u64 * 1_000_000_000
}

/// Whether the session of `entry` is over at `now_ns`: its port may be
/// handed to another session.
#[inline(always)]
pub const fn is_expired(cfg: &NatConfig, entry: &NatEntry, now_ns: u64) -> bool {
    now_ns.saturating_sub(entry.last_seen_ns) > timeout_ns(cfg, entry.state)
}

/// Whether a packet that moves the session to `new_state` at `now_ns`
/// writes its shared entry.
#[inline(always)]
pub const fn refreshes(entry: &NatEntry, new_state: u8, now_ns: u64) -> bool {
    new_state != entry.state || now_ns.saturating_sub(entry.last_seen_ns) > REFRESH_NS
}

/// The NAT port of try `attempt` (0..[`PORT_TRIES`]) of a session whose
/// flow hash is `hash`, in `min..=max` (`NatConfig::port_range`).
#[inline(always)]
pub const fn port_candidate(hash: u32, attempt: u32, min: u16, max: u16) -> u16 {
    // At least 1 whatever the bounds (the config keeps min <= max), so the
    // data plane has no division by zero to guard.
    let range = max.wrapping_sub(min) as u32 + 1;
    let offset = (hash % range + (attempt * PORT_STEP) % range) % range;
    (min as u32 + offset) as u16
}

#[cfg(test)]
mod tests {
    use core::net::IpAddr;

    use super::*;
    use crate::{maps::NatTimeouts, FlowKey, PROTO_UDP};

    const SYN: u8 = TCP_FLAG_SYN;
    const SYN_ACK: u8 = TCP_FLAG_SYN | TCP_FLAG_ACK;
    const ACK: u8 = TCP_FLAG_ACK;
    const FIN_ACK: u8 = TCP_FLAG_FIN | TCP_FLAG_ACK;
    const RST: u8 = TCP_FLAG_RST;

    #[test]
    fn tcp_states_follow_the_flags() {
        let t = PROTO_TCP;
        assert_eq!(next_state(t, None, SYN), STATE_TCP_SYN);
        assert_eq!(next_state(t, Some(STATE_TCP_SYN), SYN_ACK), STATE_TCP_SYN);
        assert_eq!(next_state(t, Some(STATE_TCP_SYN), SYN), STATE_TCP_SYN);
        assert_eq!(
            next_state(t, Some(STATE_TCP_SYN), ACK),
            STATE_TCP_ESTABLISHED
        );
        assert_eq!(
            next_state(t, Some(STATE_TCP_ESTABLISHED), ACK),
            STATE_TCP_ESTABLISHED
        );
        // A SYN does not reopen an established session.
        assert_eq!(
            next_state(t, Some(STATE_TCP_ESTABLISHED), SYN),
            STATE_TCP_ESTABLISHED
        );
        for from in [None, Some(STATE_TCP_SYN), Some(STATE_TCP_ESTABLISHED)] {
            assert_eq!(next_state(t, from, FIN_ACK), STATE_TCP_CLOSING);
            assert_eq!(next_state(t, from, RST), STATE_TCP_CLOSING);
        }
        // Closing stays closing, until a new SYN reuses the tuple.
        assert_eq!(
            next_state(t, Some(STATE_TCP_CLOSING), ACK),
            STATE_TCP_CLOSING
        );
        assert_eq!(next_state(t, Some(STATE_TCP_CLOSING), SYN), STATE_TCP_SYN);
        // A mid-connection packet without a session: established.
        assert_eq!(next_state(t, None, ACK), STATE_TCP_ESTABLISHED);
        assert_eq!(next_state(PROTO_UDP, None, 0), STATE_UDP);
        assert_eq!(next_state(PROTO_UDP, Some(STATE_UDP), 0xff), STATE_UDP);
    }

    #[test]
    fn each_state_has_its_timeout() {
        let t = NatTimeouts {
            tcp_syn_s: 1,
            tcp_established_s: 2,
            tcp_closing_s: 3,
            udp_s: 4,
        };
        let cfg = NatConfig::default().with_timeouts(t);
        let s = 1_000_000_000;
        assert_eq!(timeout_ns(&cfg, STATE_TCP_SYN), s);
        assert_eq!(timeout_ns(&cfg, STATE_TCP_ESTABLISHED), 2 * s);
        assert_eq!(timeout_ns(&cfg, STATE_TCP_CLOSING), 3 * s);
        assert_eq!(timeout_ns(&cfg, STATE_UDP), 4 * s);

        let flow = FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            1,
            IpAddr::from([10, 0, 0, 1]),
            2,
            PROTO_TCP,
        )
        .expect("same family");
        let e = NatEntry::new(&flow, STATE_TCP_CLOSING, 10 * s);
        assert!(!is_expired(&cfg, &e, 13 * s));
        assert!(is_expired(&cfg, &e, 13 * s + 1));
        // A clock read before the entry was written is not an expiry.
        assert!(!is_expired(&cfg, &e, 0));
        let e = NatEntry::new(&flow, STATE_TCP_ESTABLISHED, 10 * s);
        assert!(!is_expired(&cfg, &e, 12 * s));
        assert!(is_expired(&cfg, &e, 12 * s + 1));
    }

    #[test]
    fn entries_are_refreshed_on_a_state_change_or_once_a_second() {
        let flow = FlowKey::default();
        let e = NatEntry::new(&flow, STATE_TCP_ESTABLISHED, REFRESH_NS);
        assert!(!refreshes(&e, STATE_TCP_ESTABLISHED, REFRESH_NS + 5));
        assert!(refreshes(&e, STATE_TCP_CLOSING, REFRESH_NS + 5));
        assert!(refreshes(&e, STATE_TCP_ESTABLISHED, 2 * REFRESH_NS + 1));
    }

    #[test]
    fn port_candidates_stay_in_range_and_are_distinct() {
        for (min, max) in [(1024, 65535), (1, 65535), (40000, 40015), (5, 5)] {
            for hash in [0, 1, 7919, 0xdead_beef, u32::MAX] {
                let ports: [u16; PORT_TRIES as usize] =
                    core::array::from_fn(|i| port_candidate(hash, i as u32, min, max));
                for (i, p) in ports.iter().enumerate() {
                    assert!((min..=max).contains(p), "{p} outside {min}-{max}");
                    let range = u32::from(max - min) + 1;
                    if range >= PORT_TRIES {
                        assert!(!ports[..i].contains(p), "{p} twice for {hash:#x}");
                    }
                }
            }
        }
        // The first candidate follows the hash.
        assert_eq!(port_candidate(0, 0, 1024, 65535), 1024);
        assert_eq!(port_candidate(5, 0, 1024, 65535), 1029);
        assert_eq!(port_candidate(5, 1, 1024, 65535), 1029 + 7919);
    }
}
