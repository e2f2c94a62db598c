//! The daemon's eyes: full resyncs, quick rescans of one home when a watched location
//! changes, process and login-session sampling, and health readings — each diffed against
//! the last known view and recorded durably in the spool.
//!
//! Every method blocks (filesystem, process table, fsync) and is called from a blocking
//! thread; the async side (the daemon's scheduler) only decides *when*.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sightline_proto::pb::{self, observation::Item};

use crate::catalog::Catalog;
use crate::catalog::update::Updates;
use crate::config::Config;
use crate::convert::{self, AGENT_VERSION};
use crate::detect::{
    self, Finding, Home, Limits, Os, ScanError, activity, processes, sessions, walk::Walked,
};
use crate::enforce::Enforcer;
use crate::enroll::now_ms;
use crate::fsview::{Look, Touched, Tree};
use crate::govern::{Pacer, SelfStats};
use crate::inventory::{Covered, Inventory, Scope, identity};
use crate::recorder::Recorder;
use crate::secret::Fingerprinter;
use crate::watch::{HomeBase, Target, Watcher, plan};

/// What a look did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookStats {
    pub observations: usize,
    pub findings: usize,
    pub errors: usize,
    pub watched: usize,
    pub duration_ms: u64,
    /// Homes whose activity records were not all read (the look's byte budget ran out):
    /// the run loop looks at them again soon.
    pub again: BTreeSet<Target>,
}

/// Everything an [`Observer`] is given from outside, handed over at once so an observer is
/// complete from its first look.
pub struct Parts {
    pub config: Config,
    pub catalog: Arc<Catalog>,
    pub fp: Fingerprinter,
    pub recorder: Arc<Recorder>,
    /// None: no filesystem watching (disabled, or the watcher could not start).
    pub watcher: Option<Watcher>,
    /// Where the last known view is saved between runs.
    pub view: PathBuf,
    /// The link's last error, shared with the link so health readings can report it.
    pub link_error: Arc<Mutex<Option<String>>>,
    /// Acts on collector directives; None: directives are logged and ignored.
    pub enforcer: Option<Enforcer>,
    /// Takes catalog updates from the collector; None: they are logged and ignored.
    pub catalogs: Option<Updates>,
}

pub struct Observer {
    config: Config,
    scan: ScanInputs,
    recorder: Arc<Recorder>,
    known: KnownView,
    sampler: processes::Sampler,
    /// Each home's last walk, reused by quick rescans.
    walks: HashMap<String, Walked>,
    watching: Watching,
    budget: Budget,
    vitals: Vitals,
    enforcer: Option<Enforcer>,
    catalogs: Option<Updates>,
}

/// What the detectors are run with.
struct ScanInputs {
    catalog: Arc<Catalog>,
    fp: Fingerprinter,
    limits: Limits,
    /// How far each shell history was read, in memory for the daemon's life: after a
    /// restart each history is read once more from its tail window.
    histories: detect::history::Memory,
    /// How far each AI activity record was read and which sessions were reported; saved
    /// beside the view (`activity.json`) after each look that recorded activity.
    activity: activity::Memory,
    activity_path: PathBuf,
    activity_settings: activity::Settings,
}

impl ScanInputs {
    /// Runs `catalog` from now on. The history memory goes with the old catalog: the lines
    /// it read are read again, or what the new catalog names in them would never be found.
    fn swap_catalog(&mut self, catalog: Arc<Catalog>) {
        self.catalog = catalog;
        self.histories.forget();
    }
}

/// The last known view and where it is saved.
struct KnownView {
    inventory: Inventory,
    path: PathBuf,
}

/// Where the detectors looked, and the watches that follow from it.
struct Watching {
    watcher: Option<Watcher>,
    homes: Vec<HomeBase>,
    looks: BTreeMap<Target, BTreeSet<(PathBuf, Look)>>,
}

/// The agent's own footprint: CPU pacing and the resources it uses.
struct Budget {
    stats: SelfStats,
    pacer: Pacer,
    /// Rest earned by scan work and not yet taken.
    owed: std::time::Duration,
}

/// What the next health reading reports besides the agent's own usage.
struct Vitals {
    last_scan_errors: u32,
    last_scan_ms: u64,
    link_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").field("items", &self.known.inventory.len()).finish_non_exhaustive()
    }
}

