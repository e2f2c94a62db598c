//! AI credentials typed into shells: bash, zsh, fish and PowerShell (PSReadLine) histories.
//!
//! A history is the most private file in a home and can be large, so it is read in a
//! bounded tail window the first time and afterwards only from where the last look stopped.
//! [`Memory`] keeps, per file: how far it was read, what the file was (device and inode
//! where the platform has them, and a hash of its first bytes) and the findings of the lines
//! already read. A file that shrank or was replaced is read again, from its tail window.
//! A finding names the line (`line 12`, or `NAME (line 12)` for an assignment), never the
//! command.
//!
//! The line rules are the rc files' (`envfiles::parse_assignment`, distinctive key formats,
//! known AI variable names), applied to each command of a line once the history format's
//! own framing is taken off (zsh `: <start>:<elapsed>;`, fish `- cmd: `).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::envfiles::parse_assignment;
use super::fileid::FileIdentity;
use super::tokens::{Class, Site, classify, scan_text};
use super::{Ctx, Finding, Home, TokenSource, expand};
use crate::fsview::ReadError;
use crate::secret::Secret;

/// What earlier looks learned about each history, by displayed path. In memory only: the
/// daemon keeps one for its life (after a restart every history is read once from its tail
/// window again); a one-off scan starts from an empty one.
#[derive(Debug, Default)]
pub struct Memory {
    files: Mutex<HashMap<String, Remembered>>,
    scanned: AtomicU64,
    probed: AtomicU64,
}

impl Memory {
    /// History bytes parsed so far, over all looks.
    pub fn bytes_scanned(&self) -> u64 {
        self.scanned.load(Ordering::Relaxed)
    }

    /// Forgets every history read so far, so the next look reads each from its tail window
    /// again: after a catalog change, lines already read may hold what the new catalog names.
    pub fn forget(&self) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Bytes read only to recognise a file already seen (its head), over all looks.
    pub fn bytes_probed(&self) -> u64 {
        self.probed.load(Ordering::Relaxed)
    }
}

/// One history as the last look left it. Holds fingerprints, never values.
#[derive(Debug)]
struct Remembered {
    identity: FileIdentity,
    /// Everything before this was read; it is always just after a newline.
    offset: u64,
    /// Lines before `offset` (counted from the window's start when a look was cut).
    lines: usize,
    findings: Vec<Finding>,
    /// Fingerprints reported already: a key typed again is one finding, at its first line.
    seen: HashSet<String>,
    /// What the reading skipped, repeated in each look's errors.
    cut: Option<String>,
}

impl Remembered {
    fn fresh() -> Remembered {
        Remembered {
            identity: FileIdentity::default(),
            offset: 0,
            lines: 0,
            findings: Vec::new(),
            seen: HashSet::new(),
            cut: None,
        }
    }
}

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home, memory: &Memory) {
    let mut files = memory.files.lock().unwrap_or_else(|p| p.into_inner());
    let mut looked = HashSet::new();
    for pattern in ctx.catalog.env_files.history.clone() {
        for rel in expand(ctx, &home.tree, &pattern) {
            let key = home.tree.display(&rel);
            let known = files.remove(&key);
            if let Some(state) = read_one(ctx, home, &rel, known, memory) {
                looked.insert(key.clone());
                files.insert(key, state);
            }
        }
    }
    // Forget histories of this home that are gone (macOS rotates its per-session files).
    let base = format!("{}/", home.tree.display(Path::new("")).trim_end_matches('/'));
    files.retain(|k, _| !k.starts_with(&base) || looked.contains(k));
}

/// Reads what is new in one history and reports all its findings, old and new. None when
/// the file cannot be read (its memory is dropped).
fn read_one(
    ctx: &mut Ctx<'_>,
    home: &Home,
    rel: &Path,
    known: Option<Remembered>,
    memory: &Memory,
) -> Option<Remembered> {
    let mut file = match home.tree.open_file(rel) {
        Ok(f) => f,
        Err(e) => {
            ctx.read_error(&home.tree, rel, e);
            return None;
        }
    };
    let size = file.size();
    let mut state = known
        .filter(|r| r.identity.matches(&mut file, r.offset, &memory.probed))
        .unwrap_or_else(Remembered::fresh);
    let window = ctx.limits.history_window;
    let mut start = state.offset;
    let cut = size - start > window;
    if cut {
        start = size - window;
        // Lines count from the window's start: the ones skipped before it are not counted.
        state.lines = 0;
        state.cut = Some(format!(
            "history of {size} bytes: only its newest {window} bytes were read (the limit); \
             line numbers count from there"
        ));
    }
    let bytes = match file.read_range(start, size - start) {
        Ok(b) => b,
        Err(e) => {
            ctx.read_error(&home.tree, rel, ReadError::Io(e));
            return None;
        }
    };
    memory.scanned.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let mut body: &[u8] = &bytes;
    let mut at = start;
    if cut {
        // The window starts inside a line whose beginning was not read: skip it.
        let first = body.iter().position(|&b| b == b'\n').map_or(body.len(), |i| i + 1);
        body = &body[first..];
        at += first as u64;
    }
    // Complete lines are remembered; a last line still without its newline (a shell midway
    // through writing) is read now and again, whole, next time.
    let (complete, partial) = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => body.split_at(i + 1),
        None => (&[][..], body),
    };
    let site = Site { home, rel, source: TokenSource::ShellHistory };
    ctx.findings.extend(state.findings.iter().cloned());
    let mark = ctx.findings.len();
    for line in String::from_utf8_lossy(complete).lines() {
        state.lines += 1;
        scan_line(ctx, &site, line, state.lines, &mut state.seen);
    }
    state.findings.extend(ctx.findings[mark..].iter().cloned());
    let mut seen = state.seen.clone();
    scan_line(ctx, &site, &String::from_utf8_lossy(partial), state.lines + 1, &mut seen);

    // A cut window with no newline at all lies inside one line: everything read is skipped,
    // and the offset stays where it was (just after a newline), not in the middle of a line.
    if !cut || bytes.contains(&b'\n') {
        state.offset = at + complete.len() as u64;
    }
    let from_zero = (start == 0).then_some(&bytes[..]);
    state.identity = match FileIdentity::take(&mut file, state.offset, from_zero, &memory.probed) {
        Ok(i) => i,
        Err(e) => {
            ctx.read_error(&home.tree, rel, ReadError::Io(e));
            return None;
        }
    };
    if let Some(note) = &state.cut {
        ctx.error(&home.tree, rel, note.clone());
    }
    Some(state)
}

