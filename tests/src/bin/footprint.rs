//! `cargo build --release --workspace --bins --features sightline-tests/bench && target/release/sightline-footprint-bench [IDLE_SECS]`
//!
//! The daemon's footprint on a laptop-shaped machine, measured from outside the process:
//! the shipped `sightline-agent run` against a generated tree (thousands of files under
//! watched extension and project dirs, three users) with hundreds of other processes
//! running, delivering to a local collector (the shipped `sightline-server`).
//!
//! Prints, beside osquery's watchdog budget (its restrictive default: 100 MB, 5 % CPU) and
//! this project's goals (25 MB steady RSS, 0.5 % idle CPU, 2 s p99 file-to-collector):
//! - average CPU % of one core while idle (between looks), and over the whole run;
//! - peak RSS (VmHWM) and steady RSS (median while idle);
//! - wake-ups per second (context switches of every agent thread while idle);
//! - latency from a credential file appearing to its observation stored by the collector.
//!
//! Bounded: 200 sleeping processes and two servers on loopback, all stopped at the end.

use clap::Parser;
use sightline_tests::procfs::{cpu_ticks, status_kb, ticks_per_sec};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sightline_agent::secret::{Fingerprinter, Secret};
use sightline_tests::{AgentProcess, ServerProcess, fake_openai_key, wait_for};

const USERS: usize = 3;
const EXTENSIONS: usize = 150;
const VSCODE_EXTENSIONS: usize = 100;
const PROJECTS: usize = 150;
const SLEEPERS: usize = 200;
const LATENCY_SAMPLES: usize = 30;

/// The shipped agent daemon's footprint, beside osquery's watchdog budget.
///
/// Idle CPU, peak and steady RSS, wake-ups and file-to-collector latency of `sightline-agent
/// run` on a generated laptop-shaped tree, delivering to the shipped collector. Runs the
/// sightline-agent and sightline-server built next to this binary (`cargo build --release
/// --workspace --bins` first).
#[derive(Parser)]
#[command(name = "sightline-footprint-bench")]
struct Args {
    /// Seconds the daemon is left idle for the idle CPU, steady RSS and wake-up figures.
    #[arg(value_name = "IDLE_SECS", default_value_t = 150)]
    idle_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let idle_secs = Args::parse().idle_secs;
    let work = tempfile::tempdir()?;
    let root = work.path().join("root");
    let files = build_tree(&root)?;
    let sleepers = spawn_sleepers(work.path())?;
    println!("tree: {files} files under {USERS} homes; {} other processes running", sleepers.0.len());

    let server = ServerProcess::start(&work.path().join("data"), &[]);
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "");
    // The shipped defaults, but for root, sampling and niceness left as in production.
    std::fs::write(
        &agent.config,
        format!(
            "state_dir = {:?}\nroot = {:?}\n",
            agent.state_dir.display().to_string(),
            root.display().to_string()
        ),
    )?;
    let started = Instant::now();
    agent.start();
    let pid = agent.child.as_ref().map(Child::id).unwrap_or(0);
    let id = agent.device_id();
    let db = server.db();
    wait_for(Duration::from_secs(120), "the first resync", || (db.seq_head(&id) > 0).then_some(()));
    let first_resync = started.elapsed();
    let cpu_start = cpu_ticks(pid)?;
    let run_start = Instant::now();

    // Idle: nothing changes; only the process sampler and the stream's keep-alives run.
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu0 = cpu_ticks(pid)?;
    let idle_switches0 = switches(pid)?;
    let idle_t0 = Instant::now();
    let mut rss = Vec::new();
    while idle_t0.elapsed() < Duration::from_secs(idle_secs) {
        rss.push(status_kb(pid, "VmRSS:")?);
        std::thread::sleep(Duration::from_secs(1));
    }
    let idle_elapsed = idle_t0.elapsed().as_secs_f64();
    let idle_cpu = (cpu_ticks(pid)? - idle_cpu0) as f64 / ticks_per_sec() / idle_elapsed * 100.0;
    let wakeups = switches_since(pid, &idle_switches0)? as f64 / idle_elapsed;
    rss.sort_unstable();
    let steady_rss = rss[rss.len() / 2];

    // Latency: a new credential file, then poll the collector's database.
    let fp = Fingerprinter::new(&std::fs::read(agent.state_dir.join("org-fingerprint.key"))?, true);
    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let key = fake_openai_key();
        let want = fp.fingerprint(&Secret::new(key.clone()));
        let home = root.join(format!("home/user{}", i % USERS));
        let t0 = Instant::now();
        let dir = home.join(".codex");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(".auth.tmp"), format!("{{\"OPENAI_API_KEY\": \"{key}\"}}"))?;
        std::fs::rename(dir.join(".auth.tmp"), dir.join("auth.json"))?;
        wait_for(Duration::from_secs(30), "the credential at the collector", || {
            db.observations(&id)
                .iter()
                .rev()
                .take(50)
                .any(|o| o.kind == "token" && o.data["fingerprint"] == want.as_str())
                .then_some(())
        });
        latencies.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(1500));
    }
    latencies.sort();
    let total_cpu =
        (cpu_ticks(pid)? - cpu_start) as f64 / ticks_per_sec() / run_start.elapsed().as_secs_f64() * 100.0;
    let peak_rss = status_kb(pid, "VmHWM:")?;
    let (status, stop) = agent.terminate(Duration::from_secs(20));
    let pct =
        |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];

    println!();
    println!("sightline-agent daemon footprint ({idle_secs}s idle, then {LATENCY_SAMPLES} credential files)");
    println!("{:<38} {:>14} {:>14} {:>22}", "", "sightline", "goal", "osquery watchdog");
    println!("{:<38} {:>13.3}% {:>13}% {:>21}%", "CPU, idle (% of one core)", idle_cpu, "0.5", "5");
    println!("{:<38} {:>13.3}% {:>14} {:>22}", "CPU, whole run incl. file changes", total_cpu, "", "");
    println!(
        "{:<38} {:>11.1} MB {:>11} MB {:>19} MB",
        "RSS, steady (median while idle)",
        steady_rss as f64 / 1024.0,
        "25",
        "100"
    );
    println!("{:<38} {:>11.1} MB {:>14} {:>22}", "RSS, peak (VmHWM)", peak_rss as f64 / 1024.0, "", "");
    println!("{:<38} {:>12.1}/s {:>14} {:>22}", "wake-ups while idle (ctx switches)", wakeups, "", "");
    println!(
        "{:<38} {:>12.0}ms {:>14} {:>22}",
        "file → collector latency p50",
        pct(0.50).as_secs_f64() * 1000.0,
        "",
        ""
    );
    println!(
        "{:<38} {:>12.0}ms {:>12}ms {:>22}",
        "file → collector latency p99",
        pct(0.99).as_secs_f64() * 1000.0,
        "2000",
        ""
    );
    println!(
        "{:<38} {:>12.0}ms {:>14} {:>22}",
        "first resync delivered after start",
        first_resync.as_secs_f64() * 1000.0,
        "",
        ""
    );
    println!("{:<38} {:>12.0}ms {:>14} {:>22}", "SIGTERM to exit", stop.as_secs_f64() * 1000.0, "", "");
    println!("exit status on SIGTERM: {status}");
    drop(sleepers);
    Ok(())
}

