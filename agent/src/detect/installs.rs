//! Installs found where the catalog says a tool lives: its install paths (machine-wide `/…`
//! and `{programfiles}/…`, or per home) and the npm packages it ships as, in npm's global
//! roots. Both are data in the catalog; this module only knows how to look.
//!
//! One install is one finding. A link on the `PATH` and what it points at are the same
//! install (`~/.local/bin/claude -> ~/.local/share/claude/versions/2.1.29`, `/usr/local/bin/codex
//! -> ../lib/node_modules/@openai/codex/bin/codex.js`): it is reported at the link, with the
//! version read from the target (the versioned path, or the package's `package.json`). Other
//! builds kept beside the linked one are not installs of their own; without a link, the newest
//! build in a versions directory stands for the install.
//!
//! Links are read, never followed (`Tree::read_link`): the native installer writes an absolute
//! link, which the sandboxed tree refuses to resolve, so its text is mapped back into the tree.
//! A link whose target lies inside the tree but is gone is a leftover, not an install; one
//! leading out of the tree cannot be checked and counts as an install by itself.

use std::path::{Path, PathBuf};

use super::{AppFinding, Ctx, Finding, expand, rel_path, wildcard};
use crate::catalog::Tool;
use crate::fsview::Tree;

/// One place a tool may be installed, before links and their targets are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    rel: PathBuf,
    version: Option<String>,
    /// Where the path points, when it is a link whose target lies inside the tree.
    target: Option<PathBuf>,
    /// Found through a `{version}` segment (one of possibly several kept builds).
    versioned: bool,
}

/// Reports every catalog install of every tool in `tree`: machine-wide paths when `user` is
/// `None` (the root tree), home-relative ones otherwise.
pub(crate) fn detect(ctx: &mut Ctx<'_>, tree: &Tree, user: Option<&str>) {
    let catalog = ctx.catalog;
    let mut npm_roots: Vec<PathBuf> = Vec::new();
    for p in catalog.installs.npm_roots(ctx.os).iter().flat_map(|p| scoped(p, user.is_some())) {
        npm_roots.extend(expand(ctx, tree, &p).into_iter().filter(|r| tree.is_dir(r)));
    }
    for tool in &catalog.tools {
        let mut found = Vec::new();
        for pattern in tool.install_paths(ctx.os).iter().flat_map(|p| scoped(p, user.is_some())) {
            for (rel, version) in matches(ctx, tree, &pattern) {
                found.extend(probe(tree, rel, version, pattern.contains(VERSION)));
            }
        }
        for root in &npm_roots {
            for package in &tool.npm_packages {
                let rel = root.join(rel_path(package));
                if let Some(version) = npm_package(ctx, tree, &rel, package) {
                    found.push(Candidate { rel, version, target: None, versioned: false });
                }
            }
        }
        for c in merge(found) {
            ctx.findings.push(Finding::App(app(tool, user, tree, &c)));
        }
    }
}

fn app(tool: &Tool, user: Option<&str>, tree: &Tree, c: &Candidate) -> AppFinding {
    AppFinding {
        tool: tool.id.clone(),
        user: user.map(str::to_owned),
        path: tree.display(&c.rel),
        version: c.version.clone(),
        bundle_id: None,
        authorized_by: None,
    }
}

const VERSION: &str = "{version}";

/// A catalog path as patterns relative to the tree it belongs to, or nothing when it belongs
/// to the other kind of tree (home-relative paths are not machine-wide, and vice versa).
fn scoped(p: &str, home: bool) -> Vec<String> {
    match (p.strip_prefix("{programfiles}/"), p.strip_prefix('/')) {
        (Some(rest), _) if !home => {
            vec![format!("Program Files/{rest}"), format!("Program Files (x86)/{rest}")]
        }
        (None, Some(rest)) if !home => vec![rest.to_owned()],
        (None, None) if home => vec![p.to_owned()],
        _ => Vec::new(),
    }
}

/// The paths a pattern matches beneath `tree` (unchecked when it has no wildcard), each with
/// the version its `{version}` segment matched.
fn matches(ctx: &mut Ctx<'_>, tree: &Tree, pattern: &str) -> Vec<(PathBuf, Option<String>)> {
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().position(|s| s.contains(VERSION));
    expand(ctx, tree, &pattern.replace(VERSION, "*"))
        .into_iter()
        .map(|rel| {
            let version = at.and_then(|i| {
                let name = rel.components().nth(i)?.as_os_str().to_str()?;
                version_in(segments[i], name)
            });
            (rel, version)
        })
        .collect()
}

