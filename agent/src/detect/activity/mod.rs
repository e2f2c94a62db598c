//! AI activity from the tools' own session records: Claude Code transcripts, Codex
//! rollouts, Gemini CLI chats, aider chat histories.
//!
//! Only metadata is kept — when a session ran, in which project (fingerprinted), with which
//! models, how many prompts and tool calls, and per MCP server how many calls to which tool
//! names. The text of prompts, responses, files, commands and tool arguments is parsed past
//! and dropped on the spot: no type below has a field that could hold it.
//!
//! Where each tool keeps its records and how it names MCP tools is catalog data
//! (`[[activity]]`); how each record format is read is code, one module per format.

mod aider;
mod claude;
mod codex;
mod follow;
mod gemini;
mod look;

pub use follow::Memory;
pub use look::{
    HomeActivity, Inputs, MAX_FILES_PER_TOOL, MAX_SESSIONS_HELD_PER_HOME, Session, Settings, look_home,
};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

use crate::catalog::ActivityFormat;

/// Reads complete lines appended to a file of a line-oriented format (each without its
/// newline), in order, into the file's sessions.
pub fn read_lines<'a>(
    format: ActivityFormat,
    lines: impl IntoIterator<Item = &'a [u8]>,
    file: &mut FileSessions,
    rules: &Rules,
) {
    for line in lines {
        match format {
            ActivityFormat::ClaudeCodeJsonl => claude::line(line, file, rules),
            ActivityFormat::CodexRollout => codex::line(line, file, rules),
            ActivityFormat::GeminiChat => gemini::line(line, file, rules),
            ActivityFormat::AiderHistory => aider::line(line, file, rules),
        }
    }
}

/// Reads a file that is one document rewritten whole (Gemini CLI's `session-*.json`) into
/// its sessions, from scratch.
pub fn read_document(format: ActivityFormat, bytes: &[u8], rules: &Rules) -> FileSessions {
    match format {
        ActivityFormat::GeminiChat => gemini::document(bytes, rules),
        // The other formats are line-oriented: a whole file is its lines.
        other => {
            let mut file = FileSessions::default();
            read_lines(other, bytes.split(|&b| b == b'\n'), &mut file, rules);
            file
        }
    }
}

/// What one session's records say so far. Totals, not deltas: a session read again from
/// the start yields the same tally.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub session_id: String,
    /// Unix milliseconds of the first and latest timestamped record.
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// The project directory as the record names it. Fingerprinted before it leaves the
    /// detector unless the agent is configured with `activity_paths = "plain"`.
    pub project: Option<String>,
    pub models: BTreeSet<String>,
    /// The provider account the record says the session ran under, where it says so.
    pub account: Option<String>,
    pub prompts: u32,
    pub tool_calls: u32,
    /// By MCP server name.
    pub mcp: BTreeMap<String, McpTally>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpTally {
    pub calls: u32,
    pub tools: BTreeSet<String>,
}

/// Bounds on what one session may accumulate (the contract's, which the collector holds
/// reports to as well): a hostile or corrupt log cannot grow the agent's memory or the
/// report without limit.
pub use sightline_proto::activity::{MAX_MCP_SERVERS, MAX_MCP_TOOLS, MAX_MODELS, MAX_NAME, is_name};
/// Tool-call ids remembered per file for counting each call once.
pub const MAX_SEEN_CALLS: usize = 100_000;
/// Sessions one file may hold. Real files hold one (Claude Code, Codex, Gemini) or one per
/// aider run; a file naming more is forged or corrupt, and each extra session would be one
/// more report on every look.
pub const MAX_SESSIONS_PER_FILE: usize = 1_000;
/// Sessions one home may report, over all its files: the most recently active are kept.
pub const MAX_SESSIONS_PER_HOME: usize = 10_000;

impl Tally {
    pub fn new(session_id: impl Into<String>) -> Tally {
        Tally { session_id: session_id.into(), ..Tally::default() }
    }

    /// A record at `at_ms` belongs to the session: widens its span.
    pub fn saw(&mut self, at_ms: i64) {
        self.started_at_ms = Some(self.started_at_ms.map_or(at_ms, |s| s.min(at_ms)));
        self.ended_at_ms = Some(self.ended_at_ms.map_or(at_ms, |e| e.max(at_ms)));
    }

    pub fn model(&mut self, name: &str) {
        if self.models.len() < MAX_MODELS && is_name(name) {
            self.models.insert(name.to_owned());
        }
    }

    /// One tool call named `name`; an MCP call when `naming` recognises the name.
    pub fn tool_call(&mut self, name: &str, naming: &McpNaming) {
        self.tool_calls = self.tool_calls.saturating_add(1);
        if let Some((server, tool)) = naming.split(name) {
            self.mcp_call(server, tool);
        }
    }

