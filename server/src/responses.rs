//! The JSON the collector answers with: one type per document, shared by the HTTP API
//! (`/api/v1`, where each is a named schema in the OpenAPI document) and the CLI's `--json`,
//! so a script can switch between them. Each is built from store and domain values here, at
//! the edge; nothing below serialises for a caller.
//!
//! Fields are declared in alphabetical order and a missing value is `null`, never left out:
//! the documents were `serde_json` maps before they were types, and scripts (and the golden
//! files in `tests/data/golden`) rely on that exact shape. Fields that only some documents
//! carry are noted where they are.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339 as time;
use crate::store;

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

/// Which detection catalog the collector serves and which each device runs (the CLI's
/// `catalog status --json` and `GET /api/v1/catalog/status`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogStatus {
    /// The version of the catalog built into agents of this release (the floor).
    pub builtin_version: u64,
    pub devices: Vec<DeviceCatalog>,
    /// Whether the served catalog verifies under the collector key; false means it was
    /// changed after signing and agents refuse it. Null: none served.
    pub served_verifies: Option<bool>,
    /// The version installed with `catalog install` and served to agents; null: none.
    pub served_version: Option<u64>,
}

/// The catalog one device runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceCatalog {
    /// Whether it runs the served version or a newer one (with none served: whether it
    /// says which it runs).
    pub current: bool,
    pub device_id: String,
    /// Why it refused the last update it was sent; null when it took it.
    pub error: Option<String>,
    pub hostname: String,
    /// When it last said which catalog it runs.
    pub reported_at: Option<String>,
    /// The version it runs; null: its agent does not say (it predates catalog updates).
    pub version: Option<u64>,
}

impl DeviceCatalog {
    pub fn new(d: &store::DeviceCatalog, served: Option<u64>) -> DeviceCatalog {
        let version = d.status.version;
        DeviceCatalog {
            current: version.is_some_and(|v| v >= served.unwrap_or(0)),
            device_id: d.device_id.clone(),
            error: d.status.error.clone(),
            hostname: d.hostname.clone(),
            reported_at: opt_time(d.at_ms),
            version,
        }
    }
}

/// Liveness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub version: &'static str,
}

impl Health {
    pub fn now() -> Health {
        Health { status: "ok", version: env!("CARGO_PKG_VERSION") }
    }
}

/// An enrolled device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Device {
    pub agent_version: String,
    /// `tpm`, `secure_enclave`, `software`, …: how far its key can be trusted.
    pub assurance: String,
    /// The device clock's offset from the collector's, when known.
    pub clock_skew_ms: Option<i64>,
    pub device_id: String,
    pub enrolled_at: String,
    pub hardware_id: Option<String>,
    pub hostname: String,
    pub key_backend: String,
    pub key_id: String,
    pub last_attested_at: Option<String>,
    pub last_seen_at: Option<String>,
    /// Observations stored for it.
    pub observations: u64,
    pub os: String,
    pub os_version: String,
    pub revoked_at: Option<String>,
    pub seq_head: u64,
    /// OS accounts seen on it.
    pub users: Vec<String>,
}

impl Device {
    pub fn new(d: &store::Device, observations: u64) -> Device {
        Device {
            agent_version: d.agent_version.clone(),
            assurance: d.assurance.clone(),
            clock_skew_ms: d.clock_skew_ms,
            device_id: d.id.clone(),
            enrolled_at: time(d.enrolled_at_ms),
            hardware_id: d.hardware_id.clone(),
            hostname: d.hostname.clone(),
            key_backend: d.key_backend.clone(),
            key_id: sightline_proto::p256::key_id(&d.key_spki),
            last_attested_at: opt_time(d.last_attested_ms),
            last_seen_at: opt_time(d.last_seen_ms),
            observations,
            os: d.os.clone(),
            os_version: d.os_version.clone(),
            revoked_at: opt_time(d.revoked_at_ms),
            seq_head: d.seq_head,
            users: d.users.clone(),
        }
    }
}

/// One device with its connectors and its most recent presence intervals, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceDetail {
    pub agent_version: String,
    pub assurance: String,
    pub clock_skew_ms: Option<i64>,
    pub connectors: Vec<Connector>,
    pub device_id: String,
    pub enrolled_at: String,
    pub hardware_id: Option<String>,
    pub history: Vec<Presence>,
    pub hostname: String,
    pub key_backend: String,
    pub key_id: String,
    pub last_attested_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub observations: u64,
    pub os: String,
    pub os_version: String,
    pub revoked_at: Option<String>,
    pub seq_head: u64,
    pub users: Vec<String>,
}

impl DeviceDetail {
    pub fn new(d: Device, connectors: Vec<Connector>, history: Vec<Presence>) -> DeviceDetail {
        DeviceDetail {
            agent_version: d.agent_version,
            assurance: d.assurance,
            clock_skew_ms: d.clock_skew_ms,
            connectors,
            device_id: d.device_id,
            enrolled_at: d.enrolled_at,
            hardware_id: d.hardware_id,
            history,
            hostname: d.hostname,
            key_backend: d.key_backend,
            key_id: d.key_id,
            last_attested_at: d.last_attested_at,
            last_seen_at: d.last_seen_at,
            observations: d.observations,
            os: d.os,
            os_version: d.os_version,
            revoked_at: d.revoked_at,
            seq_head: d.seq_head,
            users: d.users,
        }
    }
}

