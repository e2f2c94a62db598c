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

mod tokens;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::domain::Role;
use crate::query;
use crate::state::AppState;
use crate::store::Store;

pub fn token_hash(token: &str) -> Vec<u8> {
    crate::tokens::hash(token)
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

pub(crate) fn internal(e: impl std::fmt::Display + std::any::Any) -> ApiError {
    let any = &e as &dyn std::any::Any;
    let store = any.downcast_ref::<crate::store::StoreError>().or_else(|| {
        any.downcast_ref::<anyhow::Error>().and_then(|a| a.downcast_ref::<crate::store::StoreError>())
    });
    if store.is_some_and(crate::store::StoreError::is_unavailable) {
        tracing::warn!(error = %e, "API request failed: storage unavailable.");
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "collector storage is unavailable; retry later".into(),
        );
    }
    tracing::error!(error = %e, "API request failed.");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "collector storage failure".into())
}

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(internal)?.map_err(internal)
}

/// The caller's role, from `Authorization: Bearer <token>` or a dashboard session cookie.
async fn role(shared: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    caller(shared, headers).await.map_err(|(status, m)| ApiError(status, m))
}

/// As [`role`], with the refusal as (status, message) for surfaces with their own error
/// shape (SCIM).
pub(crate) async fn role_of(shared: &AppState, headers: &HeaderMap) -> Result<Role, (StatusCode, String)> {
    caller(shared, headers).await
}

/// The caller's role, from the bearer token or else the session cookie.
async fn caller(shared: &AppState, headers: &HeaderMap) -> Result<Role, (StatusCode, String)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, m.to_owned());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let Some(session) = super::ui::session_cookie(headers) else {
            return Err(unauthorized("an API token is required"));
        };
        let hash = token_hash(&session);
        let role = blocking(&shared.store, move |s| Ok(s.session_role(&hash, now_ms())?))
            .await
            .map_err(|ApiError(status, m)| (status, m))?;
        return role
            .as_deref()
            .and_then(Role::parse)
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
    let role = blocking(&shared.store, move |s| Ok(s.api_token_role(&hash, now_ms())?))
        .await
        .map_err(|ApiError(status, m)| (status, m))?;
    role.as_deref().and_then(Role::parse).ok_or_else(|| unauthorized("unknown, expired or revoked API token"))
}

/// The hash of the API token behind the request: the bearer's, or the one a dashboard
/// session was opened with.
async fn caller_token(shared: &AppState, headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Ok(Some(token_hash(t.trim())));
    }
    let Some(session) = super::ui::session_cookie(headers) else { return Ok(None) };
    let h = token_hash(&session);
    blocking(&shared.store, move |s| Ok(s.session_token(&h)?)).await
}

async fn reader(shared: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    let r = role(shared, headers).await?;
    if r.can_read() {
        Ok(r)
    } else {
        Err(ApiError(StatusCode::FORBIDDEN, format!("a {} token cannot read the inventory", r.as_str())))
    }
}

/// Admin only. (A change through a session cookie has already shown its CSRF header: see
/// [`csrf`].)
async fn admin(shared: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match role(shared, headers).await? {
        Role::Admin => Ok(()),
        r => Err(ApiError(StatusCode::FORBIDDEN, format!("this needs an admin token, not {}", r.as_str()))),
    }
}

/// The `/api/v1` routes and the OpenAPI document generated from the same handlers, so the
/// document cannot drift from what is served.
pub fn api_routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::{router::OpenApiRouter, routes};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(devices))
        .routes(routes!(device))
        .routes(routes!(revoke_device))
        .routes(routes!(connectors))
        .routes(routes!(connector))
        .routes(routes!(revoke_connector, withdraw_revocation))
        .routes(routes!(set_status))
        .routes(routes!(triage_connector))
        .routes(routes!(triage_token))
        .routes(routes!(triage_device))
        .routes(routes!(triage_user))
        .routes(routes!(findings))
        .routes(routes!(push_signins))
        .routes(routes!(person))
        .routes(routes!(view_overview))
        .routes(routes!(view_devices))
        .routes(routes!(view_connectors))
        .routes(routes!(view_findings))
        .routes(routes!(view_people))
        .routes(routes!(super::ui::whoami, super::ui::sign_in, super::ui::sign_out))
        .routes(routes!(tokens::list_api, tokens::create_api))
        .routes(routes!(tokens::revoke_api))
        .routes(routes!(tokens::list_enrollment, tokens::create_enrollment))
        .routes(routes!(tokens::revoke_enrollment))
        .split_for_parts()
}

