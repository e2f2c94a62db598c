//! The daemon end to end: the shipped binaries as processes (so they can be SIGKILLed and
//! SIGTERMed), a real collector on loopback, real files appearing under a watched home.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sightline_agent::keys::DeviceKey;
use sightline_agent::recorder::Recorder;
use sightline_agent::secret::{Fingerprinter, Secret};
use sightline_agent::spool::{Spool, SpoolConfig};
use sightline_proto::pb;
use sightline_tests::*;

/// A fresh scan root with one user, alice, and nothing AI-related yet.
fn empty_root(work: &Path) -> std::path::PathBuf {
    let root = work.join("root");
    std::fs::create_dir_all(root.join("home/alice")).unwrap();
    root
}

/// Writes `~alice/.codex/auth.json` holding `key` the way editors and CLIs do: a temp file
/// renamed into place.
fn write_codex_key(root: &Path, key: &str) {
    let dir = root.join("home/alice/.codex");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(".auth.json.tmp");
    std::fs::write(&tmp, format!("{{\"OPENAI_API_KEY\": \"{key}\"}}")).unwrap();
    std::fs::rename(&tmp, dir.join("auth.json")).unwrap();
}

fn fingerprinter(agent: &AgentProcess) -> Fingerprinter {
    Fingerprinter::new(&std::fs::read(agent.state_dir.join("org-fingerprint.key")).unwrap(), true)
}

