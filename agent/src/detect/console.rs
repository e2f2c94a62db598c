//! The portable half of the macOS integration. The FFI in `crate::macos` and
//! `keys::enclave` (compiled on macOS only) copies what the system returns into plain Rust
//! values and hands them here, so every decision about them is compiled and unit-tested on
//! every platform:
//!
//! - login records (`utmpx`) and the console user → [`OsSession`]s ([`sessions`]);
//! - managed preferences (`com.sightline.agent`) as `plist::Value`s → the TOML table that
//!   `RawConfig::merge_table` type-checks ([`toml_from_plist`], [`managed_table`]);
//! - the Secure Enclave key's record in the state dir and its keychain tag
//!   ([`EnclaveRecord`], [`enclave_tag`]).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::sessions::OsSession;
use crate::keys::KeyError;

// ---------------------------------------------------------------------------------------
// Sessions

/// `ut_type` of a login (`<utmpx.h>`; the same value on macOS and Linux).
pub const USER_PROCESS: i16 = 7;

/// At most this many `utmpx` records are read: a few thousand logins is already far more
/// than any laptop has, and a corrupt or hostile file must not stall the sampler.
pub const UTMPX_MAX_RECORDS: usize = 4096;

/// The terminal name of the GUI login, in `utmpx` and in the sessions reported.
pub const CONSOLE: &str = "console";

/// Names `SCDynamicStoreCopyConsoleUser` returns when nobody is at the console: the login
/// window, and Setup Assistant's own account while a new Mac is being set up.
const NOT_A_PERSON: [&str; 3] = ["loginwindow", "_mbsetupuser", "root"];

/// One `utmpx` record as the C struct holds it: fixed-size, NUL-padded byte fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UtmpxEntry {
    pub kind: i16,
    pub pid: i32,
    pub user: Vec<u8>,
    pub line: Vec<u8>,
    pub host: Vec<u8>,
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// A C character field: up to the first NUL, lossy UTF-8, without surrounding blanks.
pub fn c_text(field: &[u8]) -> String {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).trim().to_owned()
}

/// A live login from one `utmpx` record; `None` for other record types, records without a
/// user, and logins whose process `alive` says is gone (a crashed login leaves its record).
///
/// A pid of 0 or below is never passed to `alive`: `kill(0, 0)` would probe the caller's
/// own process group and always answer "alive".
pub fn session_from_utmpx(e: &UtmpxEntry, alive: impl Fn(i32) -> bool) -> Option<OsSession> {
    if e.kind != USER_PROCESS || e.pid <= 0 {
        return None;
    }
    let user = c_text(&e.user);
    if user.is_empty() || !alive(e.pid) {
        return None;
    }
    let started_at_ms = e.tv_sec.saturating_mul(1000).saturating_add(e.tv_usec.clamp(0, 999_999) / 1000);
    Some(OsSession {
        user,
        terminal: c_text(&e.line),
        host: Some(c_text(&e.host)).filter(|h| !h.is_empty()),
        started_at_ms,
    })
}

/// Whether `SCDynamicStoreCopyConsoleUser`'s answer is a person logged in at the GUI.
pub fn is_console_person(name: &str, uid: u32) -> bool {
    uid != 0 && !name.trim().is_empty() && !NOT_A_PERSON.contains(&name)
}

