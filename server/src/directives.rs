//! Getting directives to devices.
//!
//! Directives live in the store (whoever issued them: the API in this process, the `revoke`
//! command in another, later another replica). One poller per collector follows the store
//! with a cursor and wakes the open streams of the devices concerned; each stream then sends
//! whatever its device has not answered yet. A stream also sends its device's open
//! directives right after the device attests, so a directive issued while a laptop was
//! offline reaches it on its next connection. Sending twice is harmless: the agent acts at
//! most once per directive id.
//!
//! The poller also runs [`crate::revoke::reissue`]: a revoked connector that shows up again
//! gets a new directive without anyone asking; the store's periodic upkeep
//! ([`crate::store::RetentionStore::maintain`]); recertification's deadline sweep
//! ([`crate::review::sweep`]); and, every `offboarding` interval, the offboarding playbook
//! ([`crate::offboarding::run`]), whose directives it rings at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::pki::Pki;
use crate::store::{DeviceStore, Store};

/// One open stream: its registration id, the certificate it was opened with, the bell that
/// tells it to look for directives and the signal that ends it (see `standing`).
#[derive(Debug)]
struct Bell {
    id: u64,
    cert_sha256: String,
    bell: Arc<Notify>,
    cut: Arc<Cut>,
}

/// Why a stream must end, set once by the standing watcher.
#[derive(Debug, Default)]
pub struct Cut {
    notify: Notify,
    reason: Mutex<Option<tonic::Status>>,
}

impl Cut {
    fn set(&self, reason: tonic::Status) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason);
            self.notify.notify_one();
        }
    }

    /// Resolves with the reason once the stream has been cut.
    pub async fn wait(&self) -> tonic::Status {
        loop {
            if let Some(r) = self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return r;
            }
            self.notify.notified().await;
        }
    }
}

/// What the store says about a device, for deciding whether its open streams may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub revoked: bool,
    pub cert_sha256: String,
    pub next_cert_sha256: Option<String>,
}

/// Open streams by device, each with the bell that tells it to look for directives.
#[derive(Debug, Default)]
pub struct Dispatch {
    streams: Mutex<HashMap<String, Vec<Bell>>>,
    next: AtomicU64,
    /// Streams not yet attested, by client certificate (see [`Dispatch::pending`]).
    pending: Arc<Mutex<HashMap<String, usize>>>,
    /// Rung when this process issued directives, so the poller need not wait for its tick.
    pub issued: Notify,
}

/// How many streams one client certificate may have open before it has attested: a
/// reconnect overlaps the stream it replaces; more than that is a client holding
/// admission slots it cannot use.
pub const MAX_PENDING_PER_CERT: usize = 2;

/// A stream's place among its certificate's unattested streams; dropping it frees it.
#[derive(Debug)]
pub struct Pending {
    map: Arc<Mutex<HashMap<String, usize>>>,
    cert: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.cert) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.cert);
            }
        }
    }
}

/// A stream's place in the registry; leaving it (drop) unregisters.
pub struct Registration {
    dispatch: Arc<Dispatch>,
    device: String,
    id: u64,
    pub bell: Arc<Notify>,
    pub cut: Arc<Cut>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut m = self.dispatch.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = m.get_mut(&self.device) {
            v.retain(|b| b.id != self.id);
            if v.is_empty() {
                m.remove(&self.device);
            }
        }
    }
}

impl Dispatch {
    /// Claims a place for a new, not yet attested stream of `cert_sha256`; None when that
    /// certificate already has [`MAX_PENDING_PER_CERT`]. Decided without the database.
    pub fn pending(&self, cert_sha256: &str) -> Option<Pending> {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(cert_sha256.to_owned()).or_default();
        if *n >= MAX_PENDING_PER_CERT {
            return None;
        }
        *n += 1;
        Some(Pending { map: self.pending.clone(), cert: cert_sha256.to_owned() })
    }

