//! AI browser extensions in every Chromium-family browser and Firefox, every profile.
//!
//! Chromium: `<user data>/<profile>/Extensions/<id>/<version>/manifest.json`, enabled state
//! from `Preferences` / `Secure Preferences`, `__MSG_*__` names resolved via `_locales`.
//! Firefox: profiles from `profiles.ini` (and `Profiles/*`), add-ons from `extensions.json`.
//! Catalogued ids give `tool`; anything else counts only on heuristic signals (AI hosts in
//! permissions or content scripts, AI words in the name), with `tool` left empty.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Ctx, ExtensionFinding, Finding, Home, rel_path};
use crate::catalog::{Browser, Catalog, Engine, is_chrome_id};
use crate::fsview::{Kind, Tree};

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for browser in &catalog.browsers {
        let os = ctx.os;
        let rels: Vec<_> = browser.dirs(os).iter().flat_map(|d| super::expand(ctx, &home.tree, d)).collect();
        for rel in rels {
            if !home.tree.is_dir(&rel) {
                continue;
            }
            let data = match home.tree.subtree(&rel) {
                Ok(t) => t,
                Err(e) => {
                    ctx.error(&home.tree, &rel, format!("cannot open browser data: {e}"));
                    continue;
                }
            };
            match browser.engine {
                Engine::Chromium => chromium(ctx, home, browser, &data),
                Engine::Firefox => firefox(ctx, home, browser, &data),
            }
        }
    }
}

// === Chromium ===

fn chromium(ctx: &mut Ctx<'_>, home: &Home, browser: &Browser, data: &Tree) {
    let profiles: Vec<PathBuf> = if browser.profile_at_root {
        vec![PathBuf::new()]
    } else {
        match data.list(Path::new("")) {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.kind == Kind::Dir)
                .map(|e| PathBuf::from(e.name))
                // A profile with only unpacked extensions has no `Extensions/`, just prefs.
                .filter(|p| {
                    p.as_os_str() != "System Profile"
                        && (data.is_dir(&p.join("Extensions")) || data.exists(&p.join("Preferences")))
                })
                .collect(),
            Err(e) => return ctx.error(data, Path::new(""), format!("cannot list browser profiles: {e}")),
        }
    };
    for profile in profiles {
        let states = chromium_states(ctx, data, &profile);
        let profile_name = if profile.as_os_str().is_empty() {
            "Default".to_owned()
        } else {
            profile.to_string_lossy().into_owned()
        };
        let ext_dir = profile.join("Extensions");
        let ids = match data.list(&ext_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                ctx.error(data, &ext_dir, format!("cannot list extensions: {e}"));
                Vec::new()
            }
        };
        let installed: BTreeSet<String> =
            ids.iter().filter_map(|e| e.name.to_str().map(str::to_owned)).collect();
        for id in ids {
            let Some(id_str) = id.name.to_str().filter(|s| is_chrome_id(s)) else { continue };
            let Some(version_dir) = newest_version(data, &ext_dir.join(id_str)) else { continue };
            let manifest_rel = version_dir.join("manifest.json");
            let Some(manifest) = ctx.read_text(data, &manifest_rel, ctx.limits.small_file) else {
                continue;
            };
            let manifest: Value = match serde_json::from_str(manifest.trim_start_matches('\u{feff}')) {
                Ok(v) => v,
                Err(e) => {
                    ctx.error(data, &manifest_rel, format!("malformed manifest.json: {e}"));
                    continue;
                }
            };
            let name = localized(ctx, data, &version_dir, &manifest, "name");
            let description = localized(ctx, data, &version_dir, &manifest, "description");
            let info = Manifest::chromium(&manifest);
            if let Some(f) = classify(
                ctx.catalog,
                Candidate {
                    user: &home.user,
                    browser: &browser.id,
                    profile: profile_name.clone(),
                    id: id_str,
                    name,
                    version: manifest["version"].as_str().map(str::to_owned),
                    enabled: enabled_state(states.as_ref(), id_str),
                    path: data.display(&version_dir),
                    description,
                    info,
                },
            ) {
                ctx.findings.push(Finding::Extension(f));
            }
        }
        unpacked(ctx, home, browser, states.as_ref(), &profile_name, &installed);
    }
}

/// `ManifestLocation` values (extensions/common/mojom/manifest.mojom) of extensions loaded
/// from a directory of the user's choosing rather than installed under `Extensions/`:
/// kUnpacked (4, "Load unpacked" in developer mode) and kCommandLine (8, `--load-extension`).
const UNPACKED_LOCATIONS: [u64; 2] = [4, 8];

