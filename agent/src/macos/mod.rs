//! macOS system APIs the agent needs, behind `cfg(target_os = "macos")`: who is at the
//! console and logged in, and the MDM's managed preferences. The FFI is here and nowhere else.

pub mod prefs;
pub mod sessions;
