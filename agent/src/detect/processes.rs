//! Live AI tool processes on this machine (not the scanned tree: a process list cannot be
//! read from a filesystem image).
//!
//! Matched by process name against the catalog, then by command-line markers for tools that
//! run under an interpreter (`node …/@anthropic-ai/claude-code/cli.js`). Electron helper
//! processes (`Cursor Helper (Renderer)`) are not separate findings: the main process is.

#[cfg(not(windows))]
use sysinfo::Users;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::{Finding, ProcessFinding};
use crate::catalog::Catalog;

/// One process as the detector needs it; separated from sysinfo so matching is testable.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub exe: Option<String>,
    /// argv, as the process was started.
    pub args: Vec<String>,
    pub user: Option<String>,
    /// When it started (seconds since the epoch): with the pid, which process this is.
    pub start_time: u64,
}

impl ProcessInfo {
    /// argv joined by spaces, for command-line markers.
    pub fn cmdline(&self) -> String {
        self.args.join(" ")
    }
}

/// Reads the live process table. Blocking: call it off the async runtime.
pub fn list() -> Vec<ProcessInfo> {
    Sampler::new().sample()
}

/// A process table kept between samples, so each refresh reads only what changed: the
/// executable, command line and owner of a process are read once, when it first appears.
pub struct Sampler {
    sys: System,
    accounts: Accounts,
    samples: u32,
}

/// Account names for process owners. Unix: the passwd database through `sysinfo::Users`.
/// Windows: each SID looked up once (`LookupAccountSidW`), because listing local users misses
/// directory (domain, Entra ID) accounts.
#[derive(Default)]
pub(crate) struct Accounts {
    #[cfg(not(windows))]
    users: Users,
    #[cfg(windows)]
    names: std::collections::HashMap<String, Option<String>>,
}

impl Accounts {
    pub(crate) fn refresh(&mut self) {
        #[cfg(not(windows))]
        self.users.refresh();
        #[cfg(windows)]
        self.names.clear();
    }

    pub(crate) fn name(&mut self, uid: &sysinfo::Uid) -> Option<String> {
        #[cfg(not(windows))]
        {
            self.users.get_user_by_id(uid).map(|u| u.name().to_owned())
        }
        #[cfg(windows)]
        {
            let sid = uid.to_string();
            self.names.entry(sid).or_insert_with_key(|sid| crate::windows::accounts::name_of_sid(sid)).clone()
        }
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("samples", &self.samples).finish_non_exhaustive()
    }
}

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler::new()
    }
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler { sys: System::new(), accounts: Accounts::default(), samples: 0 }
    }

    /// The live process table. Blocking.
    pub fn sample(&mut self) -> Vec<ProcessInfo> {
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_exe(UpdateKind::OnlyIfNotSet)
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .with_user(UpdateKind::OnlyIfNotSet),
        );
        // Accounts change rarely; re-read them now and then.
        if self.samples.is_multiple_of(20) {
            self.accounts.refresh();
        }
        self.samples = self.samples.wrapping_add(1);
        let accounts = &mut self.accounts;
        self.sys
            .processes()
            .values()
            // Threads are not processes; a zombie has already exited.
            .filter(|p| p.thread_kind().is_none() && p.status() != sysinfo::ProcessStatus::Zombie)
            .map(|p| ProcessInfo {
                pid: p.pid().as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                exe: p.exe().map(|e| e.to_string_lossy().into_owned()),
                args: p.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                user: p.user_id().and_then(|u| accounts.name(u)),
                start_time: p.start_time(),
            })
            .collect()
    }
}

