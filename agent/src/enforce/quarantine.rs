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

use cap_std::fs::Dir;
use sightline_proto::directive::DirectiveId;
use sightline_proto::pb::{self, observation::Item};

use super::Step;
use crate::fsview::Tree;

/// Largest file copied when a rename cannot cross filesystems.
const MAX_COPY: u64 = 16 << 20;

pub struct Quarantine<'a> {
    pub dir: &'a Path,
    /// Validated: the quarantine's subdirectory is named after it.
    pub directive_id: &'a DirectiveId,
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
        let (parent, name, user) = resolve(root, display_path)?;
        let name = name.as_os_str();
        let meta = parent.symlink_metadata(name).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file (a link?); left in place".to_owned());
        }

        let qpath = self.dir.join(self.directive_id.as_str());
        std::fs::create_dir_all(&qpath).map_err(|e| format!("creating the quarantine: {e}"))?;
        crate::acl::restrict_dir(&qpath).map_err(|e| format!("restricting the quarantine: {e}"))?;
        let qdir = Dir::open_ambient_dir(&qpath, cap_std::ambient_authority()).map_err(|e| e.to_string())?;
        let stored = format!("{n}-{}", name.to_string_lossy());
        let record = serde_json::json!({
            "original_path": display_path,
            "uid": owner(&meta).0, "gid": owner(&meta).1, "mode": owner(&meta).2, "size": meta.len(),
            "fingerprint": fingerprint, "provider": provider,
            "directive_id": self.directive_id.as_str(), "quarantined_at_ms": self.now_ms,
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
        crate::acl::set_mode(&qdir, &stored, 0o600).map_err(|e| e.to_string())?;
        crate::acl::inherit(&qpath.join(&stored)).map_err(|e| e.to_string())?;
        crate::state::sync_dir(&qpath).map_err(|e| e.to_string())?;
        Ok((user, qpath.join(stored)))
    }
}

/// The directory holding `display_path`, resolved beneath its owner's home (or the root)
/// exactly as the scan read it, the file's name, and the home's user.
fn resolve(root: &Path, display_path: &str) -> Result<(Dir, std::ffi::OsString, Option<String>), String> {
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
    let name = rel.file_name().ok_or("no file name")?.to_owned();
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => tree.cap_dir().open_dir(p),
        _ => tree.cap_dir().try_clone(),
    }
    .map_err(|e| format!("opening its directory: {e}"))?;
    Ok((parent, name, user))
}

/// A file held in the quarantine, with the record of where it came from.
#[derive(Debug, Clone)]
pub struct Held {
    pub directive_id: String,
    pub stored: PathBuf,
    pub record: serde_json::Value,
}

/// Everything in the quarantine (`STATE_DIR/quarantine`).
pub fn list(quarantine: &Path) -> anyhow::Result<Vec<Held>> {
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(quarantine) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for d in dirs.flatten().filter(|d| d.path().is_dir()) {
        // Only what a directive put there: a directory named for a valid id.
        let Some(id) = d.file_name().to_str().and_then(|n| DirectiveId::parse(n).ok()) else { continue };
        for f in std::fs::read_dir(d.path())?.flatten() {
            let p = f.path();
            let Some(stored) = p.to_str().and_then(|s| s.strip_suffix(".origin.json")) else { continue };
            let bytes = std::fs::read(&p)?;
            out.push(Held {
                directive_id: id.to_string(),
                stored: PathBuf::from(stored),
                record: serde_json::from_slice(&bytes).unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| (&a.directive_id, &a.stored).cmp(&(&b.directive_id, &b.stored)));
    Ok(out)
}

/// Puts back every file one directive quarantined: to its original path (resolved beneath
/// its owner's home as before), with its owner and mode. Refuses to overwrite anything.
/// Returns the paths restored. The collector will see the credential again: withdraw the
/// revocation first (`sightline-server revoke KEY --withdraw`), or an agent in enforce mode
/// quarantines it again.
pub fn restore(quarantine: &Path, root: &Path, directive_id: &str) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let id = DirectiveId::parse(directive_id)?;
    let held: Vec<Held> = list(quarantine)?.into_iter().filter(|h| h.directive_id == id.as_str()).collect();
    anyhow::ensure!(!held.is_empty(), "nothing in the quarantine for directive {id}");
    let qpath = quarantine.join(id.as_str());
    let qdir = Dir::open_ambient_dir(&qpath, cap_std::ambient_authority())?;
    let mut restored = Vec::new();
    for h in held {
        let original = h.record["original_path"].as_str().context("record has no original_path")?.to_owned();
        let (parent, name, _) = resolve(root, &original).map_err(|e| anyhow::anyhow!("{original}: {e}"))?;
        match parent.symlink_metadata(&name) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => anyhow::bail!("{original}: something is already there; left the quarantined copy in place"),
        }
        let stored_name = h.stored.file_name().context("stored file has no name")?;
        match qdir.rename(stored_name, &parent, &name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(18) => {
                let mut buf = Vec::new();
                qdir.open(stored_name)?.into_std().take(MAX_COPY + 1).read_to_end(&mut buf)?;
                write_new(&parent, &name.to_string_lossy(), &buf)?;
                qdir.remove_file(stored_name)?;
            }
            Err(e) => return Err(e).with_context(|| format!("moving back to {original}")),
        }
        let f = parent.open(&name)?.into_std();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                h.record["mode"].as_str().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0o600);
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            if let (Some(uid), Some(gid)) = (h.record["uid"].as_u64(), h.record["gid"].as_u64()) {
                std::os::unix::fs::fchown(&f, Some(uid as u32), Some(gid as u32))
                    .with_context(|| format!("giving {original} back to uid {uid}"))?;
            }
        }
        f.sync_all()?;
        qdir.remove_file(format!("{}.origin.json", stored_name.to_string_lossy()))?;
        restored.push(original);
    }
    if std::fs::read_dir(&qpath)?.next().is_none() {
        std::fs::remove_dir(&qpath)?;
    }
    Ok(restored)
}

