//! AI tool sessions (`ACTIVITY` evidence, bound to device, person and connectors) as OCSF
//! 1.3.0 events.
//!
//! **Class: 6003 API Activity** (category 6, Application Activity). A session is an AI tool
//! calling its provider's API — a model request per prompt, MCP tool calls through the
//! servers it is configured with — on behalf of an identified user from one endpoint, and
//! API Activity is the class whose required attributes are exactly that: `actor` (who),
//! `api` (what was called), `src_endpoint` (from where). The alternatives fit worse:
//! Application Lifecycle (6002) is install/start/stop of software, which the inventory
//! already exports as Software Inventory Info and Process Activity; Web Resources Activity
//! (6001) needs the web resources touched, which an endpoint agent does not see; Authorize
//! Session and Authentication (3003, 3002) are sign-ins, and a tool session is use under an
//! existing sign-in; Detection Finding is for judgements — `used_after_offboarding` and
//! `unsanctioned_connector_in_use` go out as findings through the findings export.
//!
//! The mapping:
//! - `activity_id` 99 (Other), `activity_name` `AI Session`: one event covers a whole
//!   session of many calls, which is none of Create/Read/Update/Delete; `type_name` is the
//!   schema's caption of `type_uid` 600399, `API Activity: Other`.
//! - `time` is the session's latest record (`end_time`), `start_time` its first, `duration`
//!   the span in ms.
//! - `actor.user` is the attributed person (userName, display name, e-mail) with the OS
//!   account whose home held the record as `actor.user.account` (typed by the device's OS);
//!   without a person, the OS account is the user. `actor.app_name` is the tool;
//!   `actor.session` the OS login session open when it started.
//! - `src_endpoint` is the device (id, hostname, OS): API Activity in 1.3.0 has no host
//!   profile, so there is no `device` attribute; the endpoint the calls came from is it.
//! - `api.operation` is `session`, `api.service` the tool connector. In 1.3.0 `api` belongs
//!   to the cloud profile, so the event declares `metadata.profiles = ["cloud"]` and names
//!   the AI provider as `cloud.provider` (from the models' names, else the tool's vendor,
//!   else `Unknown`) with the account the tool was signed in with (the agent attaches it
//!   to sessions of the last 24 h) as `cloud.account`.
//! - `resources`: every connector the session used (tool, MCP servers, credentials), `uid`
//!   its key, `type` its kind, `labels` its register status or `unknown` (use that matches
//!   no connector seen on the device); an MCP server's resource carries `data` = its calls
//!   and tool names.
//! - `severity`: Informational; Low when a connector is unknown; Medium when one is
//!   unsanctioned or revoked; High when the person was deprovisioned when it ran.
//! - Counts, models, MCP servers, the project fingerprint, the record format and the
//!   evidence pointer (device, seq) have no OCSF 1.3.0 attribute: `unmapped.sightline`.
//!
//! There is no prompt or response text, no file content and no tool-call argument to map:
//! the agent never collects any (only names and counts), so none can reach an export.
//!
//! `metadata.uid` is derived from (device, tool, session id, evidence seq): a redelivery of
//! the same report carries the same uid, so receivers drop it; a session that grew is a new
//! report with a higher evidence seq, hence a new uid, and is delivered as the newer version.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::ocsf::{event, metadata, os, stable_uid};
use crate::domain::ObservationKind;
use crate::policy::Policy;
use crate::responses::ActivitySession;
use crate::store::{ExportObservation, Store};

/// `type_uid` 600399's caption in the schema: the activity is Other.
const TYPE_NAME: &str = "API Activity: Other";

/// The event's `metadata.uid`: one per report of a session.
pub fn uid(s: &ActivitySession) -> String {
    stable_uid(&["activity", &s.device_id, &s.tool, &s.session_id, &s.evidence_seq.to_string()])
}

/// An RFC 3339 instant from a response, in Unix ms; `None` if it is not one.
fn ms(t: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    at.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as i64)
}

/// OCSF's account type for an OS account on `os_name`.
fn account_type(os_name: &str) -> (u32, &'static str) {
    match os_name {
        "windows" => (2, "Windows Account"),
        "linux" => (9, "Linux Account"),
        "macos" => (7, "Mac OS Account"),
        _ => (0, "Unknown"),
    }
}

