//! Wire observations to storage records. The JSON kept per observation mirrors the agent's
//! `sightline.scan.v1` finding shape, so what the collector shows is what the agent reported.

use serde_json::{Value, json};
use sightline_proto::directive;
use sightline_proto::pb::{self, observation::Item};

use crate::store::{ConnectorRef, Inventory, ObservationRecord, OutcomeRef, SessionRef};

pub fn record(o: &pb::Observation) -> ObservationRecord {
    let change = match pb::Change::try_from(o.change).unwrap_or(pb::Change::Unspecified) {
        pb::Change::Snapshot => "snapshot",
        pb::Change::Appeared => "appeared",
        pb::Change::Changed => "changed",
        pb::Change::Disappeared => "disappeared",
        pb::Change::Unspecified => "unspecified",
    };
    let (kind, connector, data) = match &o.item {
        Some(Item::Process(p)) => (
            "process",
            Some(connector(format!("tool:{}", p.tool), "tool", &p.tool, &p.user, format!("pid:{}", p.pid))),
            json!({"tool": p.tool, "user": p.user, "pid": p.pid, "name": p.name, "exe": p.exe}),
        ),
        Some(Item::App(a)) => (
            "app",
            Some(connector(format!("tool:{}", a.tool), "tool", &a.tool, &a.user, a.path.clone())),
            json!({"tool": a.tool, "user": a.user, "path": a.path, "version": a.version, "bundle_id": a.bundle_id}),
        ),
        Some(Item::Extension(e)) => (
            "extension",
            Some(connector(
                format!("extension:{}", e.extension_id),
                "extension",
                e.tool.as_deref().unwrap_or(&e.name),
                &e.user,
                e.path.clone(),
            )),
            json!({
                "tool": e.tool, "user": e.user, "browser": e.browser, "profile": e.profile,
                "extension_id": e.extension_id, "name": e.name, "version": e.version, "enabled": e.enabled,
                "path": e.path, "signals": e.signals, "permissions": e.permissions, "host_permissions": e.host_permissions,
            }),
        ),
        Some(Item::Token(t)) => (
            "token",
            Some(connector(
                format!("token:{}", t.fingerprint),
                "token",
                &t.provider,
                &t.user,
                format!("{}#{}", t.path, t.locator.as_deref().unwrap_or("")),
            )),
            json!({
                "provider": t.provider, "token_kind": token_kind(t.kind), "user": t.user, "path": t.path,
                "source": token_source(t.source), "fingerprint": t.fingerprint, "locator": t.locator,
                "mcp_server": t.mcp_server,
            }),
        ),
        Some(Item::McpServer(m)) => {
            let target = m.url.as_deref().or(m.command.as_deref()).unwrap_or_default();
            let id =
                hex::encode(&ring::digest::digest(&ring::digest::SHA256, target.as_bytes()).as_ref()[..6]);
            (
                "mcp_server",
                Some(connector(
                    format!("mcp:{}:{id}", m.name),
                    "mcp_server",
                    &m.name,
                    &m.user,
                    format!("{}#{}", m.path, m.client),
                )),
                json!({
                    "client": m.client, "user": m.user, "name": m.name, "transport": m.transport,
                    "command": m.command, "url": m.url, "path": m.path,
                }),
            )
        }
        Some(Item::OsSession(s)) => (
            "os_session",
            None,
            json!({"user": s.user, "terminal": s.terminal, "host": s.host, "started_at_ms": s.started_at_ms}),
        ),
        Some(Item::DeviceInventory(d)) => (
            "device_inventory",
            None,
            json!({"hostname": d.hostname, "os": d.os, "os_version": d.os_version, "agent_version": d.agent_version, "users": d.users}),
        ),
        Some(Item::AgentHealth(h)) => (
            "agent_health",
            None,
            json!({
                "agent_version": h.agent_version, "cpu_percent": h.cpu_percent, "rss_bytes": h.rss_bytes,
                "spool_depth": h.spool_depth, "dropped": h.dropped, "last_error": h.last_error,
                "scan_errors": h.scan_errors, "scan_duration_ms": h.scan_duration_ms,
            }),
        ),
        Some(Item::Gap(g)) => ("gap", None, json!({"dropped": g.dropped, "reason": g.reason})),
        Some(Item::ScanError(e)) => ("scan_error", None, json!({"path": e.path, "error": e.error})),
        Some(Item::DirectiveOutcome(d)) => (
            "directive_outcome",
            None,
            json!({
                "directive_id": d.directive_id, "action": directive::action_name(d.action), "target": d.target,
                "outcome": directive::outcome_name(d.outcome), "detail": d.detail, "mode": d.mode,
            }),
        ),
        None => ("unknown", None, Value::Null),
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
            outcome: directive::outcome_name(d.outcome).to_owned(),
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
        pb::TokenSource::Unspecified => "unspecified",
    }
}
