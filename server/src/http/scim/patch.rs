//! PatchOp (RFC 7644 §3.5.2) applied to a resource's SCIM JSON. The patched JSON is then
//! read back exactly as a PUT body is, so validation lives in one place per resource.
//!
//! Operations are case-insensitive (`add`, `Replace`, `Remove`, as Okta and Entra write
//! them). A `path` may name an attribute, a sub-attribute (`name.givenName`), an extension
//! attribute by its schema URN (`urn:…:enterprise:2.0:User:department`) or values of a
//! multi-valued attribute through a filter (`emails[type eq "work"].value`,
//! `members[value eq "…"]`); without a path the value is an object of attributes. Entra's
//! `remove` of `members` with a list of values removes those members. An `add` through a
//! filter that matches nothing (`emails[type eq "work"].value` on a user with no work email,
//! as Entra sends it) adds a value carrying the filter's `eq` attribute; a `replace` through
//! one is `noTarget` (RFC 7644 §3.5.2.3).

use serde_json::{Map, Value};

use super::filter::{self, Filter, Op};
use super::{PATCH_SCHEMA, ScimError};
use crate::store::Person;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// A PATCH target: `[urn:]attr[filter][.sub]`.
#[derive(Debug)]
struct Target {
    urn: Option<String>,
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn bad_path(p: &str, why: &str) -> ScimError {
    ScimError::bad("invalidPath", format!("path {p:?}: {why}"))
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c))
}

fn target(p: &str) -> Result<Target, ScimError> {
    let p = p.trim();
    // The extension's URN alone names its whole object, which sits at the top level.
    if p.eq_ignore_ascii_case(super::ENTERPRISE_SCHEMA) {
        return Ok(Target { urn: None, attr: super::ENTERPRISE_SCHEMA.into(), filter: None, sub: None });
    }
    let (head, filter, tail) = match p.find('[') {
        Some(open) => {
            let close = p.rfind(']').filter(|c| *c > open).ok_or_else(|| bad_path(p, "unclosed `[`"))?;
            let f = filter::parse(&p[open + 1..close]).map_err(|e| bad_path(p, &e.to_string()))?;
            (&p[..open], Some(f), &p[close + 1..])
        }
        None => (p, None, ""),
    };
    let (urn, attr, mut sub) = filter::split_attr(head);
    if filter.is_some() {
        if sub.is_some() {
            return Err(bad_path(p, "a sub-attribute goes after the filter"));
        }
        sub = match tail {
            "" => None,
            t => Some(t.strip_prefix('.').ok_or_else(|| bad_path(p, "text after the filter"))?.to_owned()),
        };
    }
    if !name_ok(&attr) || sub.as_deref().is_some_and(|s| !name_ok(s)) {
        return Err(bad_path(p, "not an attribute path"));
    }
    // The core schema's URN names the resource itself.
    let urn = urn.filter(|u| !u.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:core:"));
    Ok(Target { urn, attr, filter, sub })
}

/// Applies a PatchOp body to `resource` (its SCIM JSON). `read_only` attributes cannot be
/// targeted (`mutability`); an `id` in a path-less value must be the resource's own (Okta
/// sends it back), and `schemas`/`meta` there are ignored.
pub(crate) fn apply_ops(resource: &mut Value, body: &Value, read_only: &[&str]) -> Result<(), ScimError> {
    if !body.get("schemas").and_then(Value::as_array).is_some_and(|a| a.iter().any(|s| s == PATCH_SCHEMA)) {
        return Err(ScimError::bad("invalidSyntax", format!("`schemas` must be [{PATCH_SCHEMA:?}]")));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ScimError::bad("invalidSyntax", "`Operations` must be a non-empty list"))?;
    for op in ops {
        let kind = match op.get("op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            Some("add") => Kind::Add,
            Some("replace") => Kind::Replace,
            Some("remove") => Kind::Remove,
            other => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("unsupported op {other:?}; use add, replace or remove"),
                ));
            }
        };
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match op.get("path") {
            None | Some(Value::Null) => {
                if kind == Kind::Remove {
                    return Err(ScimError::bad("noTarget", "a remove needs a `path`"));
                }
                let Value::Object(attrs) = value else {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "an operation without `path` needs an object `value`",
                    ));
                };
                for (k, v) in attrs {
                    if k.eq_ignore_ascii_case("schemas") || k.eq_ignore_ascii_case("meta") {
                        continue;
                    }
                    if k.eq_ignore_ascii_case("id") {
                        if Some(&v) != resource.get("id") {
                            return Err(ScimError::bad("mutability", "`id` is read-only"));
                        }
                        continue;
                    }
                    if k.eq_ignore_ascii_case(super::ENTERPRISE_SCHEMA) {
                        // An extension's attributes, as a nested object.
                        let Value::Object(ext) = v else {
                            return Err(ScimError::bad("invalidValue", format!("`{k}` must be an object")));
                        };
                        for (ek, ev) in ext {
                            apply(resource, &target(&format!("{k}:{ek}"))?, kind, ev, read_only)?;
                        }
                        continue;
                    }
                    apply(resource, &target(&k)?, kind, v, read_only)?;
                }
            }
            Some(Value::String(p)) => apply(resource, &target(p)?, kind, value, read_only)?,
            Some(_) => return Err(ScimError::bad("invalidPath", "`path` must be a string")),
        }
    }
    Ok(())
}

/// Whether two values of a multi-valued attribute are the same one: by `value` where both
/// are complex and have one, else as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        let key = filter::key(into, &k).cloned().unwrap_or(k);
        into.insert(key, v);
    }
}

