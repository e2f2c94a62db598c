//! The seed's story end to end, with the shipped binaries: a collector (HTTP API, SCIM, an
//! offboarding playbook in its policy), two laptops of alice's running the agent in enforce
//! mode, her manager bob reviewing from his review page, an auditor verifying the signed
//! campaign report offline. Nothing is mocked: SCIM is the real endpoint over TLS, the agents
//! scan real files, directives are signed and verified, outcomes come back in the signed chain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sightline_tests::*;

/// A Claude Code signed-in account and its OAuth token, as Claude Code writes them: the
/// account in `~/.claude.json` (`oauthAccount`), the token in `~/.claude/.credentials.json`.
fn claude_code(home: &Path, email: &str, access: &str, refresh: &str) {
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::write(
        home.join(".claude.json"),
        serde_json::json!({
            "numStartups": 14,
            "installMethod": "native",
            "oauthAccount": {
                "accountUuid": "5b7c1e0a-2d3f-4e5a-8b9c-0d1e2f3a4b5c",
                "emailAddress": email,
                "organizationUuid": "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b",
                "organizationName": format!("{email}'s Organization"),
                "organizationRole": "admin",
                "displayName": "Alice"
            }
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        home.join(".claude/.credentials.json"),
        serde_json::json!({
            "claudeAiOauth": {
                "accessToken": access, "refreshToken": refresh, "expiresAt": 1_893_456_000_000i64,
                "scopes": ["user:inference", "user:profile"], "subscriptionType": "pro"
            }
        })
        .to_string(),
    )
    .unwrap();
}

fn random_tail(n: usize) -> String {
    let r = sightline_agent::state::random_bytes(n).unwrap();
    r.iter()
        .map(|b| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[(*b % 64) as usize] as char
        })
        .collect()
}

/// One of alice's laptops: Claude Code signed in with her personal Gmail account, and her
/// OpenAI key in a project's `.env`.
fn laptop(work: &Path, openai: &str, access: &str, refresh: &str) -> PathBuf {
    let root = work.join("root");
    let home = root.join("home/alice");
    claude_code(&home, "alice@gmail.com", access, refresh);
    let project = home.join("src/forecast");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join(".env"),
        format!("# the model behind the forecast\nOPENAI_API_KEY={openai}\nDEBUG=1\n"),
    )
    .unwrap();
    root
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> =
        v.as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap().to_owned()).collect();
    k.sort();
    k
}

