//! Wire observations to storage records. The JSON kept per observation mirrors the agent's
//! `sightline.scan.v1` finding shape, so what the collector shows is what the agent reported.

use crate::domain::{Change, ObservationKind, Outcome};
use sightline_proto::directive;
use sightline_proto::pb::{self, observation::Item};

use crate::store::{ConnectorRef, Inventory, ObservationRecord, OutcomeRef, SessionRef};

/// A JSON object written straight from borrowed fields: no intermediate `Value`, one
/// allocation. Keys are listed sorted, as `serde_json::Value` would order them, so what is
/// stored is byte-for-byte what earlier collectors stored.
macro_rules! object {
    ($($k:literal : $v:expr),* $(,)?) => {{
        use serde::ser::{SerializeMap, Serializer};
        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut out);
        let written = (|| -> Result<(), serde_json::Error> {
            let mut m = ser.serialize_map(None)?;
            $( m.serialize_entry($k, &$v)?; )*
            m.end()
        })();
        // Writing to a Vec cannot fail and serde_json writes UTF-8; `null` covers the impossible.
        match written {
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| "null".to_owned()),
            Err(_) => "null".to_owned(),
        }
    }};
}

/// [`record`], with the device's times checked against the collector's receive time
/// ([`crate::clock`]): an implausible observation or session-start time is stored as the
/// receive time and the device's value is kept in the data (`device_observed_at_ms`,
/// `device_started_at_ms`). Returns the record and how many times were clamped.
pub fn record_received(o: &pb::Observation, received_ms: i64) -> (ObservationRecord, u32) {
    use crate::clock::DeviceTime;
    let mut r = record(o);
    let mut clamped = 0;
    if let DeviceTime::Clamped { stored, claimed } = DeviceTime::check(r.observed_at_ms, received_ms) {
        r.observed_at_ms = stored;
        append_field(&mut r.data, "device_observed_at_ms", claimed);
        clamped += 1;
    }
    if let Some(s) = r.session.as_mut()
        && let DeviceTime::Clamped { claimed, .. } = DeviceTime::check(s.started_at_ms, received_ms)
    {
        // A login cannot have begun after the observation that saw it.
        s.started_at_ms = r.observed_at_ms;
        append_field(&mut r.data, "device_started_at_ms", claimed);
        clamped += 1;
    }
    (r, clamped)
}

/// Adds `"key":value` to a JSON object written by `object!` (nothing for `null`).
fn append_field(data: &mut String, key: &str, value: i64) {
    if data.ends_with('}') {
        data.pop();
        if !data.ends_with('{') {
            data.push(',');
        }
        data.push_str(&format!("\"{key}\":{value}}}"));
    }
}

/// An agent's outcome in domain terms (an outcome this collector does not know is
/// `Unspecified`, as the wire says).
fn outcome(o: i32) -> Outcome {
    match pb::Outcome::try_from(o).unwrap_or(pb::Outcome::Unspecified) {
        pb::Outcome::Enforced => Outcome::Enforced,
        pb::Outcome::ReportOnly => Outcome::ReportOnly,
        pb::Outcome::NotPresent => Outcome::NotPresent,
        pb::Outcome::Unsupported => Outcome::Unsupported,
        pb::Outcome::Failed => Outcome::Failed,
        pb::Outcome::Refused => Outcome::Refused,
        pb::Outcome::Unspecified => Outcome::Unspecified,
    }
}

