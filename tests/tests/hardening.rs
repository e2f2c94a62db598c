//! Hostile clients against the real collector: connection floods and half-sent requests,
//! anonymous streams, out-of-range device times, oversized messages, stolen or stale
//! tokens, cookie-borne writes without the CSRF header, a pending certificate used without
//! the device key. Each test is what an attacker (or a broken agent) did to an earlier
//! collector, and what it must do now.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_proto::envelope::GENESIS_HASH;
use sightline_proto::pb::{self, agent_message::Msg, observation::Item};
use sightline_server::config::IngestConfig;
use sightline_tests::*;
use tonic::Code;

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

fn tls_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection that sends `bytes` and then nothing more.
fn half_request(to: SocketAddr, tls: &Arc<rustls::ClientConfig>, bytes: &[u8]) -> impl Read + Write {
    let tcp = TcpStream::connect(to).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
    let conn = rustls::ClientConnection::new(tls.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(bytes).unwrap();
    s.flush().unwrap();
    s
}

/// How long until the peer closed the connection (None: still open after the read timeout).
fn closed_after(mut s: impl Read) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// Connections that send half a request are closed by the header-read timeout, the HTTP
/// listener never holds more than its cap, and a real client is served once they go. (An
/// earlier collector kept such connections forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_and_the_api_keeps_serving() {
    let c = Collector::start_with(IngestConfig { http_max_connections: 4, ..Default::default() }).await;
    let (api, tls) = (addr(&c.api_url), tls_config(&c.ca_pem()));
    let hogs = tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..4)
            .map(|_| half_request(api, &tls, b"GET /api/v1/health HTTP/1.1\r\nHost: collector\r\n"))
            .collect();
        held.into_iter().map(closed_after).collect::<Vec<_>>()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = c.shared.metrics.render(sightline_server::metrics::Format::OpenMetrics);
    assert!(text.contains("sightline_open_connections{listener=\"http\"} 4"), "{text}");
    // A real client, queued behind the four: served once the header timeout frees a slot.
    let started = Instant::now();
    let health = tokio::task::spawn_blocking({
        let url = c.api_url.clone();
        let ca = c.data_dir.path().join("ca.pem");
        move || {
            std::process::Command::new("curl")
                .args(["-sSf", "--max-time", "40", "--cacert"])
                .arg(ca)
                .arg(format!("{url}/api/v1/health"))
                .output()
                .unwrap()
        }
    });
    for (i, closed) in hogs.await.unwrap().into_iter().enumerate() {
        let after = closed.unwrap_or_else(|| panic!("half request {i} was still open after 25 s"));
        assert!(after < Duration::from_secs(15), "half request {i} closed only after {after:?}");
    }
    let out = health.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\""));
    assert!(started.elapsed() < Duration::from_secs(20), "served after {:?}", started.elapsed());
    c.stop().await;
}

/// A TCP connection to the agents' port that never starts TLS is dropped after the
/// handshake timeout instead of holding a slot (and a task) forever.
#[tokio::test]
async fn a_tls_handshake_that_never_happens_is_dropped() {
    let c = Collector::start().await;
    let grpc = addr(&c.url);
    let after = tokio::task::spawn_blocking(move || {
        let tcp = TcpStream::connect(grpc).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
        closed_after(tcp)
    })
    .await
    .unwrap();
    let after = after.expect("a silent connection was still open after 25 s");
    assert!(after < Duration::from_secs(15), "closed only after {after:?}");
    c.stop().await;
}

