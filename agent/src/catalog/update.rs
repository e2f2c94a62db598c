//! Catalog updates from the collector: verified, merged over the built-in catalog, kept.
//!
//! An update arrives on the stream as the TOML text the admin installed, signed with the
//! collector key (`sightline_proto::catalog`). It is taken only if the signature verifies
//! with the key from enrollment, its `version` is higher than the catalog running, and the
//! merge below validates as a whole ([`Catalog`]'s rules: ids well-formed, regexes compile,
//! no collisions). A taken update is kept in the state dir (`catalog.pb`, the signed message
//! as received, written atomically) and used again at the next start while it still
//! verifies and is newer than the built-in catalog; anything else is refused with a reason
//! the collector sees ([`pb::CatalogStatus`]).
//!
//! The built-in catalog is the floor: an update adds and corrects, never removes, and it
//! can only widen what is detected.
//! - `tool`, `extension`, `key_format`, `mcp_client`, `browser`: merged by `id`;
//!   `credential_file` by its `paths` list, `account` by `tool`, `env_var` by `names`, `api_host` by `hosts` and
//!   `ide_setting` by `keys`. New entries are added; built-in entries the update does not name
//!   are kept; an update entry naming a built-in one is merged into it field by field.
//! - The single tables (`extension_heuristics`, `ide`, `processes`, `placeholders`,
//!   `env_files`, `installs`, `git_config`) are merged field by field the same way.
//! - Field by field: a list is the union (built-in items first, never dropped); any other
//!   value is replaced (a display name, a vendor, a source, a provider label: corrections).
//! - [`LOCKED`] fields only narrow or re-point detection, so an update may neither change
//!   nor add to them on an existing entry: a key format's `regex` (a built-in key would stop
//!   matching), `placeholders` (`contains = [""]` makes every value a placeholder; `min_len`
//!   hides short secrets), the walk's skip lists (`skip_dirs`, `source_skip_names`), the
//!   file `format` of a credential file, MCP client or account (a wrong parser reads nothing), and a
//!   browser's `engine`/`profile_at_root` (where its extensions are looked for). An update
//!   naming one is refused, and the reason names the field.
//! - Anything else in the update (an unknown section, a section of the wrong shape, a value
//!   of another type than the built-in one) refuses it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sightline_proto::pb;
use tokio::sync::watch;
use toml::{Table, Value};

use super::{BUILTIN, Catalog, CatalogError};

/// The kept update, in the state dir.
pub const STATE_FILE: &str = "catalog.pb";

/// Longest refusal reason reported: a TOML error quotes the offending line, and a hostile or
/// broken catalog must not bloat every stream's claims.
const MAX_REASON: usize = 400;

/// Sections that are lists of entries, and the field that identifies an entry.
const LISTS: &[(&str, &str)] = &[
    ("tool", "id"),
    ("extension", "id"),
    ("key_format", "id"),
    ("mcp_client", "id"),
    ("browser", "id"),
    ("credential_file", "paths"),
    ("env_var", "names"),
    ("api_host", "hosts"),
    ("ide_setting", "keys"),
    ("account", "tool"),
    ("activity", "tool"),
];

/// Sections that are one table each.
const TABLES: &[&str] =
    &["extension_heuristics", "ide", "processes", "placeholders", "env_files", "installs", "git_config"];

/// Fields of an existing entry (section, field) that an update may not change or add to:
/// every one of them can only suppress findings or point a detector elsewhere (see the
/// module doc). New entries set them freely.
const LOCKED: &[(&str, &str)] = &[
    ("key_format", "regex"),
    ("placeholders", "contains"),
    ("placeholders", "min_len"),
    ("env_files", "skip_dirs"),
    ("env_files", "source_skip_names"),
    ("credential_file", "format"),
    ("mcp_client", "format"),
    ("account", "format"),
    ("activity", "format"),
    ("browser", "engine"),
    ("browser", "profile_at_root"),
];

