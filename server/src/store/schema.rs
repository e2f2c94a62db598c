//! The tables both backends create alike, written once with their column types as
//! placeholders that [`spell`] turns into each dialect's names. Each backend's migration
//! list (SQLite's grew one step at a time, PostgreSQL's started from the whole) puts these
//! pieces where its history has them, next to what is its own (partitioned observations in
//! PostgreSQL, SQLite's added columns).

use super::sql::Dialect;

/// The DDL in `ddl` with `{int}`, `{bytes}`, `{bool}` and `{serial}` spelled for `d`.
pub(crate) fn spell(d: Dialect, ddl: &str) -> String {
    let (int, bytes, boolean, serial) = match d {
        Dialect::Sqlite => ("INTEGER", "BLOB", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Dialect::Postgres => ("BIGINT", "BYTEA", "BOOLEAN", "BIGSERIAL PRIMARY KEY"),
    };
    ddl.replace("{int}", int).replace("{bytes}", bytes).replace("{bool}", boolean).replace("{serial}", serial)
}

/// Enrollment tokens (hashes), pending enrollments between `Begin` and `Complete` (in the
/// database, not a process's memory, so a restart or another replica can complete them),
/// and devices as first created; later columns come in [`TPM_CHALLENGES`] and each
/// backend's own steps.
pub(crate) const ENROLLMENT: &str = "
CREATE TABLE enrollment_tokens (
    token_hash    {bytes} PRIMARY KEY,
    created_at_ms {int} NOT NULL,
    expires_at_ms {int} NOT NULL,
    used_at_ms    {int}
);
CREATE TABLE enrollment_challenges (
    id              TEXT PRIMARY KEY,
    nonce           {bytes} NOT NULL,
    token_hash      {bytes} NOT NULL,
    expires_at_ms   {int} NOT NULL,
    hostname        TEXT NOT NULL,
    os              TEXT NOT NULL,
    os_version      TEXT NOT NULL,
    agent_version   TEXT NOT NULL,
    key_backend     TEXT NOT NULL,
    device_key_spki {bytes} NOT NULL
);
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    os             TEXT NOT NULL,
    os_version     TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    key_backend    TEXT NOT NULL,
    assurance      TEXT NOT NULL,
    key_spki       {bytes} NOT NULL,
    cert_sha256    TEXT NOT NULL UNIQUE,
    enrolled_at_ms {int} NOT NULL,
    last_seen_ms   {int},
    seq_head       {int} NOT NULL DEFAULT 0,
    head_hash      {bytes} NOT NULL,
    revoked_at_ms  {int},
    users          TEXT NOT NULL DEFAULT '[]'
);
";

/// The TPM half of a pending enrollment: what the answer is checked against.
pub(crate) const TPM_CHALLENGES: &str = "
ALTER TABLE enrollment_challenges ADD COLUMN tpm_secret {bytes};
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ek_public {bytes};
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ak_public {bytes};
ALTER TABLE enrollment_challenges ADD COLUMN tpm_device_key_public {bytes};
ALTER TABLE enrollment_challenges ADD COLUMN tpm_ek_trusted {bool};
";

/// Every accepted batch exactly as signed: evidence that can be re-verified offline. The
/// primary key is the database's own guarantee that a (device, sequence) is stored once.
pub(crate) const BATCHES: &str = "
CREATE TABLE batches (
    device_id      TEXT NOT NULL REFERENCES devices(id),
    first_seq      {int} NOT NULL,
    last_seq       {int} NOT NULL,
    prev_hash      {bytes} NOT NULL,
    hash           {bytes} NOT NULL,
    payload        {bytes} NOT NULL,
    signature      {bytes} NOT NULL,
    received_at_ms {int} NOT NULL,
    PRIMARY KEY (device_id, first_seq)
);
";

pub(crate) const CONNECTORS: &str = "
CREATE TABLE connectors (
    key           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    first_seen_ms {int} NOT NULL,
    last_seen_ms  {int} NOT NULL,
    latest        TEXT NOT NULL
);
CREATE TABLE connector_devices (
    connector_key TEXT NOT NULL REFERENCES connectors(key),
    device_id     TEXT NOT NULL REFERENCES devices(id),
    os_user       TEXT,
    first_seen_ms {int} NOT NULL,
    last_seen_ms  {int} NOT NULL,
    PRIMARY KEY (connector_key, device_id)
);
CREATE INDEX connector_devices_device ON connector_devices(device_id);
";