    /// One call to `tool` on MCP server `server`, for formats that record the two apart.
    pub fn mcp_call(&mut self, server: &str, tool: &str) {
        if !is_name(server) || (!self.mcp.contains_key(server) && self.mcp.len() >= MAX_MCP_SERVERS) {
            return;
        }
        let t = self.mcp.entry(server.to_owned()).or_default();
        t.calls = t.calls.saturating_add(1);
        if t.tools.len() < MAX_MCP_TOOLS && is_name(tool) {
            t.tools.insert(tool.to_owned());
        }
    }
}

/// How a tool spells an MCP tool call's name, from the catalog's `mcp_tool` patterns such as
/// `mcp__{server}__{tool}`: a literal prefix, `{server}`, a separator, `{tool}`. Tools have
/// changed their spelling between versions, so a log may hold several; they are tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct McpNaming {
    patterns: Vec<(String, String)>,
}

impl McpNaming {
    /// Parses one catalog pattern; `None` for one without `{server}` then `{tool}`.
    pub fn parse(pattern: &str) -> Option<McpNaming> {
        let (prefix, separator) = crate::catalog::split_mcp_pattern(pattern)?;
        Some(McpNaming { patterns: vec![(prefix.to_owned(), separator.to_owned())] })
    }

    /// Parses the catalog's patterns, skipping any that do not parse (the catalog loader has
    /// already refused those).
    pub fn parse_all(patterns: &[String]) -> McpNaming {
        McpNaming {
            patterns: patterns.iter().filter_map(|p| McpNaming::parse(p)).flat_map(|n| n.patterns).collect(),
        }
    }

    /// `(server, tool)` when `name` is an MCP tool call's name under the first pattern that
    /// fits. The server is everything up to the first separator after the prefix (the tools
    /// sanitise server names; a server name that itself holds the separator is split wrongly
    /// by the tools themselves too).
    pub fn split<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        self.patterns.iter().find_map(|(prefix, separator)| {
            let rest = name.strip_prefix(prefix.as_str())?;
            let (server, tool) = rest.split_once(separator.as_str())?;
            (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
        })
    }

    /// As `split`, but only when the separator occurs once after the prefix: when a tool's
    /// spelling cannot tell a separator inside a server or tool name from the one between
    /// them (Gemini CLI's `mcp_{server}_{tool}` with `create_issue`), no server is guessed.
    pub fn split_unambiguous<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        self.patterns.iter().find_map(|(prefix, separator)| {
            let rest = name.strip_prefix(prefix.as_str())?;
            let (server, tool) = rest.split_once(separator.as_str())?;
            (!server.is_empty() && !tool.is_empty() && !tool.contains(separator.as_str()))
                .then_some((server, tool))
        })
    }
}

/// The sessions one log file holds, and what a line-oriented format must remember between
/// looks at the file (a Codex rollout names its session once, in its first line; an aider
/// history opens each session with a header).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSessions {
    pub sessions: BTreeMap<String, Tally>,
    /// The session that records without their own session id belong to.
    pub current: Option<String>,
    /// Lines that were not records of the format (torn, corrupt): skipped and counted.
    #[serde(default)]
    pub malformed: u32,
    /// Hashes of the tool-call ids counted so far, for formats that write one call more
    /// than once (Claude Code splits a message over lines and replays resumed sessions).
    #[serde(default)]
    pub seen_calls: BTreeSet<u64>,
    /// What a format must remember between looks beyond the sessions themselves.
    #[serde(default, skip_serializing_if = "Carry::is_none")]
    pub carry: Carry,
    /// Sessions beyond [`MAX_SESSIONS_PER_FILE`] met so far: read past, not kept.
    #[serde(default)]
    pub dropped: u32,
    /// Where the records of a session beyond the cap are tallied and forgotten, so the
    /// format readers need not know about the cap.
    #[serde(skip)]
    sink: Tally,
}

/// Per-format state carried from one look at a file to the next. Names and counts only,
/// like the tallies.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carry {
    #[default]
    None,
    /// Gemini CLI's JSONL records revise earlier ones (a message re-appended, a rewind, a
    /// checkpoint), so each live message's share of the tally is kept, by id.
    Gemini(Box<gemini::Replay>),
    /// aider writes a multi-line input as consecutive `#### ` lines: whether the last line
    /// read was one, so the next is the same input, not a new one.
    Aider { in_input: bool },
}

impl Carry {
    fn is_none(&self) -> bool {
        matches!(self, Carry::None)
    }
}

impl FileSessions {
    /// The session `id`, created on first mention. Past [`MAX_SESSIONS_PER_FILE`] a new
    /// session is counted in `dropped` and its records go to a tally nobody reports.
    pub fn session(&mut self, id: &str) -> &mut Tally {
        if !self.sessions.contains_key(id) && self.sessions.len() >= MAX_SESSIONS_PER_FILE {
            if self.sink.session_id != id {
                self.dropped = self.dropped.saturating_add(1);
                self.sink = Tally::new(id);
            }
            return &mut self.sink;
        }
        self.sessions.entry(id.to_owned()).or_insert_with(|| Tally::new(id))
    }

