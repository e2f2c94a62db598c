//! ID token verification (OpenID Connect Core §3.1.3.7): the JWS signature against the
//! provider's published keys, then issuer, audience, times and nonce. RS256 (what every
//! provider signs with by default) and ES256; anything else, `none` above all, is refused.
//! The signature is checked with `ring`, the collector's one crypto library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};

/// Clock difference tolerated between the collector and the provider.
pub const SKEW_SECS: i64 = 60;

/// Why an ID token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the ID token is signed with {0:?}; only RS256 and ES256 are accepted")]
    Algorithm(String),
    #[error("no key of the provider's JWKS matches the ID token's header")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token was issued by {0:?}, not the configured issuer")]
    Issuer(String),
    #[error("the ID token is not meant for this client (aud/azp)")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is not valid yet (iat/nbf in the future)")]
    NotYetValid,
    #[error("the ID token's nonce does not match this sign-in")]
    Nonce,
}

/// What the token must say to be accepted.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

/// Verifies `token` against the JWKS document `jwks` and returns its claims.
pub fn verify(token: &str, jwks: &Value, expect: &Expected<'_>) -> Result<Map<String, Value>, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("not three dot-separated parts"));
    };
    let header = json_part(h64, "header")?;
    if header.contains_key("crit") {
        // No extension is understood, so none may be required of us.
        return Err(IdTokenError::Malformed("critical header extensions"));
    }
    let alg = header.get("alg").and_then(Value::as_str).ok_or(IdTokenError::Malformed("no alg"))?;
    let kty = match alg {
        "RS256" => "RSA",
        "ES256" => "EC",
        other => return Err(IdTokenError::Algorithm(other.to_owned())),
    };
    let kid = header.get("kid").and_then(Value::as_str);
    let key = find_key(jwks, kty, alg, kid)?;
    let sig =
        URL_SAFE_NO_PAD.decode(s64).map_err(|_| IdTokenError::Malformed("signature is not base64url"))?;
    let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    check_signature(alg, key, signed, &sig)?;

    let claims = json_part(p64, "payload")?;
    check_claims(&claims, expect)?;
    Ok(claims)
}

fn json_part(b64: &str, what: &'static str) -> Result<Map<String, Value>, IdTokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| IdTokenError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(IdTokenError::Malformed(what)),
    }
}

/// The signing key the header names: by `kid` when there is one, else the only key of the
/// right type (a provider with one key may leave `kid` out).
fn find_key<'a>(jwks: &'a Value, kty: &str, alg: &str, kid: Option<&str>) -> Result<&'a Value, IdTokenError> {
    let keys = jwks.get("keys").and_then(Value::as_array).ok_or(IdTokenError::UnknownKey)?;
    let fits = |k: &&Value| {
        k.get("kty").and_then(Value::as_str) == Some(kty)
            && k.get("use").and_then(Value::as_str).is_none_or(|u| u == "sig")
            && k.get("alg").and_then(Value::as_str).is_none_or(|a| a == alg)
    };
    let mut candidates = keys.iter().filter(fits).filter(|k| match kid {
        Some(kid) => k.get("kid").and_then(Value::as_str) == Some(kid),
        None => true,
    });
    match (candidates.next(), candidates.next()) {
        (Some(k), None) => Ok(k),
        _ => Err(IdTokenError::UnknownKey),
    }
}

fn b64_field(key: &Value, name: &str) -> Result<Vec<u8>, IdTokenError> {
    key.get(name)
        .and_then(Value::as_str)
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .ok_or(IdTokenError::UnknownKey)
}

fn check_signature(alg: &str, key: &Value, signed: &[u8], sig: &[u8]) -> Result<(), IdTokenError> {
    match alg {
        "RS256" => {
            let (n, e) = (b64_field(key, "n")?, b64_field(key, "e")?);
            // Some providers publish the modulus with a leading zero byte (a DER habit);
            // ring wants the minimal big-endian form.
            let minimal = |v: &[u8]| -> Vec<u8> { v.iter().copied().skip_while(|b| *b == 0).collect() };
            let (n, e) = (minimal(&n), minimal(&e));
            signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig)
                .map_err(|_| IdTokenError::Signature)
        }
        "ES256" => {
            if key.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err(IdTokenError::UnknownKey);
            }
            let (x, y) = (b64_field(key, "x")?, b64_field(key, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(IdTokenError::UnknownKey);
            }
            // The uncompressed SEC1 point; JWS carries r || s, ring's "fixed" encoding.
            let point = [&[4u8][..], &x, &y].concat();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, sig)
                .map_err(|_| IdTokenError::Signature)
        }
        other => Err(IdTokenError::Algorithm(other.to_owned())),
    }
}

fn check_claims(c: &Map<String, Value>, expect: &Expected<'_>) -> Result<(), IdTokenError> {
    let iss = c.get("iss").and_then(Value::as_str).unwrap_or_default();
    if iss != expect.issuer {
        return Err(IdTokenError::Issuer(iss.to_owned()));
    }
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    // With other audiences beside us, the party it was issued to must be us (Core §3.1.3.7).
    let azp = c.get("azp").and_then(Value::as_str);
    if azp.is_some_and(|a| a != expect.client_id) || (audiences.len() > 1 && azp.is_none()) {
        return Err(IdTokenError::Audience);
    }
    let time =
        |name: &'static str| c.get(name).map(|v| v.as_i64().ok_or(IdTokenError::Malformed(name))).transpose();
    let exp = time("exp")?.ok_or(IdTokenError::Malformed("no exp"))?;
    let iat = time("iat")?.ok_or(IdTokenError::Malformed("no iat"))?;
    if exp.saturating_add(SKEW_SECS) <= expect.now {
        return Err(IdTokenError::Expired);
    }
    let latest = expect.now.saturating_add(SKEW_SECS);
    if iat > latest || time("nbf")?.is_some_and(|nbf| nbf > latest) {
        return Err(IdTokenError::NotYetValid);
    }
    let nonce = c.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !ring_eq(nonce.as_bytes(), expect.nonce.as_bytes()) {
        return Err(IdTokenError::Nonce);
    }
    if c.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(IdTokenError::Malformed("no sub"));
    }
    Ok(())
}

/// Constant-time equality (the nonce is a secret of this sign-in until it comes back).
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
