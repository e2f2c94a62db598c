//! Detectors: pure functions of a filesystem view and the catalog.
//!
//! [`scan_files`] looks at a [`Tree`] (the real `/` or a filesystem image under `--root`),
//! works out its OS layout and users' homes, and runs every file detector over it. Live
//! process detection ([`processes`]) is separate because it reads the running system.
//!
//! Per-file problems (unreadable, malformed, too large, a hostile symlink) become
//! [`ScanError`]s in the report; a detector never stops the scan.

mod accounts;
pub mod activity;
mod appimage;
pub mod apps;
pub mod credentials;
pub mod envfiles;
pub mod extensions;
pub mod fileid;
mod fishvars;
mod gitconfig;
pub mod history;
mod installs;
pub mod jsonc;
mod jwt;
mod launchd;
pub mod mcp;
mod netrc;
pub mod processes;
pub mod redact;
mod scrub;
pub mod sessions;
pub mod settings;
mod statedb;
pub mod tokens;
pub mod walk;

use std::path::{Path, PathBuf};
use std::time::Duration;

// Re-exported: detectors and their callers name the layout they found as `detect::Os`.
pub use crate::catalog::Os;
use crate::catalog::{Catalog, TokenKind};
use crate::fsview::{Kind, ReadError, Tree};
use crate::secret::Fingerprinter;

/// Recognises the layout from the tree itself, so every layout is testable on Linux.
pub fn detect_os(root: &Tree) -> Os {
    if root.is_dir(Path::new("Windows/System32")) || root.is_dir(Path::new("Program Files")) {
        Os::Windows
    } else if root.is_dir(Path::new("Users")) && root.is_dir(Path::new("Applications"))
        || root.is_dir(Path::new("System/Library"))
    {
        Os::Macos
    } else if root.is_dir(Path::new("Users")) && !root.is_dir(Path::new("home")) {
        // A Windows image without system folders still keeps homes under Users/*/AppData.
        Os::Windows
    } else {
        Os::Linux
    }
}

/// A user's home in the scanned tree.
#[derive(Debug)]
pub struct Home {
    pub user: String,
    pub tree: Tree,
}

