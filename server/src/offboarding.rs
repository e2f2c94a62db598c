//! Offboarding that acts. When the identity provider deactivates or deletes a person
//! (SCIM), the playbook in `policy.toml` (`[offboarding]`, see [`crate::policy`]) decides what
//! becomes of the connectors they own: reported only (the `orphaned_connector` finding, the
//! default), or revoked on every device once the grace period has passed — through
//! [`crate::revoke::revoke`], so each device gets a signed directive and its outcome is
//! tracked as for an admin's revocation. Connectors nobody owns follow `unowned_after`: an
//! `unowned_connector` finding once unowned that long, then (with `unowned_action =
//! "revoke"`) revoked `grace` later, which leaves an admin time to name an owner.
//!
//! The planner is a pure function of the connectors, the people, the policy, the playbook
//! events already recorded and the time ([`plan`]); [`run`] reads those, plans and acts. The
//! serving collector runs it from the directive poller (`serve --offboarding-interval`,
//! default a minute). It is idempotent across runs and replicas:
//!
//! - a connector already revoked is not revoked again; one revoked by the playbook whose
//!   `offboarding_revoked` event is missing (a crash between the two, or another replica
//!   in between) gets the event;
//! - an event is recorded at most once per trigger ([`RegisterStore::record_event_once`]),
//!   and a connector whose event exists is left alone: an admin who withdrew the playbook's
//!   revocation has the last word;
//! - MCP server entries cannot be revoked by agents: `offboarding_unsupported` is recorded
//!   once and the finding stays.
//!
//! The actor of everything the playbook does is [`ACTOR`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::clock::rfc3339 as time;
use crate::pki::Pki;
use crate::policy::{People, Playbook, PlaybookAction, Policy};
use crate::register::owner_of;
use crate::responses;
use crate::revoke::RevokeError;
use crate::store::{
    Connector, ConnectorEvent, DeviceStore, DirectiveStore, PeopleStore, Person, ReadModel, RegisterStore,
};

/// Who the playbook's revocations and events name.
pub const ACTOR: &str = "system:offboarding";

/// Why the playbook looks at a connector.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Its owner (SCIM id, userName) was deprovisioned at this instant.
    Offboarded { person_id: String, user_name: String, deprovisioned_at_ms: i64 },
    /// Nobody owns it, and it has been present since this instant.
    Unowned { since_ms: i64 },
}

impl Trigger {
    /// When the rule's clock started: events before it belong to an earlier story.
    pub fn since_ms(&self) -> i64 {
        match self {
            Trigger::Offboarded { deprovisioned_at_ms, .. } => *deprovisioned_at_ms,
            Trigger::Unowned { since_ms } => *since_ms,
        }
    }

    /// The events the playbook records for this trigger: (revoked, unsupported).
    pub fn events(&self) -> (&'static str, &'static str) {
        match self {
            Trigger::Offboarded { .. } => ("offboarding_revoked", "offboarding_unsupported"),
            Trigger::Unowned { .. } => ("unowned_revoked", "unowned_unsupported"),
        }
    }
}

/// Where the playbook stands on one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// To be revoked at this instant (now, if it has passed).
    RevokeAt(i64),
    /// The playbook revoked it at this instant.
    Revoked(i64),
    /// Someone else revoked it: nothing left for the playbook.
    RevokedBy(String),
    /// Reported only, for this reason.
    Report(String),
    /// The agents cannot revoke it (an MCP server entry): reported only, for this reason.
    Unsupported(String),
    /// On no device any more: nothing to revoke.
    Gone,
}

impl Step {
    /// What a finding's `playbook` evidence says.
    pub fn describe(&self) -> String {
        match self {
            Step::RevokeAt(t) => format!("revoke at {}", time(*t)),
            Step::Revoked(t) => format!("revoked at {}", time(*t)),
            Step::RevokedBy(who) => format!("revoked by {who}"),
            Step::Report(why) | Step::Unsupported(why) => format!("report only: {why}"),
            Step::Gone => "gone from every device".into(),
        }
    }
}

