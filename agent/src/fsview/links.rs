//! How a home's symlinks are followed: by the rules of the scanned system, not the scanner's.
//!
//! Dotfile managers make links out of a home normal (GNU stow: `~/.zshrc -> dotfiles/zsh/.zshrc`;
//! yadm; Nix home-manager: `~/.zshrc -> /nix/store/…-home-manager-files/.zshrc`). A link is
//! resolved here one component at a time against the *scan root*: an absolute target means the
//! scanned system's path (under `--root /mnt/image`, `/opt/x` is `/mnt/image/opt/x`, never the
//! scanner's `/opt/x`), `..` can never climb above the root, and a chain ends after
//! [`MAX_HOPS`] links, as on Linux. Where the chain lands is then checked by the home's
//! [`Policy`]: the agent runs as root, so without it a user could make the agent read and
//! report a file only root can read.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, Metadata};

/// Linux's `MAXSYMLINKS`: more links than this in one lookup is `ELOOP`.
pub const MAX_HOPS: usize = 40;

/// Why a link was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("symlink leads outside the scanned tree; not followed")]
    Outside,
    #[error("symlink leads to a file owned by another user; not followed")]
    OtherOwner,
    #[error("symlink leads to a file its user cannot read (the agent, as root, could); not followed")]
    Unreadable,
    #[error("more than {MAX_HOPS} symlinks in a row (a loop?); not followed")]
    TooManyHops,
    #[error("symlink target changed while it was being read; not followed")]
    Changed,
}

impl LinkError {
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, self)
    }
}

/// Which targets a home's links may reach once resolved inside the scan root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Unix layouts: a target owned by the home's user or by root, that the user could read
    /// (mode bits of the target and search bits of every directory above it; the user's
    /// supplementary groups are not known, so only the primary group counts — a file readable
    /// only through another group is refused, never the other way round).
    Owner { uid: u32, gid: u32 },
    /// Windows layouts, where ownership is an ACL rather than a uid: only targets inside the
    /// home itself (its path relative to the scan root).
    SameHome { home: PathBuf },
}

impl Policy {
    /// The policy for a home whose top directory has metadata `meta` and sits at `home`
    /// (relative to the scan root). `windows_layout` selects [`Policy::SameHome`]; so does a
    /// platform without uids.
    pub(crate) fn for_home(meta: &Metadata, home: &Path, windows_layout: bool) -> Policy {
        match ids(meta) {
            Some((uid, gid, _)) if !windows_layout => Policy::Owner { uid, gid },
            _ => Policy::SameHome { home: home.to_owned() },
        }
    }

    /// Whether the object at `resolved` (relative to the root, no links), whose metadata is
    /// `meta`, may be reached through a link. The user needs read permission on a file, read
    /// and search on a directory, and search on every directory above it.
    pub(crate) fn permit(&self, root: &Dir, resolved: &Path, meta: &Metadata) -> Result<(), LinkError> {
        match self {
            Policy::SameHome { home } if resolved.starts_with(home) => Ok(()),
            Policy::SameHome { .. } => Err(LinkError::Outside),
            Policy::Owner { uid, gid } => {
                let Some((owner, _, _)) = ids(meta) else { return Err(LinkError::Outside) };
                if owner != *uid && owner != 0 {
                    return Err(LinkError::OtherOwner);
                }
                let want = if meta.is_dir() { READ | SEARCH } else { READ };
                if !allows(meta, *uid, *gid, want) {
                    return Err(LinkError::Unreadable);
                }
                for dir in resolved.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
                    let m = root.metadata(dir).map_err(|_| LinkError::Unreadable)?;
                    if !allows(&m, *uid, *gid, SEARCH) {
                        return Err(LinkError::Unreadable);
                    }
                }
                Ok(())
            }
        }
    }
}

const READ: u32 = 0o4;
const SEARCH: u32 = 0o1;

/// Whether `uid`/`gid` has the `want` bits (`rwx` as 0o4/0o2/0o1) on the object.
fn allows(meta: &Metadata, uid: u32, gid: u32, want: u32) -> bool {
    let Some((owner, group, mode)) = ids(meta) else { return false };
    if uid == 0 {
        return true;
    }
    let bits = if owner == uid {
        mode >> 6
    } else if group == gid {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

/// Owner, group and mode, where the platform has them.
#[cfg(unix)]
fn ids(meta: &Metadata) -> Option<(u32, u32, u32)> {
    use cap_std::fs::MetadataExt;
    Some((meta.uid(), meta.gid(), meta.mode()))
}

#[cfg(not(unix))]
fn ids(_meta: &Metadata) -> Option<(u32, u32, u32)> {
    None
}

/// Whether two metadata describe the same file (the one checked and the one opened).
#[cfg(unix)]
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use cap_std::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.is_dir() == b.is_dir()
}

/// A path with every link resolved, relative to the scan root.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) path: PathBuf,
    /// Whether a link was followed (or `..` used) on the way: only then does the policy apply.
    pub(crate) followed: bool,
}

