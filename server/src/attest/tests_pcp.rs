//! The verifier with an RSA AK, the kind the Windows Platform Crypto Provider makes: vectors
//! built from the TPM 2.0 structures (Part 2: TPMT_PUBLIC, TPMS_ATTEST) around the swtpm EK
//! and device key of the golden vectors, signed with a fabricated RSA key
//! (`testdata/fake-ak-rsa2048.pk8.pem`), plus a real PCP AIK (`testdata/windows-pcp-aik.json`).

use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use super::tests::{Golden, golden, rejected_with};
use super::tpm2::{ALG_NULL, ALG_RSA, ALG_RSASSA, ALG_SHA1, ALG_SHA256, TpmPublic, attrs};
use super::*;

const AK_PEM: &[u8] = include_bytes!("testdata/fake-ak-rsa2048.pk8.pem");
const OTHER_PEM: &[u8] = include_bytes!("testdata/fake-other-rsa2048.pk8.pem");
/// The restricted, fixed, TPM-generated signing key attributes a PCP AIK has (`0x00050472`:
/// also userWithAuth and noDA).
const PCP_AIK_ATTRIBUTES: u32 = 0x0005_0472;

fn key_pair(pem: &[u8]) -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(PrivatePkcs8KeyDer::from_pem_slice(pem).unwrap().secret_pkcs8_der()).unwrap()
}

fn tpm2b(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// An RSA TPMT_PUBLIC: `scheme` is (algorithm, hash) or NULL.
fn rsa_public(modulus: &[u8], attributes: u32, scheme: Option<(u16, u16)>) -> Vec<u8> {
    let mut area = [ALG_RSA, ALG_SHA256].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    area.extend(attributes.to_be_bytes());
    area.extend(tpm2b(&[0x5c; 32])); // authPolicy
    area.extend(ALG_NULL.to_be_bytes()); // symmetric
    match scheme {
        Some((alg, hash)) => [alg, hash].iter().for_each(|v| area.extend(v.to_be_bytes())),
        None => area.extend(ALG_NULL.to_be_bytes()),
    }
    area.extend(((modulus.len() * 8) as u16).to_be_bytes());
    area.extend(0u32.to_be_bytes()); // exponent: the default, 65537
    area.extend(tpm2b(modulus));
    area
}

/// The public area of an RSA AK as the PCP makes it, around `key`'s public key.
fn ak_public(key: &RsaKeyPair, hash: u16) -> Vec<u8> {
    let n = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public()).n;
    rsa_public(&n, PCP_AIK_ATTRIBUTES, Some((ALG_RSASSA, hash)))
}

/// A TPMS_ATTEST of TPM2_Certify naming `name` over `nonce`.
fn certify_info(nonce: &[u8], name: &[u8]) -> Vec<u8> {
    let mut a = 0xff54_4347u32.to_be_bytes().to_vec(); // TPM_GENERATED_VALUE
    a.extend(0x8017u16.to_be_bytes()); // TPM_ST_ATTEST_CERTIFY
    a.extend(tpm2b(&[0x00, 0x0b, 0x01, 0x02])); // qualifiedSigner
    a.extend(tpm2b(nonce)); // extraData
    a.extend([0x10; 17]); // clockInfo
    a.extend([0x20; 8]); // firmwareVersion
    a.extend(tpm2b(name)); // TPMS_CERTIFY_INFO.name
    a.extend(tpm2b(&[0x00, 0x0b, 0x03])); // qualifiedName
    a
}

fn sign_sha256(key: &RsaKeyPair, msg: &[u8]) -> Vec<u8> {
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).unwrap();
    sig
}

