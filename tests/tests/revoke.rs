//! Central revocation end to end: the shipped collector and agent binaries as processes, real
//! files, real processes, directives signed by the collector and verified by the agent, and
//! the outcome coming back through the signed batch chain.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sightline_tests::*;

/// A root with alice, Chrome holding the Claude extension, and her Codex key.
fn laptop(work: &Path, key: &str) -> PathBuf {
    let root = work.join("root");
    plant_claude_extension(&root, "alice");
    let codex = root.join("home/alice/.codex");
    std::fs::create_dir_all(&codex).unwrap();
    std::fs::write(codex.join("auth.json"), format!("{{\"OPENAI_API_KEY\": \"{key}\"}}")).unwrap();
    root
}

fn started(stack: &Stack, agent: &mut AgentProcess, what: &str) -> String {
    agent.start();
    let id = agent.device_id();
    let db = stack.server.db();
    wait_for(Duration::from_secs(30), what, || {
        db.observations(&id).iter().any(|o| o.kind == "extension").then_some(())
    });
    id
}

fn outcome_of(v: &serde_json::Value, device: &str) -> Option<String> {
    v["revocation"]["devices"]
        .as_array()?
        .iter()
        .find(|d| d["device_id"] == device)
        .and_then(|d| d["outcome"].as_str().map(str::to_owned))
}

/// Enforce mode: revoking the extension (API, admin) writes Chrome's managed blocklist and
/// the connector becomes `revoked`; a directive whose signature was tampered with in the
/// collector's database is refused by the agent and nothing is touched; revoking the token
/// again moves the credential file into the root-only quarantine with its origin recorded,
/// the collector sees it disappear, and the key is in no log or database row.
#[test]
fn enforce_mode_blocks_quarantines_and_refuses_forged_directives() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let key = fake_openai_key();
    let root = laptop(work.path(), &key);
    let mut agent = AgentProcess::enroll(&stack.server, work.path(), &root, "enforcement = \"enforce\"\n");
    let device = started(&stack, &mut agent, "the first resync");
    let (admin, viewer) = (stack.api_token("admin"), stack.api_token("viewer"));
    let ext = format!("extension:{CLAUDE_EXT}");

    // Roles: a viewer cannot revoke; unknown connectors and MCP entries are refused clearly.
    assert_eq!(stack.api("POST", &format!("/api/v1/connectors/{ext}/revoke"), &viewer, None).0, 403);
    assert_eq!(stack.api("POST", "/api/v1/connectors/extension:nope/revoke", &admin, None).0, 404);

    let (code, r) = stack.api(
        "POST",
        &format!("/api/v1/connectors/{ext}/revoke"),
        &admin,
        Some(r#"{"reason": "unsanctioned AI extension"}"#),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(
        (r["action"].as_str(), r["directives"].as_array().map(Vec::len)),
        (Some("block_extension"), Some(1))
    );
    let v = stack.connector_when(&ext, &viewer, "the extension to be revoked", |v| v["status"] == "revoked");
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("enforced"), "{v:#}");
    assert_eq!(v["revocation"]["state"], "enforced");
    assert_eq!(v["revocation"]["reason"], "unsanctioned AI extension");
    assert!(
        v["revocation"]["devices"][0]["outcome_seq"].as_u64().is_some(),
        "the outcome is signed evidence: {v:#}"
    );
    let policy = root.join("etc/opt/chrome/policies/managed/sightline-blocklist.json");
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap();
    assert_eq!(p["ExtensionInstallBlocklist"], serde_json::json!([CLAUDE_EXT]));

    // A forged directive: issued while the agent is away, then its stored signature broken.
    agent.terminate(Duration::from_secs(10));
    let fp = {
        let (ok, out) = stack.cli(&["connectors", "--kind", "token", "--json"]);
        assert!(ok, "{out}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        list[0]["fingerprint"].as_str().unwrap().to_owned()
    };
    let token = format!("token:{fp}");
    let (ok, out) = stack.cli(&["revoke", &token, "--json"]);
    assert!(ok, "{out}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    let forged_id = issued["directives"][0]["directive_id"].as_str().unwrap().to_owned();
    {
        let db = rusqlite::Connection::open(stack.server.data_dir.join("sightline.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        let sig: Vec<u8> = db
            .query_row("SELECT signature FROM directives WHERE id = ?1", [&forged_id], |r| r.get(0))
            .unwrap();
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        db.execute("UPDATE directives SET signature = ?1 WHERE id = ?2", rusqlite::params![bad, forged_id])
            .unwrap();
    }
    agent.start();
    let v = stack.connector_when(&token, &viewer, "the forged directive to be refused", |v| {
        outcome_of(v, &device).is_some()
    });
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("refused"), "{v:#}");
    assert!(v["revocation"]["devices"][0]["detail"].as_str().unwrap().contains("signature"), "{v:#}");
    assert_ne!(v["status"], "revoked");
    let auth = root.join("home/alice/.codex/auth.json");
    assert!(auth.exists(), "a refused directive touches nothing");
    assert!(agent.log_text().contains("Directive refused"));

    // Revoked again, properly signed this time: the file goes to the quarantine.
    let (ok, out) = stack.cli(&["revoke", &token, "--reason", "leaked key"]);
    assert!(ok, "{out}");
    let v = stack.connector_when(&token, &viewer, "the token to be revoked", |v| v["status"] == "revoked");
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("enforced"), "{v:#}");
    assert!(!auth.exists(), "moved out of the home");
    let qdir = agent.state_dir.join("quarantine");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&qdir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "one directive acted on: {dirs:?}");
    let moved = dirs[0].join("0-auth.json");
    assert!(std::fs::read_to_string(&moved).unwrap().contains(&key), "the file itself, intact");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[0].join("0-auth.json.origin.json")).unwrap()).unwrap();
    assert_eq!(record["original_path"], "/home/alice/.codex/auth.json");
    assert_eq!(record["fingerprint"].as_str(), Some(fp.as_str()));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dirs[0]).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&moved).unwrap().permissions().mode() & 0o077, 0);
    }
    // The collector sees it go: the presence interval closes.
    stack.connector_when(&token, &viewer, "the token's presence to close", |v| {
        v["presence"].as_array().unwrap().iter().all(|p| !p["disappeared_at"].is_null())
    });
    agent.terminate(Duration::from_secs(10));

    // Nothing the system emitted carries the key.
    for (path, bytes) in all_bytes(&stack.server.data_dir) {
        assert!(!contains(&bytes, &key), "key leaked into {}", path.display());
    }
    assert!(!agent.log_text().contains(&key));
    assert!(!std::fs::read_to_string(stack.server.data_dir.with_extension("log")).unwrap().contains(&key));
}

