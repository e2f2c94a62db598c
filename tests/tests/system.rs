//! Whole-system tests: real collector, real agents, real TLS on loopback.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sightline_agent::keys::KeyChoice;
use sightline_proto::envelope::GENESIS_HASH;
use sightline_tests::*;
use tonic::Code;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// The README's path end to end through the shipped binaries: serve --dev, token create,
/// enroll, run --once over the Linux fixture, then the query commands while the collector
/// runs; then SIGTERM. Checks every fixture finding arrived and no secret leaked anywhere.
#[test]
fn binaries_end_to_end_over_mtls() {
    let (server, agent) = (bin("sightline-server"), bin("sightline-agent"));
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let state = work.path().join("agent");
    let server_log = std::fs::File::create(work.path().join("server.log")).unwrap();
    let ocsf = work.path().join("ocsf");
    let mut serve = Command::new(&server)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--export-dir"])
        .arg(&ocsf)
        .arg("--data-dir")
        .arg(&data)
        .env("SIGHTLINE_LOG", "debug")
        .stderr(server_log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listening = read_listening(&mut serve, 2, Duration::from_secs(20)).expect("collector started");
    let addr = |kind: &str| listening.iter().find(|(k, _)| k == kind).map(|(_, a)| *a).unwrap();
    let url = format!("https://{}", addr("grpc"));
    let api_url = format!("https://{}", addr("http"));

    let token = run(Command::new(&server).args(["token", "create", "--data-dir"]).arg(&data));
    let token = token.trim();
    assert!(token.starts_with("slt_") && !token.contains(char::is_whitespace));
    let mut agent_out = run(Command::new(&agent)
        .args(["enroll", "--server", &url, "--token", token, "--key-backend", "software", "--ca"])
        .arg(data.join("ca.pem"))
        .arg("--state-dir")
        .arg(&state));
    assert!(agent_out.contains("assurance: software"), "{agent_out}");
    std::fs::write(work.path().join("agent.toml"), "processes = false\n").unwrap();
    let root = fixtures().join("linux");
    for _ in 0..2 {
        let out = Command::new(&agent)
            .args(["run", "--once", "--config"])
            .arg(work.path().join("agent.toml"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--root")
            .arg(&root)
            .env("SIGHTLINE_LOG", "debug")
            .output()
            .unwrap();
        assert!(out.status.success(), "run --once failed: {}", String::from_utf8_lossy(&out.stderr));
        agent_out += &String::from_utf8_lossy(&out.stderr);
    }
    let local = run(Command::new(&agent)
        .args(["scan", "--no-processes", "--format", "json", "--root"])
        .arg(&root)
        .arg("--state-dir")
        .arg(&state));
    agent_out += &local;
    let local = json(&local);
    assert_eq!(local["fingerprint_key"], "org");

    let devices = json(&run(Command::new(&server).args(["devices", "--json", "--data-dir"]).arg(&data)));
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(
        (d["hostname"].as_str(), d["os"].as_str(), d["assurance"].as_str()),
        (Some("fixture-linux"), Some("linux"), Some("software"))
    );
    assert_eq!(d["users"], serde_json::json!(["alice", "bob", "root"]));
    assert!(d["last_attested_at"].is_string(), "claims were not recorded: {d}");

    let connectors =
        json(&run(Command::new(&server).args(["connectors", "--json", "--data-dir"]).arg(&data)));
    let connectors = connectors.as_array().unwrap();
    let got = |kind: &str, field: &str| -> BTreeSet<String> {
        connectors
            .iter()
            .filter(|c| c["kind"] == kind)
            .filter_map(|c| c[field].as_str().map(str::to_owned))
            .collect()
    };
    let want = |kind: &str, field: &str| -> BTreeSet<String> {
        local["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .filter_map(|f| f[field].as_str().map(str::to_owned))
            .collect()
    };
    // Every finding of the local scan (same org key) is on the collector, with identical
    // extension ids, token fingerprints, tools and MCP servers.
    assert_eq!(got("extension", "extension_id"), want("extension", "extension_id"));
    let planted = |kind: &str| {
        std::fs::read_to_string(fixtures().join("ground-truth.tsv"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("linux\t") && l.split('\t').nth(1).is_some_and(|s| s.starts_with(kind)))
            .count()
    };
    assert_eq!(got("extension", "extension_id").len(), planted("extension "));
    assert_eq!(got("token", "fingerprint"), want("token", "fingerprint"));
    assert_eq!(got("token", "fingerprint").len(), planted("token "));
    assert_eq!(got("tool", "tool"), want("app", "tool"));
    assert_eq!(got("mcp_server", "name"), want("mcp_server", "name"));
    assert!(connectors.iter().all(|c| c["devices"][0]["device_id"] == d["device_id"]));

    let id = d["device_id"].as_str().unwrap();
    let detail = json(&run(Command::new(&server).args(["device", id, "--json", "--data-dir"]).arg(&data)));
    assert_eq!(detail["connectors"].as_array().unwrap().len(), connectors.len());
    // Two full scans, each one signed batch (inventory, findings, scan errors, health), and
    // one ACTIVITY observation per session of the homes' AI tool records, on the first run
    // only (the second finds them unchanged): the sequence continued across runs.
    let per_scan =
        2 + local["findings"].as_array().unwrap().len() + local["errors"].as_array().unwrap().len();
    let sessions = local["activity"].as_array().unwrap().len();
    assert!(sessions >= 8, "the linux fixture's activity sessions: {sessions}");
    assert_eq!(detail["seq_head"].as_u64().unwrap(), (2 * per_scan + sessions) as u64);
    let table = run(Command::new(&server).args(["connectors", "--data-dir"]).arg(&data));
    assert!(
        table.contains("fcoeoabgfenejglbffodgkkbkcdhcgfn") && table.lines().count() == connectors.len() + 1,
        "{table}"
    );

    // The HTTP API's views of the same inventory, through a real client.
    let viewer =
        run(Command::new(&server).args(["api-token", "create", "--role", "viewer", "--data-dir"]).arg(&data));
    let mut api_out = String::new();
    for path in
        ["/api/v1/connectors", "/api/v1/devices", "/api/v1/findings", &format!("/api/v1/devices/{id}")]
    {
        api_out += &run(Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(data.join("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {}", viewer.trim())])
            .arg(format!("{api_url}{path}")));
    }
    assert!(api_out.contains("mcp_server") && api_out.contains("claude_desktop"), "{api_out}");
    // The OCSF export has caught up with what was stored (it writes within a second or two).
    wait_for(Duration::from_secs(30), "the OCSF export", || {
        if !ocsf.exists() {
            return None;
        }
        let text: String =
            all_bytes(&ocsf).into_iter().map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect();
        text.contains("\"class_uid\":2006").then_some(())
    });

    run(Command::new("kill").args(["-TERM", &serve.id().to_string()]));
    let status = serve.wait().unwrap();
    assert!(status.success(), "collector did not stop cleanly on SIGTERM: {status}");

    // No fabricated secret anywhere: server log, agent output/logs, database, state dirs, the
    // API's answers and the OCSF export (credentials handed to MCP servers on their command
    // lines included: headers, flags, `token=`, URL passwords, random strings).
    let secrets = fixture_secrets();
    let mut haystacks = all_bytes(work.path());
    haystacks.push(("agent output".into(), agent_out.into_bytes()));
    haystacks.push(("API answers".into(), api_out.into_bytes()));
    assert!(haystacks.iter().any(|(p, _)| p.starts_with(&ocsf)), "the export dir was searched");
    for (path, bytes) in &haystacks {
        for s in &secrets {
            assert!(!contains(bytes, s), "a fixture secret leaked into {}", path.display());
        }
    }
    let log = std::fs::read_to_string(work.path().join("server.log")).unwrap();
    assert!(log.contains("Device enrolled") && log.contains("Collector stopped"), "{log}");
}

fn stored(c: &Collector, device: &str) -> (u64, u64) {
    let d = c.shared.store.device(device).unwrap().unwrap();
    (d.seq_head, c.shared.store.count_observations(device).unwrap())
}

#[tokio::test]
async fn duplicates_are_acknowledged_and_stored_once() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let (b1, h1) = a.batch(1, GENESIS_HASH, 3);
    let (b2, _) = a.batch(4, h1, 2);
    let replies = a.send(vec![b1.clone(), b1.clone(), b2.clone()]).await;
    let acks: Vec<u64> = replies.into_iter().map(|r| r.unwrap().through_seq).collect();
    assert_eq!(acks, vec![3, 3, 5]);
    // A replay on a fresh stream is also just acknowledged.
    let replies = a.send(vec![b1, b2]).await;
    assert!(replies.iter().all(|r| r.as_ref().unwrap().through_seq == 5));
    assert_eq!(stored(&c, &a.device_id), (5, 5));
    c.stop().await;
}

#[tokio::test]
async fn bad_signature_is_refused_and_nothing_stored() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let (mut b, _) = a.batch(1, GENESIS_HASH, 2);
    let last = b.signature.len() - 1;
    b.signature[last] ^= 0x55;
    let r = a.send(vec![b]).await;
    let e = r[0].as_ref().unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("signature"));
    // A batch signed by some other key is just as bad.
    let other = enroll(&c).await;
    let (mut forged, _) = other.batch(1, GENESIS_HASH, 1);
    forged.device_id = a.device_id.clone();
    let r = a.send(vec![forged]).await;
    assert!(r[0].is_err());
    assert_eq!(stored(&c, &a.device_id), (0, 0));
    c.stop().await;
}

#[tokio::test]
async fn out_of_order_broken_chain_and_forks_are_refused() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let (gap, _) = a.batch(5, GENESIS_HASH, 1);
    let e = a.send(vec![gap]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("next sequence is 1"), "{}", e.message());

    let (first, _) = a.batch(1, GENESIS_HASH, 2);
    assert!(a.send(vec![first]).await[0].is_ok());
    let (unlinked, _) = a.batch(3, [7; 32], 1);
    let e = a.send(vec![unlinked]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("prev_batch_hash"), "{}", e.message());

    // Same sequence numbers, different contents (another creation time): a fork, not a duplicate.
    let different = {
        use prost::Message;
        let mut batch =
            sightline_proto::pb::Batch::decode(a.batch(1, GENESIS_HASH, 2).0.payload.as_slice()).unwrap();
        batch.created_at_ms = 99;
        sightline_proto::envelope::seal(&batch, &a.key.public_key_spki(), |m| a.key.sign(m)).unwrap().0
    };
    let e = a.send(vec![different]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("different contents"), "{}", e.message());
    assert_eq!(stored(&c, &a.device_id), (2, 2));
    c.stop().await;
}

