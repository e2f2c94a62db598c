//! The device key in the TPM through the Microsoft Platform Crypto Provider (CNG/NCrypt).
//!
//! The device key is a persisted ECDSA P-256 machine key the provider creates inside the TPM;
//! the provider never lets its private half out (no migration password is set, so it is not
//! exportable, and its TPM public area says `fixedTPM | fixedParent`, which the collector
//! checks). Its name, derived from the state dir, and its public key are recorded in
//! `pcp-key.json`; a key the provider no longer has, or that is not the recorded one, is
//! [`KeyError::Stale`]: the device must re-enroll, never silently get a new identity.
//!
//! For enrollment the provider makes an RSA-2048 attestation identity key (AIK) and hands out
//! its TPM 2.0 public area (`PCP_TPM12_IDBINDING`), the EK (`PCP_EKPUB`, `PCP_EKCERT`),
//! runs TPM2_ActivateCredential (`PCP_TPM12_IDACTIVATION`) and TPM2_Certify
//! (`NCryptCreateClaim`). The collector checks all of it exactly as for the Linux TPM path.
//!
//! Every function here is one thin FFI call; what the provider returns is parsed in
//! [`super::pcp_blob`], which is portable and tested on Linux.

#![allow(unsafe_code)]

use std::path::Path;
use std::sync::Mutex;

use sightline_proto::p256;
use windows_sys::Win32::Foundation::{NTE_BAD_KEYSET, NTE_NOT_FOUND};
use windows_sys::Win32::Security::Cryptography::{
    BCRYPT_ECCPUBLIC_BLOB, BCRYPT_OPAQUE_KEY_BLOB, BCryptBuffer, BCryptBufferDesc, CERT_CONTEXT,
    CertCloseStore, CertEnumCertificatesInStore, HCERTSTORE, MS_PLATFORM_CRYPTO_PROVIDER,
    NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT, NCRYPT_ECDSA_P256_ALGORITHM, NCRYPT_LENGTH_PROPERTY,
    NCRYPT_MACHINE_KEY_FLAG, NCRYPT_OVERWRITE_KEY_FLAG, NCRYPT_PCP_EKCERT_PROPERTY,
    NCRYPT_PCP_EKNVCERT_PROPERTY, NCRYPT_PCP_EKPUB_PROPERTY, NCRYPT_PCP_IDENTITY_KEY,
    NCRYPT_PCP_KEY_USAGE_POLICY_PROPERTY, NCRYPT_PCP_RSA_EKNVCERT_PROPERTY,
    NCRYPT_PCP_TPM12_IDACTIVATION_PROPERTY, NCRYPT_PCP_TPM12_IDBINDING_PROPERTY, NCRYPT_RSA_ALGORITHM,
    NCRYPT_SILENT_FLAG, NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE, NCRYPTBUFFER_TPM_PLATFORM_CLAIM_NONCE,
    NCRYPTBUFFER_VERSION, NCryptCreateClaim, NCryptCreatePersistedKey, NCryptExportKey, NCryptFinalizeKey,
    NCryptFreeObject, NCryptGetProperty, NCryptOpenKey, NCryptOpenStorageProvider, NCryptSetProperty,
    NCryptSignHash,
};
use windows_sys::core::{HRESULT, PCWSTR};

use super::pcp_blob::{self, PCP_RECORD_FILE, PcpRecord};
use super::{Activation, Backend, DeviceKey, KeyError, TpmEvidence};

/// The AIK's size: RSA-2048, what every TPM 2.0 supports for AIKs.
const AIK_BITS: u32 = 2048;

/// A failed provider call: which one, and its status.
#[derive(Debug, Clone, Copy)]
struct Failure {
    call: &'static str,
    status: HRESULT,
}

impl Failure {
    fn into_key_error(self) -> KeyError {
        KeyError::Unavailable(format!(
            "Platform Crypto Provider: {} failed ({:#010x})",
            self.call, self.status as u32
        ))
    }
}

impl From<Failure> for KeyError {
    fn from(f: Failure) -> KeyError {
        f.into_key_error()
    }
}

fn check(call: &'static str, status: HRESULT) -> Result<(), Failure> {
    if status == 0 { Ok(()) } else { Err(Failure { call, status }) }
}

