//! A read-only, sandboxed view of the filesystem being scanned.
//!
//! The agent runs as root in a tree that users control. A [`Tree`] is a directory handle
//! (cap-std) through which every path is resolved *beneath* that directory: a symlink that
//! points outside (absolute, or `..` past the top) fails with an error instead of being
//! followed, and link loops end in `ELOOP`. Each user's home is opened as its own tree, so
//! `~alice/.env -> /root/.env` is refused rather than attributed to alice.
//!
//! A home's own symlinks are the exception, because dotfile managers make links out of a
//! home normal: [`links`] resolves them as the scanned system would (an absolute target is
//! the scan root's path) and follows those that stay inside the scan root and land on a file
//! the home's user owns (or root owns) and could read. That check applies to every object
//! read outside the home, including each file inside a directory a link led to. Whatever
//! is found through a link is reported at the link's path, the one the user knows.
//!
//! Reads are bounded: only regular files are read, opened non-blocking (a FIFO cannot
//! hang the scan), and a file over its limit is an error, never a partial parse.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, Metadata, OpenOptions};

pub mod links;

use links::{LinkError, Policy};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a regular file")]
    NotRegular,
    #[error("{}", describe_io(.0))]
    Io(#[from] io::Error),
}

impl ReadError {
    /// Absent files are the normal case for catalog paths and are not reported.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20))
    }
}

fn describe_io(e: &io::Error) -> String {
    if let Some(link) = links::link_error(e) {
        return link.to_string();
    }
    if e.kind() == io::ErrorKind::PermissionDenied && e.to_string().contains("outside") {
        return "symlink leads outside the scanned tree; not followed".into();
    }
    e.to_string()
}

/// What a directory entry is, without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
}

/// A directory through which all access stays beneath it.
pub struct Tree {
    dir: Dir,
    /// How this tree's top is spelled on the scanned system (`/`, `/home/alice`).
    display_base: PathBuf,
    /// Where detectors looked, when someone (the watcher) wants to know.
    touched: Option<Arc<Touched>>,
    /// The scan root, through which a home's links are resolved (see [`links`]).
    root: Arc<Dir>,
    /// This tree's top relative to the scan root, with links resolved.
    in_root: PathBuf,
    /// Set for a home and its subtrees: which link targets may be followed. Without one (the
    /// root tree), links are followed only beneath the tree, by cap-std.
    policy: Option<Arc<Policy>>,
    /// The home's own top relative to the scan root (set with `policy`): whatever resolves
    /// outside it was reached through a link and is checked by the policy, even in a subtree
    /// opened through that link.
    home: Option<Arc<PathBuf>>,
    /// Directories of this tree seen not to be links (see [`links::KnownDirs`]).
    known_dirs: links::KnownDirs,
}

/// Where a path leads: beneath this tree's own handle, or (through a home's link) to a
/// link-free path beneath the scan root.
enum Place {
    Here,
    Root(PathBuf),
}

/// How a detector looked at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Look {
    /// Read or probed one path (which may not exist yet).
    Path,
    /// Listed a directory: any change of its entries matters.
    Listing,
}

/// Every path the detectors looked at through a tree and its subtrees, as displayed paths.
/// This is how the daemon learns what to watch without a second copy of the catalog
/// logic: whatever a detector reads is, by definition, a location worth watching.
#[derive(Debug, Default)]
pub struct Touched {
    paused: std::sync::atomic::AtomicBool,
    looks: std::sync::Mutex<std::collections::BTreeSet<(PathBuf, Look)>>,
}

impl Touched {
    /// Runs `f` without recording (the bounded walk and source sweep look at thousands of
    /// project files that are rescanned on resync, not watched).
    pub fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering;
        let was = self.paused.swap(true, Ordering::Relaxed);
        let out = f();
        self.paused.store(was, Ordering::Relaxed);
        out
    }

    fn record(&self, path: PathBuf, look: Look) {
        if !self.paused.load(std::sync::atomic::Ordering::Relaxed) {
            self.looks.lock().unwrap_or_else(|p| p.into_inner()).insert((path, look));
        }
    }

    pub fn take(&self) -> Vec<(PathBuf, Look)> {
        std::mem::take(&mut *self.looks.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect()
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("display_base", &self.display_base).finish()
    }
}