/// Every stream's signed device claims, kept as evidence (payload and signature as received).
pub(crate) const DEVICE_CLAIMS: &str = "
CREATE TABLE device_claims (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    at_ms        {int} NOT NULL,
    stream_nonce {bytes} NOT NULL,
    payload      {bytes} NOT NULL,
    signature    {bytes} NOT NULL,
    claims       TEXT NOT NULL
);
CREATE INDEX device_claims_device ON device_claims(device_id, at_ms);
";

/// A connector's presence on a device as intervals, so \"what was on device D at time T\" is a
/// range query, not a replay. Opened by the first sighting of a (device, connector, locus),
/// closed by its disappearance; both ends name the observation (seq) in the signed batches.
/// At most one open interval per (device, connector, locus); the rules are in `plan`.
pub(crate) const PRESENCE: &str = "
CREATE TABLE presence (
    device_id         TEXT NOT NULL REFERENCES devices(id),
    connector_key     TEXT NOT NULL,
    locus             TEXT NOT NULL,
    os_user           TEXT,
    appeared_at_ms    {int} NOT NULL,
    appeared_seq      {int} NOT NULL,
    disappeared_at_ms {int},
    disappeared_seq   {int}
);
CREATE UNIQUE INDEX presence_open ON presence(device_id, connector_key, locus) WHERE disappeared_at_ms IS NULL;
CREATE INDEX presence_device_time ON presence(device_id, appeared_at_ms);
CREATE INDEX presence_connector ON presence(connector_key, device_id);
";

/// HTTP API tokens, stored as SHA-256 hashes; the role decides what a token may do.
pub(crate) const API_TOKENS: &str = "
CREATE TABLE api_tokens (
    token_hash    {bytes} PRIMARY KEY,
    role          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    revoked_at_ms {int}
);
";

/// People as the identity provider provisions them (SCIM). Deleted people stay on record.
pub(crate) const PEOPLE: &str = "
CREATE TABLE people (
    id                  TEXT PRIMARY KEY,
    user_name           TEXT NOT NULL,
    external_id         TEXT,
    display_name        TEXT,
    emails              TEXT NOT NULL DEFAULT '[]',
    active              {bool} NOT NULL,
    created_at_ms       {int} NOT NULL,
    modified_at_ms      {int} NOT NULL,
    deprovisioned_at_ms {int},
    deleted_at_ms       {int}
);
";

/// What SCIM carries beyond the first people columns: the structured name and emails as
/// JSON (`profile`; the lower-cased `emails` list stays for attribution), the enterprise
/// extension's manager, department and employee number (ownership and reviews read the
/// first two), and SCIM groups with their members. A group is deleted outright; its
/// members go with it.
pub(crate) const SCIM_PROFILE_AND_GROUPS: &str = "
ALTER TABLE people ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';
ALTER TABLE people ADD COLUMN manager_id TEXT;
ALTER TABLE people ADD COLUMN department TEXT;
ALTER TABLE people ADD COLUMN employee_number TEXT;
CREATE INDEX people_manager ON people(manager_id);
CREATE TABLE scim_groups (
    id             TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    external_id    TEXT,
    created_at_ms  {int} NOT NULL,
    modified_at_ms {int} NOT NULL
);
CREATE TABLE scim_group_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
    person_id TEXT NOT NULL REFERENCES people(id),
    PRIMARY KEY (group_id, person_id)
);
CREATE INDEX scim_group_members_person ON scim_group_members(person_id);
";

/// Every name a person can be found by: userName and emails (lower-cased) and their local
/// parts. Attribution of an OS account then reads only the people who could match it.
pub(crate) const PERSON_KEYS: &str = "
CREATE TABLE person_keys (
    key       TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES people(id)
);
CREATE INDEX person_keys_key ON person_keys(key);
";

/// OS login sessions as intervals: from the login time the agent reports to the observation
/// that saw it end. \"Who was logged in at T\" is a range query.
pub(crate) const SESSIONS: &str = "
CREATE TABLE sessions (
    device_id       TEXT NOT NULL REFERENCES devices(id),
    os_user         TEXT NOT NULL,
    terminal        TEXT NOT NULL,
    host            TEXT,
    started_at_ms   {int} NOT NULL,
    ended_at_ms     {int},
    appeared_seq    {int} NOT NULL,
    disappeared_seq {int}
);
CREATE UNIQUE INDEX sessions_identity ON sessions(device_id, os_user, terminal, started_at_ms);
CREATE INDEX sessions_time ON sessions(started_at_ms);
CREATE INDEX sessions_user ON sessions(os_user, started_at_ms);
";