impl Observer {
    /// Blocking (reads the last known view from `parts.view`).
    pub fn new(parts: Parts) -> Observer {
        let Parts { config, catalog, fp, recorder, watcher, view, link_error, enforcer, catalogs } = parts;
        let budget = Budget {
            stats: SelfStats::new(),
            pacer: Pacer::new(config.cpu_percent),
            owed: Default::default(),
        };
        let activity_path = view.with_file_name("activity.json");
        let activity_settings =
            activity::Settings { enabled: config.activity, plain_paths: config.activity_plain_paths };
        Observer {
            scan: ScanInputs {
                catalog,
                fp,
                limits: Limits::default(),
                histories: Default::default(),
                activity: activity::Memory::load(&activity_path),
                activity_path,
                activity_settings,
            },
            recorder,
            known: KnownView { inventory: Inventory::load(&view), path: view },
            sampler: processes::Sampler::new(),
            walks: HashMap::new(),
            watching: Watching { watcher, homes: Vec::new(), looks: BTreeMap::new() },
            budget,
            vitals: Vitals { last_scan_errors: 0, last_scan_ms: 0, link_error },
            enforcer,
            catalogs,
            config,
        }
    }

    fn open_root(&self) -> anyhow::Result<(Tree, Option<Arc<Touched>>)> {
        let root = &self.config.root;
        let ctx = || format!("opening scan root {}", root.display());
        if self.watching.watcher.is_some() {
            let touched = Arc::new(Touched::default());
            Ok((Tree::open_root_recording(root, touched.clone()).with_context(ctx)?, Some(touched)))
        } else {
            Ok((Tree::open_root(root).with_context(ctx)?, None))
        }
    }

    fn over_memory_budget(&mut self) -> bool {
        let rss = self.budget.stats.sample().rss_bytes;
        let over = rss > self.config.memory_bytes;
        if over {
            tracing::warn!(
                rss,
                budget = self.config.memory_bytes,
                "Over the memory budget; skipping the source-file sweep."
            );
        }
        over
    }

    /// Everything, from scratch: a `SNAPSHOT` of every covered item plus `DISAPPEARED` for
    /// whatever is gone, the device inventory, scan errors and a health reading.
    #[allow(clippy::disallowed_types, reason = "measures a synchronous scan")]
    pub fn resync(&mut self) -> anyhow::Result<LookStats> {
        let started = std::time::Instant::now();
        let (root, touched) = self.open_root()?;
        let os = detect::detect_os(&root);
        let mut errors = Vec::new();
        let homes = detect::homes(&root, os, &mut errors);
        let lean = self.over_memory_budget();
        let ((mut findings, machine_errors), rest) =
            self.paced(|o| detect::scan_machine(&root, &o.scan.catalog, &o.scan.fp, &o.scan.limits, os));
        self.budget.owed += rest;
        errors.extend(machine_errors);
        let mut walks = HashMap::new();
        let mut act = ActivityLook::new(&self.scan.limits);
        for home in &homes {
            if started.elapsed() > self.scan.limits.total_time {
                errors.push(ScanError::new(
                    home.tree.display(Path::new("")),
                    "scan time budget exhausted; this home was not scanned",
                ));
                continue;
            }
            // A full resync is spread out: rest between homes.
            self.rest();
            let reuse = if lean { self.walks.get(&home.user) } else { None };
            let (h, rest) = self.paced(|o| {
                let s = &o.scan;
                detect::scan_home(&s.catalog, &s.fp, &s.limits, os, home, reuse, &s.histories)
            });
            self.budget.owed += rest;
            let ((), rest) = self.paced(|o| act.home(&o.scan, os, home, &h.walked, &h.findings));
            self.budget.owed += rest;
            findings.extend(h.findings);
            errors.extend(h.errors);
            walks.insert(home.user.clone(), h.walked);
        }
        errors.append(&mut act.errors);
        self.walks = walks;
        self.watching.homes = homes
            .iter()
            .map(|h| HomeBase { display: h.tree.display_base().to_owned(), user: h.user.clone() })
            .collect();
        let mut items: Vec<Item> = findings.iter().map(convert::item).collect();
        items.extend(self.live_items());

        let now = now_ms();
        let device = crate::scan::device_info(&root, is_live(&self.config.root), os);
        let inventory = Item::DeviceInventory(pb::DeviceInventory {
            hostname: device.hostname,
            os: device.os.as_str().to_owned(),
            os_version: device.os_version,
            agent_version: AGENT_VERSION.to_owned(),
            serial: None,
            users: homes.iter().map(|h| h.user.clone()).collect(),
        });
        let mut obs = vec![convert::snapshot_of(inventory, now)];
        let n_findings = items.len();
        let before = self.known.inventory.clone();
        obs.extend(self.known.inventory.update(&Covered::All, items, now, true));
        obs.extend(errors.iter().map(|e| {
            convert::snapshot_of(
                Item::ScanError(pb::ScanError { path: e.path.clone(), error: e.error.clone() }),
                now,
            )
        }));
        let marks = act.observations(&self.scan.activity, now, &mut obs);
        self.vitals.last_scan_errors = errors.len() as u32;
        self.vitals.last_scan_ms = started.elapsed().as_millis() as u64;
        obs.push(self.health_obs(now));
        self.record_or_forget(&obs, before)?;
        self.activity_recorded(marks, &act);

        let watched = match touched {
            Some(t) => {
                self.watching.looks.clear();
                self.file_looks(t.take());
                self.rewatch().0
            }
            None => 0,
        };
        Ok(LookStats {
            observations: obs.len(),
            findings: n_findings,
            errors: errors.len(),
            watched,
            duration_ms: started.elapsed().as_millis() as u64,
            again: act.again,
        })
    }

