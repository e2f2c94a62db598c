//! The delivery link: one long-lived telemetry stream (mutual TLS) that carries sealed
//! batches to the collector as they are recorded, reconnecting with jittered exponential
//! backoff when it drops.
//!
//! On every connection, in the order the collector requires:
//! 1. receive the stream's nonce — or a `SlowDown`, after which the agent stays away for at
//!    least the time it names (reconnect storms after an outage must not knock the collector
//!    over) — and answer with `DeviceClaims` over it signed by the device key;
//! 2. present every unacknowledged batch with a device-key signature over (nonce, batch
//!    hash): stored batch bytes stay identical across resends, the presentation cannot be
//!    replayed on another connection;
//! 3. then, while the stream lives: seal newly recorded observations (at most `window`
//!    batches unacknowledged at a time — flow control), present them, delete what each `Ack`
//!    covers, renew the client certificate in-band when it nears expiry.
//!
//! Stopping (SIGTERM) seals and sends what is recorded and waits up to the grace period for
//! the acknowledgements before closing; whatever is unacknowledged stays on disk.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prost::Message;
use sightline_proto::envelope::{self, CLAIMS_CONTEXT, PRESENT_CONTEXT, RENEW_CONTEXT};
use sightline_proto::pb::{self, telemetry_client::TelemetryClient};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::backoff::Backoff;
use crate::convert::AGENT_VERSION;
use crate::enroll::now_ms;
use crate::keys::{self, DeviceKey};
use crate::recorder::Recorder;
use crate::state::{Enrollment, StateDir};
use crate::transport;

/// How the link behaves.
#[derive(Debug, Clone, Copy)]
pub struct DeliverOptions {
    /// Give up on a connection whose outstanding batches see no acknowledgement this long.
    pub timeout: Duration,
    /// Renew the client certificate when it expires within this time.
    pub renew_within: Duration,
    /// At most this many sealed batches unacknowledged at a time.
    pub window: usize,
    /// On stop, wait at most this long for the last acknowledgements.
    pub grace: Duration,
    /// Reconnect delays: first and largest.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for DeliverOptions {
    fn default() -> DeliverOptions {
        DeliverOptions {
            timeout: Duration::from_secs(120),
            renew_within: Duration::from_secs(30 * 24 * 3600),
            window: 8,
            grace: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Until when the link runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `run --once`: deliver everything recorded, then return; the first failure is returned.
    Drain,
    /// The daemon: hold the stream open, reconnect forever, until stopped.
    Follow,
}

/// What the link achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    pub batches: usize,
    pub through_seq: u64,
    pub renewed: bool,
    pub connections: u32,
}

/// Everything one device's link needs.
pub struct Link {
    pub state: StateDir,
    pub enrollment: Enrollment,
    pub recorder: Arc<Recorder>,
    pub key: Arc<dyn DeviceKey>,
    pub opts: DeliverOptions,
    /// The last delivery error, for health reports.
    pub last_error: Arc<std::sync::Mutex<Option<String>>>,
    /// Where directives from the collector go (the daemon's look loop); None: logged only.
    pub directives: Option<mpsc::Sender<pb::Directive>>,
    /// What the device claims about itself on each stream.
    pub claims: Arc<dyn ClaimsSource>,
    /// Where catalog updates from the collector go (the daemon's look loop); None: logged only.
    pub catalogs: Option<mpsc::Sender<pb::CatalogUpdate>>,
    /// The catalog the agent runs and the last refusal: claimed on each stream and sent
    /// whenever it changes. None: claims say nothing about the catalog.
    pub catalog_status: Option<watch::Receiver<pb::CatalogStatus>>,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("collector asked the agent to slow down for {0:?}")]
    SlowDown(Duration),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

enum End {
    Drained,
    Stopped,
}

impl Link {
    /// Runs until drained ([`Mode::Drain`]) or until `stop` turns true ([`Mode::Follow`]).
    pub async fn run(mut self, mode: Mode, mut stop: watch::Receiver<bool>) -> anyhow::Result<Delivered> {
        let mut backoff = Backoff::new(self.opts.backoff_base, self.opts.backoff_max);
        let mut delivered = Delivered::default();
        loop {
            let outcome = self.session(mode, &mut stop, &mut delivered, &mut backoff).await;
            let wait = match outcome {
                Ok(End::Drained | End::Stopped) => return Ok(delivered),
                Err(e) if mode == Mode::Drain => return Err(anyhow::Error::new(e)),
                Err(LinkError::SlowDown(d)) => {
                    tracing::info!(retry_in = ?d, "Collector asked the agent to slow down.");
                    d.max(backoff.next_delay())
                }
                Err(LinkError::Other(e)) => {
                    let msg = format!("{e:#}");
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %msg, retry_in = ?wait, "Delivery interrupted; observations stay spooled.");
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return Ok(delivered),
            }
        }
    }