/// A NUL-terminated UTF-16 string for the wide-character API.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// One NCrypt object (provider or key), freed when dropped.
#[derive(Debug)]
struct Handle(usize);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from the provider and is freed once, here.
        unsafe {
            NCryptFreeObject(self.0);
        }
    }
}

/// The provider's two-call pattern: ask for the size, then fill a buffer of that size.
fn read_sized(
    call: &'static str,
    mut f: impl FnMut(*mut u8, u32, *mut u32) -> HRESULT,
) -> Result<Vec<u8>, Failure> {
    let mut len = 0u32;
    check(call, f(std::ptr::null_mut(), 0, &mut len))?;
    let mut buf = vec![0u8; len as usize];
    check(call, f(buf.as_mut_ptr(), len, &mut len))?;
    buf.truncate(len as usize);
    Ok(buf)
}

fn open_provider() -> Result<Handle, Failure> {
    let mut h = 0usize;
    // SAFETY: `h` outlives the call; the provider name is a static wide string.
    check("NCryptOpenStorageProvider", unsafe {
        NCryptOpenStorageProvider(&mut h, MS_PLATFORM_CRYPTO_PROVIDER, 0)
    })?;
    Ok(Handle(h))
}

fn open_key(prov: &Handle, name: &str) -> Result<Handle, Failure> {
    let name = wide(name);
    let mut h = 0usize;
    // SAFETY: `name` is NUL-terminated and outlives the call, as does `h`.
    check("NCryptOpenKey", unsafe {
        NCryptOpenKey(prov.0, &mut h, name.as_ptr(), 0, NCRYPT_MACHINE_KEY_FLAG | NCRYPT_SILENT_FLAG)
    })?;
    Ok(Handle(h))
}

/// Creates (replacing any of the same name) and finalizes a persisted machine key; `setup`
/// sets its properties before the TPM generates it.
fn create_key(
    prov: &Handle,
    algorithm: PCWSTR,
    name: &str,
    setup: impl FnOnce(&Handle) -> Result<(), Failure>,
) -> Result<Handle, Failure> {
    let name = wide(name);
    let mut h = 0usize;
    // SAFETY: `name` is NUL-terminated and outlives the call; `algorithm` is a static wide
    // string; `h` outlives the call.
    check("NCryptCreatePersistedKey", unsafe {
        NCryptCreatePersistedKey(
            prov.0,
            &mut h,
            algorithm,
            name.as_ptr(),
            0,
            NCRYPT_MACHINE_KEY_FLAG | NCRYPT_OVERWRITE_KEY_FLAG,
        )
    })?;
    let key = Handle(h);
    setup(&key)?;
    // SAFETY: `key` is a key handle not yet finalized.
    check("NCryptFinalizeKey", unsafe { NCryptFinalizeKey(key.0, NCRYPT_SILENT_FLAG) })?;
    Ok(key)
}

fn set_property(h: &Handle, property: PCWSTR, value: &[u8]) -> Result<(), Failure> {
    let len = u32::try_from(value.len()).map_err(|_| Failure { call: "NCryptSetProperty", status: -1 })?;
    // SAFETY: `value` is valid for `len` bytes for the duration of the call.
    check("NCryptSetProperty", unsafe { NCryptSetProperty(h.0, property, value.as_ptr(), len, 0) })
}

fn get_property(h: &Handle, property: PCWSTR) -> Result<Vec<u8>, Failure> {
    read_sized("NCryptGetProperty", |out, cap, len| {
        // SAFETY: `out` is null (size query) or valid for `cap` bytes; `len` is valid.
        unsafe { NCryptGetProperty(h.0, property, out, cap, len, 0) }
    })
}

fn export(key: &Handle, blob_type: PCWSTR) -> Result<Vec<u8>, Failure> {
    read_sized("NCryptExportKey", |out, cap, len| {
        // SAFETY: as for `get_property`; no export key and no parameters.
        unsafe { NCryptExportKey(key.0, 0, blob_type, std::ptr::null(), out, cap, len, 0) }
    })
}

