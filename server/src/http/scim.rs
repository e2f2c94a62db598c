//! SCIM 2.0 `/scim/v2/Users` (RFC 7643/7644), so an identity provider (Okta, Microsoft
//! Entra ID) provisions and deprovisions people into Sightline. Served by the HTTP API for
//! `scim` (and `admin`) tokens.
//!
//! Supported: create, get, list with `filter=userName eq "…"` and paging, replace (PUT),
//! patch (PatchOp `replace`/`add` of `active`, `displayName`, `name.*`, `emails`, `externalId`,
//! `userName`, with or without a `path`, as Okta and Entra send them — Entra's `"False"`
//! string included), delete. Deleting or deactivating keeps the person on record as
//! deprovisioned: that is the offboarding signal findings need. Errors use the SCIM error
//! schema with `scimType` where one applies.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::api::caller;
use crate::clock::now_ms;
use crate::clock::rfc3339 as time;
use crate::domain::Role;
use crate::state::AppState;
use crate::store::{Person, StoreError};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Largest page a list returns.
const MAX_PAGE: usize = 200;

/// A SCIM error response.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
        ScimError { status: StatusCode::BAD_REQUEST, scim_type: Some(scim_type), detail: detail.into() }
    }

    fn new(status: StatusCode, detail: impl Into<String>) -> ScimError {
        ScimError { status, scim_type: None, detail: detail.into() }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({"schemas": [ERROR_SCHEMA], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut r = (self.status, Json(body)).into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/scim+json"),
        );
        r
    }
}

/// A refusal made before the SCIM handlers run (authentication), in SCIM's error shape.
pub(crate) fn refusal(status: StatusCode, detail: String) -> Response {
    ScimError::new(status, detail).into_response()
}

fn internal(e: impl std::fmt::Display) -> ScimError {
    tracing::error!(error = %e, "SCIM request failed.");
    ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, "collector storage failure")
}

async fn blocking<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&dyn crate::store::Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<T, ScimError> {
    match crate::state::blocking(&s.store, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::Conflict(m))) => {
            Err(ScimError { status: StatusCode::CONFLICT, scim_type: Some("uniqueness"), detail: m })
        }
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

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/scim/v2/Users", get(list).post(create))
        .route("/scim/v2/Users/{id}", get(fetch).put(replace).patch(patch).delete(delete))
}

/// A SCIM User body → the fields Sightline keeps. `userName` is required.
fn person_from(body: &Value, id: String, created_at_ms: i64) -> Result<Person, ScimError> {
    let obj =
        body.as_object().ok_or_else(|| ScimError::bad("invalidSyntax", "the body must be a JSON object"))?;
    if let Some(schemas) = obj.get("schemas")
        && !schemas.as_array().is_some_and(|a| a.iter().any(|s| s == USER_SCHEMA))
    {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must include {USER_SCHEMA}")));
    }
    let user_name = obj
        .get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::bad("invalidValue", "`userName` is required"))?;
    let active = match obj.get("active") {
        None | Some(Value::Null) => true,
        Some(v) => {
            bool_value(v).ok_or_else(|| ScimError::bad("invalidValue", "`active` must be a boolean"))?
        }
    };
    let now = now_ms();
    let mut p = Person {
        id,
        user_name: user_name.to_owned(),
        external_id: obj.get("externalId").and_then(Value::as_str).map(str::to_owned),
        display_name: None,
        emails: Vec::new(),
        active,
        created_at_ms,
        modified_at_ms: now,
        deprovisioned_at_ms: None,
        deleted_at_ms: None,
    };
    apply_attrs(&mut p, obj)?;
    if !p.active {
        p.deprovisioned_at_ms = Some(now);
    }
    Ok(p)
}

