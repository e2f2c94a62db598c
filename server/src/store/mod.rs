//! Storage. SQLite is the embedded default; PostgreSQL (`serve --database postgres://…`) lets
//! any number of stateless collector replicas share one database.
//!
//! A component asks for the role it uses ([`IngestStore`], [`EnrollmentStore`],
//! [`DeviceStore`], [`AuthStore`], [`PeopleStore`], [`ReadModel`], [`DirectiveStore`],
//! [`ExportStore`], [`RetentionStore`], [`ActivityStore`]); [`Store`] is all of them, for wiring only.
//!
//! What the backends share is written once: [`plan`] decides what a batch stores (the chain
//! verdict and the presence rules), `rows` maps result rows to records, `sql` is the small
//! executor both backends implement, and the role implementations over it (`enrollment`,
//! `auth`, `devices`, `people`, `directives`, `read`) hold every statement the two dialects
//! agree on, asking the dialect where they differ. Each backend keeps only what is its own:
//! connections and transactions, its schema, writing an ingest plan, its export order and
//! retention. `tests/store_conformance.rs` holds both to the same behaviour.
//!
//! Methods are synchronous: callers on the async runtime go through `spawn_blocking`.
//!
//! **Invariant:** [`IngestStore::ingest`] decides acceptance (sequence continues the head,
//! hash chain links) and stores in one transaction, so two streams for one device can never
//! both append at the same position.

mod activity;
mod approvals;
mod auth;
mod devices;
mod directives;
mod enrollment;
mod people;
pub(crate) mod plan;
pub mod postgres;
mod read;
mod register;
mod review;
mod rows;
mod schema;
mod sql;
pub mod sqlite;

use serde_json::Value;

pub use activity::{
    ActivityFilter, ActivityRecord, ActivityReport, ActivityStore, BoundConnector, McpUseRecord,
    PrunedActivity,
};

use crate::domain::{Change, ObservationKind, Outcome, RevocationProgress};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// No database connection could be had (pool exhausted past its wait, or connect failed).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("enrollment token is not valid")]
    TokenUnknown,
    #[error("enrollment token has expired")]
    TokenExpired,
    #[error("enrollment token was already used")]
    TokenUsed,
    #[error("enrollment token was revoked")]
    TokenRevoked,
    #[error("unknown device {0}")]
    UnknownDevice(String),
    #[error("device {0} is revoked")]
    Revoked(String),
    /// A uniqueness rule would be broken (a SCIM userName already taken).
    #[error("{0}")]
    Conflict(String),
    /// A write names something that is not there (a SCIM group member who is not a user).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A pending enrollment between `Begin` and `Complete`. Kept in the database so it survives
/// a collector restart (or, later, a switch of replica) between the two calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub nonce: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub expires_at_ms: i64,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    pub key_backend: String,
    pub device_key_spki: Vec<u8>,
    pub tpm: Option<TpmChallenge>,
}

/// The TPM half of a pending enrollment: what the answer is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmChallenge {
    pub secret: Vec<u8>,
    pub ek_public: Vec<u8>,
    pub ak_public: Vec<u8>,
    pub device_key_public: Vec<u8>,
    pub ek_trusted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    pub key_backend: String,
    pub assurance: String,
    pub key_spki: Vec<u8>,
    pub cert_sha256: String,
    /// A renewed certificate not yet used (see [`DeviceStore::stage_certificate`]).
    pub next_cert_sha256: Option<String>,
    pub enrolled_at_ms: i64,
    pub last_seen_ms: Option<i64>,
    /// When the device last gave signed claims at the start of a stream.
    pub last_attested_ms: Option<i64>,
    /// The hardware its key lives in (TPM: see `attest::ek_identity`).
    pub hardware_id: Option<String>,
    /// Device clock minus collector clock at its last attestation (from the signed claims).
    pub clock_skew_ms: Option<i64>,
    pub seq_head: u64,
    pub head_hash: [u8; 32],
    pub revoked_at_ms: Option<i64>,
    pub users: Vec<String>,
}

/// The connector an observation is evidence of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorRef {
    /// Stable identity of the access path (`tool:ollama`, `extension:<id>`, `token:<fp>`, `mcp:<name>:<hash>`).
    pub key: String,
    pub kind: &'static str,
    /// Catalog id, provider or name: what a person calls it.
    pub label: String,
    /// Who the observation attributes it to on the device (OS account).
    pub user: Option<String>,
    /// Where on the device (path, path#locator, pid): two copies of one connector on one
    /// device, such as the same extension in two browser profiles, are present separately.
    pub locus: String,
}

/// An observation in storage terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRecord {
    pub seq: u64,
    pub observed_at_ms: i64,
    pub change: Change,
    pub kind: ObservationKind,
    pub connector: Option<ConnectorRef>,
    /// For an OS login session: who, where, since when.
    pub session: Option<SessionRef>,
    /// For a directive outcome: which directive, and what the agent did.
    pub directive: Option<OutcomeRef>,
    /// The observation as a JSON object, serialised once at the edge.
    pub data: String,
}

/// What an agent reported doing with a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRef {
    pub directive_id: String,
    pub outcome: Outcome,
    pub detail: String,
    pub mode: String,
}

/// A connector an admin revoked: a standing decision, not a one-off command. Devices where
/// it is present get a directive; a device where it appears again later gets a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub connector_key: String,
    pub requested_at_ms: i64,
    pub requested_by: String,
    pub reason: String,
}

