//! AI activity on the collector, end to end: the shipped collector binary, an enrolled agent
//! sending signed batches with ACTIVITY observations over the real gRPC stream, and the
//! answers through the HTTP API (curl), the CLI on the data dir and the CLI against the API.

use serde_json::{Value, json};
use sightline_proto::envelope::GENESIS_HASH;
use sightline_proto::pb::{self, observation::Item};
use sightline_server::clock::rfc3339;
use sightline_tests::*;

const POLICY: &str = "[approved]\ntools = [\"claude_code\"]\nmcp_servers = [\"github\"]\nproviders = [\"anthropic\"]\n\
                      [identity]\nrules = [\"email_local_part\"]\n";

/// A secret the test makes up: only its fingerprint is ever sent, as an agent does.
const SECRET: &str = "sk-ant-api03-Zq7vYx2Lr9Wm4Tn6Bp1Kd8Hs3Gf5Jc0Xe-activity-canary";

fn obs(at: i64, item: Item) -> pb::Observation {
    pb::Observation { seq: 0, observed_at_ms: at, change: pb::Change::Snapshot as i32, item: Some(item) }
}

fn mcp(client: &str, name: &str, url: &str) -> Item {
    Item::McpServer(pb::McpServerItem {
        client: client.into(),
        user: Some("alice".into()),
        name: name.into(),
        transport: "http".into(),
        command: None,
        url: Some(url.into()),
        path: format!("/home/alice/.{client}.json"),
    })
}

/// alice's Claude Code session `id`: MCP calls to `servers`, run with `credential`.
fn session(id: &str, started: i64, ended: i64, prompts: u32, servers: &[&str], credential: &str) -> Item {
    Item::Activity(pb::ActivityItem {
        tool: "claude_code".into(),
        user: Some("alice".into()),
        session_id: id.into(),
        started_at_ms: started,
        ended_at_ms: ended,
        project: Some("fp:0c1d2e3f".into()),
        models: vec!["claude-sonnet-4-5".into()],
        account: Some(pb::ProviderAccount { account: "alice@example.com".into(), org: None }),
        prompts,
        tool_calls: 9,
        mcp: servers
            .iter()
            .map(|s| pb::McpUse { server: (*s).into(), calls: 2, tools: vec!["create_issue".into()] })
            .collect(),
        credentials: vec![credential.into()],
        format: "claude_code_jsonl".into(),
    })
}

