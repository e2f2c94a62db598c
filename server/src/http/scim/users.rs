//! `/scim/v2/Users`: the core User (RFC 7643 §4.1) and the enterprise extension's manager,
//! department and employee number. `groups` is read-only (set through `/Groups`);
//! `password` and attributes Sightline does not keep (phone numbers, addresses, …) are
//! accepted and not stored, so an IdP's default mappings never fail a provisioning run.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::filter::key;
use super::{
    Base, ENTERPRISE_SCHEMA, ListQuery, Projection, Provisioner, ScimError, USER_SCHEMA, blocking,
    bool_value, internal, parse_body,
};
use crate::clock::now_ms;
use crate::clock::rfc3339 as time;
use crate::state::AppState;
use crate::store::{Email, Person, PersonName};

/// What a PATCH may not target on a user.
pub(crate) const READ_ONLY: &[&str] = &["id", "meta", "groups", "schemas"];

fn invalid(what: &str) -> ScimError {
    ScimError::bad("invalidValue", what.to_owned())
}

fn get<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    key(o, name).and_then(|k| o.get(k)).filter(|v| !v.is_null())
}

/// An optional string attribute; another JSON type is `invalidValue`.
fn text(o: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&format!("`{name}` must be a string"))),
    }
}

/// A SCIM User body (POST, PUT, or a patched resource) → the person Sightline keeps.
pub(crate) fn person_from(body: &Value, id: String, created_at_ms: i64) -> Result<Person, ScimError> {
    let obj =
        body.as_object().ok_or_else(|| ScimError::bad("invalidSyntax", "the body must be a JSON object"))?;
    if let Some(schemas) = get(obj, "schemas")
        && !schemas.as_array().is_some_and(|a| a.iter().any(|s| s == USER_SCHEMA))
    {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must include {USER_SCHEMA}")));
    }
    let user_name = text(obj, "userName")?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("`userName` is required"))?;
    let active = match get(obj, "active") {
        None => true,
        Some(v) => bool_value(v).ok_or_else(|| invalid("`active` must be a boolean"))?,
    };
    let name = match get(obj, "name") {
        None => PersonName::default(),
        Some(Value::Object(n)) => PersonName {
            formatted: text(n, "formatted")?,
            family_name: text(n, "familyName")?,
            given_name: text(n, "givenName")?,
            middle_name: text(n, "middleName")?,
            honorific_prefix: text(n, "honorificPrefix")?,
            honorific_suffix: text(n, "honorificSuffix")?,
        },
        Some(_) => return Err(invalid("`name` must be an object")),
    };
    let emails = match get(obj, "emails") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|e| {
                let e = e.as_object().ok_or_else(|| invalid("each of `emails` must be an object"))?;
                let value = text(e, "value")?
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid("each of `emails` needs a `value`"))?;
                let primary = match get(e, "primary") {
                    None => None,
                    Some(v) => {
                        Some(bool_value(v).ok_or_else(|| invalid("`emails.primary` must be a boolean"))?)
                    }
                };
                Ok(Email { value, kind: text(e, "type")?, primary, display: text(e, "display")? })
            })
            .collect::<Result<Vec<_>, ScimError>>()?,
        Some(_) => return Err(invalid("`emails` must be a list")),
    };
    let (mut department, mut employee_number, mut manager_id) = (None, None, None);
    match get(obj, ENTERPRISE_SCHEMA) {
        None => {}
        Some(Value::Object(ext)) => {
            department = text(ext, "department")?;
            employee_number = text(ext, "employeeNumber")?;
            manager_id = match get(ext, "manager") {
                None => None,
                // Entra sends the manager's id as the bare value in a PATCH.
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(m)) => text(m, "value")?,
                Some(_) => return Err(invalid("`manager` must be an object with a `value`")),
            }
            .filter(|s| !s.is_empty());
        }
        Some(_) => return Err(invalid("the enterprise extension must be an object")),
    }
    let now = now_ms();
    Ok(Person {
        id,
        user_name,
        external_id: text(obj, "externalId")?,
        display_name: text(obj, "displayName")?,
        emails: emails.iter().map(|e| e.value.to_lowercase()).collect(),
        profile: crate::store::Profile { name, emails },
        manager_id,
        department,
        employee_number,
        groups: Vec::new(),
        active,
        created_at_ms,
        modified_at_ms: now,
        deprovisioned_at_ms: (!active).then_some(now),
        deleted_at_ms: None,
    })
}

