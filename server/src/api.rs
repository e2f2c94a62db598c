//! The HTTP API (`serve --http ADDR`): JSON under `/api/v1`, over TLS with the collector's
//! server certificate, authenticated by bearer API tokens with roles.
//!
//! - `viewer` reads; `admin` reads and acts (revoke); `scim` and `ingest` are for machines
//!   (identity provisioning, sign-in log push) and read nothing else.
//! - No or unknown token: 401 with `WWW-Authenticate: Bearer`; a token whose role does not
//!   allow the call: 403. Errors are `{"error": "..."}`.
//! - Tokens are stored as SHA-256 hashes (`api-token create`); lookups run on a blocking
//!   thread like every store call.
//!
//! The JSON is the CLI's (`query`), so a script can switch between them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::ingest::{Shared, now_ms};
use crate::query;
use crate::store::Store;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Admin,
    Scim,
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Scim => "scim",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Admin, Role::Scim, Role::Ingest].into_iter().find(|r| r.as_str() == s)
    }

    fn can_read(self) -> bool {
        matches!(self, Role::Viewer | Role::Admin)
    }
}

pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

/// An API error: status plus a message for the caller.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sightline\""));
        }
        r
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API request failed.");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "collector storage failure".into())
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(internal)?.map_err(internal)
}

/// The caller's role, from `Authorization: Bearer <token>` or a dashboard session cookie.
async fn role(shared: &Shared, headers: &HeaderMap) -> Result<Role, ApiError> {
    caller(shared, headers).await.map(|c| c.0).map_err(|(status, m)| ApiError(status, m))
}

/// As [`role`], with the refusal as (status, message) for surfaces with their own error
/// shape (SCIM).
pub(crate) async fn role_of(shared: &Shared, headers: &HeaderMap) -> Result<Role, (StatusCode, String)> {
    caller(shared, headers).await.map(|c| c.0)
}

/// The caller's role, and whether it came from a session cookie (then a state-changing call
/// must also carry `X-Sightline-CSRF`, which a cross-site form or image cannot send).
async fn caller(shared: &Shared, headers: &HeaderMap) -> Result<(Role, bool), (StatusCode, String)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, m.to_owned());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let Some(session) = crate::ui::session_cookie(headers) else {
            return Err(unauthorized("an API token is required"));
        };
        let hash = token_hash(&session);
        let role = blocking(&shared.store, move |s| Ok(s.session_role(&hash, now_ms())?))
            .await
            .map_err(|ApiError(status, m)| (status, m))?;
        return role
            .as_deref()
            .and_then(Role::parse)
            .map(|r| (r, true))
            .ok_or_else(|| unauthorized("the session has ended; sign in again"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("expected `Authorization: Bearer <token>`"))?;
    let hash = token_hash(token);
    let role = blocking(&shared.store, move |s| Ok(s.api_token_role(&hash)?))
        .await
        .map_err(|ApiError(status, m)| (status, m))?;
    role.as_deref()
        .and_then(Role::parse)
        .map(|r| (r, false))
        .ok_or_else(|| unauthorized("unknown or revoked API token"))
}

async fn reader(shared: &Shared, headers: &HeaderMap) -> Result<Role, ApiError> {
    let r = role(shared, headers).await?;
    if r.can_read() {
        Ok(r)
    } else {
        Err(ApiError(StatusCode::FORBIDDEN, format!("a {} token cannot read the inventory", r.as_str())))
    }
}

async fn admin(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    match caller(shared, headers).await.map_err(|(status, m)| ApiError(status, m))? {
        (Role::Admin, true) if !headers.contains_key(crate::ui::CSRF_HEADER) => Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("a session-authenticated change needs the {} header", crate::ui::CSRF_HEADER),
        )),
        (Role::Admin, _) => Ok(()),
        (r, _) => {
            Err(ApiError(StatusCode::FORBIDDEN, format!("this needs an admin token, not {}", r.as_str())))
        }
    }
}

pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(device))
        .route("/api/v1/devices/{id}/revoke", post(revoke_device))
        .route("/api/v1/connectors", get(connectors))
        .route("/api/v1/connectors/{key}", get(connector))
        .route("/api/v1/connectors/{key}/revoke", post(revoke_connector))
        .route("/api/v1/triage/connector/{key}", get(connector))
        .route("/api/v1/triage/token/{fp}", get(triage_token))
        .route("/api/v1/triage/device/{id}", get(triage_device))
        .route("/api/v1/triage/user/{user}", get(triage_user))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/signins/{source}", post(push_signins))
        .route("/api/v1/connectors/{key}/status", post(set_status))
        .route("/api/v1/people/{user}", get(person))
        .route("/api/v1/views/overview", get(view_overview))
        .route("/api/v1/views/devices", get(view_devices))
        .route("/api/v1/views/connectors", get(view_connectors))
        .route("/api/v1/views/findings", get(view_findings))
        .route("/api/v1/views/people", get(view_people))
        .merge(crate::scim::routes())
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such API endpoint".into()) })
        .with_state(shared)
}

/// Liveness for load balancers: no token, no data.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn devices(State(s): State<Shared>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    Ok(Json(blocking(&s.store, query::devices_value).await?))
}

async fn device(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let (i, policy) = (id.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::device_value(st, &i, &policy))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id}")))
}

async fn revoke_device(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &h).await?;
    let i = id.clone();
    let found = blocking(&s.store, move |st| {
        if st.device(&i)?.is_none() {
            return Ok(false);
        }
        st.revoke_device(&i, now_ms())?;
        Ok(true)
    })
    .await?;
    if !found {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no device {id}")));
    }
    tracing::info!(device = %id, "Device revoked through the API.");
    Ok(Json(json!({"device_id": id, "revoked": true})))
}

async fn connectors(
    State(s): State<Shared>,
    h: HeaderMap,
    filter: Result<Query<query::ConnectorFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(filter) = filter.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| query::connectors_value(st, &filter, &policy)).await?))
}

/// One connector: where it is and was, owners, and any revocation with each device's outcome.
async fn connector(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let (k, policy) = (key.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::connector_value(st, &policy, &k))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no connector {key} has been reported")))
}

async fn triage_token(
    s: State<Shared>,
    h: HeaderMap,
    Path(fp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    connector(s, h, Path(format!("token:{fp}"))).await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: String,
}

/// Revokes a connector (admin): directives go out to every device where it is present.
async fn revoke_connector(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &h).await?;
    let body: RevokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(StatusCode::BAD_REQUEST, format!("expected {{\"reason\": \"...\"}}: {e}"))
        })?
    };
    let (sh, k) = (s.clone(), key.clone());
    let issued = tokio::task::spawn_blocking(move || {
        crate::revoke::revoke(sh.store.as_ref(), &sh.pki, &k, "api:admin", &body.reason, now_ms())
    })
    .await
    .map_err(internal)?
    .map_err(|e| match e {
        crate::revoke::RevokeError::UnknownConnector(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        crate::revoke::RevokeError::Unsupported(_) => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        other => internal(other),
    })?;
    for d in &issued.directives {
        s.dispatch.ring(&d.device_id);
    }
    s.dispatch.issued.notify_one();
    s.views.clear();
    Ok(Json(query::revoked_value(&issued)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// `approved`, `unsanctioned`, or `policy` (drop the decision; the policy file decides).
    status: String,
}

/// An admin's status decision for a connector, overriding the policy file.
async fn set_status(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
    body: Result<Json<StatusBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &h).await?;
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let decision = match body.status.as_str() {
        "approved" | "unsanctioned" => Some(crate::store::Decision {
            status: body.status.clone(),
            by: "api:admin".into(),
            at_ms: now_ms(),
        }),
        "policy" => None,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("status {other:?}: use approved, unsanctioned or policy"),
            ));
        }
    };
    let (k, policy) = (key.clone(), s.policy.clone());
    let v = blocking(&s.store, move |st| {
        if st.connector(&k)?.is_none() {
            return Ok(None);
        }
        st.set_decision(&k, decision.as_ref())?;
        query::connector_value(st, &policy, &k)
    })
    .await?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no connector {key} has been reported")))?;
    s.views.clear();
    tracing::info!(connector = %key, status = %body.status, "Connector status decided through the API.");
    Ok(Json(v))
}