    /// Rescans what changed watched locations point at, reusing each home's last walk.
    ///
    /// A rescan can reveal a new directory to watch (`~/.codex` just created); a file written
    /// into it before the watch was placed would go unseen until the resync, so when new
    /// watches appear the same targets are looked at once more.
    pub fn rescan(&mut self, targets: &BTreeSet<Target>) -> anyhow::Result<LookStats> {
        let (mut stats, added) = self.rescan_once(targets)?;
        if added > 0 {
            let (again, _) = self.rescan_once(targets)?;
            stats.observations += again.observations;
            stats.findings = again.findings;
            stats.watched = again.watched;
            stats.again = again.again;
        }
        Ok(stats)
    }

    #[allow(clippy::disallowed_types, reason = "measures a synchronous scan")]
    fn rescan_once(&mut self, targets: &BTreeSet<Target>) -> anyhow::Result<(LookStats, usize)> {
        let started = std::time::Instant::now();
        let (root, touched) = self.open_root()?;
        let os = detect::detect_os(&root);
        let mut errors = Vec::new();
        let homes = detect::homes(&root, os, &mut errors);
        let users: Vec<&str> = homes.iter().map(|h| h.user.as_str()).collect();
        let known: Vec<&str> = self.watching.homes.iter().map(|h| h.user.as_str()).collect();
        if targets.contains(&Target::Machine) && users != known {
            tracing::info!("The set of homes changed; resyncing.");
            return Ok((self.resync()?, 0));
        }
        let mut findings: Vec<Finding> = Vec::new();
        let mut covered = Vec::new();
        let mut act = ActivityLook::new(&self.scan.limits);
        for t in targets {
            match t {
                Target::Machine => {
                    let (f, e) =
                        detect::scan_machine(&root, &self.scan.catalog, &self.scan.fp, &self.scan.limits, os);
                    findings.extend(f);
                    errors.extend(e);
                    covered.push(Scope::Machine);
                }
                Target::Home(user) => {
                    covered.push(Scope::Home(user.clone()));
                    let Some(home) = homes.iter().find(|h| &h.user == user) else {
                        // The home is gone, and everything found in it with it.
                        covered.push(Scope::Sources(user.clone()));
                        continue;
                    };
                    let reuse = self.walks.get(user);
                    if reuse.is_none() {
                        covered.push(Scope::Sources(user.clone()));
                    }
                    let (h, rest) = self.paced(|o| {
                        let s = &o.scan;
                        detect::scan_home(&s.catalog, &s.fp, &s.limits, os, home, reuse, &s.histories)
                    });
                    self.budget.owed += rest;
                    let ((), rest) = self.paced(|o| act.home(&o.scan, os, home, &h.walked, &h.findings));
                    self.budget.owed += rest;
                    findings.extend(h.findings);
                    errors.extend(h.errors);
                    self.walks.insert(user.clone(), h.walked);
                }
            }
        }
        let items: Vec<Item> = findings.iter().map(convert::item).collect();
        let n = items.len();
        let before = self.known.inventory.clone();
        let now = now_ms();
        let mut obs = self.known.inventory.update(&Covered::Only(covered), items, now, false);
        let marks = act.observations(&self.scan.activity, now, &mut obs);
        self.record_or_forget(&obs, before)?;
        self.activity_recorded(marks, &act);
        let (watched, added) = match touched {
            Some(t) => {
                for target in targets {
                    self.watching.looks.remove(target);
                }
                let looks: Vec<_> =
                    t.take().into_iter().filter(|(p, _)| targets.contains(&self.target_of(p))).collect();
                self.file_looks(looks);
                self.rewatch()
            }
            None => (0, 0),
        };
        let stats = LookStats {
            observations: obs.len(),
            findings: n,
            errors: errors.len(),
            watched,
            duration_ms: started.elapsed().as_millis() as u64,
            again: act.again,
        };
        Ok((stats, added))
    }

