//! Filesystem watchers on the catalog locations that exist, so a new credential file or
//! extension is observed within about a second instead of at the next resync.
//!
//! What to watch is not a second copy of the catalog logic: the detectors run on a
//! [`Tree`](crate::fsview::Tree) that records every path they looked at
//! ([`Touched`](crate::fsview::Touched)), and [`plan`] turns those looks into watches:
//! - a listed directory (extension dirs, IDE extension dirs, `/home`) is watched for any
//!   change of its entries;
//! - a probed or read path is watched through its nearest existing ancestor, for the one
//!   name on the way to it, so `~/.codex/auth.json` is noticed even before `~/.codex` exists.
//!
//! Watches are non-recursive (one inotify watch per directory), capped in number, and only
//! placed on directories that resolve inside the tree their look came from: a symlinked
//! `~/.config` pointing elsewhere is not watched, even where the scan follows it (a home's
//! links into `/opt` or `/nix/store`, see `fsview::links`); changes there wait for a resync. An event only says *which home to rescan*;
//! the rescan itself reads through the sandboxed tree like any scan.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::fsview::Look;

/// What a change calls for: a rescan of machine-wide locations or of one home.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Machine,
    Home(String),
}

/// Which changes in a watched directory matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    AnyChild,
    Names(BTreeSet<OsString>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub interest: Interest,
    pub target: Target,
}

impl Watch {
    fn merge(&mut self, other: Watch) {
        match (&mut self.interest, other.interest) {
            (Interest::AnyChild, _) => {}
            (i @ Interest::Names(_), Interest::AnyChild) => *i = Interest::AnyChild,
            (Interest::Names(a), Interest::Names(b)) => a.extend(b),
        }
    }
}

/// A home as the scan saw it: its displayed path and its user.
#[derive(Debug, Clone)]
pub struct HomeBase {
    pub display: PathBuf,
    pub user: String,
}

/// Turns detector looks (displayed paths) into watches on real directories under `root`.
/// Returns the watches and whether the cap cut some off.
pub fn plan(
    root: &Path,
    homes: &[HomeBase],
    looks: &[(PathBuf, Look)],
    max: usize,
) -> (BTreeMap<PathBuf, Watch>, bool) {
    let root_real = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let actual = |display: &Path| -> PathBuf {
        let rel: PathBuf = display.components().filter(|c| matches!(c, Component::Normal(_))).collect();
        root.join(rel)
    };
    let mut out: BTreeMap<PathBuf, Watch> = BTreeMap::new();
    let mut truncated = false;
    for (display, look) in looks {
        let home = homes
            .iter()
            .filter(|h| display.starts_with(&h.display))
            .max_by_key(|h| h.display.components().count());
        let (target, base) = match home {
            Some(h) => (Target::Home(h.user.clone()), h.display.clone()),
            None => (Target::Machine, PathBuf::from("/")),
        };
        let base_real = actual(&base).canonicalize().unwrap_or_else(|_| root_real.clone());
        let inside = |dir: &Path| dir.canonicalize().is_ok_and(|c| c.starts_with(&base_real));
        let (dir, interest) = if *look == Look::Listing && actual(display).is_dir() {
            (display.clone(), Interest::AnyChild)
        } else {
            // Climb to the nearest existing directory, remembering the name that leads down.
            let mut child = display.clone();
            loop {
                let Some(parent) = child.parent().map(Path::to_path_buf) else {
                    break (PathBuf::new(), Interest::AnyChild);
                };
                if actual(&parent).is_dir() || parent == base || !parent.starts_with(&base) {
                    let name = child.file_name().map(OsString::from).unwrap_or_default();
                    break (parent, Interest::Names(BTreeSet::from([name])));
                }
                child = parent;
            }
        };
        if dir.as_os_str().is_empty() || !dir.starts_with(&base) {
            continue;
        }
        let real = actual(&dir);
        if !real.is_dir() || !inside(&real) {
            continue;
        }
        let w = Watch { interest, target: target.clone() };
        let full = out.len() >= max;
        match out.get_mut(&real) {
            Some(existing) => existing.merge(w),
            None if full => truncated = true,
            None => {
                out.insert(real, w);
            }
        }
    }
    (out, truncated)
}

