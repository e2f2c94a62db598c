//! MCP servers wired into AI clients (catalog `mcp_client` entries).
//!
//! Each server becomes an `mcp_server` finding with its command line or URL redacted.
//! Credentials handed to the server (env values, headers, argv, URLs) become `token`
//! findings with source `mcp_config`: they are access paths an AI agent holds.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::jsonc::{parse, select};
use super::redact;
use super::tokens::{Class, Site, classify, high_entropy, looks_secret, secret_like_name};
use super::{Ctx, Finding, Home, McpFinding, TokenSource, expand, rel_path};
use crate::catalog::{McpClient, TokenKind};
use crate::secret::Secret;

pub(crate) fn detect_global(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for client in &catalog.mcp_clients {
        let os = ctx.os;
        let rels: Vec<_> = client.paths(os).flat_map(|p| expand(ctx, &home.tree, p)).collect();
        for rel in rels {
            read_config(ctx, home, client, &rel);
        }
    }
}

pub(crate) fn detect_project(ctx: &mut Ctx<'_>, home: &Home, configs: &[(String, PathBuf)]) {
    let catalog = ctx.catalog;
    for (id, rel) in configs {
        if let Some(client) = catalog.mcp_clients.iter().find(|c| &c.id == id) {
            // A project file at the home root may be the client's global config, already read.
            if client.paths(ctx.os).any(|p| rel_path(p) == *rel) {
                continue;
            }
            read_config(ctx, home, client, rel);
        }
    }
}

fn read_config(ctx: &mut Ctx<'_>, home: &Home, client: &McpClient, rel: &Path) {
    let text = match home.tree.read_text(rel, ctx.limits.large_file) {
        Ok(t) => t,
        Err(e) => return ctx.read_error(&home.tree, rel, e),
    };
    ctx.claim(&home.tree, rel);
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
        Value::String(c) => argv.extend(split_command(c)),
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

/// Shell-like words: whitespace separates, quotes group (single quotes literally), a
/// backslash escapes the next character outside single quotes.
fn split_command(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn collect_named(v: Option<&Value>, pointer: &str, out: &mut Vec<(String, String)>) {
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                out.push((format!("{pointer}/{k}"), s.to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_in_one_string_splits_like_a_shell() {
        assert_eq!(
            super::split_command(r#"srv --api-key 'a b' --name "x y" c\ d"#),
            ["srv", "--api-key", "a b", "--name", "x y", "c d"]
        );
        assert_eq!(super::split_command("npx"), ["npx"]);
        assert_eq!(super::split_command("  "), Vec::<String>::new());
        assert_eq!(super::split_command("a ''"), ["a", ""]);
    }
}
