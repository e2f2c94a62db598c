//! `Enrollment.Begin` / `Enrollment.Complete`.
//!
//! Begin checks the one-time token (without consuming it) and the device key, and stores a
//! challenge with a fresh nonce. Complete checks the proof of possession over that nonce,
//! issues the client certificate, then consumes the token and creates the device in one
//! transaction — a token can enroll exactly one device, even under concurrent attempts.

use sightline_proto::envelope::{ENROLL_POP_CONTEXT, GENESIS_HASH, enroll_pop_message};
use sightline_proto::p256;
use sightline_proto::pb::{self, enrollment_server::Enrollment};
use tonic::{Request, Response, Status};

use super::{blocking, internal};
use crate::attest;
use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::{Challenge, Device, StoreError, TpmChallenge};

/// How long an agent has between Begin and Complete.
const CHALLENGE_TTL_MS: i64 = 5 * 60 * 1000;

pub struct EnrollmentService {
    pub shared: AppState,
}

/// SHA-256 of a token: tokens are stored hashed, so a database leak enrolls nothing.
pub fn token_hash(token: &str) -> Vec<u8> {
    crate::tokens::hash(token)
}

fn token_status(e: StoreError) -> Status {
    match e {
        StoreError::TokenUnknown
        | StoreError::TokenExpired
        | StoreError::TokenUsed
        | StoreError::TokenRevoked => Status::unauthenticated(e.to_string()),
        StoreError::Revoked(_) => Status::permission_denied(e.to_string()),
        other => internal(other),
    }
}

pub(crate) fn random(n: usize) -> Result<Vec<u8>, Status> {
    crate::tokens::random(n).map_err(|e| Status::internal(e.to_string()))
}

/// Assurance is the collector's judgement from evidence, never the agent's claim: a TPM
/// key (through tpm2-tss or the Windows Platform Crypto Provider) is `hardware_attested`
/// only when its EK certificate chains to a configured root (and activation and
/// certification pass at Complete); a hardware key whose residency is not proven is
/// `hardware_unattested`; a software key is `software`.
fn assurance(backend: pb::KeyBackend, tpm: Option<&TpmChallenge>) -> &'static str {
    match (backend, tpm) {
        (pb::KeyBackend::Software | pb::KeyBackend::Unspecified, _) => "software",
        (pb::KeyBackend::Tpm | pb::KeyBackend::WindowsPcp, Some(t)) if t.ek_trusted => "hardware_attested",
        _ => "hardware_unattested",
    }
}

/// Whether a key of this backend lives in a TPM, so that TPM evidence about it means something.
fn in_tpm(backend: pb::KeyBackend) -> bool {
    matches!(backend, pb::KeyBackend::Tpm | pb::KeyBackend::WindowsPcp)
}

/// MakeCredential's output for the agent: (credential blob, encrypted secret).
type Credential = (Vec<u8>, Vec<u8>);

/// Checks a Begin's key evidence and, for a key in a TPM, prepares the credential its AK
/// must activate. Hardware claims must come with evidence; what it proves decides the level.
/// A key in the TPM through the Windows Platform Crypto Provider is checked exactly as one
/// through tpm2-tss; without evidence it is at most hardware_unattested.
fn tpm_challenge(
    backend: pb::KeyBackend,
    evidence: Option<pb::TpmEvidence>,
    device_key_spki: &[u8],
    ek_roots: &[Vec<u8>],
    ek_allowlist: &[String],
) -> Result<(Option<TpmChallenge>, Credential), Status> {
    match (backend, evidence) {
        (b, Some(ev)) if in_tpm(b) => {
            let evidence = attest::check_evidence(
                &ev.ek_certificate,
                &ev.ek_public,
                &ev.ak_public,
                &ev.device_key_public,
                device_key_spki,
                ek_roots,
                ek_allowlist,
            )
            .map_err(attest_status)?;
            let secret = random(32)?;
            let modulus = evidence.ek.rsa_modulus().unwrap_or_default().to_vec();
            let credential = attest::makecred::make_credential(&modulus, &evidence.ak.name(), &secret)
                .map_err(attest_status)?;
            let tpm = TpmChallenge {
                secret,
                ek_public: ev.ek_public,
                ak_public: ev.ak_public,
                device_key_public: ev.device_key_public,
                ek_trusted: evidence.ek_trusted,
            };
            Ok((Some(tpm), credential))
        }
        (pb::KeyBackend::Tpm, None) => Err(Status::invalid_argument(
            "a TPM key must come with TPM evidence (EK, AK and key public area)",
        )),
        (_, Some(_)) => Err(Status::invalid_argument("TPM evidence was sent for a key that is not in a TPM")),
        (_, None) => Ok((None, (Vec::new(), Vec::new()))),
    }
}

