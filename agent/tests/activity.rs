//! AI activity from the tools' own records, through the real filesystem: incremental
//! reading (appended lines only, half lines waiting, replaced files read again, the byte
//! budget carried over), giant lines skipped, links out of the home refused, the memory
//! surviving a restart, `activity = "off"`, and no content reaching any output.

use std::path::PathBuf;
use std::sync::Arc;

use sightline_agent::catalog::Catalog;
use sightline_agent::detect::activity::{HomeActivity, Inputs, Memory, Session, Settings, look_home};
use sightline_agent::detect::walk::Walked;
use sightline_agent::detect::{Limits, detect_os, history, homes, scan_home};
use sightline_agent::fsview::{Touched, Tree};
use sightline_agent::secret::Fingerprinter;

const CANARY: &str = "CANARY-7f3a";

fn fp() -> Fingerprinter {
    Fingerprinter::new(b"test-org-key-0123456789abcdef0123", true)
}

fn now_ms() -> i64 {
    sightline_agent::enroll::now_ms()
}

struct Home {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("home/alice")).expect("home");
        Home { root, _t: t }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join("home/alice").join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, text).expect("write");
        p
    }

    fn append(&self, rel: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(self.path(rel)).expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn look_with(
        &self,
        memory: &Memory,
        limits: &Limits,
        settings: Settings,
        budget: &mut u64,
    ) -> HomeActivity {
        let tree = Tree::open_root(&self.root).expect("root");
        self.look_tree(&tree, memory, limits, settings, budget)
    }

    fn look_tree(
        &self,
        tree: &Tree,
        memory: &Memory,
        limits: &Limits,
        settings: Settings,
        budget: &mut u64,
    ) -> HomeActivity {
        let catalog = Catalog::builtin().expect("catalog");
        let os = detect_os(tree);
        let hs = homes(tree, os, &mut Vec::new());
        let fp = fp();
        let inputs = Inputs { catalog: &catalog, fp: &fp, limits, os, settings, now_ms: now_ms() };
        look_home(&inputs, &hs[0], &Walked::default(), &[], memory, budget)
    }

    fn look(&self, memory: &Memory) -> HomeActivity {
        self.look_with(memory, &Limits::default(), Settings::default(), &mut u64::MAX.clone())
    }
}

fn ts(s: u32) -> String {
    format!("2025-06-01T10:{:02}:{:02}.000Z", s / 60, s % 60)
}

fn prompt(session: &str, s: u32) -> String {
    format!(
        "{{\"parentUuid\":null,\"isSidechain\":false,\"userType\":\"external\",\"cwd\":\"/home/alice/{CANARY}-proj\",\"sessionId\":\"{session}\",\"version\":\"2.0.55\",\"gitBranch\":\"main\",\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"{CANARY} prompt {s}\"}},\"uuid\":\"u{s}\",\"timestamp\":\"{}\"}}\n",
        ts(s)
    )
}

fn tool_use(session: &str, s: u32, name: &str) -> String {
    format!(
        "{{\"parentUuid\":\"u\",\"isSidechain\":false,\"cwd\":\"/home/alice/{CANARY}-proj\",\"sessionId\":\"{session}\",\"type\":\"assistant\",\"message\":{{\"id\":\"msg_{s}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{{\"type\":\"tool_use\",\"id\":\"toolu_{s}\",\"name\":\"{name}\",\"input\":{{\"body\":\"{CANARY}\"}}}}]}},\"uuid\":\"a{s}\",\"timestamp\":\"{}\"}}\n",
        ts(s)
    )
}

const T: &str = ".claude/projects/-home-alice-proj/0f1e2d3c.jsonl";

fn only(a: &HomeActivity) -> &Session {
    assert_eq!(a.sessions.len(), 1, "{:?}", a.sessions);
    &a.sessions[0]
}

fn assert_no_canary(what: &str, text: &str) {
    assert!(!text.contains(CANARY), "content leaked into {what}: {text}");
}