/// Opens every user's home as its own sandboxed tree.
pub fn homes(root: &Tree, os: Os, errors: &mut Vec<ScanError>) -> Vec<Home> {
    let (parent, skip): (&str, &[&str]) = match os {
        Os::Linux => ("home", &[]),
        Os::Macos => ("Users", &["Shared", "Guest"]),
        Os::Windows => ("Users", &["Public", "Default", "Default User", "All Users", "desktop.ini"]),
    };
    // Windows names are case-insensitive: an image mounted on Linux (or a Wine prefix) may
    // spell it `users`. The name as it is on disk is used, so every OS reports one path.
    let found;
    let parent = if os == Os::Windows {
        found = root.list(Path::new("")).ok().and_then(|es| {
            let mut es: Vec<_> = es.into_iter().filter(|e| e.name.eq_ignore_ascii_case(parent)).collect();
            es.sort_by_key(|e| e.name != parent); // the exact spelling first, if both exist
            es.into_iter().next()?.name.into_string().ok()
        });
        found.as_deref().unwrap_or(parent)
    } else {
        parent
    };
    let mut out = Vec::new();
    match root.list(Path::new(parent)) {
        Ok(entries) => {
            for e in entries {
                let Some(name) = e.name.to_str() else {
                    errors.push(ScanError::new(
                        root.display(&Path::new(parent).join(&e.name)),
                        "home directory name is not UTF-8; skipped",
                    ));
                    continue;
                };
                if skip.contains(&name)
                    || name.starts_with('.')
                    || !matches!(e.kind, Kind::Dir | Kind::Symlink)
                {
                    continue;
                }
                let rel = Path::new(parent).join(name);
                match root.home(&rel, os == Os::Windows) {
                    Ok(tree) => out.push(Home { user: name.to_owned(), tree }),
                    Err(err) => {
                        errors.push(ScanError::new(root.display(&rel), ReadError::Io(err).to_string()))
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(ScanError::new(root.display(Path::new(parent)), ReadError::Io(e).to_string())),
    }
    let root_home = if os == Os::Macos { "var/root" } else { "root" };
    if os != Os::Windows
        && root.is_dir(Path::new(root_home))
        && let Ok(tree) = root.home(Path::new(root_home), false)
    {
        out.push(Home { user: "root".into(), tree });
    }
    out
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenSource {
    CredentialFile,
    Dotenv,
    ShellRc,
    McpConfig,
    IdeConfig,
    SourceFile,
    /// A shell's command history (bash, zsh, fish, PowerShell).
    ShellHistory,
    /// A `.netrc` / `_netrc` `machine` entry.
    Netrc,
    /// A repository's `.git/config` (remote URLs, `http.extraHeader`).
    GitConfig,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::CredentialFile => "credential_file",
            TokenSource::Dotenv => "dotenv",
            TokenSource::ShellRc => "shell_rc",
            TokenSource::McpConfig => "mcp_config",
            TokenSource::IdeConfig => "ide_config",
            TokenSource::SourceFile => "source_file",
            TokenSource::ShellHistory => "shell_history",
            TokenSource::Netrc => "netrc",
            TokenSource::GitConfig => "git_config",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessFinding {
    pub tool: String,
    pub user: Option<String>,
    pub pid: u32,
    pub name: String,
    pub exe: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppFinding {
    pub tool: String,
    pub user: Option<String>,
    pub path: String,
    pub version: Option<String>,
    pub bundle_id: Option<String>,
    /// The account the tool is signed in with, when its credential is not in a file the
    /// agent reads (see `accounts`).
    pub authorized_by: Option<ProviderAccount>,
}

/// A provider account as a tool records it (e-mail or login, and org/workspace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderAccount {
    pub account: String,
    pub org: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionFinding {
    pub tool: Option<String>,
    pub user: Option<String>,
    pub browser: String,
    pub profile: String,
    pub extension_id: String,
    pub name: String,
    pub version: Option<String>,
    pub enabled: Option<bool>,
    pub path: String,
    pub signals: Vec<String>,
    pub permissions: Vec<String>,
    pub host_permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenFinding {
    pub provider: String,
    pub kind: TokenKind,
    pub user: Option<String>,
    pub path: String,
    pub source: TokenSource,
    pub fingerprint: String,
    pub locator: Option<String>,
    /// For credentials inside an MCP config: the server they are handed to.
    pub mcp_server: Option<String>,
    /// For an OAuth/session credential: the provider account it was issued to, where the
    /// tool records it; `None` for API keys.
    pub authorized_by: Option<ProviderAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct McpFinding {
    pub client: String,
    pub user: Option<String>,
    pub name: String,
    pub transport: String,
    pub command: Option<String>,
    pub url: Option<String>,
    pub path: String,
}

/// One AI connector found on the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Finding {
    Process(ProcessFinding),
    App(AppFinding),
    Extension(ExtensionFinding),
    Token(TokenFinding),
    McpServer(McpFinding),
}

impl Finding {
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Process(_) => "process",
            Finding::App(_) => "app",
            Finding::Extension(_) => "extension",
            Finding::Token(_) => "token",
            Finding::McpServer(_) => "mcp_server",
        }
    }
}

/// A per-file problem; the scan went on without that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub path: String,
    pub error: String,
}

impl ScanError {
    pub fn new(path: impl Into<String>, error: impl Into<String>) -> ScanError {
        ScanError { path: path.into(), error: error.into() }
    }
}

/// Bounds on the work one scan may do, so a hostile or enormous home cannot stall it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Credential, rc and dotenv files.
    pub small_file: u64,
    /// JSON configs that grow with use (`~/.claude.json`, browser Preferences).
    pub large_file: u64,
    pub walk_depth: usize,
    pub walk_entries: usize,
    pub walk_time: Duration,
    /// Project text files searched per home, and the size above which one is skipped.
    pub source_files: usize,
    pub source_file_size: u64,
    /// SQLite state databases (Cursor's `state.vscdb` grows to tens of MB with chat
    /// history), and the write-ahead log beside one; each is read whole into memory.
    pub database_file: u64,
    /// Wall-time budget for the whole file scan; homes not reached are reported.
    pub total_time: Duration,
    /// How much of a shell history one look reads: the newest bytes, up to this many.
    pub history_window: u64,
    /// AI activity record bytes one look reads over all files and homes; the rest waits
    /// for the next look.
    pub activity_look: u64,
    /// An activity record line longer than this is skipped (read past, never held whole).
    pub activity_line: u64,
    /// A whole-document activity record (Gemini CLI's `.json`) larger than this is not read.
    pub activity_document: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            small_file: 1024 * 1024,
            large_file: 32 * 1024 * 1024,
            // Deep enough for `~/Documents/clients/acme/2026/app/config/.env`; on real trees
            // the two extra levels added about 1% more entries (the entry and time bounds
            // still hold), and a home that goes deeper says so in `errors`.
            walk_depth: 8,
            walk_entries: 200_000,
            walk_time: Duration::from_secs(20),
            source_files: 20_000,
            source_file_size: 256 * 1024,
            database_file: 64 * 1024 * 1024,
            total_time: Duration::from_secs(120),
            history_window: 8 * 1024 * 1024,
            activity_look: 32 * 1024 * 1024,
            activity_line: 8 * 1024 * 1024,
            activity_document: 32 * 1024 * 1024,
        }
    }
}

/// Everything a file scan produced.
#[derive(Debug, Default)]
pub struct FileScan {
    pub os: Option<Os>,
    pub users: Vec<String>,
    pub findings: Vec<Finding>,
    pub errors: Vec<ScanError>,
    /// AI activity sessions in the homes' records (metadata only).
    pub activity: Vec<activity::Session>,
}

/// Shared context for the detectors of one home.
pub(crate) struct Ctx<'a> {
    pub catalog: &'a Catalog,
    pub fp: &'a Fingerprinter,
    pub limits: &'a Limits,
    pub os: Os,
    pub findings: Vec<Finding>,
    pub errors: Vec<ScanError>,
    /// Credentials already reported, by displayed path → fingerprints. Claims are per
    /// credential, not per file: the source-file sweep still reads a file another detector
    /// read (an editor's settings.json is an MCP config too) but never reports a credential
    /// a second time from the same file under another source.
    pub claimed: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// MCP configs already read (home-relative), so a file two catalog entries match is
    /// read, and its servers reported, once.
    pub mcp_read: std::collections::HashSet<PathBuf>,
    /// Files read, by the path they really are (a link's target) → the path first read, so
    /// a file reached two ways (through a link and directly) is reported once.
    pub read_as: std::collections::HashMap<String, String>,
    /// Bounds already reported for this home: each says so once, not once per directory.
    pub bounds_hit: std::collections::HashSet<Bound>,
}

/// A bound that stopped work early, reported once per home in `errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bound {
    WalkDepth,
    WalkSize,
    SourceFiles,
    SourceFileSize,
    Fanout,
    /// More AI activity records than are followed per tool and home.
    ActivityFiles,
}

