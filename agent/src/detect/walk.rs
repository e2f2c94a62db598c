//! The bounded walk of a home that finds dotenv files and project-level MCP configs.
//!
//! Bounded three ways (depth, entries visited, wall time) and never descends into a
//! symlinked directory, so link loops and enormous trees cannot stall a scan. Hitting a
//! bound is reported in the scan's errors, once per bound and home: an incomplete walk is
//! never silent, and a huge home does not flood the report either.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::{Bound, Ctx, Home, rel_path};
use crate::fsview::Kind;

/// What the walk found, as home-relative paths.
#[derive(Debug, Default, Clone)]
pub struct Walked {
    pub(crate) dotenv: Vec<PathBuf>,
    /// (client id, path)
    pub(crate) mcp_configs: Vec<(String, PathBuf)>,
    /// Project text files for the source-file sweep.
    pub(crate) sources: Vec<PathBuf>,
    /// `<repo>/.git/config` of each repository passed: the one file read inside `.git`.
    pub(crate) git_configs: Vec<PathBuf>,
    /// (tool id, path) of AI activity records kept in project directories (catalog
    /// `[[activity]] project_files`), at most `MAX_FILES_PER_TOOL` per tool.
    pub(crate) activity: Vec<(String, PathBuf)>,
}

#[allow(clippy::disallowed_types, reason = "wall-clock bound of a synchronous scan; no tokio time here")]
pub(crate) fn walk_home(ctx: &mut Ctx<'_>, home: &Home) -> Walked {
    let started = std::time::Instant::now();
    let catalog = ctx.catalog;
    let skip_names: Vec<&str> =
        catalog.env_files.skip_dirs.iter().filter(|s| !s.contains('/')).map(String::as_str).collect();
    let skip_paths: Vec<PathBuf> =
        catalog.env_files.skip_dirs.iter().filter(|s| s.contains('/')).map(|s| rel_path(s)).collect();
    let project_files: Vec<(String, PathBuf)> = catalog
        .mcp_clients
        .iter()
        .flat_map(|c| c.project_files.iter().map(move |p| (c.id.clone(), rel_path(p))))
        .collect();
    let activity_files: Vec<(&str, &str)> = catalog
        .activity
        .iter()
        .flat_map(|a| a.project_files.iter().map(move |f| (a.tool.as_str(), f.as_str())))
        .collect();

    let mut out = Walked::default();
    let mut queue = VecDeque::from([(PathBuf::new(), 0usize)]);
    let mut visited = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        if started.elapsed() > ctx.limits.walk_time || visited > ctx.limits.walk_entries {
            ctx.bound(
                &home.tree,
                &dir,
                Bound::WalkSize,
                "home walk stopped at its time or size bound; deeper files were not scanned",
            );
            break;
        }
        let entries = match home.tree.list(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                ctx.error(&home.tree, &dir, format!("cannot list directory: {e}"));
                continue;
            }
        };
        visited += entries.len();
        for e in &entries {
            // Names that are not UTF-8 are still walked; they just never equal a catalog name.
            let name = e.name.to_str();
            let path = dir.join(&e.name);
            // Only regular files: a linked record is a duplicate or an escape.
            if e.kind == Kind::File
                && let Some((tool, _)) = activity_files.iter().find(|(_, f)| name == Some(*f))
            {
                let per_tool = out.activity.iter().filter(|(t, _)| t == tool).count();
                if per_tool < super::activity::MAX_FILES_PER_TOOL {
                    out.activity.push(((*tool).to_owned(), path.clone()));
                } else {
                    // Said of the home, not the project directory: its path is the project's.
                    ctx.bound(
                        &home.tree,
                        Path::new(""),
                        Bound::ActivityFiles,
                        format!("more than {per_tool} {tool} activity records; the rest were not read"),
                    );
                }
            }
            match e.kind {
                Kind::File | Kind::Symlink | Kind::Other
                    if name.is_some_and(|n| catalog.env_files.dotenv_names.iter().any(|d| d == n)) =>
                {
                    out.dotenv.push(path);
                }
                // Only regular files: a symlinked source file is a duplicate or an escape.
                Kind::File if depth > 0 && name.is_some_and(|n| is_source(catalog, n)) => {
                    if out.sources.len() < ctx.limits.source_files {
                        out.sources.push(path);
                    } else {
                        ctx.bound(
                            &home.tree,
                            &dir,
                            Bound::SourceFiles,
                            "source-file limit reached; further project files were not searched for keys",
                        );
                    }
                }
                // `.git` itself is never walked (skip_dirs); only its config is noted.
                Kind::Dir if name == Some(".git") => out.git_configs.push(path.join("config")),
                Kind::Dir
                    if depth < ctx.limits.walk_depth
                        && !name.is_some_and(|n| skip_names.contains(&n))
                        && !skip_paths.contains(&path) =>
                {
                    queue.push_back((path, depth + 1));
                }
                Kind::Dir
                    if depth >= ctx.limits.walk_depth
                        && !name.is_some_and(|n| skip_names.contains(&n))
                        && !skip_paths.contains(&path) =>
                {
                    let max = ctx.limits.walk_depth;
                    ctx.bound(
                        &home.tree,
                        &path,
                        Bound::WalkDepth,
                        format!("home walk stops {max} directories down; this and deeper directories were not scanned"),
                    );
                }
                _ => {}
            }
        }
        for (client, file) in &project_files {
            let Some(first) = file.components().next() else { continue };
            if entries.iter().any(|e| e.name == first.as_os_str()) {
                let candidate = dir.join(file);
                if home.tree.exists(&candidate) {
                    out.mcp_configs.push((client.clone(), candidate));
                }
            }
        }
    }
    out
}

fn is_source(catalog: &crate::catalog::Catalog, name: &str) -> bool {
    let Some((_, ext)) = name.rsplit_once('.') else { return false };
    catalog.env_files.source_extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
        && !catalog.env_files.source_skip_names.iter().any(|s| s == name)
}
