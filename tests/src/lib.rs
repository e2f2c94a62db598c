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
use sightline_server::state::AppState;
use tokio::sync::oneshot;

pub mod fleet;
pub mod pg;
pub mod procfs;
pub mod proxy;
pub mod stack;

pub use stack::{Stack, outcome};

/// A collector serving on loopback until dropped or stopped.
pub struct Collector {
    pub url: String,
    /// The HTTP API (`serve --http`), TLS with the same dev CA.
    pub api_url: String,
    pub data_dir: tempfile::TempDir,
    pub shared: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Collector {
    pub async fn start() -> Collector {
        Collector::start_with(Default::default()).await
    }

    pub async fn start_with(config: sightline_server::config::IngestConfig) -> Collector {
        Collector::start_full(config, None).await
    }

    /// With a `policy.toml` in the data dir (approved connectors, identity rules).
    pub async fn start_with_policy(policy: &str) -> Collector {
        Collector::start_full(Default::default(), Some(policy)).await
    }

    /// With a policy and a fixed org fingerprint key, so the keyed fingerprints of the
    /// tokens agents report are the same from run to run (golden documents).
    pub async fn start_with_fingerprint_key(policy: &str, key: [u8; 32]) -> Collector {
        Collector::start_prepared(Default::default(), Some(policy), Some(key)).await
    }

    async fn start_full(config: sightline_server::config::IngestConfig, policy: Option<&str>) -> Collector {
        Collector::start_prepared(config, policy, None).await
    }

    /// With `prepare` given the HTTP API's base URL once its port is bound and before it
    /// serves, to finish the state with what depends on that address (an OpenID provider
    /// registered with the collector's callback URL).
    pub async fn start_prepared_by(prepare: impl FnOnce(&str, &mut AppState)) -> Collector {
        Collector::start_hooked(Default::default(), None, None, prepare).await
    }

    async fn start_prepared(
        config: sightline_server::config::IngestConfig,
        policy: Option<&str>,
        fingerprint_key: Option<[u8; 32]>,
    ) -> Collector {
        Collector::start_hooked(config, policy, fingerprint_key, |_, _| ()).await
    }

    async fn start_hooked(
        config: sightline_server::config::IngestConfig,
        policy: Option<&str>,
        fingerprint_key: Option<[u8; 32]>,
        prepare: impl FnOnce(&str, &mut AppState),
    ) -> Collector {
        let data_dir = tempfile::tempdir().unwrap();
        if let Some(p) = policy {
            std::fs::write(data_dir.path().join("policy.toml"), p).unwrap();
        }
        if let Some(key) = fingerprint_key {
            sightline_server::pki::Pki::load_or_init(data_dir.path(), true).unwrap();
            std::fs::write(data_dir.path().join("org-fingerprint.key"), key).unwrap();
        }
        let mut shared = sightline_server::server::open(data_dir.path(), None, true).unwrap();
        shared.config = config;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("https://127.0.0.1:{}", api_listener.local_addr().unwrap().port());
        prepare(&api_url, &mut shared);
        let (stop, rx) = oneshot::channel::<()>();
        // The library's own entry point, as `serve` runs it: gRPC and the HTTP edge together.
        let listeners = sightline_server::server::Listeners { grpc: listener, http: Some(api_listener) };
        let task = tokio::spawn(sightline_server::server::run(
            shared.clone(),
            sightline_server::export::ExportConfig::default(),
            listeners,
            async move {
                rx.await.ok();
            },
        ));
        Collector { url, api_url, data_dir, shared, stop: Some(stop), task: Some(task) }
    }

    pub fn token(&self) -> String {
        sightline_server::create_token(self.shared.store.as_ref(), Duration::from_secs(3600)).unwrap()
    }

    /// A new API token with `role`.
    pub fn api_token(&self, role: &str) -> String {
        let role = sightline_server::domain::Role::parse(role).unwrap();
        sightline_server::create_api_token(self.shared.store.as_ref(), role, "test").unwrap()
    }

    /// One HTTP API call through curl (a real client, real TLS against the dev CA):
    /// (status, response headers, JSON body).
    pub fn api(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String, serde_json::Value) {
        self.api_body(method, path, token, None)
    }

    /// As [`Collector::api`], sending `body` as `application/scim+json` when given.
    pub fn api_body(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, serde_json::Value) {
        let headers = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "-D"])
            .arg(headers.path())
            .arg("--cacert")
            .arg(self.data_dir.path().join("ca.pem"));
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/scim+json", "--data-binary", b]);
        }
        let out = cmd.arg(format!("{}{path}", self.api_url)).output().unwrap();
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        let body =
            if body.is_empty() { serde_json::Value::Null } else { serde_json::from_str(body).unwrap() };
        (code.parse().unwrap(), std::fs::read_to_string(headers.path()).unwrap(), body)
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
    enroll_to(&c.url, c.ca_pem(), token.to_owned()).await
}

