//! The device signing key: hardware-backed where the platform has it (TPM 2.0, Secure
//! Enclave, Platform Crypto Provider), a software key that says so otherwise.
//!
//! Every backend offers ECDSA P-256/SHA-256 with DER signatures, the one algorithm TPM 2.0,
//! the Secure Enclave and Windows platform crypto share. Callers hold a `Box<dyn DeviceKey>`
//! and never learn which backend signs, so hardware backends drop in without touching them.
//! Private key material never leaves this module.

pub mod der;
#[cfg(target_os = "macos")]
mod enclave;
pub mod enclave_record;
#[cfg(windows)]
mod pcp;
pub mod pcp_blob;
mod software;
mod store;
#[cfg(all(target_os = "linux", feature = "tpm"))]
pub mod tpm;

use std::fmt;
use std::path::Path;

pub use software::SoftwareKey;

/// Which implementation holds the key. The collector decides the *assurance* from evidence;
/// this is only what the agent claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Software,
    Tpm,
    SecureEnclave,
    WindowsPcp,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Software => "software",
            Backend::Tpm => "tpm",
            Backend::SecureEnclave => "secure_enclave",
            Backend::WindowsPcp => "windows_pcp",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key storage: {0}")]
    Storage(String),
    #[error("stored device key is unusable: {0}")]
    Corrupt(String),
    #[error("signing failed")]
    Sign,
    #[error("{0}")]
    Unavailable(String),
    /// A hardware key that existed no longer works on this hardware; the device must re-enroll.
    #[error("{0}")]
    Stale(String),
}

/// What a TPM shows the collector at enrollment (marshalled TPMT_PUBLIC areas, DER cert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmEvidence {
    pub ek_certificate: Vec<u8>,
    pub ek_public: Vec<u8>,
    pub ak_public: Vec<u8>,
    pub device_key_public: Vec<u8>,
}

/// A TPM's answer to the collector's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The secret ActivateCredential recovered.
    pub secret: Vec<u8>,
    /// TPM2_Certify of the device key by the AK over the nonce: TPMS_ATTEST and DER signature.
    pub certify_info: Vec<u8>,
    pub certify_signature: Vec<u8>,
}

/// A non-exportable (where the backend allows) device signing key.
pub trait DeviceKey: Send + Sync + fmt::Debug {
    /// DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> Vec<u8>;
    /// DER ECDSA P-256/SHA-256 signature over `msg`.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError>;
    fn backend(&self) -> Backend;
    /// Hardware evidence for enrollment; `None` for backends that have none.
    fn tpm_evidence(&self) -> Result<Option<TpmEvidence>, KeyError> {
        Ok(None)
    }
    /// Answers an attestation challenge (TPM only).
    fn activate(
        &self,
        _credential_blob: &[u8],
        _encrypted_secret: &[u8],
        _nonce: &[u8],
    ) -> Result<Activation, KeyError> {
        Err(KeyError::Unavailable("this key backend has no hardware attestation".into()))
    }
}

/// The `--key-backend` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyChoice {
    /// This platform's hardware key store if one is usable, otherwise software (logged).
    Auto,
    /// The TPM 2.0: through tpm2-tss on Linux, through the Microsoft Platform Crypto Provider
    /// on Windows.
    Tpm,
    /// The Secure Enclave (macOS).
    SecureEnclave,
    Software,
}

/// The TPM the agent talks to: `SIGHTLINE_TPM_TCTI`, else the kernel resource manager.
pub fn tpm_tcti() -> String {
    std::env::var("SIGHTLINE_TPM_TCTI").unwrap_or_else(|_| "device:/dev/tpmrm0".into())
}

/// Opens the device key in the state dir, creating it on first use.
///
/// A state dir that already holds a key of one backend keeps using it: `auto` never swaps a
/// device's identity because a TPM appeared or disappeared.
pub fn open(state_dir: &Path, choice: KeyChoice) -> Result<Box<dyn DeviceKey>, KeyError> {
    open_with_tcti(state_dir, choice, &tpm_tcti())
}

