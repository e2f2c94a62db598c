//! AI activity over the fixture homes: what `scan` reports agrees exactly with
//! `activity-truth.tsv` (written by make_fixtures.py from what it planted), and no canary from
//! any content field reaches anything the agent keeps, logs or reports.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prost::Message as _;
use sightline_agent::catalog::{ActivityFormat, ActivityLog, Catalog};
use sightline_agent::convert;
use sightline_agent::detect::Limits;
use sightline_agent::detect::activity::{
    FileSessions, McpNaming, Rules, Tally, read_document, read_lines, rfc3339_ms, set_local_offset_s,
};
use sightline_agent::detect::activity::{Inputs, Memory, Settings, look_home};
use sightline_agent::detect::{detect_os, history, scan_home};
use sightline_agent::fsview::Tree;
use sightline_agent::report;
use sightline_agent::scan::{ScanOptions, run};
use sightline_agent::secret::{Fingerprinter, Secret};
use sightline_proto::pb;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The wall clock make_fixtures.py wrote the aider histories in (UTC+02:00).
const AIDER_OFFSET_S: i32 = 7200;

/// The homes of one layout, as (path on disk, path as the agent shows it).
fn homes(layout: &str) -> Vec<(PathBuf, String)> {
    let root = fixtures().join(layout);
    let parents: &[&str] = if layout == "linux" { &["home"] } else { &["Users"] };
    let mut out = Vec::new();
    for parent in parents {
        for e in std::fs::read_dir(root.join(parent)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.push((e.path(), format!("/{parent}/{}", e.file_name().to_string_lossy())));
            }
        }
    }
    if layout == "linux" {
        out.push((root.join("root"), "/root".into()));
    }
    out.sort();
    out
}

/// `*` matches within one name, as the catalog's `paths` say.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

fn glob(home: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![home.to_path_buf()];
    for seg in pattern.split('/') {
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                if matches(seg, &e.file_name().to_string_lossy()) {
                    next.push(e.path());
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// Files named `names` anywhere in the home, outside the directories the home walk skips.
fn project_files(dir: &Path, names: &[String], skip: &[String], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().unwrap();
        if ty.is_dir() && !skip.contains(&name) {
            project_files(&e.path(), names, skip, out);
        } else if ty.is_file() && names.contains(&name) {
            out.push(e.path());
        }
    }
}

/// Every activity file of a home with the catalog entry that names it.
fn activity_files<'c>(catalog: &'c Catalog, home: &Path) -> Vec<(&'c ActivityLog, PathBuf)> {
    let mut out = Vec::new();
    for log in &catalog.activity {
        let mut files: Vec<PathBuf> = log.paths.iter().flat_map(|p| glob(home, p)).collect();
        project_files(home, &log.project_files, &catalog.env_files.skip_dirs, &mut files);
        files.sort();
        out.extend(files.into_iter().map(|f| (log, f)));
    }
    out
}

fn rules(log: &ActivityLog, home: &Path, file: &Path) -> Rules {
    Rules {
        mcp: McpNaming::parse_all(&log.mcp_tool),
        file_key: file.strip_prefix(home).unwrap().to_string_lossy().replace('\\', "/"),
        local_offset_s: AIDER_OFFSET_S,
    }
}

/// One file read the way the agent reads it: a rewritten document whole, a log by lines.
fn parse(log: &ActivityLog, home: &Path, file: &Path) -> FileSessions {
    let bytes = std::fs::read(file).unwrap();
    let rules = rules(log, home, file);
    if log.format == ActivityFormat::GeminiChat && file.extension().is_some_and(|e| e == "json") {
        read_document(log.format, &bytes, &rules)
    } else {
        let mut f = FileSessions::default();
        // Complete lines only, as the incremental reader hands them over.
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        read_lines(log.format, body.split(|&b| b == b'\n'), &mut f, &rules);
        f
    }
}

fn row(layout: &str, user: &str, tool: &str, t: &Tally) -> String {
    let mcp: Vec<String> = t
        .mcp
        .iter()
        .map(|(s, m)| format!("{s}={}:{}", m.calls, m.tools.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let ms = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    [
        layout.to_owned(),
        user.to_owned(),
        tool.to_owned(),
        t.session_id.clone(),
        t.project.clone().unwrap_or_else(|| "-".into()),
        t.prompts.to_string(),
        t.tool_calls.to_string(),
        or_dash(mcp.join(";")),
        or_dash(t.models.iter().cloned().collect::<Vec<_>>().join(",")),
        ms(t.started_at_ms),
        ms(t.ended_at_ms),
    ]
    .join("\t")
}

/// The truth's rows as a scan reports them: the home's user, the project fingerprinted
/// (`activity_paths` defaults to "fingerprint"), times as Unix milliseconds.
fn truth() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("activity-truth.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut cols: Vec<String> = l.split('\t').map(str::to_owned).collect();
            if cols[2] == "aider" {
                cols[3] = aider_id(&cols[1], &cols[4], &cols[9]);
            }
            cols[1] = cols[1].rsplit('/').next().unwrap().to_owned();
            if cols[4] != "-" {
                cols[4] = format!("fp:{}", fp().fingerprint(&Secret::new(cols[4].clone())));
            }
            for c in cols.iter_mut().skip(9) {
                *c = rfc3339_ms(c).unwrap().to_string();
            }
            cols.join("\t")
        })
        .collect()
}

/// What `scan` (the one-off scan `sightline-agent scan --json` prints) reports of every
/// layout's activity, one row per session.
fn scanned(catalog: &Catalog) -> Vec<String> {
    let mut rows = Vec::new();
    for layout in ["linux", "macos", "windows"] {
        let opts = ScanOptions {
            root: fixtures().join(layout),
            processes: false,
            limits: Limits::default(),
            activity: Default::default(),
        };
        let r = run(&opts, catalog, &fp()).unwrap();
        rows.extend(r.activity.iter().map(|s| row(layout, &s.user, &s.tool, &s.tally)));
    }
    rows.sort();
    rows
}

/// The id the agent derives for an aider session: make_fixtures.py writes an id over the
/// plain path (it has no key); the agent keys it — SHA-256 of the keyed fingerprint of the
/// home-relative history path and the header's local stamp.
fn aider_id(home: &str, project: &str, started: &str) -> String {
    let rel =
        format!("{}/.aider.chat.history.md", project.strip_prefix(home).unwrap().trim_start_matches('/'));
    let local_ms = rfc3339_ms(started).unwrap() + i64::from(AIDER_OFFSET_S) * 1000;
    let local = time::OffsetDateTime::from_unix_timestamp(local_ms / 1000).unwrap();
    let stamp = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    );
    let key = format!("fp:{}\n{stamp}", fp().fingerprint(&Secret::new(rel)));
    format!(
        "aider-{}",
        hex::encode(&ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref()[..12])
    )
}

