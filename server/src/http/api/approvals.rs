//! Approvals as a workflow over the API (`crate::approvals`): an owner token or an admin asks,
//! an admin approves or denies, the requester or an admin withdraws; and the register's audit
//! log, read with a cursor.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{Admin, Owner, Party};
use super::error::{ApiError, ErrorBody, blocking, internal};
use super::params::{Page, Paged, Params, paged};
use crate::approvals::{self, Actor, ApprovalError};
use crate::clock::now_ms;
use crate::responses::{ApprovalRequest, AuditEvent};
use crate::state::AppState;

impl From<crate::register::Refused> for ApiError {
    fn from(e: crate::register::Refused) -> ApiError {
        use crate::register::Refused;
        match e {
            Refused::NotFound(m) => ApiError::not_found(m),
            Refused::Forbidden(m) => ApiError::forbidden(m),
            Refused::Conflict(m) => ApiError(StatusCode::CONFLICT, m),
            Refused::Invalid(m) => ApiError::bad_request(m),
            Refused::Store(e) => internal(e),
            Refused::Other(e) => internal(format!("{e:#}")),
        }
    }
}

/// Runs a workflow step on a blocking thread: its refusals are the caller's, a store failure
/// the server's.
async fn step<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&dyn crate::store::Store) -> Result<T, ApprovalError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(&s.store, move |st| Ok(f(st))).await?.map_err(ApiError::from)
}

/// A request id from the path; anything else names no request (404, in the API's error shape
/// rather than axum's plain-text rejection).
fn request_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(format!("no approval request {id:?}")))
}

