//! The read model (connectors, presence, sessions, batches, fleet views) and the export
//! cursors, once for both backends.

use std::collections::{HashMap, HashSet};

use super::rows::{
    self, BATCHES, CONNECTOR_DEVICES, CONNECTOR_DEVICES_ORDER, CONNECTOR_SUMMARIES, DECISIONS,
    DEVICE_COLUMNS, DIRECTIVE_COLUMNS, GAPS, PRESENCE_ORDER, PRESENCE_SELECT, REVOCATION_COLUMNS,
    SESSION_COLUMNS,
};
use super::sql::{Database, Dialect, Param, Sql, args, in_list, when_given};
use super::{
    Connector, Decision, Device, DevicePage, ExportObservation, ExportStore, FleetCounts, OwnerAssignment,
    Presence, ReadModel, Result, RevocationState, Session, StoredBatch,
};

/// What only a backend can read for an export: where its observations' order comes from.
pub(crate) trait Outbox {
    /// Observations stored after `rowid`, in storage order, at most `limit`.
    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>>;
    /// The newest observation's `rowid` (0 when none).
    fn max_observation_rowid(&self) -> Result<i64>;
}

const OPEN_AT: &str = "p.appeared_at_ms <= $2 AND (p.disappeared_at_ms IS NULL OR p.disappeared_at_ms > $2)";

fn presence(db: &mut dyn Sql, filter: &str, params: &[Param<'_>]) -> Result<Vec<Presence>> {
    db.all(&format!("{PRESENCE_SELECT} {filter} {PRESENCE_ORDER}"), params, rows::presence)
}

fn decisions(db: &mut dyn Sql) -> Result<HashMap<String, Decision>> {
    Ok(db.all(DECISIONS, &[], rows::decision)?.into_iter().collect())
}

/// Each connector's latest use in an AI session (all, or one connector's): one grouped read
/// over the `(connector_key, ended_at_ms)` index, never one per row.
fn last_used(db: &mut dyn Sql, key: Option<&str>) -> Result<HashMap<String, i64>> {
    let d = db.dialect();
    let sql = format!(
        "SELECT connector_key, max(ended_at_ms) FROM activity_connectors WHERE known = 1 AND {} \
         GROUP BY connector_key",
        when_given(d, key.is_some(), "connector_key = $1", 1)
    );
    Ok(db.all(&sql, args![key], |r| Ok((r.text(0)?, r.int(1)?)))?.into_iter().collect())
}

fn owners(db: &mut dyn Sql) -> Result<HashMap<String, OwnerAssignment>> {
    Ok(db.all(rows::OWNERS, &[], rows::owner)?.into_iter().collect())
}

/// Revocations (all, or one connector's) with the latest directive to each device.
fn revocation_states(db: &mut dyn Sql, key: Option<&str>) -> Result<HashMap<String, RevocationState>> {
    let d = db.dialect();
    let revocations = db.all(
        &format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE {}",
            when_given(d, key.is_some(), "connector_key = $1", 1)
        ),
        args![key],
        rows::revocation,
    )?;
    if revocations.is_empty() {
        return Ok(HashMap::new());
    }
    let latest = match d {
        Dialect::Sqlite => format!(
            "SELECT {DIRECTIVE_COLUMNS} FROM directives d WHERE {} AND d.seq = \
             (SELECT max(x.seq) FROM directives x WHERE x.connector_key = d.connector_key AND x.device_id = d.device_id)",
            when_given(d, key.is_some(), "d.connector_key = $1", 1)
        ),
        Dialect::Postgres => format!(
            "SELECT DISTINCT ON (connector_key, device_id) {DIRECTIVE_COLUMNS} FROM directives \
             WHERE $1::text IS NULL OR connector_key = $1 ORDER BY connector_key, device_id, seq DESC"
        ),
    };
    let latest = db.all(&latest, args![key], rows::directive)?;
    Ok(rows::revocation_states(revocations, latest))
}

fn connectors<D: Database>(store: &D, device: Option<&str>, key: Option<&str>) -> Result<Vec<Connector>> {
    store.settle()?;
    store.read(|db| {
        let d = db.dialect();
        let sql = format!(
            "{CONNECTOR_DEVICES} WHERE {} AND {} {CONNECTOR_DEVICES_ORDER}",
            when_given(d, device.is_some(), "cd.device_id = $1", 1),
            when_given(d, key.is_some(), "c.key = $2", 2)
        );
        let mut out = Vec::new();
        db.each(&sql, args![device, key], &mut |r| rows::connector_device(&mut out, r))?;
        rows::attach(
            &mut out,
            revocation_states(db, key)?,
            decisions(db)?,
            owners(db)?,
            last_used(db, key)?,
            true,
        );
        Ok(out)
    })
}

