//! Known credential files, parsed by structure (catalog `credential_file` entries).

use std::path::Path;

use serde_json::Value;

use super::jsonc::{parse, select};
use super::tokens::{Site, classify};
use super::{Ctx, Home, TokenSource, expand, statedb};
use crate::catalog::FileFormat;
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for entry in &catalog.credential_files {
        let rels: Vec<_> = entry.paths.iter().flat_map(|p| expand(ctx, &home.tree, p)).collect();
        for rel in rels {
            let value = if entry.format == FileFormat::SqliteItems {
                match state_db(ctx, home, &rel) {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                let Some(text) = ctx.read_text(&home.tree, &rel, ctx.limits.large_file) else {
                    continue;
                };
                match parse(entry.format, &text) {
                    Ok(v) => v,
                    Err(e) => {
                        ctx.error(&home.tree, &rel, e);
                        continue;
                    }
                }
            };
            ctx.claim(&home.tree, &rel);
            // A state database is the editor's whole state (settings, history), not a file
            // that only holds the credential: it is reported as IDE state, which enforcement
            // never moves into quarantine.
            let source = if entry.format == FileFormat::SqliteItems {
                TokenSource::IdeConfig
            } else {
                TokenSource::CredentialFile
            };
            for field in &entry.fields {
                for (pointer, v) in select(&value, &field.pointer) {
                    let Some(raw) = v.as_str() else { continue };
                    let (named_provider, secret) = match raw.split_once('=') {
                        Some((p, k)) if field.provider_prefixed => {
                            (Some(p.trim().to_ascii_lowercase()), k.trim())
                        }
                        _ => (None, raw),
                    };
                    // The provider may sit next to the key (`{provider: mistral, apiKey: …}`).
                    let sibling = field.provider_from.as_ref().and_then(|key| {
                        let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
                        select(&value, &format!("{parent}/{key}"))
                            .first()
                            .and_then(|(_, v)| v.as_str())
                            .map(str::to_ascii_lowercase)
                    });
                    let provider = named_provider.or(sibling).or_else(|| entry.provider.clone());
                    // The field's own name is evidence too (`OPENAI_API_KEY: …` in a YAML map).
                    let name = pointer.rsplit('/').next().filter(|n| !n.is_empty());
                    let fallback = provider.as_deref().map(|p| (p, field.kind));
                    let server =
                        field.mcp_server_from.as_ref().and_then(|key| mcp_server(&value, &pointer, key));
                    if let Some(class) = classify(catalog, secret, name, fallback) {
                        let locator = if pointer.is_empty() { None } else { Some(pointer) };
                        ctx.token(
                            &Site { home, rel: &rel, source },
                            Secret::new(secret),
                            class,
                            locator,
                            server.as_deref(),
                        );
                    }
                }
            }
        }
    }
}

/// The MCP server a credential at `pointer` is for: the sibling `key` (`serverName`), else
/// the enclosing object's own key up to its first `|` (Claude Code keys entries
/// `<serverName>|<hash>`).
fn mcp_server(value: &Value, pointer: &str, key: &str) -> Option<String> {
    let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
    let sibling = select(value, &format!("{parent}/{key}"))
        .first()
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned);
    sibling.or_else(|| {
        let own = parent.rsplit('/').next().filter(|k| !k.is_empty())?;
        let own = own.replace("~1", "/").replace("~0", "~");
        own.split('|').next().filter(|s| !s.is_empty()).map(str::to_owned)
    })
}

/// A state database's `ItemTable` as `{key: value}`, with its write-ahead log's committed
/// frames applied. Both reads are bounded; a log that cannot be read is reported and the
/// database is read without it (its newest values may then be missing).
fn state_db(ctx: &mut Ctx<'_>, home: &Home, rel: &Path) -> Option<Value> {
    let limit = ctx.limits.database_file;
    let db = match home.tree.read(rel, limit) {
        Ok(b) => b,
        Err(e) => {
            ctx.read_error(&home.tree, rel, e);
            return None;
        }
    };
    let mut wal_name = rel.file_name()?.to_os_string();
    wal_name.push("-wal");
    let wal_rel = rel.with_file_name(wal_name);
    let wal = match home.tree.read(&wal_rel, limit) {
        Ok(b) => Some(b),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            ctx.error(&home.tree, &wal_rel, format!("{e}; newer values in it were not read"));
            None
        }
    };
    match statedb::items(db, wal.as_deref(), limit) {
        Ok(items) => {
            if let Err(e) = items.wal {
                ctx.error(&home.tree, &wal_rel, e.to_string());
            }
            if items.truncated {
                ctx.error(&home.tree, rel, "ItemTable has too many rows; the rest were not read");
            }
            Some(Value::Object(items.rows))
        }
        Err(e) => {
            ctx.error(&home.tree, rel, e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_server_from_sibling_else_from_the_entry_key() {
        let v = serde_json::json!({"mcpOAuth": {
            "linear|63af": {"serverName": "linear", "accessToken": "t"},
            "plugin:a/b|9f": {"serverName": " ", "accessToken": "t"},
            "bare": {"accessToken": "t"},
        }});
        let at = |p: &str| mcp_server(&v, p, "serverName");
        assert_eq!(at("/mcpOAuth/linear|63af/accessToken").as_deref(), Some("linear"));
        // A blank sibling does not name a server; the key (unescaped, before `|`) does.
        assert_eq!(at("/mcpOAuth/plugin:a~1b|9f/accessToken").as_deref(), Some("plugin:a/b"));
        assert_eq!(at("/mcpOAuth/bare/accessToken").as_deref(), Some("bare"));
        assert_eq!(mcp_server(&v, "/accessToken", "serverName"), None);
    }
}
