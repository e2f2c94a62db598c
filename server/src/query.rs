//! Output of the query commands (`devices`, `connectors`, `device ID`), as JSON for scripts
//! or a table for people. Reads the same data dir a running collector writes (SQLite WAL).

use crate::clock::rfc3339 as time;
use serde_json::{Value, json};

use crate::policy::{People, Policy};
use crate::store::{Connector, Device, DeviceStore, DirectiveStore, PeopleStore, Presence, ReadModel, Store};

/// An instant given by a person: RFC 3339 (`2026-11-29T10:00:00Z`) or `now`, in Unix ms.
pub fn parse_instant(s: &str, now_ms: i64) -> Result<i64, String> {
    if s == "now" {
        return Ok(now_ms);
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not a time like 2026-11-29T10:00:00Z or \"now\": {e}"))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).map_err(|e| e.to_string())
        })
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(time(m)))
}

pub fn device_json(d: &Device, observations: u64) -> Value {
    json!({
        "device_id": d.id,
        "hostname": d.hostname,
        "os": d.os,
        "os_version": d.os_version,
        "agent_version": d.agent_version,
        "assurance": d.assurance,
        "key_backend": d.key_backend,
        "key_id": sightline_proto::p256::key_id(&d.key_spki),
        "hardware_id": d.hardware_id,
        "enrolled_at": time(d.enrolled_at_ms),
        "last_seen_at": opt_time(d.last_seen_ms),
        "last_attested_at": opt_time(d.last_attested_ms),
        "clock_skew_ms": d.clock_skew_ms,
        "revoked_at": opt_time(d.revoked_at_ms),
        "seq_head": d.seq_head,
        "observations": observations,
        "users": d.users,
    })
}

/// The people a policy needs to judge connectors (only for approvals by group).
pub fn judged_people(store: &(impl PeopleStore + ?Sized), policy: &Policy) -> anyhow::Result<People> {
    Ok(if policy.needs_people() { People::new(store.people_all()?) } else { People::default() })
}

pub fn connector_json(c: &Connector, policy: &Policy, people: &People) -> Value {
    let pick = |k: &str| c.latest.get(k).cloned().unwrap_or(Value::Null);
    let mut v = json!({
        "key": c.key,
        "kind": c.kind,
        "label": c.label,
        "first_seen": time(c.first_seen_ms),
        "last_seen": time(c.last_seen_ms),
        "devices": c.devices.iter().map(|d| json!({
            "device_id": d.device_id,
            "hostname": d.hostname,
            "user": d.user,
            "first_seen": time(d.first_seen_ms),
            "last_seen": time(d.last_seen_ms),
            "present": d.present,
        })).collect::<Vec<_>>(),
        "status": policy.status(c, people),
        "revocation": c.revocation.as_ref().map(|r| json!({
            "state": r.state(),
            "requested_at": time(r.revocation.requested_at_ms),
            "requested_by": r.revocation.requested_by,
            "reason": r.revocation.reason,
            "devices": r.latest.iter().map(directive_json).collect::<Vec<_>>(),
        })),
    });
    let extra: &[&str] = match c.kind.as_str() {
        "tool" => &["tool"],
        "extension" => &["tool", "extension_id", "name", "browser"],
        "token" => &["provider", "token_kind", "fingerprint", "source"],
        "mcp_server" => &["client", "name", "transport", "command", "url"],
        _ => &[],
    };
    if let Value::Object(m) = &mut v {
        for k in extra {
            m.insert((*k).to_owned(), pick(k));
        }
    }
    v
}

/// A directive and what became of it.
pub fn directive_json(d: &crate::store::DirectiveRecord) -> Value {
    json!({
        "directive_id": d.id,
        "device_id": d.device_id,
        "connector": d.connector_key,
        "action": d.action,
        "target": d.target,
        "issued_at": time(d.issued_at_ms),
        "expires_at": time(d.expires_at_ms),
        "sent_at": opt_time(d.sent_at_ms),
        "outcome": d.outcome.as_ref().map(|o| o.outcome.clone()),
        "detail": d.outcome.as_ref().map(|o| o.detail.clone()),
        "mode": d.outcome.as_ref().map(|o| o.mode.clone()),
        "outcome_at": opt_time(d.outcome_at_ms),
        // The observation that reported it, in the device's signed batches.
        "outcome_seq": d.outcome_seq,
    })
}