/// The live watchers and the channel their events arrive on.
pub struct Watcher {
    inner: notify::RecommendedWatcher,
    plan: Arc<Mutex<BTreeMap<PathBuf, Watch>>>,
    watched: BTreeSet<PathBuf>,
    /// Set when events arrived faster than they were taken: rescan every target.
    pub overflowed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("watched", &self.watched.len()).finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts the OS watcher; targets that need a rescan arrive on the returned receiver.
    pub fn start() -> notify::Result<(Watcher, mpsc::Receiver<Target>)> {
        let (tx, rx) = mpsc::channel(256);
        let plan: Arc<Mutex<BTreeMap<PathBuf, Watch>>> = Default::default();
        let overflowed = Arc::new(AtomicBool::new(false));
        let (p, o) = (plan.clone(), overflowed.clone());
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let event = match res {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "Watcher error; the next resync covers it.");
                    o.store(true, Ordering::Relaxed);
                    return;
                }
            };
            if !relevant(&event.kind) {
                return;
            }
            let plan = p.lock().unwrap_or_else(|e| e.into_inner());
            for path in &event.paths {
                if let Some(t) = target_for(&plan, path)
                    && tx.try_send(t).is_err()
                {
                    o.store(true, Ordering::Relaxed);
                }
            }
        })?;
        Ok((Watcher { inner, plan, watched: BTreeSet::new(), overflowed }, rx))
    }

    /// Replaces the watched set with `plan`; returns how many directories are watched and
    /// how many of them are new.
    pub fn apply(&mut self, plan: BTreeMap<PathBuf, Watch>) -> (usize, usize) {
        let mut added = 0;
        let wanted: BTreeSet<PathBuf> = plan.keys().cloned().collect();
        for gone in self.watched.difference(&wanted).cloned().collect::<Vec<_>>() {
            self.inner.unwatch(&gone).ok();
            self.watched.remove(&gone);
        }
        for new in wanted.difference(&self.watched.clone()) {
            match self.inner.watch(new, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(new.clone());
                    added += 1;
                }
                Err(e) => {
                    tracing::debug!(dir = %new.display(), error = %e, "Cannot watch; the resync covers it.")
                }
            }
        }
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = plan;
        (self.watched.len(), added)
    }
}

/// Reads (our own scans among them) and atime updates are not changes.
fn relevant(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

/// The rescan an event on `path` calls for, if any.
pub fn target_for(plan: &BTreeMap<PathBuf, Watch>, path: &Path) -> Option<Target> {
    if let Some(w) = plan.get(path) {
        return Some(w.target.clone());
    }
    let w = plan.get(path.parent()?)?;
    let name = path.file_name()?;
    match &w.interest {
        Interest::AnyChild => Some(w.target.clone()),
        Interest::Names(names) if names.contains(name) => Some(w.target.clone()),
        Interest::Names(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(windows, ignore = "creating a symbolic link: Wine 8 cannot, Windows needs a privilege")]
    fn looks_become_watches_on_existing_ancestors_inside_the_home() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("home/alice/.config/google-chrome/Default/Extensions")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        crate::testutil::symlink(&root.join("elsewhere"), &root.join("home/alice/.aws"));
        // A home-manager link inside the scan root: scans follow it (`fsview::links`), but a
        // watch there would widen what is watched beyond the home.
        std::fs::create_dir_all(root.join("nix/store/0a1b-home-manager-files/gh")).unwrap();
        crate::testutil::symlink(
            Path::new("../../nix/store/0a1b-home-manager-files/gh"),
            &root.join("home/alice/.gh"),
        );
        let homes = [HomeBase { display: "/home/alice".into(), user: "alice".into() }];
        let looks = vec![
            ("/home".into(), Look::Listing),
            ("/home/alice/.config/google-chrome/Default/Extensions".into(), Look::Listing),
            ("/home/alice/.codex/auth.json".into(), Look::Path),
            ("/home/alice/.config/openai/credentials".into(), Look::Path),
            ("/home/alice/.aws/credentials".into(), Look::Path),
            ("/home/alice/.gh/hosts.yml".into(), Look::Path),
            ("/home/alice/.gh".into(), Look::Listing),
        ];
        let (plan, truncated) = plan(root, &homes, &looks, 100);
        assert!(!truncated);
        let alice = Target::Home("alice".into());
        let names = |n: &[&str]| Interest::Names(n.iter().map(OsString::from).collect());
        assert_eq!(plan[&root.join("home")], Watch { interest: Interest::AnyChild, target: Target::Machine });
        assert_eq!(
            plan[&root.join("home/alice/.config/google-chrome/Default/Extensions")],
            Watch { interest: Interest::AnyChild, target: alice.clone() }
        );
        // ~/.codex does not exist: the home is watched for it; ~/.aws leads out: not watched.
        assert_eq!(
            plan[&root.join("home/alice")],
            Watch { interest: names(&[".codex"]), target: alice.clone() }
        );
        assert_eq!(
            plan[&root.join("home/alice/.config")],
            Watch { interest: names(&["openai"]), target: alice.clone() }
        );
        assert!(!plan.contains_key(&root.join("home/alice/.aws")));
        assert!(!plan.contains_key(&root.join("elsewhere")));
        assert!(!plan.contains_key(&root.join("home/alice/.gh")));
        assert!(!plan.keys().any(|k| k.starts_with(root.join("nix"))), "{plan:?}");

        assert_eq!(target_for(&plan, &root.join("home/alice/.codex")), Some(alice.clone()));
        assert_eq!(target_for(&plan, &root.join("home/alice/.bash_history")), None);
        assert_eq!(target_for(&plan, &root.join("home/bob")), Some(Target::Machine));

        let (capped, truncated) = super::plan(root, &homes, &looks, 2);
        assert!(truncated);
        assert_eq!(capped.len(), 2);
    }
}
