//! Storing one verified batch: set-based, arrays through `unnest`, four round trips in the
//! common case whatever the batch size (begin; lock the device and read its open presence;
//! one statement writing the batch, its observations, new presence intervals, the device's
//! connector rows and the new head; commit), under a row lock on the device.
//!
//! The lock is what makes ingest idempotent across replicas: the second of two replicas
//! holding the same batch waits, then finds the head moved and answers `Duplicate`. The
//! batch's primary key (device, first_seq) backs this up should anything bypass the lock.
//! Shared rows (`connectors`, which every laptop with the same extension touches) are kept
//! out of the batch's transaction: it only inserts connectors this replica has not seen
//! (no lock on existing rows). Their first/last seen and latest attributes are a summary
//! (observations and presence are the evidence); each replica folds them in memory and
//! writes them at most once a second, and before anything reads them ([`Folds`]). Updating
//! the hot rows in every batch serialised the whole fleet on their locks and bloated them.

use std::collections::{BTreeMap, HashMap};

use postgres::Transaction;

use super::pool::{Conn, Prepared};
use crate::store::{IngestBatch, IngestOutcome, Result, StoreError, hash32};

/// The device's head, locked, with its open presence intervals (two arrays, same order).
const HEAD: &str = "SELECT seq_head, head_hash, revoked_at_ms, assurance, \
     ARRAY(SELECT connector_key FROM presence WHERE device_id = $1 AND disappeared_at_ms IS NULL \
           ORDER BY connector_key, locus), \
     ARRAY(SELECT locus FROM presence WHERE device_id = $1 AND disappeared_at_ms IS NULL \
           ORDER BY connector_key, locus) \
     FROM devices WHERE id = $1 FOR UPDATE";
const STORED_HASH: &str =
    "SELECT hash FROM batches WHERE device_id = $1 AND first_seq = $2 AND last_seq = $3";
const NEW_CONNECTORS: &str = "INSERT INTO connectors (key, kind, label, first_seen_ms, last_seen_ms, latest) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
     ON CONFLICT (key) DO NOTHING";
/// Before [`STORE`]: an interval reopened in the same batch must be closed first (one open
/// interval per device, connector and locus).
const CLOSE_PRESENCE: &str = "UPDATE presence p SET disappeared_at_ms = GREATEST(p.appeared_at_ms, t.at), \
     disappeared_seq = t.seq FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS t(k, l, at, seq) \
     WHERE p.device_id = $1 AND p.connector_key = t.k AND p.locus = t.l AND p.disappeared_at_ms IS NULL";
/// Everything else in one statement (data-modifying CTEs all run, to completion).
const STORE: &str = "WITH \
     b AS (INSERT INTO batches (device_id, first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)), \
     o AS (INSERT INTO observations (device_id, seq, observed_at_ms, received_at_ms, change, kind, connector_key, \
           os_user, data, assurance) SELECT $1, s, o, $8, c, k, ck, u, d, $9 \
           FROM unnest($10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[]) \
           AS t(s, o, c, k, ck, u, d)), \
     p AS (INSERT INTO presence (device_id, connector_key, locus, os_user, appeared_at_ms, appeared_seq, \
           disappeared_at_ms, disappeared_seq) SELECT $1, k, l, u, a, s, da, ds \
           FROM unnest($17::text[], $18::text[], $19::text[], $20::bigint[], $21::bigint[], $22::bigint[], \
           $23::bigint[]) AS t(k, l, u, a, s, da, ds)), \
     cd AS (INSERT INTO connector_devices (connector_key, device_id, os_user, first_seen_ms, last_seen_ms) \
           SELECT k, $1, u, f, l FROM unnest($24::text[], $25::text[], $26::bigint[], $27::bigint[]) AS t(k, u, f, l) \
           ON CONFLICT (connector_key, device_id) DO UPDATE SET \
           first_seen_ms = LEAST(connector_devices.first_seen_ms, excluded.first_seen_ms), \
           last_seen_ms = GREATEST(connector_devices.last_seen_ms, excluded.last_seen_ms), \
           os_user = COALESCE(excluded.os_user, connector_devices.os_user)) \
     UPDATE devices SET seq_head = $3, head_hash = $5, last_seen_ms = $8 WHERE id = $1";
const INVENTORY: &str = "UPDATE devices SET hostname = $1, os = $2, os_version = $3, agent_version = $4, users = $5 WHERE id = $6";
const OUTCOME: &str = "UPDATE directives SET outcome = $3, detail = $4, mode = $5, outcome_at_ms = $6, outcome_seq = $7 \
     WHERE id = $1 AND device_id = $2";
