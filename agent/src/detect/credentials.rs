//! Known credential files, parsed by structure (catalog `credential_file` entries).

use super::jsonc::{parse, select};
use super::tokens::{Site, classify};
use super::{Ctx, Home, TokenSource, expand};
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for entry in &catalog.credential_files {
        let rels: Vec<_> = entry.paths.iter().flat_map(|p| expand(ctx, &home.tree, p)).collect();
        for rel in rels {
            let text = match home.tree.read_text(&rel, ctx.limits.large_file) {
                Ok(t) => t,
                Err(e) => {
                    ctx.read_error(&home.tree, &rel, e);
                    continue;
                }
            };
            ctx.claim(&home.tree, &rel);
            let value = match parse(entry.format, &text) {
                Ok(v) => v,
                Err(e) => {
                    ctx.error(&home.tree, &rel, e);
                    continue;
                }
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
                    if let Some(class) = classify(catalog, secret, name, fallback) {
                        let locator = if pointer.is_empty() { None } else { Some(pointer) };
                        ctx.token(
                            &Site { home, rel: &rel, source: TokenSource::CredentialFile },
                            Secret::new(secret),
                            class,
                            locator,
                            None,
                        );
                    }
                }
            }
        }
    }
}
