//! Acting (admin): revoking devices and connectors, status decisions; and sign-in pushes
//! (`ingest` or admin).

use axum::Json;
use axum::extract::{Path, State};

use super::auth::{Admin, Pusher};
use super::error::{ApiError, ErrorBody, blocking, internal};
use crate::clock::now_ms;
use crate::query;
use crate::responses::{Connector, DeviceRevoked, Revoked, SignInsPushed};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/revoke",
    tag = "actions",
    summary = "Revoke a device: its streams are refused from now on (admin)",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, description = "Revoked", body = DeviceRevoked), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn revoke_device(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeviceRevoked>, ApiError> {
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
        return Err(ApiError::not_found(format!("no device {id}")));
    }
    tracing::info!(device = %id, "Device revoked through the API.");
    Ok(Json(DeviceRevoked { device_id: id, revoked: true }))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
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
    responses((status = 200, description = "The directives issued", body = Revoked), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn revoke_connector(
    _: Admin,
    State(s): State<AppState>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Revoked>, ApiError> {
    let body: RevokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("expected {{\"reason\": \"...\"}}: {e}")))?
    };
    let (pki, k) = (s.pki.clone(), key.clone());
    let issued = crate::state::blocking(&s.store, move |st| {
        crate::revoke::revoke(st, &pki, &k, "api:admin", &body.reason, now_ms())
    })
    .await?
    .map_err(|e| match e {
        crate::revoke::RevokeError::UnknownConnector(_) => ApiError::not_found(e.to_string()),
        crate::revoke::RevokeError::Unsupported(_) => ApiError::bad_request(e.to_string()),
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
    responses((status = 200, description = "The connector as it now stands", body = Connector),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody),
              (status = 404, description = "No such connector, or it is not revoked", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn withdraw_revocation(
    _: Admin,
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Connector>, ApiError> {
    let (k, policy) = (key.clone(), s.policy.clone());
    let v = blocking(&s.store, move |st| {
        if st.connector(&k)?.is_none_or(|c| c.revocation.is_none()) {
            return Ok(None);
        }
        crate::revoke::withdraw(st, &k, "api:admin", now_ms())?;
        query::connector_value(st, &policy, &k)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("{key} is not a revoked connector")))?;
    s.views.clear();
    Ok(Json(v))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    /// `approved`, `unsanctioned`, or `policy` (drop the decision; the policy file decides).
    status: String,
    /// Why (kept in the connector's history).
    #[serde(default)]
    reason: Option<String>,
    /// An approval that lapses: a duration from now (`30d`, `12h`). After it the connector
    /// is `unsanctioned` again unless policy.toml approves it.
    #[serde(default)]
    expires_in: Option<String>,
}

/// An admin's status decision for a connector, overriding the policy file.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{key}/status",
    tag = "actions",
    summary = "Approve or mark unsanctioned (optionally until a time), overriding policy.toml; `policy` drops the decision (admin)",
    params(("key" = String, Path, description = "Connector key")),
    request_body = StatusBody,
    responses((status = 200, description = "The connector as it now stands", body = Connector), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn set_status(
    admin: Admin,
    State(s): State<AppState>,
    Path(key): Path<String>,
    body: Result<Json<StatusBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Connector>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = now_ms();
    let status = match body.status.as_str() {
        "approved" | "unsanctioned" => Some(body.status.clone()),
        "policy" => None,
        other => {
            return Err(ApiError::bad_request(format!(
                "status {other:?}: use approved, unsanctioned or policy"
            )));
        }
    };
    let expires = match (&body.expires_in, status.as_deref()) {
        (None, _) => None,
        (Some(d), Some("approved")) => Some(now + expiry(d)?),
        (Some(_), _) => return Err(ApiError::bad_request("expires_in applies to an approval only")),
    };
    let (k, policy, actor) = (key.clone(), s.policy.clone(), admin.actor());
    let reason = body.reason.clone();
    let v = blocking(&s.store, move |st| {
        if st.connector(&k)?.is_none() {
            return Ok(None);
        }
        crate::register::decide(st, &k, status.as_deref(), &actor, reason.as_deref(), expires, now)?;
        query::connector_value(st, &policy, &k)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no connector {key} has been reported")))?;
    s.views.clear();
    tracing::info!(connector = %key, status = %body.status, "Connector status decided through the API.");
    Ok(Json(v))
}

/// A duration a person typed (`30d`), in ms; at most ten years.
fn expiry(d: &str) -> Result<i64, ApiError> {
    let t = humantime::parse_duration(d)
        .map_err(|e| ApiError::bad_request(format!("expires_in {d:?} is not a duration like 30d: {e}")))?;
    if t.is_zero() || t.as_secs() > 10 * 365 * 86_400 {
        return Err(ApiError::bad_request("expires_in must be more than 0 and at most ten years"));
    }
    Ok(t.as_millis() as i64)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OwnerBody {
    /// The business owner: a person's userName or e-mail; null gives ownership back to the
    /// attributed person.
    person: Option<String>,
    /// Why (required: the owner history is an audit record).
    reason: String,
}

/// Names a connector's business owner (admin), kept in its history.
#[utoipa::path(
    put,
    path = "/api/v1/connectors/{key}/owner",
    tag = "actions",
    summary = "Assign a connector's business owner, with a reason; person null returns it to the attributed person (admin)",
    params(("key" = String, Path, description = "Connector key")),
    request_body = OwnerBody,
    responses((status = 200, description = "The connector as it now stands", body = Connector), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn set_owner(
    admin: Admin,
    State(s): State<AppState>,
    Path(key): Path<String>,
    body: Result<Json<OwnerBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Connector>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (k, policy, actor) = (key.clone(), s.policy.clone(), admin.actor());
    let v = blocking(&s.store, move |st| {
        match crate::register::assign_owner(st, &k, body.person.as_deref(), &body.reason, &actor, now_ms()) {
            Ok(false) => return Ok(Err(None)),
            Ok(true) => {}
            Err(e) => return Ok(Err(Some(format!("{e:#}")))),
        }
        Ok(Ok(query::connector_value(st, &policy, &k)?))
    })
    .await?;
    let v = match v {
        Ok(Some(v)) => v,
        Ok(None) | Err(None) => {
            return Err(ApiError::not_found(format!("no connector {key} has been reported")));
        }
        Err(Some(e)) => return Err(ApiError::bad_request(e)),
    };
    s.views.clear();
    Ok(Json(v))
}

/// IdP sign-in push (`ingest` or `admin` tokens): the body is what `signins import` reads.
#[utoipa::path(
    post,
    path = "/api/v1/signins/{source}",
    tag = "identity",
    summary = "Push IdP sign-in events: Okta System Log or Entra sign-ins JSON (ingest or admin token)",
    params(("source" = String, Path, description = "okta or entra")),
    request_body(content = Object, description = "A JSON array, a Graph page or JSON lines, as the IdP exports them"),
    responses((status = 200, description = "Counts received, stored, duplicates, skipped", body = SignInsPushed), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn push_signins(
    _: Pusher,
    State(s): State<AppState>,
    Path(source): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SignInsPushed>, ApiError> {
    let source = crate::signins::Source::parse(&source)
        .ok_or_else(|| ApiError::not_found(format!("no sign-in source {source:?}; use okta or entra")))?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let (signins, skipped) =
        crate::signins::parse(source, text).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let n = signins.len();
    let added = blocking(&s.store, move |st| Ok(st.add_signins(&signins)?)).await?;
    Ok(Json(SignInsPushed { duplicates: n - added, received: n, skipped, stored: added }))
}
