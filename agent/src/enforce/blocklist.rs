//! `block_extension`: add an extension to the managed-policy blocklist
//! (`ExtensionInstallBlocklist`) of every browser it is installed in here. A blocklisted
//! extension is disabled by the browser and cannot be reinstalled by the user.
//!
//! - Linux, Chromium family: a JSON file of our own, `sightline-blocklist.json`, in the
//!   browser's managed-policy directory (catalog `linux_policy_dir`), merged with the ids
//!   already in it, written atomically and world-readable (the browser runs as the user).
//!   Chromium reads every file in that directory; a list set in two files is not merged, so
//!   an organisation that already sets `ExtensionInstallBlocklist` in its own file should
//!   fold ours into it.
//! - Windows (`cfg(windows)`): numbered values under `HKLM\<windows_policy_key>\ExtensionInstallBlocklist`.
//! - macOS: browsers read policy only from configuration profiles, which the MDM owns: the
//!   outcome says which payload to push (`unsupported`, with the domain and the id).
//! - Firefox and browsers without a known policy location: `unsupported`, with guidance.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use cap_std::fs::Dir;
use sightline_proto::pb::observation::Item;

use super::Step;
use crate::catalog::{Catalog, Engine};
use crate::detect::Os;
use crate::fsview::Tree;

/// Our file in a managed-policy directory.
pub const POLICY_FILE: &str = "sightline-blocklist.json";
const POLICY_KEY: &str = "ExtensionInstallBlocklist";

pub fn run(root: &Path, catalog: &Catalog, items: &[&Item], id: &str, enforce: bool) -> Vec<Step> {
    let browsers: BTreeSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Extension(e) if e.extension_id == id => Some(e.browser.as_str()),
            _ => None,
        })
        .collect();
    if browsers.is_empty() {
        return Vec::new();
    }
    let os = match Tree::open_root(root) {
        Ok(t) => crate::detect::detect_os(&t),
        Err(e) => return vec![Step::Failed(format!("cannot open {}: {e}", root.display()))],
    };
    let mut steps = Vec::new();
    // Several browsers may share a policy location; write each once.
    let mut done: BTreeSet<String> = BTreeSet::new();
    for b in browsers {
        let Some(entry) = catalog.browsers.iter().find(|x| x.id == b) else {
            steps.push(Step::Unsupported(format!(
                "{b}: unknown browser; block {id} through its own management"
            )));
            continue;
        };
        if entry.engine == Engine::Firefox {
            steps.push(Step::Unsupported(format!(
                "{b}: set ExtensionSettings {{\"{id}\": {{\"installation_mode\": \"blocked\"}}}} in policies.json or the MDM profile"
            )));
            continue;
        }
        match os {
            Os::Linux => {
                let Some(dir) = &entry.linux_policy_dir else {
                    steps.push(Step::Unsupported(format!(
                        "{b}: no managed-policy location known on Linux; block {id} through the browser's own management"
                    )));
                    continue;
                };
                if !done.insert(dir.clone()) {
                    continue;
                }
                let file = format!("{dir}/{POLICY_FILE}");
                if !enforce {
                    steps.push(Step::Would(format!("{b}: would add {id} to {POLICY_KEY} in {file}")));
                    continue;
                }
                steps.push(match block_linux(root, dir, id) {
                    Ok(true) => Step::Done(format!("{b}: added {id} to {POLICY_KEY} in {file}")),
                    Ok(false) => Step::Done(format!("{b}: {id} already in {POLICY_KEY} in {file}")),
                    Err(e) => Step::Failed(format!("{b}: writing {file}: {e}")),
                });
            }
            Os::Macos => steps.push(Step::Unsupported(format!(
                "{b}: push {POLICY_KEY} [\"{id}\"] in a configuration profile for {}",
                entry.macos_policy_domain.as_deref().unwrap_or("the browser's preference domain")
            ))),
            Os::Windows => {
                let Some(key) = &entry.windows_policy_key else {
                    steps.push(Step::Unsupported(format!("{b}: no policy registry key known")));
                    continue;
                };
                if !done.insert(key.clone()) {
                    continue;
                }
                if !enforce {
                    steps.push(Step::Would(format!("{b}: would add {id} to HKLM\\{key}\\{POLICY_KEY}")));
                    continue;
                }
                steps.push(match block_windows(key, id) {
                    Ok(true) => Step::Done(format!("{b}: added {id} to HKLM\\{key}\\{POLICY_KEY}")),
                    Ok(false) => Step::Done(format!("{b}: {id} already in HKLM\\{key}\\{POLICY_KEY}")),
                    Err(e) => Step::Failed(format!("{b}: {e}")),
                });
            }
        }
    }
    steps
}