/// A signed directive to one device, as issued, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveRecord {
    /// Issue order; the delivery cursor.
    pub seq: i64,
    pub id: String,
    pub device_id: String,
    pub connector_key: String,
    /// `terminate_process`, `block_extension`, `quarantine_credential`.
    pub action: String,
    pub target: String,
    /// The signed `DirectiveBody` and the collector's signature, sent exactly as stored.
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    /// The device's sequence head when it was issued: a presence that opened after it is
    /// news the directive did not cover.
    pub issued_at_seq: u64,
    pub sent_at_ms: Option<i64>,
    pub outcome: Option<OutcomeRef>,
    pub outcome_at_ms: Option<i64>,
    /// The observation that reported the outcome, in the device's signed batches.
    pub outcome_seq: Option<u64>,
}

impl DirectiveRecord {
    /// Done, and the connector is gone or blocked there.
    pub fn effective(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| o.outcome.settles_revocation())
    }
}

/// Where a revocation stands: from the latest directive to each device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationState {
    pub revocation: Revocation,
    /// The latest directive to each device it was issued to.
    pub latest: Vec<DirectiveRecord>,
}

impl RevocationState {
    pub fn state(&self) -> RevocationProgress {
        if self.latest.iter().any(|d| d.outcome.is_none()) {
            RevocationProgress::Pending
        } else if self.latest.iter().all(DirectiveRecord::effective) {
            RevocationProgress::Enforced
        } else {
            RevocationProgress::Incomplete
        }
    }
}

/// An OS login session an observation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    pub os_user: String,
    pub terminal: String,
    pub host: Option<String>,
    pub started_at_ms: i64,
}

/// A login session on a device, as an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub device_id: String,
    pub os_user: String,
    pub terminal: String,
    pub host: Option<String>,
    pub started_at_ms: i64,
    /// When the agent saw it end; None while open.
    pub ended_at_ms: Option<i64>,
    pub appeared_seq: u64,
}

/// Device facts carried inside a batch (DeviceInventory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    pub users: Vec<String>,
}

/// A verified batch ready to store.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub device_id: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub received_at_ms: i64,
    pub observations: Vec<ObservationRecord>,
    pub inventory: Option<Inventory>,
}

/// A group's answers, or, when its one transaction failed (so nothing of it was written), each
/// item stored on its own: one bad batch or record gets its own error and the rest are kept.
/// How both backends implement [`IngestStore::ingest_many`] and [`IngestStore::record_claims_many`].
pub(crate) fn or_each_alone<I, T>(
    what: &'static str,
    items: &[I],
    grouped: Result<Vec<Result<T>>>,
    alone: impl Fn(&I) -> Result<T>,
) -> Vec<Result<T>> {
    grouped.unwrap_or_else(|e| {
        tracing::warn!(error = %e, n = items.len(), what, "Group commit failed; storing one at a time.");
        items.iter().map(alone).collect()
    })
}

/// A stored batch, exactly as the device signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub first_seq: u64,
    pub last_seq: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub received_at_ms: i64,
}

/// Signed device claims from the start of one stream, verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimsRecord {
    pub device_id: String,
    pub at_ms: i64,
    pub stream_nonce: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    /// The claims' own time minus `at_ms`: how far the device's clock is off.
    pub clock_skew_ms: Option<i64>,
    /// The catalog the claims say the device runs.
    pub catalog: CatalogStatus,
    pub claims: Value,
}

/// An HTTP API token as listed: everything but the token (which is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub token_hash: Vec<u8>,
    pub role: String,
    pub name: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// To the minute: a request updates it at most once a minute.
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// `cli:USER`, or `token:ID` for one made through the API by another token.
    pub created_by: String,
}

/// An enrollment token as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTokenInfo {
    pub token_hash: Vec<u8>,
    pub name: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl StoreError {
    /// Whether the database could not be reached (down, restarting, out of connections),
    /// as opposed to refusing the operation: callers should retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_some_and(|c| {
                        let c = c.code();
                        // 08: connection exceptions; 57P0x: the server is shutting down or starting.
                        c.starts_with("08") || c.starts_with("57P")
                    })
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
            ),
            _ => false,
        }
    }
}

/// What ingest decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored {
        head: u64,
        head_hash: [u8; 32],
    },
    /// Already stored with the same hash: acknowledge, store nothing.
    Duplicate {
        head: u64,
        head_hash: [u8; 32],
    },
    /// `first_seq` does not continue the device's sequence.
    OutOfOrder {
        expected: u64,
    },
    /// `prev_batch_hash` is not the hash of the last stored batch.
    BrokenChain,
    /// Same sequence numbers as a stored batch, different contents.
    Conflict,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorDevice {
    pub device_id: String,
    pub hostname: String,
    pub user: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Whether it is on the device now (an open presence interval), as far as the device's
    /// last report says.
    pub present: bool,
}

/// A person as the identity provider provisioned them (SCIM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    pub id: String,
    /// Usually the work email or UPN; unique among people not deleted (case-insensitive).
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// Lower-cased: what attribution matches OS accounts against.
    pub emails: Vec<String>,
    /// The SCIM name and emails as the IdP sent them (round-tripped, not matched on).
    pub profile: Profile,
    /// The enterprise extension's manager: the id of another person.
    pub manager_id: Option<String>,
    pub department: Option<String>,
    pub employee_number: Option<String>,
    /// The SCIM groups the person is a member of (read-only: set through the groups).
    pub groups: Vec<GroupRef>,
    pub active: bool,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
    /// When the IdP deactivated or deleted them: the offboarding signal.
    pub deprovisioned_at_ms: Option<i64>,
    /// Deleted through SCIM: kept on record, no longer visible to the IdP.
    pub deleted_at_ms: Option<i64>,
}