/// Token observations stored for `device`: (change, fingerprint).
fn stored_tokens(db: &Db, device: &str) -> Vec<(String, String)> {
    db.observations(device)
        .into_iter()
        .filter(|o| o.kind == "token")
        .map(|o| (o.change, o.data["fingerprint"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn started(server: &ServerProcess, agent: &mut AgentProcess) -> String {
    agent.start();
    let id = agent.device_id();
    let db = server.db();
    wait_for(Duration::from_secs(30), "the first resync to be stored", || {
        (db.seq_head(&id) > 0).then_some(())
    });
    id
}

/// A credential file created under a watched home reaches the collector as APPEARED, its
/// removal as DISAPPEARED, and the key itself is nowhere: not in the database, the agent's
/// state or either log.
#[test]
fn a_credential_file_created_under_a_watched_home_reaches_the_collector() {
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let id = started(&server, &mut agent);
    let db = server.db();
    assert!(stored_tokens(&db, &id).is_empty());

    let key = fake_openai_key();
    let fp = fingerprinter(&agent).fingerprint(&Secret::new(key.clone()));
    let t0 = Instant::now();
    write_codex_key(&root, &key);
    wait_for(Duration::from_secs(10), "the new credential at the collector", || {
        stored_tokens(&db, &id).contains(&("appeared".into(), fp.clone())).then_some(())
    });
    println!("credential file to stored observation: {:?}", t0.elapsed());

    std::fs::remove_file(root.join("home/alice/.codex/auth.json")).unwrap();
    wait_for(Duration::from_secs(10), "the removal at the collector", || {
        stored_tokens(&db, &id).contains(&("disappeared".into(), fp.clone())).then_some(())
    });
    let (status, _) = agent.terminate(Duration::from_secs(10));
    assert!(status.success());
    assert_exactly_once(&db, &id);
    for (path, bytes) in all_bytes(work.path()) {
        assert!(!contains(&bytes, &key), "the key leaked into {}", path.display());
    }
}

/// The collector is SIGKILLed while the agent keeps observing changes, then restarted: every
/// observation arrives, each exactly once, in one unbroken sequence.
#[test]
fn collector_killed_while_the_agent_observes_then_restarted_loses_and_duplicates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    std::fs::create_dir_all(root.join("home/alice/.codex")).unwrap();
    let mut server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let id = started(&server, &mut agent);
    let fp = fingerprinter(&agent);

    server.kill9();
    let mut want = BTreeSet::new();
    for _ in 0..5 {
        let key = fake_openai_key();
        want.insert(fp.fingerprint(&Secret::new(key.clone())));
        write_codex_key(&root, &key);
        std::thread::sleep(Duration::from_millis(400));
    }
    server.restart();
    let db = server.db();
    wait_for(Duration::from_secs(60), "every change observed offline to be stored", || {
        let got: BTreeSet<String> = stored_tokens(&db, &id).into_iter().map(|(_, f)| f).collect();
        want.is_subset(&got).then_some(())
    });
    let obs = assert_exactly_once(&db, &id);
    let tokens = obs.iter().filter(|o| o.kind == "token").count();
    assert!(tokens >= want.len(), "{tokens} token observations for {} keys", want.len());
    assert!(agent.log_text().contains("Delivery interrupted"), "the agent never noticed the outage");
}

/// Every observation recorded in the agent's spool or outbox when it was SIGKILLed in the
/// middle of a burst of changes is delivered after restart, exactly once.
#[test]
fn agent_killed_mid_write_loses_nothing_it_had_recorded() {
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    std::fs::create_dir_all(root.join("home/alice/.codex")).unwrap();
    let mut server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let id = started(&server, &mut agent);
    // Keep what the agent records on its disk: the collector is away.
    server.kill9();
    let writer = {
        let root = root.clone();
        std::thread::spawn(move || {
            for _ in 0..60 {
                write_codex_key(&root, &fake_openai_key());
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(900));
    agent.kill9();
    writer.join().unwrap();

    // What the agent had recorded, read the way its next start will (torn tail dropped).
    let (spool, _) = Spool::open(&agent.state_dir.join("spool"), SpoolConfig::default()).unwrap();
    let mut recorded: BTreeSet<(i64, i32, String)> = BTreeSet::new();
    let key = |o: &pb::Observation| match &o.item {
        Some(pb::observation::Item::Token(t)) => Some((o.observed_at_ms, o.change, t.fingerprint.clone())),
        _ => None,
    };
    for (_, bytes) in spool.peek(usize::MAX, usize::MAX).unwrap() {
        recorded.extend(key(&pb::Observation::decode(bytes.as_slice()).unwrap()));
    }
    drop(spool);
    let outbox = sightline_agent::outbox::Outbox::open(
        &sightline_agent::state::StateDir::open(&agent.state_dir).unwrap(),
    )
    .unwrap();
    for p in outbox.pending().unwrap() {
        let b = pb::Batch::decode(outbox.load(&p).unwrap().payload.as_slice()).unwrap();
        recorded.extend(b.observations.iter().filter_map(key));
    }
    assert!(!recorded.is_empty(), "the agent recorded nothing before it was killed");

    server.restart();
    agent.start();
    let db = server.db();
    let change_name = |c: i32| match pb::Change::try_from(c) {
        Ok(pb::Change::Appeared) => "appeared",
        Ok(pb::Change::Changed) => "changed",
        Ok(pb::Change::Disappeared) => "disappeared",
        Ok(pb::Change::Snapshot) => "snapshot",
        _ => "unspecified",
    };
    wait_for(Duration::from_secs(60), "everything recorded before the kill to be stored", || {
        let stored: BTreeSet<(i64, String, String)> = db
            .observations(&id)
            .into_iter()
            .filter(|o| o.kind == "token")
            .map(|o| {
                (o.observed_at_ms, o.change, o.data["fingerprint"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        recorded
            .iter()
            .all(|(at, c, fp)| stored.contains(&(*at, change_name(*c).to_owned(), fp.clone())))
            .then_some(())
    });
    assert_exactly_once(&db, &id);
    println!("{} token observations recorded before SIGKILL, all delivered once", recorded.len());
}

/// SIGTERM: the agent flushes, closes the stream and exits 0 within its grace period —
/// with the collector up, and with it down (the link waiting to reconnect).
#[test]
fn sigterm_shuts_down_cleanly_within_the_grace_period() {
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    let mut server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "shutdown_grace = \"2s\"\n");
    let id = started(&server, &mut agent);
    let (status, took) = agent.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", agent.log_text());
    assert!(agent.log_text().contains("Agent stopped"), "{}", agent.log_text());
    println!("SIGTERM to exit, collector up: {took:?}");

    server.kill9();
    agent.start();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, took) = agent.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", agent.log_text());
    println!("SIGTERM to exit, collector down: {took:?}");

    // What the second run recorded while the collector was down is still there, and arrives.
    server.restart();
    let before = server.db().seq_head(&id);
    agent.start();
    let db = server.db();
    wait_for(Duration::from_secs(30), "the offline resync", || (db.seq_head(&id) > before).then_some(()));
    assert_exactly_once(&db, &id);
}

/// Overflow while offline: the oldest observations are evicted and the collector receives
/// one GAP observation carrying exactly how many.
#[tokio::test]
async fn spool_overflow_reaches_the_collector_as_a_gap_with_the_count() {
    const BASE: i64 = 1_700_000_000_000;
    let c = Collector::start().await;
    let a = enroll(&c).await;
    let recorded = 3000u64;
    let dropped = {
        let r = Recorder::open(&a.state, SpoolConfig::with_max_bytes(64 * 1024), &a.device_id, a.key.clone())
            .unwrap();
        let obs: Vec<pb::Observation> = (0..recorded)
            .map(|i| pb::Observation {
                seq: 0,
                // A plausible time (see the collector's clock.rs) that numbers the observation.
                observed_at_ms: BASE + i as i64,
                change: pb::Change::Appeared as i32,
                item: Some(pb::observation::Item::ScanError(pb::ScanError {
                    path: format!("/home/alice/file-{i}"),
                    error: "e".repeat(200),
                })),
            })
            .collect();
        for chunk in obs.chunks(10) {
            r.record(chunk).unwrap();
        }
        r.depth().dropped_total
    };
    assert!(dropped > 0 && dropped < recorded);
    a.drain().await.unwrap();

    let obs = assert_exactly_once(&Db::open(c.data_dir.path()), &a.device_id);
    let gaps: Vec<u64> =
        obs.iter().filter(|o| o.kind == "gap").map(|o| o.data["dropped"].as_u64().unwrap()).collect();
    assert_eq!(gaps, vec![dropped]);
    let kept: Vec<i64> =
        obs.iter().filter(|o| o.kind == "scan_error").map(|o| o.observed_at_ms - BASE).collect();
    assert_eq!(kept.len() as u64 + dropped, recorded);
    assert_eq!(
        kept,
        (dropped as i64..recorded as i64).collect::<Vec<_>>(),
        "the oldest were the ones dropped"
    );
    c.stop().await;
}

/// A collector at its stream limit tells the next agent to slow down; the agent goes away
/// and comes back later, losing nothing.
#[tokio::test]
async fn a_full_collector_tells_agents_to_slow_down() {
    let c = Collector::start_with(sightline_server::config::IngestConfig {
        max_streams: 1,
        slow_down: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let (a, b) = (enroll(&c).await, enroll(&c).await);
    let key: Arc<dyn DeviceKey> = b.key.clone();
    Recorder::open(&b.state, SpoolConfig::default(), &b.device_id, key)
        .unwrap()
        .record(&[pb::Observation { seq: 0, observed_at_ms: 1, change: 1, item: None }])
        .unwrap();

    let held = a.attested_stream().await.unwrap();
    let err = format!("{:#}", b.drain().await.unwrap_err());
    assert!(err.contains("slow down"), "{err}");
    assert_eq!(Db::open(c.data_dir.path()).seq_head(&b.device_id), 0);

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.drain().await {
            Ok(d) if d.batches == 1 => break,
            Ok(d) => panic!("unexpected delivery {d:?}"),
            Err(e) => assert!(Instant::now() < deadline, "never admitted: {e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_exactly_once(&Db::open(c.data_dir.path()), &b.device_id);
    c.stop().await;
}

/// A credential removed while the agent was stopped is reported as DISAPPEARED by the first
/// resync after it starts again (the last known view survives restarts).
#[test]
fn what_vanished_while_the_agent_was_stopped_is_reported_after_restart() {
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let key = fake_openai_key();
    write_codex_key(&root, &key);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let id = started(&server, &mut agent);
    let fp = fingerprinter(&agent).fingerprint(&Secret::new(key));
    let db = server.db();
    assert!(stored_tokens(&db, &id).contains(&("snapshot".into(), fp.clone())));
    let (status, _) = agent.terminate(Duration::from_secs(10));
    assert!(status.success());
    let while_present = triage(&server, &id, "now");

    std::fs::remove_file(root.join("home/alice/.codex/auth.json")).unwrap();
    agent.start();
    wait_for(Duration::from_secs(30), "the removal seen by the first resync after restart", || {
        stored_tokens(&db, &id).contains(&("disappeared".into(), fp.clone())).then_some(())
    });
    assert_exactly_once(&db, &id);

    // Triage answers from presence intervals: the token was there then, is gone now.
    let token = format!("token:{fp}");
    let was = |v: &serde_json::Value| {
        v["present"].as_array().unwrap().iter().any(|p| p["connector"] == token.as_str())
    };
    assert!(was(&while_present), "{while_present:#}");
    let now = triage(&server, &id, "now");
    assert!(!was(&now), "{now:#}");
    assert_eq!(now["device"]["assurance"], "software");
}

fn triage(server: &ServerProcess, device: &str, at: &str) -> serde_json::Value {
    let out = std::process::Command::new(bin("sightline-server"))
        .args(["triage", "--device", device, "--at", at, "--json", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Claude Code appends to a session transcript: the watcher wakes the daemon and the
/// collector holds the session as CHANGED with the new totals within seconds, and none of
/// the transcript's content is in the database or the agent's state.
#[test]
fn a_line_appended_to_a_transcript_is_reported_within_seconds() {
    const CANARY: &str = "CANARY-transcript-5e1d";
    let work = tempfile::tempdir().unwrap();
    let root = empty_root(work.path());
    let dir = root.join("home/alice/.claude/projects/-home-alice-app");
    std::fs::create_dir_all(&dir).unwrap();
    let line = |n: u32, tool: Option<&str>| match tool {
        None => format!(
            "{{\"type\":\"user\",\"sessionId\":\"5f0c\",\"cwd\":\"/home/alice/app\",\"timestamp\":\"2026-01-05T10:00:{n:02}.000Z\",\"message\":{{\"role\":\"user\",\"content\":\"{CANARY} {n}\"}}}}\n"
        ),
        Some(t) => format!(
            "{{\"type\":\"assistant\",\"sessionId\":\"5f0c\",\"cwd\":\"/home/alice/app\",\"timestamp\":\"2026-01-05T10:00:{n:02}.000Z\",\"message\":{{\"id\":\"m{n}\",\"model\":\"claude-opus-4-1\",\"content\":[{{\"type\":\"tool_use\",\"id\":\"t{n}\",\"name\":\"{t}\",\"input\":{{\"q\":\"{CANARY}\"}}}}]}}}}\n"
        ),
    };
    let transcript = dir.join("5f0c.jsonl");
    std::fs::write(&transcript, line(1, None)).unwrap();
    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let id = started(&server, &mut agent);
    let db = server.db();
    let activity = |db: &Db| -> Vec<(String, serde_json::Value)> {
        db.observations(&id)
            .into_iter()
            .filter(|o| o.kind == "activity")
            .map(|o| (o.change, o.data))
            .collect()
    };
    wait_for(Duration::from_secs(10), "the session at the collector", || {
        activity(&db).iter().any(|(c, d)| c == "appeared" && d["prompts"] == 1).then_some(())
    });

    let t0 = Instant::now();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&transcript).unwrap();
        f.write_all(line(2, Some("mcp__github__create_issue")).as_bytes()).unwrap();
    }
    let changed = wait_for(Duration::from_secs(10), "the grown session at the collector", || {
        activity(&db).into_iter().find(|(c, d)| c == "changed" && d["tool_calls"] == 1).map(|(_, d)| d)
    });
    println!("transcript append to stored observation: {:?}", t0.elapsed());
    assert_eq!(changed["user"], "alice");
    assert_eq!(changed["mcp"][0]["server"], "github");
    assert!(changed["project"].as_str().is_some_and(|p| p.starts_with("fp:")), "{changed}");
    let (status, _) = agent.terminate(Duration::from_secs(10));
    assert!(status.success());
    // Restarted, the agent remembers what it read and reported (activity.json): its first
    // resync reports the session neither again nor as new.
    let head = db.seq_head(&id);
    agent.start();
    wait_for(Duration::from_secs(30), "the resync after the restart", || {
        (db.seq_head(&id) > head).then_some(())
    });
    let (status, _) = agent.terminate(Duration::from_secs(10));
    assert!(status.success());
    let obs = assert_exactly_once(&db, &id);
    assert_eq!(
        obs.iter().filter(|o| o.kind == "activity").count(),
        2,
        "reported once per change, not again after a restart"
    );
    for (path, bytes) in all_bytes(work.path()) {
        if path.starts_with(&root) {
            continue; // the transcript itself
        }
        assert!(!contains(&bytes, CANARY), "transcript content leaked into {}", path.display());
        assert!(!contains(&bytes, "/home/alice/app"), "the project path leaked into {}", path.display());
    }
}