#[test]
fn appended_lines_are_read_once_and_a_half_line_waits() {
    let h = Home::new();
    let first = format!("{}{}", prompt("s1", 1), tool_use("s1", 2, "mcp__github__create_issue"));
    let next = prompt("s1", 3);
    let (head, tail) = next.split_at(next.len() / 2);
    h.write(T, &format!("{first}{head}"));
    let memory = Memory::default();
    let a = h.look(&memory);
    let s = only(&a);
    assert_eq!((s.tally.prompts, s.tally.tool_calls), (1, 1));
    assert_eq!(s.tally.mcp["github"].calls, 1);
    assert_eq!(memory.bytes_read(), (first.len() + head.len()) as u64);

    h.append(T, &format!("{tail}{}", tool_use("s1", 4, "Bash")));
    let a = h.look(&memory);
    let s = only(&a);
    assert_eq!((s.tally.prompts, s.tally.tool_calls), (2, 2));
    // The second look read the half line again and what was appended, nothing before it.
    let appended = next.len() + tool_use("s1", 4, "Bash").len();
    assert_eq!(memory.bytes_read(), (first.len() + head.len() + appended) as u64);

    // Nothing new: nothing read.
    let before = memory.bytes_read();
    let a = h.look(&memory);
    assert_eq!(only(&a).tally.prompts, 2);
    assert_eq!(memory.bytes_read(), before);
    assert_no_canary("the sessions", &format!("{:?}", a.sessions));
}

#[test]
fn a_truncated_or_replaced_file_is_read_again_from_its_start() {
    let h = Home::new();
    h.write(T, &format!("{}{}{}", prompt("s1", 1), prompt("s1", 2), prompt("s1", 3)));
    let memory = Memory::default();
    assert_eq!(only(&h.look(&memory)).tally.prompts, 3);

    // Truncated (same inode, shorter): totals of what it holds now, not added to the old.
    std::fs::write(h.path(T), prompt("s1", 9)).expect("truncate");
    assert_eq!(only(&h.look(&memory)).tally.prompts, 1);

    // Replaced by rename with a longer file of other content.
    let tmp =
        h.write(".claude/projects/-home-alice-proj/.tmp", &format!("{}{}", prompt("s2", 1), prompt("s2", 2)));
    std::fs::rename(tmp, h.path(T)).expect("rename");
    h.append(T, &prompt("s2", 3));
    let a = h.look(&memory);
    let s = only(&a);
    assert_eq!((s.tally.session_id.as_str(), s.tally.prompts), ("s2", 3));
}

#[test]
fn the_byte_budget_leaves_the_rest_for_the_next_look() {
    let h = Home::new();
    let lines: String = (0..40).map(|i| prompt("s1", i)).collect();
    h.write(T, &lines);
    let memory = Memory::default();
    let mut budget = (lines.len() / 3) as u64;
    let a = h.look_with(&memory, &Limits::default(), Settings::default(), &mut budget);
    assert!(a.more, "the budget ran out before the end");
    assert_eq!(budget, 0);
    let partial = only(&a).tally.prompts;
    assert!((1..40).contains(&partial), "{partial} prompts after a third of the file");
    let mut budget = u64::MAX;
    let a = h.look_with(&memory, &Limits::default(), Settings::default(), &mut budget);
    assert!(!a.more);
    assert_eq!(only(&a).tally.prompts, 40, "each line counted once over the two looks");
    assert!(memory.bytes_read() < 2 * lines.len() as u64);
}

