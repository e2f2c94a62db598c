//! The HTTP API (`serve --http ADDR`): JSON under `/api/v1`, over TLS with the collector's
//! server certificate, authenticated by bearer API tokens with roles.
//!
//! - `viewer` reads; `admin` reads and acts (revoke); `scim` and `ingest` are for machines
//!   (identity provisioning, sign-in log push) and read nothing else. Handlers say which
//!   they take with a role extractor (`Reader`, `Admin`, `Pusher`, `Anyone` in `auth`;
//!   SCIM's `Provisioner`).
//! - No or unknown token: 401 with `WWW-Authenticate: Bearer`; a token whose role does not
//!   allow the call: 403. Errors are `{"error": "..."}` ([`ErrorBody`]).
//! - Tokens are stored as SHA-256 hashes (`api-token create`); lookups run on a blocking
//!   thread like every store call.
//! - Every 2xx body is a type of `crate::responses`, a named schema in the OpenAPI document
//!   generated from the same handlers; the CLI's `--json` prints the same types.

mod actions;
mod approvals;
mod auth;
mod dashboard;
mod doc;
mod error;
mod inventory;
mod middleware;
mod params;
mod reviews;
mod serve;
mod tokens;
mod triage;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;

pub use auth::token_hash;
pub(crate) use auth::{Anyone, caller};
pub use doc::api_routes;
pub use error::{ApiError, ErrorBody};
pub(crate) use error::{blocking, internal};
pub use serve::serve;

use crate::state::AppState;

/// The whole HTTP surface: the API and its document, metrics, SCIM and the dashboard, behind
/// authentication and the CSRF rule.
pub fn router(shared: AppState) -> axum::Router {
    let (api, doc) = api_routes();
    let doc = Arc::new(doc);
    api.route("/api/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/metrics", get(inventory::metrics))
        .merge(super::scim::routes())
        .merge(super::ui::routes())
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such API endpoint".into()) })
        .layer(axum::middleware::from_fn(middleware::csrf))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), middleware::authenticate))
        .with_state(shared)
}