    /// Whether the tool call `id` is met for the first time in this file. Past
    /// [`MAX_SEEN_CALLS`] ids every call counts: a bounded memory over an exact count.
    pub fn first_call(&mut self, id: &str) -> bool {
        // FNV-1a: a stable 64-bit hash, enough to tell one file's call ids apart.
        let h = id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        self.seen_calls.len() >= MAX_SEEN_CALLS || self.seen_calls.insert(h)
    }

    /// The current session, if one was opened.
    pub fn current(&mut self) -> Option<&mut Tally> {
        let id = self.current.clone()?;
        Some(self.session(&id))
    }
}

/// What a format reader is given besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub mcp: McpNaming,
    /// A stable name for the file, for formats whose records carry no session id so one is
    /// derived from the file and the session's start. The agent passes the keyed fingerprint
    /// of the home-relative path (`fp:…`), never the path: the id leaves the device.
    pub file_key: String,
    /// The device's offset from UTC in seconds, for formats that write local wall-clock
    /// times (aider), taken once at agent start.
    pub local_offset_s: i32,
}

/// The device's offset from UTC in seconds, for formats that write local wall-clock times
/// (aider). Read once at agent start ([`read_local_offset_s`], before any thread exists: on
/// Unix the OS's local offset cannot be read soundly once threads run, and the `time` crate
/// refuses to); 0 until set.
static LOCAL_OFFSET_S: AtomicI32 = AtomicI32::new(0);

/// Records the device's offset from UTC for every later look.
pub fn set_local_offset_s(seconds: i32) {
    LOCAL_OFFSET_S.store(seconds, Ordering::Relaxed);
}

/// The offset recorded by [`set_local_offset_s`].
pub fn local_offset_s() -> i32 {
    LOCAL_OFFSET_S.load(Ordering::Relaxed)
}

/// Reads the device's current offset from UTC; 0 when it cannot be read (threads already
/// running, no zone data). Call it before starting any thread.
pub fn read_local_offset_s() -> i32 {
    time::UtcOffset::current_local_offset().map_or(0, |o| o.whole_seconds())
}

/// Parses a timestamp as the tools write them: RFC 3339 (`2025-06-01T12:00:00.123Z`,
/// offsets allowed). `None` for anything else.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let ts = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(ts.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_names_split_at_the_first_separator_after_the_prefix() {
        let claude = McpNaming::parse("mcp__{server}__{tool}").unwrap();
        assert_eq!(claude.split("mcp__github__create_issue"), Some(("github", "create_issue")));
        assert_eq!(claude.split("mcp__github__list__all"), Some(("github", "list__all")));
        assert_eq!(claude.split("Bash"), None);
        assert_eq!(claude.split("mcp____x"), None);
        assert_eq!(McpNaming::parse("{server}"), None);
        let codex = McpNaming::parse_all(&["mcp__{server}__{tool}".into(), "{server}__{tool}".into()]);
        assert_eq!(codex.split("linear__get_issue"), Some(("linear", "get_issue")));
        assert_eq!(codex.split("mcp__linear__get_issue"), Some(("linear", "get_issue")));
        assert_eq!(codex.split("shell"), None);
    }

    #[test]
    fn a_tally_keeps_names_not_text_and_stays_bounded() {
        let naming = McpNaming::parse("mcp__{server}__{tool}").unwrap();
        let mut t = Tally::new("s");
        t.saw(20);
        t.saw(10);
        t.model("claude-sonnet-4");
        t.model("not a model name, but a sentence");
        t.tool_call("mcp__github__create_issue", &naming);
        t.tool_call("Bash", &naming);
        for i in 0..MAX_MCP_SERVERS + 10 {
            t.mcp_call(&format!("s{i}"), "t");
        }
        assert_eq!((t.started_at_ms, t.ended_at_ms), (Some(10), Some(20)));
        assert_eq!(t.models.iter().collect::<Vec<_>>(), ["claude-sonnet-4"]);
        assert_eq!(t.tool_calls, 2);
        assert_eq!(t.mcp["github"].calls, 1);
        assert_eq!(t.mcp.len(), MAX_MCP_SERVERS);
    }

    #[test]
    fn a_file_keeps_at_most_its_cap_of_sessions() {
        let mut f = FileSessions::default();
        for i in 0..MAX_SESSIONS_PER_FILE + 500 {
            f.session(&format!("s{i}")).prompts += 1;
            // Records of a dropped session, met again, are not counted as another drop.
            f.session(&format!("s{i}")).prompts += 1;
        }
        assert_eq!(f.sessions.len(), MAX_SESSIONS_PER_FILE);
        assert_eq!(f.dropped, 500);
        assert!(f.sessions.values().all(|t| t.prompts == 2));
        // A session already kept still takes its records.
        f.session("s0").prompts += 1;
        assert_eq!((f.sessions["s0"].prompts, f.dropped), (3, 500));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(rfc3339_ms("1970-01-01T01:00:01+01:00"), Some(1000));
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