/// A connector (a tool, browser extension, token or MCP server) across the fleet.
///
/// The kind-specific fields are present only for their kind (`tool`: tool; `extension`:
/// tool, extension_id, name, browser; `token`: provider, token_kind, fingerprint, source;
/// `mcp_server`: client, name, transport, command, url), as last reported. `presence` and
/// `directives` are present only in the one-connector view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Connector {
    /// For an OAuth/session token: the provider account it was issued to, as the tool
    /// records it. `null` for API keys (they carry no account), where the tool records none,
    /// and for other kinds.
    pub authorized_by: Option<AuthorizedBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// An approval or denial in force or lapsed (a decision), if one was made.
    pub decision: Option<DecisionView>,
    /// Where it is or was, one entry per device and account.
    pub devices: Vec<ConnectorDevice>,
    /// Every directive issued for it (one-connector view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directives: Option<Vec<Directive>>,
    /// What people call it: the catalog's name for a tool or catalogued extension, else
    /// `label`.
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Value>,
    pub first_seen: String,
    /// Its lifecycle, oldest first: discovered, owner assigned, approval requested, approved,
    /// denied, expired, reviewed, revoked, removed, with who and when (one-connector view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<LifecycleEvent>>,
    /// `extension:ID`, `tool:ID`, `token:FP` or `mcp:NAME:HASH`.
    pub key: String,
    /// `tool`, `extension`, `token` or `mcp_server`.
    pub kind: String,
    pub label: String,
    pub last_seen: String,
    /// The latest record of an AI tool session that went through it (its tool's, an MCP
    /// server it called, a credential it ran with); null when none is known.
    pub last_used: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Value>,
    /// Where it was first seen: device, account, time and the evidence sequence number
    /// (one-connector view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The person who answers for it: assigned by an admin, else attributed from the
    /// accounts it is under; null when nobody is (unknown accounts, or shared by several).
    pub owner: Option<ConnectorOwner>,
    /// Its presence intervals with owners and evidence references (one-connector view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<Vec<ConnectorPresence>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    pub revocation: Option<RevocationStatus>,
    /// How to take it away: the agents' local action and the provider's page for the
    /// credential itself (one-connector view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_method: Option<RevocationMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// `discovered`, `approved`, `unsanctioned`, `revoked` or `removed`.
    pub status: String,
    /// What decided `status`: `decision`, `policy`, `policy:groups:NAMES`, `expired` (an
    /// approval lapsed), `revocation`, `presence` (removed) or `none` (nothing judges it).
    pub status_source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_kind: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Value>,
}

impl Connector {
    /// `judged` is the policy's judgement of it, `owner` who answers for it, `authorized_by`
    /// the provider account it is signed in with.
    pub fn new(
        c: &store::Connector,
        judged: &crate::policy::Judgement,
        owner: Option<ConnectorOwner>,
        authorized_by: Option<AuthorizedBy>,
    ) -> Connector {
        // The kind's own fields, `null` when the last report lacked one.
        let pick = |k: &str| Some(c.latest.get(k).cloned().unwrap_or(Value::Null));
        let has = |kinds: &[&str]| kinds.contains(&c.kind.as_str());
        let field = |k: &str, kinds: &[&str]| if has(kinds) { pick(k) } else { None };
        Connector {
            authorized_by,
            browser: field("browser", &["extension"]),
            client: field("client", &["mcp_server"]),
            command: field("command", &["mcp_server"]),
            decision: c.decision.as_ref().map(DecisionView::from),
            devices: c.devices.iter().map(ConnectorDevice::from).collect(),
            directives: None,
            display_name: crate::catalog::display_name(&c.kind, &c.label),
            extension_id: field("extension_id", &["extension"]),
            fingerprint: field("fingerprint", &["token"]),
            first_seen: time(c.first_seen_ms),
            history: None,
            key: c.key.clone(),
            kind: c.kind.clone(),
            label: c.label.clone(),
            last_seen: time(c.last_seen_ms),
            last_used: c.last_used_ms.map(time),
            name: field("name", &["extension", "mcp_server"]),
            origin: None,
            owner,
            presence: None,
            provider: field("provider", &["token"]),
            revocation: c.revocation.as_ref().map(|r| RevocationStatus::new(r, &hostnames(c))),
            revocation_method: None,
            source: field("source", &["token"]),
            status: judged.status.to_owned(),
            status_source: judged.source.clone(),
            token_kind: field("token_kind", &["token"]),
            tool: field("tool", &["tool", "extension"]),
            transport: field("transport", &["mcp_server"]),
            url: field("url", &["mcp_server"]),
        }
    }
}

/// The person who answers for a connector.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorOwner {
    /// False once the identity provider deactivated or deleted them.
    pub active: bool,
    /// `exact` (assigned, or an explicit account mapping) or `inferred` (a rule).
    pub attribution: &'static str,
    pub display_name: Option<String>,
    /// Why an admin assigned them (assigned owners only).
    pub reason: Option<String>,
    /// `assigned` (by an admin) or `attributed` (from the accounts it is under).
    pub source: &'static str,
    pub user_name: String,
}

/// An approval or denial of a connector.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    pub decided_at: String,
    pub decided_by: String,
    /// When an approval lapses (then the policy file decides, and a connector it does not
    /// approve is `unsanctioned`).
    pub expires_at: Option<String>,
    pub reason: Option<String>,
    /// `approved` or `unsanctioned`.
    pub status: String,
}

