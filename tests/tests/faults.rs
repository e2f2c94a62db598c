//! Faults injected under the shipped binaries: the database stopped and restarted under
//! load, the agent's disk full, a collector clock an hour behind its agents, damaged state
//! files in the agent. Each says what the system must do instead of losing evidence,
//! storing it twice, hiding the error or failing in a loop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sightline_server::store::postgres::PostgresStore;
use sightline_server::store::{DeviceStore, ReadModel};
use sightline_tests::fleet::{Load, SimAgent, Stats, enroll_fleet};
use sightline_tests::pg::PrivateCluster;
use sightline_tests::*;
use tokio_util::sync::CancellationToken;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// PostgreSQL stops (fast shutdown: connections cut) while agents stream, and comes back:
/// meanwhile the collector answers UNAVAILABLE (not INTERNAL) so agents back off and retry;
/// afterwards every device's chain is whole and every observation is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_under_load_loses_and_duplicates_nothing() {
    let Some(pg) = blocking(PrivateCluster::start).await else { return };
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &work.path().join("data"),
        &["--database", &pg.conninfo, "--stream-rate", "100000"],
    );
    let store: Arc<PostgresStore> = {
        let c = pg.conninfo.clone();
        Arc::new(blocking(move || PostgresStore::open(&c).unwrap()).await)
    };
    let ca = std::fs::read(work.path().join("data/ca.pem")).unwrap();

    const AGENTS: usize = 16;
    const BATCHES: u64 = 30;
    const OBS: usize = 10;
    let tokens = {
        let s = store.clone();
        blocking(move || {
            (0..AGENTS + 1)
                .map(|_| sightline_server::create_token(s.as_ref(), Duration::from_secs(3600)).unwrap())
                .collect::<Vec<_>>()
        })
        .await
    };
    let probe = enroll_to(&server.url(), ca.clone(), tokens[AGENTS].clone()).await.unwrap();
    let enrolled = enroll_fleet(&server.url(), &ca, tokens[..AGENTS].to_vec(), 8).await.unwrap();
    let load = Load {
        obs_per_batch: OBS,
        interval: Duration::from_millis(100),
        batches: Some(BATCHES),
        stream_life: None,
    };
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (i, agent) in enrolled.iter().enumerate() {
        let mut sim = SimAgent::from(agent, i).unwrap();
        let (url, load, stats, stop) = (server.url(), load.clone(), stats.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            sim.run(&url, &load, &stats, &stop).await;
            sim
        }));
    }
    let total = AGENTS as u64 * BATCHES;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.batches.load(Ordering::Relaxed) < total / 4 {
        assert!(Instant::now() < deadline, "load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopped_at = stats.batches.load(Ordering::Relaxed);
    let pg = Arc::new(pg);
    blocking({
        let pg = pg.clone();
        move || pg.stop()
    })
    .await;
    // A stream opened now is told the storage is unavailable: retry later, not a crash.
    let mut client = probe.client().await.unwrap();
    let e = RawStream::open(&mut client).await.err().expect("a stream was admitted with the database down");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("unavailable"), "{}", e.message());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = stats.batches.load(Ordering::Relaxed);
    blocking({
        let pg = pg.clone();
        move || pg.start_again()
    })
    .await;

    let mut sims = Vec::new();
    let finish = tokio::time::timeout(Duration::from_secs(120), async {
        for t in tasks {
            sims.push(t.await.unwrap());
        }
    });
    assert!(finish.await.is_ok(), "agents did not finish within 120 s after the database came back");
    assert!(stopped_at < total && during < total, "the outage happened mid-load");
    assert!(stats.errors.load(Ordering::Relaxed) > 0, "agents saw the outage");
    assert!(server.log().contains("Storage unavailable"), "the collector said why");

    let ids: Vec<String> = sims.iter().map(|s| s.device_id.clone()).collect();
    let conninfo = pg.conninfo.clone();
    // A store of our own opened after the restart (the one from before holds dead connections).
    drop(store);
    let stored = blocking(move || {
        let store = PostgresStore::open(&conninfo).unwrap();
        for id in &ids {
            let d = store.device(id).unwrap().unwrap();
            assert_eq!(d.seq_head, BATCHES * OBS as u64, "{id}: chain head");
            let mut next = 1;
            for b in &store.batches(id).unwrap() {
                assert_eq!(b.first_seq, next, "{id}: batches contiguous, none twice");
                next = b.last_seq + 1;
            }
        }
        let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
        let rows = c
            .query("SELECT device_id, count(*), count(DISTINCT seq) FROM observations GROUP BY 1", &[])
            .unwrap();
        let mut stored = 0;
        for r in rows {
            let (id, n, distinct): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            if ids.contains(&id) {
                assert_eq!(
                    (n, distinct),
                    ((BATCHES * OBS as u64) as i64, (BATCHES * OBS as u64) as i64),
                    "{id}"
                );
                stored += n as u64;
            }
        }
        stored
    })
    .await;
    assert_eq!(stored, total * OBS as u64, "every observation stored exactly once");
    drop(server);
}

