//! Writing ingest plans (`store::plan`): set-based, arrays through `unnest`. A group of
//! batches (from the ingest writer) is one transaction and, in the common case, a handful of
//! round trips whatever its size: begin; lock the group's devices (id order) and read their
//! heads and open presence; plan each batch; close presence intervals; one statement writing
//! every batch, observation, new interval, device connector row and head; commit. A device's
//! second batch in a group goes in a second round of the same transaction.
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
use crate::store::plan::{self, Closed, Head, IngestPlan, Planned, SessionChange, Sighting};
use crate::store::{IngestBatch, IngestOutcome, Result, StoreError, hash32};

/// The round's devices, locked in id order, each with its head and its open presence
/// intervals (two arrays, same order).
const HEADS: &str = "SELECT d.id, d.seq_head, d.head_hash, d.revoked_at_ms, d.assurance, \
     ARRAY(SELECT connector_key FROM presence p WHERE p.device_id = d.id AND p.disappeared_at_ms IS NULL \
           ORDER BY connector_key, locus), \
     ARRAY(SELECT locus FROM presence p WHERE p.device_id = d.id AND p.disappeared_at_ms IS NULL \
           ORDER BY connector_key, locus) \
     FROM devices d WHERE d.id = ANY($1::text[]) ORDER BY d.id FOR UPDATE OF d";
const STORED_HASH: &str =
    "SELECT hash FROM batches WHERE device_id = $1 AND first_seq = $2 AND last_seq = $3";
const NEW_CONNECTORS: &str = "INSERT INTO connectors (key, kind, label, first_seen_ms, last_seen_ms, latest) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
     ON CONFLICT (key) DO NOTHING";
/// Before [`STORE`]: an interval reopened in the same batch must be closed first (one open
/// interval per device, connector and locus).
const CLOSE_PRESENCE: &str = "UPDATE presence p SET disappeared_at_ms = GREATEST(p.appeared_at_ms, t.at), \
     disappeared_seq = t.seq FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
     AS t(d, k, l, at, seq) \
     WHERE p.device_id = t.d AND p.connector_key = t.k AND p.locus = t.l AND p.disappeared_at_ms IS NULL";
/// Everything else for the whole round in one statement (data-modifying CTEs all run, to
/// completion): batches, observations, new presence intervals, the devices' connector rows
/// and the new heads. A round names each device once, so no row is touched twice.
const STORE: &str = "WITH \
     b AS (INSERT INTO batches (device_id, first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms) \
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bytea[], \
           $7::bytea[], $8::bigint[])), \
     o AS (INSERT INTO observations (device_id, seq, observed_at_ms, received_at_ms, change, kind, connector_key, \
           os_user, data, assurance) \
           SELECT * FROM unnest($9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[], \
           $15::text[], $16::text[], $17::text[], $18::text[])), \
     p AS (INSERT INTO presence (device_id, connector_key, locus, os_user, appeared_at_ms, appeared_seq, \
           disappeared_at_ms, disappeared_seq) \
           SELECT * FROM unnest($19::text[], $20::text[], $21::text[], $22::text[], $23::bigint[], $24::bigint[], \
           $25::bigint[], $26::bigint[])), \
     cd AS (INSERT INTO connector_devices (connector_key, device_id, os_user, first_seen_ms, last_seen_ms) \
           SELECT * FROM unnest($27::text[], $28::text[], $29::text[], $30::bigint[], $31::bigint[]) \
           ON CONFLICT (connector_key, device_id) DO UPDATE SET \
           first_seen_ms = LEAST(connector_devices.first_seen_ms, excluded.first_seen_ms), \
           last_seen_ms = GREATEST(connector_devices.last_seen_ms, excluded.last_seen_ms), \
           os_user = COALESCE(excluded.os_user, connector_devices.os_user)) \
     UPDATE devices d SET seq_head = t.h, head_hash = t.hh, last_seen_ms = t.at \
     FROM unnest($32::text[], $33::bigint[], $34::bytea[], $35::bigint[]) AS t(id, h, hh, at) WHERE d.id = t.id";
const INVENTORY: &str = "UPDATE devices SET hostname = $1, os = $2, os_version = $3, agent_version = $4, users = $5 WHERE id = $6";
const OUTCOME: &str = "UPDATE directives SET outcome = $3, detail = $4, mode = $5, outcome_at_ms = $6, outcome_seq = $7 \
     WHERE id = $1 AND device_id = $2";
