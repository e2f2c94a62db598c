//! The registry, through Microsoft's `windows-registry` crate: the MDM's policy values for
//! the agent, and the Chromium-family `ExtensionInstallBlocklist` lists revocation writes.
//! Never `reg.exe`: a program found on `PATH` is whatever a user put there, and its text
//! output changes with the display language.

use windows_registry::{LOCAL_MACHINE, Type, Value};

use crate::platform::registry::{RegData, from_registry};

/// At most this many values are read from one key: a policy key has a dozen; a hostile or
/// corrupt one must not make the agent allocate without bound.
const MAX_VALUES: usize = 1024;

/// The values under `HKLM\<key>` (64-bit view), or `None` when the key does not exist.
pub fn policy_values(key: &str) -> Option<(String, toml::Table)> {
    let k = LOCAL_MACHINE.options().read().open(key).ok()?;
    let values = k.values().ok()?.take(MAX_VALUES).map(|(name, v)| (name, data(v)));
    Some((format!(r"HKLM\{key}"), from_registry(values)))
}

fn data(v: Value) -> RegData {
    match v.ty() {
        Type::U32 => u32::try_from(v).map_or(RegData::Other, |n| RegData::Integer(u64::from(n))),
        Type::U64 => u64::try_from(v).map_or(RegData::Other, RegData::Integer),
        Type::String | Type::ExpandString => String::try_from(v).map_or(RegData::Other, RegData::String),
        _ => RegData::Other,
    }
}

/// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`: the key does not exist.
const NOT_FOUND: i32 = 0x8007_0002_u32 as i32;

/// The string values of `HKLM\<key>` as (name, value), empty when the key does not exist.
pub fn string_values(key: &str) -> Result<Vec<(String, String)>, String> {
    let k = match LOCAL_MACHINE.options().read().open(key) {
        Ok(k) => k,
        Err(e) if e.code().0 == NOT_FOUND => return Ok(Vec::new()),
        Err(e) => return Err(format!(r"opening HKLM\{key}: {}", e.message())),
    };
    let values = k.values().map_err(|e| format!(r"listing HKLM\{key}: {}", e.message()))?;
    Ok(values
        .take(MAX_VALUES)
        .filter_map(|(name, v)| match data(v) {
            RegData::String(s) => Some((name, s)),
            _ => None,
        })
        .collect())
}

/// Sets the string value `name` under `HKLM\<key>`, creating the key.
pub fn set_string(key: &str, name: &str, value: &str) -> Result<(), String> {
    let k = LOCAL_MACHINE
        .options()
        .read()
        .write()
        .create()
        .open(key)
        .map_err(|e| format!(r"creating HKLM\{key}: {}", e.message()))?;
    k.set_string(name, value).map_err(|e| format!(r"writing HKLM\{key}\{name}: {}", e.message()))
}

/// Removes `HKLM\<key>` and everything beneath it (tests clean up after themselves).
pub fn remove_tree(key: &str) -> Result<(), String> {
    LOCAL_MACHINE.remove_tree(key).map_err(|e| format!(r"removing HKLM\{key}: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real keys in Wine's (or Windows') registry, under a name no one else uses.
    fn scratch(name: &str) -> String {
        format!(r"SOFTWARE\SightlineTest\{name}-{}", std::process::id())
    }

    #[test]
    fn policy_values_are_read_typed_from_a_real_key() {
        let key = scratch("policy");
        let k = LOCAL_MACHINE.create(&key).unwrap();
        k.set_string("resync_interval", "2h").unwrap();
        k.set_string("watch", "false").unwrap();
        k.set_u32("cpu_percent", 10).unwrap();
        k.set_u64("memory_mb", 256).unwrap();
        k.set_bytes("opaque", Type::Bytes, &[1, 2, 3]).unwrap();
        let (origin, table) = policy_values(&key).unwrap();
        remove_tree(&key).unwrap();
        assert_eq!(origin, format!(r"HKLM\{key}"));
        assert_eq!(table["resync_interval"].as_str(), Some("2h"));
        assert_eq!(table["watch"].as_bool(), Some(false));
        assert_eq!(table["cpu_percent"].as_integer(), Some(10));
        assert_eq!(table["memory_mb"].as_integer(), Some(256));
        assert!(!table.contains_key("opaque"), "binary values are not settings");
        assert!(policy_values(&key).is_none(), "a missing key is no managed values");
    }

    #[test]
    fn string_values_round_trip_and_a_missing_key_is_empty() {
        let key = scratch("strings");
        assert_eq!(string_values(&key).unwrap(), Vec::<(String, String)>::new());
        set_string(&key, "1", "aaaa").unwrap();
        set_string(&key, "2", "bbbb").unwrap();
        let mut got = string_values(&key).unwrap();
        got.sort();
        remove_tree(&key).unwrap();
        assert_eq!(got, [("1".into(), "aaaa".into()), ("2".into(), "bbbb".into())]);
    }
}
