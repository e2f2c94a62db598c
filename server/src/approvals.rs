//! Approvals as a workflow: an owner (through an `owner` API token) or an admin on their
//! behalf asks for a connector to be approved, with a reason and how long it is wanted for;
//! an admin approves (optionally until a time) or denies, with a reason; the requester or an
//! admin withdraws. Each step is one [`ConnectorEvent`] (`approval_requested`, `approved`,
//! `denied`, `approval_withdrawn`) carrying the request id, written in the same transaction
//! as the change. An approval from a request is the connector's standing decision (so it wins
//! over policy.toml while in force, and lapses by itself at read time); the directive
//! poller's sweep records `approval_expired` once per lapse.

use crate::policy::{People, Policy};
use crate::register::Named;
use crate::responses;
use crate::store::{
    ApprovalRequest, ApprovalStore, ConnectorEvent, Decision, DecisionChange, PeopleStore, Person, ReadModel,
    Settlement,
};

/// Why a step was refused (the register's one refusal type).
pub type ApprovalError = crate::register::Refused;

/// Who acts.
#[derive(Debug, Clone)]
pub enum Actor {
    /// An admin (`admin:token:NAME`, `admin:sso:ADDRESS`) or the command line (`cli:USER`).
    Admin(String),
    /// A person acting for themselves through an owner token (boxed: a person is large).
    Owner(Box<Person>),
}

impl Actor {
    /// As the event log records it.
    pub fn name(&self) -> String {
        match self {
            Actor::Admin(who) => who.clone(),
            Actor::Owner(p) => format!("person:{}", p.user_name),
        }
    }
}

type Result<T> = std::result::Result<T, ApprovalError>;

/// The store roles the workflow uses.
pub trait ApprovalsStore: ApprovalStore + ReadModel + PeopleStore {}
impl<T: ApprovalStore + ReadModel + PeopleStore + ?Sized> ApprovalsStore for T {}

fn reason_given(reason: Option<&str>) -> Result<&str> {
    reason.map(str::trim).filter(|r| !r.is_empty()).ok_or_else(|| {
        ApprovalError::Invalid("say why (reason): every approval step is an audit record".into())
    })
}

/// Whether `p` owns `key` or has it under one of their accounts: what an owner token may see
/// and ask about.
pub fn concerns(
    store: &(impl ReadModel + PeopleStore + ?Sized),
    policy: &Policy,
    p: &Person,
    key: &str,
) -> Result<bool> {
    let Some(c) = store.connector(key)? else { return Ok(false) };
    let people = People::new(store.people_all()?);
    let named = Named::Person(p.clone());
    Ok(named.owns(&c, policy, &people) || named.holds(&c, policy, &people))
}

/// Asks for `key` to be approved for a person: an owner for themselves, an admin for
/// `on_behalf_of` (userName or e-mail). The person must own or hold the connector.
#[allow(clippy::too_many_arguments)]
pub fn request(
    store: &(impl ApprovalsStore + ?Sized),
    policy: &Policy,
    key: &str,
    actor: &Actor,
    on_behalf_of: Option<&str>,
    reason: Option<&str>,
    duration_ms: Option<i64>,
    now_ms: i64,
) -> Result<ApprovalRequest> {
    if store.connector(key)?.is_none() {
        return Err(ApprovalError::NotFound(format!("no connector {key} has been reported")));
    }
    let reason = reason_given(reason)?;
    let person = match (actor, on_behalf_of) {
        (Actor::Owner(p), None) => (**p).clone(),
        (Actor::Owner(p), Some(name)) if People::new(vec![(**p).clone()]).named(name).is_some() => {
            (**p).clone()
        }
        (Actor::Owner(_), Some(name)) => {
            return Err(ApprovalError::Forbidden(format!(
                "an owner token asks for its own person only, not {name:?}"
            )));
        }
        (Actor::Admin(_), None) => {
            return Err(ApprovalError::Invalid(
                "name the person the approval is for (on_behalf_of / --for)".into(),
            ));
        }
        (Actor::Admin(_), Some(name)) => {
            People::new(store.people_all()?).named(name).cloned().ok_or_else(|| {
                ApprovalError::Invalid(format!("no person is provisioned with userName or e-mail {name:?}"))
            })?
        }
    };
    if person.deprovisioned_at_ms.is_some() {
        return Err(ApprovalError::Invalid(format!("{} is deprovisioned", person.user_name)));
    }
    if !concerns(store, policy, &person, key)? {
        let m = format!("{} neither owns {key} nor has it under one of their accounts", person.user_name);
        return Err(match actor {
            Actor::Owner(_) => ApprovalError::Forbidden(m),
            Actor::Admin(_) => ApprovalError::Invalid(m),
        });
    }
    let r = ApprovalRequest {
        id: 0,
        connector_key: key.to_owned(),
        requested_by: actor.name(),
        on_behalf_of: person.id.clone(),
        reason: reason.to_owned(),
        duration_ms,
        requested_at_ms: now_ms,
        state: "open".into(),
        decided_by: None,
        decided_at_ms: None,
        decision_reason: None,
    };
    let duration = duration_ms.map(|ms| {
        humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs())).to_string()
    });
    let e = ConnectorEvent::new(key, now_ms, "approval_requested", &actor.name(), Some(reason))
        .with_detail(serde_json::json!({ "on_behalf_of": person.user_name, "duration": duration }));
    let Some(id) = store.open_request(&r, &e)? else {
        return Err(ApprovalError::Conflict(format!("{key} already has an open approval request")));
    };
    Ok(ApprovalRequest { id, ..r })
}