#[test]
fn a_giant_line_is_skipped_without_being_held() {
    let h = Home::new();
    let limits = Limits { activity_line: 64 * 1024, ..Limits::default() };
    let giant = format!(
        "{{\"type\":\"user\",\"sessionId\":\"s1\",\"message\":{{\"content\":\"{}\"}}}}\n",
        CANARY.repeat(3 * 1024 * 1024 / CANARY.len())
    );
    let text = format!("{}{giant}{}", prompt("s1", 1), prompt("s1", 2));
    h.write(T, &text);
    let memory = Memory::default();
    let a = h.look_with(&memory, &limits, Settings::default(), &mut u64::MAX.clone());
    assert_eq!(only(&a).tally.prompts, 2, "the lines around the giant one are read");
    assert!(a.errors.iter().any(|e| e.error.contains("longer than 65536 bytes skipped")), "{:?}", a.errors);
    assert_eq!(memory.bytes_read(), text.len() as u64, "read once, in passing");

    // Cut inside the giant line by the budget: the next look reads on to its end.
    let h = Home::new();
    h.write(T, &text);
    let memory = Memory::default();
    let mut budget = 2 * 1024 * 1024;
    let a = h.look_with(&memory, &limits, Settings::default(), &mut budget);
    assert!(a.more);
    let a = h.look_with(&memory, &limits, Settings::default(), &mut u64::MAX.clone());
    assert_eq!(only(&a).tally.prompts, 2);
    assert_no_canary("the errors", &format!("{:?}", a.errors));
}

#[cfg(unix)]
#[test]
fn a_record_linked_out_of_the_home_is_not_read() {
    let h = Home::new();
    let outside = h.root.parent().expect("tempdir").join("outside");
    std::fs::create_dir_all(outside.join("proj")).expect("outside");
    std::fs::write(outside.join("s.jsonl"), prompt("linked-file", 1)).expect("outside file");
    std::fs::write(outside.join("proj/s.jsonl"), prompt("linked-dir", 1)).expect("outside file");
    std::fs::create_dir_all(h.path(".claude/projects/p")).expect("projects");
    std::os::unix::fs::symlink(outside.join("s.jsonl"), h.path(".claude/projects/p/s.jsonl")).expect("link");
    std::os::unix::fs::symlink(outside.join("proj"), h.path(".claude/projects/q")).expect("link");
    let a = h.look(&Memory::default());
    assert!(a.sessions.is_empty(), "{:?}", a.sessions);

    // A linked tool directory (a literal segment of the catalog path) leading out.
    let h = Home::new();
    let outside = h.root.parent().expect("tempdir").join("dotfiles");
    std::fs::create_dir_all(outside.join("projects/p")).expect("outside");
    std::fs::write(outside.join("projects/p/s.jsonl"), prompt("linked-root", 1)).expect("outside file");
    std::os::unix::fs::symlink(&outside, h.path(".claude")).expect("link");
    let a = h.look(&Memory::default());
    assert!(a.sessions.is_empty(), "{:?}", a.sessions);
}

#[test]
fn the_memory_survives_a_restart_without_reading_or_reporting_again() {
    let h = Home::new();
    h.write(T, &format!("{}{}", prompt("s1", 1), tool_use("s1", 2, "mcp__github__list_issues")));
    let state = h.root.parent().expect("tempdir").join("activity.json");
    let memory = Memory::default();
    let a = h.look(&memory);
    let s = only(&a);
    assert_eq!(memory.changed(&s.key(), &s.digest()), Some(true), "never reported");
    memory.mark_reported([(s.key(), s.digest())]);
    memory.save(&state).expect("save");
    let saved = std::fs::read_to_string(&state).expect("saved");
    assert_no_canary("activity.json", &saved);

    let restarted = Memory::load(&state);
    let a = h.look(&restarted);
    let s = only(&a);
    assert_eq!(restarted.bytes_read(), 0, "nothing read again after the restart");
    assert_eq!(restarted.changed(&s.key(), &s.digest()), None, "nothing reported again");
    h.append(T, &prompt("s1", 3));
    let a = h.look(&restarted);
    let s = only(&a);
    assert_eq!(s.tally.prompts, 2);
    assert_eq!(restarted.changed(&s.key(), &s.digest()), Some(false), "grown: reported as changed");
}

