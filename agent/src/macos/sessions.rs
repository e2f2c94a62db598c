//! Login sessions on macOS: the user at the console from the SystemConfiguration dynamic
//! store, and login records from `utmpx` (console, Terminal and SSH logins).
//!
//! Only the calls into the system are here; what the records mean is decided in
//! [`crate::platform::console`], which is tested on every platform.
#![allow(unsafe_code)]

use std::sync::{Mutex, PoisonError};

use core_foundation::base::TCFType;
use core_foundation::string::CFString;
use system_configuration_sys::dynamic_store_copy_specific::SCDynamicStoreCopyConsoleUser;

use crate::platform::OsSession;
use crate::platform::console::{self, UtmpxEntry};

/// `getutxent` walks one process-wide cursor over a static buffer: two threads listing
/// sessions at once would interleave (or tear) each other's records.
static UTMPX: Mutex<()> = Mutex::new(());

/// The console user and every live login. Blocking (a dynamic-store round trip and a read
/// of `/var/run/utmpx`); bounded by [`console::UTMPX_MAX_RECORDS`].
pub fn list() -> Vec<OsSession> {
    let entries = login_records(console::UTMPX_MAX_RECORDS);
    let console_user = console_user();
    console::sessions(console_user.as_ref().map(|(n, uid)| (n.as_str(), *uid)), &entries, alive)
}

/// `SCDynamicStoreCopyConsoleUser`: who owns the GUI session right now (name, uid), or
/// `None` when nobody does. A NULL store asks for a temporary session, which is what a
/// one-shot query wants.
fn console_user() -> Option<(String, u32)> {
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: a NULL store is documented as valid; uid and gid are valid out-pointers.
    let name = unsafe { SCDynamicStoreCopyConsoleUser(std::ptr::null(), &mut uid, &mut gid) };
    if name.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result is a CFString we own (the Copy rule).
    let name = unsafe { CFString::wrap_under_create_rule(name) };
    Some((name.to_string(), uid))
}

/// `USER_PROCESS` records of the login database, reading at most `max` records of any kind.
fn login_records(max: usize) -> Vec<UtmpxEntry> {
    let _cursor = UTMPX.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = Vec::new();
    // SAFETY: setutxent/getutxent/endutxent take no arguments; the lock above makes this
    // thread the cursor's only user. Each record is copied out before the next call, which
    // may overwrite the buffer it points to.
    unsafe { libc::setutxent() };
    for _ in 0..max {
        let rec = unsafe { libc::getutxent() };
        if rec.is_null() {
            break;
        }
        // SAFETY: non-NULL, points to libc's static utmpx buffer, valid until the next call.
        let rec = unsafe { &*rec };
        if rec.ut_type == libc::USER_PROCESS {
            out.push(entry(rec));
        }
    }
    unsafe { libc::endutxent() };
    out
}

fn entry(rec: &libc::utmpx) -> UtmpxEntry {
    UtmpxEntry {
        kind: rec.ut_type,
        pid: rec.ut_pid,
        user: bytes(&rec.ut_user),
        line: bytes(&rec.ut_line),
        host: bytes(&rec.ut_host),
        tv_sec: rec.ut_tv.tv_sec,
        tv_usec: i64::from(rec.ut_tv.tv_usec),
    }
}

/// A C `char` array as bytes (`c_char` is signed on Apple platforms).
fn bytes(field: &[libc::c_char]) -> Vec<u8> {
    field.iter().map(|&c| c as u8).collect()
}

/// Whether a process exists: `kill(pid, 0)` delivers nothing and fails with `ESRCH` only
/// for a process that is gone (`EPERM` means it exists but belongs to someone else).
/// [`console::session_from_utmpx`] never asks about pid 0 or below.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 performs only the existence and permission checks.
    let delivered = unsafe { libc::kill(pid, 0) } == 0;
    delivered || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
