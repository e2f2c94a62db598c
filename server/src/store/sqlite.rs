//! The embedded SQLite store (WAL mode, so query commands can read while the collector
//! writes).
//!
//! Schema changes are numbered migrations applied at open (`PRAGMA user_version`).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::devices;
use super::plan::{self, Head, IngestPlan, Planned, SessionChange};
use super::read::Outbox;
use super::rows;
use super::schema;
use super::sql::{Database, Dialect, Lite, Sql, args};
use super::{
    ClaimsRecord, ExportObservation, IngestBatch, IngestOutcome, IngestStore, Pruned, Result, RetentionStore,
    StoreError, hash32,
};

/// Fills `person_keys` from the people table (what `write_person` keeps up to date).
macro_rules! person_keys_backfill {
    () => {
        r#"
INSERT INTO person_keys SELECT lower(user_name), id FROM people;
INSERT INTO person_keys SELECT lower(substr(user_name, 1, instr(user_name, '@') - 1)), id FROM people
    WHERE instr(user_name, '@') > 1;
INSERT INTO person_keys SELECT lower(j.value), p.id FROM people p, json_each(p.emails) j;
INSERT INTO person_keys SELECT lower(substr(j.value, 1, instr(j.value, '@') - 1)), p.id
    FROM people p, json_each(p.emails) j WHERE instr(j.value, '@') > 1;
"#
    };
}