impl From<&store::Decision> for DecisionView {
    fn from(d: &store::Decision) -> DecisionView {
        DecisionView {
            decided_at: time(d.at_ms),
            decided_by: d.by.clone(),
            expires_at: d.expires_at_ms.map(time),
            reason: d.reason.clone(),
            status: d.status.clone(),
        }
    }
}

/// Where a connector was first seen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Origin {
    /// The sequence number of the observation that first reported it, in the device's
    /// signed batches (`evidence export` holds it).
    pub appeared_seq: u64,
    pub device_id: String,
    pub first_seen: String,
    pub hostname: Option<String>,
    pub os_user: Option<String>,
    /// Where on the device (a path, a process, a browser profile).
    pub place: String,
}

/// How to take a connector away.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevocationMethod {
    /// For credentials: what must still happen at the provider.
    pub at_provider: Option<String>,
    /// What `revoke` has the agents do: `terminate_process`, `block_extension` or
    /// `quarantine_credential`; null when
    /// they cannot act on it (see `note`).
    pub local_action: Option<String>,
    pub note: Option<String>,
    pub provider: Option<String>,
    /// The provider's key-management page, from the detection catalog.
    pub provider_page: Option<String>,
}

/// One entry of a connector's lifecycle.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LifecycleEvent {
    /// Who: `agent`, `admin:NAME`, `person:USER`, `policy`, `system`, `review:ID`.
    pub actor: String,
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub detail: Value,
    /// `discovered`, `owner_assigned`, `owner_cleared`, `approval_requested`, `approved`,
    /// `denied`, `decision_withdrawn`, `approval_expired`, `reviewed`, `revoked`, `removed`, …
    pub event: String,
    pub reason: Option<String>,
}

/// The provider account a connector is signed in with, and whose it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthorizedBy {
    /// E-mail address or login.
    pub account: String,
    /// `corporate` (an `org_domains` domain or the owner's own e-mail), `personal` (a
    /// consumer domain, or another domain once `org_domains` is set) or `unknown` (a bare
    /// login, or no `org_domains` to compare with).
    pub class: String,
    /// Organization or workspace, where the tool records it.
    pub org: Option<String>,
}

impl From<crate::policy::Authorization> for AuthorizedBy {
    fn from(a: crate::policy::Authorization) -> AuthorizedBy {
        AuthorizedBy { account: a.account, class: a.class.as_str().to_owned(), org: a.org }
    }
}

/// Device id → hostname over the devices a connector has been seen on: its directives go
/// only to those.
fn hostnames(c: &store::Connector) -> HashMap<&str, &str> {
    c.devices.iter().map(|d| (d.device_id.as_str(), d.hostname.as_str())).collect()
}

/// A connector on one device under one account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorDevice {
    pub device_id: String,
    pub first_seen: String,
    pub hostname: String,
    pub last_seen: String,
    /// Still there at the last report.
    pub present: bool,
    pub user: Option<String>,
}

impl From<&store::ConnectorDevice> for ConnectorDevice {
    fn from(d: &store::ConnectorDevice) -> ConnectorDevice {
        ConnectorDevice {
            device_id: d.device_id.clone(),
            first_seen: time(d.first_seen_ms),
            hostname: d.hostname.clone(),
            last_seen: time(d.last_seen_ms),
            present: d.present,
            user: d.user.clone(),
        }
    }
}

/// A connector's revocation and what each device made of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevocationStatus {
    /// The latest directive to each device.
    pub devices: Vec<Directive>,
    pub reason: String,
    pub requested_at: String,
    pub requested_by: String,
    /// `pending`, `enforced`, `partial`, …
    pub state: String,
}

impl RevocationStatus {
    /// `hostnames` names the devices the directives went to.
    pub fn new(r: &store::RevocationState, hostnames: &HashMap<&str, &str>) -> RevocationStatus {
        RevocationStatus {
            devices: r.latest.iter().map(|d| Directive::from(d).named(hostnames)).collect(),
            reason: r.revocation.reason.clone(),
            requested_at: time(r.revocation.requested_at_ms),
            requested_by: r.revocation.requested_by.clone(),
            state: r.state().as_str().to_owned(),
        }
    }
}

/// A directive and what became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Directive {
    pub action: String,
    pub connector: String,
    pub detail: Option<String>,
    pub device_id: String,
    pub directive_id: String,
    /// The device's hostname, where the document names devices (a connector's view).
    pub hostname: Option<String>,
    pub expires_at: String,
    pub issued_at: String,
    pub mode: Option<String>,
    pub outcome: Option<String>,
    pub outcome_at: Option<String>,
    /// The observation that reported the outcome, in the device's signed batches.
    pub outcome_seq: Option<u64>,
    pub sent_at: Option<String>,
    pub target: String,
}

impl From<&store::DirectiveRecord> for Directive {
    fn from(d: &store::DirectiveRecord) -> Directive {
        Directive {
            action: d.action.clone(),
            connector: d.connector_key.clone(),
            detail: d.outcome.as_ref().map(|o| o.detail.clone()),
            device_id: d.device_id.clone(),
            directive_id: d.id.clone(),
            hostname: None,
            expires_at: time(d.expires_at_ms),
            issued_at: time(d.issued_at_ms),
            mode: d.outcome.as_ref().map(|o| o.mode.clone()),
            outcome: d.outcome.as_ref().map(|o| o.outcome.as_str().to_owned()),
            outcome_at: opt_time(d.outcome_at_ms),
            outcome_seq: d.outcome_seq,
            sent_at: opt_time(d.sent_at_ms),
            target: d.target.clone(),
        }
    }
}

