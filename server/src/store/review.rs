//! Recertification campaigns, their items, reviewer tokens and the reminder outbox, once for
//! both backends. Every change that races another replica (a decision, the deadline sweep, a
//! reminder) is a conditional write: whoever changes the row first wins, the others see
//! `false` and do nothing more.

use super::register::append;
use super::rows::Row;
use super::sql::{Database, args};
use super::{Campaign, ConnectorEvent, ItemDecision, Reminder, Result, ReviewItem, ReviewStore};

const CAMPAIGN_COLUMNS: &str =
    "id, scope, rule, due_at_ms, created_by, created_at_ms, closed_at_ms, link_base";

fn campaign(r: &dyn Row) -> Result<Campaign> {
    Ok(Campaign {
        id: r.text(0)?,
        scope: r.text(1)?,
        rule: r.text(2)?,
        due_at_ms: r.int(3)?,
        created_by: r.text(4)?,
        created_at_ms: r.int(5)?,
        closed_at_ms: r.opt_int(6)?,
        link_base: r.text(7)?,
    })
}

const ITEM_COLUMNS: &str = "i.id, i.campaign_id, i.connector_key, i.reviewer_id, i.why, i.assigned_at_ms, \
                            i.due_at_ms, i.decision, i.keep_until_ms, i.reason, i.decided_by, i.decided_at_ms";

fn item(r: &dyn Row) -> Result<ReviewItem> {
    Ok(ReviewItem {
        id: r.int(0)?,
        campaign_id: r.text(1)?,
        connector_key: r.text(2)?,
        reviewer_id: r.opt_text(3)?,
        why: r.text(4)?,
        assigned_at_ms: r.int(5)?,
        due_at_ms: r.int(6)?,
        decision: r.opt_text(7)?,
        keep_until_ms: r.opt_int(8)?,
        reason: r.opt_text(9)?,
        decided_by: r.opt_text(10)?,
        decided_at_ms: r.opt_int(11)?,
    })
}

const REMINDER_COLUMNS: &str = "seq, campaign_id, reviewer_id, kind, due_at_ms, recipient, subject, body, link, \
                                created_at_ms, sent_at_ms";

fn reminder(r: &dyn Row) -> Result<Reminder> {
    Ok(Reminder {
        seq: r.int(0)?,
        campaign_id: r.text(1)?,
        reviewer_id: r.text(2)?,
        kind: r.text(3)?,
        due_at_ms: r.int(4)?,
        recipient: r.text(5)?,
        subject: r.text(6)?,
        body: r.text(7)?,
        link: r.text(8)?,
        created_at_ms: r.int(9)?,
        sent_at_ms: r.opt_int(10)?,
    })
}

impl<D: Database> ReviewStore for D {
    fn create_campaign(&self, c: &Campaign, items: &[ReviewItem]) -> Result<()> {
        self.write(|db| {
            db.execute(
                &format!("INSERT INTO review_campaigns ({CAMPAIGN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                args![
                    &c.id,
                    &c.scope,
                    &c.rule,
                    c.due_at_ms,
                    &c.created_by,
                    c.created_at_ms,
                    c.closed_at_ms,
                    &c.link_base
                ],
            )?;
            for i in items {
                db.execute(
                    "INSERT INTO review_items (campaign_id, connector_key, reviewer_id, why, assigned_at_ms, \
                     due_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![&c.id, &i.connector_key, &i.reviewer_id, &i.why, i.assigned_at_ms, i.due_at_ms],
                )?;
            }
            Ok(())
        })
    }

