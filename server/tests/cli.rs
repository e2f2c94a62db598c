//! The collector's command line on an empty data dir: clear errors and empty listings.

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sightline-server"))
}

#[test]
fn queries_on_an_empty_data_dir() {
    let d = tempfile::tempdir().unwrap();
    let out = server().args(["devices", "--json", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
    let out = server().args(["connectors", "--data-dir"]).arg(d.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No connectors reported yet.\n");
    let out = server().args(["device", "dev_missing", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device dev_missing"));
}

/// A mistyped `--data-dir` is named, and nothing is created there: only `serve` makes one.
#[test]
fn commands_refuse_a_data_dir_that_does_not_exist() {
    let d = tempfile::tempdir().unwrap();
    let typo = d.path().join("sightline-typo");
    for args in [
        &["devices", "--json"][..],
        &["connectors"],
        &["findings"],
        &["token", "create"],
        &["api-token", "list"],
        &["revoke", "tool:cursor"],
        &["prune", "--keep", "400d"],
    ] {
        let out = server().args(args).arg("--data-dir").arg(&typo).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on a missing data dir");
        assert!(err.contains(&format!("data dir {} does not exist", typo.display())), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

#[test]
fn serve_without_dev_and_without_a_ca_explains_itself() {
    let d = tempfile::tempdir().unwrap();
    let out =
        server().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dev"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn token_create_prints_only_the_token() {
    let d = tempfile::tempdir().unwrap();
    let out =
        server().args(["token", "create", "--ttl", "10m", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("slt_") && s.ends_with('\n') && s.trim().len() == 36, "{s:?}");
}

#[test]
fn api_tokens_and_triage_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let out = server()
        .args(["api-token", "create", "--role", "viewer", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("sla_") && s.ends_with('\n') && !s.trim().contains(char::is_whitespace), "{s:?}");

    let out = server()
        .args(["api-token", "create", "--role", "root", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("viewer, admin, scim, ingest"));

    let out = server()
        .args(["triage", "--device", "dev_x", "--at", "yesterday", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a time"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server()
        .args(["triage", "--device", "dev_x", "--at", "now", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device dev_x"));
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn tokens_are_listed_and_revoked_without_being_shown_again() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| server().args(args).arg("--data-dir").arg(d.path()).output().unwrap();
    let enroll = run(&["token", "create", "--name", "rollout-42"]);
    let enroll = String::from_utf8(enroll.stdout).unwrap().trim().to_owned();
    let api = run(&["api-token", "create", "--role", "viewer", "--name", "grafana", "--ttl", "90d"]);
    let api = String::from_utf8(api.stdout).unwrap().trim().to_owned();

    let list = run(&["token", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!((v[0]["name"].as_str(), v[0]["state"].as_str()), (Some("rollout-42"), Some("active")));
    let enroll_id = v[0]["id"].as_str().unwrap().to_owned();
    let list = run(&["api-token", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!((v[0]["role"].as_str(), v[0]["name"].as_str()), (Some("viewer"), Some("grafana")));
    assert!(v[0]["expires_at"].is_string(), "{v}");
    let api_id = v[0]["id"].as_str().unwrap().to_owned();
    for listing in [run(&["token", "list"]), run(&["api-token", "list"])] {
        let t = text(&listing);
        assert!(listing.status.success() && !t.contains(&enroll) && !t.contains(&api), "{t}");
        assert!(t.contains(&enroll_id[..6]) || t.contains(&api_id[..6]), "{t}");
    }

    let out = run(&["api-token", "revoke", &api_id[..8]]);
    assert!(
        out.status.success() && text(&out).contains(&format!("revoked API token {api_id}")),
        "{}",
        text(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&["api-token", "list", "--json"]).stdout).unwrap();
    assert_eq!(v[0]["state"], "revoked");
    let out = run(&["token", "revoke", &enroll_id]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&run(&["token", "list", "--json"]).stdout).unwrap();
    assert_eq!(v[0]["state"], "revoked");
    let out = run(&["token", "revoke", "abc"]);
    assert!(!out.status.success() && text(&out).contains("hex digits"), "{}", text(&out));
    let out = run(&["token", "revoke", "000000"]);
    assert!(!out.status.success() && text(&out).contains("no token"), "{}", text(&out));
}

#[test]
fn database_passwords_never_reach_an_error() {
    let d = tempfile::tempdir().unwrap();
    for url in [
        "postgres://sl:userinfo-s3cret@127.0.0.1:1/db",
        "postgres://sl@127.0.0.1:1/db?password=query-s3cret",
        "postgres://sl@127.0.0.1:1/db?password=query-s3cret&sslmode=bogus",
    ] {
        let out = server().args(["devices", "--database", url, "--data-dir"]).arg(d.path()).output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(!t.contains("s3cret"), "{url}: {t}");
        assert!(t.contains("***"), "the error says which database, redacted: {t}");
    }
}

#[test]
fn sso_settings_are_checked_before_the_collector_starts() {
    let d = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        let out = server()
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(d.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let oidc = |issuer: &'static str| {
        [
            "--http",
            "127.0.0.1:0",
            "--oidc-issuer",
            issuer,
            "--oidc-client-id",
            "sightline",
            "--oidc-redirect-url",
            "https://127.0.0.1:8444/ui/oidc/callback",
            "--oidc-admin-group",
            "admins",
        ]
    };
    let e = serve(&oidc("http://127.0.0.1:9"));
    assert!(e.contains("plain http") && e.contains("--oidc-allow-http"), "{e}");
    let e = serve(&[&oidc("http://idp.example.com")[..], &["--oidc-allow-http"]].concat());
    assert!(e.contains("not loopback"), "{e}");
    let e = serve(&oidc("https://idp.example.com")[2..]);
    assert!(e.contains("--http"), "{e}");
    assert!(!d.path().join("sightline.db").exists(), "refused before the data dir was opened");
}

#[test]
fn sso_end_ends_every_session_of_a_subject() {
    use sightline_server::store::{AuthStore, SsoIdentity, sqlite::SqliteStore};
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("sightline.db");
    let who = |sub: &str| SsoIdentity {
        subject: sub.into(),
        email: format!("{sub}@example.com"),
        role: "admin".into(),
    };
    let now = sightline_server::clock::now_ms();
    {
        let s = SqliteStore::open(&db).unwrap();
        s.create_sso_session(b"a1", &who("ada"), now, now + 60_000).unwrap();
        s.create_sso_session(b"a2", &who("ada"), now, now + 60_000).unwrap();
        s.create_sso_session(b"b1", &who("bob"), now, now + 60_000).unwrap();
    }
    let out = server().args(["sso", "end", "ada", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ended 2 dashboard session(s) of ada\n");
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.session_role(b"a1", now).unwrap(), None);
    assert_eq!(s.session_role(b"a2", now).unwrap(), None);
    assert_eq!(s.session_role(b"b1", now).unwrap().as_deref(), Some("admin"), "bob keeps his");
}

/// The approvals workflow and the audit log from the data dir: each step as `cli:USER`,
/// refusals explained, owner tokens made only for a provisioned person.
#[test]
fn approvals_and_the_audit_log_on_the_command_line() {
    use serde_json::{Value, json};
    use sightline_server::domain::{Change, ObservationKind};
    use sightline_server::store::{
        ConnectorRef, Device, EnrollmentStore, IngestBatch, IngestStore, ObservationRecord, PeopleStore,
        Person, sqlite::SqliteStore,
    };
    let d = tempfile::tempdir().unwrap();
    {
        // alice's laptop reports ollama running under her account; alice is provisioned.
        let s = SqliteStore::open(&d.path().join("sightline.db")).unwrap();
        let device = Device {
            id: "dev_a".into(),
            hostname: "alice-laptop".into(),
            os: "linux".into(),
            os_version: "6.1".into(),
            agent_version: "0.1.0".into(),
            key_backend: "software".into(),
            assurance: "software".into(),
            key_spki: vec![1, 2, 3],
            cert_sha256: "cert-a".into(),
            next_cert_sha256: None,
            enrolled_at_ms: 1_000,
            last_seen_ms: None,
            last_attested_ms: None,
            hardware_id: None,
            clock_skew_ms: None,
            seq_head: 0,
            head_hash: [0; 32],
            revoked_at_ms: None,
            users: vec![],
        };
        s.create_token(b"t", "", 0, i64::MAX).unwrap();
        s.complete_enrollment(b"t", &device, &[], 1).unwrap();
        let ollama = ConnectorRef {
            key: "tool:ollama".into(),
            kind: "tool",
            label: "ollama".into(),
            user: Some("alice".into()),
            locus: "pid:1".into(),
        };
        let o = ObservationRecord {
            seq: 1,
            observed_at_ms: 2_000,
            change: Change::Appeared,
            kind: ObservationKind::Process,
            connector: Some(ollama),
            session: None,
            directive: None,
            data: "{}".into(),
        };
        s.ingest(&IngestBatch {
            device_id: "dev_a".into(),
            first_seq: 1,
            last_seq: 1,
            prev_hash: [0; 32],
            hash: [1; 32],
            payload: b"p".to_vec(),
            signature: vec![9; 64],
            received_at_ms: 2_000,
            observations: vec![o],
            inventory: None,
        })
        .unwrap();
        let alice = Person {
            id: "p1".into(),
            user_name: "alice@example.com".into(),
            emails: vec!["alice@example.com".into()],
            active: true,
            ..Default::default()
        };
        s.create_person(&alice).unwrap();
    }
    let run = |args: &[&str]| {
        server().env("USER", "ops").args(args).arg("--data-dir").arg(d.path()).output().unwrap()
    };
    let json_of = |out: &std::process::Output| -> Value {
        assert!(out.status.success(), "{}", text(out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let r = json_of(&run(&[
        "approval",
        "request",
        "tool:ollama",
        "--for",
        "alice@example.com",
        "--reason",
        "local models",
        "--duration",
        "30d",
        "--json",
    ]));
    assert_eq!((&r["id"], &r["state"], &r["requested_by"]), (&json!(1), &json!("open"), &json!("cli:ops")));
    assert_eq!(r["duration"], "30days");
    let out = run(&["approval", "request", "tool:ollama", "--for", "nobody@example.com", "--reason", "x"]);
    assert!(!out.status.success() && text(&out).contains("no person is provisioned"), "{}", text(&out));
    let out = run(&["approval", "list", "--state", "open"]);
    assert!(
        out.status.success()
            && text(&out).contains("tool:ollama")
            && text(&out).contains("alice@example.com"),
        "{}",
        text(&out)
    );

    let a =
        json_of(&run(&["approval", "approve", "1", "--reason", "team tool", "--expires-in", "7d", "--json"]));
    assert_eq!((&a["state"], &a["decided_by"]), (&json!("approved"), &json!("cli:ops")));
    let out = run(&["approval", "deny", "1", "--reason", "too late"]);
    assert!(!out.status.success() && text(&out).contains("only an open request"), "{}", text(&out));
    let out = run(&["connector", "tool:ollama", "--json"]);
    assert_eq!(json_of(&out)["status"], "approved");
    let w = json_of(&run(&["approval", "withdraw", "1", "--reason", "done", "--json"]));
    assert_eq!(w["state"], "withdrawn");

    let events = json_of(&run(&["audit", "--connector", "tool:ollama", "--json"]));
    let steps: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [("approval_requested", "cli:ops"), ("approved", "cli:ops"), ("approval_withdrawn", "cli:ops")]
    );
    assert!(events.as_array().unwrap().iter().all(|e| e["detail"]["request"] == 1));
    let out = run(&["audit"]);
    assert!(
        out.status.success() && text(&out).contains("approval_withdrawn") && text(&out).contains("done"),
        "{}",
        text(&out)
    );

    // Owner tokens: for a provisioned person only, and --person only with them.
    let out = run(&["api-token", "create", "--role", "owner", "--person", "alice@example.com"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("sla_"),
        "{}",
        text(&out)
    );
    let out = run(&["api-token", "create", "--role", "owner"]);
    assert!(!out.status.success() && text(&out).contains("--person"), "{}", text(&out));
    let out = run(&["api-token", "create", "--role", "owner", "--person", "mallory@example.com"]);
    assert!(!out.status.success() && text(&out).contains("no person"), "{}", text(&out));
    let out = run(&["api-token", "create", "--role", "viewer", "--person", "alice@example.com"]);
    assert!(!out.status.success(), "{}", text(&out));
    let listed = json_of(&run(&["api-token", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().iter().filter(|t| t["role"] == "owner").count(), 1);
}

/// `review` on the command line: start a campaign over a data dir holding one reported tool,
/// answer it on the owner's behalf, and write a report an auditor verifies offline; a report
/// changed after signing fails.
#[test]
fn a_review_campaign_from_start_to_a_verified_report() {
    use sightline_server::domain::{Change, ObservationKind};
    use sightline_server::store::sqlite::SqliteStore;
    use sightline_server::store::{
        ConnectorRef, Device, EnrollmentStore, IngestBatch, IngestStore, ObservationRecord, PeopleStore,
        Person,
    };
    let d = tempfile::tempdir().unwrap();
    let key_id = {
        let pki = sightline_server::pki::Pki::load_or_init(d.path(), true).unwrap();
        sightline_proto::p256::key_id(&pki.signing_key_spki())
    };
    {
        let s = SqliteStore::open(&d.path().join("sightline.db")).unwrap();
        let alice = Person {
            id: "p-alice".into(),
            user_name: "alice@example.com".into(),
            emails: vec!["alice@example.com".into()],
            active: true,
            ..Person::default()
        };
        s.create_person(&alice).unwrap();
        s.create_token(b"t", "", 0, i64::MAX).unwrap();
        let device = Device {
            id: "dev-1".into(),
            hostname: "laptop-1".into(),
            os: "linux".into(),
            os_version: "6.1".into(),
            agent_version: "0.1.0".into(),
            key_backend: "software".into(),
            assurance: "software".into(),
            key_spki: vec![1],
            cert_sha256: "c".into(),
            next_cert_sha256: None,
            enrolled_at_ms: 1_000,
            last_seen_ms: None,
            last_attested_ms: None,
            hardware_id: None,
            clock_skew_ms: None,
            seq_head: 0,
            head_hash: [0; 32],
            revoked_at_ms: None,
            users: vec![],
        };
        s.complete_enrollment(b"t", &device, &[], 1_000).unwrap();
        let o = ObservationRecord {
            seq: 1,
            observed_at_ms: 2_000,
            change: Change::Appeared,
            kind: ObservationKind::Process,
            connector: Some(ConnectorRef {
                key: "tool:ollama".into(),
                kind: "tool",
                label: "ollama".into(),
                user: Some("alice".into()),
                locus: "/usr/bin/ollama".into(),
            }),
            session: None,
            directive: None,
            data: "{}".into(),
        };
        let b = IngestBatch {
            device_id: "dev-1".into(),
            first_seq: 1,
            last_seq: 1,
            prev_hash: [0; 32],
            hash: [5; 32],
            payload: b"p".to_vec(),
            signature: vec![9; 64],
            received_at_ms: 2_000,
            observations: vec![o],
            inventory: None,
        };
        s.ingest(&b).unwrap();
    }
    let run = |args: &[&str]| server().args(args).arg("--data-dir").arg(d.path()).output().unwrap();
    let out = run(&["review", "start", "--scope", "all", "--due", "14d", "--json"]);
    assert!(!out.status.success() && text(&out).contains("--url"), "{}", text(&out));
    let out = run(&[
        "review",
        "start",
        "--scope",
        "kind:tool",
        "--due",
        "14d",
        "--url",
        "https://c.example:8444",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (started["items"][0]["reviewer"].as_str(), started["items"][0]["why"].as_str()),
        (Some("alice@example.com"), Some("owner"))
    );
    let out = run(&["review", "list"]);
    assert!(text(&out).contains(&id) && text(&out).contains("0/1"), "{}", text(&out));
    let out = run(&[
        "review",
        "decide",
        &id,
        "tool:ollama",
        "keep",
        "--reason",
        "she still uses it",
        "--keep-for",
        "30d",
    ]);
    assert!(out.status.success() && text(&out).contains("keep until"), "{}", text(&out));
    let out = run(&["review", "show", &id]);
    assert!(text(&out).contains("1 of 1 answered (1 kept, 0 revoked)"), "{}", text(&out));
    let report = d.path().join("report.json");
    let out = run(&["review", "report", &id, "--out", report.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains(&key_id), "{}", text(&out));

    // Offline: no data dir, only the file and the key the auditor was given.
    let verify = |file: &std::path::Path, extra: &[&str]| {
        server().args(["review", "verify"]).arg(file).args(extra).output().unwrap()
    };
    let out = verify(&report, &[]);
    assert!(!out.status.success() && text(&out).contains("NOT VERIFIED"), "{}", text(&out));
    let out = verify(&report, &["--collector-key", &key_id]);
    assert!(out.status.success() && text(&out).contains("1 kept, 0 revoked"), "{}", text(&out));
    let mut forged: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    forged["manifest"] =
        forged["manifest"].as_str().unwrap().replace("she still uses it", "approved by the CISO").into();
    let forged_file = d.path().join("forged.json");
    std::fs::write(&forged_file, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = verify(&forged_file, &["--collector-key", &key_id]);
    assert!(!out.status.success() && text(&out).contains("FAILED"), "{}", text(&out));
}
