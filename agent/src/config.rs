//! `agent.toml`: what the agent collects, how hard it may work, where its state lives.
//!
//! Layers, weakest first: built-in defaults, the file at the platform's path, values the MDM
//! manages (macOS managed preferences `com.sightline.agent`, Windows policy registry
//! `HKLM\SOFTWARE\Policies\Sightline\Agent`), then command-line flags. Every bad field is
//! reported at once, so an admin fixing a fleet-wide profile needs one round trip, not ten.

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

/// Declares the raw fields once: the struct, and the loader that type-checks each key on its
/// own so every error is collected.
macro_rules! raw_config {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty ),* $(,)?) => {
        /// The file as written (every field optional).
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
        }

        impl RawConfig {
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Sets each key of `table` that type-checks; returns one message per bad key.
            fn merge_table(&mut self, table: toml::Table, origin: &str) -> Vec<String> {
                let mut errors = Vec::new();
                for (key, value) in table {
                    let r: Result<(), String> = match key.as_str() {
                        $( stringify!($field) => value
                            .try_into::<$ty>()
                            .map(|v| self.$field = Some(v))
                            .map_err(|e| e.to_string().trim().to_owned()), )*
                        _ => Err(format!("unknown field; expected one of: {}", Self::FIELDS.join(", "))),
                    };
                    if let Err(e) = r {
                        errors.push(format!("{origin}: `{key}`: {e}"));
                    }
                }
                errors
            }
        }
    };
}

raw_config! {
    /// State directory (enrollment, keys, spool, outbox).
    state_dir: PathBuf,
    /// Root of the filesystem to scan (default `/`).
    root: PathBuf,
    /// Full resync period: every location rescanned, a SNAPSHOT sent (default "1h").
    resync_interval: String,
    /// Process and login-session sampling period (default "30s").
    process_interval: String,
    /// Whether to look at running processes.
    processes: bool,
    /// Whether to report OS login sessions.
    sessions: bool,
    /// Whether to watch catalog locations for changes between resyncs.
    watch: bool,
    /// How long to let a burst of file changes settle before rescanning (default "500ms").
    debounce: String,
    /// At most this many directories are watched.
    max_watches: u32,
    /// How often the agent reports its own health (default "15m").
    health_interval: String,
    /// Upper bound of the on-disk spool, in MiB (default 256).
    spool_max_mb: u32,
    /// CPU budget for scan work, percent of one core while scanning (default 5).
    cpu_percent: u8,
    /// Memory budget in MiB; above it the agent skips optional work (default 64).
    memory_mb: u32,
    /// Scheduling niceness applied to the whole agent on Unix, 0 to leave it (default 10).
    nice: i32,
    /// How long shutdown may take to flush and close the stream (default "5s").
    shutdown_grace: String,
    /// The TPM to use (TCTI), e.g. "device:/dev/tpmrm0".
    tpm_tcti: String,
    /// What to do with revocation directives from the collector: "report" (default: say
    /// what enforcement would do, change nothing) or "enforce" (stop the process, block the
    /// extension, quarantine the credential file). Set by the MDM, never by the collector.
    enforcement: String,
    /// AI activity from the tools' own session records: "metadata" (default: when, which
    /// models, how many prompts and tool calls, which MCP servers and tool names) or "off"
    /// (no record file is opened).
    activity: String,
    /// How activity names a session's project directory: "fingerprint" (default: a keyed
    /// fingerprint of the path) or "plain" (the path itself).
    activity_paths: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub root: PathBuf,
    pub resync_interval: Duration,
    pub process_interval: Duration,
    pub processes: bool,
    pub sessions: bool,
    pub watch: bool,
    pub debounce: Duration,
    pub max_watches: usize,
    pub health_interval: Duration,
    pub spool_max_bytes: u64,
    pub cpu_percent: u8,
    pub memory_bytes: u64,
    pub nice: i32,
    pub shutdown_grace: Duration,
    pub tpm_tcti: String,
    pub enforcement: Enforcement,
    /// `activity = "metadata"` (true) or `"off"`.
    pub activity: bool,
    /// `activity_paths = "plain"` (true) or `"fingerprint"`.
    pub activity_plain_paths: bool,
}

/// Whether the agent acts on directives or only reports what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Report,
    Enforce,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Report => "report",
            Enforcement::Enforce => "enforce",
        }
    }
}

impl Config {
    /// The defaults, for `state_dir` and `root`.
    pub fn defaults(state_dir: &Path, root: &Path) -> Config {
        let mut c = RawConfig::default().resolve().unwrap_or_else(|_| unreachable!("defaults are valid"));
        c.state_dir = state_dir.to_owned();
        c.root = root.to_owned();
        c
    }
}

