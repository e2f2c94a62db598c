//! The embedded SQLite store (WAL mode, so query commands can read while the collector
//! writes).
//!
//! Schema changes are numbered migrations applied at open (`PRAGMA user_version`).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::plan::{self, Head, IngestPlan, Planned, SessionChange};
use super::{
    ApiTokenInfo, Challenge, ClaimsRecord, Connector, ConnectorDevice, Device, DirectiveRecord,
    EnrollmentTokenInfo, IngestBatch, IngestOutcome, OutcomeRef, Person, Presence, Result, Revocation,
    RevocationState, Session, Store, StoreError, StoredBatch, TpmChallenge, hash32,
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

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE enrollment_tokens (
    token_hash    BLOB PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
);
CREATE TABLE enrollment_challenges (
    id              TEXT PRIMARY KEY,
    nonce           BLOB NOT NULL,
    token_hash      BLOB NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    hostname        TEXT NOT NULL,
    os              TEXT NOT NULL,
    os_version      TEXT NOT NULL,
    agent_version   TEXT NOT NULL,
    key_backend     TEXT NOT NULL,
    device_key_spki BLOB NOT NULL
);
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    os             TEXT NOT NULL,
    os_version     TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    key_backend    TEXT NOT NULL,
    assurance      TEXT NOT NULL,
    key_spki       BLOB NOT NULL,
    cert_sha256    TEXT NOT NULL UNIQUE,
    enrolled_at_ms INTEGER NOT NULL,
    last_seen_ms   INTEGER,
    seq_head       INTEGER NOT NULL DEFAULT 0,
    head_hash      BLOB NOT NULL,
    revoked_at_ms  INTEGER,
    users          TEXT NOT NULL DEFAULT '[]'
);
-- Every accepted batch exactly as signed: evidence that can be re-verified offline.
CREATE TABLE batches (
    device_id      TEXT NOT NULL REFERENCES devices(id),
    first_seq      INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL,
    payload        BLOB NOT NULL,
    signature      BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, first_seq)
);
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
CREATE TABLE connectors (
    key           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    latest        TEXT NOT NULL
);
CREATE TABLE connector_devices (
    connector_key TEXT NOT NULL REFERENCES connectors(key),
    device_id     TEXT NOT NULL REFERENCES devices(id),
    os_user       TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (connector_key, device_id)
);
CREATE INDEX connector_devices_device ON connector_devices(device_id);
"#,
    r#"
ALTER TABLE devices ADD COLUMN last_attested_ms INTEGER;
-- A renewed certificate is pending until the agent first connects with it; until then the
-- current one keeps working, so a crash mid-renewal cannot lock a device out.
ALTER TABLE devices ADD COLUMN next_cert_sha256 TEXT;
-- Every stream's signed device claims, kept as evidence (payload and signature as received).
CREATE TABLE device_claims (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    at_ms        INTEGER NOT NULL,
    stream_nonce BLOB NOT NULL,
    payload      BLOB NOT NULL,
    signature    BLOB NOT NULL,
    claims       TEXT NOT NULL
);
CREATE INDEX device_claims_device ON device_claims(device_id, at_ms);
"#,
    r#"
ALTER TABLE enrollment_challenges ADD COLUMN tpm_secret BLOB;
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ek_public BLOB;
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ak_public BLOB;
ALTER TABLE enrollment_challenges ADD COLUMN tpm_device_key_public BLOB;
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ek_trusted INTEGER;
"#,
    r#"
-- The hardware a device's key lives in (SHA-256 of its TPM's EK public area): enrolling the
-- same TPM again maps to the same device record.
ALTER TABLE devices ADD COLUMN hardware_id TEXT;
CREATE UNIQUE INDEX devices_hardware_id ON devices(hardware_id) WHERE hardware_id IS NOT NULL;
"#,
    r#"
-- A connector's presence on a device as intervals, so "what was on device D at time T" is a
-- range query, not a replay. Opened by the first APPEARED/CHANGED/SNAPSHOT sighting of a
-- (device, connector, locus), closed by DISAPPEARED; both ends name the observation (seq)
-- in the signed batches. At most one open interval per (device, connector, locus).
CREATE TABLE presence (
    device_id         TEXT NOT NULL REFERENCES devices(id),
    connector_key     TEXT NOT NULL,
    locus             TEXT NOT NULL,
    os_user           TEXT,
    appeared_at_ms    INTEGER NOT NULL,
    appeared_seq      INTEGER NOT NULL,
    disappeared_at_ms INTEGER,
    disappeared_seq   INTEGER
);
CREATE UNIQUE INDEX presence_open ON presence(device_id, connector_key, locus) WHERE disappeared_at_ms IS NULL;
CREATE INDEX presence_device_time ON presence(device_id, appeared_at_ms);
CREATE INDEX presence_connector ON presence(connector_key, device_id);
"#,
    r#"