/// The open request `id`, or why not.
fn open(store: &(impl ApprovalStore + ?Sized), id: i64, step: &str) -> Result<ApprovalRequest> {
    let r = store
        .approval_request(id)?
        .ok_or_else(|| ApprovalError::NotFound(format!("no approval request {id}")))?;
    if r.state != "open" {
        return Err(ApprovalError::Conflict(format!(
            "request {id} is {}: only an open request can be {step}",
            r.state
        )));
    }
    Ok(r)
}

/// Closes `r` (in state `from`) as `state`, or a conflict when someone closed it first.
fn settle(
    store: &(impl ApprovalStore + ?Sized),
    r: &ApprovalRequest,
    s: Settlement<'_>,
    decision: DecisionChange<'_>,
    e: &ConnectorEvent,
) -> Result<ApprovalRequest> {
    if !store.settle_request(r.id, &s, decision, e)? {
        return Err(ApprovalError::Conflict(format!(
            "request {} was closed by someone else meanwhile",
            r.id
        )));
    }
    store
        .approval_request(r.id)?
        .ok_or_else(|| ApprovalError::NotFound(format!("no approval request {}", r.id)))
}

/// Approves the open request `id` (an admin): the connector is `approved` until
/// `expires_in_ms` from now, else for the duration the request asked for, else until withdrawn.
pub fn approve(
    store: &(impl ApprovalsStore + ?Sized),
    id: i64,
    actor: &str,
    reason: Option<&str>,
    expires_in_ms: Option<i64>,
    now_ms: i64,
) -> Result<ApprovalRequest> {
    let r = open(store, id, "approved")?;
    let reason = reason_given(reason)?;
    let expires_at_ms = expires_in_ms.or(r.duration_ms).map(|d| now_ms.saturating_add(d));
    let d = Decision {
        status: "approved".into(),
        by: actor.to_owned(),
        at_ms: now_ms,
        reason: Some(reason.to_owned()),
        expires_at_ms,
    };
    let e = ConnectorEvent::new(&r.connector_key, now_ms, "approved", actor, Some(reason))
        .with_detail(serde_json::json!({ "expires_at": expires_at_ms.map(crate::clock::rfc3339) }));
    let s = Settlement { from: "open", state: "approved", by: actor, at_ms: now_ms, reason: Some(reason) };
    settle(store, &r, s, DecisionChange::Set(&d), &e)
}

