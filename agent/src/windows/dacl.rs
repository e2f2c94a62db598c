//! The agent's private directories on Windows (state, keys, quarantine): owned by
//! Administrators with an explicit, protected DACL granting SYSTEM and Administrators
//! alone, set through the security API (never `icacls.exe`). The descriptors are SDDL
//! constants in `crate::platform::sddl`, portable and tested on Linux; here they are only applied.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{LocalFree, WIN32_ERROR};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
    SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, GetSecurityDescriptorOwner,
    OWNER_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    UNPROTECTED_DACL_SECURITY_INFORMATION,
};

/// A security descriptor parsed from SDDL, freed on drop.
struct Descriptor(PSECURITY_DESCRIPTOR);

impl Descriptor {
    fn from_sddl(sddl: &str) -> io::Result<Descriptor> {
        let wide = wide(OsStr::new(sddl));
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string and an out-pointer; the API allocates the descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Descriptor(sd))
    }

    fn owner(&self) -> io::Result<PSID> {
        let (mut owner, mut defaulted): (PSID, i32) = (std::ptr::null_mut(), 0);
        // SAFETY: a valid descriptor we own; out-pointers to locals.
        if unsafe { GetSecurityDescriptorOwner(self.0, &mut owner, &mut defaulted) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(owner)
    }

    fn dacl(&self) -> io::Result<*mut ACL> {
        let (mut present, mut dacl, mut defaulted): (i32, *mut ACL, i32) = (0, std::ptr::null_mut(), 0);
        // SAFETY: a valid descriptor we own; out-pointers to locals.
        if unsafe { GetSecurityDescriptorDacl(self.0, &mut present, &mut dacl, &mut defaulted) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(dacl)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by the conversion API with LocalAlloc; freed once.
        unsafe { LocalFree(self.0) };
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

fn check(code: WIN32_ERROR, what: &str, path: &Path) -> io::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let e = io::Error::from_raw_os_error(code as i32);
    Err(io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
}

/// Owner Administrators and the protected DACL on `path`, then every entry beneath reset to
/// inherit it alone (entries a user added before the agent was installed are dropped).
pub fn restrict_dir(path: &Path) -> io::Result<()> {
    let sd = Descriptor::from_sddl(crate::platform::sddl::PRIVATE_DIR_SDDL)?;
    let (owner, dacl) = (sd.owner()?, sd.dacl()?);
    let name = wide(path.as_os_str());
    let info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;
    // SAFETY: a NUL-terminated path; owner and DACL point into `sd`, alive for the call.
    let code = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            info,
            owner,
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    check(code, "restricting", path)?;
    reset_beneath(path, owner, 0, &mut 0)
}

/// Entries beneath a restricted directory: at most this deep and this many (the state dir
/// holds a few hundred files; anything far beyond is not ours to walk).
const MAX_DEPTH: usize = 16;
const MAX_ENTRIES: usize = 100_000;

/// Owner Administrators and an empty, unprotected DACL on everything beneath `dir`, so each
/// entry keeps only what it inherits. This is what `TreeSetNamedSecurityInfoW` with
/// `TREE_SEC_INFO_RESET` does; walked by hand because the walk must not follow links
/// (reparse points) out of the directory, and because Wine lacks that call.
fn reset_beneath(dir: &Path, owner: PSID, depth: usize, seen: &mut usize) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        *seen += 1;
        if *seen > MAX_ENTRIES {
            return Err(io::Error::other(format!(
                "more than {MAX_ENTRIES} entries beneath {}",
                dir.display()
            )));
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue; // a link (or junction) is not followed; it grants nothing by itself
        }
        set_inheriting(&entry.path(), Some(owner))?;
        if kind.is_dir() {
            reset_beneath(&entry.path(), owner, depth + 1, seen)?;
        }
    }
    Ok(())
}

/// An empty, unprotected DACL on `path` (and `owner`, if given).
fn set_inheriting(path: &Path, owner: Option<PSID>) -> io::Result<()> {
    let sd = Descriptor::from_sddl(crate::platform::sddl::INHERIT_ONLY_SDDL)?;
    let dacl = sd.dacl()?;
    let name = wide(path.as_os_str());
    let mut info = DACL_SECURITY_INFORMATION | UNPROTECTED_DACL_SECURITY_INFORMATION;
    if owner.is_some() {
        info |= OWNER_SECURITY_INFORMATION;
    }
    // SAFETY: a NUL-terminated path; the owner SID and the empty DACL are alive for the call.
    let code = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            info,
            owner.unwrap_or(std::ptr::null_mut()),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    check(code, "making inherit", path)
}

/// Drops a moved-in file's own entries so it inherits its new directory's DACL.
pub fn inherit(path: &Path) -> io::Result<()> {
    set_inheriting(path, None)
}

/// The owner and DACL of `path` as SDDL (what an auditor or a test compares).
pub fn sddl_of(path: &Path) -> io::Result<String> {
    let name = wide(path.as_os_str());
    let info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated path; out-pointer to a local, freed below.
    let code = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            info,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    check(code, "reading the security of", path)?;
    let sd = Descriptor(sd);
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: a valid descriptor; out-pointers to locals; `text` freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(sd.0, SDDL_REVISION_1, info, &mut text, &mut len)
    };
    if ok == 0 || text.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `len` UTF-16 units the API wrote (NUL included), copied before LocalFree.
    let units = unsafe { std::slice::from_raw_parts(text, len as usize) }.to_vec();
    // SAFETY: allocated by the API with LocalAlloc; freed once.
    unsafe { LocalFree(text.cast()) };
    Ok(crate::platform::wts::from_wide(&units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs Windows' security descriptors: Wine 8 accepts SetNamedSecurityInfoW but keeps its default owner and DACL (run with --include-ignored on Windows)"]
    fn a_restricted_dir_and_what_is_beneath_grant_system_and_administrators_only() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("keys");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("device.json"), "{}").unwrap();
        restrict_dir(d.path()).unwrap();
        let top = sddl_of(d.path()).unwrap();
        assert!(top.starts_with("O:BA"), "{top}");
        assert!(top.contains("D:P"), "protected: {top}");
        let aces = crate::platform::sddl::aces(&top);
        assert_eq!(aces.len(), 2, "{top}");
        assert!(aces.iter().all(|a| a.ends_with(";;;SY)") || a.ends_with(";;;BA)")), "{top}");
        let file = sddl_of(&sub.join("device.json")).unwrap();
        assert!(
            crate::platform::sddl::aces(&file).iter().all(|a| a.ends_with(";;;SY)") || a.ends_with(";;;BA)")),
            "{file}"
        );
    }
}
