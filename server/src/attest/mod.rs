//! TPM 2.0 attestation checks, done in software (the collector has no TPM).
//!
//! The ceremony (after google/go-attestation, Teleport and SPIRE):
//! 1. the EK certificate chains to a configured root (`serve --ek-roots`) and certifies the
//!    very EK public area the TPM showed;
//! 2. the AK is a restricted signing key (ECC P-256, as tpm2-tss makes it on Linux, or
//!    RSA-2048 with RSASSA, as the Windows Platform Crypto Provider makes AIKs);
//!    [`makecred::make_credential`] encrypts a secret to the EK bound to the AK's Name, which
//!    only the TPM holding both can recover;
//! 3. the device key's public area says it was generated inside the TPM and can never leave
//!    it (`fixedTPM`, `fixedParent`, `sensitiveDataOrigin`), its point is the enrolled key,
//!    and TPM2_Certify by the AK over the collector's nonce names exactly that key.
//!
//! Only when all three hold is a device `hardware_attested`. The same checks apply whichever
//! way the agent reached its TPM (`tpm` through tpm2-tss, `windows_pcp` through the Platform
//! Crypto Provider).

pub mod der;
pub mod makecred;
pub mod tpm2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pcp;

use sightline_proto::p256;

use self::tpm2::{ALG_RSASSA, ALG_SHA1, ALG_SHA256, Attest, TpmPublic, attrs};

/// Why attestation evidence was refused; each message is shown to the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    #[error("malformed TPM structure: {0}")]
    Malformed(String),
    #[error("{0}")]
    Rejected(String),
}

fn rejected(msg: impl Into<String>) -> AttestError {
    AttestError::Rejected(msg.into())
}

/// The parsed and checked public areas of an enrollment.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub ek: TpmPublic,
    pub ak: TpmPublic,
    pub device_key: TpmPublic,
    /// Whether the EK certificate chains to a configured root.
    pub ek_trusted: bool,
}

/// TCG EK certificate extended key usage, 2.23.133.8.1 (DER content octets).
const TCG_KP_EK_CERTIFICATE: &[u8] = &[0x67, 0x81, 0x05, 0x08, 0x01];

/// Checks the Begin evidence: public areas, attributes, and the EK certificate.
pub fn check_evidence(
    ek_certificate: &[u8],
    ek_public: &[u8],
    ak_public: &[u8],
    device_key_public: &[u8],
    device_key_spki: &[u8],
    ek_roots: &[Vec<u8>],
    ek_allowlist: &[String],
) -> Result<Evidence, AttestError> {
    let ek = TpmPublic::parse(ek_public)?;
    let ak = TpmPublic::parse(ak_public)?;
    let device_key = TpmPublic::parse(device_key_public)?;

    if ek.rsa_modulus().is_none() || !ek.is_aes128_cfb() {
        return Err(rejected("EK must be an RSA-2048 key from the default template (AES-128-CFB)"));
    }
    let required_ak = attrs::FIXED_TPM
        | attrs::FIXED_PARENT
        | attrs::SENSITIVE_DATA_ORIGIN
        | attrs::RESTRICTED
        | attrs::SIGN;
    if ak.attributes & required_ak != required_ak || AkVerifier::of(&ak).is_none() {
        return Err(rejected(
            "AK must be a restricted signing key generated in the TPM: ECC P-256, or RSA-2048 with RSASSA (SHA-256 or SHA-1)",
        ));
    }
    let required_key = attrs::FIXED_TPM | attrs::FIXED_PARENT | attrs::SENSITIVE_DATA_ORIGIN | attrs::SIGN;
    if device_key.attributes & attrs::FIXED_TPM == 0 {
        return Err(rejected("device key is not fixedTPM: it could leave the TPM"));
    }
    if device_key.attributes & required_key != required_key || device_key.attributes & attrs::RESTRICTED != 0
    {
        return Err(rejected(
            "device key must be an unrestricted signing key generated in the TPM (fixedParent, sensitiveDataOrigin)",
        ));
    }
    let point = device_key.ecc_point().ok_or_else(|| rejected("device key is not an ECC P-256 key"))?;
    if p256::point_from_spki(device_key_spki).ok() != Some(point.as_slice()) {
        return Err(rejected("the device key's TPM public area is not the enrolled device key"));
    }

    // An EK an administrator allow-listed (for TPMs without an EK certificate) is trusted as
    // is; the list may name it by its identity or by the hash earlier versions showed.
    let ids = ek_identities(ek_public)?;
    let allowed = ek_allowlist.iter().any(|h| ids.iter().any(|id| h.eq_ignore_ascii_case(id)));
    let ek_trusted = if allowed {
        true
    } else if ek_roots.is_empty() || ek_certificate.is_empty() {
        false
    } else {
        verify_ek_chain(ek_certificate, ek_roots)?;
        let cert_modulus = der::rsa_modulus_of_certificate(ek_certificate)?;
        if ek.rsa_modulus() != Some(cert_modulus.as_slice()) {
            return Err(rejected("the EK certificate is for another key than this TPM's EK"));
        }
        true
    };
    Ok(Evidence { ek, ak, device_key, ek_trusted })
}

/// Domain separation of the TPM identity hash.
const EK_IDENTITY_CONTEXT: &[u8] = b"sightline.v1.tpm-ek-rsa\0";

