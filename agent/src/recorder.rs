//! From observation to durable, signed evidence:
//!
//! ```text
//! record(obs) ──▶ spool (fsync'd records) ──seal──▶ outbox (signed, chained batches) ──ack──▶ gone
//! ```
//!
//! Observations are recorded unsigned so that overflow can evict the oldest without breaking
//! the signed chain; they get sequence numbers and a signature only when sealed, which the
//! delivery link does on demand, keeping at most a small window of batches in the outbox.
//! A batch that follows spool loss starts with a `GAP` observation carrying the count.
//!
//! Crash safety comes from the order of durable writes: spool records → batch file (whose
//! name records the spool position it consumed and the loss it reported) → spool state. On
//! open, the spool is reconciled from the newest outbox batch, so a crash between the last two
//! neither duplicates nor loses an observation.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use prost::Message;
use sightline_proto::pb;

use crate::keys::DeviceKey;
use crate::outbox::{MAX_BATCH_OBSERVATIONS, Outbox, SpoolCursor};
use crate::spool::{Spool, SpoolConfig};
use crate::state::StateDir;

/// Payload bytes per sealed batch, far below the envelope's limit.
const MAX_BATCH_BYTES: usize = 1 << 20;

pub struct Recorder {
    spool: Mutex<Spool>,
    outbox: Outbox,
    device_id: String,
    key: Arc<dyn DeviceKey>,
    /// Wakes the delivery link when something new was recorded.
    pub recorded: tokio::sync::Notify,
}