/// Every device as JSON (the CLI's `devices --json` and `GET /api/v1/devices`).
pub fn devices_value(store: &dyn Store) -> anyhow::Result<Value> {
    let list: Vec<Value> = store
        .devices()?
        .iter()
        .map(|d| Ok(device_json(d, store.count_observations(&d.id)?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(Value::Array(list))
}

/// Which connectors to list; every field optional.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectorFilter {
    /// `tool`, `extension`, `token`, `mcp_server`.
    pub kind: Option<String>,
    /// `discovered`, `approved`, `unsanctioned`, `revoked` or `removed`.
    pub status: Option<String>,
    /// An OS account it was seen under.
    pub user: Option<String>,
}

impl ConnectorFilter {
    pub fn matches(&self, c: &Connector, policy: &Policy, people: &People) -> bool {
        let status = policy.status(c, people);
        self.kind.as_ref().is_none_or(|k| *k == c.kind)
            && self.status.as_ref().is_none_or(|s| s == status)
            && self.user.as_ref().is_none_or(|u| c.devices.iter().any(|d| d.user.as_ref() == Some(u)))
    }
}

/// Connectors as JSON, filtered.
pub fn connectors_value(
    store: &(impl PeopleStore + ReadModel + ?Sized),
    filter: &ConnectorFilter,
    policy: &Policy,
) -> anyhow::Result<Value> {
    let people = judged_people(store, policy)?;
    Ok(Value::Array(
        store
            .connectors()?
            .iter()
            .filter(|c| filter.matches(c, policy, &people))
            .map(|c| connector_json(c, policy, &people))
            .collect(),
    ))
}

/// How many presence intervals a device view lists.
const HISTORY: usize = 200;

/// One device with its connectors, or None.
pub fn device_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    id: &str,
    policy: &Policy,
) -> anyhow::Result<Option<Value>> {
    let Some(d) = store.device(id)? else { return Ok(None) };
    let mut v = device_json(&d, store.count_observations(id)?);
    let people = judged_people(store, policy)?;
    v["connectors"] = Value::Array(
        store.device_connectors(id)?.iter().map(|c| connector_json(c, policy, &people)).collect(),
    );
    // The most recent presence intervals, newest first: what came and went on it.
    let history = store.presence_history(id)?;
    v["history"] = Value::Array(history.iter().rev().take(HISTORY).map(presence_json).collect());
    Ok(Some(v))
}

/// What was on a device at an instant, or None for an unknown device.
pub fn device_at_value(
    store: &(impl DeviceStore + ReadModel + ?Sized),
    id: &str,
    at_ms: i64,
) -> anyhow::Result<Option<Value>> {
    let Some(d) = store.device(id)? else { return Ok(None) };
    Ok(Some(json!({
        "at": time(at_ms),
        "device": device_json(&d, store.count_observations(id)?),
        "sessions": store.sessions_at(Some(id), at_ms)?.iter().map(|s| json!({
            "os_user": s.os_user, "terminal": s.terminal, "host": s.host, "since": time(s.started_at_ms),
            "evidence_seq": s.appeared_seq,
        })).collect::<Vec<_>>(),
        "present": store.present_at(id, at_ms)?.iter().map(presence_json).collect::<Vec<_>>(),
    })))
}

pub fn devices(store: &dyn Store, as_json: bool) -> anyhow::Result<String> {
    if as_json {
        return Ok(serde_json::to_string_pretty(&devices_value(store)?)? + "\n");
    }
    let devices = store.devices()?;
    let mut rows = vec![vec![
        "DEVICE".into(),
        "HOSTNAME".into(),
        "OS".into(),
        "ASSURANCE".into(),
        "LAST SEEN".into(),
        "USERS".into(),
    ]];
    for d in &devices {
        rows.push(vec![
            d.id.clone(),
            d.hostname.clone(),
            format!("{} {}", d.os, d.os_version),
            d.assurance.clone() + if d.revoked_at_ms.is_some() { " (revoked)" } else { "" },
            d.last_seen_ms.map_or_else(|| "never".into(), time),
            d.users.join(","),
        ]);
    }
    Ok(table(&rows, devices.is_empty().then_some("No devices enrolled.")))
}

pub fn connectors(
    store: &(impl PeopleStore + ReadModel + ?Sized),
    filter: &ConnectorFilter,
    policy: &Policy,
    as_json: bool,
) -> anyhow::Result<String> {
    let people = judged_people(store, policy)?;
    let list: Vec<Connector> =
        store.connectors()?.into_iter().filter(|c| filter.matches(c, policy, &people)).collect();
    render_connectors(&list, policy, &people, as_json)
}

fn render_connectors(
    list: &[Connector],
    policy: &Policy,
    people: &People,
    as_json: bool,
) -> anyhow::Result<String> {
    if as_json {
        let v: Vec<Value> = list.iter().map(|c| connector_json(c, policy, people)).collect();
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows = vec![vec![
        "KIND".into(),
        "WHAT".into(),
        "IDENTITY".into(),
        "DEVICES".into(),
        "USERS".into(),
        "LAST SEEN".into(),
        "STATUS".into(),
    ]];
    for c in list {
        let identity = c.key.split_once(':').map_or(c.key.as_str(), |(_, r)| r).to_owned();
        let mut users: Vec<String> = c.devices.iter().filter_map(|d| d.user.clone()).collect();
        users.dedup();
        rows.push(vec![
            c.kind.clone(),
            c.label.clone(),
            identity,
            c.devices.iter().map(|d| d.hostname.as_str()).collect::<Vec<_>>().join(","),
            users.join(","),
            time(c.last_seen_ms),
            policy.status(c, people).into(),
        ]);
    }
    Ok(table(&rows, list.is_empty().then_some("No connectors reported yet.")))
}

pub fn device(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    id: &str,
    policy: &Policy,
    as_json: bool,
) -> anyhow::Result<String> {
    if as_json {
        let v = device_value(store, id, policy)?.ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let d = store.device(id)?.ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
    let connectors = store.device_connectors(id)?;
    let obs = store.count_observations(id)?;
    let mut out = format!(
        "Device {}\n  hostname:   {}\n  os:         {} {}\n  assurance:  {} (key backend {})\n  enrolled:   {}\n  last seen:  {}\n  attested:   {}\n  clock:      {}\n  users:      {}\n  sequence:   {} ({} observations)\n\n",
        d.id,
        printable(&d.hostname),
        printable(&d.os),
        printable(&d.os_version),
        d.assurance,
        printable(&d.key_backend),
        time(d.enrolled_at_ms),
        d.last_seen_ms.map_or_else(|| "never".into(), time),
        d.last_attested_ms.map_or_else(|| "never".into(), time),
        d.clock_skew_ms.map_or_else(|| "unknown".into(), skew),
        printable(&d.users.join(", ")),
        d.seq_head,
        obs
    );
    out.push_str(&render_connectors(&connectors, policy, &judged_people(store, policy)?, false)?);
    Ok(out)
}

/// `triage --user U --at T`: the person (by userName or email), how each OS account was
/// attributed, and on every device where one of their accounts had a session or a connector
/// at T: the device's assurance, the sessions, and everything present then.
pub fn user_at_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    policy: &Policy,
    user: &str,
    at_ms: i64,
) -> anyhow::Result<Option<Value>> {
    // Whoever the name can mean, then everyone who could be behind their accounts' names:
    // attribution among those is attribution among everyone, read through an index.
    let named = store.people_by_keys(&[user.to_owned()])?;
    let Some(person) = named
        .iter()
        .find(|p| {
            p.deleted_at_ms.is_none()
                && (p.user_name.eq_ignore_ascii_case(user)
                    || p.emails.iter().any(|e| e.eq_ignore_ascii_case(user)))
        })
        .or_else(|| named.iter().find(|p| p.user_name.eq_ignore_ascii_case(user)))
    else {
        return Ok(None);
    };
    let accounts = policy.accounts_of(person);
    let sessions = store.sessions_of_users_at(&accounts, at_ms)?;
    let theirs = store.presence_of_users_at(&accounts, at_ms)?;
    let mut keys: Vec<String> = accounts.iter().flat_map(|a| policy.keys_for(a)).collect();
    let mut devices: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for id in sessions.iter().map(|s| &s.device_id).chain(theirs.iter().map(|p| &p.device_id)) {
        devices.entry(id.clone()).or_default();
    }
    let mut present_by_device = std::collections::BTreeMap::new();
    for id in devices.keys() {
        let present = store.present_at(id, at_ms)?;
        keys.extend(present.iter().filter_map(|p| p.os_user.as_deref()).flat_map(|u| policy.keys_for(u)));
        present_by_device.insert(id.clone(), present);
    }
    keys.sort();
    keys.dedup();
    let people = People::new(store.people_by_keys(&keys)?);
    let is_theirs = |os_user: &str| {
        let a = policy.attribute_among(&people, os_user);
        a.person.as_ref().is_some_and(|p| p.id == person.id).then_some(a)
    };
    // Only the accounts that can be theirs were looked up (indexed), then each is attributed
    // properly: an account shared by name with someone else stays `unknown` and is dropped.
    for s in &sessions {
        if let Some(a) = is_theirs(&s.os_user) {
            devices.entry(s.device_id.clone()).or_default().push(json!({
                "os_user": s.os_user, "terminal": s.terminal, "host": s.host, "since": time(s.started_at_ms),
                "attribution": a.confidence, "how": a.how, "evidence_seq": s.appeared_seq,
            }));
        }
    }
    let mine: std::collections::BTreeSet<&str> = sessions
        .iter()
        .filter(|s| is_theirs(&s.os_user).is_some())
        .map(|s| s.device_id.as_str())
        .chain(
            theirs
                .iter()
                .filter(|p| p.os_user.as_deref().and_then(is_theirs).is_some())
                .map(|p| p.device_id.as_str()),
        )
        .collect();
    let mut out = Vec::new();
    for (id, sessions) in devices {
        if !mine.contains(id.as_str()) {
            continue;
        }
        let Some(d) = store.device(&id)? else { continue };
        let present: Vec<Value> = present_by_device
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let mut v = presence_json(p);
                let owner = p.os_user.as_deref().map(|u| policy.attribute_among(&people, u));
                v["owner"] =
                    json!(owner.as_ref().and_then(|o| o.person.as_ref()).map(|p| p.user_name.clone()));
                v["attribution"] = json!(owner.as_ref().map_or("unknown", |o| o.confidence));
                v
            })
            .collect();
        out.push(json!({
            "device_id": d.id, "hostname": d.hostname, "assurance": d.assurance,
            "sessions": sessions, "present": present,
        }));
    }
    let mut names = vec![person.user_name.clone()];
    names.extend(person.emails.iter().cloned());
    names.sort();
    names.dedup();
    let signins: Vec<Value> = store
        .signins_for(&names, at_ms - 12 * 3600 * 1000, at_ms)?
        .iter()
        .map(|s| {
            json!({"source": s.source, "at": time(s.at_ms), "outcome": s.outcome, "ip": s.ip, "app": s.app,
                   "device": s.device, "event": s.id})
        })
        .collect();
    Ok(Some(json!({
        "at": time(at_ms),
        // IdP sign-ins in the 12 hours before T, newest first.
        "signins": signins,
        "person": {
            "user_name": person.user_name, "display_name": person.display_name, "active": person.active,
            "deprovisioned_at": opt_time(person.deprovisioned_at_ms), "accounts": policy.accounts_of(person),
        },
        "devices": out,
    })))
}