/// Enrolls an agent (software key, state in a temp dir) with the collector at `url`.
pub async fn enroll_to(url: &str, ca_pem: Vec<u8>, token: String) -> anyhow::Result<Agent> {
    let state_dir = tempfile::tempdir()?;
    let state = StateDir::open(state_dir.path())?;
    let opts = sightline_agent::enroll::EnrollOptions {
        server: url.to_owned(),
        token,
        ca_pem,
        key_backend: KeyChoice::Software,
    };
    let e = sightline_agent::enroll::enroll(&state, &opts).await?;
    let key: Arc<dyn DeviceKey> = Arc::from(keys::open(state_dir.path(), KeyChoice::Software)?);
    Ok(Agent { state_dir, state, device_id: e.device_id, key, url: url.to_owned() })
}

impl Agent {
    /// The real `run --once` over a filesystem root.
    pub async fn run_once(&self, root: &Path) -> anyhow::Result<()> {
        sightline_agent::run::run(self.run_options(root, true), std::future::pending()).await.map(|_| ())
    }

    /// The real continuous `run`, until `shutdown` resolves.
    pub async fn run_until(&self, root: &Path, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        sightline_agent::run::run(self.run_options(root, false), shutdown).await.map(|_| ())
    }

    pub fn run_options(&self, root: &Path, once: bool) -> sightline_agent::run::RunOptions {
        run_options(
            self.state_dir.path(),
            root,
            once,
            KeyChoice::Software,
            Duration::from_secs(30 * 24 * 3600),
        )
    }

    /// The real delivery link over this agent's spool and outbox, until everything recorded
    /// is acknowledged.
    pub async fn drain(&self) -> anyhow::Result<sightline_agent::deliver::Delivered> {
        use sightline_agent::deliver::{DeliverOptions, Link, Mode};
        let recorder = Arc::new(sightline_agent::recorder::Recorder::open(
            &self.state,
            Default::default(),
            &self.device_id,
            self.key.clone(),
        )?);
        let link = Link {
            state: self.state.clone(),
            enrollment: self.state.enrollment()?.expect("enrolled"),
            recorder,
            key: self.key.clone(),
            opts: DeliverOptions { timeout: Duration::from_secs(10), ..Default::default() },
            last_error: Default::default(),
            directives: None,
            claims: Arc::new(sightline_agent::run::device_facts),
            catalogs: None,
            catalog_status: None,
        };
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        link.run(Mode::Drain, stop_rx).await
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

    /// A batch of the given observations (numbered from `first_seq`), signed by this agent.
    pub fn batch_of(
        &self,
        first_seq: u64,
        prev: [u8; 32],
        mut observations: Vec<pb::Observation>,
    ) -> (pb::SignedBatch, [u8; 32]) {
        for (i, o) in observations.iter_mut().enumerate() {
            o.seq = first_seq + i as u64;
        }
        let b = pb::Batch {
            device_id: self.device_id.clone(),
            first_seq,
            prev_batch_hash: prev.to_vec(),
            created_at_ms: 1,
            observations,
        };
        envelope::seal(&b, &self.key.public_key_spki(), |m| self.key.sign(m)).unwrap()
    }

    /// A stream that has received its challenge and given this agent's signed claims.
    pub async fn attested_stream(&self) -> Result<RawStream, tonic::Status> {
        let mut client = self.client().await.map_err(|e| tonic::Status::unavailable(format!("{e:#}")))?;
        let mut s = RawStream::open(&mut client).await?;
        s.send(Msg::Claims(self.claims(&s.nonce))).await;
        match s.reply().await? {
            Some(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Ack(_)) }) => Ok(s),
            other => panic!("expected an ack of the claims, got {other:?}"),
        }
    }

    pub fn claims(&self, nonce: &[u8]) -> pb::SignedClaims {
        sightline_agent::deliver::claims(
            &self.device_id,
            nonce,
            sightline_agent::run::device_facts().unwrap(),
            self.key.as_ref(),
        )
        .unwrap()
    }

    pub fn present(&self, batch: pb::SignedBatch, nonce: &[u8]) -> pb::PresentedBatch {
        sightline_agent::deliver::present(batch, nonce, self.key.as_ref()).unwrap()
    }

    /// Sends batches on one attested stream; returns the reply to each, stopping at a refusal.
    pub async fn send(&self, batches: Vec<pb::SignedBatch>) -> Vec<Result<pb::Ack, tonic::Status>> {
        let mut s = match self.attested_stream().await {
            Ok(s) => s,
            Err(e) => return vec![Err(e)],
        };
        let mut out = Vec::new();
        for b in batches {
            let presented = self.present(b, &s.nonce);
            s.send(Msg::Batch(presented)).await;
            // Directives pushed to the device may come first: they answer nothing, the ack does.
            let reply = loop {
                match s.reply().await {
                    Ok(Some(pb::CollectorMessage {
                        msg: Some(pb::collector_message::Msg::Directive(_)),
                    })) => {}
                    r => break r,
                }
            };
            match reply {
                Ok(Some(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Ack(a)) })) => {
                    out.push(Ok(a))
                }
                Ok(other) => panic!("unexpected reply {other:?}"),
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }
}

