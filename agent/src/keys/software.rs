//! The software backend: a ring ECDSA P-256 key, stored as PKCS#8 by [`KeyStore`].
//! The collector records devices with this backend at assurance `software`.

use std::fmt;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use sightline_proto::p256;
use zeroize::Zeroizing;

use super::store::KeyStore;
use super::{Backend, DeviceKey, KeyError};

pub struct SoftwareKey {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
    rng: SystemRandom,
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey").field("key_id", &p256::key_id(&self.spki)).finish_non_exhaustive()
    }
}

impl SoftwareKey {
    pub(crate) fn load_or_create(store: &KeyStore) -> Result<SoftwareKey, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match store.load()? {
            Some(bytes) => bytes,
            None => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(|_| KeyError::Sign)?;
                let bytes = Zeroizing::new(doc.as_ref().to_vec());
                store.save(&bytes)?;
                bytes
            }
        };
        SoftwareKey::from_pkcs8(&pkcs8)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SoftwareKey, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|e| KeyError::Corrupt(format!("not a P-256 PKCS#8 key ({e})")))?;
        let spki = p256::spki_from_point(pair.public_key().as_ref())
            .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        Ok(SoftwareKey { pair, spki, rng })
    }

    /// A throwaway key, for tests and tools.
    pub fn generate() -> Result<SoftwareKey, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| KeyError::Sign)?;
        SoftwareKey::from_pkcs8(doc.as_ref())
    }
}

impl DeviceKey for SoftwareKey {
    fn public_key_spki(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair.sign(&self.rng, msg).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Sign)
    }

    fn backend(&self) -> Backend {
        Backend::Software
    }
}

/// A new P-256 key as PKCS#8 PEM (what rustls/tonic load) plus its SubjectPublicKeyInfo.
pub(super) fn generate_pem() -> Result<(String, Vec<u8>), KeyError> {
    let rng = SystemRandom::new();
    let doc =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|_| KeyError::Sign)?;
    let key = SoftwareKey::from_pkcs8(doc.as_ref())?;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(doc.as_ref()));
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok((pem, key.spki))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_persists_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::for_state_dir(dir.path(), "device-key");
        let a = SoftwareKey::load_or_create(&store).unwrap();
        let b = SoftwareKey::load_or_create(&store).unwrap();
        assert_eq!(a.public_key_spki(), b.public_key_spki());
        let sig = a.sign(b"ctx\0msg").unwrap();
        p256::verify(&b.public_key_spki(), b"ctx\0", b"msg", &sig).unwrap();
    }
}
