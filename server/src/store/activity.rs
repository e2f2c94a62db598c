//! AI tool activity: the sessions agents read from the tools' own records (metadata only),
//! stored per (device, tool, session) as their latest report, and bound to the connectors
//! they went through.
//!
//! Binding happens at ingest, inside the batch's transaction, against what the device has
//! ever reported present (its presence intervals, this batch's included):
//! - the tool → `tool:<tool>` when the device has had it, else `unknown:tool:<tool>`;
//! - each MCP server name → the device's `mcp:<name>:<hash>` connectors of that name,
//!   preferring those configured for the same client as the tool, then those under the same
//!   OS account, else `unknown:mcp:<name>`;
//! - each credential fingerprint → `token:<fp>` (known when the device has had it).
//!
//! `unknown:*` keys are use of an AI tool or connector the inventory never saw.
//!
//! A report replaces the stored one only when it is newer in the chain (higher evidence seq)
//! and does not end earlier: a replay, or an agent that read a record again from an older
//! offset after a crash, never shrinks what is known of a session. A session is keyed by
//! (device, tool, session id, OS account): on a shared device one account's report never
//! replaces another's.
//!
//! Reports are held to the agent's own bounds here too ([`bounded`]): a forged or corrupt
//! report is trimmed, or skipped when it names no usable session, and never fails the batch
//! (an ingest error would stall the device's chain for good).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
// The contract's bounds on a report, which the agent holds its tallies to, held again here
// because a device's report is only as honest as the device; the rest below are the store's.
use sightline_proto::activity::{MAX_MCP_SERVERS, MAX_MCP_TOOLS, MAX_MODELS, MAX_NAME, is_name};

use super::rows::{Row, strings};
use super::sql::{Database, Dialect, Param, Sql, args, in_list};
use super::{ObservationRecord, Result};
use crate::clock::DeviceTime;
use crate::domain::ObservationKind;

/// An ACTIVITY observation's stored data, as `ingest::convert` writes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ActivityReport {
    pub tool: String,
    pub user: Option<String>,
    pub session_id: String,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub project: Option<String>,
    pub models: Vec<String>,
    /// `{"account": …, "org": …}` where the tool's record names one.
    pub account: Option<serde_json::Value>,
    pub prompts: u32,
    pub tool_calls: u32,
    pub mcp: Vec<McpUseRecord>,
    pub credentials: Vec<String>,
    pub format: String,
}

/// One MCP server's use in a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct McpUseRecord {
    pub calls: u32,
    pub server: String,
    pub tools: Vec<String>,
}

/// A connector a session was bound to at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundConnector {
    pub key: String,
    /// `tool`, `mcp_server` or `token`.
    pub kind: String,
    pub label: String,
    /// False for an `unknown:*` key or a credential the device never reported.
    pub known: bool,
}

/// A stored session with what it was bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRecord {
    pub device_id: String,
    /// The device's hostname now (None if the device row is gone).
    pub hostname: Option<String>,
    pub tool: String,
    pub session_id: String,
    pub os_user: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub project: Option<String>,
    pub models: Vec<String>,
    pub account: Option<serde_json::Value>,
    pub prompts: u32,
    pub tool_calls: u32,
    pub mcp: Vec<McpUseRecord>,
    pub credentials: Vec<String>,
    pub format: String,
    /// The observation of the latest report.
    pub evidence_seq: u64,
    pub connectors: Vec<BoundConnector>,
}

/// Which sessions to read; every field optional. A session matches `since`/`until` when it
/// overlaps `[since, until]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    pub device_ids: Option<Vec<String>>,
    pub os_users: Option<Vec<String>>,
    /// A connector key, or a prefix of one up to a `:` (`mcp:github` is every `mcp:github:<hash>`).
    pub connector: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only the session whose stored report is this observation (with `device_ids`): how an
    /// export finds the session an `ACTIVITY` observation stands for, whatever its times.
    pub evidence_seq: Option<u64>,
    /// At most this many (the newest); [`ActivityStore::activity_count`] counts them all.
    pub limit: Option<usize>,
}

/// Reading and pruning activity.
pub trait ActivityStore: Send + Sync {
    /// Sessions matching, newest (latest record) first.
    fn activity(&self, f: &ActivityFilter) -> Result<Vec<ActivityRecord>>;