/// The spool and outbox at a glance, for health reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Observations recorded but not yet sealed.
    pub spooled: u64,
    pub spool_bytes: u64,
    /// Sealed batches awaiting the collector's acknowledgement.
    pub unacked_batches: u64,
    /// Observations lost to overflow or corruption since the spool was created.
    pub dropped_total: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Opens the spool and outbox of `state` and repairs whatever a crash left between them.
    /// Blocking.
    pub fn open(
        state: &StateDir,
        cfg: SpoolConfig,
        device_id: &str,
        key: Arc<dyn DeviceKey>,
    ) -> anyhow::Result<Recorder> {
        let outbox = Outbox::open(state)?;
        let (mut spool, recovery) = Spool::open(&state.file("spool"), cfg).context("opening the spool")?;
        if recovery.torn_bytes > 0 || recovery.corrupt_records > 0 {
            tracing::warn!(
                torn_bytes = recovery.torn_bytes,
                lost = recovery.corrupt_records,
                "Spool repaired after an unclean stop."
            );
        }
        if let Some(p) = outbox.pending()?.iter().max_by_key(|p| p.spool_through) {
            spool.reconcile(p.spool_through, p.reported)?;
        }
        Ok(Recorder {
            spool: Mutex::new(spool),
            outbox,
            device_id: device_id.to_owned(),
            key,
            recorded: Default::default(),
        })
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        // A panic while holding the lock left the spool as durably known on disk; go on.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Durably records observations (sequence numbers are assigned when sealing). Blocking.
    pub fn record(&self, observations: &[pb::Observation]) -> anyhow::Result<()> {
        if observations.is_empty() {
            return Ok(());
        }
        let records: Vec<Vec<u8>> = observations.iter().map(Message::encode_to_vec).collect();
        self.spool().append(&records)?;
        self.recorded.notify_one();
        Ok(())
    }

    /// Seals spooled observations into batches until the outbox holds `window` batches or the
    /// spool is empty; returns how many were sealed. Blocking (signing, fsync).
    pub fn seal(&self, window: usize, now_ms: i64) -> anyhow::Result<usize> {
        let mut sealed = 0;
        let mut spool = self.spool();
        while self.outbox.pending()?.len() < window {
            let (evicted, reported) = spool.loss_counters();
            let lost = evicted - reported;
            let room = MAX_BATCH_OBSERVATIONS - usize::from(lost > 0);
            let records = spool.peek(room, MAX_BATCH_BYTES)?;
            if records.is_empty() && lost == 0 {
                break;
            }
            let mut obs = Vec::with_capacity(records.len() + 1);
            if lost > 0 {
                obs.push(crate::convert::gap(lost, now_ms));
            }
            for (id, bytes) in &records {
                // Checksummed on disk, so this fails only for a record from an incompatible
                // build: report it as loss rather than stall the spool behind it.
                match pb::Observation::decode(bytes.as_slice()) {
                    Ok(o) => obs.push(o),
                    Err(e) => {
                        tracing::error!(record = id, error = %e, "Undecodable spool record skipped.");
                        obs.push(crate::convert::gap(1, now_ms));
                    }
                }
            }
            let through = records.last().map_or(spool.next_id().saturating_sub(1), |r| r.0);
            let cursor = SpoolCursor { through, reported: evicted };
            self.outbox.seal_batch(self.key.as_ref(), &self.device_id, obs, now_ms, cursor)?;
            spool.commit(through, evicted)?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Forgets batches the collector stored. Blocking.
    pub fn ack(&self, through_seq: u64) -> anyhow::Result<usize> {
        self.outbox.ack(through_seq)
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn key(&self) -> &Arc<dyn DeviceKey> {
        &self.key
    }

    /// Blocking (lists the outbox).
    pub fn depth(&self) -> Depth {
        let spool = self.spool();
        Depth {
            spooled: spool.depth(),
            spool_bytes: spool.bytes(),
            unacked_batches: self.outbox.pending().map_or(0, |p| p.len() as u64),
            dropped_total: spool.evicted_total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SoftwareKey;
    use sightline_proto::envelope;

    fn obs(n: usize) -> Vec<pb::Observation> {
        (0..n)
            .map(|i| {
                let item = pb::observation::Item::ScanError(pb::ScanError {
                    path: format!("/home/alice/{i}"),
                    error: "x".repeat(200),
                });
                crate::convert::observation(pb::Change::Appeared, item, i as i64)
            })
            .collect()
    }

    fn open(dir: &std::path::Path, key: &Arc<dyn DeviceKey>, max: u64) -> Recorder {
        let state = StateDir::open(dir).unwrap();
        Recorder::open(&state, SpoolConfig::with_max_bytes(max), "d1", key.clone()).unwrap()
    }

    fn sealed_observations(r: &Recorder, key: &Arc<dyn DeviceKey>) -> Vec<pb::Observation> {
        let mut out = Vec::new();
        for p in r.outbox().pending().unwrap() {
            let opened = envelope::open(&r.outbox().load(&p).unwrap(), &key.public_key_spki()).unwrap();
            out.extend(opened.batch.observations);
        }
        out
    }

    #[test]
    fn overflow_is_reported_as_one_gap_with_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let key: Arc<dyn DeviceKey> = Arc::new(SoftwareKey::generate().unwrap());
        let r = open(dir.path(), &key, 64 * 1024);
        for chunk in obs(2000).chunks(10) {
            r.record(chunk).unwrap();
        }
        let depth = r.depth();
        assert!(depth.dropped_total > 0);
        r.seal(usize::MAX, 1).unwrap();
        let out = sealed_observations(&r, &key);
        let gaps: Vec<u64> = out
            .iter()
            .filter_map(|o| match &o.item {
                Some(pb::observation::Item::Gap(g)) => Some(g.dropped),
                _ => None,
            })
            .collect();
        assert_eq!(gaps, vec![depth.dropped_total]);
        assert_eq!(out.len() as u64 - 1 + depth.dropped_total, 2000, "kept + dropped = recorded");
        let seqs: Vec<u64> = out.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, (1..=out.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn a_crash_after_sealing_before_the_spool_moved_neither_duplicates_nor_loses() {
        let dir = tempfile::tempdir().unwrap();
        let key: Arc<dyn DeviceKey> = Arc::new(SoftwareKey::generate().unwrap());
        let r = open(dir.path(), &key, 1 << 20);
        r.record(&obs(5)).unwrap();
        let spool_state = std::fs::read(dir.path().join("spool/spool.json")).ok();
        r.seal(8, 1).unwrap();
        drop(r);
        // Put the spool state back as it was before sealing: the batch exists, the spool
        // does not know it was consumed.
        match spool_state {
            Some(b) => std::fs::write(dir.path().join("spool/spool.json"), b).unwrap(),
            None => std::fs::remove_file(dir.path().join("spool/spool.json")).unwrap(),
        }
        let r = open(dir.path(), &key, 1 << 20);
        assert_eq!(r.depth().spooled, 0, "reconciled from the outbox");
        r.record(&obs(2)).unwrap();
        r.seal(8, 2).unwrap();
        assert_eq!(sealed_observations(&r, &key).len(), 7);
    }
}