impl Ctx<'_> {
    /// Notes that a file was read under this path (and, when a link led elsewhere, what it
    /// really is).
    pub(crate) fn claim(&mut self, tree: &Tree, rel: &Path) {
        let shown = tree.display(rel);
        let real = tree.real_display(rel).unwrap_or_else(|| shown.clone());
        self.read_as.entry(real).or_insert(shown);
    }

    /// Whether the same file was already read under another path (a link and its target):
    /// then this path would only report it twice. The same path read by two detectors is
    /// not "already read": claims per credential keep those apart.
    pub(crate) fn claimed_already(&self, tree: &Tree, rel: &Path) -> bool {
        let shown = tree.display(rel);
        let real = tree.real_display(rel).unwrap_or_else(|| shown.clone());
        self.read_as.get(&real).is_some_and(|first| *first != shown)
    }

    /// A detector's read of a text file: a failure other than absence goes to `errors`.
    pub(crate) fn read_text(&mut self, tree: &Tree, rel: &Path, limit: u64) -> Option<String> {
        match tree.read_text(rel, limit) {
            Ok(t) => Some(t),
            Err(e) => {
                self.read_error(tree, rel, e);
                None
            }
        }
    }

    /// Records a read failure unless the file is simply absent.
    pub(crate) fn read_error(&mut self, tree: &Tree, rel: &Path, err: ReadError) {
        if !err.is_not_found() {
            self.errors.push(ScanError::new(tree.display(rel), err.to_string()));
        }
    }

    pub(crate) fn error(&mut self, tree: &Tree, rel: &Path, msg: impl Into<String>) {
        self.errors.push(ScanError::new(tree.display(rel), msg));
    }

    /// Reports that `bound` cut work short at `rel`, unless it already did in this home.
    pub(crate) fn bound(&mut self, tree: &Tree, rel: &Path, bound: Bound, msg: impl Into<String>) {
        if self.bounds_hit.insert(bound) {
            self.error(tree, rel, msg);
        }
    }
}