fn write_new(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = dir.create(name)?;
    crate::acl::set_mode(dir, name, 0o600)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Owner and mode to restore the file with: (uid, gid, octal mode) on Unix; on Windows the
/// file gets the ACL of where it is put back.
fn owner(meta: &cap_std::fs::Metadata) -> (Option<u32>, Option<u32>, Option<String>) {
    #[cfg(unix)]
    {
        use cap_std::fs::MetadataExt;
        (Some(meta.uid()), Some(meta.gid()), Some(format!("{:o}", meta.mode() & 0o7777)))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (None, None, None)
    }
}

fn source_name(s: pb::TokenSource) -> &'static str {
    match s {
        pb::TokenSource::ShellRc => "shell startup file",
        pb::TokenSource::McpConfig => "MCP client config",
        pb::TokenSource::IdeConfig => "IDE config",
        pb::TokenSource::SourceFile => "source file",
        pb::TokenSource::ShellHistory => "shell history",
        pb::TokenSource::Netrc => "netrc file",
        pb::TokenSource::CredentialFile => "credential file",
        pb::TokenSource::Dotenv => "dotenv file",
        pb::TokenSource::GitConfig => "repository .git/config",
        pb::TokenSource::Unspecified => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(path: &str, fp: &str) -> Item {
        Item::Token(pb::TokenItem {
            provider: "openai".into(),
            kind: pb::TokenKind::ApiKey as i32,
            user: Some("alice".into()),
            path: path.into(),
            source: pb::TokenSource::CredentialFile as i32,
            fingerprint: fp.into(),
            locator: None,
            mcp_server: None,
            authorized_by: None,
        })
    }

    #[test]
    #[cfg_attr(
        windows,
        ignore = "needs Windows' DACL inheritance: Wine 8 leaves a moved file with an empty DACL (run with --include-ignored on Windows)"
    )]
    fn quarantined_files_come_back_as_they_were_and_nothing_is_overwritten() {
        #[cfg(unix)]
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let codex = root.path().join("home/alice/.codex");
        std::fs::create_dir_all(&codex).unwrap();
        std::fs::write(codex.join("auth.json"), "{\"OPENAI_API_KEY\": \"sk-test\"}").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(codex.join("auth.json"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let item = token("/home/alice/.codex/auth.json", "f00d");
        let qdir = state.path().join("quarantine");
        let id = DirectiveId::from_random([1; 16]);
        let q = Quarantine { dir: &qdir, directive_id: &id, now_ms: 1 };

        let (steps, homes) = q.run(root.path(), &[&item], "f00d", true);
        assert!(matches!(steps.as_slice(), [Step::Done(_)]), "{steps:?}");
        assert_eq!(homes, vec!["alice".to_owned()]);
        assert!(!codex.join("auth.json").exists());
        let held = list(&qdir).unwrap();
        assert_eq!(held.len(), 1);
        #[cfg(unix)]
        assert_eq!(held[0].record["mode"].as_str(), Some("640"));

        // Something new at the original path: nothing is overwritten.
        std::fs::write(codex.join("auth.json"), "new").unwrap();
        assert!(restore(&qdir, root.path(), id.as_str()).unwrap_err().to_string().contains("already there"));
        assert_eq!(list(&qdir).unwrap().len(), 1);
        std::fs::remove_file(codex.join("auth.json")).unwrap();

        assert_eq!(
            restore(&qdir, root.path(), id.as_str()).unwrap(),
            vec!["/home/alice/.codex/auth.json".to_owned()]
        );
        assert!(std::fs::read_to_string(codex.join("auth.json")).unwrap().contains("sk-test"));
        #[cfg(unix)]
        {
            let mode = std::fs::metadata(codex.join("auth.json")).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "the original mode");
        }
        assert!(list(&qdir).unwrap().is_empty() && !qdir.join(id.as_str()).exists());
        assert!(restore(&qdir, root.path(), id.as_str()).is_err(), "nothing left to restore");
    }

    #[test]
    fn restore_takes_only_an_issued_directive_id() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let qdir = state.path().join("quarantine");
        let outside = tempfile::tempdir().unwrap();
        for bad in [outside.path().to_str().unwrap(), "../..", "dir_1"] {
            let e = restore(&qdir, root.path(), bad).unwrap_err().to_string();
            assert!(e.contains("not one the collector issues"), "{bad}: {e}");
        }
        // A directory planted in the quarantine under another name is not listed.
        std::fs::create_dir_all(qdir.join("planted")).unwrap();
        std::fs::write(qdir.join("planted/x.origin.json"), "{}").unwrap();
        assert!(list(&qdir).unwrap().is_empty());
    }
}
