//! `Telemetry.Stream`: signed batches in, acknowledgements out.
//!
//! The TLS client certificate identifies the device (by the SHA-256 recorded at
//! enrollment). Each batch must then verify under that device's enrolled key, name that
//! device, continue its sequence and link to its chain head; the store decides the last two
//! atomically. The first refusal ends the stream with a status saying why.

use std::pin::Pin;

use sightline_proto::envelope::{self, EnvelopeError};
use sightline_proto::p256::KeyError;
use sightline_proto::pb::{self, telemetry_server::Telemetry};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::convert::{inventory, record};
use super::{Shared, blocking, internal, now_ms};
use crate::pki::cert_sha256;
use crate::store::{Device, IngestBatch, IngestOutcome, StoreError};

pub struct TelemetryService {
    pub shared: Shared,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::CollectorMessage, Status>> + Send>>;

fn envelope_status(e: EnvelopeError) -> Status {
    match e {
        EnvelopeError::Key(KeyError::BadSignature) => {
            Status::unauthenticated("batch signature does not verify with the device key")
        }
        other => Status::invalid_argument(format!("malformed batch: {other}")),
    }
}

#[tonic::async_trait]
impl Telemetry for TelemetryService {
    type StreamStream = ResponseStream;

    async fn stream(
        &self,
        req: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let cert =
            req.peer_certs().and_then(|c| c.first().map(|c| cert_sha256(c.as_ref()))).ok_or_else(|| {
                Status::unauthenticated("a device client certificate is required; enroll this agent first")
            })?;
        let device = blocking(&self.shared.store, move |s| s.device_by_cert(&cert))
            .await?
            .map_err(internal)?
            .ok_or_else(|| {
                Status::unauthenticated("client certificate does not belong to an enrolled device")
            })?;
        if device.revoked_at_ms.is_some() {
            return Err(Status::permission_denied(format!("device {} is revoked", device.id)));
        }

        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let shared = self.shared.clone();
        let span = tracing::info_span!("stream", device = %device.id);
        tokio::spawn(
            async move {
                tracing::debug!("Stream opened.");
                while let Some(msg) = inbound.next().await {
                    let reply = match msg {
                        Ok(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Batch(b)) }) => {
                            handle_batch(&shared, &device, b).await
                        }
                        Ok(pb::AgentMessage { msg: None }) => {
                            Err(Status::invalid_argument("empty agent message"))
                        }
                        Err(s) => {
                            tracing::debug!(status = %s, "Agent stream ended with an error.");
                            break;
                        }
                    };
                    let stop = reply.is_err();
                    if let Err(s) = &reply {
                        tracing::warn!(code = ?s.code(), reason = s.message(), "Batch refused.");
                    }
                    if tx.send(reply).await.is_err() || stop {
                        break;
                    }
                }
                tracing::debug!("Stream closed.");
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

async fn handle_batch(
    shared: &Shared,
    device: &Device,
    signed: pb::SignedBatch,
) -> Result<pb::CollectorMessage, Status> {
    if signed.device_id != device.id {
        return Err(Status::permission_denied(format!(
            "batch names device {:?} but this stream is authenticated as {}",
            signed.device_id, device.id
        )));
    }
    let spki = device.key_spki.clone();
    // Signature checks are CPU work; keep them off the I/O threads.
    let verified = tokio::task::spawn_blocking(move || envelope::open(&signed, &spki).map(|v| (v, signed)))
        .await
        .map_err(internal)?
        .map_err(envelope_status)?;
    let (v, signed) = verified;
    let batch = IngestBatch {
        device_id: device.id.clone(),
        first_seq: v.first_seq,
        last_seq: v.last_seq,
        prev_hash: v.prev_hash,
        hash: v.hash,
        received_at_ms: now_ms(),
        observations: v.batch.observations.iter().map(record).collect(),
        inventory: inventory(&v.batch),
        payload: signed.payload,
        signature: signed.signature,
    };
    let (first, last) = (batch.first_seq, batch.last_seq);
    let outcome = blocking(&shared.store, move |s| s.ingest(&batch)).await?.map_err(|e| match e {
        StoreError::UnknownDevice(d) => Status::unauthenticated(format!("unknown device {d}")),
        other => internal(other),
    })?;
    match outcome {
        IngestOutcome::Stored { head, head_hash } => {
            tracing::debug!(first, last, "Batch stored.");
            Ok(ack(head, head_hash))
        }
        IngestOutcome::Duplicate { head, head_hash } => {
            tracing::info!(first, last, "Duplicate batch acknowledged, not stored again.");
            Ok(ack(head, head_hash))
        }
        IngestOutcome::OutOfOrder { expected } => Err(Status::failed_precondition(format!(
            "batch starts at sequence {first} but the device's next sequence is {expected}"
        ))),
        IngestOutcome::BrokenChain => Err(Status::failed_precondition(
            "prev_batch_hash does not match the hash of the device's last stored batch",
        )),
        IngestOutcome::Conflict => Err(Status::failed_precondition(format!(
            "sequence {first}..{last} is already stored with different contents"
        ))),
        IngestOutcome::Revoked => Err(Status::permission_denied(format!("device {} is revoked", device.id))),
    }
}

fn ack(through_seq: u64, head_hash: [u8; 32]) -> pb::CollectorMessage {
    pb::CollectorMessage {
        msg: Some(pb::collector_message::Msg::Ack(pb::Ack { through_seq, head_hash: head_hash.to_vec() })),
    }
}
