//! The PostgreSQL store: one database shared by any number of stateless collector replicas.
//!
//! Everything a replica needs is here, never in its memory: device keys and sequence heads,
//! pending enrollment challenges, directives and their delivery cursor, API tokens and
//! dashboard sessions. Concurrency is the database's: a batch is accepted under a row lock
//! on its device (two replicas receiving the same batch store it once; the second sees a
//! duplicate), challenges are taken with `DELETE … RETURNING` (one replica wins), and
//! directive issue is serialised so the cursor never skips a row still being written.

mod ingest;
mod pool;
mod schema;
mod tls;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use postgres::Row;
use postgres::error::SqlState;
use postgres::types::ToSql;
use serde_json::Value;

use self::pool::{Pool, Pooled};
use self::schema::Month;
use super::{
    ApiTokenInfo, Challenge, ClaimsRecord, Connector, ConnectorDevice, Decision, Device, DevicePage,
    DirectiveRecord, EnrollmentTokenInfo, ExportObservation, FleetCounts, IngestBatch, IngestOutcome,
    OutcomeRef, Person, Presence, Pruned, Result, Revocation, RevocationState, Session, Store, StoreError,
    StoredBatch, TpmChallenge, hash32,
};
use crate::signins::SignIn;

/// Serialises directive issue, so `directives.seq` commits in order and every replica's
/// cursor sees each directive (see [`Store::directives_since`]).
const DIRECTIVE_LOCK: i64 = 0x5167_6874_6469_7273;

/// How far the export cursor stays behind the newest observation: ids are drawn when a
/// transaction inserts, and one still in flight may commit a lower id after a higher one
/// is visible. Ingest transactions are bounded by `statement_timeout` well below this.
const EXPORT_SETTLE_MS: i64 = 120_000;

