//! Findings: what a security team should look at, computed from the current state (presence
//! intervals, people, devices, gaps) and the policy, each with its evidence and the time it
//! first became true.
//!
//! - `orphaned_connector`: present now, attributed to a person the IdP deprovisioned — the
//!   offboarding trigger; its evidence says what the playbook does (`playbook`: `revoke at
//!   T`, `revoked at T`, `report only: …`; see `offboarding`);
//! - `unowned_connector`: present, and nobody has owned it for `[offboarding] unowned_after`
//!   (only when the policy sets it), with the playbook's step likewise;
//! - `shadow_ai`: present now and not approved by the policy;
//! - `shared_credential`: one token fingerprint present on several devices or accounts;
//! - `software_key_device` / `unattested_device`: the device's key is not hardware-attested;
//! - `stale_agent`: not heard from within `stale_after`;
//! - `delivery_gap`: the agent had to drop observations (spool overflow), with the count;
//! - `clock_skew`: the device's clock was off by more than the plausible window at its last
//!   attestation, so its times are stored as the collector received them (`clock`);
//! - `revocation_not_enforced`: an admin revoked a connector and a device answered without
//!   enforcing it (report mode, unsupported there, failed, or refused the directive);
//! - `personal_account_connector`: an OAuth/session credential present now that was issued
//!   to a `personal` provider account ([`Policy::classify_account`]: a consumer domain, or
//!   not the organization's), judged for the person its OS account is attributed to.
//!
//! From AI activity (sessions whose latest record is within [`ACTIVITY_WINDOW_MS`], 30 days;
//! each names the session: tool, session id, device, hostname, OS account, person, start and
//! end, the connector; subject = the connector key; one per session and connector):
//! - `used_after_offboarding` (critical): a session with records after the person its OS
//!   account is attributed to was deprovisioned (subject: the tool's connector), or through a
//!   connector whose owner (assigned or attributed) was deprovisioned by then;
//! - `unsanctioned_connector_in_use` (high, more urgent than `shadow_ai`, which is presence
//!   only): a session went through a connector the register judges `unsanctioned` or
//!   `revoked` now ([`Policy::judge`]).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock::rfc3339 as time;
use crate::policy::{People, Policy};
use crate::store::{ActivityFilter, ActivityStore, Connector, DeviceStore, PeopleStore, ReadModel};

/// How far back activity findings look (by a session's latest record): use older than that
/// is history for `activity` queries, not something to act on.
pub const ACTIVITY_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: &'static str,
    /// What it is about: a connector key or a device id.
    pub subject: String,
    pub device_id: Option<String>,
    /// The hostname of `device_id`, for people.
    pub hostname: Option<String>,
    /// What people call the subject: the connector's display name or the device's hostname.
    pub subject_name: String,
    pub first_seen_ms: i64,
    pub evidence: Value,
}

impl From<&Finding> for crate::responses::Finding {
    fn from(f: &Finding) -> crate::responses::Finding {
        crate::responses::Finding {
            device_id: f.device_id.clone(),
            evidence: f.evidence.clone(),
            first_seen: time(f.first_seen_ms),
            hostname: f.hostname.clone(),
            kind: f.kind,
            severity: f.severity,
            subject: f.subject.clone(),
            subject_name: f.subject_name.clone(),
        }
    }
}

pub fn compute(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
) -> anyhow::Result<Vec<Finding>> {
    let people = People::new(store.people_all()?);
    compute_from(store, policy, now_ms, &store.connector_summaries()?, &people)
}

