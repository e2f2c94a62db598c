//! Following session records as they grow: per file, how far it was read, what file it was
//! and the sessions read from it so far, so a look reads only the complete lines appended
//! since the last one.
//!
//! - A file that shrank or was replaced (another inode, another head) is read again from
//!   its start; tallies are totals, so reporting them again is harmless.
//! - A look reads at most its byte budget over all files; what is left waits for the next
//!   look, which the caller asks for soon ([`Outcome::more`]).
//! - A line still being written (no newline yet) waits for the next look.
//! - A line longer than the line cap is skipped by reading on to the next newline in
//!   bounded chunks: it is never held whole.
//! - A whole-document format (Gemini CLI's `.json`) is read again, whole and capped, when
//!   its size or modification time changes.
//!
//! The memory is saved in the state directory (`activity.json`) after the look's
//! observations are recorded, so a restart neither reads the backlog again nor reports it
//! twice. It holds counts and names, never record content.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{FileSessions, MAX_SESSIONS_PER_FILE, MAX_SESSIONS_PER_HOME, Rules, read_document, read_lines};
use crate::catalog::ActivityFormat;
use crate::detect::fileid::FileIdentity;
use crate::detect::{Ctx, Home, ScanError};
use crate::fsview::{RangeFile, ReadError};

/// Bytes read per request while following a file: what one look holds in memory at most,
/// besides one line under the line cap.
const CHUNK: u64 = 1 << 20;
/// A file unchanged this long has its sessions reported and dropped from memory (its
/// offset is kept, so it is not read again unless it changes; then it is read from 0).
const SETTLE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Files remembered at most, over all homes and tools.
const MAX_FILES: usize = 50_000;
/// Session reports remembered at most: every session of 20 homes each at
/// [`MAX_SESSIONS_PER_HOME`], so no live session is forgotten (and re-sent as new on every
/// look) short of that many full homes.
const MAX_REPORTED: usize = 20 * MAX_SESSIONS_PER_HOME;
const _: () = assert!(MAX_REPORTED >= MAX_SESSIONS_PER_HOME + MAX_SESSIONS_PER_FILE);

/// What earlier looks learned about each record file, and what was reported.
#[derive(Debug, Default)]
pub struct Memory {
    state: Mutex<State>,
    read: AtomicU64,
    probed: AtomicU64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    /// By displayed path.
    files: BTreeMap<String, Followed>,
    /// By `user/tool/session`: a digest of the session's last recorded report.
    reported: BTreeMap<String, String>,
}

/// One record file as the last look left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Followed {
    pub tool: String,
    identity: FileIdentity,
    /// Everything before this was read (just after a newline, or inside a skipped line).
    offset: u64,
    /// Inside a line over the cap, reading on to its end.
    #[serde(default)]
    skipping: bool,
    size: u64,
    modified_ms: Option<i64>,
    pub sessions: FileSessions,
    /// Sessions dropped once the file settled (see [`SETTLE_MS`]).
    #[serde(default)]
    settled: bool,
}

/// What following one file did.
pub(super) struct Outcome {
    pub file: Followed,
    /// The budget ran out before the end of the file.
    pub more: bool,
}

impl Memory {
    /// Record bytes read so far (heads read to recognise files not counted).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Bytes read only to recognise files already seen.
    pub fn bytes_probed(&self) -> u64 {
        self.probed.load(Ordering::Relaxed)
    }

