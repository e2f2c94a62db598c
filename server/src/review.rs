//! Recertification campaigns: every connector in a scope goes to the person who answers for
//! it, who keeps it (an approval, perhaps lapsing) or revokes it by a due date; what is left
//! unanswered then is revoked or escalated, as the campaign's rule says. The decisions go out
//! as a report signed by the collector, which an auditor verifies offline.
//!
//! - **Who reviews**: the connector's owner ([`crate::register::owner_of`]); when that person
//!   is deprovisioned, their SCIM manager (the first active one up the chain); with no owner
//!   (unknown or shared accounts) or no manager left, the admins' queue, where an admin
//!   answers on behalf (`review decide`). Escalation walks the same chain from the reviewer
//!   who let the date pass, and ends in the admins' queue, which the sweep then leaves alone.
//! - **How reviewers act**: a link `BASE/ui/review/#t=TOKEN` per reviewer, its token random,
//!   stored hashed, scoped to one campaign and one reviewer, and good until that reviewer's
//!   due date. The token is in the fragment, which browsers send neither to the server nor
//!   in a Referer, so it stays out of access logs; the page hands it to the API as a bearer.
//! - **Reminders** are an outbox, not an SMTP client: a message per reviewer when the
//!   campaign starts, when an item is escalated to them, and [`REMIND_BEFORE`] the due date
//!   (only to reviewers given their items longer ago than that). A mail system reads them
//!   (`GET /api/v1/review/reminders`) and acknowledges what it sent, which erases the text
//!   holding the token.
//! - **Every answer** (a reviewer's, an admin's, the sweep's) is a `reviewed` event in the
//!   connector's history, written in the same transaction as the answer, and takes effect
//!   through the register: keep → an approval by `review:ID:WHO` (expiring at `keep_until`);
//!   revoke → [`crate::revoke::revoke`] (a kind the agents cannot act on is denied instead).
//!   An escalation is a `review_escalated` event.
//!
//! The sweep ([`sweep`]) runs from the directive poller of every replica: each change is a
//! conditional write in the store, so two replicas never answer or escalate an item twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sightline_proto::envelope::REVIEW_REPORT_CONTEXT;

use crate::clock::rfc3339 as time;
use crate::pki::Pki;
use crate::policy::{People, Policy};
use crate::responses;
use crate::store::{
    Campaign, Connector, ConnectorEvent, DeviceStore, DirectiveStore, ItemDecision, PeopleStore, Person,
    ReadModel, RegisterStore, Reminder, ReviewItem, ReviewStore,
};

/// The second reminder goes out this long before an item's due date.
pub const REMIND_BEFORE: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long an escalated item's new reviewer has.
pub const ESCALATION_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far up the manager chain a reviewer is looked for (a cycle in SCIM data ends it too).
const MAX_CHAIN: usize = 8;
const REPORT_SCHEMA: &str = "sightline.review-report.v1";

/// What stops a review action (the register's one refusal type).
pub type ReviewError = crate::register::Refused;

/// Which connectors a campaign covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Connectors whose owner is a member of this SCIM group (displayName, any case).
    Group(String),
    /// Connectors of this kind (`token`, `tool`, `extension`, `mcp_server`).
    Kind(String),
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, ReviewError> {
        let bad = || ReviewError::Invalid(format!("scope {s:?}: use all, group:NAME or kind:KIND"));
        match s.split_once(':') {
            None if s == "all" => Ok(Scope::All),
            Some(("group", g)) if !g.trim().is_empty() => Ok(Scope::Group(g.trim().to_owned())),
            Some(("kind", k)) if !k.trim().is_empty() => Ok(Scope::Kind(k.trim().to_owned())),
            _ => Err(bad()),
        }
    }

    fn covers(&self, c: &Connector, owner: Option<&Person>) -> bool {
        match self {
            Scope::All => true,
            Scope::Kind(k) => c.kind == *k,
            Scope::Group(g) => {
                owner.is_some_and(|p| p.groups.iter().any(|r| r.display_name.eq_ignore_ascii_case(g)))
            }
        }
    }
}

/// What happens to an item nobody answered by its due date.
pub fn parse_rule(s: &str) -> Result<&'static str, ReviewError> {
    match s {
        "revoke" => Ok("revoke"),
        "escalate" => Ok("escalate"),
        other => Err(ReviewError::Invalid(format!("rule {other:?}: use revoke or escalate"))),
    }
}