/// As [`compute`], over connector summaries and people already read.
pub fn compute_from(
    store: &(impl DeviceStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
    summaries: &[Connector],
    people: &People,
) -> anyhow::Result<Vec<Finding>> {
    let connectors: BTreeMap<&str, &Connector> = summaries.iter().map(|c| (c.key.as_str(), c)).collect();
    let mut out = Vec::new();
    let devices = store.devices()?;
    let hostnames: BTreeMap<&str, &str> =
        devices.iter().map(|d| (d.id.as_str(), d.hostname.as_str())).collect();
    let hostname = |id: &str| hostnames.get(id).map(|h| (*h).to_owned());
    let connector_name = |key: &str| {
        connectors
            .get(key)
            .map_or_else(|| key.to_owned(), |c| crate::catalog::display_name(&c.kind, &c.label))
    };

    let playbook = policy.playbook()?;
    let present = store.present_now()?;
    for p in &present {
        let Some(c) = connectors.get(p.connector_key.as_str()) else { continue };
        let owner = p.os_user.as_deref().map(|u| policy.attribute_among(people, u));
        let evidence = json!({
            "connector": p.connector_key, "kind": p.kind, "label": p.label, "where": p.locus,
            "os_user": p.os_user, "appeared_at": time(p.appeared_at_ms), "appeared_seq": p.appeared_seq,
            "owner": owner.as_ref().and_then(|o| o.person.as_ref()).map(|p| p.user_name.clone()),
            "attribution": owner.as_ref().map(|o| o.confidence),
        });
        if let Some(person) = owner.as_ref().and_then(|o| o.person.as_ref())
            && let Some(gone) = person.deprovisioned_at_ms
        {
            let mut e = evidence.clone();
            e["owner_deprovisioned_at"] = json!(time(gone));
            e["playbook"] =
                json!(crate::offboarding::playbook_for(c, person, policy, &playbook, people, now_ms));
            out.push(Finding {
                kind: "orphaned_connector",
                severity: "high",
                subject: p.connector_key.clone(),
                device_id: Some(p.device_id.clone()),
                hostname: hostname(&p.device_id),
                subject_name: connector_name(&p.connector_key),
                first_seen_ms: gone.max(p.appeared_at_ms),
                evidence: e,
            });
        }
        let person = owner.as_ref().and_then(|o| o.person.as_ref());
        if let Some(by) = policy.authorization(c, person)
            && by.class == crate::policy::AccountClass::Personal
        {
            out.push(Finding {
                kind: "personal_account_connector",
                severity: "high",
                subject: p.connector_key.clone(),
                device_id: Some(p.device_id.clone()),
                hostname: hostname(&p.device_id),
                subject_name: connector_name(&p.connector_key),
                first_seen_ms: p.appeared_at_ms,
                evidence: json!({
                    "connector": p.connector_key, "device": hostname(&p.device_id), "device_id": p.device_id,
                    "os_user": p.os_user, "owner": person.map(|p| p.user_name.clone()),
                    "account": by.account, "org": by.org, "class": by.class.as_str(), "where": p.locus,
                }),
            });
        }
        if policy.status(c, people) == "unsanctioned" {
            out.push(Finding {
                kind: "shadow_ai",
                severity: "medium",
                subject: p.connector_key.clone(),
                device_id: Some(p.device_id.clone()),
                hostname: hostname(&p.device_id),
                subject_name: connector_name(&p.connector_key),
                first_seen_ms: p.appeared_at_ms,
                evidence,
            });
        }
    }

    if playbook.unowned.is_some() {
        for c in connectors.values() {
            let Some(a) = crate::offboarding::assess(c, policy, &playbook, people, now_ms) else { continue };
            let crate::offboarding::Trigger::Unowned { since_ms } = a.trigger else { continue };
            let after = playbook.unowned.map_or(0, |u| u.after.as_millis() as i64);
            let on: Vec<Value> = c
                .devices
                .iter()
                .filter(|d| d.present)
                .map(|d| json!({"device_id": d.device_id, "hostname": hostname(&d.device_id), "os_user": d.user}))
                .collect();
            out.push(Finding {
                kind: "unowned_connector",
                severity: "medium",
                subject: c.key.clone(),
                device_id: None,
                hostname: None,
                subject_name: connector_name(&c.key),
                first_seen_ms: since_ms.saturating_add(after),
                evidence: json!({
                    "connector": c.key, "kind": c.kind, "label": c.label, "holders": on,
                    "unowned_since": time(since_ms), "playbook": a.step.describe(),
                }),
            });
        }
    }

    // One token in several places: by fingerprint, across devices and accounts.
    let mut tokens: BTreeMap<&str, Vec<&crate::store::Presence>> = BTreeMap::new();
    for p in present.iter().filter(|p| p.kind == "token") {
        tokens.entry(&p.connector_key).or_default().push(p);
    }
    for (key, mut sightings) in tokens {
        sightings.sort_by_key(|p| p.appeared_at_ms);
        let mut holders: Vec<(String, String)> =
            sightings.iter().map(|p| (p.device_id.clone(), p.os_user.clone().unwrap_or_default())).collect();
        holders.dedup();
        holders.sort();
        holders.dedup();
        if holders.len() < 2 {
            continue;
        }
        out.push(Finding {
            kind: "shared_credential",
            severity: "high",
            subject: key.to_owned(),
            device_id: None,
            hostname: None,
            subject_name: connector_name(key),
            first_seen_ms: sightings[1].appeared_at_ms,
            evidence: json!({
                "holders": holders
                    .iter()
                    .map(|(d, u)| json!({"device_id": d, "hostname": hostname(d), "os_user": u}))
                    .collect::<Vec<_>>(),
                "places": sightings.iter().map(|p| p.locus.clone()).collect::<Vec<_>>(),
            }),
        });
    }

    for c in connectors.values() {
        let Some(r) = &c.revocation else { continue };
        for d in r.latest.iter().filter(|d| d.outcome.is_some() && !d.effective()) {
            let Some(o) = &d.outcome else { continue };
            out.push(Finding {
                kind: "revocation_not_enforced",
                severity: "high",
                subject: c.key.clone(),
                device_id: Some(d.device_id.clone()),
                hostname: hostname(&d.device_id),
                subject_name: connector_name(&c.key),
                first_seen_ms: d.outcome_at_ms.unwrap_or(d.issued_at_ms),
                evidence: json!({
                    "directive_id": d.id, "action": d.action, "outcome": o.outcome.as_str(), "detail": o.detail,
                    "mode": o.mode, "revoked_at": time(r.revocation.requested_at_ms), "outcome_seq": d.outcome_seq,
                }),
            });
        }
    }

    let stale_after = policy.stale_after()?.as_millis() as i64;
    for d in devices.iter().filter(|d| d.revoked_at_ms.is_none()) {
        let kind = match d.assurance.as_str() {
            "software" => Some(("software_key_device", "low")),
            "hardware_unattested" => Some(("unattested_device", "low")),
            _ => None,
        };
        if let Some((kind, severity)) = kind {
            out.push(Finding {
                kind,
                severity,
                subject: d.id.clone(),
                device_id: Some(d.id.clone()),
                hostname: Some(d.hostname.clone()),
                subject_name: d.hostname.clone(),
                first_seen_ms: d.enrolled_at_ms,
                evidence: json!({"assurance": d.assurance, "key_backend": d.key_backend, "hostname": d.hostname}),
            });
        }
        if let Some(skew) =
            d.clock_skew_ms.filter(|s| s.unsigned_abs() > crate::clock::MAX_AHEAD.as_millis() as u64)
        {
            out.push(Finding {
                kind: "clock_skew",
                severity: "low",
                subject: d.id.clone(),
                device_id: Some(d.id.clone()),
                hostname: Some(d.hostname.clone()),
                subject_name: d.hostname.clone(),
                first_seen_ms: d.last_attested_ms.unwrap_or(d.enrolled_at_ms),
                evidence: json!({
                    "clock_skew_ms": skew, "hostname": d.hostname,
                    "effect": if skew > 0 {
                        "the device's clock runs ahead: its times later than the collector's are stored as received"
                    } else {
                        "the device's clock runs behind: its times read earlier than the events were"
                    },
                }),
            });
        }
        let last = d.last_seen_ms.unwrap_or(d.enrolled_at_ms);
        if now_ms - last > stale_after {
            out.push(Finding {
                kind: "stale_agent",
                severity: "medium",
                subject: d.id.clone(),
                device_id: Some(d.id.clone()),
                hostname: Some(d.hostname.clone()),
                subject_name: d.hostname.clone(),
                first_seen_ms: last + stale_after,
                evidence: json!({"last_seen": time(last), "hostname": d.hostname}),
            });
        }
    }
    for (device, seq, at, dropped) in store.gaps()? {
        out.push(Finding {
            kind: "delivery_gap",
            severity: "medium",
            hostname: hostname(&device),
            subject_name: hostname(&device).unwrap_or_else(|| device.clone()),
            subject: device.clone(),
            device_id: Some(device),
            first_seen_ms: at,
            evidence: json!({"dropped": dropped, "seq": seq}),
        });
    }
    out.extend(activity_findings(store, policy, now_ms, &connectors, people)?);
    out.sort_by(|a, b| (a.first_seen_ms, a.kind, &a.subject).cmp(&(b.first_seen_ms, b.kind, &b.subject)));
    Ok(out)
}

/// `used_after_offboarding` and `unsanctioned_connector_in_use` (see the module doc).
fn activity_findings(
    store: &(impl ActivityStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
    connectors: &BTreeMap<&str, &Connector>,
    people: &People,
) -> anyhow::Result<Vec<Finding>> {
    let sessions = store.activity(&ActivityFilter {
        since_ms: Some(now_ms.saturating_sub(ACTIVITY_WINDOW_MS)),
        ..Default::default()
    })?;
    let mut out = Vec::new();
    let name = |key: &str| {
        connectors
            .get(key)
            .map_or_else(|| key.to_owned(), |c| crate::catalog::display_name(&c.kind, &c.label))
    };
    for s in &sessions {
        let attributed = s.os_user.as_deref().and_then(|u| policy.attribute_among(people, u).person);
        let evidence = |connector: &str| {
            json!({
                "connector": connector, "tool": s.tool, "session_id": s.session_id,
                "device_id": s.device_id, "hostname": s.hostname, "os_user": s.os_user,
                "person": attributed.as_ref().map(|p| p.user_name.clone()),
                "started_at": time(s.started_at_ms), "ended_at": time(s.ended_at_ms),
                "evidence_seq": s.evidence_seq,
                // Tells one session's finding from another's (the export's finding key).
                "where": format!("session:{}:{}", s.tool, s.session_id),
            })
        };
        let finding = |kind: &'static str, severity: &'static str, key: &str, first: i64, e: Value| Finding {
            kind,
            severity,
            subject: key.to_owned(),
            device_id: Some(s.device_id.clone()),
            hostname: s.hostname.clone(),
            subject_name: name(key),
            first_seen_ms: first,
            evidence: e,
        };
        let tool_key = s
            .connectors
            .iter()
            .find(|c| c.kind == "tool")
            .map_or_else(|| format!("unknown:tool:{}", s.tool), |c| c.key.clone());
        let mut offboarded: Vec<String> = Vec::new();
        if let Some(p) = &attributed
            && let Some(gone) = p.deprovisioned_at_ms.filter(|&t| t <= s.ended_at_ms)
        {
            let mut e = evidence(&tool_key);
            e["person_deprovisioned_at"] = json!(time(gone));
            out.push(finding("used_after_offboarding", "critical", &tool_key, gone.max(s.started_at_ms), e));
            offboarded.push(tool_key.clone());
        }
        for b in s.connectors.iter().filter(|b| b.known) {
            let Some(c) = connectors.get(b.key.as_str()) else { continue };
            let owner = crate::register::owner_of(c, policy, people);
            if let Some(o) = &owner.person
                && let Some(gone) = o.deprovisioned_at_ms.filter(|&t| t <= s.ended_at_ms)
                && !offboarded.contains(&b.key)
            {
                let mut e = evidence(&b.key);
                e["owner"] = json!(o.user_name);
                e["owner_deprovisioned_at"] = json!(time(gone));
                out.push(finding("used_after_offboarding", "critical", &b.key, gone.max(s.started_at_ms), e));
            }
            let status = policy.judge(c, people, now_ms).status;
            if matches!(status, "unsanctioned" | "revoked") {
                let mut e = evidence(&b.key);
                e["status"] = json!(status);
                out.push(finding("unsanctioned_connector_in_use", "high", &b.key, s.started_at_ms, e));
            }
        }
    }
    Ok(out)
}
