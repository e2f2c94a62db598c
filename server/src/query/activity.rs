//! Activity queries: which person used which AI tool and connector, on which device, inside
//! which OS session, when (`activity` on the CLI, `GET /api/v1/activity`, triage at T).
//!
//! The store keeps each session as the agent reported it, bound to connectors at ingest
//! (`store::activity`). Who the session is attributed to and which login session it ran in
//! are decided here, at answer time, with the same rules triage uses: SCIM or IdP data that
//! arrives later improves old answers.

use std::collections::HashMap;

use super::{judged_people, parse_instant, printable, table};
use crate::clock::rfc3339 as time;
use crate::policy::{People, Policy};
use crate::register::Named;
use crate::responses::{
    ActivityConnector, ActivityPage, ActivityPerson, ActivityQuery, ActivitySession, AuthorizedBy, McpUse,
    SessionAt,
};
use crate::store::{ActivityFilter, ActivityRecord, ActivityStore, DeviceStore, PeopleStore, ReadModel};

/// How many sessions a query answers unless asked for more, and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// Triage at T counts a session active from a little before its first record to a little
/// after its latest: records are written when something happens, not continuously.
pub const TRIAGE_GRACE_MS: i64 = 5 * 60 * 1000;

/// What an activity query asks, as given (CLI flags, API query parameters); all optional.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// A person (SCIM userName or e-mail: sessions under any OS account attributed to them)
    /// or an OS account.
    pub user: Option<String>,
    /// Device id or hostname.
    pub device: Option<String>,
    /// Connector key (`mcp:github:3f2a…`), or a prefix of one up to a `:` (`mcp:github`,
    /// `tool:claude_code`, `unknown:mcp`).
    pub connector: Option<String>,
    /// Sessions that overlap `[since, until]`: RFC 3339, `now`, or relative (`7d ago`, `-12h`).
    pub since: Option<String>,
    pub until: Option<String>,
    /// How many sessions (default 100, at most 10000); `total` counts them all.
    pub limit: Option<usize>,
}

/// Why a query cannot be answered as asked (a 400 on the API).
#[derive(Debug, thiserror::Error)]
pub enum BadQuery {
    #[error("`{0}`: {1}")]
    Instant(&'static str, String),
    #[error("`limit` must be 1 to {MAX_LIMIT}")]
    Limit,
    #[error("`since` is after `until`")]
    Backwards,
}

/// An [`ActivityParams`] with its instants and limit checked.
#[derive(Debug, Clone)]
pub struct ActivityAsk {
    pub params: ActivityParams,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

impl ActivityParams {
    pub fn check(self, now_ms: i64) -> Result<ActivityAsk, BadQuery> {
        let at = |name: &'static str, v: &Option<String>| {
            v.as_deref().map(|s| parse_instant(s, now_ms).map_err(|e| BadQuery::Instant(name, e))).transpose()
        };
        let since_ms = at("since", &self.since)?;
        let until_ms = at("until", &self.until)?;
        if let (Some(s), Some(u)) = (since_ms, until_ms)
            && s > u
        {
            return Err(BadQuery::Backwards);
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(BadQuery::Limit);
        }
        Ok(ActivityAsk { params: self, since_ms, until_ms, limit })
    }
}

/// The activity query answered (the one function behind the CLI, the API and the dashboard).
pub fn activity_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    ask: &ActivityAsk,
) -> anyhow::Result<ActivityPage> {
    let p = &ask.params;
    let people = judged_people(store, policy)?;
    let named = p.user.as_deref().map(|u| Named::resolve(u, policy, &people));
    let mut filter = ActivityFilter {
        connector: p.connector.clone(),
        since_ms: ask.since_ms,
        until_ms: ask.until_ms,
        ..Default::default()
    };
    filter.os_users = named.as_ref().map(|n| match n {
        Named::Person(person) => policy.accounts_of(person),
        Named::Account(a, _) => vec![a.clone()],
    });
    if let Some(d) = &p.device {
        filter.device_ids = Some(device_ids(store, d)?);
    }
    let (found, total) = match &named {
        // An account named like a person's may be someone else's: their sessions are read
        // whole and kept only where they attribute to them (one person's use is bounded).
        Some(Named::Person(person)) => {
            let mut found = store.activity(&filter)?;
            found.retain(|s| {
                s.os_user.as_deref().is_some_and(|u| {
                    policy.attribute_among(&people, u).person.is_some_and(|q| q.id == person.id)
                })
            });
            let total = found.len() as u64;
            found.truncate(ask.limit);
            (found, total)
        }
        // Otherwise the store pages and counts.
        _ => {
            let total = store.activity_count(&filter)?;
            filter.limit = Some(ask.limit);
            (store.activity(&filter)?, total)
        }
    };
    Ok(ActivityPage {
        query: ActivityQuery {
            connector: p.connector.clone(),
            device: p.device.clone(),
            since: ask.since_ms.map(time),
            until: ask.until_ms.map(time),
            user: p.user.clone(),
        },
        sessions: Answer::new(store, policy, &people).sessions(&found)?,
        total,
    })
}