/// `triage --connector C` / `--token FP`: where an access path is and was, on which devices,
/// under which accounts, owned by whom, with the evidence sequence numbers.
pub fn connector_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + DirectiveStore + ?Sized),
    policy: &Policy,
    key: &str,
) -> anyhow::Result<Option<Value>> {
    let Some(c) = store.connector(key)? else { return Ok(None) };
    let presence = store.connector_presence(key)?;
    let mut keys: Vec<String> =
        presence.iter().filter_map(|p| p.os_user.as_deref()).flat_map(|u| policy.keys_for(u)).collect();
    keys.extend(c.devices.iter().filter_map(|d| d.user.as_deref()).flat_map(|u| policy.keys_for(u)));
    keys.sort();
    keys.dedup();
    let people = People::new(store.people_by_keys(&keys)?);
    let mut devices: std::collections::BTreeMap<String, Option<Device>> = Default::default();
    for p in &presence {
        if !devices.contains_key(&p.device_id) {
            devices.insert(p.device_id.clone(), store.device(&p.device_id)?);
        }
    }
    let history: Vec<Value> = presence
        .iter()
        .map(|p| {
            let mut v = presence_json(p);
            let d = devices.get(&p.device_id).and_then(Option::as_ref);
            v["device_id"] = json!(p.device_id);
            v["hostname"] = json!(d.map(|d| d.hostname.clone()));
            v["assurance"] = json!(d.map(|d| d.assurance.clone()));
            let owner = p.os_user.as_deref().map(|u| policy.attribute_among(&people, u));
            v["owner"] = json!(owner.as_ref().and_then(|o| o.person.as_ref()).map(|p| p.user_name.clone()));
            v["attribution"] = json!(owner.as_ref().map_or("unknown", |o| o.confidence));
            v
        })
        .collect();
    let mut v = connector_json(&c, policy, &people);
    v["presence"] = Value::Array(history);
    v["directives"] = Value::Array(store.directives_for_connector(key)?.iter().map(directive_json).collect());
    Ok(Some(v))
}

