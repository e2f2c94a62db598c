//! Detection catalog updates: how the collector signs one and what the agent accepts.
//!
//! ```text
//! payload   = the catalog's TOML text, exactly as the admin installed it
//! signature = ECDSA-P256-SHA256-DER(collector signing key, CATALOG_CONTEXT || payload)
//! ```
//!
//! The signature covers the exact bytes, so a catalog changed after signing (on the
//! collector's disk or on the way) is refused. What the catalog says (its version, ids,
//! regexes) is the agent's business once the signature holds: this crate knows no TOML.
//! A catalog is the same for every device, so unlike a directive it names none; an old
//! signed catalog replayed later is refused by its version, which must rise.

use crate::envelope::CATALOG_CONTEXT;
use crate::p256;
use crate::pb;

/// Largest catalog accepted: the built-in one is about 50 KiB.
pub const MAX_CATALOG_BYTES: usize = 2 * 1024 * 1024;

/// Why a catalog update was refused before its content was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogUpdateError {
    #[error("catalog is {0} bytes, more than the {MAX_CATALOG_BYTES} allowed")]
    TooLarge(usize),
    #[error("catalog signature does not verify with the collector key from enrollment")]
    BadSignature,
    #[error("the collector signing key from enrollment is not a P-256 key")]
    BadKey,
    #[error("catalog is not UTF-8 text")]
    NotText,
}

/// Signs a catalog's text. `sign` receives the full message (context included) and returns
/// a DER signature; the private key stays with the caller.
pub fn seal<E>(text: &str, sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>) -> Result<pb::CatalogUpdate, E> {
    let payload = text.as_bytes().to_vec();
    let mut msg = Vec::with_capacity(CATALOG_CONTEXT.len() + payload.len());
    msg.extend_from_slice(CATALOG_CONTEXT);
    msg.extend_from_slice(&payload);
    Ok(pb::CatalogUpdate { signature: sign(&msg)?, payload })
}

/// Verifies an update under the collector's signing key and returns its text.
pub fn open<'a>(u: &'a pb::CatalogUpdate, collector_spki: &[u8]) -> Result<&'a str, CatalogUpdateError> {
    if u.payload.len() > MAX_CATALOG_BYTES {
        return Err(CatalogUpdateError::TooLarge(u.payload.len()));
    }
    p256::verify(collector_spki, CATALOG_CONTEXT, &u.payload, &u.signature).map_err(|e| match e {
        p256::KeyError::NotP256Spki => CatalogUpdateError::BadKey,
        _ => CatalogUpdateError::BadSignature,
    })?;
    std::str::from_utf8(&u.payload).map_err(|_| CatalogUpdateError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::EcdsaKeyPair;

    const TEXT: &str = "schema_version = 1\nversion = 2\n";

    fn sealed(kp: &EcdsaKeyPair, text: &str) -> pb::CatalogUpdate {
        let rng = SystemRandom::new();
        seal(text, |m| kp.sign(&rng, m).map(|s| s.as_ref().to_vec())).unwrap()
    }

    #[test]
    fn a_sealed_catalog_opens_only_under_its_key_and_unchanged() {
        let (kp, spki) = p256::test_key();
        let (_, other) = p256::test_key();
        let u = sealed(&kp, TEXT);
        assert_eq!(open(&u, &spki), Ok(TEXT));
        assert_eq!(open(&u, &other), Err(CatalogUpdateError::BadSignature));
        let mut changed = u.clone();
        changed.payload[TEXT.len() - 2] = b'9';
        assert_eq!(open(&changed, &spki), Err(CatalogUpdateError::BadSignature));
        let mut sig = u.clone();
        let last = sig.signature.len() - 1;
        sig.signature[last] ^= 1;
        assert_eq!(open(&sig, &spki), Err(CatalogUpdateError::BadSignature));
        assert_eq!(open(&u, b"not a key"), Err(CatalogUpdateError::BadKey));
    }

    #[test]
    fn a_directive_signature_over_the_same_bytes_is_no_catalog() {
        let (kp, spki) = p256::test_key();
        let rng = SystemRandom::new();
        let mut m = crate::envelope::DIRECTIVE_CONTEXT.to_vec();
        m.extend_from_slice(TEXT.as_bytes());
        let signature = kp.sign(&rng, &m).unwrap().as_ref().to_vec();
        let cross = pb::CatalogUpdate { payload: TEXT.as_bytes().to_vec(), signature };
        assert_eq!(open(&cross, &spki), Err(CatalogUpdateError::BadSignature));
    }

    #[test]
    fn oversized_and_binary_catalogs_are_refused() {
        let (kp, spki) = p256::test_key();
        let big = pb::CatalogUpdate { payload: vec![b'#'; MAX_CATALOG_BYTES + 1], signature: vec![] };
        assert_eq!(open(&big, &spki), Err(CatalogUpdateError::TooLarge(MAX_CATALOG_BYTES + 1)));
        let rng = SystemRandom::new();
        let payload = vec![0xff, 0xfe];
        let mut m = CATALOG_CONTEXT.to_vec();
        m.extend_from_slice(&payload);
        let signature = kp.sign(&rng, &m).unwrap().as_ref().to_vec();
        assert_eq!(open(&pb::CatalogUpdate { payload, signature }, &spki), Err(CatalogUpdateError::NotText));
    }
}
