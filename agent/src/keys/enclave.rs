//! The device key in the Secure Enclave (macOS).
//!
//! A P-256 key generated inside the Secure Enclave (`kSecAttrTokenIDSecureEnclave`): the
//! private half is created there, wrapped by a key only that Secure Enclave holds, and
//! never exportable. The keychain keeps the wrapped key permanently under an application
//! tag derived from the state dir, so two agents on one Mac never share a key; the state
//! dir's `secure-enclave.key` records that tag and the public key, so a later start finds
//! the same key and notices one that vanished or changed ([`KeyError::Stale`]: re-enroll,
//! never a silent new identity).
//!
//! Access control is `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly` with
//! `PrivateKeyUsage` only: no biometry and no user presence, so a LaunchDaemon can sign
//! with nobody logged in; `ThisDeviceOnly` keeps the key out of backups and migration.
//! "After first unlock" means a Mac that has just booted cannot sign until it has been
//! unlocked once.
//!
//! Secure Enclave keys live in the *data protection* keychain (macOS has no way to keep one
//! in the file-based System keychain), which requires the binary to be signed with a
//! `keychain-access-groups` entitlement that a provisioning profile grants; without it
//! every call fails with `errSecMissingEntitlement` and `auto` falls back to a software key
//! (logged). Apple documents the data protection keychain as unavailable to launchd
//! daemons outside a user session, so this backend must be proven on a real, signed
//! deployment before it is relied on; until then a fleet gets the software key.
//!
//! The Secure Enclave offers no attestation a third party can verify (there is no
//! endorsement key or certificate chain to send), so [`DeviceKey::tpm_evidence`] is `None`
//! and the collector records such a device as `hardware_unattested`: the agent's claim
//! that the key is hardware-held is recorded, not proven.
#![allow(unsafe_code)]

use std::fmt;
use std::path::Path;

use core_foundation::base::{CFOptionFlags, CFType, CFTypeRef, TCFType};
use core_foundation::boolean::CFBoolean;
use core_foundation::data::CFData;
use core_foundation::dictionary::CFDictionary;
use core_foundation::error::CFError;
use core_foundation::number::CFNumber;
use core_foundation::string::{CFString, CFStringRef};
use core_foundation_sys::base::OSStatus;
use core_foundation_sys::dictionary::CFDictionaryRef;
use core_foundation_sys::error::CFErrorRef;
use security_framework::access_control::{ProtectionMode, SecAccessControl};
use security_framework::key::{Algorithm, SecKey};
use sightline_proto::p256;

use super::der::normalise_der;
use super::enclave_record::{self, ENCLAVE_RECORD, EnclaveRecord};
use super::{Backend, DeviceKey, KeyError};

type SecKeyRef = <SecKey as TCFType>::Ref;

/// `kSecAccessControlPrivateKeyUsage` (`SecAccessControl.h`): the key may sign, with no
/// further constraint (no biometry, passcode or presence).
const PRIVATE_KEY_USAGE: CFOptionFlags = 1 << 30;

const ERR_SEC_ITEM_NOT_FOUND: OSStatus = -25300;

// What security-framework's safe API cannot express: an application tag on the key and
// lookups by it in the data protection keychain. The constants are CFStrings the Security
// framework exports for the life of the process.
#[link(name = "Security", kind = "framework")]
unsafe extern "C" {
    static kSecClass: CFStringRef;
    static kSecClassKey: CFStringRef;
    static kSecAttrKeyClass: CFStringRef;
    static kSecAttrKeyClassPrivate: CFStringRef;
    static kSecAttrKeyType: CFStringRef;
    static kSecAttrKeyTypeECSECPrimeRandom: CFStringRef;
    static kSecAttrKeySizeInBits: CFStringRef;
    static kSecAttrTokenID: CFStringRef;
    static kSecAttrTokenIDSecureEnclave: CFStringRef;
    static kSecAttrApplicationTag: CFStringRef;
    static kSecAttrIsPermanent: CFStringRef;
    static kSecAttrAccessControl: CFStringRef;
    static kSecPrivateKeyAttrs: CFStringRef;
    static kSecUseDataProtectionKeychain: CFStringRef;
    static kSecReturnRef: CFStringRef;
    static kSecMatchLimit: CFStringRef;
    static kSecMatchLimitOne: CFStringRef;
    fn SecItemCopyMatching(query: CFDictionaryRef, result: *mut CFTypeRef) -> OSStatus;
    fn SecItemDelete(query: CFDictionaryRef) -> OSStatus;
    fn SecKeyCreateRandomKey(parameters: CFDictionaryRef, error: *mut CFErrorRef) -> SecKeyRef;
}