pub fn revoked_value(issued: &crate::revoke::Issued) -> Value {
    json!({
        "connector": issued.connector,
        "action": issued.action,
        "directives": issued.directives.iter().map(directive_json).collect::<Vec<_>>(),
    })
}

/// A device clock's offset from the collector's, for people.
fn skew(ms: i64) -> String {
    let secs = ms / 1000;
    match secs.abs() {
        0..=2 => "in step with the collector".into(),
        s if s < 120 => format!("{s} s {}", if secs > 0 { "ahead" } else { "behind" }),
        s => format!(
            "{} {} (its times outside the plausible window are stored as received)",
            humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs())),
            if secs > 0 { "ahead" } else { "behind" }
        ),
    }
}

/// `revoke CONNECTOR`: what was issued, for people or scripts.
pub fn revoked(issued: &crate::revoke::Issued, as_json: bool) -> anyhow::Result<String> {
    if as_json {
        return Ok(serde_json::to_string_pretty(&revoked_value(issued))? + "\n");
    }
    let mut out = format!(
        "revoked {}: {} directive(s) issued ({}); agents in enforce mode act, others report\n",
        issued.connector,
        issued.directives.len(),
        issued.action
    );
    for d in &issued.directives {
        out.push_str(&format!("  {}  device {}\n", d.id, d.device_id));
    }
    Ok(out)
}

