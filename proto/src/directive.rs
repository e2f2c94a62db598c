//! Collector directives: what a valid one is, for both sides.
//!
//! ```text
//! payload   = serialize(DirectiveBody { id, device_id, action, target, issued_at, expires_at, … })
//! signature = ECDSA-P256-SHA256-DER(collector signing key, DIRECTIVE_CONTEXT || payload)
//! ```
//!
//! The collector seals; the agent opens with the collector signing key it received at
//! enrollment (never one offered on the stream). A directive is accepted only if the
//! signature verifies over the exact bytes received, the body names this device, it has an
//! id, a known action and a target, and it has not expired.

use prost::Message;

use crate::envelope::DIRECTIVE_CONTEXT;
use crate::p256;
use crate::pb;

/// Largest directive payload accepted: a body is a few hundred bytes.
pub const MAX_DIRECTIVE_BYTES: usize = 16 * 1024;

/// A directive id exactly as the collector issues it: `dir_` and 32 lowercase hex digits
/// (128 random bits). Agents name files after it (the quarantine), so nothing else passes:
/// no separators, no `..`, no absolute paths, whoever signed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirectiveId(String);

impl DirectiveId {
    const PREFIX: &'static str = "dir_";
    const HEX_DIGITS: usize = 32;

    /// Checks an id against the one format the collector issues.
    pub fn parse(s: &str) -> Result<DirectiveId, DirectiveError> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == Self::HEX_DIGITS && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok { Ok(DirectiveId(s.to_owned())) } else { Err(DirectiveError::BadId(shown(s))) }
    }

    /// A new id from 16 random bytes (the collector's only way to make one).
    pub fn from_random(raw: [u8; 16]) -> DirectiveId {
        DirectiveId(format!("{}{}", Self::PREFIX, hex::encode(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DirectiveId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An untrusted string for an error message: quoted, escaped, at most 64 characters.
fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(64).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    format!("{t:?}")
}

/// Why a directive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectiveError {
    #[error("directive is {0} bytes, more than the {MAX_DIRECTIVE_BYTES} allowed")]
    TooLarge(usize),
    #[error("directive signature does not verify with the collector key from enrollment")]
    BadSignature,
    #[error("the collector signing key from enrollment is not a P-256 key")]
    BadKey,
    #[error("directive is not a valid DirectiveBody: {0}")]
    Decode(String),
    #[error("directive is for device {0}, not this one")]
    OtherDevice(String),
    #[error("directive expired at {0} ms")]
    Expired(i64),
    #[error("directive has no id, no target or an unknown action")]
    Incomplete,
    #[error("directive id {0} is not one the collector issues (dir_ and 32 hex digits)")]
    BadId(String),
}

/// Signs a directive body. `sign` receives the full message (context included) and returns
/// a DER signature; the private key stays with the caller.
pub fn seal<E>(
    body: &pb::DirectiveBody,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<pb::Directive, E> {
    let payload = body.encode_to_vec();
    let mut msg = Vec::with_capacity(DIRECTIVE_CONTEXT.len() + payload.len());
    msg.extend_from_slice(DIRECTIVE_CONTEXT);
    msg.extend_from_slice(&payload);
    Ok(pb::Directive { signature: sign(&msg)?, payload })
}

/// Verifies a directive for `device_id` at `now_ms` under the collector's signing key.
pub fn open(
    d: &pb::Directive,
    collector_spki: &[u8],
    device_id: &str,
    now_ms: i64,
) -> Result<pb::DirectiveBody, DirectiveError> {
    if d.payload.len() > MAX_DIRECTIVE_BYTES {
        return Err(DirectiveError::TooLarge(d.payload.len()));
    }
    p256::verify(collector_spki, DIRECTIVE_CONTEXT, &d.payload, &d.signature).map_err(|e| match e {
        p256::KeyError::NotP256Spki => DirectiveError::BadKey,
        _ => DirectiveError::BadSignature,
    })?;
    let body =
        pb::DirectiveBody::decode(d.payload.as_slice()).map_err(|e| DirectiveError::Decode(e.to_string()))?;
    if body.device_id != device_id {
        return Err(DirectiveError::OtherDevice(body.device_id));
    }
    if body.expires_at_ms <= now_ms {
        return Err(DirectiveError::Expired(body.expires_at_ms));
    }
    let action = pb::DirectiveAction::try_from(body.action).unwrap_or(pb::DirectiveAction::Unspecified);
    if body.id.is_empty() || body.target.is_empty() || action == pb::DirectiveAction::Unspecified {
        return Err(DirectiveError::Incomplete);
    }
    DirectiveId::parse(&body.id)?;
    Ok(body)
}

/// The id a directive claims, read without trusting it: for reporting a refusal. At most
/// 64 characters of it, so a hostile id cannot bloat the outcome that reports it.
pub fn claimed_id(d: &pb::Directive) -> String {
    if d.payload.len() > MAX_DIRECTIVE_BYTES {
        return String::new();
    }
    let id = pb::DirectiveBody::decode(d.payload.as_slice()).map(|b| b.id).unwrap_or_default();
    id.chars().take(64).collect()
}

/// The name of an action as the CLI, the API and logs spell it.
pub fn action_name(a: i32) -> &'static str {
    match pb::DirectiveAction::try_from(a).unwrap_or(pb::DirectiveAction::Unspecified) {
        pb::DirectiveAction::TerminateProcess => "terminate_process",
        pb::DirectiveAction::BlockExtension => "block_extension",
        pb::DirectiveAction::QuarantineCredential => "quarantine_credential",
        pb::DirectiveAction::Unspecified => "unspecified",
    }
}

/// The name of an outcome as stored and shown.
pub fn outcome_name(o: i32) -> &'static str {
    match pb::Outcome::try_from(o).unwrap_or(pb::Outcome::Unspecified) {
        pb::Outcome::Enforced => "enforced",
        pb::Outcome::ReportOnly => "report_only",
        pb::Outcome::NotPresent => "not_present",
        pb::Outcome::Unsupported => "unsupported",
        pb::Outcome::Failed => "failed",
        pb::Outcome::Refused => "refused",
        pb::Outcome::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::EcdsaKeyPair;

    const ID: &str = "dir_0123456789abcdef0123456789abcdef";

    fn key() -> (EcdsaKeyPair, Vec<u8>) {
        p256::test_key()
    }

    fn body() -> pb::DirectiveBody {
        pb::DirectiveBody {
            id: ID.into(),
            device_id: "dev-a".into(),
            action: pb::DirectiveAction::BlockExtension as i32,
            target: "abcdefghijklmnopabcdefghijklmnop".into(),
            issued_at_ms: 1_000,
            expires_at_ms: 10_000,
            connector: "extension:abcdefghijklmnopabcdefghijklmnop".into(),
            reason: String::new(),
        }
    }

    fn sealed(kp: &EcdsaKeyPair, b: &pb::DirectiveBody) -> pb::Directive {
        let rng = SystemRandom::new();
        seal(b, |m| kp.sign(&rng, m).map(|s| s.as_ref().to_vec())).unwrap()
    }

    #[test]
    fn a_sealed_directive_opens_only_for_its_device_key_and_time() {
        let (kp, spki) = key();
        let (_, other_spki) = key();
        let d = sealed(&kp, &body());
        assert_eq!(open(&d, &spki, "dev-a", 5_000).unwrap(), body());
        assert_eq!(open(&d, &other_spki, "dev-a", 5_000), Err(DirectiveError::BadSignature));
        assert_eq!(open(&d, &spki, "dev-b", 5_000), Err(DirectiveError::OtherDevice("dev-a".into())));
        assert_eq!(open(&d, &spki, "dev-a", 10_000), Err(DirectiveError::Expired(10_000)));
    }

    #[test]
    fn any_change_to_the_signed_bytes_is_refused() {
        let (kp, spki) = key();
        let d = sealed(&kp, &body());
        let mut retargeted = body();
        retargeted.target = "ponmlkjihgfedcbaponmlkjihgfedcba".into();
        let forged = pb::Directive { payload: retargeted.encode_to_vec(), signature: d.signature.clone() };
        assert_eq!(open(&forged, &spki, "dev-a", 5_000), Err(DirectiveError::BadSignature));
        assert_eq!(claimed_id(&forged), ID);
        let mut sig = d.clone();
        let last = sig.signature.len() - 1;
        sig.signature[last] ^= 1;
        assert_eq!(open(&sig, &spki, "dev-a", 5_000), Err(DirectiveError::BadSignature));
        // A batch signature (other context) over the same bytes is no directive.
        let rng = SystemRandom::new();
        let mut m = crate::envelope::BATCH_CONTEXT.to_vec();
        m.extend_from_slice(&d.payload);
        let batch_sig = kp.sign(&rng, &m).unwrap().as_ref().to_vec();
        let cross = pb::Directive { payload: d.payload.clone(), signature: batch_sig };
        assert_eq!(open(&cross, &spki, "dev-a", 5_000), Err(DirectiveError::BadSignature));
    }

    #[test]
    fn incomplete_bodies_are_refused_even_when_signed() {
        let (kp, spki) = key();
        let mut b = body();
        b.action = 0;
        assert_eq!(open(&sealed(&kp, &b), &spki, "dev-a", 5_000), Err(DirectiveError::Incomplete));
        let mut b = body();
        b.target.clear();
        assert_eq!(open(&sealed(&kp, &b), &spki, "dev-a", 5_000), Err(DirectiveError::Incomplete));
    }

    #[test]
    fn only_ids_of_the_issued_format_open_even_when_signed() {
        let (kp, spki) = key();
        for bad in [
            "/tmp/owned",
            "../../etc",
            "dir_0123456789abcdef0123456789abcdef/..",
            "dir_0123456789ABCDEF0123456789ABCDEF",
            "dir_0123456789abcdef0123456789abcde",
            "dir_0123456789abcdef0123456789abcdef0",
            "C:\\Windows",
            "dir-1",
        ] {
            let mut b = body();
            b.id = bad.into();
            assert!(
                matches!(open(&sealed(&kp, &b), &spki, "dev-a", 5_000), Err(DirectiveError::BadId(_))),
                "{bad:?} was accepted"
            );
        }
        let fresh = DirectiveId::from_random([0xab; 16]);
        assert_eq!(DirectiveId::parse(fresh.as_str()), Ok(fresh));
        let long = "x".repeat(10_000);
        let e = DirectiveId::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "an error quotes at most a bounded part of the id: {e}");
    }
}