/// `true`/`false`, or Entra's `"True"`/`"False"`.
fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The display attributes (displayName, name, emails) that both create and patch set.
fn apply_attrs(p: &mut Person, obj: &serde_json::Map<String, Value>) -> Result<(), ScimError> {
    if let Some(v) = obj.get("displayName") {
        p.display_name = v.as_str().map(str::to_owned);
    }
    if p.display_name.is_none()
        && let Some(name) = obj.get("name").and_then(Value::as_object)
    {
        let part = |k: &str| name.get(k).and_then(Value::as_str).unwrap_or_default();
        let full = name.get("formatted").and_then(Value::as_str).map(str::to_owned);
        let joined = format!("{} {}", part("givenName"), part("familyName")).trim().to_owned();
        p.display_name = full.or_else(|| Some(joined).filter(|s| !s.is_empty()));
    }
    if let Some(emails) = obj.get("emails") {
        let list =
            emails.as_array().ok_or_else(|| ScimError::bad("invalidValue", "`emails` must be a list"))?;
        p.emails = list
            .iter()
            .filter_map(|e| e.get("value").and_then(Value::as_str))
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
    }
    Ok(())
}

fn resource(p: &Person) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "id": p.id,
        "externalId": p.external_id,
        "userName": p.user_name,
        "displayName": p.display_name,
        "emails": p.emails.iter().enumerate().map(|(i, e)| json!({"value": e, "primary": i == 0})).collect::<Vec<_>>(),
        "active": p.active,
        "meta": {
            "resourceType": "User",
            "created": time(p.created_at_ms),
            "lastModified": time(p.modified_at_ms),
            "location": format!("/scim/v2/Users/{}", p.id),
        },
    })
}

fn scim_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, Json(v)).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/scim+json"),
    );
    r
}

fn parse_body(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| ScimError::bad("invalidSyntax", format!("malformed JSON: {e}")))
}

async fn create(
    _: Provisioner,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let id = crate::tokens::random(16).map(hex::encode).map_err(|e| internal(e.to_string()))?;
    let p = person_from(&body, id, now_ms())?;
    let p = blocking(&s, move |st| st.create_person(&p).map(|()| p)).await?;
    tracing::info!(user = %p.user_name, "SCIM: person provisioned.");
    Ok(scim_json(StatusCode::CREATED, resource(&p)))
}

async fn fetch(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let p = get_person(&s, id).await?;
    Ok(scim_json(StatusCode::OK, resource(&p)))
}

async fn get_person(s: &AppState, id: String) -> Result<Person, ScimError> {
    let i = id.clone();
    blocking(s, move |st| st.person(&i))
        .await?
        .filter(|p| p.deleted_at_ms.is_none())
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("no user {id}")))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<usize>,
    count: Option<usize>,
    // Accepted and ignored: Sightline returns its fixed attribute set.
    #[allow(dead_code)]
    attributes: Option<String>,
    #[allow(dead_code)]
    excluded_attributes: Option<String>,
}

/// `userName eq "alice@example.com"` (the filter IdPs use to look a user up).
pub fn user_name_filter(f: &str) -> Result<String, ScimError> {
    let unsupported =
        || ScimError::bad("invalidFilter", format!("unsupported filter {f:?}; only `userName eq \"…\"`"));
    let mut parts = f.trim().splitn(3, ' ');
    let (attr, op, value) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !attr.eq_ignore_ascii_case("userName") || !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    serde_json::from_str::<String>(value.trim()).map_err(|_| unsupported())
}