/// With too few file descriptors for its connection caps, the collector shrinks the caps
/// to fit and says so, and a flood of connections then neither exhausts the descriptors
/// nor spins the accept loop (an earlier collector logged "accept failed … os error 24"
/// millions of times a minute); once the flood goes, the API answers.
#[test]
fn a_descriptor_flood_neither_spins_nor_starves() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("server.log");
    let child = std::process::Command::new("prlimit")
        .args(["--nofile=200:200", "--"])
        .arg(bin("sightline-server"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(work.path().join("data"))
        .env("SIGHTLINE_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed whatever happens below, so a failed assertion leaves no collector behind.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let mut reap = Reap(child);
    let listening = read_listening(&mut reap.0, 2, Duration::from_secs(20)).unwrap();
    let http = listening.iter().find(|(k, _)| k == "http").unwrap().1;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("file descriptor limit is too low"), "{text}");

    // Past the accept queue a connect waits for SYN retries; what got through is the flood.
    let flood: Vec<TcpStream> =
        (0..400).filter_map(|_| TcpStream::connect_timeout(&http, Duration::from_millis(20)).ok()).collect();
    assert!(flood.len() >= 100, "only {} connections were opened", flood.len());
    std::thread::sleep(Duration::from_secs(4));
    let size = std::fs::metadata(&log).unwrap().len();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        size < 64 * 1024,
        "the log grew to {size} bytes under the flood:\n{}",
        &text[..text.len().min(2000)]
    );
    assert!(!text.contains("os error 24"), "descriptors ran out: {text}");
    drop(flood);

    let ca = work.path().join("data/ca.pem");
    let ok = wait_for(Duration::from_secs(30), "the API to answer after the flood", || {
        let out = std::process::Command::new("curl")
            .args(["-sSf", "--max-time", "5", "--cacert"])
            .arg(&ca)
            .arg(format!("https://{http}/api/v1/health"))
            .output()
            .unwrap();
        out.status.success().then_some(out)
    });
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"ok\""));
}

/// Clients without a device certificate are turned away before admission, so however many
/// there are, an enrolled agent is still admitted (an earlier collector let them drain the
/// token bucket and told the fleet to slow down).
#[tokio::test]
async fn anonymous_streams_cannot_make_enrolled_agents_wait() {
    let c = Collector::start_with(IngestConfig { stream_rate: 1.0, ..Default::default() }).await;
    let a = enroll(&c).await;
    for _ in 0..20 {
        let ch = sightline_agent::transport::connect(&c.url, &c.ca_pem(), None).await.unwrap();
        let mut client = pb::telemetry_client::TelemetryClient::new(ch);
        let (_tx, rx) = tokio::sync::mpsc::channel::<pb::AgentMessage>(1);
        let r = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
        let first = match r {
            Ok(s) => s.into_inner().message().await,
            Err(e) => Err(e),
        };
        assert_eq!(first.unwrap_err().code(), Code::Unauthenticated);
    }
    let mut client = a.client().await.unwrap();
    let s = RawStream::open(&mut client).await.expect("the enrolled agent was admitted");
    assert!(!s.nonce.is_empty());
    c.stop().await;
}

/// One live stream per device: a newer attested stream ends the older one; a certificate
/// cannot hold more than two streams that have not attested.
#[tokio::test]
async fn a_device_has_one_live_stream() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let mut first = a.attested_stream().await.unwrap();
    let _second = a.attested_stream().await.unwrap();
    let e = first.reply().await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(e.message().contains("newer stream"), "{}", e.message());
    assert!(
        c.shared
            .metrics
            .render(sightline_server::metrics::Format::OpenMetrics)
            .contains("sightline_streams_replaced_total 1")
    );

    // Two unattested streams are allowed (a reconnect overlapping its predecessor)…
    let mut c1 = a.client().await.unwrap();
    let _p1 = RawStream::open(&mut c1).await.unwrap();
    let mut c2 = a.client().await.unwrap();
    let _p2 = RawStream::open(&mut c2).await.unwrap();
    // …a third is refused before it costs anything.
    let mut c3 = a.client().await.unwrap();
    let e = RawStream::open(&mut c3).await.err().expect("a third unattested stream was admitted");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    c.stop().await;
}