impl Sampler {
    /// Stops processes, each named by (pid, start time) as it was sampled: SIGTERM (so they
    /// can save state), then SIGKILL for any still alive after `grace` — only if that pid
    /// still started at the same time, so a pid reused meanwhile by another process is never
    /// killed. Never this agent or PID 1. Returns each pid with what happened. Blocking
    /// (waits up to `grace` plus a second).
    #[allow(clippy::disallowed_types, reason = "a bounded wait on a blocking thread")]
    pub fn stop(
        &mut self,
        targets_in: &[(u32, u64)],
        grace: std::time::Duration,
    ) -> Vec<(u32, Result<(), String>)> {
        use sysinfo::{Pid, ProcessStatus, Signal};
        let own = std::process::id();
        let mut out = Vec::new();
        let mut targets = Vec::new();
        let started: std::collections::HashMap<Pid, u64> =
            targets_in.iter().map(|&(pid, t)| (Pid::from_u32(pid), t)).collect();
        for &(pid, start_time) in targets_in {
            if pid <= 1 || pid == own {
                out.push((pid, Err("refusing to stop PID 1 or the agent itself".to_owned())));
                continue;
            }
            let p = Pid::from_u32(pid);
            match self.sys.process(p).filter(|p| p.start_time() == start_time) {
                // A platform without SIGTERM (Windows) gets the hard stop at once.
                Some(proc_) => match proc_.kill_with(Signal::Term).or_else(|| Some(proc_.kill())) {
                    Some(true) => targets.push(p),
                    _ => out.push((pid, Err("could not signal it (permission denied?)".to_owned()))),
                },
                None => out.push((pid, Ok(()))),
            }
        }
        let alive = |sys: &mut System, targets: &[Pid]| -> Vec<Pid> {
            sys.refresh_processes(ProcessesToUpdate::Some(targets), true);
            // A zombie has exited (only its parent's wait is missing); a pid that started at
            // another time is someone else now.
            targets
                .iter()
                .copied()
                .filter(|p| {
                    sys.process(*p).is_some_and(|q| {
                        q.status() != ProcessStatus::Zombie && Some(&q.start_time()) == started.get(p)
                    })
                })
                .collect()
        };
        let wait = |sys: &mut System, targets: &[Pid], within: std::time::Duration| -> Vec<Pid> {
            let started = std::time::Instant::now();
            loop {
                let left = alive(sys, targets);
                if left.is_empty() || started.elapsed() >= within {
                    return left;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        let stubborn = wait(&mut self.sys, &targets, grace);
        for p in &stubborn {
            // The same process still, not a newcomer that was given its pid.
            if let Some(proc_) = self.sys.process(*p).filter(|q| Some(&q.start_time()) == started.get(p)) {
                proc_.kill();
            }
        }
        let survivors = wait(&mut self.sys, &stubborn, std::time::Duration::from_secs(1));
        for p in targets {
            let r =
                if survivors.contains(&p) { Err("still running after SIGKILL".to_owned()) } else { Ok(()) };
            out.push((p.as_u32(), r));
        }
        out
    }
}

/// Matches processes against the catalog: by name, by command line, and — for a process
/// neither names — by a distinctive port it listens on (Ollama 11434, LM Studio 1234).
pub fn detect(catalog: &Catalog, procs: &[ProcessInfo]) -> Vec<Finding> {
    detect_with_ports(catalog, procs, &listening_ports(|port| catalog.tool_for_port(port).is_some()))
}

/// The catalogued tool a process is, by name, command-line marker or — for a process
/// neither names — a distinctive port it listens on (`listening`: (port, pid)).
pub fn tool_of<'c>(catalog: &'c Catalog, p: &ProcessInfo, listening: &[(u16, u32)]) -> Option<&'c str> {
    let by_port = || {
        listening.iter().filter(|(_, pid)| *pid == p.pid).find_map(|(port, _)| catalog.tool_for_port(*port))
    };
    catalog
        .tool_for_process(&p.name)
        .or_else(|| catalog.tool_for_cmdline(&p.cmdline()))
        .or_else(by_port)
        .map(|t| t.id.as_str())
}

/// As [`detect`], with the listening sockets given as (port, pid).
pub fn detect_with_ports(catalog: &Catalog, procs: &[ProcessInfo], listening: &[(u16, u32)]) -> Vec<Finding> {
    let mut out: Vec<Finding> = procs
        .iter()
        .filter_map(|p| {
            let tool = tool_of(catalog, p, listening)?;
            Some(Finding::Process(ProcessFinding {
                tool: tool.to_owned(),
                user: p.user.clone(),
                pid: p.pid,
                name: p.name.clone(),
                exe: p.exe.clone(),
            }))
        })
        .collect();
    out.sort_by_key(|f| match f {
        Finding::Process(p) => p.pid,
        _ => 0,
    });
    out
}

/// Listening TCP sockets and their owning processes, from `/proc` (Linux only; elsewhere
/// none). Sockets of processes whose `fd` directory cannot be read are skipped.
/// Only ports `wanted` accepts are traced to their process: walking every process's file
/// descriptors is the expensive part, and is skipped when no catalogued port is listening.
pub fn listening_ports(wanted: impl Fn(u16) -> bool) -> Vec<(u16, u32)> {
    #[cfg(target_os = "linux")]
    {
        linux::listening_ports(wanted)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = wanted;
        Vec::new()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;

    pub(super) fn listening_ports(wanted: impl Fn(u16) -> bool) -> Vec<(u16, u32)> {
        // inode -> port for sockets in LISTEN state (st = 0A).
        let mut inodes: HashMap<u64, u16> = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else { continue };
            inodes.extend(parse_tcp_table(&text).into_iter().filter(|(_, port)| wanted(*port)));
        }
        if inodes.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else { return out };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else { continue };
                let target = target.to_string_lossy();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|i| i.parse().ok())
                    && let Some(port) = inodes.get(&inode)
                {
                    out.push((*port, pid));
                }
            }
        }
        out
    }

    /// `sl local_address rem_address st … inode` rows → (inode, port) for listeners.
    pub(super) fn parse_tcp_table(text: &str) -> Vec<(u64, u16)> {
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                if cols.get(3) != Some(&"0A") {
                    return None;
                }
                let port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
                let inode = cols.get(9)?.parse().ok()?;
                Some((inode, port))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, name: &str, cmdline: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            name: name.into(),
            exe: None,
            args: cmdline.split(' ').map(str::to_owned).collect(),
            user: Some("alice".into()),
            start_time: 1,
        }
    }

    #[test]
    fn names_and_interpreted_tools() {
        let c = Catalog::builtin().unwrap();
        let found = detect(
            &c,
            &[
                p(1, "ollama", "ollama serve"),
                p(2, "node", "node /usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"),
                p(3, "bash", "bash"),
                p(4, "Cursor Helper (Renderer)", "/Applications/Cursor.app/… --type=renderer"),
                p(5, "python3", "python3 -m vllm.entrypoints.openai.api_server"),
            ],
        );
        let tools: Vec<(u32, &str)> = found
            .iter()
            .map(|f| if let Finding::Process(p) = f { (p.pid, p.tool.as_str()) } else { unreachable!() })
            .collect();
        assert_eq!(tools, vec![(1, "ollama"), (2, "claude_code"), (5, "vllm")]);
    }

    #[test]
    fn distinctive_ports_name_an_unnamed_server() {
        let c = Catalog::builtin().unwrap();
        let found = detect_with_ports(
            &c,
            &[p(9, "python3", "python3 serve.py"), p(10, "nginx", "nginx")],
            &[(11434, 9), (80, 10)],
        );
        assert_eq!(found.len(), 1);
        assert!(matches!(&found[0], Finding::Process(p) if p.tool == "ollama" && p.pid == 9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_net_tcp_rows() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0\n\
   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 434343 1 0\n";
        assert_eq!(linux::parse_tcp_table(table), vec![(424242, 11434)]);
    }

    /// A real listener on this machine is attributed to this process.
    #[cfg(target_os = "linux")]
    #[test]
    fn live_listener_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening_ports(|p| p == port).contains(&(port, std::process::id())));
    }

    #[test]
    fn live_listing_sees_this_process() {
        let me = std::process::id();
        assert!(list().iter().any(|p| p.pid == me));
    }
}