    /// Processes and login sessions only: the cheap, frequent look.
    pub fn sample(&mut self) -> anyhow::Result<LookStats> {
        let items = self.live_items();
        let mut covered = Vec::new();
        if self.config.processes {
            covered.push(Scope::Processes);
        }
        if self.config.sessions {
            covered.push(Scope::Sessions);
        }
        let n = items.len();
        let before = self.known.inventory.clone();
        let obs = self.known.inventory.update(&Covered::Only(covered), items, now_ms(), false);
        self.record_or_forget(&obs, before)?;
        Ok(LookStats { observations: obs.len(), findings: n, ..Default::default() })
    }

    /// Handles a collector directive: verify, act (enforce mode) or say what it would do
    /// (report mode), record the outcome, then look again at what changed.
    pub fn directive(&mut self, d: &pb::Directive) -> anyhow::Result<LookStats> {
        let Some(enforcer) = self.enforcer.as_mut() else {
            tracing::info!("Directive received; this agent does not handle directives.");
            return Ok(LookStats::default());
        };
        let ctx = crate::enforce::Context {
            root: &self.config.root,
            catalog: &self.scan.catalog,
            items: self.known.inventory.items().collect(),
            sampler: &mut self.sampler,
        };
        let Some(handled) = enforcer.handle(d, ctx, now_ms()) else { return Ok(LookStats::default()) };
        let obs = convert::snapshot_of(Item::DirectiveOutcome(handled.outcome), now_ms());
        self.recorder.record(std::slice::from_ref(&obs)).context("recording a directive outcome")?;
        let mut stats = LookStats { observations: 1, ..Default::default() };
        if !handled.homes.is_empty() {
            let targets: BTreeSet<Target> = handled.homes.into_iter().map(Target::Home).collect();
            stats.observations += self.rescan(&targets)?.observations;
        }
        if handled.processes {
            stats.observations += self.sample()?.observations;
        }
        Ok(stats)
    }

    /// Takes a catalog update from the collector and, if it is accepted, resyncs with it at
    /// once, so what the new catalog names is reported now rather than at the next hourly
    /// resync. A refusal changes nothing here; its reason reaches the collector through the
    /// catalog status the link follows.
    pub fn catalog(&mut self, u: &pb::CatalogUpdate) -> anyhow::Result<LookStats> {
        let Some(updates) = self.catalogs.as_mut() else {
            tracing::info!("Catalog update received; this agent does not take updates.");
            return Ok(LookStats::default());
        };
        match updates.apply(u) {
            Ok(catalog) => {
                tracing::info!(version = catalog.version, "Catalog updated; resyncing with it.");
                self.scan.swap_catalog(catalog);
                // A reused walk was made under the old catalog.
                self.walks.clear();
                self.resync()
            }
            Err(e) => {
                tracing::warn!(error = %e, running = updates.running(), "Catalog update refused.");
                Ok(LookStats::default())
            }
        }
    }

