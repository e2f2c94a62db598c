//! The detection catalog: which tools, extensions, credential files, key formats and MCP
//! clients count as AI connectors, and where they live.
//!
//! The catalog is data (`agent/catalog/catalog.toml`, compiled in). [`Catalog::builtin`]
//! parses and validates it once; a catalog that fails validation is a build defect caught by
//! this module's tests, never a runtime surprise on a laptop. A newer catalog signed by the
//! collector is merged over the built-in one by [`update`], through the same validation.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde::Deserialize;

pub mod update;

const BUILTIN: &str = include_str!("../catalog/catalog.toml");

/// The OS a scanned tree is laid out for. It lives here, not in `detect`, because catalog
/// paths are keyed by it and the catalog sits below the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Macos => "macos",
            Os::Windows => "windows",
        }
    }
}

/// Why a catalog was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("catalog is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("catalog entry {entry}: {problem}")]
    Invalid { entry: String, problem: String },
}

/// What kind of secret a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    ApiKey,
    OauthAccess,
    OauthRefresh,
    Pat,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::ApiKey => "api_key",
            TokenKind::OauthAccess => "oauth_access",
            TokenKind::OauthRefresh => "oauth_refresh",
            TokenKind::Pat => "pat",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub id: String,
    pub name: String,
    pub vendor: String,
    #[serde(default)]
    pub process_names: Vec<String>,
    #[serde(default)]
    pub process_cmdline: Vec<String>,
    #[serde(default)]
    pub mac_bundle_ids: Vec<String>,
    #[serde(default)]
    pub mac_apps: Vec<String>,
    #[serde(default)]
    pub linux: Vec<String>,
    #[serde(default)]
    pub macos: Vec<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    /// VS Code-family extension ids (`publisher.name`) that are this tool.
    #[serde(default)]
    pub vscode_extensions: Vec<String>,
    /// Distinctive local ports the tool's server listens on.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// npm package names that install this tool (`@anthropic-ai/claude-code`), looked for
    /// in the `[installs]` npm global roots.
    #[serde(default)]
    pub npm_packages: Vec<String>,
    /// AppImage file-name patterns (`Cursor-{version}-*.AppImage`, matched without regard
    /// to case; `*` is any run, `{version}` is one too and is reported as the version).
    #[serde(default)]
    pub appimages: Vec<String>,
    pub source: String,
}

impl Tool {
    /// Install paths for one OS layout (home-relative, absolute or `{programfiles}/…`).
    pub fn install_paths(&self, os: Os) -> &[String] {
        per_os(os, &self.linux, &self.macos, &self.windows)
    }
}

/// Where package managers and portable formats put tools, whatever the tool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installs {
    /// npm global `node_modules` directories (path rules as for tools; `*` allowed).
    pub npm_roots_linux: Vec<String>,
    pub npm_roots_macos: Vec<String>,
    pub npm_roots_windows: Vec<String>,
    /// Home-relative directories where people keep AppImages (Linux).
    pub appimage_dirs: Vec<String>,
    pub source: String,
}

