//! The discovery endpoints (RFC 7644 §4, RFC 7643 §5–7): what this service provider does,
//! stated exactly — an identity provider (and scim2-tester) decides what to send from them.
//! The schemas list only the attributes the handlers keep and return; `readOnly` marks what
//! the server sets (ids, a member's or manager's display name, a user's groups, and all of
//! an Agent: the register is read-only).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    AGENT_SCHEMA, Base, CONNECTOR_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA, MAX_PAGE, Provisioner, ScimError,
    USER_SCHEMA, scim_json,
};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// One attribute definition (RFC 7643 §7) with the defaults most attributes share.
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    uniqueness: &'static str,
    refs: &'static [&'static str],
    canonical: &'static [&'static str],
    subs: Vec<Attr>,
    description: &'static str,
}

fn attr(name: &'static str, kind: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        uniqueness: "none",
        refs: &[],
        canonical: &[],
        subs: Vec::new(),
        description,
    }
}

impl Attr {
    fn multi(mut self) -> Attr {
        self.multi = true;
        self
    }
    fn required(mut self) -> Attr {
        self.required = true;
        self
    }
    fn exact(mut self) -> Attr {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: &'static str) -> Attr {
        self.mutability = m;
        self
    }
    fn unique(mut self) -> Attr {
        self.uniqueness = "server";
        self
    }
    fn refs(mut self, r: &'static [&'static str]) -> Attr {
        self.refs = r;
        self
    }
    fn canonical(mut self, c: &'static [&'static str]) -> Attr {
        self.canonical = c;
        self
    }
    fn subs(mut self, s: Vec<Attr>) -> Attr {
        self.subs = s;
        self
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": "default",
            "uniqueness": self.uniqueness,
        });
        if !self.refs.is_empty() {
            v["referenceTypes"] = json!(self.refs);
        }
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if !self.subs.is_empty() {
            v["subAttributes"] = self.subs.iter().map(Attr::json).collect();
        }
        v
    }
}

fn user_attributes() -> Vec<Attr> {
    vec![
        attr("userName", "string", "Unique identifier for the user, usually the work email or UPN.")
            .required()
            .unique(),
        attr("name", "complex", "The components of the user's name.").subs(vec![
            attr("formatted", "string", "The full name, formatted for display."),
            attr("familyName", "string", "The family name."),
            attr("givenName", "string", "The given name."),
            attr("middleName", "string", "The middle name(s)."),
            attr("honorificPrefix", "string", "The honorific prefix, as Ms."),
            attr("honorificSuffix", "string", "The honorific suffix, as III."),
        ]),
        attr("displayName", "string", "The name of the user, suitable for display."),
        attr("active", "boolean", "Whether the user may work; false deprovisions them."),
        attr("emails", "complex", "Email addresses; attribution matches OS accounts against them.")
            .multi()
            .subs(vec![
                attr("value", "string", "The email address."),
                attr("display", "string", "A label for the address."),
                attr("type", "string", "The kind of address.").canonical(&["work", "home", "other"]),
                attr("primary", "boolean", "Whether this is the primary address."),
            ]),
        attr("groups", "complex", "The groups the user belongs to; set through /Groups.")
            .multi()
            .mutability("readOnly")
            .subs(vec![
                attr("value", "string", "The group's id.").exact().mutability("readOnly"),
                attr("$ref", "reference", "The group's URI.").exact().mutability("readOnly").refs(&["Group"]),
                attr("display", "string", "The group's displayName.").mutability("readOnly"),
                attr("type", "string", "Membership kind.").mutability("readOnly").canonical(&["direct"]),
            ]),
    ]
}

fn enterprise_attributes() -> Vec<Attr> {
    vec![
        attr("employeeNumber", "string", "The organization's number for the user."),
        attr("department", "string", "The user's department."),
        attr("manager", "complex", "The user's manager, another user.").subs(vec![
            attr("value", "string", "The manager's id.").exact(),
            attr("$ref", "reference", "The manager's URI.").exact().refs(&["User"]),
            attr("displayName", "string", "The manager's display name.").mutability("readOnly"),
        ]),
    ]
}

fn group_attributes() -> Vec<Attr> {
    vec![
        attr("displayName", "string", "The group's name; the policy's [approved.groups.NAME] names it.")
            .required()
            .unique(),
        attr("members", "complex", "The users in the group.").multi().subs(vec![
            attr("value", "string", "The member's id.").exact().mutability("immutable"),
            attr("$ref", "reference", "The member's URI.").exact().mutability("immutable").refs(&["User"]),
            attr("display", "string", "The member's display name.").mutability("readOnly"),
            attr("type", "string", "The kind of member.").mutability("immutable").canonical(&["User"]),
        ]),
    ]
}

/// A read-only attribute: everything an Agent has is set by the server.
fn ro(name: &'static str, kind: &'static str, description: &'static str) -> Attr {
    attr(name, kind, description).mutability("readOnly")
}