impl Directive {
    /// With its device's hostname from `hostnames`, when known there.
    pub fn named(mut self, hostnames: &HashMap<&str, &str>) -> Directive {
        self.hostname = hostnames.get(self.device_id.as_str()).map(|h| (*h).to_owned());
        self
    }
}

/// A presence interval: a connector on a device from one observation to another.
/// `appeared_seq` and `disappeared_seq` reference the observations in the device's signed
/// batches that opened and closed it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Presence {
    pub appeared_at: String,
    pub appeared_seq: u64,
    pub connector: String,
    pub disappeared_at: Option<String>,
    pub disappeared_seq: Option<u64>,
    /// What people call the connector (see [`Connector::display_name`]).
    pub display_name: String,
    pub kind: String,
    pub label: String,
    pub user: Option<String>,
    #[serde(rename = "where")]
    pub locus: String,
}

impl From<&store::Presence> for Presence {
    fn from(p: &store::Presence) -> Presence {
        Presence {
            appeared_at: time(p.appeared_at_ms),
            appeared_seq: p.appeared_seq,
            connector: p.connector_key.clone(),
            disappeared_at: opt_time(p.disappeared_at_ms),
            disappeared_seq: p.disappeared_seq,
            display_name: crate::catalog::display_name(&p.kind, &p.label),
            kind: p.kind.clone(),
            label: p.label.clone(),
            user: p.os_user.clone(),
            locus: p.locus.clone(),
        }
    }
}

/// Who an OS account belongs to: the person's userName, and how sure that is.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_name: Option<String>,
    /// `exact`, `inferred` or `unknown`.
    pub attribution: &'static str,
}

/// A presence interval with its owner (a person's triage).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnedPresence {
    pub appeared_at: String,
    pub appeared_seq: u64,
    pub attribution: &'static str,
    pub connector: String,
    pub disappeared_at: Option<String>,
    pub disappeared_seq: Option<u64>,
    /// What people call the connector (see [`Connector::display_name`]).
    pub display_name: String,
    pub kind: String,
    pub label: String,
    pub owner: Option<String>,
    pub user: Option<String>,
    #[serde(rename = "where")]
    pub locus: String,
}

impl OwnedPresence {
    pub fn new(p: &store::Presence, owner: Owner) -> OwnedPresence {
        let Presence {
            appeared_at,
            appeared_seq,
            connector,
            disappeared_at,
            disappeared_seq,
            display_name,
            kind,
            label,
            user,
            locus,
        } = Presence::from(p);
        OwnedPresence {
            appeared_at,
            appeared_seq,
            attribution: owner.attribution,
            connector,
            disappeared_at,
            disappeared_seq,
            display_name,
            kind,
            label,
            owner: owner.user_name,
            user,
            locus,
        }
    }
}

/// A presence interval with its device and owner (a connector's triage).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorPresence {
    pub appeared_at: String,
    pub appeared_seq: u64,
    pub assurance: Option<String>,
    pub attribution: &'static str,
    pub connector: String,
    pub device_id: String,
    pub disappeared_at: Option<String>,
    pub disappeared_seq: Option<u64>,
    /// What people call the connector (see [`Connector::display_name`]).
    pub display_name: String,
    pub hostname: Option<String>,
    pub kind: String,
    pub label: String,
    pub owner: Option<String>,
    pub user: Option<String>,
    #[serde(rename = "where")]
    pub locus: String,
}

impl ConnectorPresence {
    pub fn new(p: &store::Presence, device: Option<&store::Device>, owner: Owner) -> ConnectorPresence {
        let Presence {
            appeared_at,
            appeared_seq,
            connector,
            disappeared_at,
            disappeared_seq,
            display_name,
            kind,
            label,
            user,
            locus,
        } = Presence::from(p);
        ConnectorPresence {
            appeared_at,
            appeared_seq,
            assurance: device.map(|d| d.assurance.clone()),
            attribution: owner.attribution,
            connector,
            device_id: p.device_id.clone(),
            disappeared_at,
            disappeared_seq,
            display_name,
            hostname: device.map(|d| d.hostname.clone()),
            kind,
            label,
            owner: owner.user_name,
            user,
            locus,
        }
    }
}

/// An OS session open at the instant asked about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionAt {
    /// The observation that opened it.
    pub evidence_seq: u64,
    pub host: Option<String>,
    pub os_user: String,
    pub since: String,
    pub terminal: String,
}

impl From<&store::Session> for SessionAt {
    fn from(s: &store::Session) -> SessionAt {
        SessionAt {
            evidence_seq: s.appeared_seq,
            host: s.host.clone(),
            os_user: s.os_user.clone(),
            since: time(s.started_at_ms),
            terminal: s.terminal.clone(),
        }
    }
}

/// A device at an instant: who was logged in and what was present.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceAt {
    /// AI tool sessions active then (from a few minutes before their first record to a few
    /// minutes after their latest), newest first.
    pub activity: Vec<ActivitySession>,
    pub at: String,
    pub device: Device,
    pub present: Vec<Presence>,
    pub sessions: Vec<SessionAt>,
}