/// What the `{version}` of a segment pattern matched in `name` (which the pattern, with
/// `{version}` as `*`, is known to match): the text after the literal prefix, up to the
/// literal that follows `{version}`.
/// Literals compare without regard to ASCII case (Windows and AppImage names), and the
/// version keeps the case it has on disk.
pub(crate) fn version_in(segment: &str, name: &str) -> Option<String> {
    let (pre, post) = segment.split_once(VERSION)?;
    let rest = name.get(pre.len()..)?;
    let stop = post.split('*').next().unwrap_or_default().to_ascii_lowercase();
    let v = if stop.is_empty() {
        // `{version}*…` or `{version}` last: nothing marks its end but the end itself.
        if post.is_empty() { rest } else { return None }
    } else {
        // ASCII lowercasing keeps byte offsets, so a position found there holds in `rest`.
        rest.get(..rest.to_ascii_lowercase().find(&stop)?)?
    };
    (!v.is_empty()).then(|| v.to_owned())
}

/// Whether `pattern` (`*` and `{version}` as wildcards) matches `name` without regard to
/// ASCII case, and the version.
pub(crate) fn match_name(pattern: &str, name: &str) -> Option<Option<String>> {
    wildcard(&pattern.replace(VERSION, "*").to_ascii_lowercase(), &name.to_ascii_lowercase())
        .then(|| version_in(pattern, name))
}

/// An install path as it is on disk: a link is read, not followed.
fn probe(tree: &Tree, rel: PathBuf, version: Option<String>, versioned: bool) -> Option<Candidate> {
    if tree.is_symlink(&rel) {
        let text = tree.read_link(&rel).ok()?;
        let target = tree.link_target(&rel, &text);
        if let Some(t) = &target
            && !tree.exists(t)
            && !tree.exists(&rel)
        {
            return None; // dangling: the build it pointed at was removed
        }
        return Some(Candidate { rel, version, target, versioned });
    }
    tree.exists(&rel).then_some(Candidate { rel, version, target: None, versioned })
}

/// A package in an npm global root: its `package.json` names it (a folder left behind by
/// an uninstall has none) and gives the version.
fn npm_package(ctx: &mut Ctx<'_>, tree: &Tree, rel: &Path, package: &str) -> Option<Option<String>> {
    let manifest = rel.join("package.json");
    let text = match tree.read_text(&manifest, ctx.limits.small_file) {
        Ok(t) => t,
        Err(err) => {
            ctx.read_error(tree, &manifest, err);
            return None;
        }
    };
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(err) => {
            ctx.error(tree, &manifest, format!("malformed package.json: {err}"));
            return None;
        }
    };
    if json.get("name").and_then(serde_json::Value::as_str) != Some(package) {
        return None;
    }
    Some(json.get("version").and_then(serde_json::Value::as_str).map(str::to_owned))
}