/// The Agent schema of `draft-abbey-scim-agent-extension-00`, as far as Sightline fills it:
/// the draft's names, types and case rules, every attribute read-only.
fn agent_attributes() -> Vec<Attr> {
    vec![
        ro("name", "string", "The connector's key (tool:ID, extension:ID, token:FP, mcp:NAME:HASH), unique.")
            .required()
            .unique(),
        ro("displayName", "string", "What people call it: the catalog's name for a tool or extension."),
        ro("agentType", "string", "The kind of connector.").canonical(KINDS),
        ro("active", "boolean", "False once the connector is revoked or on no device any more."),
        ro("owners", "complex", "The person accountable for it: the one person its accounts belong to.")
            .multi()
            .subs(vec![
                ro("value", "string", "The owner's User id.").exact(),
                ro("$ref", "reference", "The owner's User URI.").exact().refs(&["User", "Group"]),
                ro("display", "string", "The owner's display name."),
            ]),
        ro("protocols", "complex", "The protocols it serves: MCP-Server for an MCP server.")
            .multi()
            .subs(vec![ro("type", "string", "The protocol.").canonical(&["A2A", "OpenAPI", "MCP-Server"])]),
    ]
}

const KINDS: &[&str] = &["tool", "extension", "token", "mcp_server"];

/// What the register knows of the connector behind an Agent.
fn connector_attributes() -> Vec<Attr> {
    vec![
        ro("key", "string", "The connector key, as the API and CLI name it.").exact().unique(),
        ro("kind", "string", "tool, extension, token or mcp_server.").canonical(KINDS),
        ro("status", "string", "Sightline's judgement of it under the policy.").canonical(&[
            "discovered",
            "approved",
            "unsanctioned",
            "revoked",
            "removed",
        ]),
        ro("devices", "integer", "How many devices it is on now."),
        ro("firstSeen", "dateTime", "When a device first reported it."),
        ro("lastSeen", "dateTime", "When a device last reported it."),
        ro("provider", "string", "A token's provider (openai, anthropic, ...)."),
        ro("ownerAttribution", "string", "How the owner was found: an explicit mapping, a rule, or none.")
            .canonical(&["exact", "inferred", "unknown"]),
    ]
}

/// Every schema this service provider serves: (id, name, description, attributes).
fn all_schemas(base: &Base) -> Vec<Value> {
    [
        (USER_SCHEMA, "User", "User Account", user_attributes()),
        (ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", enterprise_attributes()),
        (GROUP_SCHEMA, "Group", "Group", group_attributes()),
        (
            AGENT_SCHEMA,
            "Agent",
            "An AI connector found on the fleet, as an agent identity",
            agent_attributes(),
        ),
        (CONNECTOR_SCHEMA, "SightlineConnector", "Sightline's view of the connector", connector_attributes()),
    ]
    .into_iter()
    .map(|(id, name, description, attrs)| {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": id,
            "name": name,
            "description": description,
            "attributes": attrs.iter().map(Attr::json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{}/Schemas/{id}", base.0)},
        })
    })
    .collect()
}

fn all_resource_types(base: &Base) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People, provisioned by the identity provider",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/User", base.0)},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Groups of people, named by the policy's group approvals",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/Group", base.0)},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Agent",
            "name": "Agent",
            "endpoint": "/Agents",
            "description": "AI connectors (tools, extensions, tokens, MCP servers) as agent identities, read-only",
            "schema": AGENT_SCHEMA,
            "schemaExtensions": [{"schema": CONNECTOR_SCHEMA, "required": true}],
            "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/Agent", base.0)},
        }),
    ]
}

fn list(items: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

pub(super) async fn service_provider_config(_: Provisioner, base: Base) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [SPC_SCHEMA],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_PAGE},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            // No `agentExtension` here, though draft-abbey-scim-agent-extension-00 asks for
            // it: RFC 7643 §5 fixes this resource's attributes and strict clients (scim2-models)
            // refuse the whole document for an undeclared one, which would break
            // provisioning. The Agent resource type in /ResourceTypes says it instead.
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A Sightline API token of role scim, sent as Authorization: Bearer TOKEN",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{}/ServiceProviderConfig", base.0),
            },
        }),
    )
}

pub(super) async fn schemas(_: Provisioner, base: Base) -> Response {
    list(all_schemas(&base))
}

pub(super) async fn schema(
    _: Provisioner,
    base: Base,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    all_schemas(&base)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)))
        .map(|s| scim_json(StatusCode::OK, s))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")))
}

pub(super) async fn resource_types(_: Provisioner, base: Base) -> Response {
    list(all_resource_types(&base))
}

pub(super) async fn resource_type(
    _: Provisioner,
    base: Base,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    all_resource_types(&base)
        .into_iter()
        .find(|r| r["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&name)))
        .map(|r| scim_json(StatusCode::OK, r))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name}")))
}
