//! The agent's last known view of the device, and the diff that turns each new look into
//! `APPEARED / CHANGED / DISAPPEARED` observations.
//!
//! Looks are partial: a watched file changing rescans one home, the process sampler looks
//! only at processes. Each item therefore belongs to a [`Scope`], and a look replaces only
//! the scopes it covered. A full resync covers everything and is reported as a `SNAPSHOT`
//! of what is present plus `DISAPPEARED` for what is gone, so the collector can rebuild the
//! device's state from the latest snapshot alone.
//!
//! The view is saved in the state dir (`inventory.pb`) after every recorded change, so the
//! first resync after a restart still reports what vanished while the agent was down as
//! `DISAPPEARED`. A crash between recording and saving only means some changes are reported
//! twice, which the collector treats idempotently (an item already present stays present, one
//! already gone stays gone).

use std::collections::BTreeMap;

use sightline_proto::pb::{self, observation::Item};

/// The part of the device a look covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Machine-wide installs.
    Machine,
    /// Everything the per-home detectors find in one user's home, except…
    Home(String),
    /// …credentials found by the source-file sweep, rescanned only on resync.
    Sources(String),
    Processes,
    Sessions,
}

/// Which scopes a look covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Covered {
    All,
    Only(Vec<Scope>),
}

