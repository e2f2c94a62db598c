//! Revocations and directives, once for both backends.

use super::rows::{self, DIRECTIVE_COLUMNS};
use super::sql::{Database, Dialect, args, when_given};
use super::{DirectiveRecord, DirectiveStore, Result, Revocation};

/// Serialises directive issue in PostgreSQL, so `directives.seq` commits in order and every
/// replica's cursor sees each directive (see [`DirectiveStore::directives_since`]).
const DIRECTIVE_LOCK: i64 = 0x5167_6874_6469_7273;

impl<D: Database> DirectiveStore for D {
    fn set_revocation(&self, r: &Revocation) -> Result<()> {
        self.read(|db| {
            db.execute(
                "INSERT INTO revocations (connector_key, requested_at_ms, requested_by, reason) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector_key) DO UPDATE SET requested_at_ms = excluded.requested_at_ms, \
                 requested_by = excluded.requested_by, reason = excluded.reason",
                args![&r.connector_key, r.requested_at_ms, &r.requested_by, &r.reason],
            )
        })?;
        Ok(())
    }

    fn withdraw_revocation(&self, key: &str, now_ms: i64) -> Result<bool> {
        self.write(|db| {
            let n = db.execute("DELETE FROM revocations WHERE connector_key = $1", args![key])?;
            db.execute(
                "UPDATE directives SET outcome = 'withdrawn', detail = 'the revocation was withdrawn before the agent \
                 answered', outcome_at_ms = $2 WHERE connector_key = $1 AND outcome IS NULL",
                args![key, now_ms],
            )?;
            Ok(n == 1)
        })
    }

    fn revocation_targets(
        &self,
        key: Option<&str>,
        only_new: bool,
        now_ms: i64,
    ) -> Result<Vec<(String, String, u64)>> {
        self.read(|db| {
            let filter = when_given(db.dialect(), key.is_some(), "r.connector_key = $1", 1);
            let sql = format!(
                "SELECT p.connector_key, p.device_id, max(d.seq_head) FROM revocations r \
                 JOIN presence p ON p.connector_key = r.connector_key AND p.disappeared_at_ms IS NULL \
                 JOIN devices d ON d.id = p.device_id AND d.revoked_at_ms IS NULL \
                 WHERE {filter} GROUP BY p.connector_key, p.device_id \
                 HAVING NOT EXISTS (SELECT 1 FROM directives x WHERE x.connector_key = p.connector_key \
                        AND x.device_id = p.device_id AND x.outcome IS NULL AND x.expires_at_ms > $2) \
                    AND ($3 = FALSE OR max(p.appeared_seq) > COALESCE((SELECT max(x.issued_at_seq) FROM directives x \
                        WHERE x.connector_key = p.connector_key AND x.device_id = p.device_id), -1)) \
                 ORDER BY p.connector_key, p.device_id"
            );
            db.all(&sql, args![key, now_ms, only_new], |r| Ok((r.text(0)?, r.text(1)?, r.int(2)? as u64)))
        })
    }

    fn add_directives(&self, list: &[DirectiveRecord], now_ms: i64) -> Result<Vec<String>> {
        self.write(|db| {
            if db.dialect() == Dialect::Postgres {
                db.execute("SELECT pg_advisory_xact_lock($1)", args![DIRECTIVE_LOCK])?;
            }
            let mut stored = Vec::new();
            for d in list {
                let n = db.execute(
                    "INSERT INTO directives (id, device_id, connector_key, action, target, payload, signature, \
                     issued_at_ms, expires_at_ms, issued_at_seq) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE NOT EXISTS (SELECT 1 FROM directives x \
                     WHERE x.connector_key = $3 AND x.device_id = $2 AND x.outcome IS NULL AND x.expires_at_ms > $11)",
                    args![
                        &d.id,
                        &d.device_id,
                        &d.connector_key,
                        &d.action,
                        &d.target,
                        &d.payload,
                        &d.signature,
                        d.issued_at_ms,
                        d.expires_at_ms,
                        d.issued_at_seq as i64,
                        now_ms
                    ],
                )?;
                if n == 1 {
                    stored.push(d.id.clone());
                }
            }
            Ok(stored)
        })
    }

    fn open_directives(&self, device_id: &str, now_ms: i64) -> Result<Vec<DirectiveRecord>> {
        let sql = format!(
            "SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE device_id = $1 AND outcome IS NULL \
             AND expires_at_ms > $2 ORDER BY seq"
        );
        self.read(|db| db.all(&sql, args![device_id, now_ms], rows::directive))
    }

    fn directives_since(&self, cursor: i64) -> Result<(Vec<String>, i64)> {
        let issued = self.read(|db| {
            db.all("SELECT seq, device_id FROM directives WHERE seq > $1 ORDER BY seq", args![cursor], |r| {
                Ok((r.int(0)?, r.text(1)?))
            })
        })?;
        let mut devices = Vec::new();
        let mut next = cursor;
        for (seq, device) in issued {
            next = next.max(seq);
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
        Ok((devices, next))
    }

    fn mark_directive_sent(&self, id: &str, now_ms: i64) -> Result<()> {
        self.read(|db| {
            db.execute(
                "UPDATE directives SET sent_at_ms = COALESCE(sent_at_ms, $2) WHERE id = $1",
                args![id, now_ms],
            )
        })?;
        Ok(())
    }

    fn directives_for_connector(&self, key: &str) -> Result<Vec<DirectiveRecord>> {
        let sql = format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE connector_key = $1 ORDER BY seq");
        self.read(|db| db.all(&sql, args![key], rows::directive))
    }

    fn directive(&self, id: &str) -> Result<Option<DirectiveRecord>> {
        let sql = format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE id = $1");
        self.read(|db| db.one(&sql, args![id], rows::directive))
    }
}