/// A person's SCIM `name` and `emails`, kept as sent (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Profile {
    pub name: PersonName,
    pub emails: Vec<Email>,
}

/// SCIM's `name` complex attribute (RFC 7643 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PersonName {
    pub formatted: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub honorific_prefix: Option<String>,
    pub honorific_suffix: Option<String>,
}

impl PersonName {
    pub fn is_empty(&self) -> bool {
        *self == PersonName::default()
    }
}

/// One SCIM email: the address as sent, its type (`work`, `home`, …), primary flag and label.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Email {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// As sent: absent and `false` are kept apart so the IdP reads back what it wrote.
    pub primary: Option<bool>,
    pub display: Option<String>,
}

/// A SCIM group as seen from one of its members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
}

/// A SCIM group: people provisioned together, which `[approved.groups.NAME]` in the policy
/// names by `display_name` (compared case-insensitively; unique the same way).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScimGroup {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member person ids; on read each comes with the person's display name (or userName).
    pub members: Vec<GroupMember>,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMember {
    pub id: String,
    /// Filled on read; ignored on write.
    pub display: Option<String>,
}

/// One stretch of a connector's presence on a device: presence is an interval, not a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub device_id: String,
    pub connector_key: String,
    pub kind: String,
    pub label: String,
    pub locus: String,
    pub os_user: Option<String>,
    pub appeared_at_ms: i64,
    /// None while present.
    pub disappeared_at_ms: Option<i64>,
    /// The observations that opened and closed it, as references into the signed batches.
    pub appeared_seq: u64,
    pub disappeared_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub key: String,
    pub kind: String,
    pub label: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The most recent observation's attributes (extension id, fingerprint, …).
    pub latest: Value,
    pub devices: Vec<ConnectorDevice>,
    /// How many devices it was ever seen on (for summaries, whose `devices` holds only the
    /// ones it is present on now).
    pub seen_on: usize,
    /// Set once an admin revoked it.
    pub revocation: Option<RevocationState>,
    /// An admin's decision that overrides the policy file (`approved` or `unsanctioned`).
    pub decision: Option<Decision>,
    /// The person an admin made answerable for it (else the owner is the person attribution
    /// finds for the accounts it is present under).
    pub owner: Option<OwnerAssignment>,
    /// The latest record of any AI tool session bound to it (see `store::activity`).
    pub last_used_ms: Option<i64>,
}

/// An admin's status decision for one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: String,
    pub by: String,
    pub at_ms: i64,
    /// Why, in the decider's words.
    pub reason: Option<String>,
    /// An approval that lapses: after this instant the decision no longer counts (the policy
    /// file decides again, and a connector it does not approve is `unsanctioned`).
    pub expires_at_ms: Option<i64>,
}

impl Decision {
    /// Whether the decision still stands at `now_ms`.
    pub fn in_force(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// A business owner an admin assigned to a connector, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerAssignment {
    /// The person's SCIM id.
    pub person_id: String,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

/// One entry of a connector's lifecycle and audit history: every decision about it (owner
/// assigned, approval requested, approved, denied, withdrawn, expired, reviewed, revoked…)
/// with who made it and when. Stored, never edited.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorEvent {
    /// Storage order (assigned by the store; ignored when recording).
    pub seq: i64,
    pub connector_key: String,
    pub at_ms: i64,
    /// What happened: `owner_assigned`, `approval_requested`, `approved`, …
    pub event: String,
    /// Who: `admin:<token name>`, `person:<userName>`, `policy`, `system`.
    pub actor: String,
    pub reason: Option<String>,
    /// Anything else the event needs (an expiry, a campaign, a device).
    pub detail: Value,
}

impl ConnectorEvent {
    pub fn new(
        connector_key: &str,
        at_ms: i64,
        event: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> ConnectorEvent {
        ConnectorEvent {
            seq: 0,
            connector_key: connector_key.to_owned(),
            at_ms,
            event: event.to_owned(),
            actor: actor.to_owned(),
            reason: reason.map(str::to_owned),
            detail: Value::Object(Default::default()),
        }
    }

    pub fn with_detail(mut self, detail: Value) -> ConnectorEvent {
        self.detail = detail;
        self
    }
}

/// A recertification campaign: every connector in `scope` goes to a reviewer, who keeps or
/// revokes it by `due_at_ms`; what is unanswered then follows `rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    /// `all`, `group:NAME` or `kind:KIND`, as given.
    pub scope: String,
    /// `revoke` or `escalate`.
    pub rule: String,
    pub due_at_ms: i64,
    pub created_by: String,
    pub created_at_ms: i64,
    /// When its last item was answered.
    pub closed_at_ms: Option<i64>,
    /// Where reviewers' links point: the dashboard's origin (`https://host:port`).
    pub link_base: String,
}

/// One connector in a campaign, for one reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewItem {
    /// Storage id (assigned by the store).
    pub id: i64,
    pub campaign_id: String,
    pub connector_key: String,
    /// The reviewer's SCIM id; None: the admins' queue.
    pub reviewer_id: Option<String>,
    /// Why this reviewer: `owner`, `manager` (the owner is gone), `escalated` (the previous
    /// reviewer let the due date pass) or `admin` (nobody else to ask).
    pub why: String,
    /// When the current reviewer was given it.
    pub assigned_at_ms: i64,
    pub due_at_ms: i64,
    /// `keep` or `revoke` once answered.
    pub decision: Option<String>,
    pub keep_until_ms: Option<i64>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
}