/// The playbook's view of one connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub key: String,
    pub trigger: Trigger,
    pub step: Step,
    /// When the playbook revokes, if its rule says revoke (the deadline, even once past).
    pub revoke_at_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What the playbook makes of `c` at `now_ms`; None when it has no business with it (the
/// owner is still here, it is shared, or unowned for less than `unowned_after`).
pub fn assess(
    c: &Connector,
    policy: &Policy,
    playbook: &Playbook,
    people: &People,
    now_ms: i64,
) -> Option<Assessment> {
    let owner = owner_of(c, policy, people);
    let present_since = c.devices.iter().filter(|d| d.present).map(|d| d.first_seen_ms).min();
    let (trigger, action, wait) = match (&owner.person, owner.source) {
        (Some(p), _) => {
            let at = p.deprovisioned_at_ms?;
            (
                Trigger::Offboarded {
                    person_id: p.id.clone(),
                    user_name: p.user_name.clone(),
                    deprovisioned_at_ms: at,
                },
                playbook.action,
                playbook.grace,
            )
        }
        // Shared: its people are known; the shared-credential finding asks for an owner.
        (None, "unknown") => {
            let rule = playbook.unowned?;
            let since = present_since?;
            if now_ms < since.saturating_add(ms(rule.after)) {
                return None;
            }
            (Trigger::Unowned { since_ms: since }, rule.action, rule.after.saturating_add(playbook.grace))
        }
        _ => return None,
    };
    let revoke_at_ms = trigger.since_ms().saturating_add(ms(wait));
    let step = match &c.revocation {
        Some(r) if r.revocation.requested_by == ACTOR => Step::Revoked(r.revocation.requested_at_ms),
        Some(r) => Step::RevokedBy(r.revocation.requested_by.clone()),
        None if present_since.is_none() => Step::Gone,
        None if action == PlaybookAction::Report => Step::Report(match trigger {
            Trigger::Offboarded { .. } => "[offboarding] action is \"report\"".into(),
            Trigger::Unowned { .. } => "[offboarding] unowned_action is \"report\"".into(),
        }),
        None if !playbook.covers(&c.kind) => {
            Step::Report(format!("{} is not among [offboarding] kinds", c.kind))
        }
        None => match crate::revoke::action_for(c) {
            Ok(_) => Step::RevokeAt(revoke_at_ms),
            Err(e) => Step::Unsupported(e.to_string()),
        },
    };
    Some(Assessment { key: c.key.clone(), trigger, step, revoke_at_ms })
}

/// What a finding about `person`'s connector `c` says the playbook will do.
pub fn playbook_for(
    c: &Connector,
    person: &Person,
    policy: &Policy,
    playbook: &Playbook,
    people: &People,
    now_ms: i64,
) -> String {
    if let Some(a) = assess(c, policy, playbook, people, now_ms)
        && matches!(&a.trigger, Trigger::Offboarded { person_id, .. } if *person_id == person.id)
    {
        return a.step.describe();
    }
    let owner = owner_of(c, policy, people);
    match (&owner.person, owner.source) {
        (Some(p), source) => format!("report only: {} owns it ({source})", p.user_name),
        (None, "shared") => "report only: several people hold it; name an owner".into(),
        _ => "report only: nobody owns it".into(),
    }
}

/// One step the playbook takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub key: String,
    pub trigger: Trigger,
    pub kind: ActionKind,
    pub revoke_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// Revoke it, then record the revoked event.
    Revoke,
    /// The playbook revoked it but its event is missing: record it.
    RecordRevoked,
    /// The agents cannot revoke it: record that, once.
    RecordUnsupported(String),
}

