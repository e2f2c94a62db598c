//! What several targets share: one P-256 key for the process.

use std::sync::LazyLock;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

pub struct TestKey {
    pair: EcdsaKeyPair,
    pub spki: Vec<u8>,
}

impl TestKey {
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        Ok(self.pair.sign(&SystemRandom::new(), msg)?.as_ref().to_vec())
    }
}

pub static KEY: LazyLock<TestKey> = LazyLock::new(|| {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).expect("key");
    let spki = sightline_proto::p256::spki_from_point(pair.public_key().as_ref()).expect("spki");
    TestKey { pair, spki }
});
