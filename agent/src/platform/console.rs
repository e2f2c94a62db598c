//! The portable half of the macOS integration. The FFI in the `macos` module copies what
//! the system returns into plain Rust values and hands them here, so every decision about
//! them is compiled and unit-tested on every platform:
//!
//! - login records (`utmpx`) and the console user → [`OsSession`]s ([`sessions`]);
//! - managed preferences (`com.sightline.agent`) as `plist::Value`s → the TOML table that
//!   `RawConfig::merge_table` type-checks ([`toml_from_plist`], [`managed_table`]).

use std::io::Read;
use std::path::Path;

use super::OsSession;

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
    match crate::plist_bounded::from_bytes(&bytes) {
        Ok(plist::Value::Dictionary(d)) => Ok(Some(d)),
        Ok(_) => Err(unreadable("not a dictionary".into())),
        Err(e) => Err(unreadable(e.to_string())),
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
}
