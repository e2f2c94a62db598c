//! Every message the collector accepts decodes or is refused without a panic, and what
//! decodes re-encodes to the same message. Observations then go through the collector's
//! conversion: the stored JSON is valid, times land in the plausible window, and any time
//! formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_proto::pb;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<M> {
    let m = M::decode(data).ok()?;
    let again = M::decode(m.encode_to_vec().as_slice()).expect("a decoded message re-encodes and decodes");
    assert_eq!(m, again);
    Some(m)
}

fuzz_target!(|data: &[u8]| {
    round_trip::<pb::AgentMessage>(data);
    round_trip::<pb::BeginEnrollmentRequest>(data);
    round_trip::<pb::CompleteEnrollmentRequest>(data);
    round_trip::<pb::SignedClaims>(data);
    round_trip::<pb::DeviceClaims>(data);
    round_trip::<pb::DirectiveBody>(data);
    if let Some(batch) = round_trip::<pb::Batch>(data) {
        let now = 1_764_410_400_000;
        for o in &batch.observations {
            let (r, _) = sightline_server::ingest::convert::record_received(o, now);
            assert!(
                (sightline_server::clock::EARLIEST_MS..=now + 300_000).contains(&r.observed_at_ms),
                "{}",
                r.observed_at_ms
            );
            if let Some(s) = &r.session {
                assert!(
                    s.started_at_ms >= sightline_server::clock::EARLIEST_MS
                        && s.started_at_ms <= now + 300_000
                );
            }
            serde_json::from_str::<serde_json::Value>(&r.data).expect("stored data is JSON");
            let _ = sightline_server::clock::rfc3339(o.observed_at_ms);
        }
        let _ = sightline_server::ingest::convert::inventory(&batch);
    }
});