const SESSION_OPEN: &str = "INSERT INTO sessions (device_id, os_user, terminal, host, started_at_ms, appeared_seq) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
const SESSION_CLOSE: &str = "UPDATE sessions SET ended_at_ms = GREATEST(started_at_ms, $5), disappeared_seq = $6 \
     WHERE device_id = $1 AND os_user = $2 AND terminal = $3 AND started_at_ms = $4 AND ended_at_ms IS NULL";

pub(super) fn ingest(conn: &mut Conn, b: &IngestBatch, known: &Known) -> Result<IngestOutcome> {
    let (client, mut stmts) = conn.parts();
    let mut tx = client.transaction()?;
    let head = stmts.get(&mut tx, HEAD)?;
    let Some(row) = tx.query_opt(&head, &[&b.device_id])? else {
        return Err(StoreError::UnknownDevice(b.device_id.clone()));
    };
    if row.try_get::<_, Option<i64>>(2)?.is_some() {
        return Ok(IngestOutcome::Revoked);
    }
    let seq_head = row.try_get::<_, i64>(0)? as u64;
    let head_hash = hash32(row.try_get(1)?)?;
    let stored_hash = || {
        let q = stmts.get(&mut tx, STORED_HASH)?;
        let stored = tx.query_opt(&q, &[&b.device_id, &(b.first_seq as i64), &(b.last_seq as i64)])?;
        Ok(stored.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()?)
    };
    if let Some(refused) = b.verdict(seq_head, head_hash, stored_hash)? {
        return Ok(refused);
    }
    let assurance: String = row.try_get(3)?;
    let open_keys: Vec<String> = row.try_get(4)?;
    let open_loci: Vec<String> = row.try_get(5)?;

    let seen = Seen::fold(b);
    let presence = Replay::run(b, open_keys.into_iter().zip(open_loci));
    seen.insert_new(&mut tx, &mut stmts, known)?;
    presence.close(&mut tx, &mut stmts, &b.device_id)?;
    store(&mut tx, &mut stmts, b, &assurance, &seen, &presence)?;
    if let Some(inv) = &b.inventory {
        let q = stmts.get(&mut tx, INVENTORY)?;
        let users = serde_json::to_string(&inv.users).unwrap_or_else(|_| "[]".into());
        tx.execute(&q, &[&inv.hostname, &inv.os, &inv.os_version, &inv.agent_version, &users, &b.device_id])?;
    }
    write_events(&mut tx, &mut stmts, b)?;
    tx.commit()?;
    known.learn(seen.0.keys());
    Ok(IngestOutcome::Stored { head: b.last_seq, head_hash: b.hash })
}

/// The batch, its observations, new presence intervals, this device's connector rows (which
/// no other device's batch touches) and the new head, in one statement.
fn store(
    tx: &mut Transaction<'_>,
    stmts: &mut Prepared<'_>,
    b: &IngestBatch,
    assurance: &str,
    seen: &Seen<'_>,
    presence: &Replay<'_>,
) -> Result<()> {
    let n = b.observations.len();
    let (mut seq, mut at, mut change, mut kind) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut key, mut user, mut data) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for o in &b.observations {
        seq.push(o.seq as i64);
        at.push(o.observed_at_ms);
        change.push(o.change);
        kind.push(o.kind);
        key.push(o.connector.as_ref().map(|c| c.key.as_str()));
        user.push(o.connector.as_ref().and_then(|c| c.user.as_deref()));
        data.push(o.data.to_string());
    }
    let new = &presence.opened;
    let q = stmts.get(tx, STORE)?;
    tx.execute(
        &q,
        &[
            &b.device_id,
            &(b.first_seq as i64),
            &(b.last_seq as i64),
            &b.prev_hash.as_slice(),
            &b.hash.as_slice(),
            &b.payload,
            &b.signature,
            &b.received_at_ms,
            &assurance,
            &seq,
            &at,
            &change,
            &kind,
            &key,
            &user,
            &data,
            &new.iter().map(|p| p.key).collect::<Vec<_>>(),
            &new.iter().map(|p| p.locus).collect::<Vec<_>>(),
            &new.iter().map(|p| p.user).collect::<Vec<_>>(),
            &new.iter().map(|p| p.at).collect::<Vec<_>>(),
            &new.iter().map(|p| p.seq).collect::<Vec<_>>(),
            &new.iter().map(|p| p.closed.map(|c| c.0)).collect::<Vec<_>>(),
            &new.iter().map(|p| p.closed.map(|c| c.1)).collect::<Vec<_>>(),
            &seen.keys(),
            &seen.column(|s| s.user),
            &seen.column(|s| s.first),
            &seen.column(|s| s.last),
        ],
    )?;
    Ok(())
}

/// Connector keys known to exist in the database (rows are never deleted).
#[derive(Default)]
pub(super) struct Known(std::sync::RwLock<std::collections::HashSet<String>>);