/// Why an update was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    #[error(transparent)]
    Signature(#[from] sightline_proto::catalog::CatalogUpdateError),
    #[error("catalog has no positive integer `version` header")]
    NoVersion,
    #[error("catalog version {offered} is not newer than the version running ({running})")]
    NotNewer { offered: u64, running: u64 },
    #[error("{0}")]
    Invalid(#[from] CatalogError),
    #[error("cannot keep the catalog in the state dir: {0}")]
    Keep(String),
}

/// The built-in catalog with `update` merged over it (see the module doc), validated.
pub fn merge(update: &str) -> Result<Catalog, CatalogError> {
    merge_over(BUILTIN, update)
}

fn invalid(entry: &str, problem: impl Into<String>) -> CatalogError {
    CatalogError::Invalid { entry: entry.to_owned(), problem: problem.into() }
}

fn merge_over(base: &str, update: &str) -> Result<Catalog, CatalogError> {
    let mut merged: Table = toml::from_str(base)?;
    let update: Table = toml::from_str(update)?;
    for (key, value) in update {
        if key == "schema_version" || key == "version" {
            merged.insert(key, value);
        } else if let Some((_, by)) = LISTS.iter().find(|(s, _)| *s == key) {
            let Value::Array(entries) = value else {
                return Err(invalid(&key, "must be a list of entries ([[...]])"));
            };
            let Some(Value::Array(list)) = merged.get_mut(&key) else {
                return Err(invalid(&key, "is not a list in the built-in catalog"));
            };
            for entry in entries {
                let id =
                    entry.get(by).cloned().ok_or_else(|| invalid(&key, format!("an entry has no `{by}`")))?;
                match list.iter_mut().find(|old| old.get(by) == Some(&id)) {
                    Some(Value::Table(old)) => {
                        let Value::Table(fields) = entry else {
                            return Err(invalid(&key, "an entry must be a table"));
                        };
                        let name = format!("{key} {id}");
                        merge_fields(&key, &name, old, fields)?;
                    }
                    Some(_) => return Err(invalid(&key, "a built-in entry is not a table")),
                    None => list.push(entry),
                }
            }
        } else if TABLES.contains(&key.as_str()) {
            let Value::Table(fields) = value else { return Err(invalid(&key, "must be a table ([...])")) };
            let Some(Value::Table(base)) = merged.get_mut(&key) else {
                return Err(invalid(&key, "is not a table in the built-in catalog"));
            };
            merge_fields(&key, &key, base, fields)?;
        } else {
            return Err(invalid(&key, "is not a catalog section"));
        }
    }
    Catalog::from_table(merged)
}

/// Merges an update's fields into an existing entry of `section` (reported as `name`):
/// lists by union, other values replaced, [`LOCKED`] fields refused unless unchanged.
fn merge_fields(section: &str, name: &str, old: &mut Table, fields: Table) -> Result<(), CatalogError> {
    for (field, new) in fields {
        let locked = LOCKED.contains(&(section, field.as_str()));
        let refuse = || {
            invalid(
                name,
                format!(
                    "`{field}` of an existing entry cannot be changed or added to by an update \
                     (it can only narrow detection; the built-in catalog is the floor)"
                ),
            )
        };
        match (old.get_mut(&field), new) {
            (Some(Value::Array(items)), Value::Array(added)) => {
                for item in added {
                    if !items.contains(&item) {
                        if locked {
                            return Err(refuse());
                        }
                        items.push(item);
                    }
                }
            }
            (Some(Value::Array(_)), _) => return Err(invalid(name, format!("`{field}` must be a list"))),
            (Some(_), Value::Array(_)) => {
                return Err(invalid(name, format!("`{field}` must not be a list")));
            }
            (Some(value), new) => {
                if *value != new {
                    if locked {
                        return Err(refuse());
                    }
                    *value = new;
                }
            }
            (None, new) => {
                if locked {
                    return Err(refuse());
                }
                old.insert(field, new);
            }
        }
    }
    Ok(())
}

/// The `version` header of a catalog's text, if it has a positive one.
fn version_of(text: &str) -> Option<u64> {
    let t: Table = toml::from_str(text).ok()?;
    t.get("version")?.as_integer().and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0)
}

