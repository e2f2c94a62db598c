//! The connector register: for every AI access path, who answers for it (owner), where it
//! came from (origin), its approval and the way out (revocation method), and its lifecycle
//! history — the questions an identity team asks of a service account.
//!
//! The owner is the person an admin assigned (with a reason, kept in the history), else the
//! one person attribution finds behind every account the connector is present under (all
//! accounts it was ever under, once it is gone everywhere). Two people behind one connector
//! is a shared credential, and a holder attribution cannot name (an unmapped account, a
//! machine-wide install) could be anyone: either way it has no owner until an admin names
//! one. Every change is a
//! [`ConnectorEvent`], written in the same transaction as the change.

use anyhow::Context;

use crate::clock::rfc3339 as time;
use crate::policy::{People, Policy};
use crate::responses;
use crate::store::{
    Connector, ConnectorEvent, Decision, OwnerAssignment, PeopleStore, Person, Presence, ReadModel,
    RegisterStore,
};

/// Why a register workflow step (an approval, a review) was refused; the HTTP edge maps
/// each kind to one status.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No such connector, request, campaign or person (404).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this: an owner or reviewer acting on what is not theirs (403).
    #[error("{0}")]
    Forbidden(String),
    /// Not in a state that allows it: already answered, already open (409).
    #[error("{0}")]
    Conflict(String),
    /// A missing reason, a malformed scope or duration, a person who cannot be named (400).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Who answers for a connector, and why.
#[derive(Debug, Clone)]
pub struct OwnerOf {
    pub person: Option<Person>,
    /// `assigned` (an admin named them), `attributed` (from the accounts it is under),
    /// `shared` (several people: nobody until an admin names one) or `unknown`.
    pub source: &'static str,
    /// For an attributed owner, the weakest attribution among the accounts: `exact` or
    /// `inferred`; `unknown` otherwise.
    pub attribution: &'static str,
}