use pb::agent_message::Msg;

/// One telemetry stream driven by hand: it has received the collector's challenge.
pub struct RawStream {
    tx: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    rx: tonic::Streaming<pb::CollectorMessage>,
    pub nonce: Vec<u8>,
}

impl RawStream {
    pub async fn open(
        client: &mut TelemetryClient<tonic::transport::Channel>,
    ) -> Result<RawStream, tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut rx = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), rx.message())
            .await
            .expect("no challenge within 10s")?;
        match first {
            Some(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Challenge(c)) }) => {
                Ok(RawStream { tx, rx, nonce: c.nonce })
            }
            other => panic!("expected a challenge first, got {other:?}"),
        }
    }

    pub async fn send(&self, m: Msg) {
        // A send fails only when the collector already closed the stream; the next reply says why.
        self.tx.send(pb::AgentMessage { msg: Some(m) }).await.ok();
    }

    /// The next reply (None when the collector closed the stream cleanly).
    pub async fn reply(&mut self) -> Result<Option<pb::CollectorMessage>, tonic::Status> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message()).await.expect("no reply within 10s")
    }
}

/// Opens a stream with whatever identity `client` has and sends batches unpresented: for
/// clients that should be refused before any claims.
pub async fn send_on(
    client: &mut TelemetryClient<tonic::transport::Channel>,
    batches: Vec<pb::SignedBatch>,
) -> Vec<Result<pb::Ack, tonic::Status>> {
    let mut s = match RawStream::open(client).await {
        Ok(s) => s,
        Err(e) => return vec![Err(e)],
    };
    for b in batches {
        s.send(Msg::Batch(pb::PresentedBatch { batch: Some(b), stream_signature: Vec::new() })).await;
    }
    match s.reply().await {
        Err(e) => vec![Err(e)],
        Ok(other) => panic!("expected a refusal, got {other:?}"),
    }
}

/// Options for one real `run` of the agent whose state is in `state_dir`, scanning `root`
/// without processes; certificate renewal triggers when expiry is within `renew_within`.
pub fn run_options(
    state_dir: &Path,
    root: &Path,
    once: bool,
    key_backend: KeyChoice,
    renew_within: Duration,
) -> sightline_agent::run::RunOptions {
    let mut config = sightline_agent::config::Config::defaults(state_dir, root);
    config.processes = false;
    config.sessions = false;
    config.cpu_percent = 100;
    config.debounce = Duration::from_millis(100);
    let deliver = sightline_agent::deliver::DeliverOptions {
        timeout: Duration::from_secs(30),
        renew_within,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    };
    sightline_agent::run::RunOptions { config, once, key_backend, deliver }
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
    // Beside a bench binary (target/release/x), or one level up from a test (target/debug/deps/x).
    let exe = std::env::current_exe().unwrap();
    let here = exe.parent().unwrap();
    let p = [here, here.parent().unwrap()]
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join(name));
    assert!(p.exists(), "{} not built; run `cargo build --workspace --bins` first", p.display());
    p
}