#[test]
fn activity_off_opens_no_record() {
    let h = Home::new();
    h.write(T, &prompt("s1", 1));
    let touched = Arc::new(Touched::default());
    let tree = Tree::open_root_recording(&h.root, touched.clone()).expect("root");
    let off = Settings { enabled: false, plain_paths: false };
    let memory = Memory::default();
    let a = h.look_tree(&tree, &memory, &Limits::default(), off, &mut u64::MAX.clone());
    assert!(a.sessions.is_empty());
    assert_eq!(memory.bytes_read() + memory.bytes_probed(), 0);
    let looked: Vec<_> =
        touched.take().into_iter().filter(|(p, _)| p.to_string_lossy().contains(".claude")).collect();
    assert!(looked.is_empty(), "looked at {looked:?}");
    // The same look with activity on does open it (the check above can fail).
    let on = h.look_tree(&tree, &memory, &Limits::default(), Settings::default(), &mut u64::MAX.clone());
    assert_eq!(on.sessions.len(), 1);
    assert!(touched.take().iter().any(|(p, _)| p.ends_with(T)));

    let config =
        sightline_agent::config::RawConfig::parse("activity = \"off\"\nactivity_paths = \"plain\"\n", "t")
            .expect("parse")
            .resolve()
            .expect("resolve");
    assert!(!config.activity && config.activity_plain_paths);
    let bad =
        sightline_agent::config::RawConfig::parse("activity = \"content\"\n", "t").expect("parse").resolve();
    assert!(format!("{:#}", bad.expect_err("refused")).contains("`activity`"));
}

#[test]
fn subagent_files_merge_into_their_session_and_projects_are_fingerprinted() {
    let h = Home::new();
    h.write(T, &format!("{}{}", prompt("0f1e2d3c", 1), tool_use("0f1e2d3c", 2, "Task")));
    h.write(
        ".claude/projects/-home-alice-proj/0f1e2d3c/subagents/agent-a1b2.jsonl",
        &format!("{}{}", tool_use("0f1e2d3c", 3, "mcp__github__get_me"), tool_use("0f1e2d3c", 4, "Read")),
    );
    h.write(
        ".codex/sessions/2025/09/01/rollout-2025-09-01T10-00-00-0199a.jsonl",
        &format!(
            "{}\n{}\n{}\n",
            r#"{"timestamp":"2025-09-01T10:00:00.000Z","type":"session_meta","payload":{"id":"0199a","timestamp":"2025-09-01T10:00:00.000Z","cwd":"/home/alice/app","originator":"codex_cli_rs","cli_version":"0.40.0"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:01.000Z","type":"event_msg","payload":{"type":"user_message","message":"CANARY-7f3a"}}"#,
            r#"{"timestamp":"2025-09-01T10:00:02.000Z","type":"response_item","payload":{"type":"function_call","name":"create_issue","namespace":"mcp__github__","arguments":"{\"t\":\"CANARY-7f3a\"}","call_id":"c"}}"#,
        ),
    );
    let a = h.look(&Memory::default());
    assert_eq!(a.sessions.len(), 2, "{:?}", a.sessions);
    let claude = a.sessions.iter().find(|s| s.tool == "claude_code").expect("claude");
    assert_eq!((claude.tally.prompts, claude.tally.tool_calls), (1, 3));
    assert_eq!(claude.tally.mcp["github"].calls, 1);
    assert_eq!(claude.user, "alice");
    let project = claude.tally.project.as_deref().expect("project");
    assert!(project.starts_with("fp:") && !project.contains("proj"), "{project}");
    let codex = a.sessions.iter().find(|s| s.tool == "codex_cli").expect("codex");
    assert_eq!((codex.tally.prompts, codex.tally.tool_calls), (1, 1));
    assert_eq!(codex.tally.mcp["github"].tools.iter().collect::<Vec<_>>(), ["create_issue"]);

    let plain = Settings { enabled: true, plain_paths: true };
    let a = h.look_with(&Memory::default(), &Limits::default(), plain, &mut u64::MAX.clone());
    let codex = a.sessions.iter().find(|s| s.tool == "codex_cli").expect("codex");
    assert_eq!(codex.tally.project.as_deref(), Some("/home/alice/app"));
}

