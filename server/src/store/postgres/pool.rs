//! A small blocking connection pool. Callers are on blocking threads already (the store is
//! synchronous), so a mutex and a condvar are the whole machinery; each connection keeps
//! its prepared statements, which saves a round trip per statement on the hot path.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement, Transaction};

use crate::store::{Result, StoreError};

pub(super) struct Conn {
    pub(super) client: Client,
    stmts: HashMap<String, Statement>,
}

impl Conn {
    /// Splits the connection so a transaction and the statement cache can be used together.
    pub(super) fn parts(&mut self) -> (&mut Client, Prepared<'_>) {
        (&mut self.client, Prepared(&mut self.stmts))
    }
}

/// The per-connection statement cache.
pub(super) struct Prepared<'a>(&'a mut HashMap<String, Statement>);

impl Prepared<'_> {
    /// The same cache, borrowed again (to hand to the shared [`crate::store::sql::Sql`] code).
    pub(super) fn reborrow(&mut self) -> Prepared<'_> {
        Prepared(&mut *self.0)
    }

    pub(super) fn get(&mut self, tx: &mut Transaction<'_>, sql: &'static str) -> Result<Statement> {
        self.cached(sql, |sql| tx.prepare(sql))
    }

    /// Outside a transaction.
    pub(super) fn prepare(&mut self, client: &mut Client, sql: &'static str) -> Result<Statement> {
        self.cached(sql, |sql| client.prepare(sql))
    }

    /// On a client or a transaction, for any statement text.
    pub(super) fn generic<C: postgres::GenericClient + ?Sized>(
        &mut self,
        c: &mut C,
        sql: &str,
    ) -> Result<Statement> {
        self.cached(sql, |sql| c.prepare(sql))
    }

    fn cached(
        &mut self,
        sql: &str,
        prepare: impl FnOnce(&str) -> Result<Statement, postgres::Error>,
    ) -> Result<Statement> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = prepare(sql)?;
        self.0.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

pub(super) struct Pool {
    config: postgres::Config,
    /// Set when the connection string named a CA (`sslrootcert`): every connection is TLS.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub(super) fn new(
        config: postgres::Config,
        max: usize,
        tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ) -> Pool {
        Pool {
            config,
            tls,
            max: max.max(1),
            wait: Duration::from_secs(30),
            state: Mutex::new(State { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in `State` can be left half-updated by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut st = self.lock();
        loop {
            if let Some(conn) = st.idle.pop() {
                if conn.client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Pooled { pool: self, conn: Some(conn) });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled { pool: self, conn: Some(conn) }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "all {} database connections stayed busy for {:?}",
                    self.max, self.wait
                )));
            }
            st = self.freed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn connect(&self) -> Result<Conn> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        // The driver's own message ("error performing TLS handshake") hides why; say it.
        let mut client = connected.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            StoreError::Unavailable(format!("connecting to the database: {why}"))
        })?;
        // A statement stuck behind a lock must not hold an agent's stream forever.
        client.batch_execute("SET statement_timeout = '60s'; SET lock_timeout = '30s'")?;
        Ok(Conn { client, stmts: HashMap::new() })
    }
}

/// A connection on loan; it goes back to the pool on drop unless it broke.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("a pooled connection is present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a pooled connection is present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut st = self.pool.lock();
        if conn.client.is_closed() {
            st.open -= 1;
            close_off_runtime(vec![conn]);
        } else {
            st.idle.push(conn);
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        close_off_runtime(idle);
    }
}

/// Closing a client blocks on its own small runtime, which panics on a thread that drives
/// async tasks; the last reference to the store may be dropped on one (at shutdown), so
/// connections are closed on a thread of their own.
fn close_off_runtime(conns: Vec<Conn>) {
    if conns.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        let closer = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(conns));
        if let Ok(t) = closer {
            t.join().ok();
        }
    } else {
        drop(conns);
    }
}