/// A session of the person asked about, with how their account was attributed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonSession {
    /// `exact` or `inferred`.
    pub attribution: &'static str,
    pub evidence_seq: u64,
    pub host: Option<String>,
    /// Which rule attributed the account.
    pub how: String,
    pub os_user: String,
    pub since: String,
    pub terminal: String,
}

impl PersonSession {
    pub fn new(s: &store::Session, attribution: &'static str, how: String) -> PersonSession {
        PersonSession {
            attribution,
            evidence_seq: s.appeared_seq,
            host: s.host.clone(),
            how,
            os_user: s.os_user.clone(),
            since: time(s.started_at_ms),
            terminal: s.terminal.clone(),
        }
    }
}

/// A device of the person asked about, at the instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonDevice {
    /// Their AI tool sessions active then on this device, newest first.
    pub activity: Vec<ActivitySession>,
    pub assurance: String,
    pub device_id: String,
    pub hostname: String,
    pub present: Vec<OwnedPresence>,
    pub sessions: Vec<PersonSession>,
}

/// The person asked about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonSummary {
    /// OS account names that are theirs under the identity rules.
    pub accounts: Vec<String>,
    pub active: bool,
    pub deprovisioned_at: Option<String>,
    pub display_name: Option<String>,
    pub user_name: String,
}

impl PersonSummary {
    pub fn new(p: &store::Person, accounts: Vec<String>) -> PersonSummary {
        PersonSummary {
            accounts,
            active: p.active,
            deprovisioned_at: opt_time(p.deprovisioned_at_ms),
            display_name: p.shown_name(),
            user_name: p.user_name.clone(),
        }
    }
}

/// An IdP sign-in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignInEvent {
    pub app: Option<String>,
    pub at: String,
    pub device: Option<String>,
    /// `okta:<uuid>` or `entra:<id>`.
    pub event: String,
    pub ip: Option<String>,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// `okta` or `entra`.
    pub source: &'static str,
}

impl From<&crate::signins::SignIn> for SignInEvent {
    fn from(s: &crate::signins::SignIn) -> SignInEvent {
        SignInEvent {
            app: s.app.clone(),
            at: time(s.at_ms),
            device: s.device.clone(),
            event: s.id.clone(),
            ip: s.ip.clone(),
            outcome: s.outcome,
            source: s.source,
        }
    }
}

/// A person at an instant: their devices, sessions, connectors, and IdP sign-ins in the 12
/// hours before, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonAt {
    pub at: String,
    pub devices: Vec<PersonDevice>,
    pub person: PersonSummary,
    pub signins: Vec<SignInEvent>,
}

/// Directives issued by a revocation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Revoked {
    /// What the agents are asked to do.
    pub action: &'static str,
    pub connector: String,
    pub directives: Vec<Directive>,
}

impl From<&crate::revoke::Issued> for Revoked {
    fn from(i: &crate::revoke::Issued) -> Revoked {
        Revoked {
            action: i.action,
            connector: i.connector.clone(),
            directives: i.directives.iter().map(Directive::from).collect(),
        }
    }
}

/// A device revoked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceRevoked {
    pub device_id: String,
    /// Always true.
    pub revoked: bool,
}

/// Something that needs a look (built by `findings`, which this module does not import:
/// findings consult the register, which answers in these types).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Finding {
    pub device_id: Option<String>,
    /// Its shape depends on the kind: the presence behind it, or the holders of a shared
    /// credential, or a directive's outcome.
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub first_seen: String,
    /// The hostname of `device_id`.
    pub hostname: Option<String>,
    /// `shadow_ai`, `orphaned_connector`, `unowned_connector`, `shared_credential`, …
    pub kind: &'static str,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// A connector key or a device id.
    pub subject: String,
    /// What people call the subject: the connector's display name or the device's hostname.
    pub subject_name: String,
}

/// Counts of a sign-in push.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignInsPushed {
    pub duplicates: usize,
    pub received: usize,
    /// Events that were not sign-ins.
    pub skipped: usize,
    pub stored: usize,
}

/// An API token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub id: String,
    pub last_used_at: Option<String>,
    pub name: String,
    pub revoked_at: Option<String>,
    /// viewer, admin, scim or ingest.
    pub role: String,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

/// An enrollment token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentToken {
    pub created_at: String,
    pub expires_at: String,
    pub id: String,
    pub name: String,
    pub revoked_at: Option<String>,
    /// `active`, `used`, `expired` or `revoked`.
    pub state: &'static str,
    pub used_at: Option<String>,
}

/// A new API token: the only time it is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenCreated {
    pub expires_at: Option<String>,
    pub id: String,
    pub role: &'static str,
    pub token: String,
}

/// A new enrollment token: the only time it is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentTokenCreated {
    pub expires_at: String,
    pub id: String,
    pub token: String,
}

/// An API token revoked, and the tokens it had made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenRevoked {
    /// It was revoked before.
    pub already: bool,
    pub also_revoked: Vec<String>,
    pub id: String,
    pub revoked: bool,
}

/// An enrollment token revoked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentTokenRevoked {
    pub already: bool,
    pub id: String,
    pub revoked: bool,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhoAmI {
    pub role: &'static str,
    pub version: &'static str,
}

/// A dashboard session opened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignedIn {
    pub role: &'static str,
}