/// One line of a history: the assignments of each command, then key formats anywhere.
fn scan_line(ctx: &mut Ctx<'_>, site: &Site<'_>, raw: &str, line_no: usize, seen: &mut HashSet<String>) {
    let Some(command) = command_of(raw) else { return };
    for simple in split_commands(&command) {
        let mut simple = simple.trim();
        for prefix in ["sudo ", "env "] {
            simple = simple.strip_prefix(prefix).map_or(simple, str::trim_start);
        }
        if let Some((name, value)) = parse_assignment(simple) {
            // `NAME=value cmd …` sets it for one command: the value ends at the first space
            // (a key never has one).
            let value = value.split_whitespace().next().unwrap_or_default().to_owned();
            if let Some(class) = classify(ctx.catalog, &value, Some(&name), None) {
                report(ctx, site, Secret::new(value), class, format!("{name} (line {line_no})"), seen);
            }
        }
    }
    for (value, class) in scan_text(ctx.catalog, &command) {
        report(ctx, site, Secret::new(value), class, format!("line {line_no}"), seen);
    }
}

fn report(
    ctx: &mut Ctx<'_>,
    site: &Site<'_>,
    value: Secret,
    class: Class,
    locator: String,
    seen: &mut HashSet<String>,
) {
    if seen.insert(ctx.fp.fingerprint(&value)) {
        ctx.token(site, value, class, Some(locator), None);
    }
}

/// The command a history line records, without the format's framing; None for lines that
/// are not commands (bash `#<epoch>` timestamps, comments, blank lines).
fn command_of(line: &str) -> Option<Cow<'_, str>> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    // fish: `- cmd: <command>` with `\\` and `\n` escaped; `when:`/`paths:` lines follow.
    if let Some(cmd) = t.strip_prefix("- cmd: ") {
        return Some(Cow::Owned(fish_history_unescape(cmd)));
    }
    // zsh EXTENDED_HISTORY: `: <start>:<elapsed>;<command>`
    if let Some(rest) = t.strip_prefix(": ")
        && let Some((stamp, cmd)) = rest.split_once(';')
        && !stamp.is_empty()
        && stamp.bytes().all(|b| b.is_ascii_digit() || b == b':')
    {
        return Some(Cow::Borrowed(cmd));
    }
    Some(Cow::Borrowed(t))
}

fn fish_history_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits a command line into simple commands at `;`, `&`, `|` and newlines outside quotes
/// (`&&` and `||` give an empty piece between, which is dropped).
pub(crate) fn split_commands(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quote, mut escaped, mut from) = (None, false, 0);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (None, '\\') | (Some('"'), '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ';' | '&' | '|' | '\n') => {
                out.push(&line[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&line[from..]);
    out.retain(|s| !s.trim().is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_taken_off_each_format() {
        assert_eq!(command_of(": 1700000000:0;export A=b").as_deref(), Some("export A=b"));
        assert_eq!(command_of(": 1700000000:12;ls; ls").as_deref(), Some("ls; ls"));
        assert_eq!(command_of("- cmd: echo a\\\\b\\nset -x A b").as_deref(), Some("echo a\\b\nset -x A b"));
        assert_eq!(command_of("#1700000000"), None);
        assert_eq!(command_of("   "), None);
        // Not zsh framing: a colon command with something else before the `;`.
        assert_eq!(command_of(": x;y").as_deref(), Some(": x;y"));
    }

    #[test]
    fn commands_split_outside_quotes_only() {
        assert_eq!(
            split_commands("a=1 && b 'x;y' | c \"p&q\"; d"),
            vec!["a=1 ", " b 'x;y' ", " c \"p&q\"", " d"]
        );
        assert_eq!(split_commands("echo \\; x"), vec!["echo \\; x"]);
        assert!(split_commands(" ; && ").is_empty());
    }
}
