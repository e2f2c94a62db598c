//! Token lifecycle: enrollment tokens (one device each) and HTTP API tokens (a role), made,
//! listed and revoked from the CLI and the admin API.
//!
//! A token is shown once, when made, and stored only as its SHA-256. It is named afterwards
//! by its *id*: the first 8 bytes of that hash in hex, which identifies it without being
//! usable as it. Revoking an API token ends its dashboard sessions at once (the session
//! stands for the token); an API token may carry an expiry (`--ttl`) and records when it
//! was last used, to the minute.

use std::time::Duration;

use base64::Engine;
use ring::rand::SecureRandom;
use serde_json::Value;

use crate::clock::rfc3339;
use crate::domain::Role;
use crate::responses;
use crate::store::{ApiTokenInfo, AuthStore, EnrollmentStore, EnrollmentTokenInfo};

/// How many hex digits of the hash a token id has.
const ID_HEX: usize = 16;
/// The shortest id prefix a revocation accepts.
const MIN_PREFIX: usize = 6;

/// The system's random number generator failed: nothing secret can be made.
#[derive(Debug, thiserror::Error)]
#[error("random number generator failed")]
pub struct RandomFailed;

/// `n` bytes from the system's random number generator.
pub fn random(n: usize) -> Result<Vec<u8>, RandomFailed> {
    let mut raw = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| RandomFailed)?;
    Ok(raw)
}

fn random_token(prefix: &str, bytes: usize) -> anyhow::Result<String> {
    let raw = random(bytes)?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)))
}

/// SHA-256 of a token: what is stored.
pub fn hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

/// The id a token is listed and revoked by.
pub fn id(token_hash: &[u8]) -> String {
    let mut h = hex::encode(token_hash);
    h.truncate(ID_HEX);
    h
}

/// Makes a one-time enrollment token valid for `ttl`; returns it (shown once).
pub fn create_enrollment(
    store: &dyn EnrollmentStore,
    ttl: Duration,
    name: &str,
    now_ms: i64,
) -> anyhow::Result<String> {
    let token = random_token("slt_", 24)?;
    let expires = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    store.create_token(&hash(&token), name, now_ms, expires)?;
    Ok(token)
}

/// Makes an API token with `role`, expiring after `ttl` if given; returns it (shown once).
/// `created_by` is `cli:USER`, or `token:ID` when another token made it (see
/// [`revoke_api`]).
pub fn create_api(
    store: &dyn AuthStore,
    role: Role,
    name: &str,
    ttl: Option<Duration>,
    now_ms: i64,
    created_by: &str,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        role != Role::Owner,
        "an owner token is bound to a person: name them (--person / \"person\")"
    );
    let token = random_token("sla_", 32)?;
    let expires = ttl.map(|t| now_ms.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)));
    store.create_api_token(&hash(&token), role.as_str(), name, now_ms, expires, created_by)?;
    Ok(token)
}

/// Creates an `owner` API token for the person named `person` (userName or e-mail, still
/// provisioned): it reads and asks about only what that person owns or holds.
pub fn create_owner(
    store: &(impl AuthStore + crate::store::PeopleStore + ?Sized),
    person: &str,
    name: &str,
    ttl: Option<Duration>,
    now_ms: i64,
    created_by: &str,
) -> anyhow::Result<String> {
    let people = crate::policy::People::new(store.people_all()?);
    let p = people
        .named(person)
        .ok_or_else(|| anyhow::anyhow!("no person is provisioned with userName or e-mail {person:?}"))?;
    anyhow::ensure!(p.deprovisioned_at_ms.is_none(), "{} is deprovisioned", p.user_name);
    let token = random_token("sla_", 32)?;
    let expires = ttl.map(|t| now_ms.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)));
    store.create_owner_api_token(&hash(&token), &p.id, name, now_ms, expires, created_by)?;
    Ok(token)
}

/// What a token's `created_by` says when the token with this hash made it.
pub fn made_by_token(token_hash: &[u8]) -> String {
    format!("token:{}", id(token_hash))
}

/// What a token is now, for listings.
fn state(revoked: Option<i64>, used: Option<i64>, expires: Option<i64>, now_ms: i64) -> &'static str {
    match (revoked, used, expires) {
        (Some(_), ..) => "revoked",
        (None, Some(_), _) => "used",
        (None, None, Some(e)) if e <= now_ms => "expired",
        _ => "active",
    }
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// An API token as listed (`api-token list --json`, `GET /api/v1/tokens/api`).
pub fn api_token_json(t: &ApiTokenInfo, now_ms: i64) -> responses::ApiToken {
    responses::ApiToken {
        created_at: rfc3339(t.created_at_ms),
        created_by: t.created_by.clone(),
        expires_at: opt_time(t.expires_at_ms),
        id: id(&t.token_hash),
        last_used_at: opt_time(t.last_used_at_ms),
        name: t.name.clone(),
        revoked_at: opt_time(t.revoked_at_ms),
        role: t.role.clone(),
        state: state(t.revoked_at_ms, None, t.expires_at_ms, now_ms),
    }
}

