//! Ingest as a plan: what storing one verified batch means, decided without a database.
//!
//! A backend locks the device's row, reads its head and open presence intervals, hands them
//! to [`plan`] and writes what comes back. The acceptance rule and the presence rules live
//! here only, so the two backends cannot drift apart in what "present at T" means; they
//! differ only in how they write (row by row in SQLite, column arrays in PostgreSQL).
//!
//! Presence rules, per (connector, locus), in observation order:
//! - any sighting other than `disappeared` opens an interval unless one is open already (a
//!   repeated sighting keeps it open);
//! - `disappeared` closes the open interval, never before it opened; with none open it is a
//!   no-op (a repeated disappearance finds nothing to close).

use std::collections::{BTreeMap, HashMap};

use super::{IngestBatch, IngestOutcome, Inventory, OutcomeRef, Result, SessionRef, StoreError};

/// The device as ingest reads it under its row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
    pub revoked: bool,
    /// Copied onto every observation the batch stores.
    pub assurance: String,
}

/// A presence interval the batch opens, closed again within the batch if `closed` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened<'a> {
    pub key: &'a str,
    pub locus: &'a str,
    pub user: Option<&'a str>,
    pub at_ms: i64,
    pub seq: u64,
    /// (disappeared_at_ms, disappeared_seq).
    pub closed: Option<(i64, u64)>,
}

/// A stored interval (open before this batch) that the batch closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closed<'a> {
    pub key: &'a str,
    pub locus: &'a str,
    /// The backend keeps the interval from ending before it began (`max(appeared, at)`),
    /// since only it knows when the stored interval opened.
    pub at_ms: i64,
    pub seq: u64,
}

/// One connector as a batch saw it: what its summary rows fold in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting<'a> {
    pub kind: &'a str,
    pub label: &'a str,
    pub first_ms: i64,
    pub last_ms: i64,
    /// The data of the batch's last observation of it.
    pub latest: &'a str,
    /// The last account named, as a per-observation `COALESCE(new, old)` would leave it.
    pub user: Option<&'a str>,
}

/// A login session the batch reports starting or ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionChange<'a> {
    Open { session: &'a SessionRef, seq: u64 },
    Close { session: &'a SessionRef, at_ms: i64, seq: u64 },
}

/// A directive outcome the batch reports; only the device it was issued to can settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled<'a> {
    pub outcome: &'a OutcomeRef,
    pub at_ms: i64,
    pub seq: u64,
}

/// Everything an accepted batch writes, in the order it must be written.
#[derive(Debug, Clone)]
pub(crate) struct IngestPlan<'a> {
    pub batch: &'a IngestBatch,
    pub assurance: String,
    /// Stored intervals to close; written before `opened`, which may reopen the same one.
    pub closed: Vec<Closed<'a>>,
    pub opened: Vec<Opened<'a>>,
    /// The batch's connectors folded to one row each, in key order (the lock order).
    pub connectors: BTreeMap<&'a str, Sighting<'a>>,
    pub sessions: Vec<SessionChange<'a>>,
    pub settled: Vec<Settled<'a>>,
}

impl<'a> IngestPlan<'a> {
    pub(crate) fn outcome(&self) -> IngestOutcome {
        IngestOutcome::Stored { head: self.batch.last_seq, head_hash: self.batch.hash }
    }

    pub(crate) fn inventory(&self) -> Option<&'a Inventory> {
        self.batch.inventory.as_ref()
    }
}

/// What ingest does with a batch.
#[derive(Debug, Clone)]
pub(crate) enum Planned<'a> {
    /// Nothing is written; the answer is the verdict (duplicate, out of order, …).
    Refused(IngestOutcome),
    Accepted(Box<IngestPlan<'a>>),
}

