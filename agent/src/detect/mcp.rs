//! MCP servers wired into AI clients (catalog `mcp_client` entries).
//!
//! Each server becomes an `mcp_server` finding with its command line or URL redacted.
//! Credentials handed to the server (env values, headers, argv, URLs) become `token`
//! findings with source `mcp_config`: they are access paths an AI agent holds.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::jsonc::{parse, select};
use super::redact;
use super::tokens::{Class, Site, classify, high_entropy, is_placeholder, looks_secret, secret_like_name};
use super::{Ctx, Finding, Home, McpFinding, TokenSource, expand, rel_path};
use crate::catalog::{McpClient, TokenKind};
use crate::secret::Secret;

pub(crate) fn detect_global(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    // A file two entries match (Cline's VS Code path and the `*` of `cline_forks`) is one
    // config: it is read once, for the entry whose pattern has the fewest `*` (the most
    // specific), the first in catalog order on a tie.
    let mut candidates: Vec<(usize, usize, PathBuf)> = Vec::new();
    for (i, client) in catalog.mcp_clients.iter().enumerate() {
        for pattern in client.paths(ctx.os) {
            let wildcards = pattern.matches('*').count();
            candidates.extend(expand(ctx, &home.tree, pattern).into_iter().map(|rel| (wildcards, i, rel)));
        }
    }
    candidates.sort_by_key(|(wildcards, i, _)| (*wildcards, *i));
    for (_, i, rel) in candidates {
        if !ctx.mcp_read.contains(&rel) {
            read_config(ctx, home, &catalog.mcp_clients[i], &rel);
        }
    }
}

pub(crate) fn detect_project(ctx: &mut Ctx<'_>, home: &Home, configs: &[(String, PathBuf)]) {
    let catalog = ctx.catalog;
    for (id, rel) in configs {
        if let Some(client) = catalog.mcp_clients.iter().find(|c| &c.id == id) {
            // A project file at the home root may be a global config, already read.
            if ctx.mcp_read.contains(rel) || client.paths(ctx.os).any(|p| rel_path(p) == *rel) {
                continue;
            }
            read_config(ctx, home, client, rel);
        }
    }
}