#[tokio::test]
async fn a_device_cannot_send_for_another() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let b = enroll(&c).await;
    let (batch, _) = b.batch(1, GENESIS_HASH, 1);
    let e = a.send(vec![batch]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(stored(&c, &b.device_id), (0, 0));
    c.stop().await;
}

#[tokio::test]
async fn clients_without_a_valid_certificate_are_refused() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let (batch, _) = a.batch(1, GENESIS_HASH, 1);

    // No client certificate at all.
    let ch = sightline_agent::transport::connect(&c.url, &c.ca_pem(), None).await.unwrap();
    let mut client = sightline_proto::pb::telemetry_client::TelemetryClient::new(ch);
    let e = send_on(&mut client, vec![batch.clone()]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // A certificate from a CA the collector does not trust: the TLS handshake fails.
    let rogue = Collector::start().await;
    let rogue_agent = enroll(&rogue).await;
    let read = |n: &str| std::fs::read(rogue_agent.state_dir.path().join(n)).unwrap();
    let r = sightline_agent::transport::connect(
        &c.url,
        &c.ca_pem(),
        Some((read("client.pem"), read("client.key"))),
    )
    .await;
    match r {
        Err(_) => {}
        Ok(ch) => {
            let mut client = sightline_proto::pb::telemetry_client::TelemetryClient::new(ch);
            assert!(send_on(&mut client, vec![batch.clone()]).await.remove(0).is_err());
        }
    }

    // A certificate from the right CA that no enrolled device holds.
    let (key_pem, spki) = sightline_agent::keys::new_tls_key_pem().unwrap();
    let cert_pem = c.shared.pki.issue_device_cert("dev_never_enrolled", &spki).unwrap().pem;
    let ch = sightline_agent::transport::connect(
        &c.url,
        &c.ca_pem(),
        Some((cert_pem.into_bytes(), key_pem.into_bytes())),
    )
    .await
    .unwrap();
    let mut client = sightline_proto::pb::telemetry_client::TelemetryClient::new(ch);
    let e = send_on(&mut client, vec![batch]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("enrolled device"));

    assert_eq!(stored(&c, &a.device_id), (0, 0));
    rogue.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn revoked_devices_are_refused() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    c.shared.store.revoke_device(&a.device_id, 1).unwrap();
    let (batch, _) = a.batch(1, GENESIS_HASH, 1);
    let e = a.send(vec![batch]).await.remove(0).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(stored(&c, &a.device_id), (0, 0));
    c.stop().await;
}