    async fn session(
        &mut self,
        mode: Mode,
        stop: &mut watch::Receiver<bool>,
        delivered: &mut Delivered,
        backoff: &mut Backoff,
    ) -> Result<End, LinkError> {
        let recorder = self.recorder.clone();
        let opts = self.opts;
        if mode == Mode::Drain {
            let r = recorder.clone();
            let depth = tokio::task::spawn_blocking(move || r.depth()).await.context("depth task")?;
            if depth.spooled == 0 && depth.unacked_batches == 0 && !self.renewal_due() {
                return Ok(End::Drained);
            }
        }
        let ca = self.state.read("ca.pem")?.context("ca.pem missing from the state dir; re-enroll")?;
        let channel =
            transport::connect(&self.enrollment.server_url, &ca, Some(self.state.client_identity()?)).await?;
        let mut client = TelemetryClient::new(channel);
        let (tx, rx) = mpsc::channel::<pb::AgentMessage>(opts.window + 4);
        let send = |m: pb::agent_message::Msg| {
            let tx = tx.clone();
            async move {
                tx.send(pb::AgentMessage { msg: Some(m) })
                    .await
                    .map_err(|_| anyhow::anyhow!("collector closed the stream"))
            }
        };
        let refused =
            |s: tonic::Status| anyhow::anyhow!("collector refused: {}", transport::status_message(&s));

        let mut responses = tokio::time::timeout(
            opts.timeout,
            client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await
        .context("collector did not open the stream in time")?
        .map_err(refused)?
        .into_inner();
        let first = tokio::time::timeout(opts.timeout, responses.next())
            .await
            .context("collector sent no challenge in time")?;
        let nonce = match first {
            Some(Ok(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Challenge(c)) })) => c.nonce,
            Some(Ok(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::SlowDown(s)) })) => {
                return Err(LinkError::SlowDown(Duration::from_millis(s.retry_after_ms)));
            }
            Some(Err(s)) => return Err(refused(s).into()),
            _ => return Err(anyhow::anyhow!("collector did not open the stream with a challenge").into()),
        };
        delivered.connections += 1;
        let (k, id, n, source) =
            (self.key.clone(), self.enrollment.device_id.clone(), nonce.clone(), self.claims.clone());
        // What the claims say about the catalog counts as sent: only later changes go out.
        let mut catalog_status = self.catalog_status.clone();
        let catalog = catalog_status.as_mut().map(|r| r.borrow_and_update().clone());
        let claims = tokio::task::spawn_blocking(move || {
            let mut facts = source.facts()?;
            if let Some(c) = catalog {
                facts.catalog_version = c.version;
                facts.catalog_error = c.error;
            }
            claims(&id, &n, facts, k.as_ref())
        })
        .await
        .context("claims task")??;
        send(pb::agent_message::Msg::Claims(claims)).await?;

        let mut sent_through = 0u64;
        let mut waiting_cert: Option<String> = None;
        let mut renew_asked = false;
        let mut stopping: Option<Instant> = None;
        let mut last_progress = Instant::now();
        let mut renew_check = tokio::time::interval(Duration::from_secs(3600));
        renew_check.tick().await;
        loop {
            // Seal what was recorded (up to the window) and present whatever this stream has
            // not carried yet. Signing and fsync block: one trip to a blocking thread.
            let (r, k, n, window) = (recorder.clone(), self.key.clone(), nonce.clone(), opts.window);
            let (presented, outstanding, spooled) =
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    r.seal(window, now_ms())?;
                    let mut out = Vec::new();
                    let pending = r.outbox().pending()?;
                    for p in pending.iter().filter(|p| p.last_seq > sent_through) {
                        out.push((p.last_seq, present(r.outbox().load(p)?, &n, k.as_ref())?));
                    }
                    Ok((out, pending.len(), r.depth().spooled))
                })
                .await
                .context("sealing task")??;
            for (last_seq, b) in presented {
                send(pb::agent_message::Msg::Batch(b)).await?;
                sent_through = last_seq;
            }
            if !renew_asked && self.renewal_due() {
                let (k, n) = (self.key.clone(), nonce.clone());
                let (key_pem, request) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let (key_pem, spki) = keys::new_tls_key_pem()?;
                    let mut msg = RENEW_CONTEXT.to_vec();
                    msg.extend(envelope::renew_message(&n, &spki));
                    Ok((key_pem, pb::RenewRequest { signature: k.sign(&msg)?, tls_key_spki: spki }))
                })
                .await
                .context("renewal task")??;
                send(pb::agent_message::Msg::Renew(request)).await?;
                waiting_cert = Some(key_pem);
                renew_asked = true;
            }
            let idle = outstanding == 0 && spooled == 0 && waiting_cert.is_none();
            if idle && (mode == Mode::Drain || stopping.is_some()) {
                return Ok(if mode == Mode::Drain { End::Drained } else { End::Stopped });
            }
            if outstanding == 0 {
                last_progress = Instant::now();
            }
            let stop_deadline = stopping.unwrap_or_else(|| Instant::now() + Duration::from_secs(86400));
            tokio::select! {
                m = responses.next() => {
                    let Some(m) = m else {
                        return Err(anyhow::anyhow!("collector closed the stream").into());
                    };
                    match m.map_err(refused)?.msg {
                        Some(pb::collector_message::Msg::Ack(ack)) => {
                            let r = recorder.clone();
                            let freed = tokio::task::spawn_blocking(move || r.ack(ack.through_seq)).await.context("ack task")??;
                            delivered.batches += freed;
                            delivered.through_seq = delivered.through_seq.max(ack.through_seq);
                            last_progress = Instant::now();
                            backoff.reset();
                            tracing::debug!(through_seq = ack.through_seq, freed, "Collector acknowledged.");
                        }
                        Some(pb::collector_message::Msg::Certificate(c)) => {
                            let key_pem = waiting_cert.take().context("collector sent a certificate nobody asked for")?;
                            self.state.install_identity(c.certificate_pem.as_bytes(), key_pem.as_bytes())?;
                            self.enrollment.cert_not_after_ms = c.not_after_ms;
                            self.state.write("enrollment.json", &serde_json::to_vec_pretty(&self.enrollment).context("encoding enrollment")?, false)?;
                            delivered.renewed = true;
                            tracing::info!(not_after_ms = c.not_after_ms, "Client certificate renewed.");
                        }
                        Some(pb::collector_message::Msg::SlowDown(s)) => {
                            return Err(LinkError::SlowDown(Duration::from_millis(s.retry_after_ms)));
                        }
                        Some(pb::collector_message::Msg::Directive(d)) => match &self.directives {
                            // Never blocks the stream: the look loop drains this queue, and a
                            // directive that does not fit is sent again on the next connection.
                            Some(tx) => if tx.try_send(d).is_err() {
                                tracing::warn!("Directive queue full; the collector resends it on the next connection.");
                            },
                            None => tracing::info!("Directive received; a running agent (not --once) handles directives."),
                        },
                        Some(pb::collector_message::Msg::Catalog(c)) => match &self.catalogs {
                            // As directives: never blocks; the collector sends it again on the
                            // next connection while the agent runs an older version.
                            Some(tx) => if tx.try_send(c).is_err() {
                                tracing::warn!("Catalog queue full; the collector resends it on the next connection.");
                            },
                            None => tracing::info!("Catalog update received; a running agent (not --once) takes updates."),
                        },
                        Some(pb::collector_message::Msg::Challenge(_)) | None => {}
                    }
                }
                status = catalog_changed(&mut catalog_status) => {
                    send(pb::agent_message::Msg::CatalogStatus(status)).await?;
                }
                _ = recorder.recorded.notified(), if stopping.is_none() => {}
                _ = stopped(stop), if stopping.is_none() => {
                    tracing::info!(grace = ?opts.grace, "Stopping: flushing recorded observations.");
                    stopping = Some(Instant::now() + opts.grace);
                }
                _ = tokio::time::sleep_until(stop_deadline), if stopping.is_some() => {
                    tracing::warn!(outstanding, "Grace period over; unacknowledged batches stay on disk for the next start.");
                    return Ok(End::Stopped);
                }
                _ = tokio::time::sleep_until(last_progress + opts.timeout), if outstanding > 0 => {
                    return Err(anyhow::anyhow!("collector did not acknowledge within {:?}", opts.timeout).into());
                }
                _ = renew_check.tick() => {}
            }
        }
    }

    fn renewal_due(&self) -> bool {
        self.enrollment.cert_not_after_ms - now_ms() < self.opts.renew_within.as_millis() as i64
    }
}

