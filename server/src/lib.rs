//! The Sightline collector.
//!
//! Data flow: [`ingest`] (gRPC over mutual TLS: enrollment, then signed batches verified
//! with `sightline_proto::envelope`) → [`store`] (one transaction decides sequence and
//! chain, then stores) → [`query`] (CLI views). [`pki`] owns the CA, the server identity,
//! the org fingerprint key and the directive signing key.

pub mod api;
pub mod attest;
pub mod evidence;
pub mod export;
pub mod findings;
pub mod ingest;
pub mod metrics;
pub mod pki;
pub mod policy;
pub mod query;
pub mod remote;
pub mod revoke;
pub mod scim;
pub mod server;
pub mod signins;
pub mod store;
pub mod ui;
pub mod views;

/// Creates a one-time enrollment token, stored hashed; returns the token.
pub fn create_token(store: &dyn store::Store, ttl: std::time::Duration) -> anyhow::Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("random number generator failed"))?;
    let token = format!("slt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let now = ingest::now_ms();
    store.create_token(&ingest::enrollment::token_hash(&token), now, now + ttl.as_millis() as i64)?;
    Ok(token)
}

/// Creates an HTTP API token with `role`; returns it (shown once, stored only as a hash).
pub fn create_api_token(store: &dyn store::Store, role: api::Role, name: &str) -> anyhow::Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("random number generator failed"))?;
    let token = format!("sla_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    store.create_api_token(&api::token_hash(&token), role.as_str(), name, ingest::now_ms())?;
    Ok(token)
}
