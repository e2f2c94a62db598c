//! The ID token checks against tokens signed here with keys made for the test: one RSA key
//! (RS256) and one P-256 key (ES256), published in a JWKS as a provider would.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

use super::jwt::{Expected, IdTokenError, verify};
use super::*;

const ISS: &str = "https://idp.example.com/oauth2/default";
const CLIENT: &str = "sightline";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_800_000_000;

struct Keys {
    rsa: rsa::RsaPrivateKey,
    ec: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key");
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("P-256 key");
        let rsa = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
        Keys { rsa, ec, rng }
    })
}

fn jwks() -> Value {
    let k = keys();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let point = k.ec.public_key().as_ref();
    json!({"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
         "n": b64(&k.rsa.n().to_bytes_be()), "e": b64(&k.rsa.e().to_bytes_be())},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]})
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": CLIENT, "sub": "00u1", "email": "ada@example.com", "nonce": NONCE,
           "iat": NOW - 5, "exp": NOW + 300, "groups": ["sightline-admins", "everyone"]})
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWS over `claims` with header `header`, signed as `alg` says (RS256, ES256, or left
/// unsigned).
fn token(header: Value, claims: &Value) -> String {
    let signing = format!("{}.{}", b64json(&header), b64json(claims));
    let k = keys();
    let sig = match header["alg"].as_str() {
        Some("RS256") => {
            // DigestInfo for SHA-256 (RFC 8017 §9.2), then the digest.
            const PREFIX: [u8; 19] = [
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
                0x05, 0x00, 0x04, 0x20,
            ];
            let scheme = rsa::Pkcs1v15Sign { hash_len: Some(32), prefix: Box::new(PREFIX) };
            let digest = ring::digest::digest(&ring::digest::SHA256, signing.as_bytes());
            k.rsa.sign(scheme, digest.as_ref()).expect("RSA signature")
        }
        Some("ES256") => k.ec.sign(&k.rng, signing.as_bytes()).expect("ECDSA signature").as_ref().to_vec(),
        _ => Vec::new(),
    };
    format!("{signing}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn rs(claims: &Value) -> String {
    token(json!({"alg": "RS256", "kid": "r1", "typ": "JWT"}), claims)
}

fn check(t: &str) -> Result<Map<String, Value>, IdTokenError> {
    verify(t, &jwks(), &Expected { issuer: ISS, client_id: CLIENT, nonce: NONCE, now: NOW })
}

fn with(k: &str, v: Value) -> Value {
    let mut c = claims();
    c[k] = v;
    c
}

#[test]
fn good_tokens_verify_with_either_algorithm() {
    let c = check(&rs(&claims())).expect("RS256");
    assert_eq!(c["sub"], "00u1");
    let es = token(json!({"alg": "ES256", "kid": "e1"}), &claims());
    assert!(check(&es).is_ok(), "ES256");
    // One key of the type, no kid: still found.
    assert!(check(&token(json!({"alg": "ES256"}), &claims())).is_ok());
}

#[test]
fn a_tampered_or_wrongly_keyed_token_fails_the_signature() {
    let t = rs(&claims());
    let (head, rest) = t.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = format!("{head}.{}.{sig}", b64json(&with("groups", json!(["sightline-admins", "x"]))));
    assert_eq!(check(&forged), Err(IdTokenError::Signature));
    // An RS256 signature presented under the EC key's kid: that key does not fit RS256.
    let swapped = token(json!({"alg": "RS256", "kid": "e1"}), &claims());
    assert_eq!(check(&swapped), Err(IdTokenError::UnknownKey));
    let unknown = token(json!({"alg": "RS256", "kid": "nope"}), &claims());
    assert_eq!(check(&unknown), Err(IdTokenError::UnknownKey));
}

#[test]
fn alg_none_and_symmetric_algorithms_are_refused() {
    let none = token(json!({"alg": "none"}), &claims());
    assert_eq!(check(&none), Err(IdTokenError::Algorithm("none".into())));
    let unsigned = format!("{}.{}.", b64json(&json!({"alg": "none"})), b64json(&claims()));
    assert_eq!(check(&unsigned), Err(IdTokenError::Algorithm("none".into())));
    // HS256 keyed with the public key, the classic confusion: refused before any key is used.
    let hs = token(json!({"alg": "HS256", "kid": "r1"}), &claims());
    assert_eq!(check(&hs), Err(IdTokenError::Algorithm("HS256".into())));
    assert!(matches!(check("a.b"), Err(IdTokenError::Malformed(_))));
}

#[test]
fn issuer_audience_times_and_nonce_are_enforced() {
    assert_eq!(
        check(&rs(&with("iss", json!("https://evil.example.com")))),
        Err(IdTokenError::Issuer("https://evil.example.com".into()))
    );
    assert_eq!(check(&rs(&with("aud", json!("someone-else")))), Err(IdTokenError::Audience));
    assert!(check(&rs(&with("aud", json!([CLIENT])))).is_ok(), "aud as a one-element list");
    assert_eq!(
        check(&rs(&with("aud", json!([CLIENT, "other"])))),
        Err(IdTokenError::Audience),
        "several audiences, no azp"
    );
    let mut azp = with("aud", json!([CLIENT, "other"]));
    azp["azp"] = json!(CLIENT);
    assert!(check(&rs(&azp)).is_ok());
    assert_eq!(check(&rs(&with("exp", json!(NOW - 61)))), Err(IdTokenError::Expired));
    assert!(check(&rs(&with("exp", json!(NOW - 30)))).is_ok(), "within the skew");
    assert_eq!(check(&rs(&with("iat", json!(NOW + 120)))), Err(IdTokenError::NotYetValid));
    assert_eq!(check(&rs(&with("nbf", json!(NOW + 120)))), Err(IdTokenError::NotYetValid));
    assert_eq!(check(&rs(&with("nonce", json!("replayed")))), Err(IdTokenError::Nonce));
    let mut no_nonce = claims();
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(check(&rs(&no_nonce)), Err(IdTokenError::Nonce));
    assert!(matches!(check(&rs(&with("exp", json!("soon")))), Err(IdTokenError::Malformed("exp"))));
}

fn config() -> OidcConfig {
    OidcConfig {
        issuer: ISS.into(),
        client_id: CLIENT.into(),
        client_secret: None,
        redirect_url: "https://collector.example.com:8444/ui/oidc/callback".into(),
        scopes: "openid email profile".into(),
        groups_claim: "groups".into(),
        admin_groups: vec!["sightline-admins".into()],
        viewer_groups: vec!["sightline-viewers".into()],
        allow_http: false,
        roots: Vec::new(),
    }
}

#[test]
fn groups_map_to_roles_and_unmapped_people_get_none() {
    let c = config();
    let id = |groups: Value| identity(&check(&rs(&with("groups", groups))).unwrap(), "groups");
    assert_eq!(c.role_for(&id(json!(["everyone", "sightline-admins"])).groups), Some(Role::Admin));
    assert_eq!(c.role_for(&id(json!("sightline-viewers")).groups), Some(Role::Viewer), "a single string");
    assert_eq!(c.role_for(&id(json!(["sightline-viewers", "sightline-admins"])).groups), Some(Role::Admin));
    assert_eq!(c.role_for(&id(json!(["everyone"])).groups), None);
    assert_eq!(c.role_for(&id(json!(null)).groups), None);
    assert_eq!(id(json!([])).email, "ada@example.com");
}

#[test]
fn configuration_is_checked_before_start() {
    assert_eq!(config().check(), Ok(()));
    let bad = |f: fn(&mut OidcConfig)| {
        let mut c = config();
        f(&mut c);
        c.check().unwrap_err()
    };
    assert!(bad(|c| c.issuer = "http://idp.example.com".into()).contains("plain http"));
    assert!(bad(|c| c.issuer = "http://127.0.0.1:9000".into()).contains("--oidc-allow-http"));
    let mut loopback = config();
    loopback.issuer = "http://127.0.0.1:9000".into();
    loopback.allow_http = true;
    assert_eq!(loopback.check(), Ok(()));
    assert!(
        bad(|c| c.redirect_url = "http://collector.example.com/ui/oidc/callback".into()).contains("https://")
    );
    assert!(
        bad(|c| c.redirect_url = "https://collector.example.com/elsewhere".into())
            .contains("/ui/oidc/callback")
    );
    assert!(bad(|c| c.scopes = "email".into()).contains("openid"));
    assert!(
        bad(|c| {
            c.admin_groups.clear();
            c.viewer_groups.clear();
        })
        .contains("at least one group")
    );
}

#[test]
fn the_pkce_challenge_is_rfc_7636s() {
    // RFC 7636 Appendix B.
    assert_eq!(
        challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

/// A JWKS that writes the RSA modulus with a leading zero byte (as some providers do) still
/// verifies the same signature.
#[test]
fn a_modulus_with_a_leading_zero_byte_verifies() {
    let k = keys();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let padded: Vec<u8> = std::iter::once(0u8).chain(k.rsa.n().to_bytes_be()).collect();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
        "n": b64(&padded), "e": b64(&k.rsa.e().to_bytes_be())}]});
    let c =
        verify(&rs(&claims()), &jwks, &Expected { issuer: ISS, client_id: CLIENT, nonce: NONCE, now: NOW });
    assert_eq!(c.expect("RS256 with a padded modulus")["sub"], "00u1");
}
