//! The Secure Enclave key's record in the state dir, its keychain tag and the Security
//! framework's errors as [`KeyError`]s. Portable on purpose: `enclave` (compiled on macOS
//! only) hands the system's values here, so every decision about them is unit-tested on
//! every platform.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::KeyError;

/// The state-dir file that records the Secure Enclave key; its presence is what
/// `keys::open` takes as "a hardware key exists here".
pub const ENCLAVE_RECORD: &str = "secure-enclave.key";

/// The record is a few hundred bytes; anything much larger is not ours.
pub const ENCLAVE_RECORD_MAX: u64 = 64 * 1024;

const ENCLAVE_RECORD_VERSION: u32 = 1;

/// What the state dir remembers of the Secure Enclave key: the keychain tag that finds it,
/// and its public key, so a later start notices a key that vanished or was replaced. The
/// private key never leaves the Secure Enclave; nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnclaveRecord {
    pub version: u32,
    /// `kSecAttrApplicationTag` of the private key, as UTF-8.
    pub tag: String,
    /// DER SubjectPublicKeyInfo, hex.
    pub public_key_spki: String,
}

impl EnclaveRecord {
    pub fn new(tag: &str, spki: &[u8]) -> EnclaveRecord {
        EnclaveRecord {
            version: ENCLAVE_RECORD_VERSION,
            tag: tag.to_owned(),
            public_key_spki: hex::encode(spki),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and an integer cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a record: a known version, a tag of ours, a P-256 SPKI.
    pub fn parse(bytes: &[u8]) -> Result<EnclaveRecord, KeyError> {
        let bad = |why: String| KeyError::Corrupt(format!("{ENCLAVE_RECORD}: {why}"));
        let r: EnclaveRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if r.version != ENCLAVE_RECORD_VERSION {
            return Err(bad(format!("unknown version {}", r.version)));
        }
        if !r.tag.starts_with(ENCLAVE_TAG_PREFIX) {
            return Err(bad("the keychain tag is not one this agent creates".into()));
        }
        r.spki()?;
        Ok(r)
    }

    /// The recorded public key as DER.
    pub fn spki(&self) -> Result<Vec<u8>, KeyError> {
        let bad = |why: &str| KeyError::Corrupt(format!("{ENCLAVE_RECORD}: {why}"));
        let spki = hex::decode(&self.public_key_spki).map_err(|_| bad("the public key is not hex"))?;
        sightline_proto::p256::point_from_spki(&spki).map_err(|_| bad("the public key is not P-256"))?;
        Ok(spki)
    }
}

const ENCLAVE_TAG_PREFIX: &str = "com.sightline.agent.device-key-";

/// The keychain application tag for the state dir's key: derived from the state dir (as
/// the software key's keychain account is) so two agents on one Mac never share or
/// replace each other's key.
pub fn enclave_tag(state_dir: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, state_dir.to_string_lossy().as_bytes());
    format!("{ENCLAVE_TAG_PREFIX}{}", hex::encode(&digest.as_ref()[..8]))
}

/// Reads the record if there is one (at most [`ENCLAVE_RECORD_MAX`] bytes).
pub fn read_enclave_record(state_dir: &Path) -> Result<Option<EnclaveRecord>, KeyError> {
    let path = state_dir.join(ENCLAVE_RECORD);
    let storage = |e: std::io::Error| KeyError::Storage(format!("reading {}: {e}", path.display()));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage(e)),
    };
    let mut bytes = Vec::new();
    file.take(ENCLAVE_RECORD_MAX + 1).read_to_end(&mut bytes).map_err(storage)?;
    if bytes.len() as u64 > ENCLAVE_RECORD_MAX {
        return Err(KeyError::Corrupt(format!("{ENCLAVE_RECORD} is larger than {ENCLAVE_RECORD_MAX} bytes")));
    }
    EnclaveRecord::parse(&bytes).map(Some)
}

/// The error domain of `CFError`s that carry an `OSStatus`.
pub const OSSTATUS_DOMAIN: &str = "NSOSStatusErrorDomain";