/// How a TPM is identified (the device's `hardware_id`, `--ek-allow`): SHA-256, hex, over
/// its EK's public key in one canonical form — the exponent with the TPM's "0 means 65537"
/// resolved, then the modulus without leading zeros. The rest of the public area
/// (attributes, policy, how the exponent is spelled) does not change which TPM it is, so a
/// revoked TPM cannot come back under a re-encoded area.
pub fn ek_identity(ek_public: &[u8]) -> Result<String, AttestError> {
    let ek = TpmPublic::parse(ek_public)?;
    let (modulus, exponent) = ek.rsa_key().ok_or_else(|| rejected("EK is not an RSA key"))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(EK_IDENTITY_CONTEXT);
    ctx.update(&exponent.to_be_bytes());
    ctx.update(modulus);
    Ok(hex::encode(ctx.finish()))
}

/// The identity earlier collectors recorded: SHA-256 of the EK public area's bytes. Still
/// matched, so devices enrolled before keep their record (and a revoked one stays refused);
/// each is rewritten to [`ek_identity`] when it enrolls again.
pub fn ek_hash_legacy(ek_public: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, ek_public))
}

/// Every spelling of a TPM's identity, the current one first: then the older hash of the
/// area as sent and of the area with its exponent written the other way (0 or 65537), so a
/// TPM revoked under the older identity cannot come back by respelling its exponent.
pub fn ek_identities(ek_public: &[u8]) -> Result<Vec<String>, AttestError> {
    let mut ids = vec![ek_identity(ek_public)?, ek_hash_legacy(ek_public)];
    for exponent in [0, 65_537] {
        if let Some(area) = TpmPublic::respell_rsa_exponent(ek_public, exponent) {
            let h = ek_hash_legacy(&area);
            if !ids.contains(&h) {
                ids.push(h);
            }
        }
    }
    Ok(ids)
}

fn verify_ek_chain(cert: &[u8], roots: &[Vec<u8>]) -> Result<(), AttestError> {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let roots: Vec<CertificateDer<'_>> = roots.iter().map(|r| CertificateDer::from(r.as_slice())).collect();
    let anchors = roots
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(r)
                .map_err(|e| rejected(format!("EK root is not a usable certificate: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let der = CertificateDer::from(cert);
    let ee = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| rejected(format!("EK certificate is malformed: {e}")))?;
    // Intermediates rarely carry the EK usage, and webpki applies a required EKU to every
    // certificate of the path, so demanding it would refuse real manufacturer chains: a
    // certificate must carry it only if it names extended key usages at all.
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        UnixTime::now(),
        webpki::KeyUsage::required_if_present(TCG_KP_EK_CERTIFICATE),
        None,
        None,
    )
    .map_err(|e| rejected(format!("EK certificate does not chain to a trusted EK root ({e:?})")))?;
    Ok(())
}

/// Checks the Complete answer: the activated secret and the certification of the device
/// key by the AK over the nonce.
pub fn check_activation(
    evidence: &Evidence,
    expected_secret: &[u8],
    activated_secret: &[u8],
    nonce: &[u8],
    certify_info: &[u8],
    certify_signature: &[u8],
) -> Result<(), AttestError> {
    if !constant_time_eq(expected_secret, activated_secret) {
        return Err(rejected("credential activation failed: the AK is not in the TPM that holds this EK"));
    }
    AkVerifier::of(&evidence.ak)
        .ok_or_else(|| rejected("AK is neither an ECC P-256 nor an RSA-2048 RSASSA key"))?
        .verify(certify_info, certify_signature)
        .map_err(|_| rejected("certification is not signed by the AK"))?;
    let attest = Attest::parse(certify_info)?;
    if attest.extra_data != nonce {
        return Err(rejected("certification is not over this enrollment's nonce (replayed?)"));
    }
    if attest.certified_name != evidence.device_key.name() {
        return Err(rejected("certification names another key than the device key"));
    }
    Ok(())
}

/// How an AK's certifications verify. A restricted signing key signs only with the scheme
/// in its public area, so the area alone says which verification applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AkVerifier {
    /// ECDSA P-256/SHA-256; the signature is DER (how the agent sends an ECC AK's).
    EcdsaP256(Vec<u8>),
    /// RSASSA-PKCS1-v1_5 over an RSA-2048 key; the signature is the raw signature bytes.
    RsaPkcs1 { modulus: Vec<u8>, exponent: Vec<u8>, sha1: bool },
}

impl AkVerifier {
    pub(crate) fn of(ak: &TpmPublic) -> Option<AkVerifier> {
        if let Some(point) = ak.ecc_point() {
            return Some(AkVerifier::EcdsaP256(point));
        }
        ak.rsa_modulus()?;
        let (modulus, exponent) = ak.rsa_key()?;
        // SHA-1 because that is what the Platform Crypto Provider gives its AIKs (go-attestation
        // certifies with it, Windows Hello's TPM attestations are "RS1"). A collision does not
        // help a forger here: the signed TPMS_ATTEST is the TPM's, over the collector's fresh
        // nonce and the Name (a SHA-256) of a key, with no field a forger can fill freely.
        let sha1 = match ak.scheme() {
            (ALG_RSASSA, ALG_SHA256) => false,
            (ALG_RSASSA, ALG_SHA1) => true,
            _ => return None,
        };
        let exponent = exponent.to_be_bytes();
        let first = exponent.iter().position(|&b| b != 0).unwrap_or(exponent.len());
        Some(AkVerifier::RsaPkcs1 { modulus: modulus.to_vec(), exponent: exponent[first..].to_vec(), sha1 })
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ring::error::Unspecified> {
        use ring::signature;
        match self {
            AkVerifier::EcdsaP256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
            }
            AkVerifier::RsaPkcs1 { modulus, exponent, sha1 } => {
                let alg = if *sha1 {
                    &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents { n: modulus, e: exponent }.verify(alg, message, signature)
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