    /// How many sessions match, `limit` aside.
    fn activity_count(&self, f: &ActivityFilter) -> Result<u64>;

    /// The latest `ended_at_ms` of any session bound to each known connector: one grouped
    /// read for the whole register.
    fn activity_last_used(&self) -> Result<HashMap<String, i64>>;

    /// Removes sessions whose latest record is before `cutoff_ms`, with their connector rows,
    /// and the `ACTIVITY` observations received before it (a session ends no later than its
    /// report arrived, so each of those tells of a session this removes or will at a later
    /// cutoff; a report received after the cutoff stays until a later prune). The signed
    /// batches stay whole: they are evidence, and go with retention's `prune`.
    fn prune_activity(&self, cutoff_ms: i64) -> Result<PrunedActivity>;
}

/// What [`ActivityStore::prune_activity`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedActivity {
    pub sessions: u64,
    pub observations: u64,
}

/// Credential fingerprints per session: a session signs in with a few, never hundreds.
pub(crate) const MAX_CREDENTIALS: usize = 16;
/// Session ids, OS accounts and projects longer than this are not ones a tool or an OS
/// writes; the key columns stay far below PostgreSQL's index entry limit (~2.7 KB).
pub(crate) const MAX_ID: usize = 256;
/// A project: a fingerprint, or with `activity_paths = "plain"` a path, which may be long
/// (the column is not indexed). PATH_MAX on Linux.
pub(crate) const MAX_PROJECT: usize = 4096;
/// The provider account object (`{"account": …, "org": …}`) as JSON text.
pub(crate) const MAX_ACCOUNT: usize = 1024;

/// A key part worth keeping: bounded and without control characters.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID && !s.chars().any(char::is_control)
}

/// What [`bounded`] did to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bounded {
    Kept,
    Trimmed,
}

/// `r` held to the agent's bounds: names that are not names and entries beyond the counts
/// are dropped, an unusable project or account is forgotten. `None` when the report names
/// no usable tool, session or OS account: it cannot be keyed, so it is skipped.
pub(crate) fn bounded(mut r: ActivityReport) -> Option<(ActivityReport, Bounded)> {
    if !is_name(&r.tool)
        || !is_id(&r.session_id)
        || r.user.as_deref().is_some_and(|u| !u.is_empty() && !is_id(u))
    {
        return None;
    }
    let before = (r.models.len(), r.mcp.len(), r.credentials.len());
    let mut trimmed = false;
    r.models.retain(|m| is_name(m));
    r.models.truncate(MAX_MODELS);
    r.mcp.retain(|m| is_name(&m.server));
    r.mcp.truncate(MAX_MCP_SERVERS);
    for m in &mut r.mcp {
        let n = m.tools.len();
        m.tools.retain(|t| is_name(t));
        m.tools.truncate(MAX_MCP_TOOLS);
        trimmed |= m.tools.len() != n;
    }
    r.credentials.retain(|c| is_name(c));
    r.credentials.truncate(MAX_CREDENTIALS);
    trimmed |= before != (r.models.len(), r.mcp.len(), r.credentials.len());
    if r.format.len() > MAX_NAME || r.format.chars().any(char::is_control) {
        r.format.clear();
        trimmed = true;
    }
    if r.project
        .as_deref()
        .is_some_and(|p| p.is_empty() || p.len() > MAX_PROJECT || p.chars().any(char::is_control))
    {
        r.project = None;
        trimmed = true;
    }
    if r.account.as_ref().is_some_and(|a| !a.is_object() || a.to_string().len() > MAX_ACCOUNT) {
        r.account = None;
        trimmed = true;
    }
    Some((r, if trimmed { Bounded::Trimmed } else { Bounded::Kept }))
}