fn sign_hash(key: &Handle, digest: &[u8]) -> Result<Vec<u8>, Failure> {
    let digest_len =
        u32::try_from(digest.len()).map_err(|_| Failure { call: "NCryptSignHash", status: -1 })?;
    read_sized("NCryptSignHash", |out, cap, len| {
        // SAFETY: `digest` is valid for `digest_len` bytes; ECDSA takes no padding info.
        unsafe {
            NCryptSignHash(
                key.0,
                std::ptr::null(),
                digest.as_ptr(),
                digest_len,
                out,
                cap,
                len,
                NCRYPT_SILENT_FLAG,
            )
        }
    })
}

/// `NCryptCreateClaim(key, aik, NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT)`: TPM2_Certify of `key`
/// by `aik` with `nonce` as qualifying data, passed as a buffer of type `nonce_type`.
fn create_claim(key: &Handle, aik: &Handle, nonce: &[u8], nonce_type: u32) -> Result<Vec<u8>, Failure> {
    let call = "NCryptCreateClaim";
    let nonce_len = u32::try_from(nonce.len()).map_err(|_| Failure { call, status: -1 })?;
    let mut buffer = BCryptBuffer {
        cbBuffer: nonce_len,
        BufferType: nonce_type,
        pvBuffer: nonce.as_ptr().cast_mut().cast(),
    };
    let params = BCryptBufferDesc { ulVersion: NCRYPTBUFFER_VERSION, cBuffers: 1, pBuffers: &mut buffer };
    read_sized(call, |out, cap, len| {
        // SAFETY: `params` and the nonce it points to outlive the call, which only reads them.
        unsafe {
            NCryptCreateClaim(key.0, aik.0, NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT, &params, out, cap, len, 0)
        }
    })
}

/// The DER certificates in the certificate store a provider property hands out.
fn certificates_in_store(prov: &Handle, property: PCWSTR) -> Result<Vec<Vec<u8>>, Failure> {
    let mut store: HCERTSTORE = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: the property's value is one HCERTSTORE, written into `store`.
    check("NCryptGetProperty", unsafe {
        NCryptGetProperty(
            prov.0,
            property,
            std::ptr::addr_of_mut!(store).cast(),
            size_of::<HCERTSTORE>() as u32,
            &mut len,
            0,
        )
    })?;
    if store.is_null() {
        return Ok(Vec::new());
    }
    let mut certificates = Vec::new();
    let mut context: *const CERT_CONTEXT = std::ptr::null();
    loop {
        // SAFETY: `store` is open; each call releases the previous context and the last
        // returns null, so enumerating to the end leaks nothing.
        context = unsafe { CertEnumCertificatesInStore(store, context) };
        // SAFETY: a non-null context points to a valid CERT_CONTEXT until the next call.
        let Some(c) = (unsafe { context.as_ref() }) else { break };
        if !c.pbCertEncoded.is_null() {
            // SAFETY: the encoded certificate is `cbCertEncoded` bytes owned by the context.
            let der = unsafe { std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize) };
            certificates.push(der.to_vec());
        }
    }
    // SAFETY: `store` is open and closed once; a failure to close changes nothing for us.
    unsafe {
        CertCloseStore(store, 0);
    }
    Ok(certificates)
}

/// The provider session: the device key and, during enrollment, the AIK.
struct Session {
    // Fields drop in order: keys before the provider that opened them.
    key: Handle,
    aik: Option<Aik>,
    prov: Handle,
    record: PcpRecord,
}

struct Aik {
    handle: Handle,
    /// Its TPMT_PUBLIC.
    public: Vec<u8>,
}

pub(super) struct PcpKey {
    spki: Vec<u8>,
    session: Mutex<Session>,
}

impl std::fmt::Debug for PcpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcpKey").field("key_id", &p256::key_id(&self.spki)).finish_non_exhaustive()
    }
}

