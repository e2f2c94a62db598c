//! Token lifecycle over the API (admin): list, create and revoke enrollment and API tokens,
//! as `enrollment-token` / `api-token` do on the command line (`crate::tokens`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::auth::{Admin, caller_token};
use super::error::{ApiError, ErrorBody, blocking};
use crate::clock::now_ms;
use crate::domain::Role;
use crate::responses::{
    ApiToken, ApiTokenCreated, ApiTokenRevoked, EnrollmentToken, EnrollmentTokenCreated,
    EnrollmentTokenRevoked,
};
use crate::state::AppState;
use crate::tokens;

/// A new token; `ttl` like `90d` or `1h`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiToken {
    /// viewer, admin, scim, ingest or owner.
    role: String,
    #[serde(default)]
    name: String,
    /// For an owner token: the person it acts for (userName or e-mail).
    #[serde(default)]
    person: Option<String>,
    /// Without it the token works until revoked.
    ttl: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEnrollmentToken {
    #[serde(default)]
    name: String,
    /// Default 1h.
    ttl: Option<String>,
}

fn ttl(t: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    t.map(|t| {
        humantime::parse_duration(t)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("`ttl` {t:?} is not a duration: {e}")))
    })
    .transpose()
}

/// The JSON body, whatever the Content-Type says (the body is read either way: an HTTP/2
/// client still sending when a refusal comes would see a reset stream instead).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("malformed body: {e}")))
}

/// When a token made at `now` with `ttl` expires.
fn expiry(now: i64, ttl: std::time::Duration) -> String {
    crate::clock::rfc3339(now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)))
}

/// A revocation's id failures are the caller's (400/404), not the server's.
fn revoke_error(e: anyhow::Error) -> ApiError {
    let m = format!("{e:#}");
    let status = if m.contains("no token has id") { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
    ApiError(status, m)
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens/api",
    tag = "tokens",
    summary = "Every API token: id, role, name, state, expiry, last use — never the token (admin)",
    responses((status = 200, description = "Array of tokens", body = Vec<ApiToken>), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn list_api(_: Admin, State(s): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let now = now_ms();
    let list = blocking(&s.store, |st| Ok(st.api_tokens()?)).await?;
    Ok(Json(list.iter().map(|t| tokens::api_token_json(t, now)).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/api",
    tag = "tokens",
    summary = "Create an API token; the answer holds it once (admin)",
    request_body = NewApiToken,
    responses((status = 200, description = "The token, shown this once", body = ApiTokenCreated), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn create_api(
    _: Admin,
    State(s): State<AppState>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ApiTokenCreated>, ApiError> {
    let b: NewApiToken = json_body(&body)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("role {:?} is not one of viewer, admin, scim, ingest, owner", b.role),
        )
    })?;
    if (role == Role::Owner) != b.person.is_some() {
        return Err(ApiError::bad_request(
            "`person` names who an owner token acts for, and goes with role owner only",
        ));
    }
    let ttl = ttl(b.ttl.as_deref())?;
    let now = now_ms();
    let name = b.name;
    // A dashboard session opened through SSO stands for no token: a token minted from it
    // would outlive the person's access at the provider, so lasting credentials come from a
    // token (or the command line), whose revocation ends what it made.
    let by = caller_token(&s, &h).await?.ok_or_else(|| {
        ApiError(
            StatusCode::FORBIDDEN,
            "API tokens cannot be created from an SSO session: use an admin API token or `sightline-server api-token create`".into(),
        )
    })?;
    let person = b.person;
    let token = blocking(&s.store, move |st| {
        let by = tokens::made_by_token(&by);
        Ok(match person {
            // An unknown or departed person is the caller's mistake, not the server's.
            Some(p) => match crate::policy::People::new(st.people_all()?).named(&p) {
                Some(found) if found.deprovisioned_at_ms.is_none() => {
                    Ok(tokens::create_owner(st, &p, &name, ttl, now, &by)?)
                }
                _ => Err(format!("no provisioned person has userName or e-mail {p:?}")),
            },
            None => Ok(tokens::create_api(st, role, &name, ttl, now, &by)?),
        })
    })
    .await?
    .map_err(ApiError::bad_request)?;
    let id = tokens::id(&tokens::hash(&token));
    tracing::info!(token = %id, role = role.as_str(), "API token created through the API.");
    Ok(Json(ApiTokenCreated { expires_at: ttl.map(|t| expiry(now, t)), id, role: role.as_str(), token }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/api/{id}",
    tag = "tokens",
    summary = "Revoke an API token; its dashboard sessions end at once (admin)",
    params(("id" = String, Path, description = "Token id as listed (a unique prefix of at least 6 hex digits)")),
    responses((status = 200, description = "Revoked, with the tokens it had made", body = ApiTokenRevoked), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn revoke_api(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApiTokenRevoked>, ApiError> {
    let r = blocking(&s.store, move |st| Ok(tokens::revoke_api(st, &id, now_ms())))
        .await?
        .map_err(revoke_error)?;
    tracing::info!(token = %r.id, heirs = ?r.heirs, "API token revoked through the API.");
    Ok(Json(ApiTokenRevoked { already: !r.now, also_revoked: r.heirs, id: r.id, revoked: true }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens/enrollment",
    tag = "tokens",
    summary = "Every enrollment token: id, name, state (active, used, expired, revoked), times (admin)",
    responses((status = 200, description = "Array of tokens", body = Vec<EnrollmentToken>), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn list_enrollment(
    _: Admin,
    State(s): State<AppState>,
) -> Result<Json<Vec<EnrollmentToken>>, ApiError> {
    let now = now_ms();
    let list = blocking(&s.store, |st| Ok(st.enrollment_tokens()?)).await?;
    Ok(Json(list.iter().map(|t| tokens::enrollment_token_json(t, now)).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/enrollment",
    tag = "tokens",
    summary = "Create a one-time enrollment token; the answer holds it once (admin)",
    request_body = NewEnrollmentToken,
    responses((status = 200, description = "The token, shown this once", body = EnrollmentTokenCreated), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn create_enrollment(
    _: Admin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<EnrollmentTokenCreated>, ApiError> {
    let b: NewEnrollmentToken = json_body(&body)?;
    let ttl = ttl(b.ttl.as_deref())?.unwrap_or(std::time::Duration::from_secs(3600));
    let now = now_ms();
    let name = b.name;
    let token = blocking(&s.store, move |st| tokens::create_enrollment(st, ttl, &name, now)).await?;
    let id = tokens::id(&tokens::hash(&token));
    tracing::info!(token = %id, "Enrollment token created through the API.");
    Ok(Json(EnrollmentTokenCreated { expires_at: expiry(now, ttl), id, token }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/enrollment/{id}",
    tag = "tokens",
    summary = "Revoke an enrollment token before it is used (admin)",
    params(("id" = String, Path, description = "Token id as listed (a unique prefix of at least 6 hex digits)")),
    responses((status = 200, description = "Revoked", body = EnrollmentTokenRevoked), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(crate) async fn revoke_enrollment(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EnrollmentTokenRevoked>, ApiError> {
    let r = blocking(&s.store, move |st| Ok(tokens::revoke_enrollment(st, &id, now_ms())))
        .await?
        .map_err(revoke_error)?;
    tracing::info!(token = %r.id, "Enrollment token revoked through the API.");
    Ok(Json(EnrollmentTokenRevoked { already: !r.now, id: r.id, revoked: true }))
}