impl Installs {
    pub fn npm_roots(&self, os: Os) -> &[String] {
        per_os(os, &self.npm_roots_linux, &self.npm_roots_macos, &self.npm_roots_windows)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    pub id: String,
    pub tool: String,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionHeuristics {
    pub ai_hosts: Vec<String>,
    pub name_words: Vec<String>,
    pub description_words: Vec<String>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ide {
    pub extension_dirs: Vec<String>,
    pub source: String,
    /// Editors' user-data dir names, substituted for `{app}` in the settings paths.
    pub settings_apps: Vec<String>,
    pub settings_linux: Vec<String>,
    pub settings_macos: Vec<String>,
    pub settings_windows: Vec<String>,
    pub settings_source: String,
}

impl Ide {
    /// Home-relative settings.json patterns for one layout, `{app}` expanded, each once.
    pub fn settings_paths(&self, os: Os) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for pattern in per_os(os, &self.settings_linux, &self.settings_macos, &self.settings_windows) {
            let expanded: Vec<String> = if pattern.contains("{app}") {
                self.settings_apps.iter().map(|a| pattern.replace("{app}", a)).collect()
            } else {
                vec![pattern.clone()]
            };
            for p in expanded {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// Settings.json keys an AI extension reads a provider key from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdeSetting {
    pub keys: Vec<String>,
    pub provider: String,
    #[serde(default)]
    pub kind: Option<TokenKind>,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Chromium,
    Firefox,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Browser {
    pub id: String,
    pub engine: Engine,
    #[serde(default)]
    pub linux: Vec<String>,
    #[serde(default)]
    pub macos: Vec<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub profile_at_root: bool,
    /// Where a Chromium-family browser reads mandatory policy JSON on Linux (absolute).
    pub linux_policy_dir: Option<String>,
    /// Its mandatory policy key under HKLM on Windows.
    pub windows_policy_key: Option<String>,
    /// The preference domain a macOS configuration profile sets its policy in.
    pub macos_policy_domain: Option<String>,
    pub source: String,
}

impl Browser {
    pub fn dirs(&self, os: Os) -> &[String] {
        per_os(os, &self.linux, &self.macos, &self.windows)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Json,
    Jsonc,
    Toml,
    Yaml,
    Ini,
    Text,
    /// The `ItemTable(key, value)` of a VS Code-family SQLite state database
    /// (`state.vscdb`), read as `{key: value}`.
    SqliteItems,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialField {
    pub pointer: String,
    pub kind: TokenKind,
    /// A sibling key naming the provider (Continue's `models[].provider`).
    #[serde(default)]
    pub provider_from: Option<String>,
    /// Values written as `provider=key` (aider's `api-key:` list).
    #[serde(default)]
    pub provider_prefixed: bool,
    /// A sibling key naming the MCP server the credential is for (Claude Code's
    /// `mcpOAuth.*.serverName`); without it, the enclosing object's key up to its first `|`.
    #[serde(default)]
    pub mcp_server_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFile {
    #[serde(default)]
    pub tool: Option<String>,
    /// The issuer when neither the key format nor the field name says; absent means only
    /// format or name evidence counts.
    #[serde(default)]
    pub provider: Option<String>,
    pub format: FileFormat,
    pub paths: Vec<String>,
    pub fields: Vec<CredentialField>,
    pub source: String,
}

/// Where a tool records the provider account its OAuth/session credential was issued to
/// (`[[account]]`, one per tool). Either in a file of its own (`paths`, `format`, then
/// `account`/`org` as JSON pointers into it — or, with `jwt`, into the payload claims of the
/// JWT that pointer names), or `beside` each credential: `account`/`org` are then keys of the
/// object the credential sits in (GitHub Copilot's `{"user": …, "oauth_token": …}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub tool: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// A pointer to a JWT in the file whose payload holds the account (Codex's `id_token`).
    #[serde(default)]
    pub jwt: Option<String>,
    pub account: String,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub beside: bool,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFormat {
    id: String,
    provider: String,
    kind: TokenKind,
    regex: String,
    source: String,
}

/// A compiled key format.
#[derive(Debug)]
pub struct KeyFormat {
    pub id: String,
    pub provider: String,
    pub kind: TokenKind,
    pub source: String,
    /// Matches a whole value.
    pub whole: Regex,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub names: Vec<String>,
    pub provider: String,
    #[serde(default)]
    pub kind: Option<TokenKind>,
    pub source: String,
}

/// What makes a live process a tool's own, for stopping it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processes {
    /// Interpreters whose script or module argument names the program they run.
    pub script_hosts: Vec<String>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placeholders {
    pub contains: Vec<String>,
    pub min_len: usize,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClient {
    pub id: String,
    pub format: FileFormat,
    pub roots: Vec<String>,
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub linux: Vec<String>,
    #[serde(default)]
    pub macos: Vec<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub project_files: Vec<String>,
    pub source: String,
}

impl McpClient {
    /// Home-relative config paths for one OS layout.
    pub fn paths(&self, os: Os) -> impl Iterator<Item = &String> {
        self.all.iter().chain(per_os(os, &self.linux, &self.macos, &self.windows))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFiles {
    pub shell_rc: Vec<String>,
    pub dotenv_names: Vec<String>,
    pub source_extensions: Vec<String>,
    pub source_skip_names: Vec<String>,
    pub skip_dirs: Vec<String>,
    /// Shell and REPL histories (home-relative, `*` segments allowed): read as a tail
    /// window, then incrementally.
    pub history: Vec<String>,
    /// fish universal variables (`SETUVAR --export NAME:value`, `\xHH`-escaped).
    pub fish_variables: Vec<String>,
    /// `machine … password …` files (curl, git, Python's netrc).
    pub netrc: Vec<String>,
    /// macOS per-user LaunchAgents: `launchctl setenv` and `EnvironmentVariables`.
    pub launch_agents: Vec<String>,
    pub source: String,
}

/// An AI provider's API host: a `machine` entry for it in `.netrc` holds that provider's key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiHost {
    pub hosts: Vec<String>,
    pub provider: String,
    pub source: String,
    /// Where the provider's keys are revoked (its key-management page). The agent does not
    /// use it; the collector's connector register shows it as the way out at the provider.
    #[serde(default)]
    pub revoke_url: Option<String>,
}

/// Which hosts' credentials in a repository's `.git/config` count as AI connectors when the
/// value itself has no known key format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    pub hosts: Vec<GitHost>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHost {
    pub host: String,
    pub provider: String,
    pub kind: TokenKind,
}

/// Where a tool keeps its own records of use, and how they are shaped (`[[activity]]`).
/// Read by `detect::activity` for metadata only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityLog {
    pub tool: String,
    pub format: ActivityFormat,
    /// Home-relative paths; a `*` segment matches any one name (`.claude/projects/*/*.jsonl`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// File names the bounded home walk collects wherever it meets them (aider keeps its
    /// history in each project's directory).
    #[serde(default)]
    pub project_files: Vec<String>,
    /// How the tool names an MCP tool call (`mcp__{server}__{tool}`), every spelling its
    /// versions used, tried in order. Empty: the format records MCP calls apart, or the tool
    /// has no MCP.
    #[serde(default)]
    pub mcp_tool: Vec<String>,
    pub source: String,
}

/// A `mcp_tool` pattern's literal prefix and separator: `mcp__{server}__{tool}` is
/// `("mcp__", "__")`. `None` unless it is a prefix, `{server}`, a non-empty separator and
/// `{tool}` at the end.
pub fn split_mcp_pattern(pattern: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = pattern.split_once("{server}")?;
    let (separator, tail) = rest.split_once("{tool}")?;
    (!separator.is_empty() && tail.is_empty()).then_some((prefix, separator))
}

/// The record formats `detect::activity` can read; each is a module there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityFormat {
    /// Claude Code's per-session JSONL transcripts.
    ClaudeCodeJsonl,
    /// Codex's `rollout-*.jsonl` session files.
    CodexRollout,
    /// Gemini CLI's chat recordings: `session-*.json` (one document, rewritten whole, before
    /// v0.39) and `session-*.jsonl` (appended records replayed in order, since).
    GeminiChat,
    /// aider's `.aider.chat.history.md`.
    AiderHistory,
}

impl ActivityFormat {
    /// The catalog's (and the wire's) name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityFormat::ClaudeCodeJsonl => "claude_code_jsonl",
            ActivityFormat::CodexRollout => "codex_rollout",
            ActivityFormat::GeminiChat => "gemini_chat",
            ActivityFormat::AiderHistory => "aider_history",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    schema_version: u32,
    /// Rises with every published catalog; an update must carry a higher one.
    #[serde(default)]
    version: u64,
    tool: Vec<Tool>,
    installs: Installs,
    extension: Vec<Extension>,
    extension_heuristics: ExtensionHeuristics,
    ide: Ide,
    ide_setting: Vec<IdeSetting>,
    browser: Vec<Browser>,
    credential_file: Vec<CredentialFile>,
    #[serde(default)]
    account: Vec<Account>,
    #[serde(default)]
    activity: Vec<ActivityLog>,
    key_format: Vec<RawKeyFormat>,
    env_var: Vec<EnvVar>,
    placeholders: Placeholders,
    processes: Processes,
    mcp_client: Vec<McpClient>,
    env_files: EnvFiles,
    api_host: Vec<ApiHost>,
    git_config: GitConfig,
}

/// The validated catalog with the lookup tables detectors need.
#[derive(Debug)]
pub struct Catalog {
    /// The catalog's `version` header (0 when it has none).
    pub version: u64,
    pub tools: Vec<Tool>,
    pub installs: Installs,
    pub extensions: HashMap<String, Extension>,
    pub heuristics: ExtensionHeuristics,
    pub ide: Ide,
    /// `[[ide_setting]]` by lower-cased key: (provider, kind).
    pub ide_settings: HashMap<String, (String, TokenKind)>,
    pub browsers: Vec<Browser>,
    pub credential_files: Vec<CredentialFile>,
    /// Where each tool records its signed-in provider account.
    pub accounts: Vec<Account>,
    /// Where tools keep their records of use.
    pub activity: Vec<ActivityLog>,
    pub key_formats: Vec<KeyFormat>,
    /// Scans free text for any key format (alternation of all formats, with token boundaries).
    pub key_scan: Regex,
    /// The same formats with no boundaries: for redaction, where a key glued to other text
    /// (`region=abcsk-proj-…`) must go too.
    pub key_anywhere: Regex,
    pub env_vars: HashMap<String, (String, Option<TokenKind>)>,
    pub placeholders: Placeholders,
    pub processes: Processes,
    pub mcp_clients: Vec<McpClient>,
    pub env_files: EnvFiles,
    /// Lower-case API host → provider.
    pub api_hosts: HashMap<String, String>,
    pub git_config: GitConfig,
    process_names: HashMap<String, usize>,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::validate(toml::from_str(text)?)
    }

    /// A catalog from an already parsed TOML table (a merge of two catalogs).
    fn from_table(table: toml::Table) -> Result<Catalog, CatalogError> {
        Catalog::validate(table.try_into()?)
    }

    fn validate(raw: RawCatalog) -> Result<Catalog, CatalogError> {
        let invalid =
            |entry: &str, problem: String| CatalogError::Invalid { entry: entry.to_owned(), problem };
        if raw.schema_version != 1 {
            return Err(invalid("schema_version", format!("unsupported version {}", raw.schema_version)));
        }

        let mut tool_ids = HashSet::new();
        let mut process_names = HashMap::new();
        let mut vscode_ids = HashSet::new();
        let mut ports = HashSet::new();
        let mut bundle_ids = HashSet::new();
        let mut npm_packages = HashSet::new();
        for (i, t) in raw.tool.iter().enumerate() {
            if !is_id(&t.id) {
                return Err(invalid(&t.id, "tool id must be lower_snake_case".into()));
            }
            if !tool_ids.insert(t.id.as_str()) {
                return Err(invalid(&t.id, "duplicate tool id".into()));
            }
            for name in &t.process_names {
                if process_names.insert(name.clone(), i).is_some() {
                    return Err(invalid(&t.id, format!("process name {name:?} claimed by two tools")));
                }
            }
            for ext in &t.vscode_extensions {
                if !ext.contains('.') || ext.to_ascii_lowercase() != *ext || !vscode_ids.insert(ext.as_str())
                {
                    return Err(invalid(
                        &t.id,
                        format!("IDE extension id {ext:?} is malformed or claimed twice"),
                    ));
                }
            }
            for port in &t.ports {
                if !ports.insert(*port) {
                    return Err(invalid(&t.id, format!("port {port} claimed by two tools")));
                }
            }
            for b in &t.mac_bundle_ids {
                if !bundle_ids.insert(b.as_str()) {
                    return Err(invalid(&t.id, format!("bundle id {b:?} claimed by two tools")));
                }
            }
            for p in &t.npm_packages {
                if !npm_packages.insert(p.as_str()) {
                    return Err(invalid(&t.id, format!("npm package {p:?} claimed by two tools")));
                }
            }
            for a in &t.appimages {
                if !a.to_ascii_lowercase().ends_with(".appimage") || a.matches("{version}").count() > 1 {
                    return Err(invalid(&t.id, format!("AppImage pattern {a:?} is malformed")));
                }
            }
            for p in t.linux.iter().chain(&t.macos).chain(&t.windows) {
                if p.matches("{version}").count() > 1 {
                    return Err(invalid(&t.id, format!("install path {p:?} has two versions")));
                }
            }
        }

        let mut extensions = HashMap::new();
        for e in raw.extension {
            if !is_chrome_id(&e.id) && !is_firefox_id(&e.id) {
                return Err(invalid(&e.id, "not a Chrome (a-p x32) or Firefox add-on id".into()));
            }
            if !tool_ids.contains(e.tool.as_str()) {
                return Err(invalid(&e.id, format!("unknown tool {:?}", e.tool)));
            }
            if extensions.contains_key(&e.id) {
                return Err(invalid(&e.id, "duplicate extension id".into()));
            }
            extensions.insert(e.id.clone(), e);
        }

        let mut key_formats = Vec::new();
        let mut alternation = Vec::new();
        let mut format_ids = HashSet::new();
        for f in raw.key_format {
            if !format_ids.insert(f.id.clone()) {
                return Err(invalid(&f.id, "duplicate key format id".into()));
            }
            let whole =
                Regex::new(&format!("^(?:{})$", f.regex)).map_err(|e| invalid(&f.id, e.to_string()))?;
            alternation.push(format!("(?:{})", f.regex));
            key_formats.push(KeyFormat {
                id: f.id,
                provider: f.provider,
                kind: f.kind,
                source: f.source,
                whole,
            });
        }
        // Token characters on either side mean the match is part of something longer.
        let key_scan = Regex::new(&format!(
            r"(?:^|[^A-Za-z0-9_\-.])((?:{}))(?:$|[^A-Za-z0-9_\-])",
            alternation.join("|")
        ))
        .map_err(|e| invalid("key_format", e.to_string()))?;
        let key_anywhere = Regex::new(&format!("(?:{})", alternation.join("|")))
            .map_err(|e| invalid("key_format", e.to_string()))?;

        let mut env_vars = HashMap::new();
        for v in raw.env_var {
            for n in v.names {
                if env_vars.insert(n.clone(), (v.provider.clone(), v.kind)).is_some() {
                    return Err(invalid(&n, "variable listed twice".into()));
                }
            }
        }

        for c in &raw.credential_file {
            if let Some(t) = &c.tool
                && !tool_ids.contains(t.as_str())
            {
                return Err(invalid(&c.paths.join(","), format!("credential file names unknown tool {t:?}")));
            }
            for f in &c.fields {
                if !(f.pointer.is_empty() || f.pointer.starts_with('/')) {
                    return Err(invalid(&c.paths.join(","), format!("bad pointer {:?}", f.pointer)));
                }
            }
        }
        let mut account_tools = HashSet::new();
        for a in &raw.account {
            let bad = |problem: String| invalid(&format!("account {}", a.tool), problem);
            if !tool_ids.contains(a.tool.as_str()) {
                return Err(bad("unknown tool".into()));
            }
            if !account_tools.insert(a.tool.as_str()) {
                return Err(bad("the tool's account is described twice".into()));
            }
            // Beside a credential the account is a sibling key; in a file of its own it is a
            // pointer into that file (or the JWT's payload), which needs a format to parse.
            if a.beside != a.paths.is_empty() || (a.beside && (a.format.is_some() || a.jwt.is_some())) {
                return Err(bad("either `beside` or `paths` (with `format`), not both".into()));
            }
            if !a.beside && a.format.is_none_or(|f| f == FileFormat::SqliteItems) {
                return Err(bad("`paths` need a structured `format`".into()));
            }
            let pointers = std::iter::once(&a.account).chain(&a.org).chain(&a.jwt);
            for p in pointers {
                let ok = if a.beside { !p.is_empty() && !p.contains('/') } else { p.starts_with('/') };
                if !ok || p.contains('*') {
                    return Err(bad(format!("bad pointer {p:?}")));
                }
            }
        }
        for a in &raw.activity {
            let bad = |problem: String| invalid(&format!("activity {}", a.tool), problem);
            if !tool_ids.contains(a.tool.as_str()) {
                return Err(bad("unknown tool".into()));
            }
            if a.paths.is_empty() && a.project_files.is_empty() {
                return Err(bad("neither `paths` nor `project_files`".into()));
            }
            if let Some(p) = a.mcp_tool.iter().find(|p| split_mcp_pattern(p).is_none()) {
                return Err(bad(format!("bad mcp_tool pattern {p:?}")));
            }
            for p in &a.paths {
                if p.starts_with('/') || p.split('/').any(|seg| seg == ".." || seg.is_empty()) {
                    return Err(bad(format!("bad path {p:?}")));
                }
            }
            if a.project_files.iter().any(|f| f.contains('/') || f.contains('*')) {
                return Err(bad("`project_files` are plain file names".into()));
            }
        }
        let mut ide_settings = HashMap::new();
        for e in raw.ide_setting {
            for k in &e.keys {
                let kind = e.kind.unwrap_or(TokenKind::ApiKey);
                if ide_settings.insert(k.to_ascii_lowercase(), (e.provider.clone(), kind)).is_some() {
                    return Err(invalid(k, "IDE setting listed twice".into()));
                }
            }
        }
        let mut mcp_ids = HashSet::new();
        for m in &raw.mcp_client {
            if !mcp_ids.insert(m.id.as_str()) {
                return Err(invalid(&m.id, "duplicate MCP client id".into()));
            }
            if m.roots.iter().any(|r| !r.starts_with('/')) {
                return Err(invalid(&m.id, "roots must be JSON pointers".into()));
            }
        }
        // A netrc entry names a host; the provider must be one a key or variable names too,
        // so findings from either place agree on who issued the key.
        let known: HashSet<&str> = key_formats
            .iter()
            .map(|f| f.provider.as_str())
            .chain(env_vars.values().map(|(p, _)| p.as_str()))
            .collect();
        let mut api_hosts = HashMap::new();
        for h in &raw.api_host {
            if !known.contains(h.provider.as_str()) {
                return Err(invalid(
                    &h.hosts.join(","),
                    format!("API host names unknown provider {:?}", h.provider),
                ));
            }
            for host in &h.hosts {
                let host = host.to_ascii_lowercase();
                if api_hosts.insert(host.clone(), h.provider.clone()).is_some() {
                    return Err(invalid(&host, "API host listed twice".into()));
                }
            }
        }
        let mut browser_ids = HashSet::new();
        for b in &raw.browser {
            if !browser_ids.insert(b.id.as_str()) {
                return Err(invalid(&b.id, "duplicate browser id".into()));
            }
        }

        Ok(Catalog {
            version: raw.version,
            tools: raw.tool,
            installs: raw.installs,
            extensions,
            heuristics: raw.extension_heuristics,
            ide: raw.ide,
            ide_settings,
            browsers: raw.browser,
            credential_files: raw.credential_file,
            accounts: raw.account,
            activity: raw.activity,
            key_formats,
            key_scan,
            key_anywhere,
            env_vars,
            placeholders: raw.placeholders,
            processes: raw.processes,
            mcp_clients: raw.mcp_client,
            env_files: raw.env_files,
            api_hosts,
            git_config: raw.git_config,
            process_names,
        })
    }

    /// The tool a process name belongs to (`.exe` ignored, case-sensitive otherwise because
    /// `Claude` the desktop app and `claude` the CLI are different tools).
    pub fn tool_for_process(&self, name: &str) -> Option<&Tool> {
        let base = strip_exe(name);
        self.process_names.get(base).map(|&i| &self.tools[i])
    }

    /// The tool whose command-line marker appears in a process's arguments.
    pub fn tool_for_cmdline(&self, args: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.process_cmdline.iter().any(|m| args.contains(m.as_str())))
    }

    /// The tool an IDE extension (`publisher.name`, any case) belongs to.
    pub fn tool_for_ide_extension(&self, id: &str) -> Option<&Tool> {
        let id = id.to_ascii_lowercase();
        self.tools.iter().find(|t| t.vscode_extensions.contains(&id))
    }

    /// The tool that serves on a local port.
    pub fn tool_for_port(&self, port: u16) -> Option<&Tool> {
        self.tools.iter().find(|t| t.ports.contains(&port))
    }

    pub fn tool(&self, id: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.id == id)
    }

    /// The key format a whole value matches, if any.
    pub fn classify_value(&self, value: &str) -> Option<&KeyFormat> {
        self.key_formats.iter().find(|f| f.whole.is_match(value))
    }
}

/// Picks one OS's list. (The lists are separate fields rather than a flattened struct
/// because serde cannot combine `flatten` with `deny_unknown_fields`.)
fn per_os<'a>(os: Os, linux: &'a [String], macos: &'a [String], windows: &'a [String]) -> &'a [String] {
    match os {
        Os::Linux => linux,
        Os::Macos => macos,
        Os::Windows => windows,
    }
}

fn strip_exe(name: &str) -> &str {
    match name.len().checked_sub(4) {
        Some(i) if name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".exe") => &name[..i],
        _ => name,
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Chrome extension ids are 32 letters from a to p (a base-16 alphabet).
pub fn is_chrome_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| (b'a'..=b'p').contains(&b))
}

/// Firefox add-on ids are `name@domain` or a `{uuid}`.
pub fn is_firefox_id(s: &str) -> bool {
    let uuid = s.len() == 38
        && s.starts_with('{')
        && s.ends_with('}')
        && s[1..37].bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let email = s
        .split_once('@')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !s.contains(char::is_whitespace));
    uuid || email
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hosts_name_known_providers_once() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(c.api_hosts.get("api.openai.com").map(String::as_str), Some("openai"));
        let entry = "hosts = [\"api.cerebras.ai\"]\nprovider = \"cerebras\"";
        assert!(BUILTIN.contains(entry));
        let unknown = BUILTIN.replace(entry, "hosts = [\"api.cerebras.ai\"]\nprovider = \"nobody\"");
        assert!(Catalog::parse(&unknown).unwrap_err().to_string().contains("unknown provider"));
        let twice = BUILTIN.replace(entry, "hosts = [\"API.openai.com\"]\nprovider = \"cerebras\"");
        assert!(Catalog::parse(&twice).unwrap_err().to_string().contains("listed twice"));
    }

