//! Resource governance: the agent shares a laptop with someone's work.
//!
//! - [`lower_priority`] makes the whole process nice (Unix), so the scheduler prefers the
//!   user; I/O priority is lowered by the service manager (systemd `IOSchedulingClass=idle`,
//!   launchd `LowPriorityIO`), which can do it without code running as root.
//! - [`Pacer`] keeps scan work within a CPU budget by sleeping in proportion to the work
//!   done: with a 5 % budget, 10 ms of scanning is followed by 190 ms of rest.
//! - [`SelfStats`] measures the agent's own CPU and memory for its health reports and the
//!   memory budget.

use std::time::Duration;

/// Lowers the scheduling priority of the whole agent. Best effort: failure is logged.
pub fn lower_priority(nice: i32) {
    #[cfg(unix)]
    if rustix::process::getpriority_process(None).is_ok_and(|current| current >= nice) {
        // Already as nice (the service manager set Nice=): nothing to ask for.
        return;
    }
    #[cfg(unix)]
    match rustix::process::setpriority_process(None, nice) {
        Ok(()) => tracing::debug!(nice, "Scheduling priority lowered."),
        Err(e) => tracing::warn!(nice, error = %e, "Could not lower the scheduling priority."),
    }
    #[cfg(not(unix))]
    tracing::debug!(nice, "Priority is set by the service manager on this platform.");
}

/// Spreads blocking work so it averages at most `percent` of one core while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    percent: f64,
}

impl Pacer {
    pub fn new(percent: u8) -> Pacer {
        Pacer { percent: f64::from(percent.clamp(1, 100)) }
    }

    /// How long to rest after `worked` of busy time.
    pub fn rest_after(&self, worked: Duration) -> Duration {
        if self.percent >= 100.0 {
            return Duration::ZERO;
        }
        worked.mul_f64((100.0 - self.percent) / self.percent).min(Duration::from_secs(30))
    }

    /// Runs `f` and returns, with its result, the rest it has earned. The caller rests when
    /// it suits it — after recording what `f` found, so pacing never delays an observation.
    #[allow(clippy::disallowed_types, reason = "measures synchronous work on a blocking thread")]
    pub fn measure<T>(&self, f: impl FnOnce() -> T) -> (T, Duration) {
        let started = std::time::Instant::now();
        let out = f();
        (out, self.rest_after(started.elapsed()))
    }
}

/// The agent's own resource use.
pub struct SelfStats {
    sys: sysinfo::System,
    pid: sysinfo::Pid,
}

impl std::fmt::Debug for SelfStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfStats").field("pid", &self.pid).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Percent of one core since the previous sample.
    pub cpu_percent: f32,
    pub rss_bytes: u64,
}

impl Default for SelfStats {
    fn default() -> SelfStats {
        SelfStats::new()
    }
}

impl SelfStats {
    pub fn new() -> SelfStats {
        let mut s =
            SelfStats { sys: sysinfo::System::new(), pid: sysinfo::Pid::from_u32(std::process::id()) };
        s.sample();
        s
    }

    /// CPU since the last call and current RSS. Blocking (reads `/proc/self`).
    pub fn sample(&mut self) -> Usage {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        self.sys
            .process(self.pid)
            .map(|p| Usage { cpu_percent: p.cpu_usage(), rss_bytes: p.memory() })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_is_proportional_to_work_and_budget() {
        let p = Pacer::new(5);
        assert_eq!(p.rest_after(Duration::from_millis(10)), Duration::from_millis(190));
        assert_eq!(Pacer::new(50).rest_after(Duration::from_millis(10)), Duration::from_millis(10));
        assert_eq!(Pacer::new(100).rest_after(Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(p.rest_after(Duration::from_secs(10)), Duration::from_secs(30), "rest is capped");
    }

    #[test]
    fn self_stats_see_this_process() {
        let mut s = SelfStats::new();
        let u = s.sample();
        assert!(u.rss_bytes > 1 << 20, "{u:?}");
    }
}