/// A stored batch presented on the stream with this nonce.
pub fn present(
    batch: pb::SignedBatch,
    nonce: &[u8],
    key: &dyn DeviceKey,
) -> anyhow::Result<pb::PresentedBatch> {
    let hash = envelope::batch_hash(&batch.payload, &batch.signature);
    let mut msg = PRESENT_CONTEXT.to_vec();
    msg.extend(envelope::presentation_message(nonce, &hash));
    Ok(pb::PresentedBatch { stream_signature: key.sign(&msg)?, batch: Some(batch) })
}

/// What the device says about itself at the start of every stream. Gathered by the caller
/// (a [`ClaimsSource`]): reading the machine is detection's job, not the link's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub serial: Option<String>,
    pub machine_id: Option<String>,
    pub boot_id: Option<String>,
    /// Sorted, without duplicates.
    pub logged_in_users: Vec<String>,
    /// The catalog's version and the last update refused (filled in by the link).
    pub catalog_version: u64,
    pub catalog_error: Option<String>,
}

/// Where a link gets the [`DeviceFacts`] it claims; asked anew on every connection, because
/// the boot id and who is logged in change while the agent runs. Called on a blocking
/// thread.
pub trait ClaimsSource: Send + Sync {
    fn facts(&self) -> anyhow::Result<DeviceFacts>;
}

