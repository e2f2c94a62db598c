//! The store conformance suite: every check runs against SQLite and against PostgreSQL, so
//! the two backends answer every question the same way.
//!
//! PostgreSQL comes from `SIGHTLINE_TEST_POSTGRES` (an admin URL; `scripts/postgres.sh`
//! starts one); each test gets a database of its own. Without it the PostgreSQL half is
//! skipped locally and fails under CI, so CI cannot pass without having run it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use serde_json::json;
use sightline_server::domain::{Change, ObservationKind, Outcome, RevocationProgress};
use sightline_server::signins::SignIn;
use sightline_server::store::postgres::PostgresStore;
use sightline_server::store::sqlite::SqliteStore;
use sightline_server::store::{ActivityFilter, ActivityRecord};
use sightline_server::store::{
    Campaign, Challenge, ClaimsRecord, ConnectorEvent, ConnectorRef, Device, DevicePage, DirectiveRecord,
    IngestBatch, IngestOutcome, ItemDecision, ObservationRecord, OutcomeRef, PendingLogin, Person, Reminder,
    ReviewItem, Revocation, ScimGroup, SessionRef, SsoIdentity, Store, StoreError,
};

/// A store under test, and what must be cleaned up after it.
enum Backend {
    /// The directory goes when the store does.
    Sqlite {
        store: SqliteStore,
        _dir: tempfile::TempDir,
    },
    Postgres(Option<Box<PostgresStore>>, String, String),
}

impl Backend {
    fn store(&self) -> &dyn Store {
        match self {
            Backend::Sqlite { store, .. } => store,
            Backend::Postgres(s, _, _) => s.as_deref().expect("store is present until drop"),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres(store, admin, db) = self {
            drop(store.take());
            let dropped = postgres::Client::connect(admin, postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")));
            if let Err(e) = dropped {
                eprintln!("could not drop test database {db}: {e}");
            }
        }
    }
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("sightline.db")).unwrap();
    Backend::Sqlite { store: s, _dir: dir }
}

/// A fresh database on the test PostgreSQL server, or None (skip) outside CI.
fn postgres() -> Option<Backend> {
    let Ok(admin) = std::env::var("SIGHTLINE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the conformance suite on PostgreSQL: set SIGHTLINE_TEST_POSTGRES (scripts/postgres.sh)"
        );
        eprintln!("SIGHTLINE_TEST_POSTGRES is not set: PostgreSQL half skipped");
        return None;
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let db = format!("conformance_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut c =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connecting to SIGHTLINE_TEST_POSTGRES");
    c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let url = match admin.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &admin[..i]),
        _ => panic!("SIGHTLINE_TEST_POSTGRES must end in /DATABASE"),
    };
    let store = PostgresStore::open(&url).unwrap();
    Some(Backend::Postgres(Some(Box::new(store)), admin, db))
}

/// The store over TLS (`sslmode=verify-full&sslrootcert=CA`): every connection is encrypted
/// and the server's certificate is verified against that CA; a CA that did not sign it is
/// refused before any query, and TLS without a CA is refused outright.
#[test]
fn postgres_over_tls_verifies_the_server() {
    let Ok(ca) = std::env::var("SIGHTLINE_TEST_POSTGRES_CA") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test TLS to PostgreSQL: set SIGHTLINE_TEST_POSTGRES_CA (scripts/postgres.sh makes one)"
        );
        return;
    };
    let Some(plain) = postgres() else { return };
    let Backend::Postgres(_, admin, db) = &plain else { unreachable!("a PostgreSQL backend") };
    let url = format!("{}/{db}", &admin[..admin.rfind('/').unwrap()]);

    let tls = PostgresStore::open(&format!(
        "{url}?application_name=sightline-tls-test&sslmode=verify-full&sslrootcert={ca}"
    ))
    .unwrap();
    enroll(&tls, "over-tls");
    assert!(plain.store().device("over-tls").unwrap().is_some(), "written over TLS, read over TCP");
    let mut c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = 'sightline-tls-test'",
            &[],
        )
        .unwrap();
    let (connections, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(connections >= 1 && all_tls == Some(true), "{connections} connections, all TLS: {all_tls:?}");
    drop(tls);

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).unwrap().pem()).unwrap();
    let refused = PostgresStore::open(&format!("{url}?sslmode=verify-full&sslrootcert={}", other.display()));
    let e = refused.err().expect("a server certificate from another CA is refused").to_string();
    assert!(e.contains("certificate"), "{e}");
    let e =
        PostgresStore::open(&format!("{url}?sslmode=require")).err().expect("TLS without a CA").to_string();
    assert!(e.contains("needs sslrootcert"), "{e}");
}

/// `conformance!(name)` runs `name(&dyn Store)` once per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { super::$name(super::sqlite().store()) } )* }
        mod on_postgres { $( #[test] fn $name() { if let Some(b) = super::postgres() { super::$name(b.store()) } } )* }
    };
}

conformance!(
    enrollment_tokens_and_challenges,
    reenrolling_the_same_hardware_keeps_the_record,
    ingest_accepts_only_the_continuation_of_the_chain,
    presence_intervals_follow_sightings,
    connector_inventory_and_summaries,
    login_sessions_are_intervals,
    revocation_targets_outstanding_directives_and_outcomes,
    people_names_and_conflicts,
    scim_profiles_and_groups,
    signins_tokens_and_dashboard_sessions,
    device_pages_and_fleet_counts,
    exports_read_in_insertion_order,
    exports_read_which_presence_end_an_observation_is,
    prune_drops_old_evidence,
    one_batch_from_two_replicas_is_stored_once,
    a_group_commit_answers_each_batch_as_alone,
    claims_of_many_streams_commit_together,
    catalog_status_comes_from_claims_and_reports,
    tokens_are_listed_expire_and_are_revoked,
    playbook_events_are_recorded_once,
    approval_requests_close_once_and_lapses_are_recorded_once,
    the_approval_workflow_keeps_its_rules,
    review_campaigns_settle_races_in_the_rows,
    activity_keeps_the_latest_report_bound_to_connectors,
    activity_keys_by_account_bounds_reports_and_exports_by_report,
);

fn device_record(id: &str, hardware: Option<&str>) -> Device {
    Device {
        id: id.into(),
        hostname: format!("host-{id}"),
        os: "linux".into(),
        os_version: "6.1".into(),
        agent_version: "0.1.0".into(),
        key_backend: "software".into(),
        assurance: "software".into(),
        key_spki: vec![1, 2, 3],
        cert_sha256: format!("cert-{id}"),
        next_cert_sha256: None,
        enrolled_at_ms: 1_000,
        last_seen_ms: None,
        last_attested_ms: None,
        hardware_id: hardware.map(str::to_owned),
        clock_skew_ms: None,
        seq_head: 0,
        head_hash: [0; 32],
        revoked_at_ms: None,
        users: vec![],
    }
}

fn enroll(s: &dyn Store, id: &str) {
    let token = format!("token-{id}");
    s.create_token(token.as_bytes(), "", 0, i64::MAX).unwrap();
    s.complete_enrollment(token.as_bytes(), &device_record(id, None), &[], 1).unwrap();
}

fn tool(locus: &str, user: Option<&str>) -> ConnectorRef {
    ConnectorRef {
        key: "tool:ollama".into(),
        kind: "tool",
        label: "ollama".into(),
        user: user.map(str::to_owned),
        locus: locus.into(),
    }
}

fn obs(seq: u64, at: i64, change: &'static str, connector: Option<ConnectorRef>) -> ObservationRecord {
    ObservationRecord {
        seq,
        observed_at_ms: at,
        change: Change::parse(change).expect("a change spelled as stored"),
        kind: if connector.is_some() { ObservationKind::Process } else { ObservationKind::Gap },
        connector,
        session: None,
        directive: None,
        data: json!({"seq": seq, "dropped": 2}).to_string(),
    }
}

/// A batch continuing `device`'s chain at its current head, received at `received_at_ms`.
fn batch(
    s: &dyn Store,
    device: &str,
    received_at_ms: i64,
    observations: Vec<ObservationRecord>,
) -> IngestBatch {
    let head = s.device(device).unwrap().unwrap();
    let first = head.seq_head + 1;
    let last = head.seq_head + observations.len() as u64;
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&last.to_le_bytes());
    hash[8..16].copy_from_slice(&(device.len() as u64).to_le_bytes());
    IngestBatch {
        device_id: device.into(),
        first_seq: first,
        last_seq: last,
        prev_hash: head.head_hash,
        hash,
        payload: format!("payload {device} {first}").into_bytes(),
        signature: vec![9; 64],
        received_at_ms,
        observations,
        inventory: None,
    }
}