/// Developer-mode extensions: listed only in the profile's prefs, with the absolute path of
/// their directory. The manifest is read there when that path lies inside the same home
/// (through the home's sandboxed tree); otherwise from a `manifest` copy in the prefs, which
/// older Chromium kept for some locations. With neither there is no evidence to judge by.
fn unpacked(
    ctx: &mut Ctx<'_>,
    home: &Home,
    browser: &Browser,
    states: Option<&Value>,
    profile: &str,
    installed: &BTreeSet<String>,
) {
    let Some(Value::Object(settings)) = states else { return };
    for (id, s) in settings {
        if !is_chrome_id(id)
            || installed.contains(id)
            || !s["location"].as_u64().is_some_and(|l| UNPACKED_LOCATIONS.contains(&l))
        {
            continue;
        }
        let Some(path) = s["path"].as_str() else { continue };
        let dir_rel = home_relative(home, ctx.os, path);
        let shown = dir_rel.as_ref().map_or_else(|| path.replace('\\', "/"), |d| home.tree.display(d));
        let from_disk = dir_rel.and_then(|dir| {
            let rel = dir.join("manifest.json");
            match home.tree.read_text(&rel, ctx.limits.small_file) {
                Ok(t) => match serde_json::from_str::<Value>(t.trim_start_matches('\u{feff}')) {
                    Ok(m) => Some((dir, m)),
                    Err(e) => {
                        ctx.error(&home.tree, &rel, format!("malformed manifest.json: {e}"));
                        None
                    }
                },
                Err(e) => {
                    ctx.read_error(&home.tree, &rel, e);
                    None
                }
            }
        });
        let (name, description, manifest) = match from_disk {
            Some((dir, m)) => (
                localized(ctx, &home.tree, &dir, &m, "name"),
                localized(ctx, &home.tree, &dir, &m, "description"),
                m,
            ),
            None => match s.get("manifest") {
                Some(m @ Value::Object(_)) => {
                    let text = |f: &str| m[f].as_str().unwrap_or_default().to_owned();
                    (text("name"), text("description"), m.clone())
                }
                _ => continue,
            },
        };
        let candidate = Candidate {
            user: &home.user,
            browser: &browser.id,
            profile: profile.to_owned(),
            id,
            name,
            version: manifest["version"].as_str().map(str::to_owned),
            enabled: enabled_state(states, id),
            path: shown,
            description,
            info: Manifest::chromium(&manifest),
        };
        if let Some(f) = classify(ctx.catalog, candidate) {
            ctx.findings.push(Finding::Extension(f));
        }
    }
}

/// An absolute path from the prefs as a path inside this home, if it is one. Windows
/// prefs spell it `C:\\Users\\dave\\…`; the home is displayed `/Users/dave`, and Windows
/// compares names without case. `..` is refused so the path cannot climb out by spelling.
fn home_relative(home: &Home, os: crate::catalog::Os, path: &str) -> Option<PathBuf> {
    let unified = path.replace('\\', "/");
    let unified = match unified.as_bytes() {
        [d, b':', b'/', ..] if d.is_ascii_alphabetic() && os == crate::catalog::Os::Windows => &unified[2..],
        _ => unified.as_str(),
    };
    let base = home.tree.display_base().to_string_lossy().replace('\\', "/");
    let base = base.trim_end_matches('/');
    let head = unified.get(..base.len())?;
    let same = if os == crate::catalog::Os::Windows { head.eq_ignore_ascii_case(base) } else { head == base };
    let rest = unified[base.len()..].strip_prefix('/')?;
    if !same || rest.split('/').any(|c| c == "..") {
        return None;
    }
    Some(rel_path(rest))
}

/// `extensions.settings` from Secure Preferences (macOS/Windows) merged over Preferences.
fn chromium_states(ctx: &mut Ctx<'_>, data: &Tree, profile: &Path) -> Option<Value> {
    let mut merged: Option<Value> = None;
    for file in ["Preferences", "Secure Preferences"] {
        let rel = profile.join(file);
        let Some(text) = ctx.read_text(data, &rel, ctx.limits.large_file) else {
            continue;
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                let settings = v.pointer_mut("/extensions/settings").map(Value::take);
                if let Some(Value::Object(s)) = settings {
                    match merged.as_mut() {
                        Some(Value::Object(m)) => m.extend(s),
                        _ => merged = Some(Value::Object(s)),
                    }
                }
            }
            Err(e) => ctx.error(data, &rel, format!("malformed browser preferences: {e}")),
        }
    }
    merged
}