impl RawConfig {
    /// Reads the config file (a missing file at the default path is an empty config; a
    /// missing file named explicitly is an error), then the MDM-managed values over it.
    pub fn load(path: Option<&Path>) -> anyhow::Result<RawConfig> {
        let (path, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (default_path(), false),
        };
        let mut raw = match std::fs::read_to_string(&path) {
            Ok(text) => RawConfig::parse(&text, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => RawConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
        };
        if let Some((origin, table)) = managed::values() {
            let errors = raw.merge_table(table, &origin);
            if !errors.is_empty() {
                anyhow::bail!("invalid managed configuration:\n  {}", errors.join("\n  "));
            }
        }
        Ok(raw)
    }

    /// Parses TOML text; every bad key is reported in one error.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<RawConfig> {
        let table: toml::Table = text.parse().with_context(|| format!("{origin} is not valid TOML"))?;
        let mut raw = RawConfig::default();
        let errors = raw.merge_table(table, origin);
        if !errors.is_empty() {
            anyhow::bail!("invalid configuration:\n  {}", errors.join("\n  "));
        }
        Ok(raw)
    }

    /// Checks values and fills defaults; every bad value is reported in one error.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let mut errors = Vec::new();
        let mut duration = |name: &str, v: &Option<String>, default: Duration, min: Duration| match v {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d >= min => d,
                Ok(d) => {
                    errors.push(format!(
                        "`{name}` must be at least {} (got {})",
                        humantime::format_duration(min),
                        humantime::format_duration(d)
                    ));
                    default
                }
                Err(_) => {
                    errors.push(format!("`{name}`: {s:?} is not a duration like \"30s\" or \"1h\""));
                    default
                }
            },
        };
        let resync_interval = duration(
            "resync_interval",
            &self.resync_interval,
            Duration::from_secs(3600),
            Duration::from_secs(60),
        );
        let process_interval = duration(
            "process_interval",
            &self.process_interval,
            Duration::from_secs(30),
            Duration::from_secs(1),
        );
        let debounce =
            duration("debounce", &self.debounce, Duration::from_millis(500), Duration::from_millis(50));
        let health_interval = duration(
            "health_interval",
            &self.health_interval,
            Duration::from_secs(900),
            Duration::from_secs(10),
        );
        let shutdown_grace =
            duration("shutdown_grace", &self.shutdown_grace, Duration::from_secs(5), Duration::ZERO);
        let spool_max_mb = self.spool_max_mb.unwrap_or(256);
        if spool_max_mb == 0 {
            errors.push("`spool_max_mb` must be at least 1".into());
        }
        let cpu_percent = self.cpu_percent.unwrap_or(5);
        if !(1..=100).contains(&cpu_percent) {
            errors.push(format!("`cpu_percent` must be 1 to 100 (got {cpu_percent})"));
        }
        let memory_mb = self.memory_mb.unwrap_or(64);
        if memory_mb < 16 {
            errors.push(format!("`memory_mb` must be at least 16 (got {memory_mb})"));
        }
        let nice = self.nice.unwrap_or(10);
        if !(0..=19).contains(&nice) {
            errors.push(format!("`nice` must be 0 to 19 (got {nice})"));
        }
        let enforcement = match self.enforcement.as_deref() {
            None | Some("report") => Enforcement::Report,
            Some("enforce") => Enforcement::Enforce,
            Some(other) => {
                errors.push(format!("`enforcement` must be \"report\" or \"enforce\" (got {other:?})"));
                Enforcement::Report
            }
        };
        let activity = match self.activity.as_deref() {
            None | Some("metadata") => true,
            Some("off") => false,
            Some(other) => {
                errors.push(format!("`activity` must be \"metadata\" or \"off\" (got {other:?})"));
                true
            }
        };
        let activity_plain_paths = match self.activity_paths.as_deref() {
            None | Some("fingerprint") => false,
            Some("plain") => true,
            Some(other) => {
                errors.push(format!("`activity_paths` must be \"fingerprint\" or \"plain\" (got {other:?})"));
                false
            }
        };
        if !errors.is_empty() {
            anyhow::bail!("invalid configuration:\n  {}", errors.join("\n  "));
        }
        Ok(Config {
            state_dir: self.state_dir.unwrap_or_else(crate::state::default_dir),
            root: self.root.unwrap_or_else(crate::scan::default_root),
            resync_interval,
            process_interval,
            processes: self.processes.unwrap_or(true),
            sessions: self.sessions.unwrap_or(true),
            watch: self.watch.unwrap_or(true),
            debounce,
            max_watches: self.max_watches.unwrap_or(2048) as usize,
            health_interval,
            spool_max_bytes: u64::from(spool_max_mb) << 20,
            cpu_percent,
            memory_bytes: u64::from(memory_mb) << 20,
            nice,
            shutdown_grace,
            tpm_tcti: self.tpm_tcti.unwrap_or_else(crate::keys::tpm_tcti),
            enforcement,
            activity,
            activity_plain_paths,
        })
    }
}

