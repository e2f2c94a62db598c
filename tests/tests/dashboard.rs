//! The dashboard in a real browser: a collector seeded with a fleet (61 enrolled devices
//! reporting over mTLS with signed batches, people provisioned through SCIM, one live agent
//! daemon in enforce mode), driven headless in Debian's Chromium by playwright-core
//! (`tests/browser/dashboard.mjs`), at desktop and phone (390 px) widths; a second, empty
//! collector without a policy shows the empty states. Screenshots land in
//! `target/screenshots/`.

use std::time::Duration;

use sightline_proto::envelope::GENESIS_HASH;
use sightline_proto::pb::{self, observation::Item};
use sightline_tests::*;

const AI_SIDEBAR: &str = "bgnkhhnnamicmpeenaelnjfhikgbkllg";

fn obs(at: i64, item: Item) -> pb::Observation {
    pb::Observation { seq: 0, observed_at_ms: at, change: pb::Change::Snapshot as i32, item: Some(item) }
}

fn inventory(host: &str, os: &str, user: &str) -> Item {
    Item::DeviceInventory(pb::DeviceInventory {
        hostname: host.into(),
        os: os.into(),
        os_version: "1".into(),
        agent_version: "0.1.0".into(),
        serial: None,
        users: vec![user.into()],
    })
}

fn session(user: &str, since: i64) -> Item {
    Item::OsSession(pb::OsSessionItem {
        user: user.into(),
        terminal: "seat0".into(),
        host: None,
        started_at_ms: since,
    })
}

fn extension(user: &str, id: &str, name: &str) -> Item {
    Item::Extension(pb::ExtensionItem {
        tool: None,
        user: Some(user.into()),
        browser: "chrome".into(),
        profile: "Default".into(),
        extension_id: id.into(),
        name: name.into(),
        path: format!("/home/{user}/.config/google-chrome/Default/Extensions/{id}"),
        signals: vec!["host:api.openai.com".into()],
        ..Default::default()
    })
}

fn token(user: &str, fp: &str, provider: &str) -> Item {
    Item::Token(pb::TokenItem {
        provider: provider.into(),
        kind: pb::TokenKind::ApiKey as i32,
        user: Some(user.into()),
        path: format!("/home/{user}/.config/{provider}/key"),
        source: pb::TokenSource::CredentialFile as i32,
        fingerprint: fp.into(),
        locator: None,
        mcp_server: None,
        authorized_by: None,
    })
}

fn tool(user: &str, id: &str) -> Item {
    Item::App(pb::AppItem {
        tool: id.into(),
        user: Some(user.into()),
        path: format!("/home/{user}/.local/bin/{id}"),
        version: None,
        bundle_id: None,
        authorized_by: None,
    })
}

