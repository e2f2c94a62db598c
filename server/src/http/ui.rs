//! The dashboard: a single-page app embedded in the binary (`server/ui/`, no CDN, works
//! offline), served on the HTTP listener, and the session endpoints it signs in with.
//!
//! Sign-in exchanges an API token (viewer or admin) for a session cookie: `HttpOnly`,
//! `Secure`, `SameSite=Strict`, 12 hours. The database keeps only hashes of the session id
//! and of the token it stands for, so revoking the token ends its sessions. With an OpenID
//! provider configured, `super::sso` opens the same cookie for a person instead. A change made
//! through a session must also carry [`CSRF_HEADER`], which no cross-site form can send.
//! Every page is served with a strict Content-Security-Policy: scripts and styles from the
//! collector only, nothing inline.

use super::api::{Anyone, ApiError, blocking, internal, token_hash};
use crate::clock::now_ms;
use crate::domain::Role;
use crate::responses::{SignedIn, WhoAmI};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The header a session-authenticated change must carry.
pub const CSRF_HEADER: &str = "x-sightline-csrf";
const COOKIE: &str = "sightline_session";
pub(super) const SESSION_MS: i64 = 12 * 3600 * 1000;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const DOM_JS: &str = include_str!("../../ui/dom.js");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const REVIEW_HTML: &str = include_str!("../../ui/review.html");
const REVIEW_JS: &str = include_str!("../../ui/review.js");

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ui/")]) }))
        .route("/ui", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ui/")]) }))
        .route("/ui/", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/ui/dom.js", get(|| async { asset(DOM_JS, "text/javascript; charset=utf-8") }))
        .route("/ui/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/ui/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        // A reviewer's page: opened from the link in a review e-mail, the token in the
        // fragment (never sent here); the page calls the API with it.
        .route("/ui/review", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ui/review/")]) }))
        .route("/ui/review/", get(|| async { asset(REVIEW_HTML, "text/html; charset=utf-8") }))
        .route("/ui/review.js", get(|| async { asset(REVIEW_JS, "text/javascript; charset=utf-8") }))
        .merge(super::sso::routes())
}

pub(super) fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The session id from the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The value of cookie `name`, if the request has it.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// A fresh session id: random, and stored only as its hash.
pub(super) fn new_session_id() -> Result<String, ApiError> {
    crate::tokens::random(32)
        .map(hex::encode)
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "random number generator failed".into()))
}

/// The `Set-Cookie` value of a session (the same for either way of signing in).
pub(super) fn session_set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}", SESSION_MS / 1000)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// A viewer or admin API token.
    token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    summary = "Sign in to the dashboard: exchange an API token for a session cookie",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: sightline_session=…; HttpOnly; Secure; SameSite=Strict`", body = SignedIn),
        (status = 400, description = "Malformed body", body = super::api::ErrorBody),
        (status = 401, description = "Unknown or revoked token", body = super::api::ErrorBody),
        (status = 403, description = "A machine token (scim, ingest) cannot sign in", body = super::api::ErrorBody),
    ),
    security(()),
)]
pub(crate) async fn sign_in(
    State(s): State<AppState>,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let hash = token_hash(body.token.trim());
    let h = hash.clone();
    let role = blocking(&s.store, move |st| Ok(st.api_token_role(&h, now_ms())?))
        .await?
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown, expired or revoked API token".into()))?;
    if !matches!(role, Role::Viewer | Role::Admin) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("a {} token cannot sign in to the dashboard", role.as_str()),
        ));
    }
    let id = new_session_id()?;
    let (sid, now) = (token_hash(&id), now_ms());
    blocking(&s.store, move |st| Ok(st.create_session(&sid, &hash, now, now + SESSION_MS)?)).await?;
    tracing::info!(role = role.as_str(), "Dashboard session opened.");
    let cookie = session_set_cookie(&id);
    let mut r = Json(SignedIn { role: role.as_str() }).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(internal)?);
    Ok(r)
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    summary = "Who the caller is: the role behind the token or session",
    responses((status = 200, description = "The caller's role and the collector's version", body = WhoAmI),
              (status = 401, description = "Not signed in", body = super::api::ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn whoami(Anyone(role): Anyone) -> Json<WhoAmI> {
    Json(WhoAmI { role: role.as_str(), version: env!("CARGO_PKG_VERSION") })
}

#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    summary = "Sign out: the session ends on the server and the cookie is cleared",
    responses((status = 204, description = "Signed out")),
    security(("session" = [])),
)]
pub(crate) async fn sign_out(State(s): State<AppState>, h: HeaderMap) -> Result<Response, ApiError> {
    if let Some(id) = session_cookie(&h) {
        let sid = token_hash(&id);
        blocking(&s.store, move |st| Ok(st.delete_session(&sid)?)).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sightline_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}