/// Every finding, as JSON.
pub fn findings_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    policy: &Policy,
    now_ms: i64,
) -> anyhow::Result<Value> {
    Ok(Value::Array(crate::findings::compute(store, policy, now_ms)?.iter().map(|f| f.to_json()).collect()))
}

/// `findings` as a table or JSON.
pub fn findings(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    policy: &Policy,
    now_ms: i64,
    as_json: bool,
) -> anyhow::Result<String> {
    let list = crate::findings::compute(store, policy, now_ms)?;
    if as_json {
        let v: Vec<Value> = list.iter().map(|f| f.to_json()).collect();
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows =
        vec![vec!["SINCE".into(), "KIND".into(), "SEVERITY".into(), "SUBJECT".into(), "DEVICE".into()]];
    for f in &list {
        rows.push(vec![
            time(f.first_seen_ms),
            f.kind.into(),
            f.severity.into(),
            f.subject.clone(),
            f.device_id.clone().unwrap_or_default(),
        ]);
    }
    Ok(table(&rows, list.is_empty().then_some("No findings.")))
}

fn presence_json(p: &Presence) -> Value {
    json!({
        "connector": p.connector_key,
        "kind": p.kind,
        "label": p.label,
        "where": p.locus,
        "user": p.os_user,
        "appeared_at": time(p.appeared_at_ms),
        "disappeared_at": opt_time(p.disappeared_at_ms),
        // References into the device's signed batches: the observations that opened and
        // closed this interval.
        "appeared_seq": p.appeared_seq,
        "disappeared_seq": p.disappeared_seq,
    })
}

/// `triage --device D --at T`: the device, its assurance, and what was on it at that instant.
pub fn device_at(
    store: &(impl DeviceStore + ReadModel + ?Sized),
    id: &str,
    at_ms: i64,
    as_json: bool,
) -> anyhow::Result<String> {
    if as_json {
        let v = device_at_value(store, id, at_ms)?.ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let d = store.device(id)?.ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
    let present = store.present_at(id, at_ms)?;
    let mut out = format!(
        "Device {} ({}, {} {}) at {}: assurance {}\n\n",
        d.id,
        printable(&d.hostname),
        printable(&d.os),
        printable(&d.os_version),
        time(at_ms),
        d.assurance
    );
    let mut rows = vec![vec![
        "KIND".into(),
        "WHAT".into(),
        "USER".into(),
        "WHERE".into(),
        "SINCE".into(),
        "EVIDENCE".into(),
    ]];
    for p in &present {
        rows.push(vec![
            p.kind.clone(),
            p.label.clone(),
            p.os_user.clone().unwrap_or_default(),
            p.locus.clone(),
            time(p.appeared_at_ms),
            format!("seq {}", p.appeared_seq),
        ]);
    }
    out.push_str(&table(&rows, present.is_empty().then_some("Nothing was present.")));
    Ok(out)
}

/// Text a device (or anyone) supplied, made safe for a terminal: control characters
/// (escape sequences that could rewrite the screen or the title), and bidirectional
/// overrides that reorder what is shown, are written as visible `\u{…}` escapes.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Rows as aligned columns, every cell through [`printable`].
pub(crate) fn table(rows: &[Vec<String>], empty: Option<&str>) -> String {
    if let Some(msg) = empty {
        return format!("{msg}\n");
    }
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| printable(c).into_owned()).collect()).collect();
    let rows = rows.as_slice();
    let cols = rows[0].len();
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