/// The schema as numbered migrations, applied at open (`PRAGMA user_version`): step `i`
/// takes a database from version `i` to `i + 1`.
fn migrations() -> Vec<String> {
    let m = |pieces: &[&str]| schema::migration(Dialect::Sqlite, pieces);
    vec![
        m(&[
            schema::ENROLLMENT,
            schema::BATCHES,
            r#"
CREATE TABLE observations (
    device_id      TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    observed_at_ms INTEGER NOT NULL,
    change         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    connector_key  TEXT,
    os_user        TEXT,
    data           TEXT NOT NULL,
    assurance      TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX observations_connector ON observations(connector_key, observed_at_ms);
"#,
            schema::CONNECTORS,
        ]),
        m(&[
            r#"
ALTER TABLE devices ADD COLUMN last_attested_ms INTEGER;
-- A renewed certificate is pending until the agent first connects with it; until then the
-- current one keeps working, so a crash mid-renewal cannot lock a device out.
ALTER TABLE devices ADD COLUMN next_cert_sha256 TEXT;
"#,
            schema::DEVICE_CLAIMS,
        ]),
        m(&[schema::TPM_CHALLENGES]),
        m(&[r#"
-- The hardware a device's key lives in (SHA-256 of its TPM's EK public area): enrolling the
-- same TPM again maps to the same device record.
ALTER TABLE devices ADD COLUMN hardware_id TEXT;
CREATE UNIQUE INDEX devices_hardware_id ON devices(hardware_id) WHERE hardware_id IS NOT NULL;
"#]),
        m(&[schema::PRESENCE]),
        m(&[schema::API_TOKENS]),
        m(&[
            schema::PEOPLE,
            "CREATE UNIQUE INDEX people_user_name ON people(user_name COLLATE NOCASE) WHERE deleted_at_ms IS NULL;\n",
        ]),
        m(&[schema::SESSIONS]),
        m(&[schema::SIGNINS, "CREATE INDEX signins_user ON signins(user_name, at_ms);\n"]),
        m(&[r#"
-- Triage by person looks up their OS accounts' connectors directly; by device, its sessions.
CREATE INDEX presence_user ON presence(os_user, appeared_at_ms);
CREATE INDEX sessions_device ON sessions(device_id, started_at_ms);
"#]),
        m(&[schema::DIRECTIVES]),
        m(&[schema::PERSON_KEYS, person_keys_backfill!()]),
        m(&[
            schema::DECISIONS_AND_UI_SESSIONS,
            "CREATE INDEX devices_hostname ON devices(hostname);\nCREATE INDEX devices_last_seen ON devices(last_seen_ms);\n",
        ]),
        m(&[schema::EXPORTS, "CREATE INDEX devices_enrolled ON devices(enrolled_at_ms, id);\n"]),
        m(&[schema::LIFECYCLE]),
        m(&[schema::EXPORT_CHANGES]),
        m(&[schema::OIDC]),
        m(&[
            schema::SCIM_PROFILE_AND_GROUPS,
            "CREATE UNIQUE INDEX scim_groups_name ON scim_groups(display_name COLLATE NOCASE);\n",
        ]),
        m(&[schema::CATALOG_STATUS]),
        m(&[schema::REGISTER]),
        m(&[schema::APPROVALS]),
        m(&[schema::REVIEWS]),
        m(&[schema::ACTIVITY]),
    ]
}

/// SQLite behind one connection. A std mutex is right here: every call is short, none
/// awaits, and all callers are already on blocking threads.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    /// The group in one transaction; `Err` means none of it was written.
    fn ingest_group(&self, batches: &[IngestBatch]) -> Result<Vec<Result<IngestOutcome>>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            out.push(match ingest_in(&tx, b) {
                Err(StoreError::UnknownDevice(d)) => Err(StoreError::UnknownDevice(d)),
                r => Ok(r?),
            });
        }
        tx.commit()?;
        Ok(out)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One batch inside an open write transaction: read the head and open intervals, plan,
/// write the plan. Refusals and an unknown device return before writing anything.
fn ingest_in(tx: &rusqlite::Transaction<'_>, b: &IngestBatch) -> Result<IngestOutcome> {
    let head = tx
        .query_row(
            "SELECT seq_head, head_hash, revoked_at_ms, assurance FROM devices WHERE id = ?1",
            params![b.device_id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Option<i64>>(2)?, r.get(3)?)),
        )
        .optional()?
        .map(|(seq, hash, revoked, assurance)| {
            Ok::<_, StoreError>(Head {
                seq: seq as u64,
                hash: hash32(hash)?,
                revoked: revoked.is_some(),
                assurance,
            })
        })
        .transpose()?;
    let mut open = Vec::new();
    if head.is_some() && b.observations.iter().any(|o| o.connector.is_some()) {
        let mut q = tx.prepare_cached(
            "SELECT connector_key, locus FROM presence WHERE device_id = ?1 AND disappeared_at_ms IS NULL",
        )?;
        open = q
            .query_map(params![b.device_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
    }
    let stored_hash = || {
        Ok(tx
            .query_row(
                "SELECT hash FROM batches WHERE device_id = ?1 AND first_seq = ?2 AND last_seq = ?3",
                params![b.device_id, b.first_seq as i64, b.last_seq as i64],
                |r| r.get(0),
            )
            .optional()?)
    };
    match plan::plan(b, head, open, stored_hash)? {
        Planned::Refused(outcome) => Ok(outcome),
        Planned::Accepted(p) => {
            write_plan(tx, &p)?;
            Ok(p.outcome())
        }
    }
}

/// Writes an accepted batch's plan: row by row, every statement cached.
fn write_plan(tx: &rusqlite::Transaction<'_>, p: &IngestPlan<'_>) -> Result<()> {
    let b = p.batch;
    let device = &b.device_id;
    tx.prepare_cached(
        "INSERT INTO batches (device_id, first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        device,
        b.first_seq as i64,
        b.last_seq as i64,
        b.prev_hash.as_slice(),
        b.hash.as_slice(),
        b.payload,
        b.signature,
        b.received_at_ms
    ])?;
    let mut q = tx.prepare_cached(
        "INSERT INTO observations (device_id, seq, observed_at_ms, change, kind, connector_key, os_user, data, assurance) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for o in &b.observations {
        q.execute(params![
            device,
            o.seq as i64,
            o.observed_at_ms,
            o.change.as_str(),
            o.kind.as_str(),
            o.connector.as_ref().map(|c| &c.key),
            o.connector.as_ref().and_then(|c| c.user.as_ref()),
            o.data,
            p.assurance
        ])?;
    }
    let mut q = tx.prepare_cached(
        "UPDATE directives SET outcome = ?3, detail = ?4, mode = ?5, outcome_at_ms = ?6, outcome_seq = ?7 \
         WHERE id = ?1 AND device_id = ?2",
    )?;
    for s in &p.settled {
        let x = s.outcome;
        q.execute(params![
            x.directive_id,
            device,
            x.outcome.as_str(),
            x.detail,
            x.mode,
            s.at_ms,
            s.seq as i64
        ])?;
    }
    for s in &p.sessions {
        match s {
            SessionChange::Open { session: x, seq } => tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO sessions (device_id, os_user, terminal, host, started_at_ms, appeared_seq) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![device, x.os_user, x.terminal, x.host, x.started_at_ms, *seq as i64])?,
            SessionChange::Close { session: x, at_ms, seq } => tx
                .prepare_cached(
                    "UPDATE sessions SET ended_at_ms = max(started_at_ms, ?5), disappeared_seq = ?6 \
                     WHERE device_id = ?1 AND os_user = ?2 AND terminal = ?3 AND started_at_ms = ?4 AND ended_at_ms IS NULL",
                )?
                .execute(params![device, x.os_user, x.terminal, x.started_at_ms, at_ms, *seq as i64])?,
        };
    }
    let mut connector = tx.prepare_cached(
        "INSERT INTO connectors (key, kind, label, first_seen_ms, last_seen_ms, latest) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(key) DO UPDATE SET first_seen_ms = min(first_seen_ms, excluded.first_seen_ms), \
         last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), latest = excluded.latest",
    )?;
    let mut on_device = tx.prepare_cached(
        "INSERT INTO connector_devices (connector_key, device_id, os_user, first_seen_ms, last_seen_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(connector_key, device_id) DO UPDATE SET \
         first_seen_ms = min(first_seen_ms, excluded.first_seen_ms), \
         last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), os_user = COALESCE(excluded.os_user, os_user)",
    )?;
    for (key, s) in &p.connectors {
        connector.execute(params![key, s.kind, s.label, s.first_ms, s.last_ms, s.latest])?;
        on_device.execute(params![key, device, s.user, s.first_ms, s.last_ms])?;
    }
    let mut q = tx.prepare_cached(
        "UPDATE presence SET disappeared_at_ms = max(appeared_at_ms, ?4), disappeared_seq = ?5 \
         WHERE device_id = ?1 AND connector_key = ?2 AND locus = ?3 AND disappeared_at_ms IS NULL",
    )?;
    for c in &p.closed {
        q.execute(params![device, c.key, c.locus, c.at_ms, c.seq as i64])?;
    }
    let mut q = tx.prepare_cached(
        "INSERT INTO presence (device_id, connector_key, locus, os_user, appeared_at_ms, appeared_seq, \
         disappeared_at_ms, disappeared_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for o in &p.opened {
        q.execute(params![
            device,
            o.key,
            o.locus,
            o.user,
            o.at_ms,
            o.seq as i64,
            o.closed.map(|c| c.0),
            o.closed.map(|c| c.1 as i64)
        ])?;
    }
    // After the presence rows: a connector first reported in this batch binds its use.
    super::activity::write(&mut Lite(tx), device, &b.observations, b.received_at_ms)?;
    tx.prepare_cached("UPDATE devices SET seq_head = ?1, head_hash = ?2, last_seen_ms = ?3 WHERE id = ?4")?
        .execute(params![b.last_seq as i64, b.hash.as_slice(), b.received_at_ms, device])?;
    if let Some(inv) = p.inventory() {
        tx.prepare_cached(
            "UPDATE devices SET hostname = ?1, os = ?2, os_version = ?3, agent_version = ?4, users = ?5 WHERE id = ?6",
        )?
        .execute(params![
            inv.hostname,
            inv.os,
            inv.os_version,
            inv.agent_version,
            serde_json::to_string(&inv.users).unwrap_or_else(|_| "[]".into()),
            device
        ])?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let migrations = migrations();
    if version > migrations.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this collector understands ({})",
            migrations.len()
        )));
    }
    for (i, m) in migrations.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Database for SqliteStore {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T> {
        f(&mut Lite(&self.conn()))
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit()?;
        Ok(out)
    }
}

