//! SIEM exports: OCSF events (see [`ocsf`]) delivered to rotating JSON-lines files and to a
//! Splunk HTTP Event Collector.
//!
//! The stored evidence is the outbox. Each sink keeps a cursor per source in the store —
//! observations (insertion order; an `ACTIVITY` one goes out as its session, see
//! [`activity`]), enrollments (time, device), findings (keys already sent),
//! the register's audit events (their storage seq) —
//! and moves it only after a delivery succeeded (the file fsync'd, the collector answered
//! 2xx). An outage or a restart therefore loses nothing; a crash between delivering and
//! moving the cursor can repeat a batch, which receivers drop by `metadata.uid`.

pub mod activity;
pub mod ocsf;
pub mod sink;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::metrics::Sink as SinkLabel;
use crate::state::AppState;
use sink::Sink;

/// Where exports go (`serve --export-dir`, `--hec-url`).
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {
    pub dir: Option<PathBuf>,
    pub rotate_bytes: u64,
    pub hec: Option<sink::HecConfig>,
    /// How often findings are recomputed for export.
    pub findings_every: Duration,
    /// Events per delivery.
    pub batch: usize,
    /// Retry delays after a failed delivery: first and largest.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl ExportConfig {
    pub fn any(&self) -> bool {
        self.dir.is_some() || self.hec.is_some()
    }
}

/// Runs every configured sink until `stop` resolves.
pub async fn run(shared: AppState, config: ExportConfig, stop: impl Future<Output = ()>) {
    let token = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    if let Some(dir) = &config.dir {
        let s = Sink::file(dir.clone(), config.rotate_bytes);
        let span = tracing::info_span!("export", sink = %s.name());
        tasks.push(tokio::spawn(follow(shared.clone(), s, config.clone(), token.clone()).instrument(span)));
    }
    if let Some(h) = &config.hec {
        match Sink::hec(h.clone()) {
            Ok(s) => {
                let span = tracing::info_span!("export", sink = %s.name());
                tasks.push(tokio::spawn(
                    follow(shared.clone(), s, config.clone(), token.clone()).instrument(span),
                ));
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "Splunk HEC export not started."),
        }
    }
    stop.await;
    token.cancel();
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "An export task failed.");
        }
    }
}

/// What one round delivered, and whether a source had more waiting.
struct Round {
    delivered: usize,
    more: bool,
}

