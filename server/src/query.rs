//! Output of the query commands (`devices`, `connectors`, `device ID`), as JSON for scripts
//! or a table for people. Reads the same data dir a running collector writes (SQLite WAL).

use crate::clock::rfc3339 as time;

use crate::policy::{People, Policy};
use crate::responses::{self, Owner};
use crate::store::{
    ActivityStore, Connector, Device, DeviceStore, DirectiveStore, PeopleStore, ReadModel, RegisterStore,
    Store,
};

pub mod activity;

pub use activity::activity_value;

/// An instant given by a person, in Unix ms: RFC 3339 (`2026-11-29T10:00:00Z`), `now`, or
/// a duration before now (`7d ago`, `-12h`).
pub fn parse_instant(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(d) = s.strip_suffix(" ago").or_else(|| s.strip_prefix('-')) {
        return humantime::parse_duration(d.trim())
            .map(|d| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            .map_err(|e| format!("{s:?} is not a duration before now like \"7d ago\" or \"-12h\": {e}"));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not a time like 2026-11-29T10:00:00Z, \"now\" or \"7d ago\": {e}"))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).map_err(|e| e.to_string())
        })
}

/// A device as listed (the CLI's `devices --json`, `GET /api/v1/devices`).
pub fn device_json(d: &Device, observations: u64) -> responses::Device {
    responses::Device::new(d, observations)
}

/// The people connectors are judged and owned by (owners, approvals by group).
pub fn judged_people(store: &(impl PeopleStore + ?Sized), _policy: &Policy) -> anyhow::Result<People> {
    Ok(People::new(store.people_all()?))
}

/// A connector as listed: its judgement (status and what decided it) and owner.
pub fn connector_json(c: &Connector, policy: &Policy, people: &People) -> responses::Connector {
    let judged = policy.judge(c, people, crate::clock::now_ms());
    let owner = crate::register::owner_of(c, policy, people);
    let by = policy.authorization(c, owner.person.as_ref()).map(responses::AuthorizedBy::from);
    responses::Connector::new(c, &judged, crate::register::owner_json(&owner, c), by)
}

/// Who an OS account belongs to under the policy, among `people`.
fn owner(policy: &Policy, people: &People, os_user: Option<&str>) -> Owner {
    let a = os_user.map(|u| policy.attribute_among(people, u));
    Owner {
        user_name: a.as_ref().and_then(|o| o.person.as_ref()).map(|p| p.user_name.clone()),
        attribution: a.as_ref().map_or("unknown", |o| o.confidence),
    }
}

/// Every device (the CLI's `devices --json` and `GET /api/v1/devices`).
pub fn devices_value(store: &dyn Store) -> anyhow::Result<Vec<responses::Device>> {
    store.devices()?.iter().map(|d| Ok(device_json(d, store.count_observations(&d.id)?))).collect()
}

/// Which catalog is served and which each device runs (the CLI's `catalog status --json`
/// and `GET /api/v1/catalog/status`); `served` is the installed catalog's version and
/// whether it verifies under the collector key.
pub fn catalog_status_value(
    store: &dyn Store,
    served: Option<(u64, bool)>,
) -> anyhow::Result<responses::CatalogStatus> {
    let version = served.map(|(v, _)| v);
    Ok(responses::CatalogStatus {
        builtin_version: crate::catalog::served::builtin_version(),
        devices: store
            .catalog_statuses()?
            .iter()
            .map(|d| responses::DeviceCatalog::new(d, version))
            .collect(),
        served_verifies: served.map(|(_, ok)| ok),
        served_version: version,
    })
}

