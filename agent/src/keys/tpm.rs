//! The TPM 2.0 backend (Linux, `tpm` feature): an ECDSA P-256 signing key created inside
//! the TPM under the owner hierarchy's storage root key, non-exportable
//! (`fixedTPM | fixedParent | sensitiveDataOrigin`).
//!
//! The TPM wraps the private half; the wrapped blob (`tpm/device.priv`) and public area
//! (`tpm/device.pub`) live in the state dir and are useless off this TPM. The SRK is
//! re-derived from the standard template at every start. A blob that no longer loads
//! (the TPM was cleared or swapped) is reported as [`KeyError::Stale`]: the device must
//! re-enroll, never silently get a new identity.
//!
//! `tss_esapi::Context` is not `Send`, and TPM commands are synchronous and slow on real
//! chips, so one thread owns the context and serves requests in order.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, mpsc};

use sightline_proto::p256;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey, ak, ek};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{AuthHandle, KeyHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, EccScheme, EncryptedSecret, HashScheme, HashcheckTicket, IdObject, Private, Public,
    RsaExponent, Signature, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::utils::{create_restricted_decryption_rsa_public, create_unrestricted_signing_ecc_public};
use tss_esapi::{Context, TctiNameConf};

use super::der::{der_signature, left_pad};
use super::{Activation, Backend, DeviceKey, KeyError, TpmEvidence};

type Reply<T> = mpsc::SyncSender<Result<T, KeyError>>;

/// Work for the TPM thread.
enum Request {
    Sign(Vec<u8>, Reply<Vec<u8>>),
    Evidence(Reply<TpmEvidence>),
    Activate { blob: Vec<u8>, secret: Vec<u8>, nonce: Vec<u8>, reply: Reply<Activation> },
}

pub struct TpmKey {
    requests: Mutex<mpsc::Sender<Request>>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKey").field("key_id", &p256::key_id(&self.spki)).finish_non_exhaustive()
    }
}

fn tpm_err(what: &str) -> impl Fn(tss_esapi::Error) -> KeyError + '_ {
    move |e| KeyError::Unavailable(format!("TPM {what}: {e}"))
}

impl TpmKey {
    /// Opens (creating on first use) the device key in the TPM named by `tcti`.
    pub fn open(state_dir: &Path, tcti: &str) -> Result<TpmKey, KeyError> {
        let conf = TctiNameConf::from_str(tcti)
            .map_err(|e| KeyError::Unavailable(format!("bad TCTI {tcti:?}: {e}")))?;
        let dir = state_dir.join("tpm");
        let (init_tx, init_rx) = mpsc::sync_channel(1);
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || match Worker::open(conf, &dir) {
                Ok(mut w) => {
                    if init_tx.send(Ok(w.spki.clone())).is_ok() {
                        // Ends when every TpmKey handle is dropped.
                        // A send fails only if the caller gave up waiting; nothing to do then.
                        while let Ok(req) = rx.recv() {
                            match req {
                                Request::Sign(msg, reply) => {
                                    reply.send(w.sign(&msg)).ok();
                                }
                                Request::Evidence(reply) => {
                                    reply.send(w.evidence()).ok();
                                }
                                Request::Activate { blob, secret, nonce, reply } => {
                                    reply.send(w.activate(blob, secret, &nonce)).ok();
                                }
                            }
                        }
                    }
                    w.close();
                }
                Err(e) => {
                    init_tx.send(Err(e)).ok();
                }
            })
            .map_err(|e| KeyError::Unavailable(format!("cannot start the TPM thread: {e}")))?;
        let spki = init_rx.recv().map_err(|_| KeyError::Unavailable("TPM thread ended".into()))??;
        Ok(TpmKey { requests: Mutex::new(tx), spki })
    }
}

impl DeviceKey for TpmKey {
    fn public_key_spki(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.ask(|reply| Request::Sign(msg.to_vec(), reply))
    }

    fn backend(&self) -> Backend {
        Backend::Tpm
    }

    fn tpm_evidence(&self) -> Result<Option<TpmEvidence>, KeyError> {
        self.ask(Request::Evidence).map(Some)
    }

    fn activate(&self, blob: &[u8], secret: &[u8], nonce: &[u8]) -> Result<Activation, KeyError> {
        self.ask(|reply| Request::Activate {
            blob: blob.to_vec(),
            secret: secret.to_vec(),
            nonce: nonce.to_vec(),
            reply,
        })
    }
}

impl TpmKey {
    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, KeyError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let ended = || KeyError::Unavailable("TPM thread ended".into());
        self.requests.lock().map_err(|_| KeyError::Sign)?.send(request(reply)).map_err(|_| ended())?;
        answer.recv().map_err(|_| ended())?
    }
}

