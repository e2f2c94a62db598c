//! Offboarding that acts, end to end: the shipped collector with a revoking playbook in its
//! policy, two laptops whose agents run in enforce mode with alice's key, extension and MCP
//! server, and the identity provider deactivating alice through the real SCIM endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sightline_tests::*;

/// A laptop root where alice has the Claude extension, her Codex key file and an MCP server.
fn laptop(dir: &Path, key: &str) -> PathBuf {
    let root = dir.join("root");
    plant_claude_extension(&root, "alice");
    let home = root.join("home/alice");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".codex/auth.json"), format!("{{\"OPENAI_API_KEY\": \"{key}\"}}")).unwrap();
    std::fs::create_dir_all(home.join(".cursor")).unwrap();
    std::fs::write(
        home.join(".cursor/mcp.json"),
        r#"{"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}}}"#,
    )
    .unwrap();
    root
}

/// A `sightline-server` command on the collector's data dir: its stdout, asserting success.
fn cli(stack: &Stack, args: &[&str]) -> String {
    let (ok, out) = stack.cli(args);
    assert!(ok, "{args:?}: {out}");
    out
}

/// The one connector of `kind` (there is one per kind on these laptops, for alice).
fn key_of(stack: &Stack, kind: &str) -> String {
    let list: Value = serde_json::from_str(&cli(stack, &["connectors", "--kind", kind, "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    list[0]["key"].as_str().unwrap().to_owned()
}

fn events<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["history"].as_array().unwrap().iter().filter(|e| e["event"] == name).collect()
}

/// SCIM deactivates alice; with `grace = "3s"` the playbook revokes her key and extension on
/// both laptops, each agent enforces it (the key file quarantined, the extension blocked),
/// the connectors become `revoked` with `offboarding_revoked` in their history, recorded once
/// however often the playbook runs; her MCP server, which agents cannot revoke, is recorded
/// `offboarding_unsupported` once and stays a finding. `offboarding status` (CLI and API)
/// shows all of it, per device.
#[test]
fn deactivating_a_person_revokes_their_connectors_on_every_device() {
    let work = tempfile::tempdir().unwrap();
    let stack = Stack::start_with(
        "[offboarding]\naction = \"revoke\"\ngrace = \"3s\"\n",
        &["--offboarding-interval", "300ms"],
    );
    let server = &stack.server;
    let key = fake_openai_key();
    let mut agents = Vec::new();
    for name in ["laptop-1", "laptop-2"] {
        let dir = work.path().join(name);
        let root = laptop(&dir, &key);
        let mut agent = AgentProcess::enroll(server, &dir, &root, "enforcement = \"enforce\"\n");
        agent.start();
        agents.push((root, agent));
    }
    let devices: Vec<String> = agents.iter().map(|(_, a)| a.device_id()).collect();
    let db = server.db();
    for d in &devices {
        wait_for(Duration::from_secs(30), "both laptops' first resync", || {
            let obs = db.observations(d);
            ["extension", "token", "mcp_server"]
                .iter()
                .all(|k| obs.iter().any(|o| o.kind == *k))
                .then_some(())
        });
    }
    let (token, ext, mcp) =
        (key_of(&stack, "token"), key_of(&stack, "extension"), key_of(&stack, "mcp_server"));
    let (scim, viewer) = (
        cli(&stack, &["api-token", "create", "--role", "scim"]).trim().to_owned(),
        cli(&stack, &["api-token", "create", "--role", "viewer"]).trim().to_owned(),
    );

    let alice = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#;
    let (code, created) = stack.api("POST", "/scim/v2/Users", &scim, Some(alice));
    assert_eq!(code, 201, "{created}");
    let (code, before) = stack.api("GET", "/api/v1/offboarding", &viewer, None);
    assert_eq!(code, 200, "{before}");
    assert_eq!((before["action"].as_str(), before["grace"].as_str()), (Some("revoke"), Some("3s")));
    assert_eq!(before["people"], serde_json::json!([]), "nobody has left: {before:#}");

    let deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    let id = created["id"].as_str().unwrap();
    let (code, patched) = stack.api("PATCH", &format!("/scim/v2/Users/{id}"), &scim, Some(deactivate));
    assert_eq!((code, &patched["active"]), (200, &Value::Bool(false)), "{patched}");

    // What the playbook will do, as the status and the findings say it (quickly, or it is
    // already done: then they say that).
    let (_, soon) = stack.api("GET", "/api/v1/offboarding", &viewer, None);
    let person = &soon["people"][0];
    assert_eq!(person["user_name"], "alice@example.com", "{soon:#}");
    let instant = |f: &str| sightline_server::query::parse_instant(person[f].as_str().unwrap(), 0).unwrap();
    assert_eq!(instant("grace_until") - instant("deprovisioned_at"), 3_000, "{person:#}");
    let step = |v: &Value, k: &str| {
        v["people"][0]["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == k)
            .cloned()
            .unwrap_or_default()
    };
    let t = step(&soon, &token);
    let revoke_at = format!("revoke at {}", person["grace_until"].as_str().unwrap());
    assert!(
        t["playbook"] == revoke_at.as_str() || t["playbook"].as_str().unwrap().starts_with("revoked at "),
        "{t:#}"
    );
    let findings: Value = serde_json::from_str(&cli(&stack, &["findings", "--json"])).unwrap();
    let ours = [token.as_str(), ext.as_str(), mcp.as_str()];
    let orphaned: Vec<&Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["kind"] == "orphaned_connector" && ours.contains(&f["subject"].as_str().unwrap_or_default())
        })
        .collect();
    assert_eq!(orphaned.len(), 6, "three connectors on two laptops: {findings:#}");
    let mcp_finding = orphaned.iter().find(|f| f["subject"] == mcp.as_str()).unwrap();
    assert!(
        mcp_finding["evidence"]["playbook"].as_str().unwrap().starts_with("report only: ")
            && mcp_finding["evidence"]["playbook"].as_str().unwrap().contains("MCP server entry"),
        "{mcp_finding:#}"
    );

    // Every device enforces it: the connectors become revoked.
    let connector = |k: &str| {
        wait_for(Duration::from_secs(40), &format!("{k} to be revoked on both laptops"), || {
            let (code, v) = stack.api("GET", &format!("/api/v1/connectors/{k}"), &viewer, None);
            // Every device's outcome, not only the status: `revoke::revoke` records the
            // decision before it issues the directives, and a revocation with none yet reads
            // as enforced for that moment.
            let devices = v["revocation"]["devices"].as_array().map_or(0, Vec::len);
            (code == 200 && v["status"] == "revoked" && devices == 2).then_some(v)
        })
    };
    for k in [&token, &ext] {
        let v = connector(k);
        let r = &v["revocation"];
        assert_eq!(
            (r["requested_by"].as_str(), r["state"].as_str()),
            (Some("system:offboarding"), Some("enforced"))
        );
        assert!(r["reason"].as_str().unwrap().contains("alice@example.com was deprovisioned"), "{r:#}");
        let mut on: Vec<&str> =
            r["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
        on.sort_unstable();
        let mut want: Vec<&str> = devices.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(on, want, "one directive per laptop: {r:#}");
        assert!(r["devices"].as_array().unwrap().iter().all(|d| d["outcome"] == "enforced"), "{r:#}");
        let e = events(&v, "offboarding_revoked");
        assert_eq!(e.len(), 1, "{v:#}");
        assert_eq!(
            (e[0]["actor"].as_str(), e[0]["detail"]["person"].as_str()),
            (Some("system:offboarding"), Some("alice@example.com"))
        );
        assert_eq!(e[0]["detail"]["grace"], "3s");
    }
    for (root, agent) in &agents {
        assert!(!root.join("home/alice/.codex/auth.json").exists(), "the key file left the home");
        let q: Vec<PathBuf> = std::fs::read_dir(agent.state_dir.join("quarantine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(
            std::fs::read_to_string(q[0].join("0-auth.json")).unwrap().contains(&key),
            "quarantined intact"
        );
        let blocklist = root.join("etc/opt/chrome/policies/managed/sightline-blocklist.json");
        let p: Value = serde_json::from_slice(&std::fs::read(&blocklist).unwrap()).unwrap();
        assert_eq!(p["ExtensionInstallBlocklist"], serde_json::json!([CLAUDE_EXT]));
    }

    // Further runs change nothing: one event each, one directive per device.
    std::thread::sleep(Duration::from_millis(1_200));
    for k in [&token, &ext] {
        let (_, v) = stack.api("GET", &format!("/api/v1/connectors/{k}"), &viewer, None);
        assert_eq!(events(&v, "offboarding_revoked").len(), 1, "{v:#}");
        assert_eq!(v["directives"].as_array().map(Vec::len), Some(2), "{v:#}");
    }
    let (_, v) = stack.api("GET", &format!("/api/v1/connectors/{mcp}"), &viewer, None);
    let e = events(&v, "offboarding_unsupported");
    assert_eq!(e.len(), 1, "recorded once: {v:#}");
    assert!(e[0]["detail"]["why"].as_str().unwrap().contains("MCP server entry"), "{v:#}");
    assert!(v["revocation"].is_null(), "{v:#}");

    // The status, from the data dir and from the API, is the same document.
    let (code, api_doc) = stack.api("GET", "/api/v1/offboarding", &viewer, None);
    assert_eq!(code, 200);
    let cli_doc: Value = serde_json::from_str(&cli(&stack, &["offboarding", "status", "--json"])).unwrap();
    let without_at = |mut v: Value| {
        v.as_object_mut().unwrap().remove("at");
        v
    };
    assert_eq!(without_at(api_doc.clone()), without_at(cli_doc), "CLI and API print one document");
    let t = step(&api_doc, &token);
    assert_eq!(t["action_taken"]["event"], "offboarding_revoked", "{t:#}");
    assert!(t["playbook"].as_str().unwrap().starts_with("revoked at "), "{t:#}");
    assert_eq!(t["revocation"]["devices"].as_array().map(Vec::len), Some(2));
    assert_eq!(step(&api_doc, &mcp)["action_taken"]["event"], "offboarding_unsupported");
    let text = cli(&stack, &["offboarding", "status"]);
    assert!(text.starts_with("playbook: revoke after 3s"), "{text}");
    let line = text.lines().find(|l| l.contains(&token)).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("alice@example.com") && line.contains("offboarding_revoked") && line.contains("2/2"),
        "{text}"
    );
    for (_, agent) in &mut agents {
        agent.terminate(Duration::from_secs(10));
    }
}

/// Connectors nobody owns, with `unowned_after = "30d"`, `unowned_action = "revoke"` and a
/// day's grace, run through the library at chosen instants as the collector's poller runs
/// it: not reported before 30 days, then an `unowned_connector` finding that says when the
/// playbook revokes; revoked a day later (a quarantine directive to the device, an
/// `unowned_revoked` event) and only once. A key alice and bob both hold is shared, not
/// unowned: neither reported so nor revoked.
#[tokio::test(flavor = "multi_thread")]
async fn unowned_connectors_are_reported_then_revoked_a_grace_later() {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb;
    use sightline_server::store::Person;
    let c = Collector::start_with_policy(
        "[offboarding]\ngrace = \"1d\"\nunowned_after = \"30d\"\nunowned_action = \"revoke\"\n",
    )
    .await;
    let agent = enroll(&c).await;
    let start = sightline_server::clock::now_ms();
    let (nobody, shared) =
        ("token:00000000000000000000000000000001", "token:00000000000000000000000000000002");
    let seen = |user: &str, fp: &str| pb::Observation {
        seq: 0,
        observed_at_ms: start,
        change: pb::Change::Snapshot as i32,
        item: Some(openai_token(user, fp)),
    };
    let (b, _) = agent.batch_of(
        1,
        GENESIS_HASH,
        vec![
            seen("svc-build", &nobody["token:".len()..]),
            seen("alice", &shared["token:".len()..]),
            seen("bob", &shared["token:".len()..]),
        ],
    );
    for r in agent.send(vec![b]).await {
        r.unwrap();
    }
    let (store, policy, pki) = (c.shared.store.clone(), c.shared.policy.clone(), c.shared.pki.clone());
    tokio::task::block_in_place(|| {
        for name in ["alice@example.com", "bob@example.com"] {
            let p = Person {
                id: name.into(),
                user_name: name.into(),
                emails: vec![name.into()],
                active: true,
                ..Default::default()
            };
            store.create_person(&p).unwrap();
        }
        const DAY: i64 = 86_400_000;
        let unowned = |at: i64| -> Vec<Value> {
            sightline_server::findings::compute(store.as_ref(), &policy, at)
                .unwrap()
                .into_iter()
                .filter(|f| f.kind == "unowned_connector")
                .map(|f| serde_json::json!({"subject": f.subject, "evidence": f.evidence}))
                .collect()
        };
        assert!(unowned(start + 30 * DAY - 60_000).is_empty(), "not unowned for 30 days yet");
        let found = unowned(start + 30 * DAY + 60_000);
        assert_eq!(found.len(), 1, "the shared key is not unowned: {found:#?}");
        assert_eq!(found[0]["subject"], nobody);
        let since = sightline_server::query::parse_instant(
            found[0]["evidence"]["unowned_since"].as_str().unwrap(),
            0,
        )
        .unwrap();
        let revoke_at = sightline_server::clock::rfc3339(since + 31 * DAY);
        assert_eq!(found[0]["evidence"]["playbook"], format!("revoke at {revoke_at}"), "{found:#?}");

        let run = |at: i64| sightline_server::offboarding::run(store.as_ref(), &pki, &policy, at).unwrap();
        assert_eq!(run(start + 30 * DAY + 60_000), Default::default(), "reported, not yet revoked");
        let ran = run(start + 31 * DAY + 60_000);
        assert_eq!((ran.revoked, ran.recorded), (vec![nobody.to_owned()], 1));
        let issued = store.directives_for_connector(nobody).unwrap();
        assert_eq!(issued.len(), 1);
        assert_eq!(
            (issued[0].device_id.as_str(), issued[0].action.as_str()),
            (agent.device_id.as_str(), "quarantine_credential")
        );
        let events = store.connector_events(nobody).unwrap();
        assert_eq!(events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), ["unowned_revoked"]);
        assert_eq!(
            (events[0].actor.as_str(), &events[0].detail["unowned_after"]),
            ("system:offboarding", &serde_json::json!("30days"))
        );
        assert_eq!(run(start + 31 * DAY + 120_000), Default::default(), "done once");
        assert!(
            store.directives_for_connector(shared).unwrap().is_empty(),
            "a shared key is nobody's to revoke"
        );
        assert!(store.connector_events(shared).unwrap().is_empty());
    });
    c.stop().await;
}
