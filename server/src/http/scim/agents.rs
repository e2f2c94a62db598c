//! `/scim/v2/Agents`: the connector register as non-human identities, in the shape of the
//! Agent resource of the IETF draft `draft-abbey-scim-agent-extension-00` (Abbey & Cohen,
//! 16 October 2025), so an identity-governance tool pulls shadow AI into its own inventory
//! of non-human identities with an owner and a status.
//!
//! Every connector (tool, extension, token, MCP server) is one Agent. Of the draft's two
//! resource types only Agent is served: its -00 AgenticApplication schema has no owner, and
//! the owner is what governance needs.
//!
//! - `id`: the connector key in unpadded base64url — stable, URL-safe, and decoded back
//!   to the key on `GET /Agents/{id}`, so reading one needs no index.
//! - `name` (the draft's one required attribute, unique): the key (`tool:cursor`, …).
//! - `displayName`: the catalog's name for it; `agentType`: its kind.
//! - `active`: false once it is `revoked` or `removed` (on no device now).
//! - `owners`: the one person behind it ([`owner`]), a reference to their User.
//! - `protocols`: `MCP-Server` for an MCP server, the draft's canonical value.
//! - the Sightline extension ([`CONNECTOR_SCHEMA`]): key, kind, our status, devices, first
//!   and last seen, provider (tokens) and how sure the owner is.
//!
//! Read-only: the register is what agents on laptops report, not what a client provisions,
//! so POST, PUT, PATCH and DELETE answer 405 in SCIM's error shape. Readers are `scim` (and
//! `admin`) tokens, like the rest of `/scim/v2`: the identity-governance tool holds a SCIM
//! credential, and a viewer reads the same register through `/api/v1/connectors`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{AGENT_SCHEMA, Base, CONNECTOR_SCHEMA, ListQuery, Projection, Provisioner, ScimError, blocking};
use crate::clock::rfc3339 as time;
use crate::policy::{People, Policy};
use crate::state::AppState;
use crate::store::{Connector, Person};