/// The playbook's steps at `now_ms`. `events` holds the stored events of connectors (a
/// connector missing from it has none): a step whose event is already recorded for this
/// trigger is not taken again. Planning with no events gives every step that might be due,
/// which says whose events to read.
pub fn plan(
    connectors: &[Connector],
    policy: &Policy,
    playbook: &Playbook,
    people: &People,
    events: &HashMap<String, Vec<ConnectorEvent>>,
    now_ms: i64,
) -> Vec<Action> {
    let mut out = Vec::new();
    for c in connectors {
        let Some(a) = assess(c, policy, playbook, people, now_ms) else { continue };
        let (revoked, unsupported) = a.trigger.events();
        let since = a.trigger.since_ms();
        let recorded = |name: &str| {
            events.get(&a.key).is_some_and(|es| es.iter().any(|e| e.event == name && e.at_ms >= since))
        };
        let due = a.revoke_at_ms <= now_ms;
        let kind = match &a.step {
            Step::RevokeAt(_) if due && !recorded(revoked) => ActionKind::Revoke,
            Step::Revoked(_) if !recorded(revoked) => ActionKind::RecordRevoked,
            Step::Unsupported(why) if due && !recorded(unsupported) => {
                ActionKind::RecordUnsupported(why.clone())
            }
            _ => continue,
        };
        out.push(Action { key: a.key, trigger: a.trigger, kind, revoke_at_ms: a.revoke_at_ms });
    }
    out
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Action {
    /// Why, as the revocation and the directives to the devices say.
    fn reason(&self, playbook: &Playbook) -> String {
        match &self.trigger {
            Trigger::Offboarded { user_name, deprovisioned_at_ms, .. } => format!(
                "offboarding: {} was deprovisioned at {}; the playbook revokes their connectors after {}",
                user_name,
                time(*deprovisioned_at_ms),
                human(playbook.grace)
            ),
            Trigger::Unowned { since_ms } => format!(
                "offboarding: nobody has owned it since {}; the playbook revokes unowned connectors after {} and {} more",
                time(*since_ms),
                playbook.unowned.map(|u| human(u.after)).unwrap_or_default(),
                human(playbook.grace)
            ),
        }
    }

    fn detail(&self, playbook: &Playbook) -> serde_json::Value {
        match &self.trigger {
            Trigger::Offboarded { user_name, deprovisioned_at_ms, .. } => json!({
                "person": user_name, "deprovisioned_at": time(*deprovisioned_at_ms),
                "grace": human(playbook.grace),
            }),
            Trigger::Unowned { since_ms } => json!({
                "unowned_since": time(*since_ms), "grace": human(playbook.grace),
                "unowned_after": playbook.unowned.map(|u| human(u.after)),
            }),
        }
    }

    fn event(
        &self,
        name: &str,
        reason: Option<&str>,
        detail: serde_json::Value,
        now_ms: i64,
    ) -> ConnectorEvent {
        ConnectorEvent::new(&self.key, now_ms, name, ACTOR, reason).with_detail(detail)
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ran {
    /// Connectors revoked now.
    pub revoked: Vec<String>,
    /// Events recorded.
    pub recorded: usize,
}

/// Runs the playbook once: plans from the store and acts. With no rule that revokes it reads
/// nothing (report-only playbooks live in the findings).
pub fn run(
    store: &(impl ReadModel + DirectiveStore + RegisterStore + PeopleStore + ?Sized),
    pki: &Pki,
    policy: &Policy,
    now_ms: i64,
) -> anyhow::Result<Ran> {
    let playbook = policy.playbook()?;
    let mut ran = Ran::default();
    if !playbook.acts() {
        return Ok(ran);
    }
    let people = People::new(store.people_all()?);
    let unowned_acts = playbook.unowned.is_some_and(|u| u.action == PlaybookAction::Revoke);
    if !unowned_acts && !people.all().iter().any(|p| p.deprovisioned_at_ms.is_some()) {
        return Ok(ran);
    }
    let connectors = store.connector_summaries()?;
    let maybe = plan(&connectors, policy, &playbook, &people, &HashMap::new(), now_ms);
    let mut events = HashMap::new();
    for a in &maybe {
        if !events.contains_key(&a.key) {
            events.insert(a.key.clone(), store.connector_events(&a.key)?);
        }
    }
    for a in plan(&connectors, policy, &playbook, &people, &events, now_ms) {
        let (revoked, unsupported) = a.trigger.events();
        let since = a.trigger.since_ms();
        let reason = a.reason(&playbook);
        let event = match &a.kind {
            ActionKind::Revoke => match crate::revoke::revoke(store, pki, &a.key, ACTOR, &reason, now_ms) {
                Ok(issued) => {
                    tracing::info!(connector = %a.key, devices = issued.directives.len(), %reason, "Offboarding playbook revoked a connector.");
                    ran.revoked.push(a.key.clone());
                    let mut detail = a.detail(&playbook);
                    detail["directives"] = json!(issued.directives.len());
                    a.event(revoked, Some(&reason), detail, now_ms)
                }
                Err(RevokeError::Unsupported(why)) => {
                    let mut detail = a.detail(&playbook);
                    detail["why"] = json!(why);
                    a.event(unsupported, Some(&reason), detail, now_ms)
                }
                // Forgotten between the read and now (retention): nothing to revoke.
                Err(RevokeError::UnknownConnector(_)) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("offboarding: revoking {}", a.key)));
                }
            },
            ActionKind::RecordRevoked => a.event(revoked, Some(&reason), a.detail(&playbook), now_ms),
            ActionKind::RecordUnsupported(why) => {
                let mut detail = a.detail(&playbook);
                detail["why"] = json!(why);
                a.event(unsupported, Some(&reason), detail, now_ms)
            }
        };
        if store.record_event_once(&event, since)? {
            ran.recorded += 1;
        }
    }
    Ok(ran)
}

