//! Dashboard sign-in through an OpenID Connect provider (`serve --oidc-*`; the protocol is
//! in `crate::oidc`). `/ui/oidc/login` starts a sign-in: state, nonce and PKCE verifier go
//! to the database under the hash of a fresh random cookie (`sightline_oidc`, `SameSite=Lax`
//! so it comes back on the provider's cross-site redirect, 10 minutes), so the callback is
//! bound to the browser that started it and any replica can finish it, once.
//! `/ui/oidc/callback` takes that row, checks `state`, redeems the code, verifies the ID
//! token and maps the person's groups to a role; a person in no mapped group gets a page
//! saying so and no session. The session cookie is the one API-token sign-in sets, standing
//! for the subject and role (`ui_sso_sessions`) for the usual 12 hours; sign-out ends it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, http::HeaderMap};

use super::api::{ApiError, blocking, token_hash};
use super::ui::{SESSION_MS, cookie, new_session_id, session_set_cookie};
use crate::clock::now_ms;
use crate::oidc::{Login, OidcError};
use crate::state::AppState;
use crate::store::{PendingLogin, SsoIdentity};

const LOGIN_COOKIE: &str = "sightline_oidc";
/// How long a person may spend at the provider's sign-in page.
const LOGIN_MS: i64 = 10 * 60 * 1000;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/ui/oidc", get(status))
        .route("/ui/oidc/login", get(login))
        .route(crate::oidc::CALLBACK_PATH, get(callback))
}

/// Whether the sign-in page should offer SSO.
async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "enabled": s.oidc.is_some() }))
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// A page for a sign-in that did not end in a session: what happened, what to do, and the
/// way back. Text only, under the dashboard's CSP.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sightline: {t}</title>\
         <link rel=\"stylesheet\" href=\"/ui/app.css\"></head><body><main class=\"login\" data-testid=\"sso-error\">\
         <h1>{t}</h1><p>{m}</p><p><a href=\"/ui/\">Back to sign-in</a></p></main></body></html>\n",
        t = escape(title),
        m = escape(message)
    );
    let mut r = super::ui::asset("", "text/html; charset=utf-8");
    *r.body_mut() = axum::body::Body::from(html);
    *r.status_mut() = status;
    r
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "SSO is not set up",
        "This collector has no OpenID provider configured: sign in with an API token.",
    )
}

fn failed(e: &ApiError) -> Response {
    page(e.0, "Sign-in failed", &e.1)
}

async fn login(State(s): State<AppState>) -> Response {
    let Some(oidc) = s.oidc.clone() else { return not_configured() };
    let (to, login) = match oidc.begin().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect sign-in could not start.");
            return page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "The identity provider could not be reached; try again later.",
            );
        }
    };
    let binding = match new_session_id() {
        Ok(b) => b,
        Err(e) => return failed(&e),
    };
    let (hash, now) = (token_hash(&binding), now_ms());
    let pending = PendingLogin { state: login.state, nonce: login.nonce, verifier: login.verifier };
    match blocking(&s.store, move |st| Ok(st.create_oidc_login(&hash, &pending, now, now + LOGIN_MS)?)).await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("OpenID Connect sign-in refused: too many sign-ins in progress.");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "Too many sign-ins are in progress; try again in a few minutes.",
            );
        }
        Err(e) => return failed(&e),
    }
    let set = format!(
        "{LOGIN_COOKIE}={binding}; Path=/ui/oidc/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        LOGIN_MS / 1000
    );
    let mut r = StatusCode::SEE_OTHER.into_response();
    match (HeaderValue::from_str(&to), HeaderValue::from_str(&set)) {
        (Ok(to), Ok(set)) => {
            r.headers_mut().insert(header::LOCATION, to);
            r.headers_mut().insert(header::SET_COOKIE, set);
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        _ => page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            "The identity provider's sign-in address is unusable.",
        ),
    }
}

/// What the provider sends back (OAuth 2.0 §4.1.2, §4.1.2.1).
#[derive(Debug, serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Callback>, QueryRejection>,
) -> Response {
    let Some(oidc) = s.oidc.clone() else { return not_configured() };
    let mut r = match finish(&s, &oidc, &headers, q.ok().map(|Query(q)| q)).await {
        Ok(r) | Err(r) => r,
    };
    // The login is used (or was never there): its cookie goes either way.
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sightline_oidc=; Path=/ui/oidc/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
        ),
    );
    r
}

async fn finish(
    s: &AppState,
    oidc: &crate::oidc::Oidc,
    headers: &HeaderMap,
    q: Option<Callback>,
) -> Result<Response, Response> {
    let start_again = || {
        page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, was already used, or took over 10 minutes. Start again.",
        )
    };
    let q = q.ok_or_else(|| {
        page(StatusCode::BAD_REQUEST, "Sign-in failed", "The provider's answer is malformed.")
    })?;
    let binding = cookie(headers, LOGIN_COOKIE).ok_or_else(start_again)?;
    let hash = token_hash(&binding);
    let now = now_ms();
    let pending = blocking(&s.store, move |st| Ok(st.take_oidc_login(&hash, now)?))
        .await
        .map_err(|e| failed(&e))?
        .ok_or_else(start_again)?;
    // `state` ties this answer to the request this browser made (no login CSRF).
    if !q.state.as_deref().is_some_and(|st| same(st, &pending.state)) {
        tracing::warn!("OpenID Connect callback with a state that does not match its login; refused.");
        return Err(start_again());
    }
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or_default();
        tracing::info!(error = %e, description = %why, "The OpenID provider did not sign the person in.");
        return Err(page(
            StatusCode::UNAUTHORIZED,
            "Sign-in failed",
            &format!("The identity provider answered {e}: {why}"),
        ));
    }
    let code = q
        .code
        .ok_or_else(|| page(StatusCode::BAD_REQUEST, "Sign-in failed", "The provider sent no code."))?;
    let login = Login { state: pending.state, nonce: pending.nonce, verifier: pending.verifier };
    let who = oidc.finish(&code, &login, now / 1000).await.map_err(|e| {
        tracing::warn!(error = %e, "OpenID Connect sign-in refused.");
        match e {
            OidcError::Provider(_) | OidcError::Random => page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "The identity provider could not be reached; try again later.",
            ),
            OidcError::Token(_) | OidcError::IdToken(_) => page(
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                &format!("The sign-in could not be verified: {e}."),
            ),
        }
    })?;
    let Some(role) = oidc.config.role_for(&who.groups) else {
        tracing::warn!(subject = %who.subject, email = %who.email, groups = ?who.groups, "OpenID Connect sign-in refused: in no group mapped to a role.");
        return Err(page(
            StatusCode::FORBIDDEN,
            "No access to Sightline",
            &format!(
                "You signed in as {} but are in none of the groups that give access to Sightline. \
                 Ask an administrator to add you to one.",
                who.email
            ),
        ));
    };
    let id = new_session_id().map_err(|e| failed(&e))?;
    let sid = token_hash(&id);
    let identity =
        SsoIdentity { subject: who.subject.clone(), email: who.email.clone(), role: role.as_str().into() };
    blocking(&s.store, move |st| Ok(st.create_sso_session(&sid, &identity, now, now + SESSION_MS)?))
        .await
        .map_err(|e| failed(&e))?;
    tracing::info!(subject = %who.subject, email = %who.email, role = role.as_str(), "Dashboard session opened through OpenID Connect.");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response();
    let set =
        HeaderValue::from_str(&session_set_cookie(&id)).map_err(|e| failed(&super::api::internal(e)))?;
    r.headers_mut().insert(header::SET_COOKIE, set);
    Ok(r)
}