impl PcpKey {
    /// Opens the device key recorded in the state dir, creating it on first use.
    pub(super) fn open(state_dir: &Path) -> Result<PcpKey, KeyError> {
        let prov = open_provider().map_err(|f| {
            KeyError::Unavailable(format!(
                "no usable TPM through the Microsoft Platform Crypto Provider ({:#010x})",
                f.status as u32
            ))
        })?;
        let path = state_dir.join(PCP_RECORD_FILE);
        let (key, spki, record) = match std::fs::read(&path) {
            Ok(bytes) => {
                let record = PcpRecord::from_json(&bytes)?;
                let (key, spki) = open_recorded(&prov, &record)?;
                (key, spki, record)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&prov, state_dir)?,
            Err(e) => return Err(KeyError::Storage(format!("reading {}: {e}", path.display()))),
        };
        Ok(PcpKey { spki, session: Mutex::new(Session { key, aik: None, prov, record }) })
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, KeyError> {
        self.session
            .lock()
            .map_err(|_| KeyError::Unavailable("Platform Crypto Provider session poisoned".into()))
    }
}

/// The recorded key, which must still exist and still be the enrolled key.
fn open_recorded(prov: &Handle, record: &PcpRecord) -> Result<(Handle, Vec<u8>), KeyError> {
    let key = open_key(prov, &record.device_key).map_err(|f| match f.status {
        NTE_BAD_KEYSET | NTE_NOT_FOUND => KeyError::Stale(format!(
            "the Platform Crypto Provider no longer has this device's key {} (was the TPM cleared?); re-enroll",
            record.device_key
        )),
        _ => f.into_key_error(),
    })?;
    let spki = public_spki(&key)?;
    if spki != record.spki()? {
        return Err(KeyError::Stale(format!(
            "the provider's key {} is not the enrolled device key; re-enroll",
            record.device_key
        )));
    }
    Ok((key, spki))
}

/// A new device key, recorded in the state dir once the TPM has made it.
fn create(prov: &Handle, state_dir: &Path) -> Result<(Handle, Vec<u8>, PcpRecord), KeyError> {
    let (name, _) = PcpRecord::names_for(state_dir);
    // No record means no enrollment used a key of this name: replacing a leftover is safe.
    let key = create_key(prov, NCRYPT_ECDSA_P256_ALGORITHM, &name, |_| Ok(()))?;
    let spki = public_spki(&key)?;
    let record = PcpRecord::new(state_dir, &spki);
    let storage = |e: std::io::Error| KeyError::Storage(format!("writing {PCP_RECORD_FILE}: {e}"));
    std::fs::create_dir_all(state_dir).map_err(storage)?;
    crate::state::write_atomic(&state_dir.join(PCP_RECORD_FILE), &record.to_json(), false)
        .map_err(storage)?;
    tracing::info!(key = %record.device_key, "Created the device key in the TPM (Platform Crypto Provider).");
    Ok((key, spki, record))
}

fn public_spki(key: &Handle) -> Result<Vec<u8>, KeyError> {
    super::der::spki_from_bcrypt_ecc_blob(&export(key, BCRYPT_ECCPUBLIC_BLOB)?)
}

/// The EK certificate: the provider's EK store first (it includes certificates Windows
/// fetched for firmware TPMs), then the TPM's NV. Many TPMs have none; then the collector
/// can at most record the device as hardware_unattested.
fn ek_certificate(prov: &Handle, ek_modulus: &[u8]) -> Vec<u8> {
    for property in
        [NCRYPT_PCP_EKCERT_PROPERTY, NCRYPT_PCP_RSA_EKNVCERT_PROPERTY, NCRYPT_PCP_EKNVCERT_PROPERTY]
    {
        if let Ok(certs) = certificates_in_store(prov, property)
            && let Some(cert) = pcp_blob::pick_ek_certificate(certs, ek_modulus)
        {
            return cert;
        }
    }
    tracing::warn!("This TPM has no RSA EK certificate; the device cannot be attested.");
    Vec::new()
}

/// A fresh RSA-2048 AIK; its identity binding is readable only on the handle that made it.
fn create_aik(prov: &Handle, name: &str) -> Result<Aik, KeyError> {
    let handle = create_key(prov, NCRYPT_RSA_ALGORITHM, name, |k| {
        set_property(k, NCRYPT_LENGTH_PROPERTY, &AIK_BITS.to_le_bytes())?;
        set_property(k, NCRYPT_PCP_KEY_USAGE_POLICY_PROPERTY, &NCRYPT_PCP_IDENTITY_KEY.to_le_bytes())
    })?;
    let binding = pcp_blob::parse_id_binding(&get_property(&handle, NCRYPT_PCP_TPM12_IDBINDING_PROPERTY)?)?;
    Ok(Aik { handle, public: binding.ak_public })
}

impl Session {
    fn evidence(&mut self) -> Result<TpmEvidence, KeyError> {
        let ek_blob = get_property(&self.prov, NCRYPT_PCP_EKPUB_PROPERTY)?;
        let ek_public = pcp_blob::ek_public_from_rsa_blob(&ek_blob)?;
        let ek_certificate = ek_certificate(&self.prov, &pcp_blob::parse_rsa_public_blob(&ek_blob)?.modulus);
        let device_key_public = pcp_blob::key_blob_public(&export(&self.key, BCRYPT_OPAQUE_KEY_BLOB)?)?;
        // A new AIK per enrollment, replacing the previous one of this name.
        self.aik = None;
        let aik = create_aik(&self.prov, &self.record.attestation_key)?;
        let evidence =
            TpmEvidence { ek_certificate, ek_public, ak_public: aik.public.clone(), device_key_public };
        self.aik = Some(aik);
        Ok(evidence)
    }

