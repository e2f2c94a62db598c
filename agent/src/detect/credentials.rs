//! Known credential files, parsed by structure (catalog `credential_file` entries).

use super::jsonc::{parse, select};
use super::tokens::classify;
use super::{Ctx, Home, TokenSource, rel_path};
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for entry in &catalog.credential_files {
        for p in &entry.paths {
            let rel = rel_path(p);
            let text = match home.tree.read_text(&rel, ctx.limits.large_file) {
                Ok(t) => t,
                Err(e) => {
                    ctx.read_error(&home.tree, &rel, e);
                    continue;
                }
            };
            let value = match parse(entry.format, &text) {
                Ok(v) => v,
                Err(e) => {
                    ctx.error(&home.tree, &rel, e);
                    continue;
                }
            };
            for field in &entry.fields {
                for (pointer, v) in select(&value, &field.pointer) {
                    let Some(s) = v.as_str() else { continue };
                    if let Some(class) = classify(catalog, s, None, Some((&entry.provider, field.kind))) {
                        let locator = if pointer.is_empty() { None } else { Some(pointer) };
                        ctx.token(home, &rel, TokenSource::CredentialFile, Secret::new(s), class, locator);
                    }
                }
            }
        }
    }
}
