//! Sealed batches waiting for the collector's acknowledgement, and the chain head.
//!
//! Invariants:
//! - a batch is written (fsync'd) to `outbox/` *before* the chain head moves past it and
//!   before it is sent, so after a crash the agent resends the very same bytes — the
//!   collector sees a duplicate (acknowledged, not stored twice), never a conflicting fork;
//! - a batch file is deleted only after an `Ack` covering its last sequence number;
//! - if `chain.json` is older than the newest outbox file (crash between the two writes),
//!   the head is recovered from that file.
//!
//! File name: `{first_seq:020}-{last_seq:020}-{spool_through:020}-{reported:020}.batch`,
//! contents: a serialized `SignedBatch`. The last two numbers say which spool records the
//! batch consumed and how much spool loss it reported in a `GAP`: the batch file is the commit
//! point of sealing, so a crash before the spool's own state moved is repaired from them
//! (by the recorder, which owns both). The outbox is small — the sealer keeps at most a window of batches
//! here — and the bounded spool in front of it absorbs long offline periods.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;
use serde::{Deserialize, Serialize};
use sightline_proto::envelope::{self, GENESIS_HASH};
use sightline_proto::pb;

use crate::keys::DeviceKey;
use crate::state::{StateDir, sync_dir, write_atomic};

/// At most this many observations per batch, keeping payloads far below the size limit.
pub const MAX_BATCH_OBSERVATIONS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    pub next_seq: u64,
    #[serde(with = "hex_array")]
    pub head_hash: [u8; 32],
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead { next_seq: 1, head_hash: GENESIS_HASH }
    }
}

#[derive(Debug)]
pub struct Outbox {
    state: StateDir,
    dir: PathBuf,
}

/// A batch waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The last spool record id this batch consumed (0: none).
    pub spool_through: u64,
    /// The spool loss counter reported as of this batch.
    pub reported: u64,
    pub path: PathBuf,
}

/// Which spool records a sealed batch carries, written into its file name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolCursor {
    pub through: u64,
    pub reported: u64,
}

