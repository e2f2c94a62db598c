//! `sightline-agent run`: the daemon.
//!
//! ```text
//!  resync timer ─┐
//!  sample timer ─┼─▶ Observer (blocking thread) ─▶ Recorder: spool ─▶ Link (one stream)
//!  watch events ─┤      diff against last view        seal on demand      acks free the outbox
//!  health timer ─┘
//! ```
//!
//! The first look is a full resync (a `SNAPSHOT`); after that the watchers, the process
//! sampler and the hourly resync keep the view current. Looks run one at a time on a blocking
//! thread; the async side only schedules them. SIGTERM stops new looks, then the link flushes
//! and closes within the grace period. `--once` is one resync delivered and acknowledged.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::catalog::update::Updates;
use crate::config::Config;
use crate::deliver::{DeliverOptions, Delivered, DeviceFacts, Link, Mode};
use crate::keys::{self, KeyChoice};
use crate::observe::{LookStats, Observer, Parts};
use crate::recorder::Recorder;
use crate::spool::SpoolConfig;
use crate::state::StateDir;
use crate::watch::{Target, Watcher};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Config,
    pub once: bool,
    pub key_backend: KeyChoice,
    pub deliver: DeliverOptions,
}

/// Runs until `shutdown` resolves (or, with `once`, after one delivered resync).
pub async fn run(opts: RunOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<Delivered> {
    let state = StateDir::open(&opts.config.state_dir)?;
    let enrollment =
        state.enrollment()?.context("this agent is not enrolled; run `sightline-agent enroll` first")?;
    let span = tracing::info_span!("agent", device = %enrollment.device_id);
    async move {
        let config = opts.config.clone();
        let (state_path, choice, tcti) = (state.path().to_owned(), opts.key_backend, config.tpm_tcti.clone());
        let key = tokio::task::spawn_blocking(move || keys::open_with_tcti(&state_path, choice, &tcti)).await??;
        let key: Arc<dyn keys::DeviceKey> = Arc::from(key);
        let (st, id, k, spool) =
            (state.clone(), enrollment.device_id.clone(), key.clone(), SpoolConfig::with_max_bytes(config.spool_max_bytes));
        let recorder = Arc::new(tokio::task::spawn_blocking(move || Recorder::open(&st, spool, &id, k)).await??);
        // A damaged chain head is found now, at start (the caller exits for re-enrollment),
        // not at the first sealing, where delivery would retry it forever.
        let r = recorder.clone();
        tokio::task::spawn_blocking(move || r.outbox().head()).await??;
        // The kept catalog update if it is still good, else the built-in catalog.
        let (state_path, spki) = (state.path().to_owned(), hex::decode(&enrollment.collector_signing_key).unwrap_or_default());
        let (catalogs, catalog) = tokio::task::spawn_blocking(move || Updates::open(&state_path, &spki)).await??;
        tracing::info!(version = catalog.version, "Detection catalog loaded.");
        let catalog_status = catalogs.status();
        let fp = state.fingerprinter()?;

        let watch_enabled = config.watch && !opts.once;
        let (watcher, mut events) = if watch_enabled {
            match Watcher::start() {
                Ok((w, rx)) => (Some(w), Some(rx)),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot watch the filesystem; relying on resyncs.");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let overflowed = watcher.as_ref().map(|w| w.overflowed.clone());
        let view = state.file("inventory.pb");
        let last_error: Arc<Mutex<Option<String>>> = Default::default();
        let parts = Parts {
            config: config.clone(),
            catalog,
            fp,
            recorder: recorder.clone(),
            watcher,
            view,
            link_error: last_error.clone(),
            enforcer: Some(crate::enforce::Enforcer::new(
                state.path(),
                &enrollment.device_id,
                &enrollment.collector_signing_key,
                config.enforcement,
            )),
            catalogs: (!opts.once).then_some(catalogs),
        };
        let observer = tokio::task::spawn_blocking(move || Observer::new(parts)).await?;
        let observer = Arc::new(Mutex::new(observer));
        let (directive_tx, mut directives) = tokio::sync::mpsc::channel(64);
        let (catalog_tx, mut catalog_updates) = tokio::sync::mpsc::channel(4);

        let mut deliver_opts = opts.deliver;
        deliver_opts.grace = config.shutdown_grace;
        let link = Link {
            state: state.clone(),
            enrollment: enrollment.clone(),
            recorder: recorder.clone(),
            key,
            opts: deliver_opts,
            last_error,
            directives: (!opts.once).then_some(directive_tx),
            claims: Arc::new(device_facts),
            catalogs: (!opts.once).then_some(catalog_tx),
            catalog_status: Some(catalog_status),
        };
        tracing::info!(server = %enrollment.server_url, root = %config.root.display(),
                       enforcement = config.enforcement.as_str(), "Agent started.");

        if opts.once {
            let stats = look(&observer, Look::Resync, false).await?;
            tracing::info!(?stats, "Resync recorded.");
            let (_stop_tx, stop_rx) = watch::channel(false);
            tokio::pin!(shutdown);
            return tokio::select! {
                r = link.run(Mode::Drain, stop_rx) => r,
                _ = &mut shutdown => Ok(Delivered::default()),
            };
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let link_task = tokio::spawn(link.run(Mode::Follow, stop_rx).in_current_span());

        tokio::pin!(shutdown);
        let mut resync = tokio::time::interval(config.resync_interval);
        let mut sample = tokio::time::interval_at(Instant::now() + config.process_interval, config.process_interval);
        let mut health = tokio::time::interval_at(Instant::now() + config.health_interval, config.health_interval);
        for t in [&mut resync, &mut sample, &mut health] {
            // A laptop waking from sleep runs one look, not every missed one.
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let sampling = config.processes || config.sessions;
        let mut pending: BTreeSet<Target> = BTreeSet::new();
        let mut settle: Option<Instant> = None;
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => break,
                _ = resync.tick() => Some(Look::Resync),
                _ = sample.tick(), if sampling => Some(Look::Sample),
                _ = health.tick() => Some(Look::Health),
                Some(d) = directives.recv() => Some(Look::Directive(Box::new(d))),
                Some(c) = catalog_updates.recv() => Some(Look::Catalog(Box::new(c))),
                Some(t) = recv(&mut events) => {
                    pending.insert(t);
                    settle.get_or_insert_with(|| Instant::now() + config.debounce);
                    None
                }
                _ = tokio::time::sleep_until(settle.unwrap_or_else(Instant::now)), if settle.is_some() => {
                    settle = None;
                    if overflowed.as_ref().is_some_and(|o| o.swap(false, std::sync::atomic::Ordering::Relaxed)) {
                        Some(Look::Resync)
                    } else {
                        Some(Look::Rescan(std::mem::take(&mut pending)))
                    }
                }
            };
            let Some(next) = next else { continue };
            let is_resync = matches!(next, Look::Resync);
            let is_directive = matches!(next, Look::Directive(_));
            let mut again = BTreeSet::new();
            tokio::select! {
                r = look(&observer, next, true) => match r {
                    Ok(stats) => {
                        again.clone_from(&stats.again);
                        if is_resync {
                            tracing::info!(?stats, "Resync recorded.");
                        } else if is_directive {
                            tracing::info!(?stats, "Directive handled and recorded.");
                        } else if stats.observations > 0 {
                            tracing::info!(?stats, "Changes recorded.");
                        }
                    }
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "Look failed; the next one retries."),
                },
                _ = &mut shutdown => break,
            }
            if is_resync {
                pending.clear();
            }
            // Activity records left unread by a look's byte budget are read by the next
            // rescan of their home, after the usual settling time.
            if !again.is_empty() {
                pending.extend(again);
                settle.get_or_insert_with(|| Instant::now() + config.debounce);
            }
        }
        tracing::info!("Shutdown requested; flushing.");
        stop_tx.send(true).ok();
        let grace = config.shutdown_grace + Duration::from_secs(1);
        match tokio::time::timeout(grace, link_task).await {
            Ok(Ok(r)) => {
                let d = r?;
                tracing::info!(batches = d.batches, through_seq = d.through_seq, "Agent stopped.");
                Ok(d)
            }
            Ok(Err(e)) => Err(e).context("delivery task failed"),
            Err(_) => {
                tracing::warn!("Delivery did not stop within the grace period; unsent batches stay on disk.");
                Ok(Delivered::default())
            }
        }
    }
    .instrument(span)
    .await
}

async fn recv(events: &mut Option<tokio::sync::mpsc::Receiver<Target>>) -> Option<Target> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

enum Look {
    Directive(Box<sightline_proto::pb::Directive>),
    /// A catalog update; taken, it is a resync with the new catalog.
    Catalog(Box<sightline_proto::pb::CatalogUpdate>),
    Resync,
    Rescan(BTreeSet<Target>),
    Sample,
    Health,
}

/// Runs one look on a blocking thread; with `rest`, then takes the rest its work earned
/// under the CPU budget (after recording, so pacing never delays an observation).
async fn look(observer: &Arc<Mutex<Observer>>, what: Look, rest: bool) -> anyhow::Result<LookStats> {
    let observer = observer.clone();
    tokio::task::spawn_blocking(move || {
        let mut o = observer.lock().unwrap_or_else(|p| p.into_inner());
        let r = match what {
            Look::Resync => o.resync(),
            Look::Rescan(targets) => o.rescan(&targets),
            Look::Sample => o.sample(),
            Look::Health => o.health().map(|()| LookStats::default()),
            Look::Directive(d) => o.directive(&d),
            Look::Catalog(c) => o.catalog(&c),
        };
        if rest {
            o.rest();
        }
        r
    })
    .await
    .context("look task")?
}

/// This machine's facts as every stream claims them: the daemon's
/// [`crate::deliver::ClaimsSource`]. Blocking (small file reads).
pub fn device_facts() -> anyhow::Result<DeviceFacts> {
    let facts = crate::scan::live_facts()?;
    let mut users: Vec<String> = crate::detect::sessions::list().into_iter().map(|s| s.user).collect();
    users.sort();
    users.dedup();
    Ok(DeviceFacts {
        hostname: facts.device.hostname,
        os: facts.device.os.as_str().to_owned(),
        os_version: facts.device.os_version,
        serial: facts.serial,
        machine_id: facts.machine_id,
        boot_id: facts.boot_id,
        logged_in_users: users,
        ..DeviceFacts::default()
    })
}
