//! Admission control for telemetry streams.
//!
//! After a collector outage every agent of the fleet reconnects at once (osquery #3706 is
//! that storm knocking a server over). New streams are admitted at a bounded rate (a token
//! bucket) and up to a bounded number at a time; an agent turned away gets a `SlowDown` with
//! a jittered delay, honours it, and its spool keeps everything meanwhile. Admission is
//! decided before any database work, so refusing costs next to nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::rand::SecureRandom;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Admission {
    streams: Arc<Semaphore>,
    max_streams: usize,
    bucket: Mutex<Bucket>,
    rate: f64,
    burst: f64,
    slow_down: Duration,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The verdict on a new stream.
#[derive(Debug)]
pub enum Admit {
    /// Held for the life of the stream.
    Yes(OwnedSemaphorePermit),
    /// Come back after this long.
    SlowDown(Duration),
}

impl Admission {
    /// At most `max_streams` open at once, new ones at `rate` per second (bursts of up to
    /// one second's worth); turned-away agents wait `slow_down` plus up to as much again.
    pub fn new(max_streams: usize, rate: f64, slow_down: Duration) -> Admission {
        let burst = rate.max(1.0);
        Admission {
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            bucket: Mutex::new(Bucket { tokens: burst, at: Instant::now() }),
            rate,
            burst,
            slow_down,
        }
    }

    pub fn admit(&self) -> Admit {
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            return Admit::SlowDown(self.jittered());
        };
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Admit::SlowDown(self.jittered());
        }
        b.tokens -= 1.0;
        Admit::Yes(permit)
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.max_streams - self.streams.available_permits()
    }

    fn jittered(&self) -> Duration {
        let mut b = [0u8; 4];
        let r = ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_or(0.5, |()| f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX));
        self.slow_down + self.slow_down.mul_f64(r)
    }
}

/// New streams per client certificate: a burst, then a steady rate. An agent reconnects a
/// few times an hour; a certificate opening and dropping streams in a loop (to drain the
/// fleet's admission bucket, or because it was revoked and keeps trying) is told to slow
/// down after its burst, before any database read.
#[derive(Debug)]
pub struct PerCert {
    buckets: Mutex<std::collections::HashMap<String, Bucket>>,
    rate: f64,
    burst: f64,
}

impl PerCert {
    /// Entries kept before idle ones are pruned.
    const PRUNE_AT: usize = 50_000;

    pub fn new(rate: f64, burst: f64) -> PerCert {
        PerCert { buckets: Mutex::new(Default::default()), rate, burst }
    }

    /// Takes one token from `cert`'s bucket; false if it is empty.
    pub fn allow(&self, cert: &str) -> bool {
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if m.len() >= Self::PRUNE_AT {
            // A bucket that has refilled completely says nothing: forget it.
            let (rate, burst) = (self.rate, self.burst);
            m.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = m.entry(cert.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_open_streams_and_rate() {
        let a = Admission::new(3, 1000.0, Duration::from_secs(5));
        let held: Vec<_> = (0..3).map(|_| a.admit()).collect();
        assert!(held.iter().all(|h| matches!(h, Admit::Yes(_))));
        assert_eq!(a.open_streams(), 3);
        match a.admit() {
            Admit::SlowDown(d) => assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10)),
            Admit::Yes(_) => panic!("a fourth stream was admitted"),
        }
        drop(held);
        assert_eq!(a.open_streams(), 0);

        let slow = Admission::new(100, 2.0, Duration::from_secs(1));
        let admitted = (0..10).filter(|_| matches!(slow.admit(), Admit::Yes(_))).count();
        assert_eq!(admitted, 2, "a burst is one second's worth");
    }

    #[test]
    fn each_certificate_has_its_own_burst() {
        let p = PerCert::new(0.5, 5.0);
        assert_eq!((0..20).filter(|_| p.allow("a")).count(), 5);
        assert!(p.allow("b"), "another certificate is not affected");
        assert!(!p.allow("a"));
    }
}