enum Step {
    Top,
    Up,
    Name(OsString),
}

fn steps(p: &Path) -> impl Iterator<Item = Step> + '_ {
    p.components().filter_map(|c| match c {
        Component::Prefix(_) | Component::RootDir => Some(Step::Top),
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Up),
        Component::Normal(n) => Some(Step::Name(n.to_owned())),
    })
}

/// Directories beneath a tree's top already seen to be real directories, not links, so the
/// walk's thousands of lookups cost one `lstat` each rather than one per component. A
/// directory swapped for a link after it was seen is then opened by cap-std beneath the
/// home, as before links were resolved at all: never out of the home.
#[derive(Debug, Default)]
pub(crate) struct KnownDirs(std::sync::Mutex<std::collections::HashSet<PathBuf>>);

/// Enough for a bounded walk's directories; past it, lookups just cost more.
const KNOWN_DIRS_MAX: usize = 100_000;

impl KnownDirs {
    fn contains(&self, p: &Path) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(p)
    }

    fn insert(&self, p: PathBuf) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() < KNOWN_DIRS_MAX {
            set.insert(p);
        }
    }
}

/// Resolves `rel` beneath `start` (a link-free path relative to the root) as the scanned
/// system would, without following anything out of `root`. `known` (paths relative to
/// `start`) skips the `lstat` of directories already seen.
pub(crate) fn resolve(
    root: &Dir,
    start: &Path,
    rel: &Path,
    known: Option<&KnownDirs>,
) -> io::Result<Resolved> {
    let mut cur: Vec<OsString> = start
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .map(|c| c.as_os_str().into())
        .collect();
    let mut pending: VecDeque<Step> = steps(rel).collect();
    let (mut hops, mut followed) = (0usize, false);
    // The path walked from `start` while it is still the caller's own (no link, no `..`).
    let mut direct = Some(PathBuf::new());
    while let Some(step) = pending.pop_front() {
        match step {
            Step::Top => {
                followed = true;
                direct = None;
                cur.clear();
            }
            Step::Up => {
                followed = true;
                direct = None;
                if cur.pop().is_none() {
                    return Err(LinkError::Outside.into_io());
                }
            }
            Step::Name(name) => {
                let own = direct.as_ref().map(|d| d.join(&name));
                cur.push(name);
                if let (Some(own), Some(known)) = (&own, known)
                    && known.contains(own)
                {
                    direct = Some(own.clone());
                    continue;
                }
                let here: PathBuf = cur.iter().collect();
                let meta = root.symlink_metadata(&here)?;
                if meta.is_dir()
                    && let (Some(own), Some(known)) = (&own, known)
                {
                    known.insert(own.clone());
                }
                direct = own;
                if meta.is_symlink() {
                    direct = None;
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(LinkError::TooManyHops.into_io());
                    }
                    let target = root.read_link_contents(&here)?;
                    cur.pop();
                    followed = true;
                    for s in steps(&target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(s);
                    }
                }
            }
        }
    }
    Ok(Resolved { path: cur.iter().collect(), followed })
}

