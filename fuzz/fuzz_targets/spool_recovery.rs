//! The spool after damage. Records are appended, the segment files are then damaged at
//! places the input chooses (bytes flipped, tails cut), and the spool is opened again: it
//! must open or fail with an error (no panic, no hang), and every record it hands on must be
//! one that was appended, under the id it was appended with — damage may lose records
//! (counted as loss when it is not a torn tail) but never invents or misplaces one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_agent::spool::{Spool, SpoolConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = || {
        let mut c = SpoolConfig::with_max_bytes(64 * 1024);
        c.segment_bytes = 512;
        c
    };
    // Records whose contents say their index, of sizes the input picks.
    let count = (n % 40) as usize + 1;
    let records: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let size = rest.get(i).map_or(8, |&b| b as usize % 200 + 4);
            let mut r = (i as u32).to_le_bytes().to_vec();
            r.resize(size, i as u8);
            r
        })
        .collect();
    let first = {
        let (mut s, _) = Spool::open(dir.path(), cfg()).expect("a new spool");
        let first = s.next_id();
        for r in &records {
            s.append(std::slice::from_ref(r)).expect("append");
        }
        first
    };
    // Damage: the rest of the input as (segment, offset, action) triples.
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .expect("listing")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    for d in rest.get(count..).unwrap_or_default().chunks(3) {
        let [s, off, action] = d else { break };
        let Some(path) = segs.get(*s as usize % segs.len().max(1)) else { break };
        let Ok(mut bytes) = std::fs::read(path) else { continue };
        if bytes.is_empty() {
            continue;
        }
        let at = (*off as usize * 7) % bytes.len();
        if action % 4 == 0 {
            bytes.truncate(at);
        } else {
            bytes[at] ^= action;
        }
        std::fs::write(path, &bytes).expect("damage");
    }
    if let Ok((s, _)) = Spool::open(dir.path(), cfg()) {
        let got = s.peek(usize::MAX, usize::MAX).expect("reading what opened");
        for (id, payload) in &got {
            let i = (id - first) as usize;
            assert!(i < records.len(), "record id {id} was never appended");
            assert_eq!(payload, &records[i], "record {id} is not what was appended under that id");
        }
        let mut ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len(), got.len(), "a record handed on twice");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "records out of order");
    }
});