    #[test]
    fn builtin_catalog_is_valid_and_has_breadth() {
        let c = Catalog::builtin().unwrap();
        // Apps, CLIs and agents: tools with a process, install, bundle or IDE rule.
        let apps = c
            .tools
            .iter()
            .filter(|t| {
                !(t.process_names.is_empty()
                    && t.process_cmdline.is_empty()
                    && t.mac_bundle_ids.is_empty()
                    && t.mac_apps.is_empty()
                    && t.linux.is_empty()
                    && t.macos.is_empty()
                    && t.windows.is_empty()
                    && t.vscode_extensions.is_empty()
                    && t.npm_packages.is_empty()
                    && t.appimages.is_empty())
            })
            .count();
        assert!(apps >= 60, "{apps} apps/CLIs/agents");
        let mut providers: HashSet<&str> = c.key_formats.iter().map(|f| f.provider.as_str()).collect();
        providers.extend(c.env_vars.values().map(|(p, _)| p.as_str()));
        assert!(providers.len() >= 25, "{} providers", providers.len());
        assert!(c.extensions.len() >= 15);
        assert!(c.key_formats.len() >= 20);
        assert!(c.mcp_clients.len() >= 10);
        assert!(c.ide_settings.len() >= 10);
        assert!(
            c.ide.settings_paths(Os::Windows).contains(&"AppData/Roaming/Cursor/User/settings.json".into())
        );
        assert!(c.browsers.iter().any(|b| b.engine == Engine::Firefox));
        for t in &c.tools {
            assert!(!t.source.trim().is_empty(), "{} has no source", t.id);
        }
    }

