//! The Sightline collector.
//!
//! Data flow: [`ingest`] (gRPC over mutual TLS: enrollment, then signed batches verified
//! with `sightline_proto::envelope`) → [`writer`] (group commit) → [`store`] (one
//! transaction decides sequence and chain, then stores) → [`query`], [`findings`] and
//! [`views`] → the edges that answer people: [`http`] (API, SCIM, dashboard), [`cli`] and
//! [`export`]. [`server::run`] serves it all on bound listeners until shutdown; [`state`]
//! is what every edge is handed. ARCHITECTURE.md documents the layers, which the tidy test
//! enforces.

// Library code never writes to the terminal: output belongs to the binaries and logs to
// `tracing`, so an embedding program (a test, a benchmark) decides where text goes.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod approvals;
pub mod attest;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod directives;
pub mod domain;
pub mod evidence;
pub mod export;
pub mod findings;
pub mod health;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod metrics;
pub mod offboarding;
pub mod oidc;
pub mod pki;
pub mod policy;
pub mod query;
pub mod register;
pub mod remote;
pub mod responses;
pub mod review;
pub mod revoke;
pub mod server;
pub mod shutdown;
pub mod signins;
pub mod state;
pub mod store;
pub mod tokens;
pub mod views;
pub mod writer;

/// Creates a one-time enrollment token, stored hashed; returns the token.
pub fn create_token(store: &dyn store::EnrollmentStore, ttl: std::time::Duration) -> anyhow::Result<String> {
    tokens::create_enrollment(store, ttl, "", clock::now_ms())
}

/// Creates an HTTP API token with `role` that does not expire; returns it (shown once,
/// stored only as a hash).
pub fn create_api_token(
    store: &dyn store::AuthStore,
    role: domain::Role,
    name: &str,
) -> anyhow::Result<String> {
    tokens::create_api(store, role, name, None, clock::now_ms(), "cli")
}