/// The reports in a batch's observations, in observation order, with their seq, each held
/// to [`bounded`]. One whose data does not read as a report, or that cannot be keyed, is
/// skipped (it is still kept as an observation); skipped and trimmed ones are logged with
/// their count, once per batch.
fn reports(device_id: &str, observations: &[ObservationRecord]) -> Vec<(u64, ActivityReport)> {
    let (mut skipped, mut trimmed) = (0usize, 0usize);
    let out: Vec<_> = observations
        .iter()
        .filter(|o| o.kind == ObservationKind::Activity)
        .filter_map(|o| {
            let kept = serde_json::from_str::<ActivityReport>(&o.data).ok().and_then(bounded);
            match kept {
                None => skipped += 1,
                Some((_, Bounded::Trimmed)) => trimmed += 1,
                Some((_, Bounded::Kept)) => {}
            }
            kept.map(|(r, _)| (o.seq, r))
        })
        .collect();
    if skipped + trimmed > 0 {
        tracing::warn!(
            device_id,
            skipped,
            trimmed,
            "Activity reports beyond the agent's bounds: skipped or trimmed."
        );
    }
    out
}

/// A connector the device has had, as binding sees it.
struct Seen {
    key: String,
    label: String,
    os_user: Option<String>,
    /// The MCP client a configuration entry belongs to (the locus after `#`).
    client: Option<String>,
}

const UPSERT: &str = "INSERT INTO activity_sessions (device_id, tool, session_id, os_user, started_at_ms, \
     ended_at_ms, project, models, account, prompts, tool_calls, mcp, credentials, format, evidence_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (device_id, tool, session_id, os_user) DO UPDATE SET \
     started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, project = excluded.project, \
     models = excluded.models, account = excluded.account, prompts = excluded.prompts, \
     tool_calls = excluded.tool_calls, mcp = excluded.mcp, credentials = excluded.credentials, \
     format = excluded.format, evidence_seq = excluded.evidence_seq \
     WHERE activity_sessions.evidence_seq < excluded.evidence_seq \
     AND activity_sessions.ended_at_ms <= excluded.ended_at_ms";

/// Stores a batch's activity reports and binds them, inside the batch's transaction (after
/// its presence rows, so a connector first reported in the same batch binds). Session times
/// are the device's: one it could not have seen yet (`clock::DeviceTime`, against the batch's
/// receive time) is stored as that receive time, so no session ends in the future.
pub(crate) fn write(
    db: &mut dyn Sql,
    device_id: &str,
    observations: &[ObservationRecord],
    received_ms: i64,
) -> Result<()> {
    let reports = reports(device_id, observations);
    if reports.is_empty() {
        return Ok(());
    }
    let seen = db.all(
        "SELECT DISTINCT p.connector_key, COALESCE(c.label, ''), p.os_user, p.locus FROM presence p \
         LEFT JOIN connectors c ON c.key = p.connector_key WHERE p.device_id = $1",
        args![device_id],
        |r| {
            let locus = r.text(3)?;
            Ok(Seen {
                key: r.text(0)?,
                label: r.text(1)?,
                os_user: r.opt_text(2)?,
                client: locus.rsplit_once('#').map(|(_, c)| c.to_owned()).filter(|c| !c.is_empty()),
            })
        },
    )?;
    for (seq, r) in &reports {
        let ended = DeviceTime::check(r.ended_at_ms, received_ms).stored();
        // A session cannot end before it began, whatever a record says.
        let started = DeviceTime::check(r.started_at_ms, received_ms).stored().min(ended);
        let mcp = serde_json::to_string(&r.mcp).unwrap_or_else(|_| "[]".into());
        let account = r.account.as_ref().map(|a| a.to_string());
        // Part of the key: none is '' (NULLs would never conflict).
        let user = r.user.as_deref().unwrap_or("");
        let changed = db.execute(
            UPSERT,
            args![
                device_id,
                &r.tool,
                &r.session_id,
                user,
                started,
                ended,
                &r.project,
                strings(&r.models).as_str(),
                account.as_deref(),
                i64::from(r.prompts),
                i64::from(r.tool_calls),
                mcp.as_str(),
                strings(&r.credentials).as_str(),
                &r.format,
                *seq as i64
            ],
        )?;
        if changed == 0 {
            continue;
        }
        db.execute(
            "DELETE FROM activity_connectors WHERE device_id = $1 AND tool = $2 AND session_id = $3 \
             AND os_user = $4",
            args![device_id, &r.tool, &r.session_id, user],
        )?;
        for b in bind(r, &seen) {
            db.execute(
                "INSERT INTO activity_connectors (device_id, tool, session_id, os_user, connector_key, kind, \
                 label, known, ended_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                args![
                    device_id,
                    &r.tool,
                    &r.session_id,
                    user,
                    &b.key,
                    &b.kind,
                    &b.label,
                    i64::from(b.known),
                    ended
                ],
            )?;
        }
    }
    Ok(())
}