/// A session active within the last day is bound to the credential the tool keeps in its
/// own credential file (as the scan found it); an old one is not.
#[test]
fn recent_sessions_carry_the_tools_credential_fingerprint() {
    let h = Home::new();
    let key = format!("sk-proj-{}", "Zq8Lm3Xv7Rt2Wp9Kd4Hs6Jf1Nb5Gc0Ya");
    h.write(".codex/auth.json", &format!("{{\"OPENAI_API_KEY\": \"{key}\"}}"));
    let recent =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("now");
    h.write(
        ".codex/sessions/2026/01/01/rollout-now-a.jsonl",
        &format!(
            "{{\"timestamp\":\"{recent}\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"recent\",\"timestamp\":\"{recent}\",\"cwd\":\"/w\"}}}}\n"
        ),
    );
    h.write(
        ".codex/sessions/2025/01/01/rollout-old-b.jsonl",
        "{\"timestamp\":\"2025-01-01T00:00:00Z\",\"type\":\"session_meta\",\"payload\":{\"id\":\"old\",\"timestamp\":\"2025-01-01T00:00:00Z\",\"cwd\":\"/w\"}}\n",
    );
    let tree = Tree::open_root(&h.root).expect("root");
    let catalog = Catalog::builtin().expect("catalog");
    let os = detect_os(&tree);
    let hs = homes(&tree, os, &mut Vec::new());
    let limits = Limits::default();
    let scan = scan_home(&catalog, &fp(), &limits, os, &hs[0], None, &history::Memory::default());
    let inputs = Inputs {
        catalog: &catalog,
        fp: &fp(),
        limits: &limits,
        os,
        settings: Settings::default(),
        now_ms: now_ms(),
    };
    let a =
        look_home(&inputs, &hs[0], &scan.walked, &scan.findings, &Memory::default(), &mut u64::MAX.clone());
    let want = fp().fingerprint(&sightline_agent::secret::Secret::new(key.clone()));
    let by_id = |id: &str| a.sessions.iter().find(|s| s.tally.session_id == id).expect("session").clone();
    assert_eq!(by_id("recent").credentials, vec![want]);
    assert!(by_id("old").credentials.is_empty());
    assert!(!format!("{:?}", a.sessions).contains(&key));
}

/// A whole-document record (Gemini CLI's `session-*.json`) is read again, whole, only when it
/// changes; one over the document cap is a scan error and nothing of it is read.
#[test]
fn documents_are_reread_whole_when_changed_and_capped() {
    let h = Home::new();
    let doc = ".gemini/tmp/3f2a/chats/session-2025-06-01T10-00-a1.json";
    let first =
        format!("{{\"sessionId\":\"a1\",\"messages\":[{{\"type\":\"user\",\"content\":\"{CANARY}\"}}]}}");
    h.write(doc, &first);
    let memory = Memory::default();
    h.look(&memory);
    assert_eq!(memory.bytes_read(), first.len() as u64);
    h.look(&memory);
    assert_eq!(memory.bytes_read(), first.len() as u64, "unchanged: not read again");
    let second = format!("{first} ");
    h.write(doc, &second);
    h.look(&memory);
    assert_eq!(memory.bytes_read(), (first.len() + second.len()) as u64, "changed: read whole again");

    let small = Limits { activity_document: 16, ..Limits::default() };
    let memory = Memory::default();
    let a = h.look_with(&memory, &small, Settings::default(), &mut u64::MAX.clone());
    assert_eq!(memory.bytes_read(), 0);
    // The error names the records' root and the file's fingerprint, not the path.
    let shown = format!("/home/alice/.gemini/tmp/[{}]", fp_of(doc));
    assert!(a.errors.iter().any(|e| e.path == shown), "{:?}", a.errors);
    assert!(a.errors.iter().all(|e| !e.path.contains("3f2a")), "{:?}", a.errors);
    // `activity_paths = "plain"`: the path as it is.
    let plain = Settings { plain_paths: true, ..Settings::default() };
    let a = h.look_with(&Memory::default(), &small, plain, &mut u64::MAX.clone());
    assert!(a.errors.iter().any(|e| e.path == format!("/home/alice/{doc}")), "{:?}", a.errors);
}

/// `fp:<keyed fingerprint>` of a home-relative path, as errors and aider ids use it.
fn fp_of(rel: &str) -> String {
    format!("fp:{}", fp().fingerprint(&sightline_agent::secret::Secret::new(rel.to_owned())))
}