    /// After a look's observations are recorded: notes the activity reports as made and
    /// saves the activity memory, so a restart neither reads nor reports them again.
    fn activity_recorded(&mut self, marks: Vec<(String, String)>, act: &ActivityLook) {
        if !self.scan.activity_settings.enabled || act.looked.is_empty() {
            return;
        }
        let memory = &self.scan.activity;
        memory.mark_reported(marks);
        for (user, live) in &act.looked {
            memory.retain_reported(&format!("{user}/"), live);
        }
        if let Err(e) = memory.save(&self.scan.activity_path) {
            // Recorded is what counts; an unsaved memory only reads records again after a restart.
            tracing::warn!(error = %format!("{e:#}"), "Could not save the activity memory.");
        }
    }

    /// Records a health reading.
    pub fn health(&mut self) -> anyhow::Result<()> {
        let obs = self.health_obs(now_ms());
        self.recorder.record(&[obs])
    }

    /// Runs scan work, returning its result and the rest it earned under the CPU budget.
    fn paced<T>(&self, f: impl FnOnce(&Self) -> T) -> (T, std::time::Duration) {
        self.budget.pacer.measure(|| f(self))
    }

    /// Takes the rest earned so far (on this blocking thread, so the next look waits too).
    pub fn rest(&mut self) {
        std::thread::sleep(std::mem::take(&mut self.budget.owed));
    }

    /// Records a look's observations; if they cannot be recorded (disk full, I/O error), the
    /// view goes back to what it was, so the next look reports the same changes again rather
    /// than losing them silently.
    fn record_or_forget(&mut self, obs: &[pb::Observation], before: Inventory) -> anyhow::Result<()> {
        if let Err(e) = self.recorder.record(obs) {
            self.known.inventory = before;
            return Err(e.context("recording observations in the spool"));
        }
        if obs.iter().any(|o| o.item.as_ref().is_some_and(|i| identity(i).is_some()))
            && let Err(e) = self.known.inventory.save(&self.known.path)
        {
            // Recorded is what counts; an unsaved view only repeats changes after a restart.
            tracing::warn!(error = %e, "Could not save the last known view.");
        }
        Ok(())
    }

    fn live_items(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        if self.config.processes {
            let procs = self.sampler.sample();
            items.extend(processes::detect(&self.scan.catalog, &procs).iter().map(convert::item));
        }
        if self.config.sessions {
            items.extend(sessions::list().into_iter().map(|s| {
                Item::OsSession(pb::OsSessionItem {
                    user: s.user,
                    terminal: s.terminal,
                    host: s.host,
                    started_at_ms: s.started_at_ms,
                })
            }));
        }
        items
    }

    fn health_obs(&mut self, now: i64) -> pb::Observation {
        let usage = self.budget.stats.sample();
        let depth = self.recorder.depth();
        let last_error = self.vitals.link_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let health = Item::AgentHealth(pb::AgentHealth {
            agent_version: AGENT_VERSION.to_owned(),
            cpu_percent: usage.cpu_percent,
            rss_bytes: usage.rss_bytes,
            spool_depth: depth.spooled,
            dropped: depth.dropped_total,
            last_error,
            scan_errors: self.vitals.last_scan_errors,
            scan_duration_ms: self.vitals.last_scan_ms,
        });
        convert::snapshot_of(health, now)
    }

    fn target_of(&self, path: &Path) -> Target {
        self.watching
            .homes
            .iter()
            .filter(|h| path.starts_with(&h.display))
            .max_by_key(|h| h.display.components().count())
            .map_or(Target::Machine, |h| Target::Home(h.user.clone()))
    }

    fn file_looks(&mut self, looks: Vec<(PathBuf, Look)>) {
        for (p, look) in looks {
            let t = self.target_of(&p);
            self.watching.looks.entry(t).or_default().insert((p, look));
        }
    }

    /// Watches what the looks so far point at; returns (watched, newly added).
    fn rewatch(&mut self) -> (usize, usize) {
        let Some(w) = self.watching.watcher.as_mut() else { return (0, 0) };
        let all: Vec<(PathBuf, Look)> = self.watching.looks.values().flatten().cloned().collect();
        let (plan, truncated) = plan(&self.config.root, &self.watching.homes, &all, self.config.max_watches);
        if truncated {
            tracing::warn!(
                max = self.config.max_watches,
                "Watch limit reached; the rest is covered by resyncs."
            );
        }
        w.apply(plan)
    }
}

