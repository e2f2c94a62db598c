//! `sightline-agent run`: scan, seal into the outbox, deliver; repeat on an interval.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::deliver::{DeliverOptions, Delivered, deliver};
use crate::detect::Limits;
use crate::enroll::now_ms;
use crate::keys::{self, KeyChoice};
use crate::outbox::Outbox;
use crate::scan::{self, ScanOptions};
use crate::state::StateDir;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Config,
    pub once: bool,
    pub key_backend: KeyChoice,
    pub deliver: DeliverOptions,
}

/// Runs until `shutdown` resolves (or, with `once`, after one delivered scan).
pub async fn run(opts: RunOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let state = StateDir::open(&opts.config.state_dir)?;
    let mut enrollment =
        state.enrollment()?.context("this agent is not enrolled; run `sightline-agent enroll` first")?;
    let span = tracing::info_span!("agent", device = %enrollment.device_id);
    async move {
        let state_path = state.path().to_owned();
        let (choice, tcti) = (opts.key_backend, opts.config.tpm_tcti.clone());
        let key = tokio::task::spawn_blocking(move || keys::open_with_tcti(&state_path, choice, &tcti)).await??;
        let key: std::sync::Arc<dyn keys::DeviceKey> = std::sync::Arc::from(key);
        let catalog = std::sync::Arc::new(Catalog::builtin()?);
        let outbox = std::sync::Arc::new(Outbox::open(&state)?);
        tracing::info!(server = %enrollment.server_url, root = %opts.config.root.display(), "Agent started.");

        tokio::pin!(shutdown);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            let cycle = async {
                let sealed = scan_and_seal(&state, &opts.config, &catalog, &key, &outbox, &enrollment.device_id).await?;
                let delivered = deliver(&state, &mut enrollment, &outbox, key.clone(), opts.deliver).await?;
                anyhow::Ok((sealed, delivered))
            };
            let outcome = tokio::select! {
                r = cycle => r,
                _ = &mut shutdown => {
                    tracing::info!("Shutdown requested; unsent batches stay in the outbox for next start.");
                    return Ok(());
                }
            };
            match outcome {
                Ok((sealed, Delivered { batches, through_seq, .. })) => {
                    tracing::info!(sealed, delivered = batches, through_seq, "Scan delivered.");
                    backoff.reset();
                    if opts.once {
                        return Ok(());
                    }
                }
                Err(e) if opts.once => return Err(e),
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?wait, "Delivery failed; batches stay in the outbox.");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = &mut shutdown => return Ok(()),
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(opts.config.scan_interval) => {}
                _ = &mut shutdown => {
                    tracing::info!("Shutdown requested.");
                    return Ok(());
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn scan_and_seal(
    state: &StateDir,
    config: &Config,
    catalog: &std::sync::Arc<Catalog>,
    key: &std::sync::Arc<dyn keys::DeviceKey>,
    outbox: &std::sync::Arc<Outbox>,
    device_id: &str,
) -> anyhow::Result<usize> {
    let fp = state.fingerprinter()?;
    let opts =
        ScanOptions { root: config.root.clone(), processes: config.processes, limits: Limits::default() };
    let (catalog, key, outbox, device_id) =
        (catalog.clone(), key.clone(), outbox.clone(), device_id.to_owned());
    // Walking homes, reading the process table and fsyncing batches all block.
    tokio::task::spawn_blocking(move || {
        let report = scan::run(&opts, &catalog, &fp)?;
        let now = now_ms();
        outbox.seal(key.as_ref(), &device_id, crate::convert::snapshot(&report, now), now)
    })
    .await?
}

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
