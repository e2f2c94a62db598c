//! Delivery over the telemetry stream (mutual TLS), in the order the collector requires:
//!
//! 1. receive the stream's nonce, answer with `DeviceClaims` over it signed by the device key
//!    (re-attestation on every connection);
//! 2. present every outbox batch with a device-key signature over (nonce, batch hash), so
//!    the stream cannot be replayed on another connection while the stored batch bytes stay
//!    identical across resends;
//! 3. renew the client certificate in-band when it nears expiry;
//! 4. wait until the last batch is acknowledged; each `Ack` deletes what it covers.
//!
//! A refusal (bad signature, broken chain, revoked device) ends delivery with the
//! collector's reason.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prost::Message;
use sightline_proto::envelope::{self, CLAIMS_CONTEXT, PRESENT_CONTEXT, RENEW_CONTEXT};
use sightline_proto::pb::{self, telemetry_client::TelemetryClient};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::convert::AGENT_VERSION;
use crate::enroll::now_ms;
use crate::keys::{self, DeviceKey};
use crate::outbox::Outbox;
use crate::state::{Enrollment, StateDir};
use crate::transport;

/// What one delivery achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    pub batches: usize,
    pub through_seq: u64,
    pub renewed: bool,
}

/// How a delivery behaves.
#[derive(Debug, Clone, Copy)]
pub struct DeliverOptions {
    /// Give up if the collector has not acknowledged everything within this time.
    pub timeout: Duration,
    /// Renew the client certificate when it expires within this time.
    pub renew_within: Duration,
}

impl Default for DeliverOptions {
    fn default() -> DeliverOptions {
        DeliverOptions {
            timeout: Duration::from_secs(120),
            renew_within: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

pub async fn deliver(
    state: &StateDir,
    enrollment: &mut Enrollment,
    outbox: &Outbox,
    key: Arc<dyn DeviceKey>,
    opts: DeliverOptions,
) -> anyhow::Result<Delivered> {
    let pending = outbox.pending()?;
    let renew = enrollment.cert_not_after_ms - now_ms() < opts.renew_within.as_millis() as i64;
    let last = pending.last().map(|p| p.last_seq);
    if last.is_none() && !renew {
        return Ok(Delivered::default());
    }
    let ca = state.read("ca.pem")?.context("ca.pem missing from the state dir; re-enroll")?;
    let channel = transport::connect(&enrollment.server_url, &ca, Some(state.client_identity()?)).await?;
    let mut client = TelemetryClient::new(channel);

    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(16);
    let send = |m: pb::agent_message::Msg| {
        let tx = tx.clone();
        async move {
            tx.send(pb::AgentMessage { msg: Some(m) })
                .await
                .map_err(|_| anyhow::anyhow!("collector closed the stream"))
        }
    };
    let refused = |s: tonic::Status| anyhow::anyhow!("collector refused: {}", transport::status_message(&s));

    let result = tokio::time::timeout(opts.timeout, async {
        let mut responses = client
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(refused)?
            .into_inner();
        let nonce = match responses.next().await {
            Some(Ok(pb::CollectorMessage { msg: Some(pb::collector_message::Msg::Challenge(c)) })) => c.nonce,
            Some(Err(s)) => return Err(refused(s)),
            _ => anyhow::bail!("collector did not open the stream with a challenge"),
        };
        // Signing (milliseconds per signature on a TPM), reading the outbox and the device's
        // own facts all block: prepare every message on a blocking thread, then stream them.
        let (k, id, n) = (key.clone(), enrollment.device_id.clone(), nonce.clone());
        let paths: Vec<std::path::PathBuf> = pending.iter().map(|p| p.path.clone()).collect();
        let (claims, presented, renewal) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let claims = claims(&id, &n, k.as_ref())?;
            let presented = paths
                .iter()
                .map(|p| present(crate::outbox::read_batch(p)?, &n, k.as_ref()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let renewal = if renew {
                let (key_pem, spki) = keys::new_tls_key_pem()?;
                let mut msg = RENEW_CONTEXT.to_vec();
                msg.extend(envelope::renew_message(&n, &spki));
                Some((key_pem, pb::RenewRequest { signature: k.sign(&msg)?, tls_key_spki: spki }))
            } else {
                None
            };
            Ok((claims, presented, renewal))
        })
        .await??;
        send(pb::agent_message::Msg::Claims(claims)).await?;
        for b in presented {
            send(pb::agent_message::Msg::Batch(b)).await?;
        }
        let mut next_identity = None;
        if let Some((key_pem, request)) = renewal {
            send(pb::agent_message::Msg::Renew(request)).await?;
            next_identity = Some(key_pem);
        }

        let mut delivered = Delivered::default();
        let done =
            |d: &Delivered, waiting_cert: bool| !waiting_cert && last.is_none_or(|l| d.through_seq >= l);
        while let Some(m) = responses.next().await {
            match m.map_err(refused)?.msg {
                Some(pb::collector_message::Msg::Ack(ack)) => {
                    delivered.batches += outbox.ack(ack.through_seq)?;
                    delivered.through_seq = ack.through_seq;
                    tracing::debug!(through_seq = ack.through_seq, "Collector acknowledged.");
                }
                Some(pb::collector_message::Msg::Certificate(c)) => {
                    let key_pem =
                        next_identity.take().context("collector sent a certificate nobody asked for")?;
                    state.install_identity(c.certificate_pem.as_bytes(), key_pem.as_bytes())?;
                    enrollment.cert_not_after_ms = c.not_after_ms;
                    state.write("enrollment.json", &serde_json::to_vec_pretty(&*enrollment)?, false)?;
                    delivered.renewed = true;
                    tracing::info!(not_after_ms = c.not_after_ms, "Client certificate renewed.");
                }
                Some(pb::collector_message::Msg::SlowDown(s)) => {
                    tracing::info!(
                        retry_after_ms = s.retry_after_ms,
                        "Collector asked the agent to slow down."
                    );
                }
                Some(pb::collector_message::Msg::Directive(_)) => {
                    tracing::info!("Directive received; this agent runs in report mode and takes no action.");
                }
                Some(pb::collector_message::Msg::Challenge(_)) | None => {}
            }
            if done(&delivered, next_identity.is_some()) {
                return Ok(delivered);
            }
        }
        anyhow::bail!("collector closed the stream before acknowledging everything")
    })
    .await;
    drop(tx);
    match result {
        Ok(r) => r,
        Err(_) => anyhow::bail!("collector did not acknowledge everything within {:?}", opts.timeout),
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

/// This device's claims for one stream, signed by the device key.
pub fn claims(device_id: &str, nonce: &[u8], key: &dyn DeviceKey) -> anyhow::Result<pb::SignedClaims> {
    let facts = crate::scan::live_facts()?;
    let payload = pb::DeviceClaims {
        device_id: device_id.to_owned(),
        stream_nonce: nonce.to_vec(),
        hostname: facts.device.hostname,
        os: facts.device.os.as_str().to_owned(),
        os_version: facts.device.os_version,
        agent_version: AGENT_VERSION.to_owned(),
        serial: facts.serial,
        machine_id: facts.machine_id,
        boot_id: facts.boot_id,
        logged_in_users: Vec::new(),
        claimed_at_ms: now_ms(),
    }
    .encode_to_vec();
    let mut msg = CLAIMS_CONTEXT.to_vec();
    msg.extend_from_slice(&payload);
    Ok(pb::SignedClaims { signature: key.sign(&msg)?, payload })
}
