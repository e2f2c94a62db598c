//! Who may open the agent's private directories: the state dir (keys, identity, spool) and
//! the quarantine (credential files taken off users).
//!
//! - Unix: mode 0700, owned by the root the agent runs as.
//! - Windows: owned by Administrators, with an explicit, *protected* DACL — full control
//!   for SYSTEM and the Administrators group only, inherited by every file and directory
//!   beneath, nothing inherited from `ProgramData` (where Users may read). Ownership is taken
//!   and every entry beneath is reset first, so a directory a user created (or granted
//!   themselves) before the agent was installed is not trusted as it was found. A file moved
//!   in (the quarantine) has its own entries reset to inherit. It is all done with
//!   `icacls.exe` from `%SystemRoot%\System32` by absolute path (never one found on `PATH`):
//!   the tool Windows ships for exactly this, and it keeps FFI — `unsafe` — out of
//!   everything but the service entry point.

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

/// The `icacls` runs, in order, that leave `path` owned by Administrators and readable and
/// writable by SYSTEM and Administrators alone, for it and everything beneath it.
pub fn icacls_runs(path: &Path) -> Vec<Vec<OsString>> {
    let p = || path.as_os_str().to_owned();
    let own = vec![p(), "/setowner".into(), ADMINISTRATORS.into(), "/T".into(), "/C".into(), "/Q".into()];
    // Explicit entries anyone added beneath are dropped: everything inherits again...
    let reset = vec![p(), "/reset".into(), "/T".into(), "/C".into(), "/Q".into()];
    // ...from this directory's own protected list.
    let mut protect: Vec<OsString> = vec![p(), "/inheritance:r".into()];
    for sid in [SYSTEM, ADMINISTRATORS] {
        protect.push("/grant:r".into());
        protect.push(format!("{sid}:(OI)(CI)F").into());
    }
    protect.push("/remove:g".into());
    protect.extend(REMOVED.iter().map(OsString::from));
    protect.push("/Q".into());
    vec![own, reset, protect]
}

/// The `icacls` run that makes a file moved into a restricted directory inherit its list.
pub fn icacls_inherit(path: &Path) -> Vec<OsString> {
    vec![path.as_os_str().to_owned(), "/reset".into(), "/Q".into()]
}

#[cfg(windows)]
fn icacls(args: Vec<OsString>, path: &Path) -> io::Result<()> {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| OsString::from(r"C:\Windows"));
    let exe = Path::new(&root).join("System32").join("icacls.exe");
    let out = std::process::Command::new(&exe).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} could not restrict {}: {}",
            exe.display(),
            path.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        )))
    }
}

/// After moving a file into a restricted directory: on Windows its own entries go and it
/// inherits the directory's (a renamed file keeps the list it had); on Unix its mode is
/// set by the caller.
pub fn inherit(path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        icacls(icacls_inherit(path), path)
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
        icacls_runs(path).into_iter().try_for_each(|args| icacls(args, path))
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
        let runs: Vec<Vec<String>> = icacls_runs(Path::new(r"C:\ProgramData\Sightline\state"))
            .iter()
            .map(|r| r.iter().map(|a| a.to_string_lossy().into_owned()).collect())
            .collect();
        assert!(runs.iter().all(|r| r[0] == r"C:\ProgramData\Sightline\state"));
        assert_eq!(runs[0][1..3], ["/setowner", "*S-1-5-32-544"], "ownership taken first");
        assert!(
            runs[0].contains(&"/T".to_owned()) && runs[1][1..3] == ["/reset", "/T"],
            "everything beneath reset"
        );
        let args = &runs[2];
        assert_eq!(args[1], "/inheritance:r", "nothing inherited from ProgramData");
        let grants: Vec<&str> =
            args.windows(2).filter(|w| w[0] == "/grant:r").map(|w| w[1].as_str()).collect();
        assert_eq!(grants, ["*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F"]);
        for sid in ["*S-1-5-32-545", "*S-1-1-0", "*S-1-5-11", "*S-1-3-0"] {
            assert!(args.iter().any(|a| a == sid), "{sid} is removed");
        }
        let file: Vec<String> =
            icacls_inherit(Path::new(r"C:\q\f")).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(file, [r"C:\q\f", "/reset", "/Q"]);
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