/// Where the playbook stands: every deprovisioned person with the connectors they own, and
/// the connectors nobody has owned for `unowned_after`, each with what the playbook does,
/// its latest recorded step and each device's revocation outcome.
pub fn status(
    store: &(impl ReadModel + PeopleStore + RegisterStore + DeviceStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
) -> anyhow::Result<responses::OffboardingStatus> {
    let playbook = policy.playbook()?;
    let people = People::new(store.people_all()?);
    // Every device a connector was ever on, so what the playbook already took away shows.
    let connectors = store.connectors()?;
    let devices = store.devices()?;
    let hostnames: HashMap<&str, &str> =
        devices.iter().map(|d| (d.id.as_str(), d.hostname.as_str())).collect();
    let mut assessed = Vec::new();
    for c in &connectors {
        if let Some(a) = assess(c, policy, &playbook, &people, now_ms) {
            assessed.push((c, a));
        }
    }
    let view = |c: &Connector, a: &Assessment| -> anyhow::Result<responses::PlaybookConnector> {
        let (revoked, unsupported) = a.trigger.events();
        let since = a.trigger.since_ms();
        let taken = store
            .connector_events(&c.key)?
            .into_iter()
            .rfind(|e| (e.event == revoked || e.event == unsupported) && e.at_ms >= since)
            .map(|e| responses::LifecycleEvent {
                actor: e.actor,
                at: time(e.at_ms),
                at_ms: e.at_ms,
                detail: e.detail,
                event: e.event,
                reason: e.reason,
            });
        let revokes = matches!(a.step, Step::RevokeAt(_) | Step::Revoked(_));
        Ok(responses::PlaybookConnector {
            action_taken: taken,
            display_name: crate::catalog::display_name(&c.kind, &c.label),
            key: c.key.clone(),
            kind: c.kind.clone(),
            playbook: a.step.describe(),
            present_on: c.devices.iter().filter(|d| d.present).count(),
            revoke_at: revokes.then(|| time(a.revoke_at_ms)),
            revocation: c.revocation.as_ref().map(|r| responses::RevocationStatus::new(r, &hostnames)),
            status: policy.judge(c, &people, now_ms).status,
        })
    };
    let mut gone: Vec<&Person> = people.all().iter().filter(|p| p.deprovisioned_at_ms.is_some()).collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.deprovisioned_at_ms));
    let mut out_people = Vec::new();
    for p in gone {
        let at = p.deprovisioned_at_ms.unwrap_or_default();
        let mut list = Vec::new();
        for (c, a) in &assessed {
            if matches!(&a.trigger, Trigger::Offboarded { person_id, .. } if *person_id == p.id) {
                list.push(view(c, a)?);
            }
        }
        out_people.push(responses::OffboardedPerson {
            connectors: list,
            deleted: p.deleted_at_ms.is_some(),
            deprovisioned_at: time(at),
            display_name: p.shown_name(),
            grace_until: time(at.saturating_add(ms(playbook.grace))),
            user_name: p.user_name.clone(),
        });
    }
    let mut unowned = Vec::new();
    for (c, a) in &assessed {
        if matches!(a.trigger, Trigger::Unowned { .. }) {
            unowned.push(view(c, a)?);
        }
    }
    Ok(responses::OffboardingStatus {
        action: playbook.action.as_str(),
        at: time(now_ms),
        grace: human(playbook.grace),
        kinds: playbook.kinds.clone(),
        people: out_people,
        unowned,
        unowned_action: playbook.unowned.map(|u| u.action.as_str()),
        unowned_after: playbook.unowned.map(|u| human(u.after)),
    })
}

#[cfg(test)]
mod tests;