/// The document's frame; the paths come from the handlers' `#[utoipa::path]`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sightline collector API",
        description = "Inventory, triage, findings and revocation of AI connectors on a laptop fleet. \
                       Authenticate with `Authorization: Bearer <API token>` (from `sightline-server api-token create`) \
                       or a dashboard session cookie (changes through a cookie also need the `X-Sightline-CSRF` header). \
                       Roles: viewer reads; admin reads and acts; ingest pushes sign-ins."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "inventory", description = "Devices, connectors, findings"),
        (name = "triage", description = "Who had what, where, when"),
        (name = "actions", description = "Revocation and status decisions (admin)"),
        (name = "identity", description = "People and IdP sign-ins"),
        (name = "views", description = "Server-side paged tables for the dashboard"),
        (name = "session", description = "Dashboard sign-in"),
        (name = "tokens", description = "Enrollment and API token lifecycle (admin)"),
        (name = "health", description = "Liveness"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API token")).build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sightline_session"))),
        );
    }
}

/// Every error: `{"error": "what was wrong"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the error shape; built with json! by ApiError")]
pub struct ErrorBody {
    error: String,
}

pub fn router(shared: AppState) -> axum::Router {
    let (api, doc) = api_routes();
    let doc = Arc::new(doc);
    api.route("/api/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/metrics", get(metrics))
        .merge(super::scim::routes())
        .merge(super::ui::routes())
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such API endpoint".into()) })
        .layer(axum::middleware::from_fn(csrf))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// Largest request body (axum's own default for its extractors).
const MAX_BODY: usize = 2 << 20;

/// Paths anyone may call: liveness, the API's description, dashboard sign-in and assets.
fn public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/ui" | "/favicon.ico" | "/api/v1/health" | "/api/v1/openapi.json" | "/api/v1/session"
    ) || path.starts_with("/ui/")
}

/// Reads at most a small part of a refused request's body before answering: an HTTP/2
/// client still sending sees the answer instead of a reset stream, and a stranger cannot
/// make the collector hold more than this.
async fn drain(req: axum::extract::Request) {
    let _unread = axum::body::to_bytes(req.into_body(), 64 * 1024).await;
}

/// Who is calling, decided before anything reads a request body: a request without a valid
/// API token or session is answered 401 at once, so no stranger can make the collector
/// buffer bodies or hold requests open. (Handlers still check the role they need.)
async fn authenticate(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if public(req.uri().path()) {
        return next.run(req).await;
    }
    match caller(&s, req.headers()).await {
        Ok(_) => {
            // The whole body, read before the handler runs: a handler that answers without
            // reading it (a 404, a refused role) would otherwise reset an HTTP/2 stream the
            // client is still sending on, and the client sees an error instead of the answer.
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(bytes) => {
                    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
                }
                Err(_) => {
                    ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_BODY} bytes"))
                        .into_response()
                }
            }
        }
        Err((status, message)) => {
            let scim = req.uri().path().starts_with("/scim/");
            drain(req).await;
            if scim {
                super::scim::refusal(status, message)
            } else {
                ApiError(status, message).into_response()
            }
        }
    }
}

/// Every change made with a session cookie — any route, SCIM and sign-in pushes included —
/// must carry [`super::ui::CSRF_HEADER`]: a cross-site form or image can make a browser send
/// the cookie, never a custom header. Bearer-token calls are not cookie-borne and pass.
async fn csrf(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    let h = req.headers();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && !h.contains_key(header::AUTHORIZATION)
        && super::ui::session_cookie(h).is_some()
        && !h.contains_key(super::ui::CSRF_HEADER)
    {
        drain(req).await;
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("a change made with a session cookie needs the {} header", super::ui::CSRF_HEADER),
        )
        .into_response();
    }
    next.run(req).await
}