/// One candidate per install: links absorb what they point at (taking its version), and of
/// several kept builds in one versions directory only the newest remains.
fn merge(mut found: Vec<Candidate>) -> Vec<Candidate> {
    let mut gone = vec![false; found.len()];
    for l in 0..found.len() {
        let Some(target) = found[l].target.clone() else { continue };
        if gone[l] {
            continue;
        }
        for c in 0..found.len() {
            if c == l || gone[c] {
                continue;
            }
            let holds = target.starts_with(&found[c].rel);
            let sibling = found[c].versioned && found[c].rel.parent() == target.parent();
            if holds || sibling {
                gone[c] = true;
                if holds && found[l].version.is_none() {
                    found[l].version = found[c].version.clone();
                }
            }
        }
    }
    for c in 0..found.len() {
        if gone[c] || !found[c].versioned {
            continue;
        }
        for o in 0..found.len() {
            if o != c
                && !gone[o]
                && found[o].versioned
                && found[o].rel.parent() == found[c].rel.parent()
                && newer(found[c].version.as_deref(), found[o].version.as_deref())
            {
                gone[o] = true;
            }
        }
    }
    let mut out = Vec::new();
    for (c, g) in found.into_iter().zip(gone) {
        if !g && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Whether version `a` is at least as new as `b`, comparing dot-separated numbers as numbers
/// (`2.1.112` after `2.1.97`) and anything else as text.
fn newer(a: Option<&str>, b: Option<&str>) -> bool {
    let key = |v: Option<&str>| -> Vec<(u64, String)> {
        v.unwrap_or_default()
            .split(['.', '-', '_'])
            .map(|p| (p.parse::<u64>().unwrap_or(0), p.to_owned()))
            .collect()
    };
    key(a) >= key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(rel: &str, version: Option<&str>, target: Option<&str>, versioned: bool) -> Candidate {
        Candidate {
            rel: rel.into(),
            version: version.map(str::to_owned),
            target: target.map(PathBuf::from),
            versioned,
        }
    }

    #[test]
    fn versions_from_segments() {
        assert_eq!(version_in("{version}", "2.1.29").as_deref(), Some("2.1.29"));
        assert_eq!(
            version_in("Claude_{version}_*__pzs8sxrjxfjjc", "Claude_1.5354.0.0_x64__pzs8sxrjxfjjc")
                .as_deref(),
            Some("1.5354.0.0")
        );
        assert_eq!(
            version_in("cursor-{version}-*.appimage", "cursor-1.7.28-x86_64.appimage").as_deref(),
            Some("1.7.28")
        );
        assert_eq!(version_in("jan-{version}.appimage", "jan-0.5.1.appimage").as_deref(), Some("0.5.1"));
        assert_eq!(version_in("Cursor-{version}-*", "Cursor--x"), None, "empty is no version");
        assert_eq!(version_in("Cursor*.AppImage", "Cursor.AppImage"), None, "no {{version}} segment");
        assert_eq!(match_name("Msty*.AppImage", "msty_x86_64_amd64.appimage"), Some(None));
        assert_eq!(match_name("Msty*.AppImage", "Obsidian-1.6.7.AppImage"), None);
        assert_eq!(
            match_name("Cursor-{version}-*.AppImage", "cursor-1.0.0-Beta-x86_64.APPIMAGE"),
            Some(Some("1.0.0".to_owned()))
        );
        assert_eq!(
            match_name("LM-Studio-{version}-*.AppImage", "LM-Studio-0.3.5-RC1-x64.AppImage"),
            Some(Some("0.3.5".into()))
        );
    }

    #[test]
    fn scopes_split_machine_and_home_paths() {
        assert_eq!(scoped("{programfiles}/LM Studio/x.exe", false).len(), 2);
        assert!(scoped("{programfiles}/LM Studio/x.exe", true).is_empty());
        assert_eq!(scoped("/usr/local/bin/claude", false), vec!["usr/local/bin/claude".to_owned()]);
        assert!(scoped("/usr/local/bin/claude", true).is_empty());
        assert_eq!(scoped(".local/bin/claude", true), vec![".local/bin/claude".to_owned()]);
        assert!(scoped(".local/bin/claude", false).is_empty());
    }

    #[test]
    fn a_link_absorbs_its_target_and_the_builds_beside_it() {
        let v = ".local/share/claude/versions";
        let merged = merge(vec![
            cand(".local/bin/claude", None, Some(&format!("{v}/2.1.29")), false),
            cand(&format!("{v}/2.1.29"), Some("2.1.29"), None, true),
            cand(&format!("{v}/2.1.39"), Some("2.1.39"), None, true),
        ]);
        assert_eq!(
            merged,
            vec![cand(".local/bin/claude", Some("2.1.29"), Some(&format!("{v}/2.1.29")), false)]
        );
    }

    #[test]
    fn without_a_link_the_newest_build_stands_for_the_install() {
        let merged = merge(vec![
            cand("v/2.1.97", Some("2.1.97"), None, true),
            cand("v/2.1.112", Some("2.1.112"), None, true),
            cand("v/2.1.92", Some("2.1.92"), None, true),
        ]);
        assert_eq!(merged, vec![cand("v/2.1.112", Some("2.1.112"), None, true)]);
    }

    #[test]
    fn a_bin_link_into_an_npm_package_is_one_install() {
        let pkg = "usr/local/lib/node_modules/@openai/codex";
        let merged = merge(vec![
            cand("usr/local/bin/codex", None, Some(&format!("{pkg}/bin/codex.js")), false),
            cand(pkg, Some("0.46.0"), None, false),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].rel, Path::new("usr/local/bin/codex"));
        assert_eq!(merged[0].version.as_deref(), Some("0.46.0"));
        // Unrelated installs of the same tool stay separate.
        let two = merge(vec![cand("a/claude", None, None, false), cand("b/claude", None, None, false)]);
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn version_order_is_numeric() {
        assert!(newer(Some("2.1.112"), Some("2.1.97")));
        assert!(!newer(Some("2.1.9"), Some("2.1.10")));
        assert!(newer(Some("1.0"), None));
    }
}