fn sessions(db: &mut dyn Sql, filter: &str, order: &str, params: &[Param<'_>]) -> Result<Vec<Session>> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE {filter} AND started_at_ms <= $2 \
         AND (ended_at_ms IS NULL OR ended_at_ms > $2) ORDER BY {order}"
    );
    db.all(&sql, params, rows::session)
}

impl<D: Database> ReadModel for D {
    fn ping(&self) -> Result<()> {
        self.read(|db| db.one("SELECT 1", &[], |_| Ok(())).map(|_| ()))
    }

    fn connectors(&self) -> Result<Vec<Connector>> {
        connectors(self, None, None)
    }

    fn device_connectors(&self, device_id: &str) -> Result<Vec<Connector>> {
        connectors(self, Some(device_id), None)
    }

    fn connector(&self, key: &str) -> Result<Option<Connector>> {
        Ok(connectors(self, None, Some(key))?.into_iter().next())
    }

    fn count_observations(&self, device_id: &str) -> Result<u64> {
        self.read(|db| {
            // PostgreSQL keeps no per-row index on observations: each stored batch holds its
            // sequence range once, and pruning drops both together.
            let sql = match db.dialect() {
                Dialect::Sqlite => "SELECT count(*) FROM observations WHERE device_id = $1",
                Dialect::Postgres => {
                    "SELECT COALESCE(sum(last_seq - first_seq + 1), 0)::bigint FROM batches WHERE device_id = $1"
                }
            };
            Ok(db.one(sql, args![device_id], |r| r.int(0))?.unwrap_or(0) as u64)
        })
    }

    fn present_at(&self, device_id: &str, at_ms: i64) -> Result<Vec<Presence>> {
        self.read(|db| presence(db, &format!("p.device_id = $1 AND {OPEN_AT}"), args![device_id, at_ms]))
    }

    fn presence_history(&self, device_id: &str) -> Result<Vec<Presence>> {
        self.read(|db| presence(db, "p.device_id = $1", args![device_id]))
    }

    fn connector_presence(&self, connector_key: &str) -> Result<Vec<Presence>> {
        self.read(|db| presence(db, "p.connector_key = $1", args![connector_key]))
    }

    fn presence_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Presence>> {
        // One query per account keeps the (os_user, appeared_at_ms) index usable.
        self.read(|db| {
            let mut out = Vec::new();
            for u in os_users {
                out.extend(presence(db, &format!("p.os_user = $1 AND {OPEN_AT}"), args![u, at_ms])?);
            }
            Ok(out)
        })
    }

    fn present_now(&self) -> Result<Vec<Presence>> {
        self.read(|db| presence(db, "p.disappeared_at_ms IS NULL", &[]))
    }

    fn sessions_at(&self, device_id: Option<&str>, at_ms: i64) -> Result<Vec<Session>> {
        self.read(|db| {
            let filter = when_given(db.dialect(), device_id.is_some(), "device_id = $1", 1);
            sessions(db, &filter, "device_id, os_user, started_at_ms", args![device_id, at_ms])
        })
    }

    fn sessions_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Session>> {
        self.read(|db| {
            let mut out = Vec::new();
            for u in os_users {
                out.extend(sessions(db, "os_user = $1", "device_id, started_at_ms", args![u, at_ms])?);
            }
            Ok(out)
        })
    }

    fn batches(&self, device_id: &str) -> Result<Vec<StoredBatch>> {
        self.read(|db| db.all(BATCHES, args![device_id], rows::stored_batch))
    }

    fn gaps(&self) -> Result<Vec<(String, u64, i64, u64)>> {
        self.read(|db| db.all(GAPS, &[], rows::gap))
    }

