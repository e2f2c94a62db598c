//! What the dashboard shows: the fleet overview and paged, sorted tables (devices,
//! connectors, findings, people), computed on the server so a 10k-device fleet never
//! travels to the browser whole.
//!
//! Whole-fleet judgements (every connector's status, the findings) come from one
//! [`Snapshot`] that the [`Cache`] keeps for a few seconds and drops whenever an admin acts,
//! so paging through a table does not recompute the fleet per click.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::rfc3339 as time;
use crate::findings::Finding;
use crate::policy::{People, Policy};
use crate::responses;
use crate::store::{Connector, DevicePage, ReadModel, Store};

/// Largest page a caller may ask for.
pub const MAX_LIMIT: usize = 500;

/// Paging, sorting and filters of a table request; every field optional.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TableQuery {
    /// Free text (hostname, id, label, subject, name).
    pub q: Option<String>,
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    pub offset: Option<usize>,
    /// Default 50, at most 500.
    pub limit: Option<usize>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub assurance: Option<String>,
    /// Findings only: those about this device id.
    pub device: Option<String>,
}

impl TableQuery {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, MAX_LIMIT)
    }
    fn offset(&self) -> usize {
        self.offset.unwrap_or(0)
    }
    fn desc(&self) -> bool {
        self.order.as_deref() == Some("desc")
    }
    fn matches(&self, text: &[&str]) -> bool {
        self.q.as_deref().filter(|q| !q.is_empty()).is_none_or(|q| {
            let q = q.to_lowercase();
            text.iter().any(|t| t.to_lowercase().contains(&q))
        })
    }
}

/// Whole-fleet state computed once and shared by the pages for a few seconds.
pub struct Snapshot {
    pub at: Instant,
    pub now_ms: i64,
    pub connectors: Vec<Connector>,
    pub findings: Vec<Finding>,
    pub people: People,
}

#[derive(Default)]
pub struct Cache {
    inner: Mutex<Option<Arc<Snapshot>>>,
    /// Held while a snapshot is computed, so concurrent requests wait for that one instead
    /// of each reading the whole fleet (single flight).
    computing: Mutex<()>,
    /// Snapshots computed, for tests and the curious.
    computed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

/// How long a snapshot serves pages.
const FRESH: Duration = Duration::from_secs(10);

impl Cache {
    fn fresh(&self) -> Option<Arc<Snapshot>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|s| s.at.elapsed() < FRESH)
            .cloned()
    }

    /// The current snapshot, recomputed if stale, by one caller at a time: the others wait
    /// and take its result. Blocking (callers are on blocking threads).
    pub fn get(&self, store: &dyn Store, policy: &Policy, now_ms: i64) -> anyhow::Result<Arc<Snapshot>> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let _computing = self.computing.lock().unwrap_or_else(|p| p.into_inner());
        // Whoever held the lock before us may have just computed it.
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let people = People::new(store.people_all()?);
        let connectors = store.connector_summaries()?;
        let findings = crate::findings::compute_from(store, policy, now_ms, &connectors, &people)?;
        let snap = Arc::new(Snapshot { at: Instant::now(), now_ms, connectors, findings, people });
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        self.computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(snap)
    }

    /// How many snapshots this cache has computed.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forget the snapshot (after an admin changed something).
    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn slice<T>(v: &[T], q: &TableQuery) -> std::ops::Range<usize> {
    let start = q.offset().min(v.len());
    start..(start + q.limit()).min(v.len())
}

/// A page of devices.
pub fn devices(store: &(impl ReadModel + ?Sized), q: &TableQuery) -> anyhow::Result<responses::DevicePage> {
    let p = DevicePage {
        q: q.q.clone().filter(|s| !s.is_empty()),
        assurance: q.assurance.clone(),
        sort: q.sort.clone().unwrap_or_default(),
        desc: q.desc(),
        limit: q.limit(),
        offset: q.offset(),
    };
    let (list, total) = store.devices_page(&p)?;
    // The sequence head is the observation count: sequences are contiguous from 1.
    let items = list.iter().map(|d| crate::query::device_json(d, d.seq_head)).collect();
    Ok(responses::DevicePage { items, limit: q.limit(), offset: q.offset(), total: total as usize })
}