/// A device that stamps its observations after the year 9999 (or before 2000) cannot break
/// the API, the dashboard or triage: its times are stored as received, its claim is kept
/// beside each, and the clamping is counted. (An earlier collector answered 500 for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_device_times_are_clamped_and_cannot_break_the_api() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let far = 253_402_300_800_000_i64 + 86_400_000; // 10000-01-02
    let obs =
        |at: i64, item: Item| pb::Observation { seq: 0, observed_at_ms: at, change: 1, item: Some(item) };
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
    let session = Item::OsSession(pb::OsSessionItem {
        user: "alice".into(),
        terminal: "tty1".into(),
        host: None,
        started_at_ms: i64::MAX,
    });
    let before = sightline_server::clock::now_ms();
    let (b, _) = a.batch_of(1, GENESIS_HASH, vec![obs(far, token), obs(-5, session)]);
    assert!(a.send(vec![b]).await[0].is_ok());
    let after = sightline_server::clock::now_ms();

    let stored = Db::open(c.data_dir.path()).observations(&a.device_id);
    assert_eq!(stored.len(), 2);
    for o in &stored {
        assert!((before..=after).contains(&o.observed_at_ms), "{o:?}");
    }
    assert_eq!(stored[0].data["device_observed_at_ms"], far);
    assert_eq!(stored[1].data["device_observed_at_ms"], -5);
    assert_eq!(stored[1].data["device_started_at_ms"], i64::MAX);
    assert!(
        c.shared
            .metrics
            .render(sightline_server::metrics::Format::OpenMetrics)
            .contains("sightline_device_times_clamped_total 3")
    );

    let viewer = c.api_token("viewer");
    for path in [
        "/api/v1/connectors".to_owned(),
        format!("/api/v1/devices/{}", a.device_id),
        format!("/api/v1/triage/device/{}?at=now", a.device_id),
        "/api/v1/views/connectors".to_owned(),
        "/api/v1/views/overview".to_owned(),
        "/api/v1/findings".to_owned(),
    ] {
        let (code, _, body) = c.api("GET", &path, Some(&viewer));
        assert_eq!(code, 200, "{path}: {body}");
    }
    c.stop().await;
}

/// A message over the limit ends the stream with an error the agent (and the log) can
/// read, not with OK.
#[tokio::test]
async fn an_oversized_message_ends_the_stream_with_an_error_status() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let mut s = a.attested_stream().await.unwrap();
    let (mut big, _) = a.batch(1, GENESIS_HASH, 1);
    big.payload = vec![7; 6 << 20];
    s.send(Msg::Batch(a.present(big, &s.nonce))).await;
    let e = s.reply().await.expect_err("a 6 MB message was answered with OK");
    assert!(matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted), "{e:?}");
    assert!(e.message().contains("too large"), "{}", e.message());
    c.stop().await;
}