async fn list(
    _: Provisioner,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let Query(q) = q.map_err(|e| ScimError::bad("invalidValue", e.body_text()))?;
    let filter = q.filter.as_deref().map(user_name_filter).transpose()?;
    let people = blocking(&s, move |st| match filter {
        Some(u) => Ok(st.person_by_user_name(&u)?.into_iter().collect::<Vec<_>>()),
        None => st.people(),
    })
    .await?;
    let people: Vec<Person> = people.into_iter().filter(|p| p.deleted_at_ms.is_none()).collect();
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let page: Vec<Value> = people.iter().skip(start - 1).take(count).map(resource).collect();
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": people.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

async fn replace(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let old = get_person(&s, id.clone()).await?;
    let mut p = person_from(&parse_body(&body)?, id, old.created_at_ms)?;
    p.deprovisioned_at_ms = if p.active { None } else { old.deprovisioned_at_ms.or(p.deprovisioned_at_ms) };
    let p = blocking(&s, move |st| st.update_person(&p).map(|()| p)).await?;
    Ok(scim_json(StatusCode::OK, resource(&p)))
}

async fn patch(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let old = get_person(&s, id).await?;
    let was_active = old.active;
    let mut p = apply_patch(old, &body)?;
    let now = now_ms();
    p.modified_at_ms = now;
    if was_active && !p.active {
        p.deprovisioned_at_ms = Some(now);
        tracing::info!(user = %p.user_name, "SCIM: person deactivated.");
    } else if p.active {
        p.deprovisioned_at_ms = None;
    }
    let p = blocking(&s, move |st| st.update_person(&p).map(|()| p)).await?;
    Ok(scim_json(StatusCode::OK, resource(&p)))
}

/// A PatchOp applied to a person (RFC 7644 §3.5.2, as Okta and Entra send it); the person
/// as patched, or why the request is refused. No I/O: the handler reads and stores.
pub fn apply_patch(person: Person, body: &Value) -> Result<Person, ScimError> {
    if !body["schemas"].as_array().is_some_and(|a| a.iter().any(|s| s == PATCH_SCHEMA)) {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must be [{PATCH_SCHEMA:?}]")));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ScimError::bad("invalidSyntax", "`Operations` must be a non-empty list"))?;
    let mut p = person;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return Err(ScimError::bad(
                "invalidValue",
                format!("unsupported op {kind:?}; use replace or add"),
            ));
        }
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        // With a path, the value is that attribute; without, an object of attributes.
        let attrs = match op.get("path").and_then(Value::as_str) {
            Some(path) => {
                let mut m = serde_json::Map::new();
                match path.split_once('.') {
                    Some(("name", sub)) => {
                        m.insert("name".into(), json!({ sub: value }));
                    }
                    _ => {
                        m.insert(path.to_owned(), value);
                    }
                }
                m
            }
            None => value.as_object().cloned().ok_or_else(|| {
                ScimError::bad("invalidValue", "an operation without `path` needs an object `value`")
            })?,
        };
        for (k, v) in &attrs {
            match k.as_str() {
                "active" => {
                    p.active = bool_value(v)
                        .ok_or_else(|| ScimError::bad("invalidValue", "`active` must be a boolean"))?
                }
                "userName" => {
                    p.user_name = v
                        .as_str()
                        .filter(|s| !s.trim().is_empty())
                        .ok_or_else(|| {
                            ScimError::bad("invalidValue", "`userName` must be a non-empty string")
                        })?
                        .trim()
                        .to_owned()
                }
                "externalId" => p.external_id = v.as_str().map(str::to_owned),
                "displayName" | "name" | "emails" => {}
                other if other.starts_with("urn:") => {} // enterprise extension attributes: not kept
                other => {
                    return Err(ScimError::bad(
                        "invalidPath",
                        format!("attribute {other:?} cannot be patched"),
                    ));
                }
            }
        }
        apply_attrs(&mut p, &attrs)?;
    }
    Ok(p)
}

async fn delete(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let mut p = get_person(&s, id).await?;
    let now = now_ms();
    p.active = false;
    p.deprovisioned_at_ms = p.deprovisioned_at_ms.or(Some(now));
    p.modified_at_ms = now;
    // Kept on record (the offboarding signal), no longer visible through SCIM.
    p.deleted_at_ms = Some(now);
    tracing::info!(user = %p.user_name, "SCIM: person deleted (kept as deprovisioned).");
    blocking(&s, move |st| st.update_person(&p)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