/// `catalog status`: the served version, then one line per device.
pub fn catalog_status(
    store: &dyn Store,
    served: Option<(u64, bool)>,
    as_json: bool,
) -> anyhow::Result<String> {
    let v = catalog_status_value(store, served)?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = match (v.served_version, v.served_verifies) {
        (Some(s), Some(false)) => format!(
            "Serving catalog version {s} (built into agents: {}), which does NOT verify with the collector key \
             (changed after signing?): agents refuse it; install it again.\n",
            v.builtin_version
        ),
        (Some(s), _) => format!("Serving catalog version {s} (built into agents: {}).\n", v.builtin_version),
        (None, _) => format!(
            "Serving no catalog update: agents run their built-in catalog (version {} in this release).\n",
            v.builtin_version
        ),
    };
    let mut rows =
        vec![vec!["DEVICE".into(), "HOSTNAME".into(), "VERSION".into(), "REPORTED".into(), "STATUS".into()]];
    for d in &v.devices {
        let status = match (&d.error, d.current) {
            // Device-supplied text, made safe for a terminal like every other.
            (Some(e), _) => format!("refused: {}", printable(e)),
            (None, true) => "current".into(),
            (None, false) if d.version.is_none() => "unknown (agent does not report its catalog)".into(),
            (None, false) => "behind".into(),
        };
        rows.push(vec![
            d.device_id.clone(),
            printable(&d.hostname).into_owned(),
            d.version.map_or_else(|| "-".into(), |v| v.to_string()),
            d.reported_at.clone().unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    out.push_str(&table(&rows, v.devices.is_empty().then_some("No devices enrolled.")));
    Ok(out)
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
    /// Seen under: a person (userName or e-mail: any account attributed to them) or an OS
    /// account.
    pub user: Option<String>,
    /// Owned by: a person (userName or e-mail) or an OS account (the person it is attributed
    /// to; an account attributed to nobody owns what only it holds).
    pub owner: Option<String>,
}

/// A [`ConnectorFilter`] with its names resolved once, against the people.
pub struct Matcher<'a> {
    filter: &'a ConnectorFilter,
    user: Option<crate::register::Named>,
    owner: Option<crate::register::Named>,
}

impl ConnectorFilter {
    /// Resolves `user` and `owner` among `people`.
    pub fn resolve<'a>(&'a self, policy: &Policy, people: &People) -> Matcher<'a> {
        let named =
            |n: &Option<String>| n.as_deref().map(|n| crate::register::Named::resolve(n, policy, people));
        Matcher { filter: self, user: named(&self.user), owner: named(&self.owner) }
    }
}

impl Matcher<'_> {
    pub fn matches(&self, c: &Connector, policy: &Policy, people: &People) -> bool {
        let f = self.filter;
        f.kind.as_ref().is_none_or(|k| *k == c.kind)
            && f.status.as_ref().is_none_or(|s| s == policy.status(c, people))
            && self.user.as_ref().is_none_or(|u| u.holds(c, policy, people))
            && self.owner.as_ref().is_none_or(|o| o.owns(c, policy, people))
    }

    /// What to say when nothing matched: whom the names were taken to mean.
    pub fn empty_note(&self) -> String {
        let say = |n: &crate::register::Named| match n {
            crate::register::Named::Person(p) => format!("person {}", p.user_name),
            crate::register::Named::Account(a, Some(p)) => format!("OS account {a} ({})", p.user_name),
            crate::register::Named::Account(a, None) => {
                format!("OS account {a} (no person provisioned matches it)")
            }
        };
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(format!("seen under {}", say(u)));
        }
        if let Some(o) = &self.owner {
            parts.push(format!("owned by {}", say(o)));
        }
        if parts.is_empty() {
            "No connectors reported yet.".into()
        } else {
            format!("No connectors {}.", parts.join(" and "))
        }
    }
}

/// Connectors, filtered.
pub fn connectors_value(
    store: &(impl PeopleStore + ReadModel + ?Sized),
    filter: &ConnectorFilter,
    policy: &Policy,
) -> anyhow::Result<Vec<responses::Connector>> {
    let people = judged_people(store, policy)?;
    let m = filter.resolve(policy, &people);
    Ok(store
        .connectors()?
        .iter()
        .filter(|c| m.matches(c, policy, &people))
        .map(|c| connector_json(c, policy, &people))
        .collect())
}