/// Server-side pages of the dashboard's tables: `total` match in all, `items` from `offset`,
/// at most `limit` of them. One named type per table, so each is its own schema.
macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            pub limit: usize,
            pub offset: usize,
            /// How many match in all.
            pub total: usize,
        }
    };
}

page!(
    /// A page of devices.
    DevicePage,
    Device
);
page!(
    /// A page of connectors.
    ConnectorPage,
    ConnectorRow
);
page!(
    /// A page of findings.
    FindingPage,
    Finding
);
page!(
    /// A page of people.
    PersonPage,
    PersonRow
);

/// A connector as a dashboard row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorRow {
    /// The admin's decision, if any: `approved` or `unsanctioned`.
    pub decision: Option<String>,
    /// Devices it has been seen on.
    pub devices: usize,
    /// What people call it (see [`Connector::display_name`]).
    pub display_name: String,
    pub first_seen: String,
    pub key: String,
    pub kind: String,
    pub label: String,
    pub last_seen: String,
    /// The latest AI session through it (see [`Connector::last_used`]).
    pub last_used: Option<String>,
    /// The userName of the person who answers for it (see [`Connector::owner`]).
    pub owner: Option<String>,
    /// `assigned`, `attributed`, `shared` or `unknown`.
    pub owner_source: &'static str,
    /// Devices it is present on now.
    pub present_on: usize,
    pub revocation: Option<String>,
    pub status: String,
    pub users: Vec<String>,
}

/// A person as a dashboard row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonRow {
    pub accounts: Vec<String>,
    pub active: bool,
    pub deprovisioned_at: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<String>,
    pub user_name: String,
}

/// A name and how many.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Count {
    pub count: u64,
    pub key: String,
}

/// Devices by when they were last seen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recency {
    pub day: u64,
    pub hour: u64,
    pub never: u64,
    pub older: u64,
    pub week: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceCounts {
    pub by_assurance: Vec<Count>,
    pub by_os: Vec<Count>,
    pub last_seen: Recency,
    pub revoked: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorCounts {
    pub by_kind: std::collections::BTreeMap<String, u64>,
    pub by_status: std::collections::BTreeMap<String, u64>,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingCounts {
    pub by_kind: std::collections::BTreeMap<String, u64>,
    pub total: usize,
}

/// Shadow-AI connectors present on one day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub shadow_ai: usize,
}

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    pub at: String,
    pub connectors: ConnectorCounts,
    pub devices: DeviceCounts,
    pub findings: FindingCounts,
    /// The policy (`DATA_DIR/policy.toml`) has an `[approved]` section: only then are
    /// connectors judged, so only then can anything be shadow AI (short of an admin marking
    /// a connector unsanctioned).
    pub policy_judges: bool,
    /// The last 30 days, oldest first.
    pub trend: Vec<TrendDay>,
}

/// The offboarding playbook and where it stands (the CLI's `offboarding status --json` and
/// `GET /api/v1/offboarding`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffboardingStatus {
    /// `report` or `revoke`: what happens to a deprovisioned person's connectors.
    pub action: &'static str,
    /// When this was computed.
    pub at: String,
    /// How long after the deprovisioning the playbook waits before revoking.
    pub grace: String,
    /// Only these kinds are revoked; null: every kind the agents can revoke.
    pub kinds: Option<Vec<String>>,
    /// People the identity provider deactivated or deleted, most recent first.
    pub people: Vec<OffboardedPerson>,
    /// Connectors nobody has owned for `unowned_after` (none while that rule is off).
    pub unowned: Vec<PlaybookConnector>,
    /// `report` or `revoke`; null while the rule is off.
    pub unowned_action: Option<&'static str>,
    pub unowned_after: Option<String>,
}

/// A deprovisioned person and the connectors they own.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffboardedPerson {
    pub connectors: Vec<PlaybookConnector>,
    /// Deleted through SCIM (else deactivated).
    pub deleted: bool,
    pub deprovisioned_at: String,
    pub display_name: Option<String>,
    /// The end of the grace period: from then on `action = "revoke"` revokes.
    pub grace_until: String,
    pub user_name: String,
}

/// One connector as the playbook sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlaybookConnector {
    /// The playbook's latest recorded step for it (`offboarding_revoked`,
    /// `offboarding_unsupported`, `unowned_revoked`, `unowned_unsupported`), if any.
    pub action_taken: Option<LifecycleEvent>,
    pub display_name: String,
    pub key: String,
    pub kind: String,
    /// What the playbook does about it: `revoke at T`, `revoked at T`, `revoked by WHO`,
    /// `report only: WHY`, `gone from every device`.
    pub playbook: String,
    /// How many devices it is present on now.
    pub present_on: usize,
    /// When the playbook revokes (or revoked) it; null when it does not.
    pub revoke_at: Option<String>,
    /// Its revocation, whoever asked for it, with each device's outcome.
    pub revocation: Option<RevocationStatus>,
    pub status: &'static str,
}

/// A request to approve a connector (`approval list --json`, `GET /api/v1/approval-requests`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalRequest {
    pub connector: String,
    pub decided_at: Option<String>,
    /// Who approved, denied or withdrew it.
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    /// How long the approval is wanted for (`30days`); null: until withdrawn.
    pub duration: Option<String>,
    pub id: i64,
    /// The person the approval is for (userName; their SCIM id when no longer provisioned).
    pub on_behalf_of: String,
    pub reason: String,
    pub requested_at: String,
    /// `person:USER` (an owner's token), `admin:token:NAME`, `admin:sso:ADDRESS`, `cli:USER`.
    pub requested_by: String,
    /// `open`, `approved`, `denied` or `withdrawn`.
    pub state: String,
}

