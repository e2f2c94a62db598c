//! The catalog the collector serves to agents: none until an admin installs one
//! (`sightline-server catalog install FILE`), then that file's text signed with the
//! collector key, kept in the data dir as `catalog.pb` (the signed `CatalogUpdate`,
//! written atomically) and pushed to every agent that runs an older version.
//!
//! Agents run the catalog they were built with until then: the built-in catalog is the
//! floor, and an update is merged over it (the agent's `catalog::update` has the rules).
//! Installing checks what the collector can check without the agent's detection rules (TOML,
//! `schema_version`, a `version` above the built-in and the installed one, well-formed and
//! unique ids); the agent validates the whole merge and reports a refusal with its reason.
//! The collector serves the file as it is on disk and never re-signs it: a file changed
//! after signing reaches agents as it is, and they refuse it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sightline_proto::pb;
use tokio::sync::watch;
use toml::{Table, Value};

/// The installed catalog, in the data dir.
pub const FILE: &str = "catalog.pb";

/// Why a catalog cannot be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("catalog is not valid TOML: {0}")]
    Parse(String),
    #[error("catalog {0}")]
    Invalid(String),
    #[error("catalog version {offered} is not above {floor} ({what})")]
    NotNewer { offered: u64, floor: u64, what: &'static str },
}

/// A catalog as served: its version (read from the text) and the signed message, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub version: u64,
    pub update: pb::CatalogUpdate,
}

/// The `version` header of a catalog's text.
fn version(t: &Table) -> Option<u64> {
    t.get("version")?.as_integer().and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0)
}

/// The built-in catalog's version (the floor every installed catalog must rise above).
pub fn builtin_version() -> u64 {
    toml::from_str::<Table>(super::CATALOG).ok().as_ref().and_then(version).unwrap_or(0)
}

/// What the collector checks before signing (see the module doc); the catalog's version.
pub fn check(text: &str) -> Result<u64, InstallError> {
    let t: Table = toml::from_str(text).map_err(|e| InstallError::Parse(e.to_string()))?;
    if t.get("schema_version").and_then(Value::as_integer) != Some(1) {
        return Err(InstallError::Invalid("must say schema_version = 1".into()));
    }
    let v = version(&t).ok_or_else(|| InstallError::Invalid("needs a positive integer `version`".into()))?;
    let floor = builtin_version();
    if v <= floor {
        return Err(InstallError::NotNewer { offered: v, floor, what: "the catalog built into agents" });
    }
    for section in ["tool", "extension", "key_format", "mcp_client", "browser"] {
        let Some(entries) = t.get(section) else { continue };
        let entries = entries.as_array().ok_or_else(|| {
            InstallError::Invalid(format!("section {section} must be a list ([[{section}]])"))
        })?;
        let mut seen = HashSet::new();
        for e in entries {
            let id = e
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| InstallError::Invalid(format!("a {section} entry has no id")))?;
            if section == "tool" && !is_id(id) {
                return Err(InstallError::Invalid(format!("tool id {id:?} must be lower_snake_case")));
            }
            if !seen.insert(id) {
                return Err(InstallError::Invalid(format!("{section} id {id:?} appears twice")));
            }
        }
    }
    Ok(v)
}

/// The agent's rule for tool ids: lower_snake_case.
fn is_id(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks `text`, signs it with `sign` (given the full message, context included) and
/// installs it in `data_dir`, above the version installed there. Returns the version.
pub fn install(
    data_dir: &Path,
    text: &str,
    sign: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<u64> {
    let v = check(text)?;
    if let Some(current) = load(data_dir)?
        && v <= current.version
    {
        return Err(InstallError::NotNewer {
            offered: v,
            floor: current.version,
            what: "the installed catalog",
        }
        .into());
    }
    let update = sightline_proto::catalog::seal(text, sign)?;
    crate::pki::write(&data_dir.join(FILE), &update.encode_to_vec(), false)?;
    Ok(v)
}

/// The installed catalog, if any. Its version is read from the text as stored, signed or
/// not: whether it verifies is for the agents to say.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<Served>> {
    let path = data_dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    };
    let update = pb::CatalogUpdate::decode(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{} is not a signed catalog: {e}", path.display()))?;
    let version = std::str::from_utf8(&update.payload)
        .ok()
        .and_then(|t| toml::from_str::<Table>(t).ok())
        .as_ref()
        .and_then(version)
        .ok_or_else(|| anyhow::anyhow!("{} holds a catalog without a readable version", path.display()))?;
    Ok(Some(Served { version, update }))
}

impl Served {
    /// Whether it verifies under the collector key `spki`: false means it was changed after
    /// signing, and agents refuse it.
    pub fn verifies(&self, spki: &[u8]) -> bool {
        sightline_proto::catalog::open(&self.update, spki).is_ok()
    }

    fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.update.payload).ok()
    }
}

/// The installed catalog and whether it verifies under the collector key, for `catalog
/// status`; the names of the tools it adds are used for display (in this process) when it does.
pub fn inspect(data_dir: &Path, spki: &[u8]) -> anyhow::Result<Option<(u64, bool)>> {
    let served = load(data_dir)?;
    let verified = served.as_ref().filter(|s| s.verifies(spki));
    super::set_installed_names(verified.and_then(Served::text));
    let ok = verified.is_some();
    Ok(served.map(|s| (s.version, ok)))
}

