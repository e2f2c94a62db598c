//! Registry values as the `windows` module reads them (the registry crate's types, made
//! portable so the mapping to the MDM layer of the configuration is tested everywhere).

/// A registry value as the agent reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    /// `REG_DWORD` or `REG_QWORD`.
    Integer(u64),
    /// `REG_SZ` or `REG_EXPAND_SZ`.
    String(String),
    /// Binary, multi-string and anything else: not a setting.
    Other,
}

/// Policy registry values as a table. Admin templates and Intune write booleans as the
/// strings `true`/`false` or as DWORDs, so strings that spell a boolean become one; a
/// DWORD stays a number (the field's type decides, and a wrong one is reported).
pub fn from_registry(values: impl IntoIterator<Item = (String, RegData)>) -> toml::Table {
    let mut t = toml::Table::new();
    for (name, data) in values {
        let v = match data {
            RegData::Integer(i) => match i64::try_from(i) {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => continue,
            },
            RegData::String(s) => match s.as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => toml::Value::String(s),
            },
            RegData::Other => continue,
        };
        t.insert(name, v);
    }
    t
}