/// The AI provider a session's calls went to: from its models' names where they tell,
/// else from the tool's vendor.
fn provider(s: &ActivitySession) -> String {
    let by_model = |m: &str| {
        let m = m.to_ascii_lowercase();
        if m.contains("claude") {
            Some("Anthropic")
        } else if m.starts_with("gpt")
            || m.contains("codex")
            || m.starts_with("o1")
            || m.starts_with("o3")
            || m.starts_with("o4")
        {
            Some("OpenAI")
        } else if m.contains("gemini") {
            Some("Google")
        } else {
            None
        }
    };
    let named: BTreeSet<&str> = s.models.iter().filter_map(|m| by_model(m)).collect();
    if !named.is_empty() {
        return named.into_iter().collect::<Vec<_>>().join(", ");
    }
    match s.tool.as_str() {
        "claude_code" => "Anthropic",
        "codex_cli" => "OpenAI",
        "gemini_cli" => "Google",
        _ => "Unknown",
    }
    .to_owned()
}

/// Who ran it: the attributed person with the OS account, or the OS account alone.
fn user(s: &ActivitySession, os_name: &str) -> Value {
    let (type_id, type_name) = account_type(os_name);
    let account =
        s.os_user.as_ref().map(|u| json!({"name": u, "uid": u, "type_id": type_id, "type": type_name}));
    let mut u = match (&s.person, &s.os_user) {
        (Some(p), _) => {
            let mut u = json!({"name": p.user_name, "uid": p.user_name, "type_id": 1, "type": "User"});
            if let Some(n) = &p.display_name {
                u["full_name"] = json!(n);
            }
            if p.user_name.contains('@') {
                u["email_addr"] = json!(p.user_name);
            }
            u
        }
        (None, Some(os_user)) => json!({"name": os_user, "type_id": 1, "type": "User"}),
        (None, None) => json!({"name": "unknown", "type_id": 0, "type": "Unknown"}),
    };
    if let Some(a) = account {
        u["account"] = a;
    }
    u
}

fn severity(s: &ActivitySession) -> u32 {
    let status = |wanted: &[&str]| {
        s.connectors.iter().any(|c| c.status.as_deref().is_some_and(|st| wanted.contains(&st)))
    };
    if s.person.as_ref().is_some_and(|p| p.deprovisioned) {
        4
    } else if status(&["unsanctioned", "revoked"]) {
        3
    } else if s.connectors.iter().any(|c| !c.known) {
        2
    } else {
        1
    }
}

/// One session report as an API Activity event (see the module doc). `os_name` and
/// `os_version` are the device's, as its inventory reports them.
pub fn to_ocsf(s: &ActivitySession, os_name: &str, os_version: &str) -> Value {
    // The times are the collector's own RFC 3339 renderings; should one not parse, the
    // other stands in for it rather than inventing an instant.
    let end = ms(&s.ended_at).or_else(|| ms(&s.started_at)).unwrap_or(0);
    let start = ms(&s.started_at).unwrap_or(end).min(end);
    let sev = severity(s);
    let mut e = event(
        6003,
        "API Activity",
        6,
        "Application Activity",
        99,
        "AI Session",
        sev,
        end,
        metadata(uid(s), end),
    );
    e["type_name"] = json!(TYPE_NAME);
    e["metadata"]["profiles"] = json!(["cloud"]);
    e["start_time"] = json!(start);
    e["end_time"] = json!(end);
    e["duration"] = json!(end - start);
    let tool = s.connectors.iter().find(|c| c.kind == "tool");
    let tool_name = tool.map_or(s.tool.as_str(), |c| c.label.as_str());
    let mut actor = json!({"user": user(s, os_name), "app_name": tool_name});
    if let Some(o) = &s.os_session {
        let mut session = json!({"uid": format!("{}:{}", s.device_id, o.evidence_seq), "terminal": o.terminal, "is_remote": o.host.is_some()});
        if let Some(t) = ms(&o.since) {
            session["created_time"] = json!(t);
        }
        actor["session"] = session;
    }
    e["actor"] = actor;
    e["api"] = json!({
        "operation": "session",
        "service": {"name": tool_name, "uid": tool.map_or_else(|| format!("tool:{}", s.tool), |c| c.key.clone())},
    });
    let mut cloud = json!({"provider": provider(s)});
    if let Some(a) = &s.account {
        cloud["account"] =
            json!({"name": a.account, "uid": a.account, "type_id": 99, "type": "AI provider account"});
        if let Some(org) = &a.org {
            cloud["org"] = json!({"name": org});
        }
    }
    e["cloud"] = cloud;
    let host = s.hostname.as_deref().unwrap_or(&s.device_id);
    let mut endpoint = json!({"uid": s.device_id, "name": host, "os": os(os_name, os_version)});
    // OCSF's `hostname` is a DNS name; a computer name such as "Alice's MacBook" is only a name.
    if let Some(h) = s.hostname.as_deref().filter(|h| dns_name(h)) {
        endpoint["hostname"] = json!(h);
    }
    e["src_endpoint"] = endpoint;
    e["resources"] = Value::Array(
        s.connectors
            .iter()
            .map(|c| {
                let mut r = json!({
                    "uid": c.key, "name": c.label, "type": c.kind,
                    "labels": [c.status.as_deref().unwrap_or(if c.known { "unknown status" } else { "unknown" })],
                });
                // An MCP server's use, where the connector is the server the session named.
                if c.kind == "mcp_server"
                    && let Some(m) = s.mcp.iter().find(|m| mcp_matches(&c.key, &c.label, &m.server))
                {
                    r["data"] = json!({"calls": m.calls, "tools": m.tools});
                }
                r
            })
            .collect(),
    );
    let who = s.person.as_ref().map(|p| p.user_name.as_str()).or(s.os_user.as_deref()).unwrap_or("someone");
    let mcp = s.mcp.iter().map(|m| format!("{} ({})", m.server, m.calls)).collect::<Vec<_>>();
    e["message"] = json!(format!(
        "{who} used {tool_name} on {host}: {} prompts, {} tool calls{}",
        s.prompts,
        s.tool_calls,
        if mcp.is_empty() { String::new() } else { format!(", MCP {}", mcp.join(", ")) }
    ));
    e["unmapped"] = json!({"sightline": {
        "device_id": s.device_id, "evidence_seq": s.evidence_seq, "session_id": s.session_id,
        "tool": s.tool, "format": s.format, "project": s.project, "models": s.models,
        "prompts": s.prompts, "tool_calls": s.tool_calls, "mcp": s.mcp,
        "attribution": s.person.as_ref().map(|p| p.attribution),
        "deprovisioned": s.person.as_ref().map(|p| p.deprovisioned),
        "account_class": s.account.as_ref().map(|a| a.class.as_str()),
        "os_session_seq": s.os_session.as_ref().map(|o| o.evidence_seq),
    }});
    e
}

