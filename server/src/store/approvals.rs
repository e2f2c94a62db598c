//! Approval requests and the sweep that records lapsed approvals, once for both backends.

use serde_json::Value;

use super::register::{append, put_decision};
use super::rows::Row;
use super::sql::{Database, Sql, args};
use super::{ApprovalRequest, ApprovalStore, ConnectorEvent, DecisionChange, Result, Settlement};

const COLUMNS: &str = "id, connector_key, requested_by, on_behalf_of, reason, duration_ms, requested_at_ms, state, \
     decided_by, decided_at_ms, decision_reason";

fn request(r: &dyn Row) -> Result<ApprovalRequest> {
    Ok(ApprovalRequest {
        id: r.int(0)?,
        connector_key: r.text(1)?,
        requested_by: r.text(2)?,
        on_behalf_of: r.text(3)?,
        reason: r.text(4)?,
        duration_ms: r.opt_int(5)?,
        requested_at_ms: r.int(6)?,
        state: r.text(7)?,
        decided_by: r.opt_text(8)?,
        decided_at_ms: r.opt_int(9)?,
        decision_reason: r.opt_text(10)?,
    })
}

/// `e` with `request: id` in its detail (the id exists only once the row does).
fn with_request(e: &ConnectorEvent, id: i64) -> ConnectorEvent {
    let mut e = e.clone();
    match &mut e.detail {
        Value::Object(m) => {
            m.insert("request".into(), id.into());
        }
        other => *other = serde_json::json!({ "request": id }),
    }
    e
}

impl<D: Database> ApprovalStore for D {
    fn open_request(&self, r: &ApprovalRequest, event: &ConnectorEvent) -> Result<Option<i64>> {
        self.write(|db| {
            // The unique index on open requests is the backstop for replicas racing here.
            let open = db.one(
                "SELECT id FROM approval_requests WHERE connector_key = $1 AND state = 'open'",
                args![&r.connector_key],
                |row| row.int(0),
            )?;
            if open.is_some() {
                return Ok(None);
            }
            let id = db
                .one(
                    "INSERT INTO approval_requests (connector_key, requested_by, on_behalf_of, reason, duration_ms, \
                     requested_at_ms, state) VALUES ($1, $2, $3, $4, $5, $6, 'open') RETURNING id",
                    args![&r.connector_key, &r.requested_by, &r.on_behalf_of, &r.reason, r.duration_ms, r.requested_at_ms],
                    |row| row.int(0),
                )?
                .unwrap_or_default();
            append(db, &with_request(event, id))?;
            Ok(Some(id))
        })
    }

    fn approval_request(&self, id: i64) -> Result<Option<ApprovalRequest>> {
        let sql = format!("SELECT {COLUMNS} FROM approval_requests WHERE id = $1");
        self.read(|db| db.one(&sql, args![id], request))
    }

    fn approval_requests(
        &self,
        state: Option<&str>,
        person_id: Option<&str>,
    ) -> Result<Vec<ApprovalRequest>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR on_behalf_of = $2) ORDER BY id DESC"
        );
        self.read(|db| db.all(&sql, args![state, person_id], request))
    }

    fn settle_request(
        &self,
        id: i64,
        s: &Settlement<'_>,
        decision: DecisionChange<'_>,
        event: &ConnectorEvent,
    ) -> Result<bool> {
        self.write(|db| {
            let moved = db.execute(
                "UPDATE approval_requests SET state = $1, decided_by = $2, decided_at_ms = $3, decision_reason = $4 \
                 WHERE id = $5 AND state = $6",
                args![s.state, s.by, s.at_ms, s.reason, id, s.from],
            )?;
            if moved == 0 {
                return Ok(false);
            }
            match decision {
                DecisionChange::Keep => 0,
                DecisionChange::Set(d) => put_decision(db, &event.connector_key, Some(d))?,
                DecisionChange::ClearIf { by, at_ms } => db.execute(
                    "DELETE FROM connector_decisions WHERE connector_key = $1 AND decided_by = $2 AND decided_at_ms = $3",
                    args![&event.connector_key, by, at_ms],
                )?,
            };
            append(db, &with_request(event, id))?;
            Ok(true)
        })
    }

    fn record_expiries(&self, now_ms: i64) -> Result<usize> {
        self.write(|db| record_expiries_in(db, now_ms))
    }
}

/// The sweep inside one transaction: the UPDATE claims each lapse (a replica that lost the
/// race finds it already marked) and the events follow in the same commit.
fn record_expiries_in(db: &mut dyn Sql, now_ms: i64) -> Result<usize> {
    let lapsed = db.all(
        "UPDATE connector_decisions SET expiry_recorded_at_ms = $1 WHERE status = 'approved' \
         AND expires_at_ms IS NOT NULL AND expires_at_ms <= $1 AND expiry_recorded_at_ms IS NULL \
         RETURNING connector_key, decided_by, decided_at_ms, expires_at_ms",
        args![now_ms],
        |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?, r.int(3)?)),
    )?;
    for (key, by, at_ms, expires_at_ms) in &lapsed {
        // The request the approval closed, if it came from one.
        let request = db.one(
            "SELECT id FROM approval_requests WHERE connector_key = $1 AND state = 'approved' \
             AND decided_by = $2 AND decided_at_ms = $3 ORDER BY id DESC",
            args![key, by, *at_ms],
            |r| r.int(0),
        )?;
        let detail = serde_json::json!({
            "approved_by": by,
            "expires_at": crate::clock::rfc3339(*expires_at_ms),
            "request": request,
        });
        let e =
            ConnectorEvent::new(key, *expires_at_ms, "approval_expired", "system", None).with_detail(detail);
        append(db, &e)?;
    }
    Ok(lapsed.len())
}
