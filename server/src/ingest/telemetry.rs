//! `Telemetry.Stream`: re-attestation, then signed batches in and acknowledgements out.
//!
//! 1. The TLS client certificate identifies the device (by the SHA-256 recorded at
//!    enrollment or renewal); revoked devices and devices below `--require-assurance` are
//!    refused.
//! 2. The collector sends a fresh nonce; the agent must answer with `DeviceClaims` naming
//!    that nonce, signed by its device key, before anything else. The claims are stored.
//! 3. Each batch must verify under the device's enrolled key, name the device, continue its
//!    sequence and link to its chain head (decided atomically by the store), and be
//!    *presented* with a device-key signature over this stream's nonce and the batch hash,
//!    so a recorded stream cannot be replayed on another connection.
//! 4. While the stream is open, one watcher per process re-reads the devices every
//!    `revocation_poll` and cuts the streams of revoked devices and replaced certificates
//!    (`directives::watch_standing`).
//! 5. Once the device has attested, every directive it has not answered yet is sent, and
//!    again whenever the dispatcher rings (see `directives`); so is the installed detection
//!    catalog if the device runs an older version (claims, then the agent's `CatalogStatus`
//!    reports say which), and again whenever a newer one is installed (`catalog::served`).
//!
//! The first refusal ends the stream with a status saying why.

use std::pin::Pin;

use prost::Message;
use sightline_proto::envelope::{self, CLAIMS_CONTEXT, EnvelopeError, PRESENT_CONTEXT, RENEW_CONTEXT};
use sightline_proto::p256::{self, KeyError};
use sightline_proto::pb::{self, telemetry_server::Telemetry};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::admission::{Admission, Admit, PerCert};
use super::convert::{inventory, record_received};
use super::{blocking, internal};
use crate::catalog::served::Served;
use crate::clock::now_ms;
use crate::pki::cert_sha256;
use crate::state::AppState;
use crate::store::{CatalogStatus, ClaimsRecord, Device, IngestBatch, IngestOutcome, StoreError};

pub struct TelemetryService {
    pub shared: AppState,
    admission: std::sync::Arc<Admission>,
    per_cert: std::sync::Arc<PerCert>,
}