pub struct PostgresStore {
    pool: Pool,
    /// Months whose observation partition is known to exist.
    months: Mutex<HashSet<Month>>,
    known: ingest::Known,
    folds: ingest::Folds,
    /// Ingest writer lanes: groups committed at once, each on its own connection.
    lanes: usize,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`, or key=value form),
    /// applies migrations and makes sure this month's and next month's partitions exist.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let requested = tls::parse(url)?;
        let mut config: postgres::Config = requested
            .conninfo
            .parse()
            .map_err(|e: postgres::Error| StoreError::Unavailable(format!("database URL: {e}")))?;
        let tls = match &requested.root_cert {
            Some(ca) => {
                config.ssl_mode(postgres::config::SslMode::Require);
                Some(tls::connector(ca)?)
            }
            None => {
                let remote = config.get_hosts().iter().any(|h| match h {
                    postgres::config::Host::Tcp(name) => {
                        !matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
                    }
                    _ => false,
                });
                if remote {
                    tracing::warn!(
                        "The database connection is not encrypted; add sslmode=verify-full&sslrootcert=CA.pem to the URL."
                    );
                }
                None
            }
        };
        if config.get_application_name().is_none() {
            config.application_name("sightline-server");
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let store = PostgresStore {
            pool: Pool::new(config, (cores * 4).clamp(8, 32), tls),
            months: Default::default(),
            known: Default::default(),
            folds: Default::default(),
            // Enough groups in flight to cover a commit's round trips and fsync, few enough
            // that each group stays large under load.
            lanes: (cores * 2).clamp(2, 8),
        };
        schema::migrate(&mut store.conn()?.client)?;
        let now = crate::clock::now_ms();
        store.ensure_partition(now)?;
        store.ensure_partition(Month::of(now).next().start_ms())?;
        Ok(store)
    }

    fn conn(&self) -> Result<Pooled<'_>> {
        self.pool.get()
    }

    /// Folds a committed group's sightings into the connector summaries, writing them when due.
    fn fold(&self, conn: &mut Pooled<'_>, group: &[IngestBatch], out: &[Result<IngestOutcome>]) {
        let mut due = false;
        for (b, r) in group.iter().zip(out) {
            if matches!(r, Ok(IngestOutcome::Stored { .. })) {
                due |= self.folds.add(b);
            }
        }
        // The batches are stored and acknowledged whatever happens here; a failed write is
        // kept and tried again with the next.
        if due && let Err(e) = self.folds.flush(conn) {
            tracing::warn!(error = %e, "Could not update connector summaries; will retry.");
        }
    }

    /// Writes this replica's pending connector summaries, so what it reads includes what it
    /// stored.
    fn flush_folds(&self) -> Result<()> {
        self.folds.flush(&mut *self.conn()?)
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let mut c = self.conn()?;
        let st = c.statement(sql)?;
        Ok(c.client.query(&st, params)?)
    }

    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut c = self.conn()?;
        let st = c.statement(sql)?;
        Ok(c.client.query_opt(&st, params)?)
    }

    /// The first row, mapped.
    fn one<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: fn(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.query_opt(sql, params)?.as_ref().map(f).transpose()
    }

    /// Every row, mapped.
    fn all<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)], f: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let mut c = self.conn()?;
        let st = c.statement(sql)?;
        Ok(c.client.execute(&st, params)?)
    }

    /// The partition for rows received at `at_ms` exists.
    fn ensure_partition(&self, at_ms: i64) -> Result<()> {
        let month = Month::of(at_ms);
        if self.months.lock().unwrap_or_else(|p| p.into_inner()).contains(&month) {
            return Ok(());
        }
        schema::create_partition(&mut self.conn()?.client, month)?;
        self.months.lock().unwrap_or_else(|p| p.into_inner()).insert(month);
        Ok(())
    }

    fn write_person(&self, p: &Person, create: bool) -> Result<()> {
        let sql = if create {
            "INSERT INTO people (id, user_name, external_id, display_name, emails, active, created_at_ms, \
             modified_at_ms, deprovisioned_at_ms, deleted_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        } else {
            "UPDATE people SET user_name = $2, external_id = $3, display_name = $4, emails = $5, active = $6, \
             created_at_ms = $7, modified_at_ms = $8, deprovisioned_at_ms = $9, deleted_at_ms = $10 WHERE id = $1"
        };
        let emails = serde_json::to_string(&p.emails).unwrap_or_else(|_| "[]".into());
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let written = tx.execute(
            sql,
            &[
                &p.id,
                &p.user_name,
                &p.external_id,
                &p.display_name,
                &emails,
                &p.active,
                &p.created_at_ms,
                &p.modified_at_ms,
                &p.deprovisioned_at_ms,
                &p.deleted_at_ms,
            ],
        );
        match written {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::Conflict(format!(
                    "userName {:?} is already provisioned",
                    p.user_name
                )));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        tx.execute("DELETE FROM person_keys WHERE person_id = $1", &[&p.id])?;
        tx.execute(
            "INSERT INTO person_keys (key, person_id) SELECT k, $2 FROM unnest($1::text[]) AS k",
            &[&p.index_keys(), &p.id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn query_presence(&self, filter: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Presence>> {
        self.query(
            &format!(
                "SELECT p.device_id, p.connector_key, c.kind, c.label, p.locus, p.os_user, p.appeared_at_ms, \
                        p.disappeared_at_ms, p.appeared_seq, p.disappeared_seq \
                 FROM presence p JOIN connectors c ON c.key = p.connector_key \
                 WHERE {filter} ORDER BY p.appeared_at_ms, c.kind, c.label, p.locus"
            ),
            params,
        )?
        .iter()
        .map(|r| {
            Ok(Presence {
                device_id: r.try_get(0)?,
                connector_key: r.try_get(1)?,
                kind: r.try_get(2)?,
                label: r.try_get(3)?,
                locus: r.try_get(4)?,
                os_user: r.try_get(5)?,
                appeared_at_ms: r.try_get(6)?,
                disappeared_at_ms: r.try_get(7)?,
                appeared_seq: r.try_get::<_, i64>(8)? as u64,
                disappeared_seq: r.try_get::<_, Option<i64>>(9)?.map(|s| s as u64),
            })
        })
        .collect()
    }

    fn query_connectors(&self, device: Option<&str>, key: Option<&str>) -> Result<Vec<Connector>> {
        self.flush_folds()?;
        let rows = self.query(
            "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, c.latest, \
                    cd.device_id, d.hostname, cd.os_user, cd.first_seen_ms, cd.last_seen_ms, \
                    EXISTS (SELECT 1 FROM presence p WHERE p.device_id = cd.device_id \
                            AND p.connector_key = c.key AND p.disappeared_at_ms IS NULL) \
             FROM connectors c JOIN connector_devices cd ON cd.connector_key = c.key JOIN devices d ON d.id = cd.device_id \
             WHERE ($1::text IS NULL OR cd.device_id = $1) AND ($2::text IS NULL OR c.key = $2) \
             ORDER BY c.kind, c.label, c.key, d.hostname",
            &[&device, &key],
        )?;
        let mut out: Vec<Connector> = Vec::new();
        for r in &rows {
            let key: String = r.try_get(0)?;
            let dev = ConnectorDevice {
                device_id: r.try_get(6)?,
                hostname: r.try_get(7)?,
                user: r.try_get(8)?,
                first_seen_ms: r.try_get(9)?,
                last_seen_ms: r.try_get(10)?,
                present: r.try_get(11)?,
            };
            match out.last_mut() {
                Some(c) if c.key == key => c.devices.push(dev),
                _ => out.push(Connector {
                    key,
                    kind: r.try_get(1)?,
                    label: r.try_get(2)?,
                    first_seen_ms: r.try_get(3)?,
                    last_seen_ms: r.try_get(4)?,
                    latest: json(r.try_get(5)?),
                    devices: vec![dev],
                    seen_on: 0,
                    revocation: None,
                    decision: None,
                }),
            }
        }
        let mut states = self.revocation_states(key)?;
        let mut decisions = self.decisions()?;
        for c in &mut out {
            c.seen_on = c.devices.len();
            c.revocation = states.remove(&c.key);
            c.decision = decisions.remove(&c.key);
        }
        Ok(out)
    }

    fn decisions(&self) -> Result<HashMap<String, Decision>> {
        self.query("SELECT connector_key, status, decided_by, decided_at_ms FROM connector_decisions", &[])?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    Decision { status: r.try_get(1)?, by: r.try_get(2)?, at_ms: r.try_get(3)? },
                ))
            })
            .collect()
    }

    /// Revocations (all, or one connector's) with the latest directive to each device.
    fn revocation_states(&self, key: Option<&str>) -> Result<HashMap<String, RevocationState>> {
        let mut out: HashMap<String, RevocationState> = HashMap::new();
        for r in self.query(
            "SELECT connector_key, requested_at_ms, requested_by, reason FROM revocations \
             WHERE $1::text IS NULL OR connector_key = $1",
            &[&key],
        )? {
            let revocation = Revocation {
                connector_key: r.try_get(0)?,
                requested_at_ms: r.try_get(1)?,
                requested_by: r.try_get(2)?,
                reason: r.try_get(3)?,
            };
            out.insert(revocation.connector_key.clone(), RevocationState { revocation, latest: Vec::new() });
        }
        if out.is_empty() {
            return Ok(out);
        }
        for r in self.query(
            &format!(
                "SELECT DISTINCT ON (connector_key, device_id) {DIRECTIVE_COLUMNS} FROM directives \
                 WHERE $1::text IS NULL OR connector_key = $1 ORDER BY connector_key, device_id, seq DESC"
            ),
            &[&key],
        )? {
            let d = directive_row(&r)?;
            if let Some(state) = out.get_mut(&d.connector_key) {
                state.latest.push(d);
            }
        }
        for state in out.values_mut() {
            state.latest.sort_by_key(|d| d.seq);
        }
        Ok(out)
    }
}

impl Drop for PostgresStore {
    /// The pending connector summaries are written on the way out (SIGTERM, or the last
    /// reference dropped), on a thread of its own if this one drives async tasks.
    fn drop(&mut self) {
        let flush = || {
            if let Err(e) = self.flush_folds() {
                tracing::warn!(error = %e, "Could not write connector summaries at shutdown.");
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(flush);
            });
        } else {
            flush();
        }
    }
}

fn export_row(r: &Row) -> Result<ExportObservation> {
    Ok(ExportObservation {
        rowid: r.try_get(0)?,
        device_id: r.try_get(1)?,
        hostname: r.try_get(2)?,
        os: r.try_get(3)?,
        os_version: r.try_get(4)?,
        seq: r.try_get::<_, i64>(5)? as u64,
        observed_at_ms: r.try_get(6)?,
        received_at_ms: r.try_get(7)?,
        change: r.try_get(8)?,
        kind: r.try_get(9)?,
        assurance: r.try_get(10)?,
        data: json(r.try_get(11)?),
    })
}

fn json(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

const DEVICE_COLUMNS: &str = "id, hostname, os, os_version, agent_version, key_backend, assurance, key_spki, cert_sha256, \
     enrolled_at_ms, last_seen_ms, seq_head, head_hash, revoked_at_ms, users, next_cert_sha256, last_attested_ms, hardware_id, \
     clock_skew_ms";

fn device_row(r: &Row) -> Result<Device> {
    let users: String = r.try_get(14)?;
    Ok(Device {
        id: r.try_get(0)?,
        hostname: r.try_get(1)?,
        os: r.try_get(2)?,
        os_version: r.try_get(3)?,
        agent_version: r.try_get(4)?,
        key_backend: r.try_get(5)?,
        assurance: r.try_get(6)?,
        key_spki: r.try_get(7)?,
        cert_sha256: r.try_get(8)?,
        enrolled_at_ms: r.try_get(9)?,
        last_seen_ms: r.try_get(10)?,
        seq_head: r.try_get::<_, i64>(11)? as u64,
        head_hash: hash32(r.try_get(12)?)?,
        revoked_at_ms: r.try_get(13)?,
        users: serde_json::from_str(&users).unwrap_or_default(),
        next_cert_sha256: r.try_get(15)?,
        last_attested_ms: r.try_get(16)?,
        hardware_id: r.try_get(17)?,
        clock_skew_ms: r.try_get(18)?,
    })
}

const PERSON_SELECT: &str = "SELECT id, user_name, external_id, display_name, emails, active, created_at_ms, \
     modified_at_ms, deprovisioned_at_ms, deleted_at_ms FROM people";

fn person_row(r: &Row) -> Result<Person> {
    Ok(Person {
        id: r.try_get(0)?,
        user_name: r.try_get(1)?,
        external_id: r.try_get(2)?,
        display_name: r.try_get(3)?,
        emails: serde_json::from_str(r.try_get::<_, &str>(4)?).unwrap_or_default(),
        active: r.try_get(5)?,
        created_at_ms: r.try_get(6)?,
        modified_at_ms: r.try_get(7)?,
        deprovisioned_at_ms: r.try_get(8)?,
        deleted_at_ms: r.try_get(9)?,
    })
}

const DIRECTIVE_COLUMNS: &str = "seq, id, device_id, connector_key, action, target, payload, signature, \
     issued_at_ms, expires_at_ms, issued_at_seq, sent_at_ms, outcome, detail, mode, outcome_at_ms, outcome_seq";

fn directive_row(r: &Row) -> Result<DirectiveRecord> {
    let id: String = r.try_get(1)?;
    let outcome = match r.try_get::<_, Option<String>>(12)? {
        Some(outcome) => Some(OutcomeRef {
            directive_id: id.clone(),
            outcome,
            detail: r.try_get::<_, Option<String>>(13)?.unwrap_or_default(),
            mode: r.try_get::<_, Option<String>>(14)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(DirectiveRecord {
        seq: r.try_get(0)?,
        id,
        device_id: r.try_get(2)?,
        connector_key: r.try_get(3)?,
        action: r.try_get(4)?,
        target: r.try_get(5)?,
        payload: r.try_get(6)?,
        signature: r.try_get(7)?,
        issued_at_ms: r.try_get(8)?,
        expires_at_ms: r.try_get(9)?,
        issued_at_seq: r.try_get::<_, i64>(10)? as u64,
        sent_at_ms: r.try_get(11)?,
        outcome,
        outcome_at_ms: r.try_get(15)?,
        outcome_seq: r.try_get::<_, Option<i64>>(16)?.map(|s| s as u64),
    })
}

const SESSION_COLUMNS: &str = "device_id, os_user, terminal, host, started_at_ms, ended_at_ms, appeared_seq";

fn session_row(r: &Row) -> Result<Session> {
    Ok(Session {
        device_id: r.try_get(0)?,
        os_user: r.try_get(1)?,
        terminal: r.try_get(2)?,
        host: r.try_get(3)?,
        started_at_ms: r.try_get(4)?,
        ended_at_ms: r.try_get(5)?,
        appeared_seq: r.try_get::<_, i64>(6)? as u64,
    })
}

/// Whether a token row (expires, used, revoked) may be used now.
fn token_usable(row: Option<Row>, now_ms: i64) -> Result<()> {
    let row = match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
        None => None,
    };
    super::token_verdict(row, now_ms)
}

impl Store for PostgresStore {
    fn create_token(
        &self,
        token_hash: &[u8],
        name: &str,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO enrollment_tokens (token_hash, name, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
            &[&token_hash, &name, &created_at_ms, &expires_at_ms],
        )?;
        Ok(())
    }

    fn enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>> {
        self.all(
            "SELECT token_hash, name, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms \
             FROM enrollment_tokens ORDER BY created_at_ms, token_hash",
            &[],
            |r| {
                Ok(EnrollmentTokenInfo {
                    token_hash: r.try_get(0)?,
                    name: r.try_get(1)?,
                    created_at_ms: r.try_get(2)?,
                    expires_at_ms: r.try_get(3)?,
                    used_at_ms: r.try_get(4)?,
                    revoked_at_ms: r.try_get(5)?,
                })
            },
        )
    }

    fn revoke_enrollment_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        let n = self.execute(
            "UPDATE enrollment_tokens SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL",
            &[&now_ms, &token_hash],
        )?;
        Ok(n > 0)
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
        self.execute(
            "INSERT INTO api_tokens (token_hash, role, name, created_at_ms, expires_at_ms, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&token_hash, &role, &name, &now_ms, &expires_at_ms, &created_by],
        )?;
        Ok(())
    }

    fn session_token(&self, session_hash: &[u8]) -> Result<Option<Vec<u8>>> {
        self.query_opt("SELECT token_hash FROM ui_sessions WHERE session_hash = $1", &[&session_hash])?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        self.all(
            "SELECT token_hash, role, name, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms, created_by \
             FROM api_tokens ORDER BY created_at_ms, token_hash",
            &[],
            |r| {
                Ok(ApiTokenInfo {
                    token_hash: r.try_get(0)?,
                    role: r.try_get(1)?,
                    name: r.try_get(2)?,
                    created_at_ms: r.try_get(3)?,
                    expires_at_ms: r.try_get(4)?,
                    last_used_at_ms: r.try_get(5)?,
                    revoked_at_ms: r.try_get(6)?,
                    created_by: r.try_get(7)?,
                })
            },
        )
    }

    fn revoke_api_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL",
            &[&now_ms, &token_hash],
        )?;
        tx.execute("DELETE FROM ui_sessions WHERE token_hash = $1", &[&token_hash])?;
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
        self.one(&format!("{PERSON_SELECT} WHERE id = $1"), &[&id], person_row)
    }

    fn person_by_user_name(&self, user_name: &str) -> Result<Option<Person>> {
        self.one(
            &format!("{PERSON_SELECT} WHERE lower(user_name) = lower($1) AND deleted_at_ms IS NULL"),
            &[&user_name],
            person_row,
        )
    }

    fn people(&self) -> Result<Vec<Person>> {
        self.all(
            &format!("{PERSON_SELECT} WHERE deleted_at_ms IS NULL ORDER BY created_at_ms, id"),
            &[],
            person_row,
        )
    }

    fn people_all(&self) -> Result<Vec<Person>> {
        self.all(&format!("{PERSON_SELECT} ORDER BY created_at_ms, id"), &[], person_row)
    }

    fn people_by_keys(&self, keys: &[String]) -> Result<Vec<Person>> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        self.all(
            &format!(
                "{PERSON_SELECT} WHERE id IN (SELECT person_id FROM person_keys WHERE key = ANY($1)) \
                 ORDER BY created_at_ms, id"
            ),
            &[&keys],
            person_row,
        )
    }

    fn api_token_role(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        let Some(r) = self.query_opt(
            "SELECT role, last_used_at_ms FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL \
             AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
            &[&token_hash, &now_ms],
        )?
        else {
            return Ok(None);
        };
        if super::stale_use(r.try_get(1)?, now_ms) {
            self.execute(
                "UPDATE api_tokens SET last_used_at_ms = $1 WHERE token_hash = $2",
                &[&now_ms, &token_hash],
            )?;
        }
        Ok(Some(r.try_get(0)?))
    }

    fn check_token(&self, token_hash: &[u8], now_ms: i64) -> Result<()> {
        token_usable(
            self.query_opt(
                "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_tokens WHERE token_hash = $1",
                &[&token_hash],
            )?,
            now_ms,
        )
    }

    fn put_challenge(&self, c: &Challenge) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        // Expired challenges are garbage; clear them as new ones arrive.
        tx.execute(
            "DELETE FROM enrollment_challenges WHERE expires_at_ms < $1",
            &[&(c.expires_at_ms - 3_600_000)],
        )?;
        tx.execute(
            "INSERT INTO enrollment_challenges (id, nonce, token_hash, expires_at_ms, hostname, os, os_version, agent_version, \
             key_backend, device_key_spki, tpm_secret, tpm_ek_public, tpm_ak_public, tpm_device_key_public, tpm_ek_trusted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &c.id,
                &c.nonce,
                &c.token_hash,
                &c.expires_at_ms,
                &c.hostname,
                &c.os,
                &c.os_version,
                &c.agent_version,
                &c.key_backend,
                &c.device_key_spki,
                &c.tpm.as_ref().map(|t| &t.secret),
                &c.tpm.as_ref().map(|t| &t.ek_public),
                &c.tpm.as_ref().map(|t| &t.ak_public),
                &c.tpm.as_ref().map(|t| &t.device_key_public),
                &c.tpm.as_ref().map(|t| t.ek_trusted),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn take_challenge(&self, id: &str) -> Result<Option<Challenge>> {
        // One statement: of two replicas completing the same challenge, one gets it.
        let Some(r) = self.query_opt(
            "DELETE FROM enrollment_challenges WHERE id = $1 RETURNING id, nonce, token_hash, expires_at_ms, hostname, os, \
             os_version, agent_version, key_backend, device_key_spki, tpm_secret, tpm_ek_public, tpm_ak_public, \
             tpm_device_key_public, tpm_ek_trusted",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Challenge {
            id: r.try_get(0)?,
            nonce: r.try_get(1)?,
            token_hash: r.try_get(2)?,
            expires_at_ms: r.try_get(3)?,
            hostname: r.try_get(4)?,
            os: r.try_get(5)?,
            os_version: r.try_get(6)?,
            agent_version: r.try_get(7)?,
            key_backend: r.try_get(8)?,
            device_key_spki: r.try_get(9)?,
            tpm: match r.try_get::<_, Option<Vec<u8>>>(10)? {
                Some(secret) => Some(TpmChallenge {
                    secret,
                    ek_public: r.try_get(11)?,
                    ak_public: r.try_get(12)?,
                    device_key_public: r.try_get(13)?,
                    ek_trusted: r.try_get::<_, Option<bool>>(14)?.unwrap_or(false),
                }),
                None => None,
            },
        }))
    }

    fn complete_enrollment(
        &self,
        token_hash: &[u8],
        d: &Device,
        hardware: &[String],
        now_ms: i64,
    ) -> Result<Device> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        token_usable(
            tx.query_opt(
                "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )?,
            now_ms,
        )?;
        tx.execute(
            "UPDATE enrollment_tokens SET used_at_ms = $1 WHERE token_hash = $2",
            &[&now_ms, &token_hash],
        )?;
        let hardware_id = hardware.first();
        // The identity in the order given: the current spelling wins over older ones.
        let existing = tx
            .query_opt(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = ANY($1) \
                     ORDER BY array_position($1, hardware_id) LIMIT 1 FOR UPDATE"
                ),
                &[&hardware],
            )?
            .as_ref()
            .map(device_row)
            .transpose()?;
        let stored = match existing {
            Some(old) if old.revoked_at_ms.is_some() => return Err(StoreError::Revoked(old.id)),
            // The same hardware again: same record, new key and certificate, chain kept.
            Some(old) => {
                tx.execute(
                    "UPDATE devices SET hostname = $1, os = $2, os_version = $3, agent_version = $4, key_backend = $5, \
                     assurance = $6, key_spki = $7, cert_sha256 = $8, next_cert_sha256 = NULL, enrolled_at_ms = $9, \
                     hardware_id = $10 WHERE id = $11",
                    &[
                        &d.hostname,
                        &d.os,
                        &d.os_version,
                        &d.agent_version,
                        &d.key_backend,
                        &d.assurance,
                        &d.key_spki,
                        &d.cert_sha256,
                        &d.enrolled_at_ms,
                        &hardware_id,
                        &old.id,
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
                        "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                         $14, $15, $16, $17, $18, $19)"
                    ),
                    &[
                        &d.id,
                        &d.hostname,
                        &d.os,
                        &d.os_version,
                        &d.agent_version,
                        &d.key_backend,
                        &d.assurance,
                        &d.key_spki,
                        &d.cert_sha256,
                        &d.enrolled_at_ms,
                        &d.last_seen_ms,
                        &(d.seq_head as i64),
                        &d.head_hash.as_slice(),
                        &d.revoked_at_ms,
                        &serde_json::to_string(&d.users).unwrap_or_else(|_| "[]".into()),
                        &d.next_cert_sha256,
                        &d.last_attested_ms,
                        &hardware_id,
                        &d.clock_skew_ms,
                    ],
                )?;
                Device { hardware_id: hardware_id.cloned(), ..d.clone() }
            }
        };
        tx.commit()?;
        Ok(stored)
    }

    fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<Device>> {
        self.one(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE hardware_id = $1"),
            &[&hardware_id],
            device_row,
        )
    }

    fn device(&self, id: &str) -> Result<Option<Device>> {
        self.one(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"), &[&id], device_row)
    }

    fn device_by_cert(&self, cert_sha256: &str) -> Result<Option<Device>> {
        self.one(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE cert_sha256 = $1 OR next_cert_sha256 = $1"),
            &[&cert_sha256],
            device_row,
        )
    }

    fn revoke_device(&self, id: &str, now_ms: i64) -> Result<()> {
        let n = self.execute(
            "UPDATE devices SET revoked_at_ms = COALESCE(revoked_at_ms, $1) WHERE id = $2",
            &[&now_ms, &id],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(id.to_owned()));
        }
        Ok(())
    }

    fn record_claims(&self, c: &ClaimsRecord) -> Result<()> {
        ingest::record_claims(&mut *self.conn()?, std::slice::from_ref(c))
    }

    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
        let grouped = self
            .conn()
            .and_then(|mut c| ingest::record_claims(&mut c, claims))
            .map(|()| claims.iter().map(|_| Ok(())).collect());
        crate::store::or_each_alone("claims", claims, grouped, |c| self.record_claims(c))
    }

    fn stage_certificate(&self, device_id: &str, new_sha256: &str) -> Result<()> {
        let n = self.execute(
            "UPDATE devices SET next_cert_sha256 = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
            &[&new_sha256, &device_id],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device_id.to_owned()));
        }
        Ok(())
    }

    fn promote_certificate(&self, device_id: &str, sha256: &str) -> Result<()> {
        self.execute(
            "UPDATE devices SET cert_sha256 = next_cert_sha256, next_cert_sha256 = NULL WHERE id = $1 AND next_cert_sha256 = $2",
            &[&device_id, &sha256],
        )?;
        Ok(())
    }

    fn devices(&self) -> Result<Vec<Device>> {
        self.all(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY hostname, id"), &[], device_row)
    }

    fn ingest(&self, b: &IngestBatch) -> Result<IngestOutcome> {
        self.ensure_partition(b.received_at_ms)?;
        let mut conn = self.conn()?;
        let group = std::slice::from_ref(b);
        let mut out = match ingest::ingest_group(&mut conn, group, &self.known) {
            // Another replica pruned the month this one thought existed: make it again.
            Err(StoreError::Postgres(e)) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                self.months.lock().unwrap_or_else(|p| p.into_inner()).remove(&Month::of(b.received_at_ms));
                self.ensure_partition(b.received_at_ms)?;
                ingest::ingest_group(&mut conn, group, &self.known)?
            }
            r => r?,
        };
        self.fold(&mut conn, group, &out);
        out.pop().unwrap_or_else(|| Err(StoreError::Corrupt("no result for the batch".into())))
    }

    fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<Result<IngestOutcome>> {
        let grouped = (|| {
            for b in batches {
                self.ensure_partition(b.received_at_ms)?;
            }
            let mut conn = self.conn()?;
            let out = ingest::ingest_group(&mut conn, batches, &self.known)?;
            self.fold(&mut conn, batches, &out);
            Ok::<_, StoreError>(out)
        })();
        // One at a time, a pruned month is also made again (see `ingest`).
        crate::store::or_each_alone("batches", batches, grouped, |b| self.ingest(b))
    }

    fn ingest_lanes(&self) -> usize {
        self.lanes
    }

    fn connectors(&self) -> Result<Vec<Connector>> {
        self.query_connectors(None, None)
    }

    fn device_connectors(&self, device_id: &str) -> Result<Vec<Connector>> {
        self.query_connectors(Some(device_id), None)
    }

    fn count_observations(&self, device_id: &str) -> Result<u64> {
        // Each stored batch holds its sequence range, once; pruning drops both together.
        let r = self.query_opt(
            "SELECT COALESCE(sum(last_seq - first_seq + 1), 0)::bigint FROM batches WHERE device_id = $1",
            &[&device_id],
        )?;
        Ok(r.map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0) as u64)
    }

    fn present_at(&self, device_id: &str, at_ms: i64) -> Result<Vec<Presence>> {
        self.query_presence(
            "p.device_id = $1 AND p.appeared_at_ms <= $2 AND (p.disappeared_at_ms IS NULL OR p.disappeared_at_ms > $2)",
            &[&device_id, &at_ms],
        )
    }

    fn presence_history(&self, device_id: &str) -> Result<Vec<Presence>> {
        self.query_presence("p.device_id = $1", &[&device_id])
    }

    fn sessions_at(&self, device_id: Option<&str>, at_ms: i64) -> Result<Vec<Session>> {
        self.all(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE ($1::text IS NULL OR device_id = $1) \
                 AND started_at_ms <= $2 AND (ended_at_ms IS NULL OR ended_at_ms > $2) \
                 ORDER BY device_id, os_user, started_at_ms"
            ),
            &[&device_id, &at_ms],
            session_row,
        )
    }

    fn connector_presence(&self, connector_key: &str) -> Result<Vec<Presence>> {
        self.query_presence("p.connector_key = $1", &[&connector_key])
    }

    fn connector(&self, key: &str) -> Result<Option<Connector>> {
        Ok(self.query_connectors(None, Some(key))?.into_iter().next())
    }

    fn presence_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Presence>> {
        let mut out = Vec::new();
        // One query per account keeps the (os_user, appeared_at_ms) index usable and the
        // order the same as SQLite's.
        for u in os_users {
            out.extend(self.query_presence(
                "p.os_user = $1 AND p.appeared_at_ms <= $2 AND (p.disappeared_at_ms IS NULL OR p.disappeared_at_ms > $2)",
                &[u, &at_ms],
            )?);
        }
        Ok(out)
    }

    fn sessions_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        for u in os_users {
            for r in self.query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE os_user = $1 AND started_at_ms <= $2 \
                     AND (ended_at_ms IS NULL OR ended_at_ms > $2) ORDER BY device_id, started_at_ms"
                ),
                &[u, &at_ms],
            )? {
                out.push(session_row(&r)?);
            }
        }
        Ok(out)
    }

    fn present_now(&self) -> Result<Vec<Presence>> {
        self.query_presence("p.disappeared_at_ms IS NULL", &[])
    }

    fn add_signins(&self, signins: &[SignIn]) -> Result<usize> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let insert = tx.prepare(
            "INSERT INTO signins (id, source, user_name, at_ms, ip, app, device, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )?;
        let mut added = 0;
        for s in signins {
            added += tx.execute(
                &insert,
                &[&s.id, &s.source, &s.user_name, &s.at_ms, &s.ip, &s.app, &s.device, &s.outcome],
            )? as usize;
        }
        tx.commit()?;
        Ok(added)
    }

    fn signins_for(&self, user_names: &[String], from_ms: i64, to_ms: i64) -> Result<Vec<SignIn>> {
        let mut out = Vec::new();
        for u in user_names {
            for r in self.query(
                "SELECT id, source, user_name, at_ms, ip, app, device, outcome FROM signins \
                 WHERE lower(user_name) = lower($1) AND at_ms BETWEEN $2 AND $3 ORDER BY at_ms DESC LIMIT 50",
                &[u, &from_ms, &to_ms],
            )? {
                out.push(SignIn {
                    id: r.try_get(0)?,
                    source: if r.try_get::<_, &str>(1)? == "okta" { "okta" } else { "entra" },
                    user_name: r.try_get(2)?,
                    at_ms: r.try_get(3)?,
                    ip: r.try_get(4)?,
                    app: r.try_get(5)?,
                    device: r.try_get(6)?,
                    outcome: if r.try_get::<_, &str>(7)? == "success" { "success" } else { "failure" },
                });
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
        Ok(out)
    }

    fn batches(&self, device_id: &str) -> Result<Vec<StoredBatch>> {
        self.query(
            "SELECT first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms FROM batches \
             WHERE device_id = $1 ORDER BY first_seq",
            &[&device_id],
        )?
        .iter()
        .map(|r| {
            Ok(StoredBatch {
                first_seq: r.try_get::<_, i64>(0)? as u64,
                last_seq: r.try_get::<_, i64>(1)? as u64,
                prev_hash: hash32(r.try_get(2)?)?,
                hash: hash32(r.try_get(3)?)?,
                payload: r.try_get(4)?,
                signature: r.try_get(5)?,
                received_at_ms: r.try_get(6)?,
            })
        })
        .collect()
    }

    fn gaps(&self) -> Result<Vec<(String, u64, i64, u64)>> {
        self.query(
            "SELECT device_id, seq, observed_at_ms, data FROM observations WHERE kind = 'gap' ORDER BY observed_at_ms",
            &[],
        )?
        .iter()
        .map(|r| {
            let dropped = serde_json::from_str::<Value>(r.try_get(3)?)
                .ok()
                .and_then(|v| v["dropped"].as_u64())
                .unwrap_or(0);
            Ok((r.try_get(0)?, r.try_get::<_, i64>(1)? as u64, r.try_get(2)?, dropped))
        })
        .collect()
    }

    fn set_revocation(&self, r: &Revocation) -> Result<()> {
        self.execute(
            "INSERT INTO revocations (connector_key, requested_at_ms, requested_by, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (connector_key) DO UPDATE SET requested_at_ms = excluded.requested_at_ms, \
             requested_by = excluded.requested_by, reason = excluded.reason",
            &[&r.connector_key, &r.requested_at_ms, &r.requested_by, &r.reason],
        )?;
        Ok(())
    }

    fn withdraw_revocation(&self, key: &str, now_ms: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let n = tx.execute("DELETE FROM revocations WHERE connector_key = $1", &[&key])?;
        tx.execute(
            "UPDATE directives SET outcome = 'withdrawn', detail = 'the revocation was withdrawn before the agent answered', \
             outcome_at_ms = $2 WHERE connector_key = $1 AND outcome IS NULL",
            &[&key, &now_ms],
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
        self.query(
            "SELECT p.connector_key, p.device_id, max(d.seq_head) FROM revocations r \
             JOIN presence p ON p.connector_key = r.connector_key AND p.disappeared_at_ms IS NULL \
             JOIN devices d ON d.id = p.device_id AND d.revoked_at_ms IS NULL \
             WHERE $1::text IS NULL OR r.connector_key = $1 GROUP BY p.connector_key, p.device_id \
             HAVING NOT EXISTS (SELECT 1 FROM directives x WHERE x.connector_key = p.connector_key \
                    AND x.device_id = p.device_id AND x.outcome IS NULL AND x.expires_at_ms > $2) \
                AND (NOT $3 OR max(p.appeared_seq) > COALESCE((SELECT max(x.issued_at_seq) FROM directives x \
                    WHERE x.connector_key = p.connector_key AND x.device_id = p.device_id), -1)) \
             ORDER BY p.connector_key, p.device_id",
            &[&key, &now_ms, &only_new],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<_, i64>(2)? as u64)))
        .collect()
    }

    fn add_directives(&self, list: &[DirectiveRecord], now_ms: i64) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DIRECTIVE_LOCK])?;
        let insert = tx.prepare(
            "INSERT INTO directives (id, device_id, connector_key, action, target, payload, signature, \
             issued_at_ms, expires_at_ms, issued_at_seq) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE NOT EXISTS (SELECT 1 FROM directives x \
             WHERE x.connector_key = $3 AND x.device_id = $2 AND x.outcome IS NULL AND x.expires_at_ms > $11)",
        )?;
        let mut stored = Vec::new();
        for d in list {
            let n = tx.execute(
                &insert,
                &[
                    &d.id,
                    &d.device_id,
                    &d.connector_key,
                    &d.action,
                    &d.target,
                    &d.payload,
                    &d.signature,
                    &d.issued_at_ms,
                    &d.expires_at_ms,
                    &(d.issued_at_seq as i64),
                    &now_ms,
                ],
            )?;
            if n == 1 {
                stored.push(d.id.clone());
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    fn open_directives(&self, device_id: &str, now_ms: i64) -> Result<Vec<DirectiveRecord>> {
        self.all(
            &format!(
                "SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE device_id = $1 AND outcome IS NULL \
                 AND expires_at_ms > $2 ORDER BY seq"
            ),
            &[&device_id, &now_ms],
            directive_row,
        )
    }

    fn directives_since(&self, cursor: i64) -> Result<(Vec<String>, i64)> {
        let mut devices = Vec::new();
        let mut next = cursor;
        for r in
            self.query("SELECT seq, device_id FROM directives WHERE seq > $1 ORDER BY seq", &[&cursor])?
        {
            next = next.max(r.try_get(0)?);
            let device: String = r.try_get(1)?;
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
        Ok((devices, next))
    }

    fn mark_directive_sent(&self, id: &str, now_ms: i64) -> Result<()> {
        self.execute(
            "UPDATE directives SET sent_at_ms = COALESCE(sent_at_ms, $2) WHERE id = $1",
            &[&id, &now_ms],
        )?;
        Ok(())
    }

    fn directives_for_connector(&self, key: &str) -> Result<Vec<DirectiveRecord>> {
        self.all(
            &format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE connector_key = $1 ORDER BY seq"),
            &[&key],
            directive_row,
        )
    }

    fn directive(&self, id: &str) -> Result<Option<DirectiveRecord>> {
        self.one(&format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE id = $1"), &[&id], directive_row)
    }

    fn connector_summaries(&self) -> Result<Vec<Connector>> {
        self.flush_folds()?;
        let mut present: HashMap<String, Vec<ConnectorDevice>> = HashMap::new();
        for r in self.query(
            "SELECT p.connector_key, p.device_id, d.hostname, p.os_user, min(p.appeared_at_ms), max(p.appeared_at_ms) \
             FROM presence p JOIN devices d ON d.id = p.device_id WHERE p.disappeared_at_ms IS NULL \
             GROUP BY p.connector_key, p.device_id, d.hostname, p.os_user",
            &[],
        )? {
            present.entry(r.try_get(0)?).or_default().push(ConnectorDevice {
                device_id: r.try_get(1)?,
                hostname: r.try_get(2)?,
                user: r.try_get(3)?,
                first_seen_ms: r.try_get(4)?,
                last_seen_ms: r.try_get(5)?,
                present: true,
            });
        }
        let mut out = Vec::new();
        for r in self.query(
            "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, c.latest, \
                    (SELECT count(*) FROM connector_devices cd WHERE cd.connector_key = c.key) \
             FROM connectors c ORDER BY c.kind, c.label, c.key",
            &[],
        )? {
            let key: String = r.try_get(0)?;
            out.push(Connector {
                devices: present.remove(&key).unwrap_or_default(),
                key,
                kind: r.try_get(1)?,
                label: r.try_get(2)?,
                first_seen_ms: r.try_get(3)?,
                last_seen_ms: r.try_get(4)?,
                latest: json(r.try_get(5)?),
                seen_on: r.try_get::<_, i64>(6)? as usize,
                revocation: None,
                decision: None,
            });
        }
        let mut states = self.revocation_states(None)?;
        let mut decisions = self.decisions()?;
        for c in &mut out {
            c.revocation = states.remove(&c.key);
            c.decision = decisions.remove(&c.key);
        }
        Ok(out)
    }

    fn devices_page(&self, page: &DevicePage) -> Result<(Vec<Device>, u64)> {
        // Sort keys are a fixed list, never the caller's text.
        let order = match page.sort.as_str() {
            "os" => "os, os_version",
            "assurance" => "assurance",
            "last_seen" => "last_seen_ms",
            "enrolled" => "enrolled_at_ms",
            _ => "hostname",
        };
        let dir = if page.desc { "DESC" } else { "ASC" };
        // NULLs sort as SQLite sorts them: first ascending, last descending.
        let nulls = if page.desc { "NULLS LAST" } else { "NULLS FIRST" };
        let filter = "($1::text IS NULL OR strpos(lower(hostname), lower($1)) > 0 OR strpos(id, $1) > 0) \
                      AND ($2::text IS NULL OR assurance = $2)";
        let total: i64 = self
            .query_opt(&format!("SELECT count(*) FROM devices WHERE {filter}"), &[&page.q, &page.assurance])?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let rows = self.query(
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE {filter} ORDER BY {order} {dir} {nulls}, id LIMIT $3 OFFSET $4"
            ),
            &[&page.q, &page.assurance, &(page.limit as i64), &(page.offset as i64)],
        )?;
        Ok((rows.iter().map(device_row).collect::<Result<_>>()?, total as u64))
    }

    fn fleet_counts(&self, now_ms: i64) -> Result<FleetCounts> {
        let (hour, day, week) = (now_ms - 3_600_000, now_ms - 86_400_000, now_ms - 7 * 86_400_000);
        let live = "revoked_at_ms IS NULL";
        let r = self
            .query_opt(
                &format!(
                    "SELECT count(*), count(revoked_at_ms), \
                        count(*) FILTER (WHERE {live} AND last_seen_ms >= $1), \
                        count(*) FILTER (WHERE {live} AND last_seen_ms < $1 AND last_seen_ms >= $2), \
                        count(*) FILTER (WHERE {live} AND last_seen_ms < $2 AND last_seen_ms >= $3), \
                        count(*) FILTER (WHERE {live} AND last_seen_ms < $3), \
                        count(*) FILTER (WHERE {live} AND last_seen_ms IS NULL) FROM devices"
                ),
                &[&hour, &day, &week],
            )?
            .ok_or_else(|| StoreError::Corrupt("count returned no row".into()))?;
        let n = |i: usize| -> Result<u64> { Ok(r.try_get::<_, i64>(i)? as u64) };
        let grouped = |col: &str| -> Result<Vec<(String, u64)>> {
            self.query(
                &format!("SELECT {col}, count(*) FROM devices WHERE {live} GROUP BY 1 ORDER BY 2 DESC, 1"),
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)? as u64)))
            .collect()
        };
        Ok(FleetCounts {
            devices: n(0)?,
            revoked: n(1)?,
            by_assurance: grouped("assurance")?,
            by_os: grouped("os")?,
            last_seen: [n(2)?, n(3)?, n(4)?, n(5)?, n(6)?],
        })
    }

    fn set_decision(&self, key: &str, d: Option<&Decision>) -> Result<()> {
        match d {
            Some(d) => self.execute(
                "INSERT INTO connector_decisions (connector_key, status, decided_by, decided_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector_key) DO UPDATE SET status = excluded.status, decided_by = excluded.decided_by, \
                 decided_at_ms = excluded.decided_at_ms",
                &[&key, &d.status, &d.by, &d.at_ms],
            )?,
            None => self.execute("DELETE FROM connector_decisions WHERE connector_key = $1", &[&key])?,
        };
        Ok(())
    }

    fn presence_spans(
        &self,
        keys: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, Option<i64>)>> {
        self.query(
            "SELECT connector_key, appeared_at_ms, disappeared_at_ms FROM presence \
             WHERE connector_key = ANY($1) AND appeared_at_ms <= $3 \
             AND (disappeared_at_ms IS NULL OR disappeared_at_ms >= $2)",
            &[&keys, &from_ms, &to_ms],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
    }

    fn create_session(
        &self,
        session_hash: &[u8],
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        tx.execute("DELETE FROM ui_sessions WHERE expires_at_ms <= $1", &[&now_ms])?;
        tx.execute(
            "INSERT INTO ui_sessions (session_hash, token_hash, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
            &[&session_hash, &token_hash, &now_ms, &expires_at_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn session_role(&self, session_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        self.query_opt(
            "SELECT t.role FROM ui_sessions s JOIN api_tokens t ON t.token_hash = s.token_hash \
             WHERE s.session_hash = $1 AND s.expires_at_ms > $2 AND t.revoked_at_ms IS NULL \
             AND (t.expires_at_ms IS NULL OR t.expires_at_ms > $2)",
            &[&session_hash, &now_ms],
        )?
        .map(|r| Ok(r.try_get(0)?))
        .transpose()
    }

    fn delete_session(&self, session_hash: &[u8]) -> Result<()> {
        self.execute("DELETE FROM ui_sessions WHERE session_hash = $1", &[&session_hash])?;
        Ok(())
    }

    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>> {
        // BRIN finds id ranges but cannot return rows in id order: read in windows of ids so
        // each sort is small, however far behind the cursor is.
        const WINDOW: i64 = 20_000;
        let settled = crate::clock::now_ms() - EXPORT_SETTLE_MS;
        let newest = self.max_observation_rowid()?;
        let mut from = rowid;
        loop {
            let rows = self.query(
                "SELECT o.id, o.device_id, d.hostname, d.os, d.os_version, o.seq, o.observed_at_ms, o.received_at_ms, \
                        o.change, o.kind, o.assurance, o.data \
                 FROM observations o JOIN devices d ON d.id = o.device_id \
                 WHERE o.id > $1 AND o.id <= $4 AND o.received_at_ms < $3 ORDER BY o.id LIMIT $2",
                &[&from, &(limit as i64), &settled, &(from + WINDOW)],
            )?;
            if !rows.is_empty() || from + WINDOW >= newest {
                return rows.iter().map(export_row).collect();
            }
            from += WINDOW;
        }
    }

    fn max_observation_rowid(&self) -> Result<i64> {
        // The sequence, not max(id): ids are indexed by BRIN, which cannot answer max().
        let r = self.query_opt(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM observations_id_seq",
            &[],
        )?;
        Ok(r.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    fn enrollments_after(&self, at_ms: i64, id: &str, limit: usize) -> Result<Vec<Device>> {
        self.all(
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE (enrolled_at_ms, id) > ($1, $2) \
                 ORDER BY enrolled_at_ms, id LIMIT $3"
            ),
            &[&at_ms, &id, &(limit as i64)],
            device_row,
        )
    }

    fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<String>> {
        self.query_opt("SELECT value FROM export_cursors WHERE sink = $1 AND source = $2", &[&sink, &source])?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
    }

    fn set_export_cursor(&self, sink: &str, source: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO export_cursors (sink, source, value) VALUES ($1, $2, $3) \
             ON CONFLICT (sink, source) DO UPDATE SET value = excluded.value",
            &[&sink, &source, &value],
        )?;
        Ok(())
    }

    fn exported_findings(&self, sink: &str) -> Result<HashSet<String>> {
        self.query("SELECT key FROM export_findings WHERE sink = $1", &[&sink])?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    fn mark_findings_exported(&self, sink: &str, keys: &[String]) -> Result<()> {
        self.execute(
            "INSERT INTO export_findings (sink, key) SELECT $1, k FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING",
            &[&sink, &keys],
        )?;
        Ok(())
    }

    fn maintain(&self, now_ms: i64) -> Result<()> {
        self.flush_folds()?;
        self.ensure_partition(now_ms)?;
        self.ensure_partition(Month::of(now_ms).next().start_ms())
    }

    fn prune(&self, cutoff_ms: i64) -> Result<Pruned> {
        let mut conn = self.conn()?;
        let mut out = Pruned::default();
        let mut horizon = None;
        for month in schema::partitions(&mut conn.client)? {
            let end = month.next().start_ms();
            if end > cutoff_ms {
                break;
            }
            let table = month.table();
            let mut tx = conn.client.transaction()?;
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[])?.try_get(0)?;
            tx.batch_execute(&format!("DROP TABLE {table}"))?;
            tx.commit()?;
            self.months.lock().unwrap_or_else(|p| p.into_inner()).remove(&month);
            out.observations += n as u64;
            out.partitions.push(table);
            horizon = Some(end);
        }
        // Batches go with the months their observations were in, so what remains verifies.
        if let Some(end) = horizon {
            out.batches = conn.client.execute("DELETE FROM batches WHERE received_at_ms < $1", &[&end])?;
        }
        // Claims by time, each device's latest kept (the evidence of its last attestation).
        out.claims = conn.client.execute(
            "DELETE FROM device_claims c WHERE c.at_ms < $1 \
             AND c.at_ms < (SELECT max(d.at_ms) FROM device_claims d WHERE d.device_id = c.device_id)",
            &[&cutoff_ms],
        )?;
        Ok(out)
    }
}