/// The thread that owns the TPM context.
struct Worker {
    ctx: Context,
    key: KeyHandle,
    public: Public,
    spki: Vec<u8>,
    /// The AK created for the enrollment in progress.
    ak: Option<(Private, Public)>,
}

impl Worker {
    fn open(conf: TctiNameConf, dir: &Path) -> Result<Worker, KeyError> {
        let mut ctx = Context::new(conf).map_err(tpm_err("connect"))?;
        let srk_public = create_restricted_decryption_rsa_public(
            SymmetricDefinitionObject::AES_128_CFB,
            RsaKeyBits::Rsa2048,
            RsaExponent::default(),
        )
        .map_err(tpm_err("SRK template"))?;
        let srk = ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, srk_public, None, None, None, None)
            })
            .map_err(tpm_err("create SRK"))?
            .key_handle;
        let (private, public) = match read_blobs(dir)? {
            Some(blobs) => blobs,
            None => {
                let template = create_unrestricted_signing_ecc_public(
                    EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                    EccCurve::NistP256,
                )
                .map_err(tpm_err("key template"))?;
                let created = ctx
                    .execute_with_nullauth_session(|c| c.create(srk, template, None, None, None, None))
                    .map_err(tpm_err("create device key"))?;
                write_blobs(dir, &created.out_private, &created.out_public)?;
                (created.out_private, created.out_public)
            }
        };
        let loaded = ctx.execute_with_nullauth_session(|c| c.load(srk, private, public.clone()));
        // A raw swtpm has no resource manager and few object slots: release the SRK now.
        ctx.flush_context(srk.into()).map_err(tpm_err("flush SRK"))?;
        let key = loaded.map_err(|e| {
            KeyError::Stale(format!(
                "the TPM no longer accepts this device's key ({e}); was the TPM cleared? re-enroll"
            ))
        })?;
        let spki = spki_of(&public)?;
        Ok(Worker { ctx, key, public, spki, ak: None })
    }

    /// The EK (RSA-2048, default template), its certificate, and a fresh AK under it.
    fn evidence(&mut self) -> Result<TpmEvidence, KeyError> {
        // Many TPMs (VMs, some fTPMs) ship without an EK certificate: send none, and the
        // collector can at most record the device as hardware_unattested.
        let ek_certificate = ek::retrieve_ek_pubcert(
            &mut self.ctx,
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        )
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "This TPM has no RSA EK certificate; the device cannot be attested.");
            Vec::new()
        });
        let ek = ek::create_ek_object(&mut self.ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm_err("create EK"))?;
        let result = (|| {
            let (ek_public, _, _) = self.ctx.read_public(ek).map_err(tpm_err("read EK"))?;
            let ak = ak::create_ak(
                &mut self.ctx,
                ek,
                HashingAlgorithm::Sha256,
                SignatureSchemeAlgorithm::EcDsa,
                None,
                DefaultKey,
            )
            .map_err(tpm_err("create AK"))?;
            let evidence = TpmEvidence {
                ek_certificate,
                ek_public: ek_public.marshall().map_err(tpm_err("marshal EK"))?,
                ak_public: ak.out_public.marshall().map_err(tpm_err("marshal AK"))?,
                device_key_public: self.public.marshall().map_err(tpm_err("marshal device key"))?,
            };
            self.ak = Some((ak.out_private, ak.out_public));
            Ok(evidence)
        })();
        self.ctx.flush_context(ek.into()).ok();
        result
    }

    /// ActivateCredential with the EK and AK, then TPM2_Certify of the device key by the AK.
    fn activate(&mut self, blob: Vec<u8>, secret: Vec<u8>, nonce: &[u8]) -> Result<Activation, KeyError> {
        let (ak_private, ak_public) = self
            .ak
            .take()
            .ok_or_else(|| KeyError::Unavailable("no attestation key: call evidence first".into()))?;
        let ek = ek::create_ek_object(&mut self.ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm_err("create EK"))?;
        let ak = match ak::load_ak(&mut self.ctx, ek, None, ak_private, ak_public) {
            Ok(ak) => ak,
            Err(e) => {
                self.ctx.flush_context(ek.into()).ok();
                return Err(tpm_err("load AK")(e));
            }
        };
        let result = self.activate_loaded(ek, ak, blob, secret, nonce);
        self.ctx.flush_context(ak.into()).ok();
        self.ctx.flush_context(ek.into()).ok();
        result
    }

    fn activate_loaded(
        &mut self,
        ek: KeyHandle,
        ak: KeyHandle,
        blob: Vec<u8>,
        secret: Vec<u8>,
        nonce: &[u8],
    ) -> Result<Activation, KeyError> {
        let id_object = IdObject::try_from(blob).map_err(tpm_err("credential blob"))?;
        let encrypted = EncryptedSecret::try_from(secret).map_err(tpm_err("encrypted secret"))?;
        // The EK's policy demands PolicySecret(endorsement) in a policy session.
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tpm_err("start policy session"))?
            .ok_or_else(|| KeyError::Unavailable("TPM returned no policy session".into()))?;
        let (attrs, mask) = SessionAttributesBuilder::new().with_decrypt(true).with_encrypt(true).build();
        let result = (|| {
            self.ctx.tr_sess_set_attributes(session, attrs, mask).map_err(tpm_err("session attributes"))?;
            let policy = PolicySession::try_from(session).map_err(tpm_err("policy session"))?;
            self.ctx
                .execute_with_nullauth_session(|c| {
                    c.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
                .map_err(tpm_err("PolicySecret"))?;
            let recovered = self
                .ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |c| {
                    c.activate_credential(ak, ek, id_object, encrypted)
                })
                .map_err(tpm_err("ActivateCredential"))?;
            let data = Data::try_from(nonce.to_vec()).map_err(tpm_err("nonce"))?;
            let key = self.key;
            let (attest, signature) = self
                .ctx
                .execute_with_sessions(
                    (Some(AuthSession::Password), Some(AuthSession::Password), None),
                    |c| c.certify(key.into(), ak, data, SignatureScheme::Null),
                )
                .map_err(tpm_err("Certify"))?;
            let certify_signature = match signature {
                Signature::EcDsa(s) => der_signature(s.signature_r().value(), s.signature_s().value()),
                _ => return Err(KeyError::Sign),
            };
            Ok(Activation {
                secret: recovered.value().to_vec(),
                certify_info: attest.marshall().map_err(tpm_err("marshal attest"))?,
                certify_signature,
            })
        })();
        self.ctx.flush_context(SessionHandle::from(session).into()).ok();
        result
    }

    fn sign(&mut self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = Digest::try_from(ring::digest::digest(&ring::digest::SHA256, msg).as_ref().to_vec())
            .map_err(tpm_err("digest"))?;
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(tpm_err("hashcheck ticket"))?;
        let key = self.key;
        let sig = self
            .ctx
            .execute_with_nullauth_session(|c| c.sign(key, digest, SignatureScheme::Null, ticket))
            .map_err(tpm_err("sign"))?;
        match sig {
            Signature::EcDsa(s) => Ok(der_signature(s.signature_r().value(), s.signature_s().value())),
            _ => Err(KeyError::Sign),
        }
    }

    fn close(mut self) {
        // Best effort: the process is ending or the key is no longer used.
        self.ctx.flush_context(self.key.into()).ok();
    }
}