pub fn record(o: &pb::Observation) -> ObservationRecord {
    let change = match pb::Change::try_from(o.change).unwrap_or(pb::Change::Unspecified) {
        pb::Change::Snapshot => Change::Snapshot,
        pb::Change::Appeared => Change::Appeared,
        pb::Change::Changed => Change::Changed,
        pb::Change::Disappeared => Change::Disappeared,
        pb::Change::Unspecified => Change::Unspecified,
    };
    let (kind, connector, data) = match &o.item {
        Some(Item::Process(p)) => (
            ObservationKind::Process,
            Some(connector(format!("tool:{}", p.tool), "tool", &p.tool, &p.user, format!("pid:{}", p.pid))),
            object! {"exe": p.exe, "name": p.name, "pid": p.pid, "tool": p.tool, "user": p.user},
        ),
        Some(Item::App(a)) => (
            ObservationKind::App,
            Some(connector(format!("tool:{}", a.tool), "tool", &a.tool, &a.user, a.path.clone())),
            // The account key is written only when there is one, so rows without stay as
            // earlier collectors wrote them.
            match a.authorized_by.as_ref().map(Account::from) {
                Some(by) => object! {
                    "authorized_by": by, "bundle_id": a.bundle_id, "path": a.path, "tool": a.tool, "user": a.user,
                    "version": a.version,
                },
                None => {
                    object! {"bundle_id": a.bundle_id, "path": a.path, "tool": a.tool, "user": a.user, "version": a.version}
                }
            },
        ),
        Some(Item::Extension(e)) => (
            ObservationKind::Extension,
            Some(connector(
                format!("extension:{}", e.extension_id),
                "extension",
                e.tool.as_deref().unwrap_or(&e.name),
                &e.user,
                e.path.clone(),
            )),
            object! {
                "browser": e.browser, "enabled": e.enabled, "extension_id": e.extension_id,
                "host_permissions": e.host_permissions, "name": e.name, "path": e.path,
                "permissions": e.permissions, "profile": e.profile, "signals": e.signals, "tool": e.tool,
                "user": e.user, "version": e.version,
            },
        ),
        Some(Item::Token(t)) => (
            ObservationKind::Token,
            Some(connector(
                format!("token:{}", t.fingerprint),
                "token",
                &t.provider,
                &t.user,
                format!("{}#{}", t.path, t.locator.as_deref().unwrap_or("")),
            )),
            match t.authorized_by.as_ref().map(Account::from) {
                Some(by) => object! {
                    "authorized_by": by, "fingerprint": t.fingerprint, "locator": t.locator,
                    "mcp_server": t.mcp_server, "path": t.path, "provider": t.provider,
                    "source": token_source(t.source), "token_kind": token_kind(t.kind), "user": t.user,
                },
                None => object! {
                    "fingerprint": t.fingerprint, "locator": t.locator, "mcp_server": t.mcp_server, "path": t.path,
                    "provider": t.provider, "source": token_source(t.source), "token_kind": token_kind(t.kind),
                    "user": t.user,
                },
            },
        ),
        Some(Item::McpServer(m)) => {
            let target = m.url.as_deref().or(m.command.as_deref()).unwrap_or_default();
            let id =
                hex::encode(&ring::digest::digest(&ring::digest::SHA256, target.as_bytes()).as_ref()[..6]);
            (
                ObservationKind::McpServer,
                Some(connector(
                    format!("mcp:{}:{id}", m.name),
                    "mcp_server",
                    &m.name,
                    &m.user,
                    format!("{}#{}", m.path, m.client),
                )),
                object! {
                    "client": m.client, "command": m.command, "name": m.name, "path": m.path,
                    "transport": m.transport, "url": m.url, "user": m.user,
                },
            )
        }
        Some(Item::OsSession(s)) => (
            ObservationKind::OsSession,
            None,
            object! {"host": s.host, "started_at_ms": s.started_at_ms, "terminal": s.terminal, "user": s.user},
        ),
        Some(Item::DeviceInventory(d)) => (
            ObservationKind::DeviceInventory,
            None,
            object! {
                "agent_version": d.agent_version, "hostname": d.hostname, "os": d.os,
                "os_version": d.os_version, "users": d.users,
            },
        ),
        Some(Item::AgentHealth(h)) => (
            ObservationKind::AgentHealth,
            None,
            object! {
                "agent_version": h.agent_version, "cpu_percent": h.cpu_percent, "dropped": h.dropped,
                "last_error": h.last_error, "rss_bytes": h.rss_bytes, "scan_duration_ms": h.scan_duration_ms,
                "scan_errors": h.scan_errors, "spool_depth": h.spool_depth,
            },
        ),
        Some(Item::Gap(g)) => {
            (ObservationKind::Gap, None, object! {"dropped": g.dropped, "reason": g.reason})
        }
        Some(Item::ScanError(e)) => {
            (ObservationKind::ScanError, None, object! {"error": e.error, "path": e.path})
        }
        Some(Item::DirectiveOutcome(d)) => (
            ObservationKind::DirectiveOutcome,
            None,
            object! {
                "action": directive::action_name(d.action), "detail": d.detail, "directive_id": d.directive_id,
                "mode": d.mode, "outcome": directive::outcome_name(d.outcome), "target": d.target,
            },
        ),
        Some(Item::Activity(a)) => (
            ObservationKind::Activity,
            None,
            object! {
                "account": a.account.as_ref().map(Account::from), "credentials": a.credentials,
                "ended_at_ms": a.ended_at_ms, "format": a.format,
                "mcp": a.mcp.iter().map(|m| McpUse { calls: m.calls, server: &m.server, tools: &m.tools }).collect::<Vec<_>>(),
                "models": a.models, "project": a.project, "prompts": a.prompts, "session_id": a.session_id,
                "started_at_ms": a.started_at_ms, "tool": a.tool, "tool_calls": a.tool_calls, "user": a.user,
            },
        ),
        None => (ObservationKind::Unknown, None, "null".to_owned()),
    };
    let session = match &o.item {
        Some(Item::OsSession(s)) => Some(SessionRef {
            os_user: s.user.clone(),
            terminal: s.terminal.clone(),
            host: s.host.clone(),
            started_at_ms: s.started_at_ms,
        }),
        _ => None,
    };
    let directive = match &o.item {
        Some(Item::DirectiveOutcome(d)) if !d.directive_id.is_empty() => Some(OutcomeRef {
            directive_id: d.directive_id.clone(),
            outcome: outcome(d.outcome),
            detail: d.detail.clone(),
            mode: d.mode.clone(),
        }),
        _ => None,
    };
    ObservationRecord {
        seq: o.seq,
        observed_at_ms: o.observed_at_ms,
        change,
        kind,
        connector,
        session,
        directive,
        data,
    }
}