/// Runs every file detector over the tree, activity records read as by default.
pub fn scan_files(root: &Tree, catalog: &Catalog, fp: &Fingerprinter, limits: &Limits) -> FileScan {
    scan_files_with(root, catalog, fp, limits, activity::Settings::default())
}

/// Runs every file detector over the tree, activity records read as `settings` say (none
/// opened when they are off).
#[allow(clippy::disallowed_types, reason = "wall-clock budget of a synchronous scan")]
pub fn scan_files_with(
    root: &Tree,
    catalog: &Catalog,
    fp: &Fingerprinter,
    limits: &Limits,
    settings: activity::Settings,
) -> FileScan {
    let started = std::time::Instant::now();
    let os = detect_os(root);
    let mut errors = Vec::new();
    let homes = homes(root, os, &mut errors);
    let (mut findings, machine_errors) = scan_machine(root, catalog, fp, limits, os);
    errors.extend(machine_errors);
    let mut sessions = Vec::new();
    for home in &homes {
        if started.elapsed() > limits.total_time {
            let budget = limits.total_time;
            errors.push(ScanError::new(
                home.tree.display(Path::new("")),
                format!("scan time budget ({budget:?}) exhausted; this home was not scanned"),
            ));
            continue;
        }
        let h = scan_home(catalog, fp, limits, os, home, None, &history::Memory::default());
        // A one-off scan reads every record whole: no earlier look to continue from.
        let inputs = activity::Inputs {
            catalog,
            fp,
            limits,
            os,
            settings,
            now_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        let mut unbounded = u64::MAX;
        let memory = activity::Memory::default();
        let a = activity::look_home(&inputs, home, &h.walked, &h.findings, &memory, &mut unbounded);
        sessions.extend(a.sessions);
        errors.extend(a.errors);
        findings.extend(h.findings);
        errors.extend(h.errors);
    }
    dedup(&mut findings);
    scrub::scrub(catalog, &mut [], &mut errors);
    let users = homes.iter().map(|h| h.user.clone()).collect();
    FileScan { os: Some(os), users, findings, errors, activity: sessions }
}

/// Machine-wide installs (`/Applications`, `/opt`, `Program Files`).
pub fn scan_machine(
    root: &Tree,
    catalog: &Catalog,
    fp: &Fingerprinter,
    limits: &Limits,
    os: Os,
) -> (Vec<Finding>, Vec<ScanError>) {
    let mut ctx = Ctx::new(catalog, fp, limits, os);
    apps::detect_machine_wide(&mut ctx, root);
    scrub::scrub(catalog, &mut ctx.findings, &mut ctx.errors);
    (ctx.findings, ctx.errors)
}

/// What one home's detectors found.
#[derive(Debug, Default)]
pub struct HomeScan {
    pub findings: Vec<Finding>,
    pub errors: Vec<ScanError>,
    /// The walk's results, to reuse in a quick rescan.
    pub walked: walk::Walked,
}

/// Runs every detector over one home. With `reuse`, a quick rescan: the bounded walk and
/// the source-file sweep are skipped and the files the last walk found are re-read instead
/// (the daemon does this when a watched file changes; the hourly resync walks again).
/// `histories` remembers how far each shell history was read, so a later look at the same
/// home reads only what was appended (a one-off scan passes a fresh one).
pub fn scan_home(
    catalog: &Catalog,
    fp: &Fingerprinter,
    limits: &Limits,
    os: Os,
    home: &Home,
    reuse: Option<&walk::Walked>,
    histories: &history::Memory,
) -> HomeScan {
    let mut ctx = Ctx::new(catalog, fp, limits, os);
    apps::detect_home(&mut ctx, home);
    extensions::detect(&mut ctx, home);
    credentials::detect(&mut ctx, home);
    settings::detect(&mut ctx, home);
    mcp::detect_global(&mut ctx, home);
    envfiles::detect_rc(&mut ctx, home);
    fishvars::detect(&mut ctx, home);
    netrc::detect(&mut ctx, home);
    if os == Os::Macos {
        launchd::detect(&mut ctx, home);
    }
    let quiet = |f: &mut dyn FnMut()| match home.tree.touched() {
        Some(t) => t.paused(f),
        None => f(),
    };
    let walked = match reuse {
        Some(w) => w.clone(),
        None => {
            let mut w = walk::Walked::default();
            quiet(&mut || w = walk::walk_home(&mut ctx, home));
            w
        }
    };
    // Histories change with every command: they are read again on each look (cheaply, by
    // their memory) rather than watched.
    quiet(&mut || history::detect(&mut ctx, home, histories));
    envfiles::detect_dotenv(&mut ctx, home, &walked.dotenv);
    mcp::detect_project(&mut ctx, home, &walked.mcp_configs);
    gitconfig::detect(&mut ctx, home, &walked.git_configs);
    if reuse.is_none() {
        quiet(&mut || envfiles::detect_sources(&mut ctx, home, &walked.sources));
    }
    // After every detector: the account goes on what they found of its tool.
    accounts::attach(&mut ctx, home);
    dedup(&mut ctx.findings);
    // Two readers of one file (the settings and MCP detectors) meet the same problem with it.
    let mut seen_errors = std::collections::HashSet::new();
    ctx.errors.retain(|e| seen_errors.insert((e.path.clone(), e.error.clone())));
    scrub::scrub(catalog, &mut ctx.findings, &mut ctx.errors);
    HomeScan { findings: ctx.findings, errors: ctx.errors, walked }
}

impl<'a> Ctx<'a> {
    fn new(catalog: &'a Catalog, fp: &'a Fingerprinter, limits: &'a Limits, os: Os) -> Ctx<'a> {
        Ctx {
            catalog,
            fp,
            limits,
            os,
            findings: Vec::new(),
            errors: Vec::new(),
            claimed: Default::default(),
            mcp_read: Default::default(),
            read_as: Default::default(),
            bounds_hit: Default::default(),
        }
    }
}

/// The same connector can be reached by two rules (a global config that is also a project
/// file); report it once.
fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert(f.clone()));
}

