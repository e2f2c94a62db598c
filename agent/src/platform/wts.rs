//! The portable half of the Windows session integration: what `WTSEnumerateSessionsW`
//! returns, as plain values the `windows` module fills in, and which of those sessions are
//! someone's login. Compiled and tested on every platform.

use super::OsSession;

/// One Terminal Services session as `WTSEnumerateSessionsW` and `WTSQuerySessionInformationW`
/// describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WtsRecord {
    pub id: u32,
    /// `Console`, `RDP-Tcp#3`, `Services`.
    pub station: String,
    /// `WTS_CONNECTSTATE_CLASS`.
    pub state: i32,
    pub user: String,
    /// The remote desktop client's name; empty at the console.
    pub client: String,
    /// 100 ns intervals since 1601 (FILETIME); 0 when unknown.
    pub logon_filetime: i64,
}

/// A WTS session that is someone's login: it has a user (session 0 and listeners have none)
/// and is active, connected or disconnected-but-logged-on.
pub fn wts_session(r: &WtsRecord) -> Option<OsSession> {
    const ACTIVE: i32 = 0; // WTSActive
    const CONNECTED: i32 = 1; // WTSConnected
    const DISCONNECTED: i32 = 4; // WTSDisconnected
    if r.user.is_empty() || r.id == 0 || ![ACTIVE, CONNECTED, DISCONNECTED].contains(&r.state) {
        return None;
    }
    let terminal =
        if r.station.is_empty() { format!("session-{}", r.id) } else { r.station.to_ascii_lowercase() };
    Some(OsSession {
        user: r.user.clone(),
        terminal,
        host: Some(r.client.clone()).filter(|c| !c.is_empty()),
        started_at_ms: filetime_to_unix_ms(r.logon_filetime),
    })
}

/// FILETIME (100 ns since 1601-01-01) to Unix milliseconds; 0 for "unknown" or before 1970.
pub fn filetime_to_unix_ms(ft: i64) -> i64 {
    const UNIX_EPOCH_AS_FILETIME: i64 = 116_444_736_000_000_000;
    if ft <= UNIX_EPOCH_AS_FILETIME { 0 } else { (ft - UNIX_EPOCH_AS_FILETIME) / 10_000 }
}

/// UTF-16 up to the first NUL, lossily.
pub fn from_wide(w: &[u16]) -> String {
    let end = w.iter().position(|&c| c == 0).unwrap_or(w.len());
    String::from_utf16_lossy(&w[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wts_records_that_are_logins() {
        let rec = |id, station: &str, state, user: &str, client: &str| WtsRecord {
            id,
            station: station.into(),
            state,
            user: user.into(),
            client: client.into(),
            // 2023-11-14T22:13:20Z
            logon_filetime: 116_444_736_000_000_000 + 1_700_000_000_000 * 10_000,
        };
        assert_eq!(
            wts_session(&rec(1, "Console", 0, "alice", "")),
            Some(OsSession {
                user: "alice".into(),
                terminal: "console".into(),
                host: None,
                started_at_ms: 1_700_000_000_000
            })
        );
        let rdp = wts_session(&rec(3, "RDP-Tcp#7", 4, "bob", "BOBS-LAPTOP")).unwrap();
        assert_eq!((rdp.terminal.as_str(), rdp.host.as_deref()), ("rdp-tcp#7", Some("BOBS-LAPTOP")));
        assert_eq!(wts_session(&rec(0, "Services", 4, "SYSTEM", "")), None, "session 0 is services");
        assert_eq!(wts_session(&rec(2, "Console", 0, "", "")), None, "nobody logged on");
        assert_eq!(wts_session(&rec(65536, "RDP-Tcp", 6, "x", "")), None, "a listener");
        assert_eq!(filetime_to_unix_ms(0), 0);
        assert_eq!(from_wide(&[0x61, 0x6c, 0, 0x78]), "al");
    }
}
