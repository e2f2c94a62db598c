//! The spool against an in-memory model: random appends, commits, clean reopens and crashes
//! that tear the last write, checking the invariants of the module doc after every step.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// A record's bytes are a function of its id, so any record read back can be checked.
fn payload(id: u64, size: usize) -> Vec<u8> {
    let seed = id.to_le_bytes();
    (0..size).map(|i| seed[i % 8] ^ (i as u8)).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Commit(usize),
    Reopen,
    /// Append, then crash with the last segment cut `cut`/255 of the way into what the
    /// append wrote, optionally followed by garbage.
    TornAppend(Vec<usize>, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let sizes = prop::collection::vec(1usize..3000, 1..12);
    prop_oneof![
        4 => sizes.clone().prop_map(Op::Append),
        3 => (0usize..40).prop_map(Op::Commit),
        1 => Just(Op::Reopen),
        1 => (sizes, any::<u8>(), any::<bool>()).prop_map(|(s, c, g)| Op::TornAppend(s, c, g)),
    ]
}

/// What must hold whatever happened: the spool holds exactly the newest records not yet
/// committed or counted as lost, each byte-identical, and every record is accounted for.
struct Model {
    sizes: BTreeMap<u64, usize>,
    recorded: u64,
    committed: u64,
}

impl Model {
    fn check(&self, spool: &Spool, cfg: &SpoolConfig) {
        assert!(spool.bytes() <= cfg.max_bytes, "{} > bound {}", spool.bytes(), cfg.max_bytes);
        assert_eq!(
            self.recorded,
            self.committed + spool.evicted_total() + spool.depth(),
            "every recorded observation is pending, committed or counted as lost"
        );
        let all = spool.peek(usize::MAX, usize::MAX).unwrap();
        let next = spool.next_id();
        let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = (next - spool.depth()..next).collect();
        assert_eq!(ids, expected, "pending records are the newest, contiguous, oldest first");
        for (id, bytes) in &all {
            assert_eq!(*bytes, payload(*id, self.sizes[id]), "record {id} reads back as written");
        }
    }
}

fn cfg() -> SpoolConfig {
    SpoolConfig { max_bytes: 48 * 1024, segment_bytes: 8 * 1024 }
}

fn append(spool: &mut Spool, model: &mut Model, sizes: &[usize]) -> (u64, Vec<Vec<u8>>) {
    let first = spool.next_id();
    let records: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(i, &s)| payload(first + i as u64, s)).collect();
    for (i, s) in sizes.iter().enumerate() {
        model.sizes.insert(first + i as u64, *s);
    }
    assert_eq!(spool.append(&records).unwrap(), first);
    (first, records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn spool_keeps_its_invariants(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (mut spool, _) = Spool::open(&path, cfg()).unwrap();
        let mut model = Model { sizes: BTreeMap::new(), recorded: 0, committed: 0 };
        for op in ops {
            match op {
                Op::Append(sizes) => {
                    append(&mut spool, &mut model, &sizes);
                    model.recorded += sizes.len() as u64;
                }
                Op::Commit(n) => {
                    let taken = spool.peek(n, usize::MAX).unwrap();
                    if let Some((last, _)) = taken.last() {
                        let reported = spool.evicted_total();
                        spool.commit(*last, reported).unwrap();
                        model.committed += taken.len() as u64;
                        prop_assert_eq!(spool.unreported_loss(), 0);
                    }
                }
                Op::Reopen => {
                    let before = (spool.next_id(), spool.depth(), spool.loss_counters());
                    drop(spool);
                    let (s, rec) = Spool::open(&path, cfg()).unwrap();
                    spool = s;
                    prop_assert_eq!(rec, Recovery::default(), "a clean reopen repairs nothing");
                    prop_assert_eq!(before, (spool.next_id(), spool.depth(), spool.loss_counters()));
                }
                Op::TornAppend(sizes, cut, garbage) => {
                    let last_before = spool.segments.back().map(|s| (s.path.clone(), s.bytes));
                    let depth_before = spool.depth();
                    let evicted_before = spool.evicted_total();
                    append(&mut spool, &mut model, &sizes);
                    let seg = spool.segments.back().unwrap();
                    let start = match &last_before {
                        Some((p, b)) if *p == seg.path => *b,
                        _ => 0,
                    };
                    let cut_at = start + (seg.bytes - start) * u64::from(cut) / 255;
                    let tail_path = seg.path.clone();
                    drop(spool);
                    let f = OpenOptions::new().write(true).open(&tail_path).unwrap();
                    f.set_len(cut_at).unwrap();
                    if garbage {
                        let mut f = OpenOptions::new().append(true).open(&tail_path).unwrap();
                        f.write_all(&[0xAB; 13]).unwrap();
                    }
                    let (s, _) = Spool::open(&path, cfg()).unwrap();
                    spool = s;
                    // The torn append never returned: any prefix of it may survive, nothing else
                    // may change (evictions it caused were durable before it wrote).
                    let survived = (spool.depth() + spool.evicted_total()) - (depth_before + evicted_before);
                    prop_assert!(survived <= sizes.len() as u64);
                    model.recorded += survived;
                }
            }
            model.check(&spool, &cfg());
        }
    }
}

#[test]
fn overflow_evicts_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig { max_bytes: 64 * 1024, segment_bytes: 16 * 1024 };
    let (mut spool, _) = Spool::open(dir.path(), cfg).unwrap();
    for i in 0..100u64 {
        spool.append(&[payload(i + 1, 1000)]).unwrap();
    }
    assert!(spool.bytes() <= cfg.max_bytes);
    let lost = spool.unreported_loss();
    assert!(lost > 0);
    assert_eq!(lost + spool.depth(), 100);
    let first = spool.peek(1, usize::MAX).unwrap();
    assert_eq!(first[0].0, lost + 1, "the oldest went first");
    // Loss survives a restart until it is reported.
    drop(spool);
    let (mut spool, _) = Spool::open(dir.path(), cfg).unwrap();
    assert_eq!(spool.unreported_loss(), lost);
    spool.commit(lost + 1, lost).unwrap();
    assert_eq!(spool.unreported_loss(), 0);
}

#[test]
fn corruption_in_an_old_segment_is_counted_as_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig { max_bytes: 1 << 20, segment_bytes: 4096 };
    let (mut spool, _) = Spool::open(dir.path(), cfg).unwrap();
    for i in 0..20u64 {
        spool.append(&[payload(i + 1, 1000)]).unwrap();
    }
    let first_seg = spool.segments.front().unwrap().clone_path();
    drop(spool);
    // Flip a byte inside the second record of the first segment.
    let mut bytes = fs::read(&first_seg).unwrap();
    bytes[1008 + 8 + 10] ^= 0xFF;
    fs::write(&first_seg, bytes).unwrap();
    let (spool, rec) = Spool::open(dir.path(), cfg).unwrap();
    assert!(rec.corrupt_records >= 1);
    assert_eq!(spool.unreported_loss(), rec.corrupt_records);
    let ids: Vec<u64> = spool.peek(usize::MAX, usize::MAX).unwrap().iter().map(|r| r.0).collect();
    assert_eq!(ids[0], 1, "records before the damage are kept");
    assert!(!ids.contains(&2), "the damaged record is not handed on");
    assert_eq!(ids.len() as u64 + rec.corrupt_records, 20);
}

impl Segment {
    fn clone_path(&self) -> PathBuf {
        self.path.clone()
    }
}