    fn campaigns(&self) -> Result<Vec<Campaign>> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns ORDER BY created_at_ms, id");
        self.read(|db| db.all(&sql, args![], campaign))
    }

    fn campaign(&self, id: &str) -> Result<Option<Campaign>> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE id = $1");
        self.read(|db| db.one(&sql, args![id], campaign))
    }

    fn review_items(&self, campaign_id: &str) -> Result<Vec<ReviewItem>> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM review_items i WHERE i.campaign_id = $1 ORDER BY i.id");
        self.read(|db| db.all(&sql, args![campaign_id], item))
    }

    fn record_review(
        &self,
        campaign_id: &str,
        key: &str,
        d: &ItemDecision,
        event: &ConnectorEvent,
    ) -> Result<bool> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE review_items SET decision = $3, keep_until_ms = $4, reason = $5, decided_by = $6, \
                 decided_at_ms = $7 WHERE campaign_id = $1 AND connector_key = $2 AND decision IS NULL",
                args![
                    campaign_id,
                    key,
                    &d.decision,
                    d.keep_until_ms,
                    &d.reason,
                    &d.decided_by,
                    d.decided_at_ms
                ],
            )?;
            if n == 1 {
                append(db, event)?;
            }
            Ok(n == 1)
        })
    }

    fn reassign_item(
        &self,
        from: &ReviewItem,
        to: Option<&str>,
        why: &str,
        now_ms: i64,
        due_at_ms: i64,
        event: &ConnectorEvent,
    ) -> Result<bool> {
        self.write(|db| {
            // Compare and set on what the sweep saw: a replica that got there first changed
            // the reviewer or the due date, and this one leaves the item alone.
            let n = db.execute(
                "UPDATE review_items SET reviewer_id = $2, why = $3, assigned_at_ms = $4, due_at_ms = $5 \
                 WHERE id = $1 AND decision IS NULL AND due_at_ms = $6 \
                 AND (reviewer_id = $7 OR (reviewer_id IS NULL AND $8))",
                args![
                    from.id,
                    to,
                    why,
                    now_ms,
                    due_at_ms,
                    from.due_at_ms,
                    &from.reviewer_id,
                    from.reviewer_id.is_none()
                ],
            )?;
            if n == 1 {
                append(db, event)?;
            }
            Ok(n == 1)
        })
    }

    fn overdue_items(&self, now_ms: i64, limit: usize) -> Result<Vec<(ReviewItem, String)>> {
        // The admins' queue is where escalation ends: under `escalate` it waits for them.
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, c.rule FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
             WHERE i.decision IS NULL AND i.due_at_ms <= $1 AND (c.rule = 'revoke' OR i.reviewer_id IS NOT NULL) \
             ORDER BY i.due_at_ms, i.id LIMIT $2"
        );
        self.read(|db| db.all(&sql, args![now_ms, limit as i64], |r| Ok((item(r)?, r.text(12)?))))
    }

    fn due_soon(&self, now_ms: i64, window_ms: i64) -> Result<Vec<ReviewItem>> {
        // Only items given with more than the window to go (a reviewer who got the item
        // inside it had the first reminder recently enough), and not reminded yet: the
        // sweep asks every poll, and must not write when there is nothing to send.
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM review_items i WHERE i.decision IS NULL AND i.reviewer_id IS NOT NULL \
             AND i.due_at_ms > $1 AND i.due_at_ms <= $2 AND i.due_at_ms - i.assigned_at_ms > $3 \
             AND NOT EXISTS (SELECT 1 FROM review_reminders r WHERE r.campaign_id = i.campaign_id \
             AND r.reviewer_id = i.reviewer_id AND r.kind = 'due_soon' AND r.due_at_ms = i.due_at_ms) ORDER BY i.id"
        );
        self.read(|db| db.all(&sql, args![now_ms, now_ms + window_ms, window_ms], item))
    }

    fn close_finished_campaigns(&self, now_ms: i64) -> Result<u64> {
        self.write(|db| {
            db.execute(
                "UPDATE review_campaigns SET closed_at_ms = $1 WHERE closed_at_ms IS NULL AND NOT EXISTS \
                 (SELECT 1 FROM review_items i WHERE i.campaign_id = review_campaigns.id AND i.decision IS NULL)",
                args![now_ms],
            )
        })
    }

    fn add_reminder(&self, r: &Reminder, token_hash: &[u8], token_expires_at_ms: i64) -> Result<bool> {
        self.write(|db| {
            let n = db.execute(
                "INSERT INTO review_reminders (campaign_id, reviewer_id, kind, due_at_ms, recipient, subject, \
                 body, link, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (campaign_id, reviewer_id, kind, due_at_ms) DO NOTHING",
                args![
                    &r.campaign_id,
                    &r.reviewer_id,
                    &r.kind,
                    r.due_at_ms,
                    &r.recipient,
                    &r.subject,
                    &r.body,
                    &r.link,
                    r.created_at_ms
                ],
            )?;
            // The link's token is good only if its message is the one stored.
            if n == 1 {
                db.execute(
                    "INSERT INTO review_tokens (token_hash, campaign_id, reviewer_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                    args![token_hash, &r.campaign_id, &r.reviewer_id, r.created_at_ms, token_expires_at_ms],
                )?;
            }
            Ok(n == 1)
        })
    }

    fn pending_reminders(&self, after: i64, limit: usize) -> Result<Vec<Reminder>> {
        let sql = format!(
            "SELECT {REMINDER_COLUMNS} FROM review_reminders WHERE seq > $1 AND sent_at_ms IS NULL ORDER BY seq LIMIT $2"
        );
        self.read(|db| db.all(&sql, args![after, limit as i64], reminder))
    }

    fn ack_reminders(&self, seqs: &[i64], now_ms: i64) -> Result<u64> {
        self.write(|db| {
            let mut n = 0;
            for &seq in seqs {
                // The sent text held the link's token: it leaves the database with the ack.
                n += db.execute(
                    "UPDATE review_reminders SET sent_at_ms = $2, body = '', link = '' \
                     WHERE seq = $1 AND sent_at_ms IS NULL",
                    args![seq, now_ms],
                )?;
            }
            Ok(n)
        })
    }

    fn review_grant(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>> {
        self.read(|db| {
            db.one(
                "SELECT campaign_id, reviewer_id FROM review_tokens WHERE token_hash = $1 AND expires_at_ms > $2",
                args![token_hash, now_ms],
                |r| Ok((r.text(0)?, r.text(1)?)),
            )
        })
    }
}