/// The sessions of a Mac: every live login record, plus the console user if no record
/// already names them at the console (login records are written by `loginwindow` but are
/// not guaranteed; the console owner is the ground truth for "who is at the screen").
/// `console` is what `SCDynamicStoreCopyConsoleUser` answered (name, uid).
pub fn sessions(
    console: Option<(&str, u32)>,
    entries: &[UtmpxEntry],
    alive: impl Fn(i32) -> bool,
) -> Vec<OsSession> {
    let mut out: Vec<OsSession> =
        entries.iter().take(UTMPX_MAX_RECORDS).filter_map(|e| session_from_utmpx(e, &alive)).collect();
    if let Some((name, _)) = console.filter(|(n, u)| is_console_person(n, *u))
        && !out.iter().any(|s| s.user == name && s.terminal == CONSOLE)
    {
        // The login time is not known from the dynamic store: 0 means "unknown".
        out.push(OsSession { user: name.to_owned(), terminal: CONSOLE.into(), host: None, started_at_ms: 0 });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Managed preferences

/// The preference domain a configuration profile's custom settings payload targets.
pub const PREFS_DOMAIN: &str = "com.sightline.agent";

/// Where macOS materialises the device-level managed preferences of [`PREFS_DOMAIN`].
pub const MANAGED_PLIST: &str = "/Library/Managed Preferences/com.sightline.agent.plist";

/// Managed preferences larger than this are not read (ours are a few hundred bytes).
pub const MANAGED_PLIST_MAX: u64 = 1 << 20;

/// Nesting deeper than this is refused rather than followed (no config field nests).
pub const PLIST_DEPTH_MAX: usize = 16;

/// The origin `RawConfig::merge_table` names in its messages.
pub const MANAGED_ORIGIN: &str = "managed preferences com.sightline.agent";

/// Why a managed value has no TOML form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlistError {
    #[error("a {0} value has no equivalent in agent.toml")]
    Unsupported(&'static str),
    #[error("the integer {0} does not fit a signed 64-bit integer")]
    OutOfRange(u64),
    #[error("nested deeper than {PLIST_DEPTH_MAX} levels")]
    TooDeep,
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// A property-list value as TOML: strings, booleans, integers, reals and dates map
/// directly, arrays and dictionaries recursively (for nested config fields). Binary data
/// and keyed-archiver UIDs have no TOML form and are refused.
pub fn toml_from_plist(v: &plist::Value) -> Result<toml::Value, PlistError> {
    toml_at_depth(v, 0)
}

fn toml_at_depth(v: &plist::Value, depth: usize) -> Result<toml::Value, PlistError> {
    if depth > PLIST_DEPTH_MAX {
        return Err(PlistError::TooDeep);
    }
    Ok(match v {
        plist::Value::String(s) => toml::Value::String(s.clone()),
        plist::Value::Boolean(b) => toml::Value::Boolean(*b),
        plist::Value::Integer(i) => match i.as_signed() {
            Some(i) => toml::Value::Integer(i),
            None => return Err(PlistError::OutOfRange(i.as_unsigned().unwrap_or(u64::MAX))),
        },
        plist::Value::Real(f) => toml::Value::Float(*f),
        plist::Value::Date(d) => {
            let text = d.to_xml_format();
            text.parse::<toml::value::Datetime>()
                .map(toml::Value::Datetime)
                .unwrap_or(toml::Value::String(text))
        }
        plist::Value::Array(items) => {
            toml::Value::Array(items.iter().map(|i| toml_at_depth(i, depth + 1)).collect::<Result<_, _>>()?)
        }
        plist::Value::Dictionary(d) => toml::Value::Table(
            d.iter()
                .map(|(k, v)| Ok((k.clone(), toml_at_depth(v, depth + 1)?)))
                .collect::<Result<_, PlistError>>()?,
        ),
        plist::Value::Data(_) => return Err(PlistError::Unsupported("data")),
        plist::Value::Uid(_) => return Err(PlistError::Unsupported("UID")),
        _ => return Err(PlistError::Unsupported("unknown")),
    })
}

/// What the MDM manages, ready for `RawConfig::merge_table`, and the values that had to be
/// dropped (one message each, naming the key and why, never the value).
#[derive(Debug, Default, PartialEq)]
pub struct ManagedTable {
    pub table: toml::Table,
    pub dropped: Vec<String>,
}

/// Builds the managed layer from the values the MDM forces (`forced`: known keys only, as
/// `CFPreferencesAppValueIsForced` confirmed) and the key list of the profile's plist
/// (`profile`), from which keys the agent does not know are added so `merge_table`
/// reports them instead of their being silently ignored. `Payload*` keys are the
/// profile's own bookkeeping, never settings.
pub fn managed_table(
    forced: Vec<(String, plist::Value)>,
    profile: Option<&plist::Dictionary>,
    known: &[&str],
) -> ManagedTable {
    let mut out = ManagedTable::default();
    for (key, value) in forced {
        match toml_from_plist(&value) {
            Ok(v) => {
                out.table.insert(key, v);
            }
            Err(e) => out.dropped.push(format!("`{key}`: {e}")),
        }
    }
    let unknown = profile
        .into_iter()
        .flat_map(|d| d.iter())
        .filter(|(k, _)| !known.contains(&k.as_str()) && !k.starts_with("Payload"));
    for (key, value) in unknown {
        // The value is irrelevant (merge_table refuses the key by name); keep it when it
        // converts so `check-config` can show what was set.
        let v = toml_from_plist(value).unwrap_or_else(|_| toml::Value::String("(unsupported value)".into()));
        out.table.insert(key.clone(), v);
    }
    out
}

/// Reads a managed-preferences plist (binary or XML), at most `max` bytes. A missing file
/// is `Ok(None)`: no profile targets the domain.
pub fn read_managed_plist(path: &Path, max: u64) -> Result<Option<plist::Dictionary>, PlistError> {
    let unreadable = |reason: String| PlistError::Unreadable { path: path.display().to_string(), reason };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(unreadable(format!("larger than {max} bytes")));
    }
    match plist::Value::from_reader(std::io::Cursor::new(bytes)) {
        Ok(plist::Value::Dictionary(d)) => Ok(Some(d)),
        Ok(_) => Err(unreadable("not a dictionary".into())),
        Err(e) => Err(unreadable(format!("not a property list ({e})"))),
    }
}

// ---------------------------------------------------------------------------------------
// Secure Enclave key record

/// The state-dir file that records the Secure Enclave key; its presence is what
/// `keys::open` takes as "a hardware key exists here".
pub const ENCLAVE_RECORD: &str = "secure-enclave.key";

/// The record is a few hundred bytes; anything much larger is not ours.
pub const ENCLAVE_RECORD_MAX: u64 = 64 * 1024;

const ENCLAVE_RECORD_VERSION: u32 = 1;

/// What the state dir remembers of the Secure Enclave key: the keychain tag that finds it,
/// and its public key, so a later start notices a key that vanished or was replaced. The
/// private key never leaves the Secure Enclave; nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnclaveRecord {
    pub version: u32,
    /// `kSecAttrApplicationTag` of the private key, as UTF-8.
    pub tag: String,
    /// DER SubjectPublicKeyInfo, hex.
    pub public_key_spki: String,
}

impl EnclaveRecord {
    pub fn new(tag: &str, spki: &[u8]) -> EnclaveRecord {
        EnclaveRecord {
            version: ENCLAVE_RECORD_VERSION,
            tag: tag.to_owned(),
            public_key_spki: hex::encode(spki),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and an integer cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a record: a known version, a tag of ours, a P-256 SPKI.
    pub fn parse(bytes: &[u8]) -> Result<EnclaveRecord, KeyError> {
        let bad = |why: String| KeyError::Corrupt(format!("{ENCLAVE_RECORD}: {why}"));
        let r: EnclaveRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if r.version != ENCLAVE_RECORD_VERSION {
            return Err(bad(format!("unknown version {}", r.version)));
        }
        if !r.tag.starts_with(ENCLAVE_TAG_PREFIX) {
            return Err(bad("the keychain tag is not one this agent creates".into()));
        }
        r.spki()?;
        Ok(r)
    }

    /// The recorded public key as DER.
    pub fn spki(&self) -> Result<Vec<u8>, KeyError> {
        let bad = |why: &str| KeyError::Corrupt(format!("{ENCLAVE_RECORD}: {why}"));
        let spki = hex::decode(&self.public_key_spki).map_err(|_| bad("the public key is not hex"))?;
        sightline_proto::p256::point_from_spki(&spki).map_err(|_| bad("the public key is not P-256"))?;
        Ok(spki)
    }
}

const ENCLAVE_TAG_PREFIX: &str = "com.sightline.agent.device-key-";

/// The keychain application tag for the state dir's key: derived from the state dir (as
/// the software key's keychain account is) so two agents on one Mac never share or
/// replace each other's key.
pub fn enclave_tag(state_dir: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, state_dir.to_string_lossy().as_bytes());
    format!("{ENCLAVE_TAG_PREFIX}{}", hex::encode(&digest.as_ref()[..8]))
}

/// Reads the record if there is one (at most [`ENCLAVE_RECORD_MAX`] bytes).
pub fn read_enclave_record(state_dir: &Path) -> Result<Option<EnclaveRecord>, KeyError> {
    let path = state_dir.join(ENCLAVE_RECORD);
    let storage = |e: std::io::Error| KeyError::Storage(format!("reading {}: {e}", path.display()));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage(e)),
    };
    let mut bytes = Vec::new();
    file.take(ENCLAVE_RECORD_MAX + 1).read_to_end(&mut bytes).map_err(storage)?;
    if bytes.len() as u64 > ENCLAVE_RECORD_MAX {
        return Err(KeyError::Corrupt(format!("{ENCLAVE_RECORD} is larger than {ENCLAVE_RECORD_MAX} bytes")));
    }
    EnclaveRecord::parse(&bytes).map(Some)
}