/// RSASSA-PKCS1-v1_5 with SHA-1, which ring does not sign: DigestInfo(SHA-1) by hand.
fn sign_sha1(pem: &[u8], msg: &[u8]) -> Vec<u8> {
    use rsa::pkcs8::DecodePrivateKey;
    const SHA1_DIGEST_INFO: [u8; 15] =
        [0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs8_der(der.secret_pkcs8_der()).unwrap();
    let mut digest_info = SHA1_DIGEST_INFO.to_vec();
    digest_info
        .extend_from_slice(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, msg).as_ref());
    key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), &digest_info).unwrap()
}

fn check(g: &Golden, ak: &[u8]) -> Result<Evidence, AttestError> {
    check_evidence(
        &g.ek_certificate,
        &g.ek_public,
        ak,
        &g.device_key_public,
        &g.device_key_spki,
        &g.roots,
        &[],
    )
}

#[test]
fn an_rsa_ak_certification_over_the_nonce_naming_the_device_key_verifies() {
    let g = golden();
    let key = key_pair(AK_PEM);
    let nonce = [0xa5; 32];
    let secret = [7; 32];
    for (hash, sign) in [
        (ALG_SHA256, &(|m: &[u8]| sign_sha256(&key_pair(AK_PEM), m)) as &dyn Fn(&[u8]) -> Vec<u8>),
        (ALG_SHA1, &|m: &[u8]| sign_sha1(AK_PEM, m)),
    ] {
        let ak = ak_public(&key, hash);
        let ev = check(&g, &ak).unwrap();
        assert!(ev.ek_trusted);
        assert_eq!(ev.ak.scheme(), (ALG_RSASSA, hash));
        let info = certify_info(&nonce, &ev.device_key.name());
        let sig = sign(&info);
        check_activation(&ev, &secret, &secret, &nonce, &info, &sig).unwrap();

        // The credential for the EK binds this AK's Name, as for an ECC AK.
        let (blob, _) =
            makecred::make_credential(ev.ek.rsa_modulus().unwrap(), &ev.ak.name(), &secret).unwrap();
        assert_eq!(blob.len(), 2 + 32 + 2 + 32);

        rejected_with(check_activation(&ev, &secret, &[0; 32], &nonce, &info, &sig), "activation");
        rejected_with(check_activation(&ev, &secret, &secret, &[0x5a; 32], &info, &sig), "nonce");
        // A certification of another key (the golden ECC AK), properly signed.
        let other_name = TpmPublic::parse(&g.ak_public).unwrap().name();
        let wrong = certify_info(&nonce, &other_name);
        rejected_with(check_activation(&ev, &secret, &secret, &nonce, &wrong, &sign(&wrong)), "another key");
        // Signed by a key that is not the AK.
        let other = key_pair(OTHER_PEM);
        let forged = if hash == ALG_SHA1 { sign_sha1(OTHER_PEM, &info) } else { sign_sha256(&other, &info) };
        rejected_with(
            check_activation(&ev, &secret, &secret, &nonce, &info, &forged),
            "not signed by the AK",
        );
        let mut tampered = info.clone();
        tampered[40] ^= 1;
        rejected_with(
            check_activation(&ev, &secret, &secret, &nonce, &tampered, &sig),
            "not signed by the AK",
        );
        rejected_with(
            check_activation(&ev, &secret, &secret, &nonce, &info, &sig[..255]),
            "not signed by the AK",
        );
    }
}

#[test]
fn an_rsa_ak_signs_only_with_the_hash_its_area_names() {
    let g = golden();
    let key = key_pair(AK_PEM);
    let (nonce, secret) = ([1; 32], [2; 32]);
    let sha1_ak = check(&g, &ak_public(&key, ALG_SHA1)).unwrap();
    let sha256_ak = check(&g, &ak_public(&key, ALG_SHA256)).unwrap();
    let info = certify_info(&nonce, &sha1_ak.device_key.name());
    rejected_with(
        check_activation(&sha1_ak, &secret, &secret, &nonce, &info, &sign_sha256(&key, &info)),
        "not signed by the AK",
    );
    rejected_with(
        check_activation(&sha256_ak, &secret, &secret, &nonce, &info, &sign_sha1(AK_PEM, &info)),
        "not signed by the AK",
    );
}

