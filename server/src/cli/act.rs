//! Commands that change something or move evidence: tokens, revocations, sign-in imports,
//! evidence bundles, retention.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::output::{cli_user, print};
use super::{ApiTokenCommand, DataArgs, RemoteArgs, TokenCommand};
use crate::clock::now_ms;
use crate::remote::encode;
use crate::tokens;

pub(super) fn token(command: TokenCommand, db: Option<&str>) -> anyhow::Result<()> {
    let now = now_ms();
    match command {
        TokenCommand::Create { data, ttl, name } => {
            print(&(tokens::create_enrollment(data.store(db)?.as_ref(), ttl, &name, now)? + "\n"))
        }
        TokenCommand::List { data, json } => {
            let rows: Vec<_> = data
                .store(db)?
                .enrollment_tokens()?
                .iter()
                .map(|t| tokens::enrollment_token_json(t, now))
                .collect();
            print(&if json {
                serde_json::to_string_pretty(&rows)? + "\n"
            } else {
                tokens::table(&rows, &["id", "name", "state", "created_at", "expires_at", "used_at"])?
            })
        }
        TokenCommand::Revoke { id, data } => {
            let r = tokens::revoke_enrollment(data.store(db)?.as_ref(), &id, now)?;
            print(&format!(
                "{} enrollment token {}\n",
                if r.now { "revoked" } else { "already revoked:" },
                r.id
            ))
        }
    }
}

pub(super) fn api_token(command: ApiTokenCommand, db: Option<&str>) -> anyhow::Result<()> {
    let now = now_ms();
    match command {
        ApiTokenCommand::Create { data, role, name, ttl, person } => {
            let store = data.store(db)?;
            let token = match (role, person) {
                (crate::domain::Role::Owner, Some(p)) => {
                    tokens::create_owner(store.as_ref(), &p, &name, ttl, now, &cli_user())?
                }
                (crate::domain::Role::Owner, None) => anyhow::bail!("an owner token needs --person"),
                (_, Some(_)) => anyhow::bail!("--person is for an owner token only"),
                (role, None) => tokens::create_api(store.as_ref(), role, &name, ttl, now, &cli_user())?,
            };
            print(&(token + "\n"))
        }
        ApiTokenCommand::List { data, json } => {
            let rows: Vec<_> =
                data.store(db)?.api_tokens()?.iter().map(|t| tokens::api_token_json(t, now)).collect();
            print(&if json {
                serde_json::to_string_pretty(&rows)? + "\n"
            } else {
                tokens::table(&rows, &["id", "role", "name", "state", "expires_at", "last_used_at"])?
            })
        }
        ApiTokenCommand::Revoke { id, data } => {
            let r = tokens::revoke_api(data.store(db)?.as_ref(), &id, now)?;
            let heirs = if r.heirs.is_empty() {
                String::new()
            } else {
                format!("; also revoked the tokens it made: {}", r.heirs.join(", "))
            };
            print(&format!(
                "{} API token {} (its dashboard sessions have ended){heirs}\n",
                if r.now { "revoked" } else { "already revoked:" },
                r.id
            ))
        }
    }
}