fn fp() -> Fingerprinter {
    Fingerprinter::new(b"test-org-key-0123456789abcdef0123", true)
}

#[test]
fn sessions_match_the_ground_truth_exactly() {
    // The wall clock the aider histories were written in, as the agent reads it at start.
    set_local_offset_s(AIDER_OFFSET_S);
    let catalog = Catalog::builtin().unwrap();
    let got = scanned(&catalog);
    let want = truth();
    let missed: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
    assert!(missed.is_empty() && extra.is_empty(), "missed: {missed:#?}\nunexpected: {extra:#?}");
    // Every format, in every layout, with MCP use where the tool has MCP.
    for layout in ["linux", "macos", "windows"] {
        for tool in ["claude_code", "codex_cli", "gemini_cli", "aider"] {
            assert!(
                got.iter()
                    .any(|r| r.starts_with(&format!("{layout}\t")) && r.split('\t').nth(2) == Some(tool)),
                "{layout} has no {tool} session"
            );
        }
    }
    assert!(got.iter().filter(|r| r.contains("github=")).count() >= 12);
}

/// Every canary the fixtures planted in a content field, with the other fabricated secrets.
fn canaries() -> Vec<String> {
    let all: Vec<String> = std::fs::read_to_string(fixtures().join("secrets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        all.iter().filter(|s| s.starts_with("CANARY-")).count() > 300,
        "the fixtures lost their canaries"
    );
    all
}

fn leaks<'a>(haystack: &str, needles: &'a [String]) -> Vec<&'a str> {
    let lower = haystack.to_ascii_lowercase();
    needles
        .iter()
        .filter(|n| haystack.contains(n.as_str()) || lower.contains(&n.to_ascii_lowercase()))
        .map(String::as_str)
        .collect()
}

/// Captures everything logged, at every level, while `f` runs on this thread.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

