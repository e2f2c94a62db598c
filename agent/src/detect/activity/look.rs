//! One look at a home's AI activity: find the record files the catalog names, follow each
//! (see [`follow`](super::follow)), merge the sessions by (tool, session id) over files
//! (Claude Code writes a session's subagents to files of their own) and bind each to the
//! home's account and what this look found of the tool.
//!
//! What a session is bound to:
//! - `user`: the OS account whose home holds the record;
//! - `project`: `fp:<keyed fingerprint>` of the path the record names, or the path itself
//!   with `activity_paths = "plain"`;
//! - for sessions active in the 24 hours before the look only (older sessions may have run
//!   under credentials since replaced): `credentials`, the fingerprints of the credentials
//!   this scan found in the tool's own credential files (catalog `[[credential_file]]` of
//!   the tool), and, where the record names no account, the account the tool is signed in
//!   with (catalog `[[account]]`, as the accounts detector attached it).
//!
//! Discovery: `*` segments match real directories and regular files only, never a link;
//! a pattern's fixed parts (`.claude`, `projects`) are opened under the tree's link rules
//! like any other configuration path, and a file whose real path leads out of the home is
//! not read; a file reached twice (a linked `.config/claude`) is read once. At most
//! [`MAX_FILES_PER_TOOL`] files per tool and home are followed, the most recently modified
//! of the first `MAX_CANDIDATES` found (project files the walk met: the first it met); a
//! home with more says so in the look's errors. A file holds at most
//! [`MAX_SESSIONS_PER_FILE`](super::MAX_SESSIONS_PER_FILE) sessions, the memory holds at
//! most [`MAX_SESSIONS_HELD_PER_HOME`] per home, and a home reports at most
//! [`MAX_SESSIONS_PER_HOME`] (the most recently active; dates over a day ahead rank last);
//! beyond any of these the look says so in its errors.
//!
//! Errors about a record file name it, unless `activity_paths = "plain"`, as the records'
//! fixed root and the fingerprint of its home-relative path
//! (`/home/alice/.claude/projects/[fp:…]`): the path itself spells the project.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::follow::{Caps, Memory, follow};
use super::{MAX_SESSIONS_PER_HOME, McpNaming, Rules, Tally};
use crate::catalog::{ActivityFormat, ActivityLog, Catalog};
use crate::detect::walk::Walked;
use crate::detect::{
    Bound, Ctx, Finding, Home, Limits, Os, ProviderAccount, ScanError, TokenSource, expand, wildcard,
};
use crate::secret::Fingerprinter;

/// Record files followed at most per tool and home.
pub const MAX_FILES_PER_TOOL: usize = 10_000;
/// How far ahead of the agent's clock a record's time may be and still rank as recent.
const FUTURE_SLACK_MS: i64 = 24 * 3600 * 1000;
/// Record files considered at most per tool and home (each is opened to learn its age).
const MAX_CANDIDATES: usize = 4 * MAX_FILES_PER_TOOL;
/// Sessions the memory holds at most for one home, over all its files: twice what is
/// reported, so the most recent can be chosen, and a home heaped with forged records cannot
/// grow the agent (or its saved memory) past it (plus the one file that crosses it, kept
/// whole). Files past it are not read that look.
pub const MAX_SESSIONS_HELD_PER_HOME: usize = 2 * MAX_SESSIONS_PER_HOME;
/// Sessions that ended this long before a look are not bound to the credentials and
/// account found now.
const RECENT_MS: i64 = 24 * 3600 * 1000;

/// How the agent is configured to treat activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `activity = "metadata"`; `false` (`"off"`): no record file is even opened.
    pub enabled: bool,
    /// `activity_paths = "plain"`: project paths as they are, not fingerprinted.
    pub plain_paths: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { enabled: true, plain_paths: false }
    }
}

/// One session as this look sees it, merged over the files that hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub tool: String,
    pub format: ActivityFormat,
    pub user: String,
    pub tally: Tally,
    pub credentials: Vec<String>,
    pub account: Option<ProviderAccount>,
}

impl Session {
    /// The key its reports are remembered under.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.user, self.tool, self.tally.session_id)
    }

    /// What decides whether the session is reported again: its tally, not what it is bound
    /// to now (a session reported while active keeps the credentials it was bound to then;
    /// one read again days later is not re-reported without them).
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.tally).unwrap_or_default();
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
    }
}

