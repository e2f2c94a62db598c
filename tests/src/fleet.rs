//! Simulated agents for load and failover: each is a really enrolled device (software key,
//! its own client certificate) that opens real mTLS streams, answers the stream challenge
//! with signed claims and sends batches sealed and presented with its key, exactly as the
//! agent's delivery link does, including resending what was not acknowledged after a
//! reconnect. What differs from the agent is only where observations come from: a fixed,
//! realistic inventory per device instead of a scan.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sightline_agent::keys::DeviceKey;
use sightline_proto::envelope::GENESIS_HASH;
use sightline_proto::pb;
use sightline_proto::pb::agent_message::Msg;
use sightline_proto::pb::collector_message::Msg as Reply;
use sightline_proto::pb::telemetry_client::TelemetryClient;
use tokio_util::sync::CancellationToken;

use crate::Agent;

/// What a simulated fleet does.
#[derive(Debug, Clone)]
pub struct Load {
    pub obs_per_batch: usize,
    /// Pause after each acknowledged batch (jittered ±50 %); zero sends back to back.
    pub interval: Duration,
    /// Each agent stops after this many acknowledged batches (None: until stopped).
    pub batches: Option<u64>,
    /// A stream is dropped and opened again after a random time up to this (churn).
    pub stream_life: Option<Duration>,
}

/// Counters shared by every simulated agent.
#[derive(Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub observations: AtomicU64,
    pub streams: AtomicI64,
    pub streams_max: AtomicI64,
    pub connects: AtomicU64,
    pub errors: AtomicU64,
    /// The first few errors, for the report.
    pub error_sample: std::sync::Mutex<Vec<String>>,
    pub directives: AtomicU64,
    /// Send-to-acknowledgement latency of every batch, µs.
    pub latencies: std::sync::Mutex<Vec<u32>>,
}

