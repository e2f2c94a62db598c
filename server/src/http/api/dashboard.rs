//! The dashboard's server-side tables and overview (viewer or admin), paged and sorted over
//! one cached whole-fleet snapshot (`crate::views`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, blocking};
use super::params::Params;
use crate::clock::now_ms;
use crate::responses::{ConnectorPage, DevicePage, FindingPage, Overview, PersonPage};
use crate::state::AppState;
use crate::views::TableQuery;

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
    responses((status = 200, description = "The overview", body = Overview), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn view_overview(_: Reader, State(s): State<AppState>) -> Result<Json<Overview>, ApiError> {
    let snap = snapshot(&s).await?;
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| crate::views::overview(st, &policy, &snap)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/devices",
    tag = "views",
    summary = "A page of devices, sorted and filtered on the server",
    params(TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = DevicePage), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn view_devices(
    _: Reader,
    State(s): State<AppState>,
    Params(q): Params<TableQuery>,
) -> Result<Json<DevicePage>, ApiError> {
    Ok(Json(blocking(&s.store, move |st| crate::views::devices(st, &q)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/connectors",
    tag = "views",
    summary = "A page of connectors with their status",
    params(TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = ConnectorPage), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn view_connectors(
    _: Reader,
    State(s): State<AppState>,
    Params(q): Params<TableQuery>,
) -> Result<Json<ConnectorPage>, ApiError> {
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::connectors(&snap, &s.policy, &q)))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/findings",
    tag = "views",
    summary = "A page of findings",
    params(TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = FindingPage), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn view_findings(
    _: Reader,
    State(s): State<AppState>,
    Params(q): Params<TableQuery>,
) -> Result<Json<FindingPage>, ApiError> {
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::findings(&snap, &q)))
}

#[utoipa::path(
    get,
    path = "/api/v1/views/people",
    tag = "views",
    summary = "A page of people, deprovisioned ones flagged",
    params(TableQuery),
    responses((status = 200, description = "A page: total, offset, limit and items", body = PersonPage), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn view_people(
    _: Reader,
    State(s): State<AppState>,
    Params(q): Params<TableQuery>,
) -> Result<Json<PersonPage>, ApiError> {
    let snap = snapshot(&s).await?;
    Ok(Json(crate::views::people(&snap, &s.policy, &q)))
}