/// The plan for one batch against its device's `head` (None: unknown device) and the
/// device's open intervals as (connector, locus). `stored_hash` reads the hash of a stored
/// batch with the same range; it is asked only for a batch at or behind the head.
pub(crate) fn plan<'a>(
    b: &'a IngestBatch,
    head: Option<Head>,
    open: impl IntoIterator<Item = (String, String)>,
    stored_hash: impl FnOnce() -> Result<Option<Vec<u8>>>,
) -> Result<Planned<'a>> {
    let Some(head) = head else {
        return Err(StoreError::UnknownDevice(b.device_id.clone()));
    };
    if head.revoked {
        return Ok(Planned::Refused(IngestOutcome::Revoked));
    }
    if let Some(refused) = verdict(b, head.seq, head.hash, stored_hash)? {
        return Ok(Planned::Refused(refused));
    }
    let (closed, opened) = presence(b, open);
    let mut sessions = Vec::new();
    let mut settled = Vec::new();
    for o in &b.observations {
        if let Some(outcome) = &o.directive {
            settled.push(Settled { outcome, at_ms: o.observed_at_ms, seq: o.seq });
        }
        if let Some(session) = &o.session {
            sessions.push(if o.change.ends_presence() {
                SessionChange::Close { session, at_ms: o.observed_at_ms, seq: o.seq }
            } else {
                SessionChange::Open { session, seq: o.seq }
            });
        }
    }
    Ok(Planned::Accepted(Box::new(IngestPlan {
        batch: b,
        assurance: head.assurance,
        closed,
        opened,
        connectors: sightings(b),
        sessions,
        settled,
    })))
}

/// The acceptance rule: None when the batch continues the chain, else the verdict.
fn verdict(
    b: &IngestBatch,
    seq_head: u64,
    head_hash: [u8; 32],
    stored_hash: impl FnOnce() -> Result<Option<Vec<u8>>>,
) -> Result<Option<IngestOutcome>> {
    if b.last_seq <= seq_head {
        return Ok(Some(match stored_hash()? {
            Some(h) if h == b.hash => IngestOutcome::Duplicate { head: seq_head, head_hash },
            _ => IngestOutcome::Conflict,
        }));
    }
    if b.first_seq != seq_head + 1 {
        return Ok(Some(IngestOutcome::OutOfOrder { expected: seq_head + 1 }));
    }
    if b.prev_hash != head_hash {
        return Ok(Some(IngestOutcome::BrokenChain));
    }
    Ok(None)
}

/// Where an interval the replay knows of is open.
enum Open {
    Stored,
    /// Opened by this batch: index into the new intervals.
    New(usize),
}

