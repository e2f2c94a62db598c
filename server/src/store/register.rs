//! The connector register's records (decisions, assigned owners, the event log), once for
//! both backends.

use super::rows::{self, EVENT_COLUMNS};
use super::sql::{Database, Sql, args};
use super::{ConnectorEvent, Decision, OwnerAssignment, RegisterStore, Result};

/// Appends `e` within the caller's transaction; returns its `seq`.
pub(super) fn append(db: &mut dyn Sql, e: &ConnectorEvent) -> Result<i64> {
    let detail = e.detail.to_string();
    let seq = db.one(
        "INSERT INTO connector_events (connector_key, at_ms, event, actor, reason, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        args![&e.connector_key, e.at_ms, &e.event, &e.actor, &e.reason, &detail],
        |r| r.int(0),
    )?;
    Ok(seq.unwrap_or_default())
}

impl<D: Database> RegisterStore for D {
    fn decide(&self, key: &str, d: Option<&Decision>, event: &ConnectorEvent) -> Result<()> {
        self.write(|db| {
            match d {
                Some(d) => db.execute(
                    "INSERT INTO connector_decisions (connector_key, status, decided_by, decided_at_ms, reason, \
                     expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connector_key) DO UPDATE SET \
                     status = excluded.status, decided_by = excluded.decided_by, \
                     decided_at_ms = excluded.decided_at_ms, reason = excluded.reason, \
                     expires_at_ms = excluded.expires_at_ms",
                    args![key, &d.status, &d.by, d.at_ms, &d.reason, d.expires_at_ms],
                )?,
                None => db.execute("DELETE FROM connector_decisions WHERE connector_key = $1", args![key])?,
            };
            append(db, event)?;
            Ok(())
        })
    }

    fn set_owner(&self, key: &str, o: Option<&OwnerAssignment>, event: &ConnectorEvent) -> Result<()> {
        self.write(|db| {
            match o {
                Some(o) => db.execute(
                    "INSERT INTO connector_owners (connector_key, person_id, reason, assigned_by, assigned_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connector_key) DO UPDATE SET \
                     person_id = excluded.person_id, reason = excluded.reason, \
                     assigned_by = excluded.assigned_by, assigned_at_ms = excluded.assigned_at_ms",
                    args![key, &o.person_id, &o.reason, &o.by, o.at_ms],
                )?,
                None => db.execute("DELETE FROM connector_owners WHERE connector_key = $1", args![key])?,
            };
            append(db, event)?;
            Ok(())
        })
    }

    fn record_event(&self, event: &ConnectorEvent) -> Result<i64> {
        self.write(|db| append(db, event))
    }

    fn connector_events(&self, key: &str) -> Result<Vec<ConnectorEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM connector_events WHERE connector_key = $1 ORDER BY seq");
        self.read(|db| db.all(&sql, args![key], rows::event))
    }

    fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<ConnectorEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM connector_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.read(|db| db.all(&sql, args![seq, limit as i64], rows::event))
    }
}
