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

use std::collections::HashSet;
use std::sync::Mutex;

use postgres::GenericClient;
use postgres::error::SqlState;

use self::pool::{Pool, Pooled, Prepared};
use self::schema::Month;
use super::devices;
use super::read::Outbox;
use super::rows::{self, Row};
use super::sql::{Database, Dialect, Param, Sql, args, pg_params};
use super::{
    ClaimsRecord, ExportObservation, IngestBatch, IngestOutcome, IngestStore, Pruned, Result, RetentionStore,
    StoreError,
};

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

/// A connection or transaction with its connection's statement cache.
struct Db<'c, C> {
    client: C,
    stmts: Prepared<'c>,
}

impl<C> Sql for Db<'_, C>
where
    C: std::ops::DerefMut,
    C::Target: GenericClient,
{
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let st = self.stmts.generic(&mut *self.client, sql)?;
        Ok(self.client.execute(&st, &pg_params(params))?)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        let st = self.stmts.generic(&mut *self.client, sql)?;
        for r in self.client.query(&st, &pg_params(params))? {
            f(&r)?;
        }
        Ok(())
    }
}

impl Database for PostgresStore {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let (client, stmts) = conn.parts();
        f(&mut Db { client, stmts })
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let (client, stmts) = conn.parts();
        let mut tx = client.transaction()?;
        let out = f(&mut Db { client: &mut tx, stmts })?;
        tx.commit()?;
        Ok(out)
    }

    fn settle(&self) -> Result<()> {
        self.flush_folds()
    }
}

impl IngestStore for PostgresStore {
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

    fn record_claims(&self, c: &ClaimsRecord) -> Result<()> {
        devices::record_claims(self, std::slice::from_ref(c))
    }

    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
        devices::record_claims_many(self, claims)
    }

    fn ingest_lanes(&self) -> usize {
        self.lanes
    }
}

impl Outbox for PostgresStore {
    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>> {
        // BRIN finds id ranges but cannot return rows in id order: read in windows of ids so
        // each sort is small, however far behind the cursor is.
        const WINDOW: i64 = 20_000;
        let settled = crate::clock::now_ms() - EXPORT_SETTLE_MS;
        let newest = self.max_observation_rowid()?;
        let mut from = rowid;
        loop {
            let sql = format!(
                "{} FROM observations o JOIN devices d ON d.id = o.device_id {} \
                 WHERE o.id > $1 AND o.id <= $4 AND o.received_at_ms < $3 ORDER BY o.id LIMIT $2",
                rows::export_columns("o.id", "o.received_at_ms"),
                rows::EXPORT_JOINS,
            );
            let page = self.read(|db| {
                db.all(&sql, args![from, limit as i64, settled, from + WINDOW], rows::export_observation)
            })?;
            if !page.is_empty() || from + WINDOW >= newest {
                return Ok(page);
            }
            from += WINDOW;
        }
    }

    fn max_observation_rowid(&self) -> Result<i64> {
        // The sequence, not max(id): ids are indexed by BRIN, which cannot answer max().
        self.read(|db| {
            let sql = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM observations_id_seq";
            Ok(db.one(sql, &[], |r| r.int(0))?.unwrap_or(0))
        })
    }
}

impl RetentionStore for PostgresStore {
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