/// The update's text as a catalog to run instead of one at `running`.
fn check(text: &str, running: u64) -> Result<Catalog, UpdateError> {
    let offered = version_of(text).ok_or(UpdateError::NoVersion)?;
    if offered <= running {
        return Err(UpdateError::NotNewer { offered, running });
    }
    Ok(merge(text)?)
}

/// A reason as reported: one line, bounded.
fn reason(e: &UpdateError) -> String {
    let text = e.to_string().replace(['\n', '\r'], " ");
    let mut out: String = text.chars().take(MAX_REASON).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The catalog the agent runs and how it takes updates.
pub struct Updates {
    path: PathBuf,
    collector_spki: Vec<u8>,
    running: u64,
    status: watch::Sender<pb::CatalogStatus>,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates").field("running", &self.running).finish_non_exhaustive()
    }
}

impl Updates {
    /// At start: the kept update if it still verifies, validates and is newer than the
    /// built-in catalog, else the built-in one (a kept update that is unusable is reported
    /// in the status). Blocking (reads the state dir).
    pub fn open(state_dir: &Path, collector_spki: &[u8]) -> Result<(Updates, Arc<Catalog>), CatalogError> {
        let path = state_dir.join(STATE_FILE);
        let builtin = Catalog::builtin()?;
        let (catalog, error) = match kept(&path, collector_spki, builtin.version) {
            Ok(Some(c)) => (c, None),
            Ok(None) => (builtin, None),
            Err(e) => {
                tracing::warn!(error = %e, "The kept catalog update is not used; running the built-in catalog.");
                (builtin, Some(format!("kept catalog not used: {}", reason(&e))))
            }
        };
        let status = pb::CatalogStatus { version: catalog.version, error, refused_version: 0 };
        let updates = Updates {
            path,
            collector_spki: collector_spki.to_vec(),
            running: catalog.version,
            status: watch::Sender::new(status),
        };
        Ok((updates, Arc::new(catalog)))
    }

    /// Follows the status: what the agent runs and why the last update was refused.
    pub fn status(&self) -> watch::Receiver<pb::CatalogStatus> {
        self.status.subscribe()
    }

    /// The version running.
    pub fn running(&self) -> u64 {
        self.running
    }

    /// Takes an update (verified, newer, valid, then kept) and returns the catalog to run;
    /// a refusal changes nothing but the status. Blocking (writes the state dir).
    pub fn apply(&mut self, u: &pb::CatalogUpdate) -> Result<Arc<Catalog>, UpdateError> {
        match self.take(u) {
            Ok(c) => {
                self.running = c.version;
                self.status.send_replace(pb::CatalogStatus {
                    version: c.version,
                    error: None,
                    refused_version: 0,
                });
                Ok(Arc::new(c))
            }
            Err(e) => {
                // The version it claims, read without trusting it: for the report only.
                let claimed = std::str::from_utf8(&u.payload)
                    .ok()
                    .filter(|t| t.len() <= sightline_proto::catalog::MAX_CATALOG_BYTES)
                    .and_then(version_of)
                    .unwrap_or(0);
                let error = match claimed {
                    0 => format!("update refused: {}", reason(&e)),
                    v => format!("update to version {v} refused: {}", reason(&e)),
                };
                self.status.send_replace(pb::CatalogStatus {
                    version: self.running,
                    error: Some(error),
                    refused_version: claimed,
                });
                Err(e)
            }
        }
    }

    fn take(&self, u: &pb::CatalogUpdate) -> Result<Catalog, UpdateError> {
        let text = sightline_proto::catalog::open(u, &self.collector_spki)?;
        let catalog = check(text, self.running)?;
        crate::state::write_atomic(&self.path, &u.encode_to_vec(), false)
            .map_err(|e| UpdateError::Keep(e.to_string()))?;
        Ok(catalog)
    }
}