/// Letters and digits only, lower-cased: `claude_code`, `Claude Code` and `claude-code` agree.
fn folded(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The connectors a session went through (the rules in the module doc), each key once.
fn bind(r: &ActivityReport, seen: &[Seen]) -> Vec<BoundConnector> {
    let mut out: BTreeMap<String, BoundConnector> = BTreeMap::new();
    let mut add = |key: String, kind: &str, label: &str, known: bool| {
        out.entry(key.clone()).or_insert(BoundConnector {
            key,
            kind: kind.to_owned(),
            label: label.to_owned(),
            known,
        });
    };
    let tool_key = format!("tool:{}", r.tool);
    match seen.iter().find(|s| s.key == tool_key) {
        Some(s) => add(tool_key, "tool", if s.label.is_empty() { &r.tool } else { &s.label }, true),
        None => add(format!("unknown:tool:{}", r.tool), "tool", &r.tool, false),
    }
    let tool = folded(&r.tool);
    for m in &r.mcp {
        let named: Vec<&Seen> = seen
            .iter()
            .filter(|s| {
                s.key
                    .strip_prefix("mcp:")
                    .and_then(|rest| rest.rsplit_once(':'))
                    .is_some_and(|(name, _)| name == m.server)
            })
            .collect();
        let same_user = |s: &&&Seen| r.user.is_some() && s.os_user == r.user;
        let same_client = |s: &&&Seen| {
            s.client
                .as_deref()
                .map(folded)
                .is_some_and(|c| !c.is_empty() && (c.contains(&tool) || tool.contains(&c)))
        };
        // The most specific non-empty tier: same client and account, same client, same
        // account, any of that name.
        let tiers: [Vec<&&Seen>; 4] = [
            named.iter().filter(|s| same_client(s) && same_user(s)).collect(),
            named.iter().filter(same_client).collect(),
            named.iter().filter(same_user).collect(),
            named.iter().collect(),
        ];
        match tiers.into_iter().find(|t| !t.is_empty()) {
            Some(best) => {
                for s in best {
                    add(s.key.clone(), "mcp_server", &m.server, true);
                }
            }
            None => add(format!("unknown:mcp:{}", m.server), "mcp_server", &m.server, false),
        }
    }
    for fp in &r.credentials {
        let fp = fp.strip_prefix("token:").unwrap_or(fp);
        let key = format!("token:{fp}");
        match seen.iter().find(|s| s.key == key) {
            Some(s) => add(key, "token", if s.label.is_empty() { "token" } else { &s.label }, true),
            None => add(key, "token", "token", false),
        }
    }
    out.into_values().collect()
}

const SESSION_COLUMNS: &str = "s.device_id, d.hostname, s.tool, s.session_id, s.os_user, s.started_at_ms, \
     s.ended_at_ms, s.project, s.models, s.account, s.prompts, s.tool_calls, s.mcp, s.credentials, s.format, \
     s.evidence_seq";

fn list<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    // Written by `write` as JSON; what does not parse reads as empty.
    serde_json::from_str(text).unwrap_or_default()
}

fn session(r: &dyn Row) -> Result<ActivityRecord> {
    Ok(ActivityRecord {
        device_id: r.text(0)?,
        hostname: r.opt_text(1)?,
        tool: r.text(2)?,
        session_id: r.text(3)?,
        os_user: r.opt_text(4)?.filter(|u| !u.is_empty()),
        started_at_ms: r.int(5)?,
        ended_at_ms: r.int(6)?,
        project: r.opt_text(7)?,
        models: list(&r.text(8)?),
        account: r.opt_text(9)?.and_then(|a| serde_json::from_str(&a).ok()),
        prompts: u32::try_from(r.int(10)?).unwrap_or(u32::MAX),
        tool_calls: u32::try_from(r.int(11)?).unwrap_or(u32::MAX),
        mcp: list(&r.text(12)?),
        credentials: list(&r.text(13)?),
        format: r.text(14)?,
        evidence_seq: r.int(15)? as u64,
        connectors: Vec::new(),
    })
}

