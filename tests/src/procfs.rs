//! Reading a process's CPU time and memory from /proc, for the benchmarks' figures.

/// Fields of /proc/PID/stat after the command name (index 0 is the state).
fn stat(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<String> = after.split_whitespace().map(str::to_owned).collect();
    anyhow::ensure!(f.len() > 14, "/proc/{pid}/stat is short");
    Ok(f)
}

/// utime + stime of every thread, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let f = stat(pid)?;
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// CPU seconds of every process named `comm`, with what their exited children used (so a
/// server that forks a process per connection is counted whole).
pub fn cpu_secs_of_all(comm: &str) -> f64 {
    let pids = pids_named(comm);
    let ticks: u64 = pids
        .iter()
        .filter_map(|p| {
            let f = stat(*p).ok()?;
            let own = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
            let reaped = f[13].parse::<u64>().ok()? + f[14].parse::<u64>().ok()?;
            Some(own + reaped)
        })
        .sum();
    ticks as f64 / ticks_per_sec()
}

/// CPU seconds of `pid` so far.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    Ok(cpu_ticks(pid)? as f64 / ticks_per_sec())
}

pub fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/PID/status` field in kB (`VmRSS:`, `VmHWM:`).
pub fn status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).ok_or_else(|| anyhow::anyhow!("{key} missing"))?;
    Ok(line.trim_start_matches(key).trim().trim_end_matches("kB").trim().parse()?)
}

/// Every process whose command name is `comm` (PostgreSQL's backends, say).
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .collect()
}