fn apply(res: &mut Value, t: &Target, kind: Kind, value: Value, read_only: &[&str]) -> Result<(), ScimError> {
    if t.urn.is_none() && read_only.iter().any(|r| r.eq_ignore_ascii_case(&t.attr)) {
        return Err(ScimError::bad("mutability", format!("`{}` is read-only", t.attr)));
    }
    let Some(root) = res.as_object_mut() else {
        return Err(ScimError::bad("invalidSyntax", "not an object"));
    };
    let container: &mut Map<String, Value> = match &t.urn {
        None => root,
        Some(u) => {
            let k = filter::key(root, u).cloned().unwrap_or_else(|| u.clone());
            let ext = root.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            match ext.as_object_mut() {
                Some(o) => o,
                None => return Err(ScimError::bad("invalidPath", "extension is not an object")),
            }
        }
    };
    let key = filter::key(container, &t.attr).cloned().unwrap_or_else(|| t.attr.clone());
    match (&t.filter, &t.sub) {
        (None, None) => match kind {
            Kind::Remove => match (container.get_mut(&key), value) {
                // Entra removes members by listing them as the value.
                (Some(Value::Array(items)), Value::Array(gone)) => {
                    items.retain(|i| !gone.iter().any(|g| same(i, g)))
                }
                _ => {
                    container.remove(&key);
                }
            },
            Kind::Add | Kind::Replace => {
                let current = container.get_mut(&key);
                match (current, value, kind) {
                    (Some(Value::Array(items)), new, Kind::Add) => {
                        let new = match new {
                            Value::Array(a) => a,
                            v => vec![v],
                        };
                        for n in new {
                            if let Some(i) = items.iter_mut().find(|i| same(i, &n)) {
                                *i = n;
                            } else {
                                items.push(n);
                            }
                        }
                    }
                    // A complex attribute: the given sub-attributes replace or add (§3.5.2.3).
                    (Some(Value::Object(o)), Value::Object(new), _) => merge(o, new),
                    (_, v, _) => {
                        container.insert(key, v);
                    }
                }
            }
        },
        (None, Some(sub)) => match container.get_mut(&key) {
            Some(Value::Object(o)) => {
                let sk = filter::key(o, sub).cloned().unwrap_or_else(|| sub.clone());
                if kind == Kind::Remove {
                    o.remove(&sk);
                } else {
                    o.insert(sk, value);
                }
            }
            None | Some(Value::Null) if kind != Kind::Remove => {
                let mut o = Map::new();
                o.insert(sub.clone(), value);
                container.insert(key, Value::Object(o));
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err(bad_path(&t.attr, "a sub-attribute of a value that has none")),
        },
        (Some(f), sub) => {
            let items = match container.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(a) => a,
                v @ Value::Null => {
                    *v = Value::Array(Vec::new());
                    match v {
                        Value::Array(a) => a,
                        _ => return Err(bad_path(&t.attr, "not multi-valued")),
                    }
                }
                _ => return Err(bad_path(&t.attr, "a filter on a single-valued attribute")),
            };
            let hits: Vec<usize> = (0..items.len()).filter(|i| f.matches(&items[*i])).collect();
            if hits.is_empty() {
                match kind {
                    // Nothing to remove: the state asked for already holds.
                    Kind::Remove => {}
                    Kind::Replace => {
                        return Err(ScimError::bad(
                            "noTarget",
                            format!("no value of `{}` matches {f}", t.attr),
                        ));
                    }
                    Kind::Add => {
                        // `emails[type eq "work"].value`: a new value with type work.
                        let Filter::Compare(p, Op::Eq, lit) = f else {
                            return Err(ScimError::bad(
                                "noTarget",
                                format!("no value of `{}` matches {f}", t.attr),
                            ));
                        };
                        let mut o = Map::new();
                        o.insert(p.attr.clone(), lit.clone());
                        match (sub, value) {
                            (Some(s), v) => {
                                o.insert(s.clone(), v);
                            }
                            (None, Value::Object(v)) => merge(&mut o, v),
                            (None, _) => {
                                return Err(ScimError::bad("invalidValue", "the value must be an object"));
                            }
                        }
                        items.push(Value::Object(o));
                    }
                }
                return Ok(());
            }
            match (kind, sub) {
                (Kind::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        i += 1;
                        !hits.contains(&(i - 1))
                    });
                }
                (Kind::Remove, Some(s)) => {
                    for i in hits {
                        if let Some(o) = items[i].as_object_mut() {
                            o.retain(|k, _| !k.eq_ignore_ascii_case(s));
                        }
                    }
                }
                (_, Some(s)) => {
                    for i in hits {
                        if let Some(o) = items[i].as_object_mut() {
                            let sk = filter::key(o, s).cloned().unwrap_or_else(|| s.clone());
                            o.insert(sk, value.clone());
                        }
                    }
                }
                (k, None) => {
                    for i in hits {
                        match (&mut items[i], &value) {
                            (Value::Object(o), Value::Object(v)) if k == Kind::Add => merge(o, v.clone()),
                            (item, v) => *item = v.clone(),
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A PatchOp applied to a person, as the PATCH handler applies it but without I/O; the
/// person as patched, or why the request is refused (the fuzz target's entry point).
pub fn apply_patch(person: Person, body: &Value) -> Result<Person, ScimError> {
    let base = super::Base("https://localhost/scim/v2".into());
    let mut v = super::users::resource(&person, &base, None);
    apply_ops(&mut v, body, super::users::READ_ONLY)?;
    let mut p = super::users::person_from(&v, person.id.clone(), person.created_at_ms)?;
    p.groups = person.groups;
    Ok(p)
}
