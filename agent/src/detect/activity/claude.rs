//! Claude Code's JSONL transcripts (`~/.claude/projects/<cwd>/<sessionId>.jsonl`, subagents
//! beside them with the parent's `sessionId`).
//!
//! Per line: the session is the `sessionId` field (never the file name: a subagent's file
//! has its own name but the parent's session), the project is `cwd`, the span is the
//! `timestamp`s. Assistant records name the `message.model` and hold `tool_use` blocks (one
//! tool call each; MCP ones named `mcp__<server>__<tool>`). A prompt is a `user` record that
//! is not `isMeta`, not a subagent's (`isSidechain`: its text is the task the parent model
//! wrote; the subagent's tool calls do count), is not a tool's result (`toolUseResult`, a `tool_result` block) and holds
//! a string or text blocks. Claude Code writes one assistant message over several lines
//! sharing its `message.id` and replays entries when a session resumes, so each `tool_use`
//! id counts once per file.
//!
//! Only the fields named below are decoded; every other value (text, thinking, tool input,
//! tool results) is skipped by the JSON parser without being kept.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{FileSessions, Rules, rfc3339_ms};

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cwd: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "isMeta")]
    is_meta: Option<bool>,
    #[serde(rename = "isSidechain")]
    is_sidechain: Option<bool>,
    #[serde(rename = "toolUseResult")]
    tool_use_result: Option<IgnoredAny>,
    #[serde(borrow)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Content<'a>,
}

/// What a message's `content` holds, without its text: a string, or blocks of which only
/// the kinds and the `tool_use` ids and names are kept.
#[derive(Default)]
struct Content<'a> {
    text: bool,
    tool_result: bool,
    tool_uses: Vec<(Option<Cow<'a, str>>, Cow<'a, str>)>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            // The string itself is the prompt's text: looked at for its presence only.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Content { text: true, ..Content::default() })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut c = Content::default();
                while let Some(b) = seq.next_element::<Block<'de>>()? {
                    match b.kind.as_deref() {
                        Some("text") => c.text = true,
                        Some("tool_result") => c.tool_result = true,
                        Some("tool_use") => {
                            if let Some(name) = b.name {
                                c.tool_uses.push((b.id, name));
                            }
                        }
                        _ => {}
                    }
                }
                Ok(c)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

