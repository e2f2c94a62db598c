//! AppImages: single-file apps people keep in `~/Applications`, `~/.local/bin`, `~/Downloads`
//! (the catalog's `appimage_dirs`), recognised by the catalog's file-name patterns
//! (`Cursor-{version}-*.AppImage`), and the freedesktop launchers that appimaged and
//! AppImageLauncher write for them (`appimagekit_*.desktop`, `Exec=` naming the image).
//!
//! The install is the image: an image and its launcher are one finding, at the image's path,
//! however it was found. A launcher whose image is gone is a leftover and not reported; one
//! whose image lies outside the tree being scanned cannot be checked and is reported at the
//! launcher, the evidence there is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::installs::match_name;
use super::{AppFinding, Ctx, Finding, Home, rel_path};
use crate::catalog::{Catalog, Tool};
use crate::fsview::{Kind, Tree};

/// Reports the AppImages in a home's AppImage folders; returns their paths, so launchers
/// that point at them add nothing.
pub(crate) fn detect_home(ctx: &mut Ctx<'_>, home: &Home) -> HashSet<PathBuf> {
    let mut seen = HashSet::new();
    let catalog = ctx.catalog;
    for dir in catalog.installs.appimage_dirs.iter().map(|d| rel_path(d)) {
        let entries = match home.tree.list(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                ctx.error(&home.tree, &dir, format!("cannot list AppImages: {e}"));
                continue;
            }
        };
        // A link to an image elsewhere is a shortcut, not a second install.
        for e in entries.into_iter().filter(|e| e.kind == Kind::File) {
            let Some(name) = e.name.to_str() else { continue };
            if let Some((tool, version)) = tool_for(catalog, name) {
                let rel = dir.join(name);
                push(ctx, &home.tree, Some(&home.user), tool, &rel, version);
                seen.insert(rel);
            }
        }
    }
    seen
}

/// What a launcher whose program is an AppImage comes to.
pub(crate) enum Launched {
    /// The image was reported (now or already): nothing more to say.
    Reported,
    /// The image is not in the tree any more: the launcher is a leftover.
    Leftover,
    /// The image is outside this tree: the launcher is the only evidence.
    Unchecked,
}

/// Resolves a launcher's AppImage `program` (as spelled in `Exec=`) inside `tree`.
pub(crate) fn launched(
    ctx: &mut Ctx<'_>,
    tree: &Tree,
    user: Option<&str>,
    tool: &Tool,
    program: &str,
    launcher_version: Option<String>,
    seen: &mut HashSet<PathBuf>,
) -> Launched {
    if !program.starts_with('/') {
        return Launched::Unchecked; // found on PATH at run time: nothing to map
    }
    let Some(rel) = tree.link_target(Path::new(""), Path::new(program)) else { return Launched::Unchecked };
    if !tree.exists(&rel) {
        return Launched::Leftover;
    }
    if seen.insert(rel.clone()) {
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let version = tool_for(ctx.catalog, name).and_then(|(_, v)| v).or(launcher_version);
        push(ctx, tree, user, tool, &rel, version);
    }
    Launched::Reported
}

/// Whether a program path names an AppImage.
pub(crate) fn is_appimage(program: &str) -> bool {
    program.to_ascii_lowercase().ends_with(".appimage")
}

/// The tool an AppImage's file name belongs to, and the version the name carries.
pub(crate) fn tool_for<'c>(catalog: &'c Catalog, name: &str) -> Option<(&'c Tool, Option<String>)> {
    catalog.tools.iter().find_map(|t| t.appimages.iter().find_map(|p| match_name(p, name)).map(|v| (t, v)))
}

fn push(
    ctx: &mut Ctx<'_>,
    tree: &Tree,
    user: Option<&str>,
    tool: &Tool,
    rel: &Path,
    version: Option<String>,
) {
    ctx.findings.push(Finding::App(AppFinding {
        tool: tool.id.clone(),
        user: user.map(str::to_owned),
        path: tree.display(rel),
        version,
        bundle_id: None,
        authorized_by: None,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_and_decoys() {
        let c = Catalog::builtin().unwrap();
        let id = |n: &str| tool_for(&c, n).map(|(t, v)| (t.id.as_str(), v));
        assert_eq!(id("Cursor-1.7.28-x86_64.AppImage"), Some(("cursor", Some("1.7.28".into()))));
        assert_eq!(id("cursor.appimage"), Some(("cursor", None)));
        assert_eq!(id("LM-Studio-0.3.5-x64.AppImage"), Some(("lm_studio", Some("0.3.5".into()))));
        assert_eq!(id("Jan_0.6.8_amd64.AppImage"), Some(("jan", Some("0.6.8".into()))));
        assert_eq!(id("Msty_x86_64_amd64.AppImage"), Some(("msty", None)));
        assert_eq!(id("Obsidian-1.6.7.AppImage"), None);
        assert_eq!(id("Cursor-1.7.28-x86_64.AppImage.zs-old"), None);
        assert!(is_appimage("/home/a/Applications/X.APPIMAGE"));
        assert!(!is_appimage("/usr/bin/cursor"));
    }
}