fn read_blobs(dir: &Path) -> Result<Option<(Private, Public)>, KeyError> {
    let (privp, pubp) = (dir.join("device.priv"), dir.join("device.pub"));
    let (Ok(private), Ok(public)) = (std::fs::read(&privp), std::fs::read(&pubp)) else {
        return Ok(None);
    };
    let private =
        Private::try_from(private).map_err(|e| KeyError::Corrupt(format!("{}: {e}", privp.display())))?;
    let public =
        Public::unmarshall(&public).map_err(|e| KeyError::Corrupt(format!("{}: {e}", pubp.display())))?;
    Ok(Some((private, public)))
}

fn write_blobs(dir: &Path, private: &Private, public: &Public) -> Result<(), KeyError> {
    let storage =
        |p: PathBuf| move |e: std::io::Error| KeyError::Storage(format!("writing {}: {e}", p.display()));
    std::fs::create_dir_all(dir).map_err(storage(dir.to_owned()))?;
    let public = public.marshall().map_err(tpm_err("marshal public area"))?;
    crate::state::write_atomic(&dir.join("device.pub"), &public, false)
        .map_err(storage(dir.join("device.pub")))?;
    crate::state::write_atomic(&dir.join("device.priv"), private.value(), true)
        .map_err(storage(dir.join("device.priv")))
}

/// The key's SubjectPublicKeyInfo, from the TPM public area's ECC point.
fn spki_of(public: &Public) -> Result<Vec<u8>, KeyError> {
    let Public::Ecc { unique, .. } = public else {
        return Err(KeyError::Corrupt("TPM device key is not an ECC key".into()));
    };
    let mut point = vec![0x04];
    point.extend(left_pad(unique.x().value())?);
    point.extend(left_pad(unique.y().value())?);
    p256::spki_from_point(&point).map_err(|e| KeyError::Corrupt(e.to_string()))
}