    /// Reads the memory saved at `path`; a missing or unreadable one is an empty memory
    /// (the records are then read once more, and their sessions reported once more).
    pub fn load(path: &Path) -> Memory {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "Activity memory unreadable; records are read again.");
                State::default()
            }),
            Err(_) => State::default(),
        };
        Memory { state: Mutex::new(state), ..Memory::default() }
    }

    /// Saves the memory atomically at `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(&*self.lock())?;
        Ok(crate::state::write_atomic(path, &bytes, true)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn take(&self, key: &str) -> Option<Followed> {
        self.lock().files.remove(key)
    }

    pub(super) fn put(&self, key: String, f: Followed) {
        let mut s = self.lock();
        if s.files.len() < MAX_FILES || s.files.contains_key(&key) {
            s.files.insert(key, f);
        }
    }

    /// Drops the files under `base` (a home's displayed path, with its `/`) not in `keep`.
    pub(super) fn retain_home(&self, base: &str, keep: &std::collections::HashSet<String>) {
        self.lock().files.retain(|k, _| !k.starts_with(base) || keep.contains(k));
    }

    /// Runs `f` over the files remembered under `base`.
    pub(super) fn each_in_home(&self, base: &str, mut f: impl FnMut(&str, &Followed)) {
        for (k, v) in self.lock().files.range(base.to_owned()..) {
            if !k.starts_with(base) {
                break;
            }
            f(k, v);
        }
    }

    /// Whether the report `digest` of session `key` differs from the last one recorded:
    /// `Some(true)` never reported, `Some(false)` changed, `None` the same.
    pub fn changed(&self, key: &str, digest: &str) -> Option<bool> {
        match self.lock().reported.get(key) {
            None => Some(true),
            Some(d) if d != digest => Some(false),
            Some(_) => None,
        }
    }

    /// Notes reports as recorded. Sessions no file holds any more are forgotten first, then
    /// the oldest-named beyond the bound.
    pub fn mark_reported(&self, marks: impl IntoIterator<Item = (String, String)>) {
        let mut s = self.lock();
        s.reported.extend(marks);
        while s.reported.len() > MAX_REPORTED {
            s.reported.pop_first();
        }
    }

    /// Forgets reports of sessions in `home_prefix` (`user/`) not among `live`.
    pub fn retain_reported(&self, home_prefix: &str, live: &std::collections::HashSet<String>) {
        self.lock().reported.retain(|k, _| !k.starts_with(home_prefix) || live.contains(k));
    }
}

impl Followed {
    fn fresh(tool: &str) -> Followed {
        Followed {
            tool: tool.to_owned(),
            identity: FileIdentity::default(),
            offset: 0,
            skipping: false,
            size: 0,
            modified_ms: None,
            sessions: FileSessions::default(),
            settled: false,
        }
    }

    /// Whether the file is exactly as it was when last read (no head read needed).
    fn unchanged(&self, file: &RangeFile) -> bool {
        self.size == file.size() && self.modified_ms == file.modified_ms() && self.identity.id == file.id()
    }
}

/// Limits of one look's reading.
pub(super) struct Caps {
    pub line: u64,
    pub document: u64,
}

/// Where a problem with a record file is reported: `shown`, the path as the look may show
/// it (fingerprinted unless `activity_paths = "plain"`: a record's path spells its project).
fn problem(ctx: &mut Ctx<'_>, shown: &str, msg: impl Into<String>) {
    ctx.errors.push(ScanError::new(shown, msg));
}

fn read_problem(ctx: &mut Ctx<'_>, shown: &str, err: ReadError) {
    if !err.is_not_found() {
        problem(ctx, shown, err.to_string());
    }
}

/// Says once per file, when it first happens, that the file named more sessions than are
/// kept.
fn report_dropped(ctx: &mut Ctx<'_>, shown: &str, before: u32, sessions: &FileSessions) {
    if before == 0 && sessions.dropped > 0 {
        problem(
            ctx,
            shown,
            format!(
                "more than {MAX_SESSIONS_PER_FILE} sessions in one record file; the rest are not reported"
            ),
        );
    }
}