/// What a look at one home's activity found.
#[derive(Debug, Default)]
pub struct HomeActivity {
    pub sessions: Vec<Session>,
    pub errors: Vec<ScanError>,
    /// The byte budget ran out: some files wait for another look.
    pub more: bool,
}

/// Everything one look at a home needs besides the home.
pub struct Inputs<'a> {
    pub catalog: &'a Catalog,
    pub fp: &'a Fingerprinter,
    pub limits: &'a Limits,
    pub os: Os,
    pub settings: Settings,
    pub now_ms: i64,
}

/// Looks at one home's activity records. `walked` holds the project files the bounded walk
/// met; `findings` are what this look's detectors found in the home (for credentials and
/// accounts). `budget` is the bytes this look may still read, over all homes.
pub fn look_home(
    inputs: &Inputs<'_>,
    home: &Home,
    walked: &Walked,
    findings: &[Finding],
    memory: &Memory,
    budget: &mut u64,
) -> HomeActivity {
    if !inputs.settings.enabled {
        return HomeActivity::default();
    }
    let mut ctx = Ctx::new(inputs.catalog, inputs.fp, inputs.limits, inputs.os);
    let caps = Caps { line: inputs.limits.activity_line, document: inputs.limits.activity_document };
    let base = format!("{}/", home.tree.display(Path::new("")).trim_end_matches('/'));
    let mut followed = HashSet::new();
    let mut more = false;
    let (mut held, mut unread) = (0usize, 0usize);
    for log in &inputs.catalog.activity {
        let rules = Rules {
            mcp: McpNaming::parse_all(&log.mcp_tool),
            file_key: String::new(),
            local_offset_s: super::local_offset_s(),
        };
        for (rel, root) in discover(&mut ctx, home, log, walked) {
            let plain = home.tree.display(&rel);
            let file_key = plain.strip_prefix(&base).unwrap_or(&plain).to_owned();
            // The memory is saved to disk and a record's path holds its project's (Claude Code
            // names the directory after the cwd, aider's history sits in the project): it is
            // keyed by the home and the fingerprint of the path within it.
            let fp_key = fingerprinted(inputs.fp, file_key);
            let key = format!("{base}{fp_key}");
            // Errors leave the device too: they name the records' fixed root and the
            // fingerprint, not the path.
            let shown = if inputs.settings.plain_paths {
                plain
            } else if root.as_os_str().is_empty() {
                format!("{base}[{fp_key}]")
            } else {
                format!("{}/[{fp_key}]", home.tree.display(&root))
            };
            // A record escaping the home through a linked directory is not read.
            if home.tree.real_display(&rel).is_some_and(|real| !real.starts_with(&base)) {
                ctx.errors.push(ScanError::new(shown, "activity record leads out of the home; not read"));
                continue;
            }
            if held >= MAX_SESSIONS_HELD_PER_HOME {
                unread += 1;
                continue;
            }
            // aider derives session ids from the file's key: the keyed fingerprint, so an id
            // cannot be used to confirm a guessed project path without the org's key.
            let rules = Rules { file_key: fp_key, ..rules.clone() };
            let known = memory.take(&key);
            let outcome = follow(
                &mut ctx,
                home,
                &rel,
                &shown,
                &log.tool,
                log.format,
                known,
                memory,
                &rules,
                &caps,
                budget,
                inputs.now_ms,
            );
            if let Some(mut o) = outcome {
                more |= o.more;
                // aider's records name no project: it is the directory holding the history.
                if log.format == ActivityFormat::AiderHistory {
                    let dir = home.tree.display(rel.parent().unwrap_or(Path::new("")));
                    for t in o.file.sessions.sessions.values_mut() {
                        t.project.get_or_insert_with(|| dir.clone());
                    }
                }
                // The memory is saved to disk: it keeps the fingerprint, not the path.
                if !inputs.settings.plain_paths {
                    for t in o.file.sessions.sessions.values_mut() {
                        t.project = t.project.take().map(|p| fingerprinted(inputs.fp, p));
                    }
                }
                held += o.file.sessions.sessions.len();
                followed.insert(key.clone());
                memory.put(key, o.file);
            }
        }
    }
    memory.retain_home(&base, &followed);
    if unread > 0 {
        ctx.errors.push(ScanError::new(
            base.clone(),
            format!(
                "more than {MAX_SESSIONS_HELD_PER_HOME} AI activity sessions in this home's records; \
                 {unread} record file(s) not read"
            ),
        ));
    }

    // Merge by (tool, session) over this home's files.
    let mut merged: BTreeMap<(String, String), (ActivityFormat, Tally)> = BTreeMap::new();
    let formats: BTreeMap<&str, ActivityFormat> =
        inputs.catalog.activity.iter().map(|a| (a.tool.as_str(), a.format)).collect();
    memory.each_in_home(&base, |_, f| {
        let Some(format) = formats.get(f.tool.as_str()) else { return };
        for t in f.sessions.sessions.values() {
            merged
                .entry((f.tool.clone(), t.session_id.clone()))
                .and_modify(|(_, m)| merge(m, t))
                .or_insert_with(|| (*format, t.clone()));
        }
    });
    let mut merged: Vec<_> = merged.into_iter().collect();
    if merged.len() > MAX_SESSIONS_PER_HOME {
        // The most recently active are kept; the order is stable, so the same sessions are
        // reported look after look rather than a rotating share of them.
        // Records dated more than a day ahead are implausible: they rank last, so a heap of
        // forged future dates cannot push real sessions out.
        let end = |t: &Tally| t.ended_at_ms.filter(|e| *e <= inputs.now_ms.saturating_add(FUTURE_SLACK_MS));
        merged.sort_by(|a, b| end(&b.1.1).cmp(&end(&a.1.1)).then_with(|| a.0.cmp(&b.0)));
        merged.truncate(MAX_SESSIONS_PER_HOME);
        ctx.errors.push(ScanError::new(
            base.clone(),
            format!(
                "more than {MAX_SESSIONS_PER_HOME} AI activity sessions; only the most recent are reported"
            ),
        ));
    }
    let mut sessions = Vec::with_capacity(merged.len());
    // What a tool is signed in with is the same for all its sessions: its credential paths
    // are expanded once per tool and home, not once per session.
    let mut bound_by_tool: BTreeMap<String, (Vec<String>, Option<ProviderAccount>)> = BTreeMap::new();
    for ((tool, _), (format, mut tally)) in merged {
        if !inputs.settings.plain_paths {
            tally.project = tally.project.map(|p| fingerprinted(inputs.fp, p));
        }
        let recent = tally.ended_at_ms.is_some_and(|e| inputs.now_ms.saturating_sub(e) <= RECENT_MS);
        let (credentials, signed_in) = if recent {
            bound_by_tool
                .entry(tool.clone())
                .or_insert_with(|| bound(&mut ctx, home, inputs.catalog, &tool, findings))
                .clone()
        } else {
            (Vec::new(), None)
        };
        let account = tally.account.clone().map(|a| ProviderAccount { account: a, org: None }).or(signed_in);
        sessions.push(Session { tool, format, user: home.user.clone(), tally, credentials, account });
    }
    HomeActivity { sessions, errors: ctx.errors, more }
}

