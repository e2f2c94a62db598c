//! The portable half of the OS integrations. The FFI in the `macos` and `windows` modules
//! (compiled on their OS only) copies what the system returns into the plain values defined
//! here and hands them over, so every decision about them is compiled and unit-tested on
//! every platform. Nothing here calls the OS, and nothing here depends on the rest of the
//! agent: the FFI modules sit on top of this one, and detection and configuration on top of
//! those.

pub mod console;
pub mod registry;
pub mod sddl;
pub mod wts;

/// One login session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsSession {
    pub user: String,
    /// `pts/0`, `tty2`, `seat0`, `console`.
    pub terminal: String,
    /// Remote host for SSH and similar logins.
    pub host: Option<String>,
    pub started_at_ms: i64,
}
