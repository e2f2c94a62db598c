//! Who is logged in, from Terminal Services (`WTSEnumerateSessionsW`): every interactive
//! session, local console or remote desktop, active or disconnected, with its user, client
//! host and logon time. What each record means is decided by
//! [`crate::platform::wts::wts_session`], which is portable and tested on Linux.
#![allow(unsafe_code)]

use windows_sys::Win32::System::RemoteDesktop::{
    WTS_CURRENT_SERVER_HANDLE, WTS_INFO_CLASS, WTS_SESSION_INFOW, WTSClientName, WTSEnumerateSessionsW,
    WTSFreeMemory, WTSINFOW, WTSQuerySessionInformationW, WTSSessionInfo, WTSUserName,
};

use crate::platform::OsSession;
use crate::platform::wts::{WtsRecord, wts_session};

/// At most this many sessions are looked at (a terminal server has hundreds at most).
const MAX_SESSIONS: usize = 4096;

pub fn list() -> Vec<OsSession> {
    let mut info: *mut WTS_SESSION_INFOW = std::ptr::null_mut();
    let mut count = 0u32;
    // SAFETY: out-pointers to locals; on success the API allocates `count` records, freed below.
    let ok = unsafe { WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &mut info, &mut count) };
    if ok == 0 || info.is_null() {
        tracing::debug!(error = %std::io::Error::last_os_error(), "WTSEnumerateSessionsW failed");
        return Vec::new();
    }
    // SAFETY: the API returned `count` contiguous records at `info`, valid until WTSFreeMemory.
    let records = unsafe { std::slice::from_raw_parts(info, count as usize) };
    let sessions = records
        .iter()
        .take(MAX_SESSIONS)
        .filter_map(|r| {
            let user = query_string(r.SessionId, WTSUserName)?;
            let logon = query_info(r.SessionId).map_or(0, |i| i.LogonTime);
            wts_session(&WtsRecord {
                id: r.SessionId,
                station: wide_ptr(r.pWinStationName),
                state: r.State,
                user,
                client: query_string(r.SessionId, WTSClientName).unwrap_or_default(),
                logon_filetime: logon,
            })
        })
        .collect();
    // SAFETY: the block WTSEnumerateSessionsW allocated, freed once, not used after.
    unsafe { WTSFreeMemory(info.cast()) };
    sessions
}

/// A session property as bytes the API allocated, copied out and freed.
fn query(session: u32, class: WTS_INFO_CLASS) -> Option<Vec<u8>> {
    let mut buf: windows_sys::core::PWSTR = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: out-pointers to locals; on success `buf` holds `len` bytes until WTSFreeMemory.
    let ok =
        unsafe { WTSQuerySessionInformationW(WTS_CURRENT_SERVER_HANDLE, session, class, &mut buf, &mut len) };
    if ok == 0 || buf.is_null() {
        return None;
    }
    // SAFETY: `len` bytes at `buf` belong to the API's allocation; copied before it is freed.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) }.to_vec();
    // SAFETY: freed once, not used after.
    unsafe { WTSFreeMemory(buf.cast()) };
    Some(bytes)
}

fn query_string(session: u32, class: WTS_INFO_CLASS) -> Option<String> {
    let bytes = query(session, class)?;
    let wide: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    Some(crate::platform::wts::from_wide(&wide))
}

fn query_info(session: u32) -> Option<WTSINFOW> {
    let bytes = query(session, WTSSessionInfo)?;
    if bytes.len() < size_of::<WTSINFOW>() {
        return None;
    }
    // SAFETY: at least size_of::<WTSINFOW>() bytes, read unaligned from our own copy; the
    // struct is plain integers, so any bit pattern is valid.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<WTSINFOW>()) })
}

/// A NUL-terminated UTF-16 string the API owns, copied out (bounded).
fn wide_ptr(p: windows_sys::core::PWSTR) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut out = Vec::new();
    for i in 0..256 {
        // SAFETY: the API's NUL-terminated string; reading stops at the NUL or 256 units.
        let c = unsafe { *p.add(i) };
        if c == 0 {
            break;
        }
        out.push(c);
    }
    crate::platform::wts::from_wide(&out)
}