/// No canary in the readers' results or in what the agent keeps between looks (the
/// serialised per-file state), none in the logs at trace level, none in what `scan` prints
/// (JSON, table, errors), none in the daemon's saved activity memory or its observations'
/// wire bytes — also when every line is cut short, as a file read mid-write is.
#[test]
fn no_canary_reaches_any_output() {
    let catalog = Catalog::builtin().unwrap();
    let secrets = canaries();
    let fp = fp();
    let mut files = 0;
    for layout in ["linux", "macos", "windows"] {
        for (home, _) in homes(layout) {
            for (log, file) in activity_files(&catalog, &home) {
                files += 1;
                let ((whole, cut), logs) = logged(|| {
                    let whole = parse(log, &home, &file);
                    let bytes = std::fs::read(&file).unwrap();
                    let rules = rules(log, &home, &file);
                    let mut cut = FileSessions::default();
                    let halves: Vec<&[u8]> =
                        bytes.split(|&b| b == b'\n').map(|l| &l[..l.len() / 2]).collect();
                    read_lines(log.format, halves, &mut cut, &rules);
                    let doc = read_document(log.format, &bytes[..bytes.len() / 2], &rules);
                    (whole, (cut, doc))
                });
                // The project directory is the one field that is meant to hold a path: the
                // detector fingerprints it before it leaves (checked at scan level below).
                let (mut whole, (mut cut, mut doc)) = (whole, cut);
                for f in [&mut whole, &mut cut, &mut doc] {
                    f.sessions.values_mut().for_each(|t| t.project = None);
                }
                let out = format!(
                    "{whole:?}\n{}\n{cut:?}\n{doc:?}\n{}\n{logs}",
                    serde_json::to_string(&whole).unwrap(),
                    serde_json::to_string(&cut).unwrap()
                );
                let leaked = leaks(&out, &secrets);
                assert!(leaked.is_empty(), "{}: {leaked:?} reached the output", file.display());
            }
        }
        let opts = ScanOptions {
            root: fixtures().join(layout),
            processes: false,
            limits: Limits::default(),
            activity: Default::default(),
        };
        let (r, logs) = logged(|| run(&opts, &catalog, &fp).unwrap());
        let out = format!("{}\n{}\n{r:?}\n{logs}", report::to_json(&r), report::to_table(&r));
        let leaked = leaks(&out, &secrets);
        assert!(leaked.is_empty(), "{layout}: {leaked:?} reached the scan's output or logs");
        assert!(!r.activity.is_empty());

        // What the daemon keeps and sends: the activity memory it saves in its state dir, and
        // the observations it spools (their wire bytes), for every home.
        let tree = Tree::open_root(&fixtures().join(layout)).unwrap();
        let os = detect_os(&tree);
        let state = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let (wire, logs) = logged(|| {
            let mut wire = Vec::new();
            for home in sightline_agent::detect::homes(&tree, os, &mut Vec::new()) {
                let h = scan_home(
                    &catalog,
                    &fp,
                    &Limits::default(),
                    os,
                    &home,
                    None,
                    &history::Memory::default(),
                );
                let inputs = Inputs {
                    catalog: &catalog,
                    fp: &fp,
                    limits: &Limits::default(),
                    os,
                    settings: Settings::default(),
                    now_ms: 1_800_000_000_000,
                };
                let a = look_home(&inputs, &home, &h.walked, &h.findings, &memory, &mut u64::MAX.clone());
                for s in &a.sessions {
                    let item = pb::observation::Item::Activity(convert::activity(s));
                    wire.extend(convert::observation(pb::Change::Appeared, item, 0).encode_to_vec());
                }
                wire.extend(format!("{:?}", a.errors).into_bytes());
            }
            wire
        });
        memory.save(&state.path().join("activity.json")).unwrap();
        let saved = std::fs::read(state.path().join("activity.json")).unwrap();
        for (what, bytes) in [("observations", &wire), ("saved memory", &saved), ("logs", &logs.into_bytes())]
        {
            let leaked = leaks(&String::from_utf8_lossy(bytes), &secrets);
            assert!(leaked.is_empty(), "{layout}: {leaked:?} reached the {what}");
        }
        assert!(!wire.is_empty() && saved.len() > 100);
    }
    // Three homes, each with a Claude Code session and its subagent, two Codex rollouts, two
    // Gemini CLI chats and an aider history; bob's transcript still being written.
    assert_eq!(files, 3 * 7 + 1);
}

/// `scan` honours the configuration's privacy settings like `run`: `activity = "off"` reads
/// no record, `activity_paths = "plain"` shows the project path, and by default the project
/// is a fingerprint.
#[test]
fn scan_honours_the_configured_activity_settings() {
    let dir = tempfile::tempdir().unwrap();
    let scan = |config: &str| {
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline-agent"))
            .args(["scan", "--no-processes", "--format", "json", "--root"])
            .arg(fixtures().join("linux"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["activity"].as_array().cloned().unwrap_or_default()
    };
    let projects = |sessions: &[serde_json::Value]| -> Vec<String> {
        sessions.iter().filter_map(|s| s["project"].as_str().map(str::to_owned)).collect()
    };
    let default = scan("");
    assert!(!default.is_empty());
    assert!(projects(&default).iter().all(|p| p.starts_with("fp:")), "{:?}", projects(&default));
    assert!(scan("activity = \"off\"\n").is_empty());
    let plain = scan("activity_paths = \"plain\"\n");
    assert_eq!(plain.len(), default.len());
    assert!(projects(&plain).iter().any(|p| p.starts_with("/home/")), "{:?}", projects(&plain));
    // A value that is neither is refused, not read as the default.
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "activity = \"everything\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline-agent"))
        .args(["scan", "--no-processes", "--root"])
        .arg(fixtures().join("linux"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`activity` must be"));
}