/// Sessions active at `at_ms` (with [`TRIAGE_GRACE_MS`] either side) on these devices or
/// under these OS accounts, answered as an activity query would: triage's view.
pub fn active_at(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    device_ids: Option<Vec<String>>,
    os_users: Option<Vec<String>>,
    at_ms: i64,
) -> anyhow::Result<Vec<ActivitySession>> {
    // Saturating: `at_ms` may come from a forged record.
    let found = store.activity(&ActivityFilter {
        device_ids,
        os_users,
        since_ms: Some(at_ms.saturating_sub(TRIAGE_GRACE_MS)),
        until_ms: Some(at_ms.saturating_add(TRIAGE_GRACE_MS)),
        ..Default::default()
    })?;
    answered(store, policy, &found)
}

/// The session whose stored report is observation `seq` of `device_id`, answered as an
/// activity query would (the export's view); `None` when that report is not the stored one.
/// Looked up by the report itself, not by its times: the store may hold them clamped.
pub fn by_report(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    device_id: &str,
    seq: u64,
) -> anyhow::Result<Option<ActivitySession>> {
    let found = store.activity(&ActivityFilter {
        device_ids: Some(vec![device_id.to_owned()]),
        evidence_seq: Some(seq),
        ..Default::default()
    })?;
    Ok(answered(store, policy, &found)?.into_iter().next())
}

/// Stored sessions answered with the people who could be behind their accounts.
fn answered(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    found: &[ActivityRecord],
) -> anyhow::Result<Vec<ActivitySession>> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    // Triage reads through the people index: only who could be behind these accounts (all
    // of them where approvals by group judge the connectors).
    let people = if policy.approved.as_ref().is_some_and(|a| !a.groups.is_empty()) {
        People::new(store.people_all()?)
    } else {
        let mut keys: Vec<String> =
            found.iter().filter_map(|s| s.os_user.as_deref()).flat_map(|u| policy.keys_for(u)).collect();
        keys.sort();
        keys.dedup();
        People::new(store.people_by_keys(&keys)?)
    };
    Answer::new(store, policy, &people).sessions(found)
}

/// A device named by id, else every device of that hostname.
fn device_ids(store: &(impl DeviceStore + ?Sized), d: &str) -> anyhow::Result<Vec<String>> {
    if let Some(dev) = store.device(d)? {
        return Ok(vec![dev.id]);
    }
    Ok(store.devices()?.into_iter().filter(|x| x.hostname.eq_ignore_ascii_case(d)).map(|x| x.id).collect())
}

/// Stored sessions made into answers, reading each connector's register entry once.
struct Answer<'a, S: ?Sized> {
    store: &'a S,
    policy: &'a Policy,
    people: &'a People,
    now_ms: i64,
    status: HashMap<String, Option<String>>,
}

impl<'a, S: DeviceStore + ReadModel + ?Sized> Answer<'a, S> {
    fn new(store: &'a S, policy: &'a Policy, people: &'a People) -> Self {
        Answer { store, policy, people, now_ms: crate::clock::now_ms(), status: HashMap::new() }
    }

    fn sessions(&mut self, found: &[ActivityRecord]) -> anyhow::Result<Vec<ActivitySession>> {
        found.iter().map(|s| self.session(s)).collect()
    }