#[tokio::test]
async fn enrollment_tokens_are_one_time_and_expire() {
    let c = Collector::start().await;
    let token = c.token();
    enroll_with(&c, &token).await.unwrap();
    let e = enroll_with(&c, &token).await.err().unwrap();
    assert!(format!("{e:#}").contains("already used"), "{e:#}");

    let expired = sightline_server::create_token(c.shared.store.as_ref(), Duration::from_millis(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let e = enroll_with(&c, &expired).await.err().unwrap();
    assert!(format!("{e:#}").contains("expired"), "{e:#}");

    let e = enroll_with(&c, "slt_not-a-real-token").await.err().unwrap();
    assert!(format!("{e:#}").contains("not valid"), "{e:#}");
    assert_eq!(c.shared.store.devices().unwrap().len(), 1);
    c.stop().await;
}

#[tokio::test]
async fn proof_of_possession_is_required() {
    use sightline_proto::pb::{self, enrollment_client::EnrollmentClient};
    let c = Collector::start().await;
    let ch = sightline_agent::transport::connect(&c.url, &c.ca_pem(), None).await.unwrap();
    let mut client = EnrollmentClient::new(ch);
    let key = sightline_agent::keys::SoftwareKey::generate().unwrap();
    use sightline_agent::keys::DeviceKey;
    let challenge = client
        .begin(pb::BeginEnrollmentRequest {
            token: c.token(),
            facts: Some(pb::DeviceFacts { hostname: "h".into(), os: "linux".into(), ..Default::default() }),
            key: Some(pb::KeyAttestation {
                backend: pb::KeyBackend::Software as i32,
                device_key_spki: key.public_key_spki(),
                tpm: None,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, tls_spki) = sightline_agent::keys::new_tls_key_pem().unwrap();
    // Signed over the wrong nonce.
    let mut msg = sightline_proto::envelope::ENROLL_POP_CONTEXT.to_vec();
    msg.extend(sightline_proto::envelope::enroll_pop_message(
        b"wrong nonce",
        &key.public_key_spki(),
        &tls_spki,
    ));
    let e = client
        .complete(pb::CompleteEnrollmentRequest {
            challenge_id: challenge.challenge_id.clone(),
            proof_of_possession: key.sign(&msg).unwrap(),
            tls_key_spki: tls_spki.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // The challenge is spent: answering it again correctly does not work either.
    let e = client
        .complete(pb::CompleteEnrollmentRequest {
            challenge_id: challenge.challenge_id,
            proof_of_possession: vec![],
            tls_key_spki: tls_spki,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(c.shared.store.devices().unwrap().is_empty());
    c.stop().await;
}

/// The agent's ack is lost after the collector stored a batch: the agent keeps the batch
/// in its outbox and resends the very same bytes; the collector acknowledges and stores once.
#[tokio::test]
async fn lost_acks_cause_no_double_storage() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let outbox = sightline_agent::outbox::Outbox::open(&a.state).unwrap();
    let obs = |n: u64| {
        use prost::Message;
        sightline_proto::pb::Batch::decode(a.batch(1, GENESIS_HASH, n).0.payload.as_slice())
            .unwrap()
            .observations
    };
    outbox.seal(a.key.as_ref(), &a.device_id, obs(3), 1).unwrap();
    let pending = outbox.pending().unwrap();
    let saved = std::fs::read(&pending[0].path).unwrap();
    let d = a.drain().await.unwrap();
    assert_eq!((d.batches, d.through_seq, d.renewed), (1, 3, false));
    assert!(outbox.pending().unwrap().is_empty());

    // As if the agent crashed before processing the ack: the batch is back in the outbox.
    std::fs::write(&pending[0].path, &saved).unwrap();
    outbox.seal(a.key.as_ref(), &a.device_id, obs(2), 2).unwrap();
    let d = a.drain().await.unwrap();
    assert_eq!((d.batches, d.through_seq, d.renewed), (2, 5, false));
    assert_eq!(stored(&c, &a.device_id), (5, 5));

    // And the real run loop continues the same chain.
    a.run_once(&fixtures().join("windows")).await.unwrap();
    let (head, count) = stored(&c, &a.device_id);
    assert!(head > 5 && head == count);
    c.stop().await;
}

/// Enrolling again into the same state dir makes a new device whose chain starts afresh;
/// undelivered batches of the old device are set aside, not lost.
#[tokio::test]
async fn re_enrollment_starts_a_new_chain() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let root = fixtures().join("macos");
    a.run_once(&root).await.unwrap();
    // Leave one undelivered batch behind for the old device.
    let outbox = sightline_agent::outbox::Outbox::open(&a.state).unwrap();
    let (b, _) = a.batch(1, GENESIS_HASH, 1);
    let obs = {
        use prost::Message;
        sightline_proto::pb::Batch::decode(b.payload.as_slice()).unwrap().observations
    };
    outbox.seal(a.key.as_ref(), &a.device_id, obs, 1).unwrap();

    let opts = sightline_agent::enroll::EnrollOptions {
        server: c.url.clone(),
        token: c.token(),
        ca_pem: c.ca_pem(),
        key_backend: KeyChoice::Software,
    };
    let second = sightline_agent::enroll::enroll(&a.state, &opts).await.unwrap();
    assert_ne!(second.device_id, a.device_id);
    let kept = a.state_dir.path().join(format!("outbox.{}", a.device_id));
    assert_eq!(std::fs::read_dir(kept).unwrap().count(), 1);

    a.run_once(&root).await.unwrap();
    let new = c.shared.store.device(&second.device_id).unwrap().unwrap();
    assert!(new.seq_head > 0);
    assert_eq!(new.seq_head, c.shared.store.count_observations(&second.device_id).unwrap());
    c.stop().await;
}

/// The daemon delivers its first scan, then stops promptly when asked.
#[tokio::test]
async fn daemon_delivers_then_shuts_down_on_request() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let root = fixtures().join("linux");
    let daemon = a.run_until(&root, async {
        stopped.await.ok();
    });
    let watcher = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while stored(&c, &a.device_id).0 == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no delivery within 20s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(30), daemon), watcher);
    result.expect("daemon did not stop after shutdown").unwrap();
    let (head, count) = stored(&c, &a.device_id);
    assert!(head > 0 && head == count);
    c.stop().await;
}

use sightline_proto::pb::agent_message::Msg;

/// A recorded stream cannot be replayed on another connection: neither its claims nor its
/// batch presentations verify against the new stream's nonce.
#[tokio::test]
async fn a_recorded_stream_cannot_be_replayed_on_another_connection() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let first = a.attested_stream().await.unwrap();
    let (b1, _) = a.batch(1, GENESIS_HASH, 2);
    let recorded_claims = a.claims(&first.nonce);
    let recorded_batch = a.present(b1, &first.nonce);

    // Replayed claims as the opening of a new stream.
    let mut client = a.client().await.unwrap();
    let mut s = RawStream::open(&mut client).await.unwrap();
    assert_ne!(s.nonce, first.nonce);
    s.send(Msg::Claims(recorded_claims)).await;
    let e = s.reply().await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("nonce"), "{}", e.message());

    // A batch presented for the first stream, on a freshly attested second stream.
    let mut s = a.attested_stream().await.unwrap();
    s.send(Msg::Batch(recorded_batch)).await;
    let e = s.reply().await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("not presented for this stream"), "{}", e.message());
    assert_eq!(stored(&c, &a.device_id), (0, 0));
    drop(first);
    c.stop().await;
}

#[tokio::test]
async fn claims_must_come_first_and_be_the_devices_own() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let other = enroll(&c).await;

    let mut client = a.client().await.unwrap();
    let mut s = RawStream::open(&mut client).await.unwrap();
    let (b, _) = a.batch(1, GENESIS_HASH, 1);
    s.send(Msg::Batch(a.present(b, &s.nonce))).await;
    let e = s.reply().await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("claims"), "{}", e.message());

    // Claims signed by another device's key, on this device's connection.
    let mut s = RawStream::open(&mut client).await.unwrap();
    s.send(Msg::Claims(other.claims(&s.nonce))).await;
    assert_eq!(s.reply().await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(stored(&c, &a.device_id), (0, 0));
    c.stop().await;
}