    fn connector_summaries(&self) -> Result<Vec<Connector>> {
        self.settle()?;
        self.read(|db| {
            let present = db.all(
                &rows::present_devices("p.connector_key, p.device_id, d.hostname, p.os_user"),
                &[],
                rows::present_device,
            )?;
            let mut out =
                rows::summaries(db.all(CONNECTOR_SUMMARIES, &[], rows::connector_summary)?, present);
            rows::attach(
                &mut out,
                revocation_states(db, None)?,
                decisions(db)?,
                owners(db)?,
                last_used(db, None)?,
                false,
            );
            Ok(out)
        })
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
        self.read(|db| {
            let (filter, nulls) = match db.dialect() {
                Dialect::Sqlite => (
                    "($1 IS NULL OR instr(lower(hostname), lower($1)) > 0 OR instr(id, $1) > 0) \
                     AND ($2 IS NULL OR assurance = $2)",
                    "",
                ),
                // NULLs sort as SQLite sorts them: first ascending, last descending.
                Dialect::Postgres => (
                    "($1::text IS NULL OR strpos(lower(hostname), lower($1)) > 0 OR strpos(id, $1) > 0) \
                     AND ($2::text IS NULL OR assurance = $2)",
                    if page.desc { " NULLS LAST" } else { " NULLS FIRST" },
                ),
            };
            let total = db
                .one(&format!("SELECT count(*) FROM devices WHERE {filter}"), args![&page.q, &page.assurance], |r| {
                    r.int(0)
                })?
                .unwrap_or(0);
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE {filter} ORDER BY {order} {dir}{nulls}, id LIMIT $3 OFFSET $4"
            );
            let limit = args![&page.q, &page.assurance, page.limit as i64, page.offset as i64];
            Ok((db.all(&sql, limit, rows::device)?, total as u64))
        })
    }

    fn fleet_counts(&self, now_ms: i64) -> Result<FleetCounts> {
        let (hour, day, week) = (now_ms - 3_600_000, now_ms - 86_400_000, now_ms - 7 * 86_400_000);
        let live = "revoked_at_ms IS NULL";
        self.read(|db| {
            let counts = db
                .one(
                    &format!(
                        "SELECT count(*), count(revoked_at_ms), \
                            count(*) FILTER (WHERE {live} AND last_seen_ms >= $1), \
                            count(*) FILTER (WHERE {live} AND last_seen_ms < $1 AND last_seen_ms >= $2), \
                            count(*) FILTER (WHERE {live} AND last_seen_ms < $2 AND last_seen_ms >= $3), \
                            count(*) FILTER (WHERE {live} AND last_seen_ms < $3), \
                            count(*) FILTER (WHERE {live} AND last_seen_ms IS NULL) FROM devices"
                    ),
                    args![hour, day, week],
                    |r| (0..7).map(|i| Ok(r.int(i)? as u64)).collect::<Result<Vec<u64>>>(),
                )?
                .unwrap_or_default();
            let n = |i: usize| counts.get(i).copied().unwrap_or(0);
            let mut grouped = |col: &str| {
                db.all(
                    &format!(
                        "SELECT {col}, count(*) FROM devices WHERE {live} GROUP BY 1 ORDER BY 2 DESC, 1"
                    ),
                    &[],
                    |r| Ok((r.text(0)?, r.int(1)? as u64)),
                )
            };
            Ok(FleetCounts {
                devices: n(0),
                revoked: n(1),
                by_assurance: grouped("assurance")?,
                by_os: grouped("os")?,
                last_seen: [n(2), n(3), n(4), n(5), n(6)],
            })
        })
    }

    fn presence_spans(
        &self,
        keys: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, Option<i64>)>> {
        self.read(|db| {
            let sql = format!(
                "SELECT connector_key, appeared_at_ms, disappeared_at_ms FROM presence WHERE {} \
                 AND appeared_at_ms <= $3 AND (disappeared_at_ms IS NULL OR disappeared_at_ms >= $2)",
                in_list(db.dialect(), "connector_key", 1)
            );
            db.all(&sql, args![keys, from_ms, to_ms], |r| Ok((r.text(0)?, r.int(1)?, r.opt_int(2)?)))
        })
    }
}

impl<D: Database + Outbox> ExportStore for D {
    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>> {
        Outbox::observations_after(self, rowid, limit)
    }

    fn max_observation_rowid(&self) -> Result<i64> {
        Outbox::max_observation_rowid(self)
    }

    fn enrollments_after(&self, at_ms: i64, id: &str, limit: usize) -> Result<Vec<Device>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE (enrolled_at_ms, id) > ($1, $2) ORDER BY enrolled_at_ms, id LIMIT $3"
        );
        self.read(|db| db.all(&sql, args![at_ms, id, limit as i64], rows::device))
    }

    fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<String>> {
        self.read(|db| {
            db.one(
                "SELECT value FROM export_cursors WHERE sink = $1 AND source = $2",
                args![sink, source],
                |r| r.text(0),
            )
        })
    }

    fn set_export_cursor(&self, sink: &str, source: &str, value: &str) -> Result<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO export_cursors (sink, source, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (sink, source) DO UPDATE SET value = excluded.value",
                args![sink, source, value],
            )
        })?;
        Ok(())
    }

    fn exported_findings(&self, sink: &str) -> Result<HashSet<String>> {
        let keys = self.read(|db| {
            db.all("SELECT key FROM export_findings WHERE sink = $1", args![sink], |r| r.text(0))
        })?;
        Ok(keys.into_iter().collect())
    }

    fn mark_findings_exported(&self, sink: &str, keys: &[String]) -> Result<()> {
        self.write(|db| {
            for k in keys {
                db.execute(
                    "INSERT INTO export_findings (sink, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    args![sink, k],
                )?;
            }
            Ok(())
        })
    }
}