/// The last device inventory in a batch, if any.
pub fn inventory(batch: &pb::Batch) -> Option<Inventory> {
    batch.observations.iter().rev().find_map(|o| match &o.item {
        Some(Item::DeviceInventory(d)) => Some(Inventory {
            hostname: d.hostname.clone(),
            os: d.os.clone(),
            os_version: d.os_version.clone(),
            agent_version: d.agent_version.clone(),
            users: d.users.clone(),
        }),
        _ => None,
    })
}

/// One MCP server's use in a session, as stored (keys sorted).
#[derive(serde::Serialize)]
struct McpUse<'a> {
    calls: u32,
    server: &'a str,
    tools: &'a [String],
}

/// A provider account as stored: `{"account": …, "org": …}` (keys sorted, like every object here).
#[derive(serde::Serialize)]
struct Account<'a> {
    account: &'a str,
    org: Option<&'a str>,
}

impl<'a> From<&'a pb::ProviderAccount> for Account<'a> {
    fn from(a: &'a pb::ProviderAccount) -> Account<'a> {
        Account { account: &a.account, org: a.org.as_deref() }
    }
}

fn connector(
    key: String,
    kind: &'static str,
    label: &str,
    user: &Option<String>,
    locus: String,
) -> ConnectorRef {
    ConnectorRef { key, kind, label: label.to_owned(), user: user.clone(), locus }
}

fn token_kind(k: i32) -> &'static str {
    match pb::TokenKind::try_from(k).unwrap_or(pb::TokenKind::Unspecified) {
        pb::TokenKind::ApiKey => "api_key",
        pb::TokenKind::OauthAccess => "oauth_access",
        pb::TokenKind::OauthRefresh => "oauth_refresh",
        pb::TokenKind::Pat => "pat",
        pb::TokenKind::Unspecified => "unspecified",
    }
}

