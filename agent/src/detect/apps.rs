//! Installed AI apps and CLIs (catalog `tool` install rules).
//!
//! macOS: every `*.app` in `/Applications` and `~/Applications` and in folders there
//! (`/Applications/Setapp/…`, two levels down), identified by the `CFBundleIdentifier` in its
//! `Info.plist` (XML or binary), falling back to the bundle name. Every layout: the catalog's
//! install paths and npm packages (`installs`). Linux: freedesktop launchers and AppImages
//! (`appimage`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::appimage::{self, Launched};
use super::{AppFinding, Ctx, Finding, Home, Os, installs, rel_path};
use crate::fsview::{Kind, Tree};

/// How many folder levels below `Applications` bundles are looked for: people and Setapp
/// group apps in folders (`/Applications/AI/ChatGPT.app`), rarely deeper.
const MAC_APP_FOLDERS: usize = 2;

pub(crate) fn detect_machine_wide(ctx: &mut Ctx<'_>, root: &Tree) {
    if ctx.os == Os::Macos {
        mac_apps(ctx, root, Path::new("Applications"), None, MAC_APP_FOLDERS);
    }
    if ctx.os == Os::Linux {
        let mut seen = HashSet::new();
        for dir in [
            "usr/share/applications",
            "usr/local/share/applications",
            "var/lib/flatpak/exports/share/applications",
            "var/lib/snapd/desktop/applications",
        ] {
            desktop_entries(ctx, root, Path::new(dir), None, &mut seen);
        }
    }
    installs::detect(ctx, root, None);
}

pub(crate) fn detect_home(ctx: &mut Ctx<'_>, home: &Home) {
    if ctx.os == Os::Macos {
        mac_apps(ctx, &home.tree, Path::new("Applications"), Some(&home.user), MAC_APP_FOLDERS);
    }
    ide_extensions(ctx, home);
    if ctx.os == Os::Linux {
        let mut seen = appimage::detect_home(ctx, home);
        desktop_entries(ctx, &home.tree, Path::new(".local/share/applications"), Some(&home.user), &mut seen);
    }
    installs::detect(ctx, &home.tree, Some(&home.user));
}

/// `.app` bundles in `dir`, and in its plain folders down to `folders` more levels (a
/// bundle's own contents are never searched for more bundles).
fn mac_apps(ctx: &mut Ctx<'_>, tree: &Tree, dir: &Path, user: Option<&str>, folders: usize) {
    let entries = match tree.list(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return ctx.error(tree, dir, format!("cannot list applications: {e}")),
    };
    for e in entries {
        let Some(name) = e.name.to_str() else { continue };
        if e.kind != Kind::Dir || name.starts_with('.') {
            continue;
        }
        if !name.ends_with(".app") {
            if folders > 0 {
                mac_apps(ctx, tree, &dir.join(name), user, folders - 1);
            }
            continue;
        }
        let app = dir.join(name);
        let plist_rel = app.join("Contents/Info.plist");
        let (bundle_id, version) = match tree.read(&plist_rel, ctx.limits.small_file) {
            Ok(bytes) => match crate::plist_bounded::from_bytes(&bytes)
                .map(|v| v.into_dictionary().unwrap_or_default())
            {
                Ok(d) => (
                    d.get("CFBundleIdentifier").and_then(|v| v.as_string()).map(str::to_owned),
                    d.get("CFBundleShortVersionString")
                        .or_else(|| d.get("CFBundleVersion"))
                        .and_then(|v| v.as_string())
                        .map(str::to_owned),
                ),
                Err(err) => {
                    ctx.error(tree, &plist_rel, format!("malformed Info.plist: {err}"));
                    (None, None)
                }
            },
            Err(err) => {
                ctx.read_error(tree, &plist_rel, err);
                (None, None)
            }
        };
        let catalog = ctx.catalog;
        let by_bundle = bundle_id
            .as_deref()
            .and_then(|b| catalog.tools.iter().find(|t| t.mac_bundle_ids.iter().any(|x| x == b)));
        let tool = by_bundle.or_else(|| catalog.tools.iter().find(|t| t.mac_apps.iter().any(|a| a == name)));
        if let Some(tool) = tool {
            ctx.findings.push(Finding::App(AppFinding {
                tool: tool.id.clone(),
                user: user.map(str::to_owned),
                path: tree.display(&app),
                version,
                bundle_id,
                authorized_by: None,
            }));
        }
    }
}

