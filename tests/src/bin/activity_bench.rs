//! What reading AI activity records costs, incremental against naive, in one run.
//!
//! (a) Per MB of new log: a Claude Code transcript and a Codex rollout grow by `--new-mb`
//!     (default 64) of synthesized lines; the agent's follower reads what was appended,
//!     the naive baseline reads each file whole again (`fs::read`, every line parsed).
//! (b) Steady state on a synthesized active home: `--sessions` (default 500) sessions
//!     holding `--home-mb` (default 2048) of transcripts. The first look reads the backlog;
//!     then ~100 KB are appended to 10 sessions and a second look reads them: its time,
//!     bytes read and RSS, beside the naive baseline's look at the same home.
//!
//! Peak RSS is the process's high-water mark, reset before each phase (Linux
//! `/proc/self/clear_refs`); elsewhere it is not measured. Files live in a tempdir removed
//! at exit; the run is bounded by its sizes and stops by itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sightline_agent::catalog::{ActivityFormat, Catalog};
use sightline_agent::detect::activity::{
    FileSessions, Inputs, McpNaming, Memory, Rules, Settings, look_home, read_document,
};
use sightline_agent::detect::walk::Walked;
use sightline_agent::detect::{Limits, detect_os, homes};
use sightline_agent::fsview::Tree;
use sightline_agent::secret::Fingerprinter;

#[derive(Parser)]
struct Args {
    /// MB appended to the two logs in part (a).
    #[arg(long, default_value_t = 64)]
    new_mb: u64,
    /// Sessions in the synthesized home of part (b).
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    /// MB of transcripts in the synthesized home of part (b).
    #[arg(long, default_value_t = 2048)]
    home_mb: u64,
}

const MB: u64 = 1024 * 1024;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let catalog = Catalog::builtin()?;
    let fp = Fingerprinter::new(b"bench-org-key-0123456789abcdef01", true);

    println!(
        "(a) per MB of new log: {} MB appended to a Claude Code transcript and a Codex rollout",
        args.new_mb
    );
    let root = work.path().join("a");
    let claude = root.join("home/dev/.claude/projects/-home-dev-app/s-claude.jsonl");
    let codex = root.join("home/dev/.codex/sessions/2026/01/05/rollout-2026-01-05T10-00-00-s-codex.jsonl");
    append(&claude, &claude_lines("s-claude", MB))?;
    append(&codex, &codex_lines("s-codex", MB, true))?;
    let memory = Memory::default();
    look(&root, &catalog, &fp, &memory)?;
    append(&claude, &claude_lines("s-claude", args.new_mb * MB / 2))?;
    append(&codex, &codex_lines("s-codex", args.new_mb * MB / 2, false))?;
    let before = memory.bytes_read();
    let inc =
        measure(|| look(&root, &catalog, &fp, &memory).map(|looks| (memory.bytes_read() - before, looks)))?;
    let naive = measure(|| naive_look(&[&claude, &codex]))?;
    let per_mb = |m: &Measured| m.secs * 1000.0 / args.new_mb as f64;
    println!("  {:<28} {:>10} {:>12} {:>14}", "", "ms per MB", "bytes read", "peak RSS MiB");
    for (name, m) in [("incremental (agent)", &inc), ("naive (re-read whole files)", &naive)] {
        println!("  {name:<28} {:>10.2} {:>12} {:>14}", per_mb(m), m.value, m.rss_mib());
    }

    println!(
        "(b) steady state: {} sessions, {} MB of transcripts, then ~100 KB appended to 10 sessions",
        args.sessions, args.home_mb
    );
    let root = work.path().join("b");
    let started = Instant::now();
    let files = synthesize_home(&root, args.sessions, args.home_mb * MB)?;
    println!("  home written in {:.1} s", started.elapsed().as_secs_f64());
    let memory = Memory::default();
    let first = measure(|| look(&root, &catalog, &fp, &memory).map(|looks| (memory.bytes_read(), looks)))?;
    for (i, f) in files.iter().take(10).enumerate() {
        let codex = f.to_string_lossy().contains("rollout-");
        let text = if codex {
            codex_lines(&format!("b{i}"), 100 * 1024, false)
        } else {
            claude_lines(&format!("b{i}"), 100 * 1024)
        };
        append(f, &text)?;
    }
    let before = memory.bytes_read();
    let steady =
        measure(|| look(&root, &catalog, &fp, &memory).map(|looks| (memory.bytes_read() - before, looks)))?;
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let naive = measure(|| naive_look(&refs))?;
    println!("  {:<34} {:>10} {:>14} {:>14}", "", "seconds", "bytes read", "peak RSS MiB");
    for (name, m) in [
        ("first look (backlog, agent)", &first),
        ("steady-state look (agent)", &steady),
        ("steady-state look (naive)", &naive),
    ] {
        println!("  {name:<34} {:>10.3} {:>14} {:>14}", m.secs, m.value, m.rss_mib());
    }
    println!(
        "  note: the agent reads at most {} MiB per look (Limits::activity_look); the backlog took {} looks",
        Limits::default().activity_look / MB,
        first.looks
    );
    Ok(())
}