/// Values the MDM manages, as a TOML table with the file's keys.
pub mod managed {
    /// macOS: `/Library/Managed Preferences/com.sightline.agent.plist` (written by a
    /// configuration profile). Windows: `HKLM\SOFTWARE\Policies\Sightline\Agent`.
    pub fn values() -> Option<(String, toml::Table)> {
        #[cfg(target_os = "macos")]
        {
            return crate::macos::prefs::managed_values(super::RawConfig::FIELDS);
        }
        #[cfg(windows)]
        {
            return crate::windows::registry::policy_values(POLICY_KEY);
        }
        #[allow(unreachable_code)]
        None
    }

    /// Where Windows MDMs (Intune ADMX ingestion, Group Policy) write the agent's settings,
    /// beneath `HKEY_LOCAL_MACHINE`.
    pub const POLICY_KEY: &str = r"SOFTWARE\Policies\Sightline\Agent";

    /// A managed-preferences dictionary as a table (strings, integers, booleans).
    pub fn from_plist(value: &plist::Value) -> toml::Table {
        let mut t = toml::Table::new();
        for (k, v) in value.as_dictionary().into_iter().flatten() {
            let v = match v {
                plist::Value::String(s) => toml::Value::String(s.clone()),
                plist::Value::Boolean(b) => toml::Value::Boolean(*b),
                plist::Value::Integer(i) => match i.as_signed() {
                    Some(i) => toml::Value::Integer(i),
                    None => continue,
                },
                // MDM payloads also carry PayloadUUID and friends; only our keys matter,
                // and unknown ones are reported by the caller.
                _ => continue,
            };
            if !k.starts_with("Payload") {
                t.insert(k.clone(), v);
            }
        }
        t
    }

    // Defined with the Windows FFI's portable half, which fills them in; named here too
    // because the MDM layer is where callers (and the fuzz target) look for them.
    pub use crate::platform::registry::{RegData, from_registry};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let text = "bogus = 1\nprocesses = \"yes\"\nresync_interval = \"soon\"\ncpu_percent = 500\n";
        let err = format!("{:#}", RawConfig::parse(text, "agent.toml").unwrap_err());
        assert!(err.contains("`bogus`: unknown field"), "{err}");
        assert!(err.contains("`processes`"), "{err}");
        // cpu_percent = 500 does not fit a u8: a type error, reported with the others.
        assert!(err.contains("`cpu_percent`"), "{err}");