/// How many presence intervals a device view lists.
const HISTORY: usize = 200;

/// One device with its connectors, or None.
pub fn device_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ?Sized),
    id: &str,
    policy: &Policy,
) -> anyhow::Result<Option<responses::DeviceDetail>> {
    let Some(d) = store.device(id)? else { return Ok(None) };
    let device = device_json(&d, store.count_observations(id)?);
    let people = judged_people(store, policy)?;
    let connectors =
        store.device_connectors(id)?.iter().map(|c| connector_json(c, policy, &people)).collect();
    // The most recent presence intervals, newest first: what came and went on it.
    let history =
        store.presence_history(id)?.iter().rev().take(HISTORY).map(responses::Presence::from).collect();
    Ok(Some(responses::DeviceDetail::new(device, connectors, history)))
}

/// What was on a device at an instant, or None for an unknown device.
pub fn device_at_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    id: &str,
    at_ms: i64,
) -> anyhow::Result<Option<responses::DeviceAt>> {
    let Some(d) = store.device(id)? else { return Ok(None) };
    Ok(Some(responses::DeviceAt {
        activity: activity::active_at(store, policy, Some(vec![id.to_owned()]), None, at_ms)?,
        at: time(at_ms),
        device: device_json(&d, store.count_observations(id)?),
        present: store.present_at(id, at_ms)?.iter().map(responses::Presence::from).collect(),
        sessions: store.sessions_at(Some(id), at_ms)?.iter().map(responses::SessionAt::from).collect(),
    }))
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
    let m = filter.resolve(policy, &people);
    let list: Vec<Connector> =
        store.connectors()?.into_iter().filter(|c| m.matches(c, policy, &people)).collect();
    render_connectors(&list, policy, &people, as_json, &m.empty_note())
}

