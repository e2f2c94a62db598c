//! Who is logged in to this machine, and since when: the link between an OS account and the
//! connectors observed while it was active.
//!
//! - Linux: `utmp` `USER_PROCESS` records whose process still lives (terminal, SSH and most
//!   display-manager logins), merged with systemd-logind's session files (graphical sessions
//!   that never write utmp).
//! - macOS: the user at the GUI (`SCDynamicStoreCopyConsoleUser`) and live `utmpx` login
//!   records (console, Terminal, SSH), behind `cfg`; interpreted in [`crate::platform::console`].
//! - Windows: Terminal Services sessions (`WTSEnumerateSessionsW`: console and remote
//!   desktop, active or disconnected), behind `cfg`; the owners of `explorer.exe` only if
//!   that API answers nothing.
//!
//! All reads are bounded; a missing source is simply no sessions from it.

use std::path::Path;

pub use crate::platform::OsSession;

/// The sessions of the running machine. Blocking (small file reads).
pub fn list() -> Vec<OsSession> {
    #[cfg(target_os = "linux")]
    {
        let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists();
        let mut out = std::fs::read("/run/utmp")
            .or_else(|_| std::fs::read("/var/run/utmp"))
            .map(|b| parse_utmp(&b[..b.len().min(UTMP_MAX)], alive))
            .unwrap_or_default();
        out.extend(logind(Path::new("/run/systemd/sessions")));
        merge(out)
    }
    #[cfg(target_os = "macos")]
    {
        merge(crate::macos::sessions::list())
    }
    #[cfg(windows)]
    {
        // WTS names every interactive session; the desktop shell's owners are the fallback
        // where the session API answers nothing (a stripped-down or broken Terminal Services).
        let wts = crate::windows::sessions::list();
        merge(if wts.is_empty() { desktop_shell_sessions("explorer.exe") } else { wts })
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        Vec::new()
    }
}

/// The sessions recorded in a machine image mounted at `root` (a scan root other than the
/// running machine's `/`): its systemd-logind state files. The image's `utmp` is not read:
/// the processes it names belong to another machine, so whether they still live cannot be
/// told here. No component of the path may be a symlink (it could lead out of the image).
pub fn in_image(root: &Path) -> Vec<OsSession> {
    let mut dir = root.to_path_buf();
    for part in ["run", "systemd", "sessions"] {
        dir.push(part);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Vec::new();
        }
    }
    merge(logind(&dir))
}

/// At most this much of `utmp` is read (a few thousand records).
pub const UTMP_MAX: usize = 1 << 20;
/// glibc's `struct utmp` on Linux (x86_64 and aarch64 alike).
const UTMP_RECORD: usize = 384;
const USER_PROCESS: i16 = 7;

/// `USER_PROCESS` records from a `utmp` file whose process `alive` says still runs (a crashed
/// login leaves its record behind).
pub fn parse_utmp(bytes: &[u8], alive: impl Fn(i32) -> bool) -> Vec<OsSession> {
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).trim().to_owned()
    };
    let i32_at = |r: &[u8], o: usize| i32::from_le_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
    bytes
        .chunks_exact(UTMP_RECORD)
        .filter(|r| i16::from_le_bytes([r[0], r[1]]) == USER_PROCESS)
        .filter(|r| alive(i32_at(r, 4)))
        .filter_map(|r| {
            let user = text(&r[44..76]);
            if user.is_empty() {
                return None;
            }
            let host = Some(text(&r[76..332])).filter(|h| !h.is_empty());
            let secs = i64::from(i32_at(r, 340) as u32);
            let usecs = i64::from(i32_at(r, 344));
            Some(OsSession {
                user,
                terminal: text(&r[8..40]),
                host,
                started_at_ms: secs * 1000 + usecs / 1000,
            })
        })
        .collect()
}

/// systemd-logind's per-session state files (`KEY=value` lines), user sessions only.
pub fn logind(dir: &Path) -> Vec<OsSession> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .take(1024)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            if meta.len() > 64 * 1024 {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            let get =
                |k: &str| text.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=')).map(str::to_owned);
            if get("CLASS").is_some_and(|c| c != "user") || get("STATE").is_some_and(|s| s == "closing") {
                return None;
            }
            let terminal = get("TTY")
                .or_else(|| get("SEAT"))
                .unwrap_or_else(|| format!("session-{}", e.file_name().to_string_lossy()));
            Some(OsSession {
                user: get("USER")?,
                terminal,
                host: get("REMOTE_HOST"),
                started_at_ms: get("REALTIME").and_then(|t| t.parse::<i64>().ok()).map_or(0, |us| us / 1000),
            })
        })
        .collect()
}