        let raw = RawConfig::parse(
            "resync_interval = \"soon\"\nnice = 40\nspool_max_mb = 0\nenforcement = \"yes\"\n",
            "f",
        )
        .unwrap();
        let err = format!("{:#}", raw.resolve().unwrap_err());
        for field in ["resync_interval", "nice", "spool_max_mb", "enforcement"] {
            assert!(err.contains(field), "{field} missing from: {err}");
        }
    }

    #[test]
    fn values_and_defaults() {
        let raw = RawConfig::parse("resync_interval = \"15m\"\nprocesses = false\nspool_max_mb = 8\n", "f")
            .unwrap();
        let c = raw.resolve().unwrap();
        assert_eq!(
            (c.resync_interval, c.processes, c.spool_max_bytes),
            (Duration::from_secs(900), false, 8 << 20)
        );
        assert_eq!(
            (c.process_interval, c.debounce, c.cpu_percent),
            (Duration::from_secs(30), Duration::from_millis(500), 5)
        );
        assert!(
            RawConfig::parse("resync_interval = [", "f").unwrap_err().to_string().contains("not valid TOML")
        );
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let text = include_str!("../../packaging/config/agent.toml");
        RawConfig::parse(text, "packaging/config/agent.toml").unwrap().resolve().unwrap();
    }

    /// The settings payload of the shipped configuration profile is what a Mac's managed
    /// preferences will hold: it must validate like agent.toml.
    #[test]
    fn the_macos_profile_settings_are_valid() {
        let profile = include_bytes!("../../packaging/macos/sightline.mobileconfig");
        let v = plist::Value::from_reader(std::io::Cursor::new(&profile[..])).unwrap();
        let payloads = v.as_dictionary().unwrap()["PayloadContent"].as_array().unwrap();
        let settings = payloads
            .iter()
            .find(|p| p.as_dictionary().unwrap()["PayloadType"].as_string() == Some("com.sightline.agent"))
            .expect("a com.sightline.agent payload");
        let mut raw = RawConfig::default();
        let table = managed::from_plist(settings);
        assert!(table.len() >= 5, "{table:?}");
        assert_eq!(raw.merge_table(table, "mobileconfig"), Vec::<String>::new());
        raw.resolve().unwrap();
    }

    #[test]
    fn managed_values_from_plist_and_registry() {
        let mut d = plist::Dictionary::new();
        d.insert("resync_interval".into(), plist::Value::String("30m".into()));
        d.insert("processes".into(), plist::Value::Boolean(false));
        d.insert("spool_max_mb".into(), plist::Value::Integer(64.into()));
        d.insert("PayloadUUID".into(), plist::Value::String("x".into()));
        let mut raw = RawConfig::default();
        assert!(raw.merge_table(managed::from_plist(&plist::Value::Dictionary(d)), "mdm").is_empty());
        assert_eq!(raw.resync_interval.as_deref(), Some("30m"));
        assert_eq!((raw.processes, raw.spool_max_mb), (Some(false), Some(64)));

        use managed::RegData;
        let reg = [
            ("resync_interval".to_owned(), RegData::String("2h".into())),
            ("watch".to_owned(), RegData::String("false".into())),
            ("cpu_percent".to_owned(), RegData::Integer(10)),
            ("ignored".to_owned(), RegData::Other),
            ("huge".to_owned(), RegData::Integer(u64::MAX)),
        ];
        let mut raw = RawConfig::default();
        assert!(raw.merge_table(managed::from_registry(reg), "registry").is_empty());
        assert_eq!(
            (raw.resync_interval.as_deref(), raw.watch, raw.cpu_percent),
            (Some("2h"), Some(false), Some(10))
        );
    }

    // The macOS managed layer against the real field list: the conversion is portable
    // (`platform::console`), the list of fields is this module's.
    use crate::platform::console::{ManagedTable, PREFS_DOMAIN, managed_table};

    fn dict(pairs: &[(&str, plist::Value)]) -> plist::Dictionary {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn the_managed_layer_keeps_forced_values_and_names_unknown_keys() {
        use plist::Value as P;
        let known = RawConfig::FIELDS;
        let forced = vec![
            ("resync_interval".to_owned(), P::String("30m".into())),
            ("processes".to_owned(), P::Boolean(false)),
            ("spool_max_mb".to_owned(), P::Data(vec![0])),
        ];
        let profile = dict(&[
            ("resync_interval", P::String("30m".into())),
            ("PayloadUUID", P::String("6F1C2A0E".into())),
            ("resync_intervall", P::String("2h".into())),
            ("mystery", P::Data(vec![1, 2])),
        ]);
        let m = managed_table(forced, Some(&profile), known);
        assert_eq!(m.table.get("resync_interval"), Some(&toml::Value::String("30m".into())));
        assert_eq!(m.table.get("processes"), Some(&toml::Value::Boolean(false)));
        assert!(m.table.contains_key("resync_intervall") && m.table.contains_key("mystery"));
        assert!(!m.table.contains_key("PayloadUUID") && !m.table.contains_key("spool_max_mb"));
        assert_eq!(
            m.dropped,
            vec!["`spool_max_mb`: a data value has no equivalent in agent.toml".to_owned()]
        );
        assert_eq!(managed_table(Vec::new(), None, known), ManagedTable::default());
    }

    #[test]
    fn the_shipped_profile_settings_make_a_valid_managed_layer() {
        let profile = include_bytes!("../../packaging/macos/sightline.mobileconfig");
        let v = plist::Value::from_reader(std::io::Cursor::new(&profile[..])).unwrap();
        let payloads = v.as_dictionary().unwrap()["PayloadContent"].as_array().unwrap();
        let settings = payloads
            .iter()
            .filter_map(plist::Value::as_dictionary)
            .find(|p| p.get("PayloadType").and_then(plist::Value::as_string) == Some(PREFS_DOMAIN))
            .expect("a com.sightline.agent payload");
        let known = RawConfig::FIELDS;
        // What the Mac would force: every known key of the payload.
        let forced = settings
            .iter()
            .filter(|(k, _)| known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let m = managed_table(forced, Some(settings), known);
        assert!(m.dropped.is_empty(), "{:?}", m.dropped);
        assert!(m.table.len() >= 5, "{:?}", m.table);
        let unknown: Vec<&String> = m.table.keys().filter(|k| !known.contains(&k.as_str())).collect();
        assert!(unknown.is_empty(), "the shipped profile sets keys the agent does not know: {unknown:?}");
    }
}
