//! The signed batch envelope. Anything off the wire opens or is refused without a panic;
//! and a batch the device key sealed opens exactly when it is internally consistent, to the
//! very batch that was sealed (sealing and opening agree).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_proto::{envelope, pb};

fuzz_target!(|data: &[u8]| {
    let key = &*common::KEY;
    if let Ok(signed) = pb::SignedBatch::decode(data) {
        let _ = envelope::open(&signed, &key.spki);
        let _ = envelope::open(&signed, data);
    }
    if let Ok(batch) = pb::Batch::decode(data) {
        let (signed, hash) = envelope::seal(&batch, &key.spki, |m| key.sign(m)).expect("signing");
        let contiguous = !batch.observations.is_empty()
            && batch
                .observations
                .iter()
                .enumerate()
                .all(|(i, o)| Some(o.seq) == batch.first_seq.checked_add(i as u64));
        let consistent = contiguous && batch.prev_batch_hash.len() == 32;
        match envelope::open(&signed, &key.spki) {
            Ok(v) => {
                assert!(consistent, "an inconsistent batch opened");
                assert_eq!(v.batch, batch);
                assert_eq!(v.hash, hash);
                assert_eq!(v.last_seq, batch.first_seq + batch.observations.len() as u64 - 1);
            }
            Err(e) => assert!(!consistent, "a consistent batch was refused: {e}"),
        }
        // Any change to the signed bytes is refused.
        if !signed.payload.is_empty() {
            let mut forged = signed.clone();
            let i = data.len() % forged.payload.len();
            forged.payload[i] ^= 0x01;
            assert!(envelope::open(&forged, &key.spki).is_err(), "a flipped payload byte verified");
        }
    }
});