/// One session per (user, terminal): utmp and logind often describe the same login.
pub(crate) fn merge(mut sessions: Vec<OsSession>) -> Vec<OsSession> {
    sessions.sort();
    sessions.dedup_by(|b, a| a.user == b.user && a.terminal == b.terminal);
    sessions
}

/// Interactive sessions as the owners of the desktop shell process; portable so it is
/// compiled and tested everywhere, used on Windows.
#[cfg_attr(not(windows), allow(dead_code))]
fn desktop_shell_sessions(shell: &str) -> Vec<OsSession> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_user(UpdateKind::OnlyIfNotSet),
    );
    let mut accounts = super::processes::Accounts::default();
    accounts.refresh();
    let sessions = sys
        .processes()
        .values()
        .filter(|p| p.name().eq_ignore_ascii_case(shell))
        .filter_map(|p| {
            let user = accounts.name(p.user_id()?)?;
            Some(OsSession {
                user,
                terminal: format!("session-{}", p.session_id().map_or(0, |s| s.as_u32())),
                host: None,
                started_at_ms: p.start_time() as i64 * 1000,
            })
        })
        .collect();
    merge(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: i16, pid: i32, line: &str, user: &str, host: &str, secs: i32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD];
        r[0..2].copy_from_slice(&kind.to_le_bytes());
        r[4..8].copy_from_slice(&pid.to_le_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[340..344].copy_from_slice(&secs.to_le_bytes());
        r[344..348].copy_from_slice(&250_000i32.to_le_bytes());
        r
    }

    #[test]
    fn utmp_user_processes_that_still_live() {
        let mut bytes = record(2, 0, "~", "reboot", "6.1.0", 1_700_000_000); // BOOT_TIME
        bytes.extend(record(USER_PROCESS, 100, "pts/0", "alice", "10.0.0.5", 1_700_000_100));
        bytes.extend(record(USER_PROCESS, 200, "tty2", "bob", "", 1_700_000_200));
        bytes.extend(record(USER_PROCESS, 300, "pts/1", "mallory", "", 1_700_000_300)); // dead
        bytes.extend(record(8, 400, "pts/2", "", "", 1_700_000_400)); // DEAD_PROCESS
        bytes.extend([1, 2, 3]); // a torn trailing record is ignored
        let s = parse_utmp(&bytes, |pid| pid != 300);
        assert_eq!(
            s,
            vec![
                OsSession {
                    user: "alice".into(),
                    terminal: "pts/0".into(),
                    host: Some("10.0.0.5".into()),
                    started_at_ms: 1_700_000_100_250,
                },
                OsSession {
                    user: "bob".into(),
                    terminal: "tty2".into(),
                    host: None,
                    started_at_ms: 1_700_000_200_250
                },
            ]
        );
    }

    #[test]
    fn logind_user_sessions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("3"),
            "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nCLASS=user\nSEAT=seat0\nREALTIME=1700000000123456\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c1"), "USER=gdm\nCLASS=greeter\nSEAT=seat0\n").unwrap();
        std::fs::write(dir.path().join("9"), "USER=bob\nCLASS=user\nSTATE=closing\n").unwrap();
        let s = merge(logind(dir.path()));
        assert_eq!(
            s,
            vec![OsSession {
                user: "alice".into(),
                terminal: "seat0".into(),
                host: None,
                started_at_ms: 1_700_000_000_123
            }]
        );
    }

    #[test]
    fn an_image_has_its_own_logins_and_no_symlinked_way_out() {
        let root = tempfile::tempdir().unwrap();
        assert!(in_image(root.path()).is_empty(), "no logind directory, no sessions");
        let dir = root.path().join("run/systemd/sessions");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("3"), "USER=alice\nCLASS=user\nTTY=pts/0\nREALTIME=1700000000000000\n")
            .unwrap();
        assert_eq!(in_image(root.path()).iter().map(|s| s.terminal.as_str()).collect::<Vec<_>>(), ["pts/0"]);
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            let moved = outside.path().join("systemd");
            std::fs::rename(root.path().join("run/systemd"), &moved).unwrap();
            std::os::unix::fs::symlink(&moved, root.path().join("run/systemd")).unwrap();
            assert!(in_image(root.path()).is_empty(), "a symlink out of the image is not followed");
        }
    }
}