impl TelemetryService {
    pub fn new(shared: AppState) -> TelemetryService {
        let c = &shared.config;
        let admission = std::sync::Arc::new(Admission::new(c.max_streams, c.stream_rate, c.slow_down));
        // Twenty streams at once, then one every two seconds, per certificate.
        let per_cert = std::sync::Arc::new(PerCert::new(0.5, 20.0));
        TelemetryService { shared, admission, per_cert }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::CollectorMessage, Status>> + Send>>;
type Reply = Result<pb::CollectorMessage, Status>;

fn envelope_status(e: EnvelopeError) -> Status {
    match e {
        EnvelopeError::Key(KeyError::BadSignature) => {
            Status::unauthenticated("batch signature does not verify with the device key")
        }
        other => Status::invalid_argument(format!("malformed batch: {other}")),
    }
}

type PeerCerts = std::sync::Arc<Vec<rustls_pki_types::CertificateDer<'static>>>;

/// The TLS client's certificates and the guarded connection the request came on (None for
/// a connection served some other way).
fn peer<T>(req: &Request<T>) -> (Option<PeerCerts>, Option<std::sync::Arc<crate::listen::ConnState>>) {
    use tonic::transport::server::TlsConnectInfo;
    match req.extensions().get::<TlsConnectInfo<crate::listen::ConnInfo>>() {
        Some(i) => (i.peer_certs(), Some(i.get_ref().0.clone())),
        None => (req.peer_certs(), None),
    }
}

fn msg(m: pb::collector_message::Msg) -> pb::CollectorMessage {
    pb::CollectorMessage { msg: Some(m) }
}

#[tonic::async_trait]
impl Telemetry for TelemetryService {
    type StreamStream = ResponseStream;

    async fn stream(
        &self,
        req: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        // Who is asking comes first, and costs nothing: the TLS layer has already checked
        // that a presented certificate chains to this collector's CA. A client without one
        // is turned away before it can spend an admission token or a database read, so
        // anonymous connections cannot make enrolled agents wait.
        let (certs, conn) = peer(&req);
        let Some(cert) = certs.and_then(|c| c.first().map(|c| cert_sha256(c.as_ref()))) else {
            self.shared.metrics.refuse("no_certificate");
            return Err(Status::unauthenticated(
                "a device client certificate is required; enroll this agent first",
            ));
        };
        // One certificate cannot open streams in a loop either (each costs an admission token
        // and a database read), nor hold more than a couple that have not attested yet.
        if !self.per_cert.allow(&cert) {
            self.shared.metrics.refuse("certificate_rate");
            let m = msg(pb::collector_message::Msg::SlowDown(pb::SlowDown {
                retry_after_ms: self.shared.config.slow_down.as_millis() as u64,
            }));
            return Ok(Response::new(Box::pin(tokio_stream::once(Ok(m)))));
        }
        let Some(pending) = self.shared.dispatch.pending(&cert) else {
            self.shared.metrics.refuse("too_many_pending_streams");
            return Err(Status::resource_exhausted(
                "this device already has streams waiting for their signed claims",
            ));
        };
        let permit = match self.admission.admit() {
            Admit::Yes(p) => p,
            Admit::SlowDown(d) => {
                tracing::debug!(retry_after = ?d, open = self.admission.open_streams(), "Stream turned away: slow down.");
                let m = msg(pb::collector_message::Msg::SlowDown(pb::SlowDown {
                    retry_after_ms: d.as_millis() as u64,
                }));
                return Ok(Response::new(Box::pin(tokio_stream::once(Ok(m)))));
            }
        };
        let c = cert.clone();
        let device = blocking(&self.shared.store, move |s| s.device_by_cert(&c))
            .await?
            .map_err(internal)?
            .ok_or_else(|| {
                self.shared.metrics.refuse("unknown_device");
                Status::unauthenticated("client certificate does not belong to an enrolled device")
            })?;
        if device.revoked_at_ms.is_some() {
            self.shared.metrics.refuse("revoked_device");
            return Err(Status::permission_denied(format!("device {} is revoked", device.id)));
        }
        let required = self.shared.config.require_assurance;
        if !required.allows(&device.assurance) {
            return Err(Status::permission_denied(format!(
                "this collector requires assurance {} or better; device {} is {}",
                required.as_str(),
                device.id,
                device.assurance
            )));
        }

        let nonce = super::enrollment::random(32)?;
        let (tx, rx) = mpsc::channel(16);
        // The channel is new and bounded at 16: the first send cannot fail or wait.
        tx.try_send(Ok(msg(pb::collector_message::Msg::Challenge(pb::StreamChallenge {
            nonce: nonce.clone(),
        }))))
        .map_err(|_| Status::internal("stream setup failed"))?;
        let stream = StreamTask {
            shared: self.shared.clone(),
            device,
            cert_sha256: cert,
            nonce,
            attested: false,
            registration: None,
            sent: Default::default(),
            catalog: self.shared.catalog.subscribe(),
            catalog_running: 0,
            catalog_sent: 0,
            tx,
            pending: Some(pending),
            setting_up: conn.as_ref().map(|c| c.busy()),
            conn,
            on_conn: None,
            _permit: permit,
        };
        let span = tracing::info_span!("stream", device = %stream.device.id);
        tokio::spawn(stream.run(req.into_inner()).instrument(span));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// One device's open stream.
struct StreamTask {
    shared: AppState,
    device: Device,
    cert_sha256: String,
    nonce: Vec<u8>,
    attested: bool,
    /// Set once attested: where the dispatcher rings when there are directives.
    registration: Option<crate::directives::Registration>,
    /// Directives sent on this stream (each is sent once per stream).
    sent: std::collections::HashSet<String>,
    /// The installed catalog (`catalog::served`), followed while the stream lives.
    catalog: tokio::sync::watch::Receiver<Option<std::sync::Arc<Served>>>,
    /// The catalog version the device runs (claims, then its status reports) and the last
    /// one sent on this stream: each version is sent once per stream, and only to a device
    /// running an older one.
    catalog_running: u64,
    catalog_sent: u64,
    tx: mpsc::Sender<Reply>,
    /// Held until the claims verify (see `Dispatch::pending`).
    pending: Option<crate::directives::Pending>,
    /// The connection this stream came on (`listen`): busy while the stream sets up (so a
    /// slow database does not read as an idle client), then held as attested while the
    /// stream lives, which lifts the connection's idle and lifetime bounds.
    conn: Option<std::sync::Arc<crate::listen::ConnState>>,
    setting_up: Option<crate::listen::Busy>,
    on_conn: Option<crate::listen::Attested>,
    /// This stream's place under `--max-streams`, released when it ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl StreamTask {
    async fn run(mut self, mut inbound: Streaming<pb::AgentMessage>) {
        tracing::debug!("Stream opened.");
        let claims_deadline = tokio::time::sleep(self.shared.config.claims_timeout);
        tokio::pin!(claims_deadline);
        loop {
            let reply = tokio::select! {
                m = inbound.next() => match m {
                    Some(Ok(m)) => match self.handle(m).await {
                        Ok(Some(reply)) => Ok(reply),
                        Ok(None) => continue,
                        Err(s) => Err(s),
                    },
                    // A message the codec refused (too large, malformed, a bad compression
                    // flag) ends the stream with that status, so the agent learns why; a
                    // client that went away (a reset) just ends it.
                    Some(Err(s)) if matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::Internal | tonic::Code::InvalidArgument) => {
                        self.shared.metrics.refuse("bad_message");
                        Err(Status::new(s.code(), format!("agent message refused: {}", s.message())))
                    }
                    Some(Err(s)) => {
                        tracing::debug!(status = %s, "Agent stream ended with an error.");
                        break;
                    }
                    None => break,
                },
                reason = cut(&self.registration) => Err(reason),
                _ = &mut claims_deadline, if !self.attested => {
                    Err(Status::deadline_exceeded("no signed device claims within the time allowed"))
                }
                _ = ring(&self.registration) => match self.send_directives().await {
                    Ok(()) => continue,
                    Err(s) => Err(s),
                },
                _ = catalog_changed(&mut self.catalog), if self.registration.is_some() => match self.send_catalog().await {
                    Ok(()) => continue,
                    Err(s) => Err(s),
                },
                _ = self.shared.stopping.cancelled() => {
                    tracing::debug!("Stream ended: collector shutting down.");
                    Err(Status::unavailable("the collector is shutting down; reconnect"))
                }
            };
            let stop = reply.is_err();
            if let Err(s) = &reply
                && s.code() != tonic::Code::Unavailable
            {
                tracing::warn!(code = ?s.code(), reason = s.message(), "Stream refused.");
            }
            if self.tx.send(reply).await.is_err() || stop {
                break;
            }
            if self.attested && self.registration.is_none() {
                // Right after the claims' ack: register, then send what is already waiting
                // (in that order, so nothing issued in between is missed).
                let (registration, replaced) =
                    self.shared.dispatch.register(&self.device.id, &self.cert_sha256);
                self.registration = Some(registration);
                if replaced > 0 {
                    self.shared.metrics.streams_replaced.inc_by(replaced as u64);
                    tracing::info!(
                        replaced,
                        "Older stream of this device ended: one live stream per device."
                    );
                }
                if let Err(s) = self.send_directives().await {
                    tracing::warn!(reason = s.message(), "Could not send directives.");
                    break;
                }
                if let Err(s) = self.send_catalog().await {
                    tracing::warn!(reason = s.message(), "Could not send the catalog.");
                    break;
                }
            }
        }
        tracing::debug!("Stream closed.");
    }

    /// Sends the device's unanswered directives this stream has not carried yet, exactly as
    /// signed and stored.
    async fn send_directives(&mut self) -> Result<(), Status> {
        let id = self.device.id.clone();
        let open = blocking(&self.shared.store, move |s| s.open_directives(&id, now_ms()))
            .await?
            .map_err(internal)?;
        for d in open {
            if self.sent.contains(&d.id) {
                continue;
            }
            let m = msg(pb::collector_message::Msg::Directive(pb::Directive {
                payload: d.payload,
                signature: d.signature,
            }));
            if self.tx.send(Ok(m)).await.is_err() {
                return Err(Status::cancelled("stream closed"));
            }
            tracing::info!(directive = %d.id, action = %d.action, connector = %d.connector_key, "Directive sent.");
            self.shared.metrics.directives_sent.inc();
            let did = d.id.clone();
            blocking(&self.shared.store, move |s| s.mark_directive_sent(&did, now_ms()))
                .await?
                .map_err(internal)?;
            self.sent.insert(d.id);
        }
        Ok(())
    }

    /// Sends the installed catalog if the device runs an older one and this stream has not
    /// carried it yet, exactly as stored (the agent verifies it).
    async fn send_catalog(&mut self) -> Result<(), Status> {
        let Some(c) = self.catalog.borrow_and_update().clone() else { return Ok(()) };
        if c.version <= self.catalog_running || c.version <= self.catalog_sent {
            return Ok(());
        }
        let m = msg(pb::collector_message::Msg::Catalog(c.update.clone()));
        if self.tx.send(Ok(m)).await.is_err() {
            return Err(Status::cancelled("stream closed"));
        }
        self.catalog_sent = c.version;
        tracing::info!(version = c.version, running = self.catalog_running, "Catalog sent.");
        Ok(())
    }

    /// What the agent says about its catalog after taking or refusing an update: stored on
    /// the device, nothing sent back.
    async fn catalog_status(&mut self, c: pb::CatalogStatus) -> Result<(), Status> {
        self.catalog_running = c.version;
        let status = catalog_status(c.version, c.error);
        match &status.error {
            Some(e) => tracing::warn!(running = c.version, error = %e, "Device refused a catalog update."),
            None => tracing::info!(version = c.version, "Device runs the catalog."),
        }
        let (id, at) = (self.device.id.clone(), now_ms());
        blocking(&self.shared.store, move |s| s.record_catalog_status(&id, &status, at))
            .await?
            .map_err(internal)
    }

    /// The device may have been revoked (by the CLI, another process) since the stream opened.
    /// `None`: the message needs no answer.
    async fn handle(&mut self, m: pb::AgentMessage) -> Result<Option<pb::CollectorMessage>, Status> {
        use pb::agent_message::Msg;
        match m.msg {
            Some(Msg::Claims(c)) if !self.attested => self.claims(c).await.map(Some),
            Some(Msg::Claims(_)) => {
                Err(Status::failed_precondition("device claims were already given on this stream"))
            }
            None => Err(Status::invalid_argument("empty agent message")),
            Some(_) if !self.attested => Err(Status::failed_precondition(
                "signed device claims over this stream's nonce must come first",
            )),
            Some(Msg::Batch(b)) => self.batch(b).await.map(Some),
            Some(Msg::Renew(r)) => self.renew(r).await.map(Some),
            Some(Msg::CatalogStatus(c)) => self.catalog_status(c).await.map(|()| None),
        }
    }

    async fn claims(&mut self, c: pb::SignedClaims) -> Reply {
        if c.payload.len() > MAX_CLAIMS_BYTES {
            self.shared.metrics.refuse("claims_too_large");
            return Err(Status::invalid_argument(format!(
                "device claims are {} bytes, more than the {MAX_CLAIMS_BYTES} allowed",
                c.payload.len()
            )));
        }
        p256::verify(&self.device.key_spki, CLAIMS_CONTEXT, &c.payload, &c.signature).map_err(|_| {
            self.shared.metrics.refuse("claims_signature");
            Status::unauthenticated("device claims signature does not verify with the device key")
        })?;
        let claims = pb::DeviceClaims::decode(c.payload.as_slice())
            .map_err(|e| Status::invalid_argument(format!("malformed device claims: {e}")))?;
        if claims.device_id != self.device.id {
            return Err(Status::permission_denied("device claims name another device"));
        }
        if claims.stream_nonce != self.nonce {
            self.shared.metrics.refuse("claims_replayed");
            return Err(Status::unauthenticated("device claims are not for this stream's nonce (replayed?)"));
        }
        check_claims_size(&claims)?;
        if self.device.cert_sha256 != self.cert_sha256 {
            // First use of a renewed certificate. It becomes the device's only accepted one
            // only now that the device key has signed this stream's claims: a certificate
            // alone (say, a copy of a pending one) cannot retire the one in use.
            let (id, c) = (self.device.id.clone(), self.cert_sha256.clone());
            blocking(&self.shared.store, move |s| s.promote_certificate(&id, &c)).await?.map_err(internal)?;
            self.device.cert_sha256 = self.cert_sha256.clone();
            tracing::info!("Renewed client certificate in use; the previous one is retired.");
        }
        let at_ms = now_ms();
        let record = ClaimsRecord {
            device_id: self.device.id.clone(),
            at_ms,
            // An agent that does not stamp its claims says nothing about its clock.
            clock_skew_ms: (claims.claimed_at_ms != 0).then(|| claims.claimed_at_ms.saturating_sub(at_ms)),
            stream_nonce: self.nonce.clone(),
            hostname: claims.hostname.clone(),
            os: claims.os.clone(),
            os_version: claims.os_version.clone(),
            agent_version: claims.agent_version.clone(),
            catalog: catalog_status(claims.catalog_version, claims.catalog_error.clone()),
            claims: serde_json::json!({
                "hostname": claims.hostname, "os": claims.os, "os_version": claims.os_version,
                "agent_version": claims.agent_version, "serial": claims.serial, "machine_id": claims.machine_id,
                "boot_id": claims.boot_id, "logged_in_users": claims.logged_in_users, "claimed_at_ms": claims.claimed_at_ms,
            }),
            payload: c.payload,
            signature: c.signature,
        };
        self.shared.writer.record_claims(record).await.map_err(internal)?;
        self.catalog_running = claims.catalog_version;
        self.attested = true;
        self.pending = None;
        self.setting_up = None;
        if let Some(c) = &self.conn {
            self.on_conn = Some(c.attested());
        }
        tracing::debug!("Device claims verified.");
        // The head as loaded when this stream authenticated, moments ago: at worst slightly
        // behind, which only means the agent resends batches the store acknowledges as duplicates.
        let (through_seq, head_hash) = (self.device.seq_head, self.device.head_hash);
        Ok(ack(through_seq, head_hash))
    }

    async fn batch(&self, presented: pb::PresentedBatch) -> Reply {
        let signed =
            presented.batch.ok_or_else(|| Status::invalid_argument("presented batch holds no batch"))?;
        let hash = envelope::batch_hash(&signed.payload, &signed.signature);
        p256::verify(
            &self.device.key_spki,
            PRESENT_CONTEXT,
            &envelope::presentation_message(&self.nonce, &hash),
            &presented.stream_signature,
        )
        .map_err(|_| {
            self.shared.metrics.refuse("not_presented");
            Status::unauthenticated(
                "batch is not presented for this stream (replayed from another connection?)",
            )
        })?;
        let started = std::time::Instant::now();
        let r = handle_batch(&self.shared, &self.device, signed).await;
        crate::metrics::Metrics::observe(&self.shared.metrics.ingest_seconds, started.elapsed());
        r
    }

    async fn renew(&self, r: pb::RenewRequest) -> Reply {
        p256::point_from_spki(&r.tls_key_spki)
            .map_err(|_| Status::invalid_argument("TLS key must be an ECDSA P-256 SubjectPublicKeyInfo"))?;
        p256::verify(
            &self.device.key_spki,
            RENEW_CONTEXT,
            &envelope::renew_message(&self.nonce, &r.tls_key_spki),
            &r.signature,
        )
        .map_err(|_| Status::unauthenticated("renewal request does not verify with the device key"))?;
        let cert = self.shared.pki.issue_device_cert(&self.device.id, &r.tls_key_spki).map_err(internal)?;
        let (id, new) = (self.device.id.clone(), cert.sha256.clone());
        blocking(&self.shared.store, move |s| s.stage_certificate(&id, &new)).await?.map_err(
            |e| match e {
                StoreError::UnknownDevice(_) => Status::permission_denied("device is revoked"),
                other => internal(other),
            },
        )?;
        tracing::info!(not_after_ms = cert.not_after_ms, "Client certificate renewed.");
        Ok(msg(pb::collector_message::Msg::Certificate(pb::Certificate {
            certificate_pem: cert.pem,
            not_after_ms: cert.not_after_ms,
        })))
    }
}

async fn handle_batch(
    shared: &AppState,
    device: &Device,
    signed: pb::SignedBatch,
) -> Result<pb::CollectorMessage, Status> {
    let m = &shared.metrics;
    if signed.device_id != device.id {
        m.refuse("other_device");
        return Err(Status::permission_denied(format!(
            "batch names device {:?} but this stream is authenticated as {}",
            signed.device_id, device.id
        )));
    }
    let (spki, id) = (device.key_spki.clone(), device.id.clone());
    // Signature checks and decoding are CPU work; keep them off the I/O threads.
    let batch = tokio::task::spawn_blocking(move || {
        let v = envelope::open(&signed, &spki)?;
        let received_at_ms = now_ms();
        let mut clamped = 0u64;
        let observations = v
            .batch
            .observations
            .iter()
            .map(|o| {
                let (r, n) = record_received(o, received_at_ms);
                clamped += u64::from(n);
                r
            })
            .collect();
        let batch = IngestBatch {
            device_id: id,
            first_seq: v.first_seq,
            last_seq: v.last_seq,
            prev_hash: v.prev_hash,
            hash: v.hash,
            received_at_ms,
            observations,
            inventory: inventory(&v.batch),
            payload: signed.payload,
            signature: signed.signature,
        };
        Ok::<_, EnvelopeError>((batch, clamped))
    })
    .await
    .map_err(internal)?
    .map_err(|e| {
        m.refuse(if matches!(e, EnvelopeError::Key(KeyError::BadSignature)) {
            "bad_signature"
        } else {
            "malformed"
        });
        envelope_status(e)
    })?;
    let (batch, clamped) = batch;
    if clamped > 0 {
        m.device_times_clamped.inc_by(clamped);
        tracing::warn!(
            clamped,
            first = batch.first_seq,
            "Device times outside the plausible window (clock wrong?): stored as the receive time, the device's value kept beside it."
        );
    }
    let (first, last) = (batch.first_seq, batch.last_seq);
    let n = batch.observations.len() as u64;
    let outcome = shared.writer.ingest(batch).await;
    let outcome = outcome.map_err(|e| match e {
        StoreError::UnknownDevice(d) => Status::unauthenticated(format!("unknown device {d}")),
        other => internal(other),
    })?;
    match outcome {
        IngestOutcome::Stored { head, head_hash } => {
            tracing::debug!(first, last, "Batch stored.");
            m.batches.get_or_create(&crate::metrics::Outcome { outcome: "stored" }).inc();
            m.observations.inc_by(n);
            Ok(ack(head, head_hash))
        }
        IngestOutcome::Duplicate { head, head_hash } => {
            tracing::info!(first, last, "Duplicate batch acknowledged, not stored again.");
            m.batches.get_or_create(&crate::metrics::Outcome { outcome: "duplicate" }).inc();
            Ok(ack(head, head_hash))
        }
        IngestOutcome::OutOfOrder { expected } => Err({
            m.refuse("out_of_order");
            Status::failed_precondition(format!(
                "batch starts at sequence {first} but the device's next sequence is {expected}"
            ))
        }),
        IngestOutcome::BrokenChain => {
            m.refuse("broken_chain");
            Err(Status::failed_precondition(
                "prev_batch_hash does not match the hash of the device's last stored batch",
            ))
        }
        IngestOutcome::Conflict => {
            m.refuse("conflict");
            Err(Status::failed_precondition(format!(
                "sequence {first}..{last} is already stored with different contents"
            )))
        }
        IngestOutcome::Revoked => {
            m.refuse("revoked_device");
            Err(Status::permission_denied(format!("device {} is revoked", device.id)))
        }
    }
}

/// Largest agent message decoded: a batch's payload is at most
/// `envelope::MAX_PAYLOAD_BYTES` (3 MiB) and the rest of the message is small.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Largest signed claims accepted: real ones are a few hundred bytes, and every stream
/// stores its claims as evidence.
pub const MAX_CLAIMS_BYTES: usize = 8 * 1024;
/// Longest claimed text field (a DNS name is at most 253 bytes).
const MAX_CLAIM_FIELD: usize = 256;
/// Most logged-in accounts a device may list.
const MAX_CLAIM_USERS: usize = 64;

/// Refuses claims whose fields are longer than any real device's.
fn check_claims_size(c: &pb::DeviceClaims) -> Result<(), Status> {
    let fields = [
        ("hostname", Some(&c.hostname)),
        ("os", Some(&c.os)),
        ("os_version", Some(&c.os_version)),
        ("agent_version", Some(&c.agent_version)),
        ("serial", c.serial.as_ref()),
        ("machine_id", c.machine_id.as_ref()),
        ("boot_id", c.boot_id.as_ref()),
    ];
    let long = fields
        .iter()
        .filter_map(|(name, v)| v.filter(|v| v.len() > MAX_CLAIM_FIELD).map(|_| *name))
        .chain(c.logged_in_users.iter().any(|u| u.len() > MAX_CLAIM_FIELD).then_some("logged_in_users"))
        .next();
    if let Some(field) = long {
        return Err(Status::invalid_argument(format!(
            "device claims field {field} is longer than {MAX_CLAIM_FIELD} bytes"
        )));
    }
    if c.logged_in_users.len() > MAX_CLAIM_USERS {
        return Err(Status::invalid_argument(format!(
            "device claims list {} logged-in users, more than {MAX_CLAIM_USERS}",
            c.logged_in_users.len()
        )));
    }
    Ok(())
}

/// Resolves when the installed catalog changes; never if the feed is gone.
async fn catalog_changed(rx: &mut tokio::sync::watch::Receiver<Option<std::sync::Arc<Served>>>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Longest refusal reason stored for a device (the agent bounds its own; this bounds a
/// hostile one).
const MAX_CATALOG_ERROR: usize = 1_000;

/// A device's catalog status as stored: version 0 means the agent did not say.
fn catalog_status(version: u64, error: Option<String>) -> CatalogStatus {
    CatalogStatus {
        version: (version != 0).then_some(version),
        error: error.map(|e| e.chars().take(MAX_CATALOG_ERROR).collect()),
    }
}

/// Resolves when the dispatcher rings this stream; never before it is registered.
async fn cut(r: &Option<crate::directives::Registration>) -> Status {
    match r {
        Some(r) => r.cut.wait().await,
        None => std::future::pending().await,
    }
}

async fn ring(r: &Option<crate::directives::Registration>) {
    match r {
        Some(r) => r.bell.notified().await,
        None => std::future::pending().await,
    }
}

fn ack(through_seq: u64, head_hash: [u8; 32]) -> pb::CollectorMessage {
    pb::CollectorMessage {
        msg: Some(pb::collector_message::Msg::Ack(pb::Ack { through_seq, head_hash: head_hash.to_vec() })),
    }
}
