//! Account names for SIDs (`LookupAccountSidW`). Local, domain and Entra ID accounts alike:
//! enumerating local users (what `sysinfo::Users` does) misses everyone who signs in with a
//! directory account, which is most of a managed fleet.
#![allow(unsafe_code)]

use std::os::windows::ffi::OsStrExt;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::ConvertStringSidToSidW;
use windows_sys::Win32::Security::{LookupAccountSidW, PSID, SID_NAME_USE};

/// The account name (without its domain) of a SID in string form (`S-1-5-21-…`).
pub fn name_of_sid(sid: &str) -> Option<String> {
    let wide: Vec<u16> = std::ffi::OsStr::new(sid).encode_wide().chain(std::iter::once(0)).collect();
    let mut psid: PSID = std::ptr::null_mut();
    // SAFETY: a NUL-terminated string and an out-pointer; the SID is freed below.
    if unsafe { ConvertStringSidToSidW(wide.as_ptr(), &mut psid) } == 0 || psid.is_null() {
        return None;
    }
    let mut name = [0u16; 256];
    let mut domain = [0u16; 256];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: buffers with their lengths in units; the SID from the conversion above.
    let ok = unsafe {
        LookupAccountSidW(
            std::ptr::null(),
            psid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    // SAFETY: allocated by ConvertStringSidToSidW with LocalAlloc; freed once.
    unsafe { LocalFree(psid) };
    if ok == 0 {
        return None;
    }
    Some(crate::platform::wts::from_wide(&name[..(name_len as usize).min(name.len())]))
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn well_known_sids_have_names_and_garbage_has_none() {
        assert_eq!(super::name_of_sid("S-1-5-18").as_deref(), Some("SYSTEM"));
        assert_eq!(super::name_of_sid("not a sid"), None);
    }
}
