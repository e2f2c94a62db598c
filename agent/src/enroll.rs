//! Enrollment: one-time token + proof of possession of the device key → device id, client
//! certificate, org fingerprint key. The token is spent once; the key proves itself by signing
//! the collector's nonce (and, with a TPM, by answering a credential challenge).

use anyhow::Context;
use sightline_proto::envelope;
use sightline_proto::pb::{self, enrollment_client::EnrollmentClient};

use crate::convert::AGENT_VERSION;
use crate::keys::{self, Backend, KeyChoice};
use crate::state::{Enrollment, StateDir};
use crate::transport;

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub server: String,
    pub token: String,
    pub ca_pem: Vec<u8>,
    pub key_backend: KeyChoice,
}

pub async fn enroll(state: &StateDir, opts: &EnrollOptions) -> anyhow::Result<Enrollment> {
    let state_path = state.path().to_owned();
    let choice = opts.key_backend;
    // Key stores are synchronous platform APIs (files, Keychain): keep them off the runtime.
    let key: std::sync::Arc<dyn keys::DeviceKey> =
        tokio::task::spawn_blocking(move || keys::open(&state_path, choice)).await??.into();
    // TPM commands are synchronous: evidence, activation and signing run on blocking threads.
    let k = key.clone();
    let evidence = tokio::task::spawn_blocking(move || k.tpm_evidence()).await??;
    let (tls_key_pem, tls_spki) = keys::new_tls_key_pem()?;
    let facts = tokio::task::spawn_blocking(crate::scan::live_facts).await??;

    let channel = transport::connect(&opts.server, &opts.ca_pem, None).await?;
    let mut client = EnrollmentClient::new(channel);
    let spki = key.public_key_spki();
    let challenge = client
        .begin(pb::BeginEnrollmentRequest {
            token: opts.token.clone(),
            facts: Some(pb::DeviceFacts {
                hostname: facts.device.hostname,
                os: facts.device.os.as_str().to_owned(),
                os_version: facts.device.os_version,
                agent_version: AGENT_VERSION.to_owned(),
                serial: facts.serial,
                machine_id: facts.machine_id,
            }),
            key: Some(pb::KeyAttestation {
                backend: backend(key.backend()) as i32,
                device_key_spki: spki.clone(),
                tpm: evidence.map(|e| pb::TpmEvidence {
                    ek_certificate: e.ek_certificate,
                    ek_public: e.ek_public,
                    ak_public: e.ak_public,
                    device_key_public: e.device_key_public,
                }),
            }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("enrollment refused: {}", transport::status_message(&s)))?
        .into_inner();

    let mut msg = envelope::ENROLL_POP_CONTEXT.to_vec();
    msg.extend(envelope::enroll_pop_message(&challenge.nonce, &spki, &tls_spki));
    let (k, blob, secret, nonce) = (
        key.clone(),
        challenge.credential_blob.clone(),
        challenge.encrypted_secret.clone(),
        challenge.nonce.clone(),
    );
    let (pop, activation) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let pop = k.sign(&msg)?;
        // Only a collector that checks TPM evidence sends a credential to activate.
        let activation = if blob.is_empty() { None } else { Some(k.activate(&blob, &secret, &nonce)?) };
        Ok((pop, activation))
    })
    .await??;
    let activation = activation.unwrap_or(keys::Activation {
        secret: Vec::new(),
        certify_info: Vec::new(),
        certify_signature: Vec::new(),
    });
    let result = client
        .complete(pb::CompleteEnrollmentRequest {
            challenge_id: challenge.challenge_id,
            proof_of_possession: pop,
            tls_key_spki: tls_spki,
            activated_secret: activation.secret,
            certify_info: activation.certify_info,
            certify_signature: activation.certify_signature,
        })
        .await
        .map_err(|s| anyhow::anyhow!("enrollment refused: {}", transport::status_message(&s)))?
        .into_inner();
    if result.org_fingerprint_key.len() != 32 {
        anyhow::bail!(
            "collector sent an org fingerprint key of {} bytes, expected 32",
            result.org_fingerprint_key.len()
        );
    }

    let enrollment = Enrollment {
        device_id: result.device_id,
        server_url: opts.server.clone(),
        assurance: result.assurance,
        enrolled_at_ms: now_ms(),
        collector_signing_key: hex::encode(&result.collector_signing_key_spki),
        cert_not_after_ms: result.client_certificate_not_after_ms,
    };
    retire_previous(state)?;
    if result.seq_head > 0 {
        // The same hardware re-enrolled: its device's evidence chain continues, not restarts.
        let head_hash: [u8; 32] = result.head_hash.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!("collector sent a chain head hash of {} bytes", result.head_hash.len())
        })?;
        let head = crate::outbox::ChainHead { next_seq: result.seq_head + 1, head_hash };
        state.write("chain.json", &serde_json::to_vec(&head)?, false)?;
    }
    state.write("ca.pem", result.ca_certificate_pem.as_bytes(), false)?;
    state.write("client.key", tls_key_pem.as_bytes(), true)?;
    state.write("client.pem", result.client_certificate_pem.as_bytes(), false)?;
    state.write("org-fingerprint.key", &result.org_fingerprint_key, true)?;
    // Written last: its presence means every other enrollment file is in place.
    state
        .write("enrollment.json", &serde_json::to_vec_pretty(&enrollment)?, false)
        .context("saving enrollment")?;
    Ok(enrollment)
}

/// A new enrollment is a new device with its own sequence. Batches sealed for the previous
/// device can no longer be delivered (its certificate is being replaced), so they are moved
/// aside under the old device id, kept for inspection rather than deleted, and the chain
/// starts again.
fn retire_previous(state: &StateDir) -> anyhow::Result<()> {
    let outbox = state.file("outbox");
    // A damaged enrollment record must not block the enrollment that replaces it.
    let old = match state.enrollment() {
        Ok(old) => old.map(|e| e.device_id),
        Err(e) if e.is::<crate::state::Damaged>() => {
            tracing::warn!(error = %e, "Re-enrolling over a damaged enrollment record; setting it aside.");
            state.set_aside("enrollment.json")?;
            None
        }
        Err(e) => return Err(e),
    };
    if outbox.exists() {
        let kept = state.file(&format!("outbox.{}", old.as_deref().unwrap_or("previous")));
        let kept = if kept.exists() { state.file(&format!("outbox.previous-{}", now_ms())) } else { kept };
        let pending = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
        std::fs::rename(&outbox, &kept).with_context(|| format!("moving {} aside", outbox.display()))?;
        if pending > 0 {
            tracing::warn!(previous_device = old.as_deref().unwrap_or("unknown"), pending, kept = %kept.display(),
                "Re-enrolling: batches not delivered for the previous device were set aside.");
        }
    }
    match std::fs::remove_file(state.file("chain.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("resetting chain.json"),
        _ => Ok(()),
    }
}

fn backend(b: Backend) -> pb::KeyBackend {
    match b {
        Backend::Software => pb::KeyBackend::Software,
        Backend::Tpm => pb::KeyBackend::Tpm,
        Backend::SecureEnclave => pb::KeyBackend::SecureEnclave,
        Backend::WindowsPcp => pb::KeyBackend::WindowsPcp,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