/// Revoking a device (as the CLI does, through the store) cuts its open stream.
#[tokio::test]
async fn revocation_cuts_an_open_stream() {
    let config = sightline_server::config::IngestConfig {
        revocation_poll: Duration::from_millis(100),
        ..Default::default()
    };
    let c = Collector::start_with(config).await;
    let a = enroll(&c).await;
    let mut s = a.attested_stream().await.unwrap();
    c.shared.store.revoke_device(&a.device_id, 1).unwrap();
    let e = s.reply().await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("revoked"));
    // And it cannot come back.
    assert_eq!(a.attested_stream().await.err().unwrap().code(), Code::PermissionDenied);
    c.stop().await;
}

/// Certificate renewal in-band: the new certificate works, the old one stops working once
/// the new one is used, and a renewal interrupted before the files were swapped completes.
#[tokio::test]
async fn client_certificates_are_renewed_over_the_authenticated_stream() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let root = fixtures().join("windows");
    let old = (
        std::fs::read(a.state_dir.path().join("client.pem")).unwrap(),
        std::fs::read(a.state_dir.path().join("client.key")).unwrap(),
    );
    let before = a.state.enrollment().unwrap().unwrap().cert_not_after_ms;
    // Renew whenever expiry is within 1000 days, i.e. now.
    let opts = run_options(
        a.state_dir.path(),
        &root,
        true,
        KeyChoice::Software,
        Duration::from_secs(1000 * 24 * 3600),
    );
    sightline_agent::run::run(opts, std::future::pending()).await.unwrap();
    let new = std::fs::read(a.state_dir.path().join("client.pem")).unwrap();
    assert_ne!(new, old.0);
    assert!(a.state.enrollment().unwrap().unwrap().cert_not_after_ms >= before);

    // Until first used, both work; the first use of the new one retires the old one.
    let s = a.attested_stream().await.unwrap();
    drop(s);
    let ch = sightline_agent::transport::connect(&c.url, &c.ca_pem(), Some(old)).await.unwrap();
    let mut client = sightline_proto::pb::telemetry_client::TelemetryClient::new(ch);
    let e = RawStream::open(&mut client).await.err().unwrap();
    assert_eq!(e.code(), Code::Unauthenticated);

    // A renewal whose swap was interrupted: the next files are picked up on the next start.
    let (pem, key) = a.state.client_identity().unwrap();
    std::fs::write(a.state_dir.path().join("client.next.pem"), &pem).unwrap();
    std::fs::write(a.state_dir.path().join("client.next.key"), &key).unwrap();
    std::fs::write(a.state_dir.path().join("client.pem"), b"torn").unwrap();
    assert_eq!(a.state.client_identity().unwrap(), (pem, key));
    assert!(!a.state_dir.path().join("client.next.pem").exists());
    a.run_once(&root).await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn require_assurance_refuses_weaker_devices() {
    use sightline_server::config::IngestConfig;
    use sightline_server::domain::Assurance;
    let strict = Collector::start_with(IngestConfig {
        require_assurance: Assurance::HardwareAttested,
        ..Default::default()
    })
    .await;
    let e = enroll_with(&strict, &strict.token()).await.err().unwrap();
    assert!(format!("{e:#}").contains("requires assurance hardware_attested"), "{e:#}");
    assert!(strict.shared.store.devices().unwrap().is_empty());
    strict.stop().await;
}