/// One connector as a table row.
pub fn connector_row(c: &Connector, policy: &Policy, people: &People) -> responses::ConnectorRow {
    let mut users: Vec<String> = c.devices.iter().filter_map(|d| d.user.clone()).collect();
    users.sort_unstable();
    users.dedup();
    let owner = crate::register::owner_of(c, policy, people);
    responses::ConnectorRow {
        decision: c.decision.as_ref().map(|d| d.status.clone()),
        devices: c.seen_on,
        display_name: crate::catalog::display_name(&c.kind, &c.label),
        first_seen: time(c.first_seen_ms),
        key: c.key.clone(),
        kind: c.kind.clone(),
        label: c.label.clone(),
        last_seen: time(c.last_seen_ms),
        last_used: c.last_used_ms.map(time),
        owner: owner.person.map(|p| p.user_name),
        owner_source: owner.source,
        present_on: c
            .devices
            .iter()
            .map(|d| d.device_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        revocation: c.revocation.as_ref().map(|r| r.state().as_str().to_owned()),
        status: policy.status(c, people).to_owned(),
        users,
    }
}

/// A page of connectors, judged by the policy, with their owners (searchable by owner).
pub fn connectors(snap: &Snapshot, policy: &Policy, q: &TableQuery) -> responses::ConnectorPage {
    // Owners cost an attribution per holder: found only when a search or the sort needs them
    // (the page's own rows get theirs in `connector_row`).
    let need_owner = q.q.is_some() || q.sort.as_deref() == Some("owner");
    let mut rows: Vec<(&Connector, &'static str, String)> = snap
        .connectors
        .iter()
        .map(|c| {
            let owner = if need_owner {
                crate::register::owner_of(c, policy, &snap.people).person.map(|p| p.user_name)
            } else {
                None
            };
            (c, policy.status(c, &snap.people), owner.unwrap_or_default())
        })
        .filter(|(c, status, owner)| {
            q.kind.as_ref().is_none_or(|k| *k == c.kind)
                && q.status.as_ref().is_none_or(|s| s == status)
                && q.matches(&[&c.key, &c.label, &crate::catalog::display_name(&c.kind, &c.label), owner])
        })
        .collect();
    match q.sort.as_deref() {
        Some("kind") => rows.sort_by(|a, b| (&a.0.kind, &a.0.label).cmp(&(&b.0.kind, &b.0.label))),
        Some("status") => rows.sort_by(|a, b| (a.1, &a.0.label).cmp(&(b.1, &b.0.label))),
        Some("owner") => rows.sort_by(|a, b| (&a.2, &a.0.key).cmp(&(&b.2, &b.0.key))),
        Some("devices") => rows.sort_by_key(|r| (r.0.seen_on, r.0.key.clone())),
        Some("last_seen") => rows.sort_by_key(|r| (r.0.last_seen_ms, r.0.key.clone())),
        Some("first_seen") => rows.sort_by_key(|r| (r.0.first_seen_ms, r.0.key.clone())),
        // By what the table shows: the display name.
        _ => rows.sort_by_cached_key(|r| {
            (crate::catalog::display_name(&r.0.kind, &r.0.label).to_lowercase(), r.0.key.clone())
        }),
    }
    if q.desc() {
        rows.reverse();
    }
    let items =
        rows[slice(&rows, q)].iter().map(|(c, _, _)| connector_row(c, policy, &snap.people)).collect();
    responses::ConnectorPage { items, limit: q.limit(), offset: q.offset(), total: rows.len() }
}

/// A page of findings.
pub fn findings(snap: &Snapshot, q: &TableQuery) -> responses::FindingPage {
    let mut rows: Vec<&Finding> = snap
        .findings
        .iter()
        .filter(|f| {
            q.kind.as_deref().is_none_or(|k| k == f.kind)
                && q.severity.as_deref().is_none_or(|s| s == f.severity)
                && q.device.as_deref().is_none_or(|d| f.device_id.as_deref() == Some(d))
                && q.matches(&[
                    &f.subject,
                    &f.subject_name,
                    f.device_id.as_deref().unwrap_or_default(),
                    f.hostname.as_deref().unwrap_or_default(),
                    f.kind,
                ])
        })
        .collect();
    let rank = |s: &str| match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        _ => 3,
    };
    match q.sort.as_deref() {
        Some("kind") => rows.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject))),
        Some("severity") => rows.sort_by_key(|f| (rank(f.severity), std::cmp::Reverse(f.first_seen_ms))),
        Some("subject") => rows.sort_by(|a, b| a.subject.cmp(&b.subject)),
        // Newest first by default: what changed is what needs a look.
        _ => rows.sort_by_key(|f| std::cmp::Reverse(f.first_seen_ms)),
    }
    if q.desc() {
        rows.reverse();
    }
    let items = rows[slice(&rows, q)].iter().map(|f| responses::Finding::from(*f)).collect();
    responses::FindingPage { items, limit: q.limit(), offset: q.offset(), total: rows.len() }
}