/// A Claude Code line opening session `id` at second `s` of 2025-06-01.
fn opening(id: &str, s: u32) -> String {
    format!(
        "{{\"type\":\"user\",\"sessionId\":\"{id}\",\"message\":{{\"role\":\"user\",\"content\":\"x\"}},\"timestamp\":\"2025-06-01T{:02}:{:02}:{:02}.000Z\"}}\n",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A file naming thousands of sessions keeps the first `MAX_SESSIONS_PER_FILE`, says so
/// once, and a home reports at most `MAX_SESSIONS_PER_HOME`, the most recent.
#[test]
fn sessions_are_capped_per_file_and_per_home() {
    use sightline_agent::detect::activity::{MAX_SESSIONS_PER_FILE, MAX_SESSIONS_PER_HOME};
    let h = Home::new();
    let flood: String =
        (0..MAX_SESSIONS_PER_FILE as u32 + 500).map(|i| opening(&format!("f{i}"), i)).collect();
    h.write(T, &flood);
    let memory = Memory::default();
    let a = h.look(&memory);
    assert_eq!(a.sessions.len(), MAX_SESSIONS_PER_FILE);
    let said = |a: &HomeActivity| {
        a.errors.iter().filter(|e| e.error.contains("sessions in one record file")).count()
    };
    assert_eq!(said(&a), 1, "{:?}", a.errors);
    assert!(a.errors.iter().all(|e| !e.path.contains("-home-alice-proj")), "{:?}", a.errors);
    // More sessions appended: still capped, not said again.
    h.append(T, &opening("late", 7000));
    let a = h.look(&memory);
    assert_eq!((a.sessions.len(), said(&a)), (MAX_SESSIONS_PER_FILE, 0));
    assert!(a.sessions.iter().all(|s| s.tally.session_id != "late"));

    // Many files, each under the file cap, over the home cap: the most recent are kept.
    let h = Home::new();
    let per_file = 1_000u32;
    let files = (MAX_SESSIONS_PER_HOME as u32).div_ceil(per_file) + 1;
    for f in 0..files {
        let text: String = (0..per_file).map(|i| opening(&format!("h{f}-{i}"), f * per_file + i)).collect();
        h.write(&format!(".claude/projects/p{f}/s.jsonl"), &text);
    }
    let a = h.look(&Memory::default());
    assert_eq!(a.sessions.len(), MAX_SESSIONS_PER_HOME);
    let total = files * per_file;
    let oldest_kept = total - MAX_SESSIONS_PER_HOME as u32;
    let start = sightline_agent::detect::activity::rfc3339_ms("2025-06-01T00:00:00Z").expect("ts");
    assert!(
        a.sessions.iter().all(|s| s.tally.ended_at_ms >= Some(start + i64::from(oldest_kept) * 1000)),
        "the oldest were dropped"
    );
    assert!(
        a.errors.iter().any(|e| e.error.contains("AI activity sessions; only the most recent")),
        "{:?}",
        a.errors
    );
}

/// A home heaped with forged records holds at most `MAX_SESSIONS_HELD_PER_HOME` sessions in
/// the memory (the rest of its files are not read, and the look says so), and records dated
/// in the future do not outrank real ones in the per-home report.
#[test]
fn a_home_holds_a_bounded_number_of_sessions_and_future_dates_do_not_win() {
    use sightline_agent::detect::activity::{
        MAX_SESSIONS_HELD_PER_HOME, MAX_SESSIONS_PER_FILE, MAX_SESSIONS_PER_HOME,
    };
    let h = Home::new();
    let per_file = MAX_SESSIONS_PER_FILE as u32;
    let files = (MAX_SESSIONS_HELD_PER_HOME as u32).div_ceil(per_file) + 2;
    for f in 0..files {
        // Dated 2099: in the future.
        let text: String = (0..per_file)
            .map(|i| opening(&format!("x{f}-{i}"), i).replace("2025-06-01", "2099-01-01"))
            .collect();
        h.write(&format!(".claude/projects/junk{f:03}/s.jsonl"), &text);
    }
    // A real session in a file read first (projects are listed in name order).
    h.write(".claude/projects/aaa/s.jsonl", &opening("real", 5));
    let memory = Memory::default();
    let a = h.look(&memory);
    assert_eq!(a.sessions.len(), MAX_SESSIONS_PER_HOME);
    assert!(a.sessions.iter().any(|s| s.tally.session_id == "real"), "the real session is reported");
    let held: usize = {
        let state = h.root.parent().expect("tempdir").join("held.json");
        memory.save(&state).expect("save");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("read")).expect("json");
        v.to_string().matches("\"session_id\"").count()
    };
    // The file that crosses the bound is kept whole; none after it is read.
    assert!(held <= MAX_SESSIONS_HELD_PER_HOME + MAX_SESSIONS_PER_FILE, "{held} sessions held");
    assert!(held < files as usize * MAX_SESSIONS_PER_FILE, "{held} sessions held: every file was read");
    assert!(a.errors.iter().any(|e| e.error.contains("record file(s) not read")), "{:?}", a.errors);
}

/// A file reached by two catalog paths (`.config/claude` linked to `.claude`) is read once.
#[cfg(unix)]
#[test]
fn a_record_reached_twice_through_a_link_is_counted_once() {
    let h = Home::new();
    h.write(T, &format!("{}{}", prompt("s1", 1), tool_use("s1", 2, "mcp__github__list_issues")));
    std::fs::create_dir_all(h.path(".config")).expect("config");
    std::os::unix::fs::symlink(h.path(".claude"), h.path(".config/claude")).expect("link");
    let a = h.look(&Memory::default());
    let s = only(&a);
    assert_eq!((s.tally.prompts, s.tally.tool_calls), (1, 1));
}

/// Past the per-tool file cut, the most recently modified records are taken, not the
/// first by name: junk cannot push a live transcript out.
#[test]
fn a_heap_of_junk_files_does_not_hide_the_newest_transcript() {
    use sightline_agent::detect::activity::MAX_FILES_PER_TOOL;
    let h = Home::new();
    std::fs::create_dir_all(h.path(".claude/projects/junk")).expect("dir");
    for i in 0..MAX_FILES_PER_TOOL + 10 {
        std::fs::write(h.path(&format!(".claude/projects/junk/{i:06}.jsonl")), "").expect("junk");
    }
    // Named to sort last, modified last.
    let real = h.write(".claude/projects/zzz/live.jsonl", &prompt("live", 1));
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&real).expect("open").set_modified(later).expect("mtime");
    let a = h.look(&Memory::default());
    assert_eq!(only(&a).tally.session_id, "live");
    assert!(a.errors.iter().any(|e| e.error.contains("most recently modified")), "{:?}", a.errors);
}

