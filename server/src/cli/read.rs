//! Commands that read: devices, connectors, findings, offboarding status, one device, triage. Each reads the
//! data dir, or with `--server` asks a running collector's API for the same JSON.

use super::output::{print, print_json};
use super::{DataArgs, RemoteArgs};
use crate::query;
use crate::remote::encode;

pub(super) fn devices(
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    if let Some(out) = remote.call(|r| async move { r.get("/api/v1/devices").await })? {
        return print(&out);
    }
    print(&query::devices(data.store(db)?.as_ref(), json)?)
}

pub(super) fn connectors(
    filter: query::ConnectorFilter,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let q: Vec<String> = [
        ("kind", &filter.kind),
        ("status", &filter.status),
        ("user", &filter.user),
        ("owner", &filter.owner),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
    .collect();
    let path = format!("/api/v1/connectors?{}", q.join("&"));
    if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
        return print(&out);
    }
    print(&query::connectors(data.store(db)?.as_ref(), &filter, &data.policy()?, json)?)
}

/// `activity`: sessions matching, as a table or the API's JSON.
pub(super) fn activity(
    params: query::activity::ActivityParams,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let limit = params.limit.map(|l| l.to_string());
    let q: Vec<String> = [
        ("user", &params.user),
        ("device", &params.device),
        ("connector", &params.connector),
        ("since", &params.since),
        ("until", &params.until),
        ("limit", &limit),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
    .collect();
    let path = format!("/api/v1/activity?{}", q.join("&"));
    if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
        return print(&out);
    }
    let ask = params.check(crate::clock::now_ms())?;
    let page = query::activity::activity_value(data.store(db)?.as_ref(), &data.policy()?, &ask)?;
    if json {
        return print_json(&page);
    }
    print(&query::activity::render(&page))
}

/// `connector KEY`: its register entry.
pub(super) fn connector(
    key: &str,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/connectors/{}", encode(key));
    if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
        return print(&out);
    }
    let v = connector_or_bail(query::connector_value(data.store(db)?.as_ref(), &data.policy()?, key)?, key)?;
    if json {
        return print_json(&v);
    }
    print(&query::render_register(&v))
}

pub(super) fn findings(
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    if let Some(out) = remote.call(|r| async move { r.get("/api/v1/findings").await })? {
        return print(&out);
    }
    let policy = data.policy()?;
    print(&query::findings(data.store(db)?.as_ref(), &policy, crate::clock::now_ms(), json)?)
}

/// `offboarding status`: the playbook and where it stands.
pub(super) fn offboarding(
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    if let Some(out) = remote.call(|r| async move { r.get("/api/v1/offboarding").await })? {
        return print(&out);
    }
    let policy = data.policy()?;
    print(&query::offboarding(data.store(db)?.as_ref(), &policy, crate::clock::now_ms(), json)?)
}

pub(super) fn device(
    id: &str,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/devices/{}", encode(id));
    if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
        return print(&out);
    }
    let policy = data.policy()?;
    print(&query::device(data.store(db)?.as_ref(), id, &policy, json)?)
}

/// What triage looks at: exactly one of the four subject flags.
pub(super) enum Subject {
    Device(String),
    User(String),
    Token(String),
    Connector(String),
}

impl Subject {
    pub(super) fn from_flags(
        device: Option<String>,
        user: Option<String>,
        token: Option<String>,
        connector: Option<String>,
    ) -> anyhow::Result<Subject> {
        match (device, user, token, connector) {
            (Some(d), ..) => Ok(Subject::Device(d)),
            (None, Some(u), ..) => Ok(Subject::User(u)),
            (None, None, Some(t), _) => Ok(Subject::Token(t)),
            (None, None, None, Some(c)) => Ok(Subject::Connector(c)),
            _ => anyhow::bail!("triage needs --device, --user, --token or --connector"),
        }
    }
}

pub(super) fn triage(
    subject: Subject,
    at: Option<i64>,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    if remote.server.is_some() {
        // Millisecond precision: `--at now` must not move to the start of its second.
        let at_q =
            at.map(|t| format!("?at={}", encode(&crate::clock::rfc3339_millis(t)))).unwrap_or_default();
        let path = match &subject {
            Subject::Device(d) => format!("/api/v1/triage/device/{}{at_q}", encode(d)),
            Subject::User(u) => format!("/api/v1/triage/user/{}{at_q}", encode(u)),
            Subject::Token(t) => format!("/api/v1/triage/token/{}", encode(t)),
            Subject::Connector(c) => format!("/api/v1/triage/connector/{}", encode(c)),
        };
        if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
            return print(&out);
        }
    }
    let store = data.store(db)?;
    let policy = data.policy()?;
    let need_at = || at.ok_or_else(|| anyhow::anyhow!("--at TIME is required with --device and --user"));
    match subject {
        Subject::Device(d) => print(&query::device_at(store.as_ref(), &policy, &d, need_at()?, json)?),
        Subject::User(u) => print_json(
            &query::user_at_value(store.as_ref(), &policy, &u, need_at()?)?
                .ok_or_else(|| anyhow::anyhow!("no person {u} (provision them through SCIM)"))?,
        ),
        Subject::Token(t) => print_json(&connector_or_bail(
            query::connector_value(store.as_ref(), &policy, &format!("token:{t}"))?,
            &format!("token:{t}"),
        )?),
        Subject::Connector(key) => {
            print_json(&connector_or_bail(query::connector_value(store.as_ref(), &policy, &key)?, &key)?)
        }
    }
}

fn connector_or_bail<T>(v: Option<T>, key: &str) -> anyhow::Result<T> {
    v.ok_or_else(|| anyhow::anyhow!("no connector {key} has been reported"))
}

/// `catalog status`: the served catalog (from the data dir) and each device's version.
pub(super) fn catalog_status(
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    if let Some(out) = remote.call(|r| async move { r.get("/api/v1/catalog/status").await })? {
        return print(&out);
    }
    let spki = crate::pki::Pki::load_or_init(&data.data_dir, false)?.signing_key_spki();
    let served = crate::catalog::served::inspect(&data.data_dir, &spki)?;
    print(&query::catalog_status(data.store(db)?.as_ref(), served, json)?)
}