/// The answer to a review item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemDecision {
    pub decision: String,
    pub keep_until_ms: Option<i64>,
    pub reason: Option<String>,
    pub decided_by: String,
    pub decided_at_ms: i64,
}

/// A message for the mail system: a reviewer's link and what is asked of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reminder {
    /// The outbox cursor (assigned by the store).
    pub seq: i64,
    pub campaign_id: String,
    pub reviewer_id: String,
    /// `start`, `due_soon` or `escalated`.
    pub kind: String,
    pub due_at_ms: i64,
    pub recipient: String,
    pub subject: String,
    /// The text to send, link included; emptied (with `link`) once acknowledged.
    pub body: String,
    pub link: String,
    pub created_at_ms: i64,
    pub sent_at_ms: Option<i64>,
}

/// Which devices a device page shows, and in what order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePage {
    /// Substring of the hostname or id.
    pub q: Option<String>,
    pub assurance: Option<String>,
    /// `hostname`, `os`, `assurance`, `last_seen`, `enrolled`.
    pub sort: String,
    pub desc: bool,
    pub limit: usize,
    pub offset: usize,
}

/// A stored observation as an export reads it, with its device's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportObservation {
    /// The export cursor: insertion order.
    pub rowid: i64,
    pub device_id: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub seq: u64,
    pub observed_at_ms: i64,
    pub received_at_ms: i64,
    pub change: Change,
    pub kind: ObservationKind,
    pub assurance: String,
    pub data: Value,
    /// The connector the observation is about, if any.
    pub connector_key: Option<String>,
    /// The presence interval this observation opened or closed, if it did: a sighting of
    /// something already present has none.
    pub edge: Option<PresenceEdge>,
    /// For a device inventory: the device's previous one, if any.
    pub previous: Option<Value>,
}

/// One end of a presence interval, as the observation at that end sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEdge {
    pub locus: String,
    /// The sequence number of the observation that opened the interval: with the device
    /// and connector, the interval's identity.
    pub appeared_seq: u64,
    /// Whether this observation closed the interval (else it opened it).
    pub closes: bool,
}

/// Fleet counts for the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub devices: u64,
    pub revoked: u64,
    pub by_assurance: Vec<(String, u64)>,
    pub by_os: Vec<(String, u64)>,
    /// Last seen: within an hour, a day, a week, longer ago, never.
    pub last_seen: [u64; 5],
}

/// Everything the collector persists, for wiring only: a component asks for the role it
/// uses ([`IngestStore`], [`ReadModel`], …), which `&dyn Store` coerces to.
pub trait Store:
    IngestStore
    + EnrollmentStore
    + DeviceStore
    + AuthStore
    + PeopleStore
    + ReadModel
    + DirectiveStore
    + RegisterStore
    + ApprovalStore
    + ReviewStore
    + ExportStore
    + RetentionStore
    + ActivityStore
{
}

impl<T> Store for T where
    T: IngestStore
        + EnrollmentStore
        + DeviceStore
        + AuthStore
        + PeopleStore
        + ReadModel
        + DirectiveStore
        + RegisterStore
        + ApprovalStore
        + ReviewStore
        + ExportStore
        + RetentionStore
        + ActivityStore
{
}

/// Storing verified batches and stream claims (the gRPC edge and its writer).
pub trait IngestStore: Send + Sync {
    /// Stores a stream's verified claims and updates the device facts they carry.
    fn record_claims(&self, claims: &ClaimsRecord) -> Result<()>;

    /// Decides and stores one batch in one transaction (the invariant in the module doc).
    fn ingest(&self, batch: &IngestBatch) -> Result<IngestOutcome>;

    /// Stores a group of batches, in order, committing them together where the backend can
    /// (one durable commit for the group); one result per batch, as [`IngestStore::ingest`] would
    /// give it. A batch of the same device later in the group sees the earlier one stored.
    fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<Result<IngestOutcome>> {
        batches.iter().map(|b| self.ingest(b)).collect()
    }

    /// Records the claims of many streams, committed together where the backend can; one
    /// result per record, as [`IngestStore::record_claims`] would give it.
    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<Result<()>> {
        claims.iter().map(|c| self.record_claims(c)).collect()
    }

    /// How many groups may be stored at once (ingest writer lanes).
    fn ingest_lanes(&self) -> usize {
        1
    }
}

/// Enrolling devices: enrollment tokens, pending challenges, and the atomic token-for-device exchange.
pub trait EnrollmentStore: Send + Sync {
    fn create_token(
        &self,
        token_hash: &[u8],
        name: &str,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()>;

    /// Every enrollment token ever created, oldest first.
    fn enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>>;

    /// Revokes an enrollment token; false if it was already revoked (or is unknown).
    fn revoke_enrollment_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool>;

    /// Checks a token without consuming it.
    fn check_token(&self, token_hash: &[u8], now_ms: i64) -> Result<()>;

    fn put_challenge(&self, c: &Challenge) -> Result<()>;

    /// Removes and returns a challenge: each can be answered once.
    fn take_challenge(&self, id: &str) -> Result<Option<Challenge>>;

    /// Consumes the token and creates the device, atomically. `hardware` is the identity of
    /// the hardware the key lives in, first the one to record, then older spellings of the
    /// same identity (empty: no hardware). If any of them is already known, that record is
    /// updated instead (its id and chain kept, the identity rewritten to the first) and
    /// returned; a revoked one is refused.
    fn complete_enrollment(
        &self,
        token_hash: &[u8],
        device: &Device,
        hardware: &[String],
        now_ms: i64,
    ) -> Result<Device>;
}

/// Enrolled devices: lookup, certificates, revocation.
pub trait DeviceStore: Send + Sync {
    fn device_by_hardware_id(&self, hardware_id: &str) -> Result<Option<Device>>;