/// The Python of the venv `target/NAME`, which the test command makes with the pinned
/// third-party tools a test drives (`pyclients`: grpcio's health and reflection clients and
/// the Prometheus parsers; `ocsf-validator`; `scim2-tester`). A missing venv fails the test.
pub fn venv_python(name: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target").join(name).join("bin/python");
    assert!(python.exists(), "{} is missing: scripts/test.sh makes that venv", python.display());
    python
}

/// Runs one of `tests/clients/*.py` in the `pyclients` venv: its stdout as JSON.
pub fn python_client(script: &str, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new(venv_python("pyclients"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(script))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `tests/browser/`, after checking that the npm modules the scripts there need are
/// installed (the test command installs them).
pub fn browser_dir(modules: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    for module in modules {
        assert!(
            dir.join("node_modules").join(module).exists(),
            "{module} is missing: run `npm ci --prefix tests/browser` (the test command does)"
        );
    }
    dir
}

/// Where the browser scripts leave their screenshots.
pub fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Runs `tests/browser/SCRIPT` under node with `env`, the browser and the screenshot dir
/// (`target/screenshots/`) named; whether it succeeded, and its output (also printed).
pub fn run_browser(script: &str, env: &[(&str, &str)]) -> (bool, String) {
    let chromium = chromium();
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: the test command installs Debian's chromium"
    );
    let out = std::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join(script))
        .envs(env.iter().copied())
        .env("SIGHTLINE_SHOTS", screenshots())
        .env("CHROMIUM", &chromium)
        // The dev CA is not in Node's trust store; the browser is told the same.
        .env("NODE_TLS_REJECT_UNAUTHORIZED", "0")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{log}");
    (out.status.success(), log)
}

/// An OpenAI API key in `user`'s Codex credentials, as the agent reports it: its keyed
/// fingerprint, never the key.
pub fn openai_token(user: &str, fingerprint: &str) -> pb::observation::Item {
    pb::observation::Item::Token(pb::TokenItem {
        provider: "openai".into(),
        kind: pb::TokenKind::ApiKey as i32,
        user: Some(user.into()),
        path: format!("/home/{user}/.codex/auth.json"),
        source: pb::TokenSource::CredentialFile as i32,
        fingerprint: fingerprint.into(),
        locator: Some("/OPENAI_API_KEY".into()),
        mcp_server: None,
        authorized_by: None,
    })
}

