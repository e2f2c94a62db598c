//! What people call a connector: the display names of the detection catalog's tools.
//!
//! Agents report a tool by its catalog id (`chatgpt_desktop`) and a catalogued browser
//! extension by the id of the tool it belongs to, so the collector reads the same catalog the
//! agents are built with (`agent/catalog/catalog.toml`, compiled in) to name them. Only the
//! tools' ids and names are read here; detection rules are the agent's business. An id the
//! catalog does not know (a newer agent's catalog, an uncatalogued extension reported by its
//! own name) is shown as reported. A catalog update installed for agents (`served`) names
//! the tools it adds or renames; those names win while it verifies under the collector key.

pub mod served;

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde::Deserialize;

const CATALOG: &str = include_str!("../../agent/catalog/catalog.toml");

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    tool: Vec<Tool>,
    #[serde(default)]
    api_host: Vec<ApiHost>,
}

#[derive(Deserialize)]
struct ApiHost {
    provider: String,
    revoke_url: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    id: String,
    name: String,
}

/// Tool id → display name. The catalog is validated by the agent's tests; should it ever fail
/// to parse here, names fall back to ids rather than failing a request.
fn names() -> &'static HashMap<String, String> {
    static NAMES: OnceLock<HashMap<String, String>> = OnceLock::new();
    NAMES.get_or_init(|| match toml::from_str::<File>(CATALOG) {
        Ok(f) => f.tool.into_iter().map(|t| (t.id, t.name)).collect(),
        Err(e) => {
            tracing::error!("the compiled-in catalog does not parse; tools are shown by id: {e}");
            HashMap::new()
        }
    })
}

/// Provider → its key-management page, where a leaked or unwanted key is revoked.
fn revoke_pages() -> &'static HashMap<String, String> {
    static PAGES: OnceLock<HashMap<String, String>> = OnceLock::new();
    PAGES.get_or_init(|| match toml::from_str::<File>(CATALOG) {
        Ok(f) => f.api_host.into_iter().filter_map(|h| Some((h.provider, h.revoke_url?))).collect(),
        Err(_) => HashMap::new(),
    })
}

/// Where keys of `provider` are revoked, if the catalog says.
pub fn revoke_page(provider: &str) -> Option<String> {
    revoke_pages().get(provider).cloned()
}

/// Tool id → display name from the installed catalog update, if one verifies.
static INSTALLED: RwLock<Option<HashMap<String, String>>> = RwLock::new(None);

/// Takes the tool names of the installed update (`served`), or forgets them (None).
pub(crate) fn set_installed_names(text: Option<&str>) {
    let names = text
        .and_then(|t| toml::from_str::<File>(t).ok())
        .map(|f| f.tool.into_iter().map(|t| (t.id, t.name)).collect());
    *INSTALLED.write().unwrap_or_else(|p| p.into_inner()) = names;
}

fn installed_name(id: &str) -> Option<String> {
    INSTALLED.read().unwrap_or_else(|p| p.into_inner()).as_ref()?.get(id).cloned()
}

/// The catalog's name for tool `id`, if it has one.
pub fn tool_name(id: &str) -> Option<&'static str> {
    names().get(id).map(String::as_str)
}

/// What to call a connector of `kind` whose stored label is `label`: tools and catalogued
/// extensions (labelled with their tool's id) by the catalog's name; everything else
/// (an uncatalogued extension's reported name, a token's provider, an MCP server's name) as
/// labelled.
pub fn display_name(kind: &str, label: &str) -> String {
    match kind {
        "tool" | "extension" => installed_name(label)
            .or_else(|| tool_name(label).map(str::to_owned))
            .unwrap_or_else(|| label.to_owned()),
        _ => label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogued_tools_and_extensions_get_their_names_others_keep_their_labels() {
        assert!(names().len() > 50, "the catalog's tools are read: {}", names().len());
        assert_eq!(revoke_page("openai").as_deref(), Some("https://platform.openai.com/api-keys"));
        assert_eq!(revoke_page("no-such-provider"), None);
        assert_eq!(display_name("tool", "chatgpt_desktop"), "ChatGPT desktop");
        assert_eq!(display_name("extension", "claude_extension"), tool_name("claude_extension").unwrap());
        assert_ne!(display_name("extension", "claude_extension"), "claude_extension");
        assert_eq!(display_name("extension", "AI Sidebar"), "AI Sidebar");
        assert_eq!(display_name("tool", "not_in_the_catalog"), "not_in_the_catalog");
        // A token is named by its provider, even one that is also a tool id.
        assert_eq!(display_name("token", "cursor"), "cursor");
    }
}
