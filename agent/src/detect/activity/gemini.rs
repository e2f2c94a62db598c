//! Gemini CLI's chat recordings (google-gemini/gemini-cli
//! packages/core/src/services/chatRecordingService.ts, chatRecordingTypes.ts).
//!
//! Two shapes of one `ConversationRecord {sessionId, projectHash, startTime, lastUpdated,
//! messages[]}`:
//! - `session-*.json` (before v0.39): the whole record, rewritten on every update;
//! - `session-*.jsonl` (since v0.39): appended records replayed in order — a metadata line,
//!   messages (a string `id`; the same id re-appended replaces the earlier one in place),
//!   `{"$set": {…}}` metadata updates (`$set.messages` replaces every message) and
//!   `{"$rewindTo": id}` (drops that message and all after it; an unknown id drops all).
//!   The replay order and rules follow `loadConversationRecord`.
//!
//! A prompt is a `user` message with no `functionResponse` part (tool results are recorded as
//! synthetic user messages) whose text is not one Gemini CLI itself ignores
//! (`isIgnoredUserContent`: blank, or starting with `/`, `?`, `<session_context>`,
//! `<hook_context>`). Tool calls are `toolCalls[]` of `gemini` messages; an MCP call's
//! `displayName` is `<tool> (<server> MCP Server)`, with the names as the server gave them.
//!
//! No content survives parsing: text is judged by [`Lead`] as it is read and never stored.
//! The record names its project only by a hash of the path, so `project` stays `None` here.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Carry, FileSessions, MAX_MCP_SERVERS, MAX_MCP_TOOLS, MAX_MODELS, McpTally, Rules, is_name, rfc3339_ms,
};

/// Messages whose share of the tally stays revisable; older ones are folded in for good
/// (a later re-append of one of those is counted again, a rewind to one drops everything).
/// Bounds the state a hostile file can make the agent keep.
const MAX_REVISABLE: usize = 20_000;

pub(super) fn line(line: &[u8], file: &mut FileSessions, rules: &Rules) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    // A line that is not a record (a partial write, garbage) is skipped, as Gemini CLI does.
    match serde_json::from_slice::<Record>(line) {
        Ok(record) => apply(record, file, rules),
        Err(_) => file.malformed = file.malformed.saturating_add(1),
    }
}

pub(super) fn document(bytes: &[u8], rules: &Rules) -> FileSessions {
    let mut file = FileSessions::default();
    if let Ok(record) = serde_json::from_slice::<Record>(bytes) {
        apply(record, &mut file, rules);
    }
    file
}

