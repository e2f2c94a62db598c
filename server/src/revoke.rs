//! Central revocation: an admin revokes a connector (`sightline-server revoke KEY`, or
//! `POST /api/v1/connectors/{key}/revoke`); every device where it is present gets a
//! directive signed by the collector, delivered over its open stream or when it next
//! connects (see `ingest::directives`).
//!
//! | connector     | action                  | target           |
//! |---------------|-------------------------|------------------|
//! | `tool:ID`     | `terminate_process`     | catalog tool id  |
//! | `extension:ID`| `block_extension`       | extension id     |
//! | `token:FP`    | `quarantine_credential` | fingerprint      |
//!
//! A revocation is a standing decision: when the connector shows up again on a device after
//! its last directive there (relaunched, reinstalled, file restored) or on a new device, the
//! collector issues a new directive ([`reissue`]). Whether anything happens on the device is
//! the agent's call: only agents in `enforce` mode act; in `report` mode they say what they
//! would have done. The connector counts as `revoked` once every device enforced it or no
//! longer has it.

use std::time::Duration;

use ring::rand::SecureRandom;

use sightline_proto::{directive, pb};

use crate::pki::Pki;
use crate::store::{Connector, DirectiveRecord, DirectiveStore, ReadModel, Revocation, StoreError};

/// How long an agent will act on a directive: long enough for a laptop back from holiday.
pub const DIRECTIVE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    #[error("no connector {0} has been reported")]
    UnknownConnector(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0} is not revoked")]
    NotRevoked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the directive failed")]
    Sign,
}

/// What one revocation did.
#[derive(Debug, Clone)]
pub struct Issued {
    pub connector: String,
    pub action: &'static str,
    /// Directives issued now (devices that already had one outstanding are not repeated).
    pub directives: Vec<DirectiveRecord>,
}

/// The action that revokes a connector (as [`seal`] names it), and its target.
pub fn action_for(c: &Connector) -> Result<(&'static str, String), RevokeError> {
    let field = |k: &str| c.latest.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let rest = c.key.split_once(':').map(|(_, r)| r.to_owned()).unwrap_or_default();
    let (action, target) = match c.kind.as_str() {
        "tool" => ("terminate_process", rest),
        "extension" => ("block_extension", field("extension_id")),
        "token" => ("quarantine_credential", field("fingerprint")),
        "mcp_server" => {
            return Err(RevokeError::Unsupported(format!(
                "{} is an MCP server entry; revoke what it is handed (its token:… connectors) or the client tool",
                c.key
            )));
        }
        other => {
            return Err(RevokeError::Unsupported(format!("connectors of kind {other} cannot be revoked")));
        }
    };
    if target.is_empty() {
        return Err(RevokeError::Unsupported(format!("{} has no target to act on", c.key)));
    }
    Ok((action, target))
}