impl ApprovalRequest {
    /// `r` as shown, naming its person by `user_name` (their id when unknown).
    pub fn new(r: &store::ApprovalRequest, user_name: Option<&str>) -> ApprovalRequest {
        ApprovalRequest {
            connector: r.connector_key.clone(),
            decided_at: opt_time(r.decided_at_ms),
            decided_by: r.decided_by.clone(),
            decision_reason: r.decision_reason.clone(),
            duration: r.duration_ms.map(|ms| {
                humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs())).to_string()
            }),
            id: r.id,
            on_behalf_of: user_name.map_or_else(|| r.on_behalf_of.clone(), str::to_owned),
            reason: r.reason.clone(),
            requested_at: time(r.requested_at_ms),
            requested_by: r.requested_by.clone(),
            state: r.state.clone(),
        }
    }
}

/// One entry of the register's audit log (`audit --json`, `GET /api/v1/audit`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Who: `admin:token:NAME`, `admin:sso:ADDRESS`, `cli:USER`, `person:USER`, `policy`,
    /// `system`, `review:CAMPAIGN`.
    pub actor: String,
    pub at: String,
    pub connector: String,
    pub detail: Value,
    /// `owner_assigned`, `approval_requested`, `approved`, `denied`, `approval_withdrawn`,
    /// `decision_withdrawn`, `approval_expired`, …
    pub event: String,
    pub reason: Option<String>,
    /// Storage order: the cursor `?after=` takes.
    pub seq: i64,
}

impl From<&store::ConnectorEvent> for AuditEvent {
    fn from(e: &store::ConnectorEvent) -> AuditEvent {
        AuditEvent {
            actor: e.actor.clone(),
            at: time(e.at_ms),
            connector: e.connector_key.clone(),
            detail: e.detail.clone(),
            event: e.event.clone(),
            reason: e.reason.clone(),
            seq: e.seq,
        }
    }
}

/// How far a recertification campaign has come.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewCounts {
    /// Open items in the admins' queue (no owner, or no manager left to ask).
    pub admin_queue: usize,
    pub answered: usize,
    pub kept: usize,
    pub open: usize,
    pub revoked: usize,
    pub total: usize,
}

/// A recertification campaign (`review list|show --json`, `GET /api/v1/reviews[/{id}]`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewCampaign {
    pub closed_at: Option<String>,
    pub counts: ReviewCounts,
    pub created_at: String,
    /// Who started it (`admin:token:NAME`, `cli:USER`, …).
    pub created_by: String,
    pub due_at: String,
    pub id: String,
    /// Every item (one-campaign view and reports; absent in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ReviewItemView>>,
    /// What happens to an item unanswered at its due date: `revoke` or `escalate`.
    pub rule: String,
    /// `all`, `group:NAME` or `kind:KIND`.
    pub scope: String,
}

impl ReviewCampaign {
    pub fn new(c: &store::Campaign, items: &[store::ReviewItem], views: Option<Vec<ReviewItemView>>) -> Self {
        let with = |d: &str| items.iter().filter(|i| i.decision.as_deref() == Some(d)).count();
        let answered = items.iter().filter(|i| i.decision.is_some()).count();
        ReviewCampaign {
            closed_at: opt_time(c.closed_at_ms),
            counts: ReviewCounts {
                admin_queue: items.iter().filter(|i| i.decision.is_none() && i.reviewer_id.is_none()).count(),
                answered,
                kept: with("keep"),
                open: items.len() - answered,
                revoked: with("revoke"),
                total: items.len(),
            },
            created_at: time(c.created_at_ms),
            created_by: c.created_by.clone(),
            due_at: time(c.due_at_ms),
            id: c.id.clone(),
            items: views,
            rule: c.rule.clone(),
            scope: c.scope.clone(),
        }
    }
}

/// One connector in a campaign and its answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewItemView {
    pub connector_key: String,
    pub decided_at: Option<String>,
    /// `review:CAMPAIGN:person:USERNAME`, `review:CAMPAIGN:admin:…`, `review:CAMPAIGN:deadline`.
    pub decided_by: Option<String>,
    /// `keep`, `revoke`, or null while open.
    pub decision: Option<String>,
    pub display_name: String,
    pub due_at: String,
    /// A kept connector's approval lapses then (null: it does not).
    pub keep_until: Option<String>,
    pub kind: String,
    pub reason: Option<String>,
    /// The reviewer's userName; null: the admins' queue.
    pub reviewer: Option<String>,
    pub reviewer_name: Option<String>,
    /// Why this reviewer: `owner`, `manager` (the owner is gone), `escalated`, `admin`.
    pub why: String,
}

impl ReviewItemView {
    pub fn new(
        i: &store::ReviewItem,
        reviewer: Option<&store::Person>,
        display_name: String,
        kind: String,
    ) -> Self {
        ReviewItemView {
            connector_key: i.connector_key.clone(),
            decided_at: opt_time(i.decided_at_ms),
            decided_by: i.decided_by.clone(),
            decision: i.decision.clone(),
            display_name,
            due_at: time(i.due_at_ms),
            keep_until: opt_time(i.keep_until_ms),
            kind,
            reason: i.reason.clone(),
            reviewer: reviewer.map(|p| p.user_name.clone()),
            reviewer_name: reviewer.and_then(store::Person::shown_name),
            why: i.why.clone(),
        }
    }
}