/// One JSON record of either shape: every field any record kind has, none holding content.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Record {
    #[serde(rename = "$rewindTo")]
    rewind_to: Option<String>,
    #[serde(rename = "$set")]
    set: Option<Header>,
    // A metadata line (or the whole `.json` record).
    session_id: Option<String>,
    project_hash: Option<IgnoredAny>,
    start_time: Option<String>,
    last_updated: Option<String>,
    messages: Option<Vec<Message>>,
    // A message line.
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    timestamp: Option<String>,
    content: Content,
    model: Option<String>,
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Header {
    start_time: Option<String>,
    last_updated: Option<String>,
    messages: Option<Vec<Message>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Message {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    timestamp: Option<String>,
    content: Content,
    model: Option<String>,
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ToolCall {
    name: String,
    display_name: Option<String>,
    timestamp: Option<String>,
}

/// What a message's `content` (a string, a part, or a list of parts) says about whether it
/// is a prompt — and nothing else.
#[derive(Default, Clone, Copy)]
struct Content {
    function_response: bool,
    /// The first non-blank text: whether Gemini CLI ignores it. `None`: no text at all.
    lead: Option<Lead>,
}

impl Content {
    fn add(&mut self, part: Part) {
        self.function_response |= part.function_response.is_some();
        if self.lead.is_none() {
            self.lead = part.text.filter(|l| !l.blank);
        }
    }
}

/// A text judged as it is parsed, then dropped.
#[derive(Clone, Copy)]
struct Lead {
    blank: bool,
    ignored: bool,
}

impl Lead {
    fn of(text: &str) -> Lead {
        let t = text.trim();
        let ignored = ["/", "?", "<session_context>", "<hook_context>"].iter().any(|p| t.starts_with(p));
        Lead { blank: t.is_empty(), ignored }
    }
}

impl<'de> Deserialize<'de> for Lead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lead, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lead;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Lead, E> {
                Ok(Lead::of(s))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Part {
    text: Option<Lead>,
    function_response: Option<IgnoredAny>,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Content, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a part or a list of parts")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content { function_response: false, lead: Some(Lead::of(s)).filter(|l| !l.blank) })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut c = Content::default();
                while let Some(part) = seq.next_element::<Part>()? {
                    c.add(part);
                }
                Ok(c)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Content, A::Error> {
                let mut c = Content::default();
                c.add(Part::deserialize(de::value::MapAccessDeserializer::new(map))?);
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

/// Gemini CLI's JSONL replay, kept as each live message's share of the tally (names and
/// counts), so a message re-appended or rewound away can be taken back out.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    session: String,
    /// Message id (as [`key`]) → its place (first appearance; a re-append keeps it).
    ids: BTreeMap<u64, u64>,
    live: BTreeMap<u64, Entry>,
    next: u64,
    totals: Ledger,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    id: u64,
    share: Share,
}

/// One message's part of the tally.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Share {
    prompt: bool,
    tool_calls: u32,
    model: Option<String>,
    /// `(server, tool, calls)`; the tool is empty when its name is not a name. At most
    /// `MAX_MCP_TOOLS` pairs: further calls count in `tool_calls` only.
    mcp: Vec<(String, String, u32)>,
}

/// The sum of the shares, with a count per name so a name leaves when its last use does.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    prompts: u32,
    tool_calls: u32,
    models: BTreeMap<String, u32>,
    mcp: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Ledger {
    fn add(&mut self, s: &Share) {
        self.prompts = self.prompts.saturating_add(u32::from(s.prompt));
        self.tool_calls = self.tool_calls.saturating_add(s.tool_calls);
        if let Some(m) = &s.model
            && (self.models.contains_key(m) || self.models.len() < MAX_MODELS)
        {
            *self.models.entry(m.clone()).or_default() += 1;
        }
        for (server, tool, n) in &s.mcp {
            if !self.mcp.contains_key(server) && self.mcp.len() >= MAX_MCP_SERVERS {
                continue;
            }
            let tools = self.mcp.entry(server.clone()).or_default();
            if tools.contains_key(tool) || tools.len() < MAX_MCP_TOOLS {
                let c = tools.entry(tool.clone()).or_default();
                *c = c.saturating_add(*n);
            }
        }
    }

    fn sub(&mut self, s: &Share) {
        self.prompts = self.prompts.saturating_sub(u32::from(s.prompt));
        self.tool_calls = self.tool_calls.saturating_sub(s.tool_calls);
        if let Some(m) = &s.model {
            take(&mut self.models, m, 1);
        }
        for (server, tool, n) in &s.mcp {
            if let Some(tools) = self.mcp.get_mut(server) {
                take(tools, tool, *n);
                if tools.is_empty() {
                    self.mcp.remove(server);
                }
            }
        }
    }
}

fn take(counts: &mut BTreeMap<String, u32>, key: &str, by: u32) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(by);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// A message id as the replay keeps it: 64 bits of its SHA-256, so a hostile id costs the
/// agent's memory and state file no more than a short one.
fn key(id: &str) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

impl Replay {
    fn new(session: &str) -> Replay {
        Replay { session: session.to_owned(), ..Replay::default() }
    }

    fn clear(&mut self) {
        *self = Replay::new(&self.session);
    }

    /// A message record: new, or replacing the one with its id where that one stood.
    fn message(&mut self, id: &str, share: Share) {
        let id = key(id);
        self.totals.add(&share);
        if let Some(seq) = self.ids.get(&id)
            && let Some(old) = self.live.get_mut(seq)
        {
            let old = std::mem::replace(&mut old.share, share);
            self.totals.sub(&old);
            return;
        }
        self.ids.insert(id, self.next);
        self.live.insert(self.next, Entry { id, share });
        self.next += 1;
        if self.live.len() > MAX_REVISABLE
            && let Some((_, oldest)) = self.live.pop_first()
        {
            // Stays counted in `totals`; only its revisability is given up.
            self.ids.remove(&oldest.id);
        }
    }

    fn rewind_to(&mut self, id: &str) {
        let Some(&seq) = self.ids.get(&key(id)) else {
            // Gemini CLI drops every message when the id is unknown.
            self.clear();
            return;
        };
        for (_, gone) in self.live.split_off(&seq) {
            self.ids.remove(&gone.id);
            self.totals.sub(&gone.share);
        }
    }

    /// Writes the totals into the session's tally (the span is widened as records are read).
    fn publish(&self, file: &mut FileSessions) {
        let t = file.session(&self.session);
        t.prompts = self.totals.prompts;
        t.tool_calls = self.totals.tool_calls;
        t.models = self.totals.models.keys().cloned().collect();
        t.mcp = self
            .totals
            .mcp
            .iter()
            .map(|(server, tools)| {
                let tally = McpTally {
                    calls: tools.values().fold(0u32, |a, n| a.saturating_add(*n)),
                    tools: tools.keys().filter(|t| is_name(t)).cloned().collect(),
                };
                (server.clone(), tally)
            })
            .collect();
    }
}

fn share(m: &Message, rules: &Rules) -> Share {
    let kind = m.kind.as_deref().unwrap_or_default();
    let prompt = kind == "user" && !m.content.function_response && m.content.lead.is_some_and(|l| !l.ignored);
    let mut s = Share { prompt, ..Share::default() };
    if kind == "gemini" {
        s.model = m.model.as_deref().filter(|n| is_name(n)).map(str::to_owned);
        for call in &m.tool_calls {
            s.tool_calls = s.tool_calls.saturating_add(1);
            if let Some((server, tool)) = mcp_server(call, rules)
                && is_name(server)
            {
                let tool = if is_name(tool) { tool } else { "" };
                if let Some(pair) = s.mcp.iter_mut().find(|(s, t, _)| s == server && t == tool) {
                    pair.2 = pair.2.saturating_add(1);
                } else if s.mcp.len() < MAX_MCP_TOOLS {
                    s.mcp.push((server.to_owned(), tool.to_owned(), 1));
                }
            }
        }
    }
    s
}

/// The MCP server and tool a call went to: from `displayName` (`<tool> (<server> MCP
/// Server)`, the names as the server gave them), else from the call's name when its spelling
/// (`mcp_<server>_<tool>` since v0.34, `<server>__<tool>` on a clash before) reads only one way.
fn mcp_server<'a>(call: &'a ToolCall, rules: &Rules) -> Option<(&'a str, &'a str)> {
    let from_display = call.display_name.as_deref().and_then(|d| {
        let (tool, server) = d.strip_suffix(" MCP Server)")?.rsplit_once(" (")?;
        Some((server, tool))
    });
    from_display.or_else(|| rules.mcp.split_unambiguous(&call.name))
}

fn replay(file: &mut FileSessions) -> Option<&mut Replay> {
    match &mut file.carry {
        Carry::Gemini(r) => Some(r),
        _ => None,
    }
}

fn apply(r: Record, file: &mut FileSessions, rules: &Rules) {
    // The order of the checks is Gemini CLI's own (loadConversationRecord).
    if let Some(id) = r.rewind_to {
        if let Some(rp) = replay(file) {
            rp.rewind_to(&id);
        }
    } else if let Some(id) = r.id {
        let m = Message {
            id: Some(id),
            kind: r.kind,
            timestamp: r.timestamp,
            content: r.content,
            model: r.model,
            tool_calls: r.tool_calls,
        };
        messages(file, vec![m], false, rules);
    } else if let Some(set) = r.set {
        times(file, [set.start_time.as_deref(), set.last_updated.as_deref()]);
        if let Some(ms) = set.messages {
            messages(file, ms, true, rules);
        }
    } else if let (Some(session), Some(_)) = (r.session_id.filter(|s| is_name(s)), r.project_hash) {
        // A file holds one session; a metadata line naming another starts its replay afresh.
        if !matches!(&file.carry, Carry::Gemini(rp) if rp.session == session) {
            file.carry = Carry::Gemini(Box::new(Replay::new(&session)));
        }
        file.session(&session);
        file.current = Some(session);
        times(file, [r.start_time.as_deref(), r.last_updated.as_deref()]);
        if let Some(ms) = r.messages {
            messages(file, ms, false, rules);
        }
    }
    if let Carry::Gemini(rp) = std::mem::take(&mut file.carry) {
        rp.publish(file);
        file.carry = Carry::Gemini(rp);
    }
}

fn times<const N: usize>(file: &mut FileSessions, at: [Option<&str>; N]) {
    if let Some(t) = file.current() {
        for ms in at.into_iter().flatten().filter_map(rfc3339_ms) {
            t.saw(ms);
        }
    }
}

/// Message records in order; `checkpoint`: they replace every earlier one (`$set.messages`).
fn messages(file: &mut FileSessions, ms: Vec<Message>, checkpoint: bool, rules: &Rules) {
    let Some(rp) = replay(file) else {
        return; // No metadata line yet: no session to count them in.
    };
    if checkpoint {
        rp.clear();
    }
    let mut stamps = Vec::new();
    for m in ms {
        let Some(id) = m.id.as_deref() else { continue };
        let s = share(&m, rules);
        rp.message(id, s);
        stamps.extend(m.timestamp);
        stamps.extend(m.tool_calls.into_iter().filter_map(|c| c.timestamp));
    }
    if let Some(t) = file.current() {
        for ms in stamps.iter().filter_map(|s| rfc3339_ms(s)) {
            t.saw(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::activity::{McpNaming, Tally};

    fn rules() -> Rules {
        Rules {
            mcp: McpNaming::parse_all(&["mcp_{server}_{tool}".into(), "{server}__{tool}".into()]),
            ..Rules::default()
        }
    }

    fn read(file: &mut FileSessions, text: &str) {
        for l in text.lines() {
            line(l.as_bytes(), file, &rules());
        }
    }

    fn only(file: &FileSessions) -> &Tally {
        assert_eq!(file.sessions.len(), 1, "{:?}", file.sessions.keys());
        file.sessions.values().next().unwrap()
    }

    const META: &str = r#"{"sessionId":"s1","projectHash":"ab12","startTime":"2026-01-01T10:00:00.000Z","lastUpdated":"2026-01-01T10:00:00.000Z","kind":"main"}"#;

    fn user(id: &str, text: &str) -> String {
        format!(
            r#"{{"id":"{id}","timestamp":"2026-01-01T10:01:00.000Z","type":"user","content":[{{"text":"{text}"}}]}}"#
        )
    }

    fn gemini(id: &str, calls: &[(&str, &str)]) -> String {
        let calls: Vec<String> = calls
            .iter()
            .map(|(n, d)| format!(r#"{{"id":"c","name":"{n}","displayName":"{d}","args":{{"q":"x"}},"status":"success","timestamp":"2026-01-01T10:02:00.000Z"}}"#))
            .collect();
        format!(
            r#"{{"id":"{id}","timestamp":"2026-01-01T10:02:00.000Z","type":"gemini","content":"ok","model":"gemini-2.5-pro","toolCalls":[{}]}}"#,
            calls.join(",")
        )
    }

    #[test]
    fn prompts_exclude_tool_results_commands_and_ui_messages() {
        let mut f = FileSessions::default();
        read(&mut f, META);
        read(&mut f, &user("u1", "fix the bug"));
        read(&mut f, &user("u2", "  /stats"));
        read(&mut f, &user("u3", "?"));
        read(&mut f, &user("u4", "<session_context>x"));
        read(&mut f, r#"{"id":"u5","type":"user","content":"plain string prompt"}"#);
        read(
            &mut f,
            r#"{"id":"u6","type":"user","content":[{"functionResponse":{"name":"read_file","response":{"output":"t"}}}]}"#,
        );
        read(
            &mut f,
            r#"{"id":"u7","type":"user","content":[{"text":""},{"text":"second part is the text"}]}"#,
        );
        read(&mut f, r#"{"id":"u8","type":"user","content":{"text":"a single part"}}"#);
        read(
            &mut f,
            r#"{"id":"u9","type":"user","content":[{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]}"#,
        );
        read(&mut f, r#"{"id":"i1","type":"info","content":"Switched model"}"#);
        read(&mut f, r#"{"id":"e1","type":"error","content":"boom"}"#);
        assert_eq!(only(&f).prompts, 4);
        assert_eq!(only(&f).session_id, "s1");
    }

    #[test]
    fn mcp_servers_come_from_display_names_or_unambiguous_names() {
        let mut f = FileSessions::default();
        read(&mut f, META);
        read(
            &mut f,
            &gemini(
                "g1",
                &[
                    ("mcp_github_create_issue", "create_issue (github MCP Server)"),
                    ("create_issue", "create_issue (my server MCP Server)"),
                    ("read_file", "ReadFile"),
                    // No display name to go by: only names that read one way.
                    ("mcp_linear_search", "mcp_linear_search"),
                    ("mcp_jira_get_issue", "mcp_jira_get_issue"),
                    ("notion__fetch", "notion__fetch"),
                ],
            ),
        );
        let t = only(&f);
        assert_eq!(t.tool_calls, 6);
        assert_eq!(t.mcp.keys().collect::<Vec<_>>(), ["github", "linear", "notion"]);
        assert_eq!(t.mcp["linear"].tools.iter().collect::<Vec<_>>(), ["search"]);
        assert_eq!(t.models.iter().collect::<Vec<_>>(), ["gemini-2.5-pro"]);
        // "my server" is not a name (a space): the call counts, the server is not reported.
    }

    #[test]
    fn replay_last_write_wins_rewinds_and_checkpoints_across_appends() {
        let mut f = FileSessions::default();
        read(&mut f, META);
        read(&mut f, &user("u1", "one"));
        read(&mut f, &gemini("g1", &[("read_file", "ReadFile")]));
        // The same message re-appended with its tool calls filled in: replaced, not added.
        read(&mut f, &gemini("g1", &[("read_file", "ReadFile"), ("x", "create_issue (github MCP Server)")]));
        assert_eq!((only(&f).prompts, only(&f).tool_calls), (1, 2));
        // A later look at the file (state carried through serde, as the agent persists it).
        let mut f: FileSessions = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        read(&mut f, &user("u2", "two"));
        read(&mut f, &gemini("g2", &[("mcp_slack_post", "post (slack MCP Server)")]));
        assert_eq!(only(&f).mcp.len(), 2);
        read(&mut f, r#"{"$rewindTo":"u2"}"#);
        let t = only(&f);
        assert_eq!((t.prompts, t.tool_calls), (1, 2));
        assert_eq!(t.mcp.keys().collect::<Vec<_>>(), ["github"]);
        // A rewound id re-used is a new message at the end.
        read(&mut f, &user("u2", "two again"));
        assert_eq!(only(&f).prompts, 2);
        // `$set.messages` replaces everything.
        read(
            &mut f,
            &format!(
                r#"{{"$set":{{"lastUpdated":"2026-01-01T11:00:00.000Z","messages":[{}]}}}}"#,
                user("c1", "only")
            ),
        );
        let t = only(&f);
        assert_eq!((t.prompts, t.tool_calls, t.mcp.len(), t.models.len()), (1, 0, 0, 0));
        assert_eq!(t.ended_at_ms, rfc3339_ms("2026-01-01T11:00:00.000Z"));
        assert_eq!(t.started_at_ms, rfc3339_ms("2026-01-01T10:00:00.000Z"));
        // A rewind to an id never seen drops every message, as Gemini CLI does.
        read(&mut f, r#"{"$rewindTo":"nope"}"#);
        assert_eq!(only(&f).prompts, 0);
    }

    #[test]
    fn garbage_partial_lines_and_messages_before_metadata_are_skipped() {
        let mut f = FileSessions::default();
        read(&mut f, &user("u0", "before any metadata"));
        assert!(f.sessions.is_empty());
        read(&mut f, META);
        read(&mut f, "not json");
        read(&mut f, r#"{"id":"u1","type":"user","content":[{"text":"cut of"#);
        read(&mut f, r#"{"id":17,"type":"user"}"#);
        read(&mut f, "");
        read(&mut f, "[1,2]");
        line(&[0xff, 0xfe, b'{'], &mut f, &rules());
        assert_eq!(only(&f).prompts, 0);
        read(&mut f, &user("u1", "after"));
        assert_eq!(only(&f).prompts, 1);
        assert_eq!(f.malformed, 5);
    }

    #[test]
    fn a_revision_takes_back_what_the_earlier_version_counted() {
        let mut f = FileSessions::default();
        read(&mut f, META);
        let three = [("a", "create_issue (github MCP Server)"); 3];
        read(&mut f, &gemini("g1", &three));
        assert_eq!((only(&f).tool_calls, only(&f).mcp["github"].calls), (3, 3));
        read(&mut f, &gemini("g1", &[("a", "list_issues (github MCP Server)")]));
        let t = only(&f);
        assert_eq!((t.tool_calls, t.mcp["github"].calls), (1, 1));
        assert_eq!(t.mcp["github"].tools.iter().collect::<Vec<_>>(), ["list_issues"]);
        // Twice in one checkpoint: the later one stands, in the earlier one's place.
        read(&mut f, &format!(r#"{{"$set":{{"messages":[{},{}]}}}}"#, user("d", "one"), user("d", "/clear")));
        assert_eq!((only(&f).prompts, only(&f).tool_calls), (0, 0));
    }

    #[test]
    fn ids_that_are_not_names_are_not_kept() {
        let mut f = FileSessions::default();
        let long = "x".repeat(10_000);
        read(&mut f, &format!(r#"{{"sessionId":"{long}","projectHash":"ab"}}"#));
        read(&mut f, &user("u1", "p"));
        assert!(f.sessions.is_empty());
        read(&mut f, META);
        read(&mut f, &user(&long, "p"));
        read(&mut f, &format!(r#"{{"$rewindTo":"{long}"}}"#));
        read(&mut f, &user("u2", "p"));
        assert_eq!(only(&f).prompts, 1);
        assert!(serde_json::to_string(&f).unwrap().len() < 2_000);
    }

    #[test]
    fn a_json_document_is_one_session() {
        let doc = format!(
            r#"{{
  "sessionId": "d1", "projectHash": "ff", "startTime": "2026-01-01T09:00:00.000Z",
  "lastUpdated": "2026-01-01T10:30:00.000Z", "summary": "x",
  "messages": [{}, {}, {}]
}}"#,
            user("a", "q"),
            gemini("b", &[("mcp_github_list_prs", "list_prs (github MCP Server)")]),
            user("c", "q2")
        );
        let f = document(doc.as_bytes(), &rules());
        let t = only(&f);
        assert_eq!((t.prompts, t.tool_calls, t.mcp["github"].calls), (2, 1, 1));
        assert_eq!(t.ended_at_ms, rfc3339_ms("2026-01-01T10:30:00.000Z"));
        assert!(document(b"{\"truncated", &rules()).sessions.is_empty());
    }

    #[test]
    fn the_replay_state_is_bounded() {
        let mut f = FileSessions::default();
        read(&mut f, META);
        for i in 0..MAX_REVISABLE + 5 {
            read(&mut f, &user(&format!("m{i}"), "p"));
        }
        let Carry::Gemini(rp) = &f.carry else { panic!("no replay") };
        assert_eq!(rp.live.len(), MAX_REVISABLE);
        assert_eq!(rp.ids.len(), MAX_REVISABLE);
        assert_eq!(only(&f).prompts as usize, MAX_REVISABLE + 5);
    }
}
