//! SCIM 2.0 under `/scim/v2` (RFC 7643/7644), so an identity provider (Okta, Microsoft
//! Entra ID) provisions people and groups into Sightline, and an identity-governance tool
//! reads the connector register as non-human identities. Served by the HTTP API for `scim`
//! (and `admin`) tokens.
//!
//! - `discovery`: `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`, describing exactly
//!   what the handlers below do (patch and filter yes; bulk, sort, etag, changePassword no).
//! - `users`: `/Users` — the core User plus the enterprise extension's manager, department
//!   and employee number; a user's `groups` is read-only. Deleting or deactivating keeps the
//!   person on record as deprovisioned: that is the offboarding signal findings need.
//! - `groups`: `/Groups` with members; `[approved.groups.NAME]` in the policy names a group
//!   by its displayName.
//! - `agents`: `/Agents`, read-only — every connector as the Agent resource of
//!   `draft-abbey-scim-agent-extension-00`, with its owner and status.
//! - `filter`: the `filter` expressions of list requests (GET, or POST `/.search` per type
//!   and at the root) and of PATCH value paths.
//! - `patch`: PatchOp applied to a resource's SCIM JSON, which is then read back exactly as
//!   a PUT body is, so every attribute is validated the same way whichever verb set it.
//!
//! Every answer under `/scim/v2` — unknown paths, wrong methods and refused tokens included
//! — is `application/scim+json`, errors in the SCIM error schema with `scimType` where one
//! applies. Resources carry an absolute `meta.location` (and `Location` on create) built
//! from the request's host: the listener is TLS, so the scheme is https.

mod agents;
mod discovery;
pub mod filter;
mod groups;
pub mod patch;
mod users;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::api::caller;
use crate::domain::Role;
use crate::state::AppState;
use crate::store::StoreError;

pub use patch::apply_patch;

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Agent schema of `draft-abbey-scim-agent-extension-00`.
pub(crate) const AGENT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Agent";
/// Sightline's extension of an Agent: what the register knows of the connector behind it.
pub(crate) const CONNECTOR_SCHEMA: &str = "urn:sightline:params:scim:schemas:extension:connector:2.0:Agent";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Largest page a list returns (advertised as `filter.maxResults`).
pub(crate) const MAX_PAGE: usize = 200;
/// The challenge on 401 and 403, as for the rest of the API.
const CHALLENGE: &str = "Bearer realm=\"sightline\"";

/// A SCIM error response.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
        ScimError { status: StatusCode::BAD_REQUEST, scim_type: Some(scim_type), detail: detail.into() }
    }

    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> ScimError {
        ScimError { status, scim_type: None, detail: detail.into() }
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::NOT_FOUND, detail)
    }

    /// The `scimType` (`invalidFilter`, `invalidPath`, …), for tests and the fuzz target.
    pub fn scim_type(&self) -> Option<&'static str> {
        self.scim_type
    }
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.scim_type.unwrap_or("-"), self.detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({"schemas": [ERROR_SCHEMA], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut r = scim_json(self.status, body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
        } else if self.status == StatusCode::FORBIDDEN {
            // RFC 6750 §3.1: the token is valid but lacks the scope (role) for this.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sightline\", error=\"insufficient_scope\""),
            );
        }
        r
    }
}

/// A refusal made before the SCIM handlers run (authentication), in SCIM's error shape.
pub(crate) fn refusal(status: StatusCode, detail: String) -> Response {
    ScimError::new(status, detail).into_response()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ScimError {
    tracing::error!(error = %e, "SCIM request failed.");
    ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, "collector storage failure")
}

/// A store call on a blocking thread; a uniqueness conflict is SCIM's 409 `uniqueness`, a
/// reference to nothing (a member who is not a user) 400 `invalidValue`.
pub(crate) async fn blocking<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&dyn crate::store::Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<T, ScimError> {
    match crate::state::blocking(&s.store, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::Conflict(m))) => {
            Err(ScimError { status: StatusCode::CONFLICT, scim_type: Some("uniqueness"), detail: m })
        }
        Ok(Err(StoreError::Invalid(m))) => Err(ScimError::bad("invalidValue", m)),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