/// Denies the open request `id` (an admin): the connector is `unsanctioned` by decision.
pub fn deny(
    store: &(impl ApprovalsStore + ?Sized),
    id: i64,
    actor: &str,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<ApprovalRequest> {
    let r = open(store, id, "denied")?;
    let reason = reason_given(reason)?;
    let d = Decision {
        status: "unsanctioned".into(),
        by: actor.to_owned(),
        at_ms: now_ms,
        reason: Some(reason.to_owned()),
        expires_at_ms: None,
    };
    let e = ConnectorEvent::new(&r.connector_key, now_ms, "denied", actor, Some(reason));
    let s = Settlement { from: "open", state: "denied", by: actor, at_ms: now_ms, reason: Some(reason) };
    settle(store, &r, s, DecisionChange::Set(&d), &e)
}

/// Withdraws request `id`: an open one (nothing was decided), or an approved one whose
/// approval is still in force (the decision is dropped: policy.toml decides again). The
/// person it is for, its requester, or an admin may.
pub fn withdraw(
    store: &(impl ApprovalsStore + ?Sized),
    id: i64,
    actor: &Actor,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<ApprovalRequest> {
    let r = store
        .approval_request(id)?
        .ok_or_else(|| ApprovalError::NotFound(format!("no approval request {id}")))?;
    if let Actor::Owner(p) = actor
        && r.on_behalf_of != p.id
        && r.requested_by != actor.name()
    {
        return Err(ApprovalError::Forbidden(format!("request {id} is not {}'s", p.user_name)));
    }
    let who = actor.name();
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let decision = match r.state.as_str() {
        "open" => DecisionChange::Keep,
        "approved" => {
            let (Some(by), Some(at_ms)) = (r.decided_by.as_deref(), r.decided_at_ms) else {
                return Err(ApprovalError::Conflict(format!("request {id} has no decision to withdraw")));
            };
            let standing = store.connector(&r.connector_key)?.and_then(|c| c.decision);
            match standing {
                Some(d) if d.by == by && d.at_ms == at_ms && d.in_force(now_ms) => {}
                _ => {
                    return Err(ApprovalError::Conflict(format!(
                        "the approval from request {id} no longer stands (lapsed or replaced)"
                    )));
                }
            }
            DecisionChange::ClearIf { by, at_ms }
        }
        other => {
            return Err(ApprovalError::Conflict(format!(
                "request {id} is {other}: there is nothing to withdraw"
            )));
        }
    };
    let e = ConnectorEvent::new(&r.connector_key, now_ms, "approval_withdrawn", &who, reason)
        .with_detail(serde_json::json!({ "was": r.state }));
    let s = Settlement { from: &r.state, state: "withdrawn", by: &who, at_ms: now_ms, reason };
    settle(store, &r, s, decision, &e)
}

/// Requests as shown, newest first: in `state` if given, and only `person`'s when given.
pub fn list(
    store: &(impl ApprovalsStore + ?Sized),
    state: Option<&str>,
    person: Option<&Person>,
) -> Result<Vec<responses::ApprovalRequest>> {
    if let Some(s) = state
        && !["open", "approved", "denied", "withdrawn"].contains(&s)
    {
        return Err(ApprovalError::Invalid(format!("state {s:?}: use open, approved, denied or withdrawn")));
    }
    let people = People::new(store.people_all()?);
    let rows = store.approval_requests(state, person.map(|p| p.id.as_str()))?;
    Ok(rows.iter().map(|r| shown(r, &people)).collect())
}

/// `r` as the responses show it.
pub fn shown(r: &ApprovalRequest, people: &People) -> responses::ApprovalRequest {
    responses::ApprovalRequest::new(r, people.by_id(&r.on_behalf_of).map(|p| p.user_name.as_str()))
}

/// One request as shown.
pub fn view(
    store: &(impl ApprovalsStore + ?Sized),
    r: &ApprovalRequest,
) -> Result<responses::ApprovalRequest> {
    Ok(shown(r, &People::new(store.people_all()?)))
}

/// A table of requests for the terminal.
pub fn render(rows: &[responses::ApprovalRequest]) -> String {
    if rows.is_empty() {
        return "no approval requests\n".into();
    }
    let mut out = format!(
        "{:<6} {:<10} {:<40} {:<20} {:<24} {}\n",
        "ID", "STATE", "CONNECTOR", "FOR", "REQUESTED BY", "REASON"
    );
    for r in rows {
        out += &format!(
            "{:<6} {:<10} {:<40} {:<20} {:<24} {}\n",
            r.id, r.state, r.connector, r.on_behalf_of, r.requested_by, r.reason
        );
    }
    out
}

/// The audit log for the terminal, oldest first.
pub fn render_audit(rows: &[responses::AuditEvent]) -> String {
    if rows.is_empty() {
        return "no audit events\n".into();
    }
    let mut out = String::new();
    for e in rows {
        let reason = e.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default();
        out += &format!("{:>6} {} {:<20} {:<40} {}{reason}\n", e.seq, e.at, e.event, e.connector, e.actor);
    }
    out
}