/// The batch's sightings replayed against the open intervals (the rules in the module doc).
fn presence<'a>(
    b: &'a IngestBatch,
    open: impl IntoIterator<Item = (String, String)>,
) -> (Vec<Closed<'a>>, Vec<Opened<'a>>) {
    let mut state: HashMap<(String, String), Open> = open.into_iter().map(|id| (id, Open::Stored)).collect();
    let (mut closed, mut opened) = (Vec::new(), Vec::<Opened<'a>>::new());
    for o in &b.observations {
        let Some(c) = &o.connector else { continue };
        let id = (c.key.clone(), c.locus.clone());
        if o.change.ends_presence() {
            match state.remove(&id) {
                Some(Open::Stored) => {
                    closed.push(Closed { key: &c.key, locus: &c.locus, at_ms: o.observed_at_ms, seq: o.seq })
                }
                Some(Open::New(i)) => {
                    let p = &mut opened[i];
                    p.closed = Some((p.at_ms.max(o.observed_at_ms), o.seq));
                }
                None => {}
            }
        } else if let std::collections::hash_map::Entry::Vacant(v) = state.entry(id) {
            v.insert(Open::New(opened.len()));
            opened.push(Opened {
                key: &c.key,
                locus: &c.locus,
                user: c.user.as_deref(),
                at_ms: o.observed_at_ms,
                seq: o.seq,
                closed: None,
            });
        }
    }
    (closed, opened)
}

/// The batch's connectors folded to one row each, in key order.
pub(crate) fn sightings(b: &IngestBatch) -> BTreeMap<&str, Sighting<'_>> {
    let mut seen: BTreeMap<&str, Sighting<'_>> = BTreeMap::new();
    for o in &b.observations {
        let Some(c) = &o.connector else { continue };
        let at = o.observed_at_ms;
        let s = seen.entry(&c.key).or_insert_with(|| Sighting {
            kind: c.kind,
            label: &c.label,
            first_ms: at,
            last_ms: at,
            latest: "",
            user: None,
        });
        s.first_ms = s.first_ms.min(at);
        s.last_ms = s.last_ms.max(at);
        s.latest = &o.data;
        s.user = c.user.as_deref().or(s.user);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, ObservationKind, Outcome};
    use crate::store::{ConnectorRef, ObservationRecord};

    /// (change, connector key, locus, observed_at_ms); seq is the position + 1.
    type Obs = (&'static str, &'static str, &'static str, i64);

    fn batch(obs: &[Obs]) -> IngestBatch {
        IngestBatch {
            device_id: "d".into(),
            first_seq: 1,
            last_seq: obs.len().max(1) as u64,
            prev_hash: [0; 32],
            hash: [1; 32],
            payload: Vec::new(),
            signature: Vec::new(),
            received_at_ms: 1_000,
            observations: obs
                .iter()
                .enumerate()
                .map(|(i, &(change, key, locus, at))| ObservationRecord {
                    seq: i as u64 + 1,
                    observed_at_ms: at,
                    change: match change {
                        "appeared" => Change::Appeared,
                        "seen" => Change::Snapshot,
                        _ => Change::Disappeared,
                    },
                    kind: ObservationKind::App,
                    connector: Some(ConnectorRef {
                        key: key.into(),
                        kind: "tool",
                        label: key.into(),
                        user: None,
                        locus: locus.into(),
                    }),
                    session: None,
                    directive: None,
                    data: format!("{{\"at\":{at}}}"),
                })
                .collect(),
            inventory: None,
        }
    }

    fn head(seq: u64, hash: [u8; 32]) -> Option<Head> {
        Some(Head { seq, hash, revoked: false, assurance: "tpm".into() })
    }

    /// Expected plan, spelled as data: closed stored intervals as (key, locus, at, seq);
    /// opened ones as (key, locus, at, seq, closed).
    type Expect = (&'static [(&'static str, &'static str, i64, u64)], &'static [Interval]);
    type Interval = (&'static str, &'static str, i64, u64, Option<(i64, u64)>);
    /// (name, open intervals as (key, locus), observations, expected).
    type PresenceCase = (&'static str, &'static [(&'static str, &'static str)], &'static [Obs], Expect);
    /// (name, head, stored hash of the same range, verdict; None: accepted).
    type VerdictCase = (&'static str, Option<Head>, Option<[u8; 32]>, Option<IngestOutcome>);

    #[test]
    fn presence_rules_as_data() {
        let cases: &[PresenceCase] = &[
            (
                "a first sighting opens",
                &[],
                &[("appeared", "k", "/a", 10)],
                (&[], &[("k", "/a", 10, 1, None)]),
            ),
            ("a snapshot opens too", &[], &[("seen", "k", "/a", 10)], (&[], &[("k", "/a", 10, 1, None)])),
            (
                "a sighting of an open interval keeps it",
                &[("k", "/a")],
                &[("seen", "k", "/a", 10)],
                (&[], &[]),
            ),
            (
                "a repeated sighting in one batch opens once",
                &[],
                &[("appeared", "k", "/a", 10), ("seen", "k", "/a", 20)],
                (&[], &[("k", "/a", 10, 1, None)]),
            ),
            (
                "a disappearance closes a stored interval",
                &[("k", "/a")],
                &[("disappeared", "k", "/a", 30)],
                (&[("k", "/a", 30, 1)], &[]),
            ),
            (
                "a disappearance with nothing open is a no-op",
                &[],
                &[("disappeared", "k", "/a", 30)],
                (&[], &[]),
            ),
            (
                "a repeated disappearance closes once",
                &[("k", "/a")],
                &[("disappeared", "k", "/a", 30), ("disappeared", "k", "/a", 40)],
                (&[("k", "/a", 30, 1)], &[]),
            ),
            (
                "opened and closed in one batch, never ending before it began",
                &[],
                &[("appeared", "k", "/a", 50), ("disappeared", "k", "/a", 40)],
                (&[], &[("k", "/a", 50, 1, Some((50, 2)))]),
            ),
            (
                "closed then reopened: the stored one closes, a new one opens",
                &[("k", "/a")],
                &[("disappeared", "k", "/a", 30), ("appeared", "k", "/a", 35)],
                (&[("k", "/a", 30, 1)], &[("k", "/a", 35, 2, None)]),
            ),
            (
                "loci are separate presences of one connector",
                &[("k", "/a")],
                &[("appeared", "k", "/b", 10), ("disappeared", "k", "/a", 20)],
                (&[("k", "/a", 20, 2)], &[("k", "/b", 10, 1, None)]),
            ),
            (
                "connectors are separate",
                &[("j", "/a")],
                &[("disappeared", "k", "/a", 20), ("seen", "j", "/a", 20)],
                (&[], &[]),
            ),
        ];
        for (name, open, obs, (closed, opened)) in cases {
            let b = batch(obs);
            let open = open.iter().map(|(k, l)| (k.to_string(), l.to_string()));
            let Planned::Accepted(p) = plan(&b, head(0, [0; 32]), open, || Ok(None)).unwrap() else {
                panic!("{name}: refused");
            };
            let got_closed: Vec<_> = p.closed.iter().map(|c| (c.key, c.locus, c.at_ms, c.seq)).collect();
            let got_opened: Vec<_> =
                p.opened.iter().map(|o| (o.key, o.locus, o.at_ms, o.seq, o.closed)).collect();
            assert_eq!(got_closed, closed.to_vec(), "{name}: closed");
            assert_eq!(got_opened, opened.to_vec(), "{name}: opened");
        }
    }

    #[test]
    fn verdicts_as_data() {
        let b = batch(&[("seen", "k", "/a", 1), ("seen", "k", "/a", 2)]); // seq 1..=2, prev [0], hash [1]
        let stored = |h: Option<[u8; 32]>| move || Ok(h.map(|h| h.to_vec()));
        let cases: Vec<VerdictCase> = vec![
            ("continues the chain", head(0, [0; 32]), None, None),
            (
                "a replay of a stored batch",
                head(2, [1; 32]),
                Some([1; 32]),
                Some(IngestOutcome::Duplicate { head: 2, head_hash: [1; 32] }),
            ),
            ("same range, other contents", head(2, [1; 32]), Some([9; 32]), Some(IngestOutcome::Conflict)),
            ("behind the head, range not stored", head(5, [5; 32]), None, Some(IngestOutcome::Conflict)),
        ];
        for (name, h, s, want) in &cases {
            let got = match plan(&b, h.clone(), [], stored(*s)).unwrap() {
                Planned::Refused(o) => Some(o),
                Planned::Accepted(_) => None,
            };
            assert_eq!(&got, want, "{name}");
        }
        let gap = IngestBatch { first_seq: 3, last_seq: 4, ..b.clone() };
        assert!(matches!(
            plan(&gap, head(1, [0; 32]), [], || Ok(None)).unwrap(),
            Planned::Refused(IngestOutcome::OutOfOrder { expected: 2 })
        ));
        assert!(matches!(
            plan(&b, head(0, [7; 32]), [], || Ok(None)).unwrap(),
            Planned::Refused(IngestOutcome::BrokenChain)
        ));
        let revoked = Some(Head { seq: 0, hash: [0; 32], revoked: true, assurance: String::new() });
        assert!(matches!(
            plan(&b, revoked, [], || Ok(None)).unwrap(),
            Planned::Refused(IngestOutcome::Revoked)
        ));
        assert!(matches!(plan(&b, None, [], || Ok(None)), Err(StoreError::UnknownDevice(_))));
        let asked = std::cell::Cell::new(false);
        let _accepted = plan(&b, head(0, [0; 32]), [], || {
            asked.set(true);
            Ok(None)
        });
        assert!(!asked.get(), "a batch ahead of the head never reads a stored hash");
    }

    #[test]
    fn connectors_fold_to_one_row_each_with_the_last_data_and_account() {
        let mut b = batch(&[("seen", "k", "/a", 30), ("seen", "k", "/b", 10), ("seen", "j", "/a", 20)]);
        if let Some(c) = b.observations[0].connector.as_mut() {
            c.user = Some("alice".into());
        }
        let s = sightings(&b);
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), ["j", "k"]);
        let k = &s["k"];
        assert_eq!((k.first_ms, k.last_ms, k.latest, k.user), (10, 30, "{\"at\":10}", Some("alice")));
    }

    #[test]
    fn sessions_and_outcomes_keep_observation_order() {
        let mut b = batch(&[("seen", "k", "/a", 1), ("disappeared", "k", "/a", 2)]);
        let session = SessionRef { os_user: "u".into(), terminal: "t".into(), host: None, started_at_ms: 1 };
        for o in &mut b.observations {
            o.session = Some(session.clone());
            o.directive = Some(OutcomeRef {
                directive_id: "x".into(),
                outcome: Outcome::Enforced,
                detail: String::new(),
                mode: String::new(),
            });
        }
        let Planned::Accepted(p) = plan(&b, head(0, [0; 32]), [], || Ok(None)).unwrap() else { panic!() };
        assert_eq!(
            p.sessions,
            [
                SessionChange::Open { session: &session, seq: 1 },
                SessionChange::Close { session: &session, at_ms: 2, seq: 2 }
            ]
        );
        assert_eq!(p.settled.iter().map(|s| (s.at_ms, s.seq)).collect::<Vec<_>>(), [(1, 1), (2, 2)]);
        assert_eq!(p.outcome(), IngestOutcome::Stored { head: 2, head_hash: [1; 32] });
    }
}