/// One report of an AI tool session as the agent sends it (`ACTIVITY`): `user`'s Claude Code
/// session `id` from `started` to `ended` (Unix ms) with `prompts` prompts, calling each of
/// `mcp` (server, calls) once per call.
pub fn ai_session(
    user: &str,
    id: &str,
    started: i64,
    ended: i64,
    prompts: u32,
    mcp: &[(&str, u32)],
) -> pb::observation::Item {
    pb::observation::Item::Activity(pb::ActivityItem {
        tool: "claude_code".into(),
        user: Some(user.into()),
        session_id: id.into(),
        started_at_ms: started,
        ended_at_ms: ended,
        project: Some("fp:6b1f0c2a9d".into()),
        models: vec!["claude-sonnet-4-5".into()],
        account: None,
        prompts,
        tool_calls: prompts * 2 + mcp.iter().map(|(_, n)| n).sum::<u32>(),
        mcp: mcp
            .iter()
            .map(|(server, calls)| pb::McpUse {
                server: (*server).into(),
                calls: *calls,
                tools: vec!["create_issue".into()],
            })
            .collect(),
        credentials: vec![],
        format: "claude_code_jsonl".into(),
    })
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

/// A collector run as the shipped binary (`serve --dev`), so it can be SIGKILLed and
/// restarted on the same data dir and port.
///
/// It binds port 0 and says which port it got (`listening grpc ADDR` on stdout), so no port
/// is ever guessed: a port found free and released can be taken by another test before the
/// collector binds it.
pub struct ServerProcess {
    pub data_dir: PathBuf,
    pub port: u16,
    /// The HTTP API's port, when started with `--http` (see [`ServerProcess::start_http`]).
    pub http_port: Option<u16>,
    child: Option<std::process::Child>,
    log: PathBuf,
    extra: Vec<String>,
    http: bool,
    /// A command the collector runs under (`faketime -f -1h`), and environment for it.
    wrapper: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with(data_dir, extra, false)
    }

    /// With the HTTP API on a port of its own choosing too.
    pub fn start_http(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with(data_dir, extra, true)
    }

    fn start_with(data_dir: &Path, extra: &[&str], http: bool) -> ServerProcess {
        let mut s = ServerProcess {
            data_dir: data_dir.to_owned(),
            port: 0,
            http_port: None,
            child: None,
            log: data_dir.with_extension("log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            http,
            wrapper: Vec::new(),
            env: Vec::new(),
        };
        s.restart();
        s
    }

    /// Run under `wrapper` (a command that execs the rest of its arguments) with `env`.
    pub fn start_under(
        data_dir: &Path,
        extra: &[&str],
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut s = ServerProcess {
            data_dir: data_dir.to_owned(),
            port: 0,
            http_port: None,
            child: None,
            log: data_dir.with_extension("log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            http: false,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.restart();
        s
    }

    /// The log the collector writes (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The HTTP API's base URL.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.http_port.expect("started with start_http"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Starts the collector (again: same data dir, same ports) and waits until it says where
    /// it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(bin("sightline-server"));
                c
            }
            None => std::process::Command::new(bin("sightline-server")),
        };
        cmd.args(["serve", "--dev", "--listen", &format!("127.0.0.1:{}", self.port), "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.http {
            cmd.args(["--http", &format!("127.0.0.1:{}", self.http_port.unwrap_or(0))]);
        }
        let mut child = cmd
            .env("SIGHTLINE_LOG", "info")
            .stderr(log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let listening = read_listening(&mut child, if self.http { 2 } else { 1 }, Duration::from_secs(20));
        let listening = match listening {
            Ok(l) => l,
            Err(e) => {
                child.kill().ok();
                child.wait().ok();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "collector did not start: {e}\n{}",
                    log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
                );
            }
        };
        for (what, addr) in listening {
            match what.as_str() {
                "grpc" => self.port = addr.port(),
                "http" => self.http_port = Some(addr.port()),
                _ => {}
            }
        }
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// Sends SIGTERM and waits at most `within` for the exit; returns the status and how long
    /// it took.
    pub fn terminate(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("collector running");
        let started = std::time::Instant::now();
        std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > within {
                c.kill().ok();
                c.wait().ok();
                panic!("collector did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn token(&self) -> String {
        let out = std::process::Command::new(bin("sightline-server"))
            .args(["token", "create", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The collector's database, opened read-only beside the running server (WAL).
    pub fn db(&self) -> Db {
        Db::open(&self.data_dir)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Reads `listening KIND ADDR` lines from a starting collector's stdout until `n` arrived;
/// the rest of its stdout is drained in the background.
pub fn read_listening(
    child: &mut std::process::Child,
    n: usize,
    within: Duration,
) -> Result<Vec<(String, std::net::SocketAddr)>, String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if let (Some("listening"), Some(kind), Some(addr)) = (parts.next(), parts.next(), parts.next())
                && let Ok(addr) = addr.parse()
            {
                tx.send((kind.to_owned(), addr)).ok();
            }
        }
    });
    let deadline = std::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => out.push(l),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("it exited ({status})"));
                }
                return Err(format!("no `listening` line within {within:?}"));
            }
        }
    }
    Ok(out)
}

/// Read-only queries on a collector's SQLite database, for checking what was stored.
pub struct Db(rusqlite::Connection);

/// One stored observation.
#[derive(Debug, Clone)]
pub struct StoredObservation {
    pub seq: u64,
    pub observed_at_ms: i64,
    pub change: String,
    pub kind: String,
    pub data: serde_json::Value,
}