/// `fp:<keyed fingerprint>` of a project path (as is if it already is one).
fn fingerprinted(fp: &Fingerprinter, path: String) -> String {
    if path.starts_with("fp:") {
        path
    } else {
        format!("fp:{}", fp.fingerprint(&crate::secret::Secret::new(path)))
    }
}

/// Adds what another file says of a session to it.
fn merge(into: &mut Tally, t: &Tally) {
    if let Some(s) = t.started_at_ms {
        into.saw(s);
    }
    if let Some(e) = t.ended_at_ms {
        into.saw(e);
    }
    if into.project.is_none() {
        into.project.clone_from(&t.project);
    }
    if into.account.is_none() {
        into.account.clone_from(&t.account);
    }
    for m in &t.models {
        into.model(m);
    }
    into.prompts = into.prompts.saturating_add(t.prompts);
    into.tool_calls = into.tool_calls.saturating_add(t.tool_calls);
    for (server, m) in &t.mcp {
        if into.mcp.len() >= super::MAX_MCP_SERVERS && !into.mcp.contains_key(server) {
            continue;
        }
        let e = into.mcp.entry(server.clone()).or_default();
        e.calls = e.calls.saturating_add(m.calls);
        for tool in &m.tools {
            if e.tools.len() < super::MAX_MCP_TOOLS {
                e.tools.insert(tool.clone());
            }
        }
    }
}

