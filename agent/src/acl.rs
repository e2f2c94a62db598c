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
//!   security API (`crate::windows::dacl`); the descriptors are the SDDL below.

use std::io;
use std::path::Path;

/// Owner Administrators (`BA`); protected (`P`), auto-inherited (`AI`) DACL; full access
/// (`FA`) for SYSTEM (`SY`) and Administrators, inherited by files (`OI`) and directories
/// (`CI`). SIDs by alias, not names: names are localized ("Administratoren") and a local
/// account could be called "Administrators".
pub const PRIVATE_DIR_SDDL: &str = "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// An empty, unprotected DACL: the object keeps only what its directory passes down.
pub const INHERIT_ONLY_SDDL: &str = "D:AI";

/// The ACEs of an SDDL string's DACL, `(A;OICI;FA;;;SY)` each (portable; tests and audits).
pub fn aces(sddl: &str) -> Vec<&str> {
    let Some(d) = sddl.find("D:") else { return Vec::new() };
    let dacl = &sddl[d..];
    let dacl = dacl.find("S:").map_or(dacl, |s| &dacl[..s]);
    let mut out = Vec::new();
    let mut rest = dacl;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else { break };
        out.push(&rest[open..open + close + 1]);
        rest = &rest[open + close + 1..];
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_descriptor_names_system_and_administrators_only() {
        assert!(PRIVATE_DIR_SDDL.starts_with("O:BA"), "owned by Administrators");
        assert!(PRIVATE_DIR_SDDL.contains("D:P"), "protected: nothing inherited from ProgramData");
        assert_eq!(aces(PRIVATE_DIR_SDDL), ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)"]);
        assert!(aces(INHERIT_ONLY_SDDL).is_empty() && !INHERIT_ONLY_SDDL.contains("D:P"));
        assert_eq!(
            aces("O:BAG:SYD:(A;;FA;;;WD)S:(AU;;FA;;;WD)"),
            ["(A;;FA;;;WD)"],
            "the SACL is not the DACL"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_restricted_dir_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        restrict_dir(d.path()).unwrap();
        assert_eq!(std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