impl Outbox {
    pub fn open(state: &StateDir) -> anyhow::Result<Outbox> {
        let dir = state.file("outbox");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Outbox { state: state.clone(), dir })
    }

    /// The chain head, recovered from the outbox if `chain.json` lags behind it.
    pub fn head(&self) -> anyhow::Result<ChainHead> {
        let mut head = match self.state.read("chain.json")? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| crate::state::Damaged { file: "chain.json", reason: e.to_string() })?,
            None => ChainHead::default(),
        };
        if let Some(last) = self.pending()?.last()
            && last.last_seq >= head.next_seq
        {
            let signed = self.load(last)?;
            head = ChainHead {
                next_seq: last.last_seq + 1,
                head_hash: envelope::batch_hash(&signed.payload, &signed.signature),
            };
        }
        Ok(head)
    }

    /// Numbers, signs and durably queues observations, as many batches as they need;
    /// returns how many were sealed.
    pub fn seal(
        &self,
        key: &dyn DeviceKey,
        device_id: &str,
        mut observations: Vec<pb::Observation>,
        now_ms: i64,
    ) -> anyhow::Result<usize> {
        let mut sealed = 0;
        while !observations.is_empty() {
            let rest = observations.split_off(observations.len().min(MAX_BATCH_OBSERVATIONS));
            let chunk = std::mem::replace(&mut observations, rest);
            self.seal_batch(key, device_id, chunk, now_ms, SpoolCursor::default())?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Seals one batch (at most [`MAX_BATCH_OBSERVATIONS`]) continuing the chain, fsyncs it
    /// into the outbox, then moves the chain head. Returns the batch's last sequence number.
    pub fn seal_batch(
        &self,
        key: &dyn DeviceKey,
        device_id: &str,
        mut chunk: Vec<pb::Observation>,
        now_ms: i64,
        cursor: SpoolCursor,
    ) -> anyhow::Result<u64> {
        anyhow::ensure!(
            !chunk.is_empty() && chunk.len() <= MAX_BATCH_OBSERVATIONS,
            "a batch holds 1 to {MAX_BATCH_OBSERVATIONS} observations (got {})",
            chunk.len()
        );
        let head = self.head()?;
        for (i, o) in chunk.iter_mut().enumerate() {
            o.seq = head.next_seq + i as u64;
        }
        let batch = pb::Batch {
            device_id: device_id.to_owned(),
            first_seq: head.next_seq,
            prev_batch_hash: head.head_hash.to_vec(),
            created_at_ms: now_ms,
            observations: chunk,
        };
        let last_seq = head.next_seq + batch.observations.len() as u64 - 1;
        let (signed, hash) = envelope::seal(&batch, &key.public_key_spki(), |m| key.sign(m))?;
        let path = self.dir.join(format!(
            "{:020}-{last_seq:020}-{:020}-{:020}.batch",
            batch.first_seq, cursor.through, cursor.reported
        ));
        write_atomic(&path, &signed.encode_to_vec(), true)
            .with_context(|| format!("writing {}", path.display()))?;
        let head = ChainHead { next_seq: last_seq + 1, head_hash: hash };
        self.state.write("chain.json", &serde_json::to_vec(&head)?, false)?;
        Ok(last_seq)
    }

    /// Batches not yet acknowledged, oldest first.
    pub fn pending(&self) -> anyhow::Result<Vec<Pending>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".batch")) else { continue };
            let nums: Vec<u64> = stem.split('-').map_while(|n| n.parse().ok()).collect();
            if let [first_seq, last_seq, ref rest @ ..] = nums[..] {
                let (spool_through, reported) = match rest {
                    [t, r] => (*t, *r),
                    _ => (0, 0),
                };
                out.push(Pending { first_seq, last_seq, spool_through, reported, path: entry.path() });
            }
        }
        out.sort_by_key(|p| p.first_seq);
        Ok(out)
    }

    pub fn load(&self, p: &Pending) -> anyhow::Result<pb::SignedBatch> {
        read_batch(&p.path)
    }

    /// Forgets every batch the collector has durably stored.
    pub fn ack(&self, through_seq: u64) -> anyhow::Result<usize> {
        let mut removed = 0;
        for p in self.pending()? {
            if p.last_seq <= through_seq {
                fs::remove_file(&p.path).with_context(|| format!("removing {}", p.path.display()))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads one outbox file.
pub fn read_batch(path: &Path) -> anyhow::Result<pb::SignedBatch> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    pb::SignedBatch::decode(bytes.as_slice())
        .with_context(|| format!("outbox file {} is corrupt", path.display()))
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map_err(|_| serde::de::Error::custom("hash must be 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SoftwareKey;

    fn obs(n: usize) -> Vec<pb::Observation> {
        // Sealing numbers and signs observations whatever they hold.
        vec![pb::Observation::default(); n]
    }

    #[test]
    fn seal_chains_batches_and_ack_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let outbox = Outbox::open(&state).unwrap();
        let key = SoftwareKey::generate().unwrap();
        assert_eq!(outbox.seal(&key, "d1", obs(MAX_BATCH_OBSERVATIONS + 1), 1).unwrap(), 2);
        let pending = outbox.pending().unwrap();
        assert_eq!(
            pending.iter().map(|p| (p.first_seq, p.last_seq)).collect::<Vec<_>>(),
            vec![(1, 500), (501, 501)]
        );

        let first = envelope::open(&outbox.load(&pending[0]).unwrap(), &key.public_key_spki()).unwrap();
        let second = envelope::open(&outbox.load(&pending[1]).unwrap(), &key.public_key_spki()).unwrap();
        assert_eq!(first.prev_hash, GENESIS_HASH);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(outbox.head().unwrap(), ChainHead { next_seq: 502, head_hash: second.hash });

        assert_eq!(outbox.ack(500).unwrap(), 1);
        assert_eq!(outbox.pending().unwrap().len(), 1);
    }

    #[test]
    fn head_recovers_from_outbox_when_chain_file_lags() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let outbox = Outbox::open(&state).unwrap();
        let key = SoftwareKey::generate().unwrap();
        outbox.seal(&key, "d1", obs(3), 1).unwrap();
        let head = outbox.head().unwrap();
        // Simulate a crash after the batch write but before chain.json moved.
        fs::remove_file(state.file("chain.json")).unwrap();
        assert_eq!(outbox.head().unwrap(), head);
    }
}