/// The WHERE clause for `f` over `activity_sessions s`, with its parameters.
fn conditions<'a>(d: Dialect, f: &'a ActivityFilter) -> (String, Vec<Param<'a>>) {
    let mut conds = vec!["1 = 1".to_owned()];
    let mut params: Vec<Param<'a>> = Vec::new();
    if let Some(ids) = &f.device_ids {
        params.push(Param::Texts(ids));
        conds.push(in_list(d, "s.device_id", params.len()));
    }
    if let Some(users) = &f.os_users {
        params.push(Param::Texts(users));
        conds.push(in_list(d, "s.os_user", params.len()));
    }
    if let Some(c) = &f.connector {
        params.push(Param::Text(Some(c)));
        let n = params.len();
        conds.push(format!(
            "EXISTS (SELECT 1 FROM activity_connectors x WHERE x.device_id = s.device_id AND x.tool = s.tool \
             AND x.session_id = s.session_id AND x.os_user = s.os_user AND (x.connector_key = ${n} \
             OR substr(x.connector_key, 1, length(${n}) + 1) = ${n} || ':'))"
        ));
    }
    if let Some(since) = f.since_ms {
        params.push(Param::Int(Some(since)));
        conds.push(format!("s.ended_at_ms >= ${}", params.len()));
    }
    if let Some(until) = f.until_ms {
        params.push(Param::Int(Some(until)));
        conds.push(format!("s.started_at_ms <= ${}", params.len()));
    }
    if let Some(seq) = f.evidence_seq {
        params.push(Param::Int(Some(i64::try_from(seq).unwrap_or(i64::MAX))));
        conds.push(format!("s.evidence_seq = ${}", params.len()));
    }
    (conds.join(" AND "), params)
}