fn render_connectors(
    list: &[Connector],
    policy: &Policy,
    people: &People,
    as_json: bool,
    empty: &str,
) -> anyhow::Result<String> {
    if as_json {
        let v: Vec<responses::Connector> = list.iter().map(|c| connector_json(c, policy, people)).collect();
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows = vec![vec![
        "KIND".into(),
        "WHAT".into(),
        "IDENTITY".into(),
        "DEVICES".into(),
        "USERS".into(),
        "OWNER".into(),
        "LAST SEEN".into(),
        "STATUS".into(),
        "ACCOUNT".into(),
    ]];
    for c in list {
        let identity = c.key.split_once(':').map_or(c.key.as_str(), |(_, r)| r).to_owned();
        let mut users: Vec<String> = c.devices.iter().filter_map(|d| d.user.clone()).collect();
        users.dedup();
        let o = crate::register::owner_of(c, policy, people);
        let owner = match (&o.person, o.source) {
            (Some(p), "assigned") => format!("{} (assigned)", p.user_name),
            (Some(p), _) if p.deprovisioned_at_ms.is_some() => format!("{} (deprovisioned)", p.user_name),
            (Some(p), _) => p.user_name.clone(),
            (None, "shared") => "- (shared)".into(),
            (None, _) => "-".into(),
        };
        // The signed-in account and its class, last so a long address widens nothing else.
        let account = policy
            .authorization(c, o.person.as_ref())
            .map_or_else(String::new, |a| format!("{} ({})", a.account, a.class.as_str()));
        rows.push(vec![
            c.kind.clone(),
            printable(&c.label).into_owned(),
            identity,
            c.devices.iter().map(|d| d.hostname.as_str()).collect::<Vec<_>>().join(","),
            users.join(","),
            owner,
            time(c.last_seen_ms),
            policy.status(c, people).into(),
            account,
        ]);
    }
    Ok(table(&rows, list.is_empty().then_some(empty)))
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
    let empty = "No connectors reported yet.";
    out.push_str(&render_connectors(&connectors, policy, &judged_people(store, policy)?, false, empty)?);
    Ok(out)
}

/// `triage --user U --at T`: the person (by userName or email), how each OS account was
/// attributed, and on every device where one of their accounts had a session or a connector
/// at T: the device's assurance, the sessions, and everything present then.
pub fn user_at_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    user: &str,
    at_ms: i64,
) -> anyhow::Result<Option<responses::PersonAt>> {
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
    let mut devices: std::collections::BTreeMap<String, Vec<responses::PersonSession>> = Default::default();
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
            devices.entry(s.device_id.clone()).or_default().push(responses::PersonSession::new(
                s,
                a.confidence,
                a.how,
            ));
        }
    }
    // Their AI sessions active then, by device (each attributed as the rest is).
    let mut active: std::collections::BTreeMap<String, Vec<responses::ActivitySession>> = Default::default();
    for a in activity::active_at(store, policy, None, Some(accounts.clone()), at_ms)? {
        if a.os_user.as_deref().and_then(is_theirs).is_some() {
            active.entry(a.device_id.clone()).or_default().push(a);
        }
    }
    for id in active.keys() {
        if !devices.contains_key(id) {
            devices.insert(id.clone(), Vec::new());
            present_by_device.insert(id.clone(), store.present_at(id, at_ms)?);
        }
    }
    let active_on: Vec<String> = active.keys().cloned().collect();
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
        .chain(active_on.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for (id, sessions) in devices {
        if !mine.contains(id.as_str()) {
            continue;
        }
        let Some(d) = store.device(&id)? else { continue };
        let present = present_by_device
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| responses::OwnedPresence::new(p, owner(policy, &people, p.os_user.as_deref())))
            .collect();
        out.push(responses::PersonDevice {
            activity: active.remove(&id).unwrap_or_default(),
            assurance: d.assurance,
            device_id: d.id,
            hostname: d.hostname,
            present,
            sessions,
        });
    }
    let mut names = vec![person.user_name.clone()];
    names.extend(person.emails.iter().cloned());
    names.sort();
    names.dedup();
    // IdP sign-ins in the 12 hours before T, newest first.
    let signins = store
        .signins_for(&names, at_ms - 12 * 3600 * 1000, at_ms)?
        .iter()
        .map(responses::SignInEvent::from)
        .collect();
    Ok(Some(responses::PersonAt {
        at: time(at_ms),
        devices: out,
        person: responses::PersonSummary::new(person, policy.accounts_of(person)),
        signins,
    }))
}

/// `triage --connector C` / `--token FP`: where an access path is and was, on which devices,
/// under which accounts, owned by whom, with the evidence sequence numbers.
pub fn connector_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + DirectiveStore + RegisterStore + ?Sized),
    policy: &Policy,
    key: &str,
) -> anyhow::Result<Option<responses::Connector>> {
    let Some(c) = store.connector(key)? else { return Ok(None) };
    let presence = store.connector_presence(key)?;
    let mut keys: Vec<String> =
        presence.iter().filter_map(|p| p.os_user.as_deref()).flat_map(|u| policy.keys_for(u)).collect();
    keys.extend(c.devices.iter().filter_map(|d| d.user.as_deref()).flat_map(|u| policy.keys_for(u)));
    keys.sort();
    keys.dedup();
    let mut list = store.people_by_keys(&keys)?;
    // Approvals by group judge everyone they name; an assigned owner may hold none of its accounts.
    if policy.approved.as_ref().is_some_and(|a| !a.groups.is_empty()) {
        list = store.people_all()?;
    } else if let Some(a) = &c.owner
        && !list.iter().any(|p| p.id == a.person_id)
    {
        list.extend(store.person(&a.person_id)?);
    }
    let people = People::new(list);
    let mut devices: std::collections::BTreeMap<String, Option<Device>> = Default::default();
    for p in &presence {
        if !devices.contains_key(&p.device_id) {
            devices.insert(p.device_id.clone(), store.device(&p.device_id)?);
        }
    }
    let history = presence
        .iter()
        .map(|p| {
            let d = devices.get(&p.device_id).and_then(Option::as_ref);
            responses::ConnectorPresence::new(p, d, owner(policy, &people, p.os_user.as_deref()))
        })
        .collect();
    let mut v = connector_json(&c, policy, &people);
    let hostnames: std::collections::HashMap<&str, &str> =
        c.devices.iter().map(|d| (d.device_id.as_str(), d.hostname.as_str())).collect();
    let origin = crate::register::origin(&presence, |id| {
        devices
            .get(id)
            .and_then(Option::as_ref)
            .map(|d| d.hostname.clone())
            .or_else(|| hostnames.get(id).map(|h| (*h).to_owned()))
    });
    v.history = Some(crate::register::history(&c, &store.connector_events(key)?, origin.as_ref(), &v.status));
    v.origin = origin;
    v.revocation_method = Some(crate::register::revocation_method(&c));
    v.presence = Some(history);
    v.directives = Some(
        store
            .directives_for_connector(key)?
            .iter()
            .map(|d| responses::Directive::from(d).named(&hostnames))
            .collect(),
    );
    Ok(Some(v))
}

