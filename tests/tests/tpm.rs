//! An agent whose device key lives in a (software) TPM, end to end. Needs a swtpm:
//! `scripts/test.sh` starts one and sets SIGHTLINE_TPM_TCTI. One test function: a raw
//! swtpm serves one connection at a time.

use std::time::{Duration, Instant};

use sightline_agent::keys::KeyChoice;
use sightline_agent::state::StateDir;
use sightline_server::ingest::{Assurance, IngestConfig};
use sightline_tests::*;

#[tokio::test]
async fn a_tpm_key_enrolls_as_hardware_unattested_and_streams() {
    assert!(
        std::env::var_os("SIGHTLINE_TPM_TCTI").is_some(),
        "SIGHTLINE_TPM_TCTI is not set: start a swtpm (scripts/test.sh does)"
    );
    let c = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let opts = sightline_agent::enroll::EnrollOptions {
        server: c.url.clone(),
        token: c.token(),
        ca_pem: c.ca_pem(),
        key_backend: KeyChoice::Tpm,
    };
    let started = Instant::now();
    let e = sightline_agent::enroll::enroll(&state, &opts).await.unwrap();
    let enroll_time = started.elapsed();
    // A TPM key whose residency nothing proves yet: hardware, but not attested.
    assert_eq!(e.assurance, "hardware_unattested");
    let d = c.shared.store.device(&e.device_id).unwrap().unwrap();
    assert_eq!((d.key_backend.as_str(), d.assurance.as_str()), ("tpm", "hardware_unattested"));

    // `auto` keeps using the TPM key the state dir already has.
    let config = sightline_agent::config::Config {
        state_dir: dir.path().to_owned(),
        root: fixtures().join("linux"),
        scan_interval: Duration::from_secs(3600),
        processes: false,
    };
    let run = sightline_agent::run::RunOptions {
        config,
        once: true,
        key_backend: KeyChoice::Auto,
        deliver: sightline_agent::deliver::DeliverOptions {
            timeout: Duration::from_secs(30),
            ..Default::default()
        },
    };
    let started = Instant::now();
    sightline_agent::run::run(run, std::future::pending()).await.unwrap();
    let run_time = started.elapsed();
    let d = c.shared.store.device(&e.device_id).unwrap().unwrap();
    assert!(d.seq_head > 0 && d.last_attested_ms.is_some());
    assert_eq!(c.shared.store.count_observations(&e.device_id).unwrap(), d.seq_head);
    println!("swtpm: enrollment {enroll_time:?}, one scan signed and delivered {run_time:?}");
    c.stop().await;

    // A collector that demands attestation refuses it.
    let strict = Collector::start_with(IngestConfig {
        require_assurance: Assurance::HardwareAttested,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let opts = sightline_agent::enroll::EnrollOptions {
        server: strict.url.clone(),
        token: strict.token(),
        ca_pem: strict.ca_pem(),
        key_backend: KeyChoice::Tpm,
    };
    let err = sightline_agent::enroll::enroll(&state, &opts).await.unwrap_err();
    assert!(format!("{err:#}").contains("hardware_attested"), "{err:#}");
    strict.stop().await;
}
