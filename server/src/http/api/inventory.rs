//! Reading the inventory: devices, connectors, findings (viewer or admin), liveness and
//! metrics. The JSON is the CLI's (`query`), so a script can switch between them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::auth::{Owner, Party, Reader};
use super::error::{ApiError, ErrorBody, blocking};
use super::params::{Page, Paged, Params, paged};
use crate::clock::now_ms;
use crate::query;
use crate::responses::{CatalogStatus, Connector, Device, DeviceDetail, Finding, Health, OffboardingStatus};
use crate::state::AppState;

/// Prometheus text exposition (viewer or admin token: scrapers send it as a bearer token):
/// OpenMetrics, or the classic format when the scraper's `Accept` ranks it first.
pub(super) async fn metrics(_: Reader, State(s): State<AppState>, headers: HeaderMap) -> Response {
    s.metrics.connected.set(s.dispatch.open_streams() as i64);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    let mut r = s.metrics.render(format).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    r
}

/// Liveness for load balancers: no token, no data.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "health",
    summary = "Liveness, no token",
    responses((status = 200, description = "Up", body = Health)),
    security(()),
)]
pub(super) async fn health() -> Json<Health> {
    Json(Health::now())
}

#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "inventory",
    summary = "Every enrolled device (the CLI's `devices --json`), a page at a time",
    params(Page),
    responses((status = 200, description = "Array of devices", body = Vec<Device>), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn devices(
    _: Reader,
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Params(page): Params<Page>,
) -> Result<Paged<Device>, ApiError> {
    paged(&uri, blocking(&s.store, query::devices_value).await?, page)
}

#[utoipa::path(
    get,
    path = "/api/v1/catalog/status",
    tag = "inventory",
    summary = "The detection catalog served to agents and the version each device runs, with any refusal (the CLI's `catalog status --json`)",
    responses((status = 200, description = "Catalog status", body = CatalogStatus), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn catalog_status(
    _: Reader,
    State(s): State<AppState>,
) -> Result<Json<CatalogStatus>, ApiError> {
    let served = s.catalog.current().map(|c| (c.version, s.catalog.verifies(&c)));
    Ok(Json(blocking(&s.store, move |st| query::catalog_status_value(st, served)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "inventory",
    summary = "One device with its connectors and recent presence history",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, description = "The device", body = DeviceDetail), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn device(
    _: Reader,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let (i, policy) = (id.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::device_value(st, &i, &policy))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))
}

/// The connector filter and a page.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectorsQuery {
    kind: Option<String>,
    status: Option<String>,
    user: Option<String>,
    owner: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "inventory",
    summary = "Every connector, filtered (the CLI's `connectors --json`), a page at a time",
    params(query::ConnectorFilter, Page),
    responses((status = 200, description = "Array of connectors", body = Vec<Connector>), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn connectors(
    party: Party,
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Params(q): Params<ConnectorsQuery>,
) -> Result<Paged<Connector>, ApiError> {
    let filter = query::ConnectorFilter { kind: q.kind, status: q.status, user: q.user, owner: q.owner };
    let policy = s.policy.clone();
    let all = match party {
        Party::Owner(Owner(p)) => {
            blocking(&s.store, move |st| owned_or_held(st, filter, &policy, &p.user_name)).await?
        }
        Party::Admin(_) | Party::Viewer => {
            blocking(&s.store, move |st| query::connectors_value(st, &filter, &policy)).await?
        }
    };
    paged(&uri, all, Page { limit: q.limit, offset: q.offset })
}

/// What an owner token sees: the connectors matching `filter` that `user_name` owns or has
/// under one of their accounts, in the list's order.
fn owned_or_held(
    st: &dyn crate::store::Store,
    filter: query::ConnectorFilter,
    policy: &crate::policy::Policy,
    user_name: &str,
) -> anyhow::Result<Vec<Connector>> {
    let owned = query::ConnectorFilter { owner: Some(user_name.to_owned()), ..filter.clone() };
    let held = query::ConnectorFilter { user: Some(user_name.to_owned()), ..filter };
    let mut all = query::connectors_value(st, &owned, policy)?;
    let mut seen: std::collections::HashSet<String> = all.iter().map(|c| c.key.clone()).collect();
    for c in query::connectors_value(st, &held, policy)? {
        if seen.insert(c.key.clone()) {
            all.push(c);
        }
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

/// One connector: where it is and was, owners, and any revocation with each device's outcome.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{key}",
    tag = "inventory",
    summary = "One connector: devices, owners, presence, revocation and directives",
    params(("key" = String, Path, description = "Connector key: extension:ID, tool:ID, token:FP, mcp:NAME:HASH")),
    responses((status = 200, description = "The connector", body = Connector), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn connector(
    party: Party,
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Connector>, ApiError> {
    if let Party::Owner(Owner(p)) = party {
        let (k, policy) = (key.clone(), s.policy.clone());
        let theirs =
            blocking(&s.store, move |st| Ok(crate::approvals::concerns(st, &policy, &p, &k)?)).await?;
        if !theirs {
            return Err(ApiError::forbidden(format!(
                "{key} is neither owned nor held by this token's person"
            )));
        }
    }
    one_connector(&s, key).await
}

/// The connector `key` with its presence and directives, or a 404.
pub(super) async fn one_connector(s: &AppState, key: String) -> Result<Json<Connector>, ApiError> {
    let (k, policy) = (key.clone(), s.policy.clone());
    blocking(&s.store, move |st| query::connector_value(st, &policy, &k))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no connector {key} has been reported")))
}

#[utoipa::path(
    get,
    path = "/api/v1/findings",
    tag = "inventory",
    summary = "Every finding (the CLI's `findings --json`), a page at a time",
    params(Page),
    responses((status = 200, description = "Array of findings", body = Vec<Finding>), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn findings(
    _: Reader,
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Params(page): Params<Page>,
) -> Result<Paged<Finding>, ApiError> {
    let policy = s.policy.clone();
    paged(&uri, blocking(&s.store, move |st| query::findings_value(st, &policy, now_ms())).await?, page)
}

#[utoipa::path(
    get,
    path = "/api/v1/offboarding",
    tag = "inventory",
    summary = "The offboarding playbook and where it stands: deprovisioned people, the connectors they own, deadlines, actions taken, each device's revocation outcome; unowned connectors (the CLI's `offboarding status --json`)",
    responses((status = 200, description = "Offboarding status", body = OffboardingStatus), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn offboarding(
    _: Reader,
    State(s): State<AppState>,
) -> Result<Json<OffboardingStatus>, ApiError> {
    let policy = s.policy.clone();
    Ok(Json(blocking(&s.store, move |st| crate::offboarding::status(st, &policy, now_ms())).await?))
}
