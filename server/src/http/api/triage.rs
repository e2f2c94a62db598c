//! Triage: who had what, where, when (viewer or admin).

use axum::Json;
use axum::extract::{Path, State};

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, blocking};
use super::inventory::one_connector;
use super::params::{AtQuery, Params};
use crate::clock::now_ms;
use crate::query;
use crate::responses::{ActivityPage, Connector, DeviceAt, PersonAt};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/v1/triage/connector/{key}",
    tag = "triage",
    summary = "Where an access path is and was, with owners and evidence references",
    params(("key" = String, Path, description = "Connector key")),
    responses((status = 200, description = "The connector with its presence history", body = Connector), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn triage_connector(
    _: Reader,
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Connector>, ApiError> {
    one_connector(&s, key).await
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/token/{fp}",
    tag = "triage",
    summary = "Every place a token fingerprint is or was",
    params(("fp" = String, Path, description = "Keyed token fingerprint (hex)")),
    responses((status = 200, description = "The token connector with its presence history", body = Connector), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn triage_token(
    _: Reader,
    State(s): State<AppState>,
    Path(fp): Path<String>,
) -> Result<Json<Connector>, ApiError> {
    one_connector(&s, format!("token:{fp}")).await
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/device/{id}",
    tag = "triage",
    summary = "What was on a device at an instant, who was logged in, its assurance",
    params(("id" = String, Path, description = "Device id"), AtQuery),
    responses((status = 200, description = "The device at that instant", body = DeviceAt), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn triage_device(
    _: Reader,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<AtQuery>,
) -> Result<Json<DeviceAt>, ApiError> {
    let at = q.instant()?;
    let (i, policy) = (id.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::device_at_value(st, &policy, &i, at))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/triage/user/{user}",
    tag = "triage",
    summary = "A person at an instant: devices, sessions, connectors, attribution, sign-ins",
    params(("user" = String, Path, description = "SCIM userName or email"), AtQuery),
    responses((status = 200, description = "The person at that instant", body = PersonAt), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn triage_user(
    _: Reader,
    State(s): State<AppState>,
    Path(user): Path<String>,
    Params(q): Params<AtQuery>,
) -> Result<Json<PersonAt>, ApiError> {
    let at = q.instant()?;
    person_at(&s, user, at).await
}

/// A person now: their accounts, devices, sessions and what is on those devices.
#[utoipa::path(
    get,
    path = "/api/v1/people/{user}",
    tag = "identity",
    summary = "A person now: accounts, devices, sessions, connectors, recent sign-ins",
    params(("user" = String, Path, description = "SCIM userName or email")),
    responses((status = 200, description = "The person", body = PersonAt), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn person(
    _: Reader,
    State(s): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<PersonAt>, ApiError> {
    person_at(&s, user, now_ms()).await
}

async fn person_at(s: &AppState, user: String, at: i64) -> Result<Json<PersonAt>, ApiError> {
    let (u, policy) = (user.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::user_at_value(st, &policy, &u, at))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no person {user}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/activity",
    tag = "triage",
    summary = "AI activity: who used which tool and connector, on which device, in which OS session, when",
    params(query::activity::ActivityParams),
    responses((status = 200, description = "Sessions matching, newest first", body = ActivityPage), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn activity(
    _: Reader,
    State(s): State<AppState>,
    Params(q): Params<query::activity::ActivityParams>,
) -> Result<Json<ActivityPage>, ApiError> {
    let ask = q.check(now_ms()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let policy = s.policy.clone();
    blocking(&s.store, move |st| query::activity::activity_value(st, &policy, &ask)).await.map(Json)
}