    #[test]
    fn process_names_resolve_with_and_without_exe() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(c.tool_for_process("ollama").unwrap().id, "ollama");
        assert_eq!(c.tool_for_process("ollama.EXE").unwrap().id, "ollama");
        assert_eq!(c.tool_for_process("Claude").unwrap().id, "claude_desktop");
        assert_eq!(c.tool_for_process("claude").unwrap().id, "claude_code");
        assert!(c.tool_for_process("bash").is_none());
        assert_eq!(c.tool_for_cmdline("node /x/@anthropic-ai/claude-code/cli.js").unwrap().id, "claude_code");
    }

    #[test]
    fn duplicates_and_bad_ids_are_refused() {
        let base = BUILTIN.to_owned();
        let dup = base.clone()
            + "\n[[extension]]\nid = \"fcoeoabgfenejglbffodgkkbkcdhcgfn\"\ntool = \"sider\"\nsource = \"x\"\n";
        assert!(matches!(Catalog::parse(&dup), Err(CatalogError::Invalid { .. })));
        let bad = base.clone() + "\n[[extension]]\nid = \"ZZZ\"\ntool = \"sider\"\nsource = \"x\"\n";
        assert!(matches!(Catalog::parse(&bad), Err(CatalogError::Invalid { .. })));
        let regex = base
            + "\n[[key_format]]\nid = \"broken\"\nprovider = \"x\"\nkind = \"api_key\"\nregex = \"(\"\nsource = \"x\"\n";
        assert!(matches!(Catalog::parse(&regex), Err(CatalogError::Invalid { .. })));
    }

    #[test]
    fn install_rules_are_checked() {
        let tool = |extra: &str| {
            format!(
                "{BUILTIN}\n[[tool]]\nid = \"probe\"\nname = \"p\"\nvendor = \"p\"\n{extra}\nsource = \"x\"\n"
            )
        };
        let npm_twice = tool("npm_packages = [\"@openai/codex\"]");
        assert!(matches!(Catalog::parse(&npm_twice), Err(CatalogError::Invalid { .. })));
        let not_appimage = tool("appimages = [\"Probe-{version}.tar.gz\"]");
        assert!(matches!(Catalog::parse(&not_appimage), Err(CatalogError::Invalid { .. })));
        let two_versions = tool("linux = [\"v/{version}/{version}\"]");
        assert!(matches!(Catalog::parse(&two_versions), Err(CatalogError::Invalid { .. })));
        assert!(Catalog::parse(&tool("appimages = [\"Probe-{version}-*.AppImage\"]")).is_ok());
        let c = Catalog::builtin().unwrap();
        assert!(c.installs.npm_roots(Os::Windows).iter().any(|r| r == "AppData/Roaming/npm/node_modules"));
    }

    #[test]
    fn account_entries_are_checked() {
        let with =
            |entry: &str| Catalog::parse(&format!("{BUILTIN}\n[[account]]\n{entry}\nsource = \"x\"\n"));
        let refused = |entry: &str| {
            let e = with(entry).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("account "), "{entry}: {e}");
        };
        // One per tool, for a known tool.
        refused("tool = \"claude_code\"\nformat = \"json\"\npaths = [\"x.json\"]\naccount = \"/a\"");
        refused("tool = \"nope\"\nformat = \"json\"\npaths = [\"x.json\"]\naccount = \"/a\"");
        // A file needs a structured format and pointers; `beside` takes keys and no file.
        refused("tool = \"cursor\"\npaths = [\"x.json\"]\naccount = \"/a\"");
        refused("tool = \"cursor\"\nformat = \"sqlite_items\"\npaths = [\"x\"]\naccount = \"/a\"");
        refused("tool = \"cursor\"\nformat = \"json\"\npaths = [\"x.json\"]\naccount = \"a\"");
        refused("tool = \"cursor\"\nformat = \"json\"\npaths = [\"x.json\"]\naccount = \"/*/a\"");
        refused("tool = \"cursor\"\nbeside = true\naccount = \"/user\"");
        refused(
            "tool = \"cursor\"\nbeside = true\npaths = [\"x.json\"]\nformat = \"json\"\naccount = \"user\"",
        );
        refused("tool = \"cursor\"\naccount = \"/a\"");
        let ok = with(
            "tool = \"cursor\"\nformat = \"json\"\npaths = [\"x.json\"]\njwt = \"/t\"\naccount = \"/email\"",
        );
        assert!(ok.is_ok_and(|c| c.accounts.iter().any(|a| a.tool == "cursor")));
        let c = Catalog::builtin().unwrap();
        let tools: Vec<&str> = c.accounts.iter().map(|a| a.tool.as_str()).collect();
        assert_eq!(tools, ["claude_code", "codex_cli", "gemini_cli", "copilot_language_server"]);
    }

    #[test]
    fn extension_id_shapes() {
        assert!(is_chrome_id("fcoeoabgfenejglbffodgkkbkcdhcgfn"));
        assert!(!is_chrome_id("fcoeoabgfenejglbffodgkkbkcdhcgfz"));
        assert!(is_firefox_id("87677a2c52b84ad3a151a4a72f5bd3c4@jetpack"));
        assert!(is_firefox_id("{d10d0bf8-f5b5-c8b4-a8b2-2b9879e08c5d}"));
        assert!(!is_firefox_id("plain"));
    }
}