/// An enrollment token as listed (`token list --json`, `GET /api/v1/tokens/enrollment`).
pub fn enrollment_token_json(t: &EnrollmentTokenInfo, now_ms: i64) -> responses::EnrollmentToken {
    responses::EnrollmentToken {
        created_at: rfc3339(t.created_at_ms),
        expires_at: rfc3339(t.expires_at_ms),
        id: id(&t.token_hash),
        name: t.name.clone(),
        revoked_at: opt_time(t.revoked_at_ms),
        state: state(t.revoked_at_ms, t.used_at_ms, Some(t.expires_at_ms), now_ms),
        used_at: opt_time(t.used_at_ms),
    }
}

/// The one hash among `hashes` whose id starts with `prefix`.
fn find<'h>(hashes: impl Iterator<Item = &'h [u8]>, prefix: &str) -> anyhow::Result<&'h [u8]> {
    let prefix = prefix.trim().to_ascii_lowercase();
    anyhow::ensure!(
        prefix.len() >= MIN_PREFIX && prefix.len() <= ID_HEX && prefix.bytes().all(|b| b.is_ascii_hexdigit()),
        "a token id is {MIN_PREFIX} to {ID_HEX} hex digits (as `list` shows it), not {prefix:?}"
    );
    let mut matches = hashes.filter(|h| id(h).starts_with(&prefix));
    let first = matches.next().ok_or_else(|| anyhow::anyhow!("no token has id {prefix}"))?;
    anyhow::ensure!(
        matches.next().is_none(),
        "more than one token has an id starting {prefix}; give more of it"
    );
    Ok(first)
}

/// Outcome of a revocation: the token's id, whether this call revoked it (false: it
/// already was), and the ids of the tokens revoked with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub id: String,
    pub now: bool,
    pub heirs: Vec<String>,
}

/// Revokes an API token and, transitively, every token it made through the API: whoever
/// held a stolen admin token cannot keep access through tokens minted with it.
pub fn revoke_api(store: &dyn AuthStore, id_prefix: &str, now_ms: i64) -> anyhow::Result<Revoked> {
    let all = store.api_tokens()?;
    let h = find(all.iter().map(|t| t.token_hash.as_slice()), id_prefix)?.to_vec();
    let now = store.revoke_api_token(&h, now_ms)?;
    let mut heirs = Vec::new();
    let mut parents = vec![made_by_token(&h)];
    while let Some(parent) = parents.pop() {
        for t in all.iter().filter(|t| t.created_by == parent) {
            if store.revoke_api_token(&t.token_hash, now_ms)? {
                heirs.push(id(&t.token_hash));
            }
            parents.push(made_by_token(&t.token_hash));
        }
    }
    Ok(Revoked { id: id(&h), now, heirs })
}

pub fn revoke_enrollment(
    store: &dyn EnrollmentStore,
    id_prefix: &str,
    now_ms: i64,
) -> anyhow::Result<Revoked> {
    let all = store.enrollment_tokens()?;
    let h = find(all.iter().map(|t| t.token_hash.as_slice()), id_prefix)?;
    Ok(Revoked { id: id(h), now: store.revoke_enrollment_token(h, now_ms)?, heirs: Vec::new() })
}

/// A table for people: one token per line, `columns` of the JSON form.
pub fn table<T: serde::Serialize>(rows: &[T], columns: &[&str]) -> anyhow::Result<String> {
    let rows = rows.iter().map(serde_json::to_value).collect::<Result<Vec<Value>, _>>()?;
    let cell = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut lines = vec![columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
    lines.extend(rows.iter().map(|r| columns.iter().map(|c| cell(&r[*c])).collect()));
    Ok(crate::query::table(&lines, rows.is_empty().then_some("No tokens.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_by_unique_prefix_only() {
        let a = hash("a");
        let b = hash("b");
        let all = [a.as_slice(), b.as_slice()];
        assert_eq!(find(all.iter().copied(), &id(&a)).unwrap(), a.as_slice());
        assert_eq!(find(all.iter().copied(), &id(&b)[..6].to_uppercase()).unwrap(), b.as_slice());
        assert!(find(all.iter().copied(), "abc").unwrap_err().to_string().contains("6 to 16 hex"));
        assert!(find(all.iter().copied(), "zzzzzz").is_err());
        assert!(find(all.iter().copied(), "000000").unwrap_err().to_string().contains("no token"));
        assert_eq!(id(&a).len(), 16);
    }

    #[test]
    fn states_follow_revocation_use_and_expiry() {
        assert_eq!(state(None, None, None, 10), "active");
        assert_eq!(state(None, None, Some(10), 10), "expired");
        assert_eq!(state(None, Some(5), Some(10), 20), "used");
        assert_eq!(state(Some(1), Some(5), Some(10), 20), "revoked");
    }
}