/// Drops the nulls of a serialized struct (SCIM omits unassigned attributes).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        v => v,
    }
}

/// A person as a SCIM User; `manager_name` is the manager's display name, where known.
pub(crate) fn resource(p: &Person, base: &Base, manager_name: Option<&str>) -> Value {
    let mut r = json!({
        "schemas": [USER_SCHEMA],
        "id": p.id,
        "userName": p.user_name,
        "active": p.active,
        "meta": {
            "resourceType": "User",
            "created": time(p.created_at_ms),
            "lastModified": time(p.modified_at_ms),
            "location": base.users(&p.id),
        },
    });
    if let Some(x) = &p.external_id {
        r["externalId"] = json!(x);
    }
    if let Some(d) = &p.display_name {
        r["displayName"] = json!(d);
    }
    if !p.profile.name.is_empty() {
        r["name"] = without_nulls(serde_json::to_value(&p.profile.name).unwrap_or_default());
    }
    let emails: Vec<Value> = if p.profile.emails.is_empty() {
        // Stored before the structured emails were: only the lower-cased addresses.
        p.emails.iter().enumerate().map(|(i, e)| json!({"value": e, "primary": i == 0})).collect()
    } else {
        p.profile.emails.iter().map(|e| without_nulls(serde_json::to_value(e).unwrap_or_default())).collect()
    };
    if !emails.is_empty() {
        r["emails"] = Value::Array(emails);
    }
    if !p.groups.is_empty() {
        r["groups"] = p
            .groups
            .iter()
            .map(|g| json!({"value": g.id, "display": g.display_name, "$ref": base.groups(&g.id), "type": "direct"}))
            .collect();
    }
    let mut ext = Map::new();
    if let Some(d) = &p.department {
        ext.insert("department".into(), json!(d));
    }
    if let Some(n) = &p.employee_number {
        ext.insert("employeeNumber".into(), json!(n));
    }
    if let Some(m) = &p.manager_id {
        let mut manager = json!({"value": m, "$ref": base.users(m)});
        if let Some(name) = manager_name {
            manager["displayName"] = json!(name);
        }
        ext.insert("manager".into(), manager);
    }
    if !ext.is_empty() {
        r[ENTERPRISE_SCHEMA] = Value::Object(ext);
        r["schemas"] = json!([USER_SCHEMA, ENTERPRISE_SCHEMA]);
    }
    r
}

fn shown_name(p: &Person) -> String {
    p.display_name.clone().unwrap_or_else(|| p.user_name.clone())
}

/// The person, not deleted, or 404.
async fn live_person(s: &AppState, id: String) -> Result<Person, ScimError> {
    let i = id.clone();
    blocking(s, move |st| st.person(&i))
        .await?
        .filter(|p| p.deleted_at_ms.is_none())
        .ok_or_else(|| ScimError::not_found(format!("no user {id}")))
}

/// The manager's display name; a manager who is not a live user (or the person themself)
/// is `invalidValue`.
async fn check_manager(s: &AppState, p: &Person) -> Result<Option<String>, ScimError> {
    let Some(m) = p.manager_id.clone() else { return Ok(None) };
    if m == p.id {
        return Err(invalid("a user cannot be their own manager"));
    }
    match live_person(s, m.clone()).await {
        Ok(manager) => Ok(Some(shown_name(&manager))),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(invalid(&format!("manager {m:?} is not a user"))),
        Err(e) => Err(e),
    }
}

pub(super) async fn create(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let id = crate::tokens::random(16).map(hex::encode).map_err(|e| internal(e.to_string()))?;
    let p = person_from(&body, id, now_ms())?;
    let manager = check_manager(&s, &p).await?;
    let p = blocking(&s, move |st| st.create_person(&p).map(|()| p)).await?;
    tracing::info!(user = %p.user_name, "SCIM: person provisioned.");
    Ok(super::created(&base.users(&p.id), resource(&p, &base, manager.as_deref())))
}