/// One look's activity over the homes it covers.
struct ActivityLook {
    budget: u64,
    sessions: Vec<activity::Session>,
    errors: Vec<ScanError>,
    /// Homes looked at, with the keys of every session they hold now.
    looked: Vec<(String, std::collections::HashSet<String>)>,
    again: BTreeSet<Target>,
}

impl ActivityLook {
    fn new(limits: &Limits) -> ActivityLook {
        ActivityLook {
            budget: limits.activity_look,
            sessions: Vec::new(),
            errors: Vec::new(),
            looked: Vec::new(),
            again: BTreeSet::new(),
        }
    }

    fn home(&mut self, scan: &ScanInputs, os: Os, home: &Home, walked: &Walked, findings: &[Finding]) {
        if !scan.activity_settings.enabled {
            return;
        }
        let inputs = activity::Inputs {
            catalog: &scan.catalog,
            fp: &scan.fp,
            limits: &scan.limits,
            os,
            settings: scan.activity_settings,
            now_ms: now_ms(),
        };
        let found = activity::look_home(&inputs, home, walked, findings, &scan.activity, &mut self.budget);
        if found.more {
            self.again.insert(Target::Home(home.user.clone()));
        }
        self.looked.push((home.user.clone(), found.sessions.iter().map(activity::Session::key).collect()));
        self.sessions.extend(found.sessions);
        self.errors.extend(found.errors);
    }

    /// Appends an observation for each session whose tally changed since it was last
    /// recorded: `APPEARED` the first time, `CHANGED` after. Returns the reports to note as
    /// made once the observations are recorded.
    fn observations(
        &self,
        memory: &activity::Memory,
        now: i64,
        obs: &mut Vec<pb::Observation>,
    ) -> Vec<(String, String)> {
        let mut marks = Vec::new();
        for s in &self.sessions {
            let key = s.key();
            let digest = s.digest();
            let Some(first) = memory.changed(&key, &digest) else { continue };
            let change = if first { pb::Change::Appeared } else { pb::Change::Changed };
            obs.push(convert::observation(change, Item::Activity(convert::activity(s)), now));
            marks.push((key, digest));
        }
        marks
    }
}

fn is_live(root: &Path) -> bool {
    root.canonicalize().map(|p| p == Path::new("/")).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::update::merge;
    use crate::detect::{detect_os, homes};

    /// A history line read under the old catalog is read again under the new one, which
    /// names a key format the old one did not know.
    #[test]
    fn a_catalog_swap_rereads_histories() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home/ivy");
        std::fs::create_dir_all(&home).expect("home");
        let key = format!("acme-{}", "q7we9rt2yu4io6pa8sd1fg3hj5kl7zx9");
        std::fs::write(home.join(".bash_history"), format!("ls\nacme-cli login {key}\n")).expect("history");
        let update = "schema_version = 1\nversion = 99\n[[key_format]]\nid = \"acme\"\nprovider = \"acme\"\n\
                      kind = \"api_key\"\nregex = 'acme-[a-z0-9]{32}'\nsource = \"test\"\n";
        let mut scan = ScanInputs {
            catalog: Arc::new(Catalog::builtin().expect("builtin")),
            fp: Fingerprinter::new(b"test-org-key-0123456789abcdef0123", true),
            limits: Limits::default(),
            histories: Default::default(),
            activity: Default::default(),
            activity_path: t.path().join("activity.json"),
            activity_settings: Default::default(),
        };
        let acme = |scan: &ScanInputs| {
            let root = Tree::open_root(t.path()).expect("root");
            let os = detect_os(&root);
            let hs = homes(&root, os, &mut Vec::new());
            let s =
                detect::scan_home(&scan.catalog, &scan.fp, &scan.limits, os, &hs[0], None, &scan.histories);
            s.findings.iter().filter(|f| matches!(f, Finding::Token(t) if t.provider == "acme")).count()
        };
        assert_eq!(acme(&scan), 0, "the built-in catalog has no acme format");
        scan.swap_catalog(Arc::new(merge(update).expect("update")));
        assert_eq!(acme(&scan), 1, "the line already read is read again under the new catalog");
    }
}
