//! The TPM backend on a real software TPM (swtpm). `scripts/test.sh` starts one and sets
//! SIGHTLINE_TEST_TPM_TCTI; run by hand with `scripts/swtpm.sh start DIR 2321` and
//! `SIGHTLINE_TEST_TPM_TCTI=swtpm:host=127.0.0.1,port=2321 cargo test -p sightline-agent --features tpm --test integration tpm`.
//!
//! One test function: a raw swtpm serves one connection at a time.

#![allow(clippy::disallowed_types, reason = "times synchronous TPM operations")]

use std::time::Instant;

use sightline_agent::keys::tpm::TpmKey;
use sightline_agent::keys::{Backend, DeviceKey, KeyError};
use sightline_proto::p256;

fn tcti() -> String {
    std::env::var("SIGHTLINE_TEST_TPM_TCTI").expect(
        "SIGHTLINE_TEST_TPM_TCTI is not set: start a swtpm with scripts/swtpm.sh (scripts/test.sh does)",
    )
}

#[test]
fn tpm_key_is_created_persisted_signs_and_detects_a_stale_blob() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let key = TpmKey::open(dir.path(), &tcti()).unwrap();
    let created = started.elapsed();
    assert_eq!(key.backend(), Backend::Tpm);
    let spki = key.public_key_spki();
    assert!(dir.path().join("tpm/device.priv").exists() && dir.path().join("tpm/device.pub").exists());

    // Many signatures: a missing left-pad of r or s would fail a fraction of them.
    let started = Instant::now();
    let n = 64;
    for i in 0..n {
        let msg = format!("sightline.v1.test\0message {i}");
        let sig = key.sign(msg.as_bytes()).unwrap();
        p256::verify(&spki, b"sightline.v1.test\0", format!("message {i}").as_bytes(), &sig).unwrap();
    }
    let per_sign = started.elapsed() / n;
    drop(key);

    // Reopened from the blobs: the same key.
    let started = Instant::now();
    let again = TpmKey::open(dir.path(), &tcti()).unwrap();
    let reopened = started.elapsed();
    assert_eq!(again.public_key_spki(), spki);
    drop(again);
    println!("swtpm: create key {created:?}, reopen {reopened:?}, sign {per_sign:?} per signature");

    // A blob the TPM no longer accepts (as after a TPM clear) is reported, not replaced.
    let priv_path = dir.path().join("tpm/device.priv");
    let mut blob = std::fs::read(&priv_path).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    std::fs::write(&priv_path, blob).unwrap();
    match TpmKey::open(dir.path(), &tcti()) {
        Err(KeyError::Stale(msg)) => assert!(msg.contains("re-enroll"), "{msg}"),
        other => panic!("expected a stale-key error, got {other:?}"),
    }
    assert!(dir.path().join("tpm/device.pub").exists(), "the blob must not be replaced silently");
}