pub(super) struct EnclaveKey {
    key: SecKey,
    spki: Vec<u8>,
}

impl fmt::Debug for EnclaveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveKey").field("key_id", &p256::key_id(&self.spki)).finish_non_exhaustive()
    }
}

impl EnclaveKey {
    /// The state dir's key: the recorded one, or a new one if none is recorded.
    pub(super) fn open(state_dir: &Path) -> Result<EnclaveKey, KeyError> {
        match enclave_record::read_enclave_record(state_dir)? {
            Some(record) => EnclaveKey::reopen(&record),
            None => EnclaveKey::create(state_dir),
        }
    }

    fn reopen(record: &EnclaveRecord) -> Result<EnclaveKey, KeyError> {
        let spki = record.spki()?;
        let key = find(&record.tag)?.ok_or_else(|| {
            KeyError::Stale(format!(
                "the Secure Enclave key recorded in {ENCLAVE_RECORD} is no longer in the keychain \
                 (the keychain was reset, or the state dir came from another Mac); re-enroll"
            ))
        })?;
        if public_spki(&key)? != spki {
            return Err(KeyError::Stale(format!(
                "the keychain holds a different key under the tag recorded in {ENCLAVE_RECORD} \
                 than the one this device enrolled with; re-enroll"
            )));
        }
        Ok(EnclaveKey { key, spki })
    }

    fn create(state_dir: &Path) -> Result<EnclaveKey, KeyError> {
        let tag = enclave_record::enclave_tag(state_dir);
        // A key under this tag without a record is left over from a state dir that was
        // wiped: its identity went with the enrollment, and two keys under one tag would
        // make every later lookup ambiguous.
        delete(&tag)?;
        let key = generate(&tag)?;
        let stored = public_spki(&key).and_then(|spki| {
            let record = EnclaveRecord::new(&tag, &spki);
            let path = state_dir.join(ENCLAVE_RECORD);
            crate::state::write_atomic(&path, &record.to_json(), false)
                .map_err(|e| KeyError::Storage(format!("writing {}: {e}", path.display())))?;
            Ok(spki)
        });
        let spki = match stored {
            Ok(spki) => spki,
            Err(e) => {
                // Without its record the key could never be found again: do not leave it.
                if let Err(d) = delete(&tag) {
                    tracing::warn!(error = %d, "Could not remove the unrecorded Secure Enclave key.");
                }
                return Err(e);
            }
        };
        tracing::info!(key_id = %p256::key_id(&spki), "Created the device key in the Secure Enclave.");
        Ok(EnclaveKey { key, spki })
    }
}

impl DeviceKey for EnclaveKey {
    fn public_key_spki(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// The Secure Enclave hashes `msg` with SHA-256 and signs; the DER it returns is
    /// re-encoded minimally like every backend's.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let der = self
            .key
            .create_signature(Algorithm::ECDSASignatureMessageX962SHA256, msg)
            .map_err(|e| cf_error("signing with the Secure Enclave key", &e))?;
        normalise_der(&der)
    }

    fn backend(&self) -> Backend {
        Backend::SecureEnclave
    }
}

/// One of the Security framework's constant CFStrings.
fn constant(s: CFStringRef) -> CFString {
    // SAFETY: the constants are valid CFStrings for the life of the process; the get rule
    // retains rather than adopts them.
    unsafe { CFString::wrap_under_get_rule(s) }
}

/// The attributes that identify this state dir's private key, for lookup and deletion.
fn key_query(tag: &str) -> Vec<(CFString, CFType)> {
    // SAFETY (each `unsafe` read below): extern statics the Security framework defines.
    unsafe {
        vec![
            (constant(kSecClass), constant(kSecClassKey).into_CFType()),
            (constant(kSecAttrKeyClass), constant(kSecAttrKeyClassPrivate).into_CFType()),
            (constant(kSecAttrKeyType), constant(kSecAttrKeyTypeECSECPrimeRandom).into_CFType()),
            (constant(kSecAttrTokenID), constant(kSecAttrTokenIDSecureEnclave).into_CFType()),
            (constant(kSecAttrApplicationTag), CFData::from_buffer(tag.as_bytes()).into_CFType()),
            (constant(kSecUseDataProtectionKeychain), CFBoolean::true_value().into_CFType()),
        ]
    }
}