/// Records kept in project directories (aider's) are found by the bounded home walk;
/// a linked one is not.
#[test]
fn project_records_come_from_the_walk_and_links_are_left_alone() {
    let h = Home::new();
    let text = "# aider chat started at 2025-06-01 10:00:00\n\n#### CANARY-7f3a\n";
    h.write("code/app/.aider.chat.history.md", text);
    std::fs::create_dir_all(h.path("code/linked")).expect("dir");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        h.path("code/app/.aider.chat.history.md"),
        h.path("code/linked/.aider.chat.history.md"),
    )
    .expect("link");
    let tree = Tree::open_root(&h.root).expect("root");
    let catalog = Catalog::builtin().expect("catalog");
    let os = detect_os(&tree);
    let hs = homes(&tree, os, &mut Vec::new());
    let limits = Limits::default();
    let scan = scan_home(&catalog, &fp(), &limits, os, &hs[0], None, &history::Memory::default());
    let memory = Memory::default();
    let inputs = Inputs {
        catalog: &catalog,
        fp: &fp(),
        limits: &limits,
        os,
        settings: Settings::default(),
        now_ms: now_ms(),
    };
    look_home(&inputs, &hs[0], &scan.walked, &scan.findings, &memory, &mut u64::MAX.clone());
    assert_eq!(memory.bytes_read(), text.len() as u64, "the one real history, read once");
}
