//! Row mapping, once for both backends: the column lists each record is read with and the
//! functions turning a result row into it. A backend runs the statement; [`Row`] hides whose
//! row it is.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    ApiTokenInfo, Challenge, Connector, ConnectorDevice, ConnectorEvent, Decision, Device, DirectiveRecord,
    EnrollmentTokenInfo, ExportObservation, OutcomeRef, OwnerAssignment, Person, Presence, PresenceEdge,
    Result, Revocation, RevocationState, Session, StoredBatch, TpmChallenge, hash32,
};
use crate::domain::{Change, ObservationKind, Outcome};
use crate::signins::SignIn;
use crate::store::StoreError;

/// One result row, read by column index.
pub(crate) trait Row {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;
    fn flag(&self, i: usize) -> Result<bool>;
    fn opt_flag(&self, i: usize) -> Result<Option<bool>>;
}

macro_rules! row_impl {
    ($ty:ty, $get:ident) => {
        impl Row for $ty {
            fn text(&self, i: usize) -> Result<String> {
                Ok(self.$get(i)?)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>> {
                Ok(self.$get(i)?)
            }
            fn int(&self, i: usize) -> Result<i64> {
                Ok(self.$get(i)?)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>> {
                Ok(self.$get(i)?)
            }
            fn bytes(&self, i: usize) -> Result<Vec<u8>> {
                Ok(self.$get(i)?)
            }
            fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
                Ok(self.$get(i)?)
            }
            fn flag(&self, i: usize) -> Result<bool> {
                Ok(self.$get(i)?)
            }
            fn opt_flag(&self, i: usize) -> Result<Option<bool>> {
                Ok(self.$get(i)?)
            }
        }
    };
}

row_impl!(rusqlite::Row<'_>, get);
row_impl!(postgres::Row, try_get);

/// A JSON column; what does not parse reads as null (it was written by us, as JSON).
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A JSON list of strings (`users`, `emails`).
pub(crate) fn strings(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

pub(crate) const DEVICE_COLUMNS: &str = "id, hostname, os, os_version, agent_version, key_backend, assurance, key_spki, \
     cert_sha256, enrolled_at_ms, last_seen_ms, seq_head, head_hash, revoked_at_ms, users, next_cert_sha256, \
     last_attested_ms, hardware_id, clock_skew_ms";

pub(crate) fn device(r: &dyn Row) -> Result<Device> {
    Ok(Device {
        id: r.text(0)?,
        hostname: r.text(1)?,
        os: r.text(2)?,
        os_version: r.text(3)?,
        agent_version: r.text(4)?,
        key_backend: r.text(5)?,
        assurance: r.text(6)?,
        key_spki: r.bytes(7)?,
        cert_sha256: r.text(8)?,
        enrolled_at_ms: r.int(9)?,
        last_seen_ms: r.opt_int(10)?,
        seq_head: r.int(11)? as u64,
        head_hash: hash32(r.bytes(12)?)?,
        revoked_at_ms: r.opt_int(13)?,
        users: serde_json::from_str(&r.text(14)?).unwrap_or_default(),
        next_cert_sha256: r.opt_text(15)?,
        last_attested_ms: r.opt_int(16)?,
        hardware_id: r.opt_text(17)?,
        clock_skew_ms: r.opt_int(18)?,
    })
}

pub(crate) const PERSON_SELECT: &str = "SELECT id, user_name, external_id, display_name, emails, active, \
     created_at_ms, modified_at_ms, deprovisioned_at_ms, deleted_at_ms, profile, manager_id, department, \
     employee_number FROM people";

pub(crate) fn person(r: &dyn Row) -> Result<Person> {
    Ok(Person {
        id: r.text(0)?,
        user_name: r.text(1)?,
        external_id: r.opt_text(2)?,
        display_name: r.opt_text(3)?,
        emails: serde_json::from_str(&r.text(4)?).unwrap_or_default(),
        active: r.flag(5)?,
        created_at_ms: r.int(6)?,
        modified_at_ms: r.int(7)?,
        deprovisioned_at_ms: r.opt_int(8)?,
        deleted_at_ms: r.opt_int(9)?,
        profile: serde_json::from_str(&r.text(10)?)
            .map_err(|e| StoreError::Corrupt(format!("stored SCIM profile: {e}")))?,
        manager_id: r.opt_text(11)?,
        department: r.opt_text(12)?,
        employee_number: r.opt_text(13)?,
        // Filled by the store from the memberships.
        groups: Vec::new(),
    })
}

/// A stored spelling of a domain value; one this version does not know means the row was
/// not written by the collector.
fn spelled<T>(text: String, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}

pub(crate) const DIRECTIVE_COLUMNS: &str = "seq, id, device_id, connector_key, action, target, payload, signature, \
     issued_at_ms, expires_at_ms, issued_at_seq, sent_at_ms, outcome, detail, mode, outcome_at_ms, outcome_seq";

pub(crate) fn directive(r: &dyn Row) -> Result<DirectiveRecord> {
    let id = r.text(1)?;
    let outcome = match r.opt_text(12)? {
        Some(outcome) => Some(OutcomeRef {
            directive_id: id.clone(),
            outcome: spelled(outcome, Outcome::parse, "directive outcome")?,
            detail: r.opt_text(13)?.unwrap_or_default(),
            mode: r.opt_text(14)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(DirectiveRecord {
        seq: r.int(0)?,
        id,
        device_id: r.text(2)?,
        connector_key: r.text(3)?,
        action: r.text(4)?,
        target: r.text(5)?,
        payload: r.bytes(6)?,
        signature: r.bytes(7)?,
        issued_at_ms: r.int(8)?,
        expires_at_ms: r.int(9)?,
        issued_at_seq: r.int(10)? as u64,
        sent_at_ms: r.opt_int(11)?,
        outcome,
        outcome_at_ms: r.opt_int(15)?,
        outcome_seq: r.opt_int(16)?.map(|s| s as u64),
    })
}

pub(crate) const SESSION_COLUMNS: &str =
    "device_id, os_user, terminal, host, started_at_ms, ended_at_ms, appeared_seq";

pub(crate) fn session(r: &dyn Row) -> Result<Session> {
    Ok(Session {
        device_id: r.text(0)?,
        os_user: r.text(1)?,
        terminal: r.text(2)?,
        host: r.opt_text(3)?,
        started_at_ms: r.int(4)?,
        ended_at_ms: r.opt_int(5)?,
        appeared_seq: r.int(6)? as u64,
    })
}

/// Presence intervals with their connector's kind and label; `{filter}` goes after it.
pub(crate) const PRESENCE_SELECT: &str = "SELECT p.device_id, p.connector_key, c.kind, c.label, p.locus, p.os_user, \
     p.appeared_at_ms, p.disappeared_at_ms, p.appeared_seq, p.disappeared_seq \
     FROM presence p JOIN connectors c ON c.key = p.connector_key WHERE";
pub(crate) const PRESENCE_ORDER: &str = "ORDER BY p.appeared_at_ms, c.kind, c.label, p.locus";

pub(crate) fn presence(r: &dyn Row) -> Result<Presence> {
    Ok(Presence {
        device_id: r.text(0)?,
        connector_key: r.text(1)?,
        kind: r.text(2)?,
        label: r.text(3)?,
        locus: r.text(4)?,
        os_user: r.opt_text(5)?,
        appeared_at_ms: r.int(6)?,
        disappeared_at_ms: r.opt_int(7)?,
        appeared_seq: r.int(8)? as u64,
        disappeared_seq: r.opt_int(9)?.map(|s| s as u64),
    })
}

pub(crate) const CHALLENGE_COLUMNS: &str = "id, nonce, token_hash, expires_at_ms, hostname, os, os_version, \
     agent_version, key_backend, device_key_spki, tpm_secret, tpm_ek_public, tpm_ak_public, tpm_device_key_public, \
     tpm_ek_trusted";

pub(crate) fn challenge(r: &dyn Row) -> Result<Challenge> {
    Ok(Challenge {
        id: r.text(0)?,
        nonce: r.bytes(1)?,
        token_hash: r.bytes(2)?,
        expires_at_ms: r.int(3)?,
        hostname: r.text(4)?,
        os: r.text(5)?,
        os_version: r.text(6)?,
        agent_version: r.text(7)?,
        key_backend: r.text(8)?,
        device_key_spki: r.bytes(9)?,
        tpm: match r.opt_bytes(10)? {
            Some(secret) => Some(TpmChallenge {
                secret,
                ek_public: r.bytes(11)?,
                ak_public: r.bytes(12)?,
                device_key_public: r.bytes(13)?,
                ek_trusted: r.opt_flag(14)?.unwrap_or(false),
            }),
            None => None,
        },
    })
}

pub(crate) const ENROLLMENT_TOKENS: &str = "SELECT token_hash, name, created_at_ms, expires_at_ms, used_at_ms, \
     revoked_at_ms FROM enrollment_tokens ORDER BY created_at_ms, token_hash";

pub(crate) fn enrollment_token(r: &dyn Row) -> Result<EnrollmentTokenInfo> {
    Ok(EnrollmentTokenInfo {
        token_hash: r.bytes(0)?,
        name: r.text(1)?,
        created_at_ms: r.int(2)?,
        expires_at_ms: r.int(3)?,
        used_at_ms: r.opt_int(4)?,
        revoked_at_ms: r.opt_int(5)?,
    })
}

pub(crate) const API_TOKENS: &str = "SELECT token_hash, role, name, created_at_ms, expires_at_ms, last_used_at_ms, \
     revoked_at_ms, created_by FROM api_tokens ORDER BY created_at_ms, token_hash";

pub(crate) fn api_token(r: &dyn Row) -> Result<ApiTokenInfo> {
    Ok(ApiTokenInfo {
        token_hash: r.bytes(0)?,
        role: r.text(1)?,
        name: r.text(2)?,
        created_at_ms: r.int(3)?,
        expires_at_ms: r.opt_int(4)?,
        last_used_at_ms: r.opt_int(5)?,
        revoked_at_ms: r.opt_int(6)?,
        created_by: r.text(7)?,
    })
}

/// An enrollment token's (expires, used, revoked).
pub(crate) type TokenState = (i64, Option<i64>, Option<i64>);

/// Reads a [`TokenState`].
pub(crate) const TOKEN_STATE: &str =
    "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_tokens WHERE token_hash = $1";

pub(crate) fn token_state(r: &dyn Row) -> Result<TokenState> {
    Ok((r.int(0)?, r.opt_int(1)?, r.opt_int(2)?))
}

pub(crate) const BATCHES: &str = "SELECT first_seq, last_seq, prev_hash, hash, payload, signature, received_at_ms \
     FROM batches WHERE device_id = $1 ORDER BY first_seq";

pub(crate) fn stored_batch(r: &dyn Row) -> Result<StoredBatch> {
    Ok(StoredBatch {
        first_seq: r.int(0)? as u64,
        last_seq: r.int(1)? as u64,
        prev_hash: hash32(r.bytes(2)?)?,
        hash: hash32(r.bytes(3)?)?,
        payload: r.bytes(4)?,
        signature: r.bytes(5)?,
        received_at_ms: r.int(6)?,
    })
}

pub(crate) const GAPS: &str = "SELECT device_id, seq, observed_at_ms, data FROM observations WHERE kind = 'gap' ORDER BY observed_at_ms";

/// A gap observation: (device, seq, observed_at_ms, how many the agent dropped).
pub(crate) fn gap(r: &dyn Row) -> Result<(String, u64, i64, u64)> {
    let dropped = json(&r.text(3)?)["dropped"].as_u64().unwrap_or(0);
    Ok((r.text(0)?, r.int(1)? as u64, r.int(2)?, dropped))
}

/// `o` observations joined to `d` devices, `pa`/`pd` the presence intervals they opened and
/// closed ([`EXPORT_JOINS`]), and `{received}` for when the batch arrived.
pub(crate) fn export_columns(id: &str, received: &str) -> String {
    format!(
        "SELECT {id}, o.device_id, d.hostname, d.os, d.os_version, o.seq, o.observed_at_ms, {received}, \
         o.change, o.kind, o.assurance, o.data, o.connector_key, pa.locus, pd.locus, pd.appeared_seq, \
         CASE WHEN o.kind = 'device_inventory' THEN (SELECT p.data FROM observations p \
             WHERE p.device_id = o.device_id AND p.kind = 'device_inventory' AND p.seq < o.seq \
             ORDER BY p.seq DESC LIMIT 1) END"
    )
}

/// The presence intervals an observation opened (`pa`) or closed (`pd`): one seq is one
/// observation, so at most one of each (indexed by `EXPORT_CHANGES`).
pub(crate) const EXPORT_JOINS: &str = "LEFT JOIN presence pa ON pa.device_id = o.device_id AND pa.appeared_seq = o.seq \
     LEFT JOIN presence pd ON pd.device_id = o.device_id AND pd.disappeared_seq = o.seq";

pub(crate) fn export_observation(r: &dyn Row) -> Result<ExportObservation> {
    Ok(ExportObservation {
        rowid: r.int(0)?,
        device_id: r.text(1)?,
        hostname: r.text(2)?,
        os: r.text(3)?,
        os_version: r.text(4)?,
        seq: r.int(5)? as u64,
        observed_at_ms: r.int(6)?,
        received_at_ms: r.int(7)?,
        change: spelled(r.text(8)?, Change::parse, "observation change")?,
        kind: spelled(r.text(9)?, ObservationKind::parse, "observation kind")?,
        assurance: r.text(10)?,
        data: json(&r.text(11)?),
        connector_key: r.opt_text(12)?,
        edge: match (r.opt_text(13)?, r.opt_text(14)?) {
            (Some(locus), _) => Some(PresenceEdge { locus, appeared_seq: r.int(5)? as u64, closes: false }),
            (None, Some(locus)) => {
                Some(PresenceEdge { locus, appeared_seq: r.int(15)? as u64, closes: true })
            }
            (None, None) => None,
        },
        previous: r.opt_text(16)?.map(|d| json(&d)),
    })
}

pub(crate) const SIGNIN_COLUMNS: &str = "id, source, user_name, at_ms, ip, app, device, outcome";

pub(crate) fn signin(r: &dyn Row) -> Result<SignIn> {
    Ok(SignIn {
        id: r.text(0)?,
        source: if r.text(1)? == "okta" { "okta" } else { "entra" },
        user_name: r.text(2)?,
        at_ms: r.int(3)?,
        ip: r.opt_text(4)?,
        app: r.opt_text(5)?,
        device: r.opt_text(6)?,
        outcome: if r.text(7)? == "success" { "success" } else { "failure" },
    })
}

pub(crate) const DECISIONS: &str = "SELECT connector_key, status, decided_by, decided_at_ms, reason, expires_at_ms \
     FROM connector_decisions";

pub(crate) fn decision(r: &dyn Row) -> Result<(String, Decision)> {
    Ok((
        r.text(0)?,
        Decision {
            status: r.text(1)?,
            by: r.text(2)?,
            at_ms: r.int(3)?,
            reason: r.opt_text(4)?,
            expires_at_ms: r.opt_int(5)?,
        },
    ))
}

pub(crate) const OWNERS: &str =
    "SELECT connector_key, person_id, reason, assigned_by, assigned_at_ms FROM connector_owners";

pub(crate) fn owner(r: &dyn Row) -> Result<(String, OwnerAssignment)> {
    Ok((
        r.text(0)?,
        OwnerAssignment { person_id: r.text(1)?, reason: r.text(2)?, by: r.text(3)?, at_ms: r.int(4)? },
    ))
}

pub(crate) const EVENT_COLUMNS: &str = "seq, connector_key, at_ms, event, actor, reason, detail";

pub(crate) fn event(r: &dyn Row) -> Result<ConnectorEvent> {
    Ok(ConnectorEvent {
        seq: r.int(0)?,
        connector_key: r.text(1)?,
        at_ms: r.int(2)?,
        event: r.text(3)?,
        actor: r.text(4)?,
        reason: r.opt_text(5)?,
        detail: json(&r.text(6)?),
    })
}

pub(crate) const REVOCATION_COLUMNS: &str = "connector_key, requested_at_ms, requested_by, reason";

pub(crate) fn revocation(r: &dyn Row) -> Result<Revocation> {
    Ok(Revocation {
        connector_key: r.text(0)?,
        requested_at_ms: r.int(1)?,
        requested_by: r.text(2)?,
        reason: r.text(3)?,
    })
}

/// Revocations with the latest directive to each device, by connector.
pub(crate) fn revocation_states(
    revocations: Vec<Revocation>,
    latest: Vec<DirectiveRecord>,
) -> HashMap<String, RevocationState> {
    let mut out: HashMap<String, RevocationState> = revocations
        .into_iter()
        .map(|r| (r.connector_key.clone(), RevocationState { revocation: r, latest: Vec::new() }))
        .collect();
    for d in latest {
        if let Some(state) = out.get_mut(&d.connector_key) {
            state.latest.push(d);
        }
    }
    for state in out.values_mut() {
        state.latest.sort_by_key(|d| d.seq);
    }
    out
}

/// Connectors with their devices, one row per (connector, device), grouped by connector.
pub(crate) const CONNECTOR_DEVICES: &str = "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, c.latest, \
     cd.device_id, d.hostname, cd.os_user, cd.first_seen_ms, cd.last_seen_ms, \
     EXISTS (SELECT 1 FROM presence p WHERE p.device_id = cd.device_id \
             AND p.connector_key = c.key AND p.disappeared_at_ms IS NULL) \
     FROM connectors c JOIN connector_devices cd ON cd.connector_key = c.key JOIN devices d ON d.id = cd.device_id";
pub(crate) const CONNECTOR_DEVICES_ORDER: &str = "ORDER BY c.kind, c.label, c.key, d.hostname";

/// A connector's own columns (0..=5), with no devices yet.
fn connector_head(r: &dyn Row) -> Result<Connector> {
    Ok(Connector {
        key: r.text(0)?,
        kind: r.text(1)?,
        label: r.text(2)?,
        first_seen_ms: r.int(3)?,
        last_seen_ms: r.int(4)?,
        latest: json(&r.text(5)?),
        devices: Vec::new(),
        seen_on: 0,
        revocation: None,
        decision: None,
        owner: None,
        last_used_ms: None,
    })
}

/// A row of [`CONNECTOR_DEVICES`] folded into `out`, which it extends while the key repeats.
pub(crate) fn connector_device(out: &mut Vec<Connector>, r: &dyn Row) -> Result<()> {
    let dev = ConnectorDevice {
        device_id: r.text(6)?,
        hostname: r.text(7)?,
        user: r.opt_text(8)?,
        first_seen_ms: r.int(9)?,
        last_seen_ms: r.int(10)?,
        present: r.flag(11)?,
    };
    match out.last_mut() {
        Some(c) if c.key == r.text(0)? => c.devices.push(dev),
        _ => {
            let mut c = connector_head(r)?;
            c.devices.push(dev);
            out.push(c);
        }
    }
    Ok(())
}

/// Each connector's open presence per device and account, for the summaries.
pub(crate) fn present_devices(group_by: &str) -> String {
    format!(
        "SELECT p.connector_key, p.device_id, d.hostname, p.os_user, min(p.appeared_at_ms), max(p.appeared_at_ms) \
         FROM presence p JOIN devices d ON d.id = p.device_id WHERE p.disappeared_at_ms IS NULL \
         GROUP BY {group_by}"
    )
}

pub(crate) fn present_device(r: &dyn Row) -> Result<(String, ConnectorDevice)> {
    Ok((
        r.text(0)?,
        ConnectorDevice {
            device_id: r.text(1)?,
            hostname: r.text(2)?,
            user: r.opt_text(3)?,
            first_seen_ms: r.int(4)?,
            last_seen_ms: r.int(5)?,
            present: true,
        },
    ))
}

pub(crate) const CONNECTOR_SUMMARIES: &str = "SELECT c.key, c.kind, c.label, c.first_seen_ms, c.last_seen_ms, \
     c.latest, (SELECT count(*) FROM connector_devices cd WHERE cd.connector_key = c.key) \
     FROM connectors c ORDER BY c.kind, c.label, c.key";

pub(crate) fn connector_summary(r: &dyn Row) -> Result<Connector> {
    Ok(Connector { seen_on: r.int(6)? as usize, ..connector_head(r)? })
}

/// Connector summaries with the devices each is present on now.
pub(crate) fn summaries(mut out: Vec<Connector>, present: Vec<(String, ConnectorDevice)>) -> Vec<Connector> {
    let mut by_key: HashMap<String, Vec<ConnectorDevice>> = HashMap::new();
    for (k, d) in present {
        by_key.entry(k).or_default().push(d);
    }
    for c in &mut out {
        c.devices = by_key.remove(&c.key).unwrap_or_default();
    }
    out
}

/// Admin decisions, assigned owners and revocation states attached to the connectors they concern.
pub(crate) fn attach(
    out: &mut [Connector],
    mut states: HashMap<String, RevocationState>,
    mut decisions: HashMap<String, Decision>,
    mut owners: HashMap<String, OwnerAssignment>,
    last_used: HashMap<String, i64>,
    count_devices: bool,
) {
    for c in out {
        if count_devices {
            c.seen_on = c.devices.len();
        }
        c.last_used_ms = last_used.get(&c.key).copied();
        c.revocation = states.remove(&c.key);
        c.decision = decisions.remove(&c.key);
        c.owner = owners.remove(&c.key);
    }
}
