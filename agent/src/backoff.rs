//! How long the link waits before reconnecting. Its own module because the stream
//! (`deliver`) uses it while the daemon (`run`) only configures its bounds.

use std::time::Duration;

/// Exponential backoff with full jitter, bounded by `max`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max, attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let r = crate::state::random_bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(u32::MAX);
        // Half fixed, half random: spreads reconnect storms without ever retrying instantly.
        ceiling / 2 + ceiling.mul_f64(f64::from(r) / f64::from(u32::MAX) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_bounds_and_grows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut prev_ceiling = Duration::ZERO;
        for i in 0..30 {
            let d = b.next_delay();
            let ceiling = Duration::from_secs(1).saturating_mul(1 << i.min(20)).min(Duration::from_secs(60));
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
            assert!(ceiling >= prev_ceiling);
            prev_ceiling = ceiling;
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