fn stored(s: &dyn Store, b: &IngestBatch) {
    match s.ingest(b).unwrap() {
        IngestOutcome::Stored { head, .. } => assert_eq!(head, b.last_seq),
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// Ingests one observation as the next batch of `device`.
fn observe(s: &dyn Store, device: &str, change: &'static str, locus: &str, outcome: Option<(&str, &str)>) {
    let seq = s.device(device).unwrap().unwrap().seq_head + 1;
    let mut o = obs(seq, seq as i64, change, outcome.is_none().then(|| tool(locus, None)));
    if let Some((id, what)) = outcome {
        o.kind = ObservationKind::DirectiveOutcome;
        o.directive = Some(OutcomeRef {
            directive_id: id.into(),
            outcome: Outcome::parse(what).expect("an outcome spelled as stored"),
            detail: String::new(),
            mode: "enforce".into(),
        });
    }
    stored(s, &batch(s, device, 5_000, vec![o]));
}

fn enrollment_tokens_and_challenges(s: &dyn Store) {
    assert!(matches!(s.check_token(b"nope", 10), Err(StoreError::TokenUnknown)));
    s.create_token(b"t1", "", 0, 100).unwrap();
    s.check_token(b"t1", 10).unwrap();
    assert!(matches!(s.check_token(b"t1", 100), Err(StoreError::TokenExpired)));
    let c = Challenge {
        id: "ch1".into(),
        nonce: vec![7; 32],
        token_hash: b"t1".to_vec(),
        expires_at_ms: 50,
        hostname: "h".into(),
        os: "linux".into(),
        os_version: "1".into(),
        agent_version: "0".into(),
        key_backend: "tpm".into(),
        device_key_spki: vec![4; 91],
        tpm: Some(sightline_server::store::TpmChallenge {
            secret: vec![1; 32],
            ek_public: vec![2; 10],
            ak_public: vec![3; 10],
            device_key_public: vec![4; 10],
            ek_trusted: true,
        }),
    };
    s.put_challenge(&c).unwrap();
    // Taken once: a second completion of the same challenge (another replica) finds nothing.
    assert_eq!(s.take_challenge("ch1").unwrap(), Some(c));
    assert_eq!(s.take_challenge("ch1").unwrap(), None);
    let d = s.complete_enrollment(b"t1", &device_record("d1", None), &[], 10).unwrap();
    assert_eq!(d.id, "d1");
    assert!(matches!(
        s.complete_enrollment(b"t1", &device_record("d2", None), &[], 11),
        Err(StoreError::TokenUsed)
    ));
    assert!(s.device("d2").unwrap().is_none(), "a refused enrollment stores nothing");
    assert_eq!(s.device_by_cert("cert-d1").unwrap().unwrap().id, "d1");
    s.stage_certificate("d1", "cert-next").unwrap();
    assert_eq!(s.device_by_cert("cert-next").unwrap().unwrap().id, "d1", "the staged certificate works");
    s.promote_certificate("d1", "cert-next").unwrap();
    assert!(s.device_by_cert("cert-d1").unwrap().is_none());
    assert!(matches!(s.stage_certificate("zz", "x"), Err(StoreError::UnknownDevice(_))));
    s.revoke_device("d1", 20).unwrap();
    s.revoke_device("d1", 30).unwrap();
    assert_eq!(s.device("d1").unwrap().unwrap().revoked_at_ms, Some(20), "the first revocation time stays");
    assert!(matches!(s.revoke_device("zz", 1), Err(StoreError::UnknownDevice(_))));
}

fn reenrolling_the_same_hardware_keeps_the_record(s: &dyn Store) {
    s.create_token(b"a", "", 0, i64::MAX).unwrap();
    s.create_token(b"b", "", 0, i64::MAX).unwrap();
    s.create_token(b"c", "", 0, i64::MAX).unwrap();
    s.create_token(b"d", "", 0, i64::MAX).unwrap();
    // Recorded under an older spelling of the identity ("legacy"), as earlier collectors did.
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    s.complete_enrollment(b"a", &device_record("first", Some("legacy")), &ids(&["legacy"]), 1).unwrap();
    stored(s, &batch(s, "first", 5_000, vec![obs(1, 1, "appeared", Some(tool("pid:1", None)))]));
    // Enrolling again names the current identity first and the old one after: same record,
    // now under the current identity.
    let again = s
        .complete_enrollment(b"b", &device_record("second", Some("ek1")), &ids(&["ek1", "legacy"]), 2)
        .unwrap();
    assert_eq!((again.id.as_str(), again.seq_head, again.cert_sha256.as_str()), ("first", 1, "cert-second"));
    assert_eq!(again.hardware_id.as_deref(), Some("ek1"));
    assert_eq!(s.device_by_hardware_id("ek1").unwrap().unwrap().key_spki, vec![1, 2, 3]);
    assert!(s.device_by_hardware_id("legacy").unwrap().is_none());
    assert_eq!(s.devices().unwrap().len(), 1);
    s.revoke_device("first", 3).unwrap();
    // A revoked TPM stays refused by either spelling.
    for (token, hw) in [(b"c", ids(&["ek1"])), (b"d", ids(&["other", "ek1"]))] {
        assert!(matches!(
            s.complete_enrollment(token, &device_record("third", Some("ek1")), &hw, 4),
            Err(StoreError::Revoked(id)) if id == "first"
        ));
    }
}

fn ingest_accepts_only_the_continuation_of_the_chain(s: &dyn Store) {
    enroll(s, "d");
    let unknown =
        IngestBatch { device_id: "ghost".into(), ..batch(s, "d", 5_000, vec![obs(1, 1, "snapshot", None)]) };
    assert!(matches!(s.ingest(&unknown), Err(StoreError::UnknownDevice(_))));
    let b1 = batch(s, "d", 5_000, (1..=3).map(|i| obs(i, i as i64, "snapshot", None)).collect());
    stored(s, &b1);
    assert_eq!(s.ingest(&b1).unwrap(), IngestOutcome::Duplicate { head: 3, head_hash: b1.hash });
    let mut forged = b1.clone();
    forged.hash[31] ^= 1;
    assert_eq!(s.ingest(&forged).unwrap(), IngestOutcome::Conflict);
    let mut gap = batch(s, "d", 5_000, vec![obs(5, 5, "snapshot", None)]);
    gap.first_seq = 5;
    gap.last_seq = 5;
    assert_eq!(s.ingest(&gap).unwrap(), IngestOutcome::OutOfOrder { expected: 4 });
    let mut broken = batch(s, "d", 5_000, vec![obs(4, 4, "snapshot", None)]);
    broken.prev_hash = [7; 32];
    assert_eq!(s.ingest(&broken).unwrap(), IngestOutcome::BrokenChain);
    let mut next = batch(s, "d", 6_000, vec![obs(4, 4, "snapshot", None)]);
    next.inventory = Some(sightline_server::store::Inventory {
        hostname: "renamed".into(),
        os: "linux".into(),
        os_version: "6.2".into(),
        agent_version: "0.2.0".into(),
        users: vec!["alice".into()],
    });
    stored(s, &next);
    let d = s.device("d").unwrap().unwrap();
    assert_eq!((d.seq_head, d.head_hash, d.last_seen_ms), (4, next.hash, Some(6_000)));
    assert_eq!((d.hostname.as_str(), d.users.as_slice()), ("renamed", ["alice".to_owned()].as_slice()));
    assert_eq!(s.count_observations("d").unwrap(), 4, "rejected batches stored nothing");
    let batches = s.batches("d").unwrap();
    assert_eq!(batches.iter().map(|b| (b.first_seq, b.last_seq)).collect::<Vec<_>>(), [(1, 3), (4, 4)]);
    assert_eq!((batches[0].payload.clone(), batches[0].hash), (b1.payload.clone(), b1.hash));
    assert_eq!(s.gaps().unwrap().len(), 4, "every gap observation, with what it dropped");
    assert_eq!(s.gaps().unwrap()[0].3, 2);
    s.revoke_device("d", 1).unwrap();
    assert_eq!(
        s.ingest(&batch(s, "d", 7_000, vec![obs(5, 5, "snapshot", None)])).unwrap(),
        IngestOutcome::Revoked
    );
}

fn presence_intervals_follow_sightings(s: &dyn Store) {
    enroll(s, "d");
    // In one batch: appears, is seen again, goes, comes back; a second locus appears.
    stored(
        s,
        &batch(
            s,
            "d",
            5_000,
            vec![
                obs(1, 100, "appeared", Some(tool("pid:1", Some("alice")))),
                obs(2, 150, "snapshot", Some(tool("pid:1", Some("alice")))),
                obs(3, 200, "disappeared", Some(tool("pid:1", Some("alice")))),
                obs(4, 300, "appeared", Some(tool("pid:1", Some("alice")))),
                obs(5, 310, "appeared", Some(tool("pid:2", None))),
            ],
        ),
    );
    // In later batches: a repeated disappearance closes nothing twice; an interval opened in
    // an earlier batch is closed, the close never earlier than the opening.
    stored(s, &batch(s, "d", 5_000, vec![obs(6, 400, "disappeared", Some(tool("pid:1", None)))]));
    stored(s, &batch(s, "d", 5_000, vec![obs(7, 500, "disappeared", Some(tool("pid:1", None)))]));
    stored(s, &batch(s, "d", 5_000, vec![obs(8, 250, "disappeared", Some(tool("pid:2", None)))]));
    let h = s.presence_history("d").unwrap();
    let spans: Vec<_> = h
        .iter()
        .map(|p| (p.locus.as_str(), p.appeared_at_ms, p.disappeared_at_ms, p.appeared_seq, p.disappeared_seq))
        .collect();
    assert_eq!(
        spans,
        [
            ("pid:1", 100, Some(200), 1, Some(3)),
            ("pid:1", 300, Some(400), 4, Some(6)),
            ("pid:2", 310, Some(310), 5, Some(8)),
        ]
    );
    assert_eq!(h[0].os_user.as_deref(), Some("alice"));
    assert_eq!((h[0].kind.as_str(), h[0].label.as_str()), ("tool", "ollama"));
    assert_eq!(s.present_at("d", 120).unwrap().len(), 1);
    assert_eq!(s.present_at("d", 250).unwrap().len(), 0);
    assert_eq!(s.present_at("d", 200).unwrap().len(), 0, "closed at 200 means gone at 200");
    assert_eq!(s.present_at("d", 305).unwrap().len(), 1);
    assert!(s.present_now().unwrap().is_empty());
    stored(s, &batch(s, "d", 5_000, vec![obs(9, 600, "snapshot", Some(tool("pid:3", Some("bob"))))]));
    let now = s.present_now().unwrap();
    assert_eq!(now.iter().map(|p| p.locus.as_str()).collect::<Vec<_>>(), ["pid:3"]);
    assert_eq!(s.connector_presence("tool:ollama").unwrap().len(), 4);
    assert_eq!(s.presence_of_users_at(&["alice".into(), "bob".into()], 120).unwrap().len(), 1);
    assert_eq!(s.presence_of_users_at(&["bob".into()], 700).unwrap().len(), 1);
    let spans = s.presence_spans(&["tool:ollama".into()], 305, 450).unwrap();
    assert_eq!(spans.len(), 2, "the spans overlapping 305..450: {spans:?}");
    assert!(s.presence_spans(&["tool:other".into()], 0, 1_000).unwrap().is_empty());
    // A stored interval closed and opened again in one batch: the close is written first, so
    // the one-open-interval rule holds and both stretches are kept.
    stored(
        s,
        &batch(
            s,
            "d",
            5_000,
            vec![
                obs(10, 700, "disappeared", Some(tool("pid:3", None))),
                obs(11, 710, "appeared", Some(tool("pid:3", Some("bob")))),
                obs(12, 720, "snapshot", Some(tool("pid:3", Some("bob")))),
            ],
        ),
    );
    let pid3: Vec<_> = s
        .presence_history("d")
        .unwrap()
        .into_iter()
        .filter(|p| p.locus == "pid:3")
        .map(|p| (p.appeared_at_ms, p.disappeared_at_ms, p.appeared_seq, p.disappeared_seq))
        .collect();
    assert_eq!(pid3, [(600, Some(700), 9, Some(10)), (710, None, 11, None)]);
    // The connector's summary rows fold every sighting: earliest and latest, the last account
    // named (a sighting naming none keeps the one before).
    let c = s.connector("tool:ollama").unwrap().unwrap();
    assert_eq!((c.first_seen_ms, c.last_seen_ms), (100, 720));
    let d = &c.devices[0];
    assert_eq!(
        (d.first_seen_ms, d.last_seen_ms, d.user.as_deref(), d.present),
        (100, 720, Some("bob"), true)
    );
}

fn connector_inventory_and_summaries(s: &dyn Store) {
    enroll(s, "a");
    enroll(s, "b");
    let mut ext = tool("Default", Some("alice"));
    ext.key = "extension:abc".into();
    ext.kind = "extension";
    ext.label = "claude".into();
    let mut later = obs(2, 50, "changed", Some(ext.clone()));
    later.data = json!({"version": "2"}).to_string();
    stored(s, &batch(s, "a", 5_000, vec![obs(1, 100, "appeared", Some(ext.clone())), later]));
    stored(s, &batch(s, "b", 5_000, vec![obs(1, 300, "appeared", Some(tool("pid:1", None)))]));
    stored(s, &batch(s, "b", 5_000, vec![obs(2, 400, "appeared", Some(ext.clone()))]));
    stored(s, &batch(s, "b", 5_000, vec![obs(3, 500, "disappeared", Some(ext))]));
    let all = s.connectors().unwrap();
    assert_eq!(all.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["extension:abc", "tool:ollama"]);
    let e = s.connector("extension:abc").unwrap().unwrap();
    assert_eq!((e.first_seen_ms, e.last_seen_ms, e.seen_on), (50, 500, 2));
    assert_eq!(e.latest, json!({"seq": 3, "dropped": 2}), "the latest observation's data");
    let on_a = e.devices.iter().find(|d| d.device_id == "a").unwrap();
    assert_eq!(
        (on_a.user.as_deref(), on_a.first_seen_ms, on_a.last_seen_ms, on_a.present),
        (Some("alice"), 50, 100, true)
    );
    assert!(!e.devices.iter().find(|d| d.device_id == "b").unwrap().present);
    assert_eq!(s.device_connectors("a").unwrap().len(), 1);
    assert_eq!(s.device_connectors("b").unwrap().len(), 2);
    assert!(s.connector("tool:none").unwrap().is_none());
    let summaries = s.connector_summaries().unwrap();
    let e = summaries.iter().find(|c| c.key == "extension:abc").unwrap();
    assert_eq!((e.seen_on, e.devices.len(), e.devices[0].device_id.as_str()), (2, 1, "a"));
    use sightline_server::store::{ConnectorEvent, Decision, OwnerAssignment};
    let approved = Decision {
        status: "approved".into(),
        by: "admin".into(),
        at_ms: 9,
        reason: Some("team tool".into()),
        expires_at_ms: Some(99),
    };
    s.decide(
        "tool:ollama",
        Some(&approved),
        &ConnectorEvent::new("tool:ollama", 9, "approved", "admin", Some("team tool")),
    )
    .unwrap();
    assert_eq!(s.connector("tool:ollama").unwrap().unwrap().decision, Some(approved));
    let owner =
        OwnerAssignment { person_id: "p1".into(), reason: "runs it".into(), by: "admin".into(), at_ms: 10 };
    s.set_owner(
        "tool:ollama",
        Some(&owner),
        &ConnectorEvent::new("tool:ollama", 10, "owner_assigned", "admin", None),
    )
    .unwrap();
    let summaries = s.connector_summaries().unwrap();
    assert_eq!(summaries.iter().find(|c| c.key == "tool:ollama").unwrap().owner.as_ref(), Some(&owner));
    s.decide(
        "tool:ollama",
        None,
        &ConnectorEvent::new("tool:ollama", 11, "decision_withdrawn", "admin", None),
    )
    .unwrap();
    s.set_owner(
        "tool:ollama",
        None,
        &ConnectorEvent::new("tool:ollama", 12, "owner_cleared", "admin", Some("left")),
    )
    .unwrap();
    assert!(s.connector_summaries().unwrap().iter().all(|c| c.decision.is_none() && c.owner.is_none()));
    // The history keeps every change, in order; the export cursor reads it by seq.
    let events = s.connector_events("tool:ollama").unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["approved", "owner_assigned", "decision_withdrawn", "owner_cleared"]);
    assert_eq!(events[0].reason.as_deref(), Some("team tool"));
    assert_eq!(events[3].reason.as_deref(), Some("left"));
    let after = s.events_after(events[1].seq, 10).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(s.events_after(0, 1).unwrap()[0].event, "approved");
    assert!(s.connector_events("tool:none").unwrap().is_empty());
}

fn login_sessions_are_intervals(s: &dyn Store) {
    enroll(s, "d");
    let login = |seq, at, change| {
        let mut o = obs(seq, at, change, None);
        o.kind = ObservationKind::OsSession;
        o.session = Some(SessionRef {
            os_user: "alice".into(),
            terminal: "tty1".into(),
            host: None,
            started_at_ms: 1_000,
        });
        o
    };
    stored(s, &batch(s, "d", 5_000, vec![login(1, 1_100, "appeared"), login(2, 1_200, "snapshot")]));
    assert_eq!(s.sessions_at(Some("d"), 1_500).unwrap().len(), 1);
    assert_eq!(s.sessions_at(None, 1_500).unwrap().len(), 1);
    assert_eq!(s.sessions_at(Some("other"), 1_500).unwrap().len(), 0);
    stored(s, &batch(s, "d", 5_000, vec![login(3, 2_000, "disappeared")]));
    let at = s.sessions_of_users_at(&["alice".into()], 1_999).unwrap();
    assert_eq!(
        (at.len(), at[0].started_at_ms, at[0].ended_at_ms, at[0].appeared_seq),
        (1, 1_000, Some(2_000), 1)
    );
    assert!(s.sessions_at(Some("d"), 2_000).unwrap().is_empty());
}

fn directive(id: &str, device: &str, seq_head: u64) -> DirectiveRecord {
    DirectiveRecord {
        seq: 0,
        id: id.into(),
        device_id: device.into(),
        connector_key: "tool:ollama".into(),
        action: "terminate_process".into(),
        target: "ollama".into(),
        payload: vec![1],
        signature: vec![2],
        issued_at_ms: 10,
        expires_at_ms: 1_000,
        issued_at_seq: seq_head,
        sent_at_ms: None,
        outcome: None,
        outcome_at_ms: None,
        outcome_seq: None,
    }
}

fn revocation_targets_outstanding_directives_and_outcomes(s: &dyn Store) {
    enroll(s, "a");
    enroll(s, "b");
    observe(s, "a", "appeared", "pid:1", None);
    observe(s, "b", "appeared", "pid:2", None);
    assert!(s.revocation_targets(None, false, 100).unwrap().is_empty(), "nothing revoked yet");
    s.set_revocation(&Revocation {
        connector_key: "tool:ollama".into(),
        requested_at_ms: 5,
        requested_by: "test".into(),
        reason: String::new(),
    })
    .unwrap();
    let targets = s.revocation_targets(Some("tool:ollama"), false, 100).unwrap();
    assert_eq!(
        targets,
        [("tool:ollama".to_owned(), "a".to_owned(), 1), ("tool:ollama".to_owned(), "b".to_owned(), 1)]
    );
    assert_eq!(s.add_directives(&[directive("d1", "a", 1), directive("d2", "b", 1)], 100).unwrap().len(), 2);
    // Outstanding: neither a second directive nor a target.
    assert!(s.add_directives(&[directive("d1b", "a", 1)], 100).unwrap().is_empty());
    assert!(s.revocation_targets(None, false, 100).unwrap().is_empty());
    assert_eq!(s.open_directives("a", 100).unwrap().len(), 1);
    assert!(s.open_directives("a", 1_000).unwrap().is_empty(), "expired directives are not sent");
    s.mark_directive_sent("d1", 150).unwrap();
    s.mark_directive_sent("d1", 160).unwrap();
    assert_eq!(s.directive("d1").unwrap().unwrap().sent_at_ms, Some(150));
    let state = |s: &dyn Store| s.connector("tool:ollama").unwrap().unwrap().revocation.unwrap().state();
    assert_eq!(state(s), RevocationProgress::Pending);

    // Device b cannot settle a's directive; a settles its own.
    observe(s, "b", "snapshot", "pid:2", Some(("d1", "enforced")));
    assert!(s.directive("d1").unwrap().unwrap().outcome.is_none());
    observe(s, "a", "disappeared", "pid:1", None);
    observe(s, "a", "snapshot", "pid:1", Some(("d1", "enforced")));
    assert_eq!(s.directive("d1").unwrap().unwrap().outcome_seq, Some(3));
    observe(s, "b", "snapshot", "pid:2", Some(("d2", "report_only")));
    assert_eq!(state(s), RevocationProgress::Incomplete);
    let latest = s.connector("tool:ollama").unwrap().unwrap().revocation.unwrap().latest;
    assert_eq!(latest.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1", "d2"]);

    // b still has it, but nothing new appeared there: only a fresh `revoke` targets it.
    assert!(s.revocation_targets(None, true, 100).unwrap().is_empty());
    assert_eq!(s.revocation_targets(None, false, 100).unwrap().len(), 1);
    // On a, it comes back (a relaunch): new since the directive, so it is a target.
    observe(s, "a", "appeared", "pid:9", None);
    let again = s.revocation_targets(None, true, 100).unwrap();
    assert_eq!(again.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["a"]);
    let (devices, cursor) = s.directives_since(0).unwrap();
    assert_eq!(devices, ["a", "b"]);
    assert_eq!(s.directives_since(cursor).unwrap(), (vec![], cursor), "the cursor moves past what it saw");

    // Withdrawn: nothing more is sent, the unanswered directive is closed, history stays.
    assert_eq!(s.add_directives(&[directive("d3", "a", 4)], 100).unwrap().len(), 1);
    assert_eq!(s.directives_since(cursor).unwrap().0, ["a"]);
    assert!(s.withdraw_revocation("tool:ollama", 200).unwrap());
    assert!(s.open_directives("a", 300).unwrap().is_empty());
    let outcome = |id: &str| s.directive(id).unwrap().unwrap().outcome.map(|o| o.outcome);
    assert_eq!(outcome("d3"), Some(Outcome::Withdrawn));
    assert_eq!(outcome("d1"), Some(Outcome::Enforced));
    assert_eq!(s.directives_for_connector("tool:ollama").unwrap().len(), 3);
    assert!(s.connector("tool:ollama").unwrap().unwrap().revocation.is_none());
    assert!(s.revocation_targets(None, false, 300).unwrap().is_empty());
    assert!(!s.withdraw_revocation("tool:ollama", 300).unwrap(), "not revoked any more");
}

fn person(id: &str, user_name: &str, emails: &[&str]) -> Person {
    Person {
        id: id.into(),
        user_name: user_name.into(),
        external_id: Some(format!("ext-{id}")),
        display_name: Some(id.to_uppercase()),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        active: true,
        created_at_ms: id.len() as i64,
        modified_at_ms: 0,
        deprovisioned_at_ms: None,
        deleted_at_ms: None,
        ..Default::default()
    }
}

fn people_names_and_conflicts(s: &dyn Store) {
    let mut alice = person("p1", "Alice.Ng@Example.com", &["ang@example.org"]);
    s.create_person(&alice).unwrap();
    assert!(matches!(
        s.create_person(&person("p2", "alice.ng@example.COM", &[])),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.person("p1").unwrap(), Some(alice.clone()));
    assert_eq!(s.person_by_user_name("ALICE.NG@example.com").unwrap().unwrap().id, "p1");
    let found = |k: &str| s.people_by_keys(&[k.to_owned()]).unwrap().len();
    for k in ["alice.ng", "ALICE.NG@example.com", "ang", "ang@example.org"] {
        assert_eq!(found(k), 1, "{k}");
    }
    assert_eq!(found("alice"), 0);
    alice.emails = vec!["alice@example.org".into()];
    alice.active = false;
    alice.deprovisioned_at_ms = Some(77);
    s.update_person(&alice).unwrap();
    assert_eq!((found("ang"), found("alice")), (0, 1), "keys follow the record");
    assert_eq!(s.person("p1").unwrap().unwrap().deprovisioned_at_ms, Some(77));
    alice.deleted_at_ms = Some(80);
    s.update_person(&alice).unwrap();
    assert!(s.people().unwrap().is_empty(), "deleted people are not listed");
    assert_eq!(s.people_all().unwrap().len(), 1, "but stay on record");
    // Deleted, the userName is free again.
    s.create_person(&person("p3", "alice.ng@example.com", &[])).unwrap();
    assert_eq!(s.person_by_user_name("alice.ng@example.com").unwrap().unwrap().id, "p3");
}

/// The SCIM profile, the enterprise fields and groups round-trip; group names are unique
/// case-insensitively; members must be live people; a deleted person leaves every group.
fn scim_profiles_and_groups(s: &dyn Store) {
    use sightline_server::store::{Email, GroupMember, GroupRef, PersonName};
    let boss = person("m1", "boss@example.com", &[]);
    s.create_person(&boss).unwrap();
    let mut dana = person("p1", "dana@example.com", &["dana@example.com"]);
    dana.profile.name = PersonName {
        given_name: Some("Dana".into()),
        honorific_prefix: Some("Dr.".into()),
        ..Default::default()
    };
    dana.profile.emails = vec![Email {
        value: "Dana@Example.com".into(),
        kind: Some("work".into()),
        primary: Some(true),
        display: None,
    }];
    (dana.manager_id, dana.department, dana.employee_number) =
        (Some("m1".into()), Some("Finance".into()), Some("7".into()));
    s.create_person(&dana).unwrap();
    assert_eq!(s.person("p1").unwrap(), Some(dana.clone()));
    let member = |id: &str| GroupMember { id: id.into(), display: None };
    let mut g = ScimGroup {
        id: "g1".into(),
        display_name: "Engineering".into(),
        external_id: Some("x".into()),
        members: vec![member("p1"), member("m1")],
        created_at_ms: 1,
        modified_at_ms: 2,
    };
    s.create_group(&g).unwrap();
    let clash = ScimGroup { id: "g2".into(), display_name: "ENGINEERING".into(), ..g.clone() };
    assert!(matches!(s.create_group(&clash), Err(StoreError::Conflict(_))));
    let ghost = ScimGroup {
        id: "g3".into(),
        display_name: "Ghosts".into(),
        members: vec![member("nobody")],
        ..g.clone()
    };
    assert!(matches!(s.create_group(&ghost), Err(StoreError::Invalid(_))));
    assert!(s.group("g3").unwrap().is_none(), "a refused group is not half-written");
    let stored = s.group("g1").unwrap().unwrap();
    let shown: Vec<(&str, Option<&str>)> =
        stored.members.iter().map(|m| (m.id.as_str(), m.display.as_deref())).collect();
    assert_eq!(shown, vec![("m1", Some("M1")), ("p1", Some("P1"))], "members come with their display names");
    let in_groups = |id: &str| s.person(id).unwrap().unwrap().groups;
    assert_eq!(in_groups("p1"), vec![GroupRef { id: "g1".into(), display_name: "Engineering".into() }]);
    g.display_name = "Platform".into();
    g.members = vec![member("p1")];
    s.update_group(&g).unwrap();
    assert!(in_groups("m1").is_empty());
    assert_eq!(s.groups().unwrap().len(), 1);
    dana.deleted_at_ms = Some(9);
    s.update_person(&dana).unwrap();
    assert!(s.group("g1").unwrap().unwrap().members.is_empty(), "a deleted person leaves the group");
    assert!(s.delete_group("g1").unwrap());
    assert!(!s.delete_group("g1").unwrap());
}

fn signins_tokens_and_dashboard_sessions(s: &dyn Store) {
    let signin = |id: &str, at| SignIn {
        id: id.into(),
        source: "okta",
        user_name: "Alice@Example.com".into(),
        at_ms: at,
        ip: Some("10.0.0.1".into()),
        app: None,
        device: None,
        outcome: "success",
    };
    assert_eq!(s.add_signins(&[signin("okta:1", 10), signin("okta:2", 20)]).unwrap(), 2);
    assert_eq!(
        s.add_signins(&[signin("okta:2", 20), signin("okta:3", 30)]).unwrap(),
        1,
        "idempotent by event id"
    );
    let got = s.signins_for(&["alice@example.com".into()], 15, 40).unwrap();
    assert_eq!(got.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["okta:3", "okta:2"]);

    s.create_api_token(b"api", "admin", "ops", 1, None, "cli").unwrap();
    assert_eq!(s.api_token_role(b"api", 2).unwrap().as_deref(), Some("admin"));
    assert_eq!(s.api_token_role(b"other", 2).unwrap(), None);
    s.create_session(b"sess", b"api", 100, 200).unwrap();
    assert_eq!(s.session_role(b"sess", 150).unwrap().as_deref(), Some("admin"));
    assert_eq!(s.session_role(b"sess", 200).unwrap(), None, "expired");
    s.delete_session(b"sess").unwrap();
    assert_eq!(s.session_role(b"sess", 150).unwrap(), None);

    // OpenID Connect: a login is taken once, and not after it expired.
    let login = PendingLogin { state: "st".into(), nonce: "no".into(), verifier: "ve".into() };
    assert!(s.create_oidc_login(b"browser", &login, 100, 700).unwrap());
    assert!(s.create_oidc_login(b"late", &login, 100, 700).unwrap());
    assert_eq!(s.take_oidc_login(b"browser", 500).unwrap(), Some(login.clone()));
    assert_eq!(s.take_oidc_login(b"browser", 500).unwrap(), None, "used once");
    assert_eq!(s.take_oidc_login(b"late", 700).unwrap(), None, "expired");
    // Its sessions carry their own role, and end by sign-out or by subject.
    let ada = SsoIdentity { subject: "00u1".into(), email: "ada@example.com".into(), role: "viewer".into() };
    s.create_sso_session(b"sso1", &ada, 100, 200).unwrap();
    s.create_sso_session(b"sso2", &ada, 100, 300).unwrap();
    assert_eq!(s.session_role(b"sso1", 150).unwrap().as_deref(), Some("viewer"));
    assert_eq!(s.session_role(b"sso1", 200).unwrap(), None, "expired");
    assert_eq!(s.session_token(b"sso1").unwrap(), None, "no API token behind it");
    s.delete_session(b"sso1").unwrap();
    assert_eq!(s.session_role(b"sso1", 150).unwrap(), None);
    assert_eq!(s.end_sso_sessions("00u1").unwrap(), 1);
    assert_eq!(s.session_role(b"sso2", 150).unwrap(), None);
    // Offboarding ends sessions by address, in any case, and only that person's.
    let bob = SsoIdentity { subject: "00u2".into(), email: "Bob@Example.com".into(), role: "admin".into() };
    s.create_sso_session(b"sso3", &ada, 100, 300).unwrap();
    s.create_sso_session(b"sso4", &bob, 100, 300).unwrap();
    assert_eq!(s.end_sso_sessions_of(&[]).unwrap(), 0);
    assert_eq!(s.end_sso_sessions_of(&["bob@example.com".into(), "nobody@example.com".into()]).unwrap(), 1);
    assert_eq!(s.session_role(b"sso4", 150).unwrap(), None);
    assert_eq!(s.session_role(b"sso3", 150).unwrap().as_deref(), Some("viewer"));
}

fn device_pages_and_fleet_counts(s: &dyn Store) {
    for id in ["b-2", "a-1", "c-3"] {
        enroll(s, id);
    }
    stored(s, &batch(s, "a-1", 9_000, vec![obs(1, 1, "snapshot", None)]));
    s.revoke_device("c-3", 5).unwrap();
    let page = |q: Option<&str>, sort: &str, desc: bool| {
        let p = DevicePage {
            q: q.map(str::to_owned),
            assurance: None,
            sort: sort.into(),
            desc,
            limit: 2,
            offset: 0,
        };
        let (items, total) = s.devices_page(&p).unwrap();
        (items.into_iter().map(|d| d.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(page(None, "hostname", false), (vec!["a-1".into(), "b-2".into()], 3));
    assert_eq!(page(None, "hostname", true), (vec!["c-3".into(), "b-2".into()], 3));
    assert_eq!(page(Some("HOST-B"), "hostname", false), (vec!["b-2".into()], 1));
    assert_eq!(
        page(None, "last_seen", true).0[0],
        "a-1",
        "never-seen devices sort after seen ones, descending"
    );
    assert_eq!(page(None, "last_seen", false).0.len(), 2);
    let f = s.fleet_counts(10_000).unwrap();
    assert_eq!((f.devices, f.revoked), (3, 1));
    assert_eq!(f.last_seen, [1, 0, 0, 0, 1]);
    assert_eq!(f.by_os, [("linux".to_owned(), 2)]);
    let after = s.enrollments_after(0, "", 10).unwrap();
    assert_eq!(after.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a-1", "b-2", "c-3"]);
    assert_eq!(s.enrollments_after(1_000, "a-1", 10).unwrap().len(), 2);
}

fn exports_read_in_insertion_order(s: &dyn Store) {
    enroll(s, "d");
    // Received long ago, so a backend that lets in-flight writes settle shows them too.
    stored(s, &batch(s, "d", 1_000, (1..=3).map(|i| obs(i, i as i64 * 10, "snapshot", None)).collect()));
    stored(s, &batch(s, "d", 2_000, vec![obs(4, 40, "snapshot", None)]));
    let first = s.observations_after(0, 2).unwrap();
    assert_eq!(first.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((first[0].hostname.as_str(), first[0].received_at_ms), ("host-d", 1_000));
    let rest = s.observations_after(first[1].rowid, 10).unwrap();
    assert_eq!(rest.iter().map(|o| (o.seq, o.received_at_ms)).collect::<Vec<_>>(), [(3, 1_000), (4, 2_000)]);
    assert_eq!(s.max_observation_rowid().unwrap(), rest[1].rowid);
    // A cursor far behind still finds the next rows (PostgreSQL reads in id windows).
    assert_eq!(s.observations_after(-100_000, 1).unwrap()[0].seq, 1);
    assert_eq!(rest[1].data, json!({"seq": 4, "dropped": 2}));
    assert_eq!(s.export_cursor("hec", "observations").unwrap(), None);
    s.set_export_cursor("hec", "observations", "7").unwrap();
    s.set_export_cursor("hec", "observations", "9").unwrap();
    assert_eq!(s.export_cursor("hec", "observations").unwrap().as_deref(), Some("9"));
    s.mark_findings_exported("hec", &["f1".into(), "f2".into()]).unwrap();
    s.mark_findings_exported("hec", &["f2".into()]).unwrap();
    assert_eq!(s.exported_findings("hec").unwrap().len(), 2);
    assert!(s.exported_findings("file").unwrap().is_empty());
}

/// The export tells a change from a re-sighting by what the store read with each row: the
/// presence interval it opened or closed, and a device inventory's predecessor.
fn exports_read_which_presence_end_an_observation_is(s: &dyn Store) {
    enroll(s, "d");
    let inventory = |seq: u64, host: &str| ObservationRecord {
        kind: ObservationKind::DeviceInventory,
        data: json!({"hostname": host}).to_string(),
        ..obs(seq, seq as i64, "snapshot", None)
    };
    stored(
        s,
        &batch(
            s,
            "d",
            1_000,
            vec![
                obs(1, 10, "appeared", Some(tool("pid:1", None))),
                obs(2, 20, "snapshot", Some(tool("pid:1", None))),
                inventory(3, "a"),
                obs(4, 40, "disappeared", Some(tool("pid:1", None))),
                obs(5, 50, "disappeared", Some(tool("pid:1", None))),
                inventory(6, "b"),
            ],
        ),
    );
    let rows = s.observations_after(0, 10).unwrap();
    let edges: Vec<_> =
        rows.iter().map(|o| o.edge.as_ref().map(|e| (e.locus.as_str(), e.appeared_seq, e.closes))).collect();
    assert_eq!(edges, [Some(("pid:1", 1, false)), None, None, Some(("pid:1", 1, true)), None, None]);
    assert_eq!(rows[0].connector_key.as_deref(), Some("tool:ollama"));
    let previous: Vec<_> = rows.iter().map(|o| o.previous.clone()).collect();
    assert_eq!(previous, [None, None, None, None, None, Some(json!({"hostname": "a"}))]);
}

fn prune_drops_old_evidence(s: &dyn Store) {
    enroll(s, "d");
    let day = 86_400_000;
    let now = sightline_server::clock::now_ms();
    let old = now - 90 * day;
    stored(s, &batch(s, "d", old, vec![obs(1, old, "appeared", Some(tool("pid:1", None)))]));
    stored(s, &batch(s, "d", now, vec![obs(2, now, "snapshot", Some(tool("pid:1", None)))]));
    let p = s.prune(now - 45 * day).unwrap();
    assert_eq!((p.observations, p.batches), (1, 1), "{p:?}");
    assert_eq!(s.count_observations("d").unwrap(), 1);
    assert_eq!(s.batches("d").unwrap().iter().map(|b| b.first_seq).collect::<Vec<_>>(), [2]);
    assert_eq!(s.presence_history("d").unwrap().len(), 1, "presence history stays");
    // Ingest goes on after pruning, in the current month.
    stored(s, &batch(s, "d", now, vec![obs(3, now, "snapshot", None)]));
    assert_eq!(s.prune(now - 45 * day).unwrap().batches, 0, "nothing more to prune");
}

/// Two replicas receive the same batch at the same moment: it is stored once, the other
/// answer is a duplicate acknowledgement.
fn one_batch_from_two_replicas_is_stored_once(s: &dyn Store) {
    enroll(s, "d");
    let b = batch(
        s,
        "d",
        5_000,
        (1..=50).map(|i| obs(i, i as i64, "appeared", Some(tool(&format!("pid:{i}"), None)))).collect(),
    );
    let start = Arc::new(Barrier::new(2));
    let outcomes: Vec<IngestOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (b, start) = (&b, start.clone());
                scope.spawn(move || {
                    start.wait();
                    s.ingest(b).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Stored { .. })).count();
    let dup = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Duplicate { head: 50, .. })).count();
    assert_eq!((stored, dup), (1, 1), "{outcomes:?}");
    assert_eq!(s.count_observations("d").unwrap(), 50);
    assert_eq!(s.present_now().unwrap().len(), 50);
    assert_eq!(s.batches("d").unwrap().len(), 1);
}

/// A playbook step is recorded once per trigger: again after the same start it is not,
/// after a later start (an earlier story's event does not count) it is, and of several
/// replicas recording at the same moment exactly one does.
fn playbook_events_are_recorded_once(s: &dyn Store) {
    let e = |key: &str, at: i64| {
        ConnectorEvent::new(key, at, "offboarding_revoked", "system:offboarding", Some("alice left"))
            .with_detail(json!({"person": "alice@example.com"}))
    };
    assert!(s.record_event_once(&e("token:ab", 100), 0).unwrap());
    assert!(!s.record_event_once(&e("token:ab", 200), 0).unwrap(), "already recorded since 0");
    assert!(s.record_event_once(&e("token:cd", 200), 0).unwrap(), "another connector's is its own");
    assert!(s.record_event_once(&e("token:ab", 1_000), 500).unwrap(), "the one at 100 is before this start");
    let start = Arc::new(Barrier::new(6));
    let recorded = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let start = start.clone();
                scope.spawn(move || {
                    start.wait();
                    s.record_event_once(&e("token:ab", 2_000), 1_500).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|r| *r).count()
    });
    assert_eq!(recorded, 1, "replicas racing record one event");
    let events = s.connector_events("token:ab").unwrap();
    assert_eq!(events.iter().map(|e| e.at_ms).collect::<Vec<_>>(), vec![100, 1_000, 2_000]);
    assert_eq!(events[0].detail["person"], "alice@example.com");
    assert_eq!(events[0].actor, "system:offboarding");
}

/// The batch after `prev` in its device's chain (which `batch` cannot build before `prev`
/// is stored).
fn after(prev: &IngestBatch, observations: Vec<ObservationRecord>) -> IngestBatch {
    let (first, last) = (prev.last_seq + 1, prev.last_seq + observations.len() as u64);
    let mut hash = prev.hash;
    hash[..8].copy_from_slice(&last.to_le_bytes());
    IngestBatch {
        first_seq: first,
        last_seq: last,
        prev_hash: prev.hash,
        hash,
        payload: format!("payload {} {first}", prev.device_id).into_bytes(),
        observations,
        ..prev.clone()
    }
}

fn a_group_commit_answers_each_batch_as_alone(s: &dyn Store) {
    for d in ["d1", "d2", "d3"] {
        enroll(s, d);
    }
    let seen = |seq: u64| obs(seq, seq as i64, "appeared", Some(tool(&format!("pid:{seq}"), None)));
    let mut b1 = batch(s, "d1", 5_000, (1..=3).map(seen).collect());
    // Large and repetitive, as a real batch's protobuf is: stored compressed, read back exact.
    b1.payload = (0..4_000u32).flat_map(|i| format!("/home/ana/.config/x{}", i % 7).into_bytes()).collect();
    let b2 = after(&b1, vec![seen(4)]);
    let c1 = batch(s, "d2", 5_000, (1..=2).map(seen).collect());
    let ghost = IngestBatch { device_id: "ghost".into(), ..c1.clone() };
    let mut gap = batch(s, "d3", 5_000, vec![seen(5)]);
    (gap.first_seq, gap.last_seq) = (5, 5);
    // Out of device order on purpose: the backend may lock in id order, but the answers
    // come back in the group's order and a device's batches keep theirs.
    let group = [c1.clone(), b1.clone(), ghost, b2.clone(), b1.clone(), gap];
    let out = s.ingest_many(&group);
    assert_eq!(out.len(), group.len());
    assert_eq!(out[0].as_ref().unwrap(), &IngestOutcome::Stored { head: 2, head_hash: c1.hash });
    assert_eq!(out[1].as_ref().unwrap(), &IngestOutcome::Stored { head: 3, head_hash: b1.hash });
    assert!(matches!(out[2], Err(StoreError::UnknownDevice(_))), "{:?}", out[2]);
    assert_eq!(out[3].as_ref().unwrap(), &IngestOutcome::Stored { head: 4, head_hash: b2.hash });
    assert_eq!(out[4].as_ref().unwrap(), &IngestOutcome::Duplicate { head: 4, head_hash: b2.hash });
    assert_eq!(out[5].as_ref().unwrap(), &IngestOutcome::OutOfOrder { expected: 1 });
    assert_eq!((s.count_observations("d1").unwrap(), s.count_observations("d2").unwrap()), (4, 2));
    assert_eq!(s.count_observations("d3").unwrap(), 0);
    assert_eq!(s.present_now().unwrap().len(), 6);
    assert_eq!(s.batches("d1").unwrap()[0].payload, b1.payload, "the signed bytes, exactly");

    // A batch the database cannot take (PostgreSQL refuses NUL in text; SQLite stores it)
    // must not sink the batches grouped with it.
    let mut poison = after(&b2, vec![seen(5)]);
    poison.observations[0].connector.as_mut().unwrap().label = "bad\0label".into();
    let c2 = after(&c1, vec![seen(3)]);
    let out = s.ingest_many(&[c2.clone(), poison]);
    assert_eq!(out[0].as_ref().unwrap(), &IngestOutcome::Stored { head: 3, head_hash: c2.hash });
    assert_eq!(s.count_observations("d2").unwrap(), 3);
    let d1 = s.device("d1").unwrap().unwrap().seq_head;
    match &out[1] {
        Ok(IngestOutcome::Stored { head: 5, .. }) => assert_eq!(d1, 5),
        Err(_) => assert_eq!(d1, 4, "a refused batch leaves its device's head where it was"),
        other => panic!("unexpected {other:?}"),
    }
}

fn claims_of_many_streams_commit_together(s: &dyn Store) {
    enroll(s, "d1");
    enroll(s, "d2");
    let claims = |device: &str, at_ms: i64| ClaimsRecord {
        device_id: device.into(),
        at_ms,
        stream_nonce: vec![1; 32],
        payload: b"claims".to_vec(),
        signature: vec![2; 64],
        hostname: format!("{device}-host"),
        os: "linux".into(),
        os_version: "6.1".into(),
        agent_version: "0.3.0".into(),
        clock_skew_ms: Some(at_ms / 1000),
        catalog: Default::default(),
        claims: json!({"hostname": format!("{device}-host")}),
    };
    // The unknown device's record is refused on its own; the others are kept.
    let out = s.record_claims_many(&[claims("d2", 7_000), claims("ghost", 7_000), claims("d1", 8_000)]);
    assert!(out[0].is_ok() && out[1].is_err() && out[2].is_ok(), "{out:?}");
    for (d, at) in [("d1", 8_000), ("d2", 7_000)] {
        let dev = s.device(d).unwrap().unwrap();
        assert_eq!((dev.last_attested_ms, dev.hostname), (Some(at), format!("{d}-host")));
        assert_eq!(dev.clock_skew_ms, Some(at / 1000), "the device's clock offset from its claims");
    }
    assert!(s.device("ghost").unwrap().is_none());

    // Retention: old claims go, each device's latest stays however old.
    assert!(s.record_claims_many(&[claims("d1", 9_000), claims("d1", 10_000)]).iter().all(Result::is_ok));
    let p = s.prune(9_500).unwrap();
    assert_eq!(p.claims, 2, "d1's claims at 8,000 and 9,000 go; its latest and d2's only one stay");
    assert_eq!(s.prune(i64::MAX).unwrap().claims, 0, "the latest of each device is kept");
}

fn catalog_status_comes_from_claims_and_reports(s: &dyn Store) {
    use sightline_server::store::CatalogStatus;
    enroll(s, "d1");
    enroll(s, "d2");
    let before = s.catalog_statuses().unwrap();
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|d| d.status == CatalogStatus::default() && d.at_ms.is_none()));
    let claims = ClaimsRecord {
        device_id: "d1".into(),
        at_ms: 5_000,
        stream_nonce: vec![1; 32],
        payload: b"claims".to_vec(),
        signature: vec![2; 64],
        hostname: "a-host".into(),
        os: "linux".into(),
        os_version: "6.1".into(),
        agent_version: "0.3.0".into(),
        clock_skew_ms: None,
        catalog: CatalogStatus { version: Some(1), error: None },
        claims: json!({}),
    };
    s.record_claims(&claims).unwrap();
    let refused = CatalogStatus { version: Some(1), error: Some("catalog signature does not verify".into()) };
    s.record_catalog_status("d2", &refused, 6_000).unwrap();
    let took = CatalogStatus { version: Some(u64::MAX), error: None };
    assert!(matches!(s.record_catalog_status("ghost", &took, 1), Err(StoreError::UnknownDevice(_))));
    let after = s.catalog_statuses().unwrap();
    let d1 = after.iter().find(|d| d.device_id == "d1").unwrap();
    assert_eq!(
        (d1.status.clone(), d1.at_ms, d1.hostname.as_str()),
        (claims.catalog.clone(), Some(5_000), "a-host")
    );
    let d2 = after.iter().find(|d| d.device_id == "d2").unwrap();
    assert_eq!((d2.status.clone(), d2.at_ms), (refused, Some(6_000)));
    // The next status replaces the refusal; an absurd version is kept as the largest stored.
    s.record_catalog_status("d2", &took, 7_000).unwrap();
    let d2 = s.catalog_statuses().unwrap().into_iter().find(|d| d.device_id == "d2").unwrap();
    assert_eq!(d2.status, CatalogStatus { version: Some(i64::MAX as u64), error: None });
}

fn tokens_are_listed_expire_and_are_revoked(s: &dyn Store) {
    // Enrollment tokens: listed with their state; a revoked one cannot enroll.
    s.create_token(b"e1", "laptop rollout", 10, 1_000).unwrap();
    s.create_token(b"e2", "", 20, 1_000).unwrap();
    assert!(s.revoke_enrollment_token(b"e1", 30).unwrap());
    assert!(!s.revoke_enrollment_token(b"e1", 40).unwrap(), "revoking twice changes nothing");
    let list = s.enrollment_tokens().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].name.as_str(), list[0].revoked_at_ms), ("laptop rollout", Some(30)));
    assert!(matches!(s.check_token(b"e1", 50), Err(StoreError::TokenRevoked)));
    assert!(matches!(
        s.complete_enrollment(b"e1", &device_record("d1", None), &[], 50),
        Err(StoreError::TokenRevoked)
    ));
    s.complete_enrollment(b"e2", &device_record("d2", None), &[], 50).unwrap();
    assert_eq!(s.enrollment_tokens().unwrap()[1].used_at_ms, Some(50));

    // API tokens: expiry, last use (to the minute), revocation ending sessions.
    s.create_api_token(b"a1", "viewer", "grafana", 0, Some(100_000), "cli:root").unwrap();
    s.create_api_token(b"a2", "admin", "ops", 0, None, "token:0123456789abcdef").unwrap();
    assert_eq!(s.api_token_role(b"a1", 1_000).unwrap().as_deref(), Some("viewer"));
    assert_eq!(s.api_token_role(b"a1", 30_000).unwrap().as_deref(), Some("viewer"));
    let used =
        |h: &[u8]| s.api_tokens().unwrap().into_iter().find(|t| t.token_hash == h).unwrap().last_used_at_ms;
    assert_eq!(used(b"a1"), Some(1_000), "a use within the minute is not written again");
    assert_eq!(s.api_token_role(b"a1", 61_000).unwrap().as_deref(), Some("viewer"));
    assert_eq!(used(b"a1"), Some(61_000));
    assert_eq!(s.api_token_role(b"a1", 100_000).unwrap(), None, "expired");
    s.create_session(b"s1", b"a1", 1_000, 1_000_000).unwrap();
    assert_eq!(s.session_role(b"s1", 99_999).unwrap().as_deref(), Some("viewer"));
    assert_eq!(s.session_role(b"s1", 100_000).unwrap(), None, "a session ends with its token's expiry");
    s.create_session(b"s2", b"a2", 1_000, 1_000_000).unwrap();
    assert_eq!(s.session_role(b"s2", 2_000).unwrap().as_deref(), Some("admin"));
    assert!(s.revoke_api_token(b"a2", 3_000).unwrap());
    assert!(!s.revoke_api_token(b"a2", 4_000).unwrap());
    assert_eq!(s.session_role(b"s2", 3_001).unwrap(), None, "revoking the token ended its session");
    assert_eq!(s.api_token_role(b"a2", 3_001).unwrap(), None);
    let a2 = s.api_tokens().unwrap().into_iter().find(|t| t.token_hash == b"a2").unwrap();
    assert_eq!((a2.role.as_str(), a2.name.as_str(), a2.revoked_at_ms), ("admin", "ops", Some(3_000)));
    assert_eq!(a2.created_by, "token:0123456789abcdef");
    s.create_session(b"s3", b"a1", 1_000, 1_000_000).unwrap();
    assert_eq!(s.session_token(b"s3").unwrap().as_deref(), Some(&b"a1"[..]));
    assert_eq!(s.session_token(b"nope").unwrap(), None);
}