/// A reviewer's page (`GET /api/v1/review/me` with their link's token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewerPage {
    pub campaign: ReviewCampaign,
    pub items: Vec<ReviewerItem>,
    pub reviewer: String,
    pub reviewer_name: Option<String>,
}

/// One item on a reviewer's page, with the connector's register entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewerItem {
    pub connector: Connector,
    pub item: ReviewItemView,
}

/// A campaign's decisions signed by the collector (`review report`): verify offline with
/// `sightline-server review verify`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewReport {
    /// Hex SPKI of the collector's signing key.
    pub collector_signing_key: String,
    /// The signed JSON text: `{"campaign": {... "items": [...]}, "exported_at": ...}`.
    pub manifest: String,
    /// Hex DER ECDSA P-256 over `sightline.v1.review-report\0` || manifest.
    pub manifest_signature: String,
    /// `sightline.review-report.v1`.
    pub schema: String,
}

/// A message for the mail system to send.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewReminder {
    pub campaign: String,
    pub due_at: String,
    /// `start`, `due_soon` or `escalated`.
    pub kind: String,
    /// The reviewer's own page; its token is in the fragment.
    pub link: String,
    /// Acknowledge with this.
    pub seq: i64,
    pub subject: String,
    pub text: String,
    /// The reviewer's e-mail address.
    pub to: String,
}

impl From<&store::Reminder> for ReviewReminder {
    fn from(r: &store::Reminder) -> Self {
        ReviewReminder {
            campaign: r.campaign_id.clone(),
            due_at: time(r.due_at_ms),
            kind: r.kind.clone(),
            link: r.link.clone(),
            seq: r.seq,
            subject: r.subject.clone(),
            text: r.body.clone(),
            to: r.recipient.clone(),
        }
    }
}

/// Pending reminders (`GET /api/v1/review/reminders`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewReminders {
    /// Pass as `after` to read on.
    pub next_after: i64,
    pub reminders: Vec<ReviewReminder>,
}

/// What an acknowledgement marked sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemindersAcked {
    pub acknowledged: u64,
}

/// One AI tool session from the tool's own records (metadata only): when, on which device,
/// under which OS account and person, inside which OS session, through which connectors
/// (`activity` on the CLI, `GET /api/v1/activity`, the dashboard's activity page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivitySession {
    /// The provider account the tool's record names, classified as on connectors; null
    /// where the record names none.
    pub account: Option<AuthorizedBy>,
    /// What it was used through: the tool, each MCP server it called, the credentials the
    /// tool was configured with.
    pub connectors: Vec<ActivityConnector>,
    pub device_id: String,
    /// The latest record read so far.
    pub ended_at: String,
    /// The observation of the latest report of this session.
    pub evidence_seq: u64,
    /// Which record format it came from (`claude_code_jsonl`, `codex_rollout`, `gemini_chat`,
    /// `aider_history`).
    pub format: String,
    pub hostname: Option<String>,
    /// Per MCP server: calls and tool names (never arguments).
    pub mcp: Vec<McpUse>,
    pub models: Vec<String>,
    /// The OS login session that was open on the device under `os_user` when it started.
    pub os_session: Option<SessionAt>,
    /// The OS account whose home holds the record.
    pub os_user: Option<String>,
    /// The person `os_user` is attributed to on that device at `started_at`.
    pub person: Option<ActivityPerson>,
    /// `fp:<fingerprint>` of the project directory, or its path where the agent is set to
    /// `activity_paths = "plain"`.
    pub project: Option<String>,
    pub prompts: u32,
    /// The tool's own session id.
    pub session_id: String,
    pub started_at: String,
    pub tool: String,
    pub tool_calls: u32,
}

/// A connector a session used.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityConnector {
    /// The connector's key (`tool:claude_code`, `mcp:github:…`, `token:…`); for use that
    /// matches no connector seen on the device, `unknown:tool:<id>` or `unknown:mcp:<server>`.
    pub key: String,
    /// `tool`, `mcp_server` or `token`.
    pub kind: String,
    /// False: no connector seen on the device matches — use of an unknown AI tool.
    pub known: bool,
    /// What people call it.
    pub label: String,
    /// The connector's status in the register at answer time (`approved`, `unsanctioned`,
    /// `revoked`, …); null for an unknown one.
    pub status: Option<String>,
}

/// Use of one MCP server in a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct McpUse {
    pub calls: u32,
    pub server: String,
    pub tools: Vec<String>,
}

/// Whom a session is attributed to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityPerson {
    /// `exact` or `inferred`, as in triage.
    pub attribution: &'static str,
    /// Whether the person was deprovisioned when the session ran.
    pub deprovisioned: bool,
    pub display_name: Option<String>,
    pub user_name: String,
}

/// The answer to an activity query.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityPage {
    /// What was asked: the filters as given, with `since`/`until` resolved to RFC 3339.
    pub query: ActivityQuery,
    /// Newest first.
    pub sessions: Vec<ActivitySession>,
    /// Sessions matching in all (the page may hold fewer).
    pub total: u64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ActivityQuery {
    pub connector: Option<String>,
    pub device: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub user: Option<String>,
}