impl IngestStore for SqliteStore {
    fn ingest(&self, b: &IngestBatch) -> Result<IngestOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = ingest_in(&tx, b)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<Result<IngestOutcome>> {
        super::or_each_alone("batches", batches, self.ingest_group(batches), |b| self.ingest(b))
    }

    fn record_claims(&self, c: &ClaimsRecord) -> Result<()> {
        devices::record_claims(self, std::slice::from_ref(c))
    }

    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
        devices::record_claims_many(self, claims)
    }
}

impl Outbox for SqliteStore {
    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>> {
        // A row's receive time is its batch's: the batch whose range holds its sequence number.
        let sql = format!(
            "{} FROM observations o JOIN devices d ON d.id = o.device_id \
             LEFT JOIN batches b ON b.device_id = o.device_id AND b.first_seq <= o.seq AND b.last_seq >= o.seq \
                 AND b.first_seq = (SELECT max(first_seq) FROM batches x WHERE x.device_id = o.device_id \
                 AND x.first_seq <= o.seq) {} \
             WHERE o.rowid > $1 ORDER BY o.rowid LIMIT $2",
            rows::export_columns("o.rowid", "COALESCE(b.received_at_ms, o.observed_at_ms)"),
            rows::EXPORT_JOINS,
        );
        self.read(|db| db.all(&sql, args![rowid, limit as i64], rows::export_observation))
    }