pub(super) fn import_signins(
    source: &str,
    file: &Path,
    data: &DataArgs,
    db: Option<&str>,
) -> anyhow::Result<()> {
    let src = crate::signins::Source::parse(source)
        .ok_or_else(|| anyhow::anyhow!("--source {source:?}: use okta or entra"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (signins, skipped) =
        crate::signins::parse(src, &text).with_context(|| format!("{} was not imported", file.display()))?;
    let added = data.store(db)?.add_signins(&signins)?;
    print(&format!(
        "imported {added} sign-ins ({} already known, {skipped} other events skipped)\n",
        signins.len() - added
    ))
}

pub(super) fn export_evidence(
    device: &str,
    out: &Path,
    data: &DataArgs,
    db: Option<&str>,
) -> anyhow::Result<()> {
    let app = data.open(db)?;
    let bundle = crate::evidence::export(app.store.as_ref(), &app.pki, device, now_ms())?;
    std::fs::write(out, serde_json::to_vec_pretty(&bundle)?)
        .with_context(|| format!("writing {}", out.display()))?;
    print(&format!(
        "wrote {} ({} batches), signed by collector key {}\n",
        out.display(),
        bundle["batches"].as_array().map_or(0, Vec::len),
        sightline_proto::p256::key_id(&app.pki.signing_key_spki())
    ))
}

pub(super) fn verify_evidence(
    bundle: &Path,
    collector_key: Option<&str>,
    trust_embedded_key: bool,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let v = crate::evidence::verify(&bytes, collector_key).map_err(|e| anyhow::anyhow!("FAILED: {e:#}"))?;
    if collector_key.is_none() && !trust_embedded_key {
        anyhow::bail!(
            "NOT VERIFIED: the bundle is consistent under the collector key it carries ({}), but nothing \
             says that key is your collector's; pass --collector-key {} if it is (as `evidence export` \
             printed it), or --trust-embedded-key to accept it as is",
            v.collector_key_id,
            v.collector_key_id
        );
    }
    print(&format!(
        "OK: device {} ({}), {} batches, {} observations, seq {}..{}, collector key {}{}\n",
        v.device_id,
        v.assurance,
        v.batches,
        v.observations,
        v.first_seq,
        v.last_seq,
        v.collector_key_id,
        if collector_key.is_none() { " (not pinned: trusted as embedded)" } else { "" }
    ))
}

pub(super) fn revoke_device(id: &str, data: &DataArgs, db: Option<&str>) -> anyhow::Result<()> {
    data.store(db)?.revoke_device(id, now_ms())?;
    print(&format!("revoked device {id}\n"))
}

pub(super) fn revoke(
    connector: &str,
    reason: &str,
    withdraw: bool,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/connectors/{}/revoke", encode(connector));
    let body = serde_json::json!({ "reason": reason });
    let out = if withdraw {
        remote.call(|r| async move { r.delete(&path).await })?
    } else {
        remote.call(|r| async move { r.post(&path, &body).await })?
    };
    if let Some(out) = out {
        return print(&out);
    }
    if withdraw {
        crate::revoke::withdraw(data.store(db)?.as_ref(), connector, &cli_user(), now_ms())?;
        return print(&format!("withdrew the revocation of {connector}\n"));
    }
    let app = data.open(db)?;
    let issued =
        crate::revoke::revoke(app.store.as_ref(), &app.pki, connector, &cli_user(), reason, now_ms())?;
    print(&crate::query::revoked(&issued, json)?)
}

/// `connector owner KEY PERSON --reason R` (or `--clear`).
pub(super) fn set_owner(
    key: &str,
    person: Option<&str>,
    reason: &str,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/connectors/{}/owner", encode(key));
    let body = serde_json::json!({ "person": person, "reason": reason });
    if let Some(out) = remote.call(|r| async move { r.put(&path, &body).await })? {
        return print(&out);
    }
    let store = data.store(db)?;
    if !crate::register::assign_owner(store.as_ref(), key, person, reason, &cli_user(), now_ms())? {
        anyhow::bail!("no connector {key} has been reported");
    }
    let v = crate::query::connector_value(store.as_ref(), &data.policy()?, key)?
        .ok_or_else(|| anyhow::anyhow!("no connector {key} has been reported"))?;
    if json {
        return print(&(serde_json::to_string_pretty(&v)? + "\n"));
    }
    print(&crate::query::render_register(&v))
}

pub(super) fn prune(
    keep: Option<Duration>,
    activity_keep: Option<Duration>,
    data: &DataArgs,
    db: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let store = data.store(db)?;
    let cutoff = |d: Duration| now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut v = serde_json::Map::new();
    let mut said = Vec::new();
    if let Some(keep) = keep {
        let cutoff = cutoff(keep);
        let p = store.prune(cutoff)?;
        v.extend([
            ("cutoff_ms".to_owned(), cutoff.into()),
            ("partitions_dropped".to_owned(), p.partitions.clone().into()),
            ("observations_removed".to_owned(), p.observations.into()),
            ("batches_removed".to_owned(), p.batches.into()),
            ("claims_removed".to_owned(), p.claims.into()),
        ]);
        let dropped = if p.partitions.is_empty() {
            String::new()
        } else {
            format!(" (dropped {})", p.partitions.join(", "))
        };
        said.push(format!(
            "removed {} observations, {} batches and {} stream claims{dropped}",
            p.observations, p.batches, p.claims
        ));
    }
    if let Some(keep) = activity_keep {
        let cutoff = cutoff(keep);
        let p = store.prune_activity(cutoff)?;
        v.extend([
            ("activity_cutoff_ms".to_owned(), cutoff.into()),
            ("activity_sessions_removed".to_owned(), p.sessions.into()),
            ("activity_observations_removed".to_owned(), p.observations.into()),
        ]);
        said.push(format!(
            "removed {} AI activity sessions and {} activity observations",
            p.sessions, p.observations
        ));
    }
    if json {
        return print(&(serde_json::Value::Object(v).to_string() + "\n"));
    }
    print(&(said.join("; ") + "\n"))
}

/// `catalog install FILE`: checked, signed with the collector key and written to the data dir,
/// where every serving collector on it picks it up (see `catalog::served`).
pub(super) fn install_catalog(file: &Path, data: &DataArgs) -> anyhow::Result<()> {
    data.existing(None)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let pki = crate::pki::Pki::load_or_init(&data.data_dir, false)?;
    // `seal` hands over the full message, context included.
    let version = crate::catalog::served::install(&data.data_dir, &text, |m| pki.sign(b"", m))
        .with_context(|| format!("installing {}", file.display()))?;
    tracing::info!(version, file = %file.display(), "Catalog installed; agents on older versions get it.");
    print(&format!("Catalog version {version} installed; agents running an older version receive it.\n"))
}