/// Report mode (the default): the agent verifies the directive, changes nothing and says
/// what it would have done; the connector is not `revoked`.
#[test]
fn report_mode_only_reports() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let root = laptop(work.path(), &fake_openai_key());
    let mut agent = AgentProcess::enroll(&stack.server, work.path(), &root, "");
    let device = started(&stack, &mut agent, "the first resync");
    let viewer = stack.api_token("viewer");
    let ext = format!("extension:{CLAUDE_EXT}");
    // The query commands work against the API too (same JSON), within the token's role.
    let (ok, out) = stack.remote_cli(&["connectors", "--kind", "extension"], &viewer);
    assert!(ok, "{out}");
    let (local_ok, local) = stack.cli(&["connectors", "--kind", "extension", "--json"]);
    assert!(local_ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::from_str::<serde_json::Value>(&local).unwrap()
    );
    let (ok, out) = stack.remote_cli(&["triage", "--device", &device, "--at", "now"], &viewer);
    assert!(ok && out.contains(CLAUDE_EXT), "{out}");
    let (ok, out) = stack.remote_cli(&["revoke", &ext], &viewer);
    assert!(!ok && out.contains("403"), "a viewer cannot revoke: {out}");
    let (ok, out) = stack.remote_cli(&["devices"], "sla_not-a-token");
    assert!(!ok && out.contains("401"), "{out}");

    let (ok, out) = stack.cli(&["revoke", &ext]);
    assert!(ok, "{out}");
    assert!(out.contains("1 directive(s) issued"), "{out}");
    let v = stack.connector_when(&ext, &viewer, "the report", |v| outcome_of(v, &device).is_some());
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("report_only"), "{v:#}");
    let detail = v["revocation"]["devices"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("would add") && detail.contains("/etc/opt/chrome/policies/managed"), "{detail}");
    assert_eq!(v["revocation"]["state"], "incomplete");
    assert_eq!(v["status"], "discovered");
    assert!(!root.join("etc").exists(), "report mode writes nothing");
    let (ok, out) = stack.cli(&["findings", "--json"]);
    assert!(ok, "{out}");
    let findings: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "revocation_not_enforced")
        .unwrap_or_else(|| panic!("{findings:#}"));
    assert_eq!((f["subject"].as_str(), f["evidence"]["mode"].as_str()), (Some(ext.as_str()), Some("report")));

    // Withdrawn: the decision and the finding go, the record of what was sent stays.
    let (ok, out) = stack.cli(&["revoke", &ext, "--withdraw"]);
    assert!(ok, "{out}");
    let (_, v) = stack.api("GET", &format!("/api/v1/connectors/{ext}"), &viewer, None);
    assert!(v["revocation"].is_null(), "{v:#}");
    assert_eq!(v["directives"][0]["outcome"], "report_only", "history is kept: {v:#}");
    let (_, out) = stack.cli(&["findings", "--json"]);
    assert!(!out.contains("revocation_not_enforced"), "{out}");
    let (ok, out) = stack.cli(&["revoke", &ext, "--withdraw"]);
    assert!(!ok && out.contains("not revoked"), "{out}");

    // MCP entries are not revoked directly: the CLI says what to do instead.
    let (ok, out) = stack.cli(&["revoke", "mcp:github:000000000000"]);
    assert!(!ok && out.contains("no connector"), "{out}");
}