/// The event an exported `ACTIVITY` observation becomes: its session as the collector
/// answers it now (person, OS session, connectors and their status bound as an activity
/// query binds them), if this observation is the session's stored report. A report the
/// store superseded (a later one of the same session exists, exported when its own
/// observation comes) or ignored as stale is no event; neither is a pruned session. A
/// redelivery of the same observation finds the same report and gives the same uid.
pub fn from_observation(
    store: &dyn Store,
    policy: &Policy,
    o: &ExportObservation,
) -> anyhow::Result<Option<Value>> {
    if o.kind != ObservationKind::Activity {
        return Ok(None);
    }
    let (Some(tool), Some(session_id)) =
        (o.data.get("tool").and_then(Value::as_str), o.data.get("session_id").and_then(Value::as_str))
    else {
        return Ok(None);
    };
    // By the report itself (device, seq), never by its times: the store holds them clamped
    // to the device's plausible clock, so a search around the raw end would miss sessions
    // from a fast clock or with a forged date, and those are the ones a SIEM must see.
    let found = crate::query::activity::by_report(store, policy, &o.device_id, o.seq)?;
    Ok(found
        .filter(|s| s.tool == tool && s.session_id == session_id)
        .map(|s| to_ocsf(&s, &o.os, &o.os_version)))
}