/// A connector alice holds (`tool:ollama` on device a, under her account) and alice, bob.
fn alice_holds_ollama(s: &dyn Store) {
    enroll(s, "a");
    stored(s, &batch(s, "a", 5_000, vec![obs(1, 100, "appeared", Some(tool("pid:1", Some("alice"))))]));
    s.create_person(&person("p1", "alice@example.com", &["alice@example.com"])).unwrap();
    s.create_person(&person("p2", "bob@example.com", &["bob@example.com"])).unwrap();
}

fn open_request(key: &str, by: &str, at: i64) -> sightline_server::store::ApprovalRequest {
    sightline_server::store::ApprovalRequest {
        id: 0,
        connector_key: key.into(),
        requested_by: by.into(),
        on_behalf_of: "p1".into(),
        reason: "team tool".into(),
        duration_ms: Some(1_000),
        requested_at_ms: at,
        state: "open".into(),
        decided_by: None,
        decided_at_ms: None,
        decision_reason: None,
    }
}

/// Requests: one open per connector; a close happens once (a second closer finds it moved);
/// a withdrawal drops only the decision it made; the lapse sweep records each expiry once,
/// however many replicas run it; an owner token is bound to its person.
fn approval_requests_close_once_and_lapses_are_recorded_once(s: &dyn Store) {
    use sightline_server::store::{ConnectorEvent, Decision, DecisionChange, Settlement};
    alice_holds_ollama(s);
    let ev = |event: &str| {
        ConnectorEvent::new("tool:ollama", 10, event, "person:alice@example.com", Some("team tool"))
    };
    let id = s
        .open_request(&open_request("tool:ollama", "person:alice@example.com", 10), &ev("approval_requested"))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.open_request(&open_request("tool:ollama", "admin:token:ops", 11), &ev("approval_requested"))
            .unwrap(),
        None,
        "one open request per connector"
    );
    let r = s.approval_request(id).unwrap().unwrap();
    assert_eq!((r.state.as_str(), r.on_behalf_of.as_str(), r.duration_ms), ("open", "p1", Some(1_000)));
    assert_eq!(s.approval_requests(Some("open"), None).unwrap().len(), 1);
    assert_eq!(s.approval_requests(Some("open"), Some("p2")).unwrap().len(), 0, "bob's requests only");
    assert_eq!(s.approval_requests(None, Some("p1")).unwrap()[0].id, id);

    let d = Decision {
        status: "approved".into(),
        by: "admin:token:ops".into(),
        at_ms: 20,
        reason: Some("ok".into()),
        expires_at_ms: Some(1_020),
    };
    let approve =
        Settlement { from: "open", state: "approved", by: "admin:token:ops", at_ms: 20, reason: Some("ok") };
    let e = ConnectorEvent::new("tool:ollama", 20, "approved", "admin:token:ops", Some("ok"));
    assert!(s.settle_request(id, &approve, DecisionChange::Set(&d), &e).unwrap());
    assert!(!s.settle_request(id, &approve, DecisionChange::Set(&d), &e).unwrap(), "closed once");
    let r = s.approval_request(id).unwrap().unwrap();
    assert_eq!(
        (r.state.as_str(), r.decided_by.as_deref(), r.decided_at_ms),
        ("approved", Some("admin:token:ops"), Some(20))
    );
    assert_eq!(s.connector("tool:ollama").unwrap().unwrap().decision, Some(d.clone()));
    let events = s.connector_events("tool:ollama").unwrap();
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["approval_requested", "approved"]
    );
    assert!(events.iter().all(|e| e.detail["request"] == json!(id)), "each names the request: {events:?}");

    // The lapse: not before it, once after it, and never twice (a second replica's sweep).
    assert_eq!(s.record_expiries(1_019).unwrap(), 0);
    assert_eq!(s.record_expiries(1_020).unwrap(), 1);
    assert_eq!(s.record_expiries(5_000).unwrap(), 0, "recorded once");
    let expired = s.connector_events("tool:ollama").unwrap().pop().unwrap();
    assert_eq!(
        (expired.event.as_str(), expired.actor.as_str(), expired.at_ms),
        ("approval_expired", "system", 1_020)
    );
    assert_eq!(expired.detail["request"], json!(id));
    // A new approval lapses (and is recorded) afresh.
    let again = Decision { at_ms: 30, expires_at_ms: Some(2_000), ..d.clone() };
    s.decide(
        "tool:ollama",
        Some(&again),
        &ConnectorEvent::new("tool:ollama", 30, "approved", "admin:token:ops", None),
    )
    .unwrap();
    assert_eq!(s.record_expiries(2_000).unwrap(), 1);

    // Withdrawing drops only the decision the request made.
    let id2 = s
        .open_request(&open_request("tool:ollama", "person:alice@example.com", 40), &ev("approval_requested"))
        .unwrap()
        .unwrap();
    let d2 = Decision { at_ms: 50, expires_at_ms: None, ..d.clone() };
    let approve2 = Settlement { at_ms: 50, ..approve };
    assert!(s.settle_request(id2, &approve2, DecisionChange::Set(&d2), &e).unwrap());
    let other = Decision { by: "admin:token:other".into(), at_ms: 60, ..d2.clone() };
    s.decide(
        "tool:ollama",
        Some(&other),
        &ConnectorEvent::new("tool:ollama", 60, "approved", "admin:token:other", None),
    )
    .unwrap();
    let withdraw = Settlement {
        from: "approved",
        state: "withdrawn",
        by: "person:alice@example.com",
        at_ms: 70,
        reason: None,
    };
    let we = ConnectorEvent::new("tool:ollama", 70, "approval_withdrawn", "person:alice@example.com", None);
    assert!(
        s.settle_request(id2, &withdraw, DecisionChange::ClearIf { by: "admin:token:ops", at_ms: 50 }, &we)
            .unwrap()
    );
    assert_eq!(s.connector("tool:ollama").unwrap().unwrap().decision, Some(other), "a later decision stays");
    assert_eq!(s.approval_request(id2).unwrap().unwrap().state, "withdrawn");

    // Owner tokens carry their person; others none.
    s.create_owner_api_token(b"o1", "p1", "alice laptop", 1, None, "cli:root").unwrap();
    s.create_api_token(b"v1", "viewer", "", 1, None, "cli:root").unwrap();
    assert_eq!(s.api_token_role(b"o1", 2).unwrap().as_deref(), Some("owner"));
    assert_eq!(s.api_token_person(b"o1").unwrap().as_deref(), Some("p1"));
    assert_eq!(s.api_token_person(b"v1").unwrap(), None);
    assert_eq!(s.api_token_person(b"none").unwrap(), None);
}