/// As [`open`], with the TPM named explicitly (the config's `tpm_tcti`; Linux only).
pub fn open_with_tcti(
    state_dir: &Path,
    choice: KeyChoice,
    tcti: &str,
) -> Result<Box<dyn DeviceKey>, KeyError> {
    let has_soft_key = store::KeyStore::for_state_dir(state_dir, "device-key").exists();
    match choice {
        KeyChoice::Software => software(state_dir),
        KeyChoice::Tpm | KeyChoice::SecureEnclave if choice != hardware_choice() => {
            Err(KeyError::Unavailable(format!(
                "{choice:?} is not a key store of this platform ({})",
                HARDWARE_NAME
            )))
        }
        KeyChoice::Tpm | KeyChoice::SecureEnclave => open_hardware(state_dir, tcti),
        KeyChoice::Auto if has_hardware_key(state_dir) => open_hardware(state_dir, tcti),
        KeyChoice::Auto if has_soft_key => software(state_dir),
        KeyChoice::Auto => match open_hardware(state_dir, tcti) {
            Ok(k) => {
                tracing::info!(backend = k.backend().as_str(), "Using a hardware-resident device key.");
                Ok(k)
            }
            Err(e) => {
                tracing::warn!(backend = "software", reason = %e, "No usable hardware key store; using a software device key (assurance: software).");
                software(state_dir)
            }
        },
    }
}

fn software(state_dir: &Path) -> Result<Box<dyn DeviceKey>, KeyError> {
    Ok(Box::new(SoftwareKey::load_or_create(&store::KeyStore::for_state_dir(state_dir, "device-key"))?))
}

/// The hardware backend each platform has, and how `--key-backend` names it.
#[cfg(not(target_os = "macos"))]
const fn hardware_choice() -> KeyChoice {
    KeyChoice::Tpm
}
#[cfg(target_os = "macos")]
const fn hardware_choice() -> KeyChoice {
    KeyChoice::SecureEnclave
}

#[cfg(target_os = "linux")]
const HARDWARE_NAME: &str = "Linux: a TPM 2.0 through tpm2-tss";
#[cfg(windows)]
const HARDWARE_NAME: &str = "Windows: the TPM through the Microsoft Platform Crypto Provider";
#[cfg(target_os = "macos")]
const HARDWARE_NAME: &str = "macOS: the Secure Enclave";
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
const HARDWARE_NAME: &str = "none";

/// Whether the state dir records a hardware key (the blobs, the enclave key's tag, the
/// provider's key name): `auto` then keeps it.
fn has_hardware_key(state_dir: &Path) -> bool {
    ["tpm/device.pub", "secure-enclave.key", "pcp-key.json"].iter().any(|f| state_dir.join(f).exists())
}

#[cfg(all(target_os = "linux", feature = "tpm"))]
fn open_hardware(state_dir: &Path, tcti: &str) -> Result<Box<dyn DeviceKey>, KeyError> {
    Ok(Box::new(tpm::TpmKey::open(state_dir, tcti)?))
}

#[cfg(target_os = "macos")]
fn open_hardware(state_dir: &Path, _tcti: &str) -> Result<Box<dyn DeviceKey>, KeyError> {
    Ok(Box::new(enclave::EnclaveKey::open(state_dir)?))
}

#[cfg(windows)]
fn open_hardware(state_dir: &Path, _tcti: &str) -> Result<Box<dyn DeviceKey>, KeyError> {
    Ok(Box::new(pcp::PcpKey::open(state_dir)?))
}

#[cfg(not(any(all(target_os = "linux", feature = "tpm"), target_os = "macos", windows)))]
fn open_hardware(_state_dir: &Path, _tcti: &str) -> Result<Box<dyn DeviceKey>, KeyError> {
    Err(KeyError::Unavailable("the TPM backend is not built into this agent (Linux, `tpm` feature)".into()))
}

/// Generates a fresh software key for the TLS client certificate, returning its PKCS#8 PEM.
/// It is separate from the device key so a hardware device key never has to serve TLS
/// (tonic's TLS takes a key in memory; a TPM-held key cannot be handed to it).
pub fn new_tls_key_pem() -> Result<(String, Vec<u8>), KeyError> {
    software::generate_pem()
}