const SESSION_OPEN: &str = "INSERT INTO sessions (device_id, os_user, terminal, host, started_at_ms, appeared_seq) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
const SESSION_CLOSE: &str = "UPDATE sessions SET ended_at_ms = GREATEST(started_at_ms, $5), disappeared_seq = $6 \
     WHERE device_id = $1 AND os_user = $2 AND terminal = $3 AND started_at_ms = $4 AND ended_at_ms IS NULL";

/// A group of batches in one transaction (one durable commit), one result per batch in the
/// given order; `Err` means none of it was written. Devices are locked in id order (batches of
/// one device keep theirs), so two lanes or replicas never wait on each other in a cycle.
pub(super) fn ingest_group(
    conn: &mut Conn,
    group: &[IngestBatch],
    known: &Known,
) -> Result<Vec<Result<IngestOutcome>>> {
    let (client, mut stmts) = conn.parts();
    let mut tx = client.transaction()?;
    let mut out: Vec<Option<Result<IngestOutcome>>> = group.iter().map(|_| None).collect();
    // Rounds of distinct devices: a device's second batch in the group goes in the next
    // round, which sees the first one stored.
    let mut pending: Vec<usize> = (0..group.len()).collect();
    while !pending.is_empty() {
        let mut devices = std::collections::HashSet::new();
        let (mut round, later): (Vec<usize>, Vec<usize>) =
            pending.into_iter().partition(|&i| devices.insert(group[i].device_id.as_str()));
        round.sort_by(|&a, &b| group[a].device_id.cmp(&group[b].device_id));
        store_round(&mut tx, &mut stmts, group, &round, known, &mut out)?;
        pending = later;
    }
    tx.commit()?;
    // Every round answers each of its batches; a gap would misalign answers and senders.
    let out: Vec<Result<IngestOutcome>> = out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(StoreError::Corrupt("a batch of the group got no answer".into()))))
        .collect();
    for (b, r) in group.iter().zip(&out) {
        if matches!(r, Ok(IngestOutcome::Stored { .. })) {
            known.learn(b.observations.iter().filter_map(|o| o.connector.as_ref().map(|c| c.key.as_str())));
        }
    }
    Ok(out)
}

/// One round (distinct devices, in id order): lock the devices and read their heads, decide
/// each batch's verdict, then write every accepted batch with one statement per kind of row.
/// Refusals and unknown devices are answered without writing anything.
fn store_round(
    tx: &mut Transaction<'_>,
    stmts: &mut Prepared<'_>,
    group: &[IngestBatch],
    round: &[usize],
    known: &Known,
    out: &mut [Option<Result<IngestOutcome>>],
) -> Result<()> {
    let ids: Vec<&str> = round.iter().map(|&i| group[i].device_id.as_str()).collect();
    let q = stmts.get(tx, HEADS)?;
    let mut heads = HashMap::with_capacity(ids.len());
    for row in tx.query(&q, &[&ids])? {
        heads.insert(row.try_get::<_, String>(0)?, row);
    }
    let mut accepted: Vec<IngestPlan<'_>> = Vec::with_capacity(round.len());
    for &i in round {
        let b = &group[i];
        let row = heads.get(&b.device_id);
        let head = row
            .map(|r| {
                Ok::<_, StoreError>(Head {
                    seq: r.try_get::<_, i64>(1)? as u64,
                    hash: hash32(r.try_get(2)?)?,
                    revoked: r.try_get::<_, Option<i64>>(3)?.is_some(),
                    assurance: r.try_get(4)?,
                })
            })
            .transpose()?;
        let open = match row {
            Some(r) => {
                r.try_get::<_, Vec<String>>(5)?.into_iter().zip(r.try_get::<_, Vec<String>>(6)?).collect()
            }
            None => Vec::new(),
        };
        let stored_hash = || {
            let q = stmts.get(tx, STORED_HASH)?;
            let stored = tx.query_opt(&q, &[&b.device_id, &(b.first_seq as i64), &(b.last_seq as i64)])?;
            Ok(stored.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()?)
        };
        out[i] = Some(match plan::plan(b, head, open, stored_hash) {
            Err(e) => Err(e),
            Ok(Planned::Refused(refused)) => Ok(refused),
            Ok(Planned::Accepted(p)) => {
                let stored = p.outcome();
                accepted.push(*p);
                Ok(stored)
            }
        });
    }
    if accepted.is_empty() {
        return Ok(());
    }
    insert_new_connectors(tx, stmts, &accepted, known)?;
    close_presence(tx, stmts, &accepted)?;
    store(tx, stmts, &accepted)?;
    for p in &accepted {
        let device = &p.batch.device_id;
        if let Some(inv) = p.inventory() {
            let q = stmts.get(tx, INVENTORY)?;
            let users = serde_json::to_string(&inv.users).unwrap_or_else(|_| "[]".into());
            tx.execute(&q, &[&inv.hostname, &inv.os, &inv.os_version, &inv.agent_version, &users, device])?;
        }
        write_events(tx, stmts, p)?;
        // After `store`'s presence rows: a connector first reported in this batch binds its use.
        crate::store::activity::write(
            &mut super::Db { client: &mut *tx, stmts: stmts.reborrow() },
            device,
            &p.batch.observations,
            p.batch.received_at_ms,
        )?;
    }
    Ok(())
}

