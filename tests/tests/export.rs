//! SIEM exports: OCSF events in rotating JSON-lines files and in a Splunk HEC that is down
//! for a while (and the exporter restarted meanwhile), then recovers — every event arrives
//! exactly once, every event of every class Sightline exports is valid against the official
//! OCSF 1.3.0 schema (`tests/data/ocsf-schema-1.3.0/`, compiled and checked by
//! `tests/ocsf/validate.py`), no secret is in any of it, and a resync exports only changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sightline_proto::pb::{self, observation::Item};
use sightline_server::export::{ExportConfig, sink::HecConfig};
use sightline_tests::*;

/// A stand-in Splunk HEC: refuses with 503 while `down`, then records every event by uid.
#[derive(Default)]
struct Receiver {
    down: std::sync::atomic::AtomicBool,
    refused: AtomicUsize,
    seen: Mutex<BTreeMap<String, usize>>,
    bodies: Mutex<Vec<String>>,
}

async fn hec(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> (axum::http::StatusCode, String) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Splunk hec-test-token") {
        return (axum::http::StatusCode::UNAUTHORIZED, r#"{"text":"Invalid authorization","code":3}"#.into());
    }
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, r#"{"text":"Server is busy","code":9}"#.into());
    }
    let mut seen = r.seen.lock().unwrap();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("HEC events are JSON");
        assert!(v["time"].is_number() && v["sourcetype"].as_str().unwrap().starts_with("ocsf:"), "{v}");
        let uid = v["event"]["metadata"]["uid"].as_str().expect("every event has metadata.uid").to_owned();
        *seen.entry(uid).or_default() += 1;
    }
    r.bodies.lock().unwrap().push(body);
    (axum::http::StatusCode::OK, r#"{"text":"Success","code":0}"#.into())
}

fn exported_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// Every line of the export files, oldest file first.
fn exported_lines(dir: &Path) -> Vec<String> {
    exported_files(dir)
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Validates every line of `files` against the committed OCSF 1.3.0 schema; panics with the
/// validator's report on any invalid event. Returns the count of events per class.
fn validate_ocsf(files: &[PathBuf]) -> BTreeMap<String, u64> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(venv_python("ocsf-validator"))
        .arg(here.join("ocsf/validate.py"))
        .arg(here.join("data/ocsf-schema-1.3.0"))
        .args(files)
        .output()
        .expect("the OCSF validator runs");
    assert!(
        out.status.success(),
        "events invalid against OCSF 1.3.0:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the validator prints counts per class")
}

/// The validator fails what it should: the defects once measured in Sightline's exports
/// (`tests/ocsf/invalid-events.jsonl`: a process file without `type_id`, an Authentication
/// user "System" as Other, package attributes 1.3.0 does not define) and the rules JSON
/// Schema alone does not say (captions against ids, `type_uid`).
#[test]
fn the_ocsf_validator_rejects_what_the_schema_forbids() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(venv_python("ocsf-validator"))
        .arg(here.join("ocsf/validate.py"))
        .arg(here.join("data/ocsf-schema-1.3.0"))
        .arg(here.join("ocsf/invalid-events.jsonl"))
        .output()
        .expect("the OCSF validator runs");
    let report = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "invalid-events.jsonl:1: Process Activity (1007) is invalid",
        "process/file: 'type_id' is a required property",
        "user.type_id: 99 (Other) for 'System', which is type_id 3",
        "severity: 'Low' is not the caption of severity_id 1",
        "package: Additional properties are not allowed ('path', 'uid' were unexpected)",
        "'sightline_seq' was unexpected",
        "activity_name: 'Collect' is not the caption of activity_id 1 ('Log')",
        "type_uid 500102 is not class_uid * 100 + activity_id",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}", "no event counted valid");
}

fn observation(change: pb::Change, item: Item) -> pb::Observation {
    pb::Observation {
        seq: 0,
        // Device times must not be ahead of the collector's clock.
        observed_at_ms: sightline_server::clock::now_ms() - 1_000,
        change: change as i32,
        item: Some(item),
    }
}