impl Db {
    pub fn open(data_dir: &Path) -> Db {
        let c = rusqlite::Connection::open_with_flags(
            data_dir.join("sightline.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        Db(c)
    }

    pub fn observations(&self, device: &str) -> Vec<StoredObservation> {
        let mut q = self
            .0
            .prepare("SELECT seq, observed_at_ms, change, kind, data FROM observations WHERE device_id = ?1 ORDER BY seq")
            .unwrap();
        q.query_map([device], |r| {
            Ok(StoredObservation {
                seq: r.get::<_, i64>(0)? as u64,
                observed_at_ms: r.get(1)?,
                change: r.get(2)?,
                kind: r.get(3)?,
                data: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// The device's stored sequence head.
    pub fn seq_head(&self, device: &str) -> u64 {
        self.0
            .query_row("SELECT seq_head FROM devices WHERE id = ?1", [device], |r| r.get::<_, i64>(0))
            .unwrap_or(0) as u64
    }
}

/// Exactly-once storage: sequence numbers 1..=head, each once, and the head agrees.
pub fn assert_exactly_once(db: &Db, device: &str) -> Vec<StoredObservation> {
    let obs = db.observations(device);
    let seqs: Vec<u64> = obs.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (1..=obs.len() as u64).collect::<Vec<_>>(), "stored sequence has gaps or duplicates");
    assert_eq!(db.seq_head(device), obs.len() as u64);
    obs
}

/// The agent binary as a daemon (`run --config`), with its own log file.
pub struct AgentProcess {
    pub state_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<std::process::Child>,
}

impl AgentProcess {
    /// Enrolls a fresh state dir with `server` and writes a daemon config for `root`: fast
    /// debounce, no process or session sampling, no CPU pacing (tests wait on it).
    pub fn enroll(server: &ServerProcess, work: &Path, root: &Path, extra_config: &str) -> AgentProcess {
        AgentProcess::enroll_at(
            &server.url(),
            &server.token(),
            &server.data_dir.join("ca.pem"),
            work,
            root,
            extra_config,
        )
    }

    /// As [`AgentProcess::enroll`], with any collector: its URL, a token and its CA file.
    pub fn enroll_at(
        url: &str,
        token: &str,
        ca: &Path,
        work: &Path,
        root: &Path,
        extra_config: &str,
    ) -> AgentProcess {
        let state_dir = work.join("agent-state");
        let out = std::process::Command::new(bin("sightline-agent"))
            .args(["enroll", "--server", url, "--token", token, "--key-backend", "software"])
            .arg("--ca")
            .arg(ca)
            .arg("--state-dir")
            .arg(&state_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        let config = work.join("agent.toml");
        // The test's own settings win over these defaults (TOML allows a key once).
        let defaults = format!(
            "state_dir = {:?}\nroot = {:?}\nprocesses = false\ncpu_percent = 100\nnice = 0\ndebounce = \"100ms\"\n",
            state_dir.display().to_string(),
            root.display().to_string()
        );
        let overridden = |line: &str| {
            let key = line.split('=').next().unwrap_or_default().trim();
            extra_config.lines().any(|l| l.split('=').next().unwrap_or_default().trim() == key)
        };
        let mut text: String =
            defaults.lines().filter(|l| !overridden(l)).map(|l| format!("{l}\n")).collect();
        text.push_str(extra_config);
        std::fs::write(&config, text).unwrap();
        AgentProcess { state_dir, config, log: work.join("agent.log"), child: None }
    }

    pub fn device_id(&self) -> String {
        let e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.state_dir.join("enrollment.json")).unwrap()).unwrap();
        e["device_id"].as_str().unwrap().to_owned()
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        self.child = Some(
            std::process::Command::new(bin("sightline-agent"))
                .args(["run", "--config"])
                .arg(&self.config)
                .env("SIGHTLINE_LOG", "info")
                .stderr(log)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// Sends SIGTERM and waits at most `within` for the exit; returns the status and how
    /// long it took.
    pub fn terminate(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let started = std::time::Instant::now();
        let status =
            std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        assert!(status.success());
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return (s, started.elapsed());
            }
            if started.elapsed() > within {
                c.kill().ok();
                panic!("agent did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The catalogued Claude extension's id, as Chrome installs it.
pub const CLAUDE_EXT: &str = "fcoeoabgfenejglbffodgkkbkcdhcgfn";

/// Installs Chrome's Claude extension in `user`'s default profile under `root`.
pub fn plant_claude_extension(root: &Path, user: &str) {
    let ext = root.join(format!("home/{user}/.config/google-chrome/Default/Extensions/{CLAUDE_EXT}/1.0.3_0"));
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(
        ext.join("manifest.json"),
        r#"{"manifest_version": 3, "name": "Claude", "version": "1.0.3", "host_permissions": ["https://claude.ai/*"]}"#,
    )
    .unwrap();
}

/// A fabricated OpenAI project key, unique per call.
pub fn fake_openai_key() -> String {
    let r = sightline_agent::state::random_bytes(40).unwrap();
    let alnum: String = r
        .iter()
        .map(|b| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[(*b % 62) as usize] as char
        })
        .collect();
    format!("sk-proj-{alnum}T3BlbkFJ{alnum}")
}