/// Prometheus text exposition (viewer or admin token: scrapers send it as a bearer token).
async fn metrics(State(s): State<AppState>, h: HeaderMap) -> Result<Response, ApiError> {
    reader(&s, &h).await?;
    s.metrics.connected.set(s.dispatch.open_streams() as i64);
    let mut r = s.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}

/// Liveness for load balancers: no token, no data.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "health",
    summary = "Liveness, no token",
    responses((status = 200, description = "`{\"status\": \"ok\", \"version\": …}`", body = Object)),
    security(()),
)]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "inventory",
    summary = "Every enrolled device (the CLI's `devices --json`), a page at a time",
    params(Page),
    responses((status = 200, description = "Array of devices", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn devices(
    State(s): State<AppState>,
    h: HeaderMap,
    uri: axum::http::Uri,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&s, &h).await?;
    let Query(page) = page.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    paged(&uri, blocking(&s.store, query::devices_value).await?, page)
}

/// A page of a whole-fleet list: `?limit=` (default [`Page::DEFAULT`], at most
/// [`Page::MAX`]) and `?offset=`. The body stays a JSON array; `X-Total-Count` says how
/// many there are in all and `Link: <…>; rel="next"` where the next page is.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// How many items (default 1000, at most 10000).
    limit: Option<usize>,
    /// How many to skip.
    offset: Option<usize>,
}

impl Page {
    const DEFAULT: usize = 1_000;
    const MAX: usize = 10_000;
}