/// The `LinkError` inside an I/O error, if that is what it is.
pub(crate) fn link_error(e: &io::Error) -> Option<LinkError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<LinkError>()).copied()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("home/alice/dotfiles")).unwrap();
        std::fs::write(t.path().join("home/alice/dotfiles/zshrc"), "x").unwrap();
        let dir = Dir::open_ambient_dir(t.path(), cap_std::ambient_authority()).unwrap();
        (t, dir)
    }

    fn resolved(root: &Dir, rel: &str) -> io::Result<(String, bool)> {
        let r = resolve(root, Path::new("home/alice"), Path::new(rel), None)?;
        Ok((r.path.to_string_lossy().into_owned(), r.followed))
    }

    #[test]
    fn targets_resolve_against_the_scan_root() {
        let (t, root) = root();
        let a = t.path().join("home/alice");
        symlink("dotfiles/zshrc", a.join(".zshrc")).unwrap();
        symlink("/home/alice/dotfiles", a.join(".dots")).unwrap();
        symlink("./dotfiles/../dotfiles/", a.join(".rel")).unwrap();
        assert_eq!(resolved(&root, "dotfiles/zshrc").unwrap(), ("home/alice/dotfiles/zshrc".into(), false));
        assert_eq!(resolved(&root, ".zshrc").unwrap(), ("home/alice/dotfiles/zshrc".into(), true));
        // A link in the middle of the path, absolute: the scan root's /home, not the host's.
        assert_eq!(resolved(&root, ".dots/zshrc").unwrap(), ("home/alice/dotfiles/zshrc".into(), true));
        assert_eq!(resolved(&root, ".rel/zshrc").unwrap(), ("home/alice/dotfiles/zshrc".into(), true));
        // A missing path is not found, as it would be without links.
        assert_eq!(resolved(&root, ".dots/nothing").unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn escapes_loops_and_long_chains_end() {
        let (t, root) = root();
        let a = t.path().join("home/alice");
        symlink("../../../outside", a.join("up")).unwrap();
        symlink("/../../etc", a.join("abs-up")).unwrap();
        symlink("b", a.join("a")).unwrap();
        symlink("a", a.join("b")).unwrap();
        symlink(".", a.join("self")).unwrap();
        for (name, want) in
            [("up", LinkError::Outside), ("abs-up", LinkError::Outside), ("a", LinkError::TooManyHops)]
        {
            let e = resolved(&root, name).unwrap_err();
            assert_eq!(link_error(&e), Some(want), "{name}: {e}");
        }
        // `self/self/…` is one hop per component, so 40 are fine and 41 are not.
        let ok = vec!["self"; MAX_HOPS].join("/") + "/dotfiles/zshrc";
        assert_eq!(resolved(&root, &ok).unwrap().0, "home/alice/dotfiles/zshrc");
        let too_many = vec!["self"; MAX_HOPS + 1].join("/");
        assert_eq!(link_error(&resolved(&root, &too_many).unwrap_err()), Some(LinkError::TooManyHops));
    }

    #[test]
    fn known_directories_are_real_ones_only() {
        let (t, root) = root();
        let a = t.path().join("home/alice");
        std::fs::create_dir_all(a.join("proj/src")).unwrap();
        std::fs::write(a.join("proj/src/main.rs"), "").unwrap();
        symlink("dotfiles", a.join("linked")).unwrap();
        let known = KnownDirs::default();
        let r = resolve(&root, Path::new("home/alice"), Path::new("proj/src/main.rs"), Some(&known)).unwrap();
        assert_eq!((r.path, r.followed), (PathBuf::from("home/alice/proj/src/main.rs"), false));
        let r = resolve(&root, Path::new("home/alice"), Path::new("linked/zshrc"), Some(&known)).unwrap();
        assert_eq!((r.path, r.followed), (PathBuf::from("home/alice/dotfiles/zshrc"), true));
        // Directories reached through a link are not the caller's own paths: not remembered.
        let mut seen: Vec<_> = known.0.lock().unwrap().iter().cloned().collect();
        seen.sort();
        assert_eq!(seen, [PathBuf::from("proj"), PathBuf::from("proj/src")]);
        // A remembered directory is not looked at again (a swap after that is cap-std's to
        // refuse); one that was never seen is.
        std::fs::rename(a.join("proj"), a.join("proj-moved")).unwrap();
        symlink("proj-moved", a.join("proj")).unwrap();
        let r = resolve(&root, Path::new("home/alice"), Path::new("proj/src"), Some(&known)).unwrap();
        assert!(!r.followed);
        let r = resolve(&root, Path::new("home/alice"), Path::new("proj/src"), None).unwrap();
        assert_eq!((r.path, r.followed), (PathBuf::from("home/alice/proj-moved/src"), true));
    }

    #[test]
    fn same_home_policy_and_permission_bits() {
        let (t, root) = root();
        let meta = root.metadata("home/alice/dotfiles/zshrc").unwrap();
        let policy = Policy::SameHome { home: "home/alice".into() };
        assert_eq!(policy.permit(&root, Path::new("home/alice/dotfiles/zshrc"), &meta), Ok(()));
        assert_eq!(policy.permit(&root, Path::new("home/alice2/x"), &meta), Err(LinkError::Outside));
        assert_eq!(policy.permit(&root, Path::new("opt/x"), &meta), Err(LinkError::Outside));

        // Mode bits by owner, group, others (the file's owner and group are whoever ran this).
        use std::os::unix::fs::PermissionsExt;
        let f = t.path().join("home/alice/dotfiles/zshrc");
        let (owner, group, _) = ids(&meta).unwrap();
        let (stranger, other_group) = (owner.wrapping_add(1).max(1), group.wrapping_add(1));
        for (mode, uid, gid, want) in [
            (0o600, owner, other_group, true),
            (0o060, owner, group, false), // the owner class decides for the owner
            (0o040, stranger, group, true),
            (0o004, stranger, other_group, true),
            (0o640, stranger, other_group, false),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let m = root.metadata("home/alice/dotfiles/zshrc").unwrap();
            assert_eq!(allows(&m, uid, gid, READ), want || uid == 0, "{mode:o} for {uid}:{gid}");
        }
    }
}