/// Reads what is new in one record file, shown in errors as `shown`. `None` when it cannot
/// be read (its memory is dropped, and the problem is in the look's errors).
#[allow(clippy::too_many_arguments, reason = "one file's reading: each argument is a different input")]
pub(super) fn follow(
    ctx: &mut Ctx<'_>,
    home: &Home,
    rel: &Path,
    shown: &str,
    tool: &str,
    format: ActivityFormat,
    known: Option<Followed>,
    memory: &Memory,
    rules: &Rules,
    caps: &Caps,
    budget: &mut u64,
    now_ms: i64,
) -> Option<Outcome> {
    let mut file = match home.tree.open_file(rel) {
        Ok(f) => f,
        Err(e) => {
            read_problem(ctx, shown, e);
            return None;
        }
    };
    if let Some(k) = &known
        && k.tool == tool
        && k.unchanged(&file)
    {
        let mut k = known.unwrap_or_else(|| Followed::fresh(tool));
        if !k.skipping && !k.settled && file.modified_ms().is_some_and(|m| now_ms - m > SETTLE_MS) {
            // Reported by now (a look reports what it read): only the offset is kept.
            k.settled = true;
            k.sessions = FileSessions::default();
        }
        let more = k.offset < k.size && *budget == 0;
        return Some(Outcome { file: k, more });
    }
    let document = format == ActivityFormat::GeminiChat && rel.extension().is_some_and(|e| e == "json");
    let mut f = known
        .filter(|k| {
            k.tool == tool
                && !k.settled
                && !document
                && k.identity.matches(&mut file, k.offset, &memory.probed)
        })
        .unwrap_or_else(|| Followed::fresh(tool));
    f.size = file.size();
    f.modified_ms = file.modified_ms();
    if document {
        // Recognised next time by size, time and inode alone: it is read whole anyway.
        f.identity = FileIdentity { id: file.id(), ..FileIdentity::default() };
        return read_whole(ctx, home, rel, shown, format, f, memory, rules, caps, budget);
    }
    let dropped = f.sessions.dropped;
    let more = match read_appended(&mut file, format, &mut f, memory, rules, caps, budget) {
        Ok(Read { cut, long_lines }) => {
            if long_lines > 0 {
                let cap = caps.line;
                problem(ctx, shown, format!("{long_lines} record(s) longer than {cap} bytes skipped unread"));
            }
            cut
        }
        Err(e) => {
            read_problem(ctx, shown, ReadError::Io(e));
            return None;
        }
    };
    report_dropped(ctx, shown, dropped, &f.sessions);
    match FileIdentity::take(&mut file, f.offset, None, &memory.probed) {
        Ok(i) => f.identity = i,
        Err(e) => {
            read_problem(ctx, shown, ReadError::Io(e));
            return None;
        }
    }
    if more {
        // Not read to the end: the next look must not take it as unchanged.
        f.size = u64::MAX;
    }
    Some(Outcome { file: f, more })
}

struct Read {
    cut: bool,
    long_lines: u32,
}

/// Reads the complete lines after `f.offset`, within `budget`, into `f.sessions`.
fn read_appended(
    file: &mut RangeFile,
    format: ActivityFormat,
    f: &mut Followed,
    memory: &Memory,
    rules: &Rules,
    caps: &Caps,
    budget: &mut u64,
) -> std::io::Result<Read> {
    let size = file.size();
    let mut pos = f.offset;
    let mut buf: Vec<u8> = Vec::new();
    let mut long_lines = 0;
    while pos < size && *budget > 0 {
        let want = CHUNK.min(size - pos).min(*budget);
        let chunk = file.read_range(pos, want)?;
        if chunk.is_empty() {
            break; // truncated meanwhile: the next look sees it shrunk
        }
        let n = chunk.len() as u64;
        *budget = budget.saturating_sub(n);
        memory.read.fetch_add(n, Ordering::Relaxed);
        pos += n;
        let mut body: &[u8] = &chunk;
        if f.skipping {
            match body.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    f.skipping = false;
                    f.offset = pos - n + i as u64 + 1;
                    body = &body[i + 1..];
                }
                None => {
                    f.offset = pos;
                    continue;
                }
            }
        }
        buf.extend_from_slice(body);
        if let Some(last) = buf.iter().rposition(|&b| b == b'\n') {
            let lines = buf[..last].split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
            read_lines(format, lines, &mut f.sessions, rules);
            f.offset += last as u64 + 1;
            buf.drain(..=last);
        }
        if buf.len() as u64 > caps.line {
            // One line longer than any record: read on to its end without holding it.
            f.skipping = true;
            f.offset += buf.len() as u64;
            buf = Vec::new();
            long_lines += 1;
        }
    }
    Ok(Read { cut: pos < size, long_lines })
}

/// Reads a whole-document file again, from scratch.
#[allow(clippy::too_many_arguments, reason = "one file's reading: each argument is a different input")]
fn read_whole(
    ctx: &mut Ctx<'_>,
    home: &Home,
    rel: &Path,
    shown: &str,
    format: ActivityFormat,
    mut f: Followed,
    memory: &Memory,
    rules: &Rules,
    caps: &Caps,
    budget: &mut u64,
) -> Option<Outcome> {
    if f.size > *budget && f.size <= caps.document {
        // Read whole or not at all: it waits for a look with budget left.
        f.size = u64::MAX;
        return Some(Outcome { file: f, more: true });
    }
    let bytes = match home.tree.read(rel, caps.document) {
        Ok(b) => b,
        Err(e) => {
            read_problem(ctx, shown, e);
            return None;
        }
    };
    *budget = budget.saturating_sub(bytes.len() as u64);
    memory.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let dropped = f.sessions.dropped;
    f.sessions = read_document(format, &bytes, rules);
    report_dropped(ctx, shown, dropped, &f.sessions);
    f.offset = bytes.len() as u64;
    Some(Outcome { file: f, more: false })
}