/// The owner of `c` among `people`.
pub fn owner_of(c: &Connector, policy: &Policy, people: &People) -> OwnerOf {
    if let Some(a) = &c.owner {
        return OwnerOf {
            person: people.by_id(&a.person_id).cloned(),
            source: "assigned",
            attribution: "exact",
        };
    }
    let present = c.devices.iter().any(|d| d.present);
    let mut found: Option<(Person, &'static str)> = None;
    for d in c.devices.iter().filter(|d| d.present || !present) {
        // A holder nobody is attributed to (or no account at all: a machine-wide install)
        // could be anyone: the owner is not guessed past it.
        let Some(p) = d.user.as_deref().and_then(|u| {
            let a = policy.attribute_among(people, u);
            a.person.map(|p| (p, a.confidence))
        }) else {
            return OwnerOf { person: None, source: "unknown", attribution: "unknown" };
        };
        match &mut found {
            None => found = Some(p),
            Some((q, _)) if q.id != p.0.id => {
                return OwnerOf { person: None, source: "shared", attribution: "unknown" };
            }
            Some((_, conf)) => {
                if p.1 == "inferred" {
                    *conf = "inferred";
                }
            }
        }
    }
    match found {
        Some((p, conf)) => OwnerOf { person: Some(p), source: "attributed", attribution: conf },
        None => OwnerOf { person: None, source: "unknown", attribution: "unknown" },
    }
}

/// `o` as the responses show it.
pub fn owner_json(o: &OwnerOf, c: &Connector) -> Option<responses::ConnectorOwner> {
    let p = o.person.as_ref()?;
    Some(responses::ConnectorOwner {
        active: p.deprovisioned_at_ms.is_none(),
        attribution: o.attribution,
        display_name: p.shown_name(),
        reason: c.owner.as_ref().map(|a| a.reason.clone()),
        source: o.source,
        user_name: p.user_name.clone(),
    })
}

/// Whom a person-or-account filter (`--user`, `--owner`) names.
#[derive(Debug, Clone)]
pub enum Named {
    /// A person, by userName or e-mail.
    Person(Person),
    /// An OS account (and the person it is attributed to, if any).
    Account(String, Option<Person>),
}

impl Named {
    pub fn resolve(name: &str, policy: &Policy, people: &People) -> Named {
        match people.named(name) {
            Some(p) => Named::Person(p.clone()),
            None => Named::Account(name.to_owned(), policy.attribute_among(people, name).person),
        }
    }

    /// The person meant, if any.
    pub fn person(&self) -> Option<&Person> {
        match self {
            Named::Person(p) => Some(p),
            Named::Account(_, p) => p.as_ref(),
        }
    }

    /// Whether `c` was seen under an account this names: the account itself, or any account
    /// attributed to the person.
    pub fn holds(&self, c: &Connector, policy: &Policy, people: &People) -> bool {
        c.devices.iter().filter_map(|d| d.user.as_deref()).any(|u| match self {
            Named::Account(a, _) => u == a,
            Named::Person(p) => policy.attribute_among(people, u).person.is_some_and(|q| q.id == p.id),
        })
    }

    /// Whether the owner of `c` is the person this names (an account names the person it is
    /// attributed to; an account attributed to nobody owns what only it holds).
    pub fn owns(&self, c: &Connector, policy: &Policy, people: &People) -> bool {
        let o = owner_of(c, policy, people);
        match (self.person(), &o.person) {
            (Some(p), Some(q)) => p.id == q.id,
            (None, None) => {
                matches!(self, Named::Account(..)) && o.source == "unknown" && self.holds(c, policy, people)
            }
            _ => false,
        }
    }
}

/// Names an owner for `key` (a person by userName or e-mail), or clears the assignment
/// (`person` None: the attributed person owns it again). Returns false when the connector
/// is unknown; an unknown person or an empty reason is an error.
pub fn assign_owner(
    store: &(impl RegisterStore + ReadModel + PeopleStore + ?Sized),
    key: &str,
    person: Option<&str>,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> anyhow::Result<bool> {
    if store.connector(key)?.is_none() {
        return Ok(false);
    }
    let reason = reason.trim();
    anyhow::ensure!(!reason.is_empty(), "say why (--reason): the owner history is an audit record");
    let Some(name) = person else {
        let e = ConnectorEvent::new(key, now_ms, "owner_cleared", actor, Some(reason));
        store.set_owner(key, None, &e)?;
        return Ok(true);
    };
    let people = People::new(store.people_all()?);
    let p = people
        .named(name)
        .with_context(|| format!("no person is provisioned with userName or e-mail {name:?}"))?;
    anyhow::ensure!(
        p.deprovisioned_at_ms.is_none(),
        "{} is deprovisioned: name someone still here",
        p.user_name
    );
    let a = OwnerAssignment {
        person_id: p.id.clone(),
        reason: reason.to_owned(),
        by: actor.to_owned(),
        at_ms: now_ms,
    };
    let e = ConnectorEvent::new(key, now_ms, "owner_assigned", actor, Some(reason))
        .with_detail(serde_json::json!({ "owner": p.user_name }));
    store.set_owner(key, Some(&a), &e)?;
    Ok(true)
}

/// Records a status decision (`approved` / `unsanctioned`, optionally lapsing at
/// `expires_at_ms`) or drops it (None: policy.toml decides again), as one audited event.
pub fn decide(
    store: &(impl RegisterStore + ?Sized),
    key: &str,
    status: Option<&str>,
    actor: &str,
    reason: Option<&str>,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> anyhow::Result<()> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let (d, event) = match status {
        Some(s @ ("approved" | "unsanctioned")) => (
            Some(Decision {
                status: s.to_owned(),
                by: actor.to_owned(),
                at_ms: now_ms,
                reason: reason.map(str::to_owned),
                expires_at_ms,
            }),
            if s == "approved" { "approved" } else { "denied" },
        ),
        Some(other) => anyhow::bail!("status {other:?}: use approved or unsanctioned"),
        None => (None, "decision_withdrawn"),
    };
    let detail = match expires_at_ms {
        Some(t) => serde_json::json!({ "expires_at": time(t) }),
        None => serde_json::json!({}),
    };
    store.decide(
        key,
        d.as_ref(),
        &ConnectorEvent::new(key, now_ms, event, actor, reason).with_detail(detail),
    )?;
    Ok(())
}

/// Where a connector came from: its earliest presence interval.
pub fn origin(presence: &[Presence], hostname: impl Fn(&str) -> Option<String>) -> Option<responses::Origin> {
    let first = presence.iter().min_by_key(|p| (p.appeared_at_ms, p.appeared_seq))?;
    Some(responses::Origin {
        appeared_seq: first.appeared_seq,
        device_id: first.device_id.clone(),
        first_seen: time(first.appeared_at_ms),
        hostname: hostname(&first.device_id),
        os_user: first.os_user.clone(),
        place: first.locus.clone(),
    })
}

/// How to take the access path away: what the agents can do on the devices, and where the
/// credential itself must be revoked at its provider (the catalog's page for it).
pub fn revocation_method(c: &Connector) -> responses::RevocationMethod {
    let field = |k: &str| c.latest.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let (local, note) = match crate::revoke::action_for(c) {
        Ok((action, _)) => (Some(action.to_owned()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let provider = field("provider");
    let provider_page = match c.kind.as_str() {
        "token" => provider.as_deref().and_then(crate::catalog::revoke_page),
        _ => None,
    };
    let at_provider = match (c.kind.as_str(), &provider_page) {
        ("token", Some(_)) => {
            Some("revoke the credential at the provider: the agent can only remove the local copy".into())
        }
        ("token", None) => Some("revoke the credential at its provider (no page catalogued for it)".into()),
        _ => None,
    };
    responses::RevocationMethod { at_provider, local_action: local, note, provider, provider_page }
}

/// The lifecycle: discovered (its origin), then the stored events, then what presence and
/// revocation say (revoked, removed), oldest first.
pub fn history(
    c: &Connector,
    events: &[ConnectorEvent],
    origin: Option<&responses::Origin>,
    status: &str,
) -> Vec<responses::LifecycleEvent> {
    let mut out = vec![responses::LifecycleEvent {
        actor: "agent".into(),
        at: origin.map_or_else(|| time(c.first_seen_ms), |o| o.first_seen.clone()),
        at_ms: c.first_seen_ms,
        detail: serde_json::json!({
            "device_id": origin.map(|o| &o.device_id), "os_user": origin.and_then(|o| o.os_user.as_ref()),
            "seq": origin.map(|o| o.appeared_seq),
        }),
        event: "discovered".into(),
        reason: None,
    }];
    out.extend(events.iter().map(|e| responses::LifecycleEvent {
        actor: e.actor.clone(),
        at: time(e.at_ms),
        at_ms: e.at_ms,
        detail: e.detail.clone(),
        event: e.event.clone(),
        reason: e.reason.clone(),
    }));
    if let Some(r) = &c.revocation {
        out.push(responses::LifecycleEvent {
            actor: r.revocation.requested_by.clone(),
            at: time(r.revocation.requested_at_ms),
            at_ms: r.revocation.requested_at_ms,
            detail: serde_json::json!({ "enforced": status == "revoked" }),
            event: "revoked".into(),
            reason: Some(r.revocation.reason.clone()).filter(|s| !s.is_empty()),
        });
    }
    if status == "removed" {
        out.push(responses::LifecycleEvent {
            actor: "agent".into(),
            at: time(c.last_seen_ms),
            at_ms: c.last_seen_ms,
            detail: serde_json::json!({}),
            event: "removed".into(),
            reason: None,
        });
    }
    out.sort_by_key(|e| e.at_ms);
    out
}

#[cfg(test)]
mod tests;