/// The error domain of `CFError`s that carry an `OSStatus`.
pub const OSSTATUS_DOMAIN: &str = "NSOSStatusErrorDomain";

/// A Security framework `OSStatus` from `op` as a [`KeyError`] an administrator can act on.
/// `detail` is the framework's own description, when it gave one (never key material).
pub fn enclave_status(op: &str, status: i64, detail: Option<&str>) -> KeyError {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    let why = match status {
        -34018 => {
            "the agent binary is not signed with the keychain-access-groups entitlement \
             (errSecMissingEntitlement, -34018): Secure Enclave keys live in the data protection \
             keychain, which only a binary signed with that entitlement and a provisioning profile \
             that grants it may use"
        }
        -25308 => {
            "the keychain refuses access (errSecInteractionNotAllowed, -25308): the key is usable \
             only once the Mac has been unlocked after it started"
        }
        -25300 => {
            return KeyError::Stale(format!(
                "{op}: the Secure Enclave key is no longer in the keychain (errSecItemNotFound, -25300){detail}; re-enroll"
            ));
        }
        -25291 => "no keychain is available to this process (errSecNotAvailable, -25291)",
        -25293 => "the key's access control refused its use (errSecAuthFailed, -25293)",
        -4 => {
            "not supported on this Mac (errSecUnimplemented, -4): Macs without a Secure Enclave \
             (Intel without a T2 chip) cannot hold the key"
        }
        -26276 => {
            "the Secure Enclave refused to create the key pair (-26276), which is what a launchd \
             daemon outside any user session gets"
        }
        _ => return KeyError::Unavailable(format!("{op}: OSStatus {status}{detail}")),
    };
    KeyError::Unavailable(format!("{op}: {why}{detail}"))
}

