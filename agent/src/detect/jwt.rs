//! The payload claims of a JWT a tool keeps on disk (Codex's `id_token`), read without
//! verifying the signature: the agent only reports what the tool itself believes about its
//! sign-in, and never calls the issuer. The token is a credential: it stays inside
//! [`Secret`], only the decoded payload (claims such as `email`) leaves this module, and no
//! error names any part of it.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::secret::Secret;

/// Largest payload decoded, in encoded bytes. An ID token's payload is well under 2 KiB; a
/// bigger one is not worth decoding (and a hostile file must not make the agent do so).
pub(crate) const MAX_PAYLOAD: usize = 16 * 1024;

/// Why a value is not a JWT whose payload can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    #[error("not a JWT (three dot-separated parts)")]
    Shape,
    #[error("JWT payload over {MAX_PAYLOAD} bytes; not decoded")]
    TooLarge,
    #[error("JWT payload is not base64url")]
    Base64,
    #[error("JWT payload is not a JSON object")]
    NotObject,
}

/// The payload of `token` (`header.payload.signature`, base64url, padding tolerated).
pub(crate) fn payload(token: &Secret) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.expose().trim().split('.');
    let (Some(_header), Some(body), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    if body.len() > MAX_PAYLOAD {
        return Err(JwtError::TooLarge);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::NotObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn token(payload: &str) -> Secret {
        Secret::new(format!("{}.{}.c2lnbmF0dXJl", b64(r#"{"alg":"RS256"}"#), b64(payload)))
    }

    #[test]
    fn reads_the_payload_claims() {
        let claims =
            r#"{"email":"ana@example.com","https://api.openai.com/auth":{"chatgpt_account_id":"ws-1"}}"#;
        let p = payload(&token(claims)).unwrap();
        assert_eq!(p["email"], "ana@example.com");
        assert_eq!(p["https://api.openai.com/auth"]["chatgpt_account_id"], "ws-1");
        // Padding some encoders leave on is tolerated.
        let padded = Secret::new(format!("e30.{}==.sig", b64(r#"{"email":"x@y.z"}"#)));
        assert_eq!(payload(&padded).unwrap()["email"], "x@y.z");
        // A payload without an email is still a payload: the caller finds no account in it.
        assert!(!payload(&token(r#"{"sub":"1"}"#)).unwrap().contains_key("email"));
    }

    #[test]
    fn refuses_what_is_not_a_readable_jwt() {
        assert_eq!(payload(&Secret::new("sk-not-a-jwt")).unwrap_err(), JwtError::Shape);
        assert_eq!(payload(&Secret::new("a.b.c.d")).unwrap_err(), JwtError::Shape);
        assert_eq!(payload(&Secret::new("e30.@@@not*base64.sig")).unwrap_err(), JwtError::Base64);
        assert_eq!(payload(&token("[1,2]")).unwrap_err(), JwtError::NotObject);
        assert_eq!(payload(&token("not json")).unwrap_err(), JwtError::NotObject);
        // A huge payload is refused before any decoding.
        let huge = Secret::new(format!("e30.{}.sig", "A".repeat(MAX_PAYLOAD + 1)));
        assert_eq!(payload(&huge).unwrap_err(), JwtError::TooLarge);
        // At the bound it is decoded.
        let claims = format!(r#"{{"email":"a@b.c","pad":"{}"}}"#, "x".repeat(MAX_PAYLOAD / 4 * 3 - 40));
        assert!(b64(&claims).len() <= MAX_PAYLOAD);
        assert_eq!(payload(&token(&claims)).unwrap()["email"], "a@b.c");
    }

    #[test]
    fn errors_never_quote_the_token() {
        let t = "eyJhbGciOiJub25lIn0.!!!secretpart!!!.sig";
        let e = payload(&Secret::new(t)).unwrap_err();
        assert!(!e.to_string().contains("secretpart") && !format!("{e:?}").contains("secretpart"));
    }
}