/// Adds `id` to our policy file in `dir` (absolute on the scanned system) beneath `root`;
/// false if it was already there.
pub fn block_linux(root: &Path, dir: &str, id: &str) -> Result<bool, String> {
    let root = Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(|e| e.to_string())?;
    let rel = Path::new(dir.trim_start_matches('/'));
    make_dirs(&root, rel).map_err(|e| e.to_string())?;
    let file = rel.join(POLICY_FILE);
    let mut ids: BTreeSet<String> = read_ids(&root, &file)?;
    if !ids.insert(id.to_owned()) {
        return Ok(false);
    }
    let text =
        serde_json::to_vec_pretty(&serde_json::json!({ POLICY_KEY: ids })).map_err(|e| e.to_string())?;
    let tmp = rel.join(format!(".{POLICY_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = root.create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        // The browser reads it as the user; the agent's umask would make it root-only.
        crate::acl::set_mode(&root, &tmp, 0o644)?;
        root.rename(&tmp, &root, &file)
    };
    write().map_err(|e| e.to_string())?;
    Ok(true)
}

/// The ids already in our file; a missing file is none, a damaged one is replaced.
fn read_ids(root: &Dir, file: &Path) -> Result<BTreeSet<String>, String> {
    let f = match root.open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut buf = Vec::new();
    f.into_std().take(1 << 20).read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "Our browser policy file is damaged; rewriting it.");
        serde_json::Value::Null
    });
    Ok(v.get(POLICY_KEY)
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Creates missing directories one at a time, each 0755 (browsers must be able to read them).
fn make_dirs(root: &Dir, rel: &Path) -> std::io::Result<()> {
    let mut at = std::path::PathBuf::new();
    for c in rel.components() {
        at.push(c);
        match root.metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} is not a directory", at.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                root.create_dir(&at)?;
                crate::acl::set_mode(root, &at, 0o755)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where `id` goes in a Chromium list policy held as numbered registry values (`1`, `2`,
/// …): `None` if it is already listed, else the name after the highest number in use (an
/// admin's own entries are kept; gaps are not reused, so ours never overwrite theirs).
pub fn next_list_slot(values: &[(String, String)], id: &str) -> Option<String> {
    if values.iter().any(|(_, v)| v == id) {
        return None;
    }
    let highest = values.iter().filter_map(|(name, _)| name.parse::<u32>().ok()).max().unwrap_or(0);
    Some(highest.saturating_add(1).to_string())
}

/// Adds `id` to `HKLM\<key>\ExtensionInstallBlocklist`; false if it was already there.
#[cfg(windows)]
fn block_windows(key: &str, id: &str) -> Result<bool, String> {
    use crate::windows::registry;
    let list = format!(r"{key}\{POLICY_KEY}");
    match next_list_slot(&registry::string_values(&list)?, id) {
        None => Ok(false),
        Some(name) => registry::set_string(&list, &name, id).map(|()| true),
    }
}

#[cfg(not(windows))]
fn block_windows(_key: &str, _id: &str) -> Result<bool, String> {
    Err("the registry is only written by the Windows agent".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_slots_follow_the_highest_number_and_keep_admin_entries() {
        let v = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
        };
        assert_eq!(next_list_slot(&[], "x").as_deref(), Some("1"));
        assert_eq!(next_list_slot(&v(&[("1", "a"), ("7", "b"), ("note", "c")]), "x").as_deref(), Some("8"));
        assert_eq!(next_list_slot(&v(&[("3", "x")]), "x"), None, "already listed");
        assert_eq!(next_list_slot(&v(&[("4294967295", "a")]), "x").as_deref(), Some("4294967295"));
    }

    /// The full path on Windows: the list in the real registry (Wine's, under test).
    #[cfg(windows)]
    #[test]
    fn the_windows_blocklist_is_numbered_values_in_the_registry() {
        use crate::windows::registry;
        let key = format!(r"SOFTWARE\SightlineTest\Chrome-{}", std::process::id());
        let list = format!(r"{key}\{POLICY_KEY}");
        registry::set_string(&list, "1", "adminsownchoiceadminsownchoiceaa").unwrap();
        assert!(block_windows(&key, "aaaabbbbccccddddeeeeffffgggghhhh").unwrap());
        assert!(!block_windows(&key, "aaaabbbbccccddddeeeeffffgggghhhh").unwrap());
        assert!(block_windows(&key, "bbbbccccddddeeeeffffgggghhhhiiii").unwrap());
        let mut got = registry::string_values(&list).unwrap();
        got.sort();
        registry::remove_tree(&key).unwrap();
        let want: Vec<(String, String)> = [
            ("1", "adminsownchoiceadminsownchoiceaa"),
            ("2", "aaaabbbbccccddddeeeeffffgggghhhh"),
            ("3", "bbbbccccddddeeeeffffgggghhhhiiii"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    #[cfg_attr(windows, ignore = "Unix file modes; on Windows the list is in the registry (test above)")]
    fn ids_are_merged_into_our_file_and_kept_readable() {
        #[cfg(unix)]
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().unwrap();
        let dir = "/etc/opt/chrome/policies/managed";
        assert!(block_linux(t.path(), dir, "aaaabbbbccccddddeeeeffffgggghhhh").unwrap());
        assert!(block_linux(t.path(), dir, "bbbbccccddddeeeeffffgggghhhhiiii").unwrap());
        assert!(!block_linux(t.path(), dir, "aaaabbbbccccddddeeeeffffgggghhhh").unwrap());
        let path = t.path().join("etc/opt/chrome/policies/managed").join(POLICY_FILE);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v[POLICY_KEY],
            serde_json::json!(["aaaabbbbccccddddeeeeffffgggghhhh", "bbbbccccddddeeeeffffgggghhhhiiii"])
        );
        #[cfg(unix)]
        {
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
            assert_eq!(
                std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
    }

    #[test]
    #[cfg_attr(windows, ignore = "creating a symbolic link: Wine 8 cannot, Windows needs a privilege")]
    fn a_policy_dir_that_is_a_link_out_of_the_root_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/opt/chrome/policies")).unwrap();
        crate::testutil::symlink(outside.path(), &t.path().join("etc/opt/chrome/policies/managed"));
        assert!(
            block_linux(t.path(), "/etc/opt/chrome/policies/managed", "aaaabbbbccccddddeeeeffffgggghhhh")
                .is_err()
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