/// A caller who may provision people: a `scim` token, or an admin. Refusals are in SCIM's
/// error shape, as an identity provider expects.
pub(crate) struct Provisioner;

impl FromRequestParts<AppState> for Provisioner {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Provisioner, ScimError> {
        match caller(s, &parts.headers).await {
            Ok(Role::Scim | Role::Admin) => Ok(Provisioner),
            Ok(r) => Err(ScimError::new(
                StatusCode::FORBIDDEN,
                format!("a {} token cannot provision users", r.as_str()),
            )),
            Err((status, detail)) => Err(ScimError::new(status, detail)),
        }
    }
}

/// The absolute base of this SCIM service as the caller reached it (`https://HOST/scim/v2`):
/// resource locations must be absolute URIs (RFC 7643 §3.1), and the host is whatever name
/// the identity provider was configured with.
#[derive(Debug, Clone)]
pub(crate) struct Base(pub String);

impl Base {
    pub(crate) fn users(&self, id: &str) -> String {
        format!("{}/Users/{id}", self.0)
    }

    pub(crate) fn groups(&self, id: &str) -> String {
        format!("{}/Groups/{id}", self.0)
    }

    pub(crate) fn agents(&self, id: &str) -> String {
        format!("{}/Agents/{id}", self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Base, ScimError> {
        // HTTP/2 carries the host as the URI's authority; HTTP/1.1 as the Host header.
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c)))
            .ok_or_else(|| ScimError::bad("invalidSyntax", "the request names no usable Host"))?;
        Ok(Base(format!("https://{host}/scim/v2")))
    }
}

pub(crate) fn scim_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, Json(v)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    r
}

/// A created resource: 201 with `Location` (RFC 7644 §3.3).
pub(crate) fn created(location: &str, v: Value) -> Response {
    let mut r = scim_json(StatusCode::CREATED, v);
    if let Ok(l) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

/// A single resource: 200 with its `Location`, which some clients read on every answer.
pub(crate) fn resource_response(location: &str, v: Value) -> Response {
    let mut r = scim_json(StatusCode::OK, v);
    if let Ok(l) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

/// Refuses a replacement whose body names another resource: `id` is read-only.
pub(crate) fn same_id(body: &Value, id: &str) -> Result<(), ScimError> {
    match body.get("id").and_then(Value::as_str) {
        Some(other) if other != id => Err(ScimError::bad("mutability", "`id` is read-only")),
        _ => Ok(()),
    }
}

pub(crate) fn parse_body(body: &[u8]) -> Result<Value, ScimError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::bad("invalidSyntax", "the body must be a JSON object"));
    }
    Ok(v)
}

/// `true`/`false`, or Entra's `"True"`/`"False"`.
pub(crate) fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The query of a list request (RFC 7644 §3.4.2).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    // Sorting is not supported (advertised so); a request for it is answered unsorted.
    #[allow(dead_code)]
    sort_by: Option<String>,
    #[allow(dead_code)]
    sort_order: Option<String>,
}

pub(crate) fn list_query(
    q: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ListQuery, ScimError> {
    q.map(|axum::extract::Query(q)| q).map_err(|e| ScimError::bad("invalidValue", e.body_text()))
}

/// The `attributes` / `excludedAttributes` of a GET (RFC 7644 §3.4.2.5).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl Projection {
    pub(crate) fn apply(&self, v: Value) -> Value {
        project(v, self.attributes.as_deref(), self.excluded_attributes.as_deref())
    }
}

pub(crate) fn projection(
    q: Result<axum::extract::Query<Projection>, axum::extract::rejection::QueryRejection>,
) -> Result<Projection, ScimError> {
    q.map(|axum::extract::Query(q)| q).map_err(|e| ScimError::bad("invalidValue", e.body_text()))
}