fn enabled_state(states: Option<&Value>, id: &str) -> Option<bool> {
    let s = states?.get(id)?;
    let reasons = &s["disable_reasons"];
    let disabled_by_reason = match reasons {
        Value::Number(n) => n.as_u64().is_some_and(|n| n != 0),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    if disabled_by_reason {
        return Some(false);
    }
    match s["state"].as_u64() {
        Some(0) => Some(false),
        _ => Some(true),
    }
}

/// Picks the highest version directory (`1.2.3_0`) of an installed extension.
fn newest_version(data: &Tree, dir: &Path) -> Option<PathBuf> {
    let entries = data.list(dir).ok()?;
    entries
        .into_iter()
        .filter(|e| e.kind == Kind::Dir)
        .filter_map(|e| e.name.into_string().ok())
        .max_by_key(|v| v.split(['.', '_']).map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>())
        .map(|v| dir.join(v))
}

/// Resolves `__MSG_key__` through `_locales/<default_locale>/messages.json`.
fn localized(ctx: &mut Ctx<'_>, data: &Tree, dir: &Path, manifest: &Value, field: &str) -> String {
    let raw = manifest[field].as_str().unwrap_or_default();
    let Some(key) = raw.strip_prefix("__MSG_").and_then(|r| r.strip_suffix("__")) else {
        return raw.to_owned();
    };
    let mut locales: Vec<String> =
        manifest["default_locale"].as_str().map(str::to_owned).into_iter().collect();
    locales.extend(["en".to_owned(), "en_US".to_owned()]);
    for locale in locales {
        let rel = dir.join("_locales").join(&locale).join("messages.json");
        let Ok(text) = data.read_text(&rel, ctx.limits.small_file) else { continue };
        let Ok(Value::Object(messages)) = serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}'))
        else {
            ctx.error(data, &rel, "malformed messages.json");
            continue;
        };
        if let Some(msg) = messages
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v["message"].as_str())
        {
            return msg.to_owned();
        }
    }
    raw.to_owned()
}

// === Firefox ===

fn firefox(ctx: &mut Ctx<'_>, home: &Home, browser: &Browser, data: &Tree) {
    let mut profiles: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(ini) = data.read_text(Path::new("profiles.ini"), ctx.limits.small_file) {
        let mut name = None;
        let mut path = None;
        let mut relative = true;
        let flush = |name: &mut Option<String>,
                     path: &mut Option<String>,
                     relative: bool,
                     out: &mut Vec<(String, PathBuf)>| {
            if let Some(p) = path.take() {
                let p = if relative {
                    Some(rel_path(&p))
                } else {
                    // An absolute profile path is used only if it lies inside this browser dir.
                    Path::new(&p).strip_prefix(data.display_base()).ok().map(Path::to_path_buf)
                };
                if let Some(p) = p {
                    out.push((name.take().unwrap_or_else(|| p.to_string_lossy().into_owned()), p));
                }
            }
            *name = None;
        };
        for line in ini.lines().map(str::trim) {
            if line.starts_with('[') {
                flush(&mut name, &mut path, relative, &mut profiles);
                relative = true;
            } else if let Some(v) = line.strip_prefix("Name=") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("Path=") {
                path = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("IsRelative=") {
                relative = v != "0";
            }
        }
        flush(&mut name, &mut path, relative, &mut profiles);
    }
    // Profiles not (or no longer) listed in profiles.ini still hold extensions.
    for parent in [PathBuf::new(), PathBuf::from("Profiles")] {
        if let Ok(entries) = data.list(&parent) {
            for e in entries.into_iter().filter(|e| e.kind == Kind::Dir) {
                let p = parent.join(&e.name);
                if data.exists(&p.join("extensions.json")) && !profiles.iter().any(|(_, q)| q == &p) {
                    profiles.push((e.name.to_string_lossy().into_owned(), p));
                }
            }
        }
    }
    for (profile, dir) in profiles {
        let rel = dir.join("extensions.json");
        let Some(text) = ctx.read_text(data, &rel, ctx.limits.large_file) else {
            continue;
        };
        let doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                ctx.error(data, &rel, format!("malformed extensions.json: {e}"));
                continue;
            }
        };
        for addon in doc["addons"].as_array().into_iter().flatten() {
            if addon["type"].as_str() != Some("extension") {
                continue;
            }
            let location = addon["location"].as_str().unwrap_or_default();
            if matches!(
                location,
                "app-builtin" | "app-system-defaults" | "app-system-addons" | "app-system-share"
            ) {
                continue;
            }
            let Some(id) = addon["id"].as_str() else { continue };
            let name = addon["defaultLocale"]["name"].as_str().unwrap_or(id).to_owned();
            let path = match addon["path"].as_str() {
                Some(p) => p.to_owned(),
                None => data.display(&dir.join("extensions").join(format!("{id}.xpi"))),
            };
            if let Some(f) = classify(
                ctx.catalog,
                Candidate {
                    user: &home.user,
                    browser: &browser.id,
                    profile: profile.clone(),
                    id,
                    name,
                    version: addon["version"].as_str().map(str::to_owned),
                    enabled: addon["active"].as_bool(),
                    path,
                    description: addon["defaultLocale"]["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    info: Manifest::firefox(addon),
                },
            ) {
                ctx.findings.push(Finding::Extension(f));
            }
        }
    }
}