    /// A connector's status in the register now; None for one the register does not hold.
    fn status(&mut self, key: &str) -> anyhow::Result<Option<String>> {
        if let Some(s) = self.status.get(key) {
            return Ok(s.clone());
        }
        let s = self
            .store
            .connector(key)?
            .map(|c| self.policy.judge(&c, self.people, self.now_ms).status.to_owned());
        self.status.insert(key.to_owned(), s.clone());
        Ok(s)
    }

    fn session(&mut self, s: &ActivityRecord) -> anyhow::Result<ActivitySession> {
        let attribution = s.os_user.as_deref().map(|u| self.policy.attribute_among(self.people, u));
        let person = attribution.as_ref().and_then(|a| {
            a.person.as_ref().map(|p| ActivityPerson {
                attribution: a.confidence,
                deprovisioned: p.deprovisioned_at_ms.is_some_and(|t| t <= s.ended_at_ms),
                display_name: p.shown_name(),
                user_name: p.user_name.clone(),
            })
        });
        let os_session = match &s.os_user {
            Some(u) => self
                .store
                .sessions_at(Some(&s.device_id), s.started_at_ms)?
                .iter()
                .filter(|x| &x.os_user == u)
                .max_by_key(|x| x.started_at_ms)
                .map(SessionAt::from),
            None => None,
        };
        let account = s.account.as_ref().and_then(|a| {
            let account = a.get("account")?.as_str()?.to_owned();
            let owner = attribution.as_ref().and_then(|x| x.person.as_ref());
            Some(AuthorizedBy {
                class: self.policy.classify_account(&account, owner).as_str().to_owned(),
                org: a.get("org").and_then(|o| o.as_str()).map(str::to_owned),
                account,
            })
        });
        let mut connectors = Vec::with_capacity(s.connectors.len());
        for c in &s.connectors {
            connectors.push(ActivityConnector {
                status: if c.known { self.status(&c.key)? } else { None },
                key: c.key.clone(),
                kind: c.kind.clone(),
                known: c.known,
                label: c.label.clone(),
            });
        }
        Ok(ActivitySession {
            account,
            connectors,
            device_id: s.device_id.clone(),
            ended_at: time(s.ended_at_ms),
            evidence_seq: s.evidence_seq,
            format: s.format.clone(),
            hostname: s.hostname.clone(),
            mcp: s
                .mcp
                .iter()
                .map(|m| McpUse { calls: m.calls, server: m.server.clone(), tools: m.tools.clone() })
                .collect(),
            models: s.models.clone(),
            os_session,
            os_user: s.os_user.clone(),
            person,
            project: s.project.clone(),
            prompts: s.prompts,
            session_id: s.session_id.clone(),
            started_at: time(s.started_at_ms),
            tool: s.tool.clone(),
            tool_calls: s.tool_calls,
        })
    }
}

/// `activity` for people: one line per session, newest first.
pub fn render(page: &ActivityPage) -> String {
    let p = |s: &str| printable(s).into_owned();
    let mut rows = vec![vec![
        "STARTED".into(),
        "ENDED".into(),
        "TOOL".into(),
        "DEVICE".into(),
        "OS USER".into(),
        "PERSON".into(),
        "PROMPTS".into(),
        "CALLS".into(),
        "CONNECTORS".into(),
    ]];
    for s in &page.sessions {
        let person = match &s.person {
            Some(x) if x.deprovisioned => format!("{} (DEPROVISIONED)", p(&x.user_name)),
            Some(x) => format!("{} ({})", p(&x.user_name), x.attribution),
            None => "-".into(),
        };
        let connectors = s
            .connectors
            .iter()
            .map(|c| {
                let status = c.status.as_deref().map(|st| format!(" [{st}]")).unwrap_or_default();
                format!("{}{status}", p(&c.key))
            })
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            s.started_at.clone(),
            s.ended_at.clone(),
            p(&s.tool),
            p(s.hostname.as_deref().unwrap_or(&s.device_id)),
            p(s.os_user.as_deref().unwrap_or("-")),
            person,
            s.prompts.to_string(),
            s.tool_calls.to_string(),
            connectors,
        ]);
    }
    let mut out = table(&rows, page.sessions.is_empty().then_some("No AI activity matches."));
    if (page.sessions.len() as u64) < page.total {
        out += &format!("({} of {} sessions; --limit shows more)\n", page.sessions.len(), page.total);
    }
    out
}
