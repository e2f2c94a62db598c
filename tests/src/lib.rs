//! Harness for whole-system tests: a real collector on 127.0.0.1:0 with a dev CA in a temp
//! data dir, real agents enrolled over TLS, and raw clients for crafting hostile traffic.
//!
//! Tests read like scenarios: `Collector::start()`, `collector.token()`, `enroll(&collector)`,
//! then either the real agent code (`run_once`) or a raw stream (`Agent::send`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sightline_agent::keys::{self, DeviceKey, KeyChoice};
use sightline_agent::state::StateDir;
use sightline_proto::envelope;
use sightline_proto::pb::{self, telemetry_client::TelemetryClient};
use sightline_server::ingest::Shared;
use tokio::sync::oneshot;

/// A collector serving on loopback until dropped or stopped.
pub struct Collector {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Collector {
    pub async fn start() -> Collector {
        let data_dir = tempfile::tempdir().unwrap();
        let shared = sightline_server::server::open(data_dir.path(), true).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(sightline_server::server::serve(listener, shared.clone(), async {
            rx.await.ok();
        }));
        Collector { url, data_dir, shared, stop: Some(stop), task: Some(task) }
    }

    pub fn token(&self) -> String {
        sightline_server::create_token(self.shared.store.as_ref(), Duration::from_secs(3600)).unwrap()
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.path().join("ca.pem")).unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            s.send(()).ok();
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// An enrolled agent's state dir and keys.
pub struct Agent {
    pub state_dir: tempfile::TempDir,
    pub state: StateDir,
    pub device_id: String,
    pub key: Arc<dyn DeviceKey>,
    pub url: String,
}

pub async fn enroll(c: &Collector) -> Agent {
    enroll_with(c, &c.token()).await.unwrap()
}

pub async fn enroll_with(c: &Collector, token: &str) -> anyhow::Result<Agent> {
    let state_dir = tempfile::tempdir()?;
    let state = StateDir::open(state_dir.path())?;
    let opts = sightline_agent::enroll::EnrollOptions {
        server: c.url.clone(),
        token: token.to_owned(),
        ca_pem: c.ca_pem(),
        key_backend: KeyChoice::Software,
    };
    let e = sightline_agent::enroll::enroll(&state, &opts).await?;
    let key: Arc<dyn DeviceKey> = Arc::from(keys::open(state_dir.path(), KeyChoice::Software)?);
    Ok(Agent { state_dir, state, device_id: e.device_id, key, url: c.url.clone() })
}

impl Agent {
    /// The real `run --once` over a filesystem root.
    pub async fn run_once(&self, root: &Path) -> anyhow::Result<()> {
        sightline_agent::run::run(self.run_options(root, true), std::future::pending()).await
    }

    /// The real continuous `run`, until `shutdown` resolves.
    pub async fn run_until(&self, root: &Path, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        sightline_agent::run::run(self.run_options(root, false), shutdown).await
    }

    fn run_options(&self, root: &Path, once: bool) -> sightline_agent::run::RunOptions {
        let config = sightline_agent::config::Config {
            state_dir: self.state_dir.path().to_owned(),
            root: root.to_owned(),
            scan_interval: Duration::from_secs(3600),
            processes: false,
        };
        sightline_agent::run::RunOptions {
            config,
            once,
            key_backend: KeyChoice::Software,
            ack_timeout: Duration::from_secs(30),
        }
    }

    /// A telemetry client presenting this agent's client certificate.
    pub async fn client(&self) -> anyhow::Result<TelemetryClient<tonic::transport::Channel>> {
        let read = |n: &str| std::fs::read(self.state_dir.path().join(n)).unwrap();
        let ch = sightline_agent::transport::connect(
            &self.url,
            &read("ca.pem"),
            Some((read("client.pem"), read("client.key"))),
        )
        .await?;
        Ok(TelemetryClient::new(ch))
    }

    /// A batch of `n` observations signed by this agent's device key.
    pub fn batch(&self, first_seq: u64, prev: [u8; 32], n: u64) -> (pb::SignedBatch, [u8; 32]) {
        let b = pb::Batch {
            device_id: self.device_id.clone(),
            first_seq,
            prev_batch_hash: prev.to_vec(),
            created_at_ms: 1,
            observations: (0..n)
                .map(|i| pb::Observation {
                    seq: first_seq + i,
                    observed_at_ms: 1_700_000_000_000,
                    change: pb::Change::Snapshot as i32,
                    item: Some(pb::observation::Item::Process(pb::ProcessItem {
                        tool: "ollama".into(),
                        user: Some("alice".into()),
                        pid: 100 + i as u32,
                        name: "ollama".into(),
                        exe: None,
                    })),
                })
                .collect(),
        };
        let spki = self.key.public_key_spki();
        envelope::seal(&b, &spki, |m| self.key.sign(m)).unwrap()
    }

    /// Sends batches on one stream; returns the first reply to each, stopping at a refusal.
    pub async fn send(&self, batches: Vec<pb::SignedBatch>) -> Vec<Result<pb::Ack, tonic::Status>> {
        let mut client = match self.client().await {
            Ok(c) => c,
            Err(e) => return vec![Err(tonic::Status::unavailable(format!("{e:#}")))],
        };
        send_on(&mut client, batches).await
    }
}

pub async fn send_on(
    client: &mut TelemetryClient<tonic::transport::Channel>,
    batches: Vec<pb::SignedBatch>,
) -> Vec<Result<pb::Ack, tonic::Status>> {
    let n = batches.len();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for b in batches {
        tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Batch(b)) }).await.unwrap();
    }
    let mut out = Vec::new();
    let mut stream = match client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(s) => s.into_inner(),
        Err(s) => return vec![Err(s)],
    };
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Ack(a)) }))) => {
                out.push(Ok(a))
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => break,
            Ok(Err(s)) => {
                out.push(Err(s));
                break;
            }
            Err(_) => panic!("no reply within 10s"),
        }
    }
    drop(tx);
    out
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures")
}

/// Every fabricated secret in the fixture trees.
pub fn fixture_secrets() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("secrets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A workspace binary built next to this test (`cargo build --bins` or another package's
/// integration tests put it there).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(p.exists(), "{} not built; run `cargo build --workspace --bins` first", p.display());
    p
}

/// Every file under a directory, as bytes (for leak checks on databases and state dirs).
pub fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