    fn device(&self, id: &str) -> Result<Option<Device>>;

    /// The device holding this certificate, current or pending.
    fn device_by_cert(&self, cert_sha256: &str) -> Result<Option<Device>>;

    fn revoke_device(&self, id: &str, now_ms: i64) -> Result<()>;

    /// Records a renewed client certificate as pending: accepted alongside the current one
    /// until it is first used (see [`DeviceStore::promote_certificate`]).
    fn stage_certificate(&self, device_id: &str, new_sha256: &str) -> Result<()>;

    /// Makes a pending certificate current; the previous one is no longer accepted.
    fn promote_certificate(&self, device_id: &str, sha256: &str) -> Result<()>;

    fn devices(&self) -> Result<Vec<Device>>;

    /// Records which catalog a device runs and why it refused the last update (None: it
    /// took it), as its agent said on an attested stream.
    fn record_catalog_status(&self, device_id: &str, status: &CatalogStatus, at_ms: i64) -> Result<()>;

    /// Every device's catalog status, by hostname.
    fn catalog_statuses(&self) -> Result<Vec<DeviceCatalog>>;
}

/// Which detection catalog a device runs, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogStatus {
    /// None: the agent has not said (it predates catalog updates).
    pub version: Option<u64>,
    /// Why the last update it was sent was refused.
    pub error: Option<String>,
}

/// A device's catalog status as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCatalog {
    pub device_id: String,
    pub hostname: String,
    pub status: CatalogStatus,
    /// When the agent last said it.
    pub at_ms: Option<i64>,
}

/// HTTP API tokens and dashboard sessions (hashes only).
/// OpenID Connect logins in progress at once, across every replica.
pub const MAX_PENDING_LOGINS: i64 = 10_000;

pub trait AuthStore: Send + Sync {
    /// Stores an HTTP API token (by hash) with its role, expiring at `expires_at_ms` if given.
    fn create_api_token(
        &self,
        token_hash: &[u8],
        role: &str,
        name: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        created_by: &str,
    ) -> Result<()>;

    /// Stores an `owner` API token bound to the person `person_id` (SCIM id).
    fn create_owner_api_token(
        &self,
        token_hash: &[u8],
        person_id: &str,
        name: &str,
        now_ms: i64,
        expires_at_ms: Option<i64>,
        created_by: &str,
    ) -> Result<()>;

    /// The person an API token is bound to (owner tokens), if any.
    fn api_token_person(&self, token_hash: &[u8]) -> Result<Option<String>>;