impl<D: Database> ActivityStore for D {
    fn activity(&self, f: &ActivityFilter) -> Result<Vec<ActivityRecord>> {
        self.read(|db| {
            let (cond, params) = conditions(db.dialect(), f);
            // A bound from our own number, never the caller's text.
            let limit = f.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
            let mut sessions = db.all(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM activity_sessions s LEFT JOIN devices d ON d.id = s.device_id \
                     WHERE {cond} ORDER BY s.ended_at_ms DESC, s.started_at_ms DESC, s.device_id, s.tool, \
                     s.session_id, s.os_user{limit}"
                ),
                &params,
                session,
            )?;
            if sessions.is_empty() {
                return Ok(sessions);
            }
            let connector = |r: &dyn Row| {
                Ok(BoundConnector { key: r.text(0)?, kind: r.text(1)?, label: r.text(2)?, known: r.int(3)? != 0 })
            };
            if f.limit.is_some() {
                // A page: its own sessions' rows, by primary key, rather than every match's.
                for s in &mut sessions {
                    s.connectors = db.all(
                        "SELECT connector_key, kind, label, known FROM activity_connectors \
                         WHERE device_id = $1 AND tool = $2 AND session_id = $3 AND os_user = $4 \
                         ORDER BY connector_key",
                        args![&s.device_id, &s.tool, &s.session_id, s.os_user.as_deref().unwrap_or("")],
                        connector,
                    )?;
                }
                return Ok(sessions);
            }
            type Key = (String, String, String, String);
            let mut bound: HashMap<Key, Vec<BoundConnector>> = HashMap::new();
            db.each(
                &format!(
                    "SELECT c.connector_key, c.kind, c.label, c.known, c.device_id, c.tool, c.session_id, c.os_user \
                     FROM activity_connectors c JOIN activity_sessions s ON s.device_id = c.device_id \
                     AND s.tool = c.tool AND s.session_id = c.session_id AND s.os_user = c.os_user \
                     WHERE {cond} ORDER BY c.connector_key"
                ),
                &params,
                &mut |r| {
                    bound.entry((r.text(4)?, r.text(5)?, r.text(6)?, r.text(7)?)).or_default().push(connector(r)?);
                    Ok(())
                },
            )?;
            for s in &mut sessions {
                let key = (
                    s.device_id.clone(),
                    s.tool.clone(),
                    s.session_id.clone(),
                    s.os_user.clone().unwrap_or_default(),
                );
                s.connectors = bound.remove(&key).unwrap_or_default();
            }
            Ok(sessions)
        })
    }

    fn activity_count(&self, f: &ActivityFilter) -> Result<u64> {
        self.read(|db| {
            let (cond, params) = conditions(db.dialect(), f);
            let n =
                db.one(&format!("SELECT count(*) FROM activity_sessions s WHERE {cond}"), &params, |r| {
                    r.int(0)
                })?;
            Ok(n.unwrap_or(0) as u64)
        })
    }

    fn activity_last_used(&self) -> Result<HashMap<String, i64>> {
        self.read(|db| {
            Ok(db
                .all(
                    "SELECT connector_key, max(ended_at_ms) FROM activity_connectors WHERE known = 1 \
                     GROUP BY connector_key",
                    &[],
                    |r| Ok((r.text(0)?, r.int(1)?)),
                )?
                .into_iter()
                .collect())
        })
    }

    fn prune_activity(&self, cutoff_ms: i64) -> Result<PrunedActivity> {
        self.write(|db| {
            db.execute("DELETE FROM activity_connectors WHERE ended_at_ms < $1", args![cutoff_ms])?;
            let sessions = db.execute("DELETE FROM activity_sessions WHERE ended_at_ms < $1", args![cutoff_ms])?;
            // The reports themselves, by when they arrived: a report arrives no earlier than
            // the session it tells of ends, so each one received before the cutoff reports
            // a session that is gone or will be by the next prune.
            let observations = match db.dialect() {
                // The partition key: months wholly after the cutoff are not even scanned.
                Dialect::Postgres => db.execute(
                    "DELETE FROM observations WHERE kind = 'activity' AND received_at_ms < $1",
                    args![cutoff_ms],
                )?,
                // No receive time on the row: the batches say it, and each batch's rows are
                // one range of the primary key, as retention's own prune reads them.
                Dialect::Sqlite => db.execute(
                    "DELETE FROM observations WHERE rowid IN (SELECT o.rowid FROM batches b JOIN observations o \
                     ON o.device_id = b.device_id AND o.seq BETWEEN b.first_seq AND b.last_seq \
                     WHERE b.received_at_ms < $1 AND o.kind = 'activity')",
                    args![cutoff_ms],
                )?,
            };
            Ok(PrunedActivity { sessions, observations })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(key: &str, user: Option<&str>, client: Option<&str>) -> Seen {
        Seen {
            key: key.into(),
            label: String::new(),
            os_user: user.map(Into::into),
            client: client.map(Into::into),
        }
    }

    fn report(mcp: &[&str], credentials: &[&str]) -> ActivityReport {
        ActivityReport {
            tool: "claude_code".into(),
            user: Some("alice".into()),
            session_id: "s1".into(),
            mcp: mcp.iter().map(|s| McpUseRecord { calls: 1, server: (*s).into(), tools: vec![] }).collect(),
            credentials: credentials.iter().map(|s| (*s).into()).collect(),
            ..Default::default()
        }
    }

    fn keys(b: &[BoundConnector]) -> Vec<(&str, bool)> {
        b.iter().map(|c| (c.key.as_str(), c.known)).collect()
    }

    #[test]
    fn binds_to_the_same_clients_mcp_entry_and_reports_unknown_use() {
        let seen = [
            seen("tool:claude_code", Some("alice"), None),
            seen("mcp:github:aaa", Some("alice"), Some("cursor")),
            seen("mcp:github:bbb", Some("alice"), Some("claude_code")),
            seen("mcp:github:ccc", Some("bob"), Some("claude_code")),
            seen("mcp:gitlab:ddd", Some("alice"), Some("claude_code")),
            seen("token:fp1", Some("alice"), None),
        ];
        let b = bind(&report(&["github", "jira"], &["fp1", "fp2"]), &seen);
        assert_eq!(
            keys(&b),
            [
                ("mcp:github:bbb", true),
                ("token:fp1", true),
                ("token:fp2", false),
                ("tool:claude_code", true),
                ("unknown:mcp:jira", false),
            ]
        );
    }

    #[test]
    fn a_tool_never_seen_is_unknown_and_same_account_entries_beat_others() {
        let seen = [seen("mcp:github:aaa", Some("bob"), None), seen("mcp:github:bbb", Some("alice"), None)];
        let b = bind(&report(&["github"], &[]), &seen);
        assert_eq!(keys(&b), [("mcp:github:bbb", true), ("unknown:tool:claude_code", false)]);
    }
}
