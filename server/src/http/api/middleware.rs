//! What every request goes through before a handler: authentication (a stranger is
//! answered 401 before any body is read) and the CSRF rule for session-cookie changes.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{caller, review_grant, review_token_path};
use super::error::ApiError;
use crate::http::{scim, ui};
use crate::state::AppState;

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
/// buffer bodies or hold requests open. (Handlers still ask for the role they need.)
pub(super) async fn authenticate(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if public(req.uri().path()) {
        return next.run(req).await;
    }
    let mut who = caller(&s, req.headers()).await.map(|_| ());
    // A reviewer's link token is no API token: it opens its review endpoints only.
    if who.is_err()
        && review_token_path(req.uri().path())
        && matches!(review_grant(&s, req.headers()).await, Ok(Some(_)))
    {
        who = Ok(());
    }
    match who {
        Ok(()) => {
            // The whole body, read before the handler runs: a handler that answers without
            // reading it (a 404, a refused role) would otherwise reset an HTTP/2 stream the
            // client is still sending on, and the client sees an error instead of the answer.
            let (parts, body) = req.into_parts();
            let is_scim = parts.uri.path().starts_with("/scim/");
            match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(bytes) => {
                    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
                }
                Err(_) => {
                    let (status, message) =
                        (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_BODY} bytes"));
                    if is_scim {
                        scim::refusal(status, message)
                    } else {
                        ApiError(status, message).into_response()
                    }
                }
            }
        }
        Err((status, message)) => {
            let is_scim = req.uri().path().starts_with("/scim/");
            drain(req).await;
            if is_scim { scim::refusal(status, message) } else { ApiError(status, message).into_response() }
        }
    }
}

/// Every change made with a session cookie — any route, SCIM and sign-in pushes included —
/// must carry [`ui::CSRF_HEADER`]: a cross-site form or image can make a browser send the
/// cookie, never a custom header. Bearer-token calls are not cookie-borne and pass.
pub(super) async fn csrf(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    let h = req.headers();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && !h.contains_key(header::AUTHORIZATION)
        && ui::session_cookie(h).is_some()
        && !h.contains_key(ui::CSRF_HEADER)
    {
        drain(req).await;
        return ApiError::forbidden(format!(
            "a change made with a session cookie needs the {} header",
            ui::CSRF_HEADER
        ))
        .into_response();
    }
    next.run(req).await
}