/// The workflow over a real store: an owner asks only about what they own or hold; only an
/// open request is approved or denied; a withdrawal takes back an approval in force, and
/// only the person's own request; an approval lapses into `unsanctioned` unless policy.toml
/// approves the connector.
fn the_approval_workflow_keeps_its_rules(s: &dyn Store) {
    use sightline_server::approvals::{self, Actor, ApprovalError};
    use sightline_server::policy::Policy;
    alice_holds_ollama(s);
    let policy = Policy::default();
    let alice = Actor::Owner(Box::new(s.person("p1").unwrap().unwrap()));
    let bob = Actor::Owner(Box::new(s.person("p2").unwrap().unwrap()));
    let admin = Actor::Admin("admin:token:ops".into());
    let ask = |who: &Actor, on: Option<&str>, reason: Option<&str>| {
        approvals::request(s, &policy, "tool:ollama", who, on, reason, Some(60_000), 1_000)
    };
    assert!(
        matches!(ask(&bob, None, Some("mine")), Err(ApprovalError::Forbidden(_))),
        "bob neither owns nor holds it"
    );
    assert!(
        matches!(ask(&alice, Some("bob@example.com"), Some("x")), Err(ApprovalError::Forbidden(_))),
        "an owner asks for themselves"
    );
    assert!(
        matches!(ask(&admin, Some("bob@example.com"), Some("x")), Err(ApprovalError::Invalid(_))),
        "nor for bob by an admin"
    );
    assert!(
        matches!(ask(&admin, None, Some("x")), Err(ApprovalError::Invalid(_))),
        "an admin names the person"
    );
    assert!(matches!(ask(&alice, None, Some("  ")), Err(ApprovalError::Invalid(_))), "a reason is required");
    assert!(matches!(
        approvals::request(s, &policy, "tool:none", &alice, None, Some("x"), None, 1_000),
        Err(ApprovalError::NotFound(_))
    ));
    let r = ask(&alice, None, Some("I run local models")).unwrap();
    assert_eq!((r.state.as_str(), r.requested_by.as_str()), ("open", "person:alice@example.com"));
    assert!(matches!(ask(&admin, Some("alice@example.com"), Some("again")), Err(ApprovalError::Conflict(_))));
    // bob cannot withdraw alice's request; alice can.
    assert!(matches!(approvals::withdraw(s, r.id, &bob, None, 2_000), Err(ApprovalError::Forbidden(_))));
    let w = approvals::withdraw(s, r.id, &alice, Some("not needed"), 2_000).unwrap();
    assert_eq!(w.state, "withdrawn");
    assert!(
        matches!(
            approvals::approve(s, r.id, "admin:token:ops", Some("ok"), None, 3_000),
            Err(ApprovalError::Conflict(_))
        ),
        "a closed request cannot be approved"
    );
    assert!(matches!(approvals::withdraw(s, r.id, &admin, None, 3_000), Err(ApprovalError::Conflict(_))));

    // Approved for the duration asked (60 s): approved now, unsanctioned once it lapses.
    let r = ask(&admin, Some("alice@example.com"), Some("team tool")).unwrap();
    assert!(
        matches!(
            approvals::approve(s, r.id, "admin:token:ops", None, None, 4_000),
            Err(ApprovalError::Invalid(_))
        ),
        "a reason is required"
    );
    let a = approvals::approve(s, r.id, "admin:token:ops", Some("fine"), None, 4_000).unwrap();
    assert_eq!(a.state, "approved");
    assert!(matches!(
        approvals::deny(s, r.id, "admin:token:ops", Some("no"), 4_500),
        Err(ApprovalError::Conflict(_))
    ));
    let c = s.connector("tool:ollama").unwrap().unwrap();
    assert_eq!(c.decision.as_ref().and_then(|d| d.expires_at_ms), Some(64_000));
    let people = sightline_server::policy::People::new(s.people_all().unwrap());
    assert_eq!(policy.judge(&c, &people, 63_999).status, "approved");
    let lapsed = policy.judge(&c, &people, 64_000);
    assert_eq!((lapsed.status, lapsed.source.as_str()), ("unsanctioned", "expired"));
    // Withdrawing an approval in force drops it: policy.toml decides again.
    let r2 = ask(&alice, None, Some("longer")).unwrap();
    approvals::approve(s, r2.id, "admin:token:ops", Some("ok"), Some(1_000_000), 5_000).unwrap();
    approvals::withdraw(s, r2.id, &alice, None, 6_000).unwrap();
    assert_eq!(s.connector("tool:ollama").unwrap().unwrap().decision, None);
    // A denial makes it unsanctioned by decision.
    let r3 = ask(&alice, None, Some("please")).unwrap();
    approvals::deny(s, r3.id, "admin:token:ops", Some("use the hosted one"), 7_000).unwrap();
    assert_eq!(
        s.connector("tool:ollama").unwrap().unwrap().decision.map(|d| d.status),
        Some("unsanctioned".into())
    );
    let names: Vec<String> =
        s.connector_events("tool:ollama").unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        [
            "approval_requested",
            "approval_withdrawn",
            "approval_requested",
            "approved",
            "approval_requested",
            "approved",
            "approval_withdrawn",
            "approval_requested",
            "denied"
        ]
    );
    let listed = approvals::list(s, Some("approved"), None).unwrap();
    assert_eq!((listed.len(), listed[0].on_behalf_of.as_str()), (1, "alice@example.com"));
    assert!(matches!(approvals::list(s, Some("pending"), None), Err(ApprovalError::Invalid(_))));
}