/// The installed catalog as streams follow it: re-read by [`Feed::refresh`] (the directive
/// poller, every poll), so an install reaches open streams without a restart.
#[derive(Debug)]
pub struct Feed {
    dir: PathBuf,
    /// The collector signing key, to tell whether the file still verifies.
    spki: Vec<u8>,
    tx: watch::Sender<Option<Arc<Served>>>,
}

impl Feed {
    /// Blocking (reads the data dir). A catalog that cannot be read is logged and not served.
    pub fn open(data_dir: &Path, collector_spki: Vec<u8>) -> Feed {
        let feed = Feed { dir: data_dir.to_owned(), spki: collector_spki, tx: watch::Sender::new(None) };
        feed.refresh();
        feed
    }

    /// Whether `served` verifies under this collector's key.
    pub fn verifies(&self, served: &Served) -> bool {
        served.verifies(&self.spki)
    }

    /// Re-reads the installed catalog; streams are told only when it changed. Blocking.
    pub fn refresh(&self) {
        let now = match load(&self.dir) {
            Ok(c) => c.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "The installed catalog cannot be read; serving none.");
                None
            }
        };
        self.tx.send_if_modified(|cur| {
            let changed = cur.as_deref() != now.as_deref();
            if changed {
                let verified = now.as_deref().filter(|c| c.verifies(&self.spki));
                match (&now, verified) {
                    (Some(c), Some(_)) => tracing::info!(version = c.version, "Serving catalog."),
                    // Served anyway: the agents are the judges, and their refusals show on
                    // `catalog status`.
                    (Some(c), None) => tracing::error!(
                        version = c.version,
                        "The installed catalog does not verify with the collector key (changed after signing?): agents will refuse it."
                    ),
                    (None, _) => {}
                }
                super::set_installed_names(verified.and_then(Served::text));
                *cur = now;
            }
            changed
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Served>>> {
        self.tx.subscribe()
    }

    /// The catalog served now.
    pub fn current(&self) -> Option<Arc<Served>> {
        self.tx.borrow().clone()
    }
}

/// Re-reads the installed catalog every `every` until `stop`, so an install reaches open
/// streams without a restart (one reader per process, like the directive poller).
pub async fn follow(feed: Arc<Feed>, every: std::time::Duration, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                let f = feed.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || f.refresh()).await {
                    tracing::error!(error = %e, "Catalog refresh task failed.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (ring::signature::EcdsaKeyPair, Vec<u8>) {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = sightline_proto::p256::spki_from_point(kp.public_key().as_ref()).unwrap();
        (kp, spki)
    }

    const ACME: &str = "schema_version = 1\nversion = 2\n\n[[tool]]\nid = \"acme_ai\"\nname = \"Acme AI\"\n";

    #[test]
    fn installing_checks_versions_and_ids_and_the_feed_follows() {
        let dir = tempfile::tempdir().unwrap();
        assert!(builtin_version() >= 1);
        let (kp, spki) = key();
        let feed = Feed::open(dir.path(), spki.clone());
        assert_eq!(feed.current(), None);
        let rng = ring::rand::SystemRandom::new();
        let sign = |m: &[u8]| Ok(kp.sign(&rng, m).map_err(|_| anyhow::anyhow!("sign"))?.as_ref().to_vec());
        assert_eq!(install(dir.path(), ACME, sign).unwrap(), 2);
        let mut rx = feed.subscribe();
        feed.refresh();
        assert!(rx.has_changed().unwrap());
        let served = rx.borrow_and_update().clone().unwrap();
        assert_eq!((served.version, served.update.payload.as_slice()), (2, ACME.as_bytes()));
        assert!(feed.verifies(&served));
        assert_eq!(crate::catalog::display_name("tool", "acme_ai"), "Acme AI", "an added tool has its name");
        assert_eq!(inspect(dir.path(), &spki).unwrap(), Some((2, true)));
        let (_, other) = key();
        assert_eq!(inspect(dir.path(), &other).unwrap(), Some((2, false)));
        assert_eq!(
            crate::catalog::display_name("tool", "acme_ai"),
            "acme_ai",
            "only a verified one names tools"
        );
        feed.refresh();
        assert!(!rx.has_changed().unwrap(), "an unchanged file does not ring the streams");

        let again = install(dir.path(), ACME, sign).unwrap_err().to_string();
        assert!(again.contains("not above 2 (the installed catalog)"), "{again}");
        let old = ACME.replace("version = 2", &format!("version = {}", builtin_version()));
        assert!(install(dir.path(), &old, sign).unwrap_err().to_string().contains("built into agents"));
        for (bad, why) in [
            (ACME.replace("acme_ai", "Acme AI"), "lower_snake_case"),
            (format!("{ACME}\n[[tool]]\nid = \"acme_ai\"\n"), "appears twice"),
            (ACME.replace("version = 2\n", ""), "version"),
            (ACME.replace("schema_version = 1", "schema_version = 7"), "schema_version"),
            ("version = [".to_owned(), "not valid TOML"),
        ] {
            let e = check(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(load(dir.path()).unwrap().unwrap().version, 2);
    }
}