/// Who a campaign asks: `owner` (each connector's owner; their manager once they are gone)
/// or `manager` (the owner's manager, as in a manager access review; the owner when they
/// have none).
pub fn parse_reviewers(s: &str) -> Result<&'static str, ReviewError> {
    match s {
        "owner" => Ok("owner"),
        "manager" => Ok("manager"),
        other => Err(ReviewError::Invalid(format!("reviewers {other:?}: use owner or manager"))),
    }
}

/// Who answers an item: a person and why, or the admins' queue (`None`, `admin`).
pub fn reviewer_for(
    owner: Option<&Person>,
    people: &People,
    reviewers: &str,
) -> (Option<Person>, &'static str) {
    match owner {
        Some(p) if p.deprovisioned_at_ms.is_none() => match manager_of(p, people) {
            Some(m) if reviewers == "manager" => (Some(m), "manager"),
            _ => (Some(p.clone()), "owner"),
        },
        Some(p) => match manager_of(p, people) {
            Some(m) => (Some(m), "manager"),
            None => (None, "admin"),
        },
        None => (None, "admin"),
    }
}

/// The first active manager above `p` (the chain stops at a cycle or after [`MAX_CHAIN`]).
pub fn manager_of(p: &Person, people: &People) -> Option<Person> {
    let mut seen = vec![p.id.clone()];
    let mut at = p;
    for _ in 0..MAX_CHAIN {
        let m = people.by_id(at.manager_id.as_deref()?)?;
        if seen.contains(&m.id) {
            return None;
        }
        if m.deprovisioned_at_ms.is_none() {
            return Some(m.clone());
        }
        seen.push(m.id.clone());
        at = m;
    }
    None
}

/// Where a reviewer's mail goes: the primary work address as the IdP sent it, else the first
/// address, else the userName when it is one.
fn address(p: &Person) -> Option<String> {
    let emails = &p.profile.emails;
    emails
        .iter()
        .find(|e| e.primary == Some(true))
        .or_else(|| emails.first())
        .map(|e| e.value.clone())
        .or_else(|| p.emails.first().cloned())
        .or_else(|| Some(p.user_name.clone()).filter(|u| u.contains('@')))
}

/// A new campaign id: short enough to type, random so replicas never collide.
fn new_id() -> anyhow::Result<String> {
    Ok(format!("rc-{}", hex::encode(crate::tokens::random(5)?)))
}