/// `connector KEY` for people: the register entry.
pub fn render_register(v: &responses::Connector) -> String {
    let p = |s: &str| printable(s).into_owned();
    let mut out = format!("{} {} ({})\n", v.kind, p(&v.display_name), v.key);
    let owner = match &v.owner {
        Some(o) => format!(
            "{}{} — {}{}{}",
            o.user_name,
            o.display_name.as_deref().map(|n| format!(" ({})", p(n))).unwrap_or_default(),
            o.source,
            if o.source == "attributed" { format!(", {}", o.attribution) } else { String::new() },
            if o.active { "" } else { ", DEPROVISIONED" }
        ),
        None => "nobody (no account it is under is attributed to one person)".into(),
    };
    out += &format!("  owner:        {owner}\n");
    if let Some(r) = v.owner.as_ref().and_then(|o| o.reason.as_deref()) {
        out += &format!("                reason: {}\n", p(r));
    }
    out += &format!("  status:       {} (decided by {})\n", v.status, v.status_source);
    if let Some(d) = &v.decision {
        out += &format!(
            "  decision:     {} by {} at {}{}{}\n",
            d.status,
            p(&d.decided_by),
            d.decided_at,
            d.expires_at.as_deref().map(|t| format!(", until {t}")).unwrap_or_default(),
            d.reason.as_deref().map(|r| format!(": {}", p(r))).unwrap_or_default()
        );
    }
    if let Some(o) = &v.origin {
        out += &format!(
            "  origin:       {} ({}) as {} at {}, evidence seq {}\n                {}\n",
            o.hostname.as_deref().map(p).unwrap_or_else(|| "?".into()),
            o.device_id,
            o.os_user.as_deref().map(p).unwrap_or_else(|| "-".into()),
            o.first_seen,
            o.appeared_seq,
            p(&o.place)
        );
    }
    if let Some(m) = &v.revocation_method {
        let local =
            m.local_action.clone().unwrap_or_else(|| format!("none ({})", m.note.as_deref().unwrap_or("")));
        out += &format!("  revoke:       on devices: {local}\n");
        if let Some(page) = &m.provider_page {
            out += &format!("                at the provider: {page}\n");
        } else if let Some(a) = &m.at_provider {
            out += &format!("                {a}\n");
        }
    }
    let present = v.devices.iter().filter(|d| d.present).count();
    out += &format!("  devices:      {present} now, {} ever\n", v.devices.len());
    out += &format!(
        "  last used:    {}\n",
        v.last_used.as_deref().unwrap_or("never (no AI session through it is known)")
    );
    if let Some(h) = &v.history {
        out += "  history:\n";
        for e in h {
            out += &format!(
                "    {}  {:<20} {}{}\n",
                e.at,
                e.event,
                p(&e.actor),
                e.reason.as_deref().map(|r| format!(": {}", p(r))).unwrap_or_default()
            );
        }
    }
    out
}