impl Stats {
    pub fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l.sort_unstable();
        let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
        Duration::from_micros(l[i] as u64)
    }

    pub fn reset_latencies(&self) {
        self.latencies.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// One simulated device: its identity and where its chain stands.
pub struct SimAgent {
    pub device_id: String,
    key: Arc<dyn DeviceKey>,
    ca: Vec<u8>,
    identity: (Vec<u8>, Vec<u8>),
    index: usize,
    /// The next sequence number and the hash of the last acknowledged batch.
    next_seq: u64,
    prev: [u8; 32],
    /// Sealed but not acknowledged: sent again, unchanged, after a reconnect.
    pending: Option<(pb::SignedBatch, [u8; 32], u64)>,
    pub acked_batches: u64,
}

impl SimAgent {
    pub fn from(agent: &Agent, index: usize) -> anyhow::Result<SimAgent> {
        let read = |n: &str| std::fs::read(agent.state_dir.path().join(n));
        Ok(SimAgent {
            device_id: agent.device_id.clone(),
            key: agent.key.clone(),
            ca: read("ca.pem")?,
            identity: (read("client.pem")?, read("client.key")?),
            index,
            next_seq: 1,
            prev: GENESIS_HASH,
            pending: None,
            acked_batches: 0,
        })
    }

    fn observations(&self, n: usize) -> Vec<pb::Observation> {
        laptop_observations(self.index, self.next_seq, n)
    }

    fn next_batch(&mut self, n: usize) -> anyhow::Result<(pb::SignedBatch, [u8; 32], u64)> {
        if let Some(p) = &self.pending {
            return Ok(p.clone());
        }
        let mut observations = self.observations(n);
        for (i, o) in observations.iter_mut().enumerate() {
            o.seq = self.next_seq + i as u64;
        }
        let b = pb::Batch {
            device_id: self.device_id.clone(),
            first_seq: self.next_seq,
            prev_batch_hash: self.prev.to_vec(),
            created_at_ms: sightline_server::clock::now_ms(),
            observations,
        };
        let (signed, hash) =
            sightline_proto::envelope::seal(&b, &self.key.public_key_spki(), |m| self.key.sign(m))?;
        self.pending = Some((signed, hash, n as u64));
        Ok(self.pending.clone().expect("just set"))
    }

    /// Runs until `stop`, or until `load.batches` are acknowledged. Errors (a replica gone,
    /// a refusal) end the stream; the agent reconnects with backoff and resends.
    pub async fn run(&mut self, url: &str, load: &Load, stats: &Stats, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() && !self.done(load) {
            match self.session(url, load, stats, stop).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    {
                        let mut sample = stats.error_sample.lock().unwrap_or_else(|p| p.into_inner());
                        if sample.len() < 5 {
                            sample.push(format!("{e:#}"));
                        }
                    }
                    let wait = jitter(backoff, self.index as u64 + self.next_seq);
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn done(&self, load: &Load) -> bool {
        load.batches.is_some_and(|n| self.acked_batches >= n)
    }

    async fn session(
        &mut self,
        url: &str,
        load: &Load,
        stats: &Stats,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = sightline_agent::transport::connect(url, &self.ca, Some(self.identity.clone()))
            .await
            .context("connecting")?;
        let mut client = TelemetryClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut replies = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let nonce = match reply(&mut replies).await.context("awaiting the stream challenge")? {
            Reply::Challenge(c) => c.nonce,
            other => anyhow::bail!("expected a challenge, got {other:?}"),
        };
        let claims = sightline_agent::deliver::claims(
            &self.device_id,
            &nonce,
            sightline_agent::run::device_facts()?,
            self.key.as_ref(),
        )?;
        tx.send(pb::AgentMessage { msg: Some(Msg::Claims(claims)) }).await?;
        match reply(&mut replies).await.context("awaiting the claims acknowledgement")? {
            Reply::Ack(_) => {}
            other => anyhow::bail!("expected the claims acknowledged, got {other:?}"),
        }
        stats.connects.fetch_add(1, Ordering::Relaxed);
        let open = stats.streams.fetch_add(1, Ordering::Relaxed) + 1;
        stats.streams_max.fetch_max(open, Ordering::Relaxed);
        let _held = Held(&stats.streams);
        let life = load.stream_life.map(|l| jitter(l, self.index as u64 * 7 + self.next_seq));
        let opened = Instant::now();
        loop {
            if stop.is_cancelled() || self.done(load) || life.is_some_and(|l| opened.elapsed() >= l) {
                return Ok(());
            }
            let (batch, hash, n) = self.next_batch(load.obs_per_batch)?;
            let presented = sightline_agent::deliver::present(batch, &nonce, self.key.as_ref())?;
            let sent = Instant::now();
            tx.send(pb::AgentMessage { msg: Some(Msg::Batch(presented)) }).await?;
            let ack = loop {
                match reply(&mut replies).await.context("awaiting a batch acknowledgement")? {
                    Reply::Ack(a) => break a,
                    Reply::Directive(_) => {
                        stats.directives.fetch_add(1, Ordering::Relaxed);
                    }
                    other => anyhow::bail!("unexpected reply {other:?}"),
                }
            };
            let last = self.next_seq + n - 1;
            if ack.through_seq < last {
                anyhow::bail!("acknowledged through {} of {last}", ack.through_seq);
            }
            let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
            stats.latencies.lock().unwrap_or_else(|p| p.into_inner()).push(micros);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.observations.fetch_add(n, Ordering::Relaxed);
            self.pending = None;
            self.next_seq = last + 1;
            self.prev = hash;
            self.acked_batches += 1;
            if !load.interval.is_zero() {
                let wait = jitter(load.interval, self.index as u64 + last);
                // Directives can arrive while idle; count them.
                let idle = tokio::time::sleep(wait);
                tokio::pin!(idle);
                loop {
                    tokio::select! {
                        _ = &mut idle => break,
                        _ = stop.cancelled() => return Ok(()),
                        // No reply deadline here: silence while idle is normal.
                        r = replies.message() => match message(r).context("idle between batches")? {
                            Reply::Directive(_) => { stats.directives.fetch_add(1, Ordering::Relaxed); }
                            other => anyhow::bail!("unexpected reply {other:?}"),
                        },
                    }
                }
            }
        }
    }
}

/// Observations as laptop `index` reports them from sequence `next_seq` on: a handful of
/// tools, extensions everyone has, credentials of its own, an MCP server; mostly
/// re-sightings, some coming and going.
pub fn laptop_observations(index: usize, next_seq: u64, n: usize) -> Vec<pb::Observation> {
    let user = format!("user{index}");
    (0..n)
        .map(|i| {
            let round = next_seq + i as u64;
            let slot = round % 12;
            let change = match round % 10 {
                0 => pb::Change::Appeared,
                7 => pb::Change::Disappeared,
                _ => pb::Change::Snapshot,
            };
            let item = match slot {
                0..=2 => pb::observation::Item::Process(pb::ProcessItem {
                    tool: ["ollama", "claude", "cursor"][slot as usize].into(),
                    user: Some(user.clone()),
                    pid: 1000 + slot as u32,
                    name: "tool".into(),
                    exe: None,
                }),
                3..=6 => pb::observation::Item::Extension(pb::ExtensionItem {
                    tool: Some("claude".into()),
                    user: Some(user.clone()),
                    browser: "chrome".into(),
                    profile: "Default".into(),
                    extension_id: format!(
                        "{:a<32}",
                        ["fcoeoabgfen", "bgejafhieo", "jlkjdkfjdk", "mmmkkkjjjh"][slot as usize - 3]
                    ),
                    name: "AI helper".into(),
                    version: Some("1.2.3".into()),
                    enabled: Some(true),
                    path: format!("/home/{user}/.config/google-chrome/Default/Extensions/x"),
                    signals: vec![],
                    permissions: vec!["storage".into()],
                    host_permissions: vec!["https://api.openai.com/*".into()],
                }),
                7..=10 => pb::observation::Item::Token(pb::TokenItem {
                    provider: ["openai", "anthropic", "groq", "github"][slot as usize - 7].into(),
                    kind: pb::TokenKind::ApiKey as i32,
                    user: Some(user.clone()),
                    path: format!("/home/{user}/.env"),
                    source: pb::TokenSource::Dotenv as i32,
                    fingerprint: format!("fp{:08x}{:02}", index, slot),
                    locator: Some(format!("line {slot}")),
                    mcp_server: None,
                    authorized_by: None,
                }),
                _ => pb::observation::Item::McpServer(pb::McpServerItem {
                    client: "claude_desktop".into(),
                    user: Some(user.clone()),
                    name: "github".into(),
                    transport: "stdio".into(),
                    command: Some("npx -y @modelcontextprotocol/server-github".into()),
                    url: None,
                    path: format!("/home/{user}/.config/Claude/claude_desktop_config.json"),
                }),
            };
            pb::Observation {
                seq: 0,
                observed_at_ms: sightline_server::clock::now_ms(),
                change: change as i32,
                item: Some(item),
            }
        })
        .collect()
}

/// Counts a stream as open while it lives.
struct Held<'a>(&'a AtomicI64);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The next reply, which must come within 60 s.
async fn reply(s: &mut tonic::Streaming<pb::CollectorMessage>) -> anyhow::Result<Reply> {
    match tokio::time::timeout(Duration::from_secs(60), s.message()).await {
        Err(_) => anyhow::bail!("no reply within 60 s"),
        Ok(r) => message(r),
    }
}

fn message(r: Result<Option<pb::CollectorMessage>, tonic::Status>) -> anyhow::Result<Reply> {
    match r {
        Err(status) => anyhow::bail!("stream ended: {status}"),
        Ok(None) => anyhow::bail!("stream closed"),
        Ok(Some(pb::CollectorMessage { msg: Some(m) })) => Ok(m),
        Ok(Some(_)) => anyhow::bail!("empty message"),
    }
}

/// `d` scaled into [0.5, 1.5) by a cheap deterministic hash of `salt`.
fn jitter(d: Duration, salt: u64) -> Duration {
    let h = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
    d.mul_f64(0.5 + h as f64 / 1024.0)
}

/// Enrolls one agent per token at `url` (at most `parallel` at once).
pub async fn enroll_fleet(
    url: &str,
    ca_pem: &[u8],
    tokens: Vec<String>,
    parallel: usize,
) -> anyhow::Result<Vec<Agent>> {
    use futures_like::buffered;
    let url = url.to_owned();
    buffered(
        tokens.into_iter().map(move |t| {
            let (url, ca) = (url.clone(), ca_pem.to_vec());
            async move { crate::enroll_to(&url, ca, t).await }
        }),
        parallel,
    )
    .await
}

/// Runs futures at most `parallel` at a time, keeping their order.
mod futures_like {
    use std::future::Future;

    pub(super) async fn buffered<T: Send + 'static>(
        futs: impl Iterator<Item = impl Future<Output = anyhow::Result<T>> + Send + 'static>,
        parallel: usize,
    ) -> anyhow::Result<Vec<T>> {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut handles = Vec::new();
        for f in futs {
            let permit = sem.clone().acquire_owned().await?;
            handles.push(tokio::spawn(async move {
                let r = f.await;
                drop(permit);
                r
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await??);
        }
        Ok(out)
    }
}