fn review_campaigns_settle_races_in_the_rows(s: &dyn Store) {
    let c = Campaign {
        id: "rc-1".into(),
        scope: "all".into(),
        rule: "escalate".into(),
        due_at_ms: 1_000,
        created_by: "cli:ops".into(),
        created_at_ms: 100,
        closed_at_ms: None,
        link_base: "https://c.example".into(),
    };
    let item = |key: &str, reviewer: Option<&str>, due: i64| ReviewItem {
        campaign_id: "rc-1".into(),
        connector_key: key.into(),
        reviewer_id: reviewer.map(str::to_owned),
        why: if reviewer.is_some() { "owner" } else { "admin" }.into(),
        assigned_at_ms: 100,
        due_at_ms: due,
        ..ReviewItem::default()
    };
    s.create_campaign(
        &c,
        &[item("tool:a", Some("p1"), 1_000), item("tool:b", Some("p2"), 1_000), item("tool:c", None, 1_000)],
    )
    .unwrap();
    assert_eq!(s.campaigns().unwrap(), vec![c.clone()]);
    assert_eq!(s.campaign("rc-1").unwrap(), Some(c.clone()));
    let items = s.review_items("rc-1").unwrap();
    assert_eq!(
        items.iter().map(|i| i.connector_key.as_str()).collect::<Vec<_>>(),
        ["tool:a", "tool:b", "tool:c"]
    );

    // An answer is recorded once, with its event; the second writer is told no.
    let d = ItemDecision {
        decision: "keep".into(),
        keep_until_ms: Some(5_000),
        reason: Some("needed".into()),
        decided_by: "review:rc-1:person:a".into(),
        decided_at_ms: 200,
    };
    let ev = ConnectorEvent::new("tool:a", 200, "reviewed", "review:rc-1:person:a", Some("needed"));
    assert!(s.record_review("rc-1", "tool:a", &d, &ev).unwrap());
    assert!(!s.record_review("rc-1", "tool:a", &d, &ev).unwrap());
    assert!(!s.record_review("rc-1", "tool:zzz", &d, &ev).unwrap());
    assert_eq!(s.connector_events("tool:a").unwrap().len(), 1);
    let a = s.review_items("rc-1").unwrap().remove(0);
    assert_eq!(
        (a.decision.as_deref(), a.keep_until_ms, a.decided_at_ms),
        (Some("keep"), Some(5_000), Some(200))
    );

    // Overdue: under `escalate`, the admins' queue waits; an answered item is done.
    assert!(s.overdue_items(999, 10).unwrap().is_empty());
    let overdue = s.overdue_items(1_000, 10).unwrap();
    assert_eq!(
        overdue.iter().map(|(i, r)| (i.connector_key.as_str(), r.as_str())).collect::<Vec<_>>(),
        [("tool:b", "escalate")]
    );
    let b = overdue[0].0.clone();
    let esc = ConnectorEvent::new("tool:b", 1_000, "review_escalated", "review:rc-1:deadline", None);
    assert!(s.reassign_item(&b, Some("p3"), "escalated", 1_000, 8_000, &esc).unwrap());
    // A replica that saw the item as it was loses the race.
    assert!(!s.reassign_item(&b, Some("p4"), "escalated", 1_000, 9_000, &esc).unwrap());
    let now_b = s.review_items("rc-1").unwrap().remove(1);
    assert_eq!(
        (now_b.reviewer_id.as_deref(), now_b.due_at_ms, now_b.assigned_at_ms),
        (Some("p3"), 8_000, 1_000)
    );
    assert!(s.reassign_item(&now_b, None, "admin", 8_000, 15_000, &esc).unwrap(), "to the admins' queue");
    let in_queue = s.review_items("rc-1").unwrap().remove(1);
    assert!(
        s.reassign_item(&in_queue, Some("p5"), "escalated", 8_001, 16_000, &esc).unwrap(),
        "out of it by CAS on null"
    );
    assert_eq!(s.connector_events("tool:b").unwrap().len(), 3);

    // Due soon: within the window, and given longer ago than the window.
    let soon = s.due_soon(13_000, 5_000).unwrap();
    assert_eq!(soon.iter().map(|i| i.connector_key.as_str()).collect::<Vec<_>>(), ["tool:b"]);
    assert!(
        s.due_soon(13_000, 9_000).unwrap().is_empty(),
        "given 7,999 ms before its date: inside a 9,000 window"
    );

    // Once its reminder is queued, an item is no longer due soon (the sweep writes nothing).
    let soon_mail = Reminder {
        campaign_id: "rc-1".into(),
        reviewer_id: "p5".into(),
        kind: "due_soon".into(),
        due_at_ms: 16_000,
        recipient: "e@example.com".into(),
        created_at_ms: 13_000,
        ..Reminder::default()
    };
    assert!(s.add_reminder(&soon_mail, &[4; 32], 16_000).unwrap());
    assert!(s.due_soon(13_000, 5_000).unwrap().is_empty());

    // Reminders: one per (campaign, reviewer, kind, due); the token only with the stored one.
    let r = Reminder {
        campaign_id: "rc-1".into(),
        reviewer_id: "p1".into(),
        kind: "start".into(),
        due_at_ms: 1_000,
        recipient: "a@example.com".into(),
        subject: "Please review".into(),
        body: "open https://c.example/ui/review/#t=x".into(),
        link: "https://c.example/ui/review/#t=x".into(),
        created_at_ms: 100,
        ..Reminder::default()
    };
    assert!(s.add_reminder(&r, &[1; 32], 1_000).unwrap());
    assert!(!s.add_reminder(&r, &[2; 32], 1_000).unwrap());
    assert_eq!(s.review_grant(&[1; 32], 999).unwrap(), Some(("rc-1".into(), "p1".into())));
    assert_eq!(s.review_grant(&[1; 32], 1_000).unwrap(), None, "expired");
    assert_eq!(s.review_grant(&[2; 32], 500).unwrap(), None, "its message was not stored");
    let second =
        Reminder { reviewer_id: "p3".into(), kind: "escalated".into(), due_at_ms: 8_000, ..r.clone() };
    assert!(s.add_reminder(&second, &[3; 32], 8_000).unwrap());
    let pending = s.pending_reminders(0, 10).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>(),
        ["due_soon", "start", "escalated"]
    );
    assert_eq!((pending[1].body.as_str(), pending[1].sent_at_ms), (r.body.as_str(), None));
    assert_eq!(s.pending_reminders(pending[0].seq, 10).unwrap().len(), 2);
    assert_eq!(s.ack_reminders(&[pending[1].seq, pending[1].seq], 300).unwrap(), 1);
    let left = s.pending_reminders(0, 10).unwrap();
    assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [pending[0].seq, pending[2].seq]);

    // Closing: only once nothing is left unanswered.
    assert_eq!(s.close_finished_campaigns(400).unwrap(), 0);
    for key in ["tool:b", "tool:c"] {
        let ev = ConnectorEvent::new(key, 500, "reviewed", "review:rc-1:deadline", None);
        assert!(
            s.record_review(
                "rc-1",
                key,
                &ItemDecision { decision: "revoke".into(), keep_until_ms: None, ..d.clone() },
                &ev
            )
            .unwrap()
        );
    }
    assert_eq!(s.close_finished_campaigns(600).unwrap(), 1);
    assert_eq!(s.close_finished_campaigns(700).unwrap(), 0);
    assert_eq!(s.campaign("rc-1").unwrap().unwrap().closed_at_ms, Some(600));
}