fn paged(uri: &axum::http::Uri, all: Value, page: Page) -> Result<Response, ApiError> {
    let Value::Array(items) = all else { return Ok(Json(all).into_response()) };
    let limit = page.limit.unwrap_or(Page::DEFAULT);
    if limit == 0 || limit > Page::MAX {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`limit` must be 1 to {}", Page::MAX)));
    }
    let total = items.len();
    let offset = page.offset.unwrap_or(0).min(total);
    let end = offset.saturating_add(limit).min(total);
    let slice: Vec<Value> = items.into_iter().skip(offset).take(end - offset).collect();
    let mut r = Json(Value::Array(slice)).into_response();
    r.headers_mut().insert("x-total-count", HeaderValue::from(total));
    if end < total {
        // The same query, this page moved on.
        let kept: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("offset=") && !p.starts_with("limit="))
            .collect();
        let mut q = kept.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        let link = format!("<{}?{q}offset={end}&limit={limit}>; rel=\"next\"", uri.path());
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(r)
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "inventory",
    summary = "One device with its connectors and recent presence history",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, description = "The device", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn device(
    State(s): State<AppState>,
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

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/revoke",
    tag = "actions",
    summary = "Revoke a device: its streams are refused from now on (admin)",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, description = "Revoked", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn revoke_device(
    State(s): State<AppState>,
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

#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "inventory",
    summary = "Every connector, filtered (the CLI's `connectors --json`), a page at a time",
    params(query::ConnectorFilter, Page),
    responses((status = 200, description = "Array of connectors", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn connectors(
    State(s): State<AppState>,
    h: HeaderMap,
    uri: axum::http::Uri,
    q: Result<Query<ConnectorsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = query::ConnectorFilter { kind: q.kind, status: q.status, user: q.user };
    let policy = s.policy.clone();
    let all = blocking(&s.store, move |st| query::connectors_value(st, &filter, &policy)).await?;
    paged(&uri, all, Page { limit: q.limit, offset: q.offset })
}

/// The connector filter and a page.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorsQuery {
    kind: Option<String>,
    status: Option<String>,
    user: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One connector: where it is and was, owners, and any revocation with each device's outcome.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{key}",
    tag = "inventory",
    summary = "One connector: devices, owners, presence, revocation and directives",
    params(("key" = String, Path, description = "Connector key: extension:ID, tool:ID, token:FP, mcp:NAME:HASH")),
    responses((status = 200, description = "The connector", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn connector(
    State(s): State<AppState>,
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

#[utoipa::path(
    get,
    path = "/api/v1/triage/connector/{key}",
    tag = "triage",
    summary = "Where an access path is and was, with owners and evidence references",
    params(("key" = String, Path, description = "Connector key")),
    responses((status = 200, description = "The connector with its presence history", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn triage_connector(
    s: State<AppState>,
    h: HeaderMap,
    key: Path<String>,
) -> Result<Json<Value>, ApiError> {
    connector(s, h, key).await
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/token/{fp}",
    tag = "triage",
    summary = "Every place a token fingerprint is or was",
    params(("fp" = String, Path, description = "Keyed token fingerprint (hex)")),
    responses((status = 200, description = "The token connector with its presence history", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn triage_token(
    s: State<AppState>,
    h: HeaderMap,
    Path(fp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    connector(s, h, Path(format!("token:{fp}"))).await
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: String,
}

/// Revokes a connector (admin): directives go out to every device where it is present.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{key}/revoke",
    tag = "actions",
    summary = "Revoke a connector: a signed directive to every device that has it (admin)",
    params(("key" = String, Path, description = "Connector key")),
    request_body(content = RevokeBody, description = "Optional; the reason is kept and sent to devices"),
    responses((status = 200, description = "The directives issued", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn revoke_connector(
    State(s): State<AppState>,
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

/// Withdraws a revocation (admin): no more directives; unanswered ones are closed.
#[utoipa::path(
    delete,
    path = "/api/v1/connectors/{key}/revoke",
    tag = "actions",
    summary = "Withdraw a revocation: no more directives, unanswered ones closed (admin)",
    params(("key" = String, Path, description = "Connector key")),
    responses((status = 200, description = "The connector as it now stands", body = Object),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody),
              (status = 404, description = "No such connector, or it is not revoked", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn withdraw_revocation(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &h).await?;
    let (k, policy) = (key.clone(), s.policy.clone());
    let v = blocking(&s.store, move |st| {
        if st.connector(&k)?.is_none_or(|c| c.revocation.is_none()) {
            return Ok(None);
        }
        crate::revoke::withdraw(st, &k, "api:admin", now_ms())?;
        query::connector_value(st, &policy, &k)
    })
    .await?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("{key} is not a revoked connector")))?;
    s.views.clear();
    Ok(Json(v))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// `approved`, `unsanctioned`, or `policy` (drop the decision; the policy file decides).
    status: String,
}

/// An admin's status decision for a connector, overriding the policy file.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{key}/status",
    tag = "actions",
    summary = "Approve or mark unsanctioned, overriding policy.toml; `policy` drops the decision (admin)",
    params(("key" = String, Path, description = "Connector key")),
    request_body = StatusBody,
    responses((status = 200, description = "The connector as it now stands", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn set_status(
    State(s): State<AppState>,
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
#[utoipa::path(
    get,
    path = "/api/v1/people/{user}",
    tag = "identity",
    summary = "A person now: accounts, devices, sessions, connectors, recent sign-ins",
    params(("user" = String, Path, description = "SCIM userName or email")),
    responses((status = 200, description = "The person", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn person(
    State(s): State<AppState>,
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
async fn snapshot(s: &AppState) -> Result<Arc<crate::views::Snapshot>, ApiError> {
    let (cache, policy) = (s.views.clone(), s.policy.clone());
    blocking(&s.store, move |st| cache.get(st, &policy, now_ms())).await
}

#[utoipa::path(
    get,
    path = "/api/v1/views/overview",
    tag = "views",
    summary = "Fleet overview: devices by assurance, OS and recency; connectors by status and kind; findings; 30-day shadow-AI trend",
    responses((status = 200, description = "The overview", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn view_overview(State(s): State<AppState>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let snap = snapshot(&s).await?;
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| crate::views::overview(st, &policy, &snap)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/devices",
    tag = "views",
    summary = "A page of devices, sorted and filtered on the server",
    params(crate::views::TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn view_devices(State(s): State<AppState>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(blocking(&s.store, move |st| crate::views::devices(st, &q)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/connectors",
    tag = "views",
    summary = "A page of connectors with their status",
    params(crate::views::TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn view_connectors(
    State(s): State<AppState>,
    h: HeaderMap,
    q: TableQ,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::connectors(&snap, &s.policy, &q)))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/findings",
    tag = "views",
    summary = "A page of findings",
    params(crate::views::TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn view_findings(State(s): State<AppState>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::findings(&snap, &q)))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/people",
    tag = "views",
    summary = "A page of people, deprovisioned ones flagged",
    params(crate::views::TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn view_people(State(s): State<AppState>, h: HeaderMap, q: TableQ) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::people(&snap, &s.policy, &q)))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AtQuery {
    /// RFC 3339, or `now` (the default).
    at: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/device/{id}",
    tag = "triage",
    summary = "What was on a device at an instant, who was logged in, its assurance",
    params(("id" = String, Path, description = "Device id"), AtQuery),
    responses((status = 200, description = "The device at that instant", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn triage_device(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<AtQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    reader(&s, &h).await?;
    let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let at = parse_at(q.at.as_deref())?;
    let i = id.clone();
    blocking(&s.store, move |st| query::device_at_value(st, &i, at))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {id}")))
}

/// IdP sign-in push (`ingest` or `admin` tokens): the body is what `signins import` reads.
#[utoipa::path(
    post,
    path = "/api/v1/signins/{source}",
    tag = "identity",
    summary = "Push IdP sign-in events: Okta System Log or Entra sign-ins JSON (ingest or admin token)",
    params(("source" = String, Path, description = "okta or entra")),
    request_body(content = Object, description = "A JSON array, a Graph page or JSON lines, as the IdP exports them"),
    responses((status = 200, description = "Counts received, stored, duplicates, skipped", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn push_signins(
    State(s): State<AppState>,
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

#[utoipa::path(
    get,
    path = "/api/v1/findings",
    tag = "inventory",
    summary = "Every finding (the CLI's `findings --json`), a page at a time",
    params(Page),
    responses((status = 200, description = "Array of findings", body = Object), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn findings(
    State(s): State<AppState>,
    h: HeaderMap,
    uri: axum::http::Uri,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    reader(&s, &h).await?;
    let Query(page) = page.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let policy = s.policy.clone();
    paged(&uri, blocking(&s.store, move |st| query::findings_value(st, &policy, now_ms())).await?, page)
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/user/{user}",
    tag = "triage",
    summary = "A person at an instant: devices, sessions, connectors, attribution, sign-ins",
    params(("user" = String, Path, description = "SCIM userName or email"), AtQuery),
    responses((status = 200, description = "The person at that instant", body = Object), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
async fn triage_user(
    State(s): State<AppState>,
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

/// Serves the API over TLS on `listener` until `shutdown` resolves. Connections are capped
/// and bounded in time (`crate::listen`); a request header must arrive within
/// [`HEADER_READ`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: AppState,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    let limits = crate::listen::Limits::http(shared.config.http_max_connections);
    let listener = crate::listen::Listener::new(listener, limits, "http", shared.metrics.clone());
    let router = router(shared);
    tracing::info!(addr = %listener.local_addr()?, max_connections = limits.max_connections, "HTTP API listening (TLS).");
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let state = conn.state().clone();
            let peer = state.remote;
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(conn)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "API TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "API TLS handshake timed out.");
                    return;
                }
            };
            // A request being answered holds off the connection's idle timeout.
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = state.busy();
                let call = tower::ServiceExt::oneshot(router.clone(), req);
                async move {
                    let r = call.await;
                    drop(busy);
                    r
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_HTTP2_STREAMS)
                .max_header_list_size(MAX_HEADER_BYTES)
                .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            // Recycle the connection gracefully before its lifetime ends it hard.
            let recycle = tokio::time::sleep(limits.lifetime.saturating_sub(HANDSHAKE * 3));
            tokio::pin!(recycle);
            let mut recycling = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "API connection ended with an error.");
                        }
                        break;
                    }
                    _ = &mut recycle => {
                        if recycling {
                            // Still not done a grace period after being asked: dropped.
                            tracing::debug!(%peer, "API connection closed at the end of its lifetime.");
                            break;
                        }
                        recycling = true;
                        conn.as_mut().graceful_shutdown();
                        recycle.as_mut().reset(tokio::time::Instant::now() + HANDSHAKE * 3);
                    }
                }
            }
        });
    }
    tracing::info!("HTTP API stopped.");
    Ok(())
}

/// A TLS handshake must finish within this.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);
/// A request's header must arrive within this (HTTP/1; slowloris).
const HEADER_READ: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_HTTP2_STREAMS: u32 = 64;
const MAX_HEADER_BYTES: u32 = 32 * 1024;