pub fn revoked_value(issued: &crate::revoke::Issued) -> responses::Revoked {
    responses::Revoked::from(issued)
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

/// Every finding.
pub fn findings_value(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
) -> anyhow::Result<Vec<responses::Finding>> {
    Ok(crate::findings::compute(store, policy, now_ms)?.iter().map(responses::Finding::from).collect())
}

/// `findings` as a table or JSON.
pub fn findings(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
    as_json: bool,
) -> anyhow::Result<String> {
    let list = crate::findings::compute(store, policy, now_ms)?;
    if as_json {
        let v: Vec<responses::Finding> = list.iter().map(responses::Finding::from).collect();
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

/// `offboarding status`: the playbook, then one row per connector of each deprovisioned
/// person and per unowned connector, with the devices that enforced its revocation.
pub fn offboarding(
    store: &(impl ReadModel + PeopleStore + RegisterStore + DeviceStore + ?Sized),
    policy: &Policy,
    now_ms: i64,
    as_json: bool,
) -> anyhow::Result<String> {
    let v = crate::offboarding::status(store, policy, now_ms)?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = format!(
        "playbook: {} after {}{}{}\n",
        v.action,
        v.grace,
        v.kinds.as_ref().map(|k| format!(" (only {})", k.join(", "))).unwrap_or_default(),
        match (&v.unowned_after, v.unowned_action) {
            (Some(after), Some(action)) => format!("; unowned connectors: {action} after {after}"),
            _ => String::new(),
        }
    );
    let mut rows = vec![
        ["PERSON", "DEPROVISIONED", "CONNECTOR", "PLAYBOOK", "TAKEN", "ENFORCED"].map(String::from).to_vec(),
    ];
    let row = |who: &str, when: &str, c: &responses::PlaybookConnector| {
        let enforced = c.revocation.as_ref().map_or_else(String::new, |r| {
            let settled = |o: &Option<String>| {
                o.as_deref()
                    .and_then(crate::domain::Outcome::parse)
                    .is_some_and(crate::domain::Outcome::settles_revocation)
            };
            let done = r.devices.iter().filter(|d| settled(&d.outcome)).count();
            format!("{done}/{}", r.devices.len())
        });
        vec![
            who.to_owned(),
            when.to_owned(),
            c.key.clone(),
            c.playbook.clone(),
            c.action_taken.as_ref().map(|e| e.event.clone()).unwrap_or_default(),
            enforced,
        ]
    };
    for p in &v.people {
        if p.connectors.is_empty() {
            rows.push(vec![
                p.user_name.clone(),
                p.deprovisioned_at.clone(),
                "-".into(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for c in &p.connectors {
            rows.push(row(&p.user_name, &p.deprovisioned_at, c));
        }
    }
    for c in &v.unowned {
        rows.push(row("(nobody)", "", c));
    }
    let empty = (rows.len() == 1).then_some("No deprovisioned people and no unowned connectors.");
    out.push_str(&table(&rows, empty));
    Ok(out)
}

/// `triage --device D --at T`: the device, its assurance, and what was on it at that instant.
pub fn device_at(
    store: &(impl DeviceStore + PeopleStore + ReadModel + ActivityStore + ?Sized),
    policy: &Policy,
    id: &str,
    at_ms: i64,
    as_json: bool,
) -> anyhow::Result<String> {
    if as_json {
        let v =
            device_at_value(store, policy, id, at_ms)?.ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
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
    let active = activity::active_at(store, policy, Some(vec![id.to_owned()]), None, at_ms)?;
    if !active.is_empty() {
        out.push_str("\nAI activity then:\n");
        out.push_str(&activity::render(&responses::ActivityPage {
            query: Default::default(),
            total: active.len() as u64,
            sessions: active,
        }));
    }
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