/// The Agent id of a connector key.
pub(crate) fn agent_id(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The connector key an Agent id stands for, or None for an id no key encodes to.
fn key_of(id: &str) -> Option<String> {
    URL_SAFE_NO_PAD.decode(id).ok().and_then(|b| String::from_utf8(b).ok())
}

/// Who owns a connector, and how sure that is (`exact` or `inferred`).
pub(crate) struct Owner {
    pub person: Person,
    pub confidence: &'static str,
}

/// The owner of a connector as the register decides it (`register::owner_of`: an admin's
/// assignment, else the one person every account it is under is attributed to; never a
/// guess).
pub(crate) fn owner(c: &Connector, policy: &Policy, people: &People) -> Option<Owner> {
    let o = crate::register::owner_of(c, policy, people);
    Some(Owner { person: o.person?, confidence: o.attribution })
}

/// A connector as an Agent resource. `status` is the policy's judgement of it.
pub(crate) fn resource(c: &Connector, status: &str, owner: Option<&Owner>, base: &Base) -> Value {
    let id = agent_id(&c.key);
    let mut ext = json!({
        "key": c.key,
        "kind": c.kind,
        "status": status,
        "devices": c.devices.iter().filter(|d| d.present).count(),
        "firstSeen": time(c.first_seen_ms),
        "lastSeen": time(c.last_seen_ms),
        "ownerAttribution": owner.map_or("unknown", |o| o.confidence),
    });
    if c.kind == "token"
        && let Some(p) = c.latest.get("provider").and_then(Value::as_str)
    {
        ext["provider"] = json!(p);
    }
    // The account a connector is signed in with (its authorizing identity) joins the
    // extension here once agents report it.
    let mut r = json!({
        "schemas": [AGENT_SCHEMA, CONNECTOR_SCHEMA],
        "id": id,
        "name": c.key,
        "displayName": crate::catalog::display_name(&c.kind, &c.label),
        "agentType": c.kind,
        "active": !matches!(status, "revoked" | "removed"),
        CONNECTOR_SCHEMA: ext,
        "meta": {
            "resourceType": "Agent",
            "created": time(c.first_seen_ms),
            "lastModified": time(c.last_seen_ms),
            "location": base.agents(&id),
        },
    });
    // A deleted person's User is gone from SCIM: a reference to it would lead nowhere.
    if let Some(o) = owner.filter(|o| o.person.deleted_at_ms.is_none()) {
        let p = &o.person;
        r["owners"] = json!([{
            "value": p.id,
            "$ref": base.users(&p.id),
            "display": p.display_name.clone().unwrap_or_else(|| p.user_name.clone()),
        }]);
    }
    if c.kind == "mcp_server" {
        r["protocols"] = json!([{"type": "MCP-Server"}]);
    }
    r
}

/// Every connector, as an Agent.
pub(super) async fn all(s: &AppState, base: &Base) -> Result<Vec<Value>, ScimError> {
    agents(s, base, None).await
}

/// Connectors (all, or the one with `key`) as Agents.
async fn agents(s: &AppState, base: &Base, key: Option<String>) -> Result<Vec<Value>, ScimError> {
    let policy = s.policy.clone();
    let policy_keys = policy.clone();
    let (connectors, people) = blocking(s, move |st| {
        let connectors = match key {
            Some(k) => st.connector(&k)?.into_iter().collect(),
            None => st.connectors()?,
        };
        // Owners need the people whatever the policy approves, but only those who could be
        // behind the accounts seen: attribution among them answers as among everyone.
        let mut keys: Vec<String> = connectors
            .iter()
            .flat_map(|c| c.devices.iter().filter_map(|d| d.user.as_deref()))
            .flat_map(|u| policy_keys.keys_for(u))
            .collect();
        keys.sort();
        keys.dedup();
        Ok((connectors, People::new(st.people_by_keys(&keys)?)))
    })
    .await?;
    Ok(connectors
        .iter()
        .map(|c| resource(c, policy.status(c, &people), owner(c, &policy, &people).as_ref(), base))
        .collect())
}

pub(super) async fn list(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    super::list_response(agents(&s, &base, None), &super::list_query(q)?).await
}

/// POST `/Agents/.search`: the same query as a JSON body.
pub(super) async fn search(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    super::list_response(agents(&s, &base, None), &super::search_query(&body)?).await
}

pub(super) async fn fetch(
    _: Provisioner,
    base: Base,
    State(s): State<AppState>,
    Path(id): Path<String>,
    proj: Result<Query<Projection>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let proj = super::projection(proj)?;
    let missing = || ScimError::not_found(format!("no agent {id}"));
    let key = key_of(&id).ok_or_else(missing)?;
    let agent = agents(&s, &base, Some(key)).await?.into_iter().next().ok_or_else(missing)?;
    Ok(super::resource_response(&base.agents(&id), proj.apply(agent)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConnectorDevice;

    fn person(id: &str, user_name: &str) -> Person {
        Person {
            id: id.into(),
            user_name: user_name.into(),
            emails: vec![user_name.into()],
            display_name: Some(format!("{id} name")),
            active: true,
            ..Person::default()
        }
    }

    fn on(device: &str, user: Option<&str>, present: bool) -> ConnectorDevice {
        ConnectorDevice {
            device_id: device.into(),
            hostname: format!("{device}.example"),
            user: user.map(str::to_owned),
            first_seen_ms: 1_000,
            last_seen_ms: 2_000,
            present,
        }
    }

    fn connector(key: &str, kind: &str, label: &str, devices: Vec<ConnectorDevice>) -> Connector {
        Connector {
            key: key.into(),
            kind: kind.into(),
            label: label.into(),
            first_seen_ms: 1_768_464_000_000,
            last_seen_ms: 1_768_467_600_000,
            latest: json!({"provider": "openai", "name": label}),
            seen_on: devices.len(),
            devices,
            revocation: None,
            decision: None,
            owner: None,
            last_used_ms: None,
        }
    }

    fn base() -> Base {
        Base("https://collector.example:8444/scim/v2".into())
    }

    fn people() -> People {
        People::new(vec![person("p-ada", "ada@example.com"), person("p-bob", "bob@example.com")])
    }

    #[test]
    fn ids_are_url_safe_and_decode_to_the_key() {
        for key in ["tool:cursor", "mcp:github:9f8e/7d+6c?x=1", "token:4f5e6d7c8b9a0f1e", "extension:é"] {
            let id = agent_id(key);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
            assert_eq!(key_of(&id).as_deref(), Some(key));
        }
        assert_eq!(key_of("not base64!"), None);
        assert_eq!(key_of(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])), None, "not UTF-8");
    }

    #[test]
    fn the_owner_is_the_one_person_behind_every_present_account() {
        let policy = Policy::default();
        let people = people();
        let one = connector(
            "tool:cursor",
            "tool",
            "cursor",
            vec![on("d1", Some("ada"), true), on("d2", Some("ada"), true)],
        );
        let o = owner(&one, &policy, &people).expect("ada owns it");
        assert_eq!((o.person.id.as_str(), o.confidence), ("p-ada", "inferred"));

        let two = connector(
            "tool:cursor",
            "tool",
            "cursor",
            vec![on("d1", Some("ada"), true), on("d2", Some("bob"), true)],
        );
        assert!(owner(&two, &policy, &people).is_none(), "two people: no guess");
        let unknown = connector(
            "tool:cursor",
            "tool",
            "cursor",
            vec![on("d1", Some("ada"), true), on("d2", Some("zed"), true)],
        );
        assert!(owner(&unknown, &policy, &people).is_none(), "an unattributed account: no guess");
        let no_account = connector("tool:cursor", "tool", "cursor", vec![on("d1", None, true)]);
        assert!(owner(&no_account, &policy, &people).is_none());

        // Where it is gone from, bob's old account does not count; once it is gone
        // everywhere, every account it was seen under does.
        let moved = connector(
            "tool:cursor",
            "tool",
            "cursor",
            vec![on("d1", Some("ada"), true), on("d2", Some("bob"), false)],
        );
        assert_eq!(owner(&moved, &policy, &people).map(|o| o.person.id), Some("p-ada".into()));
        let gone = connector("tool:cursor", "tool", "cursor", vec![on("d2", Some("bob"), false)]);
        assert_eq!(owner(&gone, &policy, &people).map(|o| o.person.id), Some("p-bob".into()));

        // An explicit mapping is exact; mixed with an inferred account, inferred.
        let policy: Policy =
            toml::from_str("[identity.accounts]\n\"ADA-PC\\\\ada\" = \"ada@example.com\"\n").unwrap();
        let mapped = connector("tool:cursor", "tool", "cursor", vec![on("d1", Some("ADA-PC\\ada"), true)]);
        assert_eq!(owner(&mapped, &policy, &people).map(|o| o.confidence), Some("exact"));
        let mixed = connector(
            "tool:cursor",
            "tool",
            "cursor",
            vec![on("d1", Some("ADA-PC\\ada"), true), on("d2", Some("ada"), true)],
        );
        assert_eq!(owner(&mixed, &policy, &people).map(|o| o.confidence), Some("inferred"));
    }

    #[test]
    fn a_connector_maps_to_the_drafts_agent_with_owner_and_status() {
        let c = connector("mcp:github:abc123", "mcp_server", "github", vec![on("d1", Some("ada"), true)]);
        let people = people();
        let o = owner(&c, &Policy::default(), &people);
        let r = resource(&c, "unsanctioned", o.as_ref(), &base());
        let id = agent_id("mcp:github:abc123");
        assert_eq!(r["schemas"], json!([AGENT_SCHEMA, CONNECTOR_SCHEMA]));
        assert_eq!(r["id"], id);
        assert_eq!(
            (r["name"].as_str(), r["agentType"].as_str()),
            (Some("mcp:github:abc123"), Some("mcp_server"))
        );
        assert_eq!(r["active"], true);
        assert_eq!(
            r["owners"],
            json!([{"value": "p-ada", "$ref": "https://collector.example:8444/scim/v2/Users/p-ada",
                    "display": "p-ada name"}])
        );
        assert_eq!(r["protocols"], json!([{"type": "MCP-Server"}]));
        let ext = &r[CONNECTOR_SCHEMA];
        assert_eq!((ext["status"].as_str(), ext["devices"].as_u64()), (Some("unsanctioned"), Some(1)));
        assert_eq!(
            (ext["firstSeen"].as_str(), ext["ownerAttribution"].as_str()),
            (Some("2026-01-15T08:00:00Z"), Some("inferred"))
        );
        assert!(ext.get("provider").is_none(), "provider is a token's");
        assert_eq!(r["meta"]["location"], format!("https://collector.example:8444/scim/v2/Agents/{id}"));
        assert_eq!(r["meta"]["resourceType"], "Agent");

        // Revoked or removed is inactive; no owner, no owners; a token names its provider.
        let t = connector("token:4f5e", "token", "OpenAI key", vec![on("d1", Some("zed"), false)]);
        let r = resource(&t, "removed", None, &base());
        assert_eq!(r["active"], false);
        assert!(r.get("owners").is_none() && r.get("protocols").is_none(), "{r:#}");
        assert_eq!(r[CONNECTOR_SCHEMA]["provider"], "openai");
        assert_eq!(r[CONNECTOR_SCHEMA]["devices"], 0);
        assert_eq!(r[CONNECTOR_SCHEMA]["ownerAttribution"], "unknown");
        assert_eq!(resource(&t, "revoked", None, &base())["active"], false);
        assert_eq!(resource(&t, "approved", None, &base())["active"], true);

        // A deleted owner's User is gone: no reference to it.
        let mut gone = o.expect("ada");
        gone.person.deleted_at_ms = Some(5);
        assert!(resource(&c, "discovered", Some(&gone), &base()).get("owners").is_none());
    }

    #[test]
    fn the_existing_filter_selects_agents_by_display_name_and_status() {
        let people = people();
        let policy = Policy::default();
        let list: Vec<Value> = [
            connector("tool:cursor", "tool", "cursor", vec![on("d1", Some("ada"), true)]),
            connector("token:4f5e", "token", "OpenAI key", vec![on("d1", Some("bob"), false)]),
        ]
        .iter()
        .map(|c| resource(c, policy.status(c, &people), owner(c, &policy, &people).as_ref(), &base()))
        .collect();
        let names = |f: &str| -> Vec<String> {
            let f = super::super::filter::parse(f).expect(f);
            list.iter()
                .filter(|r| f.matches(r))
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(names("displayName eq \"Cursor\""), ["tool:cursor"]);
        assert_eq!(names("active eq false"), ["token:4f5e"]);
        assert_eq!(names(&format!("{CONNECTOR_SCHEMA}:status eq \"removed\"")), ["token:4f5e"]);
        assert_eq!(names("owners.value eq \"p-ada\""), ["tool:cursor"]);
        assert_eq!(
            names("owners[display co \"p-bob\"]"),
            ["token:4f5e"],
            "gone everywhere: its last accounts' owner"
        );
    }
}