/// The agent's state dir fills up (a 4 MB tmpfs): what could not be recorded is reported
/// in the log and recorded later, the agent keeps running, and once space is back every
/// credential planted meanwhile reaches the collector.
#[test]
fn a_full_disk_under_the_spool_loses_nothing_and_the_agent_carries_on() {
    let work = tempfile::tempdir().unwrap();
    let mnt = work.path().join("agent-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        mount.status.success(),
        "this test needs root to mount a small tmpfs: {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            std::process::Command::new("umount").arg("-l").arg(self.0).status().ok();
        }
    }
    let _unmount = Unmount(&mnt);

    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let root = work.path().join("root");
    let home = root.join("home/alice");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "alice:x:1000:1000::/home/alice:/bin/bash\n").unwrap();
    // Credential places that exist (so they are watched) but are empty until the disk is full.
    for d in [".codex", ".cache/huggingface", ".config/github-copilot"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    let body = |n: u8, len: usize| -> String {
        (0..len).map(|i| (b"Qw3rTy7uIo9pAs1dFg5hJk2lZx8cVb4nM6"[(i * 7 + n as usize) % 34]) as char).collect()
    };
    let openai = format!("sk-proj-{}T3BlbkFJ{}", body(1, 74), body(2, 74));
    std::fs::write(home.join(".codex/auth.json"), format!("{{\"OPENAI_API_KEY\": \"{openai}\"}}")).unwrap();
    let mut agent = AgentProcess::enroll(&server, &mnt, &root, "");
    agent.log = work.path().join("agent.log");
    agent.start();
    let device = agent.device_id();
    let db = server.db();
    let tokens = || db.observations(&device).iter().filter(|o| o.kind == "token").count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokens() < 1 {
        assert!(
            Instant::now() < deadline,
            "the first credential did not arrive:\n{}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Fill the disk to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        f.sync_all().ok();
    }
    std::fs::write(home.join(".cache/huggingface/token"), format!("hf_{}\n", body(3, 34))).unwrap();
    std::fs::write(
        home.join(".config/github-copilot/apps.json"),
        format!(
            "{{\"github.com:Iv1.b507a08c87ecfe98\": {{\"user\": \"alice\", \"oauth_token\": \"ghu_{}\"}}}}",
            body(4, 36)
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
        if log.contains("No space left on device") {
            break;
        }
        assert!(Instant::now() < deadline, "the full disk was not reported:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the agent exited on a full disk:\n{}",
        std::fs::read_to_string(&agent.log).unwrap_or_default()
    );

    std::fs::remove_file(&filler).unwrap();
    // The next look (here: woken by the credential file written again) records what could
    // not be recorded.
    std::fs::write(home.join(".codex/auth.json"), format!("{{\"OPENAI_API_KEY\": \"{openai}\"}}")).unwrap();
    wait_for(Duration::from_secs(60), "the credentials planted while the disk was full", || {
        (tokens() >= 3).then_some(())
    });
    let obs = db.observations(&device);
    let mut fingerprints: Vec<&str> =
        obs.iter().filter(|o| o.kind == "token").filter_map(|o| o.data["fingerprint"].as_str()).collect();
    fingerprints.sort();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 3, "each planted credential, none lost");
    // The sequence has no holes: nothing recorded was lost on the way.
    let seqs: Vec<u64> = obs.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(!obs.iter().any(|o| o.kind == "gap"), "nothing was dropped");
    agent.terminate(Duration::from_secs(10));
}

/// The collector's clock runs an hour behind its agents (faketime): the agents' times are
/// stored as received, so "what is on the device now" is answered from the collector's own
/// clock, the device's skew is recorded and flagged. (An earlier collector stored them as
/// sent: an hour in its future, and triage at "now" found nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_an_hour_behind_its_agents_still_answers_now() {
    let work = tempfile::tempdir().unwrap();
    let lib = faketime_lib();
    // libfaketime preloaded into the collector itself (the `faketime` wrapper would sit
    // between the test and the process it must be able to kill).
    let env = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "-1h"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let server = ServerProcess::start_under(&work.path().join("data"), &[], &[], &env);
    let ca = std::fs::read(work.path().join("data/ca.pem")).unwrap();
    let a = enroll_to(&server.url(), ca, server.token()).await.unwrap();
    a.run_once(&fixtures().join("linux")).await.unwrap();

    let data = work.path().join("data");
    let preload = lib.clone();
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(bin("sightline-server"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("LD_PRELOAD", &preload)
            .env("FAKETIME", "-1h")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (id, cli) = (a.device_id.clone(), cli);
    let (triage, device, findings) = blocking(move || {
        (
            cli(&["triage", "--device", &id, "--at", "now", "--json"]),
            cli(&["device", &id, "--json"]),
            cli(&["findings", "--json"]),
        )
    })
    .await;
    let present = triage["present"].as_array().unwrap();
    assert!(present.len() >= 10, "triage at the collector's now: {triage:#}");
    let skew = device["clock_skew_ms"].as_i64().unwrap();
    assert!((3_480_000..=3_720_000).contains(&skew), "device clock skew {skew} ms");
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "clock_skew" && f["device_id"] == a.device_id.as_str()),
        "{findings:#}"
    );
    assert!(server.log().contains("Device times outside the plausible window"));
}

/// libfaketime, which the test command installs (Debian's `faketime`).
fn faketime_lib() -> String {
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    found.expect("libfaketime is not installed (scripts/test.sh installs the faketime package)").to_owned()
}

/// Damaged state files in the agent: the identity or chain (enrollment record, chain head,
/// software key) stops `run` with a message that says which file and how to recover,
/// sets the damage aside and exits 78 (the unit does not restart on it); enrolling again
/// then works as is. Damage that only costs a repeat (the last known view, the directive
/// ledger) is tolerated.
#[test]
fn damaged_state_files_stop_the_agent_clearly_and_enrollment_recovers() {
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let root = fixtures().join("linux");
    let agent = AgentProcess::enroll(&server, work.path(), &root, "");
    let run_once = || {
        std::process::Command::new(bin("sightline-agent"))
            .args(["run", "--once", "--config"])
            .arg(&agent.config)
            .output()
            .unwrap()
    };
    let enroll_again = || {
        let out = std::process::Command::new(bin("sightline-agent"))
            .args([
                "enroll",
                "--server",
                &server.url(),
                "--token",
                &server.token(),
                "--key-backend",
                "software",
                "--ca",
            ])
            .arg(server.data_dir.join("ca.pem"))
            .arg("--state-dir")
            .arg(&agent.state_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "enrolling again failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    assert!(run_once().status.success());

    for (file, garbage) in [
        ("enrollment.json", &b"{\"device_id\": \"dev_"[..]),
        ("chain.json", &b"\x00\x01not json"[..]),
        ("device-key.pk8", &b"-----BEGIN NOTHING-----"[..]),
    ] {
        std::fs::write(agent.state_dir.join(file), garbage).unwrap();
        let started = Instant::now();
        let out = run_once();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{file}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(20), "{file}: it took {:?}", started.elapsed());
        assert!(stderr.contains("enroll") && stderr.contains("78"), "{file}: {stderr}");
        if file != "device-key.pk8" {
            assert!(stderr.contains(file), "{file}: {stderr}");
        }
        assert!(!agent.state_dir.join("enrollment.json").exists(), "{file}: still enrolled");
        let aside = std::fs::read_dir(&agent.state_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{file}.damaged-")));
        assert!(aside, "{file} was set aside for inspection");
        enroll_again();
        let out = run_once();
        assert!(
            out.status.success(),
            "{file}: after enrolling again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The last known view and the directive ledger only cost a repeat: tolerated.
    std::fs::write(agent.state_dir.join("inventory.pb"), b"\xff\xff\xff garbage").unwrap();
    std::fs::write(agent.state_dir.join("directives.json"), b"[[[").unwrap();
    let out = run_once();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let devices = server.db().observations(&agent.device_id());
    assert!(devices.iter().any(|o| o.kind == "token"), "the last enrollment delivers");
}
