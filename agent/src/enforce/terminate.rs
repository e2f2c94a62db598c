//! `terminate_process`: stop every running process of a catalogued tool.
//!
//! Detection may name a process by a command-line marker or a listening port; stopping one
//! needs more. A process is stopped only if its *program* is the tool's (see
//! [`is_tools_program`]): a catalogued process name, a marker in the executable's own path,
//! or a marker in the script or module an interpreter runs. `grep LM-Studio-`, an editor
//! with a file of that name open, or some server on LM Studio's port are reported and left
//! alone. The table is read fresh, and each process is signalled by (pid, start time), so a
//! pid from an old observation, or one reused since, is never signalled.

use std::time::Duration;

use super::Step;
use crate::catalog::{Catalog, Tool};
use crate::detect::processes::{self, ProcessInfo, Sampler};

/// How long a process gets to exit after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

pub fn run(catalog: &Catalog, sampler: &mut Sampler, tool: &str, enforce: bool) -> Vec<Step> {
    let Some(t) = catalog.tool(tool) else {
        return vec![Step::Unsupported(format!("{tool} is not a tool this agent's catalog knows"))];
    };
    let procs = sampler.sample();
    // Ports only to say what is left alone: a port never decides a termination.
    let listening = processes::listening_ports(|port| t.ports.contains(&port));
    let mut steps = Vec::new();
    let mut targets = Vec::new();
    for p in procs.iter().filter(|p| processes::tool_of(catalog, p, &listening) == Some(tool)) {
        if is_tools_program(catalog, t, p) {
            targets.push(p);
        } else {
            steps.push(Step::Unsupported(format!(
                "{} (pid {}) mentions {tool} but is not its program; left running",
                p.name, p.pid
            )));
        }
    }
    if !enforce {
        steps.extend(targets.iter().map(|p| Step::Would(format!("would stop {} (pid {})", p.name, p.pid))));
        return steps;
    }
    if targets.is_empty() {
        return steps;
    }
    let names: std::collections::HashMap<u32, String> =
        targets.iter().map(|p| (p.pid, p.name.clone())).collect();
    let ids: Vec<(u32, u64)> = targets.iter().map(|p| (p.pid, p.start_time)).collect();
    steps.extend(sampler.stop(&ids, GRACE).into_iter().map(|(pid, r)| {
        let name = names.get(&pid).cloned().unwrap_or_default();
        match r {
            Ok(()) => Step::Done(format!("stopped {name} (pid {pid})")),
            Err(e) => Step::Failed(format!("{name} (pid {pid}): {e}")),
        }
    }));
    steps
}

/// Whether `p` runs `tool`'s own program: its process name or executable is catalogued for
/// the tool, a command-line marker of the tool is in the executable's path, or the process
/// is a script host (the catalog's `[processes] script_hosts`) whose script or module
/// carries the marker.
pub(crate) fn is_tools_program(catalog: &Catalog, tool: &Tool, p: &ProcessInfo) -> bool {
    let named = |n: &str| catalog.tool_for_process(n).is_some_and(|t| t.id == tool.id);
    let exe = p.exe.as_deref().or(p.args.first().map(String::as_str)).unwrap_or_default();
    if named(&p.name) || named(basename(exe)) {
        return true;
    }
    let marked = |s: &str| tool.process_cmdline.iter().any(|m| s.contains(m.as_str()));
    if marked(exe) {
        return true;
    }
    let host = basename(p.args.first().map(String::as_str).unwrap_or(exe));
    is_script_host(catalog, host) && script(&p.args).is_some_and(|s| marked(&s))
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// `python3.12`, `node.exe`, `pythonw` → compared as catalogued (`python3`, `node`, …).
fn is_script_host(catalog: &Catalog, name: &str) -> bool {
    let name = name.strip_suffix(".exe").unwrap_or(name);
    let bare = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    catalog.processes.script_hosts.iter().any(|h| h == name || h == bare)
}

/// What an interpreter runs: `-m module` (as `-m module`, the marker's own spelling), or
/// the first argument that is not an option nor a launcher's verb (`uv run`, `pipx run`,
/// `bun x`, `deno run`). Inline code (`-e`, `-c`) is no program.
fn script(args: &[String]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-m" => return it.next().map(|m| format!("-m {m}")),
            "-e" | "-c" | "--eval" | "-p" | "--print" => return None,
            "run" | "exec" | "x" | "tool" => continue,
            s if s.starts_with('-') => continue,
            s => return Some(s.to_owned()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, exe: Option<&str>, args: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid: 4242,
            name: name.into(),
            exe: exe.map(str::to_owned),
            args: args.iter().map(|s| s.to_string()).collect(),
            user: Some("alice".into()),
            start_time: 1,
        }
    }

    #[test]
    fn only_a_tools_own_program_is_stopped() {
        let c = Catalog::builtin().unwrap();
        let lm = c.tool("lm_studio").unwrap();
        let codex = c.tool("codex_cli").unwrap();
        let aider = c.tool("aider").unwrap();
        let own = [
            (lm, p("LM Studio", Some("/opt/LM Studio/lm-studio"), &["/opt/LM Studio/lm-studio"])),
            (lm, p("AppRun", Some("/home/a/Apps/LM-Studio-0.3.5-x64.AppImage"), &["/tmp/.mount/AppRun"])),
            (
                codex,
                p(
                    "node",
                    Some("/usr/bin/node"),
                    &["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"],
                ),
            ),
            (codex, p("npx", Some("/usr/bin/npx"), &["npx", "-y", "@openai/codex"])),
            (
                aider,
                p("python3.12", Some("/usr/bin/python3.12"), &["python3.12", "-m", "aider", "--model", "x"]),
            ),
        ];
        for (tool, proc_) in &own {
            assert!(is_tools_program(&c, tool, proc_), "{} should be {}", proc_.cmdline(), tool.id);
        }
        let bystanders = [
            (lm, p("grep", Some("/usr/bin/grep"), &["grep", "LM-Studio-"])),
            (lm, p("vim", Some("/usr/bin/vim"), &["vim", "notes/LM-Studio-setup.md"])),
            (lm, p("python3", Some("/usr/bin/python3"), &["python3", "serve.py", "--port", "1234"])),
            (codex, p("node", Some("/usr/bin/node"), &["node", "-e", "require('@openai/codex')"])),
            (codex, p("bash", Some("/bin/bash"), &["bash", "-c", "npx @openai/codex"])),
            (aider, p("less", Some("/usr/bin/less"), &["less", "/home/a/.local/bin/aider"])),
        ];
        for (tool, proc_) in &bystanders {
            assert!(
                !is_tools_program(&c, tool, proc_),
                "{} must not be stopped as {}",
                proc_.cmdline(),
                tool.id
            );
        }
    }
}
