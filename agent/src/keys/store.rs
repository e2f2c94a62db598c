//! Where a software key's PKCS#8 bytes live.
//!
//! Linux: a 0600 file in the 0700 state dir, written atomically. `keyring` cannot serve a
//! root daemon there (no user session bus). macOS/Windows: the OS credential store through
//! `keyring` (Keychain, Credential Manager), keyed by the state dir so two agents on one
//! machine (tests, staging) never share a key.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::KeyError;

pub(crate) struct KeyStore {
    #[cfg_attr(
        any(target_os = "macos", target_os = "windows"),
        allow(dead_code, reason = "file store unused where keyring is")
    )]
    file: PathBuf,
    #[cfg_attr(
        not(any(target_os = "macos", target_os = "windows")),
        allow(dead_code, reason = "keyring account unused on Linux")
    )]
    account: String,
}

impl KeyStore {
    pub(crate) fn for_state_dir(state_dir: &Path, name: &str) -> KeyStore {
        let digest = ring::digest::digest(&ring::digest::SHA256, state_dir.to_string_lossy().as_bytes());
        KeyStore {
            file: state_dir.join(format!("{name}.pk8")),
            account: format!("{name}-{}", hex::encode(&digest.as_ref()[..8])),
        }
    }

    /// Whether a key is stored (an unreadable store counts as one: never silently replaced).
    pub(crate) fn exists(&self) -> bool {
        !matches!(self.load(), Ok(None))
    }

    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    pub(crate) fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        match std::fs::read(&self.file) {
            Ok(b) => Ok(Some(Zeroizing::new(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeyError::Storage(format!("reading {}: {e}", self.file.display()))),
        }
    }

    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    pub(crate) fn save(&self, pkcs8: &[u8]) -> Result<(), KeyError> {
        crate::state::write_atomic(&self.file, pkcs8, true)
            .map_err(|e| KeyError::Storage(format!("writing {}: {e}", self.file.display())))
    }

    #[cfg(any(target_os = "macos", target_os = "windows"))]
    pub(crate) fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        let entry = keyring::Entry::new("sightline-agent", &self.account)
            .map_err(|e| KeyError::Storage(e.to_string()))?;
        match entry.get_secret() {
            Ok(b) => Ok(Some(Zeroizing::new(b))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyError::Storage(e.to_string())),
        }
    }

    #[cfg(any(target_os = "macos", target_os = "windows"))]
    pub(crate) fn save(&self, pkcs8: &[u8]) -> Result<(), KeyError> {
        let entry = keyring::Entry::new("sightline-agent", &self.account)
            .map_err(|e| KeyError::Storage(e.to_string()))?;
        entry.set_secret(pkcs8).map_err(|e| KeyError::Storage(e.to_string()))
    }
}