/// An ACTIVITY observation as `ingest::convert` stores it.
fn activity_obs(
    seq: u64,
    session: &str,
    started: i64,
    ended: i64,
    mcp: &[&str],
    credentials: &[&str],
) -> ObservationRecord {
    let mcp: Vec<_> =
        mcp.iter().map(|m| json!({"calls": 2, "server": m, "tools": ["create_issue"]})).collect();
    ObservationRecord {
        seq,
        observed_at_ms: ended,
        change: Change::Snapshot,
        kind: ObservationKind::Activity,
        connector: None,
        session: None,
        directive: None,
        data: json!({
            "account": {"account": "alice@example.com", "org": null}, "credentials": credentials,
            "ended_at_ms": ended, "format": "claude_code_jsonl", "mcp": mcp, "models": ["claude-sonnet-4"],
            "project": "fp:abc", "prompts": 3, "session_id": session, "started_at_ms": started,
            "tool": "claude_code", "tool_calls": 7, "user": "alice",
        })
        .to_string(),
    }
}

fn connector_obs(seq: u64, key: &str, kind: &'static str, label: &str, locus: &str) -> ObservationRecord {
    let mut o = obs(
        seq,
        1_000,
        "appeared",
        Some(ConnectorRef {
            key: key.into(),
            kind,
            label: label.into(),
            user: Some("alice".into()),
            locus: locus.into(),
        }),
    );
    o.kind = ObservationKind::McpServer;
    o
}