    fn max_observation_rowid(&self) -> Result<i64> {
        Ok(self.conn().query_row("SELECT COALESCE(max(rowid), 0) FROM observations", [], |r| r.get(0))?)
    }
}

impl RetentionStore for SqliteStore {
    fn prune(&self, cutoff_ms: i64) -> Result<Pruned> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let observations = tx.execute(
            "DELETE FROM observations WHERE rowid IN (SELECT o.rowid FROM batches b JOIN observations o \
             ON o.device_id = b.device_id AND o.seq BETWEEN b.first_seq AND b.last_seq WHERE b.received_at_ms < ?1)",
            params![cutoff_ms],
        )?;
        let batches = tx.execute("DELETE FROM batches WHERE received_at_ms < ?1", params![cutoff_ms])?;
        // Claims older than the cutoff go too, except each device's latest: the evidence of
        // its last attestation stays however long it has been silent.
        let claims = tx.execute(
            "DELETE FROM device_claims WHERE at_ms < ?1 AND rowid NOT IN \
             (SELECT max(rowid) FROM device_claims GROUP BY device_id)",
            params![cutoff_ms],
        )?;
        tx.commit()?;
        Ok(Pruned {
            partitions: Vec::new(),
            observations: observations as u64,
            batches: batches as u64,
            claims: claims as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-only behaviour; what every backend must do is in tests/store_conformance.rs.
    use super::*;
    use crate::store::{PeopleStore, Person};

    #[test]
    fn people_are_found_by_any_of_their_names_and_the_index_is_backfilled() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("db");
        let s = SqliteStore::open(&path).unwrap();
        let mut alice = Person {
            id: "p1".into(),
            user_name: "Alice.Ng@Example.com".into(),
            external_id: None,
            display_name: None,
            emails: vec!["ang@example.org".into()],
            active: true,
            created_at_ms: 0,
            modified_at_ms: 0,
            deprovisioned_at_ms: None,
            deleted_at_ms: None,
            ..Default::default()
        };
        s.create_person(&alice).unwrap();
        let ids = |s: &SqliteStore, k: &str| s.people_by_keys(&[k.to_owned()]).unwrap().len();
        for k in ["alice.ng", "ALICE.NG@example.com", "ang", "ang@example.org"] {
            assert_eq!(ids(&s, k), 1, "{k}");
        }
        assert_eq!(ids(&s, "alice"), 0);
        alice.emails = vec!["alice@example.org".into()];
        s.update_person(&alice).unwrap();
        assert_eq!((ids(&s, "ang"), ids(&s, "alice")), (0, 1), "keys follow the record");
        // A database from before the index: the migration builds it from the people table.
        drop(s);
        let c = Connection::open(&path).unwrap();
        c.execute_batch("DELETE FROM person_keys;").unwrap();
        c.execute_batch(person_keys_backfill!()).unwrap();
        drop(c);
        let s = SqliteStore::open(&path).unwrap();
        for k in ["alice.ng", "alice", "alice@example.org"] {
            assert_eq!(ids(&s, k), 1, "{k} after backfill");
        }
    }
}