/// One sink, forever: deliver what is new, back off on failure, never skip.
async fn follow(
    shared: AppState,
    mut sink: Sink,
    cfg: ExportConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut backoff = cfg.retry_base;
    let mut findings_at: Option<std::time::Instant> = None;
    tracing::info!("Export started.");
    loop {
        let due = findings_at.is_none_or(|t| t.elapsed() >= cfg.findings_every);
        let wait = match round(&shared, &mut sink, &cfg, due).await {
            Ok(r) => {
                backoff = cfg.retry_base;
                if due {
                    findings_at = Some(std::time::Instant::now());
                }
                if r.delivered > 0 {
                    tracing::debug!(events = r.delivered, "Exported.");
                }
                if r.more { Duration::ZERO } else { cfg.retry_base.min(Duration::from_secs(1)) }
            }
            Err(e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(cfg.retry_max);
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?wait, "Export failed; nothing is skipped, retrying.");
                wait
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn blocking<T: Send + 'static>(
    shared: &AppState,
    f: impl FnOnce(&dyn crate::store::Store) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    crate::state::blocking(&shared.store, f).await?
}

async fn round(
    shared: &AppState,
    sink: &mut Sink,
    cfg: &ExportConfig,
    findings_due: bool,
) -> anyhow::Result<Round> {
    let name = sink.name().to_owned();
    let label = SinkLabel { sink: name.clone() };
    let (limit, mut delivered, mut more) = (cfg.batch.max(1), 0, false);

    // Observations, in storage order. An activity observation is exported as its session,
    // bound to person and connectors as the activity query binds it (`activity`).
    let (n, policy) = (name.clone(), shared.policy.clone());
    let (cursor, batch, events, max) = blocking(shared, move |s| {
        let cursor: i64 = s.export_cursor(&n, "observations")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let batch = s.observations_after(cursor, limit)?;
        let mut events = Vec::new();
        for o in &batch {
            if o.kind == crate::domain::ObservationKind::Activity {
                events.extend(activity::from_observation(s, &policy, o)?);
            } else {
                events.extend(ocsf::from_observation(o));
            }
        }
        let last = batch.last().map(|o| o.rowid);
        Ok((cursor, (last, batch.len()), events, s.max_observation_rowid()?))
    })
    .await?;
    shared.metrics.export_backlog.get_or_create(&label).set(max.saturating_sub(cursor));
    if let (Some(last), read) = batch {
        sink.deliver(&events).await?;
        delivered += events.len();
        more |= read == limit;
        let n = name.clone();
        blocking(shared, move |s| Ok(s.set_export_cursor(&n, "observations", &last.to_string())?)).await?;
        shared.metrics.export_backlog.get_or_create(&label).set(max.saturating_sub(last));
    }

    // Enrollments, by (time, device).
    let n = name.clone();
    let devices = blocking(shared, move |s| {
        let c = s.export_cursor(&n, "enrollments")?.unwrap_or_default();
        let (ms, id) = c.split_once('|').unwrap_or(("0", ""));
        Ok(s.enrollments_after(ms.parse().unwrap_or(0), id, limit)?)
    })
    .await?;
    if let Some(last) = devices.last().map(|d| format!("{}|{}", d.enrolled_at_ms, d.id)) {
        let events: Vec<Value> = devices.iter().map(ocsf::from_enrollment).collect();
        sink.deliver(&events).await?;
        delivered += events.len();
        more |= devices.len() == limit;
        let n = name.clone();
        blocking(shared, move |s| Ok(s.set_export_cursor(&n, "enrollments", &last)?)).await?;
    }

    // The register's audit events (owners, approvals, reviews), in storage order.
    let n = name.clone();
    let audit = blocking(shared, move |s| {
        let cursor: i64 = s.export_cursor(&n, "audit")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(s.events_after(cursor, limit)?)
    })
    .await?;
    if let Some(last) = audit.last().map(|e| e.seq) {
        let events: Vec<Value> = audit.iter().map(ocsf::from_audit_event).collect();
        sink.deliver(&events).await?;
        delivered += events.len();
        more |= audit.len() == limit;
        let n = name.clone();
        blocking(shared, move |s| Ok(s.set_export_cursor(&n, "audit", &last.to_string())?)).await?;
    }

    // Findings, each once, when first found.
    if findings_due {
        // The dashboard's fleet snapshot: findings are computed once for every sink and page.
        let (n, policy, cache) = (name.clone(), shared.policy.clone(), shared.views.clone());
        let fresh = blocking(shared, move |s| {
            let snap = cache.get(s, &policy, now_ms())?;
            let sent = s.exported_findings(&n)?;
            Ok(snap
                .findings
                .iter()
                .filter(|f| !sent.contains(&ocsf::finding_key(f)))
                .filter_map(|f| ocsf::from_finding(f, snap.now_ms).map(|e| (ocsf::finding_key(f), e)))
                .collect::<Vec<_>>())
        })
        .await?;
        for chunk in fresh.chunks(limit) {
            let events: Vec<Value> = chunk.iter().map(|(_, e)| e.clone()).collect();
            sink.deliver(&events).await?;
            delivered += events.len();
            let (n, keys): (String, Vec<String>) =
                (name.clone(), chunk.iter().map(|(k, _)| k.clone()).collect());
            blocking(shared, move |s| Ok(s.mark_findings_exported(&n, &keys)?)).await?;
        }
    }
    shared.metrics.exported.get_or_create(&label).inc_by(delivered as u64);
    Ok(Round { delivered, more })
}