/// The kept update as a catalog, if there is one newer than the built-in catalog.
fn kept(path: &Path, collector_spki: &[u8], builtin: u64) -> Result<Option<Catalog>, UpdateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(UpdateError::Keep(e.to_string())),
    };
    let u = pb::CatalogUpdate::decode(bytes.as_slice()).map_err(|e| UpdateError::Keep(e.to_string()))?;
    let text = sightline_proto::catalog::open(&u, collector_spki)?;
    match check(text, builtin) {
        // An agent upgraded past the update runs its newer built-in catalog.
        Err(UpdateError::NotNewer { .. }) => Ok(None),
        r => r.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = sightline_proto::p256::spki_from_point(kp.public_key().as_ref()).unwrap();
        (kp, spki)
    }

    fn sealed(kp: &EcdsaKeyPair, text: &str) -> pb::CatalogUpdate {
        let rng = SystemRandom::new();
        sightline_proto::catalog::seal(text, |m| kp.sign(&rng, m).map(|s| s.as_ref().to_vec())).unwrap()
    }

    const ACME: &str = r#"
schema_version = 1
version = 2

[[tool]]
id = "acme_ai"
name = "Acme AI"
vendor = "Acme"
process_names = ["acme-ai"]
linux = [".acme/bin/acme-ai"]
source = "test"