/// Identity-provider sign-ins (Okta System Log, Entra ID), keyed by the IdP's event id.
pub(crate) const SIGNINS: &str = "
CREATE TABLE signins (
    id        TEXT PRIMARY KEY,
    source    TEXT NOT NULL,
    user_name TEXT NOT NULL,
    at_ms     {int} NOT NULL,
    ip        TEXT,
    app       TEXT,
    device    TEXT,
    outcome   TEXT NOT NULL
);
";

/// Connectors an admin revoked (a standing decision), and the directives that carry it out
/// as signed and sent; the outcome arrives in the device's signed batches and names the
/// observation that reported it. `seq` is the delivery cursor.
pub(crate) const DIRECTIVES: &str = "
CREATE TABLE revocations (
    connector_key   TEXT PRIMARY KEY,
    requested_at_ms {int} NOT NULL,
    requested_by    TEXT NOT NULL,
    reason          TEXT NOT NULL
);
CREATE TABLE directives (
    seq           {serial},
    id            TEXT NOT NULL UNIQUE,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    connector_key TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    payload       {bytes} NOT NULL,
    signature     {bytes} NOT NULL,
    issued_at_ms  {int} NOT NULL,
    expires_at_ms {int} NOT NULL,
    issued_at_seq {int} NOT NULL,
    sent_at_ms    {int},
    outcome       TEXT,
    detail        TEXT,
    mode          TEXT,
    outcome_at_ms {int},
    outcome_seq   {int}
);
CREATE INDEX directives_device ON directives(device_id, outcome);
CREATE INDEX directives_connector ON directives(connector_key, device_id);
";

/// An admin's status decision for a connector (dashboard or API), which overrides the
/// policy file; and dashboard sessions, a cookie standing for the API token it was opened
/// with (hashes only), so revoking the token ends the session.
pub(crate) const DECISIONS_AND_UI_SESSIONS: &str = "
CREATE TABLE connector_decisions (
    connector_key TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    decided_by    TEXT NOT NULL,
    decided_at_ms {int} NOT NULL
);
CREATE TABLE ui_sessions (
    session_hash  {bytes} PRIMARY KEY,
    token_hash    {bytes} NOT NULL,
    created_at_ms {int} NOT NULL,
    expires_at_ms {int} NOT NULL
);
";

/// Export sinks (OCSF files, Splunk HEC): the stored evidence is the outbox, a cursor per
/// sink and source says how far each has delivered, advanced only after delivery succeeded.
pub(crate) const EXPORTS: &str = "
CREATE TABLE export_cursors (
    sink   TEXT NOT NULL,
    source TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (sink, source)
);
CREATE TABLE export_findings (
    sink TEXT NOT NULL,
    key  TEXT NOT NULL,
    PRIMARY KEY (sink, key)
);
";

/// Device clock skew; token lifecycle: API tokens may expire, record when they were last
/// used and who made them (`cli:USER`, or `token:ID` through the API: revoking a token
/// revokes what it made, so a stolen admin token cannot leave heirs behind); enrollment
/// tokens can be named and revoked before use; retention prunes claims by time.
pub(crate) const LIFECYCLE: &str = "
ALTER TABLE devices ADD COLUMN clock_skew_ms {int};
ALTER TABLE api_tokens ADD COLUMN expires_at_ms {int};
ALTER TABLE api_tokens ADD COLUMN last_used_at_ms {int};
ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at_ms {int};
CREATE INDEX device_claims_at ON device_claims(at_ms);
";

/// What an export needs to tell a change from a repeat without replaying a device's history:
/// the presence interval an observation opened or closed (by its sequence number), and the
/// device inventory before this one (few rows: one per resync).
pub(crate) const EXPORT_CHANGES: &str = "
CREATE INDEX presence_appeared_seq ON presence(device_id, appeared_seq);
CREATE INDEX presence_disappeared_seq ON presence(device_id, disappeared_seq) WHERE disappeared_seq IS NOT NULL;
CREATE INDEX observations_inventory ON observations(device_id, seq) WHERE kind = 'device_inventory';
";