/// A `SearchRequest` body (POST `/.search`, RFC 7644 §3.4.3): the list query in JSON.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<Vec<String>>,
    excluded_attributes: Option<Vec<String>>,
}

pub(crate) fn search_query(body: &[u8]) -> Result<ListQuery, ScimError> {
    let v = parse_body(body)?;
    if let Some(schemas) = v.get("schemas")
        && !schemas.as_array().is_some_and(|a| a.iter().any(|s| s == SEARCH_SCHEMA))
    {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must be [{SEARCH_SCHEMA:?}]")));
    }
    let r: SearchRequest = serde_json::from_value(v)
        .map_err(|e| ScimError::bad("invalidValue", format!("search request: {e}")))?;
    Ok(ListQuery {
        filter: r.filter,
        start_index: r.start_index,
        count: r.count,
        attributes: r.attributes.map(|a| a.join(",")),
        excluded_attributes: r.excluded_attributes.map(|a| a.join(",")),
        ..ListQuery::default()
    })
}

/// POST `/.search` at the root: every resource type together (RFC 7644 §3.4.3).
async fn search_all(
    _: Provisioner,
    base: Base,
    axum::extract::State(s): axum::extract::State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let q = search_query(&body)?;
    let both = async {
        let mut all = users::all(&s, &base).await?;
        all.extend(groups::all(&s, &base).await?);
        all.extend(agents::all(&s, &base).await?);
        Ok(all)
    };
    list_response(both, &q).await
}

/// A list response over `all` (every resource, as SCIM JSON): filtered, paged and projected.
/// The filter is parsed before `all` is awaited, so a bad filter costs no store read.
pub(crate) async fn list_response(
    all: impl Future<Output = Result<Vec<Value>, ScimError>>,
    q: &ListQuery,
) -> Result<Response, ScimError> {
    let filter = q.filter.as_deref().map(filter::parse).transpose()?;
    let all = all.await?;
    let matching: Vec<Value> = match &filter {
        Some(f) => all.into_iter().filter(|r| f.matches(r)).collect(),
        None => all,
    };
    // RFC 7644 §3.4.2.4: startIndex below 1 is 1, a negative count is 0.
    let start = q.start_index.unwrap_or(1).max(1) as usize;
    let count = (q.count.unwrap_or(MAX_PAGE as i64).max(0) as usize).min(MAX_PAGE);
    let page: Vec<Value> = matching
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|r| project(r.clone(), q.attributes.as_deref(), q.excluded_attributes.as_deref()))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": matching.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// Keeps only `attributes` (plus what is always returned: id, schemas, meta) or drops
/// `excluded`; names are compared case-insensitively, `a.b` names a sub-attribute and an
/// extension's attributes are named with its URN prefix.
fn project(mut v: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |s: &str| -> Vec<(Option<String>, String, Option<String>)> {
        s.split(',').map(str::trim).filter(|a| !a.is_empty()).map(filter::split_attr).collect()
    };
    let Some(obj) = v.as_object_mut() else { return v };
    if let Some(attrs) = attributes.map(names).filter(|a| !a.is_empty()) {
        let keep = |urn: Option<&str>, key: &str| -> Option<Vec<String>> {
            let subs: Vec<String> = attrs
                .iter()
                .filter(|(u, a, _)| {
                    u.as_deref().map(str::to_ascii_lowercase) == urn.map(str::to_ascii_lowercase)
                        && a.eq_ignore_ascii_case(key)
                })
                .map(|(_, _, s)| s.clone().unwrap_or_default())
                .collect();
            (!subs.is_empty()).then_some(subs)
        };
        let always = ["id", "schemas", "meta"];
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            if always.contains(&k.as_str()) {
                continue;
            }
            if k.starts_with("urn:") {
                if let Some(ext) = obj.get_mut(&k).and_then(Value::as_object_mut) {
                    let whole = attrs.iter().any(|(u, a, _)| u.is_none() && a.eq_ignore_ascii_case(&k));
                    if !whole {
                        ext.retain(|ek, _| keep(Some(&k), ek).is_some());
                    }
                    if ext.is_empty() {
                        obj.remove(&k);
                    }
                }
                continue;
            }
            match keep(None, &k) {
                None => {
                    obj.remove(&k);
                }
                Some(subs) if !subs.iter().any(String::is_empty) => {
                    let retain = |o: &mut serde_json::Map<String, Value>| {
                        o.retain(|sk, _| subs.iter().any(|s| s.eq_ignore_ascii_case(sk)))
                    };
                    match obj.get_mut(&k) {
                        Some(Value::Object(o)) => retain(o),
                        Some(Value::Array(items)) => {
                            items.iter_mut().filter_map(Value::as_object_mut).for_each(retain)
                        }
                        _ => {}
                    }
                }
                Some(_) => {}
            }
        }
    } else if let Some(ex) = excluded.map(names) {
        for (urn, attr, sub) in ex {
            let target = match &urn {
                Some(u) => match obj.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(u)) {
                    Some((_, Value::Object(o))) => o,
                    _ => continue,
                },
                None => &mut *obj,
            };
            let Some(key) = target.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned() else { continue };
            if ["id", "schemas", "meta"].contains(&key.as_str()) {
                continue;
            }
            match sub {
                None => {
                    target.remove(&key);
                }
                Some(sub) => match target.get_mut(&key) {
                    Some(Value::Object(o)) => o.retain(|k, _| !k.eq_ignore_ascii_case(&sub)),
                    Some(Value::Array(items)) => items
                        .iter_mut()
                        .filter_map(Value::as_object_mut)
                        .for_each(|o| o.retain(|k, _| !k.eq_ignore_ascii_case(&sub))),
                    _ => {}
                },
            }
        }
    }
    v
}