/// Connectors this replica has not seen stored yet, before [`STORE`] (whose connector rows
/// refer to them), in key order.
fn insert_new_connectors(
    tx: &mut Transaction<'_>,
    stmts: &mut Prepared<'_>,
    accepted: &[IngestPlan<'_>],
    known: &Known,
) -> Result<()> {
    let mut new: BTreeMap<&str, &Sighting<'_>> = BTreeMap::new();
    for (k, s) in accepted.iter().flat_map(|p| p.connectors.iter()) {
        if !known.contains(k) {
            new.entry(k).or_insert(s);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    let q = stmts.get(tx, NEW_CONNECTORS)?;
    tx.execute(
        &q,
        &[
            &new.keys().copied().collect::<Vec<_>>(),
            &new.values().map(|s| s.kind).collect::<Vec<_>>(),
            &new.values().map(|s| s.label).collect::<Vec<_>>(),
            &new.values().map(|s| s.first_ms).collect::<Vec<_>>(),
            &new.values().map(|s| s.last_ms).collect::<Vec<_>>(),
            &new.values().map(|s| s.latest).collect::<Vec<_>>(),
        ],
    )?;
    Ok(())
}

fn close_presence(
    tx: &mut Transaction<'_>,
    stmts: &mut Prepared<'_>,
    accepted: &[IngestPlan<'_>],
) -> Result<()> {
    let closes: Vec<(&str, &Closed<'_>)> =
        accepted.iter().flat_map(|p| p.closed.iter().map(|c| (p.batch.device_id.as_str(), c))).collect();
    if closes.is_empty() {
        return Ok(());
    }
    let q = stmts.get(tx, CLOSE_PRESENCE)?;
    tx.execute(
        &q,
        &[
            &closes.iter().map(|c| c.0).collect::<Vec<_>>(),
            &closes.iter().map(|c| c.1.key).collect::<Vec<_>>(),
            &closes.iter().map(|c| c.1.locus).collect::<Vec<_>>(),
            &closes.iter().map(|c| c.1.at_ms).collect::<Vec<_>>(),
            &closes.iter().map(|c| c.1.seq as i64).collect::<Vec<_>>(),
        ],
    )?;
    Ok(())
}

/// Column arrays for [`STORE`], one row per batch, observation, new interval and connector.
#[derive(Default)]
struct Columns<'a> {
    b_device: Vec<&'a str>,
    b_first: Vec<i64>,
    b_last: Vec<i64>,
    b_prev: Vec<&'a [u8]>,
    b_hash: Vec<&'a [u8]>,
    b_payload: Vec<&'a [u8]>,
    b_signature: Vec<&'a [u8]>,
    b_received: Vec<i64>,
    o_device: Vec<&'a str>,
    o_seq: Vec<i64>,
    o_at: Vec<i64>,
    o_received: Vec<i64>,
    o_change: Vec<&'a str>,
    o_kind: Vec<&'a str>,
    o_key: Vec<Option<&'a str>>,
    o_user: Vec<Option<&'a str>>,
    o_data: Vec<&'a str>,
    o_assurance: Vec<&'a str>,
    p_device: Vec<&'a str>,
    p_key: Vec<&'a str>,
    p_locus: Vec<&'a str>,
    p_user: Vec<Option<&'a str>>,
    p_at: Vec<i64>,
    p_seq: Vec<i64>,
    p_closed_at: Vec<Option<i64>>,
    p_closed_seq: Vec<Option<i64>>,
    c_key: Vec<&'a str>,
    c_device: Vec<&'a str>,
    c_user: Vec<Option<&'a str>>,
    c_first: Vec<i64>,
    c_last: Vec<i64>,
}

/// Every accepted batch of the round, its observations, new presence intervals, its device's
/// connector rows (which no other device's batch touches) and the new heads: one statement.
fn store<'a>(
    tx: &mut Transaction<'_>,
    stmts: &mut Prepared<'_>,
    accepted: &'a [IngestPlan<'a>],
) -> Result<()> {
    let mut c = Columns::default();
    for p in accepted {
        let b = p.batch;
        let device = b.device_id.as_str();
        c.b_device.push(device);
        c.b_first.push(b.first_seq as i64);
        c.b_last.push(b.last_seq as i64);
        c.b_prev.push(&b.prev_hash);
        c.b_hash.push(&b.hash);
        c.b_payload.push(&b.payload);
        c.b_signature.push(&b.signature);
        c.b_received.push(b.received_at_ms);
        for o in &b.observations {
            c.o_device.push(device);
            c.o_seq.push(o.seq as i64);
            c.o_at.push(o.observed_at_ms);
            c.o_received.push(b.received_at_ms);
            c.o_change.push(o.change.as_str());
            c.o_kind.push(o.kind.as_str());
            c.o_key.push(o.connector.as_ref().map(|c| c.key.as_str()));
            c.o_user.push(o.connector.as_ref().and_then(|c| c.user.as_deref()));
            c.o_data.push(&o.data);
            c.o_assurance.push(&p.assurance);
        }
        for o in &p.opened {
            c.p_device.push(device);
            c.p_key.push(o.key);
            c.p_locus.push(o.locus);
            c.p_user.push(o.user);
            c.p_at.push(o.at_ms);
            c.p_seq.push(o.seq as i64);
            c.p_closed_at.push(o.closed.map(|c| c.0));
            c.p_closed_seq.push(o.closed.map(|c| c.1 as i64));
        }
        for (k, s) in &p.connectors {
            c.c_key.push(k);
            c.c_device.push(device);
            c.c_user.push(s.user);
            c.c_first.push(s.first_ms);
            c.c_last.push(s.last_ms);
        }
    }
    let q = stmts.get(tx, STORE)?;
    tx.execute(
        &q,
        &[
            &c.b_device,
            &c.b_first,
            &c.b_last,
            &c.b_prev,
            &c.b_hash,
            &c.b_payload,
            &c.b_signature,
            &c.b_received,
            &c.o_device,
            &c.o_seq,
            &c.o_at,
            &c.o_received,
            &c.o_change,
            &c.o_kind,
            &c.o_key,
            &c.o_user,
            &c.o_data,
            &c.o_assurance,
            &c.p_device,
            &c.p_key,
            &c.p_locus,
            &c.p_user,
            &c.p_at,
            &c.p_seq,
            &c.p_closed_at,
            &c.p_closed_seq,
            &c.c_key,
            &c.c_device,
            &c.c_user,
            &c.c_first,
            &c.c_last,
            &c.b_device,
            &c.b_last,
            &c.b_hash,
            &c.b_received,
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

    fn learn<'k>(&self, keys: impl Iterator<Item = &'k str>) {
        // Nearly every batch names only known keys: take the write lock only for new ones.
        let new: Vec<&str> = keys.filter(|k| !self.contains(k)).collect();
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
        let seen = plan::sightings(b);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (k, s) in seen {
            match p.0.get_mut(k) {
                Some(f) => {
                    f.first = f.first.min(s.first_ms);
                    f.last = f.last.max(s.last_ms);
                    s.latest.clone_into(&mut f.latest);
                }
                None => {
                    p.0.insert(
                        k.to_owned(),
                        Fold { first: s.first_ms, last: s.last_ms, latest: s.latest.to_owned() },
                    );
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
fn write_events(tx: &mut Transaction<'_>, stmts: &mut Prepared<'_>, p: &IngestPlan<'_>) -> Result<()> {
    let device = &p.batch.device_id;
    for s in &p.settled {
        let (x, seq) = (s.outcome, s.seq as i64);
        let outcome = x.outcome.as_str();
        let q = stmts.get(tx, OUTCOME)?;
        tx.execute(&q, &[&x.directive_id, device, &outcome, &x.detail, &x.mode, &s.at_ms, &seq])?;
    }
    for s in &p.sessions {
        match s {
            SessionChange::Close { session: x, at_ms, seq } => {
                let q = stmts.get(tx, SESSION_CLOSE)?;
                tx.execute(&q, &[device, &x.os_user, &x.terminal, &x.started_at_ms, at_ms, &(*seq as i64)])?;
            }
            SessionChange::Open { session: x, seq } => {
                let q = stmts.get(tx, SESSION_OPEN)?;
                tx.execute(
                    &q,
                    &[device, &x.os_user, &x.terminal, &x.host, &x.started_at_ms, &(*seq as i64)],
                )?;
            }
        }
    }
    Ok(())
}
