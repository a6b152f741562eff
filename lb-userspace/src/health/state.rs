//! The rise/fall state machine of one backend, pure.

/// Health of one backend with its current streak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    /// Consecutive probe results disagreeing with `healthy`.
    streak: u32,
    rise: u32,
    fall: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    /// The backend became healthy (true) or unhealthy (false).
    Changed(bool),
}

impl HealthState {
    pub fn new(healthy: bool, rise: u32, fall: u32) -> Self {
        Self {
            healthy,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one probe result.
    pub fn observe(&mut self, success: bool) -> Outcome {
        if success == self.healthy {
            self.streak = 0;
            return Outcome::Unchanged;
        }
        self.streak += 1;
        let needed = if self.healthy { self.fall } else { self.rise };
        if self.streak >= needed {
            self.healthy = success;
            self.streak = 0;
            return Outcome::Changed(success);
        }
        Outcome::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_after_fall_consecutive_failures() {
        let mut s = HealthState::new(true, 2, 3);
        assert_eq!(s.observe(false), Outcome::Unchanged);
        assert_eq!(s.observe(false), Outcome::Unchanged);
        assert_eq!(s.observe(false), Outcome::Changed(false));
        assert!(!s.healthy());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut s = HealthState::new(true, 2, 3);
        s.observe(false);
        s.observe(false);
        assert_eq!(s.observe(true), Outcome::Unchanged);
        s.observe(false);
        s.observe(false);
        assert!(
            s.healthy(),
            "two failures after a success are not three in a row"
        );
        assert_eq!(s.observe(false), Outcome::Changed(false));
    }

    #[test]
    fn rises_after_rise_consecutive_successes() {
        let mut s = HealthState::new(false, 2, 3);
        assert_eq!(s.observe(true), Outcome::Unchanged);
        assert_eq!(s.observe(false), Outcome::Unchanged);
        assert_eq!(s.observe(true), Outcome::Unchanged);
        assert_eq!(s.observe(true), Outcome::Changed(true));
    }

    #[test]
    fn rise_and_fall_of_one_react_at_once() {
        let mut s = HealthState::new(true, 1, 1);
        assert_eq!(s.observe(false), Outcome::Changed(false));
        assert_eq!(s.observe(true), Outcome::Changed(true));
        // Zero thresholds are treated as one.
        let mut z = HealthState::new(true, 0, 0);
        assert_eq!(z.observe(false), Outcome::Changed(false));
    }
}