impl Covered {
    fn covers(&self, s: &Scope) -> bool {
        match self {
            Covered::All => true,
            Covered::Only(v) => v.contains(s),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Inventory {
    items: BTreeMap<String, (Scope, Item)>,
}

/// What makes two observations "the same item": a changed fingerprint at the same place is
/// the same credential slot, CHANGED; a new path is a new item.
pub fn identity(item: &Item) -> Option<(String, Scope)> {
    let home = |u: &Option<String>| u.clone().map_or(Scope::Machine, Scope::Home);
    Some(match item {
        Item::Process(p) => (format!("process\0{}\0{}", p.tool, p.pid), Scope::Processes),
        Item::App(a) => (format!("app\0{}\0{}", a.tool, a.path), home(&a.user)),
        Item::Extension(e) => (format!("extension\0{}\0{}", e.path, e.extension_id), home(&e.user)),
        Item::Token(t) => {
            let scope = if t.source == pb::TokenSource::SourceFile as i32 {
                Scope::Sources(t.user.clone().unwrap_or_default())
            } else {
                home(&t.user)
            };
            (format!("token\0{}\0{}\0{}", t.path, t.locator.as_deref().unwrap_or(""), t.provider), scope)
        }
        Item::McpServer(m) => (format!("mcp\0{}\0{}\0{}", m.client, m.path, m.name), home(&m.user)),
        Item::OsSession(s) => {
            (format!("session\0{}\0{}\0{}", s.user, s.terminal, s.started_at_ms), Scope::Sessions)
        }
        Item::DeviceInventory(_)
        | Item::AgentHealth(_)
        | Item::Gap(_)
        | Item::ScanError(_)
        | Item::DirectiveOutcome(_)
        | Item::Activity(_) => return None,
    })
}

impl Inventory {
    /// Applies a look that covered `covered` and found `found`; returns the observations that
    /// describe the difference (or, with `snapshot`, the full picture of the covered scopes).
    pub fn update(
        &mut self,
        covered: &Covered,
        found: Vec<Item>,
        now_ms: i64,
        snapshot: bool,
    ) -> Vec<pb::Observation> {
        let obs = |change: pb::Change, item: Item| crate::convert::observation(change, item, now_ms);
        let mut seen = BTreeMap::new();
        for item in found {
            if let Some((key, scope)) = identity(&item)
                && covered.covers(&scope)
            {
                seen.insert(key, (scope, item));
            }
        }
        let mut out = Vec::new();
        let gone: Vec<String> = self
            .items
            .iter()
            .filter(|(k, (scope, _))| covered.covers(scope) && !seen.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some((_, item)) = self.items.remove(&key) {
                out.push(obs(pb::Change::Disappeared, item));
            }
        }
        for (key, (scope, item)) in seen {
            let change = match self.items.get(&key) {
                _ if snapshot => Some(pb::Change::Snapshot),
                None => Some(pb::Change::Appeared),
                Some((_, old)) if *old != item => Some(pb::Change::Changed),
                Some(_) => None,
            };
            if let Some(c) = change {
                out.push(obs(c, item.clone()));
            }
            self.items.insert(key, (scope, item));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Reads a saved view; a missing file is an empty view, a damaged one is logged and
    /// treated as empty (the next resync rebuilds it). Blocking.
    pub fn load(path: &std::path::Path) -> Inventory {
        use prost::Message;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Inventory::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Cannot read the saved view; starting empty.");
                return Inventory::default();
            }
        };
        match pb::Batch::decode(bytes.as_slice()) {
            Ok(b) => {
                let items = b
                    .observations
                    .into_iter()
                    .filter_map(|o| o.item)
                    .filter_map(|item| identity(&item).map(|(k, scope)| (k, (scope, item))))
                    .collect();
                Inventory { items }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Saved view is damaged; starting empty.");
                Inventory::default()
            }
        }
    }

    /// Saves the view atomically. Blocking.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        use prost::Message;
        let b = pb::Batch {
            observations: self.items.values().map(|(_, item)| crate::convert::stored(item.clone())).collect(),
            ..Default::default()
        };
        crate::state::write_atomic(path, &b.encode_to_vec(), false)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item in the view.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values().map(|(_, item)| item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(path: &str, fp: &str, user: &str) -> Item {
        Item::Token(pb::TokenItem {
            provider: "openai".into(),
            kind: 1,
            user: Some(user.into()),
            path: path.into(),
            source: pb::TokenSource::CredentialFile as i32,
            fingerprint: fp.into(),
            locator: None,
            mcp_server: None,
            authorized_by: None,
        })
    }

    fn changes(obs: &[pb::Observation]) -> Vec<(i32, String)> {
        obs.iter()
            .map(|o| {
                let path = match &o.item {
                    Some(Item::Token(t)) => format!("{}={}", t.path, t.fingerprint),
                    Some(Item::Process(p)) => format!("pid {}", p.pid),
                    _ => String::new(),
                };
                (o.change, path)
            })
            .collect()
    }

    #[test]
    fn a_saved_view_reports_what_vanished_while_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.pb");
        let mut inv = Inventory::default();
        inv.update(&Covered::All, vec![token("/a", "f1", "alice"), token("/b", "f2", "bob")], 1, true);
        inv.save(&path).unwrap();
        let mut restarted = Inventory::load(&path);
        assert_eq!(restarted.len(), 2);
        let d = restarted.update(&Covered::All, vec![token("/a", "f1", "alice")], 2, true);
        assert_eq!(
            changes(&d),
            vec![
                (pb::Change::Disappeared as i32, "/b=f2".into()),
                (pb::Change::Snapshot as i32, "/a=f1".into())
            ]
        );
        std::fs::write(&path, b"\xff\xff garbage").unwrap();
        assert!(Inventory::load(&path).is_empty());
    }

    #[test]
    fn partial_looks_touch_only_their_scopes() {
        use pb::Change::*;
        let mut inv = Inventory::default();
        let all =
            inv.update(&Covered::All, vec![token("/a", "f1", "alice"), token("/b", "f2", "bob")], 1, true);
        assert_eq!(changes(&all), vec![(Snapshot as i32, "/a=f1".into()), (Snapshot as i32, "/b=f2".into())]);

        // Alice's home rescanned: /a rotated, /c new; bob's token is not in scope and stays.
        let alice = Covered::Only(vec![Scope::Home("alice".into())]);
        let d = inv.update(&alice, vec![token("/a", "f9", "alice"), token("/c", "f3", "alice")], 2, false);
        assert_eq!(changes(&d), vec![(Changed as i32, "/a=f9".into()), (Appeared as i32, "/c=f3".into())]);
        // Nothing changed: nothing to say.
        assert!(
            inv.update(&alice, vec![token("/a", "f9", "alice"), token("/c", "f3", "alice")], 3, false)
                .is_empty()
        );
        // /c deleted.
        let d = inv.update(&alice, vec![token("/a", "f9", "alice")], 4, false);
        assert_eq!(changes(&d), vec![(Disappeared as i32, "/c=f3".into())]);
        assert_eq!(inv.len(), 2);

        // A resync that no longer finds bob's token says so explicitly.
        let d = inv.update(&Covered::All, vec![token("/a", "f9", "alice")], 5, true);
        assert_eq!(
            changes(&d),
            vec![(Disappeared as i32, "/b=f2".into()), (Snapshot as i32, "/a=f9".into())]
        );
    }
}