fn keys(s: &Value) -> Vec<(String, bool)> {
    s["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap().to_owned(), c["known"].as_bool().unwrap()))
        .collect()
}

fn ids(page: &Value) -> Vec<&str> {
    page["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect()
}

/// alice uses Claude Code with the approved `github` MCP server, an unsanctioned `slack` one
/// and one the inventory never saw; the collector binds the session to her, her device, her
/// OS session and those connectors; a stale report changes nothing; the unsanctioned use and,
/// after SCIM deactivates her, a further session are findings; `last_used`, triage at T,
/// `--since/--until` overlap and `prune --activity-keep` hold; the secret is nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn activity_is_bound_to_person_device_session_and_connectors() {
    let stack = Stack::start_with_policy(POLICY);
    let (scim, viewer) = (stack.api_token("scim"), stack.api_token("viewer"));
    let (code, alice) = stack.api(
        "POST",
        "/scim/v2/Users",
        &scim,
        Some(
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#,
        ),
    );
    assert_eq!(code, 201, "{alice}");

    // Whole seconds two hours ago: device times must be in the past, and answers are in seconds.
    let now = sightline_server::clock::now_ms();
    let t0 = (now / 60_000) * 60_000 - 2 * 3_600_000;
    let min = 60_000;
    let fp = hex::encode(&ring::digest::digest(&ring::digest::SHA256, SECRET.as_bytes()).as_ref()[..16]);
    let ca = std::fs::read(stack.server.data_dir.join("ca.pem")).unwrap();
    let laptop = enroll_to(&stack.server.url(), ca, stack.server.token()).await.unwrap();
    let inventory = vec![
        obs(
            t0,
            Item::OsSession(pb::OsSessionItem {
                user: "alice".into(),
                terminal: "pts/0".into(),
                host: None,
                started_at_ms: t0,
            }),
        ),
        obs(
            t0,
            Item::App(pb::AppItem {
                tool: "claude_code".into(),
                user: Some("alice".into()),
                path: "/home/alice/.local/bin/claude".into(),
                ..Default::default()
            }),
        ),
        obs(t0, mcp("claude_code", "github", "https://api.githubcopilot.com/mcp/")),
        obs(t0, mcp("cursor", "github", "https://github.example.com/mcp/")),
        obs(t0, mcp("claude_code", "slack", "https://mcp.slack.example.com/")),
        obs(
            t0,
            Item::Token(pb::TokenItem {
                provider: "anthropic".into(),
                kind: pb::TokenKind::ApiKey as i32,
                user: Some("alice".into()),
                path: "/home/alice/.claude/.credentials.json".into(),
                source: pb::TokenSource::CredentialFile as i32,
                fingerprint: fp.clone(),
                locator: None,
                mcp_server: None,
                authorized_by: None,
            }),
        ),
        obs(t0 + 40 * min, session("s1", t0 + 10 * min, t0 + 40 * min, 4, &["github", "slack", "jira"], &fp)),
    ];
    let n = inventory.len() as u64;
    let (b1, h1) = laptop.batch_of(1, GENESIS_HASH, inventory);
    // Read again from an older offset (ends earlier): later in the chain, but stale.
    let (b2, h2) = laptop.batch_of(
        n + 1,
        h1,
        vec![obs(t0 + 41 * min, session("s1", t0 + 10 * min, t0 + 30 * min, 2, &[], &fp))],
    );
    for r in laptop.send(vec![b1, b2]).await {
        r.unwrap();
    }

    let get = |path: &str| {
        let (code, v) = stack.api("GET", path, &viewer, None);
        assert_eq!(code, 200, "{path}: {v}");
        v
    };
    let page = get("/api/v1/activity?user=alice@example.com");
    assert_eq!(page["total"], 1, "{page:#}");
    let s = &page["sessions"][0];
    assert_eq!(
        (s["session_id"].as_str(), s["prompts"].as_u64()),
        (Some("s1"), Some(4)),
        "the stale report is ignored"
    );
    assert_eq!(s["ended_at"], rfc3339(t0 + 40 * min));
    assert_eq!(s["device_id"], laptop.device_id.as_str());
    assert_eq!(s["os_user"], "alice");
    assert_eq!(s["person"]["user_name"], "alice@example.com");
    assert_eq!(
        (s["person"]["attribution"].as_str(), s["person"]["deprovisioned"].as_bool()),
        (Some("inferred"), Some(false))
    );
    assert_eq!(s["os_session"]["since"], rfc3339(t0), "inside her OS session: {s:#}");
    assert_eq!(s["account"]["account"], "alice@example.com");
    assert_eq!(s["mcp"][0], json!({"calls": 2, "server": "github", "tools": ["create_issue"]}));

    // The MCP entries as the register knows them: bound to the one configured for Claude
    // Code, not Cursor's entry of the same name; `jira` was never seen.
    let mcps = get("/api/v1/connectors?kind=mcp_server");
    let key_of = |client: &str, name: &str| {
        mcps.as_array()
            .unwrap()
            .iter()
            .find(|c| c["client"] == client && c["label"] == name)
            .and_then(|c| c["key"].as_str())
            .unwrap()
            .to_owned()
    };
    let (github, cursor_github, slack) =
        (key_of("claude_code", "github"), key_of("cursor", "github"), key_of("claude_code", "slack"));
    let mut want = vec![
        (github.clone(), true),
        (slack.clone(), true),
        (format!("token:{fp}"), true),
        ("tool:claude_code".to_owned(), true),
        ("unknown:mcp:jira".to_owned(), false),
    ];
    want.sort();
    assert_eq!(keys(s), want);
    let status = |key: &str| {
        s["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key)
            .map(|c| c["status"].clone())
            .unwrap()
    };
    assert_eq!(
        (status(&github), status(&slack), status("unknown:mcp:jira")),
        (json!("approved"), json!("unsanctioned"), Value::Null)
    );

    // By connector: a key, a prefix up to `:`, the other client's entry.
    assert_eq!(ids(&get("/api/v1/activity?connector=mcp:github")), ["s1"]);
    assert_eq!(ids(&get(&format!("/api/v1/activity?connector={github}"))), ["s1"]);
    assert!(ids(&get(&format!("/api/v1/activity?connector={cursor_github}"))).is_empty());
    assert_eq!(ids(&get("/api/v1/activity?connector=unknown:mcp")), ["s1"]);
    // By device (id or hostname) and OS account.
    assert_eq!(ids(&get(&format!("/api/v1/activity?device={}", laptop.device_id))), ["s1"]);
    assert_eq!(ids(&get("/api/v1/activity?user=alice")), ["s1"]);
    assert!(ids(&get("/api/v1/activity?user=bob")).is_empty());
    // A session matches when it overlaps [since, until]: touching either end counts.
    let q = |since: i64, until: i64| {
        format!("/api/v1/activity?since={}&until={}", rfc3339(since), rfc3339(until))
    };
    assert_eq!(ids(&get(&q(t0 + 40 * min, t0 + 50 * min))), ["s1"]);
    assert_eq!(ids(&get(&q(t0, t0 + 10 * min))), ["s1"]);
    assert!(ids(&get(&q(t0 + 41 * min, t0 + 50 * min))).is_empty());
    assert!(ids(&get(&q(t0, t0 + 9 * min))).is_empty());
    assert_eq!(ids(&get("/api/v1/activity?since=1d%20ago")), ["s1"], "relative instants");
    assert!(ids(&get("/api/v1/activity?since=10m%20ago")).is_empty());
    for bad in ["since=yesterday", "limit=0", "since=now&until=1h%20ago", "colour=red"] {
        let (code, v) = stack.api("GET", &format!("/api/v1/activity?{bad}"), &viewer, None);
        assert_eq!(code, 400, "{bad}: {v}");
    }
    assert_eq!(stack.api("GET", "/api/v1/activity", "not-a-token", None).0, 401);

    // Use of an unsanctioned connector is a finding; the approved one is not.
    let findings = || -> Vec<Value> { get("/api/v1/findings").as_array().unwrap().clone() };
    let of = |f: &[Value], kind: &str| -> Vec<(String, String)> {
        f.iter()
            .filter(|x| x["kind"] == kind)
            .map(|x| {
                (
                    x["subject"].as_str().unwrap().to_owned(),
                    x["evidence"]["session_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let f = findings();
    assert_eq!(of(&f, "unsanctioned_connector_in_use"), [(slack.clone(), "s1".to_owned())]);
    let x = f.iter().find(|x| x["kind"] == "unsanctioned_connector_in_use").unwrap();
    assert_eq!(
        (x["severity"].as_str(), x["evidence"]["person"].as_str()),
        (Some("high"), Some("alice@example.com"))
    );
    assert_eq!(x["evidence"]["hostname"], x["hostname"]);
    assert!(of(&f, "used_after_offboarding").is_empty());

    // A newer report grows the session; the register's last use follows.
    let (b3, h3) = laptop.batch_of(
        n + 2,
        h2,
        vec![obs(t0 + 50 * min, session("s1", t0 + 10 * min, t0 + 50 * min, 5, &["github"], &fp))],
    );
    laptop.send(vec![b3]).await[0].as_ref().unwrap();
    let v = get(&format!("/api/v1/connectors/{github}"));
    assert_eq!(v["last_used"], rfc3339(t0 + 50 * min), "{v:#}");
    assert!(get(&format!("/api/v1/connectors/{cursor_github}"))["last_used"].is_null());
    let (ok, out) = stack.cli(&["connector", &github]);
    assert!(ok && out.contains(&format!("last used:    {}", rfc3339(t0 + 50 * min))), "{out}");

    // Triage at T shows the sessions active then, for the device and for the person.
    let at = rfc3339(t0 + 20 * min);
    let d = get(&format!("/api/v1/triage/device/{}?at={at}", laptop.device_id));
    assert_eq!(ids(&json!({"sessions": d["activity"]})), ["s1"], "{d:#}");
    let p = get(&format!("/api/v1/triage/user/alice@example.com?at={at}"));
    assert_eq!(ids(&json!({"sessions": p["devices"][0]["activity"]})), ["s1"], "{p:#}");
    let before = get(&format!("/api/v1/triage/device/{}?at={}", laptop.device_id, rfc3339(t0)));
    assert!(before["activity"].as_array().unwrap().is_empty(), "{before:#}");

    // SCIM deactivates alice; a further session under her account is use after offboarding.
    let id = alice["id"].as_str().unwrap();
    let (code, _) = stack.api(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &scim,
        Some(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#),
    );
    assert_eq!(code, 200);
    let later = sightline_server::clock::now_ms();
    let (b4, _) =
        laptop.batch_of(n + 3, h3, vec![obs(later, session("s2", later - 5 * min, later, 1, &[], &fp))]);
    laptop.send(vec![b4]).await[0].as_ref().unwrap();
    let f = findings();
    let after = of(&f, "used_after_offboarding");
    assert!(after.contains(&("tool:claude_code".to_owned(), "s2".to_owned())), "{after:?}");
    assert!(after.iter().all(|(_, s)| s == "s2"), "s1 ended before she was deprovisioned: {after:?}");
    let x = f
        .iter()
        .find(|x| x["kind"] == "used_after_offboarding" && x["subject"] == "tool:claude_code")
        .unwrap();
    assert_eq!(x["severity"], "critical");
    assert!(x["evidence"]["person_deprovisioned_at"].is_string(), "{x:#}");

    // The CLI on the data dir and against the API give the API's answer; the table says who.
    let page = get("/api/v1/activity?user=alice@example.com");
    assert_eq!(ids(&page), ["s2", "s1"], "newest first");
    assert_eq!(page["sessions"][0]["person"]["deprovisioned"], true);
    let (ok, out) = stack.cli(&["activity", "--user", "alice@example.com", "--json"]);
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), page);
    let (ok, out) = stack.remote_cli(&["activity", "--user", "alice@example.com"], &viewer);
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), page);
    let (ok, table) = stack.cli(&["activity", "--connector", "mcp:github", "--limit", "1"]);
    assert!(ok, "{table}");
    assert!(table.contains("alice@example.com (inferred)"), "s1 ran before she was deprovisioned: {table}");
    assert!(table.contains(&github) && table.contains("[approved]"), "{table}");

    // The secret behind the credential reaches no answer and no file of the collector.
    let mut outputs = vec![page.to_string(), table, get("/api/v1/findings").to_string()];
    outputs.push(get(&format!("/api/v1/connectors/token:{fp}")).to_string());
    assert!(outputs.iter().all(|o| !o.contains(SECRET)));
    assert!(all_bytes(&stack.server.data_dir).iter().all(|(_, b)| !contains(b, SECRET)));

    // Activity is pruned on its own schedule: s1 ended 70 minutes ago, s2 just now.
    let (ok, out) = stack.cli(&["prune", "--activity-keep", "1h", "--json"]);
    assert!(ok, "{out}");
    let pruned: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pruned["activity_sessions_removed"], 1, "{pruned}");
    assert!(pruned.get("observations_removed").is_none(), "evidence retention did not run: {pruned}");
    assert_eq!(ids(&get("/api/v1/activity")), ["s2"]);
    assert!(get(&format!("/api/v1/connectors/{github}"))["last_used"].is_null(), "s2 did not use github");
}

/// The two activity findings leave through the real exporter as OCSF Detection Findings that
/// the committed 1.3.0 schema accepts, `used_after_offboarding` as Critical, one per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_findings_export_as_valid_ocsf_detections() {
    use std::time::Duration;
    let c = Collector::start_with_policy(POLICY).await;
    let scim = c.api_token("scim");
    let (code, _, alice) = tokio::task::block_in_place(|| {
        c.api_body(
            "POST",
            "/scim/v2/Users",
            Some(&scim),
            Some(
                r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true}"#,
            ),
        )
    });
    assert_eq!(code, 201, "{alice}");
    let path = format!("/scim/v2/Users/{}", alice["id"].as_str().unwrap());
    let (code, _, _) = tokio::task::block_in_place(|| {
        c.api_body(
            "PATCH",
            &path,
            Some(&scim),
            Some(
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#,
            ),
        )
    });
    assert_eq!(code, 200);
    let now = sightline_server::clock::now_ms();
    let laptop = enroll(&c).await;
    let (b, _) = laptop.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(now - 60_000, mcp("claude_code", "slack", "https://mcp.slack.example.com/")),
            obs(now, session("s9", now - 30_000, now, 1, &["slack"], "f00d")),
        ],
    );
    laptop.send(vec![b]).await[0].as_ref().unwrap();
    let viewer = c.api_token("viewer");
    let (_, _, f) = tokio::task::block_in_place(|| c.api("GET", "/api/v1/findings", Some(&viewer)));
    let found: Vec<&str> = f.as_array().unwrap().iter().filter_map(|x| x["kind"].as_str()).collect();
    let kinds = ["used_after_offboarding", "unsanctioned_connector_in_use"];
    assert!(kinds.iter().all(|k| found.contains(k)), "{found:?}");

    let dir = tempfile::tempdir().unwrap();
    let config = sightline_server::export::ExportConfig {
        dir: Some(dir.path().to_owned()),
        rotate_bytes: 1024 * 1024,
        hec: None,
        findings_every: Duration::from_millis(200),
        batch: 50,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
    };
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sightline_server::export::run(c.shared.clone(), config, async move {
        rx.await.ok();
    }));
    let store = c.shared.store.clone();
    wait_for(Duration::from_secs(60), "the activity findings to be exported", || {
        let sent = store.exported_findings("file").unwrap();
        kinds.iter().all(|k| sent.iter().any(|s| s.starts_with(&format!("{k}:")))).then_some(())
    });
    stop.send(()).unwrap();
    task.await.unwrap();

    // The detections alone: how activity observations themselves are exported is not this test's.
    let mut lines = Vec::new();
    for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
        for l in std::fs::read_to_string(f.path()).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["class_uid"] == 2004 && kinds.iter().any(|k| v["finding_info"]["types"][0] == *k) {
                lines.push(v);
            }
        }
    }
    let severity = |k: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|v| v["finding_info"]["types"][0] == k)
            .map(|v| v["severity"].as_str().unwrap())
            .collect()
    };
    assert_eq!(severity("unsanctioned_connector_in_use"), ["High"]);
    assert!(!severity("used_after_offboarding").is_empty());
    assert!(severity("used_after_offboarding").iter().all(|s| *s == "Critical"));
    assert!(
        lines.iter().all(|v| v["finding_info"]["uid"].as_str().unwrap().ends_with("session:claude_code:s9"))
    );
    let file = dir.path().join("detections.jsonl");
    std::fs::write(&file, lines.iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(venv_python("ocsf-validator"))
        .arg(here.join("ocsf/validate.py"))
        .arg(here.join("data/ocsf-schema-1.3.0"))
        .arg(&file)
        .output()
        .expect("the OCSF validator runs");
    assert!(out.status.success(), "invalid against OCSF 1.3.0:\n{}", String::from_utf8_lossy(&out.stderr));
    c.stop().await;
}