/// The private key under `tag`, if the keychain has one.
fn find(tag: &str) -> Result<Option<SecKey>, KeyError> {
    let mut query = key_query(tag);
    // SAFETY: extern statics the Security framework defines.
    unsafe {
        query.push((constant(kSecReturnRef), CFBoolean::true_value().into_CFType()));
        query.push((constant(kSecMatchLimit), constant(kSecMatchLimitOne).into_CFType()));
    }
    let query = CFDictionary::from_CFType_pairs(&query);
    let mut found: CFTypeRef = std::ptr::null();
    // SAFETY: a valid query dictionary and out-pointer; on success `found` is owned by us.
    let status = unsafe { SecItemCopyMatching(query.as_concrete_TypeRef(), &mut found) };
    let op = "looking up the Secure Enclave key";
    match status {
        0 if !found.is_null() => {}
        0 | ERR_SEC_ITEM_NOT_FOUND => return Ok(None),
        other => return Err(enclave_record::enclave_status(op, other.into(), None)),
    }
    // SAFETY: non-NULL and owned (Copy rule).
    let item = unsafe { CFType::wrap_under_create_rule(found) };
    item.downcast_into::<SecKey>().map(Some).ok_or_else(|| {
        KeyError::Unavailable(format!("{op}: the keychain returned something other than a key"))
    })
}

/// Removes the private key under `tag`, if any.
fn delete(tag: &str) -> Result<(), KeyError> {
    let query = CFDictionary::from_CFType_pairs(&key_query(tag));
    // SAFETY: a valid query dictionary.
    match unsafe { SecItemDelete(query.as_concrete_TypeRef()) } {
        0 | ERR_SEC_ITEM_NOT_FOUND => Ok(()),
        other => Err(enclave_record::enclave_status("removing a Secure Enclave key", other.into(), None)),
    }
}

/// A new permanent P-256 key in the Secure Enclave under `tag`.
fn generate(tag: &str) -> Result<SecKey, KeyError> {
    let op = "creating the Secure Enclave key";
    let access = SecAccessControl::create_with_protection(
        Some(ProtectionMode::AccessibleAfterFirstUnlockThisDeviceOnly),
        PRIVATE_KEY_USAGE,
    )
    .map_err(|e| enclave_record::enclave_status(op, e.code().into(), e.message().as_deref()))?;
    // SAFETY (each `unsafe` read below): extern statics the Security framework defines.
    let params = unsafe {
        let private = CFDictionary::from_CFType_pairs(&[
            (constant(kSecAttrIsPermanent), CFBoolean::true_value().into_CFType()),
            (constant(kSecAttrApplicationTag), CFData::from_buffer(tag.as_bytes()).into_CFType()),
            (constant(kSecAttrAccessControl), access.as_CFType()),
        ]);
        CFDictionary::from_CFType_pairs(&[
            (constant(kSecAttrKeyType), constant(kSecAttrKeyTypeECSECPrimeRandom).into_CFType()),
            (constant(kSecAttrKeySizeInBits), CFNumber::from(256).into_CFType()),
            (constant(kSecAttrTokenID), constant(kSecAttrTokenIDSecureEnclave).into_CFType()),
            (constant(kSecUseDataProtectionKeychain), CFBoolean::true_value().into_CFType()),
            (constant(kSecPrivateKeyAttrs), private.into_CFType()),
        ])
    };
    let mut error: CFErrorRef = std::ptr::null_mut();
    // SAFETY: a valid parameter dictionary and error out-pointer.
    let key = unsafe { SecKeyCreateRandomKey(params.as_concrete_TypeRef(), &mut error) };
    if !key.is_null() {
        // SAFETY: non-NULL and owned (Create rule).
        return Ok(unsafe { SecKey::wrap_under_create_rule(key) });
    }
    if error.is_null() {
        return Err(KeyError::Unavailable(format!("{op}: the Security framework gave no reason")));
    }
    // SAFETY: non-NULL and owned (Create rule).
    Err(cf_error(op, &unsafe { CFError::wrap_under_create_rule(error) }))
}

/// The key's public half as a DER SubjectPublicKeyInfo.
fn public_spki(key: &SecKey) -> Result<Vec<u8>, KeyError> {
    let unexpected = |what: &str| KeyError::Corrupt(format!("the Secure Enclave key {what}"));
    let public = key.public_key().ok_or_else(|| unexpected("has no public key"))?;
    // For an EC public key: the uncompressed point, 0x04 || X || Y.
    let point = public.external_representation().ok_or_else(|| unexpected("has no exportable public key"))?;
    p256::spki_from_point(point.bytes()).map_err(|e| unexpected(&format!("is not a P-256 key ({e})")))
}

fn cf_error(op: &str, e: &CFError) -> KeyError {
    enclave_record::enclave_cf_error(
        op,
        &e.domain().to_string(),
        e.code() as i64,
        &e.description().to_string(),
    )
}