fn scim(c: &Collector, token: &str, user: &str, name: &str) -> String {
    let body = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{user}","name":{{"formatted":"{name}"}},"displayName":"{name}","emails":[{{"value":"{user}","primary":true}}],"active":true}}"#
    );
    let (code, _, v) = c.api_body("POST", "/scim/v2/Users", Some(token), Some(&body));
    assert_eq!(code, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    browser_dir(&["playwright-core"]);

    let c = Collector::start_with_policy(
        "[approved]\ntools = [\"github_copilot\"]\nproviders = [\"anthropic\"]\n",
    )
    .await;
    let now = sightline_server::clock::now_ms();
    let t0 = now - 10 * 86_400_000;
    let scim_token = c.api_token("scim");
    let (viewer, admin) = (c.api_token("viewer"), c.api_token("admin"));
    tokio::task::block_in_place(|| {
        scim(&c, &scim_token, "alice@example.com", "Alice Ng");
        let bob = scim(&c, &scim_token, "bob@example.com", "Bob Diaz");
        let (code, _, _) = c.api_body(
            "PATCH",
            &format!("/scim/v2/Users/{bob}"),
            Some(&scim_token),
            Some(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#),
        );
        assert_eq!(code, 200);
    });

    // 60 laptops: alice's (#7), bob's (#10) and a crowd with a mix of AI connectors.
    let mut alice_device = String::new();
    for i in 1..=60u32 {
        let agent = enroll(&c).await;
        let host = format!("laptop-{i:03}");
        let (user, os) = match i {
            7 => ("alice".to_owned(), "linux"),
            10 => ("bob".to_owned(), "macos"),
            _ => (format!("user{i}"), ["linux", "macos", "windows"][i as usize % 3]),
        };
        let at = t0 + i64::from(i) * 3_600_000;
        let mut items = vec![inventory(&host, os, &user), session(&user, at - 60_000)];
        if i % 3 == 0 || i == 7 {
            items.push(extension(&user, AI_SIDEBAR, "AI Sidebar"));
        }
        if i % 4 == 0 {
            items.push(tool(&user, "github_copilot"));
        }
        if i % 5 == 0 {
            items.push(tool(&user, "cursor"));
        }
        if i == 7 || i == 10 {
            items.push(token(&user, &format!("{i:032x}"), "openai"));
        }
        if i % 6 == 0 {
            items.push(token(&user, &format!("{:032x}", 1000 + i), "anthropic"));
        }
        let (b, _) = agent.batch_of(1, GENESIS_HASH, items.into_iter().map(|it| obs(at, it)).collect());
        agent.send(vec![b]).await[0].as_ref().unwrap();
        if i == 7 {
            alice_device = agent.device_id.clone();
        }
    }

    // One real agent daemon in enforce mode, with Chrome's Claude extension.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    plant_claude_extension(&root, "carol");
    let mut live = AgentProcess::enroll_at(
        &c.url,
        &c.token(),
        &c.data_dir.path().join("ca.pem"),
        work.path(),
        &root,
        "enforcement = \"enforce\"\n",
    );
    live.start();
    let live_key = format!("extension:{CLAUDE_EXT}");
    let store = c.shared.store.clone();
    wait_for(Duration::from_secs(30), "the live agent's extension", || {
        store.connector(&live_key).ok().flatten().map(|_| ())
    });

    let mut hosts: Vec<String> = c.shared.store.devices().unwrap().into_iter().map(|d| d.hostname).collect();
    hosts.sort();
    // A fresh collector with no policy and nothing enrolled: the empty states.
    let empty = Collector::start().await;
    let empty_viewer = empty.api_token("viewer");
    let inside = sightline_server::clock::rfc3339(t0 + 7 * 3_600_000 + 30 * 60_000);
    let expect = serde_json::json!({
        "devices": 61,
        "last_hostname": hosts.last().unwrap(),
        "alice_device": alice_device,
        "alice_host": "laptop-007",
        "alice_email": "alice@example.com",
        "bob_email": "bob@example.com",
        "inside_local": &inside[..16],
        "ext_label": "AI Sidebar",
        "live_ext_key": live_key,
        "approve_key": "tool:cursor",
        // alice's key: her account is attributed to her, so she owns it; Cursor is on many
        // people's laptops, so it is shared until an admin names an owner.
        "owned_key": format!("token:{:032x}", 7),
        "owner": "alice@example.com",
        // The catalog's name for the tool `cursor` (agent/catalog/catalog.toml).
        "cursor_name": "Cursor",
        // Not in the catalog: shown by its id, as reported.
        "uncatalogued_tool": "github_copilot",
    });
    let expect = expect.to_string();
    let (ok, log) = tokio::task::block_in_place(|| {
        run_browser(
            "dashboard.mjs",
            &[
                ("SIGHTLINE_URL", &c.api_url),
                ("SIGHTLINE_VIEWER", &viewer),
                ("SIGHTLINE_ADMIN", &admin),
                ("SIGHTLINE_EXPECT", &expect),
                ("SIGHTLINE_EMPTY_URL", &empty.api_url),
                ("SIGHTLINE_EMPTY_VIEWER", &empty_viewer),
            ],
        )
    });
    live.terminate(Duration::from_secs(10));
    assert!(ok, "the browser run failed:\n{log}\nagent log:\n{}", live.log_text());
    for page in [
        "login",
        "overview",
        "devices",
        "device",
        "connectors",
        "triage",
        "findings",
        "people",
        "connector-revoked",
    ] {
        assert!(screenshots().join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
    for page in ["login", "overview", "devices", "device", "connectors", "findings", "connector"] {
        assert!(screenshots().join(format!("phone-{page}.png")).exists(), "no phone screenshot of {page}");
    }
    for page in ["overview", "devices", "connectors", "findings"] {
        assert!(
            screenshots().join(format!("empty-{page}.png")).exists(),
            "no screenshot of the empty {page}"
        );
    }
    c.stop().await;
    empty.stop().await;
}

/// A reviewer's page in a real browser: the manager of a person who left opens the link the
/// reminder outbox carries, keeps her OpenAI key for 30 days and revokes her tool; admins
/// see the campaign in the dashboard (`tests/browser/review.mjs`).
#[tokio::test(flavor = "multi_thread")]
async fn a_manager_answers_a_review_from_the_link() {
    use sightline_server::store::{Email, Person, Profile};
    let c = Collector::start().await;
    let person = |id: &str, user: &str, name: &str, manager: Option<&str>, gone: bool| Person {
        id: id.into(),
        user_name: format!("{user}@example.com"),
        display_name: Some(name.into()),
        emails: vec![format!("{user}@example.com")],
        profile: Profile {
            emails: vec![Email {
                value: format!("{user}@example.com"),
                primary: Some(true),
                ..Email::default()
            }],
            ..Profile::default()
        },
        manager_id: manager.map(str::to_owned),
        active: !gone,
        deprovisioned_at_ms: gone.then(sightline_server::clock::now_ms),
        ..Person::default()
    };
    c.shared.store.create_person(&person("p-bob", "bob", "Bob Manager", None, false)).unwrap();
    c.shared.store.create_person(&person("p-alice", "alice", "Alice Ng", Some("p-bob"), true)).unwrap();
    let laptop = enroll(&c).await;
    let t0 = 1_768_464_000_000i64;
    let fp = "4f5e6d7c8b9a0f1e2d3c4b5a69788796";
    let (b, _) = laptop.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(t0, inventory("alice-laptop", "linux", "alice")),
            obs(t0, openai_token("alice", fp)),
            obs(t0, tool("alice", "cursor")),
        ],
    );
    for r in laptop.send(vec![b]).await {
        r.unwrap();
    }
    let (admin, ingest) = (c.api_token("admin"), c.api_token("ingest"));
    let call = |m: &'static str, p: &str, t: &str, body: Option<&str>| {
        tokio::task::block_in_place(|| c.api_body(m, p, Some(t), body))
    };
    let (code, _, campaign) =
        call("POST", "/api/v1/reviews", &admin, Some(r#"{"scope":"all","due_in":"14d","rule":"escalate"}"#));
    assert_eq!(code, 200, "{campaign}");
    let (_, _, outbox) = call("GET", "/api/v1/review/reminders", &ingest, None);
    let mail = &outbox["reminders"][0];
    assert_eq!(
        (mail["to"].as_str(), outbox["reminders"].as_array().map(Vec::len)),
        (Some("bob@example.com"), Some(1))
    );
    let connectors = c.shared.store.connectors().unwrap();
    let token_key = connectors.iter().find(|k| k.kind == "token").unwrap().key.clone();
    let expect = serde_json::json!({
        "campaign": campaign["id"],
        "token_key": token_key,
        "token_name": "openai",
        "tool_key": "tool:cursor",
        "hostname": "alice-laptop",
        "reviewer": "bob@example.com",
        "reviewer_name": "Bob Manager",
    })
    .to_string();
    let link = mail["link"].as_str().unwrap().to_owned();
    let (ok, log) = tokio::task::block_in_place(|| {
        run_browser(
            "review.mjs",
            &[
                ("SIGHTLINE_URL", &c.api_url),
                ("SIGHTLINE_LINK", &link),
                ("SIGHTLINE_ADMIN", &admin),
                ("SIGHTLINE_EXPECT", &expect),
            ],
        )
    });
    assert!(ok, "the browser run failed:\n{log}");
    for shot in ["review", "reviews", "review-campaign"] {
        assert!(screenshots().join(format!("{shot}.png")).exists(), "no screenshot of {shot}");
    }
    // What the page did is what the register holds: approved by bob's review for 30 days.
    let key = c.shared.store.connector(&token_key).unwrap().unwrap();
    let d = key.decision.unwrap();
    assert_eq!(d.status, "approved");
    assert!(d.by.ends_with(":person:bob@example.com"), "{}", d.by);
    let days = (d.expires_at_ms.unwrap() - d.at_ms) / 86_400_000;
    assert_eq!(days, 30);
    assert!(c.shared.store.connector("tool:cursor").unwrap().unwrap().revocation.is_some());
    c.stop().await;
}

/// The Activity page in a real browser (`tests/browser/activity.mjs`): alice's Claude Code
/// sessions on her laptop — one that called her `github` MCP server and a `jira` server no
/// connector matches — and one of bob's after he was deprovisioned, as the collector binds
/// them; filters in the address, links to people, devices and connectors, and the recent AI
/// use on those pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_page_in_a_real_browser() {
    use sightline_server::store::Person;
    browser_dir(&["playwright-core"]);
    let c = Collector::start_with_policy("[identity]\nrules = [\"email_local_part\"]\n").await;
    let now = sightline_server::clock::now_ms();
    let (hour, day) = (3_600_000, 86_400_000);
    let person = |user: &str, name: &str, gone: Option<i64>| Person {
        id: format!("p-{user}"),
        user_name: format!("{user}@example.com"),
        display_name: Some(name.into()),
        emails: vec![format!("{user}@example.com")],
        active: gone.is_none(),
        deprovisioned_at_ms: gone,
        ..Person::default()
    };
    c.shared.store.create_person(&person("alice", "Alice Ng", None)).unwrap();
    c.shared.store.create_person(&person("bob", "Bob Diaz", Some(now - day))).unwrap();

    let (mcp_session, recent, bob_session) = ("a1-github", "a2-recent", "b1-after-leaving");
    let github = Item::McpServer(pb::McpServerItem {
        client: "claude_code".into(),
        user: Some("alice".into()),
        name: "github".into(),
        transport: "stdio".into(),
        command: Some("npx -y @modelcontextprotocol/server-github".into()),
        url: None,
        path: "/home/alice/.claude.json".into(),
    });
    let alice = enroll(&c).await;
    let at = now - 3 * day;
    let (b, _) = alice.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(at, inventory("alice-laptop", "linux", "alice")),
            obs(at, session("alice", at)),
            obs(at, tool("alice", "claude_code")),
            obs(at, github),
            obs(
                now - 1000,
                ai_session(
                    "alice",
                    mcp_session,
                    now - 2 * day,
                    now - 2 * day + hour / 2,
                    4,
                    &[("github", 3), ("jira", 1)],
                ),
            ),
            obs(now - 1000, ai_session("alice", recent, now - 2 * hour, now - hour, 1, &[])),
        ],
    );
    alice.send(vec![b]).await[0].as_ref().unwrap();
    let bob = enroll(&c).await;
    let (b, _) = bob.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(at, inventory("bob-mac", "macos", "bob")),
            obs(at, tool("bob", "claude_code")),
            obs(now - 1000, ai_session("bob", bob_session, now - 6 * hour, now - 5 * hour, 2, &[])),
        ],
    );
    bob.send(vec![b]).await[0].as_ref().unwrap();

    let github_key = c
        .shared
        .store
        .connectors()
        .unwrap()
        .into_iter()
        .find(|k| k.kind == "mcp_server")
        .map(|k| k.key)
        .expect("alice's github MCP server is a connector");
    let shown = |ms: i64| sightline_server::clock::rfc3339(ms).replace('T', " ").replace('Z', " UTC");
    let expect = serde_json::json!({
        "newest_first": [recent, bob_session, mcp_session],
        "alice_sessions": [recent, mcp_session],
        "mcp_session": mcp_session,
        "mcp_session_calls": 4 * 2 + 3 + 1,
        "bob_session": bob_session,
        "bob_host": "bob-mac",
        "alice_email": "alice@example.com",
        "alice_device": alice.device_id,
        "alice_host": "alice-laptop",
        "github_key": github_key,
        "github_last_used": shown(now - 2 * day + hour / 2),
        "between": sightline_server::clock::rfc3339(now - day),
        "recent_session": recent,
        // The triage picker's UTC minute, inside alice's recent session.
        "during_recent": &sightline_server::clock::rfc3339(now - 90 * 60_000)[..16],
    })
    .to_string();
    let viewer = c.api_token("viewer");
    let (ok, log) = tokio::task::block_in_place(|| {
        run_browser(
            "activity.mjs",
            &[("SIGHTLINE_URL", &c.api_url), ("SIGHTLINE_VIEWER", &viewer), ("SIGHTLINE_EXPECT", &expect)],
        )
    });
    assert!(ok, "the browser run failed:\n{log}");
    for shot in ["activity", "activity-filtered", "activity-connector", "activity-triage", "phone-activity"] {
        assert!(screenshots().join(format!("{shot}.png")).exists(), "no screenshot of {shot}");
    }
    c.stop().await;
}