/// Freedesktop launchers (`*.desktop`): what `.deb`, `.rpm`, Flatpak, Snap and AppImage
/// integrations register. The tool is recognised by the program in `Exec=`.
/// A launcher for an AppImage stands for the image (see `appimage`).
fn desktop_entries(
    ctx: &mut Ctx<'_>,
    tree: &Tree,
    dir: &Path,
    user: Option<&str>,
    seen: &mut HashSet<PathBuf>,
) {
    let entries = match tree.list(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return ctx.error(tree, dir, format!("cannot list applications: {e}")),
    };
    for e in entries {
        let Some(name) = e.name.to_str().filter(|n| n.ends_with(".desktop")) else { continue };
        let rel = dir.join(name);
        let text = match tree.read_text(&rel, 64 * 1024) {
            Ok(t) => t,
            Err(err) => {
                ctx.read_error(tree, &rel, err);
                continue;
            }
        };
        let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap_or_default();
        let program = exec_program(exec);
        let base = program.rsplit('/').next().unwrap_or_default();
        let catalog = ctx.catalog;
        let by_image = appimage::is_appimage(&program).then(|| appimage::tool_for(catalog, base)).flatten();
        let tool = by_image
            .map(|(t, _)| t)
            .or_else(|| catalog.tool_for_process(base))
            .or_else(|| catalog.tool_for_cmdline(exec));
        if let Some(tool) = tool {
            let version = text.lines().find_map(|l| l.strip_prefix("X-AppImage-Version=")).map(str::to_owned);
            if appimage::is_appimage(&program) {
                match appimage::launched(ctx, tree, user, tool, &program, version.clone(), seen) {
                    Launched::Reported | Launched::Leftover => continue,
                    Launched::Unchecked => {}
                }
            }
            ctx.findings.push(Finding::App(AppFinding {
                tool: tool.id.clone(),
                user: user.map(str::to_owned),
                path: tree.display(&rel),
                version,
                bundle_id: None,
                authorized_by: None,
            }));
        }
    }
}

/// The program of an `Exec=` line, skipping `env VAR=…` prefixes and honouring quotes.
fn exec_program(exec: &str) -> String {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in exec.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut it = words.into_iter().peekable();
    if it.peek().is_some_and(|w| w == "env" || w.ends_with("/env")) {
        it.next();
        while it.peek().is_some_and(|w| w.contains('=') || w.starts_with('-')) {
            it.next();
        }
    }
    it.next().unwrap_or_default()
}

/// AI extensions installed in VS Code and its forks (`~/.vscode/extensions/github.copilot-1.2.3`).
/// Directories listed in the editor's `.obsolete` file are uninstalled and only await
/// deletion, so they are not findings.
fn ide_extensions(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for dir in catalog.ide.extension_dirs.iter().map(|d| rel_path(d)) {
        let entries = match home.tree.list(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                ctx.error(&home.tree, &dir, format!("cannot list editor extensions: {e}"));
                continue;
            }
        };
        let obsolete: serde_json::Value = home
            .tree
            .read_text(&dir.join(".obsolete"), ctx.limits.small_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        for e in entries.into_iter().filter(|e| e.kind == Kind::Dir) {
            let Some(name) = e.name.to_str() else { continue };
            if obsolete.get(name).and_then(serde_json::Value::as_bool) == Some(true) {
                continue;
            }
            let (id, version) = split_versioned(name);
            if let Some(tool) = catalog.tool_for_ide_extension(id) {
                ctx.findings.push(Finding::App(AppFinding {
                    tool: tool.id.clone(),
                    user: Some(home.user.clone()),
                    path: home.tree.display(&dir.join(name)),
                    version: version.map(str::to_owned),
                    bundle_id: Some(id.to_ascii_lowercase()),
                    authorized_by: None,
                }));
            }
        }
    }
}

/// `github.copilot-chat-0.22.4` → (`github.copilot-chat`, `0.22.4`); the version starts
/// at the last `-` followed by a digit. Platform suffixes (`-linux-x64`) stay in the version.
fn split_versioned(name: &str) -> (&str, Option<&str>) {
    let bytes = name.as_bytes();
    let cut = (1..bytes.len()).find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit());
    match cut {
        Some(i) => (&name[..i - 1], Some(&name[i..])),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_versioned;

    #[test]
    fn desktop_exec_lines() {
        use super::exec_program;
        assert_eq!(exec_program("/usr/share/cursor/cursor %F"), "/usr/share/cursor/cursor");
        assert_eq!(
            exec_program("env BAMF=1 GDK_SCALE=2 \"/opt/LM Studio/lm-studio\" --no-sandbox %U"),
            "/opt/LM Studio/lm-studio"
        );
        assert_eq!(exec_program(""), "");
    }

    #[test]
    fn versioned_extension_dirs() {
        assert_eq!(split_versioned("github.copilot-chat-0.22.4"), ("github.copilot-chat", Some("0.22.4")));
        assert_eq!(
            split_versioned("continue.continue-1.2.3-linux-x64"),
            ("continue.continue", Some("1.2.3-linux-x64"))
        );
        assert_eq!(split_versioned("ms-python.python"), ("ms-python.python", None));
    }
}