/// The detection catalog each device runs (its `version`, from the signed claims and the
/// status the agent sends when it takes or refuses an update), why the last update was
/// refused, and when it said so.
pub(crate) const CATALOG_STATUS: &str = "
ALTER TABLE devices ADD COLUMN catalog_version {int};
ALTER TABLE devices ADD COLUMN catalog_error TEXT;
ALTER TABLE devices ADD COLUMN catalog_at_ms {int};
";

/// OpenID Connect sign-in: a login in progress (state, nonce and PKCE verifier, keyed by the
/// hash of the browser cookie it is bound to, good for minutes and used once, so any replica
/// can finish what another began), and dashboard sessions opened through it, which stand for
/// the provider's subject and the role its groups mapped to rather than for an API token.
pub(crate) const OIDC: &str = "
CREATE TABLE oidc_logins (
    binding_hash  {bytes} PRIMARY KEY,
    state         TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    verifier      TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    expires_at_ms {int} NOT NULL
);
CREATE TABLE ui_sso_sessions (
    session_hash  {bytes} PRIMARY KEY,
    subject       TEXT NOT NULL,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    expires_at_ms {int} NOT NULL
);
CREATE INDEX ui_sso_sessions_subject ON ui_sso_sessions(subject);
CREATE INDEX oidc_logins_expiry ON oidc_logins(expires_at_ms);
";