/// Homes with browser profiles full of (non-AI) extensions, VS Code extensions and projects.
fn build_tree(root: &Path) -> anyhow::Result<usize> {
    let mut files = 0;
    for u in 0..USERS {
        let home = root.join(format!("home/user{u}"));
        let exts = home.join(".config/google-chrome/Default/Extensions");
        for e in 0..EXTENSIONS {
            // Chrome ids are 32 letters a..p (hex digits shifted).
            let id: String = format!("{:032x}", (e as u128 + 1) * 0x9E37_79B9_7F4A_7C15)
                .bytes()
                .map(|b| (b'a' + if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 }) as char)
                .collect();
            let dir = exts.join(id).join("1.0.0_0");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("manifest.json"),
                format!("{{\"name\": \"Tool {e}\", \"version\": \"1.0.0\", \"manifest_version\": 3}}"),
            )?;
            std::fs::write(dir.join("background.js"), "chrome.runtime.onInstalled.addListener(() => {});\n")?;
            files += 2;
        }
        for e in 0..VSCODE_EXTENSIONS {
            let dir = home.join(format!(".vscode/extensions/publisher{e}.ext{e}-1.0.{e}"));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("package.json"),
                format!(
                    "{{\"name\": \"ext{e}\", \"publisher\": \"publisher{e}\", \"version\": \"1.0.{e}\"}}"
                ),
            )?;
            files += 1;
        }
        for p in 0..PROJECTS {
            let proj = home.join(format!("src/proj{p}/src"));
            std::fs::create_dir_all(&proj)?;
            for f in 0..10 {
                std::fs::write(proj.join(format!("m{f}.py")), "def main():\n    return 1\n")?;
            }
            files += 10;
        }
        std::fs::write(home.join(".bashrc"), "export PATH=$PATH:$HOME/bin\n")?;
        files += 1;
    }
    Ok(files)
}

/// Hundreds of ordinary processes, plus a few that look like a local model server.
fn spawn_sleepers(work: &Path) -> anyhow::Result<Sleepers> {
    let sleep = which("sleep")?;
    let ollama = work.join("ollama");
    std::fs::copy(&sleep, &ollama)?;
    let mut out = Sleepers(Vec::new());
    for i in 0..SLEEPERS {
        let exe = if i < 3 { ollama.as_path() } else { sleep.as_path() };
        let mut cmd = Command::new(exe);
        cmd.arg("3600").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        out.0.push(cmd.spawn()?);
    }
    Ok(out)
}

/// Child processes killed when dropped, even when the bench panics.
struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

fn which(name: &str) -> anyhow::Result<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("{name} not on PATH"))
}

/// Voluntary + involuntary context switches of each of the agent's threads, by thread id.
fn switches(pid: u32) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let mut out = std::collections::HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let t = t?;
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let n: u64 = status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .map(|v| v.trim().parse::<u64>().unwrap_or(0))
            .sum();
        out.insert(t.file_name().to_string_lossy().into_owned(), n);
    }
    Ok(out)
}

/// Switches since `before`, over threads alive now (a thread that exited in between is not
/// counted, so this is a lower bound when the blocking pool shrinks).
fn switches_since(pid: u32, before: &std::collections::HashMap<String, u64>) -> anyhow::Result<u64> {
    Ok(switches(pid)?.iter().map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0))).sum())
}