impl Known {
    fn contains(&self, key: &str) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).contains(key)
    }

    fn learn<'k>(&self, keys: impl Iterator<Item = &'k &'k str>) {
        // Nearly every batch names only known keys: take the write lock only for new ones.
        let new: Vec<&str> = keys.copied().filter(|k| !self.contains(k)).collect();
        if new.is_empty() {
            return;
        }
        let mut set = self.0.write().unwrap_or_else(|p| p.into_inner());
        set.extend(new.into_iter().map(str::to_owned));
    }
}

/// A connector's summary columns as batches since the last write saw them.
#[derive(Debug, Clone)]
struct Fold {
    first: i64,
    last: i64,
    latest: String,
}

/// This replica's pending summary updates, written by [`Folds::flush`].
pub(super) struct Folds {
    pending: std::sync::Mutex<(BTreeMap<String, Fold>, std::time::Instant)>,
    /// Serialises writers, so two flushes never lock the same rows in one process.
    writing: std::sync::Mutex<()>,
}

impl Default for Folds {
    fn default() -> Folds {
        Folds {
            pending: std::sync::Mutex::new((BTreeMap::new(), std::time::Instant::now())),
            writing: Default::default(),
        }
    }
}

const FOLD_CONNECTORS: &str = "UPDATE connectors c SET first_seen_ms = LEAST(c.first_seen_ms, t.f), \
     last_seen_ms = GREATEST(c.last_seen_ms, t.l), latest = t.j \
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS t(k, f, l, j) WHERE c.key = t.k";

impl Folds {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Adds a stored batch's sightings; true when the pending folds are due to be written.
    pub(super) fn add(&self, b: &IngestBatch) -> bool {
        let seen = Seen::fold(b);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (k, s) in seen.0 {
            match p.0.get_mut(k) {
                Some(f) => {
                    f.first = f.first.min(s.first);
                    f.last = f.last.max(s.last);
                    f.latest = s.latest;
                }
                None => {
                    p.0.insert(k.to_owned(), Fold { first: s.first, last: s.last, latest: s.latest });
                }
            }
        }
        !p.0.is_empty() && p.1.elapsed() >= Self::EVERY
    }

    /// Writes the pending folds in one statement, in key order (lock order across replicas).
    /// On failure they are put back, to be tried again.
    pub(super) fn flush(&self, conn: &mut Conn) -> Result<()> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.1 = std::time::Instant::now();
            std::mem::take(&mut p.0)
        };
        if batch.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = batch.keys().map(String::as_str).collect();
        let first: Vec<i64> = batch.values().map(|f| f.first).collect();
        let last: Vec<i64> = batch.values().map(|f| f.last).collect();
        let latest: Vec<&str> = batch.values().map(|f| f.latest.as_str()).collect();
        let (client, mut stmts) = conn.parts();
        let written = stmts
            .prepare(client, FOLD_CONNECTORS)
            .and_then(|q| Ok(client.execute(&q, &[&keys, &first, &last, &latest])?));
        if let Err(e) = written {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (k, f) in batch {
                p.0.entry(k).or_insert(f);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Directive outcomes and login sessions: a few per batch at most, so one statement each.
fn write_events(tx: &mut Transaction<'_>, stmts: &mut Prepared<'_>, b: &IngestBatch) -> Result<()> {
    for o in &b.observations {
        let seq = o.seq as i64;
        // Only the device a directive was issued to can settle it.
        if let Some(x) = &o.directive {
            let q = stmts.get(tx, OUTCOME)?;
            tx.execute(
                &q,
                &[&x.directive_id, &b.device_id, &x.outcome, &x.detail, &x.mode, &o.observed_at_ms, &seq],
            )?;
        }
        if let Some(s) = &o.session {
            if o.change == "disappeared" {
                let q = stmts.get(tx, SESSION_CLOSE)?;
                tx.execute(
                    &q,
                    &[&b.device_id, &s.os_user, &s.terminal, &s.started_at_ms, &o.observed_at_ms, &seq],
                )?;
            } else {
                let q = stmts.get(tx, SESSION_OPEN)?;
                tx.execute(&q, &[&b.device_id, &s.os_user, &s.terminal, &s.host, &s.started_at_ms, &seq])?;
            }
        }
    }
    Ok(())
}

/// A presence interval this batch opens (and perhaps closes again).
struct Opened<'a> {
    key: &'a str,
    locus: &'a str,
    user: Option<&'a str>,
    at: i64,
    seq: i64,
    closed: Option<(i64, i64)>,
}

enum Open {
    /// Open in the database before this batch.
    Stored,
    /// Opened by this batch: index into the new intervals.
    New(usize),
}

/// The batch's sightings replayed against the device's open intervals (same rules as the
/// SQLite store: a repeated sighting keeps an interval open, a repeated disappearance finds
/// nothing to close): which stored intervals close, which new ones open (and maybe close).
struct Replay<'a> {
    opened: Vec<Opened<'a>>,
    closes: Vec<(&'a str, &'a str, i64, i64)>,
}

