//! The `scan` command's output: the `sightline.scan.v1` JSON document (its schema is
//! `agent/schema/sightline.scan.v1.json`) and a
//! table for a person at a terminal. This is the serialization edge for findings; detector
//! types stay free of serde.

use serde_json::{Value, json};

use crate::detect::{Finding, ProviderAccount};
use crate::scan::ScanReport;

pub const SCHEMA: &str = "sightline.scan.v1";

pub fn to_json(report: &ScanReport) -> Value {
    json!({
        "schema": SCHEMA,
        "device": {
            "hostname": report.device.hostname,
            "os": report.device.os.as_str(),
            "os_version": report.device.os_version,
        },
        "fingerprint_key": if report.org_keyed { "org" } else { "local" },
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "errors": report.errors.iter().map(|e| json!({"path": e.path, "error": e.error})).collect::<Vec<_>>(),
        "activity": report.activity.iter().map(activity_json).collect::<Vec<_>>(),
    })
}

/// One AI session: the same metadata the daemon reports, never content.
pub fn activity_json(s: &crate::detect::activity::Session) -> Value {
    let t = &s.tally;
    json!({
        "tool": s.tool, "format": s.format.as_str(), "user": s.user, "session_id": t.session_id,
        "started_at_ms": t.started_at_ms, "ended_at_ms": t.ended_at_ms, "project": t.project,
        "models": t.models, "account": s.account.as_ref().map(account_json), "prompts": t.prompts,
        "tool_calls": t.tool_calls,
        "mcp": t.mcp.iter().map(|(server, m)| json!({"server": server, "calls": m.calls, "tools": m.tools}))
            .collect::<Vec<_>>(),
        "credentials": s.credentials,
    })
}

pub fn finding_json(f: &Finding) -> Value {
    match f {
        Finding::Process(p) => json!({
            "kind": "process", "tool": p.tool, "user": p.user, "pid": p.pid, "name": p.name, "exe": p.exe,
        }),
        Finding::App(a) => json!({
            "kind": "app", "tool": a.tool, "user": a.user, "path": a.path, "version": a.version, "bundle_id": a.bundle_id,
            "authorized_by": a.authorized_by.as_ref().map(account_json),
        }),
        Finding::Extension(e) => json!({
            "kind": "extension", "tool": e.tool, "user": e.user, "browser": e.browser, "profile": e.profile,
            "extension_id": e.extension_id, "name": e.name, "version": e.version, "enabled": e.enabled,
            "path": e.path, "signals": e.signals, "permissions": e.permissions, "host_permissions": e.host_permissions,
        }),
        Finding::Token(t) => json!({
            "kind": "token", "provider": t.provider, "token_kind": t.kind.as_str(), "user": t.user, "path": t.path,
            "source": t.source.as_str(), "fingerprint": t.fingerprint, "locator": t.locator,
            "mcp_server": t.mcp_server,
            // `null` for an API key or where the tool records no account.
            "authorized_by": t.authorized_by.as_ref().map(account_json),
        }),
        Finding::McpServer(m) => json!({
            "kind": "mcp_server", "client": m.client, "user": m.user, "name": m.name, "transport": m.transport,
            "command": m.command, "url": m.url, "path": m.path,
        }),
    }
}

fn account_json(a: &ProviderAccount) -> Value {
    json!({"account": a.account, "org": a.org})
}

/// A table sized to its content, one finding per row, errors listed after it.
pub fn to_table(report: &ScanReport) -> String {
    let mut rows: Vec<[String; 5]> =
        vec![["KIND".into(), "USER".into(), "WHAT".into(), "DETAIL".into(), "PATH".into()]];
    for f in &report.findings {
        rows.push(row(f));
    }
    let mut widths = [0usize; 4];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let d = &report.device;
    let mut out = format!(
        "Sightline scan of {} ({} {}): {} finding{}, {} error{}, {} ms\n\n",
        d.hostname,
        d.os.as_str(),
        d.os_version,
        report.findings.len(),
        if report.findings.len() == 1 { "" } else { "s" },
        report.errors.len(),
        if report.errors.len() == 1 { "" } else { "s" },
        report.duration.as_millis()
    );
    if report.findings.is_empty() {
        out.push_str("No AI connectors found.\n");
    } else {
        for r in &rows {
            for (i, cell) in r.iter().enumerate() {
                if i < 4 {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                } else {
                    out.push_str(cell);
                }
            }
            out.push('\n');
        }
    }
    if !report.errors.is_empty() {
        out.push_str("\nProblems (these files were skipped):\n");
        for e in &report.errors {
            out.push_str(&format!("  {}: {}\n", e.path, e.error));
        }
    }
    if !report.org_keyed {
        out.push_str("\nToken fingerprints use a local key (this agent is not enrolled); they will not match the collector's.\n");
    }
    out
}

fn row(f: &Finding) -> [String; 5] {
    let user = |u: &Option<String>| u.clone().unwrap_or_else(|| "-".into());
    match f {
        Finding::Process(p) => [
            "process".into(),
            user(&p.user),
            p.tool.clone(),
            format!("pid {} {}", p.pid, p.name),
            p.exe.clone().unwrap_or_default(),
        ],
        Finding::App(a) => [
            "app".into(),
            user(&a.user),
            a.tool.clone(),
            a.version.as_ref().map(|v| format!("version {v}")).unwrap_or_default(),
            a.path.clone(),
        ],
        Finding::Extension(e) => [
            "extension".into(),
            user(&e.user),
            e.tool.clone().unwrap_or_else(|| format!("unknown AI ({})", e.signals.join(","))),
            format!(
                "{} \"{}\" {} {}{}",
                e.browser,
                e.name,
                e.version.as_deref().unwrap_or("?"),
                e.profile,
                match e.enabled {
                    Some(false) => " (disabled)",
                    _ => "",
                }
            ),
            e.path.clone(),
        ],
        Finding::Token(t) => [
            "token".into(),
            user(&t.user),
            format!("{} {}", t.provider, t.kind.as_str()),
            format!("{} fp {} {}", t.source.as_str(), t.fingerprint, t.locator.as_deref().unwrap_or("")),
            t.path.clone(),
        ],
        Finding::McpServer(m) => [
            "mcp_server".into(),
            user(&m.user),
            format!("{} \"{}\"", m.client, m.name),
            format!("{} {}", m.transport, m.command.as_deref().or(m.url.as_deref()).unwrap_or("")),
            m.path.clone(),
        ],
    }
}
