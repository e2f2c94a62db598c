//! The signed, hash-chained batch envelope.
//!
//! ```text
//! payload    = serialize(Batch { device_id, first_seq, prev_batch_hash, created_at, observations })
//! signature  = ECDSA-P256-SHA256-DER(device key, BATCH_CONTEXT || payload)
//! batch_hash = SHA-256(BATCH_HASH_CONTEXT || payload || signature)
//! ```
//!
//! Invariants this module guarantees to both sides:
//! - the signature is checked over the exact payload bytes received; nothing is
//!   re-encoded before verifying;
//! - the routing copies in the envelope (`device_id`, `first_seq`, `prev_batch_hash`) equal
//!   the signed values, so no unsigned field can steer ingest;
//! - observation sequence numbers inside a batch are contiguous from `first_seq`;
//! - a batch's hash covers its signature, so the chain commits to the evidence as stored.
//!
//! What it does *not* decide: whether `first_seq` continues the device's sequence and
//! whether `prev_batch_hash` equals the stored head. That needs the collector's state and
//! lives in its ingest.

use prost::Message;

use crate::p256;
use crate::pb;

/// Domain-separation prefix of batch signatures.
pub const BATCH_CONTEXT: &[u8] = b"sightline.v1.batch\0";
/// Domain-separation prefix of batch hashes.
pub const BATCH_HASH_CONTEXT: &[u8] = b"sightline.v1.batch-hash\0";
/// Domain-separation prefix of the enrollment proof of possession.
pub const ENROLL_POP_CONTEXT: &[u8] = b"sightline.v1.enroll-pop\0";
/// Domain-separation prefix of collector directives.
pub const DIRECTIVE_CONTEXT: &[u8] = b"sightline.v1.directive\0";
/// Domain-separation prefix of detection catalog updates, signed by the collector.
pub const CATALOG_CONTEXT: &[u8] = b"sightline.v1.catalog\0";
/// Domain-separation prefix of the device claims that open every stream.
pub const CLAIMS_CONTEXT: &[u8] = b"sightline.v1.claims\0";
/// Domain-separation prefix of a batch's presentation on one stream.
pub const PRESENT_CONTEXT: &[u8] = b"sightline.v1.present\0";
/// Domain-separation prefix of a certificate renewal request.
pub const RENEW_CONTEXT: &[u8] = b"sightline.v1.renew\0";
/// Domain-separation prefix of an evidence bundle's manifest, signed by the collector.
pub const EVIDENCE_CONTEXT: &[u8] = b"sightline.v1.evidence\0";
/// Domain-separation prefix of a recertification campaign report, signed by the collector.
pub const REVIEW_REPORT_CONTEXT: &[u8] = b"sightline.v1.review-report\0";

/// Hash of the (absent) predecessor of a device's first batch.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Largest payload accepted; keeps one batch well under gRPC's 4 MiB message limit.
pub const MAX_PAYLOAD_BYTES: usize = 3 * 1024 * 1024;

