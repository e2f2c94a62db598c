//! The agent's state directory: enrollment, keys, fingerprint keys, chain head, outbox.
//!
//! The agent writes nowhere else. The directory is 0700 and every file in it is written
//! atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves either
//! the old or the new version, never a torn one.
//!
//! ```text
//! enrollment.json          device id, collector URL, assurance (no secrets)
//! ca.pem                   the collector CA the agent trusts
//! client.pem / client.key  mTLS client certificate and its key (0600)
//! device-key.pk8           software device key, Linux (0600); Keychain/Credential Manager elsewhere
//! org-fingerprint.key      org fingerprint key from enrollment (0600)
//! local-fingerprint.key    random key used before enrollment (0600)
//! chain.json               next sequence number and hash of the last sealed batch
//! spool/                   observations recorded but not yet sealed (see spool.rs)
//! outbox/                  sealed batches not yet acknowledged by the collector
//! inventory.pb             the daemon's last known view (see inventory.rs)
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::secret::Fingerprinter;

/// The platform's default state directory.
pub fn default_dir() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Sightline/state")
    } else if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
            .join(r"Sightline\state")
    } else {
        PathBuf::from("/var/lib/sightline")
    }
}

/// What enrollment established. Stored as `enrollment.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub device_id: String,
    pub server_url: String,
    pub assurance: String,
    pub enrolled_at_ms: i64,
    /// Hex DER SubjectPublicKeyInfo of the collector's directive signing key.
    pub collector_signing_key: String,
    /// When the client certificate expires (0: unknown, renew at the next connection).
    #[serde(default)]
    pub cert_not_after_ms: i64,
}

/// A state file the agent cannot use as it is (malformed, truncated, from another build):
/// the device's identity or chain cannot be trusted, so the agent must be enrolled again.
#[derive(Debug, thiserror::Error)]
#[error("{file} in the state dir is damaged ({reason}); this agent must be enrolled again")]
pub struct Damaged {
    pub file: &'static str,
    pub reason: String,
}

/// The exit status of `run` when the agent must be enrolled again (`EX_CONFIG` from
/// sysexits): service units list it in `RestartPreventExitStatus`, so a damaged identity is
/// not restarted into the same failure every few seconds.
pub const EXIT_NEEDS_ENROLLMENT: u8 = 78;

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens (creating, 0700) the state directory.
    pub fn open(path: &Path) -> anyhow::Result<StateDir> {
        fs::create_dir_all(path).with_context(|| format!("creating state dir {}", path.display()))?;
        crate::acl::restrict_dir(path)
            .with_context(|| format!("restricting state dir {}", path.display()))?;
        Ok(StateDir { path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn read(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match fs::read(self.file(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.file(name).display())),
        }
    }

    pub fn write(&self, name: &str, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
        write_atomic(&self.file(name), bytes, secret)
            .with_context(|| format!("writing {}", self.file(name).display()))
    }

    /// The mTLS identity (certificate PEM, key PEM), finishing a renewal a crash interrupted.
    ///
    /// Renewal writes `client.next.key` and `client.next.pem`, then renames the key, then the
    /// certificate. Until the agent first connects with the new pair the collector accepts
    /// both, so completing the renames here is always safe.
    pub fn client_identity(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        if self.file("client.next.pem").exists() {
            if self.file("client.next.key").exists() {
                fs::rename(self.file("client.next.key"), self.file("client.key"))
                    .context("finishing certificate renewal")?;
            }
            fs::rename(self.file("client.next.pem"), self.file("client.pem"))
                .context("finishing certificate renewal")?;
            sync_dir(&self.path)?;
        }
        let cert = self.read("client.pem")?.context("client.pem missing from the state dir; re-enroll")?;
        let key = self.read("client.key")?.context("client.key missing from the state dir; re-enroll")?;
        Ok((cert, key))
    }

    /// Installs a renewed identity (see [`StateDir::client_identity`] for the order).
    pub fn install_identity(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        self.write("client.next.key", key_pem, true)?;
        self.write("client.next.pem", cert_pem, false)?;
        self.client_identity().map(|_| ())
    }

    pub fn enrollment(&self) -> anyhow::Result<Option<Enrollment>> {
        match self.read("enrollment.json")? {
            None => Ok(None),
            Some(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .map_err(|e| Damaged { file: "enrollment.json", reason: e.to_string() })?,
            )),
        }
    }

    /// Moves a damaged file aside (`NAME.damaged-<ms>`), kept for inspection; returns where
    /// it went, or None if there was nothing there.
    pub fn set_aside(&self, name: &str) -> anyhow::Result<Option<PathBuf>> {
        let from = self.file(name);
        if !from.exists() {
            return Ok(None);
        }
        let ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let to = self.file(&format!("{name}.damaged-{ms}"));
        fs::rename(&from, &to).with_context(|| format!("moving {} aside", from.display()))?;
        sync_dir(&self.path)?;
        Ok(Some(to))
    }

    /// The fingerprinter for this agent: the org key once enrolled, a persistent local key
    /// before that (so fingerprints are at least stable on this device).
    pub fn fingerprinter(&self) -> anyhow::Result<Fingerprinter> {
        if let Some(key) = self.read("org-fingerprint.key")? {
            return Ok(Fingerprinter::new(&key, true));
        }
        let key = match self.read("local-fingerprint.key")? {
            Some(k) => k,
            None => {
                let k = random_bytes(32)?;
                self.write("local-fingerprint.key", &k, true)?;
                k
            }
        };
        Ok(Fingerprinter::new(&key, false))
    }
}

pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    SystemRandom::new().fill(&mut b).map_err(|_| anyhow::anyhow!("system random number generator failed"))?;
    Ok(b)
}

/// Writes a file so that readers see the old or the new contents, never a mix, even
/// across a crash. `secret` files are created 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()?;
    }
    let _ = dir;
    Ok(())
}