fn read_config(ctx: &mut Ctx<'_>, home: &Home, client: &McpClient, rel: &Path) {
    ctx.mcp_read.insert(rel.to_path_buf());
    ctx.claim(&home.tree, rel);
    let Some(text) = ctx.read_text(&home.tree, rel, ctx.limits.large_file) else {
        return;
    };
    let doc = match parse(client.format, &text) {
        Ok(v) => v,
        Err(e) => return ctx.error(&home.tree, rel, e),
    };
    for root in &client.roots {
        for (pointer, servers) in select(&doc, root) {
            match servers {
                Value::Object(servers) => {
                    for (name, def) in servers.iter().filter(|(_, d)| d.is_object()) {
                        server(ctx, home, client, rel, &format!("{pointer}/{name}"), name, def);
                    }
                }
                // Continue lists servers: `mcpServers: [{name: …, command: …}]`.
                Value::Array(list) => {
                    for (i, def) in list.iter().enumerate() {
                        if let Some(name) = def.get("name").and_then(Value::as_str) {
                            server(ctx, home, client, rel, &format!("{pointer}/{i}"), name, def);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn server(
    ctx: &mut Ctx<'_>,
    home: &Home,
    client: &McpClient,
    rel: &Path,
    pointer: &str,
    name: &str,
    def: &Value,
) {
    let catalog = ctx.catalog;
    // Goose's built-in extensions run inside Goose itself; they are not connectors.
    if def.get("type").and_then(Value::as_str) == Some("builtin") {
        return;
    }
    // Command shapes: "command": "npx" + "args": [...]; OpenCode "command": [...];
    // Zed "command": {"path": ..., "args": [...]}; Goose "cmd": "npx".
    let mut argv: Vec<String> = Vec::new();
    let command = def.get("command").or_else(|| def.get("cmd")).unwrap_or(&Value::Null);
    match command {
        // A whole command line in one string (`"command": "srv --api-key …"`): split it as a
        // shell would, so its flags are seen one by one.
        Value::String(c) => argv.extend(redact::split_command(c)),
        Value::Array(a) => argv.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned))),
        Value::Object(o) => {
            if let Some(p) = o.get("path").and_then(Value::as_str) {
                argv.push(p.to_owned());
            }
            argv.extend(strings(o.get("args")));
        }
        _ => {}
    }
    argv.extend(strings(def.get("args")));
    let url = ["url", "serverUrl", "httpUrl", "uri"].iter().find_map(|k| def.get(*k).and_then(Value::as_str));
    let transport = if url.is_some() && argv.is_empty() { "http" } else { "stdio" };

    let command = (!argv.is_empty()).then(|| redact::command_line(catalog, &argv));
    ctx.findings.push(Finding::McpServer(McpFinding {
        client: client.id.clone(),
        user: Some(home.user.clone()),
        name: name.to_owned(),
        transport: transport.to_owned(),
        command: command.as_ref().map(|c| c.shown.clone()),
        url: url.map(|u| redact::url(catalog, u)),
        path: home.tree.display(rel),
    }));

    // Credentials the server is given.
    let site = Site { home, rel, source: TokenSource::McpConfig };
    let mut creds: Vec<(String, String)> = Vec::new();
    for key in ["env", "environment", "envs"] {
        collect_named(def.get(key), &format!("{pointer}/{key}"), &mut creds);
    }
    if let Value::Object(cmd) = &def["command"] {
        collect_named(cmd.get("env"), &format!("{pointer}/command/env"), &mut creds);
    }
    for key in ["headers", "http_headers"] {
        collect_named(def.get(key), &format!("{pointer}/{key}"), &mut creds);
    }
    for (loc, value) in creds {
        let var = loc.rsplit('/').next().unwrap_or_default().to_owned();
        let value = strip_scheme(&value).trim().to_owned();
        // `${env:X}`, `${input:x}`, `$X`, `{{X}}`, `<YOUR_KEY>`: a reference, not a value
        // (checked first: a reference can be shaped like a secret under a secret name).
        if is_placeholder(catalog, &value) {
            continue;
        }
        let class = classify(catalog, &value, Some(&var), None).or_else(|| {
            // A secret-named variable with a secret-shaped value, or a random string under
            // any name, is a credential even when we cannot tell its issuer.
            ((secret_like_name(&var) && looks_secret(catalog, &value)) || high_entropy(catalog, &value))
                .then(|| Class { provider: "unknown".into(), kind: TokenKind::ApiKey })
        });
        if let Some(class) = class {
            ctx.token(&site, Secret::new(value), class, Some(loc), Some(name));
        }
    }
    // Keys carried in the URL itself: userinfo, secret-named query values, key-shaped path
    // segments (`…/mcp/<key>/sse`).
    if let Some(u) = url {
        for (part, value) in redact::url_secrets(catalog, u) {
            let class = classify(catalog, &value, None, None)
                .unwrap_or(Class { provider: "unknown".into(), kind: TokenKind::ApiKey });
            let loc = format!("{pointer}/url#{part}");
            ctx.token(&site, Secret::new(value), class, Some(loc), Some(name));
        }
    }
    // Everything the command line's redaction took out: key formats, secret-named flags,
    // headers, `Bearer …`, URL passwords, random strings.
    for (i, value) in command.map(|c| c.secrets).unwrap_or_default() {
        let value = strip_scheme(value.expose()).trim().to_owned();
        let class = classify(catalog, &value, None, None)
            .unwrap_or(Class { provider: "unknown".into(), kind: TokenKind::ApiKey });
        ctx.token(&site, Secret::new(value), class, Some(format!("{pointer}/argv/{i}")), Some(name));
    }
}

/// The credential of an `Authorization`-style value (`Bearer x` → `x`).
fn strip_scheme(v: &str) -> &str {
    ["Bearer ", "Basic ", "Token ", "Bot "].iter().find_map(|p| v.strip_prefix(p)).unwrap_or(v)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// The string values of a name → value map (env, headers) with their pointers. A value that
/// is itself JSON (`OPENAPI_MCP_HEADERS = "{\"Authorization\": \"Bearer …\"}"`) is opened and
/// its strings are collected beneath it, so the credential inside is judged by its own name;
/// so is a whole map written as one JSON string.
fn collect_named(v: Option<&Value>, pointer: &str, out: &mut Vec<(String, String)>) {
    match v {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let at = format!("{pointer}/{k}");
                match v.as_str().map(|s| (s, embedded_json(s))) {
                    Some((_, Some(inner))) => collect_leaves(&inner, &at, out, 0),
                    Some((s, None)) => out.push((at, s.to_owned())),
                    None => {}
                }
            }
        }
        Some(Value::String(s)) => {
            if let Some(inner @ Value::Object(_)) = embedded_json(s) {
                collect_named(Some(&inner), pointer, out);
            }
        }
        _ => {}
    }
}

/// A string holding a JSON object or array, parsed.
fn embedded_json(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(s).ok().filter(|v| v.is_object() || v.is_array())
}

/// How deep a JSON value inside a string is followed: headers and env maps are flat; the
/// bound keeps a hostile file from recursing without end.
const EMBEDDED_DEPTH: usize = 8;

fn collect_leaves(v: &Value, pointer: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > EMBEDDED_DEPTH {
        return;
    }
    match v {
        Value::String(s) => out.push((pointer.to_owned(), s.clone())),
        Value::Object(m) => {
            for (k, v) in m {
                collect_leaves(v, &format!("{pointer}/{k}"), out, depth + 1);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                collect_leaves(v, &format!("{pointer}/{i}"), out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn named(v: serde_json::Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        super::collect_named(Some(&v), "/s/env", &mut out);
        out
    }

    #[test]
    fn json_inside_an_env_value_is_opened() {
        let got = named(json!({
            "OPENAPI_MCP_HEADERS": "{\"Authorization\": \"Bearer abc\", \"Notion-Version\": \"2022-06-28\"}",
            "LIST": "[\"x\", {\"k\": \"y\"}]",
            "PLAIN": "{not json",
            "NUM": 3,
        }));
        let want: Vec<(String, String)> = [
            ("/s/env/LIST/0", "x"),
            ("/s/env/LIST/1/k", "y"),
            ("/s/env/OPENAPI_MCP_HEADERS/Authorization", "Bearer abc"),
            ("/s/env/OPENAPI_MCP_HEADERS/Notion-Version", "2022-06-28"),
            ("/s/env/PLAIN", "{not json"),
        ]
        .into_iter()
        .map(|(p, v)| (p.to_owned(), v.to_owned()))
        .collect();
        let mut got = got;
        got.sort();
        assert_eq!(got, want);
        // A whole map written as one JSON string; a JSON scalar string is a plain value.
        assert_eq!(named(json!("{\"X-Key\": \"v\"}")), [("/s/env/X-Key".to_owned(), "v".to_owned())]);
        assert!(named(json!("\"quoted\"")).is_empty());
        // Nesting deeper than the bound is not followed.
        let mut deep = json!("leaf");
        for _ in 0..20 {
            deep = json!({ "a": deep });
        }
        assert!(named(json!({ "D": deep.to_string() })).is_empty());
    }
}
