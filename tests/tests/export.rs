//! SIEM exports: OCSF events in rotating JSON-lines files and in a Splunk HEC that is down
//! for a while (and the exporter restarted meanwhile), then recovers — every event arrives
//! exactly once, every event satisfies the OCSF 1.3.0 class definitions Sightline relies on
//! (`tests/ocsf/classes-1.3.0.json`), and no secret is in any of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
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

/// Every rule of the class definitions the events rely on; returns what is wrong.
fn violations(e: &Value, spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let ty_ok = |v: &Value, t: &str| match t {
        "integer" => v.is_i64() || v.is_u64(),
        "string" => v.is_string(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    };
    for k in spec["base_required"].as_array().unwrap() {
        if e.get(k.as_str().unwrap()).is_none_or(Value::is_null) {
            out.push(format!("missing {k}"));
        }
    }
    for (k, t) in spec["types"].as_object().unwrap() {
        if let Some(v) = e.get(k)
            && !ty_ok(v, t.as_str().unwrap())
        {
            out.push(format!("{k} is not {t}"));
        }
    }
    let class = e["class_uid"].as_u64().unwrap_or(0);
    let Some(def) = spec["classes"].get(class.to_string()) else {
        out.push(format!("class {class} is not one Sightline defines"));
        return out;
    };
    if e["category_uid"] != def["category_uid"] {
        out.push(format!("category {} for class {class}", e["category_uid"]));
    }
    let activity = e["activity_id"].as_u64().unwrap_or(u64::MAX);
    if !def["activity_id"].as_array().unwrap().iter().any(|a| a.as_u64() == Some(activity)) {
        out.push(format!("activity {activity} not in class {class}"));
    }
    if e["type_uid"].as_u64() != Some(class * 100 + activity) {
        out.push(format!("type_uid {} is not class_uid * 100 + activity_id", e["type_uid"]));
    }
    if !spec["severity_id"].as_array().unwrap().contains(&e["severity_id"]) {
        out.push(format!("severity_id {}", e["severity_id"]));
    }
    for k in def["required"].as_array().unwrap() {
        if e.get(k.as_str().unwrap()).is_none_or(Value::is_null) {
            out.push(format!("class {class} requires {k}"));
        }
    }
    let check_object = |name: &str, o: &Value, out: &mut Vec<String>| {
        let Some(rules) = spec["objects"].get(name) else { return };
        for k in rules["required"].as_array().into_iter().flatten() {
            if o.get(k.as_str().unwrap()).is_none_or(Value::is_null) {
                out.push(format!("{name} requires {k}"));
            }
        }
        if let Some(any) = rules["at_least_one"].as_array()
            && !any.iter().any(|k| o.get(k.as_str().unwrap()).is_some_and(|v| !v.is_null()))
        {
            out.push(format!("{name} needs one of {any:?}"));
        }
        for (k, t) in rules["types"].as_object().into_iter().flatten() {
            if let Some(v) = o.get(k)
                && !v.is_null()
                && !ty_ok(v, t.as_str().unwrap())
            {
                out.push(format!("{name}.{k} is not {t}"));
            }
        }
        for (k, allowed) in rules["enum"].as_object().into_iter().flatten() {
            if let Some(v) = o.get(k)
                && !allowed.as_array().unwrap().contains(v)
            {
                out.push(format!("{name}.{k} = {v} is not an allowed value"));
            }
        }
    };
    for name in ["metadata", "device", "package", "process", "actor", "user", "finding_info"] {
        if let Some(o) = e.get(name) {
            check_object(name, o, &mut out);
            for child in spec["nested"][name].as_array().into_iter().flatten() {
                let child = child.as_str().unwrap();
                if let Some(c) = o.get(child) {
                    check_object(child, c, &mut out);
                }
            }
        }
    }
    out
}

fn exported_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsf_exports_reach_files_and_a_flaky_hec_exactly_once() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ocsf/classes-1.3.0.json"))
            .unwrap(),
    )
    .unwrap();
    let c = Collector::start_with_policy("[approved]\ntools = [\"github_copilot\"]\n").await;
    let laptop = enroll(&c).await;
    laptop.run_once(&fixtures().join("linux")).await.unwrap();
    let other = enroll(&c).await;
    other.run_once(&fixtures().join("macos")).await.unwrap();
    // A process that starts and stops (the daemon's sampler reports these).
    {
        use sightline_proto::pb::{self, observation::Item};
        let ollama = |change: pb::Change| pb::Observation {
            seq: 0,
            observed_at_ms: sightline_server::clock::now_ms(),
            change: change as i32,
            item: Some(Item::Process(pb::ProcessItem {
                tool: "ollama".into(),
                user: Some("alice".into()),
                pid: 4242,
                name: "ollama".into(),
                exe: Some("/usr/local/bin/ollama".into()),
            })),
        };
        let head = c.shared.store.device(&laptop.device_id).unwrap().unwrap();
        let (b, _) = laptop.batch_of(
            head.seq_head + 1,
            head.head_hash,
            vec![ollama(pb::Change::Appeared), ollama(pb::Change::Disappeared)],
        );
        laptop.send(vec![b]).await[0].as_ref().unwrap();
    }

    // The HEC receiver, down at first.
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(hec))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hec_url = format!("http://{}/services/collector/event", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let out = tempfile::tempdir().unwrap();
    let config = ExportConfig {
        dir: Some(out.path().to_owned()),
        rotate_bytes: 64 * 1024,
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
        let done = store.export_cursor("file", "observations").unwrap() == Some(max)
            && !store.exported_findings("file").unwrap().is_empty();
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

    // The classes Sightline promises, each valid.
    let mut classes: BTreeMap<u64, usize> = BTreeMap::new();
    for line in &file_events {
        let e: Value = serde_json::from_str(line).unwrap();
        let bad = violations(&e, &spec);
        assert!(bad.is_empty(), "invalid OCSF event {bad:?}: {e:#}");
        *classes.entry(e["class_uid"].as_u64().unwrap()).or_default() += 1;
    }
    for class in [5001, 5020, 1007, 2006, 2004, 3002] {
        assert!(classes.contains_key(&class), "no class {class} event in {classes:?}");
    }
    assert_eq!(classes[&3002], 2, "two enrollments");
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