pub(super) async fn fetch(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    proj: Result<Query<Projection>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let proj = super::projection(proj)?;
    let p = live_person(&s, id).await?;
    let manager = match &p.manager_id {
        Some(m) => live_person(&s, m.clone()).await.ok().map(|m| shown_name(&m)),
        None => None,
    };
    Ok(super::resource_response(&base.users(&p.id), proj.apply(resource(&p, &base, manager.as_deref()))))
}

pub(super) async fn list(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    super::list_response(all(&s, &base), &super::list_query(q)?).await
}

/// POST `/Users/.search`: the same query as a JSON body.
pub(super) async fn search(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    super::list_response(all(&s, &base), &super::search_query(&body)?).await
}

/// Every user, as SCIM JSON.
pub(super) async fn all(s: &AppState, base: &Base) -> Result<Vec<Value>, ScimError> {
    let people = blocking(s, |st| st.people()).await?;
    let names: HashMap<&str, String> = people.iter().map(|p| (p.id.as_str(), shown_name(p))).collect();
    Ok(people
        .iter()
        .map(|p| resource(p, base, p.manager_id.as_deref().and_then(|m| names.get(m)).map(String::as_str)))
        .collect())
}

/// Stores `p` (replacing `old`): deactivation sets the offboarding time once, reactivation
/// clears it.
async fn store_update(s: &AppState, base: &Base, old: Person, mut p: Person) -> Result<Response, ScimError> {
    let now = now_ms();
    p.modified_at_ms = now;
    p.groups = old.groups;
    let offboarded = old.active && !p.active;
    if offboarded {
        p.deprovisioned_at_ms = Some(now);
        tracing::info!(user = %p.user_name, "SCIM: person deactivated.");
    } else if p.active {
        p.deprovisioned_at_ms = None;
    } else {
        p.deprovisioned_at_ms = old.deprovisioned_at_ms.or(Some(now));
    }
    let manager = check_manager(s, &p).await?;
    let p = blocking(s, move |st| st.update_person(&p).map(|()| p)).await?;
    if offboarded {
        end_sessions(s, &p).await?;
    }
    Ok(super::resource_response(&base.users(&p.id), resource(&p, base, manager.as_deref())))
}

pub(super) async fn replace(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let old = live_person(&s, id.clone()).await?;
    super::same_id(&body, &id)?;
    let p = person_from(&body, id, old.created_at_ms)?;
    store_update(&s, &base, old, p).await
}

pub(super) async fn patch(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let body = parse_body(&body)?;
    let old = live_person(&s, id).await?;
    let p = super::apply_patch(old.clone(), &body)?;
    store_update(&s, &base, old, p).await
}

pub(super) async fn delete(
    _: Provisioner,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let mut p = live_person(&s, id).await?;
    let now = now_ms();
    p.active = false;
    p.deprovisioned_at_ms = p.deprovisioned_at_ms.or(Some(now));
    p.modified_at_ms = now;
    // Kept on record (the offboarding signal), no longer visible through SCIM.
    p.deleted_at_ms = Some(now);
    tracing::info!(user = %p.user_name, "SCIM: person deleted (kept as deprovisioned).");
    let p = blocking(&s, move |st| st.update_person(&p).map(|()| p)).await?;
    end_sessions(&s, &p).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An offboarded person's dashboard sessions opened through SSO end with the offboarding,
/// not up to twelve hours later: matched by the addresses the IdP provisioned for them.
async fn end_sessions(s: &AppState, p: &Person) -> Result<(), ScimError> {
    let addresses: Vec<String> =
        std::iter::once(p.user_name.clone()).chain(p.emails.iter().cloned()).collect();
    let ended = blocking(s, move |st| st.end_sso_sessions_of(&addresses)).await?;
    if ended > 0 {
        tracing::info!(user = %p.user_name, sessions = ended, "SCIM: the offboarded person's SSO sessions ended.");
    }
    Ok(())
}
