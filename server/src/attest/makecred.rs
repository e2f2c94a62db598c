//! TPM2_MakeCredential in software (TPM 2.0 Library Part 1, §24 "Credential Protection"):
//! encrypt a secret to an RSA EK so that only a TPM holding that EK *and* an object with the
//! given Name can recover it with ActivateCredential.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use rand_core::{OsRng, RngCore};
use ring::hmac;
use rsa::{BigUint, Oaep, RsaPublicKey};

use super::AttestError;

/// (credential blob, encrypted seed) as TPM2B contents, for a 32-byte `secret`.
pub fn make_credential(
    ek_modulus: &[u8],
    ak_name: &[u8],
    secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), AttestError> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let ek = RsaPublicKey::new(BigUint::from_bytes_be(ek_modulus), BigUint::from(65537u32))
        .map_err(|e| AttestError::Malformed(format!("EK public key: {e}")))?;
    let encrypted_seed = ek
        .encrypt(&mut OsRng, Oaep::new_with_label::<sha2::Sha256, _>("IDENTITY\0"), &seed)
        .map_err(|e| AttestError::Malformed(format!("encrypting to the EK: {e}")))?;

    let sym_key = kdfa(&seed, b"STORAGE", ak_name, &[], 128);
    let mut identity = (secret.len() as u16).to_be_bytes().to_vec();
    identity.extend_from_slice(secret);
    cfb_mode::Encryptor::<aes::Aes128>::new(sym_key.as_slice().into(), &[0u8; 16].into())
        .encrypt(&mut identity);

    let hmac_key = kdfa(&seed, b"INTEGRITY", &[], &[], 256);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key));
    ctx.update(&identity);
    ctx.update(ak_name);
    let integrity = ctx.sign();

    let mut blob = (integrity.as_ref().len() as u16).to_be_bytes().to_vec();
    blob.extend_from_slice(integrity.as_ref());
    blob.extend_from_slice(&identity);
    Ok((blob, encrypted_seed))
}

/// KDFa with HMAC-SHA256 (TPM 2.0 Library Part 1, §11.4.10.2): counter mode, the label
/// includes its terminating zero, the length in bits ends each block's input.
fn kdfa(key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let bytes = (bits as usize).div_ceil(8);
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    out
}