/// Sends `items` as the device's next signed batch.
async fn send(c: &Collector, agent: &Agent, items: Vec<(pb::Change, Item)>) {
    let head = c.shared.store.device(&agent.device_id).unwrap().unwrap();
    let obs = items.into_iter().map(|(change, item)| observation(change, item)).collect();
    let (b, _) = agent.batch_of(head.seq_head + 1, head.head_hash, obs);
    agent.send(vec![b]).await[0].as_ref().unwrap();
}

fn extension(user: &str) -> Item {
    Item::Extension(pb::ExtensionItem {
        tool: None,
        user: Some(user.into()),
        browser: "chrome".into(),
        profile: "Default".into(),
        extension_id: "bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
        name: "AI Sidebar".into(),
        version: Some("1.2.0".into()),
        path: format!(
            "/home/{user}/.config/google-chrome/Default/Extensions/bgnkhhnnamicmpeenaelnjfhikgbkllg"
        ),
        signals: vec!["host:api.openai.com".into()],
        ..Default::default()
    })
}

fn app(version: &str) -> Item {
    Item::App(pb::AppItem {
        tool: "cursor".into(),
        user: Some("alice".into()),
        path: "/opt/Cursor/cursor".into(),
        version: Some(version.into()),
        bundle_id: None,
        authorized_by: None,
    })
}

fn inventory(hostname: &str) -> Item {
    Item::DeviceInventory(pb::DeviceInventory {
        hostname: hostname.into(),
        os: "linux".into(),
        os_version: "6.8".into(),
        agent_version: "0.1.0".into(),
        serial: None,
        users: vec!["alice".into()],
    })
}

fn file_export(dir: &Path) -> ExportConfig {
    ExportConfig {
        dir: Some(dir.to_owned()),
        rotate_bytes: 64 * 1024,
        hec: None,
        findings_every: Duration::from_millis(200),
        batch: 50,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
    }
}

/// Runs the exporter until its file cursor has every stored observation (and, with
/// `findings`, until those finding kinds were exported), then stops it.
async fn export_until_caught_up(c: &Collector, config: &ExportConfig, findings: &[&str]) {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sightline_server::export::run(c.shared.clone(), config.clone(), async move {
        rx.await.ok();
    }));
    let store = c.shared.store.clone();
    wait_for(Duration::from_secs(60), "the file export to catch up", || {
        let max = store.max_observation_rowid().unwrap().to_string();
        let sent = store.exported_findings("file").unwrap();
        let done = store.export_cursor("file", "observations").unwrap() == Some(max)
            && findings.iter().all(|k| sent.iter().any(|s| s.starts_with(&format!("{k}:"))));
        done.then_some(())
    });
    // One more round, so nothing the last one found is still on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Every class Sightline exports, each produced through the real exporter from evidence that