fn token_source(s: i32) -> &'static str {
    match pb::TokenSource::try_from(s).unwrap_or(pb::TokenSource::Unspecified) {
        pb::TokenSource::CredentialFile => "credential_file",
        pb::TokenSource::Dotenv => "dotenv",
        pb::TokenSource::ShellRc => "shell_rc",
        pb::TokenSource::McpConfig => "mcp_config",
        pb::TokenSource::IdeConfig => "ide_config",
        pb::TokenSource::SourceFile => "source_file",
        pb::TokenSource::ShellHistory => "shell_history",
        pb::TokenSource::Netrc => "netrc",
        pb::TokenSource::GitConfig => "git_config",
        pb::TokenSource::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(item: Item) -> pb::Observation {
        pb::Observation { seq: 7, observed_at_ms: 1, change: pb::Change::Appeared as i32, item: Some(item) }
    }

    /// What is stored must be what `serde_json::Value` would write for the same object
    /// (sorted keys, same escaping), so rows written before and after this encoder agree.
    #[test]
    fn data_is_canonical_json_with_every_field() {
        let items = [
            Item::Process(pb::ProcessItem {
                tool: "claude".into(),
                user: Some("ana".into()),
                pid: 42,
                name: "claude \"cli\"\n".into(),
                exe: None,
            }),
            Item::Extension(pb::ExtensionItem {
                extension_id: "fcoeoabgfenejglbffodgkkbkcdhcgfn".into(),
                host_permissions: vec!["https://api.openai.com/*".into()],
                ..Default::default()
            }),
            Item::Token(pb::TokenItem {
                provider: "openai".into(),
                fingerprint: "fp1".into(),
                kind: pb::TokenKind::ApiKey as i32,
                source: pb::TokenSource::Dotenv as i32,
                ..Default::default()
            }),
            Item::AgentHealth(pb::AgentHealth { cpu_percent: 0.1, rss_bytes: 1 << 40, ..Default::default() }),
            Item::Gap(pb::Gap { dropped: 3, reason: "spool full — ünïcode".into() }),
        ];
        let expected_keys: [&[&str]; 5] = [
            &["exe", "name", "pid", "tool", "user"],
            &[
                "browser",
                "enabled",
                "extension_id",
                "host_permissions",
                "name",
                "path",
                "permissions",
                "profile",
                "signals",
                "tool",
                "user",
                "version",
            ],
            &["fingerprint", "locator", "mcp_server", "path", "provider", "source", "token_kind", "user"],
            &[
                "agent_version",
                "cpu_percent",
                "dropped",
                "last_error",
                "rss_bytes",
                "scan_duration_ms",
                "scan_errors",
                "spool_depth",
            ],
            &["dropped", "reason"],
        ];
        for (item, keys) in items.into_iter().zip(expected_keys) {
            let r = record(&obs(item));
            let v: serde_json::Value = serde_json::from_str(&r.data).expect("stored data is JSON");
            assert_eq!(r.data, v.to_string(), "not in canonical form");
            let got: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
            assert_eq!(got, keys);
        }
        let p = record(&obs(Item::Process(pb::ProcessItem { pid: 42, user: None, ..Default::default() })));
        assert!(p.data.contains("\"pid\":42") && p.data.contains("\"user\":null"), "{}", p.data);
        let t = record(&obs(Item::Token(pb::TokenItem {
            kind: pb::TokenKind::ApiKey as i32,
            source: pb::TokenSource::Dotenv as i32,
            ..Default::default()
        })));
        assert!(t.data.contains("\"token_kind\":\"api_key\"") && t.data.contains("\"source\":\"dotenv\""));
        assert_eq!(record(&pb::Observation::default()).data, "null");
        // An account, when reported, is kept first (sorted) and canonical too.
        let t = record(&obs(Item::Token(pb::TokenItem {
            kind: pb::TokenKind::OauthAccess as i32,
            authorized_by: Some(pb::ProviderAccount { account: "ana@gmail.com".into(), org: None }),
            ..Default::default()
        })));
        let v: serde_json::Value = serde_json::from_str(&t.data).expect("stored data is JSON");
        assert_eq!(t.data, v.to_string(), "not in canonical form");
        assert_eq!(v["authorized_by"], serde_json::json!({"account": "ana@gmail.com", "org": null}));
        assert!(t.data.starts_with("{\"authorized_by\""));
    }

    #[test]
    fn implausible_device_times_are_stored_as_received_with_the_claim_kept() {
        let now = 1_764_410_400_000;
        let far = 253_402_300_800_000 + 1; // after 9999-12-31
        let mut o = obs(Item::OsSession(pb::OsSessionItem {
            user: "ana".into(),
            terminal: "tty1".into(),
            host: None,
            started_at_ms: i64::MIN,
        }));
        o.observed_at_ms = far;
        let (r, clamped) = record_received(&o, now);
        assert_eq!((r.observed_at_ms, r.session.as_ref().unwrap().started_at_ms, clamped), (now, now, 2));
        let v: serde_json::Value = serde_json::from_str(&r.data).unwrap();
        assert_eq!(v["device_observed_at_ms"], far);
        assert_eq!(v["device_started_at_ms"], i64::MIN);
        assert_eq!(v["user"], "ana");

        o.observed_at_ms = now - 1000;
        let (r, clamped) = record_received(&obs(Item::Gap(pb::Gap::default())), now);
        assert_eq!((r.observed_at_ms, clamped), (now, 1), "1 ms after the epoch is before 2000");
        let (r, clamped) = record_received(&o, now);
        assert_eq!((r.observed_at_ms, clamped), (now - 1000, 1), "only the session start was clamped");
        assert_eq!(record_received(&pb::Observation::default(), now).0.data, "null");
    }
}
