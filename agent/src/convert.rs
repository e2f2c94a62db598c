//! Detector types to wire observations: the one place the agent turns findings into `pb`,
//! and the only builder of `pb::Observation` — what an observation carries, and that its
//! `seq` is left for sealing to assign, is decided here once.

use sightline_proto::pb;

use crate::catalog::TokenKind;
use crate::detect::{Finding, ProviderAccount, TokenSource};
use crate::scan::ScanReport;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One observation of `item`; `seq` is assigned when the observation is sealed.
pub fn observation(change: pb::Change, item: pb::observation::Item, observed_at_ms: i64) -> pb::Observation {
    pb::Observation { seq: 0, observed_at_ms, change: change as i32, item: Some(item) }
}

/// What a look found as it is now, rather than a change to it.
pub fn snapshot_of(item: pb::observation::Item, observed_at_ms: i64) -> pb::Observation {
    observation(pb::Change::Snapshot, item, observed_at_ms)
}

/// Says that `dropped` recorded observations were lost before they could be sealed, so
/// the loss is in the signed chain rather than silent.
pub fn gap(dropped: u64, observed_at_ms: i64) -> pb::Observation {
    let gap = pb::Gap {
        dropped,
        reason: "spool full or damaged: the oldest unsent observations were dropped".into(),
    };
    observation(pb::Change::Unspecified, pb::observation::Item::Gap(gap), observed_at_ms)
}

/// An item of the last known view as `inventory.pb` stores it: the item alone, neither a
/// time nor a change, because the view is state, not an event.
pub fn stored(item: pb::observation::Item) -> pb::Observation {
    observation(pb::Change::Unspecified, item, 0)
}

/// A full scan as `SNAPSHOT` observations: device inventory first, then every finding,
/// scan errors and the agent's health. Sequence numbers are assigned when sealing.
pub fn snapshot(report: &ScanReport, now_ms: i64) -> Vec<pb::Observation> {
    let obs = |item| snapshot_of(item, now_ms);
    let mut out = Vec::with_capacity(report.findings.len() + report.errors.len() + 2);
    out.push(obs(pb::observation::Item::DeviceInventory(pb::DeviceInventory {
        hostname: report.device.hostname.clone(),
        os: report.device.os.as_str().to_owned(),
        os_version: report.device.os_version.clone(),
        agent_version: AGENT_VERSION.to_owned(),
        serial: None,
        users: report.users.clone(),
    })));
    out.extend(report.findings.iter().map(|f| obs(item(f))));
    out.extend(report.errors.iter().map(|e| {
        obs(pb::observation::Item::ScanError(pb::ScanError { path: e.path.clone(), error: e.error.clone() }))
    }));
    out.push(obs(pb::observation::Item::AgentHealth(pb::AgentHealth {
        agent_version: AGENT_VERSION.to_owned(),
        scan_errors: report.errors.len() as u32,
        scan_duration_ms: report.duration.as_millis() as u64,
        ..Default::default()
    })));
    out
}

/// One session of AI activity as a wire item: metadata only, as the detector kept it.
pub fn activity(s: &crate::detect::activity::Session) -> pb::ActivityItem {
    let t = &s.tally;
    pb::ActivityItem {
        tool: s.tool.clone(),
        user: Some(s.user.clone()),
        session_id: t.session_id.clone(),
        started_at_ms: t.started_at_ms.unwrap_or_default(),
        ended_at_ms: t.ended_at_ms.unwrap_or_default(),
        project: t.project.clone(),
        models: t.models.iter().cloned().collect(),
        account: s.account.as_ref().map(account),
        prompts: t.prompts,
        tool_calls: t.tool_calls,
        mcp: t
            .mcp
            .iter()
            .map(|(server, m)| pb::McpUse {
                server: server.clone(),
                calls: m.calls,
                tools: m.tools.iter().cloned().collect(),
            })
            .collect(),
        credentials: s.credentials.clone(),
        format: s.format.as_str().to_owned(),
    }
}

/// One finding as a wire item.
pub fn item(f: &Finding) -> pb::observation::Item {
    use pb::observation::Item;
    match f {
        Finding::Process(p) => Item::Process(pb::ProcessItem {
            tool: p.tool.clone(),
            user: p.user.clone(),
            pid: p.pid,
            name: p.name.clone(),
            exe: p.exe.clone(),
        }),
        Finding::App(a) => Item::App(pb::AppItem {
            tool: a.tool.clone(),
            user: a.user.clone(),
            path: a.path.clone(),
            version: a.version.clone(),
            bundle_id: a.bundle_id.clone(),
            authorized_by: a.authorized_by.as_ref().map(account),
        }),
        Finding::Extension(e) => Item::Extension(pb::ExtensionItem {
            tool: e.tool.clone(),
            user: e.user.clone(),
            browser: e.browser.clone(),
            profile: e.profile.clone(),
            extension_id: e.extension_id.clone(),
            name: e.name.clone(),
            version: e.version.clone(),
            enabled: e.enabled,
            path: e.path.clone(),
            signals: e.signals.clone(),
            permissions: e.permissions.clone(),
            host_permissions: e.host_permissions.clone(),
        }),
        Finding::Token(t) => Item::Token(pb::TokenItem {
            provider: t.provider.clone(),
            kind: token_kind(t.kind) as i32,
            user: t.user.clone(),
            path: t.path.clone(),
            source: token_source(t.source) as i32,
            fingerprint: t.fingerprint.clone(),
            locator: t.locator.clone(),
            mcp_server: t.mcp_server.clone(),
            authorized_by: t.authorized_by.as_ref().map(account),
        }),
        Finding::McpServer(m) => Item::McpServer(pb::McpServerItem {
            client: m.client.clone(),
            user: m.user.clone(),
            name: m.name.clone(),
            transport: m.transport.clone(),
            command: m.command.clone(),
            url: m.url.clone(),
            path: m.path.clone(),
        }),
    }
}

fn account(a: &ProviderAccount) -> pb::ProviderAccount {
    pb::ProviderAccount { account: a.account.clone(), org: a.org.clone() }
}

fn token_kind(k: TokenKind) -> pb::TokenKind {
    match k {
        TokenKind::ApiKey => pb::TokenKind::ApiKey,
        TokenKind::OauthAccess => pb::TokenKind::OauthAccess,
        TokenKind::OauthRefresh => pb::TokenKind::OauthRefresh,
        TokenKind::Pat => pb::TokenKind::Pat,
    }
}

fn token_source(s: TokenSource) -> pb::TokenSource {
    match s {
        TokenSource::CredentialFile => pb::TokenSource::CredentialFile,
        TokenSource::Dotenv => pb::TokenSource::Dotenv,
        TokenSource::ShellRc => pb::TokenSource::ShellRc,
        TokenSource::McpConfig => pb::TokenSource::McpConfig,
        TokenSource::IdeConfig => pb::TokenSource::IdeConfig,
        TokenSource::SourceFile => pb::TokenSource::SourceFile,
        TokenSource::ShellHistory => pb::TokenSource::ShellHistory,
        TokenSource::Netrc => pb::TokenSource::Netrc,
        TokenSource::GitConfig => pb::TokenSource::GitConfig,
    }
}