/// Joins a home-relative catalog path (always written with `/`) onto a relative path.
pub(crate) fn rel_path(p: &str) -> PathBuf {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

/// At most this many directory entries match one `*` segment: a hostile tree with a
/// million `Claude_*` directories must not multiply the scan.
const GLOB_FANOUT: usize = 64;

/// Expands a catalog path whose segments may contain `*` (`AppData/Local/Packages/Claude_*/…`)
/// into the existing paths it matches beneath `tree`. Paths without `*` are returned as is.
/// A segment matching more than [`GLOB_FANOUT`] entries is cut there, and says so once.
pub(crate) fn expand(ctx: &mut Ctx<'_>, tree: &Tree, pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for seg in pattern.split('/').filter(|s| !s.is_empty()) {
        if !seg.contains('*') {
            current.iter_mut().for_each(|p| p.push(seg));
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            let Ok(entries) = tree.list(dir) else { continue };
            let mut matching = entries
                .into_iter()
                .filter(|e| matches!(e.kind, Kind::Dir | Kind::File | Kind::Symlink))
                .filter(|e| e.name.to_str().is_some_and(|n| wildcard(seg, n)))
                .map(|e| dir.join(e.name));
            next.extend(matching.by_ref().take(GLOB_FANOUT));
            if matching.next().is_some() {
                ctx.bound(
                    tree,
                    dir,
                    Bound::Fanout,
                    format!("more than {GLOB_FANOUT} entries match `{seg}`; only the first {GLOB_FANOUT} were scanned"),
                );
            }
        }
        current = next;
    }
    current
}

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard("Claude_*", "Claude_pzs8sxrjxfjjc"));
        assert!(wildcard("*.app", "Cursor.app"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXc"));
        assert!(!wildcard("Claude_*", "Claude"));
        assert!(wildcard("*", "anything"));
    }
}
