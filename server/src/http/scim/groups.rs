//! `/scim/v2/Groups` (RFC 7643 §4.2): groups of users as Okta's group push and Entra's group
//! provisioning send them. Members are users (nested groups are refused); a member who is
//! not a live user is `invalidValue`. displayName is unique (case-insensitively), because
//! the policy's `[approved.groups.NAME]` names a group by it. Deleting a group deletes it
//! outright: unlike a person, it leaves nothing behind that findings need.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::filter::key;
use super::{
    Base, GROUP_SCHEMA, ListQuery, Projection, Provisioner, ScimError, blocking, internal, parse_body,
};
use crate::clock::now_ms;
use crate::clock::rfc3339 as time;
use crate::state::AppState;
use crate::store::{GroupMember, ScimGroup};

/// What a PATCH may not target on a group.
const READ_ONLY: &[&str] = &["id", "meta", "schemas"];

fn invalid(what: impl Into<String>) -> ScimError {
    ScimError::bad("invalidValue", what)
}

/// A SCIM Group body (POST, PUT, or a patched resource) → the group Sightline keeps.
fn group_from(body: &Value, id: String, created_at_ms: i64) -> Result<ScimGroup, ScimError> {
    let obj =
        body.as_object().ok_or_else(|| ScimError::bad("invalidSyntax", "the body must be a JSON object"))?;
    let get = |name: &str| key(obj, name).and_then(|k| obj.get(k)).filter(|v| !v.is_null());
    if let Some(schemas) = get("schemas")
        && !schemas.as_array().is_some_and(|a| a.iter().any(|s| s == GROUP_SCHEMA))
    {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must include {GROUP_SCHEMA}")));
    }
    let display_name = get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("`displayName` is required"))?
        .to_owned();
    let external_id = match get("externalId") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("`externalId` must be a string")),
    };
    let members = match get("members") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| {
                let m = m.as_object().ok_or_else(|| invalid("each of `members` must be an object"))?;
                let field = |n: &str| key(m, n).and_then(|k| m.get(k)).and_then(Value::as_str);
                if field("type").is_some_and(|t| t.eq_ignore_ascii_case("Group")) {
                    return Err(invalid("nested groups are not supported: members are users"));
                }
                let id = field("value")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid("each of `members` needs a `value` (a user id)"))?;
                Ok(GroupMember { id: id.to_owned(), display: None })
            })
            .collect::<Result<Vec<_>, ScimError>>()?,
        Some(_) => return Err(invalid("`members` must be a list")),
    };
    Ok(ScimGroup { id, display_name, external_id, members, created_at_ms, modified_at_ms: now_ms() })
}

fn resource(g: &ScimGroup, base: &Base) -> Value {
    let mut r = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "members": g.members.iter().map(|m| {
            let mut v = json!({"value": m.id, "$ref": base.users(&m.id), "type": "User"});
            if let Some(d) = &m.display {
                v["display"] = json!(d);
            }
            v
        }).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Group",
            "created": time(g.created_at_ms),
            "lastModified": time(g.modified_at_ms),
            "location": base.groups(&g.id),
        },
    });
    if let Some(x) = &g.external_id {
        r["externalId"] = json!(x);
    }
    r
}

async fn get_group(s: &AppState, id: String) -> Result<ScimGroup, ScimError> {
    let i = id.clone();
    blocking(s, move |st| st.group(&i)).await?.ok_or_else(|| ScimError::not_found(format!("no group {id}")))
}

/// Writes `g` and answers with it as stored (members with their display names).
async fn write(s: &AppState, base: &Base, g: ScimGroup, create: bool) -> Result<Response, ScimError> {
    let id = g.id.clone();
    let stored = blocking(s, move |st| {
        if create {
            st.create_group(&g)?
        } else {
            st.update_group(&g)?
        }
        st.group(&g.id)
    })
    .await?
    .ok_or_else(|| internal(format!("group {id} vanished after its write")))?;
    let body = resource(&stored, base);
    let location = base.groups(&stored.id);
    Ok(if create { super::created(&location, body) } else { super::resource_response(&location, body) })
}

pub(super) async fn create(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let id = crate::tokens::random(16).map(hex::encode).map_err(|e| internal(e.to_string()))?;
    let g = group_from(&body, id, now_ms())?;
    tracing::info!(group = %g.display_name, members = g.members.len(), "SCIM: group provisioned.");
    write(&s, &base, g, true).await
}

pub(super) async fn fetch(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    proj: Result<Query<Projection>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let proj = super::projection(proj)?;
    let g = get_group(&s, id).await?;
    Ok(super::resource_response(&base.groups(&g.id), proj.apply(resource(&g, &base))))
}

pub(super) async fn list(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    super::list_response(all(&s, &base), &super::list_query(q)?).await
}

/// POST `/Groups/.search`: the same query as a JSON body.
pub(super) async fn search(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    super::list_response(all(&s, &base), &super::search_query(&body)?).await
}

/// Every group, as SCIM JSON.
pub(super) async fn all(s: &AppState, base: &Base) -> Result<Vec<Value>, ScimError> {
    Ok(blocking(s, |st| st.groups()).await?.iter().map(|g| resource(g, base)).collect())
}

pub(super) async fn replace(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let old = get_group(&s, id.clone()).await?;
    super::same_id(&body, &id)?;
    let g = group_from(&body, id, old.created_at_ms)?;
    write(&s, &base, g, false).await
}

pub(super) async fn patch(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let old = get_group(&s, id.clone()).await?;
    let mut v = resource(&old, &base);
    super::patch::apply_ops(&mut v, &body, READ_ONLY)?;
    let g = group_from(&v, id, old.created_at_ms)?;
    tracing::info!(group = %g.display_name, members = g.members.len(), "SCIM: group patched.");
    write(&s, &base, g, false).await
}

pub(super) async fn delete(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let i = id.clone();
    if !blocking(&s, move |st| st.delete_group(&i)).await? {
        return Err(ScimError::not_found(format!("no group {id}")));
    }
    tracing::info!(group = %id, "SCIM: group deleted.");
    Ok(StatusCode::NO_CONTENT.into_response())
}