/// `terminate_process` on a real process, and revocation as a standing decision: the tool
/// started again after its directive is stopped again without anyone asking.
#[test]
fn a_revoked_tool_is_stopped_and_stays_stopped() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let root = laptop(work.path(), &fake_openai_key());
    // A real process the catalog calls Ollama: `sleep`, under that name.
    let fake = work.path().join("bin/ollama");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let spawn = || std::process::Command::new(&fake).arg("300").spawn().unwrap();
    let mut first = spawn();
    let mut agent = AgentProcess::enroll(
        &stack.server,
        work.path(),
        &root,
        "enforcement = \"enforce\"\nprocesses = true\nprocess_interval = \"1s\"\n",
    );
    let device = started(&stack, &mut agent, "the first resync");
    let db = stack.server.db();
    wait_for(Duration::from_secs(30), "the process to be reported", || {
        db.observations(&device)
            .iter()
            .any(|o| o.kind == "process" && o.data["pid"] == first.id())
            .then_some(())
    });
    let (ok, out) = stack.cli(&["revoke", "tool:ollama", "--json"]);
    assert!(ok, "{out}");
    let status = wait_for(Duration::from_secs(30), "the process to be stopped", || first.try_wait().unwrap());
    assert!(!status.success(), "stopped by a signal: {status:?}");
    let viewer = stack.api_token("viewer");
    let v = stack.connector_when("tool:ollama", &viewer, "the outcome", |v| outcome_of(v, &device).is_some());
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("enforced"), "{v:#}");

    // Started again: the collector notices the new sighting and issues a new directive.
    let mut second = spawn();
    let status = wait_for(Duration::from_secs(40), "the relaunched process to be stopped", || {
        second.try_wait().unwrap()
    });
    assert!(!status.success());
    let v = stack.connector_when("tool:ollama", &viewer, "two directives", |v| {
        v["directives"]
            .as_array()
            .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["outcome"] == "enforced"))
    });
    assert_eq!(v["status"], "revoked", "{v:#}");
    agent.terminate(Duration::from_secs(10));
}

/// Stopping a tool never stops a process that only mentions it: a command line that names
/// LM Studio's AppImage (`grep LM-Studio-` is the classic) or a server on LM Studio's port is
/// reported, and left running; the outcome says why.
#[test]
fn a_process_that_only_mentions_a_tool_survives_its_revocation() {
    let stack = Stack::start();
    let work = tempfile::tempdir().unwrap();
    let root = laptop(work.path(), &fake_openai_key());
    // Matched by detection through the catalog's command-line marker, but the program is sh.
    // (Two commands, so the shell stays instead of becoming `sleep`.)
    // Its own process group, so the `sleep` under it is stopped with it at the end (an orphaned
    // sleep would keep the test's output pipe open); and no stdio of ours to hold.
    let mut mention = std::process::Command::new("sh")
        .args(["-c", "sleep 300; true", "LM-Studio-0.3.5.AppImage"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Matched by detection through LM Studio's port, but the program is Python.
    let mut on_port = std::process::Command::new("python3")
        .args([
            "-c",
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', 1234))\ns.listen()\ntime.sleep(300)",
        ])
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the decoy to listen on 1234 (is the port free?)", || {
        assert!(on_port.try_wait().unwrap().is_none(), "port 1234 is taken on this machine");
        std::net::TcpStream::connect("127.0.0.1:1234").ok().map(|_| ())
    });
    let mut agent = AgentProcess::enroll(
        &stack.server,
        work.path(),
        &root,
        "enforcement = \"enforce\"\nprocesses = true\nprocess_interval = \"1s\"\n",
    );
    let device = started(&stack, &mut agent, "the first resync");
    let db = stack.server.db();
    wait_for(Duration::from_secs(30), "both decoys to be reported as LM Studio", || {
        let pids: Vec<u64> = db
            .observations(&device)
            .iter()
            .filter(|o| o.kind == "process" && o.data["tool"] == "lm_studio")
            .filter_map(|o| o.data["pid"].as_u64())
            .collect();
        (pids.contains(&u64::from(mention.id())) && pids.contains(&u64::from(on_port.id()))).then_some(())
    });
    let (ok, out) = stack.cli(&["revoke", "tool:lm_studio", "--json"]);
    assert!(ok, "{out}");
    let viewer = stack.api_token("viewer");
    let v =
        stack.connector_when("tool:lm_studio", &viewer, "the outcome", |v| outcome_of(v, &device).is_some());
    assert_eq!(outcome_of(&v, &device).as_deref(), Some("unsupported"), "{v:#}");
    let detail = v["revocation"]["devices"][0]["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("not its program"), "{v:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(mention.try_wait().unwrap().is_none(), "a process that only mentions LM Studio was stopped");
    assert!(on_port.try_wait().unwrap().is_none(), "a server on LM Studio's port was stopped");
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", mention.id())]).status().ok();
    mention.kill().ok();
    on_port.kill().ok();
    mention.wait().ok();
    on_port.wait().ok();
    agent.terminate(Duration::from_secs(10));
}
