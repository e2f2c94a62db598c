//! The agent's configuration and the values an MDM manages: agent.toml text, a macOS
//! managed-preferences plist (XML or binary), Windows policy registry values. Each parses or
//! is refused with errors that name the fields; a configuration that resolves satisfies the
//! bounds `check-config` promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_agent::config::{RawConfig, managed};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(raw) = RawConfig::parse(&text, "fuzz.toml")
        && let Ok(c) = raw.resolve()
    {
        assert!(c.cpu_percent >= 1 && c.cpu_percent <= 100, "cpu_percent {}", c.cpu_percent);
        assert!(c.resync_interval >= std::time::Duration::from_secs(60));
        assert!(c.spool_max_bytes > 0);
    }
    // Registry values as `name=value` lines: numbers as DWORDs, the rest as strings.
    let values = text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| {
        let data = v
            .parse::<u64>()
            .map_or_else(|_| managed::RegData::String(v.to_owned()), managed::RegData::Integer);
        (k.to_owned(), data)
    });
    if let Ok(text) = toml::to_string(&managed::from_registry(values))
        && let Ok(raw) = RawConfig::parse(&text, "registry")
    {
        let _ = raw.resolve();
    }
    if let Ok(v) = plist::Value::from_reader(std::io::Cursor::new(data)) {
        // What the MDM sets is read as the file's own keys would be.
        let table = managed::from_plist(&v);
        if let Ok(text) = toml::to_string(&table)
            && let Ok(raw) = RawConfig::parse(&text, "mdm")
        {
            let _ = raw.resolve();
        }
    }
});