/// A `CFError` from the Security framework as a [`KeyError`]: by its `OSStatus` when it
/// carries one, otherwise by domain and code (CryptoTokenKit reports in its own domain).
pub fn enclave_cf_error(op: &str, domain: &str, code: i64, description: &str) -> KeyError {
    if domain == OSSTATUS_DOMAIN {
        enclave_status(op, code, Some(description))
    } else {
        KeyError::Unavailable(format!("{op}: {description} ({domain} {code})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: i16, pid: i32, user: &str, line: &str, host: &str, secs: i64) -> UtmpxEntry {
        // As the C struct holds them: NUL-padded fixed-size fields.
        let field = |s: &str, n: usize| {
            let mut v = s.as_bytes().to_vec();
            v.resize(n, 0);
            v
        };
        UtmpxEntry {
            kind,
            pid,
            user: field(user, 256),
            line: field(line, 32),
            host: field(host, 256),
            tv_sec: secs,
            tv_usec: 250_000,
        }
    }

    #[test]
    fn c_text_stops_at_nul_and_trims() {
        assert_eq!(c_text(b"alice\0\0garbage"), "alice");
        assert_eq!(c_text(b" ttys001 "), "ttys001");
        assert_eq!(c_text(b"\0"), "");
        assert_eq!(c_text(b"no-nul"), "no-nul");
        assert_eq!(c_text(&[0x66, 0xff, 0x6f, 0]), "f\u{fffd}o");
    }

    #[test]
    fn utmpx_logins_that_still_live() {
        let alive = |pid: i32| pid != 300;
        let ssh = entry(USER_PROCESS, 100, "alice", "ttys001", "10.0.0.5", 1_700_000_100);
        assert_eq!(
            session_from_utmpx(&ssh, alive),
            Some(OsSession {
                user: "alice".into(),
                terminal: "ttys001".into(),
                host: Some("10.0.0.5".into()),
                started_at_ms: 1_700_000_100_250,
            })
        );
        let local = session_from_utmpx(&entry(USER_PROCESS, 101, "bob", "console", "", 5), alive).unwrap();
        assert_eq!((local.host, local.started_at_ms), (None, 5_250));
        // Dead process, other record types, no user, and pids that would probe a process group.
        assert_eq!(session_from_utmpx(&entry(USER_PROCESS, 300, "m", "ttys002", "", 1), alive), None);
        assert_eq!(session_from_utmpx(&entry(8, 100, "alice", "ttys001", "", 1), alive), None); // DEAD_PROCESS
        assert_eq!(session_from_utmpx(&entry(2, 100, "reboot", "~", "", 1), alive), None); // BOOT_TIME
        assert_eq!(session_from_utmpx(&entry(USER_PROCESS, 100, "", "ttys001", "", 1), alive), None);
        let probed = std::cell::Cell::new(false);
        let spy = |_: i32| {
            probed.set(true);
            true
        };
        assert_eq!(session_from_utmpx(&entry(USER_PROCESS, 0, "alice", "x", "", 1), spy), None);
        assert_eq!(session_from_utmpx(&entry(USER_PROCESS, -1, "alice", "x", "", 1), spy), None);
        assert!(!probed.get(), "alive() must not be asked about pid <= 0");
    }

    #[test]
    fn a_torn_timestamp_does_not_overflow() {
        let mut e = entry(USER_PROCESS, 1, "alice", "console", "", i64::MAX);
        e.tv_usec = -5;
        assert_eq!(session_from_utmpx(&e, |_| true).unwrap().started_at_ms, i64::MAX);
    }

    #[test]
    fn who_counts_as_the_console_user() {
        assert!(is_console_person("alice", 501));
        assert!(!is_console_person("loginwindow", 0));
        assert!(!is_console_person("loginwindow", 501), "the login window is nobody, whatever its uid");
        assert!(!is_console_person("_mbsetupuser", 248));
        assert!(!is_console_person("root", 0));
        assert!(!is_console_person("someone", 0), "uid 0 is not a console person");
        assert!(!is_console_person("", 501));
    }

    #[test]
    fn console_user_joins_the_login_records() {
        let alive = |_| true;
        let records = [
            entry(USER_PROCESS, 10, "alice", "console", "", 1_700_000_000),
            entry(USER_PROCESS, 11, "alice", "ttys000", "", 1_700_000_100),
        ];
        // Alice's console login is already recorded: not added twice, and keeps its time.
        let s = sessions(Some(("alice", 501)), &records, alive);
        assert_eq!(s.len(), 2);
        assert!(s.iter().any(|s| s.terminal == "console" && s.started_at_ms == 1_700_000_000_250));
        // Fast user switching: bob is at the screen but has no console record.
        let s = sessions(Some(("bob", 502)), &records, alive);
        assert_eq!(
            s.last(),
            Some(&OsSession { user: "bob".into(), terminal: "console".into(), host: None, started_at_ms: 0 })
        );
        // At the login window: only the records.
        assert_eq!(sessions(Some(("loginwindow", 0)), &records, alive).len(), 2);
        assert_eq!(sessions(None, &[], alive), vec![]);
    }

    #[test]
    fn login_records_are_bounded() {
        let many = vec![entry(USER_PROCESS, 1, "alice", "ttys000", "", 1); UTMPX_MAX_RECORDS + 10];
        assert_eq!(sessions(None, &many, |_| true).len(), UTMPX_MAX_RECORDS);
    }

    fn dict(pairs: &[(&str, plist::Value)]) -> plist::Dictionary {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn plist_values_as_toml() {
        use plist::Value as P;
        use toml::Value as T;
        assert_eq!(toml_from_plist(&P::String("1h".into())), Ok(T::String("1h".into())));
        assert_eq!(toml_from_plist(&P::Boolean(false)), Ok(T::Boolean(false)));
        assert_eq!(toml_from_plist(&P::Integer(64.into())), Ok(T::Integer(64)));
        assert_eq!(toml_from_plist(&P::Integer((-3i64).into())), Ok(T::Integer(-3)));
        assert_eq!(toml_from_plist(&P::Integer(u64::MAX.into())), Err(PlistError::OutOfRange(u64::MAX)));
        assert_eq!(toml_from_plist(&P::Real(0.5)), Ok(T::Float(0.5)));
        let date = plist::Date::from_xml_format("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(toml_from_plist(&P::Date(date)), Ok(T::Datetime("2024-05-01T12:00:00Z".parse().unwrap())));
        assert_eq!(toml_from_plist(&P::Data(vec![1])), Err(PlistError::Unsupported("data")));
        assert_eq!(toml_from_plist(&P::Uid(plist::Uid::new(1))), Err(PlistError::Unsupported("UID")));
    }

    #[test]
    fn nested_plist_values_as_toml() {
        use plist::Value as P;
        let nested = P::Dictionary(dict(&[
            ("mode", P::String("enforce".into())),
            ("allow", P::Array(vec![P::String("a".into()), P::Integer(2.into())])),
        ]));
        let want: toml::Table = toml::from_str("mode = \"enforce\"\nallow = [\"a\", 2]").unwrap();
        assert_eq!(toml_from_plist(&nested), Ok(toml::Value::Table(want)));
        // One bad leaf refuses the whole value, rather than quietly changing its shape.
        let bad = P::Array(vec![P::String("a".into()), P::Data(vec![])]);
        assert_eq!(toml_from_plist(&bad), Err(PlistError::Unsupported("data")));
        let mut deep = P::Boolean(true);
        for _ in 0..=PLIST_DEPTH_MAX {
            deep = P::Array(vec![deep]);
        }
        assert_eq!(toml_from_plist(&deep), Err(PlistError::TooDeep));
    }

    #[test]
    fn the_managed_layer_keeps_forced_values_and_names_unknown_keys() {
        use plist::Value as P;
        let known = crate::config::RawConfig::FIELDS;
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
        let profile = include_bytes!("../../../packaging/macos/sightline.mobileconfig");
        let v = plist::Value::from_reader(std::io::Cursor::new(&profile[..])).unwrap();
        let payloads = v.as_dictionary().unwrap()["PayloadContent"].as_array().unwrap();
        let settings = payloads
            .iter()
            .filter_map(plist::Value::as_dictionary)
            .find(|p| p.get("PayloadType").and_then(plist::Value::as_string) == Some(PREFS_DOMAIN))
            .expect("a com.sightline.agent payload");
        let known = crate::config::RawConfig::FIELDS;
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

    #[test]
    fn reading_the_managed_plist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("com.sightline.agent.plist");
        assert_eq!(read_managed_plist(&path, MANAGED_PLIST_MAX), Ok(None));

        let mut d = plist::Dictionary::new();
        d.insert("watch".into(), plist::Value::Boolean(true));
        plist::Value::Dictionary(d.clone()).to_file_binary(&path).unwrap();
        assert_eq!(read_managed_plist(&path, MANAGED_PLIST_MAX), Ok(Some(d.clone())));
        plist::Value::Dictionary(d.clone()).to_file_xml(&path).unwrap();
        assert_eq!(read_managed_plist(&path, MANAGED_PLIST_MAX), Ok(Some(d)));

        assert!(matches!(read_managed_plist(&path, 10), Err(PlistError::Unreadable { .. })));
        std::fs::write(&path, b"not a plist").unwrap();
        assert!(matches!(read_managed_plist(&path, MANAGED_PLIST_MAX), Err(PlistError::Unreadable { .. })));
        plist::Value::Array(vec![]).to_file_xml(&path).unwrap();
        let err = read_managed_plist(&path, MANAGED_PLIST_MAX).unwrap_err().to_string();
        assert!(err.ends_with("not a dictionary"), "{err}");
    }

    fn test_spki() -> Vec<u8> {
        use crate::keys::DeviceKey;
        crate::keys::SoftwareKey::generate().unwrap().public_key_spki()
    }

    #[test]
    fn security_framework_errors_say_what_to_do() {
        let msg = |e: KeyError| e.to_string();
        let e = enclave_status("creating the key", -34018, None);
        assert!(matches!(e, KeyError::Unavailable(_)));
        assert!(msg(e).contains("not signed with the keychain-access-groups entitlement"));
        let e = enclave_status("finding the key", -25300, None);
        assert!(matches!(e, KeyError::Stale(_)), "{e:?}");
        assert!(msg(enclave_status("x", -25308, None)).contains("unlocked"));
        assert_eq!(msg(enclave_status("signing", -99999, Some("boom"))), "signing: OSStatus -99999 (boom)");
        let e = enclave_cf_error(
            "creating the key",
            OSSTATUS_DOMAIN,
            -34018,
            "A required entitlement isn't present.",
        );
        assert!(msg(e).ends_with("(A required entitlement isn't present.)"));
        let e = enclave_cf_error("signing", "CryptoTokenKit", -7, "token removed");
        assert_eq!(msg(e), "signing: token removed (CryptoTokenKit -7)");
    }

    #[test]
    fn enclave_tags_are_per_state_dir() {
        let a = enclave_tag(Path::new("/Library/Application Support/Sightline/state"));
        let b = enclave_tag(Path::new("/tmp/other-agent/state"));
        assert_ne!(a, b);
        assert_eq!(a, enclave_tag(Path::new("/Library/Application Support/Sightline/state")));
        assert!(a.starts_with(ENCLAVE_TAG_PREFIX) && a.len() == ENCLAVE_TAG_PREFIX.len() + 16, "{a}");
    }

    #[test]
    fn enclave_record_round_trip_and_refusals() {
        let spki = test_spki();
        let tag = enclave_tag(Path::new("/state"));
        let rec = EnclaveRecord::new(&tag, &spki);
        let parsed = EnclaveRecord::parse(&rec.to_json()).unwrap();
        assert_eq!((parsed.tag.as_str(), parsed.spki().unwrap()), (tag.as_str(), spki.clone()));

        let corrupt = |r: &EnclaveRecord| {
            matches!(EnclaveRecord::parse(&serde_json::to_vec(r).unwrap()), Err(KeyError::Corrupt(_)))
        };
        assert!(corrupt(&EnclaveRecord { version: 2, ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { tag: "com.example.other".into(), ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { public_key_spki: "zz".into(), ..rec.clone() }));
        assert!(corrupt(&EnclaveRecord { public_key_spki: hex::encode(&spki[1..]), ..rec.clone() }));
        assert!(matches!(EnclaveRecord::parse(b"{"), Err(KeyError::Corrupt(_))));
    }

    #[test]
    fn reading_the_enclave_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_enclave_record(dir.path()), Ok(None)));
        let spki = test_spki();
        let rec = EnclaveRecord::new(&enclave_tag(dir.path()), &spki);
        crate::state::write_atomic(&dir.path().join(ENCLAVE_RECORD), &rec.to_json(), false).unwrap();
        assert_eq!(read_enclave_record(dir.path()).unwrap(), Some(rec));
        std::fs::write(dir.path().join(ENCLAVE_RECORD), vec![b' '; ENCLAVE_RECORD_MAX as usize + 1]).unwrap();
        assert!(matches!(read_enclave_record(dir.path()), Err(KeyError::Corrupt(_))));
    }
}