fn bound(r: &ActivityRecord) -> Vec<(&str, bool)> {
    r.connectors.iter().map(|c| (c.key.as_str(), c.known)).collect()
}

fn activity_keeps_the_latest_report_bound_to_connectors(s: &dyn Store) {
    // 2026-01-15T08:00:00Z: device times must be plausible (`clock::DeviceTime`).
    const T: i64 = 1_768_464_000_000;
    enroll(s, "d1");
    // The tool, an MCP entry for it and one for another client, and a token, then a session
    // that used `github` and an MCP server the inventory never saw, in the same batch.
    let b = batch(
        s,
        "d1",
        T + 100_000,
        vec![
            connector_obs(1, "tool:claude_code", "tool", "claude_code", "/usr/bin/claude"),
            connector_obs(2, "mcp:github:aaa", "mcp_server", "github", "/home/alice/.cursor/mcp.json#cursor"),
            connector_obs(
                3,
                "mcp:github:bbb",
                "mcp_server",
                "github",
                "/home/alice/.claude.json#claude_code",
            ),
            connector_obs(4, "token:fp1", "token", "anthropic", "/home/alice/.claude/.credentials.json#"),
            activity_obs(5, "s1", T + 10_000, T + 20_000, &["github", "jira"], &["fp1"]),
        ],
    );
    stored(s, &b);
    let all = s.activity(&ActivityFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    let a = &all[0];
    assert_eq!(
        (a.tool.as_str(), a.session_id.as_str(), a.os_user.as_deref()),
        ("claude_code", "s1", Some("alice"))
    );
    assert_eq!(
        (a.started_at_ms, a.ended_at_ms, a.prompts, a.tool_calls, a.evidence_seq),
        (T + 10_000, T + 20_000, 3, 7, 5)
    );
    assert_eq!(a.models, ["claude-sonnet-4"]);
    assert_eq!(a.mcp[0].server, "github");
    assert_eq!(a.hostname.as_deref(), Some("host-d1"));
    assert_eq!(
        bound(a),
        [
            ("mcp:github:bbb", true),
            ("token:fp1", true),
            ("tool:claude_code", true),
            ("unknown:mcp:jira", false)
        ]
    );

    // A newer report grows it; a later one that ends earlier (a re-read from an older
    // offset) changes nothing.
    let b2 = after(&b, vec![activity_obs(6, "s1", T + 10_000, T + 30_000, &["github"], &[])]);
    stored(s, &b2);
    let b3 = after(&b2, vec![activity_obs(7, "s1", T + 10_000, T + 25_000, &[], &[])]);
    stored(s, &b3);
    let a = &s.activity(&ActivityFilter::default()).unwrap()[0];
    assert_eq!((a.ended_at_ms, a.evidence_seq), (T + 30_000, 6));
    assert_eq!(bound(a), [("mcp:github:bbb", true), ("tool:claude_code", true)]);

    // Another session, earlier, on a tool the device never had.
    let mut other = activity_obs(8, "s0", T + 1_000, T + 2_000, &[], &[]);
    other.data = other.data.replace("\"claude_code\"", "\"codex_cli\"").replace("\"alice\"", "\"bob\"");
    let b4 = after(&b3, vec![other]);
    stored(s, &b4);
    let ids = |f: ActivityFilter| -> Vec<String> {
        s.activity(&f).unwrap().into_iter().map(|a| a.session_id).collect()
    };
    assert_eq!(ids(ActivityFilter::default()), ["s1", "s0"], "newest first");
    // A page is the newest, with its own connectors; the count is of every match.
    let first = ActivityFilter { limit: Some(1), ..Default::default() };
    let page = s.activity(&first).unwrap();
    assert_eq!((page.len(), page[0].session_id.as_str()), (1, "s1"));
    assert_eq!(bound(&page[0]), [("mcp:github:bbb", true), ("tool:claude_code", true)]);
    assert_eq!(s.activity_count(&first).unwrap(), 2);
    let f = |c: &str| ActivityFilter { connector: Some(c.into()), ..Default::default() };
    assert_eq!(ids(f("mcp:github")), ["s1"], "a prefix up to `:` matches");
    assert_eq!(ids(f("mcp:github:bbb")), ["s1"]);
    assert!(ids(f("mcp:git")).is_empty(), "a prefix must end at a `:`");
    assert_eq!(ids(f("unknown:tool:codex_cli")), ["s0"]);
    let users = ActivityFilter { os_users: Some(vec!["bob".into()]), ..Default::default() };
    assert_eq!(ids(users), ["s0"]);
    let devices = ActivityFilter { device_ids: Some(vec!["nope".into()]), ..Default::default() };
    assert!(ids(devices).is_empty());
    // Overlap with [since, until].
    let window = |since: Option<i64>, until: Option<i64>| ActivityFilter {
        since_ms: since,
        until_ms: until,
        ..Default::default()
    };
    assert_eq!(ids(window(Some(T + 2_000), Some(T + 10_000))), ["s1", "s0"], "touching both ends");
    assert_eq!(ids(window(Some(T + 2_001), Some(T + 9_999))), Vec::<String>::new());
    assert_eq!(ids(window(Some(T + 29_000), None)), ["s1"]);
    assert_eq!(ids(window(None, Some(T + 1_500))), ["s0"]);

    let last = s.activity_last_used().unwrap();
    assert_eq!(last.get("mcp:github:bbb"), Some(&(T + 30_000)));
    assert_eq!(last.get("tool:claude_code"), Some(&(T + 30_000)));
    assert_eq!(last.get("unknown:tool:codex_cli"), None, "unknown use is not a connector's use");

    // A session the device says ends in the future ends when its report arrived.
    let b5 = after(&b4, vec![activity_obs(9, "s2", T + 40_000, T + 10 * 86_400_000, &[], &[])]);
    stored(s, &b5);
    let s2 = s.activity(&ActivityFilter::default()).unwrap().remove(0);
    assert_eq!((s2.session_id.as_str(), s2.started_at_ms, s2.ended_at_ms), ("s2", T + 40_000, T + 100_000));

    assert_eq!(s.prune_activity(T + 2_001).unwrap().sessions, 1);
    assert_eq!(ids(ActivityFilter::default()), ["s2", "s1"]);
    assert_eq!(ids(f("unknown:tool:codex_cli")), Vec::<String>::new());
}

/// An activity observation with its data changed by `edit`.
fn activity_edited(
    seq: u64,
    session: &str,
    ended: i64,
    edit: impl FnOnce(&mut serde_json::Value),
) -> ObservationRecord {
    let mut o = activity_obs(seq, session, ended - 1_000, ended, &["github"], &[]);
    let mut data: serde_json::Value = serde_json::from_str(&o.data).unwrap();
    edit(&mut data);
    o.data = data.to_string();
    o
}

fn activity_keys_by_account_bounds_reports_and_exports_by_report(s: &dyn Store) {
    use sightline_server::export::activity::from_observation;
    use sightline_server::policy::Policy;
    const T: i64 = 1_768_464_000_000;
    enroll(s, "shared");
    let huge = |d: &mut serde_json::Value| {
        let tools: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        d["mcp"] =
            (0..700).map(|i| json!({"calls": 1, "server": format!("srv{i}"), "tools": tools})).collect();
        let mut models: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        models.insert(0, "has space".into());
        models.insert(0, "x".repeat(200));
        d["models"] = json!(models);
        d["credentials"] = (0..100).map(|i| json!(format!("fp{i}"))).collect();
    };
    let b = batch(
        s,
        "shared",
        T + 100_000,
        vec![
            // Two OS accounts on one device, sessions of the same id: two sessions.
            activity_edited(1, "same", T + 20_000, |_| {}),
            activity_edited(2, "same", T + 20_000, |d| {
                d["user"] = json!("bob");
                d["mcp"] = json!([]);
            }),
            // A forged report: trimmed to the agent's bounds.
            activity_edited(3, "huge", T + 30_000, huge),
            // A session id no tool writes: skipped, and the batch still stored.
            activity_edited(4, &"i".repeat(5_000), T + 30_000, |_| {}),
            // A session the device dates ten days ahead: stored ending when it arrived.
            activity_edited(5, "fast-clock", T + 10 * 86_400_000, |_| {}),
            // Not activity: activity's prune leaves it.
            obs(6, T + 30_000, "snapshot", None),
            // A NUL no tool writes (PostgreSQL refuses it in text): skipped, or the project
            // forgotten, the batch stored either way.
            activity_edited(7, "nul\u{0}id", T + 30_000, |_| {}),
            activity_edited(8, "nul-project", T + 30_000, |d| d["project"] = json!("/home/a\u{0}b")),
            // A plain project path longer than an id, shorter than PATH_MAX: kept.
            activity_edited(9, "long-project", T + 30_000, |d| {
                d["project"] = json!(format!("/home/alice/{}", "p".repeat(1_000)));
            }),
        ],
    );
    stored(s, &b);
    let all = s.activity(&ActivityFilter::default()).unwrap();
    let mut keys: Vec<(&str, Option<&str>)> =
        all.iter().map(|a| (a.session_id.as_str(), a.os_user.as_deref())).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("fast-clock", Some("alice")),
            ("huge", Some("alice")),
            ("long-project", Some("alice")),
            ("nul-project", Some("alice")),
            ("same", Some("alice")),
            ("same", Some("bob"))
        ]
    );
    let same =
        |u: &str| all.iter().find(|a| a.session_id == "same" && a.os_user.as_deref() == Some(u)).unwrap();
    assert_eq!(bound(same("alice")), [("unknown:mcp:github", false), ("unknown:tool:claude_code", false)]);
    assert_eq!(bound(same("bob")), [("unknown:tool:claude_code", false)]);
    assert_eq!((same("alice").evidence_seq, same("bob").evidence_seq), (1, 2));
    let bob = ActivityFilter {
        os_users: Some(vec!["bob".into()]),
        connector: Some("unknown:tool".into()),
        ..Default::default()
    };
    assert_eq!(s.activity(&bob).unwrap().len(), 1, "a connector filter joins on the account too");

    let project = |id: &str| all.iter().find(|a| a.session_id == id).unwrap().project.clone();
    assert_eq!(project("nul-project"), None);
    assert_eq!(project("long-project").map(|p| p.len()), Some(12 + 1_000));
    let h = all.iter().find(|a| a.session_id == "huge").unwrap();
    assert_eq!((h.mcp.len(), h.mcp[0].tools.len(), h.credentials.len()), (64, 128, 16));
    assert_eq!(h.models.len(), 16);
    assert!(h.models.iter().all(|m| m.starts_with('m') && m.len() < 5), "{:?}", h.models);
    assert_eq!(h.connectors.len(), 1 + 64 + 16, "the tool, 64 servers, 16 credentials");

    // The export finds each report's session by the report, whatever its times became.
    let policy = Policy::default();
    let observations = s.observations_after(0, 100).unwrap();
    let exported = |seq: u64| {
        let o = observations.iter().find(|o| o.device_id == "shared" && o.seq == seq).unwrap();
        from_observation(s, &policy, o).unwrap()
    };
    let fast = exported(5).expect("a clamped session is exported");
    assert_eq!(fast["unmapped"]["sightline"]["session_id"], "fast-clock");
    assert_eq!(fast["time"], T + 100_000);
    assert_eq!(exported(2).expect("bob's session")["actor"]["user"]["name"], "bob");
    assert_eq!(exported(1).expect("alice's session")["actor"]["user"]["name"], "alice");
    assert!(exported(4).is_none(), "a skipped report is no session");
    // Forged instants at the ends of the range neither overflow nor match.
    for at in [i64::MIN, i64::MAX] {
        let found = sightline_server::query::activity::active_at(s, &policy, None, None, at).unwrap();
        assert!(found.is_empty());
    }

    // A later batch, received after the cutoff: its report stays, and its session.
    let later = batch(s, "shared", T + 300_000, vec![activity_edited(10, "later", T + 250_000, |_| {})]);
    stored(s, &later);

    // Pruning activity removes the reports received before the cutoff too, not only the
    // sessions; nothing else.
    let pruned = s.prune_activity(T + 200_000).unwrap();
    assert_eq!((pruned.sessions, pruned.observations), (6, 8));
    let left: Vec<(u64, ObservationKind)> =
        s.observations_after(0, 100).unwrap().iter().map(|o| (o.seq, o.kind)).collect();
    assert_eq!(left, [(6, ObservationKind::Gap), (10, ObservationKind::Activity)]);
    let ids: Vec<String> =
        s.activity(&ActivityFilter::default()).unwrap().into_iter().map(|a| a.session_id).collect();
    assert_eq!(ids, ["later"]);
}