/// A person now: their accounts, devices, sessions and what is on those devices.
async fn person(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let (u, policy) = (user.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::user_at_value(st, &policy, &u, now_ms()))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no person {user}")))
}

type TableQ = Result<Query<crate::views::TableQuery>, axum::extract::rejection::QueryRejection>;

/// The snapshot the views page through, on a blocking thread.
async fn snapshot(s: &Shared) -> Result<Arc<crate::views::Snapshot>, ApiError> {
    let (cache, policy) = (s.views.clone(), s.policy.clone());
    blocking(&s.store, move |st| cache.get(st, &policy, now_ms())).await
}

async fn view_overview(State(s): State<Shared>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let snap = snapshot(&s).await?;
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| crate::views::overview(st, &policy, &snap)).await?))
}

async fn view_devices(State(s): State<Shared>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(blocking(&s.store, move |st| crate::views::devices(st, &q)).await?))
}

async fn view_connectors(State(s): State<Shared>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::connectors(&snap, &s.policy, &q)))
}

async fn view_findings(State(s): State<Shared>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::findings(&snap, &q)))
}

async fn view_people(State(s): State<Shared>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::people(&snap, &s.policy, &q)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AtQuery {
    /// RFC 3339, or `now` (the default).
    at: Option<String>,
}

async fn triage_device(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<AtQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let at = match q.at.as_deref() {
        None | Some("now") => now_ms(),
        Some(t) => humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| {
                ApiError(StatusCode::BAD_REQUEST, format!("`at` {t:?} is not an RFC 3339 time"))
            })?,
    };
    let i = id.clone();
    blocking(&s.store, move |st| query::device_at_value(st, &i, at))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id}")))
}

/// IdP sign-in push (`ingest` or `admin` tokens): the body is what `signins import` reads.
async fn push_signins(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(source): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    match role(&s, &h).await? {
        Role::Ingest | Role::Admin => {}
        r => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("a {} token cannot push sign-ins", r.as_str()),
            ));
        }
    }
    let source = crate::signins::Source::parse(&source).ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, format!("no sign-in source {source:?}; use okta or entra"))
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "body is not UTF-8".into()))?;
    let (signins, skipped) = crate::signins::parse(source, text)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    let n = signins.len();
    let added = blocking(&s.store, move |st| Ok(st.add_signins(&signins)?)).await?;
    Ok(Json(json!({"received": n, "stored": added, "duplicates": n - added, "skipped": skipped})))
}

async fn findings(State(s): State<Shared>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| query::findings_value(st, &policy, now_ms())).await?))
}

async fn triage_user(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(user): Path<String>,
    q: Result<Query<AtQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let at = parse_at(q.at.as_deref())?;
    let (u, policy) = (user.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::user_at_value(st, &policy, &u, at))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no person {user}")))
}

fn parse_at(at: Option<&str>) -> Result<i64, ApiError> {
    query::parse_instant(at.unwrap_or("now"), now_ms())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("`at` {e}")))
}

/// Serves the API over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(shared.pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(shared.pki.server_key_pem.as_bytes())
        .context("reading the server key")?;
    let mut tls =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("configuring the API's TLS certificate")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let service = hyper_util::service::TowerToHyperService::new(router(shared));
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening (TLS).");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed.");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "API TLS handshake failed.");
                        return;
                    }
                    Err(_) => return,
                };
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "API connection ended with an error.");
            }
        });
    }
    tracing::info!("HTTP API stopped.");
    Ok(())
}
