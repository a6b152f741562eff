//! The same flow keeps reaching the same backend: with a static
//! configuration, the connection table and the Maglev table agree, so every
//! encapsulated packet of one flow (5-tuple, or source address for a VIP
//! with client affinity) must name the same backend.

use std::{collections::HashMap, net::IpAddr};

use super::{expect::FlowId, judge::Problem};

/// Flows remembered before the memory is cleared (bounds it over long runs
/// of random tuples; a cleared flow is learnt again).
const MAX_FLOWS: usize = 1 << 20;

#[derive(Default)]
pub struct FlowMemory {
    backends: HashMap<FlowId, IpAddr>,
}

impl FlowMemory {
    /// Records that `flow` reached `backend`; a problem if it reached another
    /// one before.
    pub fn check(&mut self, flow: FlowId, backend: IpAddr) -> Option<Problem> {
        if self.backends.len() >= MAX_FLOWS && !self.backends.contains_key(&flow) {
            self.backends.clear();
        }
        let first = *self.backends.entry(flow).or_insert(backend);
        (first != backend).then(|| Problem {
            what: "a flow moved to another backend",
            detail: format!(
                "{flow:?} went to {first} before, now to {backend} (the configuration did not \
                 change)"
            ),
        })
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_that_changes_backend_is_reported() {
        let mut m = FlowMemory::default();
        let flow = FlowId {
            vip: 0,
            src: IpAddr::from([192, 0, 2, 1]),
            rest: Some((IpAddr::from([10, 100, 0, 1]), 1000, 80)),
        };
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(m.check(flow, a), None);
        assert_eq!(m.check(flow, a), None);
        let p = m.check(flow, b).expect("moved");
        assert_eq!(p.what, "a flow moved to another backend");
        let other = FlowId { vip: 1, ..flow };
        assert_eq!(m.check(other, b), None, "another VIP's flow is independent");
        assert_eq!(m.len(), 2);
    }
}