fn attest_status(e: attest::AttestError) -> Status {
    match e {
        attest::AttestError::Malformed(m) => Status::invalid_argument(format!("TPM evidence: {m}")),
        attest::AttestError::Rejected(m) => Status::permission_denied(format!("TPM attestation failed: {m}")),
    }
}

fn backend_from_name(name: &str) -> pb::KeyBackend {
    match name {
        "tpm" => pb::KeyBackend::Tpm,
        "secure_enclave" => pb::KeyBackend::SecureEnclave,
        "windows_pcp" => pb::KeyBackend::WindowsPcp,
        _ => pb::KeyBackend::Software,
    }
}

fn backend_name(b: pb::KeyBackend) -> &'static str {
    match b {
        pb::KeyBackend::Software | pb::KeyBackend::Unspecified => "software",
        pb::KeyBackend::Tpm => "tpm",
        pb::KeyBackend::SecureEnclave => "secure_enclave",
        pb::KeyBackend::WindowsPcp => "windows_pcp",
    }
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn begin(
        &self,
        req: Request<pb::BeginEnrollmentRequest>,
    ) -> Result<Response<pb::EnrollmentChallenge>, Status> {
        let req = req.into_inner();
        let hash = token_hash(req.token.trim());
        let now = now_ms();
        let h = hash.clone();
        blocking(&self.shared.store, move |s| s.check_token(&h, now)).await?.map_err(token_status)?;

        let facts = req.facts.ok_or_else(|| Status::invalid_argument("device facts are required"))?;
        let key = req.key.ok_or_else(|| Status::invalid_argument("device key is required"))?;
        p256::point_from_spki(&key.device_key_spki).map_err(|_| {
            Status::invalid_argument("device key must be an ECDSA P-256 SubjectPublicKeyInfo")
        })?;
        if facts.hostname.is_empty() || facts.hostname.len() > 255 {
            return Err(Status::invalid_argument("hostname must be 1-255 bytes"));
        }
        let backend = pb::KeyBackend::try_from(key.backend).unwrap_or(pb::KeyBackend::Unspecified);
        let (tpm, credential) = tpm_challenge(
            backend,
            key.tpm,
            &key.device_key_spki,
            &self.shared.config.ek_roots,
            &self.shared.config.ek_allowlist,
        )?;
        let level = assurance(backend, tpm.as_ref());
        if !self.shared.config.require_assurance.allows(level) {
            return Err(Status::permission_denied(format!(
                "this collector requires assurance {} or better; this {} device key reaches at most {level}",
                self.shared.config.require_assurance.as_str(),
                backend_name(backend)
            )));
        }
        let challenge = Challenge {
            id: hex::encode(random(16)?),
            nonce: random(32)?,
            token_hash: hash,
            expires_at_ms: now + CHALLENGE_TTL_MS,
            hostname: facts.hostname,
            os: facts.os,
            os_version: facts.os_version,
            agent_version: facts.agent_version,
            key_backend: backend_name(backend).to_owned(),
            device_key_spki: key.device_key_spki,
            tpm,
        };
        let reply = pb::EnrollmentChallenge {
            challenge_id: challenge.id.clone(),
            nonce: challenge.nonce.clone(),
            expires_at_ms: challenge.expires_at_ms,
            credential_blob: credential.0,
            encrypted_secret: credential.1,
        };
        blocking(&self.shared.store, move |s| s.put_challenge(&challenge)).await?.map_err(internal)?;
        Ok(Response::new(reply))
    }

    async fn complete(
        &self,
        req: Request<pb::CompleteEnrollmentRequest>,
    ) -> Result<Response<pb::EnrollmentResult>, Status> {
        let req = req.into_inner();
        let id = req.challenge_id.clone();
        let challenge = blocking(&self.shared.store, move |s| s.take_challenge(&id))
            .await?
            .map_err(internal)?
            .ok_or_else(|| {
                Status::failed_precondition("unknown enrollment challenge (already answered?); start again")
            })?;
        let now = now_ms();
        if challenge.expires_at_ms <= now {
            return Err(Status::deadline_exceeded("enrollment challenge expired; start again"));
        }
        p256::point_from_spki(&req.tls_key_spki)
            .map_err(|_| Status::invalid_argument("TLS key must be an ECDSA P-256 SubjectPublicKeyInfo"))?;
        let msg = enroll_pop_message(&challenge.nonce, &challenge.device_key_spki, &req.tls_key_spki);
        p256::verify(&challenge.device_key_spki, ENROLL_POP_CONTEXT, &msg, &req.proof_of_possession)
            .map_err(|_| {
                Status::unauthenticated("proof of possession does not verify with the device key")
            })?;

        // A TPM is identified by its EK's key: enrolling it again keeps its device record.
        let hardware = match &challenge.tpm {
            Some(t) => attest::ek_identities(&t.ek_public).map_err(attest_status)?,
            None => Vec::new(),
        };
        let hardware_id = hardware.first().cloned();
        let hw = hardware.clone();
        let known = blocking(&self.shared.store, move |s| {
            for id in &hw {
                if let Some(d) = s.device_by_hardware_id(id)? {
                    return Ok(Some(d));
                }
            }
            Ok(None)
        })
        .await?
        .map_err(internal)?;
        if let Some(d) = known.as_ref().filter(|d| d.revoked_at_ms.is_some()) {
            return Err(Status::permission_denied(format!("this TPM belongs to revoked device {}", d.id)));
        }
        let device_id = match known {
            Some(d) => d.id,
            None => format!("dev_{}", hex::encode(random(10)?)),
        };
        let cert = self.shared.pki.issue_device_cert(&device_id, &req.tls_key_spki).map_err(internal)?;
        if let Some(tpm) = &challenge.tpm {
            // Evidence was checked at Begin; re-parse the stored areas for the answer's check.
            let evidence = attest::Evidence {
                ek: attest::tpm2::TpmPublic::parse(&tpm.ek_public).map_err(attest_status)?,
                ak: attest::tpm2::TpmPublic::parse(&tpm.ak_public).map_err(attest_status)?,
                device_key: attest::tpm2::TpmPublic::parse(&tpm.device_key_public).map_err(attest_status)?,
                ek_trusted: tpm.ek_trusted,
            };
            attest::check_activation(
                &evidence,
                &tpm.secret,
                &req.activated_secret,
                &challenge.nonce,
                &req.certify_info,
                &req.certify_signature,
            )
            .map_err(attest_status)?;
        }
        let assurance_level = assurance(backend_from_name(&challenge.key_backend), challenge.tpm.as_ref());
        let device = Device {
            id: device_id.clone(),
            hostname: challenge.hostname,
            os: challenge.os,
            os_version: challenge.os_version,
            agent_version: challenge.agent_version,
            key_backend: challenge.key_backend,
            assurance: assurance_level.to_owned(),
            key_spki: challenge.device_key_spki,
            cert_sha256: cert.sha256,
            next_cert_sha256: None,
            enrolled_at_ms: now,
            last_seen_ms: None,
            last_attested_ms: None,
            hardware_id,
            clock_skew_ms: None,
            seq_head: 0,
            head_hash: GENESIS_HASH,
            revoked_at_ms: None,
            users: Vec::new(),
        };
        let assurance = device.assurance.clone();
        let token_hash = challenge.token_hash;
        let hostname = device.hostname.clone();
        let stored = blocking(&self.shared.store, move |s| {
            s.complete_enrollment(&token_hash, &device, &hardware, now)
        })
        .await?
        .map_err(token_status)?;
        tracing::info!(device = %device_id, %hostname, %assurance, "Device enrolled.");
        Ok(Response::new(pb::EnrollmentResult {
            device_id,
            client_certificate_pem: cert.pem,
            client_certificate_not_after_ms: cert.not_after_ms,
            seq_head: stored.seq_head,
            head_hash: if stored.seq_head == 0 { Vec::new() } else { stored.head_hash.to_vec() },
            ca_certificate_pem: self.shared.pki.ca_pem().to_owned(),
            org_fingerprint_key: self.shared.pki.org_fingerprint_key.clone(),
            collector_signing_key_spki: self.shared.pki.signing_key_spki(),
            assurance,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(ek_trusted: bool) -> TpmChallenge {
        TpmChallenge {
            secret: vec![1; 32],
            ek_public: Vec::new(),
            ak_public: Vec::new(),
            device_key_public: Vec::new(),
            ek_trusted,
        }
    }

    #[test]
    fn a_windows_pcp_key_is_attested_exactly_when_a_tpm_key_would_be() {
        let (trusted, untrusted) = (challenge(true), challenge(false));
        for b in [pb::KeyBackend::Tpm, pb::KeyBackend::WindowsPcp] {
            assert!(in_tpm(b));
            assert_eq!(assurance(b, Some(&trusted)), "hardware_attested", "{b:?}");
            assert_eq!(assurance(b, Some(&untrusted)), "hardware_unattested", "{b:?}");
        }
        // Evidence-free hardware keys are at most unattested; their claim is not proof.
        assert_eq!(assurance(pb::KeyBackend::WindowsPcp, None), "hardware_unattested");
        assert_eq!(assurance(pb::KeyBackend::SecureEnclave, None), "hardware_unattested");
        assert_eq!(assurance(pb::KeyBackend::SecureEnclave, Some(&trusted)), "hardware_unattested");
        for b in [pb::KeyBackend::Software, pb::KeyBackend::Unspecified] {
            assert!(!in_tpm(b));
            assert_eq!(assurance(b, Some(&trusted)), "software", "{b:?}");
        }
        assert!(!in_tpm(pb::KeyBackend::SecureEnclave));
    }

    /// The swtpm golden evidence, with its AK replaced by a real Platform Crypto Provider AIK
    /// when `pcp_aik`.
    fn golden(pcp_aik: bool) -> (pb::TpmEvidence, Vec<u8>, Vec<Vec<u8>>) {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/tpm-golden.json")).unwrap();
        let aik: serde_json::Value =
            serde_json::from_str(include_str!("../attest/testdata/windows-pcp-aik.json")).unwrap();
        let h = |v: &serde_json::Value, k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
        let pem = v["ek_roots_pem"].as_str().unwrap();
        let roots = rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes())
            .map(|c: Result<rustls_pki_types::CertificateDer<'static>, _>| c.unwrap().to_vec())
            .collect();
        let evidence = pb::TpmEvidence {
            ek_certificate: h(&v, "ek_certificate"),
            ek_public: h(&v, "ek_public"),
            ak_public: if pcp_aik { h(&aik, "ak_public") } else { h(&v, "ak_public") },
            device_key_public: h(&v, "device_key_public"),
        };
        (evidence, h(&v, "device_key_spki"), roots)
    }

    #[test]
    fn windows_pcp_evidence_goes_through_the_tpm_checks() {
        for pcp_aik in [false, true] {
            let (ev, spki, roots) = golden(pcp_aik);
            let (tpm, (blob, secret)) =
                tpm_challenge(pb::KeyBackend::WindowsPcp, Some(ev.clone()), &spki, &roots, &[]).unwrap();
            let tpm = tpm.unwrap();
            assert!(tpm.ek_trusted);
            assert_eq!(assurance(pb::KeyBackend::WindowsPcp, Some(&tpm)), "hardware_attested");
            assert!(!blob.is_empty() && secret.len() == 256);
            let (tpm, _) =
                tpm_challenge(pb::KeyBackend::WindowsPcp, Some(ev.clone()), &spki, &[], &[]).unwrap();
            assert_eq!(assurance(pb::KeyBackend::WindowsPcp, tpm.as_ref()), "hardware_unattested");

            // The same refusals as for the Linux path: evidence for another key.
            let other = p256::spki_from_point(&[4; 65]).unwrap();
            let e =
                tpm_challenge(pb::KeyBackend::WindowsPcp, Some(ev.clone()), &other, &roots, &[]).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
            // Evidence sent with a key that claims not to be in a TPM is refused.
            for b in [pb::KeyBackend::Software, pb::KeyBackend::SecureEnclave, pb::KeyBackend::Unspecified] {
                let e = tpm_challenge(b, Some(ev.clone()), &spki, &roots, &[]).unwrap_err();
                assert_eq!(e.code(), tonic::Code::InvalidArgument, "{b:?}");
            }
        }
        let (_, spki, roots) = golden(false);
        let (tpm, credential) = tpm_challenge(pb::KeyBackend::WindowsPcp, None, &spki, &roots, &[]).unwrap();
        assert!(tpm.is_none() && credential.0.is_empty());
        assert_eq!(assurance(pb::KeyBackend::WindowsPcp, None), "hardware_unattested");
        let e = tpm_challenge(pb::KeyBackend::Tpm, None, &spki, &roots, &[]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn backend_names_round_trip() {
        for b in [pb::KeyBackend::Tpm, pb::KeyBackend::SecureEnclave, pb::KeyBackend::WindowsPcp] {
            assert_eq!(backend_from_name(backend_name(b)), b);
        }
        assert_eq!(backend_from_name("anything else"), pb::KeyBackend::Software);
    }
}