/// arrived the real way (enrolled agents, signed batches over mTLS), and a HEC that fails
/// for a while: each event reaches it exactly once, and every line is valid OCSF 1.3.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsf_exports_of_every_class_are_valid_and_reach_a_flaky_hec_exactly_once() {
    let c = Collector::start_with_policy(
        "[approved]\ntools = [\"github_copilot\"]\n[identity]\nrules = [\"email_local_part\"]\n",
    )
    .await;
    // alice is provisioned, so her connectors become orphaned when she is deprovisioned.
    let scim = c.api_token("scim");
    let call = |m: &'static str, p: String, body: String| {
        let (c, t) = (&c, scim.clone());
        tokio::task::block_in_place(move || c.api_body(m, &p, Some(&t), Some(&body)))
    };
    let (code, _, alice) = call(
        "POST",
        "/scim/v2/Users".into(),
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#.into(),
    );
    assert_eq!(code, 201, "{alice}");

    let laptop = enroll(&c).await;
    laptop.run_once(&fixtures().join("linux")).await.unwrap();
    let other = enroll(&c).await;
    other.run_once(&fixtures().join("macos")).await.unwrap();
    // What the daemon's samplers and later looks report: a process that starts and stops,
    // an app that is updated, a credential that is removed, and one key on both laptops.
    let ollama = Item::Process(pb::ProcessItem {
        tool: "ollama".into(),
        user: Some("alice".into()),
        pid: 4242,
        name: "ollama".into(),
        exe: Some("/usr/local/bin/ollama".into()),
    });
    let shared_key = "4f5e6d7c8b9a0f1e2d3c4b5a69788796";
    send(
        &c,
        &laptop,
        vec![
            (pb::Change::Appeared, ollama.clone()),
            (pb::Change::Disappeared, ollama),
            (pb::Change::Appeared, app("0.40.1")),
            (pb::Change::Changed, app("0.41.0")),
            (pb::Change::Appeared, extension("alice")),
            (pb::Change::Appeared, openai_token("alice", "0123456789abcdef0123456789abcdef")),
            (pb::Change::Disappeared, openai_token("alice", "0123456789abcdef0123456789abcdef")),
            (pb::Change::Appeared, openai_token("alice", shared_key)),
        ],
    )
    .await;
    send(&c, &other, vec![(pb::Change::Appeared, openai_token("bob", shared_key))]).await;
    // A revocation the laptop only reports on (report mode): not enforced.
    let ext = "extension:bgnkhhnnamicmpeenaelnjfhikgbkllg";
    let issued = sightline_server::revoke::revoke(
        c.shared.store.as_ref(),
        &c.shared.pki,
        ext,
        "test",
        "unsanctioned",
        sightline_server::clock::now_ms(),
    )
    .unwrap();
    let directive = issued.directives.iter().find(|d| d.device_id == laptop.device_id).unwrap();
    let outcome = Item::DirectiveOutcome(pb::DirectiveOutcome {
        directive_id: directive.id.clone(),
        action: pb::DirectiveAction::BlockExtension as i32,
        target: directive.target.clone(),
        outcome: pb::Outcome::ReportOnly as i32,
        detail: "would add bgnkhhnnamicmpeenaelnjfhikgbkllg to the blocklist".into(),
        mode: "report".into(),
    });
    send(&c, &laptop, vec![(pb::Change::Appeared, outcome)]).await;
    // The register's decisions on it: an owner named, an approval asked for and granted, a
    // second one denied — each an audit event, exported as Entity Management.
    let now = sightline_server::clock::now_ms();
    let st = c.shared.store.as_ref();
    let admin = sightline_server::approvals::Actor::Admin("admin:token:ops".into());
    sightline_server::register::assign_owner(
        st,
        ext,
        Some("alice@example.com"),
        "her extension",
        "admin:token:ops",
        now,
    )
    .unwrap();
    let ask = |reason: &str| {
        sightline_server::approvals::request(
            st,
            &c.shared.policy,
            ext,
            &admin,
            Some("alice@example.com"),
            Some(reason),
            None,
            now,
        )
        .unwrap()
    };
    let r = ask("research");
    sightline_server::approvals::approve(st, r.id, "admin:token:ops", Some("ok"), Some(86_400_000), now)
        .unwrap();
    let r = ask("longer");
    sightline_server::approvals::deny(st, r.id, "admin:token:ops", Some("no"), now).unwrap();
    let audit_head = st.events_after(0, 1_000).unwrap().last().map(|e| e.seq.to_string());
    // alice leaves: what she left behind is orphaned.
    let id = alice["id"].as_str().unwrap().to_owned();
    let (code, _, _) = call(
        "PATCH",
        format!("/scim/v2/Users/{id}"),
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#.into(),
    );
    assert_eq!(code, 200);
    // After she left, her Claude Code (not approved here) is used under her account: API
    // Activity, and the two findings about use.
    let claude = Item::App(pb::AppItem {
        tool: "claude_code".into(),
        user: Some("alice".into()),
        path: "/home/alice/.local/bin/claude".into(),
        ..Default::default()
    });
    let ended = sightline_server::clock::now_ms();
    send(
        &c,
        &laptop,
        vec![
            (pb::Change::Appeared, claude),
            (
                pb::Change::Appeared,
                ai_session("alice", "s-after", ended - 600_000, ended, 3, &[("github", 2)]),
            ),
        ],
    )
    .await;
    let finding_kinds = [
        "shadow_ai",
        "orphaned_connector",
        "shared_credential",
        "revocation_not_enforced",
        "personal_account_connector",
        "used_after_offboarding",
        "unsanctioned_connector_in_use",
    ];
    // The HEC receiver, down at first.
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let router = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(hec))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hec_url = format!("http://{}/services/collector/event", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let out = tempfile::tempdir().unwrap();
    let config = ExportConfig {
        dir: Some(out.path().to_owned()),
        rotate_bytes: 16 * 1024,
        hec: Some(HecConfig { url: hec_url, token: "hec-test-token".into(), ca: None, allow_http: true }),
        findings_every: Duration::from_millis(200),
        batch: 50,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
    };
    let start = |config: ExportConfig| {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sightline_server::export::run(c.shared.clone(), config, async move {
            rx.await.ok();
        }));
        (stop, task)
    };

    // While the HEC is down the files fill up; the HEC cursor does not move.
    let (stop, task) = start(config.clone());
    let store = c.shared.store.clone();
    let file_events = wait_for(Duration::from_secs(60), "the file export to catch up", || {
        let max = store.max_observation_rowid().unwrap().to_string();
        let sent = store.exported_findings("file").unwrap();
        let done = store.export_cursor("file", "observations").unwrap() == Some(max)
            && store.export_cursor("file", "audit").unwrap() == audit_head
            && finding_kinds.iter().all(|k| sent.iter().any(|s| s.starts_with(&format!("{k}:"))));
        done.then(|| {
            exported_files(out.path())
                .iter()
                .flat_map(|f| {
                    std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
    });
    wait_for(Duration::from_secs(20), "the HEC to be retried", || {
        (receiver.refused.load(Ordering::SeqCst) >= 3).then_some(())
    });
    assert_eq!(
        store.export_cursor("hec", "observations").unwrap(),
        None,
        "nothing delivered, nothing skipped"
    );
    // The collector restarts its exporter while the HEC is still down.
    stop.send(()).unwrap();
    task.await.unwrap();
    receiver.down.store(false, Ordering::SeqCst);
    let (stop, task) = start(config.clone());

    // Every event the files hold reaches the HEC, each exactly once.
    let uids: BTreeSet<String> = file_events
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    if uids.len() != file_events.len() {
        let mut count: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for l in &file_events {
            let uid =
                serde_json::from_str::<Value>(l).unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
            count.entry(uid).or_default().push(l);
        }
        let dups: Vec<_> = count.iter().filter(|(_, v)| v.len() > 1).collect();
        panic!("an event is in the files twice: {dups:#?}");
    }
    wait_for(Duration::from_secs(60), "the HEC to receive everything", || {
        (receiver.seen.lock().unwrap().len() >= uids.len()).then_some(())
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), uids, "the HEC got what the files got");
    assert!(
        seen.values().all(|n| *n == 1),
        "redelivered: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );

    // Every line valid against the official schema, and every class and kind present.
    let counts = validate_ocsf(&exported_files(out.path()));
    println!("OCSF 1.3.0 events per class, all valid: {counts:#?}");
    let events: Vec<Value> = file_events.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(counts.values().sum::<u64>(), events.len() as u64, "every line was validated");
    let of = |class: u64| events.iter().filter(move |e| e["class_uid"] == class);
    let mut classes: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &events {
        *classes.entry(e["class_uid"].as_u64().unwrap()).or_default() += 1;
    }
    for class in [5001, 5020, 1007, 2006, 2004, 3002, 3004, 6003] {
        assert!(classes.contains_key(&class), "no class {class} event in {classes:?}");
    }
    let ids = |class: u64, field: &str| -> BTreeSet<u64> {
        of(class).map(|e| e[field].as_u64().unwrap()).collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(1007, "activity_id"), BTreeSet::from([1, 2]), "launch and terminate");
    assert_eq!(ids(2006, "activity_id"), BTreeSet::from([1, 3]), "credential found and removed");
    let packages: BTreeSet<u64> = of(5020).map(|e| e["package"]["type_id"].as_u64().unwrap()).collect();
    assert_eq!(packages, BTreeSet::from([1, 99]), "applications and browser extensions");
    assert!(of(5020).any(|e| e["package"]["version"] == "0.41.0"), "the update is exported: {events:#?}");
    let detections: BTreeSet<&str> = of(2004)
        .flat_map(|e| e["finding_info"]["types"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(detections, BTreeSet::from(finding_kinds), "a detection of every kind");
    // Evidence pointers back to the signed batches.
    assert!(of(1007).chain(of(5020)).chain(of(2006)).all(|e| e["unmapped"]["sightline"]["seq"].is_u64()));
    assert_eq!(classes[&3002], 2, "two enrollments");
    // The fixture homes' own AI records are sessions too; the one planted here is alice's.
    let planted: Vec<&Value> =
        of(6003).filter(|e| e["unmapped"]["sightline"]["session_id"] == "s-after").collect();
    assert_eq!(planted.len(), 1, "one report of the planted AI session");
    assert!(
        planted.iter().all(|e| e["actor"]["user"]["name"] == "alice@example.com" && e["severity_id"] == 4),
        "{planted:#?}"
    );
    // Register decisions: owner assigned and requests (Update), approved (Enable), denied (Disable).
    assert_eq!(ids(3004, "activity_id"), BTreeSet::from([3, 8, 9]), "{events:#?}");
    assert_eq!(classes[&3004], 5, "owner, two requests, an approval, a denial");
    assert!(of(3004).all(|e| e["entity"]["uid"] == ext && e["actor"]["user"]["name"] == "admin:token:ops"));
    assert!(of(3004).any(|e| e["comment"] == "research"), "the reason is the comment");
    assert!(exported_files(out.path()).len() > 1, "files rotate at the size limit");

    // Fingerprints only: no fabricated secret anywhere in the output.
    let hec_bodies = receiver.bodies.lock().unwrap().join("\n");
    for secret in fixture_secrets() {
        assert!(!hec_bodies.contains(&secret), "a secret reached the HEC");
        for f in exported_files(out.path()) {
            assert!(!contains(&std::fs::read(&f).unwrap(), &secret), "a secret is in {}", f.display());
        }
    }
    c.stop().await;
}

/// What a SIEM sees of a device over time: one event per real change. The same snapshot sent
/// again (a resync) exports nothing; a removal is one Close; a delivery repeated after a
/// crash (before the cursor moved) repeats the same events with the same uids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_exports_only_changes_and_a_redelivery_repeats_uids() {
    let c = Collector::start().await;
    let laptop = enroll(&c).await;
    let out = tempfile::tempdir().unwrap();
    let config = file_export(out.path());
    // What the device reported (detections and enrollments come from elsewhere), in order.
    let observed = || -> Vec<Value> {
        exported_lines(out.path())
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["class_uid"] != 3002 && e["class_uid"] != 2004)
            .collect()
    };

    // The real agent's resync of a fixture tree, twice: the second exports nothing.
    laptop.run_once(&fixtures().join("linux")).await.unwrap();
    export_until_caught_up(&c, &config, &[]).await;
    let resynced = observed().len();
    assert!(resynced > 3, "the first look is exported");
    laptop.run_once(&fixtures().join("linux")).await.unwrap();
    export_until_caught_up(&c, &config, &[]).await;
    assert_eq!(observed().len(), resynced, "the second resync exported something");

    // A snapshot with new things in it (as signed batches): each is one event.
    let key = "0123456789abcdef0123456789abcdef";
    let snapshot = || {
        vec![
            (pb::Change::Snapshot, inventory("laptop-1")),
            (pb::Change::Snapshot, app("0.41.0")),
            (pb::Change::Snapshot, extension("carol")),
            (pb::Change::Snapshot, openai_token("carol", key)),
        ]
    };
    send(&c, &laptop, snapshot()).await;
    export_until_caught_up(&c, &config, &[]).await;
    let first = observed().split_off(resynced);
    let classes: Vec<u64> = first.iter().map(|e| e["class_uid"].as_u64().unwrap()).collect();
    assert_eq!(classes, [5001, 5020, 5020, 2006], "{first:#?}");

    // The same snapshot again, twice: nothing new.
    send(&c, &laptop, snapshot()).await;
    send(&c, &laptop, snapshot()).await;
    export_until_caught_up(&c, &config, &[]).await;
    let before = resynced + first.len();
    let again = observed();
    assert_eq!(again.len(), before, "a resync re-exported: {:#?}", &again[before..]);

    // The credential is removed (and reported removed twice): exactly one Close.
    send(&c, &laptop, vec![(pb::Change::Disappeared, openai_token("carol", key))]).await;
    send(&c, &laptop, vec![(pb::Change::Disappeared, openai_token("carol", key))]).await;
    export_until_caught_up(&c, &config, &[]).await;
    let new = observed().split_off(before);
    assert_eq!(new.len(), 1, "{new:#?}");
    let (created, closed) = (&first[3], &new[0]);
    assert_eq!((closed["class_uid"].as_u64(), closed["activity_id"].as_u64()), (Some(2006), Some(3)));
    assert_eq!(closed["status"], "Resolved");
    assert_eq!(closed["finding_info"]["uid"], created["finding_info"]["uid"], "the same finding, closed");
    assert_ne!(closed["metadata"]["uid"], created["metadata"]["uid"]);

    // A crash between delivering and moving the cursor: the next run delivers again.
    let once = observed();
    c.shared.store.set_export_cursor("file", "observations", "0").unwrap();
    export_until_caught_up(&c, &config, &[]).await;
    let twice = observed().split_off(once.len());
    let uids = |events: &[Value]| -> Vec<String> {
        events.iter().map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned()).collect()
    };
    // (The device facts are read at delivery, so those may be newer; the change is the same.)
    assert_eq!(uids(&twice), uids(&once), "a redelivery repeats the same uids");
    assert_eq!(uids(&once).into_iter().collect::<BTreeSet<_>>().len(), once.len(), "one uid per change");

    let counts = validate_ocsf(&exported_files(out.path()));
    println!("OCSF 1.3.0 events per class, all valid: {counts:#?}");
    c.stop().await;
}

/// A session as the collector answers it: alice's Claude Code session on her laptop that
/// called the `github` MCP server and one nobody catalogued.
fn activity_session() -> sightline_server::responses::ActivitySession {
    use sightline_server::responses::*;
    let connector = |key: &str, kind: &str, label: &str, status: Option<&str>| ActivityConnector {
        key: key.into(),
        kind: kind.into(),
        known: status.is_some(),
        label: label.into(),
        status: status.map(str::to_owned),
    };
    ActivitySession {
        account: Some(AuthorizedBy {
            account: "alice@example.com".into(),
            class: "corporate".into(),
            org: Some("Example".into()),
        }),
        connectors: vec![
            connector("tool:claude_code", "tool", "Claude Code", Some("approved")),
            connector("mcp:github:5f2a", "mcp_server", "github", Some("discovered")),
            connector("unknown:mcp:jira", "mcp_server", "jira", None),
            connector("token:0123456789abcdef0123456789abcdef", "token", "anthropic", Some("unsanctioned")),
        ],
        device_id: "dev_alice".into(),
        ended_at: "2026-11-29T10:42:17Z".into(),
        evidence_seq: 12,
        format: "claude_code_jsonl".into(),
        hostname: Some("alice-laptop".into()),
        mcp: vec![McpUse { calls: 2, server: "github".into(), tools: vec!["create_issue".into()] }],
        models: vec!["claude-sonnet-4-5".into()],
        os_session: Some(SessionAt {
            evidence_seq: 3,
            host: Some("10.0.0.9".into()),
            os_user: "alice".into(),
            since: "2026-11-29T08:00:00Z".into(),
            terminal: "pts/1".into(),
        }),
        os_user: Some("alice".into()),
        person: Some(ActivityPerson {
            attribution: "exact",
            deprovisioned: false,
            display_name: Some("Alice Ng".into()),
            user_name: "alice@example.com".into(),
        }),
        project: Some("fp:9a8b7c".into()),
        prompts: 4,
        session_id: "0b7c4d2e-1111-4a4a-9c9c-123456789abc".into(),
        started_at: "2026-11-29T10:00:00Z".into(),
        tool: "claude_code".into(),
        tool_calls: 11,
    }
}

/// Every shape an activity session takes — with a person or only an OS account, with and
/// without a provider account and an OS session, on each OS, deprovisioned — maps to an API
/// Activity event the official OCSF 1.3.0 schema accepts.
#[test]
fn activity_sessions_are_valid_ocsf_api_activity() {
    use sightline_server::export::activity::to_ocsf;
    let full = activity_session();
    let mut bare = full.clone();
    (bare.person, bare.account, bare.os_session, bare.hostname) = (None, None, None, None);
    (bare.connectors, bare.mcp, bare.models) = (vec![], vec![], vec![]);
    let mut nobody = bare.clone();
    nobody.os_user = None;
    let mut gone = full.clone();
    if let Some(p) = gone.person.as_mut() {
        p.deprovisioned = true;
        p.display_name = None;
    }
    gone.account.as_mut().unwrap().org = None;
    let events: Vec<Value> = [
        to_ocsf(&full, "linux", "6.8"),
        to_ocsf(&bare, "macos", "15.1"),
        to_ocsf(&nobody, "windows", "11"),
        to_ocsf(&gone, "freebsd", "14"),
    ]
    .into();
    assert_eq!(events[0]["actor"]["user"]["name"], "alice@example.com");
    assert_eq!(events[3]["severity_id"], 4, "use by a deprovisioned person is high");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("activity.jsonl");
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    let counts = validate_ocsf(&[file]);
    assert_eq!(counts.get("6003 API Activity"), Some(&4), "{counts:?}");
}

/// alice's Claude Code session reaches a real HEC as API Activity bound to her and her
/// laptop; it grows (a second report) and is delivered again as a newer version under a new
/// uid; a redelivery after a crash repeats the uid of the report the store holds and never
/// sends the superseded one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_reaches_the_hec_once_per_report_bound_to_person_and_device() {
    let c = Collector::start_with_policy("[identity]\nrules = [\"email_local_part\"]\n").await;
    let scim = c.api_token("scim");
    let (code, _, v) = tokio::task::block_in_place(|| {
        c.api_body(
            "POST",
            "/scim/v2/Users",
            Some(&scim),
            Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","displayName":"Alice Ng","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#),
        )
    });
    assert_eq!(code, 201, "{v}");
    let laptop = enroll(&c).await;
    let now = sightline_server::clock::now_ms();
    let (start, id) = (now - 3_600_000, "7d0e4c1a-5b6f-4e2d-9a8b-0c1d2e3f4a5b");
    let claude = Item::App(pb::AppItem {
        tool: "claude_code".into(),
        user: Some("alice".into()),
        path: "/home/alice/.local/bin/claude".into(),
        ..Default::default()
    });
    send(
        &c,
        &laptop,
        vec![
            (pb::Change::Snapshot, inventory("alice-laptop")),
            (pb::Change::Appeared, claude),
            (pb::Change::Appeared, ai_session("alice", id, start, start + 600_000, 2, &[("github", 1)])),
        ],
    )
    .await;

    let receiver = Arc::new(Receiver::default());
    let router = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(hec))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hec_url = format!("http://{}/services/collector/event", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let out = tempfile::tempdir().unwrap();
    let config = ExportConfig {
        hec: Some(HecConfig { url: hec_url, token: "hec-test-token".into(), ca: None, allow_http: true }),
        ..file_export(out.path())
    };
    let store = c.shared.store.clone();
    let hec_caught_up = || {
        let max = store.max_observation_rowid().unwrap().to_string();
        (store.export_cursor("hec", "observations").unwrap() == Some(max)).then_some(())
    };
    // What the HEC holds of activity, by uid: (how often it came, the event).
    let activity = || -> BTreeMap<String, (usize, Value)> {
        let seen = receiver.seen.lock().unwrap().clone();
        let mut out = BTreeMap::new();
        for body in receiver.bodies.lock().unwrap().iter() {
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let e = serde_json::from_str::<Value>(line).unwrap()["event"].clone();
                if e["class_uid"] == 6003 {
                    let uid = e["metadata"]["uid"].as_str().unwrap().to_owned();
                    out.insert(uid.clone(), (seen[&uid], e));
                }
            }
        }
        out
    };

    export_until_caught_up(&c, &config, &[]).await;
    wait_for(Duration::from_secs(30), "the HEC to catch up", hec_caught_up);
    let first = activity();
    assert_eq!(first.len(), 1, "{first:#?}");
    let (_, e) = first.values().next().unwrap();
    assert_eq!(e["actor"]["user"]["name"], "alice@example.com", "bound to the person: {e:#}");
    assert_eq!(e["actor"]["user"]["full_name"], "Alice Ng");
    assert_eq!(e["actor"]["user"]["account"]["name"], "alice");
    assert_eq!(e["src_endpoint"]["uid"].as_str(), Some(laptop.device_id.as_str()));
    assert_eq!(e["src_endpoint"]["hostname"], "alice-laptop");
    assert_eq!(
        (e["start_time"].as_i64(), e["time"].as_i64()),
        (Some(start / 1000 * 1000), Some((start + 600_000) / 1000 * 1000))
    );
    let keys: BTreeSet<&str> =
        e["resources"].as_array().unwrap().iter().filter_map(|r| r["uid"].as_str()).collect();
    assert!(keys.contains("tool:claude_code") && keys.contains("unknown:mcp:github"), "{keys:?}");
    assert_eq!(e["unmapped"]["sightline"]["prompts"], 2);

    // The session grows: the newer report is a new event.
    send(
        &c,
        &laptop,
        vec![(pb::Change::Changed, ai_session("alice", id, start, start + 1_200_000, 5, &[("github", 3)]))],
    )
    .await;
    export_until_caught_up(&c, &config, &[]).await;
    wait_for(Duration::from_secs(30), "the HEC to catch up", hec_caught_up);
    let grown = activity();
    assert_eq!(grown.len(), 2, "the grown session is delivered as a newer version");
    let newer: Vec<&Value> =
        grown.iter().filter(|(k, _)| !first.contains_key(*k)).map(|(_, (_, e))| e).collect();
    assert_eq!(newer[0]["unmapped"]["sightline"]["prompts"], 5);
    assert_eq!(newer[0]["unmapped"]["sightline"]["session_id"], id);

    // A crash before the cursor moved: everything is read again. The superseded report is
    // no event now; the held one comes with its uid, which a receiver drops.
    store.set_export_cursor("hec", "observations", "0").unwrap();
    export_until_caught_up(&c, &config, &[]).await;
    wait_for(Duration::from_secs(30), "the HEC to catch up", hec_caught_up);
    let again = activity();
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        grown.keys().collect::<Vec<_>>(),
        "no new uid from a redelivery"
    );
    let counts: Vec<usize> = again.values().map(|(n, _)| *n).collect();
    assert_eq!(counts.iter().sum::<usize>(), 3, "only the held report was sent again: {counts:?}");
    let counts = validate_ocsf(&exported_files(out.path()));
    assert_eq!(counts.get("6003 API Activity"), Some(&2), "{counts:?}");
    c.stop().await;
}
