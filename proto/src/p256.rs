//! ECDSA P-256/SHA-256 helpers shared by the envelope, enrollment and directives.
//!
//! Every device-key backend (TPM 2.0, Secure Enclave, Windows platform crypto, software)
//! produces this one algorithm with DER signatures, so verification has one code path.

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// The DER prefix of a SubjectPublicKeyInfo holding an uncompressed P-256 point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Length of an uncompressed SEC1 P-256 point (0x04 || X || Y).
pub const POINT_LEN: usize = 65;

/// Why a public key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a DER SubjectPublicKeyInfo for an uncompressed P-256 point.
    #[error("public key is not a P-256 SubjectPublicKeyInfo")]
    NotP256Spki,
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
}

/// Wraps an uncompressed SEC1 point (as ring returns it) into a DER SubjectPublicKeyInfo.
pub fn spki_from_point(point: &[u8]) -> Result<Vec<u8>, KeyError> {
    if point.len() != POINT_LEN || point[0] != 0x04 {
        return Err(KeyError::NotP256Spki);
    }
    let mut spki = Vec::with_capacity(SPKI_P256_PREFIX.len() + POINT_LEN);
    spki.extend_from_slice(&SPKI_P256_PREFIX);
    spki.extend_from_slice(point);
    Ok(spki)
}

/// Extracts the uncompressed point from a P-256 SubjectPublicKeyInfo.
pub fn point_from_spki(spki: &[u8]) -> Result<&[u8], KeyError> {
    match spki.strip_prefix(&SPKI_P256_PREFIX[..]) {
        Some(point) if point.len() == POINT_LEN && point[0] == 0x04 => Ok(point),
        _ => Err(KeyError::NotP256Spki),
    }
}

/// Verifies a DER ECDSA P-256/SHA-256 signature over `context || message`.
///
/// The context is a domain-separation prefix: a signature made for one purpose (a batch)
/// can never be replayed as another (an enrollment proof or a directive).
pub fn verify(spki: &[u8], context: &[u8], message: &[u8], signature_der: &[u8]) -> Result<(), KeyError> {
    let point = point_from_spki(spki)?;
    let mut signed = Vec::with_capacity(context.len() + message.len());
    signed.extend_from_slice(context);
    signed.extend_from_slice(message);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&signed, signature_der)
        .map_err(|_| KeyError::BadSignature)
}

/// The key id used on the wire: SHA-256 of the SubjectPublicKeyInfo, hex.
pub fn key_id(spki: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, spki))
}

/// A fresh key pair and its SPKI, for this crate's tests.
#[cfg(test)]
pub(crate) fn test_key() -> (ring::signature::EcdsaKeyPair, Vec<u8>) {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let spki = spki_from_point(kp.public_key().as_ref()).unwrap();
    (kp, spki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn spki_round_trips_and_verifies_with_context() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = spki_from_point(kp.public_key().as_ref()).unwrap();
        assert_eq!(point_from_spki(&spki).unwrap(), kp.public_key().as_ref());

        let sig = kp.sign(&rng, b"ctx\0hello").unwrap();
        assert_eq!(verify(&spki, b"ctx\0", b"hello", sig.as_ref()), Ok(()));
        assert_eq!(verify(&spki, b"other\0", b"hello", sig.as_ref()), Err(KeyError::BadSignature));
        assert_eq!(verify(&spki[1..], b"ctx\0", b"hello", sig.as_ref()), Err(KeyError::NotP256Spki));
    }
}
