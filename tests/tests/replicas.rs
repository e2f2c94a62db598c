//! Stateless replicas on one PostgreSQL database: two collector processes (the shipped
//! binary) behind a TCP balancer, simulated agents over real mTLS, one replica SIGKILLed
//! mid-load. Every observation must be stored exactly once; directives issued by another
//! process must reach agents on the surviving replica; an enrollment begun on one replica
//! completes on the other.
//!
//! Needs `SIGHTLINE_TEST_POSTGRES` (scripts/postgres.sh); skipped without it, except under
//! CI, where that is a failure.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_proto::pb;
use sightline_proto::pb::enrollment_client::EnrollmentClient;
use sightline_server::store::postgres::PostgresStore;
use sightline_server::store::{DeviceStore, ReadModel};
use sightline_tests::fleet::{Load, SimAgent, Stats, enroll_fleet};
use sightline_tests::pg::TestDb;
use sightline_tests::proxy::Proxy;
use sightline_tests::{ServerProcess, bin};
use tokio_util::sync::CancellationToken;

/// Two replicas sharing the database and the key material (the first creates it, the
/// second gets a copy: what a deployment distributes to every replica).
fn replicas(root: &Path, url: &str) -> (ServerProcess, ServerProcess) {
    let (a, b) = (root.join("a"), root.join("b"));
    let args = ["--database", url, "--stream-rate", "100000"];
    let first = ServerProcess::start(&a, &args);
    std::fs::create_dir_all(&b).unwrap();
    for f in ["ca.key", "ca.pem", "server.key", "server.pem", "org-fingerprint.key", "collector-signing.pk8"]
    {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    let second = ServerProcess::start(&b, &args);
    (first, second)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The replicas' database as a test reads it (opened off the runtime threads), and the CA
/// agents trust.
async fn open(db: &TestDb, root: &Path) -> (Arc<PostgresStore>, Vec<u8>) {
    let url = db.url.clone();
    let store = Arc::new(blocking(move || PostgresStore::open(&url).unwrap()).await);
    (store, std::fs::read(root.join("a/ca.pem")).unwrap())
}

async fn tokens(store: &Arc<PostgresStore>, n: usize) -> Vec<String> {
    let store = store.clone();
    blocking(move || {
        (0..n)
            .map(|_| sightline_server::create_token(store.as_ref(), Duration::from_secs(3600)).unwrap())
            .collect()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_load_loses_and_duplicates_nothing() {
    let Some(db) = TestDb::for_test("replicas_failover") else { return };
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = replicas(root.path(), &db.url);
    let proxy =
        Proxy::start(vec![([127, 0, 0, 1], a.port).into(), ([127, 0, 0, 1], b.port).into()]).await.unwrap();
    let (store, ca) = open(&db, root.path()).await;

    const AGENTS: usize = 240;
    const BATCHES: u64 = 12;
    const OBS: usize = 20;
    let enrolled = enroll_fleet(&proxy.url(), &ca, tokens(&store, AGENTS).await, 16).await.unwrap();
    let load = Load {
        obs_per_batch: OBS,
        interval: Duration::from_millis(150),
        batches: Some(BATCHES),
        stream_life: None,
    };
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (i, agent) in enrolled.iter().enumerate() {
        let mut sim = SimAgent::from(agent, i).unwrap();
        let (url, load, stats, stop) = (proxy.url(), load.clone(), stats.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            sim.run(&url, &load, &stats, &stop).await;
            sim
        }));
    }

    // A quarter of the way in, replica A dies without a goodbye.
    let total = AGENTS as u64 * BATCHES;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.batches.load(std::sync::atomic::Ordering::Relaxed) < total / 4 {
        assert!(Instant::now() < deadline, "load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_a = proxy.routed[0].load(std::sync::atomic::Ordering::Relaxed);
    a.kill9();
    let killed_at = stats.batches.load(std::sync::atomic::Ordering::Relaxed);

    let mut sims = Vec::new();
    let finish = tokio::time::timeout(Duration::from_secs(120), async {
        for t in tasks {
            sims.push(t.await.unwrap());
        }
    });
    assert!(finish.await.is_ok(), "agents did not finish within 120 s after the failover");
    assert!(on_a > 0, "some streams were on the killed replica");
    assert!(killed_at < total, "the kill happened mid-load");
    let errors = stats.errors.load(std::sync::atomic::Ordering::Relaxed);
    assert!(errors > 0, "agents on the killed replica saw their streams fail");

    // Exactly once: every device's chain is whole, and every observation row is there once
    // (counted in the table itself, not through the store's bookkeeping).
    let ids: Vec<String> = sims.iter().map(|s| s.device_id.clone()).collect();
    let url = db.url.clone();
    let checked = blocking({
        let store = store.clone();
        move || {
            for id in &ids {
                let d = store.device(id).unwrap().unwrap();
                assert_eq!(d.seq_head, BATCHES * OBS as u64, "{id}: chain head");
                let mut next = 1;
                for b in &store.batches(id).unwrap() {
                    assert_eq!(b.first_seq, next, "{id}: batches contiguous, none twice");
                    next = b.last_seq + 1;
                }
                assert_eq!(next, d.seq_head + 1);
            }
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let rows = c
                .query(
                    "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM observations GROUP BY 1",
                    &[],
                )
                .unwrap();
            assert_eq!(rows.len(), ids.len(), "observations from every device");
            let mut stored = 0;
            for r in rows {
                let (id, n, distinct, lo, hi): (String, i64, i64, i64, i64) =
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                let want = (BATCHES * OBS as u64) as i64;
                assert_eq!((n, distinct, lo, hi), (want, want, 1, want), "{id}: every sequence number once");
                stored += n as u64;
            }
            stored
        }
    })
    .await;
    assert_eq!(checked, total * OBS as u64);
    eprintln!(
        "failover: {AGENTS} agents, {} streams opened ({on_a} connections had gone to replica A before it died), {errors} stream errors, \
         {checked} observations stored once each",
        stats.connects.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Directives issued by another process (the CLI, on the shared database) reach agents
    // whose streams are on the surviving replica.
    let holders = 20;
    let hold =
        Load { obs_per_batch: 1, interval: Duration::from_millis(500), batches: None, stream_life: None };
    let live = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    for mut sim in sims.into_iter().take(holders) {
        let (url, load, stats, stop) = (proxy.url(), hold.clone(), live.clone(), stop.clone());
        tasks.push(tokio::spawn(async move { sim.run(&url, &load, &stats, &stop).await }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.streams.load(std::sync::atomic::Ordering::Relaxed) < holders as i64 {
        assert!(Instant::now() < deadline, "holders did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = std::process::Command::new(bin("sightline-server"))
        .args(["revoke", "tool:ollama", "--reason", "replica test", "--data-dir"])
        .arg(root.path().join("a"))
        .env("SIGHTLINE_DATABASE", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.directives.load(std::sync::atomic::Ordering::Relaxed) < holders as u64 {
        assert!(
            Instant::now() < deadline,
            "directives reached {} of {holders} agents on the surviving replica",
            live.directives.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM while the holders' streams are open and sending: the surviving replica ends
    // them, finishes what its ingest lanes hold, writes the connector summaries it keeps in
    // memory (the last second's are still pending), and exits cleanly.
    let (status, took) = tokio::task::block_in_place(|| b.terminate(Duration::from_secs(20)));
    assert!(status.success(), "collector exited with {status}");
    eprintln!("shutdown: the surviving replica exited {took:?} after SIGTERM with {holders} streams open");
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let url = db.url.clone();
    let stale = blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(
            "SELECT c.key FROM connectors c JOIN (SELECT connector_key, max(observed_at_ms) AS at FROM observations \
             WHERE connector_key IS NOT NULL GROUP BY 1) o ON o.connector_key = c.key WHERE c.last_seen_ms <> o.at",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
    })
    .await;
    assert!(stale.is_empty(), "connector summaries behind their observations after shutdown: {stale:?}");

    // Retention through the CLI on the shared database: nothing is that old yet.
    let out = std::process::Command::new(bin("sightline-server"))
        .args(["prune", "--keep", "400d", "--json", "--data-dir"])
        .arg(root.path().join("a"))
        .env("SIGHTLINE_DATABASE", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pruned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (pruned["observations_removed"].as_u64(), pruned["batches_removed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(pruned["partitions_dropped"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_begun_on_one_replica_completes_on_the_other() {
    let Some(db) = TestDb::for_test("replicas_enroll") else { return };
    let root = tempfile::tempdir().unwrap();
    let (a, b) = replicas(root.path(), &db.url);
    let (store, ca) = open(&db, root.path()).await;
    let token = tokens(&store, 1).await.remove(0);
    let keydir = tempfile::tempdir().unwrap();
    let key = sightline_agent::keys::open(keydir.path(), sightline_agent::keys::KeyChoice::Software).unwrap();
    let spki = key.public_key_spki();
    let client = |url: String| {
        let ca = ca.clone();
        async move { EnrollmentClient::new(sightline_agent::transport::connect(&url, &ca, None).await.unwrap()) }
    };

    let challenge = client(a.url())
        .await
        .begin(pb::BeginEnrollmentRequest {
            token,
            facts: Some(pb::DeviceFacts {
                hostname: "switcher".into(),
                os: "linux".into(),
                os_version: "6.1".into(),
                agent_version: "test".into(),
                serial: None,
                machine_id: None,
            }),
            key: Some(pb::KeyAttestation {
                backend: pb::KeyBackend::Software as i32,
                device_key_spki: spki.clone(),
                tpm: None,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, tls_spki) = sightline_agent::keys::new_tls_key_pem().unwrap();
    let mut msg = sightline_proto::envelope::ENROLL_POP_CONTEXT.to_vec();
    msg.extend(sightline_proto::envelope::enroll_pop_message(&challenge.nonce, &spki, &tls_spki));
    let complete = pb::CompleteEnrollmentRequest {
        challenge_id: challenge.challenge_id,
        proof_of_possession: key.sign(&msg).unwrap(),
        tls_key_spki: tls_spki,
        activated_secret: vec![],
        certify_info: vec![],
        certify_signature: vec![],
    };
    let done = client(b.url()).await.complete(complete.clone()).await.unwrap().into_inner();
    let id = done.device_id.clone();
    let device = blocking({
        let store = store.clone();
        move || store.device(&id).unwrap()
    })
    .await
    .expect("the device is stored");
    assert_eq!((device.hostname.as_str(), device.key_spki.as_slice()), ("switcher", spki.as_slice()));
    // The challenge was used up: replaying the completion on either replica is refused.
    for url in [a.url(), b.url()] {
        let again = client(url).await.complete(complete.clone()).await;
        assert!(again.is_err(), "a completed challenge cannot be completed again");
    }
}
