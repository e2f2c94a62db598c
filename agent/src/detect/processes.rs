//! Live AI tool processes on this machine (not the scanned tree: a process list cannot be
//! read from a filesystem image).
//!
//! Matched by process name against the catalog, then by command-line markers for tools that
//! run under an interpreter (`node …/@anthropic-ai/claude-code/cli.js`). Electron helper
//! processes (`Cursor Helper (Renderer)`) are not separate findings: the main process is.

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use super::{Finding, ProcessFinding};
use crate::catalog::Catalog;

/// One process as the detector needs it; separated from sysinfo so matching is testable.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub exe: Option<String>,
    pub cmdline: String,
    pub user: Option<String>,
}

/// Reads the live process table. Blocking: call it off the async runtime.
pub fn list() -> Vec<ProcessInfo> {
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_exe(UpdateKind::OnlyIfNotSet)
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_user(UpdateKind::OnlyIfNotSet),
    );
    let users = Users::new_with_refreshed_list();
    sys.processes()
        .values()
        .filter(|p| p.thread_kind().is_none())
        .map(|p| ProcessInfo {
            pid: p.pid().as_u32(),
            name: p.name().to_string_lossy().into_owned(),
            exe: p.exe().map(|e| e.to_string_lossy().into_owned()),
            cmdline: p.cmd().iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            user: p.user_id().and_then(|u| users.get_user_by_id(u)).map(|u| u.name().to_owned()),
        })
        .collect()
}

/// Matches processes against the catalog.
pub fn detect(catalog: &Catalog, procs: &[ProcessInfo]) -> Vec<Finding> {
    let mut out: Vec<Finding> = procs
        .iter()
        .filter_map(|p| {
            let tool = catalog.tool_for_process(&p.name).or_else(|| catalog.tool_for_cmdline(&p.cmdline))?;
            Some(Finding::Process(ProcessFinding {
                tool: tool.id.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, name: &str, cmdline: &str) -> ProcessInfo {
        ProcessInfo { pid, name: name.into(), exe: None, cmdline: cmdline.into(), user: Some("alice".into()) }
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
    fn live_listing_sees_this_process() {
        let me = std::process::id();
        assert!(list().iter().any(|p| p.pid == me));
    }
}