impl<F> ClaimsSource for F
where
    F: Fn() -> anyhow::Result<DeviceFacts> + Send + Sync,
{
    fn facts(&self) -> anyhow::Result<DeviceFacts> {
        self()
    }
}

/// This device's claims for one stream, signed by the device key.
pub fn claims(
    device_id: &str,
    nonce: &[u8],
    facts: DeviceFacts,
    key: &dyn DeviceKey,
) -> anyhow::Result<pb::SignedClaims> {
    let payload = pb::DeviceClaims {
        device_id: device_id.to_owned(),
        stream_nonce: nonce.to_vec(),
        hostname: facts.hostname,
        os: facts.os,
        os_version: facts.os_version,
        agent_version: AGENT_VERSION.to_owned(),
        serial: facts.serial,
        machine_id: facts.machine_id,
        boot_id: facts.boot_id,
        logged_in_users: facts.logged_in_users,
        claimed_at_ms: now_ms(),
        catalog_version: facts.catalog_version,
        catalog_error: facts.catalog_error,
    }
    .encode_to_vec();
    let mut msg = CLAIMS_CONTEXT.to_vec();
    msg.extend_from_slice(&payload);
    Ok(pb::SignedClaims { signature: key.sign(&msg)?, payload })
}

/// The catalog status once it changes; never, without one (or once its sender is gone).
async fn catalog_changed(rx: &mut Option<watch::Receiver<pb::CatalogStatus>>) -> pb::CatalogStatus {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return r.borrow_and_update().clone();
    }
    std::future::pending().await
}

/// Resolves once `stop` is true; never, if nobody can stop the link any more.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: drop it here.
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