struct Measured {
    secs: f64,
    value: u64,
    rss_kib: Option<u64>,
    looks: u32,
}

impl Measured {
    fn rss_mib(&self) -> String {
        self.rss_kib.map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
    }
}

/// Runs `f` with the RSS high-water mark reset before it.
fn measure(f: impl FnOnce() -> anyhow::Result<(u64, u32)>) -> anyhow::Result<Measured> {
    // Linux: "5" resets the peak resident set size to the current one.
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let t = Instant::now();
    let (value, looks) = f()?;
    let secs = t.elapsed().as_secs_f64();
    let rss_kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    });
    Ok(Measured { secs, value, rss_kib, looks })
}

/// The agent's looks at the home until nothing is left for another (each look within its
/// byte budget, as the daemon runs them back to back). Returns the looks taken.
fn look(root: &Path, catalog: &Catalog, fp: &Fingerprinter, memory: &Memory) -> anyhow::Result<u32> {
    let tree = Tree::open_root(root)?;
    let os = detect_os(&tree);
    let hs = homes(&tree, os, &mut Vec::new());
    let home = hs.first().context("no home")?;
    let limits = Limits::default();
    let inputs = Inputs { catalog, fp, limits: &limits, os, settings: Settings::default(), now_ms: 0 };
    let mut looks = 0;
    loop {
        looks += 1;
        let mut budget = limits.activity_look;
        let a = look_home(&inputs, home, &Walked::default(), &[], memory, &mut budget);
        if !a.more || looks > 10_000 {
            return Ok(looks);
        }
    }
}