impl Tree {
    /// Opens the top of the scanned filesystem; it is displayed as `/`.
    pub fn open_root(path: &Path) -> io::Result<Tree> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        let root = Arc::new(dir.try_clone()?);
        Ok(Tree {
            dir,
            display_base: PathBuf::from("/"),
            touched: None,
            root,
            in_root: PathBuf::new(),
            policy: None,
            home: None,
            known_dirs: Default::default(),
        })
    }

    /// As [`open_root`](Tree::open_root), recording every look into `touched`.
    pub fn open_root_recording(path: &Path, touched: Arc<Touched>) -> io::Result<Tree> {
        let mut t = Tree::open_root(path)?;
        t.touched = Some(touched);
        Ok(t)
    }

    pub fn touched(&self) -> Option<&Arc<Touched>> {
        self.touched.as_ref()
    }

    fn look(&self, rel: &Path, look: Look) {
        if let Some(t) = &self.touched {
            t.record(self.display_base.join(rel), look);
        }
    }

    /// Opens a directory beneath this one as a tree of its own (a home's subtree keeps its
    /// home's link policy).
    pub fn subtree(&self, rel: &Path) -> io::Result<Tree> {
        self.look(rel, Look::Path);
        let (dir, in_root) = match self.place(rel)? {
            Place::Here => (self.dir.open_dir(rel)?, self.in_root.join(rel)),
            Place::Root(p) => {
                let dir = self.root.open_dir(dot(&p))?;
                self.check(&p, &dir.dir_metadata()?, None)?;
                (dir, p)
            }
        };
        Ok(Tree {
            dir,
            display_base: self.display_base.join(rel),
            touched: self.touched.clone(),
            root: self.root.clone(),
            in_root,
            policy: self.policy.clone(),
            home: self.home.clone(),
            known_dirs: Default::default(),
        })
    }

    /// Opens a user's home beneath this (root) tree. The home itself is reached as any
    /// subtree is; its links are then followed by the home's [`Policy`]: by owner on Unix
    /// layouts, within the home on Windows layouts (`windows_layout`), whose owners are ACLs.
    pub fn home(&self, rel: &Path, windows_layout: bool) -> io::Result<Tree> {
        let mut tree = self.subtree(rel)?;
        if tree.policy.is_none() {
            tree.in_root = links::resolve(&self.root, &self.in_root, rel, None)?.path;
            let policy = Policy::for_home(&tree.dir.dir_metadata()?, &tree.in_root, windows_layout);
            tree.policy = Some(Arc::new(policy));
            tree.home = Some(Arc::new(tree.in_root.clone()));
        }
        Ok(tree)
    }

    /// Resolves `rel` for a home tree; a root tree leaves it to cap-std. A path that went
    /// through a link, or that lies outside the home (in a subtree a link led to: `~/etc ->
    /// /etc`), is a [`Place::Root`], which every access checks by the policy.
    fn place(&self, rel: &Path) -> io::Result<Place> {
        if self.policy.is_none() {
            return Ok(Place::Here);
        }
        let resolved = links::resolve(&self.root, &self.in_root, rel, Some(&self.known_dirs))?;
        let in_home = self.home.as_ref().is_some_and(|h| resolved.path.starts_with(h.as_path()));
        Ok(if resolved.followed || !in_home { Place::Root(resolved.path) } else { Place::Here })
    }

    /// Applies the home's policy to what a link led to. `expected`, when the object was
    /// opened, is the metadata seen at resolution, so a swap in between is refused.
    fn check(&self, resolved: &Path, meta: &Metadata, expected: Option<&Metadata>) -> io::Result<()> {
        if expected.is_some_and(|e| !links::same_file(e, meta)) {
            return Err(LinkError::Changed.into_io());
        }
        match &self.policy {
            Some(p) => p.permit(&self.root, resolved, meta).map_err(LinkError::into_io),
            None => Ok(()),
        }
    }

    /// Metadata of what `rel` leads to, the policy applied.
    fn metadata(&self, rel: &Path) -> io::Result<Metadata> {
        match self.place(rel)? {
            Place::Here => self.dir.metadata(rel),
            Place::Root(p) => {
                let meta = self.root.metadata(dot(&p))?;
                self.check(&p, &meta, None)?;
                Ok(meta)
            }
        }
    }

    /// The path as it is on the scanned system, from the scanned root, with `/` between
    /// components on every platform: the agent's reports are the same whichever OS scans
    /// the tree. (On Windows a backslash is only ever a separator, so nothing is lost.)
    pub fn display(&self, rel: &Path) -> String {
        let p =
            if rel.as_os_str().is_empty() { self.display_base.clone() } else { self.display_base.join(rel) };
        let s = p.to_string_lossy().into_owned();
        if cfg!(windows) { s.replace('\\', "/") } else { s }
    }

    /// Where `rel` really is, displayed from the scan root, when a home's link leads
    /// elsewhere (`None` when it leads nowhere else or cannot be resolved). Findings keep the
    /// link's path; this only lets one file reached two ways be read once.
    pub fn real_display(&self, rel: &Path) -> Option<String> {
        match self.place(rel).ok()? {
            Place::Here => None,
            Place::Root(p) => {
                let parts: Vec<_> = p.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                Some(format!("/{}", parts.join("/")))
            }
        }
    }

    pub fn display_base(&self) -> &Path {
        &self.display_base
    }

    /// The directory handle itself, for enforcement's few writes (see `enforce`): it
    /// resolves beneath this tree exactly as reads do. Detectors never use it.
    pub fn cap_dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens what `rel` leads to for reading, by the home's link rules: beneath the tree,
    /// or through a link to what the policy permits. Never blocks on a FIFO.
    fn open_read(&self, rel: &Path) -> io::Result<cap_std::fs::File> {
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            // A FIFO or device swapped in after any check must not block the scan.
            opts.custom_flags(nonblock_flag());
        }
        Ok(match self.place(rel)? {
            Place::Here => self.dir.open_with(rel, &opts)?,
            Place::Root(p) => {
                let seen = self.root.metadata(dot(&p))?;
                let file = self.root.open_with(dot(&p), &opts)?;
                self.check(&p, &file.metadata()?, Some(&seen))?;
                file
            }
        })
    }

    /// Reads a whole regular file of at most `limit` bytes.
    pub fn read(&self, rel: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
        self.look(rel, Look::Path);
        let file = self.open_read(rel)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(ReadError::NotRegular);
        }
        if meta.len() > limit {
            return Err(ReadError::TooLarge { size: meta.len(), limit });
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        // The file may grow after the size check; read one byte past the limit to notice.
        file.into_std().take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(ReadError::TooLarge { size: buf.len() as u64, limit });
        }
        Ok(buf)
    }

    /// Opens a regular file for reads of chosen ranges (shell histories, which only grow
    /// and are read a window at a time). Same rules as [`read`](Tree::read): beneath the
    /// tree or through a home's link the policy permits, regular files only, never blocking
    /// on a FIFO.
    pub fn open_file(&self, rel: &Path) -> Result<RangeFile, ReadError> {
        self.look(rel, Look::Path);
        let file = self.open_read(rel)?.into_std();
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(ReadError::NotRegular);
        }
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok());
        Ok(RangeFile { size: meta.len(), id: file_id(&meta), modified_ms, file })
    }

    /// Reads a file as text; invalid UTF-8 is replaced rather than refused, because
    /// config files with a stray Latin-1 byte still hold readable keys.
    pub fn read_text(&self, rel: &Path, limit: u64) -> Result<String, ReadError> {
        let bytes = self.read(rel, limit)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Lists a directory without following symlinks in its entries.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<Entry>> {
        self.look(rel, Look::Listing);
        let iter = match self.place(rel)? {
            Place::Here if rel.as_os_str().is_empty() => self.dir.entries()?,
            Place::Here => self.dir.read_dir(rel)?,
            Place::Root(p) => {
                self.check(&p, &self.root.metadata(dot(&p))?, None)?;
                self.root.read_dir(dot(&p))?
            }
        };
        let mut out = Vec::new();
        for entry in iter {
            let entry = entry?;
            let ft = entry.file_type()?;
            let kind = if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else {
                Kind::Other
            };
            out.push(Entry { name: entry.file_name(), kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether a path resolves (beneath this tree) to a directory.
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.look(rel, Look::Path);
        self.metadata(rel).map(|m| m.is_dir()).unwrap_or(false)
    }

    /// Whether a path resolves (beneath this tree) to anything.
    pub fn exists(&self, rel: &Path) -> bool {
        self.look(rel, Look::Path);
        self.metadata(rel).is_ok()
    }

    /// Whether the path itself (its last component not followed) is a symbolic link.
    pub fn is_symlink(&self, rel: &Path) -> bool {
        self.look(rel, Look::Path);
        self.dir.symlink_metadata(rel).is_ok_and(|m| m.is_symlink())
    }

    /// The text of a symbolic link, exactly as stored: nothing is resolved or followed, so
    /// an absolute target or one leading out of the tree is returned, not refused. Callers
    /// map it back into the tree with [`Tree::link_target`] before looking at it.
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        self.look(rel, Look::Path);
        self.dir.read_link_contents(rel)
    }

    /// Where a link at `link` with text `target` points, as a path beneath this tree,
    /// worked out from the text alone (`..` taken lexically): an absolute target is taken as
    /// spelled on the scanned system (`/home/alice/x` in the tree of `/home/alice` is `x`).
    /// `None` when it points outside the tree.
    pub fn link_target(&self, link: &Path, target: &Path) -> Option<PathBuf> {
        use std::path::Component;
        let mut out = PathBuf::new();
        let rest: Vec<Component<'_>> = if target.has_root() {
            let base: Vec<_> =
                self.display_base.components().filter(|c| matches!(c, Component::Normal(_))).collect();
            let parts: Vec<_> = target
                .components()
                .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                .collect();
            if parts.len() < base.len() || parts[..base.len()] != base[..] {
                return None;
            }
            parts[base.len()..].to_vec()
        } else {
            out = link.parent().map(Path::to_path_buf).unwrap_or_default();
            target.components().collect()
        };
        for c in rest {
            match c {
                Component::Normal(n) => out.push(n),
                Component::ParentDir => {
                    if !out.pop() {
                        return None;
                    }
                }
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        Some(out)
    }
}

/// An open regular file, read by ranges.
#[derive(Debug)]
pub struct RangeFile {
    file: std::fs::File,
    size: u64,
    id: Option<(u64, u64)>,
    modified_ms: Option<i64>,
}

impl RangeFile {
    /// The size when it was opened; reads never go past it, so a file growing meanwhile
    /// is read up to here now and from here next time.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// When the file was last modified (Unix milliseconds), where the platform says.
    pub fn modified_ms(&self) -> Option<i64> {
        self.modified_ms
    }

    /// Device and inode where the platform has them: a file replaced by rename (zsh saves
    /// its history that way) is a different file even at the same path and size.
    pub fn id(&self) -> Option<(u64, u64)> {
        self.id
    }

    /// Reads `len` bytes from `offset` (fewer if the file was truncated meanwhile).
    pub fn read_range(&mut self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        let len = len.min(self.size.saturating_sub(offset));
        self.file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        (&mut self.file).take(len).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

// Windows' file index needs an unstable API or raw Win32; identity there rests on the head
// hash the caller keeps.
#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The root itself, when a link leads to `/`, is `.` to cap-std.
fn dot(p: &Path) -> &Path {
    if p.as_os_str().is_empty() { Path::new(".") } else { p }
}

#[cfg(target_os = "linux")]
fn nonblock_flag() -> i32 {
    0o4000
}

#[cfg(all(unix, not(target_os = "linux")))]
fn nonblock_flag() -> i32 {
    0x0004
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symlink(target: impl AsRef<Path>, link: PathBuf) -> io::Result<()> {
        crate::testutil::symlink(target.as_ref(), &link);
        Ok(())
    }

    #[test]
    #[cfg_attr(windows, ignore = "creating a symbolic link: Wine 8 cannot, Windows needs a privilege")]
    fn links_out_of_the_tree_are_refused_and_loops_end() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside.txt");
        std::fs::write(&outside, "secret").unwrap();
        let home = t.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("inside.txt"), "ok").unwrap();
        symlink(&outside, home.join("abs")).unwrap();
        symlink("../outside.txt", home.join("rel")).unwrap();
        symlink("inside.txt", home.join("good")).unwrap();
        symlink("loop2", home.join("loop1")).unwrap();
        symlink("loop1", home.join("loop2")).unwrap();

        let tree = Tree::open_root(&home).unwrap();
        assert_eq!(tree.read(Path::new("good"), 10).unwrap(), b"ok");
        for name in ["abs", "rel", "loop1"] {
            let err = tree.read(Path::new(name), 10).unwrap_err();
            assert!(!err.is_not_found(), "{name}: {err}");
        }
        assert!(tree.read(Path::new("abs"), 10).unwrap_err().to_string().contains("outside"));
    }

    #[test]
    #[cfg_attr(windows, ignore = "creating a symbolic link: Wine 8 cannot, Windows needs a privilege")]
    fn links_are_read_not_followed_and_mapped_into_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join("bin")).unwrap();
        symlink("/home/alice/share/v/2.1.0", home.join("bin/abs")).unwrap();
        symlink("../share/v/2.1.0", home.join("bin/rel")).unwrap();
        symlink("../../../etc/passwd", home.join("bin/out")).unwrap();
        std::fs::write(home.join("bin/file"), "x").unwrap();
        let root = Tree::open_root(t.path()).unwrap();
        let tree = root.subtree(Path::new("home")).unwrap();
        assert!(tree.is_symlink(Path::new("bin/abs")));
        assert!(!tree.is_symlink(Path::new("bin/file")));
        assert!(!tree.is_symlink(Path::new("bin/missing")));
        let abs = tree.read_link(Path::new("bin/abs")).unwrap();
        assert_eq!(abs, Path::new("/home/alice/share/v/2.1.0"));
        assert!(tree.read_link(Path::new("bin/file")).is_err());
        // This tree is displayed as /home: /home/alice/… maps to alice/….
        assert_eq!(tree.link_target(Path::new("bin/abs"), &abs), Some(PathBuf::from("alice/share/v/2.1.0")));
        assert_eq!(tree.link_target(Path::new("bin/abs"), Path::new("/opt/x")), None);
        let rel = tree.read_link(Path::new("bin/rel")).unwrap();
        assert_eq!(tree.link_target(Path::new("bin/rel"), &rel), Some(PathBuf::from("share/v/2.1.0")));
        let out = tree.read_link(Path::new("bin/out")).unwrap();
        assert_eq!(tree.link_target(Path::new("bin/out"), &out), None);
        // Each home is its own tree; `/` is the root tree's base.
        assert_eq!(
            root.link_target(Path::new("usr/bin/x"), Path::new("/opt/x/y")),
            Some(PathBuf::from("opt/x/y"))
        );
    }

    #[test]
    fn bounded_reads_and_special_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("big"), vec![b'a'; 100]).unwrap();
        let tree = Tree::open_root(t.path()).unwrap();
        assert!(matches!(tree.read(Path::new("big"), 99), Err(ReadError::TooLarge { size: 100, limit: 99 })));
        assert_eq!(tree.read(Path::new("big"), 100).unwrap().len(), 100);
        assert!(matches!(tree.read(Path::new("."), 100), Err(ReadError::NotRegular) | Err(ReadError::Io(_))));
        assert!(tree.read(Path::new("missing"), 1).unwrap_err().is_not_found());
    }
}