/// The credentials found in the tool's own credential files in this home, and the account
/// the tool is signed in with, as the other detectors found them.
fn bound(
    ctx: &mut Ctx<'_>,
    home: &Home,
    catalog: &Catalog,
    tool: &str,
    findings: &[Finding],
) -> (Vec<String>, Option<ProviderAccount>) {
    let mut paths = HashSet::new();
    for c in catalog.credential_files.iter().filter(|c| c.tool.as_deref() == Some(tool)) {
        for p in &c.paths {
            for rel in expand(ctx, &home.tree, p) {
                paths.insert(home.tree.display(&rel));
            }
        }
    }
    let mut credentials = Vec::new();
    let mut account = None;
    for f in findings {
        match f {
            Finding::Token(t) if t.source == TokenSource::CredentialFile && paths.contains(&t.path) => {
                credentials.push(t.fingerprint.clone());
                if account.is_none() {
                    account.clone_from(&t.authorized_by);
                }
            }
            Finding::App(a) if a.tool == tool && account.is_none() => account.clone_from(&a.authorized_by),
            _ => {}
        }
    }
    credentials.sort();
    credentials.dedup();
    (credentials, account)
}

/// The record files of one catalog entry in this home, each with the fixed part of the path
/// it was found under (the pattern's literal head, `.claude/projects`; empty for project
/// files the walk met): its `paths` expanded (real directories and regular files only),
/// then the project files the walk met. Bounded: past [`MAX_FILES_PER_TOOL`] the most
/// recently modified are taken, so a heap of junk cannot push live transcripts out.
fn discover(ctx: &mut Ctx<'_>, home: &Home, log: &ActivityLog, walked: &Walked) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut truncated = false;
    for pattern in &log.paths {
        let segs: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let root: PathBuf = segs.iter().take_while(|s| !s.contains('*')).collect();
        let mut current = vec![PathBuf::new()];
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            if !seg.contains('*') {
                current.iter_mut().for_each(|p| p.push(seg));
                continue;
            }
            let mut next = Vec::new();
            'dirs: for dir in &current {
                let Ok(entries) = home.tree.list(dir) else { continue };
                for e in entries {
                    let wanted = if last { crate::fsview::Kind::File } else { crate::fsview::Kind::Dir };
                    if e.kind == wanted && e.name.to_str().is_some_and(|n| wildcard(seg, n)) {
                        // Each candidate is opened for its age below: a home heaped with
                        // files costs at most this many opens per look.
                        if out.len() + next.len() >= MAX_CANDIDATES {
                            truncated = true;
                            break 'dirs;
                        }
                        next.push(dir.join(e.name));
                    }
                }
            }
            current = next;
        }
        out.extend(current.into_iter().map(|rel| (rel, root.clone())));
    }
    out.extend(
        walked
            .activity
            .iter()
            .filter(|(tool, _)| tool == &log.tool)
            .map(|(_, rel)| (rel.clone(), PathBuf::new())),
    );
    // The same file reached twice (`.config/claude` linked to `.claude`) is one file: read
    // twice, its sessions would count double.
    let mut real = HashSet::new();
    out.retain(|(rel, _)| real.insert(home.tree.real_display(rel).unwrap_or_else(|| home.tree.display(rel))));
    if truncated || out.len() > MAX_FILES_PER_TOOL {
        ctx.bound(
            &home.tree,
            Path::new(""),
            Bound::ActivityFiles,
            format!(
                "more than {MAX_FILES_PER_TOOL} {} activity records; only the {MAX_FILES_PER_TOOL} most recently modified (of at most {MAX_CANDIDATES} looked at) were read",
                log.tool
            ),
        );
        // Newest first; a file that cannot be opened (gone meanwhile) last.
        let mut dated: Vec<(Option<i64>, (PathBuf, PathBuf))> = out
            .into_iter()
            .map(|f| (home.tree.open_file(&f.0).ok().and_then(|h| h.modified_ms()), f))
            .collect();
        dated.sort_by_key(|d| std::cmp::Reverse(d.0));
        out = dated.into_iter().take(MAX_FILES_PER_TOOL).map(|(_, f)| f).collect();
    }
    out
}