#[test]
fn rsa_aks_that_are_not_restricted_tpm_signing_keys_are_refused() {
    let g = golden();
    let n = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key_pair(AK_PEM).public()).n;
    let rsassa = Some((ALG_RSASSA, ALG_SHA256));
    let cases = [
        ("no scheme", rsa_public(&n, PCP_AIK_ATTRIBUTES, None)),
        ("RSAPSS", rsa_public(&n, PCP_AIK_ATTRIBUTES, Some((0x0016, ALG_SHA256)))),
        ("RSASSA-SHA384", rsa_public(&n, PCP_AIK_ATTRIBUTES, Some((ALG_RSASSA, 0x000c)))),
        ("not restricted", rsa_public(&n, PCP_AIK_ATTRIBUTES & !attrs::RESTRICTED, rsassa)),
        ("not fixedTPM", rsa_public(&n, PCP_AIK_ATTRIBUTES & !attrs::FIXED_TPM, rsassa)),
        ("imported", rsa_public(&n, PCP_AIK_ATTRIBUTES & !attrs::SENSITIVE_DATA_ORIGIN, rsassa)),
        ("RSA-1024", rsa_public(&n[..128], PCP_AIK_ATTRIBUTES, rsassa)),
    ];
    for (what, ak) in cases {
        match check(&g, &ak) {
            Err(AttestError::Rejected(m)) => assert!(m.contains("restricted signing key"), "{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn the_ecc_ak_path_is_unchanged() {
    let g = golden();
    let ev = check(&g, &g.ak_public).unwrap();
    assert!(matches!(AkVerifier::of(&ev.ak), Some(AkVerifier::EcdsaP256(_))));
    // An ECC AK's certification is DER ECDSA; raw RSA-sized bytes are not.
    let info = certify_info(&[0; 32], &ev.device_key.name());
    rejected_with(
        check_activation(&ev, &[1; 32], &[1; 32], &[0; 32], &info, &[0; 256]),
        "not signed by the AK",
    );
}

#[test]
fn a_real_platform_crypto_provider_aik_is_accepted_and_its_signature_verifies() {
    let v: serde_json::Value = serde_json::from_str(include_str!("testdata/windows-pcp-aik.json")).unwrap();
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let g = golden();
    let ak_area = h("ak_public");
    let ev = check(&g, &ak_area).unwrap();
    assert_eq!(ev.ak.scheme(), (ALG_RSASSA, ALG_SHA1), "the provider's AIKs sign with SHA-1");
    assert_eq!(ev.ak.attributes, PCP_AIK_ATTRIBUTES);

    // Its TPM2_CertifyCreation, signed by the TPM with this AIK: a TPMT_SIGNATURE (RSASSA,
    // SHA-1, 256 bytes) whose signature bytes are what the verifier takes.
    let attest = h("create_attestation");
    let tpmt = h("create_signature");
    assert_eq!(&tpmt[..6], &[0x00, 0x14, 0x00, 0x04, 0x01, 0x00]);
    let sig = &tpmt[6..];
    let verifier = AkVerifier::of(&ev.ak).unwrap();
    verifier.verify(&attest, sig).unwrap();
    let mut tampered = attest.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(verifier.verify(&tampered, sig).is_err());
    // The same area with its scheme respelled as SHA-256 no longer verifies the TPM's signature.
    let mut sha256_area = ak_area.clone();
    sha256_area[46..48].copy_from_slice(&ALG_SHA256.to_be_bytes());
    let respelled = TpmPublic::parse(&sha256_area).unwrap();
    assert_eq!(respelled.scheme(), (ALG_RSASSA, ALG_SHA256));
    assert!(AkVerifier::of(&respelled).unwrap().verify(&attest, sig).is_err());
}
