//! Who may open the agent's private directories: the state dir (keys, identity, spool) and
//! the quarantine (credential files taken off users).
//!
//! - Unix: mode 0700, owned by the root the agent runs as.
//! - Windows: owned by Administrators, with an explicit, *protected* DACL — full control
//!   for SYSTEM and the Administrators group only, inherited by every file and directory
//!   beneath, nothing inherited from `ProgramData` (where Users may read). Every entry
//!   beneath is reset to inherit it, so a directory a user created (or granted themselves)
//!   before the agent was installed is not trusted as it was found. A file moved in (the
//!   quarantine) has its own entries dropped so it inherits. Applied through the Win32
//!   security API (`crate::windows::dacl`); the descriptors are SDDL (`crate::platform::sddl`).

use std::io;
use std::path::Path;

// The descriptors live with the Windows FFI's portable half, which applies them; they are
// part of this module's contract, so they are named here too.
pub use crate::platform::sddl::{INHERIT_ONLY_SDDL, PRIVATE_DIR_SDDL, aces};

/// After moving a file into a restricted directory: on Windows its own entries go and it
/// inherits the directory's (a renamed file keeps the list it had); on Unix its mode is
/// set by the caller.
pub fn inherit(path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        crate::windows::dacl::inherit(path)
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        Ok(())
    }
}

/// Restricts a directory the agent owns to itself (see the module doc).
pub fn restrict_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(windows)]
    {
        crate::windows::dacl::restrict_dir(path)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Ok(())
    }
}

/// Sets a file's Unix mode beneath a capability directory. Elsewhere nothing: on Windows a
/// file inherits the DACL of the directory the agent restricted.
pub fn set_mode(dir: &cap_std::fs::Dir, name: impl AsRef<Path>, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use cap_std::fs::PermissionsExt;
        dir.set_permissions(name, cap_std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, name, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_dir_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        restrict_dir(d.path()).unwrap();
        assert_eq!(std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