/// The baseline: every file read whole into memory and every line parsed again.
fn naive_look(files: &[&Path]) -> anyhow::Result<(u64, u32)> {
    let mcp = McpNaming::parse_all(&["mcp__{server}__{tool}".into()]);
    let rules = Rules { mcp, ..Rules::default() };
    let mut read = 0;
    let mut sessions = 0;
    for f in files {
        let bytes = std::fs::read(f)?;
        read += bytes.len() as u64;
        let format = if f.to_string_lossy().contains("rollout-") {
            ActivityFormat::CodexRollout
        } else {
            ActivityFormat::ClaudeCodeJsonl
        };
        let s: FileSessions = read_document(format, &bytes, &rules);
        sessions += s.sessions.len();
    }
    anyhow::ensure!(sessions > 0, "the baseline read no session");
    Ok((read, 1))
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// About `bytes` of Claude Code transcript lines: prompts, assistant text, tool calls and
/// their results, shaped like the real records.
fn claude_lines(session: &str, bytes: u64) -> String {
    let filler = "lorem ipsum dolor sit amet ".repeat(24);
    let mut out = String::with_capacity(bytes as usize + 4096);
    let mut n = 0u64;
    while (out.len() as u64) < bytes {
        n += 1;
        let ts = format!("2026-01-05T10:{:02}:{:02}.{:03}Z", (n / 60) % 60, n % 60, n % 1000);
        let head = format!(
            "\"parentUuid\":\"p{n}\",\"isSidechain\":false,\"userType\":\"external\",\"cwd\":\"/home/dev/app\",\"sessionId\":\"{session}\",\"version\":\"2.0.55\",\"gitBranch\":\"main\",\"uuid\":\"u{n}\",\"timestamp\":\"{ts}\""
        );
        let line = match n % 4 {
            0 => format!(
                "{{{head},\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"{filler}\"}}}}\n"
            ),
            1 => format!(
                "{{{head},\"type\":\"assistant\",\"requestId\":\"r{n}\",\"message\":{{\"id\":\"msg{n}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{{\"type\":\"text\",\"text\":\"{filler}\"}}],\"usage\":{{\"input_tokens\":10,\"output_tokens\":200}}}}}}\n"
            ),
            2 => format!(
                "{{{head},\"type\":\"assistant\",\"message\":{{\"id\":\"msg{n}\",\"model\":\"claude-sonnet-4-5\",\"content\":[{{\"type\":\"tool_use\",\"id\":\"toolu_{session}_{n}\",\"name\":\"mcp__github__search_code\",\"input\":{{\"q\":\"{filler}\"}}}}]}}}}\n"
            ),
            _ => format!(
                "{{{head},\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":[{{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_{n}\",\"content\":\"{filler}{filler}\"}}]}},\"toolUseResult\":{{\"stdout\":\"{filler}\"}}}}\n"
            ),
        };
        out.push_str(&line);
    }
    out
}

/// About `bytes` of Codex rollout lines, with the session's meta line first when `meta`.
fn codex_lines(session: &str, bytes: u64, meta: bool) -> String {
    let filler = "consectetur adipiscing elit ".repeat(24);
    let mut out = String::with_capacity(bytes as usize + 4096);
    if meta {
        out.push_str(&format!(
            "{{\"timestamp\":\"2026-01-05T10:00:00.000Z\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"{session}\",\"timestamp\":\"2026-01-05T10:00:00.000Z\",\"cwd\":\"/home/dev/app\",\"originator\":\"codex_cli_rs\",\"cli_version\":\"0.40.0\",\"instructions\":\"{filler}\"}}}}\n"
        ));
    }
    let mut n = 0u64;
    while (out.len() as u64) < bytes {
        n += 1;
        let ts =
            format!("\"timestamp\":\"2026-01-05T10:{:02}:{:02}.{:03}Z\"", (n / 60) % 60, n % 60, n % 1000);
        let line = match n % 4 {
            0 => format!(
                "{{{ts},\"type\":\"event_msg\",\"payload\":{{\"type\":\"user_message\",\"message\":\"{filler}\",\"images\":[]}}}}\n"
            ),
            1 => format!(
                "{{{ts},\"type\":\"turn_context\",\"payload\":{{\"cwd\":\"/home/dev/app\",\"approval_policy\":\"on-request\",\"model\":\"gpt-5-codex\",\"summary\":\"auto\"}}}}\n"
            ),
            2 => format!(
                "{{{ts},\"type\":\"response_item\",\"payload\":{{\"type\":\"function_call\",\"name\":\"create_issue\",\"namespace\":\"mcp__linear__\",\"arguments\":\"{filler}\",\"call_id\":\"c{n}\"}}}}\n"
            ),
            _ => format!(
                "{{{ts},\"type\":\"response_item\",\"payload\":{{\"type\":\"function_call_output\",\"call_id\":\"c{n}\",\"output\":\"{filler}{filler}\"}}}}\n"
            ),
        };
        out.push_str(&line);
    }
    out
}

/// Writes `sessions` transcripts totalling about `total` bytes (two thirds Claude Code,
/// one third Codex) by repeating one synthesized block per file, its session id set per
/// file. Returns the files.
fn synthesize_home(root: &Path, sessions: usize, total: u64) -> anyhow::Result<Vec<PathBuf>> {
    const ID: &str = "s-00000";
    let home = root.join("home/dev");
    let per = (total / sessions.max(1) as u64).max(4096);
    // Blocks of at most 4 MiB that add up to `per` (a block is rounded up to whole lines).
    let block_len = per / per.div_ceil(4 * MB);
    let claude_block = claude_lines(ID, block_len);
    let codex_block = codex_lines(ID, block_len, false);
    let mut files = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let id = format!("s-{i:05}");
        let (path, head, block) = if i % 3 == 2 {
            let day = 1 + i % 28;
            let p =
                home.join(format!(".codex/sessions/2026/01/{day:02}/rollout-2026-01-05T10-00-00-{id}.jsonl"));
            (p, codex_lines(&id, 0, true), codex_block.clone())
        } else {
            let p = home.join(format!(".claude/projects/-home-dev-p{}/{id}.jsonl", i % 40));
            (p, String::new(), claude_block.replace(ID, &id))
        };
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        let mut f = std::io::BufWriter::with_capacity(MB as usize, std::fs::File::create(&path)?);
        f.write_all(head.as_bytes())?;
        let mut written = head.len() as u64;
        while written + block.len() as u64 / 2 < per {
            f.write_all(block.as_bytes())?;
            written += block.len() as u64;
        }
        f.flush()?;
        files.push(path);
    }
    Ok(files)
}