/// A JSON body, or a 400 in axum's words.
type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(b: Body<T>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A duration a person typed (`30d`), in ms; more than zero and at most ten years.
fn duration(field: &str, d: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(d) = d else { return Ok(None) };
    let t = humantime::parse_duration(d)
        .map_err(|e| ApiError::bad_request(format!("{field} {d:?} is not a duration like 30d: {e}")))?;
    if t.is_zero() || t.as_secs() > 10 * 365 * 86_400 {
        return Err(ApiError::bad_request(format!("{field} must be more than 0 and at most ten years")));
    }
    Ok(Some(t.as_millis() as i64))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRequest {
    /// Why the connector should be approved (kept in its history).
    reason: String,
    /// The person it is for (userName or e-mail): required from an admin; an owner token
    /// asks for its own person.
    #[serde(default)]
    on_behalf_of: Option<String>,
    /// How long the approval is wanted for (`30d`); without it, until withdrawn.
    #[serde(default)]
    duration: Option<String>,
}

/// Asks for a connector's approval: an owner token for its person, an admin for someone.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{key}/approval-requests",
    tag = "approvals",
    summary = "Ask for a connector's approval: an owner token for its person, or an admin on_behalf_of a person who owns or holds it",
    params(("key" = String, Path, description = "Connector key")),
    request_body = NewRequest,
    responses((status = 201, description = "The request, open", body = ApprovalRequest), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this, or the connector is not the owner's", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The connector already has an open request", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn request(
    party: Party,
    State(s): State<AppState>,
    Path(key): Path<String>,
    b: Body<NewRequest>,
) -> Result<(StatusCode, Json<ApprovalRequest>), ApiError> {
    let b = body(b)?;
    let actor = match party {
        Party::Admin(a) => Actor::Admin(a.actor()),
        Party::Owner(Owner(p)) => Actor::Owner(p),
        Party::Viewer => return Err(ApiError::forbidden("a viewer token cannot ask for approvals")),
    };
    let duration_ms = duration("duration", b.duration.as_deref())?;
    let policy = s.policy.clone();
    let r = step(&s, move |st| {
        let r = approvals::request(
            st,
            &policy,
            &key,
            &actor,
            b.on_behalf_of.as_deref(),
            Some(&b.reason),
            duration_ms,
            now_ms(),
        )?;
        approvals::view(st, &r)
    })
    .await?;
    tracing::info!(request = r.id, connector = %r.connector, by = %r.requested_by, "Approval requested.");
    Ok((StatusCode::CREATED, Json(r)))
}

/// Which requests to list, and a page.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RequestsQuery {
    /// `open`, `approved`, `denied` or `withdrawn`; all without it.
    state: Option<String>,
    /// How many items (default 1000, at most 10000).
    limit: Option<usize>,
    /// How many to skip.
    offset: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/approval-requests",
    tag = "approvals",
    summary = "Approval requests, newest first, a page at a time (viewer, admin; an owner token sees its person's)",
    params(RequestsQuery),
    responses((status = 200, description = "Array of requests", body = Vec<ApprovalRequest>), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn requests(
    party: Party,
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Params(q): Params<RequestsQuery>,
) -> Result<Paged<ApprovalRequest>, ApiError> {
    let person = match party {
        Party::Owner(Owner(p)) => Some(p),
        Party::Admin(_) | Party::Viewer => None,
    };
    let state = q.state.clone();
    let all = step(&s, move |st| approvals::list(st, state.as_deref(), person.as_deref())).await?;
    paged(&uri, all, Page { limit: q.limit, offset: q.offset })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Approve {
    /// Why (kept in the connector's history).
    reason: String,
    /// The approval lapses this long from now (`30d`); without it, after the duration the
    /// request asked for, else never (until withdrawn).
    #[serde(default)]
    expires_in: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/approval-requests/{id}/approve",
    tag = "approvals",
    summary = "Approve an open request, optionally until a time: the connector is approved (admin)",
    params(("id" = i64, Path, description = "Request id")),
    request_body = Approve,
    responses((status = 200, description = "The request, approved", body = ApprovalRequest), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The request is not open", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn approve(
    admin: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Body<Approve>,
) -> Result<Json<ApprovalRequest>, ApiError> {
    let id = request_id(&id)?;
    let b = body(b)?;
    let expires_in = duration("expires_in", b.expires_in.as_deref())?;
    let actor = admin.actor();
    let r = step(&s, move |st| {
        let r = approvals::approve(st, id, &actor, Some(&b.reason), expires_in, now_ms())?;
        approvals::view(st, &r)
    })
    .await?;
    s.views.clear();
    Ok(Json(r))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Deny {
    /// Why (kept in the connector's history).
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/approval-requests/{id}/deny",
    tag = "approvals",
    summary = "Deny an open request: the connector is unsanctioned by decision (admin)",
    params(("id" = i64, Path, description = "Request id")),
    request_body = Deny,
    responses((status = 200, description = "The request, denied", body = ApprovalRequest), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The request is not open", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn deny(
    admin: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Body<Deny>,
) -> Result<Json<ApprovalRequest>, ApiError> {
    let id = request_id(&id)?;
    let b = body(b)?;
    let actor = admin.actor();
    let r = step(&s, move |st| {
        let r = approvals::deny(st, id, &actor, Some(&b.reason), now_ms())?;
        approvals::view(st, &r)
    })
    .await?;
    s.views.clear();
    Ok(Json(r))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Withdraw {
    /// Why (optional; kept in the connector's history).
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/approval-requests/{id}/withdraw",
    tag = "approvals",
    summary = "Withdraw a request: an open one, or an approval still in force (policy.toml decides again); the person it is for, its requester or an admin",
    params(("id" = i64, Path, description = "Request id")),
    request_body(content = Withdraw, description = "Optional"),
    responses((status = 200, description = "The request, withdrawn", body = ApprovalRequest), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this, or the request is not the owner's", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Nothing to withdraw", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn withdraw(
    party: Party,
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> Result<Json<ApprovalRequest>, ApiError> {
    let id = request_id(&id)?;
    let b: Withdraw = if b.iter().all(u8::is_ascii_whitespace) {
        Withdraw::default()
    } else {
        serde_json::from_slice(&b)
            .map_err(|e| ApiError::bad_request(format!("expected {{\"reason\": \"...\"}}: {e}")))?
    };
    let actor = match party {
        Party::Admin(a) => Actor::Admin(a.actor()),
        Party::Owner(Owner(p)) => Actor::Owner(p),
        Party::Viewer => return Err(ApiError::forbidden("a viewer token cannot withdraw requests")),
    };
    let r = step(&s, move |st| {
        let r = approvals::withdraw(st, id, &actor, b.reason.as_deref(), now_ms())?;
        approvals::view(st, &r)
    })
    .await?;
    s.views.clear();
    Ok(Json(r))
}

/// Where to read the audit log from.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Events after this `seq` (0 or absent: from the start).
    after: Option<i64>,
    /// How many (default 1000, at most 10000).
    limit: Option<usize>,
    /// Only this connector's.
    connector: Option<String>,
}

/// A page of the audit log; `Link: <…?after=SEQ…>; rel="next"` when there may be more.
pub(super) struct AuditPage {
    items: Vec<AuditEvent>,
    next: Option<HeaderValue>,
}

impl IntoResponse for AuditPage {
    fn into_response(self) -> Response {
        let mut r = Json(self.items).into_response();
        if let Some(link) = self.next {
            r.headers_mut().insert(header::LINK, link);
        }
        r
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "approvals",
    summary = "The register's audit log (every owner, approval and review decision), oldest first, after a cursor (viewer, admin)",
    params(AuditQuery),
    responses((status = 200, description = "Array of events", body = Vec<AuditEvent>), (status = 400, description = "Malformed parameters or body", body = ErrorBody), (status = 401, description = "No valid API token or session", body = ErrorBody), (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn audit(
    _: super::auth::Reader,
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Params(q): Params<AuditQuery>,
) -> Result<AuditPage, ApiError> {
    let limit = q.limit.unwrap_or(1_000);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("`limit` must be 1 to 10000"));
    }
    let after = q.after.unwrap_or(0);
    let connector = q.connector.clone();
    let events = blocking(&s.store, move |st| {
        Ok(match &connector {
            Some(k) => st.connector_events(k)?.into_iter().filter(|e| e.seq > after).take(limit).collect(),
            None => st.events_after(after, limit)?,
        })
    })
    .await?;
    let next = (events.len() == limit).then(|| events.last().map(|e| e.seq)).flatten().and_then(|last| {
        let connector = q
            .connector
            .as_deref()
            .map(|k| format!("&connector={}", crate::remote::encode(k)))
            .unwrap_or_default();
        HeaderValue::from_str(&format!(
            "<{}?after={last}&limit={limit}{connector}>; rel=\"next\"",
            uri.path()
        ))
        .ok()
    });
    Ok(AuditPage { items: events.iter().map(AuditEvent::from).collect(), next })
}