/// A Security framework `OSStatus` from `op` as a [`KeyError`] an administrator can act on.
/// `detail` is the framework's own description, when it gave one (never key material).
pub fn enclave_status(op: &str, status: i64, detail: Option<&str>) -> KeyError {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    let why = match status {
        -34018 => {
            "the agent binary is not signed with the keychain-access-groups entitlement \
             (errSecMissingEntitlement, -34018): Secure Enclave keys live in the data protection \
             keychain, which only a binary signed with that entitlement and a provisioning profile \
             that grants it may use"
        }
        -25308 => {
            "the keychain refuses access (errSecInteractionNotAllowed, -25308): the key is usable \
             only once the Mac has been unlocked after it started"
        }
        -25300 => {
            return KeyError::Stale(format!(
                "{op}: the Secure Enclave key is no longer in the keychain (errSecItemNotFound, -25300){detail}; re-enroll"
            ));
        }
        -25291 => "no keychain is available to this process (errSecNotAvailable, -25291)",
        -25293 => "the key's access control refused its use (errSecAuthFailed, -25293)",
        -4 => {
            "not supported on this Mac (errSecUnimplemented, -4): Macs without a Secure Enclave \
             (Intel without a T2 chip) cannot hold the key"
        }
        -26276 => {
            "the Secure Enclave refused to create the key pair (-26276), which is what a launchd \
             daemon outside any user session gets"
        }
        _ => return KeyError::Unavailable(format!("{op}: OSStatus {status}{detail}")),
    };
    KeyError::Unavailable(format!("{op}: {why}{detail}"))
}

/// A `CFError` from the Security framework as a [`KeyError`]: by its `OSStatus` when it
/// carries one, otherwise by domain and code (CryptoTokenKit reports in its own domain).
pub fn enclave_cf_error(op: &str, domain: &str, code: i64, description: &str) -> KeyError {
    if domain == OSSTATUS_DOMAIN {
        enclave_status(op, code, Some(description))
    } else {
        KeyError::Unavailable(format!("{op}: {description} ({domain} {code})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_spki() -> Vec<u8> {
        use crate::keys::DeviceKey;
        crate::keys::SoftwareKey::generate().unwrap().public_key_spki()
    }

    #[test]
    fn security_framework_errors_say_what_to_do() {
        let msg = |e: KeyError| e.to_string();
        let e = enclave_status("creating the key", -34018, None);
        assert!(matches!(e, KeyError::Unavailable(_)));
        assert!(msg(e).contains("not signed with the keychain-access-groups entitlement"));
        let e = enclave_status("finding the key", -25300, None);
        assert!(matches!(e, KeyError::Stale(_)), "{e:?}");
        assert!(msg(enclave_status("x", -25308, None)).contains("unlocked"));
        assert_eq!(msg(enclave_status("signing", -99999, Some("boom"))), "signing: OSStatus -99999 (boom)");
        let e = enclave_cf_error(
            "creating the key",
            OSSTATUS_DOMAIN,
            -34018,
            "A required entitlement isn't present.",
        );
        assert!(msg(e).ends_with("(A required entitlement isn't present.)"));
        let e = enclave_cf_error("signing", "CryptoTokenKit", -7, "token removed");
        assert_eq!(msg(e), "signing: token removed (CryptoTokenKit -7)");
    }

    #[test]
    fn enclave_tags_are_per_state_dir() {
        let a = enclave_tag(Path::new("/Library/Application Support/Sightline/state"));
        let b = enclave_tag(Path::new("/tmp/other-agent/state"));
        assert_ne!(a, b);
        assert_eq!(a, enclave_tag(Path::new("/Library/Application Support/Sightline/state")));
        assert!(a.starts_with(ENCLAVE_TAG_PREFIX) && a.len() == ENCLAVE_TAG_PREFIX.len() + 16, "{a}");
    }

    #[test]
    fn enclave_record_round_trip_and_refusals() {
        let spki = test_spki();
        let tag = enclave_tag(Path::new("/state"));
        let rec = EnclaveRecord::new(&tag, &spki);
        let parsed = EnclaveRecord::parse(&rec.to_json()).unwrap();
        assert_eq!((parsed.tag.as_str(), parsed.spki().unwrap()), (tag.as_str(), spki.clone()));

        let corrupt = |r: &EnclaveRecord| {
            matches!(EnclaveRecord::parse(&serde_json::to_vec(r).unwrap()), Err(KeyError::Corrupt(_)))
        };
        assert!(corrupt(&EnclaveRecord { version: 2, ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { tag: "com.example.other".into(), ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { public_key_spki: "zz".into(), ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { public_key_spki: hex::encode(&spki[1..]), ..rec.clone() }));
        assert!(matches!(EnclaveRecord::parse(b"{"), Err(KeyError::Corrupt(_))));
    }

    #[test]
    fn reading_the_enclave_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_enclave_record(dir.path()), Ok(None)));
        let spki = test_spki();
        let rec = EnclaveRecord::new(&enclave_tag(dir.path()), &spki);
        crate::state::write_atomic(&dir.path().join(ENCLAVE_RECORD), &rec.to_json(), false).unwrap();
        assert_eq!(read_enclave_record(dir.path()).unwrap(), Some(rec));
        std::fs::write(dir.path().join(ENCLAVE_RECORD), vec![b' '; ENCLAVE_RECORD_MAX as usize + 1]).unwrap();
        assert!(matches!(read_enclave_record(dir.path()), Err(KeyError::Corrupt(_))));
    }
}