/// Presence is an interval per (device, connector, place): opened by a sighting, closed by
/// DISAPPEARED, reopened by a later sighting; "what was on the device at T" answers from it.
#[tokio::test]
async fn presence_intervals_answer_what_was_on_a_device_at_a_time() {
    use sightline_proto::pb::{self, observation::Item};
    let c = Collector::start().await;
    let a = enroll(&c).await;
    // Device times are milliseconds after a base in the past (later ones would be clamped).
    const T: i64 = 1_700_000_000_000;
    let obs = |change: pb::Change, at: i64, item: Item| pb::Observation {
        seq: 0,
        observed_at_ms: T + at,
        change: change as i32,
        item: Some(item),
    };
    let token = Item::Token(pb::TokenItem {
        provider: "openai".into(),
        kind: pb::TokenKind::ApiKey as i32,
        user: Some("alice".into()),
        path: "/home/alice/.codex/auth.json".into(),
        source: pb::TokenSource::CredentialFile as i32,
        fingerprint: "00112233445566778899aabbccddeeff".into(),
        locator: Some("/OPENAI_API_KEY".into()),
        mcp_server: None,
        authorized_by: None,
    });
    let ext = |profile: &str| {
        Item::Extension(pb::ExtensionItem {
            tool: Some("chatgpt".into()),
            user: Some("alice".into()),
            browser: "chrome".into(),
            profile: profile.into(),
            extension_id: "jgjaeacdkonaoafenlfkkkmbaopkbilf".into(),
            name: "ChatGPT".into(),
            path: format!(
                "/home/alice/.config/google-chrome/{profile}/Extensions/jgjaeacdkonaoafenlfkkkmbaopkbilf"
            ),
            ..Default::default()
        })
    };
    use pb::Change::*;
    let (b1, h1) = a.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(Snapshot, 1000, token.clone()),
            obs(Snapshot, 1000, ext("Default")),
            obs(Appeared, 1200, ext("Profile 1")),
        ],
    );
    let (b2, h2) = a.batch_of(
        4,
        h1,
        vec![
            obs(Disappeared, 2000, token.clone()),
            obs(Changed, 2500, ext("Default")),
            obs(Disappeared, 3000, ext("Profile 1")),
        ],
    );
    let (b3, _) = a.batch_of(
        7,
        h2,
        vec![
            obs(Appeared, 4000, token.clone()),
            obs(Disappeared, 4100, token.clone()),
            obs(Disappeared, 4200, token.clone()),
        ],
    );
    for r in a.send(vec![b1.clone(), b2, b3, b1]).await {
        r.unwrap();
    }
    let store = c.shared.store.clone();
    let at = |t: i64| -> Vec<(String, String, u64)> {
        store
            .present_at(&a.device_id, T + t)
            .unwrap()
            .into_iter()
            .map(|p| (p.kind, p.locus.rsplit('/').nth(2).unwrap_or(&p.locus).to_owned(), p.appeared_seq))
            .collect()
    };
    assert!(at(999).is_empty());
    assert_eq!(
        at(1500),
        vec![
            ("extension".into(), "Default".into(), 2),
            ("token".into(), ".codex".into(), 1),
            ("extension".into(), "Profile 1".into(), 3),
        ]
    );
    // The token went at 2000; the Default profile's copy stays (CHANGED keeps it open).
    assert_eq!(
        at(2700),
        vec![("extension".into(), "Default".into(), 2), ("extension".into(), "Profile 1".into(), 3)]
    );
    assert_eq!(at(3500), vec![("extension".into(), "Default".into(), 2)]);
    // Back at 4000, gone at 4100; the repeated DISAPPEARED at 4200 changes nothing.
    assert_eq!(at(4050).len(), 2);
    let history = store.presence_history(&a.device_id).unwrap();
    assert_eq!(history.len(), 4, "{history:#?}");
    let last = history.iter().find(|p| p.appeared_seq == 7).unwrap();
    assert_eq!((last.disappeared_at_ms, last.disappeared_seq), (Some(T + 4100), Some(8)));
    let status: Vec<(String, bool)> =
        store.connectors().unwrap().into_iter().map(|c| (c.kind, c.devices[0].present)).collect();
    assert_eq!(status, vec![("extension".into(), true), ("token".into(), false)]);
    c.stop().await;
}