fn scim_user(stack: &Stack, token: &str, body: serde_json::Value) -> String {
    let (code, v) = stack.api("POST", "/scim/v2/Users", token, Some(&body.to_string()));
    assert_eq!(code, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn alice_signs_into_claude_with_gmail_bob_reviews_she_leaves_and_an_auditor_verifies() {
    let stack = Stack::start_with(
        "org_domains = [\"example.com\"]\n[offboarding]\naction = \"revoke\"\ngrace = \"3s\"\n",
        &["--offboarding-interval", "300ms"],
    );
    let (scim, admin, viewer) =
        (stack.api_token("scim"), stack.api_token("admin"), stack.api_token("viewer"));

    // 1. The identity provider provisions bob, then alice with bob as her manager.
    let user = |name: &str, display: &str| {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": name, "displayName": display, "active": true,
            "emails": [{ "value": name, "primary": true, "type": "work" }],
        })
    };
    let bob = scim_user(&stack, &scim, user("bob@example.com", "Bob Diaz"));
    let mut a = user("alice@example.com", "Alice Ng");
    a["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
        serde_json::json!({ "manager": { "value": bob } });
    let alice = scim_user(&stack, &scim, a);

    // 2. Her two laptops, agents in enforce mode (the MDM's setting).
    let work = tempfile::tempdir().unwrap();
    let (openai, access, refresh) = (
        fake_openai_key(),
        format!("sk-ant-oat01-{}", random_tail(95)),
        format!("sk-ant-ort01-{}", random_tail(95)),
    );
    let mut laptops = Vec::new();
    for name in ["alice-mbp", "alice-desktop"] {
        let dir = work.path().join(name);
        let root = laptop(&dir, &openai, &access, &refresh);
        let mut agent = AgentProcess::enroll(&stack.server, &dir, &root, "enforcement = \"enforce\"\n");
        agent.start();
        laptops.push((root, agent));
    }
    let db = stack.server.db();
    for (_, agent) in &laptops {
        let id = agent.device_id();
        wait_for(Duration::from_secs(40), "each laptop's first resync", || {
            (db.observations(&id).iter().filter(|o| o.kind == "token").count() >= 3).then_some(())
        });
    }

    // 3. The register: alice owns her key and her Claude sign-in, found by her e-mail (the
    //    OS account is `alice`), on the CLI and the API alike.
    let (ok, out) = stack.cli(&["connectors", "--user", "alice@example.com", "--kind", "token", "--json"]);
    assert!(ok, "{out}");
    let by_user: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out) =
        stack.remote_cli(&["connectors", "--owner", "alice@example.com", "--kind", "token"], &viewer);
    assert!(ok, "{out}");
    let by_owner: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&by_user), keys(&by_owner), "every token she holds, she owns");
    let tokens = by_user.as_array().unwrap();
    let of = |source: &str, kind: &str| {
        tokens
            .iter()
            .find(|t| t["source"] == source && t["token_kind"] == kind)
            .unwrap_or_else(|| panic!("no {source} {kind} in {tokens:#?}"))
    };
    let key = of("dotenv", "api_key");
    let oauth = of("credential_file", "oauth_access");
    for t in [key, oauth] {
        assert_eq!(t["owner"]["user_name"], "alice@example.com", "{t:#}");
        assert_eq!(t["devices"].as_array().unwrap().len(), 2, "both laptops: {t:#}");
    }
    assert_eq!(key["provider"], "openai");
    assert_eq!(key["authorized_by"], serde_json::Value::Null, "an API key carries no account");
    assert_eq!(oauth["authorized_by"]["account"], "alice@gmail.com", "{oauth:#}");
    assert_eq!(oauth["authorized_by"]["class"], "personal");
    let key_id = key["key"].as_str().unwrap().to_owned();
    let oauth_id = oauth["key"].as_str().unwrap().to_owned();
    let (ok, table) = stack.cli(&["connectors", "--user", "alice@example.com"]);
    println!("$ sightline-server connectors --user alice@example.com\n{table}");
    assert!(ok && table.contains("OWNER") && table.contains("alice@example.com"), "{table}");
    // The personal account is flagged.
    let (code, findings) = stack.api("GET", "/api/v1/findings", &viewer, None);
    assert_eq!(code, 200);
    let personal: Vec<&serde_json::Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "personal_account_connector" && f["subject"] == oauth_id.as_str())
        .collect();
    assert_eq!(personal.len(), 2, "one per laptop: {findings:#}");
    assert_eq!(personal[0]["evidence"]["account"], "alice@gmail.com");
    assert_eq!(personal[0]["evidence"]["owner"], "alice@example.com");
    let (ok, entry) = stack.cli(&["connector", &key_id]);
    println!("$ sightline-server connector {key_id}\n{entry}");
    assert!(ok, "{entry}");
    assert!(entry.contains("owner:        alice@example.com (Alice Ng) — attributed"), "{entry}");
    assert!(entry.contains("https://platform.openai.com/api-keys"), "{entry}");

    // 4. A manager access review of AI credentials: bob gets alice's items. The mail system
    //    takes his link from the reminder outbox; from his review page he keeps the OpenAI
    //    key for 30 days. The Claude sign-in he leaves unanswered.
    let (ok, out) = stack.remote_cli(
        &["review", "start", "--scope", "kind:token", "--due", "14d", "--reviewers", "manager", "--json"],
        &admin,
    );
    assert!(ok, "{out}");
    let campaign: serde_json::Value = serde_json::from_str(&out).unwrap();
    let campaign_id = campaign["id"].as_str().unwrap().to_owned();
    let ingest = stack.api_token("ingest");
    let (code, outbox) = stack.api("GET", "/api/v1/review/reminders", &ingest, None);
    assert_eq!(code, 200, "{outbox}");
    let mails = outbox["reminders"].as_array().unwrap();
    assert_eq!(mails.len(), 1, "one reviewer, one mail: {outbox:#}");
    assert_eq!(mails[0]["to"], "bob@example.com");
    let link = mails[0]["link"].as_str().unwrap().to_owned();
    browser_dir(&["playwright-core"]);
    let (ok, log) = run_browser(
        "story.mjs",
        &[
            ("SIGHTLINE_LINK", &link),
            ("SIGHTLINE_KEY", &key_id),
            ("SIGHTLINE_REASON", "the forecast service needs it"),
        ],
    );
    assert!(ok, "the review page run failed:\n{log}");
    let v = stack.connector_when(&key_id, &viewer, "bob's decision", |v| v["status"] == "approved");
    assert_eq!(v["status_source"], "decision", "{v:#}");
    let d = &v["decision"];
    assert!(d["decided_by"].as_str().unwrap().ends_with("person:bob@example.com"), "{d:#}");
    assert_eq!(d["reason"], "the forecast service needs it");
    let days = |f: &str| sightline_server::query::parse_instant(d[f].as_str().unwrap(), 0).unwrap();
    assert_eq!((days("expires_at") - days("decided_at")) / 86_400_000, 30, "{d:#}");
    let reviewed: Vec<&serde_json::Value> =
        v["history"].as_array().unwrap().iter().filter(|e| e["event"] == "reviewed").collect();
    assert_eq!(reviewed.len(), 1, "{v:#}");

    // 5. The identity provider deactivates alice. After the playbook's grace, every device
    //    enforces the revocation of everything she owns: the key file and Claude's
    //    credentials leave her homes, and both connectors read `revoked`.
    let deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    let (code, v) = stack.api("PATCH", &format!("/scim/v2/Users/{alice}"), &scim, Some(deactivate));
    assert_eq!((code, &v["active"]), (200, &serde_json::Value::Bool(false)), "{v}");
    let devices: Vec<String> = laptops.iter().map(|(_, a)| a.device_id()).collect();
    for k in [&key_id, &oauth_id] {
        let v = stack.connector_when(k, &viewer, "the revocation enforced on both laptops", |v| {
            // Claude's access and refresh tokens live in one file: whichever directive comes
            // second finds it already quarantined (`not_present`), which is as good.
            let settled = v["revocation"]["devices"].as_array().map_or(0, |d| {
                d.iter().filter(|d| d["outcome"] == "enforced" || d["outcome"] == "not_present").count()
            });
            v["status"] == "revoked" && settled == devices.len()
        });
        assert_eq!(v["revocation"]["requested_by"], "system:offboarding", "{v:#}");
        let history: Vec<&str> =
            v["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert!(history.contains(&"offboarding_revoked") && history.contains(&"revoked"), "{history:?}");
    }
    for (root, _) in &laptops {
        let home = root.join("home/alice");
        assert!(!home.join("src/forecast/.env").exists(), "the .env with the key was quarantined");
        assert!(!home.join(".claude/.credentials.json").exists(), "Claude's credentials were quarantined");
    }
    let (ok, entry) = stack.cli(&["connector", &key_id]);
    println!("$ sightline-server connector {key_id}\n{entry}");
    assert!(ok && entry.contains("DEPROVISIONED"), "{entry}");
    // 6. The auditor: the campaign's report, signed by the collector, verifies offline with
    //    the key pinned; a report changed afterwards does not.
    let report = work.path().join("campaign-report.json");
    let (ok, out) = stack.cli(&["review", "report", &campaign_id, "--out", report.to_str().unwrap()]);
    assert!(ok, "{out}");
    let pinned = {
        let pki = sightline_server::pki::Pki::load_or_init(&stack.server.data_dir, false).unwrap();
        sightline_proto::p256::key_id(&pki.signing_key_spki())
    };
    assert!(out.contains(&pinned), "the report names the key it is signed with: {out}");
    let auditor = |path: &Path| {
        outcome({
            let mut cmd = std::process::Command::new(bin("sightline-server"));
            cmd.args(["review", "verify"])
                .arg(path)
                .args(["--collector-key", &pinned])
                .env_remove("SIGHTLINE_API_TOKEN");
            cmd
        })
    };
    let (ok, verdict) = auditor(&report);
    println!(
        "$ sightline-server review report {campaign_id} --out report.json\n{out}$ sightline-server review verify report.json --collector-key {pinned}\n{verdict}"
    );
    assert!(ok, "{verdict}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("the forecast service needs it") && text.contains("bob@example.com"), "{text}");
    let forged = work.path().join("forged.json");
    std::fs::write(&forged, text.replace("the forecast service needs it", "approved by the CISO")).unwrap();
    let (ok, verdict) = auditor(&forged);
    assert!(!ok, "a changed report must not verify: {verdict}");

    // Nothing the system emitted holds a secret: not the key, not Claude's tokens.
    let secrets = [openai.as_str(), access.as_str(), refresh.as_str()];
    let mut places = all_bytes(&stack.server.data_dir);
    for (_, agent) in &laptops {
        places.push((agent.log.clone(), std::fs::read(&agent.log).unwrap_or_default()));
    }
    places.push((report.clone(), text.into_bytes()));
    places.push(("server log".into(), stack.server.log().into_bytes()));
    for (path, bytes) in &places {
        for s in secrets {
            assert!(!contains(bytes, s), "a secret in {}", path.display());
        }
    }
    for (_, agent) in &mut laptops {
        agent.terminate(Duration::from_secs(10));
    }
}

/// RFC 3339 in UTC with milliseconds, as Claude Code writes its timestamps.
fn stamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// A Claude Code session transcript, shaped as Claude Code writes one: a prompt, an assistant
/// turn calling the `github` MCP server's `create_issue`, its result, a closing answer. Every
/// content field holds `canary`.
fn claude_session(home: &Path, session: &str, cwd: &str, start: std::time::SystemTime, canary: &str) {
    let dir = home.join(".claude/projects").join(cwd.replace(['/', '.'], "-"));
    std::fs::create_dir_all(&dir).unwrap();
    let at = |s: u64| stamp(start + Duration::from_secs(s));
    let common = |kind: &str, uuid: &str, parent: Option<&str>, s: u64| {
        serde_json::json!({
            "parentUuid": parent, "isSidechain": false, "userType": "external", "cwd": cwd,
            "sessionId": session, "version": "2.0.14", "gitBranch": "main", "type": kind,
            "uuid": uuid, "timestamp": at(s),
        })
    };
    let mut lines = Vec::new();
    let mut prompt = common("user", "u1", None, 0);
    prompt["message"] =
        serde_json::json!({"role": "user", "content": format!("file an issue about {canary}")});
    lines.push(prompt);
    let mut call = common("assistant", "a1", Some("u1"), 4);
    call["message"] = serde_json::json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "text", "text": format!("Filing it: {canary}")},
            {"type": "tool_use", "id": "toolu_01", "name": "mcp__github__create_issue",
             "input": {"owner": "example", "repo": "forecast", "title": canary, "body": canary}}
        ],
        "stop_reason": "tool_use", "usage": {"input_tokens": 1200, "output_tokens": 80}
    });
    lines.push(call);
    let mut result = common("user", "u2", Some("a1"), 6);
    result["message"] = serde_json::json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": format!("created #42 {canary}")}
    ]});
    result["toolUseResult"] = serde_json::json!({"stdout": canary});
    lines.push(result);
    let mut answer = common("assistant", "a2", Some("u2"), 9);
    answer["message"] = serde_json::json!({
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": format!("Done: {canary}")}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1300, "output_tokens": 20}
    });
    lines.push(answer);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join(format!("{session}.jsonl")), text).unwrap();
}