/// Whether `h` is a DNS host name as OCSF's `hostname_t` has it: dot-separated labels of
/// letters, digits and inner hyphens.
fn dns_name(h: &str) -> bool {
    !h.is_empty()
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Whether an MCP connector (`mcp:<name>:<hash>`, or `unknown:mcp:<name>`) is the server a
/// session named.
fn mcp_matches(key: &str, label: &str, server: &str) -> bool {
    label == server
        || key == format!("unknown:mcp:{server}")
        || key.strip_prefix("mcp:").and_then(|r| r.split(':').next()) == Some(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::{ActivityConnector, ActivityPerson, AuthorizedBy, McpUse, SessionAt};

    fn session() -> ActivitySession {
        ActivitySession {
            account: Some(AuthorizedBy {
                account: "alice@corp.example".into(),
                class: "corporate".into(),
                org: Some("Corp".into()),
            }),
            connectors: vec![
                ActivityConnector {
                    key: "tool:claude_code".into(),
                    kind: "tool".into(),
                    known: true,
                    label: "Claude Code".into(),
                    status: Some("approved".into()),
                },
                ActivityConnector {
                    key: "mcp:github:ab12".into(),
                    kind: "mcp_server".into(),
                    known: true,
                    label: "github".into(),
                    status: Some("discovered".into()),
                },
                ActivityConnector {
                    key: "unknown:mcp:jira".into(),
                    kind: "mcp_server".into(),
                    known: false,
                    label: "jira".into(),
                    status: None,
                },
            ],
            device_id: "dev_1".into(),
            ended_at: "2026-11-29T10:30:00Z".into(),
            evidence_seq: 42,
            format: "claude_code_jsonl".into(),
            hostname: Some("alice-laptop".into()),
            mcp: vec![
                McpUse { calls: 3, server: "github".into(), tools: vec!["create_issue".into()] },
                McpUse { calls: 1, server: "jira".into(), tools: vec!["search".into()] },
            ],
            models: vec!["claude-sonnet-4-5".into()],
            os_session: Some(SessionAt {
                evidence_seq: 7,
                host: None,
                os_user: "alice".into(),
                since: "2026-11-29T08:00:00Z".into(),
                terminal: "seat0".into(),
            }),
            os_user: Some("alice".into()),
            person: Some(ActivityPerson {
                attribution: "exact",
                deprovisioned: false,
                display_name: Some("Alice Ng".into()),
                user_name: "alice@corp.example".into(),
            }),
            project: Some("fp:0011".into()),
            prompts: 5,
            session_id: "s-1".into(),
            started_at: "2026-11-29T10:00:00Z".into(),
            tool: "claude_code".into(),
            tool_calls: 9,
        }
    }

    #[test]
    fn a_session_names_who_where_when_and_through_what() {
        let e = to_ocsf(&session(), "linux", "6.8");
        assert_eq!((e["class_uid"].as_u64(), e["type_uid"].as_u64()), (Some(6003), Some(600399)));
        assert_eq!(
            (e["start_time"].as_i64(), e["time"].as_i64()),
            (Some(1_795_946_400_000), Some(1_795_948_200_000))
        );
        assert_eq!(e["duration"], 1_800_000);
        assert_eq!(e["actor"]["user"]["name"], "alice@corp.example");
        assert_eq!(e["actor"]["user"]["account"]["name"], "alice");
        assert_eq!(e["actor"]["user"]["account"]["type_id"], 9);
        assert_eq!(e["actor"]["session"]["uid"], "dev_1:7");
        assert_eq!(e["src_endpoint"]["hostname"], "alice-laptop");
        assert_eq!(e["cloud"]["provider"], "Anthropic");
        assert_eq!(e["cloud"]["account"]["name"], "alice@corp.example");
        let res = e["resources"].as_array().unwrap();
        assert_eq!(res.len(), 3);
        assert_eq!(res[1]["data"]["calls"], 3, "github's calls on its connector");
        assert_eq!(res[2]["labels"][0], "unknown");
        assert_eq!(e["severity_id"], 2, "an unknown connector was used");
        assert_eq!(e["unmapped"]["sightline"]["prompts"], 5);
        assert!(e["message"].as_str().unwrap().contains("MCP github (3), jira (1)"), "{}", e["message"]);
    }

    #[test]
    fn a_retry_repeats_the_uid_and_a_grown_session_does_not() {
        let s = session();
        assert_eq!(uid(&s), uid(&s.clone()));
        let grown = ActivitySession { evidence_seq: 43, prompts: 6, ..s.clone() };
        assert_ne!(uid(&s), uid(&grown));
        let other_device = ActivitySession { device_id: "dev_2".into(), ..s.clone() };
        assert_ne!(uid(&s), uid(&other_device));
    }

    #[test]
    fn severity_rises_with_what_the_use_means() {
        let mut s = session();
        s.connectors.retain(|c| c.known);
        assert_eq!(severity(&s), 1);
        s.connectors[1].status = Some("revoked".into());
        assert_eq!(severity(&s), 3);
        if let Some(p) = s.person.as_mut() {
            p.deprovisioned = true;
        }
        assert_eq!(severity(&s), 4);
    }

    #[test]
    fn without_a_person_the_os_account_acts_and_unknowns_stay_honest() {
        let mut s = session();
        s.person = None;
        s.models = vec!["llama3".into()];
        s.tool = "aider".into();
        s.ended_at = "not a time".into();
        let e = to_ocsf(&s, "plan9", "");
        assert_eq!(e["actor"]["user"]["name"], "alice");
        assert_eq!(e["actor"]["user"]["account"]["type_id"], 0);
        assert_eq!(e["cloud"]["provider"], "Unknown");
        assert!(
            dns_name("alice-laptop.corp")
                && !dns_name("Alice's MacBook")
                && !dns_name("-x")
                && !dns_name("a..b")
        );
        assert_eq!(e["time"], e["start_time"], "an unreadable end falls back to the start");
    }
}
