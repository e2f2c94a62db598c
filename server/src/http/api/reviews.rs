//! Recertification over HTTP: admins start campaigns and answer for the admins' queue,
//! viewers (auditors) read campaigns and their signed reports, reviewers answer their own
//! items with the token from their link, and the mail system reads and acknowledges the
//! reminder outbox (`ingest` or admin).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};

use super::auth::{Admin, Mailer, Reader, ReviewDecider, ReviewerToken};
use super::error::{ApiError, ErrorBody, blocking};
use crate::clock::now_ms;
use crate::responses::{
    RemindersAcked, ReviewCampaign, ReviewItemView, ReviewReminders, ReviewReport, ReviewerPage,
};
use crate::review::{self, ReviewError};
use crate::state::AppState;

fn duration(field: &str, s: &str) -> Result<i64, ApiError> {
    humantime::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| ApiError::bad_request(format!("{field} {s:?}: {e} (e.g. 14d, 30d)")))
}

/// The dashboard's origin as the caller reached it, for reviewers' links.
fn origin(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))?;
    let ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c));
    ok.then(|| format!("https://{host}"))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// `all`, `group:NAME` (connectors whose owner is in that SCIM group) or `kind:KIND`.
    scope: String,
    /// How long reviewers have: `14d`.
    due_in: String,
    /// `revoke` (default) or `escalate`: what happens to an item unanswered at its due date.
    #[serde(default)]
    rule: Option<String>,
    /// `owner` (default: each connector's owner, their manager once they are gone) or
    /// `manager` (the owner's manager, as in a manager access review).
    #[serde(default)]
    reviewers: Option<String>,
    /// Where reviewers' links point (`https://host:port`); default: the address this request
    /// was sent to.
    #[serde(default)]
    link_base: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/reviews",
    tag = "reviews",
    summary = "Start a recertification campaign: each connector in scope goes to its owner (or their manager) to keep or revoke (admin)",
    request_body = StartBody,
    responses((status = 200, description = "The campaign and its items", body = ReviewCampaign),
              (status = 400, description = "Malformed scope, rule or due date, or nothing in scope", body = ErrorBody),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn start(
    admin: Admin,
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<Json<ReviewCampaign>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let due_ms = duration("due_in", &body.due_in)?;
    let base = match body.link_base.or_else(|| origin(&headers, &uri)) {
        Some(b) => b,
        None => return Err(ApiError::bad_request("give link_base: the request names no usable Host")),
    };
    let (policy, actor) = (s.policy.clone(), admin.actor());
    let rule = body.rule.unwrap_or_else(|| "revoke".into());
    let reviewers = body.reviewers.unwrap_or_else(|| "owner".into());
    let id = crate::state::blocking(&s.store, move |st| {
        let now = now_ms();
        review::start(st, &policy, &body.scope, &rule, &reviewers, now + due_ms, &base, &actor, now)
            .map(|r| r.campaign.id)
    })
    .await?
    .map_err(ApiError::from)?;
    let c = blocking(&s.store, move |st| review::campaign_value(st, &id, true)).await?;
    c.map(Json).ok_or_else(|| ApiError::not_found("the campaign is gone"))
}

#[utoipa::path(
    get,
    path = "/api/v1/reviews",
    tag = "reviews",
    summary = "Recertification campaigns, oldest first, with their progress",
    responses((status = 200, description = "Campaigns", body = Vec<ReviewCampaign>),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn list(
    _: Reader,
    State(s): State<AppState>,
) -> Result<Json<Vec<ReviewCampaign>>, ApiError> {
    Ok(Json(blocking(&s.store, |st| review::campaigns_value(st)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    tag = "reviews",
    summary = "One campaign with every item, its reviewer and answer",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = ReviewCampaign),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody),
              (status = 404, description = "No such campaign", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn show(
    _: Reader,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReviewCampaign>, ApiError> {
    let i = id.clone();
    blocking(&s.store, move |st| review::campaign_value(st, &i, true))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}/report",
    tag = "reviews",
    summary = "The campaign's decisions signed by the collector, for auditors to verify offline",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The signed report", body = ReviewReport),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody),
              (status = 404, description = "No such campaign", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn report(
    _: Reader,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReviewReport>, ApiError> {
    let (i, pki) = (id.clone(), s.pki.clone());
    blocking(&s.store, move |st| review::report(st, &pki, &i, now_ms()))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DecideBody {
    /// `keep` or `revoke`.
    decision: String,
    /// Why (required: the review is an audit record).
    reason: String,
    /// With `keep`: the approval lapses after this long (`30d`); without it, it stands.
    #[serde(default)]
    keep_for: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/items/{key}",
    tag = "reviews",
    summary = "Answer one item: keep (approved, perhaps for a time) or revoke. The item's reviewer with the token from their link, or an admin on their behalf",
    params(("id" = String, Path, description = "Campaign id"), ("key" = String, Path, description = "Connector key")),
    request_body = DecideBody,
    responses((status = 200, description = "The item as answered", body = ReviewItemView),
              (status = 400, description = "Malformed decision, reason or keep_for", body = ErrorBody),
              (status = 401, description = "No valid API token, review token or session", body = ErrorBody),
              (status = 403, description = "Not an admin, or not this reviewer's item", body = ErrorBody),
              (status = 404, description = "No such campaign or item", body = ErrorBody),
              (status = 409, description = "Already answered", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn decide(
    ReviewDecider(who): ReviewDecider,
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Result<Json<ReviewItemView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let keep_ms = body.keep_for.as_deref().map(|k| duration("keep_for", k)).transpose()?;
    let pki = s.pki.clone();
    let item = crate::state::blocking(&s.store, move |st| {
        let now = now_ms();
        let item = review::decide(
            st,
            &pki,
            &id,
            &key,
            &body.decision,
            &body.reason,
            keep_ms.map(|m| now + m),
            &who,
            now,
        )?;
        Ok::<_, ReviewError>(review::item_value(st, &item)?)
    })
    .await?
    .map_err(ApiError::from)?;
    s.dispatch.issued.notify_one();
    s.views.clear();
    Ok(Json(item))
}

#[utoipa::path(
    get,
    path = "/api/v1/review/me",
    tag = "reviews",
    summary = "The reviewer's own page: their items in the campaign their link is for (a review token only)",
    responses((status = 200, description = "The reviewer's items with each connector's register entry", body = ReviewerPage),
              (status = 401, description = "No valid review token", body = ErrorBody),
              (status = 403, description = "Not a review token", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(super) async fn mine(
    ReviewerToken { campaign, person_id }: ReviewerToken,
    State(s): State<AppState>,
) -> Result<Json<ReviewerPage>, ApiError> {
    let policy = s.policy.clone();
    blocking(&s.store, move |st| review::reviewer_page(st, &policy, &campaign, &person_id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("the campaign or reviewer is gone"))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RemindersQuery {
    /// Read after this cursor (`next_after` of the previous answer); default 0.
    #[serde(default)]
    after: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/review/reminders",
    tag = "reviews",
    summary = "Reminders waiting to be mailed: to, subject, text, the reviewer's link (ingest or admin)",
    params(RemindersQuery),
    responses((status = 200, description = "Pending reminders", body = ReviewReminders),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn reminders(
    _: Mailer,
    State(s): State<AppState>,
    Query(q): Query<RemindersQuery>,
) -> Result<Json<ReviewReminders>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(blocking(&s.store, move |st| review::reminders_value(st, q.after, limit)).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    /// The `seq` of each reminder sent.
    seqs: Vec<i64>,
}

#[utoipa::path(
    post,
    path = "/api/v1/review/reminders/ack",
    tag = "reviews",
    summary = "Mark reminders sent; their text (which holds the link's token) is erased (ingest or admin)",
    request_body = AckBody,
    responses((status = 200, description = "How many were pending", body = RemindersAcked),
              (status = 400, description = "Malformed body", body = ErrorBody),
              (status = 401, description = "No valid API token or session", body = ErrorBody),
              (status = 403, description = "The token's role does not allow this", body = ErrorBody)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) async fn ack(
    _: Mailer,
    State(s): State<AppState>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Result<Json<RemindersAcked>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.seqs.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 reminders per acknowledgement"));
    }
    let n = blocking(&s.store, move |st| Ok(st.ack_reminders(&body.seqs, now_ms())?)).await?;
    Ok(Json(RemindersAcked { acknowledged: n }))
}