pub(super) fn line(line: &[u8], file: &mut FileSessions, rules: &Rules) {
    let Ok(r) = serde_json::from_slice::<Record<'_>>(line) else {
        file.malformed = file.malformed.saturating_add(1);
        return;
    };
    let Some(session) = r.session_id.as_deref().filter(|s| super::is_name(s)) else { return };
    let kind = r.kind.as_deref().unwrap_or_default();
    // Summaries, snapshots and queue operations carry no use of their own.
    if !matches!(kind, "user" | "assistant" | "system") {
        return;
    }
    let mut calls = Vec::new();
    if let Some(m) = &r.message {
        for (id, _) in &m.content.tool_uses {
            calls.push(id.as_deref().is_none_or(|id| file.first_call(id)));
        }
    }
    let t = file.session(session);
    if let Some(ms) = r.timestamp.as_deref().and_then(rfc3339_ms) {
        t.saw(ms);
    }
    if t.project.is_none()
        && let Some(cwd) = r.cwd.as_deref().filter(|c| !c.is_empty())
    {
        t.project = Some(cwd.to_owned());
    }
    let Some(m) = r.message else { return };
    match kind {
        "assistant" => {
            // `<synthetic>` marks messages Claude Code wrote itself (an interrupted turn).
            if let Some(model) = m.model.as_deref().filter(|m| *m != "<synthetic>") {
                t.model(model);
            }
            for ((_, name), first) in m.content.tool_uses.iter().zip(calls) {
                if first {
                    t.tool_call(name, &rules.mcp);
                }
            }
        }
        // A subagent's (sidechain's) user text is the task the model wrote, not the person's.
        "user"
            if r.is_meta != Some(true)
                && r.is_sidechain != Some(true)
                && r.tool_use_result.is_none()
                && !m.content.tool_result
                && m.content.text =>
        {
            t.prompts = t.prompts.saturating_add(1);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::{McpNaming, read_lines};
    use super::*;
    use crate::catalog::ActivityFormat;

    fn read(text: &str) -> FileSessions {
        let rules =
            Rules { mcp: McpNaming::parse_all(&["mcp__{server}__{tool}".into()]), ..Rules::default() };
        let mut f = FileSessions::default();
        read_lines(ActivityFormat::ClaudeCodeJsonl, text.lines().map(str::as_bytes), &mut f, &rules);
        f
    }

    const S: &str = r#""sessionId":"s1","cwd":"/home/a/proj","#;

    #[test]
    fn prompts_are_typed_text_not_tool_results_or_meta() {
        let f = read(&[
            format!(r#"{{"type":"user",{S}"timestamp":"2025-06-01T10:00:00.000Z","message":{{"role":"user","content":"CANARY prompt"}}}}"#),
            format!(r#"{{"type":"user",{S}"isMeta":true,"timestamp":"2025-06-01T10:00:01.000Z","message":{{"role":"user","content":"Caveat: CANARY"}}}}"#),
            format!(r#"{{"type":"user",{S}"timestamp":"2025-06-01T10:00:02.000Z","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":"CANARY out"}}]}},"toolUseResult":{{"stdout":"CANARY"}}}}"#),
            format!(r#"{{"type":"user",{S}"timestamp":"2025-06-01T10:00:03.000Z","message":{{"role":"user","content":[{{"type":"text","text":"CANARY \"quoted\" second"}}]}}}}"#),
        ]
        .join("\n"));
        let t = &f.sessions["s1"];
        assert_eq!(t.prompts, 2);
        assert_eq!(t.project.as_deref(), Some("/home/a/proj"));
        assert_eq!(t.ended_at_ms.zip(t.started_at_ms).map(|(e, s)| e - s), Some(3000));
    }

    #[test]
    fn split_assistant_messages_count_each_tool_use_once() {
        let a = |blocks: &str| {
            format!(
                r#"{{"type":"assistant",{S}"timestamp":"2025-06-01T10:00:05.000Z","message":{{"id":"msg_1","model":"claude-sonnet-4-5","content":[{blocks}]}}}}"#
            )
        };
        let f = read(&[
            a(r#"{"type":"thinking","thinking":"CANARY"}"#),
            a(r#"{"type":"tool_use","id":"toolu_1","name":"mcp__github__create_issue","input":{"title":"CANARY"}}"#),
            a(r#"{"type":"tool_use","id":"toolu_2","name":"Bash","input":{"command":"CANARY"}}"#),
            // The same line replayed (a resumed session) adds nothing.
            a(r#"{"type":"tool_use","id":"toolu_1","name":"mcp__github__create_issue","input":{"title":"CANARY"}}"#),
            r#"{"type":"assistant","sessionId":"s1","message":{"model":"<synthetic>","content":[]}}"#.into(),
        ]
        .join("\n"));
        let t = &f.sessions["s1"];
        assert_eq!(t.tool_calls, 2);
        assert_eq!(t.mcp["github"].calls, 1);
        assert!(t.mcp["github"].tools.contains("create_issue"));
        assert_eq!(t.models.iter().collect::<Vec<_>>(), ["claude-sonnet-4-5"]);
        assert_eq!(t.prompts, 0);
    }

    #[test]
    fn malformed_and_foreign_lines_are_skipped() {
        let f = read(
            &[
                "{not json CANARY".to_owned(),
                r#"{"type":"summary","summary":"CANARY","leafUuid":"u"}"#.to_owned(),
                r#"{"type":"file-history-snapshot","messageId":"m","snapshot":{}}"#.to_owned(),
                format!(r#"{{"type":"user",{S}"message":{{"content":"hi"}}}}"#),
                r#"{"type":"user","sessionId":"has space","message":{"content":"x"}}"#.to_owned(),
                "[1,2,3]".to_owned(),
            ]
            .join("\n"),
        );
        assert_eq!(f.malformed, 2);
        assert_eq!(f.sessions.len(), 1);
        assert_eq!(f.sessions["s1"].prompts, 1);
        assert!(!format!("{f:?}").contains("CANARY"));
    }
}