/// A page of people, deprovisioned ones flagged.
pub fn people(snap: &Snapshot, policy: &Policy, q: &TableQuery) -> responses::PersonPage {
    let mut rows: Vec<&crate::store::Person> = snap
        .people
        .all()
        .iter()
        .filter(|p| p.deleted_at_ms.is_none() || q.status.as_deref() == Some("deprovisioned"))
        .filter(|p| match q.status.as_deref() {
            Some("active") => p.active,
            Some("deprovisioned") => !p.active || p.deprovisioned_at_ms.is_some(),
            _ => true,
        })
        .filter(|p| {
            let shown = p.shown_name();
            let mut text: Vec<&str> = vec![&p.user_name];
            text.extend(shown.as_deref());
            text.extend(p.emails.iter().map(String::as_str));
            q.matches(&text)
        })
        .collect();
    match q.sort.as_deref() {
        Some("deprovisioned") => rows.sort_by_key(|p| (p.deprovisioned_at_ms, p.user_name.to_lowercase())),
        _ => rows.sort_by_key(|p| p.user_name.to_lowercase()),
    }
    if q.desc() {
        rows.reverse();
    }
    let items = rows[slice(&rows, q)]
        .iter()
        .map(|p| responses::PersonRow {
            accounts: policy.accounts_of(p),
            active: p.active,
            deprovisioned_at: p.deprovisioned_at_ms.map(time),
            display_name: p.shown_name(),
            emails: p.emails.clone(),
            user_name: p.user_name.clone(),
        })
        .collect();
    responses::PersonPage { items, limit: q.limit(), offset: q.offset(), total: rows.len() }
}

/// The overview: devices by assurance, OS and recency; connectors by status and kind; open
/// findings by kind; shadow-AI connectors present per day over the last 30 days.
pub fn overview(
    store: &(impl ReadModel + ?Sized),
    policy: &Policy,
    snap: &Snapshot,
) -> anyhow::Result<responses::Overview> {
    let now = snap.now_ms;
    let fleet = store.fleet_counts(now)?;
    let mut by_status: std::collections::BTreeMap<String, u64> = Default::default();
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    let mut shadow = Vec::new();
    for c in &snap.connectors {
        let s = policy.status(c, &snap.people);
        *by_status.entry(s.to_owned()).or_default() += 1;
        *by_kind.entry(c.kind.clone()).or_default() += 1;
        if s == "unsanctioned" {
            shadow.push(c.key.clone());
        }
    }
    let mut by_finding: std::collections::BTreeMap<String, u64> = Default::default();
    for f in &snap.findings {
        *by_finding.entry(f.kind.to_owned()).or_default() += 1;
    }
    const DAY: i64 = 86_400_000;
    let days = 30;
    let today = now - now.rem_euclid(DAY);
    let from = today - (days - 1) * DAY;
    let spans = store.presence_spans(&shadow, from, now)?;
    let trend: Vec<responses::TrendDay> = (0..days)
        .map(|i| {
            let (start, end) = (from + i * DAY, from + (i + 1) * DAY);
            let mut keys: Vec<&str> = spans
                .iter()
                .filter(|(_, a, d)| *a < end && d.is_none_or(|d| d >= start))
                .map(|(k, _, _)| k.as_str())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            responses::TrendDay { day: time(start)[..10].to_owned(), shadow_ai: keys.len() }
        })
        .collect();
    let pairs = |v: &[(String, u64)]| {
        v.iter().map(|(k, n)| responses::Count { count: *n, key: k.clone() }).collect::<Vec<_>>()
    };
    Ok(responses::Overview {
        at: time(now),
        connectors: responses::ConnectorCounts { by_kind, by_status, total: snap.connectors.len() },
        devices: responses::DeviceCounts {
            by_assurance: pairs(&fleet.by_assurance),
            by_os: pairs(&fleet.by_os),
            last_seen: responses::Recency {
                day: fleet.last_seen[1],
                hour: fleet.last_seen[0],
                never: fleet.last_seen[4],
                older: fleet.last_seen[3],
                week: fleet.last_seen[2],
            },
            revoked: fleet.revoked,
            total: fleet.devices,
        },
        findings: responses::FindingCounts { by_kind: by_finding, total: snap.findings.len() },
        policy_judges: policy.approved.is_some(),
        trend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_requests_share_one_snapshot_computation() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap();
        let (cache, policy) = (Cache::default(), Policy::default());
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    cache.get(&store, &policy, 1).unwrap();
                });
            }
        });
        assert_eq!(cache.computed(), 1, "eight concurrent requests, one whole-fleet read");
        cache.clear();
        cache.get(&store, &policy, 2).unwrap();
        assert_eq!(cache.computed(), 2);
    }
}