-- HTTP API tokens, stored as SHA-256 hashes; the role decides what a token may do.
CREATE TABLE api_tokens (
    token_hash    BLOB PRIMARY KEY,
    role          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
"#,
    r#"
-- People as the identity provider provisions them (SCIM). Deleted people stay on record.
CREATE TABLE people (
    id                  TEXT PRIMARY KEY,
    user_name           TEXT NOT NULL,
    external_id         TEXT,
    display_name        TEXT,
    emails              TEXT NOT NULL DEFAULT '[]',
    active              INTEGER NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    modified_at_ms      INTEGER NOT NULL,
    deprovisioned_at_ms INTEGER,
    deleted_at_ms       INTEGER
);
CREATE UNIQUE INDEX people_user_name ON people(user_name COLLATE NOCASE) WHERE deleted_at_ms IS NULL;
"#,
    r#"
-- OS login sessions as intervals: from the login time the agent reports to the observation
-- that saw it end. "Who was logged in at T" is a range query.
CREATE TABLE sessions (
    device_id       TEXT NOT NULL REFERENCES devices(id),
    os_user         TEXT NOT NULL,
    terminal        TEXT NOT NULL,
    host            TEXT,
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    appeared_seq    INTEGER NOT NULL,
    disappeared_seq INTEGER
);
CREATE UNIQUE INDEX sessions_identity ON sessions(device_id, os_user, terminal, started_at_ms);
CREATE INDEX sessions_time ON sessions(started_at_ms);
CREATE INDEX sessions_user ON sessions(os_user, started_at_ms);
"#,
    r#"
-- Identity-provider sign-ins (Okta System Log, Entra ID), keyed by the IdP's event id.
CREATE TABLE signins (
    id        TEXT PRIMARY KEY,
    source    TEXT NOT NULL,
    user_name TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    ip        TEXT,
    app       TEXT,
    device    TEXT,
    outcome   TEXT NOT NULL
);
CREATE INDEX signins_user ON signins(user_name, at_ms);
"#,
    r#"
-- Triage by person looks up their OS accounts' connectors directly; by device, its sessions.
CREATE INDEX presence_user ON presence(os_user, appeared_at_ms);
CREATE INDEX sessions_device ON sessions(device_id, started_at_ms);
"#,
    r#"
-- Connectors an admin revoked: a standing decision (see revoke.rs).
CREATE TABLE revocations (
    connector_key   TEXT PRIMARY KEY,
    requested_at_ms INTEGER NOT NULL,
    requested_by    TEXT NOT NULL,
    reason          TEXT NOT NULL
);
-- Directives as signed and sent; the outcome arrives in the device's signed batches and
-- names the observation that reported it. `seq` is the delivery cursor.
CREATE TABLE directives (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    connector_key TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    payload       BLOB NOT NULL,
    signature     BLOB NOT NULL,
    issued_at_ms  INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    issued_at_seq INTEGER NOT NULL,
    sent_at_ms    INTEGER,
    outcome       TEXT,
    detail        TEXT,
    mode          TEXT,
    outcome_at_ms INTEGER,
    outcome_seq   INTEGER
);
CREATE INDEX directives_device ON directives(device_id, outcome);
CREATE INDEX directives_connector ON directives(connector_key, device_id);
"#,
    concat!(
        r#"
-- Every name a person can be found by: userName and emails (lower-cased) and their local
-- parts. Attribution of an OS account then reads only the people who could match it.
CREATE TABLE person_keys (
    key       TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES people(id)
);
CREATE INDEX person_keys_key ON person_keys(key);
"#,
        person_keys_backfill!()
    ),
    r#"
-- An admin's status decision for a connector (dashboard or API); it overrides policy.toml.
CREATE TABLE connector_decisions (
    connector_key TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    decided_by    TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL
);
-- Dashboard sessions: a cookie stands for the API token it was opened with (hashes only),
-- so revoking the token ends the session.
CREATE TABLE ui_sessions (
    session_hash  BLOB PRIMARY KEY,
    token_hash    BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX devices_hostname ON devices(hostname);
CREATE INDEX devices_last_seen ON devices(last_seen_ms);
"#,
    r#"
-- Export sinks (OCSF files, Splunk HEC): the stored evidence is the outbox, a cursor per sink
-- and source says how far each has delivered, advanced only after delivery succeeded.
CREATE TABLE export_cursors (
    sink   TEXT NOT NULL,
    source TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (sink, source)
);
CREATE TABLE export_findings (
    sink TEXT NOT NULL,
    key  TEXT NOT NULL,
    PRIMARY KEY (sink, key)
);
CREATE INDEX devices_enrolled ON devices(enrolled_at_ms, id);
"#,
    r#"
-- How far the device's clock was from the collector's at its last attestation (claims).
ALTER TABLE devices ADD COLUMN clock_skew_ms INTEGER;
-- Token lifecycle: API tokens may expire and record when they were last used; enrollment
-- tokens can be named and revoked before use.
ALTER TABLE api_tokens ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at_ms INTEGER;
-- Who made it (`cli:USER`, or `token:ID` through the API): revoking a token revokes what
-- it made, so a stolen admin token cannot leave heirs behind.
ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at_ms INTEGER;
-- Retention prunes claims by time.
CREATE INDEX device_claims_at ON device_claims(at_ms);
"#,
];

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

    /// Claims records in one transaction; `Err` means none was written.
    fn record_claims_group(&self, claims: &[ClaimsRecord]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in claims {
            tx.prepare_cached(
                "INSERT INTO device_claims (device_id, at_ms, stream_nonce, payload, signature, claims) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![c.device_id, c.at_ms, c.stream_nonce, c.payload, c.signature, c.claims.to_string()])?;
            tx.prepare_cached(
                "UPDATE devices SET last_attested_ms = ?1, hostname = ?2, os = ?3, os_version = ?4, agent_version = ?5, \
                 clock_skew_ms = ?6 WHERE id = ?7",
            )?
            .execute(params![
                c.at_ms,
                c.hostname,
                c.os,
                c.os_version,
                c.agent_version,
                c.clock_skew_ms,
                c.device_id
            ])?;
        }
        tx.commit()?;
        Ok(())
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
            o.change,
            o.kind,
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
        q.execute(params![x.directive_id, device, x.outcome, x.detail, x.mode, s.at_ms, s.seq as i64])?;
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
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this collector understands ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Whether a token exists, is unused and unexpired.
fn token_usable(conn: &Connection, token_hash: &[u8], now_ms: i64) -> Result<()> {
    let row: Option<(i64, Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_tokens WHERE token_hash = ?1",
            params![token_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    super::token_verdict(row, now_ms)
}

const DEVICE_COLUMNS: &str = "id, hostname, os, os_version, agent_version, key_backend, assurance, key_spki, cert_sha256, \
     enrolled_at_ms, last_seen_ms, seq_head, head_hash, revoked_at_ms, users, next_cert_sha256, last_attested_ms, hardware_id, \
     clock_skew_ms";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let head: Vec<u8> = r.get(12)?;
    let users: String = r.get(14)?;
    Ok(Device {
        id: r.get(0)?,
        hostname: r.get(1)?,
        os: r.get(2)?,
        os_version: r.get(3)?,
        agent_version: r.get(4)?,
        key_backend: r.get(5)?,
        assurance: r.get(6)?,
        key_spki: r.get(7)?,
        cert_sha256: r.get(8)?,
        enrolled_at_ms: r.get(9)?,
        last_seen_ms: r.get(10)?,
        seq_head: r.get::<_, i64>(11)? as u64,
        head_hash: head.try_into().unwrap_or([0; 32]),
        revoked_at_ms: r.get(13)?,
        users: serde_json::from_str(&users).unwrap_or_default(),
        next_cert_sha256: r.get(15)?,
        last_attested_ms: r.get(16)?,
        hardware_id: r.get(17)?,
        clock_skew_ms: r.get(18)?,
    })
}

impl Store for SqliteStore {
    fn create_token(
        &self,
        token_hash: &[u8],
        name: &str,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO enrollment_tokens (token_hash, name, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, name, created_at_ms, expires_at_ms],
        )?;
        Ok(())
    }

    fn create_api_token(
        &self,
        token_hash: &[u8],
        role: &str,
        name: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        created_by: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO api_tokens (token_hash, role, name, created_at_ms, expires_at_ms, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![token_hash, role, name, now_ms, expires_at_ms, created_by],
        )?;
        Ok(())
    }

    fn session_token(&self, session_hash: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT token_hash FROM ui_sessions WHERE session_hash = ?1",
                params![session_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT token_hash, name, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms \
             FROM enrollment_tokens ORDER BY created_at_ms, token_hash",
        )?;
        let rows = q.query_map([], |r| {
            Ok(EnrollmentTokenInfo {
                token_hash: r.get(0)?,
                name: r.get(1)?,
                created_at_ms: r.get(2)?,
                expires_at_ms: r.get(3)?,
                used_at_ms: r.get(4)?,
                revoked_at_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_enrollment_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE enrollment_tokens SET revoked_at_ms = ?1 WHERE token_hash = ?2 AND revoked_at_ms IS NULL",
            params![now_ms, token_hash],
        )?;
        Ok(n > 0)
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT token_hash, role, name, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms, created_by \
             FROM api_tokens ORDER BY created_at_ms, token_hash",
        )?;
        let rows = q.query_map([], |r| {
            Ok(ApiTokenInfo {
                token_hash: r.get(0)?,
                role: r.get(1)?,
                name: r.get(2)?,
                created_at_ms: r.get(3)?,
                expires_at_ms: r.get(4)?,
                last_used_at_ms: r.get(5)?,
                revoked_at_ms: r.get(6)?,
                created_by: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_api_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at_ms = ?1 WHERE token_hash = ?2 AND revoked_at_ms IS NULL",
            params![now_ms, token_hash],
        )?;
        // Its dashboard sessions end with it (they would fail the join anyway; now they are gone).
        tx.execute("DELETE FROM ui_sessions WHERE token_hash = ?1", params![token_hash])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn create_person(&self, p: &Person) -> Result<()> {
        self.write_person(p, true)
    }

    fn update_person(&self, p: &Person) -> Result<()> {
        self.write_person(p, false)
    }

    fn person(&self, id: &str) -> Result<Option<Person>> {
        Ok(self
            .conn()
            .query_row(&format!("{PERSON_SELECT} WHERE id = ?1"), params![id], person_row)
            .optional()?)
    }

    fn person_by_user_name(&self, user_name: &str) -> Result<Option<Person>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{PERSON_SELECT} WHERE user_name = ?1 COLLATE NOCASE AND deleted_at_ms IS NULL"),
                params![user_name],
                person_row,
            )
            .optional()?)
    }

    fn people(&self) -> Result<Vec<Person>> {
        let conn = self.conn();
        let mut q =
            conn.prepare(&format!("{PERSON_SELECT} WHERE deleted_at_ms IS NULL ORDER BY created_at_ms, id"))?;
        let rows = q.query_map([], person_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn people_all(&self) -> Result<Vec<Person>> {
        let conn = self.conn();
        let mut q = conn.prepare(&format!("{PERSON_SELECT} ORDER BY created_at_ms, id"))?;
        let rows = q.query_map([], person_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn people_by_keys(&self, keys: &[String]) -> Result<Vec<Person>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(&format!(
            "{PERSON_SELECT} WHERE id IN (SELECT person_id FROM person_keys WHERE key IN (SELECT value FROM json_each(?1))) \
             ORDER BY created_at_ms, id"
        ))?;
        let keys: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        let rows = q.query_map(params![serde_json::to_string(&keys).unwrap_or_default()], person_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn api_token_role(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        let conn = self.conn();
        let role: Option<(String, Option<i64>)> = conn
            .query_row(
                "SELECT role, last_used_at_ms FROM api_tokens WHERE token_hash = ?1 AND revoked_at_ms IS NULL \
                 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)",
                params![token_hash, now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((_, last)) = &role
            && super::stale_use(*last, now_ms)
        {
            conn.execute(
                "UPDATE api_tokens SET last_used_at_ms = ?1 WHERE token_hash = ?2",
                params![now_ms, token_hash],
            )?;
        }
        Ok(role.map(|r| r.0))
    }

    fn check_token(&self, token_hash: &[u8], now_ms: i64) -> Result<()> {
        token_usable(&self.conn(), token_hash, now_ms)
    }

    fn put_challenge(&self, c: &Challenge) -> Result<()> {
        let conn = self.conn();
        // Expired challenges are garbage; clear them as new ones arrive.
        conn.execute(
            "DELETE FROM enrollment_challenges WHERE expires_at_ms < ?1",
            params![c.expires_at_ms - 3_600_000],
        )?;
        conn.execute(
            "INSERT INTO enrollment_challenges (id, nonce, token_hash, expires_at_ms, hostname, os, os_version, agent_version, \
             key_backend, device_key_spki, tpm_secret, tpm_ek_public, tpm_ak_public, tpm_device_key_public, tpm_ek_trusted) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                c.id,
                c.nonce,
                c.token_hash,
                c.expires_at_ms,
                c.hostname,
                c.os,
                c.os_version,
                c.agent_version,
                c.key_backend,
                c.device_key_spki,
                c.tpm.as_ref().map(|t| &t.secret),
                c.tpm.as_ref().map(|t| &t.ek_public),
                c.tpm.as_ref().map(|t| &t.ak_public),
                c.tpm.as_ref().map(|t| &t.device_key_public),
                c.tpm.as_ref().map(|t| t.ek_trusted),
            ],
        )?;
        Ok(())
    }

    fn take_challenge(&self, id: &str) -> Result<Option<Challenge>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let c = tx
            .query_row(
                "SELECT id, nonce, token_hash, expires_at_ms, hostname, os, os_version, agent_version, key_backend, \
                 device_key_spki, tpm_secret, tpm_ek_public, tpm_ak_public, tpm_device_key_public, tpm_ek_trusted \
                 FROM enrollment_challenges WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Challenge {
                        id: r.get(0)?,
                        nonce: r.get(1)?,
                        token_hash: r.get(2)?,
                        expires_at_ms: r.get(3)?,
                        hostname: r.get(4)?,
                        os: r.get(5)?,
                        os_version: r.get(6)?,
                        agent_version: r.get(7)?,
                        key_backend: r.get(8)?,
                        device_key_spki: r.get(9)?,
                        tpm: match r.get::<_, Option<Vec<u8>>>(10)? {
                            Some(secret) => Some(TpmChallenge {
                                secret,
                                ek_public: r.get(11)?,
                                ak_public: r.get(12)?,
                                device_key_public: r.get(13)?,
                                ek_trusted: r.get(14)?,
                            }),
                            None => None,
                        },
                    })
                },
            )
            .optional()?;
        tx.execute("DELETE FROM enrollment_challenges WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(c)
    }

    fn complete_enrollment(
        &self,
        token_hash: &[u8],
        d: &Device,
        hardware: &[String],
        now_ms: i64,
    ) -> Result<Device> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        token_usable(&tx, token_hash, now_ms)?;
        tx.execute(
            "UPDATE enrollment_tokens SET used_at_ms = ?1 WHERE token_hash = ?2",
            params![now_ms, token_hash],
        )?;
        let hardware_id = hardware.first();
        let mut existing = None;
        for hw in hardware {
            existing = tx
                .query_row(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = ?1"),
                    params![hw],
                    device_row,
                )
                .optional()?;
            if existing.is_some() {
                break;
            }
        }
        let stored = match existing {
            Some(old) if old.revoked_at_ms.is_some() => return Err(StoreError::Revoked(old.id)),
            // The same hardware again: same record, new key and certificate, chain kept.
            Some(old) => {
                tx.execute(
                    "UPDATE devices SET hostname = ?1, os = ?2, os_version = ?3, agent_version = ?4, key_backend = ?5, \
                     assurance = ?6, key_spki = ?7, cert_sha256 = ?8, next_cert_sha256 = NULL, enrolled_at_ms = ?9, \
                     hardware_id = ?10 WHERE id = ?11",
                    params![
                        d.hostname,
                        d.os,
                        d.os_version,
                        d.agent_version,
                        d.key_backend,
                        d.assurance,
                        d.key_spki,
                        d.cert_sha256,
                        d.enrolled_at_ms,
                        hardware_id,
                        old.id
                    ],
                )?;
                Device {
                    id: old.id,
                    seq_head: old.seq_head,
                    head_hash: old.head_hash,
                    users: old.users,
                    hardware_id: hardware_id.cloned(),
                    ..d.clone()
                }
            }
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
                    ),
                    params![
                        d.id,
                        d.hostname,
                        d.os,
                        d.os_version,
                        d.agent_version,
                        d.key_backend,
                        d.assurance,
                        d.key_spki,
                        d.cert_sha256,
                        d.enrolled_at_ms,
                        d.last_seen_ms,
                        d.seq_head as i64,
                        d.head_hash.to_vec(),
                        d.revoked_at_ms,
                        serde_json::to_string(&d.users).unwrap_or_else(|_| "[]".into()),
                        d.next_cert_sha256,
                        d.last_attested_ms,
                        hardware_id,
                        d.clock_skew_ms,
                    ],
                )?;
                Device { hardware_id: hardware_id.cloned(), ..d.clone() }
            }
        };
        tx.commit()?;
        Ok(stored)
    }

    fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<Device>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = ?1"),
                params![hardware_id],
                device_row,
            )
            .optional()?)
    }

    fn device(&self, id: &str) -> Result<Option<Device>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                params![id],
                device_row,
            )
            .optional()?)
    }

    fn device_by_cert(&self, cert_sha256: &str) -> Result<Option<Device>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE cert_sha256 = ?1 OR next_cert_sha256 = ?1"
                ),
                params![cert_sha256],
                device_row,
            )
            .optional()?)
    }

    fn record_claims(&self, c: &ClaimsRecord) -> Result<()> {
        self.record_claims_group(std::slice::from_ref(c))
    }

    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
        let grouped = self.record_claims_group(claims).map(|()| claims.iter().map(|_| Ok(())).collect());
        super::or_each_alone("claims", claims, grouped, |c| self.record_claims(c))
    }

    fn stage_certificate(&self, device_id: &str, new_sha256: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE devices SET next_cert_sha256 = ?1 WHERE id = ?2 AND revoked_at_ms IS NULL",
            params![new_sha256, device_id],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device_id.to_owned()));
        }
        Ok(())
    }

    fn promote_certificate(&self, device_id: &str, sha256: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE devices SET cert_sha256 = next_cert_sha256, next_cert_sha256 = NULL WHERE id = ?1 AND next_cert_sha256 = ?2",
            params![device_id, sha256],
        )?;
        Ok(())
    }

    fn revoke_device(&self, id: &str, now_ms: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE devices SET revoked_at_ms = COALESCE(revoked_at_ms, ?1) WHERE id = ?2",
            params![now_ms, id],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(id.to_owned()));
        }
        Ok(())
    }

    fn devices(&self) -> Result<Vec<Device>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY hostname, id"))?;
        let rows = stmt.query_map([], device_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

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

    fn connectors(&self) -> Result<Vec<Connector>> {
        self.query_connectors(None, None)
    }

    fn device_connectors(&self, device_id: &str) -> Result<Vec<Connector>> {
        self.query_connectors(Some(device_id), None)
    }

    fn present_at(&self, device_id: &str, at_ms: i64) -> Result<Vec<Presence>> {
        self.query_presence(
            "p.device_id = ?1 AND p.appeared_at_ms <= ?2 AND (p.disappeared_at_ms IS NULL OR p.disappeared_at_ms > ?2)",
            device_id,
            at_ms,
        )
    }

    fn presence_history(&self, device_id: &str) -> Result<Vec<Presence>> {
        self.query_presence("p.device_id = ?1 AND ?2 = ?2", device_id, 0)
    }

    fn sessions_at(&self, device_id: Option<&str>, at_ms: i64) -> Result<Vec<Session>> {
        let conn = self.conn();
        // Two statements, not `?1 IS NULL OR device_id = ?1`: SQLite cannot use the
        // (device_id, started_at_ms) index through that OR.
        let filter = if device_id.is_some() { "device_id = ?1" } else { "?1 IS NULL" };
        let mut q = conn.prepare_cached(&format!(
            "SELECT device_id, os_user, terminal, host, started_at_ms, ended_at_ms, appeared_seq FROM sessions \
             WHERE {filter} AND started_at_ms <= ?2 AND (ended_at_ms IS NULL OR ended_at_ms > ?2) \
             ORDER BY device_id, os_user, started_at_ms"
        ))?;
        let rows = q.query_map(params![device_id, at_ms], session_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn connector_presence(&self, connector_key: &str) -> Result<Vec<Presence>> {
        self.query_presence("p.connector_key = ?1 AND ?2 = ?2", connector_key, 0)
    }

    fn connector(&self, key: &str) -> Result<Option<Connector>> {
        Ok(self.query_connectors(None, Some(key))?.into_iter().next())
    }

    fn presence_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Presence>> {
        let mut out = Vec::new();
        for u in os_users {
            out.extend(self.query_presence(
                "p.os_user = ?1 AND p.appeared_at_ms <= ?2 AND (p.disappeared_at_ms IS NULL OR p.disappeared_at_ms > ?2)",
                u,
                at_ms,
            )?);
        }
        Ok(out)
    }

    fn sessions_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Session>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT device_id, os_user, terminal, host, started_at_ms, ended_at_ms, appeared_seq FROM sessions \
             WHERE os_user = ?1 AND started_at_ms <= ?2 AND (ended_at_ms IS NULL OR ended_at_ms > ?2) \
             ORDER BY device_id, started_at_ms",
        )?;
        let mut out = Vec::new();
        for u in os_users {
            let rows = q.query_map(params![u, at_ms], session_row)?;
            out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        Ok(out)
    }

    fn present_now(&self) -> Result<Vec<Presence>> {
        self.query_presence("p.disappeared_at_ms IS NULL AND ?1 = ?1 AND ?2 = ?2", "", 0)
    }

    fn add_signins(&self, signins: &[crate::signins::SignIn]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut q = tx.prepare_cached(
                "INSERT OR IGNORE INTO signins (id, source, user_name, at_ms, ip, app, device, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for s in signins {
                added += q.execute(params![
                    s.id,
                    s.source,
                    s.user_name,
                    s.at_ms,
                    s.ip,
                    s.app,
                    s.device,
                    s.outcome
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn signins_for(
        &self,
        user_names: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<crate::signins::SignIn>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT id, source, user_name, at_ms, ip, app, device, outcome FROM signins \
             WHERE user_name = ?1 COLLATE NOCASE AND at_ms BETWEEN ?2 AND ?3 ORDER BY at_ms DESC LIMIT 50",
        )?;
        let mut out = Vec::new();
        for u in user_names {
            let rows = q.query_map(params![u, from_ms, to_ms], |r| {
                let source: String = r.get(1)?;
                let outcome: String = r.get(7)?;
                Ok(crate::signins::SignIn {
                    id: r.get(0)?,
                    source: if source == "okta" { "okta" } else { "entra" },
                    user_name: r.get(2)?,
                    at_ms: r.get(3)?,
                    ip: r.get(4)?,
                    app: r.get(5)?,
                    device: r.get(6)?,
                    outcome: if outcome == "success" { "success" } else { "failure" },
                })
            })?;
            out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
        Ok(out)
    }

    fn batches(&self, device_id: &str) -> Result<Vec<StoredBatch>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms FROM batches \
             WHERE device_id = ?1 ORDER BY first_seq",
        )?;
        let hash = |v: Vec<u8>| -> rusqlite::Result<[u8; 32]> {
            v.try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob)
            })
        };
        let rows = q.query_map(params![device_id], |r| {
            Ok(StoredBatch {
                first_seq: r.get::<_, i64>(0)? as u64,
                last_seq: r.get::<_, i64>(1)? as u64,
                prev_hash: hash(r.get(2)?)?,
                hash: hash(r.get(3)?)?,
                payload: r.get(4)?,
                signature: r.get(5)?,
                received_at_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn gaps(&self) -> Result<Vec<(String, u64, i64, u64)>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT device_id, seq, observed_at_ms, data FROM observations WHERE kind = 'gap' ORDER BY observed_at_ms",
        )?;
        let rows = q.query_map([], |r| {
            let data: String = r.get(3)?;
            let dropped =
                serde_json::from_str::<Value>(&data).ok().and_then(|v| v["dropped"].as_u64()).unwrap_or(0);
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?, dropped))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_revocation(&self, r: &Revocation) -> Result<()> {
        self.conn().execute(
            "INSERT INTO revocations (connector_key, requested_at_ms, requested_by, reason) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(connector_key) DO UPDATE SET requested_at_ms = excluded.requested_at_ms, \
             requested_by = excluded.requested_by, reason = excluded.reason",
            params![r.connector_key, r.requested_at_ms, r.requested_by, r.reason],
        )?;
        Ok(())
    }

    fn withdraw_revocation(&self, key: &str, now_ms: i64) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM revocations WHERE connector_key = ?1", params![key])?;
        tx.execute(
            "UPDATE directives SET outcome = 'withdrawn', detail = 'the revocation was withdrawn before the agent answered', \
             outcome_at_ms = ?2 WHERE connector_key = ?1 AND outcome IS NULL",
            params![key, now_ms],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn revocation_targets(
        &self,
        key: Option<&str>,
        only_new: bool,
        now_ms: i64,
    ) -> Result<Vec<(String, String, u64)>> {
        let conn = self.conn();
        let filter = if key.is_some() { "r.connector_key = ?1" } else { "?1 IS NULL" };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT p.connector_key, p.device_id, d.seq_head FROM revocations r \
             JOIN presence p ON p.connector_key = r.connector_key AND p.disappeared_at_ms IS NULL \
             JOIN devices d ON d.id = p.device_id AND d.revoked_at_ms IS NULL \
             WHERE {filter} GROUP BY p.connector_key, p.device_id \
             HAVING NOT EXISTS (SELECT 1 FROM directives x WHERE x.connector_key = p.connector_key \
                    AND x.device_id = p.device_id AND x.outcome IS NULL AND x.expires_at_ms > ?2) \
                AND (?3 = 0 OR max(p.appeared_seq) > COALESCE((SELECT max(x.issued_at_seq) FROM directives x \
                    WHERE x.connector_key = p.connector_key AND x.device_id = p.device_id), -1)) \
             ORDER BY p.connector_key, p.device_id"
        ))?;
        let rows = stmt.query_map(params![key, now_ms, only_new], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn add_directives(&self, list: &[DirectiveRecord], now_ms: i64) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = Vec::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO directives (id, device_id, connector_key, action, target, payload, signature, \
                 issued_at_ms, expires_at_ms, issued_at_seq) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE NOT EXISTS (SELECT 1 FROM directives x \
                 WHERE x.connector_key = ?3 AND x.device_id = ?2 AND x.outcome IS NULL AND x.expires_at_ms > ?11)",
            )?;
            for d in list {
                let n = insert.execute(params![
                    d.id,
                    d.device_id,
                    d.connector_key,
                    d.action,
                    d.target,
                    d.payload,
                    d.signature,
                    d.issued_at_ms,
                    d.expires_at_ms,
                    d.issued_at_seq as i64,
                    now_ms
                ])?;
                if n == 1 {
                    stored.push(d.id.clone());
                }
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    fn open_directives(&self, device_id: &str, now_ms: i64) -> Result<Vec<DirectiveRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE device_id = ?1 AND outcome IS NULL \
             AND expires_at_ms > ?2 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![device_id, now_ms], directive_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn directives_since(&self, cursor: i64) -> Result<(Vec<String>, i64)> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT seq, device_id FROM directives WHERE seq > ?1 ORDER BY seq")?;
        let mut devices = Vec::new();
        let mut next = cursor;
        for r in stmt.query_map(params![cursor], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (seq, device) = r?;
            next = next.max(seq);
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
        Ok((devices, next))
    }

    fn mark_directive_sent(&self, id: &str, now_ms: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE directives SET sent_at_ms = COALESCE(sent_at_ms, ?2) WHERE id = ?1",
            params![id, now_ms],
        )?;
        Ok(())
    }

    fn directives_for_connector(&self, key: &str) -> Result<Vec<DirectiveRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE connector_key = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![key], directive_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn directive(&self, id: &str) -> Result<Option<DirectiveRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE id = ?1"))?;
        Ok(stmt.query_row(params![id], directive_row).optional()?)
    }

    fn connector_summaries(&self) -> Result<Vec<Connector>> {
        let conn = self.conn();
        let mut present: std::collections::HashMap<String, Vec<ConnectorDevice>> = Default::default();
        {
            let mut stmt = conn.prepare_cached(
                "SELECT p.connector_key, p.device_id, d.hostname, p.os_user, min(p.appeared_at_ms), max(p.appeared_at_ms) \
                 FROM presence p JOIN devices d ON d.id = p.device_id WHERE p.disappeared_at_ms IS NULL \
                 GROUP BY p.connector_key, p.device_id, p.os_user",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                present.entry(r.get(0)?).or_default().push(ConnectorDevice {
                    device_id: r.get(1)?,
                    hostname: r.get(2)?,
                    user: r.get(3)?,
                    first_seen_ms: r.get(4)?,
                    last_seen_ms: r.get(5)?,
                    present: true,
                });
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, c.latest, \
                    (SELECT count(*) FROM connector_devices cd WHERE cd.connector_key = c.key) \
             FROM connectors c ORDER BY c.kind, c.label, c.key",
        )?;
        let mut out = Vec::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let latest: String = r.get(5)?;
            out.push(Connector {
                devices: present.remove(&key).unwrap_or_default(),
                key,
                kind: r.get(1)?,
                label: r.get(2)?,
                first_seen_ms: r.get(3)?,
                last_seen_ms: r.get(4)?,
                latest: serde_json::from_str(&latest).unwrap_or(Value::Null),
                seen_on: r.get::<_, i64>(6)? as usize,
                revocation: None,
                decision: None,
            });
        }
        drop(rows);
        drop(stmt);
        let mut states = revocation_states(&conn, None)?;
        let mut decisions = decisions(&conn)?;
        for c in &mut out {
            c.revocation = states.remove(&c.key);
            c.decision = decisions.remove(&c.key);
        }
        Ok(out)
    }

    fn devices_page(&self, page: &crate::store::DevicePage) -> Result<(Vec<Device>, u64)> {
        let conn = self.conn();
        // Sort keys are a fixed list, never the caller's text.
        let order = match page.sort.as_str() {
            "os" => "os, os_version",
            "assurance" => "assurance",
            "last_seen" => "last_seen_ms",
            "enrolled" => "enrolled_at_ms",
            _ => "hostname",
        };
        let dir = if page.desc { "DESC" } else { "ASC" };
        let filter = "(?1 IS NULL OR instr(lower(hostname), lower(?1)) > 0 OR instr(id, ?1) > 0) \
                      AND (?2 IS NULL OR assurance = ?2)";
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM devices WHERE {filter}"),
            params![page.q, page.assurance],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE {filter} ORDER BY {order} {dir}, id LIMIT ?3 OFFSET ?4"
        ))?;
        let rows = stmt
            .query_map(params![page.q, page.assurance, page.limit as i64, page.offset as i64], device_row)?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as u64))
    }

    fn fleet_counts(&self, now_ms: i64) -> Result<crate::store::FleetCounts> {
        let conn = self.conn();
        let grouped = |col: &str| -> Result<Vec<(String, u64)>> {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {col}, count(*) FROM devices WHERE revoked_at_ms IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ))?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };
        let (hour, day, week) = (now_ms - 3_600_000, now_ms - 86_400_000, now_ms - 7 * 86_400_000);
        let (devices, revoked, b0, b1, b2, b3, b4): (i64, i64, i64, i64, i64, i64, i64) = conn.query_row(
            "SELECT count(*), count(revoked_at_ms), \
                    sum(revoked_at_ms IS NULL AND last_seen_ms >= ?1), \
                    sum(revoked_at_ms IS NULL AND last_seen_ms < ?1 AND last_seen_ms >= ?2), \
                    sum(revoked_at_ms IS NULL AND last_seen_ms < ?2 AND last_seen_ms >= ?3), \
                    sum(revoked_at_ms IS NULL AND last_seen_ms < ?3), \
                    sum(revoked_at_ms IS NULL AND last_seen_ms IS NULL) FROM devices",
            params![hour, day, week],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                ))
            },
        )?;
        let by_assurance = grouped("assurance")?;
        let by_os = grouped("os")?;
        Ok(crate::store::FleetCounts {
            devices: devices as u64,
            revoked: revoked as u64,
            by_assurance,
            by_os,
            last_seen: [b0 as u64, b1 as u64, b2 as u64, b3 as u64, b4 as u64],
        })
    }

    fn set_decision(&self, key: &str, d: Option<&crate::store::Decision>) -> Result<()> {
        let conn = self.conn();
        match d {
            Some(d) => conn.execute(
                "INSERT INTO connector_decisions (connector_key, status, decided_by, decided_at_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(connector_key) DO UPDATE SET status = excluded.status, decided_by = excluded.decided_by, \
                 decided_at_ms = excluded.decided_at_ms",
                params![key, d.status, d.by, d.at_ms],
            )?,
            None => conn.execute("DELETE FROM connector_decisions WHERE connector_key = ?1", params![key])?,
        };
        Ok(())
    }

    fn presence_spans(
        &self,
        keys: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, Option<i64>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT connector_key, appeared_at_ms, disappeared_at_ms FROM presence \
             WHERE connector_key IN (SELECT value FROM json_each(?1)) AND appeared_at_ms <= ?3 \
             AND (disappeared_at_ms IS NULL OR disappeared_at_ms >= ?2)",
        )?;
        let rows = stmt
            .query_map(params![serde_json::to_string(keys).unwrap_or_default(), from_ms, to_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn create_session(
        &self,
        session_hash: &[u8],
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM ui_sessions WHERE expires_at_ms <= ?1", params![now_ms])?;
        conn.execute(
            "INSERT INTO ui_sessions (session_hash, token_hash, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![session_hash, token_hash, now_ms, expires_at_ms],
        )?;
        Ok(())
    }

    fn session_role(&self, session_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT t.role FROM ui_sessions s JOIN api_tokens t ON t.token_hash = s.token_hash \
                 WHERE s.session_hash = ?1 AND s.expires_at_ms > ?2 AND t.revoked_at_ms IS NULL \
                 AND (t.expires_at_ms IS NULL OR t.expires_at_ms > ?2)",
                params![session_hash, now_ms],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn delete_session(&self, session_hash: &[u8]) -> Result<()> {
        self.conn().execute("DELETE FROM ui_sessions WHERE session_hash = ?1", params![session_hash])?;
        Ok(())
    }

    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<crate::store::ExportObservation>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT o.rowid, o.device_id, d.hostname, d.os, d.os_version, o.seq, o.observed_at_ms, \
                    COALESCE(b.received_at_ms, o.observed_at_ms), o.change, o.kind, o.assurance, o.data \
             FROM observations o JOIN devices d ON d.id = o.device_id \
             LEFT JOIN batches b ON b.device_id = o.device_id AND b.first_seq <= o.seq AND b.last_seq >= o.seq \
                 AND b.first_seq = (SELECT max(first_seq) FROM batches x WHERE x.device_id = o.device_id AND x.first_seq <= o.seq) \
             WHERE o.rowid > ?1 ORDER BY o.rowid LIMIT ?2",
        )?;
        let rows = q.query_map(params![rowid, limit as i64], |r| {
            let data: String = r.get(11)?;
            Ok(crate::store::ExportObservation {
                rowid: r.get(0)?,
                device_id: r.get(1)?,
                hostname: r.get(2)?,
                os: r.get(3)?,
                os_version: r.get(4)?,
                seq: r.get::<_, i64>(5)? as u64,
                observed_at_ms: r.get(6)?,
                received_at_ms: r.get(7)?,
                change: r.get(8)?,
                kind: r.get(9)?,
                assurance: r.get(10)?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn max_observation_rowid(&self) -> Result<i64> {
        Ok(self.conn().query_row("SELECT COALESCE(max(rowid), 0) FROM observations", [], |r| r.get(0))?)
    }

    fn enrollments_after(&self, at_ms: i64, id: &str, limit: usize) -> Result<Vec<Device>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE (enrolled_at_ms, id) > (?1, ?2) ORDER BY enrolled_at_ms, id LIMIT ?3"
        ))?;
        let rows = q.query_map(params![at_ms, id, limit as i64], device_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM export_cursors WHERE sink = ?1 AND source = ?2",
                params![sink, source],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_export_cursor(&self, sink: &str, source: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO export_cursors (sink, source, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT(sink, source) DO UPDATE SET value = excluded.value",
            params![sink, source, value],
        )?;
        Ok(())
    }

    fn exported_findings(&self, sink: &str) -> Result<std::collections::HashSet<String>> {
        let conn = self.conn();
        let mut q = conn.prepare_cached("SELECT key FROM export_findings WHERE sink = ?1")?;
        let rows = q.query_map(params![sink], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn mark_findings_exported(&self, sink: &str, keys: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut q =
                tx.prepare_cached("INSERT OR IGNORE INTO export_findings (sink, key) VALUES (?1, ?2)")?;
            for k in keys {
                q.execute(params![sink, k])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn prune(&self, cutoff_ms: i64) -> Result<crate::store::Pruned> {
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
        Ok(crate::store::Pruned {
            partitions: Vec::new(),
            observations: observations as u64,
            batches: batches as u64,
            claims: claims as u64,
        })
    }

    fn count_observations(&self, device_id: &str) -> Result<u64> {
        Ok(self.conn().query_row(
            "SELECT count(*) FROM observations WHERE device_id = ?1",
            params![device_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

const PERSON_SELECT: &str = "SELECT id, user_name, external_id, display_name, emails, active, created_at_ms, \
     modified_at_ms, deprovisioned_at_ms, deleted_at_ms FROM people";

const DIRECTIVE_COLUMNS: &str = "seq, id, device_id, connector_key, action, target, payload, signature, \
     issued_at_ms, expires_at_ms, issued_at_seq, sent_at_ms, outcome, detail, mode, outcome_at_ms, outcome_seq";

fn directive_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DirectiveRecord> {
    let outcome: Option<String> = r.get(12)?;
    Ok(DirectiveRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        device_id: r.get(2)?,
        connector_key: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        payload: r.get(6)?,
        signature: r.get(7)?,
        issued_at_ms: r.get(8)?,
        expires_at_ms: r.get(9)?,
        issued_at_seq: r.get::<_, i64>(10)? as u64,
        sent_at_ms: r.get(11)?,
        outcome: match outcome {
            Some(outcome) => Some(OutcomeRef {
                directive_id: r.get(1)?,
                outcome,
                detail: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                mode: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
            }),
            None => None,
        },
        outcome_at_ms: r.get(15)?,
        outcome_seq: r.get::<_, Option<i64>>(16)?.map(|s| s as u64),
    })
}

/// Every admin status decision, by connector.
fn decisions(conn: &Connection) -> Result<std::collections::HashMap<String, crate::store::Decision>> {
    let mut stmt = conn
        .prepare_cached("SELECT connector_key, status, decided_by, decided_at_ms FROM connector_decisions")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            crate::store::Decision { status: r.get(1)?, by: r.get(2)?, at_ms: r.get(3)? },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revocations (all, or one connector's) with the latest directive to each device.
fn revocation_states(
    conn: &Connection,
    key: Option<&str>,
) -> Result<std::collections::HashMap<String, RevocationState>> {
    let filter = if key.is_some() { "connector_key = ?1" } else { "?1 IS NULL" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT connector_key, requested_at_ms, requested_by, reason FROM revocations WHERE {filter}"
    ))?;
    let mut out: std::collections::HashMap<String, RevocationState> = stmt
        .query_map(params![key], |r| {
            Ok(Revocation {
                connector_key: r.get(0)?,
                requested_at_ms: r.get(1)?,
                requested_by: r.get(2)?,
                reason: r.get(3)?,
            })
        })?
        .map(|r| r.map(|r| (r.connector_key.clone(), RevocationState { revocation: r, latest: Vec::new() })))
        .collect::<rusqlite::Result<_>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let filter = if key.is_some() { "d.connector_key = ?1" } else { "?1 IS NULL" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DIRECTIVE_COLUMNS} FROM directives d WHERE {filter} AND d.seq = \
         (SELECT max(x.seq) FROM directives x WHERE x.connector_key = d.connector_key AND x.device_id = d.device_id) \
         ORDER BY d.seq"
    ))?;
    for d in stmt.query_map(params![key], directive_row)? {
        let d = d?;
        if let Some(state) = out.get_mut(&d.connector_key) {
            state.latest.push(d);
        }
    }
    Ok(out)
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        device_id: r.get(0)?,
        os_user: r.get(1)?,
        terminal: r.get(2)?,
        host: r.get(3)?,
        started_at_ms: r.get(4)?,
        ended_at_ms: r.get(5)?,
        appeared_seq: r.get::<_, i64>(6)? as u64,
    })
}

fn person_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Person> {
    Ok(Person {
        id: r.get(0)?,
        user_name: r.get(1)?,
        external_id: r.get(2)?,
        display_name: r.get(3)?,
        emails: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        active: r.get(5)?,
        created_at_ms: r.get(6)?,
        modified_at_ms: r.get(7)?,
        deprovisioned_at_ms: r.get(8)?,
        deleted_at_ms: r.get(9)?,
    })
}

impl SqliteStore {
    fn write_person(&self, p: &Person, create: bool) -> Result<()> {
        let sql = if create {
            "INSERT INTO people (id, user_name, external_id, display_name, emails, active, created_at_ms, \
             modified_at_ms, deprovisioned_at_ms, deleted_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        } else {
            "UPDATE people SET user_name = ?2, external_id = ?3, display_name = ?4, emails = ?5, active = ?6, \
             created_at_ms = ?7, modified_at_ms = ?8, deprovisioned_at_ms = ?9, deleted_at_ms = ?10 WHERE id = ?1"
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = tx.execute(
            sql,
            params![
                p.id,
                p.user_name,
                p.external_id,
                p.display_name,
                serde_json::to_string(&p.emails).unwrap_or_else(|_| "[]".into()),
                p.active,
                p.created_at_ms,
                p.modified_at_ms,
                p.deprovisioned_at_ms,
                p.deleted_at_ms
            ],
        );
        if r.is_ok() {
            tx.execute("DELETE FROM person_keys WHERE person_id = ?1", params![p.id])?;
            let keys = p.index_keys();
            let mut insert = tx.prepare_cached("INSERT INTO person_keys (key, person_id) VALUES (?1, ?2)")?;
            for k in keys {
                insert.execute(params![k, p.id])?;
            }
        }
        let r = r.and_then(|n| {
            tx.commit()?;
            Ok(n)
        });
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(format!("userName {:?} is already provisioned", p.user_name)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn query_presence(&self, filter: &str, device_id: &str, at_ms: i64) -> Result<Vec<Presence>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT p.device_id, p.connector_key, c.kind, c.label, p.locus, p.os_user, p.appeared_at_ms, \
                    p.disappeared_at_ms, p.appeared_seq, p.disappeared_seq \
             FROM presence p JOIN connectors c ON c.key = p.connector_key \
             WHERE {filter} ORDER BY p.appeared_at_ms, c.kind, c.label, p.locus"
        ))?;
        let rows = stmt.query_map(params![device_id, at_ms], |r| {
            Ok(Presence {
                device_id: r.get(0)?,
                connector_key: r.get(1)?,
                kind: r.get(2)?,
                label: r.get(3)?,
                locus: r.get(4)?,
                os_user: r.get(5)?,
                appeared_at_ms: r.get(6)?,
                disappeared_at_ms: r.get(7)?,
                appeared_seq: r.get::<_, i64>(8)? as u64,
                disappeared_seq: r.get::<_, Option<i64>>(9)?.map(|s| s as u64),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn query_connectors(&self, device: Option<&str>, key: Option<&str>) -> Result<Vec<Connector>> {
        let conn = self.conn();
        // Filters spelled out rather than `?1 IS NULL OR …`, which keeps SQLite off the indexes.
        let device_filter = if device.is_some() { "cd.device_id = ?1" } else { "?1 IS NULL" };
        let key_filter = if key.is_some() { "c.key = ?2" } else { "?2 IS NULL" };
        let mut stmt = conn.prepare(&format!(
            "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, c.latest, \
                    cd.device_id, d.hostname, cd.os_user, cd.first_seen_ms, cd.last_seen_ms, \
                    EXISTS (SELECT 1 FROM presence p WHERE p.device_id = cd.device_id \
                            AND p.connector_key = c.key AND p.disappeared_at_ms IS NULL) \
             FROM connectors c JOIN connector_devices cd ON cd.connector_key = c.key JOIN devices d ON d.id = cd.device_id \
             WHERE {device_filter} AND {key_filter} \
             ORDER BY c.kind, c.label, c.key, d.hostname"
        ))?;
        let mut rows = stmt.query(params![device, key])?;
        let mut out: Vec<Connector> = Vec::new();
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let dev = ConnectorDevice {
                device_id: r.get(6)?,
                hostname: r.get(7)?,
                user: r.get(8)?,
                first_seen_ms: r.get(9)?,
                last_seen_ms: r.get(10)?,
                present: r.get(11)?,
            };
            match out.last_mut() {
                Some(c) if c.key == key => c.devices.push(dev),
                _ => {
                    let latest: String = r.get(5)?;
                    out.push(Connector {
                        key,
                        kind: r.get(1)?,
                        label: r.get(2)?,
                        first_seen_ms: r.get(3)?,
                        last_seen_ms: r.get(4)?,
                        latest: serde_json::from_str(&latest).unwrap_or(Value::Null),
                        devices: vec![dev],
                        seen_on: 0,
                        revocation: None,
                        decision: None,
                    })
                }
            }
        }
        drop(rows);
        drop(stmt);
        let mut states = revocation_states(&conn, key)?;
        let mut decisions = decisions(&conn)?;
        for c in &mut out {
            c.seen_on = c.devices.len();
            c.revocation = states.remove(&c.key);
            c.decision = decisions.remove(&c.key);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-only behaviour; what every backend must do is in tests/store_conformance.rs.
    use super::*;

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
