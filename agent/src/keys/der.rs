//! P-256 values in the shapes hardware returns them and the shapes the wire wants: every
//! backend's signature leaves as DER `SEQUENCE { r, s }`, every public key as an SPKI.
//! Portable, so the conversions of the macOS and Windows backends are tested on Linux.

use super::KeyError;

/// The TPM returns coordinates and r, s without leading zeros; P-256 wants 32 bytes.
pub fn left_pad(v: &[u8]) -> Result<[u8; 32], KeyError> {
    let v = strip_zeros(v);
    if v.len() > 32 {
        return Err(KeyError::Corrupt("ECC value longer than 32 bytes".into()));
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

pub fn strip_zeros(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[first..]
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from unsigned big-endian r and s.
pub fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let v = strip_zeros(v);
        let mut out = vec![0x02];
        let pad = v.first().is_none_or(|&b| b & 0x80 != 0);
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    }
    let (r, s) = (integer(r), integer(s));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

/// DER from a fixed-width `r || s` (what CNG's `NCryptSignHash` returns for ECDSA P-256).
pub fn der_from_raw(raw: &[u8]) -> Result<Vec<u8>, KeyError> {
    if raw.len() != 64 {
        return Err(KeyError::Corrupt(format!("a P-256 signature is 64 bytes, not {}", raw.len())));
    }
    Ok(der_signature(&raw[..32], &raw[32..]))
}

/// Re-encodes a DER ECDSA signature minimally (the Security framework's are already; a
/// signature that does not parse is refused rather than sent).
pub fn normalise_der(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let bad = || KeyError::Corrupt("the signature is not a DER ECDSA signature".into());
    let (seq, rest) = tlv(der, 0x30).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let (r, rest) = tlv(seq, 0x02).ok_or_else(bad)?;
    let (s, rest) = tlv(rest, 0x02).ok_or_else(bad)?;
    if !rest.is_empty() || strip_zeros(r).len() > 32 || strip_zeros(s).len() > 32 {
        return Err(bad());
    }
    Ok(der_signature(r, s))
}

/// One short-form DER element of tag `tag`: its content and what follows.
fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, b) = b.split_first()?;
    let (&len, b) = b.split_first()?;
    if t != tag || len >= 0x80 || b.len() < usize::from(len) {
        return None;
    }
    Some(b.split_at(usize::from(len)))
}

/// SPKI from a `BCRYPT_ECCPUBLIC_BLOB` (`ECS1` magic, 32-byte X and Y): CNG's public key.
pub fn spki_from_bcrypt_ecc_blob(blob: &[u8]) -> Result<Vec<u8>, KeyError> {
    const BCRYPT_ECDSA_PUBLIC_P256_MAGIC: u32 = 0x3153_4345; // "ECS1"
    let bad = |m: &str| KeyError::Corrupt(format!("CNG public key blob: {m}"));
    if blob.len() < 8 {
        return Err(bad("too short"));
    }
    let magic = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
    let len = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if magic != BCRYPT_ECDSA_PUBLIC_P256_MAGIC {
        return Err(bad("not an ECDSA P-256 public key"));
    }
    if len != 32 || blob.len() != 8 + 64 {
        return Err(bad("wrong length for P-256"));
    }
    let mut point = vec![0x04];
    point.extend_from_slice(&blob[8..]);
    sightline_proto::p256::spki_from_point(&point).map_err(|e| KeyError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(
            der_signature(&[0x00, 0x01], &[0x80]),
            vec![0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]
        );
        assert_eq!(der_signature(&[], &[0x7f]), vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x7f]);
    }

    #[test]
    fn raw_signatures_become_der_and_der_is_normalised() {
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32] = 0x80;
        let der = der_from_raw(&raw).unwrap();
        assert_eq!(der[..5], [0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(normalise_der(&der).unwrap(), der);
        // A non-minimal encoding (leading zero on a positive r) is re-encoded.
        let loose = [0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x05];
        assert_eq!(normalise_der(&loose).unwrap(), [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x05]);
        assert!(der_from_raw(&raw[..63]).is_err());
        for bad in [&[][..], &[0x30, 0x02, 0x02, 0x00][..], &[0x31, 0x00][..], &der[..der.len() - 1]] {
            assert!(normalise_der(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn cng_public_blobs_become_spki() {
        let pk = crate::keys::SoftwareKey::generate().unwrap();
        let spki = crate::keys::DeviceKey::public_key_spki(&pk);
        let point = sightline_proto::p256::point_from_spki(&spki).unwrap();
        let mut blob = b"ECS1".to_vec();
        blob.extend(32u32.to_le_bytes());
        blob.extend_from_slice(&point[1..]);
        assert_eq!(spki_from_bcrypt_ecc_blob(&blob).unwrap(), spki);
        let mut wrong = blob.clone();
        wrong[3] = b'2'; // ECS2: a private blob
        assert!(spki_from_bcrypt_ecc_blob(&wrong).is_err());
        assert!(spki_from_bcrypt_ecc_blob(&blob[..70]).is_err());
    }
}