/// A new review token and its stored hash.
fn new_token() -> anyhow::Result<(String, Vec<u8>)> {
    let raw = crate::tokens::random(32)?;
    let token = format!("slrev_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let hash = crate::tokens::hash(&token);
    Ok((token, hash))
}

/// The link a reviewer opens: the token in the fragment, never sent to a server.
fn link(base: &str, token: &str) -> String {
    format!("{}/ui/review/#t={token}", base.trim_end_matches('/'))
}

/// Queues a reminder for `person` with a fresh link; false when one of this kind for this
/// due date is queued already (or the person has no address).
fn remind(
    store: &(impl ReviewStore + ?Sized),
    c: &Campaign,
    person: &Person,
    kind: &str,
    items: usize,
    due_at_ms: i64,
    now_ms: i64,
) -> anyhow::Result<bool> {
    let Some(to) = address(person) else {
        // The sweep would ask again every poll for a second reminder: said once, at start.
        if kind != "due_soon" {
            tracing::warn!(campaign = %c.id, reviewer = %person.user_name, "Reviewer has no e-mail address; no reminder queued.");
        }
        return Ok(false);
    };
    let (token, hash) = new_token()?;
    let url = link(&c.link_base, &token);
    let name = person.shown_name().unwrap_or_else(|| person.user_name.clone());
    let then = if c.rule == "revoke" { "revoked" } else { "passed to your manager" };
    let subject = match kind {
        "due_soon" => format!("Reminder: {items} AI connector review(s) due {}", time(due_at_ms)),
        "escalated" => format!("Escalated to you: {items} AI connector review(s) due {}", time(due_at_ms)),
        _ => format!("Please review {items} AI connector(s) by {}", time(due_at_ms)),
    };
    let body = format!(
        "Hello {name},\n\nAccess review {} asks you whether the AI connectors you answer for are still needed. \
         Keep or revoke each of them here:\n\n{url}\n\nDue {}. Anything unanswered then will be {then}.\n",
        c.id,
        time(due_at_ms)
    );
    let r = Reminder {
        campaign_id: c.id.clone(),
        reviewer_id: person.id.clone(),
        kind: kind.to_owned(),
        due_at_ms,
        recipient: to,
        subject,
        body,
        link: url,
        created_at_ms: now_ms,
        ..Reminder::default()
    };
    Ok(store.add_reminder(&r, &hash, due_at_ms)?)
}

/// What [`start`] made.
#[derive(Debug, Clone)]
pub struct Started {
    pub campaign: Campaign,
    pub items: usize,
    /// Items in the admins' queue (nobody else to ask).
    pub admin_queue: usize,
    pub reminders: usize,
}

/// Opens a campaign over the connectors present now (revoked ones are already decided) in
/// `scope`, for `reviewers` (see [`parse_reviewers`]), due at `due_at_ms`, and queues each reviewer's first reminder.
#[allow(clippy::too_many_arguments)]
pub fn start(
    store: &(impl ReadModel + PeopleStore + ReviewStore + ?Sized),
    policy: &Policy,
    scope: &str,
    rule: &str,
    reviewers: &str,
    due_at_ms: i64,
    link_base: &str,
    created_by: &str,
    now_ms: i64,
) -> Result<Started, ReviewError> {
    let parsed = Scope::parse(scope)?;
    let rule = parse_rule(rule)?;
    let reviewers = parse_reviewers(reviewers)?;
    if due_at_ms <= now_ms {
        return Err(ReviewError::Invalid("the due date must be in the future".into()));
    }
    if !(link_base.starts_with("https://") || link_base.starts_with("http://")) {
        return Err(ReviewError::Invalid(format!(
            "reviewers' links need the dashboard's address (https://host:port), not {link_base:?}"
        )));
    }
    let people = People::new(store.people_all()?);
    let mut items = Vec::new();
    for c in store.connector_summaries()? {
        if c.revocation.is_some() || !c.devices.iter().any(|d| d.present) {
            continue;
        }
        let owner = crate::register::owner_of(&c, policy, &people);
        if !parsed.covers(&c, owner.person.as_ref()) {
            continue;
        }
        let (reviewer, why) = reviewer_for(owner.person.as_ref(), &people, reviewers);
        items.push(ReviewItem {
            connector_key: c.key.clone(),
            reviewer_id: reviewer.map(|p| p.id),
            why: why.to_owned(),
            assigned_at_ms: now_ms,
            due_at_ms,
            ..ReviewItem::default()
        });
    }
    if items.is_empty() {
        return Err(ReviewError::Invalid(format!("no connector present now is in scope {scope}")));
    }
    let campaign = Campaign {
        id: new_id()?,
        scope: scope.to_owned(),
        rule: rule.to_owned(),
        due_at_ms,
        created_by: created_by.to_owned(),
        created_at_ms: now_ms,
        closed_at_ms: None,
        link_base: link_base.trim_end_matches('/').to_owned(),
    };
    store.create_campaign(&campaign, &items)?;
    let mut per_reviewer: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &items {
        if let Some(r) = &i.reviewer_id {
            *per_reviewer.entry(r).or_default() += 1;
        }
    }
    let mut reminders = 0;
    for (id, n) in per_reviewer {
        if let Some(p) = people.by_id(id)
            && remind(store, &campaign, p, "start", n, due_at_ms, now_ms)?
        {
            reminders += 1;
        }
    }
    let admin_queue = items.iter().filter(|i| i.reviewer_id.is_none()).count();
    tracing::info!(campaign = %campaign.id, scope, rule, items = items.len(), admin_queue, "Review campaign started.");
    Ok(Started { campaign, items: items.len(), admin_queue, reminders })
}

/// Who answers: an admin on behalf of the reviewer, the reviewer through their link, or the
/// deadline.
#[derive(Debug, Clone)]
pub enum Decider {
    /// `admin:token:NAME`, `admin:sso:ADDRESS`, `cli:USER`.
    Admin(String),
    /// A review token's (campaign, person id).
    Reviewer {
        campaign: String,
        person_id: String,
    },
    Deadline,
}

/// Answers one item: `keep` (approved, until `keep_until_ms` if given) or `revoke`.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    store: &(impl ReadModel + PeopleStore + ReviewStore + RegisterStore + DirectiveStore + ?Sized),
    pki: &Pki,
    campaign_id: &str,
    key: &str,
    decision: &str,
    reason: &str,
    keep_until_ms: Option<i64>,
    who: &Decider,
    now_ms: i64,
) -> Result<ReviewItem, ReviewError> {
    let reason = reason.trim();
    if !matches!(decision, "keep" | "revoke") {
        return Err(ReviewError::Invalid(format!("decision {decision:?}: use keep or revoke")));
    }
    if reason.is_empty() {
        return Err(ReviewError::Invalid("say why (reason): the review is an audit record".into()));
    }
    if decision == "revoke" && keep_until_ms.is_some() {
        return Err(ReviewError::Invalid("keep_for goes with keep, not revoke".into()));
    }
    if keep_until_ms.is_some_and(|t| t <= now_ms) {
        return Err(ReviewError::Invalid("keep_until must be in the future".into()));
    }
    let c = store
        .campaign(campaign_id)?
        .ok_or_else(|| ReviewError::NotFound(format!("no campaign {campaign_id}")))?;
    let item = store
        .review_items(campaign_id)?
        .into_iter()
        .find(|i| i.connector_key == key)
        .ok_or_else(|| ReviewError::NotFound(format!("{key} is not in campaign {campaign_id}")))?;
    let people = People::new(store.people_all()?);
    let by = match who {
        Decider::Admin(actor) => actor.clone(),
        Decider::Reviewer { campaign, person_id } => {
            if *campaign != c.id || item.reviewer_id.as_deref() != Some(person_id.as_str()) {
                return Err(ReviewError::Forbidden(format!("{key} in {campaign_id} is not yours to review")));
            }
            // A link outlives nobody's employment: a reviewer deprovisioned since cannot answer.
            let Some(me) = people.by_id(person_id).filter(|p| p.deprovisioned_at_ms.is_none()) else {
                return Err(ReviewError::Forbidden(
                    "you are no longer provisioned: an admin answers for you".into(),
                ));
            };
            format!("person:{}", me.user_name)
        }
        Decider::Deadline => "deadline".to_owned(),
    };
    apply(store, pki, &c, &item, decision, Some(reason), keep_until_ms, &by, &people, now_ms)?;
    store.close_finished_campaigns(now_ms)?;
    store
        .review_items(campaign_id)?
        .into_iter()
        .find(|i| i.connector_key == key)
        .ok_or_else(|| ReviewError::NotFound(format!("{key} is not in campaign {campaign_id}")))
}

