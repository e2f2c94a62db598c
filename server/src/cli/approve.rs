//! `approval …` and `audit`: the approvals workflow and the register's audit log, from the
//! data dir (acting as `cli:USER`) or a running collector's API (acting as its token).

use super::output::{cli_user, print, print_json};
use super::{ApprovalCommand, DataArgs, RemoteArgs};
use crate::approvals::{self, Actor};
use crate::clock::now_ms;
use crate::remote::encode;
use crate::responses;

/// A duration typed on the command line, in ms.
fn ms(flag: &str, d: Option<&str>) -> anyhow::Result<Option<i64>> {
    d.map(|d| {
        let t = humantime::parse_duration(d)
            .map_err(|e| anyhow::anyhow!("{flag} {d:?} is not a duration like 30d: {e}"))?;
        anyhow::ensure!(
            !t.is_zero() && t.as_secs() <= 10 * 365 * 86_400,
            "{flag} must be more than 0 and at most ten years"
        );
        Ok(t.as_millis() as i64)
    })
    .transpose()
}

fn one(r: &responses::ApprovalRequest, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    print(&approvals::render(std::slice::from_ref(r)))
}

pub(super) fn run(command: ApprovalCommand, db: Option<&str>) -> anyhow::Result<()> {
    match command {
        ApprovalCommand::Request { key, person, reason, duration, data, json, remote } => {
            let path = format!("/api/v1/connectors/{}/approval-requests", encode(&key));
            let body = serde_json::json!({ "reason": reason, "on_behalf_of": person, "duration": duration });
            if let Some(out) = remote.call(|r| async move { r.post(&path, &body).await })? {
                return print(&out);
            }
            let duration_ms = ms("--duration", duration.as_deref())?;
            let (store, policy) = (data.store(db)?, data.policy()?);
            let actor = Actor::Admin(cli_user());
            let r = approvals::request(
                store.as_ref(),
                &policy,
                &key,
                &actor,
                Some(&person),
                Some(&reason),
                duration_ms,
                now_ms(),
            )?;
            one(&approvals::view(store.as_ref(), &r)?, json)
        }
        ApprovalCommand::List { state, data, json, remote } => {
            let path = match &state {
                Some(s) => format!("/api/v1/approval-requests?state={}", encode(s)),
                None => "/api/v1/approval-requests".to_owned(),
            };
            if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
                return print(&out);
            }
            let rows = approvals::list(data.store(db)?.as_ref(), state.as_deref(), None)?;
            if json {
                return print_json(&rows);
            }
            print(&approvals::render(&rows))
        }
        ApprovalCommand::Approve { id, reason, expires_in, data, json, remote } => {
            let path = format!("/api/v1/approval-requests/{id}/approve");
            let body = serde_json::json!({ "reason": reason, "expires_in": expires_in });
            if let Some(out) = remote.call(|r| async move { r.post(&path, &body).await })? {
                return print(&out);
            }
            let expires = ms("--expires-in", expires_in.as_deref())?;
            let store = data.store(db)?;
            let r = approvals::approve(store.as_ref(), id, &cli_user(), Some(&reason), expires, now_ms())?;
            one(&approvals::view(store.as_ref(), &r)?, json)
        }
        ApprovalCommand::Deny { id, reason, data, json, remote } => {
            let path = format!("/api/v1/approval-requests/{id}/deny");
            let body = serde_json::json!({ "reason": reason });
            if let Some(out) = remote.call(|r| async move { r.post(&path, &body).await })? {
                return print(&out);
            }
            let store = data.store(db)?;
            let r = approvals::deny(store.as_ref(), id, &cli_user(), Some(&reason), now_ms())?;
            one(&approvals::view(store.as_ref(), &r)?, json)
        }
        ApprovalCommand::Withdraw { id, reason, data, json, remote } => {
            let path = format!("/api/v1/approval-requests/{id}/withdraw");
            let body = serde_json::json!({ "reason": reason });
            if let Some(out) = remote.call(|r| async move { r.post(&path, &body).await })? {
                return print(&out);
            }
            let store = data.store(db)?;
            let r = approvals::withdraw(
                store.as_ref(),
                id,
                &Actor::Admin(cli_user()),
                reason.as_deref(),
                now_ms(),
            )?;
            one(&approvals::view(store.as_ref(), &r)?, json)
        }
    }
}

/// `audit [--connector KEY]`: the whole log (or one connector's), oldest first.
pub(super) fn audit(
    connector: Option<&str>,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let path = match connector {
        Some(k) => format!("/api/v1/audit?connector={}", encode(k)),
        None => "/api/v1/audit".to_owned(),
    };
    if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
        return print(&out);
    }
    let store = data.store(db)?;
    let events = match connector {
        Some(k) => store.connector_events(k)?,
        None => {
            // The whole log, a page at a time through the export's cursor.
            let mut all = Vec::new();
            loop {
                let page = store
                    .events_after(all.last().map_or(0, |e: &crate::store::ConnectorEvent| e.seq), 10_000)?;
                if page.is_empty() {
                    break;
                }
                all.extend(page);
            }
            all
        }
    };
    let rows: Vec<responses::AuditEvent> = events.iter().map(responses::AuditEvent::from).collect();
    if json {
        return print_json(&rows);
    }
    print(&approvals::render_audit(&rows))
}