    /// Registers an attested stream as its device's one live stream: any older stream of the
    /// device on this collector is cut (a reconnecting agent's dead connection, or a second
    /// agent running with a copied identity). Returns the registration and how many were cut.
    pub fn register(self: &Arc<Self>, device: &str, cert_sha256: &str) -> (Registration, usize) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (bell, cut) = (Arc::new(Notify::new()), Arc::new(Cut::default()));
        let mut m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let streams = m.entry(device.to_owned()).or_default();
        for old in streams.iter() {
            old.cut.set(tonic::Status::aborted(
                "replaced by a newer stream of this device (one live stream per device)",
            ));
        }
        let replaced = streams.len();
        streams.push(Bell { id, cert_sha256: cert_sha256.to_owned(), bell: bell.clone(), cut: cut.clone() });
        drop(m);
        (Registration { dispatch: self.clone(), device: device.to_owned(), id, bell, cut }, replaced)
    }

    /// Ends the open streams the store no longer allows: the device was revoked or deleted,
    /// or the stream's certificate was replaced by a renewal. Returns how many.
    pub fn enforce(&self, standing: &HashMap<String, Standing>) -> usize {
        let m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let mut cut = 0;
        for (device, streams) in m.iter() {
            for s in streams {
                let reason = match standing.get(device) {
                    None => Some(tonic::Status::unauthenticated("device no longer exists")),
                    Some(d) if d.revoked => {
                        Some(tonic::Status::permission_denied(format!("device {device} was revoked")))
                    }
                    Some(d)
                        if d.cert_sha256 != s.cert_sha256
                            && d.next_cert_sha256.as_deref() != Some(s.cert_sha256.as_str()) =>
                    {
                        Some(tonic::Status::unauthenticated(
                            "this client certificate was replaced by a renewal; reconnect with the new one",
                        ))
                    }
                    Some(_) => None,
                };
                if let Some(r) = reason {
                    s.cut.set(r);
                    cut += 1;
                }
            }
        }
        cut
    }

    /// Wakes every open stream of `device`; false if it has none here.
    pub fn ring(&self, device: &str) -> bool {
        let m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(device) {
            Some(v) => {
                // notify_one stores a permit, so a stream busy with a batch sees it next.
                v.iter().for_each(|b| b.bell.notify_one());
                true
            }
            None => false,
        }
    }

    pub fn open_streams(&self) -> usize {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

/// Watches the devices with open streams until `stop` resolves: one store read per `poll`
/// for the whole process, however many streams are open (a poll per stream made 10,000
/// connected agents 2,000 queries a second).
pub async fn watch_standing(
    store: Arc<dyn DeviceStore>,
    dispatch: Arc<Dispatch>,
    poll: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(poll) => {}
        }
        if dispatch.open_streams() == 0 {
            continue;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.devices()).await {
            Ok(Ok(devices)) => {
                let standing: HashMap<String, Standing> = devices
                    .into_iter()
                    .map(|d| {
                        let s = Standing {
                            revoked: d.revoked_at_ms.is_some(),
                            cert_sha256: d.cert_sha256,
                            next_cert_sha256: d.next_cert_sha256,
                        };
                        (d.id, s)
                    })
                    .collect();
                let cut = dispatch.enforce(&standing);
                if cut > 0 {
                    tracing::info!(streams = cut, "Ended streams the store no longer allows.");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "Reading device standing failed; retrying."),
            Err(e) => tracing::error!(error = %e, "Device standing task failed."),
        }
    }
}

/// How often the poller runs the offboarding playbook, and under which policy.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub policy: Arc<crate::policy::Policy>,
    pub every: Duration,
}

/// Follows the store's directives until `stop` resolves.
pub async fn run(
    store: Arc<dyn Store>,
    pki: Arc<Pki>,
    dispatch: Arc<Dispatch>,
    poll: Duration,
    playbook: Playbook,
    stop: impl Future<Output = ()>,
) {
    // Streams send what is open when their device attests; only what is issued from now on
    // needs ringing.
    let first = store.clone();
    let mut cursor = match tokio::task::spawn_blocking(move || first.directives_since(0)).await {
        Ok(Ok((_, c))) => c,
        _ => 0,
    };
    // The playbook's first run comes one interval after start, like every other.
    let mut playbook_due = tokio::time::Instant::now() + playbook.every;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(poll) => {}
            _ = dispatch.issued.notified() => {}
        }
        let (store, pki, from) = (store.clone(), pki.clone(), cursor);
        let offboard = (tokio::time::Instant::now() >= playbook_due).then(|| playbook.policy.clone());
        if offboard.is_some() {
            playbook_due = tokio::time::Instant::now() + playbook.every;
        }
        let step = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<String>, i64)> {
            if let Err(e) = store.maintain(now_ms()) {
                tracing::warn!(error = %e, "Store upkeep failed; retrying.");
            }
            // Before the cursor is read, so what the playbook issues is rung in this round.
            if let Some(policy) = offboard
                && let Err(e) = crate::offboarding::run(store.as_ref(), &pki, &policy, now_ms())
            {
                tracing::error!(error = %format!("{e:#}"), "Offboarding playbook failed; retrying at its next run.");
            }
            // Approvals lapse by themselves at read time; this records each lapse once, as
            // an `approval_expired` event in the register's audit log.
            match store.record_expiries(now_ms()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(approvals = n, "Lapsed approvals recorded."),
                Err(e) => tracing::warn!(error = %e, "Recording lapsed approvals failed; retrying."),
            }
            crate::revoke::reissue(store.as_ref(), &pki, now_ms())?;
            // Review deadlines ride the same upkeep: every replica sweeps, the rows decide.
            if let Err(e) = crate::review::sweep(store.as_ref(), &pki, now_ms()) {
                tracing::warn!(error = %format!("{e:#}"), "Review deadline sweep failed; retrying.");
            }
            Ok(store.directives_since(from)?)
        })
        .await;
        match step {
            Ok(Ok((devices, next))) => {
                cursor = next;
                for d in devices {
                    if !dispatch.ring(&d) {
                        tracing::debug!(device = %d, "Directive queued for a device that is not connected.");
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "Following directives failed; retrying.")
            }
            Err(e) => tracing::error!(error = %e, "Directive task failed."),
        }
    }
}