async fn no_such_endpoint(uri: axum::http::Uri) -> ScimError {
    ScimError::not_found(format!("no SCIM endpoint {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ScimError {
    ScimError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not supported on {}", uri.path()))
}

pub fn routes() -> axum::Router<AppState> {
    let m = method_not_allowed;
    axum::Router::new()
        .route("/scim/v2/Users", get(users::list).post(users::create).fallback(m))
        .route(
            "/scim/v2/Users/{id}",
            get(users::fetch).put(users::replace).patch(users::patch).delete(users::delete).fallback(m),
        )
        .route("/scim/v2/Users/.search", axum::routing::post(users::search).fallback(m))
        .route("/scim/v2/Groups", get(groups::list).post(groups::create).fallback(m))
        .route("/scim/v2/Groups/.search", axum::routing::post(groups::search).fallback(m))
        .route("/scim/v2/.search", axum::routing::post(search_all).fallback(m))
        // The register is read-only: every other verb is a SCIM 405.
        .route("/scim/v2/Agents", get(agents::list).fallback(m))
        .route("/scim/v2/Agents/.search", axum::routing::post(agents::search).fallback(m))
        .route("/scim/v2/Agents/{id}", get(agents::fetch).fallback(m))
        .route(
            "/scim/v2/Groups/{id}",
            get(groups::fetch).put(groups::replace).patch(groups::patch).delete(groups::delete).fallback(m),
        )
        .route("/scim/v2/ServiceProviderConfig", get(discovery::service_provider_config).fallback(m))
        .route("/scim/v2/Schemas", get(discovery::schemas).fallback(m))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema).fallback(m))
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types).fallback(m))
        .route("/scim/v2/ResourceTypes/{name}", get(discovery::resource_type).fallback(m))
        .route("/scim/v2", any(no_such_endpoint))
        .route("/scim/v2/", any(no_such_endpoint))
        .route("/scim/v2/{*rest}", any(no_such_endpoint))
}
