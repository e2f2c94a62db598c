//! Codex rollout files (`~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`).
//!
//! Current format, one `RolloutLine {timestamp, type, payload}` per line: `session_meta`
//! names the session (`id`, `timestamp`, `cwd`) once, at the top, so the file remembers it
//! as its current session; `turn_context` names the `model` of each turn; a prompt is an
//! `event_msg` of type `user_message`; a tool call is a `response_item` of type
//! `function_call`, `custom_tool_call` or `local_shell_call`. An MCP call carries a
//! `namespace` `mcp__<server>__` (newest builds, tool in `name`) or is spelled in `name`
//! itself (`mcp__<server>__<tool>`, earlier `<server>__<tool>`: the catalog's patterns).
//!
//! The first format (mid-2025) opens with a bare `{id, timestamp, instructions}` line and
//! then holds bare response items; those are read the same way, a prompt being a `message`
//! of role `user` whose text is not context Codex injected (`<environment_context>`,
//! `<user_instructions>`, AGENTS.md), told by its first characters only.
//!
//! Only the fields named below are decoded; prompt text, arguments and outputs are skipped.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use super::{FileSessions, Rules, Tally, rfc3339_ms};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<Item<'a>>,
    // The first format: a bare meta line, then bare response items.
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default)]
    content: Injected,
}

/// A payload: a session's meta, a turn's context, an event or a response item.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cwd: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
}

/// Whether a first-format user message is context Codex injected rather than a prompt,
/// judged from the first characters of its first text; the text itself is not kept.
#[derive(Default)]
struct Injected(bool);