/// Revokes a connector: records the decision and issues directives to every device where it
/// is present and none is outstanding.
pub fn revoke(
    store: &(impl ReadModel + DirectiveStore + ?Sized),
    pki: &Pki,
    key: &str,
    by: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Issued, RevokeError> {
    let c = store.connector(key)?.ok_or_else(|| RevokeError::UnknownConnector(key.to_owned()))?;
    let (action, _) = action_for(&c)?;
    store.set_revocation(&Revocation {
        connector_key: key.to_owned(),
        requested_at_ms: now_ms,
        requested_by: by.to_owned(),
        reason: reason.to_owned(),
    })?;
    let targets: Vec<(String, u64)> =
        store.revocation_targets(Some(key), false, now_ms)?.into_iter().map(|(_, d, s)| (d, s)).collect();
    let directives = issue(store, pki, &c, reason, &targets, now_ms)?;
    tracing::info!(connector = key, by, devices = directives.len(), "Connector revoked.");
    Ok(Issued { connector: key.to_owned(), action, directives })
}

/// Withdraws a connector's revocation (a mistake, or an exception granted): no more
/// directives for it, unanswered ones closed. What agents already did stays done; the record
/// of it stays too.
pub fn withdraw(
    store: &(impl DirectiveStore + ?Sized),
    key: &str,
    by: &str,
    now_ms: i64,
) -> Result<(), RevokeError> {
    if !store.withdraw_revocation(key, now_ms)? {
        return Err(RevokeError::NotRevoked(key.to_owned()));
    }
    tracing::info!(connector = key, by, "Revocation withdrawn.");
    Ok(())
}

/// Issues directives where a revoked connector appeared after its last directive.
pub fn reissue(
    store: &(impl ReadModel + DirectiveStore + ?Sized),
    pki: &Pki,
    now_ms: i64,
) -> Result<Vec<DirectiveRecord>, RevokeError> {
    let mut out = Vec::new();
    let targets = store.revocation_targets(None, true, now_ms)?;
    let mut i = 0;
    while i < targets.len() {
        let key = targets[i].0.clone();
        let group: Vec<(String, u64)> =
            targets[i..].iter().take_while(|t| t.0 == key).map(|(_, d, s)| (d.clone(), *s)).collect();
        i += group.len();
        let Some(c) = store.connector(&key)? else { continue };
        let reason = c.revocation.as_ref().map(|r| r.revocation.reason.clone()).unwrap_or_default();
        match issue(store, pki, &c, &reason, &group, now_ms) {
            Ok(issued) => {
                if !issued.is_empty() {
                    tracing::info!(connector = %key, devices = issued.len(), "Revoked connector seen again; directives reissued.");
                }
                out.extend(issued);
            }
            Err(RevokeError::Unsupported(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn issue(
    store: &(impl DirectiveStore + ?Sized),
    pki: &Pki,
    c: &Connector,
    reason: &str,
    devices: &[(String, u64)],
    now_ms: i64,
) -> Result<Vec<DirectiveRecord>, RevokeError> {
    let (action, target) = action_for(c)?;
    let mut list = Vec::with_capacity(devices.len());
    for (device_id, seq_head) in devices {
        let mut d = DirectiveRecord {
            seq: 0,
            id: new_id()?,
            device_id: device_id.clone(),
            connector_key: c.key.clone(),
            action: action.to_owned(),
            target: target.clone(),
            payload: Vec::new(),
            signature: Vec::new(),
            issued_at_ms: now_ms,
            expires_at_ms: now_ms + DIRECTIVE_TTL.as_millis() as i64,
            issued_at_seq: *seq_head,
            sent_at_ms: None,
            outcome: None,
            outcome_at_ms: None,
            outcome_seq: None,
        };
        (d.payload, d.signature) = seal(pki, &d, reason).map_err(|_| RevokeError::Sign)?;
        list.push(d);
    }
    let stored = store.add_directives(&list, now_ms)?;
    list.retain(|d| stored.contains(&d.id));
    Ok(list)
}

fn new_id() -> Result<String, RevokeError> {
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| RevokeError::Sign)?;
    Ok(directive::DirectiveId::from_random(raw).to_string())
}

/// Signs a directive as the wire carries it: (payload, signature) to store and send as is.
pub fn seal(pki: &Pki, d: &DirectiveRecord, reason: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let action = match d.action.as_str() {
        "terminate_process" => pb::DirectiveAction::TerminateProcess,
        "block_extension" => pb::DirectiveAction::BlockExtension,
        "quarantine_credential" => pb::DirectiveAction::QuarantineCredential,
        other => anyhow::bail!("unknown directive action {other:?}"),
    };
    let body = pb::DirectiveBody {
        id: d.id.clone(),
        device_id: d.device_id.clone(),
        action: action as i32,
        target: d.target.clone(),
        issued_at_ms: d.issued_at_ms,
        expires_at_ms: d.expires_at_ms,
        connector: d.connector_key.clone(),
        reason: reason.to_owned(),
    };
    // `seal` hands over the full message, context included.
    let sealed = directive::seal(&body, |m| pki.sign(b"", m))?;
    Ok((sealed.payload, sealed.signature))
}