impl<'a> Replay<'a> {
    fn run(b: &'a IngestBatch, open: impl Iterator<Item = (String, String)>) -> Replay<'a> {
        let mut state: HashMap<(String, String), Open> = open.map(|id| (id, Open::Stored)).collect();
        let mut r = Replay { opened: Vec::new(), closes: Vec::new() };
        for o in &b.observations {
            let Some(c) = &o.connector else { continue };
            let id = (c.key.clone(), c.locus.clone());
            let seq = o.seq as i64;
            if o.change == "disappeared" {
                match state.remove(&id) {
                    Some(Open::Stored) => r.closes.push((&c.key, &c.locus, o.observed_at_ms, seq)),
                    Some(Open::New(i)) => {
                        let p = &mut r.opened[i];
                        p.closed = Some((p.at.max(o.observed_at_ms), seq));
                    }
                    None => {}
                }
            } else if let std::collections::hash_map::Entry::Vacant(v) = state.entry(id) {
                v.insert(Open::New(r.opened.len()));
                r.opened.push(Opened {
                    key: &c.key,
                    locus: &c.locus,
                    user: c.user.as_deref(),
                    at: o.observed_at_ms,
                    seq,
                    closed: None,
                });
            }
        }
        r
    }

    fn close(&self, tx: &mut Transaction<'_>, stmts: &mut Prepared<'_>, device: &str) -> Result<()> {
        if self.closes.is_empty() {
            return Ok(());
        }
        let q = stmts.get(tx, CLOSE_PRESENCE)?;
        let c = &self.closes;
        tx.execute(
            &q,
            &[
                &device,
                &c.iter().map(|c| c.0).collect::<Vec<_>>(),
                &c.iter().map(|c| c.1).collect::<Vec<_>>(),
                &c.iter().map(|c| c.2).collect::<Vec<_>>(),
                &c.iter().map(|c| c.3).collect::<Vec<_>>(),
            ],
        )?;
        Ok(())
    }
}

/// One connector as this batch saw it.
struct Sighting<'a> {
    kind: &'a str,
    label: &'a str,
    first: i64,
    last: i64,
    latest: String,
    /// The last account named, as the per-row upsert's COALESCE would leave it.
    user: Option<&'a str>,
}

/// The batch's connectors folded to one row each, in key order (lock order).
struct Seen<'a>(BTreeMap<&'a str, Sighting<'a>>);

impl<'a> Seen<'a> {
    fn fold(b: &'a IngestBatch) -> Seen<'a> {
        let mut seen: BTreeMap<&str, Sighting<'_>> = BTreeMap::new();
        for o in &b.observations {
            let Some(c) = &o.connector else { continue };
            let at = o.observed_at_ms;
            let s = seen.entry(&c.key).or_insert_with(|| Sighting {
                kind: c.kind,
                label: &c.label,
                first: at,
                last: at,
                latest: String::new(),
                user: None,
            });
            s.first = s.first.min(at);
            s.last = s.last.max(at);
            s.latest = o.data.to_string();
            s.user = c.user.as_deref().or(s.user);
        }
        Seen(seen)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().copied().collect()
    }

    fn column<'s, T>(&'s self, f: impl Fn(&'s Sighting<'a>) -> T) -> Vec<T> {
        self.0.values().map(f).collect()
    }

    /// Inside the batch's transaction, before [`STORE`] (whose connector rows refer to them):
    /// connectors this replica has not seen stored yet.
    fn insert_new(&self, tx: &mut Transaction<'_>, stmts: &mut Prepared<'_>, known: &Known) -> Result<()> {
        let new: Vec<(&&str, &Sighting<'_>)> = self.0.iter().filter(|(k, _)| !known.contains(k)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let q = stmts.get(tx, NEW_CONNECTORS)?;
        tx.execute(
            &q,
            &[
                &new.iter().map(|(k, _)| **k).collect::<Vec<_>>(),
                &new.iter().map(|(_, s)| s.kind).collect::<Vec<_>>(),
                &new.iter().map(|(_, s)| s.label).collect::<Vec<_>>(),
                &new.iter().map(|(_, s)| s.first).collect::<Vec<_>>(),
                &new.iter().map(|(_, s)| s.last).collect::<Vec<_>>(),
                &new.iter().map(|(_, s)| s.latest.as_str()).collect::<Vec<_>>(),
            ],
        )?;
        Ok(())
    }
}