/// Why an envelope was refused. Each variant is a fault of the sender (or an attacker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES} allowed")]
    TooLarge(usize),
    #[error("payload is not a valid Batch: {0}")]
    Decode(String),
    #[error("envelope field {0} does not match the signed payload")]
    Mismatch(&'static str),
    #[error("prev_batch_hash must be 32 bytes")]
    BadHashLength,
    #[error("batch holds no observations")]
    Empty,
    #[error("observation sequence numbers are not contiguous from first_seq")]
    NonContiguous,
    #[error("device key: {0}")]
    Key(#[from] p256::KeyError),
}

/// A batch whose signature and internal consistency have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedBatch {
    pub batch: pb::Batch,
    pub first_seq: u64,
    pub last_seq: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Serializes and signs a batch. `sign` receives the full message to sign (context
/// included) and returns a DER ECDSA P-256/SHA-256 signature; it is a closure so this
/// crate never sees a private key.
pub fn seal<E>(
    batch: &pb::Batch,
    device_key_spki: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<(pb::SignedBatch, [u8; 32]), E> {
    let payload = batch.encode_to_vec();
    let mut msg = Vec::with_capacity(BATCH_CONTEXT.len() + payload.len());
    msg.extend_from_slice(BATCH_CONTEXT);
    msg.extend_from_slice(&payload);
    let signature = sign(&msg)?;
    let hash = batch_hash(&payload, &signature);
    let signed = pb::SignedBatch {
        device_id: batch.device_id.clone(),
        key_id: p256::key_id(device_key_spki),
        first_seq: batch.first_seq,
        prev_batch_hash: batch.prev_batch_hash.clone(),
        payload,
        signature,
    };
    Ok((signed, hash))
}

/// Verifies a signed batch against the device key it claims to come from.
pub fn open(signed: &pb::SignedBatch, device_key_spki: &[u8]) -> Result<VerifiedBatch, EnvelopeError> {
    if signed.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(EnvelopeError::TooLarge(signed.payload.len()));
    }
    // Signature first: nothing from an unauthenticated payload is trusted, not even its length fields.
    p256::verify(device_key_spki, BATCH_CONTEXT, &signed.payload, &signed.signature)?;
    let batch =
        pb::Batch::decode(signed.payload.as_slice()).map_err(|e| EnvelopeError::Decode(e.to_string()))?;
    if batch.device_id != signed.device_id {
        return Err(EnvelopeError::Mismatch("device_id"));
    }
    if batch.first_seq != signed.first_seq {
        return Err(EnvelopeError::Mismatch("first_seq"));
    }
    if batch.prev_batch_hash != signed.prev_batch_hash {
        return Err(EnvelopeError::Mismatch("prev_batch_hash"));
    }
    if signed.key_id != p256::key_id(device_key_spki) {
        return Err(EnvelopeError::Mismatch("key_id"));
    }
    let prev_hash: [u8; 32] =
        batch.prev_batch_hash.as_slice().try_into().map_err(|_| EnvelopeError::BadHashLength)?;
    if batch.observations.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    for (i, obs) in batch.observations.iter().enumerate() {
        if Some(obs.seq) != batch.first_seq.checked_add(i as u64) {
            return Err(EnvelopeError::NonContiguous);
        }
    }
    let last_seq = batch.first_seq + batch.observations.len() as u64 - 1;
    Ok(VerifiedBatch {
        first_seq: batch.first_seq,
        last_seq,
        prev_hash,
        hash: batch_hash(&signed.payload, &signed.signature),
        batch,
    })
}

/// The chain hash of a batch as sent.
pub fn batch_hash(payload: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(BATCH_HASH_CONTEXT);
    ctx.update(payload);
    ctx.update(signature);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The message an enrolling agent signs to prove it holds the device key, binding the TLS
/// key its client certificate will carry.
pub fn enroll_pop_message(nonce: &[u8], device_key_spki: &[u8], tls_key_spki: &[u8]) -> Vec<u8> {
    framed(&[nonce, device_key_spki, tls_key_spki])
}

/// Concatenates parts with 32-bit length prefixes, so no two part lists sign alike.
fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        msg.extend_from_slice(&(part.len() as u32).to_be_bytes());
        msg.extend_from_slice(part);
    }
    msg
}

/// What a device key signs to present a batch on one stream: the stream's nonce and the
/// batch's hash, length-prefixed.
pub fn presentation_message(stream_nonce: &[u8], batch_hash: &[u8; 32]) -> Vec<u8> {
    framed(&[stream_nonce, batch_hash])
}

/// What a device key signs to ask for a certificate for `tls_key_spki` on one stream.
pub fn renew_message(stream_nonce: &[u8], tls_key_spki: &[u8]) -> Vec<u8> {
    framed(&[stream_nonce, tls_key_spki])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::EcdsaKeyPair;

    fn key() -> (EcdsaKeyPair, Vec<u8>) {
        p256::test_key()
    }

    fn batch(first_seq: u64, n: u64) -> pb::Batch {
        pb::Batch {
            device_id: "dev-1".into(),
            first_seq,
            prev_batch_hash: GENESIS_HASH.to_vec(),
            created_at_ms: 1,
            observations: (0..n)
                .map(|i| pb::Observation { seq: first_seq + i, observed_at_ms: 1, change: 1, item: None })
                .collect(),
        }
    }

    fn sealed(b: &pb::Batch, kp: &EcdsaKeyPair, spki: &[u8]) -> (pb::SignedBatch, [u8; 32]) {
        let rng = SystemRandom::new();
        seal(b, spki, |m| kp.sign(&rng, m).map(|s| s.as_ref().to_vec())).unwrap()
    }

    #[test]
    fn sealed_batch_opens_with_same_hash() {
        let (kp, spki) = key();
        let (signed, hash) = sealed(&batch(1, 3), &kp, &spki);
        let v = open(&signed, &spki).unwrap();
        assert_eq!((v.first_seq, v.last_seq, v.hash), (1, 3, hash));
    }

    #[test]
    fn tampering_is_refused() {
        let (kp, spki) = key();
        let (other_kp, other_spki) = key();
        let (signed, _) = sealed(&batch(1, 2), &kp, &spki);

        let mut s = signed.clone();
        s.payload[3] ^= 1;
        assert_eq!(open(&s, &spki).unwrap_err(), EnvelopeError::Key(p256::KeyError::BadSignature));

        assert_eq!(open(&signed, &other_spki).unwrap_err(), EnvelopeError::Key(p256::KeyError::BadSignature));
        let _ = other_kp;

        let mut s = signed.clone();
        s.first_seq = 9;
        assert_eq!(open(&s, &spki).unwrap_err(), EnvelopeError::Mismatch("first_seq"));

        let mut s = signed.clone();
        s.device_id = "dev-2".into();
        assert_eq!(open(&s, &spki).unwrap_err(), EnvelopeError::Mismatch("device_id"));
    }

    #[test]
    fn malformed_batches_are_refused() {
        let (kp, spki) = key();
        let mut b = batch(5, 2);
        b.observations[1].seq = 7;
        assert_eq!(open(&sealed(&b, &kp, &spki).0, &spki).unwrap_err(), EnvelopeError::NonContiguous);
        assert_eq!(open(&sealed(&batch(5, 0), &kp, &spki).0, &spki).unwrap_err(), EnvelopeError::Empty);
        let mut b = batch(1, 1);
        b.prev_batch_hash = vec![1, 2];
        assert_eq!(open(&sealed(&b, &kp, &spki).0, &spki).unwrap_err(), EnvelopeError::BadHashLength);
    }

    /// Every single-byte change anywhere in payload or signature is refused, and opening
    /// arbitrary bytes never panics.
    #[test]
    fn every_bit_flip_is_refused() {
        let (kp, spki) = key();
        let (signed, _) = sealed(&batch(1, 4), &kp, &spki);
        for i in 0..signed.payload.len() {
            let mut s = signed.clone();
            s.payload[i] ^= 0x01;
            assert!(open(&s, &spki).is_err(), "payload byte {i}");
        }
        for i in 0..signed.signature.len() {
            let mut s = signed.clone();
            s.signature[i] ^= 0x80;
            assert!(open(&s, &spki).is_err(), "signature byte {i}");
        }
        let mut s = signed.clone();
        s.payload.truncate(signed.payload.len() / 2);
        assert!(open(&s, &spki).is_err());
        for n in [0usize, 1, 7, 64, 1000] {
            let mut junk = signed.clone();
            junk.payload = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            junk.signature = (0..n).map(|i| (i * 17) as u8).collect();
            assert!(open(&junk, &spki).is_err());
        }
    }

    #[test]
    fn pop_message_is_unambiguous() {
        assert_ne!(enroll_pop_message(b"ab", b"c", b""), enroll_pop_message(b"a", b"bc", b""));
    }
}