/// The connector register: a decision may carry a reason and lapse; an admin may name a
/// connector's business owner; every change to either is an event in an append-only log.
pub(crate) const REGISTER: &str = "
ALTER TABLE connector_decisions ADD COLUMN reason TEXT;
ALTER TABLE connector_decisions ADD COLUMN expires_at_ms {int};
CREATE TABLE connector_owners (
    connector_key  TEXT PRIMARY KEY,
    person_id      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    assigned_by    TEXT NOT NULL,
    assigned_at_ms {int} NOT NULL
);
CREATE TABLE connector_events (
    seq           {serial},
    connector_key TEXT NOT NULL,
    at_ms         {int} NOT NULL,
    event         TEXT NOT NULL,
    actor         TEXT NOT NULL,
    reason        TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX connector_events_key ON connector_events(connector_key, seq);
";

/// Approvals as a workflow: requests (by an owner, or an admin on their behalf) and how each
/// was closed, at most one open per connector; an `owner` API token is bound to its person;
/// a lapsed approval is marked once its `approval_expired` event is recorded, so replicas
/// sweeping at the same time record it once.
pub(crate) const APPROVALS: &str = "
ALTER TABLE api_tokens ADD COLUMN person_id TEXT;
ALTER TABLE connector_decisions ADD COLUMN expiry_recorded_at_ms {int};
CREATE TABLE approval_requests (
    id              {serial},
    connector_key   TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    on_behalf_of    TEXT NOT NULL,
    reason          TEXT NOT NULL,
    duration_ms     {int},
    requested_at_ms {int} NOT NULL,
    state           TEXT NOT NULL,
    decided_by      TEXT,
    decided_at_ms   {int},
    decision_reason TEXT
);
CREATE UNIQUE INDEX approval_requests_open ON approval_requests(connector_key) WHERE state = 'open';
CREATE INDEX approval_requests_state ON approval_requests(state, id);
CREATE INDEX connector_decisions_lapse ON connector_decisions(expires_at_ms) WHERE expiry_recorded_at_ms IS NULL;
";

/// Recertification campaigns: each connector in a campaign's scope is an item for one
/// reviewer (a person's SCIM id; none: the admins' queue) to keep or revoke by its due date;
/// reviewers act through links whose tokens are stored hashed, scoped to a campaign and a
/// reviewer; reminders wait in an outbox until the mail system acknowledges them.
pub(crate) const REVIEWS: &str = "
CREATE TABLE review_campaigns (
    id            TEXT PRIMARY KEY,
    scope         TEXT NOT NULL,
    rule          TEXT NOT NULL,
    due_at_ms     {int} NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    closed_at_ms  {int},
    link_base     TEXT NOT NULL
);
CREATE TABLE review_items (
    id             {serial},
    campaign_id    TEXT NOT NULL REFERENCES review_campaigns(id),
    connector_key  TEXT NOT NULL,
    reviewer_id    TEXT,
    why            TEXT NOT NULL,
    assigned_at_ms {int} NOT NULL,
    due_at_ms      {int} NOT NULL,
    decision       TEXT,
    keep_until_ms  {int},
    reason         TEXT,
    decided_by     TEXT,
    decided_at_ms  {int},
    UNIQUE (campaign_id, connector_key)
);
CREATE INDEX review_items_open ON review_items(due_at_ms) WHERE decision IS NULL;
CREATE INDEX review_items_reviewer ON review_items(campaign_id, reviewer_id);
CREATE TABLE review_tokens (
    token_hash    {bytes} PRIMARY KEY,
    campaign_id   TEXT NOT NULL,
    reviewer_id   TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    expires_at_ms {int} NOT NULL
);
CREATE TABLE review_reminders (
    seq           {serial},
    campaign_id   TEXT NOT NULL,
    reviewer_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    due_at_ms     {int} NOT NULL,
    recipient     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    link          TEXT NOT NULL,
    created_at_ms {int} NOT NULL,
    sent_at_ms    {int},
    UNIQUE (campaign_id, reviewer_id, kind, due_at_ms)
);
";

/// AI tool sessions from the tools' own records (metadata only), one row per (device, tool,
/// session) holding its latest report, and the connectors each used: what `activity
/// --connector` and a connector's last use are read from. Times are the session's own;
/// `ended_at_ms` is copied onto the connector rows so use by connector over time is one index.
/// The OS account is part of the key (`''` when the record names none): on a shared device
/// two accounts' sessions of the same id are two sessions, never one overwriting the other.
pub(crate) const ACTIVITY: &str = "
CREATE TABLE activity_sessions (
    device_id     TEXT NOT NULL REFERENCES devices(id),
    tool          TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    os_user       TEXT NOT NULL,
    started_at_ms {int} NOT NULL,
    ended_at_ms   {int} NOT NULL,
    project       TEXT,
    models        TEXT NOT NULL,
    account       TEXT,
    prompts       {int} NOT NULL,
    tool_calls    {int} NOT NULL,
    mcp           TEXT NOT NULL,
    credentials   TEXT NOT NULL,
    format        TEXT NOT NULL,
    evidence_seq  {int} NOT NULL,
    PRIMARY KEY (device_id, tool, session_id, os_user)
);
CREATE INDEX activity_sessions_device ON activity_sessions(device_id, ended_at_ms);
CREATE INDEX activity_sessions_user ON activity_sessions(os_user, ended_at_ms);
CREATE INDEX activity_sessions_ended ON activity_sessions(ended_at_ms);
CREATE TABLE activity_connectors (
    device_id     TEXT NOT NULL,
    tool          TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    os_user       TEXT NOT NULL,
    connector_key TEXT NOT NULL,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    known         {int} NOT NULL,
    ended_at_ms   {int} NOT NULL,
    PRIMARY KEY (device_id, tool, session_id, os_user, connector_key)
);
CREATE INDEX activity_connectors_key ON activity_connectors(connector_key, ended_at_ms);
";

/// Pieces joined into one migration, spelled for `d`.
pub(crate) fn migration(d: Dialect, pieces: &[&str]) -> String {
    pieces.iter().map(|p| spell(d, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_spelled_per_dialect_and_nothing_is_left_unspelled() {
        let all = [
            ENROLLMENT,
            TPM_CHALLENGES,
            BATCHES,
            CONNECTORS,
            DEVICE_CLAIMS,
            PRESENCE,
            API_TOKENS,
            PEOPLE,
            PERSON_KEYS,
            SESSIONS,
            SIGNINS,
            DIRECTIVES,
            DECISIONS_AND_UI_SESSIONS,
            EXPORTS,
            LIFECYCLE,
            EXPORT_CHANGES,
            OIDC,
            REGISTER,
            APPROVALS,
            REVIEWS,
            ACTIVITY,
        ];
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = migration(d, &all);
            assert!(!sql.contains('{') && !sql.contains('}'), "{d:?}");
        }
        assert!(spell(Dialect::Postgres, DIRECTIVES).contains("seq           BIGSERIAL PRIMARY KEY,"));
        assert!(spell(Dialect::Sqlite, PEOPLE).contains("active              INTEGER NOT NULL,"));
    }
}
