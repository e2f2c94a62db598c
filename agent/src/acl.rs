//! Who may open the agent's private directories: the state dir (keys, identity, spool) and
//! the quarantine (credential files taken off users).
//!
//! - Unix: mode 0700, owned by the root the agent runs as.
//! - Windows: an explicit, *protected* DACL — full control for SYSTEM and the
//!   Administrators group only, inherited by every file and directory beneath, nothing
//!   inherited from `ProgramData` (where Users may read). It is set with `icacls.exe` from
//!   `%SystemRoot%\System32` by absolute path (never one found on `PATH`): the tool Windows
//!   ships for exactly this, and it keeps FFI — `unsafe` — out of everything but the service
//!   entry point.

use std::ffi::OsString;
use std::io;
use std::path::Path;

/// SIDs, not names: names are localized ("Administratoren") and can be spoofed by a local
/// account of that name.
const SYSTEM: &str = "*S-1-5-18";
const ADMINISTRATORS: &str = "*S-1-5-32-544";
/// Principals a default ACL grants something that must not keep it: Users, Everyone,
/// Authenticated Users, CREATOR OWNER.
const REMOVED: &[&str] = &["*S-1-5-32-545", "*S-1-1-0", "*S-1-5-11", "*S-1-3-0"];

/// The `icacls` arguments that leave `path` readable and writable by SYSTEM and
/// Administrators alone, for it and everything created beneath it.
pub fn icacls_args(path: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![path.as_os_str().to_owned(), "/inheritance:r".into()];
    for sid in [SYSTEM, ADMINISTRATORS] {
        a.push("/grant:r".into());
        a.push(format!("{sid}:(OI)(CI)F").into());
    }
    a.push("/remove:g".into());
    a.extend(REMOVED.iter().map(OsString::from));
    a.push("/Q".into());
    a
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
        let root = std::env::var_os("SystemRoot").unwrap_or_else(|| OsString::from(r"C:\Windows"));
        let icacls = Path::new(&root).join("System32").join("icacls.exe");
        let out = std::process::Command::new(&icacls).args(icacls_args(path)).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} refused to restrict {}: {}",
                icacls.display(),
                path.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            )))
        }
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
    fn the_windows_dacl_names_system_and_administrators_only() {
        let args: Vec<String> = icacls_args(Path::new(r"C:\ProgramData\Sightline\state"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], r"C:\ProgramData\Sightline\state");
        assert_eq!(args[1], "/inheritance:r", "nothing inherited from ProgramData");
        let grants: Vec<&str> =
            args.windows(2).filter(|w| w[0] == "/grant:r").map(|w| w[1].as_str()).collect();
        assert_eq!(grants, ["*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F"]);
        for sid in ["*S-1-5-32-545", "*S-1-1-0", "*S-1-5-11", "*S-1-3-0"] {
            assert!(args.iter().any(|a| a == sid), "{sid} is removed");
        }
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
