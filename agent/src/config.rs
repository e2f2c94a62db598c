//! `agent.toml`: what the agent collects and where its state lives. Flags describe how this
//! process runs and override the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// The platform's default config path.
pub fn default_path() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Sightline/agent.toml")
    } else if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
            .join(r"Sightline\agent.toml")
    } else {
        PathBuf::from("/etc/sightline/agent.toml")
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// State directory (enrollment, keys, outbox).
    pub state_dir: Option<PathBuf>,
    /// Root of the filesystem to scan (default `/`).
    pub root: Option<PathBuf>,
    /// How often to run a full scan, e.g. "1h".
    pub scan_interval: Option<String>,
    /// Whether to look at running processes.
    pub processes: Option<bool>,
    /// The TPM to use (TCTI), e.g. "device:/dev/tpmrm0"; default: `SIGHTLINE_TPM_TCTI`, else
    /// the kernel resource manager.
    pub tpm_tcti: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub root: PathBuf,
    pub scan_interval: Duration,
    pub processes: bool,
    pub tpm_tcti: String,
}

impl RawConfig {
    /// Reads a config file. A missing file at the default path is an empty config; a missing
    /// file that was named explicitly is an error.
    pub fn load(path: Option<&Path>) -> anyhow::Result<RawConfig> {
        let (path, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (default_path(), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("invalid config {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(RawConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading config {}", path.display())),
        }
    }

    pub fn resolve(self) -> anyhow::Result<Config> {
        let scan_interval = match &self.scan_interval {
            Some(s) => humantime::parse_duration(s)
                .with_context(|| format!("scan_interval {s:?} is not a duration like \"1h\""))?,
            None => Duration::from_secs(3600),
        };
        if scan_interval < Duration::from_secs(10) {
            anyhow::bail!("scan_interval must be at least 10s (got {scan_interval:?})");
        }
        Ok(Config {
            state_dir: self.state_dir.unwrap_or_else(crate::state::default_dir),
            root: self.root.unwrap_or_else(|| PathBuf::from("/")),
            scan_interval,
            processes: self.processes.unwrap_or(true),
            tpm_tcti: self.tpm_tcti.unwrap_or_else(crate::keys::tpm_tcti),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_durations_are_refused() {
        assert!(toml::from_str::<RawConfig>("bogus = 1").is_err());
        let raw: RawConfig = toml::from_str("scan_interval = \"soon\"").unwrap();
        assert!(raw.resolve().unwrap_err().to_string().contains("scan_interval"));
        let raw: RawConfig = toml::from_str("scan_interval = \"15m\"\nprocesses = false").unwrap();
        let c = raw.resolve().unwrap();
        assert_eq!((c.scan_interval, c.processes), (Duration::from_secs(900), false));
    }
}