    fn activate(&mut self, blob: &[u8], secret: &[u8], nonce: &[u8]) -> Result<Activation, KeyError> {
        let aik = self
            .aik
            .take()
            .ok_or_else(|| KeyError::Unavailable("no attestation key: call evidence first".into()))?;
        set_property(
            &aik.handle,
            NCRYPT_PCP_TPM12_IDACTIVATION_PROPERTY,
            &pcp_blob::activation_blob(blob, secret)?,
        )?;
        let recovered = get_property(&aik.handle, NCRYPT_PCP_TPM12_IDACTIVATION_PROPERTY)?;
        let claim = self.certify(&aik, nonce)?;
        Ok(Activation {
            secret: recovered,
            certify_signature: pcp_blob::certify_signature(&claim.signature, &aik.public)?,
            certify_info: claim.certify_info,
        })
    }

    /// TPM2_Certify of the device key by the AIK over `nonce`, checked before it is sent.
    ///
    /// ncrypt.h defines a nonce buffer type for key attestation claims and another for
    /// platform claims, and Microsoft documents neither for this claim type: the key
    /// attestation one is tried first, and a certification that is not over this nonce
    /// (a provider that ignored the buffer) is never sent.
    fn certify(&self, aik: &Aik, nonce: &[u8]) -> Result<pcp_blob::KeyAttestation, KeyError> {
        let device_name =
            pcp_blob::object_name(&pcp_blob::key_blob_public(&export(&self.key, BCRYPT_OPAQUE_KEY_BLOB)?)?)?;
        let mut last = KeyError::Unavailable("NCryptCreateClaim was not called".into());
        for nonce_type in [NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE, NCRYPTBUFFER_TPM_PLATFORM_CLAIM_NONCE] {
            let claim = match create_claim(&self.key, &aik.handle, nonce, nonce_type) {
                Ok(c) => pcp_blob::parse_key_attestation(&c)?,
                Err(f) => {
                    last = f.into();
                    continue;
                }
            };
            let certified = pcp_blob::parse_certification(&claim.certify_info)?;
            if certified.certified_name != device_name {
                return Err(KeyError::Unavailable(
                    "the TPM certified another key than the device key".into(),
                ));
            }
            if certified.extra_data == nonce {
                return Ok(claim);
            }
            last = KeyError::Unavailable(format!(
                "the provider's certification is not over the enrollment nonce (nonce buffer type {nonce_type})"
            ));
        }
        Err(last)
    }
}

impl DeviceKey for PcpKey {
    fn public_key_spki(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, msg);
        let raw = sign_hash(&self.session()?.key, digest.as_ref()).map_err(|f| {
            tracing::debug!(status = format!("{:#010x}", f.status as u32), "NCryptSignHash failed");
            KeyError::Sign
        })?;
        super::der::der_from_raw(&raw)
    }

    fn backend(&self) -> Backend {
        Backend::WindowsPcp
    }

    fn tpm_evidence(&self) -> Result<Option<TpmEvidence>, KeyError> {
        self.session()?.evidence().map(Some)
    }

    fn activate(&self, blob: &[u8], secret: &[u8], nonce: &[u8]) -> Result<Activation, KeyError> {
        self.session()?.activate(blob, secret, nonce)
    }
}
