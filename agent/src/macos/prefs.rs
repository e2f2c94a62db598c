//! Managed preferences (`com.sightline.agent`): the values an MDM's configuration profile
//! forces, read through CoreFoundation's preferences API.
//!
//! A key counts only if `CFPreferencesAppValueIsForced` says a profile manages it: a value
//! a user or a stray `defaults write` left in the domain is not the MDM's word and must not
//! override `agent.toml`. Keys the profile sets that the agent does not know are read from
//! the materialised profile plist and passed on, so `RawConfig::merge_table` reports them
//! (a typo in a fleet-wide profile is otherwise silently ignored).
//!
//! Values cross from CoreFoundation into `plist::Value` here; everything after that is in
//! [`crate::platform::console`] and tested on every platform.
#![allow(unsafe_code)]

use std::path::Path;

use core_foundation::array::CFArray;
use core_foundation::base::{CFType, TCFType};
use core_foundation::boolean::CFBoolean;
use core_foundation::data::CFData;
use core_foundation::date::CFDate;
use core_foundation::dictionary::CFDictionary;
use core_foundation::number::CFNumber;
use core_foundation::string::CFString;
use core_foundation_sys::number::CFNumberIsFloatType;
use core_foundation_sys::preferences::{CFPreferencesAppValueIsForced, CFPreferencesCopyAppValue};

use crate::platform::console::{self, PLIST_DEPTH_MAX};

/// A dictionary or array with more entries than this is refused (no setting is a list of
/// thousands; a corrupt profile must not cost the agent its memory budget).
const CONTAINER_MAX: usize = 10_000;

/// Seconds from the Unix epoch to CoreFoundation's (2001-01-01T00:00:00Z).
const CF_EPOCH_UNIX_SECS: f64 = 978_307_200.0;

/// The forced values among `keys` (`RawConfig::FIELDS`), plus unknown keys the profile
/// sets; `None` when no profile manages the domain.
pub fn managed_values(keys: &[&str]) -> Option<(String, toml::Table)> {
    let forced = keys.iter().filter_map(|k| forced_value(k)).collect();
    let profile = console::read_managed_plist(Path::new(console::MANAGED_PLIST), console::MANAGED_PLIST_MAX)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Cannot list the keys of the managed preferences; keys the agent does not know will not be reported.");
            None
        });
    let managed = console::managed_table(forced, profile.as_ref(), keys);
    for problem in &managed.dropped {
        tracing::warn!(problem = %problem, "A managed preference was ignored.");
    }
    (!managed.table.is_empty()).then(|| (console::MANAGED_ORIGIN.to_owned(), managed.table))
}

/// The value of `key` if a configuration profile forces it. Values that cannot be
/// represented are logged (key and reason, never the value) and skipped.
fn forced_value(key: &str) -> Option<(String, plist::Value)> {
    let cf_key = CFString::new(key);
    let domain = CFString::from_static_string(console::PREFS_DOMAIN);
    // SAFETY: both arguments are valid CFStrings for the duration of the calls.
    let forced =
        unsafe { CFPreferencesAppValueIsForced(cf_key.as_concrete_TypeRef(), domain.as_concrete_TypeRef()) };
    if forced == 0 {
        return None;
    }
    // SAFETY: as above; the result follows the Copy rule (we own it) or is NULL.
    let raw =
        unsafe { CFPreferencesCopyAppValue(cf_key.as_concrete_TypeRef(), domain.as_concrete_TypeRef()) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: non-NULL and owned (Copy rule).
    let value = unsafe { CFType::wrap_under_create_rule(raw) };
    match plist_from_cf(&value, 0) {
        Ok(v) => Some((key.to_owned(), v)),
        Err(reason) => {
            tracing::warn!(key, reason, "A managed preference was ignored.");
            None
        }
    }
}

/// A CoreFoundation property-list object as a `plist::Value`.
fn plist_from_cf(v: &CFType, depth: usize) -> Result<plist::Value, &'static str> {
    if depth > PLIST_DEPTH_MAX {
        return Err("nested too deeply");
    }
    if let Some(s) = v.downcast::<CFString>() {
        return Ok(plist::Value::String(s.to_string()));
    }
    if let Some(b) = v.downcast::<CFBoolean>() {
        return Ok(plist::Value::Boolean(b.into()));
    }
    if let Some(n) = v.downcast::<CFNumber>() {
        return number(&n);
    }
    if let Some(d) = v.downcast::<CFDate>() {
        return date(&d);
    }
    if let Some(d) = v.downcast::<CFData>() {
        return Ok(plist::Value::Data(d.bytes().to_vec()));
    }
    if let Some(a) = v.downcast::<CFArray>() {
        return array(&a, depth);
    }
    if let Some(d) = v.downcast::<CFDictionary>() {
        return dictionary(&d, depth);
    }
    Err("not a property-list type")
}

fn number(n: &CFNumber) -> Result<plist::Value, &'static str> {
    // SAFETY: n is a valid CFNumber.
    let is_float = unsafe { CFNumberIsFloatType(n.as_concrete_TypeRef()) } != 0;
    if is_float {
        n.to_f64().map(plist::Value::Real).ok_or("an unreadable real number")
    } else {
        n.to_i64().map(|i| plist::Value::Integer(i.into())).ok_or("an integer out of range")
    }
}

fn date(d: &CFDate) -> Result<plist::Value, &'static str> {
    let unix = d.abs_time() + CF_EPOCH_UNIX_SECS;
    let time = std::time::Duration::try_from_secs_f64(unix)
        .ok()
        .and_then(|since| std::time::UNIX_EPOCH.checked_add(since))
        .ok_or("a date before 1970")?;
    Ok(plist::Value::Date(time.into()))
}

fn array(a: &CFArray, depth: usize) -> Result<plist::Value, &'static str> {
    let values = a.get_all_values();
    if values.len() > CONTAINER_MAX {
        return Err("an array with too many entries");
    }
    let items = values
        .into_iter()
        .map(|item| {
            // SAFETY: the array holds valid CF objects and keeps them alive while `a`
            // lives; wrapping under the get rule retains each one.
            plist_from_cf(&unsafe { CFType::wrap_under_get_rule(item) }, depth + 1)
        })
        .collect::<Result<_, _>>()?;
    Ok(plist::Value::Array(items))
}

fn dictionary(d: &CFDictionary, depth: usize) -> Result<plist::Value, &'static str> {
    let (keys, values) = d.get_keys_and_values();
    if keys.len() > CONTAINER_MAX {
        return Err("a dictionary with too many entries");
    }
    let mut out = plist::Dictionary::new();
    for (k, v) in keys.into_iter().zip(values) {
        // SAFETY: as for arrays: valid, retained by the dictionary, retained again here.
        let (k, v) = unsafe { (CFType::wrap_under_get_rule(k), CFType::wrap_under_get_rule(v)) };
        let key = k.downcast::<CFString>().ok_or("a dictionary key that is not a string")?;
        out.insert(key.to_string(), plist_from_cf(&v, depth + 1)?);
    }
    Ok(plist::Value::Dictionary(out))
}