/// Records the answer (if the item is still open) and carries it out through the register.
#[allow(clippy::too_many_arguments)]
fn apply(
    store: &(impl ReadModel + ReviewStore + RegisterStore + DirectiveStore + ?Sized),
    pki: &Pki,
    c: &Campaign,
    item: &ReviewItem,
    decision: &str,
    reason: Option<&str>,
    keep_until_ms: Option<i64>,
    by: &str,
    people: &People,
    now_ms: i64,
) -> Result<(), ReviewError> {
    let actor = format!("review:{}:{by}", c.id);
    let reviewer = item.reviewer_id.as_deref().and_then(|id| people.by_id(id)).map(|p| p.user_name.clone());
    let event =
        ConnectorEvent::new(&item.connector_key, now_ms, "reviewed", &actor, reason).with_detail(json!({
            "campaign": c.id, "decision": decision, "reviewer": reviewer, "why": item.why,
            "keep_until": keep_until_ms.map(time),
        }));
    let d = ItemDecision {
        decision: decision.to_owned(),
        keep_until_ms,
        reason: reason.map(str::to_owned),
        decided_by: actor.clone(),
        decided_at_ms: now_ms,
    };
    if !store.record_review(&c.id, &item.connector_key, &d, &event)? {
        return Err(ReviewError::Conflict(format!(
            "{} in {} was already answered",
            item.connector_key, c.id
        )));
    }
    // The answer is recorded first so that it is carried out once, whoever races for it; a
    // failure from here on is logged and returned, and the item shows what was decided.
    if decision == "keep" {
        crate::register::decide(
            store,
            &item.connector_key,
            Some("approved"),
            &actor,
            reason,
            keep_until_ms,
            now_ms,
        )?;
        return Ok(());
    }
    match crate::revoke::revoke(store, pki, &item.connector_key, &actor, reason.unwrap_or_default(), now_ms) {
        Ok(_) => Ok(()),
        Err(crate::revoke::RevokeError::Unsupported(why)) => {
            // Agents cannot take this kind away; the register says it is not sanctioned.
            let note = format!("{}; {why}", reason.unwrap_or_default());
            crate::register::decide(
                store,
                &item.connector_key,
                Some("unsanctioned"),
                &actor,
                Some(&note),
                None,
                now_ms,
            )?;
            Ok(())
        }
        Err(e) => Err(ReviewError::Other(anyhow::anyhow!("revoking {}: {e}", item.connector_key))),
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub revoked: usize,
    pub escalated: usize,
    pub reminded: usize,
}

/// The deadline: overdue items follow their campaign's rule; reviewers with items due soon
/// get their second reminder; finished campaigns close. Safe to run on every replica.
pub fn sweep(
    store: &(impl ReadModel + PeopleStore + ReviewStore + RegisterStore + DirectiveStore + ?Sized),
    pki: &Pki,
    now_ms: i64,
) -> anyhow::Result<Swept> {
    let mut out = Swept::default();
    let overdue = store.overdue_items(now_ms, 500)?;
    let soon = store.due_soon(now_ms, REMIND_BEFORE.as_millis() as i64)?;
    // Nothing due: no write at all (every replica asks every poll).
    if overdue.is_empty() && soon.is_empty() {
        return Ok(out);
    }
    let people = People::new(store.people_all()?);
    let mut campaigns: HashMap<String, Campaign> = HashMap::new();
    let mut campaign = |id: &str| -> anyhow::Result<Option<Campaign>> {
        if !campaigns.contains_key(id)
            && let Some(c) = store.campaign(id)?
        {
            campaigns.insert(id.to_owned(), c);
        }
        Ok(campaigns.get(id).cloned())
    };
    let mut escalated_to: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    for (item, rule) in overdue {
        let Some(c) = campaign(&item.campaign_id)? else { continue };
        if rule == "revoke" {
            match apply(
                store,
                pki,
                &c,
                &item,
                "revoke",
                Some("not answered by the due date"),
                None,
                "deadline",
                &people,
                now_ms,
            ) {
                Ok(()) => out.revoked += 1,
                Err(ReviewError::Conflict(_)) => {}
                Err(e) => {
                    tracing::warn!(campaign = %c.id, connector = %item.connector_key, error = %e, "Revoking an unanswered review item failed.")
                }
            }
            continue;
        }
        let from = item.reviewer_id.as_deref().and_then(|id| people.by_id(id));
        let to = from.and_then(|p| manager_of(p, &people));
        let due = now_ms + ESCALATION_PERIOD.as_millis() as i64;
        let why = if to.is_some() { "escalated" } else { "admin" };
        let event = ConnectorEvent::new(
            &item.connector_key,
            now_ms,
            "review_escalated",
            &format!("review:{}:deadline", c.id),
            Some("not answered by the due date"),
        )
        .with_detail(json!({
            "campaign": c.id, "from": from.map(|p| &p.user_name), "to": to.as_ref().map(|p| &p.user_name),
            "due_at": time(due),
        }));
        if store.reassign_item(&item, to.as_ref().map(|p| p.id.as_str()), why, now_ms, due, &event)? {
            out.escalated += 1;
            if let Some(p) = to {
                *escalated_to.entry((c.id.clone(), p.id.clone(), due)).or_default() += 1;
            }
        }
    }
    for ((cid, pid, due), n) in escalated_to {
        if let (Some(c), Some(p)) = (campaign(&cid)?, people.by_id(&pid))
            && remind(store, &c, p, "escalated", n, due, now_ms)?
        {
            out.reminded += 1;
        }
    }
    let mut soon_by: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    for i in soon {
        if let Some(r) = i.reviewer_id {
            *soon_by.entry((i.campaign_id, r, i.due_at_ms)).or_default() += 1;
        }
    }
    for ((cid, pid, due), n) in soon_by {
        if let (Some(c), Some(p)) = (campaign(&cid)?, people.by_id(&pid))
            && remind(store, &c, p, "due_soon", n, due, now_ms)?
        {
            out.reminded += 1;
        }
    }
    store.close_finished_campaigns(now_ms)?;
    if out != Swept::default() {
        tracing::info!(
            revoked = out.revoked,
            escalated = out.escalated,
            reminded = out.reminded,
            "Review deadlines swept."
        );
    }
    Ok(out)
}

/// A campaign as the responses show it; with `items`, each item too.
pub fn campaign_value(
    store: &(impl ReadModel + PeopleStore + ReviewStore + ?Sized),
    id: &str,
    with_items: bool,
) -> anyhow::Result<Option<responses::ReviewCampaign>> {
    let Some(c) = store.campaign(id)? else { return Ok(None) };
    let items = store.review_items(id)?;
    let people = People::new(store.people_all()?);
    let names: HashMap<String, (String, String)> = if with_items {
        store
            .connector_summaries()?
            .into_iter()
            .map(|c| (c.key.clone(), (crate::catalog::display_name(&c.kind, &c.label), c.kind)))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(Some(responses::ReviewCampaign::new(
        &c,
        &items,
        with_items.then(|| item_views(&items, &people, &names)),
    )))
}

fn item_views(
    items: &[ReviewItem],
    people: &People,
    names: &HashMap<String, (String, String)>,
) -> Vec<responses::ReviewItemView> {
    items
        .iter()
        .map(|i| {
            let p = i.reviewer_id.as_deref().and_then(|id| people.by_id(id));
            let (name, kind) = names
                .get(&i.connector_key)
                .cloned()
                .unwrap_or_else(|| (i.connector_key.clone(), String::new()));
            responses::ReviewItemView::new(i, p, name, kind)
        })
        .collect()
}

/// One item as the responses show it.
pub fn item_value(
    store: &(impl ReadModel + PeopleStore + ?Sized),
    item: &ReviewItem,
) -> anyhow::Result<responses::ReviewItemView> {
    let people = People::new(store.people_all()?);
    let reviewer = item.reviewer_id.as_deref().and_then(|id| people.by_id(id));
    let (name, kind) = match store.connector(&item.connector_key)? {
        Some(c) => (crate::catalog::display_name(&c.kind, &c.label), c.kind),
        None => (item.connector_key.clone(), String::new()),
    };
    Ok(responses::ReviewItemView::new(item, reviewer, name, kind))
}

/// Every campaign, oldest first (without items).
pub fn campaigns_value(
    store: &(impl ReadModel + PeopleStore + ReviewStore + ?Sized),
) -> anyhow::Result<Vec<responses::ReviewCampaign>> {
    store
        .campaigns()?
        .into_iter()
        .map(|c| Ok(responses::ReviewCampaign::new(&c, &store.review_items(&c.id)?, None)))
        .collect()
}

/// What a reviewer's page shows: their items in the campaign, each with the connector's
/// register entry (owner, devices, last seen, identity).
pub fn reviewer_page(
    store: &(impl DeviceStore + PeopleStore + ReadModel + DirectiveStore + RegisterStore + ReviewStore + ?Sized),
    policy: &Policy,
    campaign_id: &str,
    person_id: &str,
) -> anyhow::Result<Option<responses::ReviewerPage>> {
    let Some(c) = store.campaign(campaign_id)? else { return Ok(None) };
    let people = People::new(store.people_all()?);
    let Some(me) = people.by_id(person_id).filter(|p| p.deprovisioned_at_ms.is_none()) else {
        return Ok(None);
    };
    let all = store.review_items(campaign_id)?;
    let mut items = Vec::new();
    for i in all.iter().filter(|i| i.reviewer_id.as_deref() == Some(person_id)) {
        let Some(connector) = crate::query::connector_value(store, policy, &i.connector_key)? else {
            continue;
        };
        let view = responses::ReviewItemView::new(
            i,
            Some(me),
            connector.display_name.clone(),
            connector.kind.clone(),
        );
        items.push(responses::ReviewerItem { connector, item: view });
    }
    Ok(Some(responses::ReviewerPage {
        campaign: responses::ReviewCampaign::new(&c, &all, None),
        items,
        reviewer: me.user_name.clone(),
        reviewer_name: me.shown_name(),
    }))
}

/// The campaign's decisions, signed by the collector for auditors.
pub fn report(
    store: &(impl ReadModel + PeopleStore + ReviewStore + ?Sized),
    pki: &Pki,
    campaign_id: &str,
    now_ms: i64,
) -> anyhow::Result<Option<responses::ReviewReport>> {
    let Some(c) = campaign_value(store, campaign_id, true)? else { return Ok(None) };
    let manifest = json!({ "exported_at": time(now_ms), "campaign": c });
    let doc = crate::evidence::sign_manifest(pki, REPORT_SCHEMA, REVIEW_REPORT_CONTEXT, &manifest)?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(Some(responses::ReviewReport {
        collector_signing_key: text("collector_signing_key"),
        manifest: text("manifest"),
        manifest_signature: text("manifest_signature"),
        schema: text("schema"),
    }))
}

/// What a verified report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReport {
    pub campaign: String,
    pub scope: String,
    pub items: usize,
    pub kept: usize,
    pub revoked: usize,
    pub open: usize,
    pub collector_key_id: String,
}

/// Verifies a report offline (the collector key optionally pinned, as for evidence bundles).
pub fn verify_report(bytes: &[u8], pinned: Option<&str>) -> anyhow::Result<VerifiedReport> {
    let opened = crate::evidence::open_manifest(bytes, REPORT_SCHEMA, REVIEW_REPORT_CONTEXT, pinned)?;
    let c = &opened.manifest["campaign"];
    let items = c["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let count = |d: Option<&str>| items.iter().filter(|i| i["decision"].as_str() == d).count();
    Ok(VerifiedReport {
        campaign: c["id"].as_str().unwrap_or_default().to_owned(),
        scope: c["scope"].as_str().unwrap_or_default().to_owned(),
        items: items.len(),
        kept: count(Some("keep")),
        revoked: count(Some("revoke")),
        open: count(None),
        collector_key_id: opened.collector_key_id,
    })
}

/// Pending reminders for the mail system, after `after`.
pub fn reminders_value(
    store: &(impl ReviewStore + ?Sized),
    after: i64,
    limit: usize,
) -> anyhow::Result<responses::ReviewReminders> {
    let list = store.pending_reminders(after, limit)?;
    let next_after = list.last().map_or(after, |r| r.seq);
    Ok(responses::ReviewReminders {
        next_after,
        reminders: list.iter().map(responses::ReviewReminder::from).collect(),
    })
}

/// `review list` for people.
pub fn render_list(list: &[responses::ReviewCampaign]) -> String {
    if list.is_empty() {
        return "no review campaigns: start one with `review start --scope all --due 14d`\n".into();
    }
    let mut out = String::from(
        "CAMPAIGN        SCOPE                 RULE      DUE                   ANSWERED  STATE\n",
    );
    for c in list {
        out += &format!(
            "{:<15} {:<21} {:<9} {:<21} {:>4}/{:<4} {}\n",
            c.id,
            crate::query::printable(&c.scope),
            c.rule,
            c.due_at,
            c.counts.answered,
            c.counts.total,
            if c.closed_at.is_some() { "closed" } else { "open" }
        );
    }
    out
}

/// `review show CAMPAIGN` for people.
pub fn render_campaign(c: &responses::ReviewCampaign) -> String {
    let p = |s: &str| crate::query::printable(s).into_owned();
    let mut out = format!(
        "campaign {} scope {} rule {} due {}, by {} at {}{}\n{} of {} answered ({} kept, {} revoked)\n",
        c.id,
        p(&c.scope),
        c.rule,
        c.due_at,
        p(&c.created_by),
        c.created_at,
        c.closed_at.as_deref().map(|t| format!(", closed {t}")).unwrap_or_default(),
        c.counts.answered,
        c.counts.total,
        c.counts.kept,
        c.counts.revoked
    );
    for i in c.items.iter().flatten() {
        let who = i.reviewer.as_deref().map_or_else(|| "admins".to_owned(), p);
        let answer = match &i.decision {
            Some(d) => format!(
                "{d}{} by {} ({})",
                i.keep_until.as_deref().map(|t| format!(" until {t}")).unwrap_or_default(),
                p(i.decided_by.as_deref().unwrap_or_default()),
                p(i.reason.as_deref().unwrap_or_default())
            ),
            None => format!("open, due {}", i.due_at),
        };
        out += &format!(
            "  {} {} [{}] reviewer {who} ({}): {answer}\n",
            i.kind,
            p(&i.display_name),
            p(&i.connector_key),
            i.why
        );
    }
    out
}

#[cfg(test)]
mod tests;