#[test]
fn alice_uses_the_github_mcp_server_through_claude_code_then_leaves_and_uses_it_again() {
    let stack = Stack::start_with("org_domains = [\"example.com\"]\n", &[]);
    let (scim, viewer) = (stack.api_token("scim"), stack.api_token("viewer"));
    let alice = scim_user(
        &stack,
        &scim,
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice@example.com", "displayName": "Alice Ng", "active": true,
            "emails": [{ "value": "alice@example.com", "primary": true, "type": "work" }],
        }),
    );

    // Alice's laptop: Claude Code with the `github` MCP server configured, logged in on a
    // terminal since ten minutes ago, and one session from two minutes ago that filed an issue
    // through that server.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let home = root.join("home/alice");
    // The native installer's layout: one file per build.
    std::fs::create_dir_all(home.join(".local/share/claude/versions")).unwrap();
    std::fs::write(home.join(".local/share/claude/versions/2.0.14"), b"\x7fELF").unwrap();
    std::fs::write(
        home.join(".claude.json"),
        serde_json::json!({
            "numStartups": 3,
            "mcpServers": {"github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}}
        })
        .to_string(),
    )
    .unwrap();
    let now = std::time::SystemTime::now();
    let login = now - Duration::from_secs(600);
    let sessions = root.join("run/systemd/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let login_us = login.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    std::fs::write(
        sessions.join("3"),
        format!("UID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nCLASS=user\nTTY=pts/0\nREALTIME={login_us}\n"),
    )
    .unwrap();
    let canary = "CANARY-forecast-outage-7f3a";
    let first = "0b6f1c9e-2a4d-4c5e-9f10-3e2d1c0b9a87";
    claude_session(&home, first, "/home/alice/src/forecast", now - Duration::from_secs(120), canary);

    let mut agent = AgentProcess::enroll(&stack.server, work.path(), &root, "");
    agent.start();
    let device = agent.device_id();

    // The collector shows the session under alice@example.com, on her device, through the
    // github MCP connector, inside her terminal session.
    let session_of = |v: &serde_json::Value, id: &str| {
        v["sessions"].as_array().and_then(|s| s.iter().find(|s| s["session_id"] == id).cloned())
    };
    let v = wait_for(Duration::from_secs(40), "alice's Claude Code session", || {
        let (code, v) = stack.api("GET", "/api/v1/activity?user=alice%40example.com", &viewer, None);
        (code == 200).then(|| session_of(&v, first)).flatten()
    });
    assert_eq!(v["tool"], "claude_code", "{v:#}");
    assert_eq!(v["person"]["user_name"], "alice@example.com", "{v:#}");
    assert_eq!(v["person"]["deprovisioned"], false, "{v:#}");
    assert_eq!(v["device_id"], device.as_str(), "{v:#}");
    assert_eq!(v["os_user"], "alice", "{v:#}");
    assert_eq!(v["os_session"]["os_user"], "alice", "{v:#}");
    assert_eq!(v["os_session"]["terminal"], "pts/0", "{v:#}");
    assert_eq!((v["prompts"].as_u64(), v["tool_calls"].as_u64()), (Some(1), Some(1)), "{v:#}");
    assert_eq!(v["mcp"], serde_json::json!([{"calls": 1, "server": "github", "tools": ["create_issue"]}]));
    assert_eq!(v["models"], serde_json::json!(["claude-sonnet-4-5-20250929"]));
    assert!(v["project"].as_str().unwrap().starts_with("fp:"), "the path is fingerprinted: {v:#}");
    let github = v["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"].as_str().unwrap().starts_with("mcp:github:"))
        .unwrap_or_else(|| panic!("no github MCP connector in {v:#}"))
        .clone();
    assert_eq!(github["known"], true, "{github:#}");
    let tool = v["connectors"].as_array().unwrap().iter().find(|c| c["kind"] == "tool").unwrap().clone();
    assert_eq!((&tool["key"], &tool["known"]), (&"tool:claude_code".into(), &true.into()), "{v:#}");
    let github_key = github["key"].as_str().unwrap().to_owned();
    // The same answer from the connector's side, on the CLI.
    let (ok, table) = stack.cli(&["activity", "--connector", &github_key]);
    println!("$ sightline-server activity --connector {github_key}\n{table}");
    assert!(ok && table.contains("alice@example.com") && table.contains("claude_code"), "{table}");
    let (ok, entry) = stack.cli(&["connector", &github_key]);
    assert!(ok, "{entry}");
    assert!(entry.contains("last used"), "the register shows when it was last used: {entry}");

    // The identity provider deactivates alice; she runs another session that calls github.
    let (code, _) = stack.api("GET", "/api/v1/findings", &viewer, None);
    assert_eq!(code, 200);
    let deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    let (code, v) = stack.api("PATCH", &format!("/scim/v2/Users/{alice}"), &scim, Some(deactivate));
    assert_eq!((code, &v["active"]), (200, &serde_json::Value::Bool(false)), "{v}");
    std::thread::sleep(Duration::from_millis(1100));
    let second = "7d2e9a41-5c3b-4f6e-8a1d-0c9b8a7f6e5d";
    claude_session(&home, second, "/home/alice/src/forecast", std::time::SystemTime::now(), canary);
    let finding = wait_for(Duration::from_secs(40), "used_after_offboarding", || {
        let (code, v) = stack.api("GET", "/api/v1/findings", &viewer, None);
        (code == 200)
            .then(|| {
                v.as_array()?
                    .iter()
                    .find(|f| f["kind"] == "used_after_offboarding" && f["evidence"]["session_id"] == second)
                    .cloned()
            })
            .flatten()
    });
    println!("used_after_offboarding: {finding:#}");
    let (_, all) = stack.api("GET", "/api/v1/findings", &viewer, None);
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "used_after_offboarding" && f["evidence"]["session_id"] == first),
        "the session before she left is not use after offboarding: {all:#}"
    );
    let (ok, table) = stack.cli(&["activity", "--user", "alice@example.com"]);
    println!("$ sightline-server activity --user alice@example.com\n{table}");
    assert!(ok, "{table}");

    // No content of the sessions reached the collector, its exports or the agent's log.
    let mut places = all_bytes(&stack.server.data_dir);
    places.push((agent.log.clone(), std::fs::read(&agent.log).unwrap_or_default()));
    places.push(("server log".into(), stack.server.log().into_bytes()));
    for (path, bytes) in &places {
        assert!(!contains(bytes, canary), "session content in {}", path.display());
    }
    agent.terminate(Duration::from_secs(10));
}