impl<'de> Deserialize<'de> for Injected {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Part {
            #[serde(default)]
            text: Head,
        }
        #[derive(Default)]
        struct Head(bool);
        impl<'de> Deserialize<'de> for Head {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Head;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("text")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<Head, E> {
                        let s = s.trim_start();
                        Ok(Head(s.starts_with('<') || s.starts_with("# AGENTS.md")))
                    }
                }
                d.deserialize_str(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Injected;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("content parts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Injected, A::Error> {
                let first = seq.next_element::<Part>()?.is_some_and(|p| p.text.0);
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Injected(first))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Injected, E> {
                Ok(Injected(false))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn line(line: &[u8], file: &mut FileSessions, rules: &Rules) {
    let Ok(l) = serde_json::from_slice::<Line<'_>>(line) else {
        file.malformed = file.malformed.saturating_add(1);
        return;
    };
    let at = l.timestamp.as_deref().and_then(rfc3339_ms);
    let Some(kind) = l.kind.as_deref() else {
        // The first format's meta line: `{id, timestamp, instructions}`.
        if let Some(id) = l.id.as_deref().filter(|id| super::is_name(id)) {
            open(file, id, at, None);
        }
        return;
    };
    match (kind, l.payload) {
        ("session_meta", Some(p)) => {
            if let Some(id) = p.id.as_deref().filter(|id| super::is_name(id)) {
                let start = p.timestamp.as_deref().and_then(rfc3339_ms).or(at);
                open(file, id, start, p.cwd.as_deref());
            }
        }
        (_, Some(p)) => {
            let Some(t) = file.current() else { return };
            if let Some(ms) = at {
                t.saw(ms);
            }
            match (kind, p.kind.as_deref()) {
                ("turn_context", _) => {
                    if let Some(m) = p.model.as_deref() {
                        t.model(m);
                    }
                    if t.project.is_none() {
                        t.project = p.cwd.as_deref().filter(|c| !c.is_empty()).map(str::to_owned);
                    }
                }
                ("event_msg", Some("user_message")) => t.prompts = t.prompts.saturating_add(1),
                ("response_item", Some(k)) => call(t, k, p.name.as_deref(), p.namespace.as_deref(), rules),
                _ => {}
            }
        }
        // The first format's bare response items (no `timestamp` of their own).
        (k, None) => {
            let Some(t) = file.current() else { return };
            match k {
                "message" if l.role.as_deref() == Some("user") && !l.content.0 => {
                    t.prompts = t.prompts.saturating_add(1);
                }
                _ => call(t, k, l.name.as_deref(), l.namespace.as_deref(), rules),
            }
        }
    }
}

/// A `session_meta` (or first-format meta) line: the file's records are this session's
/// from here on.
fn open(file: &mut FileSessions, id: &str, start: Option<i64>, cwd: Option<&str>) {
    file.current = Some(id.to_owned());
    let t = file.session(id);
    if let Some(ms) = start {
        t.saw(ms);
    }
    if let Some(cwd) = cwd.filter(|c| !c.is_empty()) {
        t.project = Some(cwd.to_owned());
    }
}

fn call(t: &mut Tally, kind: &str, name: Option<&str>, namespace: Option<&str>, rules: &Rules) {
    if !matches!(kind, "function_call" | "custom_tool_call" | "local_shell_call") {
        return;
    }
    let server = namespace.and_then(|ns| ns.strip_prefix("mcp__")).map(|s| s.trim_end_matches('_'));
    match (server, name) {
        (Some(server), Some(tool)) if !server.is_empty() => {
            t.tool_calls = t.tool_calls.saturating_add(1);
            t.mcp_call(server, tool);
        }
        (_, Some(name)) => t.tool_call(name, &rules.mcp),
        // `local_shell_call` has no name: a shell call.
        (_, None) => t.tool_calls = t.tool_calls.saturating_add(1),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{McpNaming, read_lines};
    use super::*;
    use crate::catalog::ActivityFormat;

    fn read(lines: &[&str]) -> FileSessions {
        let rules = Rules {
            mcp: McpNaming::parse_all(&["mcp__{server}__{tool}".into(), "{server}__{tool}".into()]),
            ..Rules::default()
        };
        let mut f = FileSessions::default();
        read_lines(ActivityFormat::CodexRollout, lines.iter().map(|l| l.as_bytes()), &mut f, &rules);
        f
    }

    #[test]
    fn rollout_lines_give_session_model_prompts_and_calls() {
        let f = read(&[
            r#"{"timestamp":"2025-09-01T10:00:00.100Z","type":"session_meta","payload":{"id":"0199-aa","timestamp":"2025-09-01T10:00:00.000Z","cwd":"/home/b/app","originator":"codex_cli_rs","cli_version":"0.40.0","instructions":"CANARY","git":{"repository_url":"CANARY"}}}"#,
            r#"{"timestamp":"2025-09-01T10:00:01.000Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"<environment_context>CANARY"}]}}"#,
            r#"{"timestamp":"2025-09-01T10:00:01.500Z","type":"turn_context","payload":{"cwd":"/home/b/app","approval_policy":"on-request","model":"gpt-5-codex","summary":"auto"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:02.000Z","type":"event_msg","payload":{"type":"user_message","message":"CANARY please","images":[]}}"#,
            r#"{"timestamp":"2025-09-01T10:00:03.000Z","type":"response_item","payload":{"type":"function_call","name":"shell","arguments":"{\"command\":[\"CANARY\"]}","call_id":"c1"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:04.000Z","type":"response_item","payload":{"type":"function_call","name":"create_issue","namespace":"mcp__github__","arguments":"{\"title\":\"CANARY\"}","call_id":"c2"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:05.000Z","type":"response_item","payload":{"type":"function_call","name":"mcp__linear__get_issue","arguments":"{}","call_id":"c3"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:06.000Z","type":"response_item","payload":{"type":"custom_tool_call","name":"apply_patch","input":"CANARY","call_id":"c4"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:07.000Z","type":"response_item","payload":{"type":"function_call_output","call_id":"c4","output":"CANARY"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:08.000Z","type":"event_msg","payload":{"type":"agent_message","message":"CANARY"}}"#,
            "{\"timestamp\":\"2025-09-01T10:00:09.000Z\",\"type\":\"event_msg\",\"payload\":",
        ]);
        let t = &f.sessions["0199-aa"];
        assert_eq!(t.prompts, 1);
        assert_eq!(t.tool_calls, 4);
        assert_eq!(t.mcp["github"].tools.iter().collect::<Vec<_>>(), ["create_issue"]);
        assert_eq!(t.mcp["linear"].calls, 1);
        assert_eq!(t.models.iter().collect::<Vec<_>>(), ["gpt-5-codex"]);
        assert_eq!(t.project.as_deref(), Some("/home/b/app"));
        assert_eq!(
            (t.started_at_ms, t.ended_at_ms.map(|e| e % 100_000)),
            (Some(1_756_720_800_000), Some(8_000))
        );
        assert_eq!(f.malformed, 1);
        assert!(!format!("{f:?}").contains("CANARY"));
    }

    #[test]
    fn the_first_format_is_read_too() {
        let f = read(&[
            r#"{"id":"5973b6c0-94b8-487b-a530-2aeb6098ae0e","timestamp":"2025-05-07T17:24:21.123Z","instructions":"CANARY"}"#,
            r#"{"type":"message","role":"user","content":[{"type":"input_text","text":"<user_instructions>CANARY"}]}"#,
            r#"{"type":"message","role":"user","content":[{"type":"input_text","text":"CANARY fix it"}]}"#,
            r#"{"type":"message","role":"assistant","content":[{"type":"output_text","text":"CANARY"}]}"#,
            r#"{"type":"function_call","name":"github__create_issue","arguments":"{}","call_id":"c1"}"#,
            r#"{"type":"local_shell_call","call_id":"c2","status":"completed","action":{"type":"exec","command":["CANARY"]}}"#,
            r#"{"record_type":"state"}"#,
        ]);
        let t = &f.sessions["5973b6c0-94b8-487b-a530-2aeb6098ae0e"];
        assert_eq!((t.prompts, t.tool_calls), (1, 2));
        assert_eq!(t.mcp["github"].calls, 1);
        assert_eq!(t.started_at_ms, Some(1_746_638_661_123));
    }

    #[test]
    fn records_before_any_session_are_dropped() {
        let f = read(&[
            r#"{"timestamp":"2025-09-01T10:00:02.000Z","type":"event_msg","payload":{"type":"user_message","message":"x"}}"#,
        ]);
        assert!(f.sessions.is_empty());
    }
}
