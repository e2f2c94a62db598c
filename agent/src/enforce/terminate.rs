//! `terminate_process`: stop every running process of a catalogued tool.
//!
//! The processes are found the way the sampler finds them (catalog names, command-line
//! markers, listening ports) on a fresh look at the process table, so a pid from an old
//! observation is never signalled blindly.

use std::time::Duration;

use sightline_proto::pb::observation::Item;

use super::Step;
use crate::catalog::Catalog;
use crate::detect::processes::{self, Sampler};

/// How long a process gets to exit after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

pub fn run(catalog: &Catalog, sampler: &mut Sampler, tool: &str, enforce: bool) -> Vec<Step> {
    let procs = sampler.sample();
    let found: Vec<(u32, String)> = processes::detect(catalog, &procs)
        .iter()
        .filter_map(|f| match crate::convert::item(f) {
            Item::Process(p) if p.tool == tool => Some((p.pid, p.name)),
            _ => None,
        })
        .collect();
    if found.is_empty() {
        return Vec::new();
    }
    if !enforce {
        return found
            .iter()
            .map(|(pid, name)| Step::Would(format!("would stop {name} (pid {pid})")))
            .collect();
    }
    let names: std::collections::HashMap<u32, String> = found.iter().cloned().collect();
    let pids: Vec<u32> = found.iter().map(|(p, _)| *p).collect();
    sampler
        .stop(&pids, GRACE)
        .into_iter()
        .map(|(pid, r)| {
            let name = names.get(&pid).cloned().unwrap_or_default();
            match r {
                Ok(()) => Step::Done(format!("stopped {name} (pid {pid})")),
                Err(e) => Step::Failed(format!("{name} (pid {pid}): {e}")),
            }
        })
        .collect()
}