    /// The API token a dashboard session was opened with.
    fn session_token(&self, session_hash: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Every API token ever created, oldest first.
    fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>>;

    /// Revokes an API token and ends its dashboard sessions; false if it was already revoked.
    fn revoke_api_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool>;

    /// The role of a live API token (not revoked, not expired at `now_ms`); None otherwise.
    /// Records the use, at most once a minute (a dashboard makes many requests a minute).
    fn api_token_role(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        Ok(self.api_token_caller(token_hash, now_ms)?.map(|(role, _)| role))
    }

    /// [`AuthStore::api_token_role`] with who the token stands for in audit records:
    /// `token:NAME` (or `token:ID` for an unnamed one).
    fn api_token_caller(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>>;

    /// A dashboard session: stores its hash with the API token it was opened with.
    fn create_session(
        &self,
        session_hash: &[u8],
        token_hash: &[u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()>;

    /// The role behind a live session (its token still valid), if any.
    fn session_role(&self, session_hash: &[u8], now_ms: i64) -> Result<Option<String>> {
        Ok(self.session_caller(session_hash, now_ms)?.map(|(role, _)| role))
    }

    /// [`AuthStore::session_role`] with who it stands for: the token's `token:NAME`, or
    /// `sso:ADDRESS` for a single sign-on session.
    fn session_caller(&self, session_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>>;

    /// Ends a dashboard session, whether an API token or an OpenID Connect sign-in opened it.
    fn delete_session(&self, session_hash: &[u8]) -> Result<()>;

    /// An OpenID Connect login in progress, keyed by the hash of the browser cookie it is
    /// bound to. Expired ones are swept here. False (nothing stored) when
    /// [`MAX_PENDING_LOGINS`] are already in progress: anyone can start a login, and the
    /// table must not grow with a flood of them.
    fn create_oidc_login(
        &self,
        binding_hash: &[u8],
        login: &PendingLogin,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool>;

    /// Takes (reads and deletes, so it is used once) the login bound to this cookie hash,
    /// if it has not expired at `now_ms`.
    fn take_oidc_login(&self, binding_hash: &[u8], now_ms: i64) -> Result<Option<PendingLogin>>;

    /// A dashboard session opened through OpenID Connect: the provider's subject, the
    /// address shown for it, and the role its groups mapped to.
    fn create_sso_session(
        &self,
        session_hash: &[u8],
        who: &SsoIdentity,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()>;

    /// Ends every OpenID Connect session of `subject`; how many there were.
    fn end_sso_sessions(&self, subject: &str) -> Result<u64>;

    /// Ends every OpenID Connect session signed in under one of these addresses (any case):
    /// an offboarded person's open dashboard sessions; how many there were.
    fn end_sso_sessions_of(&self, addresses: &[String]) -> Result<u64>;
}

/// What the callback of an OpenID Connect login must match: the `state` sent out, the
/// `nonce` the ID token must carry, and the PKCE verifier the code is redeemed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// Who signed in through OpenID Connect, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoIdentity {
    /// `sub` of the ID token: the provider's stable id for the person.
    pub subject: String,
    /// `email` (or `preferred_username`, or the subject): what logs and people see.
    pub email: String,
    /// `viewer` or `admin`.
    pub role: String,
}

/// People as the identity provider provisions them (SCIM), and their sign-ins.
pub trait PeopleStore: Send + Sync {
    /// Provisions a person; `Conflict` if the userName is taken.
    fn create_person(&self, p: &Person) -> Result<()>;

    /// Replaces a person's record (by id); `Conflict` if a new userName is taken.
    fn update_person(&self, p: &Person) -> Result<()>;

    fn person(&self, id: &str) -> Result<Option<Person>>;

    /// The person (not deleted) with this userName, compared case-insensitively.
    fn person_by_user_name(&self, user_name: &str) -> Result<Option<Person>>;

    /// Every person not deleted, oldest first.
    fn people(&self) -> Result<Vec<Person>>;

    /// Every person ever provisioned, deleted ones included (they still own what they left).
    fn people_all(&self) -> Result<Vec<Person>>;

    /// Creates a SCIM group; `Conflict` if its displayName is taken or a member is unknown.
    fn create_group(&self, g: &ScimGroup) -> Result<()>;

    /// Replaces a group's name, externalId and members (by id); `Conflict` as for create.
    fn update_group(&self, g: &ScimGroup) -> Result<()>;

    fn group(&self, id: &str) -> Result<Option<ScimGroup>>;

    /// Every group, oldest first, with its members.
    fn groups(&self) -> Result<Vec<ScimGroup>>;

    /// Deletes a group and its memberships; whether it existed.
    fn delete_group(&self, id: &str) -> Result<bool>;

    /// Every person (deleted ones included) with a userName, email, or local part of either
    /// equal to one of `keys` (case-insensitive): all who could be behind those names.
    fn people_by_keys(&self, keys: &[String]) -> Result<Vec<Person>>;

    /// Stores IdP sign-ins; ones already stored (same IdP id) are skipped. Returns how many
    /// were new.
    fn add_signins(&self, signins: &[crate::signins::SignIn]) -> Result<usize>;

    /// Sign-ins of these userNames in `[from_ms, to_ms]`, newest first.
    fn signins_for(
        &self,
        user_names: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<crate::signins::SignIn>>;
}

/// What the collector knows, as queries, findings, views and the dashboard read it.
pub trait ReadModel: Send + Sync {
    /// One round trip to the database: the readiness the gRPC health service reports.
    fn ping(&self) -> Result<()>;

    fn connectors(&self) -> Result<Vec<Connector>>;

    /// Connectors seen on one device, with that device's first/last sighting.
    fn device_connectors(&self, device_id: &str) -> Result<Vec<Connector>>;

    fn count_observations(&self, device_id: &str) -> Result<u64>;

    /// What was on the device at `at_ms`: every presence interval containing that instant.
    fn present_at(&self, device_id: &str, at_ms: i64) -> Result<Vec<Presence>>;

    /// Every presence interval of the device, oldest first.
    fn presence_history(&self, device_id: &str) -> Result<Vec<Presence>>;

    /// Login sessions open at `at_ms`, on one device or (None) on any.
    fn sessions_at(&self, device_id: Option<&str>, at_ms: i64) -> Result<Vec<Session>>;

    /// Every presence interval of one connector, on every device, oldest first.
    fn connector_presence(&self, connector_key: &str) -> Result<Vec<Presence>>;

    /// One connector by key, with its devices.
    fn connector(&self, key: &str) -> Result<Option<Connector>>;

    /// Presence intervals of these OS accounts (any device) containing `at_ms`.
    fn presence_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Presence>>;

    /// Login sessions of these OS accounts (any device) open at `at_ms`.
    fn sessions_of_users_at(&self, os_users: &[String], at_ms: i64) -> Result<Vec<Session>>;

    /// Every presence interval open now, on every device.
    fn present_now(&self) -> Result<Vec<Presence>>;

    /// A device's stored batches in sequence order.
    fn batches(&self, device_id: &str) -> Result<Vec<StoredBatch>>;

    /// Gap observations: (device, seq, observed_at_ms, dropped).
    fn gaps(&self) -> Result<Vec<(String, u64, i64, u64)>>;

    /// Every connector, each with the devices it is present on *now* (not its history) and
    /// how many it was ever seen on: what lists, counts and judgements need, read cheaply.
    fn connector_summaries(&self) -> Result<Vec<Connector>>;

    /// One page of devices and how many match in all.
    fn devices_page(&self, page: &DevicePage) -> Result<(Vec<Device>, u64)>;

    /// Device counts by assurance, OS and recency, as of `now_ms`.
    fn fleet_counts(&self, now_ms: i64) -> Result<FleetCounts>;

    /// Presence intervals of these connectors overlapping `[from_ms, to_ms]`:
    /// (connector, appeared, disappeared).
    fn presence_spans(
        &self,
        keys: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64, Option<i64>)>>;
}

/// Revocations, the directives they issue and their outcomes, and admin status decisions.
pub trait DirectiveStore: Send + Sync {
    /// Records (or renews) a connector's revocation.
    fn set_revocation(&self, r: &Revocation) -> Result<()>;

    /// Withdraws a revocation: the decision goes, directives not yet answered are closed as
    /// `withdrawn` (and no longer sent). False if the connector was not revoked.
    fn withdraw_revocation(&self, key: &str, now_ms: i64) -> Result<bool>;

    /// Devices a revoked connector needs a directive on, with each device's sequence head:
    /// the connector is present there now and no directive for it is outstanding. With
    /// `only_new`, only where it appeared after the last directive was issued (a
    /// reinstall, a relaunch, a restored file). `key` None: every revoked connector.
    fn revocation_targets(
        &self,
        key: Option<&str>,
        only_new: bool,
        now_ms: i64,
    ) -> Result<Vec<(String, String, u64)>>;

    /// Stores issued directives; one for a (connector, device) that already has an
    /// outstanding directive is skipped. Returns the ones stored.
    fn add_directives(&self, d: &[DirectiveRecord], now_ms: i64) -> Result<Vec<String>>;

    /// Directives a device has not answered yet and that have not expired, in issue order.
    fn open_directives(&self, device_id: &str, now_ms: i64) -> Result<Vec<DirectiveRecord>>;

    /// Devices with directives issued after `cursor` (a `seq`), and the new cursor.
    fn directives_since(&self, cursor: i64) -> Result<(Vec<String>, i64)>;

    fn mark_directive_sent(&self, id: &str, now_ms: i64) -> Result<()>;

    /// Every directive issued for a connector, in issue order.
    fn directives_for_connector(&self, key: &str) -> Result<Vec<DirectiveRecord>>;

    fn directive(&self, id: &str) -> Result<Option<DirectiveRecord>>;
}

/// The connector register's own records: decisions, assigned owners and the audit log of
/// every change to them. A change and its event are written in one transaction.
pub trait RegisterStore: Send + Sync {
    /// Records (Some) or clears (None) a status decision, with its event.
    fn decide(&self, key: &str, d: Option<&Decision>, event: &ConnectorEvent) -> Result<()>;

    /// Assigns (Some) or clears (None) a connector's business owner, with its event.
    fn set_owner(&self, key: &str, o: Option<&OwnerAssignment>, event: &ConnectorEvent) -> Result<()>;

    /// Records an event that changes nothing else (a request, a reminder, an expiry noticed).
    fn record_event(&self, event: &ConnectorEvent) -> Result<i64>;

    /// Records `event` unless the connector already has an event of that name at or after
    /// `since_ms`: whether it was recorded. Decided in one transaction (serialised across
    /// replicas on PostgreSQL), so a playbook step two replicas take at once is recorded once.
    fn record_event_once(&self, event: &ConnectorEvent, since_ms: i64) -> Result<bool>;

    /// A connector's events, oldest first.
    fn connector_events(&self, key: &str) -> Result<Vec<ConnectorEvent>>;

    /// Events stored after `seq`, in storage order, at most `limit` (the audit export's cursor).
    fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<ConnectorEvent>>;
}

/// A request to approve a connector, and how it was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// Assigned by the store (ignored when opening).
    pub id: i64,
    pub connector_key: String,
    /// Who asked: `person:USERNAME` (an owner's token), `admin:…`, `cli:USER`.
    pub requested_by: String,
    /// The person (SCIM id) the approval is for.
    pub on_behalf_of: String,
    pub reason: String,
    /// How long the approval is wanted for; None: until withdrawn.
    pub duration_ms: Option<i64>,
    pub requested_at_ms: i64,
    /// `open`, `approved`, `denied` or `withdrawn`.
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub decision_reason: Option<String>,
}

/// How closing a request changes the connector's standing decision, in the same transaction.
#[derive(Debug, Clone, Copy)]
pub enum DecisionChange<'a> {
    /// Leaves it as it is (withdrawing a request nobody decided).
    Keep,
    /// Records this decision (an approval, or a denial's `unsanctioned`).
    Set(&'a Decision),
    /// Drops the decision made by `by` at `at_ms` if it still stands: withdrawing an approval
    /// never drops a later decision someone else made.
    ClearIf { by: &'a str, at_ms: i64 },
}

/// The close of a request: its new state, by whom, when and why.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub from: &'a str,
    pub state: &'a str,
    pub by: &'a str,
    pub at_ms: i64,
    pub reason: Option<&'a str>,
}

/// Approval requests: opened, listed, closed. Each change and its event are written in one
/// transaction.
pub trait ApprovalStore: Send + Sync {
    /// Opens `r` and records `event` with the new request's id added to its detail
    /// (`request`); None when the connector already has an open request.
    fn open_request(&self, r: &ApprovalRequest, event: &ConnectorEvent) -> Result<Option<i64>>;

    fn approval_request(&self, id: i64) -> Result<Option<ApprovalRequest>>;

    /// Requests, newest first: only in `state`, only on behalf of `person_id`, when given.
    fn approval_requests(&self, state: Option<&str>, person_id: Option<&str>)
    -> Result<Vec<ApprovalRequest>>;

    /// Moves request `id` from `s.from` to `s.state`, changes the decision and records
    /// `event`; false (nothing written) when the request is no longer in `s.from`.
    fn settle_request(
        &self,
        id: i64,
        s: &Settlement<'_>,
        decision: DecisionChange<'_>,
        event: &ConnectorEvent,
    ) -> Result<bool>;

    /// Records one `approval_expired` event (actor `system`, at the instant it lapsed) for
    /// each approval lapsed by `now_ms` whose expiry is not recorded yet, and marks it
    /// recorded; returns how many. Replicas sweeping together record each once.
    fn record_expiries(&self, now_ms: i64) -> Result<usize>;
}

/// Recertification: campaigns and their items, reviewer link tokens (hashes) and the
/// reminder outbox. Races between replicas are settled in the rows (see each method).
pub trait ReviewStore: Send + Sync {
    /// Stores a campaign and its items in one transaction.
    fn create_campaign(&self, c: &Campaign, items: &[ReviewItem]) -> Result<()>;

    /// Every campaign, oldest first.
    fn campaigns(&self) -> Result<Vec<Campaign>>;

    fn campaign(&self, id: &str) -> Result<Option<Campaign>>;

    /// A campaign's items in the order they were made.
    fn review_items(&self, campaign_id: &str) -> Result<Vec<ReviewItem>>;

    /// Answers an item, with its event, if it is still unanswered; false otherwise (someone
    /// answered first, or there is no such item).
    fn record_review(
        &self,
        campaign_id: &str,
        key: &str,
        d: &ItemDecision,
        event: &ConnectorEvent,
    ) -> Result<bool>;

    /// Gives an unanswered item to another reviewer (None: the admins' queue) with a new due
    /// date, with its event, if it still stands as `from` says; false otherwise.
    fn reassign_item(
        &self,
        from: &ReviewItem,
        to: Option<&str>,
        why: &str,
        now_ms: i64,
        due_at_ms: i64,
        event: &ConnectorEvent,
    ) -> Result<bool>;

    /// Unanswered items due by `now_ms` that their campaign's rule acts on, with that rule
    /// (an item in the admins' queue under `escalate` waits for them).
    fn overdue_items(&self, now_ms: i64, limit: usize) -> Result<Vec<(ReviewItem, String)>>;

    /// Unanswered items of a person due within `window_ms`, given to them longer ago than that,
    /// whose `due_soon` reminder is not queued yet.
    fn due_soon(&self, now_ms: i64, window_ms: i64) -> Result<Vec<ReviewItem>>;

    /// Closes the open campaigns with nothing left unanswered; how many.
    fn close_finished_campaigns(&self, now_ms: i64) -> Result<u64>;

    /// Puts a reminder in the outbox with the hash of the token its link carries (good until
    /// `token_expires_at_ms`), unless one of that kind for that reviewer and due date is
    /// there already (false: nothing stored, the token is not valid).
    fn add_reminder(&self, r: &Reminder, token_hash: &[u8], token_expires_at_ms: i64) -> Result<bool>;

    /// Reminders not yet acknowledged, after the cursor `after`, in order.
    fn pending_reminders(&self, after: i64, limit: usize) -> Result<Vec<Reminder>>;

    /// Marks reminders sent and forgets their text (it held a token); how many were pending.
    fn ack_reminders(&self, seqs: &[i64], now_ms: i64) -> Result<u64>;

    /// The (campaign, reviewer) a live review token stands for.
    fn review_grant(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<(String, String)>>;
}

/// Export sinks: the stored evidence as an outbox, and each sink's cursors.
pub trait ExportStore: Send + Sync {
    /// Observations stored after `rowid`, in storage order, at most `limit`.
    fn observations_after(&self, rowid: i64, limit: usize) -> Result<Vec<ExportObservation>>;

    /// The newest observation's `rowid` (0 when none).
    fn max_observation_rowid(&self) -> Result<i64>;

    /// Devices enrolled (or enrolled again) after (`at_ms`, `id`), oldest first.
    fn enrollments_after(&self, at_ms: i64, id: &str, limit: usize) -> Result<Vec<Device>>;

    /// An export sink's position in one source.
    fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<String>>;

    fn set_export_cursor(&self, sink: &str, source: &str, value: &str) -> Result<()>;

    /// Finding keys a sink already delivered.
    fn exported_findings(&self, sink: &str) -> Result<std::collections::HashSet<String>>;

    fn mark_findings_exported(&self, sink: &str, keys: &[String]) -> Result<()>;
}

/// Retention and periodic upkeep.
pub trait RetentionStore: Send + Sync {
    /// Retention: drops observations and signed batches received before `cutoff_ms`, and
    /// stream claims older than that except each device's latest. PostgreSQL drops whole
    /// monthly partitions of observations (only months entirely before the cutoff); SQLite
    /// deletes rows. Presence intervals, sessions and directives stay.
    fn prune(&self, cutoff_ms: i64) -> Result<Pruned>;

    /// Periodic upkeep, every few seconds, by the serving process. PostgreSQL writes this
    /// replica's pending connector summaries and makes next month's partition ahead of time.
    fn maintain(&self, _now_ms: i64) -> Result<()> {
        Ok(())
    }
}

/// What [`RetentionStore::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Observation partitions dropped (PostgreSQL).
    pub partitions: Vec<String>,
    /// Observation rows deleted (SQLite; PostgreSQL counts what the dropped partitions held).
    pub observations: u64,
    pub batches: u64,
    /// Stream claims records (each device's latest is kept).
    pub claims: u64,
}

impl Person {
    /// The name to show: displayName, else the SCIM name (formatted, or given and family).
    pub fn shown_name(&self) -> Option<String> {
        let n = &self.profile.name;
        let joined = [n.given_name.as_deref(), n.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        self.display_name
            .clone()
            .or_else(|| n.formatted.clone())
            .or_else(|| Some(joined).filter(|s| !s.is_empty()))
    }

    /// Every name the person can be found by (`person_keys`): userName and emails, lower-cased,
    /// and their local parts.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for name in std::iter::once(&self.user_name).chain(&self.emails) {
            let name = name.to_lowercase();
            if let Some((local, _)) = name.split_once('@')
                && !local.is_empty()
            {
                keys.push(local.to_owned());
            }
            keys.push(name);
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A stored 32-byte hash, or what is wrong with it.
pub(crate) fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| StoreError::Corrupt("stored hash is not 32 bytes".into()))
}
