//! Provider keys that AI extensions keep in the user settings of VS Code and its forks
//! (catalog `[ide]` settings paths and `[[ide_setting]]` keys).
//!
//! `settings.json` is JSONC. Its keys are flat dotted names (`"chatgpt.gpt3.apiKey": …`);
//! only top-level string values under a catalogued name are read, so a key a user pasted
//! into an unrelated setting is left to the source-file sweep. The same file may also hold
//! MCP servers (`mcp.servers`), which `mcp` reads independently.

use serde_json::Value;

use super::jsonc::parse;
use super::tokens::{Site, classify};
use super::{Ctx, Home, TokenSource, expand};
use crate::catalog::FileFormat;
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for pattern in catalog.ide.settings_paths(ctx.os) {
        for rel in expand(ctx, &home.tree, &pattern) {
            let Some(text) = ctx.read_text(&home.tree, &rel, ctx.limits.large_file) else {
                continue;
            };
            // A fresh editor may leave the file empty: no settings, not a malformed file.
            if text.trim().is_empty() {
                continue;
            }
            let doc = match parse(FileFormat::Jsonc, &text) {
                Ok(Value::Object(m)) => m,
                // Not an object: nothing an extension would read; the MCP reader reports
                // a malformed file when it is one of its configs.
                Ok(_) => continue,
                Err(e) => {
                    ctx.error(&home.tree, &rel, e);
                    continue;
                }
            };
            let site = Site { home, rel: &rel, source: TokenSource::IdeConfig };
            for (key, value) in &doc {
                let Some((provider, kind)) = catalog.ide_settings.get(&key.to_ascii_lowercase()) else {
                    continue;
                };
                let Some(raw) = value.as_str() else { continue };
                // The key's format wins; then the setting's provider. Placeholders such as
                // `${env:OPENAI_API_KEY}` and values that are not secret-shaped (CodeGPT keeps
                // a provider name in `apiKey`) are not credentials.
                if let Some(class) = classify(catalog, raw, Some(key), Some((provider, *kind))) {
                    let locator = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
                    ctx.token(&site, Secret::new(raw.trim()), class, Some(locator), None);
                }
            }
        }
    }
}