/// An evidence bundle verifies offline with nothing but the file (and, pinned, the
/// collector's key id); any tampering — a payload byte, the manifest, a dropped or reordered
/// batch — makes verification fail.
#[tokio::test]
async fn evidence_bundles_verify_offline_and_tampering_is_caught() {
    use base64::Engine;
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let root = fixtures().join("linux");
    a.run_once(&root).await.unwrap();
    a.run_once(&root).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.json");
    let server = bin("sightline-server");
    let out = run(Command::new(&server)
        .args(["evidence", "export", "--device", &a.device_id, "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(c.data_dir.path()));
    let key_id = out.trim().rsplit(' ').next().unwrap().to_owned();
    let verify = |path: &std::path::Path, pin: Option<&str>| {
        let mut cmd = Command::new(&server);
        cmd.args(["evidence", "verify"]).arg(path);
        if let Some(p) = pin {
            cmd.args(["--collector-key", p]);
        }
        let o = cmd.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, text) = verify(&bundle, Some(&key_id));
    assert!(ok, "{text}");
    assert!(text.starts_with("OK: device") && text.contains("software"), "{text}");
    let head = c.shared.store.device(&a.device_id).unwrap().unwrap().seq_head;
    assert!(text.contains(&format!("seq 1..{head}")), "{text}");
    let (ok, text) = verify(&bundle, Some("0000"));
    assert!(!ok && text.contains("not the pinned"), "{text}");
    // Unpinned, a consistent bundle is not called verified: anyone can sign with a key of
    // their own. Trusting the embedded key has to be asked for.
    let (ok, text) = verify(&bundle, None);
    assert!(!ok && text.contains("NOT VERIFIED") && text.contains("--collector-key"), "{text}");
    let o = Command::new(&server)
        .args(["evidence", "verify", "--trust-embedded-key"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let original: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let tampered = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut v = original.clone();
        f(&mut v);
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        verify(&p, None)
    };
    type Tamper<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let cases: Vec<(&str, Tamper<'_>, &str)> = vec![
        (
            "payload",
            Box::new(|v: &mut Value| {
                let mut p = b64.decode(v["batches"][0]["payload"].as_str().unwrap()).unwrap();
                let n = p.len() / 2;
                p[n] ^= 1;
                v["batches"][0]["payload"] = b64.encode(p).into();
            }),
            "batch 0",
        ),
        (
            "manifest",
            Box::new(|v: &mut Value| {
                let m = v["manifest"].as_str().unwrap().replace("\"software\"", "\"hardware_attested\"");
                v["manifest"] = m.into();
            }),
            "manifest signature",
        ),
        (
            "dropped",
            Box::new(|v: &mut Value| {
                v["batches"].as_array_mut().unwrap().pop();
            }),
            "lists",
        ),
        (
            "reordered",
            Box::new(|v: &mut Value| v["batches"].as_array_mut().unwrap().swap(0, 1)),
            "does not match",
        ),
    ];
    assert!(original["batches"].as_array().unwrap().len() >= 2);
    for (name, f, why) in &cases {
        let (ok, text) = tampered(name, f.as_ref());
        assert!(!ok, "{name}: tampered bundle verified: {text}");
        assert!(text.contains("FAILED") && text.contains(why), "{name}: {text}");
    }
    c.stop().await;
}