// === Classification ===

/// The parts of a manifest that say what an extension can reach.
#[derive(Debug, Default)]
struct Manifest {
    permissions: Vec<String>,
    host_permissions: Vec<String>,
    content_matches: Vec<String>,
}

impl Manifest {
    fn chromium(m: &Value) -> Manifest {
        let list = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        };
        let mut permissions = Vec::new();
        let mut host_permissions = list(&m["host_permissions"]);
        host_permissions.extend(list(&m["optional_host_permissions"]));
        // MV2 mixes API permissions and host patterns in one list.
        for p in list(&m["permissions"]).into_iter().chain(list(&m["optional_permissions"])) {
            if p.contains("://") || p == "<all_urls>" {
                host_permissions.push(p)
            } else {
                permissions.push(p)
            }
        }
        let mut content_matches: Vec<String> = m["content_scripts"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|cs| list(&cs["matches"]))
            .collect();
        content_matches.extend(list(&m["externally_connectable"]["matches"]));
        Manifest { permissions, host_permissions, content_matches }
    }

    fn firefox(addon: &Value) -> Manifest {
        let list = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        };
        Manifest {
            permissions: list(&addon["userPermissions"]["permissions"]),
            host_permissions: list(&addon["userPermissions"]["origins"]),
            content_matches: Vec::new(),
        }
    }
}

struct Candidate<'a> {
    user: &'a str,
    browser: &'a str,
    profile: String,
    id: &'a str,
    name: String,
    version: Option<String>,
    enabled: Option<bool>,
    path: String,
    description: String,
    info: Manifest,
}

fn classify(catalog: &Catalog, c: Candidate<'_>) -> Option<ExtensionFinding> {
    let tool = catalog.extensions.get(c.id).map(|e| e.tool.clone());
    let mut signals = BTreeSet::new();
    for pattern in c.info.host_permissions.iter().chain(&c.info.content_matches) {
        let host = pattern_host(pattern);
        for ai in &catalog.heuristics.ai_hosts {
            if host == ai.as_str()
                || host.ends_with(&format!(".{ai}"))
                || (host.starts_with("*.") && ai.ends_with(&host[1..]))
            {
                signals.insert(format!("host:{ai}"));
            }
        }
    }
    let words = |text: &str| -> Vec<String> {
        text.split(|ch: char| !ch.is_alphanumeric()).map(str::to_lowercase).collect()
    };
    let (name_words, description_words) = (words(&c.name), words(&c.description));
    for w in &catalog.heuristics.name_words {
        if name_words.iter().any(|x| x == w) {
            signals.insert(format!("name:{w}"));
        }
    }
    for w in &catalog.heuristics.description_words {
        if description_words.iter().any(|x| x == w) {
            signals.insert(format!("description:{w}"));
        }
    }
    if tool.is_none() && signals.is_empty() {
        return None;
    }
    Some(ExtensionFinding {
        tool,
        user: Some(c.user.to_owned()),
        browser: c.browser.to_owned(),
        profile: c.profile,
        extension_id: c.id.to_owned(),
        name: c.name,
        version: c.version,
        enabled: c.enabled,
        path: c.path,
        signals: signals.into_iter().collect(),
        permissions: c.info.permissions,
        host_permissions: c.info.host_permissions,
    })
}

/// The host of a match pattern (`https://*.openai.com/*` → `*.openai.com`).
fn pattern_host(pattern: &str) -> &str {
    let rest = pattern.split_once("://").map_or(pattern, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_match_patterns() {
        assert_eq!(pattern_host("https://*.openai.com/*"), "*.openai.com");
        assert_eq!(pattern_host("*://claude.ai/*"), "claude.ai");
        assert_eq!(pattern_host("http://localhost:11434/*"), "localhost");
        assert_eq!(pattern_host("<all_urls>"), "<all_urls>");
    }
}