/// curl with a cookie jar: (status, body).
fn cookie_call(
    c: &Collector,
    jar: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .arg("--cacert")
        .arg(c.data_dir.path().join("ca.pem"));
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.arg(format!("{}{path}", c.api_url)).output().unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn sign_in(c: &Collector, jar: &std::path::Path, token: &str) {
    let (code, body) = cookie_call(
        c,
        jar,
        "POST",
        "/api/v1/session",
        &["X-Sightline-CSRF: 1"],
        Some(&format!("{{\"token\": \"{token}\"}}")),
    );
    assert_eq!(code, 200, "{body}");
}

/// Tokens have a lifecycle over the admin API: made with an expiry, listed with their last
/// use (never the token), revoked; an expired or revoked token stops working at once, its
/// dashboard sessions included, and a revoked enrollment token enrolls nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_are_revoked_and_take_their_sessions_with_them() {
    let c = Collector::start().await;
    let admin = c.api_token("admin");
    let json = |s: &str| -> serde_json::Value { serde_json::from_str(s).unwrap() };
    let post = |path: &str, body: &str| {
        let dir = tempfile::tempdir().unwrap();
        cookie_call(
            &c,
            &dir.path().join("jar"),
            "POST",
            path,
            &[&format!("Authorization: Bearer {admin}")],
            Some(body),
        )
    };

    let (code, body) =
        post("/api/v1/tokens/api", r#"{"role": "viewer", "name": "short-lived", "ttl": "3s"}"#);
    assert_eq!(code, 200, "{body}");
    let short = json(&body)["token"].as_str().unwrap().to_owned();
    let (code, body) = post("/api/v1/tokens/api", r#"{"role": "viewer", "name": "dashboard"}"#);
    assert_eq!(code, 200, "{body}");
    let (long, long_id) =
        (json(&body)["token"].as_str().unwrap().to_owned(), json(&body)["id"].as_str().unwrap().to_owned());

    let dir = tempfile::tempdir().unwrap();
    let (jar_short, jar_long) = (dir.path().join("short"), dir.path().join("long"));
    sign_in(&c, &jar_short, &short);
    sign_in(&c, &jar_long, &long);
    assert_eq!(c.api("GET", "/api/v1/devices", Some(&short)).0, 200);
    assert_eq!(cookie_call(&c, &jar_long, "GET", "/api/v1/views/overview", &[], None).0, 200);

    // Listed without the tokens themselves, with when each was last used.
    let (code, _, list) = c.api("GET", "/api/v1/tokens/api", Some(&admin));
    assert_eq!(code, 200);
    let text = list.to_string();
    assert!(!text.contains(&short) && !text.contains(&long), "{text}");
    let listed = list.as_array().unwrap().iter().find(|t| t["id"] == long_id.as_str()).unwrap();
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert_eq!(c.api("GET", "/api/v1/tokens/api", Some(&short)).0, 403, "a viewer cannot list tokens");

    // Revoked: the bearer and its dashboard session end at once.
    let (code, _, body) = c.api("DELETE", &format!("/api/v1/tokens/api/{long_id}"), Some(&admin));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.api("GET", "/api/v1/devices", Some(&long)).0, 401);
    assert_eq!(cookie_call(&c, &jar_long, "GET", "/api/v1/views/overview", &[], None).0, 401);
    assert_eq!(c.api("DELETE", "/api/v1/tokens/api/ffffffffffff", Some(&admin)).0, 404);

    // Expired: the same.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(c.api("GET", "/api/v1/devices", Some(&short)).0, 401);
    assert_eq!(cookie_call(&c, &jar_short, "GET", "/api/v1/views/overview", &[], None).0, 401);

    // A token made by another through the API goes when its maker is revoked: a stolen
    // admin token cannot leave heirs behind.
    let stolen = c.api_token("admin");
    let dir2 = tempfile::tempdir().unwrap();
    let (code, body) = cookie_call(
        &c,
        &dir2.path().join("jar"),
        "POST",
        "/api/v1/tokens/api",
        &[&format!("Authorization: Bearer {stolen}")],
        Some(r#"{"role": "admin", "name": "backdoor"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let heir = json(&body)["token"].as_str().unwrap().to_owned();
    assert_eq!(c.api("GET", "/api/v1/devices", Some(&heir)).0, 200);
    let stolen_id = sightline_server::tokens::id(&sightline_server::tokens::hash(&stolen));
    let (code, _, body) = c.api("DELETE", &format!("/api/v1/tokens/api/{stolen_id}"), Some(&admin));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["also_revoked"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(c.api("GET", "/api/v1/devices", Some(&heir)).0, 401, "the heir was revoked with its maker");

    // Enrollment tokens: made, revoked, refused.
    let (code, body) = post("/api/v1/tokens/enrollment", r#"{"name": "rollout", "ttl": "10m"}"#);
    assert_eq!(code, 200, "{body}");
    let (token, id) =
        (json(&body)["token"].as_str().unwrap().to_owned(), json(&body)["id"].as_str().unwrap().to_owned());
    assert_eq!(c.api("DELETE", &format!("/api/v1/tokens/enrollment/{id}"), Some(&admin)).0, 200);
    let e = enroll_with(&c, &token).await.err().expect("a revoked enrollment token enrolled a device");
    assert!(format!("{e:#}").contains("revoked"), "{e:#}");
    let (_, _, list) = c.api("GET", "/api/v1/tokens/enrollment", Some(&admin));
    assert_eq!(list[0]["state"], "revoked", "{list}");
    c.stop().await;
}

/// Every change made with a session cookie needs the CSRF header — SCIM and sign-in pushes
/// too (an earlier collector checked it only on admin actions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_writes_need_the_csrf_header_on_every_route() {
    let c = Collector::start().await;
    let admin = c.api_token("admin");
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("jar");
    sign_in(&c, &jar, &admin);
    let okta = r#"[{"uuid":"7f3c2b2e-1111-11ef-9a9a-3b1d2c4e5f61","published":"2026-01-15T07:58:12.345Z","eventType":"user.session.start",
        "actor":{"alternateId":"alice@example.com"},"outcome":{"result":"SUCCESS"},"client":{"ipAddress":"198.51.100.7"}}]"#;
    for (method, path, body) in [
        ("POST", "/api/v1/signins/okta", Some(okta)),
        ("POST", "/scim/v2/Users", Some(r#"{"userName": "mallory@example.com"}"#)),
        ("DELETE", "/api/v1/session", None),
        ("POST", "/api/v1/tokens/api", Some(r#"{"role": "admin"}"#)),
    ] {
        let (code, text) = cookie_call(&c, &jar, method, path, &[], body);
        assert_eq!(code, 403, "{method} {path}: {text}");
        assert!(text.contains("x-sightline-csrf"), "{method} {path}: {text}");
    }
    // With the header the same cookie goes through (the push is the admin's to make).
    let (code, text) =
        cookie_call(&c, &jar, "POST", "/api/v1/signins/okta", &["X-Sightline-CSRF: 1"], Some(okta));
    assert_eq!(code, 200, "{text}");
    c.stop().await;
}

/// A renewed certificate staged for a device becomes its only accepted one only after a
/// stream made with it has verified signed claims: a copy of the certificate and its TLS
/// key without the device key cannot retire the certificate in use.
#[tokio::test]
async fn a_pending_certificate_is_promoted_only_by_verified_claims() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let current = c.shared.store.device(&a.device_id).unwrap().unwrap().cert_sha256;
    let (key_pem, spki) = sightline_agent::keys::new_tls_key_pem().unwrap();
    let cert = c.shared.pki.issue_device_cert(&a.device_id, &spki).unwrap();
    c.shared.store.stage_certificate(&a.device_id, &cert.sha256).unwrap();
    let ch = sightline_agent::transport::connect(
        &c.url,
        &c.ca_pem(),
        Some((cert.pem.clone().into_bytes(), key_pem.into_bytes())),
    )
    .await
    .unwrap();
    let mut client = pb::telemetry_client::TelemetryClient::new(ch);

    // The stream opens with the pending certificate, but claims signed by another key fail.
    let mut s = RawStream::open(&mut client).await.unwrap();
    let intruder = sightline_agent::keys::SoftwareKey::generate().unwrap();
    let forged = sightline_agent::deliver::claims(
        &a.device_id,
        &s.nonce,
        sightline_agent::run::device_facts().unwrap(),
        &intruder,
    )
    .unwrap();
    s.send(Msg::Claims(forged)).await;
    assert_eq!(s.reply().await.unwrap_err().code(), Code::Unauthenticated);
    let d = c.shared.store.device(&a.device_id).unwrap().unwrap();
    assert_eq!(d.cert_sha256, current, "the certificate in use was retired without the device key");
    assert_eq!(d.next_cert_sha256.as_deref(), Some(cert.sha256.as_str()));

    // With the device key's claims, the renewal completes.
    let mut s = RawStream::open(&mut client).await.unwrap();
    s.send(Msg::Claims(a.claims(&s.nonce))).await;
    assert!(matches!(
        s.reply().await.unwrap(),
        Some(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Ack(_)) })
    ));
    let d = c.shared.store.device(&a.device_id).unwrap().unwrap();
    assert_eq!((d.cert_sha256.as_str(), d.next_cert_sha256), (cert.sha256.as_str(), None));
    c.stop().await;
}

/// Whole-fleet lists come a page at a time, the body still a JSON array; the CLI's
/// `--server` follows the pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_lists_are_paged() {
    let c = Collector::start().await;
    for _ in 0..3 {
        enroll(&c).await;
    }
    let viewer = c.api_token("viewer");
    let (code, headers, page) = c.api("GET", "/api/v1/devices?limit=2", Some(&viewer));
    assert_eq!(code, 200, "{page}");
    assert_eq!(page.as_array().unwrap().len(), 2);
    let headers = headers.to_ascii_lowercase();
    assert!(headers.contains("x-total-count: 3"), "{headers}");
    assert!(headers.contains("rel=\"next\"") && headers.contains("offset=2"), "{headers}");
    let (_, _, rest) = c.api("GET", "/api/v1/devices?limit=2&offset=2", Some(&viewer));
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(c.api("GET", "/api/v1/devices?limit=0", Some(&viewer)).0, 400);
    assert_eq!(c.api("GET", "/api/v1/connectors?kind=tool&limit=100000", Some(&viewer)).0, 400);

    let out = tokio::task::spawn_blocking({
        let (url, ca) = (c.api_url.clone(), c.data_dir.path().join("ca.pem"));
        move || {
            std::process::Command::new(bin("sightline-server"))
                .args(["devices", "--server", &url, "--ca"])
                .arg(ca)
                .env("SIGHTLINE_API_TOKEN", viewer)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);
    c.stop().await;
}

/// Text a device reports reaches a terminal table as visible escapes, never as control
/// sequences that rewrite the screen or the window title.
#[tokio::test]
async fn device_text_cannot_drive_the_terminal() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let mut s = {
        let mut client = a.client().await.unwrap();
        RawStream::open(&mut client).await.unwrap()
    };
    let claims = pb::DeviceClaims {
        device_id: a.device_id.clone(),
        stream_nonce: s.nonce.clone(),
        hostname: "laptop\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}".into(),
        os: "linux".into(),
        os_version: "6.1".into(),
        agent_version: "0.1.0".into(),
        claimed_at_ms: sightline_server::clock::now_ms(),
        ..Default::default()
    };
    let payload = prost::Message::encode_to_vec(&claims);
    let mut msg = sightline_proto::envelope::CLAIMS_CONTEXT.to_vec();
    msg.extend_from_slice(&payload);
    let signature = a.key.sign(&msg).unwrap();
    s.send(Msg::Claims(pb::SignedClaims { payload, signature })).await;
    assert!(s.reply().await.unwrap().is_some());
    let out = sightline_server::query::devices(c.shared.store.as_ref(), false).unwrap();
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'), "{out:?}");
    assert!(out.contains("laptop\\u{1b}]0;pwned"), "{out}");
    let detail =
        sightline_server::query::device(c.shared.store.as_ref(), &a.device_id, &Default::default(), false)
            .unwrap();
    assert!(!detail.contains('\u{1b}'), "{detail:?}");
    c.stop().await;
}

/// Signed claims are stored as evidence on every stream: claims larger than any real
/// device's (a 300-byte hostname, a 10 KB list of users) are refused, not stored.
#[tokio::test]
async fn oversized_claims_are_refused() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let signed = |claims: pb::DeviceClaims| {
        let payload = prost::Message::encode_to_vec(&claims);
        let mut msg = sightline_proto::envelope::CLAIMS_CONTEXT.to_vec();
        msg.extend_from_slice(&payload);
        pb::SignedClaims { signature: a.key.sign(&msg).unwrap(), payload }
    };
    let claims = |nonce: &[u8]| pb::DeviceClaims {
        device_id: a.device_id.clone(),
        stream_nonce: nonce.to_vec(),
        hostname: "laptop".into(),
        os: "linux".into(),
        claimed_at_ms: sightline_server::clock::now_ms(),
        ..Default::default()
    };
    for (what, grow) in [
        (
            "hostname",
            Box::new(|c: &mut pb::DeviceClaims| c.hostname = "h".repeat(300))
                as Box<dyn Fn(&mut pb::DeviceClaims)>,
        ),
        ("bytes", Box::new(|c: &mut pb::DeviceClaims| c.logged_in_users = vec!["u".repeat(100); 100])),
    ] {
        let mut client = a.client().await.unwrap();
        let mut s = RawStream::open(&mut client).await.unwrap();
        let mut big = claims(&s.nonce);
        grow(&mut big);
        s.send(Msg::Claims(signed(big))).await;
        let e = s.reply().await.expect_err("oversized claims were accepted");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(what), "{}", e.message());
    }
    assert!(
        c.shared.store.device(&a.device_id).unwrap().unwrap().last_attested_ms.is_none(),
        "nothing was stored"
    );
    c.stop().await;
}