[processes]
script_hosts = ["acme-runner"]
"#;

    #[test]
    fn an_update_adds_and_replaces_by_id_and_keeps_the_rest() {
        let builtin = Catalog::builtin().unwrap();
        let ollama = builtin.tool("ollama").unwrap();
        let fix = format!(
            "{ACME}\n[[tool]]\nid = \"ollama\"\nname = \"Ollama (corrected)\"\nvendor = {:?}\nprocess_names = [\"ollama\"]\nsource = \"test\"\n",
            ollama.vendor
        );
        let c = merge(&fix).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.tool("acme_ai").unwrap().name, "Acme AI");
        assert_eq!(c.tool_for_process("acme-ai").unwrap().id, "acme_ai");
        assert_eq!(c.tool("ollama").unwrap().name, "Ollama (corrected)");
        assert_eq!(c.tools.len(), builtin.tools.len() + 1, "nothing built-in is dropped");
        assert_eq!(c.tool("claude_code").unwrap().name, builtin.tool("claude_code").unwrap().name);
        assert_eq!(c.extensions.len(), builtin.extensions.len());
        // A list in a single table is the union: built-in script hosts stay.
        assert!(c.processes.script_hosts.iter().any(|h| h == "acme-runner"));
        for h in &builtin.processes.script_hosts {
            assert!(c.processes.script_hosts.contains(h), "{h} was dropped");
        }
    }

    /// The built-in catalog is the floor: nothing an update says can switch off a built-in
    /// detection, while corrections and additions are taken.
    #[test]
    fn an_update_cannot_narrow_built_in_detection() {
        let refused = |extra: &str, field: &str| {
            let e = merge(&format!("{ACME}\n{extra}")).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}` of an existing entry")), "{extra}: {e}");
        };
        refused("[placeholders]\ncontains = [\"\"]\n", "contains");
        refused("[placeholders]\nmin_len = 400\n", "min_len");
        let anthropic =
            "[[key_format]]\nid = \"anthropic_api\"\nprovider = \"anthropic\"\nkind = \"api_key\"\n";
        refused(&format!("{anthropic}regex = '[^\\s\\S]'\nsource = \"x\"\n"), "regex");
        refused("[env_files]\nskip_dirs = [\"Documents\", \"src\"]\n", "skip_dirs");
        refused("[env_files]\nsource_skip_names = [\"main.py\"]\n", "source_skip_names");
        let builtin = Catalog::builtin().unwrap();
        let mcp = &builtin.mcp_clients[0];
        refused(&format!("[[mcp_client]]\nid = {:?}\nformat = \"ini\"\n", mcp.id), "format");

        // Corrections and additions are taken, and the built-in items stay.
        let claude = builtin.tool("claude_code").unwrap();
        let anthropic_regex = toml::from_str::<Table>(BUILTIN).unwrap()["key_format"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"].as_str() == Some("anthropic_api"))
            .unwrap()["regex"]
            .clone();
        let fix = format!(
            "{ACME}\n[[tool]]\nid = \"claude_code\"\nname = \"Claude Code (corrected)\"\nlinux = [\"opt/claude/bin/claude\"]\n\
             \n[[key_format]]\nid = \"anthropic_api\"\nregex = {anthropic_regex}\nsource = \"corrected source\"\n\
             \n[env_files]\nskip_dirs = [\"node_modules\"]\nhistory = [\".acme_history\"]\n"
        );
        let c = merge(&fix).unwrap();
        let t = c.tool("claude_code").unwrap();
        assert_eq!(t.name, "Claude Code (corrected)");
        assert_eq!(t.vendor, claude.vendor, "a field the update leaves out is kept");
        assert_eq!(t.process_names, claude.process_names);
        assert!(t.linux.iter().any(|p| p == "opt/claude/bin/claude"));
        for p in &claude.linux {
            assert!(t.linux.contains(p), "{p} was dropped");
        }
        let f = c.key_formats.iter().find(|f| f.id == "anthropic_api").unwrap();
        assert_eq!(f.source, "corrected source");
        assert_eq!(
            f.whole.as_str(),
            builtin.key_formats.iter().find(|f| f.id == "anthropic_api").unwrap().whole.as_str()
        );
        assert_eq!(c.env_files.skip_dirs, builtin.env_files.skip_dirs, "naming a built-in item is no change");
        assert!(c.env_files.history.iter().any(|h| h == ".acme_history"));
        assert_eq!(c.placeholders.contains, builtin.placeholders.contains);
        // A new key format is a new id: taken whatever its regex.
        let new = format!(
            "{ACME}\n[[key_format]]\nid = \"acme\"\nprovider = \"acme\"\nkind = \"api_key\"\nregex = 'acme-[a-z0-9]{{32}}'\nsource = \"x\"\n"
        );
        assert!(merge(&new).unwrap().key_formats.iter().any(|f| f.id == "acme"));
    }

    #[test]
    fn invalid_updates_are_refused_with_the_reason() {
        let collide = ACME.replace("process_names = [\"acme-ai\"]", "process_names = [\"ollama\"]");
        let e = merge(&collide).unwrap_err().to_string();
        assert!(e.contains("claimed by two tools"), "{e}");
        let bad_id = ACME.replace("id = \"acme_ai\"", "id = \"Acme AI\"");
        assert!(merge(&bad_id).unwrap_err().to_string().contains("lower_snake_case"));
        let regex = format!(
            "{ACME}\n[[key_format]]\nid = \"acme\"\nprovider = \"acme\"\nkind = \"api_key\"\nregex = \"acme-(\"\nsource = \"x\"\n"
        );
        assert!(merge(&regex).unwrap_err().to_string().contains("acme"));
        // Every section the built-in catalog has is one an update may carry.
        let builtin: Table = toml::from_str(BUILTIN).unwrap();
        for key in builtin.keys().filter(|k| *k != "schema_version" && *k != "version") {
            assert!(
                LISTS.iter().any(|(s, _)| s == key) || TABLES.contains(&key.as_str()),
                "the built-in section {key} cannot be updated"
            );
        }
        let unknown = format!("{ACME}\n[[gadget]]\nid = \"x\"\n");
        assert!(merge(&unknown).unwrap_err().to_string().contains("not a catalog section"));
        let field = ACME.replace("source = \"test\"", "source = \"test\"\nsize = 3");
        assert!(matches!(merge(&field), Err(CatalogError::Parse(_))));
        let shape = "schema_version = 1\nversion = 2\ntool = \"x\"\n";
        assert!(merge(shape).unwrap_err().to_string().contains("list of entries"));
        let schema = ACME.replace("schema_version = 1", "schema_version = 2");
        assert!(merge(&schema).unwrap_err().to_string().contains("unsupported"));
        assert!(matches!(merge("version = ["), Err(CatalogError::Parse(_))));
    }

    #[test]
    fn older_equal_unversioned_and_forged_updates_are_refused_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (kp, spki) = key();
        let (other, _) = key();
        let (mut u, catalog) = Updates::open(dir.path(), &spki).unwrap();
        let builtin = catalog.version;
        let status = u.status();
        assert_eq!(status.borrow().version, builtin);

        let same = ACME.replace("version = 2", &format!("version = {builtin}"));
        let e = u.apply(&sealed(&kp, &same)).unwrap_err();
        assert!(matches!(e, UpdateError::NotNewer { .. }), "{e}");
        assert_eq!(status.borrow().refused_version, builtin);
        assert!(status.borrow().error.as_deref().unwrap().contains("not newer"));

        let unversioned = ACME.replace("version = 2\n", "");
        assert!(matches!(u.apply(&sealed(&kp, &unversioned)), Err(UpdateError::NoVersion)));

        let forged = u.apply(&sealed(&other, ACME)).unwrap_err();
        assert!(matches!(forged, UpdateError::Signature(_)), "{forged}");
        assert_eq!(status.borrow().refused_version, 2, "the claimed version is reported");
        assert!(status.borrow().error.as_deref().unwrap().contains("signature"));

        let mut tampered = sealed(&kp, ACME);
        let at = tampered.payload.iter().position(|b| *b == b'A').unwrap();
        tampered.payload[at] = b'B';
        assert!(matches!(u.apply(&tampered), Err(UpdateError::Signature(_))));
        assert!(!dir.path().join(STATE_FILE).exists(), "nothing refused is kept");

        let c = u.apply(&sealed(&kp, ACME)).unwrap();
        assert_eq!((c.version, u.running()), (2, 2));
        assert_eq!(*status.borrow(), pb::CatalogStatus { version: 2, error: None, refused_version: 0 });
        // The same update again, or an older one, is refused; version 2 keeps running.
        assert!(matches!(u.apply(&sealed(&kp, ACME)), Err(UpdateError::NotNewer { offered: 2, running: 2 })));
        assert_eq!(status.borrow().version, 2);

        let broken = ACME
            .replace("version = 2", "version = 3")
            .replace("process_names = [\"acme-ai\"]", "process_names = [\"claude\"]");
        let Err(e) = u.apply(&sealed(&kp, &broken)) else { panic!("a colliding process name was taken") };
        assert!(matches!(e, UpdateError::Invalid(_)), "{e}");
        assert_eq!((status.borrow().version, status.borrow().refused_version), (2, 3));
    }

    #[test]
    fn the_kept_update_survives_a_restart_only_while_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (kp, spki) = key();
        let (mut u, _) = Updates::open(dir.path(), &spki).unwrap();
        u.apply(&sealed(&kp, ACME)).unwrap();
        drop(u);

        let (u, c) = Updates::open(dir.path(), &spki).unwrap();
        assert_eq!((c.version, u.running()), (2, 2));
        assert!(c.tool("acme_ai").is_some());
        assert_eq!(u.status().borrow().error, None);

        // Another collector's key (a re-enrollment elsewhere): the built-in catalog, said why.
        let (_, other) = key();
        let (u, c) = Updates::open(dir.path(), &other).unwrap();
        assert_eq!(c.version, Catalog::builtin().unwrap().version);
        assert!(c.tool("acme_ai").is_none());
        assert!(u.status().borrow().error.as_deref().unwrap().contains("kept catalog not used"));

        // Changed on disk after it was kept: refused the same way.
        let path = dir.path().join(STATE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(7).position(|w| w == b"Acme AI").unwrap();
        bytes[at + 5] = b'X';
        std::fs::write(&path, &bytes).unwrap();
        let (_, c) = Updates::open(dir.path(), &spki).unwrap();
        assert!(c.tool("acme_ai").is_none());
    }
}
