//! `quarantine_credential`: move every credential file holding a token into the agent's
//! root-only quarantine (`STATE_DIR/quarantine/<directive id>/`), each beside a record of
//! where it came from (`<name>.origin.json`: original path, owner, mode, size, fingerprint,
//! provider, directive, time), so an admin can put it back.
//!
//! Only files that *are* credentials are moved: a catalogued credential file
//! (`~/.codex/auth.json`) or a dotenv file. A shell startup file, an MCP or IDE config or a
//! source file holds more than the credential; moving it would break the user's tools, so
//! the outcome says where the credential is instead (`unsupported`).
//!
//! The file is resolved beneath its owner's home exactly as the scan read it (a link out of
//! the home is refused), must be a regular file (not a link), and is moved with one rename
//! when the quarantine is on the same filesystem; otherwise copied (bounded, fsync'd) and
//! then removed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, MetadataExt, PermissionsExt};
use sightline_proto::pb::{self, observation::Item};

use super::Step;
use crate::fsview::Tree;

/// Largest file copied when a rename cannot cross filesystems.
const MAX_COPY: u64 = 16 << 20;

pub struct Quarantine<'a> {
    pub dir: &'a Path,
    pub directive_id: &'a str,
    pub now_ms: i64,
}

struct Holder<'a> {
    provider: &'a str,
    source: pb::TokenSource,
    locators: Vec<String>,
}

impl Quarantine<'_> {
    /// Returns the steps and the users whose homes changed.
    pub fn run(
        &self,
        root: &Path,
        items: &[&Item],
        fingerprint: &str,
        enforce: bool,
    ) -> (Vec<Step>, Vec<String>) {
        let mut files: BTreeMap<&str, Holder<'_>> = BTreeMap::new();
        for i in items {
            if let Item::Token(t) = i
                && t.fingerprint == fingerprint
            {
                let h = files.entry(t.path.as_str()).or_insert_with(|| Holder {
                    provider: &t.provider,
                    source: pb::TokenSource::try_from(t.source).unwrap_or(pb::TokenSource::Unspecified),
                    locators: Vec::new(),
                });
                h.locators.extend(t.locator.clone());
            }
        }
        let mut steps = Vec::new();
        let mut homes = Vec::new();
        for (n, (path, h)) in files.iter().enumerate() {
            if !matches!(h.source, pb::TokenSource::CredentialFile | pb::TokenSource::Dotenv) {
                let at = if h.locators.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", h.locators.join(", "))
                };
                steps.push(Step::Unsupported(format!(
                    "{path}{at}: a {} holds more than the credential and is not moved; remove the {} key from it by hand",
                    source_name(h.source),
                    h.provider
                )));
                continue;
            }
            if !enforce {
                steps.push(Step::Would(format!("would move {path} into the quarantine")));
                continue;
            }
            match self.move_file(root, path, n, fingerprint, h.provider) {
                Ok((user, stored)) => {
                    steps.push(Step::Done(format!("moved {path} to {}", stored.display())));
                    homes.extend(user);
                }
                Err(e) => steps.push(Step::Failed(format!("{path}: {e}"))),
            }
        }
        (steps, homes)
    }

    /// Moves one file; returns the home's user (if it was in one) and where it went.
    fn move_file(
        &self,
        root: &Path,
        display_path: &str,
        n: usize,
        fingerprint: &str,
        provider: &str,
    ) -> Result<(Option<String>, PathBuf), String> {
        let root_tree = Tree::open_root(root).map_err(|e| format!("opening {}: {e}", root.display()))?;
        let os = crate::detect::detect_os(&root_tree);
        let homes = crate::detect::homes(&root_tree, os, &mut Vec::new());
        let path = Path::new(display_path);
        let home = homes
            .iter()
            .filter(|h| path.starts_with(h.tree.display_base()))
            .max_by_key(|h| h.tree.display_base().components().count());
        let (tree, user) = match home {
            Some(h) => (&h.tree, Some(h.user.clone())),
            None => (&root_tree, None),
        };
        let rel =
            path.strip_prefix(tree.display_base()).map_err(|_| "not beneath the scanned tree".to_owned())?;
        let name = rel.file_name().ok_or("no file name")?;
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => tree.cap_dir().open_dir(p),
            _ => tree.cap_dir().try_clone(),
        }
        .map_err(|e| format!("opening its directory: {e}"))?;
        let meta = parent.symlink_metadata(name).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file (a link?); left in place".to_owned());
        }

        let qpath = self.dir.join(self.directive_id);
        std::fs::create_dir_all(&qpath).map_err(|e| format!("creating the quarantine: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&qpath, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| e.to_string())?;
        }
        let qdir = Dir::open_ambient_dir(&qpath, cap_std::ambient_authority()).map_err(|e| e.to_string())?;
        let stored = format!("{n}-{}", name.to_string_lossy());
        let record = serde_json::json!({
            "original_path": display_path,
            "uid": meta.uid(), "gid": meta.gid(), "mode": format!("{:o}", meta.mode() & 0o7777), "size": meta.len(),
            "fingerprint": fingerprint, "provider": provider,
            "directive_id": self.directive_id, "quarantined_at_ms": self.now_ms,
        });
        // The record first: a file in the quarantine never lacks its origin.
        write_new(
            &qdir,
            &format!("{stored}.origin.json"),
            &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )
        .map_err(|e| format!("writing the record: {e}"))?;
        match parent.rename(name, &qdir, &stored) {
            Ok(()) => {}
            // EXDEV: the quarantine is on another filesystem.
            Err(e) if e.raw_os_error() == Some(18) => {
                let mut buf = Vec::new();
                parent
                    .open(name)
                    .and_then(|f| f.into_std().take(MAX_COPY + 1).read_to_end(&mut buf))
                    .map_err(|e| format!("reading it: {e}"))?;
                if buf.len() as u64 > MAX_COPY {
                    return Err(format!("over {MAX_COPY} bytes; left in place"));
                }
                write_new(&qdir, &stored, &buf).map_err(|e| format!("copying it: {e}"))?;
                parent.remove_file(name).map_err(|e| format!("removing it after the copy: {e}"))?;
            }
            Err(e) => return Err(format!("moving it: {e}")),
        }
        // Root-only twice over: the directory, and the file (its mode is in the record).
        qdir.set_permissions(&stored, cap_std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        crate::state::sync_dir(&qpath).map_err(|e| e.to_string())?;
        Ok((user, qpath.join(stored)))
    }
}

fn write_new(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = dir.create(name)?;
    dir.set_permissions(name, cap_std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn source_name(s: pb::TokenSource) -> &'static str {
    match s {
        pb::TokenSource::ShellRc => "shell startup file",
        pb::TokenSource::McpConfig => "MCP client config",
        pb::TokenSource::IdeConfig => "IDE config",
        pb::TokenSource::SourceFile => "source file",
        pb::TokenSource::CredentialFile => "credential file",
        pb::TokenSource::Dotenv => "dotenv file",
        pb::TokenSource::Unspecified => "file",
    }
}
