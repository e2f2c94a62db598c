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
//! gets a new directive without anyone asking; and the store's periodic upkeep
//! ([`crate::store::Store::maintain`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sightline_proto::{directive, pb};
use tokio::sync::Notify;

use super::{Shared, now_ms};
use crate::pki::Pki;
use crate::store::DirectiveRecord;

/// Signs a directive as the wire carries it: (payload, signature) to store and send as is.
pub fn seal(pki: &Pki, d: &DirectiveRecord, reason: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let action = match d.action.as_str() {
        "terminate_process" => pb::DirectiveAction::TerminateProcess,
        "block_extension" => pb::DirectiveAction::BlockExtension,
        "quarantine_credential" => pb::DirectiveAction::QuarantineCredential,
        other => anyhow::bail!("unknown directive action {other:?}"),
    };
    let body = pb::DirectiveBody {
        id: d.id.clone(),
        device_id: d.device_id.clone(),
        action: action as i32,
        target: d.target.clone(),
        issued_at_ms: d.issued_at_ms,
        expires_at_ms: d.expires_at_ms,
        connector: d.connector_key.clone(),
        reason: reason.to_owned(),
    };
    // `seal` hands over the full message, context included.
    let sealed = directive::seal(&body, |m| pki.sign(b"", m))?;
    Ok((sealed.payload, sealed.signature))
}

/// One open stream: its registration id and its bell.
type Bell = (u64, Arc<Notify>);

/// Open streams by device, each with the bell that tells it to look for directives.
#[derive(Debug, Default)]
pub struct Dispatch {
    streams: Mutex<HashMap<String, Vec<Bell>>>,
    next: AtomicU64,
    /// Rung when this process issued directives, so the poller need not wait for its tick.
    pub issued: Notify,
}

/// A stream's place in the registry; leaving it (drop) unregisters.
pub struct Registration {
    dispatch: Arc<Dispatch>,
    device: String,
    id: u64,
    pub bell: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut m = self.dispatch.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = m.get_mut(&self.device) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                m.remove(&self.device);
            }
        }
    }
}

impl Dispatch {
    pub fn register(self: &Arc<Self>, device: &str) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let bell = Arc::new(Notify::new());
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(device.to_owned())
            .or_default()
            .push((id, bell.clone()));
        Registration { dispatch: self.clone(), device: device.to_owned(), id, bell }
    }

    /// Wakes every open stream of `device`; false if it has none here.
    pub fn ring(&self, device: &str) -> bool {
        let m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(device) {
            Some(v) => {
                // notify_one stores a permit, so a stream busy with a batch sees it next.
                v.iter().for_each(|(_, bell)| bell.notify_one());
                true
            }
            None => false,
        }
    }

    pub fn open_streams(&self) -> usize {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

/// Follows the store's directives until `stop` resolves.
pub async fn run(shared: Shared, poll: Duration, stop: impl Future<Output = ()>) {
    // Streams send what is open when their device attests; only what is issued from now on
    // needs ringing.
    let store = shared.store.clone();
    let mut cursor = match tokio::task::spawn_blocking(move || store.directives_since(0)).await {
        Ok(Ok((_, c))) => c,
        _ => 0,
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(poll) => {}
            _ = shared.dispatch.issued.notified() => {}
        }
        let (s, from) = (shared.clone(), cursor);
        let step = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<String>, i64)> {
            if let Err(e) = s.store.maintain(now_ms()) {
                tracing::warn!(error = %e, "Store upkeep failed; retrying.");
            }
            crate::revoke::reissue(s.store.as_ref(), &s.pki, now_ms())?;
            Ok(s.store.directives_since(from)?)
        })
        .await;
        match step {
            Ok(Ok((devices, next))) => {
                cursor = next;
                for d in devices {
                    if !shared.dispatch.ring(&d) {
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
