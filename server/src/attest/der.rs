//! The little DER reading attestation needs: the RSA modulus in an X.509 certificate's
//! SubjectPublicKeyInfo. (Chain validation itself is rustls-webpki's job.)

use super::AttestError;

fn bad(what: &str) -> AttestError {
    AttestError::Malformed(format!("EK certificate: {what}"))
}

/// One TLV: (tag, value, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), AttestError> {
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("bad length"));
        }
        (rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize), &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("truncated value"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), AttestError> {
    let (t, v, rest) = tlv(input)?;
    if t != tag {
        return Err(bad("unexpected structure"));
    }
    Ok((v, rest))
}

/// The modulus (without a leading zero) of the RSA key a certificate certifies.
pub fn rsa_modulus_of_certificate(cert: &[u8]) -> Result<Vec<u8>, AttestError> {
    let (cert, _) = expect(cert, 0x30)?;
    let (tbs, _) = expect(cert, 0x30)?;
    let mut rest = tbs;
    // [0] version is optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (spki, _) = expect(rest, 0x30)?;
    let (_alg, spki_rest) = expect(spki, 0x30)?;
    let (bits, _) = expect(spki_rest, 0x03)?;
    let (&unused, key) = bits.split_first().ok_or_else(|| bad("empty key"))?;
    if unused != 0 {
        return Err(bad("key bit string"));
    }
    let (rsa, _) = expect(key, 0x30)?;
    let (n, _) = expect(rsa, 0x02)?;
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    Ok(n[first..].to_vec())
}
