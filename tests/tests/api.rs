//! The HTTP API: real TLS on loopback (curl against the dev CA), tokens and roles, the same
//! JSON as the CLI, and clear errors for bad input.

use serde_json::json;
use sightline_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_and_roles_guard_the_inventory() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    a.run_once(&fixtures().join("linux")).await.unwrap();
    let (viewer, admin, scim) = (c.api_token("viewer"), c.api_token("admin"), c.api_token("scim"));
    // curl blocks; keep it off the runtime's worker threads.
    let api = |m: &'static str, p: String, t: Option<String>| {
        let c = &c;
        tokio::task::block_in_place(move || c.api(m, &p, t.as_deref()))
    };

    let (code, _, body) = api("GET", "/api/v1/health".into(), None);
    assert_eq!((code, &body["status"]), (200, &json!("ok")));

    // Who may call what.
    let (code, headers, body) = api("GET", "/api/v1/devices".into(), None);
    assert_eq!(code, 401);
    assert!(headers.to_ascii_lowercase().contains("www-authenticate: bearer"), "{headers}");
    assert!(body["error"].as_str().unwrap().contains("API token"), "{body}");
    assert_eq!(api("GET", "/api/v1/devices".into(), Some("sla_not-a-token".into())).0, 401);
    let (code, _, body) = api("GET", "/api/v1/devices".into(), Some(scim.clone()));
    assert_eq!(code, 403, "{body}");

    // A viewer reads exactly what the CLI prints.
    let (code, _, devices) = api("GET", "/api/v1/devices".into(), Some(viewer.clone()));
    assert_eq!(code, 200);
    let cli = serde_json::to_value(sightline_server::query::devices_value(c.shared.store.as_ref()).unwrap())
        .unwrap();
    assert_eq!(devices, cli);
    assert_eq!(devices[0]["device_id"], a.device_id.as_str());
    let (code, _, d) = api("GET", format!("/api/v1/devices/{}", a.device_id), Some(viewer.clone()));
    assert_eq!(code, 200);
    assert!(!d["connectors"].as_array().unwrap().is_empty());
    assert_eq!(api("GET", "/api/v1/devices/dev_nope".into(), Some(viewer.clone())).0, 404);

    // Filters, and bad ones.
    let (_, _, all) = api("GET", "/api/v1/connectors".into(), Some(viewer.clone()));
    let (code, _, tokens) =
        api("GET", "/api/v1/connectors?kind=token&status=discovered".into(), Some(viewer.clone()));
    assert_eq!(code, 200);
    let tokens = tokens.as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() < all.as_array().unwrap().len());
    assert!(tokens.iter().all(|t| t["kind"] == "token" && t["status"] == "discovered"));
    let (code, _, body) = api("GET", "/api/v1/connectors?colour=red".into(), Some(viewer.clone()));
    assert_eq!(code, 400, "{body}");

    // Triage at an instant, and bad input.
    let (code, _, t) =
        api("GET", format!("/api/v1/triage/device/{}?at=now", a.device_id), Some(viewer.clone()));
    assert_eq!(code, 200);
    // Every connector is present now (one connector can be present in several places).
    let keys = |v: &serde_json::Value, field: &str| -> std::collections::BTreeSet<String> {
        v.as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(keys(&t["present"], "connector"), keys(&all, "key"), "{t:#}");
    let (code, _, t) = api(
        "GET",
        format!("/api/v1/triage/device/{}?at=2001-01-01T00:00:00Z", a.device_id),
        Some(viewer.clone()),
    );
    assert_eq!((code, t["present"].as_array().unwrap().len()), (200, 0));
    let (code, _, body) =
        api("GET", format!("/api/v1/triage/device/{}?at=yesterday", a.device_id), Some(viewer.clone()));
    assert_eq!(code, 400, "{body}");
    assert_eq!(api("GET", "/api/v1/nothing-here".into(), Some(viewer.clone())).0, 404);

    // Acting needs admin.
    let revoke = format!("/api/v1/devices/{}/revoke", a.device_id);
    assert_eq!(api("POST", revoke.clone(), Some(viewer.clone())).0, 403);
    assert!(c.shared.store.device(&a.device_id).unwrap().unwrap().revoked_at_ms.is_none());
    assert_eq!(api("POST", "/api/v1/devices/dev_nope/revoke".into(), Some(admin.clone())).0, 404);
    let (code, _, body) = api("POST", revoke, Some(admin.clone()));
    assert_eq!((code, &body["revoked"]), (200, &json!(true)));
    assert!(c.shared.store.device(&a.device_id).unwrap().unwrap().revoked_at_ms.is_some());

    // Tokens are kept only as hashes.
    for (path, bytes) in all_bytes(c.data_dir.path()) {
        for t in [&viewer, &admin, &scim] {
            assert!(!contains(&bytes, t), "an API token is stored in clear in {}", path.display());
        }
    }
    c.stop().await;
}

/// SCIM as Okta and Microsoft Entra ID speak it: provision, look up, deactivate (both
/// PatchOp dialects), replace, delete; conflicts and malformed input answered with the SCIM
/// error schema; only scim and admin tokens may provision.
#[tokio::test(flavor = "multi_thread")]
async fn scim_provisioning_as_okta_and_entra_send_it() {
    let c = Collector::start().await;
    let (scim, viewer) = (c.api_token("scim"), c.api_token("viewer"));
    let call = |m: &'static str, p: &str, body: Option<&str>, t: &str| {
        let (c, p, t) = (&c, p.to_owned(), t.to_owned());
        let body = body.map(str::to_owned);
        tokio::task::block_in_place(move || c.api_body(m, &p, Some(&t), body.as_deref()))
    };

    // Okta's create (RFC 7643 core schema, as Okta's SCIM 2.0 integration sends it).
    let okta_create = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com",
      "name":{"givenName":"Alice","familyName":"Ng"},"emails":[{"primary":true,"value":"Alice@Example.com","type":"work"}],
      "displayName":"Alice Ng","locale":"en-US","externalId":"00u1abcd2EFGH3ijk4l5","groups":[],
      "password":"not-stored-1!","active":true}"#;
    let (code, headers, alice) = call("POST", "/scim/v2/Users", Some(okta_create), &scim);
    assert_eq!(code, 201, "{alice}");
    assert!(headers.to_ascii_lowercase().contains("application/scim+json"));
    assert_eq!(
        (alice["userName"].as_str(), alice["active"].as_bool()),
        (Some("alice@example.com"), Some(true))
    );
    // Returned as sent; attribution matches the lower-cased address.
    assert_eq!(alice["emails"][0]["value"], "Alice@Example.com");
    let id = alice["id"].as_str().unwrap().to_owned();

    // Okta looks users up by userName before creating; case does not matter.
    let (code, _, list) = call(
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22ALICE%40example.com%22&startIndex=1&count=100",
        None,
        &scim,
    );
    assert_eq!((code, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    let (_, _, none) =
        call("GET", "/scim/v2/Users?filter=userName%20eq%20%22nobody%40example.com%22", None, &scim);
    assert_eq!(none["totalResults"], 0);

    // The same userName again: 409 uniqueness.
    let (code, _, err) = call("POST", "/scim/v2/Users", Some(okta_create), &scim);
    assert_eq!((code, err["scimType"].as_str()), (409, Some("uniqueness")), "{err}");
    assert_eq!(err["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");

    // Okta deactivates with a PatchOp without `path`.
    let okta_deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    let (code, _, a) = call("PATCH", &format!("/scim/v2/Users/{id}"), Some(okta_deactivate), &scim);
    assert_eq!((code, a["active"].as_bool()), (200, Some(false)), "{a}");
    let stored = c.shared.store.person(&id).unwrap().unwrap();
    assert!(!stored.active && stored.deprovisioned_at_ms.is_some());
    assert!(!format!("{stored:?}").contains("not-stored-1!"), "a password was kept");

    // Entra ID: create with the enterprise extension, then deactivate with a `path` and the
    // string "False" it has long sent.
    let entra_create = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
      "externalId":"bob","userName":"bob@contoso.com","active":true,"displayName":"Bob Diaz",
      "emails":[{"primary":true,"type":"work","value":"bob@contoso.com"}],
      "meta":{"resourceType":"User"},"name":{"formatted":"Bob Diaz","familyName":"Diaz","givenName":"Bob"},
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Finance"}}"#;
    let (code, _, bob) = call("POST", "/scim/v2/Users", Some(entra_create), &scim);
    assert_eq!(code, 201, "{bob}");
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let entra_disable = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#;
    let (code, _, b) = call("PATCH", &format!("/scim/v2/Users/{bob_id}"), Some(entra_disable), &scim);
    assert_eq!((code, b["active"].as_bool()), (200, Some(false)), "{b}");
    let entra_rename = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"Robert Diaz"},{"op":"Replace","path":"name.givenName","value":"Robert"}]}"#;
    let (code, _, b) = call("PATCH", &format!("/scim/v2/Users/{bob_id}"), Some(entra_rename), &scim);
    assert_eq!((code, b["displayName"].as_str()), (200, Some("Robert Diaz")), "{b}");

    // Replace (PUT) reactivates alice.
    let (code, _, a) = call("PUT", &format!("/scim/v2/Users/{id}"), Some(okta_create), &scim);
    assert_eq!((code, a["active"].as_bool()), (200, Some(true)), "{a}");
    assert!(c.shared.store.person(&id).unwrap().unwrap().deprovisioned_at_ms.is_none());

    // Bad input: SCIM error bodies with a scimType.
    for (method, path, body, scim_type) in [
        ("POST", "/scim/v2/Users".to_owned(), "{not json", "invalidSyntax"),
        (
            "POST",
            "/scim/v2/Users".to_owned(),
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}"#,
            "invalidValue",
        ),
        (
            "POST",
            "/scim/v2/Users".to_owned(),
            r#"{"userName":"x@example.com","active":"maybe"}"#,
            "invalidValue",
        ),
        ("PATCH", format!("/scim/v2/Users/{id}"), r#"{"Operations":[]}"#, "invalidSyntax"),
        (
            "PATCH",
            format!("/scim/v2/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove"}]}"#,
            "noTarget",
        ),
        ("GET", "/scim/v2/Users?filter=emails%20co%20x".to_owned(), "", "invalidFilter"),
    ] {
        let (code, _, err) = call(method, &path, (!body.is_empty()).then_some(body), &scim);
        assert_eq!((code, err["scimType"].as_str()), (400, Some(scim_type)), "{method} {path} {body}: {err}");
        assert_eq!(err["status"], "400");
    }

    // Who may provision.
    let (code, _, err) = call("GET", "/scim/v2/Users", None, &viewer);
    assert_eq!(code, 403, "{err}");
    let (code, _, _) = tokio::task::block_in_place(|| c.api("GET", "/scim/v2/Users", None));
    assert_eq!(code, 401);

    // Delete: gone for SCIM (404), kept on record as deprovisioned.
    let (code, _, _) = call("DELETE", &format!("/scim/v2/Users/{bob_id}"), None, &scim);
    assert_eq!(code, 204);
    assert_eq!(call("GET", &format!("/scim/v2/Users/{bob_id}"), None, &scim).0, 404);
    let kept = c.shared.store.person(&bob_id).unwrap().unwrap();
    assert!(kept.deleted_at_ms.is_some() && kept.deprovisioned_at_ms.is_some());
    let (_, _, list) = call("GET", "/scim/v2/Users", None, &scim);
    assert_eq!(list["totalResults"], 1);
    c.stop().await;
}

/// The auditor's questions end to end: SCIM provisions alice; her laptop reports a session,
/// an unsanctioned extension and a token; triage by her email at a time inside her session
/// returns the device, its assurance and both connectors; deactivating her in SCIM turns her
/// connectors into orphaned-connector findings; the same token on a second laptop is a
/// shared credential. The CLI answers the same as the API.
#[tokio::test(flavor = "multi_thread")]
async fn scim_sessions_and_presence_answer_who_had_what_where() {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb::{self, observation::Item};
    let c = Collector::start_with_policy(
        "[groups]\nresearch = [\"alice@example.com\"]\n[approved]\ntools = [\"github_copilot\"]\nproviders = [\"anthropic\"]\n\
         [approved.groups.research]\nproviders = [\"openai\"]\n[identity]\nrules = [\"email_local_part\"]\n",
    )
    .await;
    let (scim, viewer) = (c.api_token("scim"), c.api_token("viewer"));
    let call = |m: &'static str, p: String, body: Option<&'static str>, t: &String| {
        let (c, t) = (&c, t.clone());
        tokio::task::block_in_place(move || c.api_body(m, &p, Some(&t), body))
    };
    let (code, _, alice) = call(
        "POST",
        "/scim/v2/Users".into(),
        Some(
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#,
        ),
        &scim,
    );
    assert_eq!(code, 201, "{alice}");

    let t0 = 1_768_464_000_000i64; // 2026-01-15T08:00:00Z: device times must be in the past (clock.rs)
    let obs = |change: pb::Change, at: i64, item: Item| pb::Observation {
        seq: 0,
        observed_at_ms: at,
        change: change as i32,
        item: Some(item),
    };
    let session = Item::OsSession(pb::OsSessionItem {
        user: "alice".into(),
        terminal: "seat0".into(),
        host: None,
        started_at_ms: t0,
    });
    let ext = Item::Extension(pb::ExtensionItem {
        tool: None,
        user: Some("alice".into()),
        browser: "chrome".into(),
        profile: "Default".into(),
        extension_id: "bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
        name: "AI Sidebar".into(),
        path: "/home/alice/.config/google-chrome/Default/Extensions/bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
        signals: vec!["host:api.openai.com".into()],
        ..Default::default()
    });
    let token = |user: &str| openai_token(user, "4f5e6d7c8b9a0f1e2d3c4b5a69788796");
    let laptop = enroll(&c).await;
    let (b, h) = laptop.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(pb::Change::Snapshot, t0 + 1_000, session.clone()),
            obs(pb::Change::Snapshot, t0 + 1_000, ext),
            obs(pb::Change::Snapshot, t0 + 1_000, token("alice")),
        ],
    );
    // She logs out an hour later.
    let (b2, _) = laptop.batch_of(4, h, vec![obs(pb::Change::Disappeared, t0 + 3_600_000, session)]);
    for r in laptop.send(vec![b, b2]).await {
        r.unwrap();
    }

    // Her Okta sign-in that morning, pushed by the IdP log forwarder (an `ingest` token).
    let okta = r#"[{"uuid":"7f3c2b2e-1111-11ef-9a9a-3b1d2c4e5f60","published":"2026-01-15T07:58:12.345Z","eventType":"user.session.start",
      "actor":{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice Ng"},
      "client":{"ipAddress":"198.51.100.7","device":"Computer"},"outcome":{"result":"SUCCESS"},
      "target":[{"type":"AppInstance","displayName":"Okta Dashboard"}]}]"#;
    let ingest = c.api_token("ingest");
    assert_eq!(call("POST", "/api/v1/signins/okta".into(), Some(okta), &viewer).0, 403);
    let (code, _, r) = call("POST", "/api/v1/signins/okta".into(), Some(okta), &ingest);
    assert_eq!((code, r["stored"].as_u64()), (200, Some(1)), "{r}");
    let (_, _, r) = call("POST", "/api/v1/signins/okta".into(), Some(okta), &ingest);
    assert_eq!(r["duplicates"], 1, "pushing twice stores once: {r}");
    let (code, _, r) = call("POST", "/api/v1/signins/okta".into(), Some(r#"[{"uuid":"x"}]"#), &ingest);
    assert_eq!(code, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("event 1"), "{r}");

    let inside = "2026-01-15T08:30:00Z"; // t0 = 2026-01-15T08:00:00Z
    let (code, _, t) =
        call("GET", format!("/api/v1/triage/user/alice@example.com?at={inside}"), None, &viewer);
    assert_eq!(code, 200, "{t}");
    let devices = t["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{t:#}");
    assert_eq!(
        (devices[0]["device_id"].as_str(), devices[0]["assurance"].as_str()),
        (Some(laptop.device_id.as_str()), Some("software"))
    );
    assert_eq!(devices[0]["sessions"][0]["attribution"], "inferred");
    let kinds: Vec<&str> =
        devices[0]["present"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["extension", "token"]);
    assert!(devices[0]["present"].as_array().unwrap().iter().all(|p| p["owner"] == "alice@example.com"));
    assert_eq!(
        (t["signins"][0]["source"].as_str(), t["signins"][0]["ip"].as_str()),
        (Some("okta"), Some("198.51.100.7"))
    );
    // After she logged out, and before she logged in: no session puts her on the device, but
    // her connectors are still there (owned by her account).
    let (_, _, later) =
        call("GET", "/api/v1/triage/user/alice@example.com?at=2026-01-15T12:00:00Z".into(), None, &viewer);
    assert!(later["devices"][0]["sessions"].as_array().unwrap().is_empty(), "{later:#}");

    // The CLI says the same.
    let out = std::process::Command::new(bin("sightline-server"))
        .args(["triage", "--user", "alice@example.com", "--at", inside, "--data-dir"])
        .arg(c.data_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), t);

    let findings = |c: &Collector| -> Vec<(String, String)> {
        let (code, _, f) = tokio::task::block_in_place(|| c.api("GET", "/api/v1/findings", Some(&viewer)));
        assert_eq!(code, 200);
        f.as_array()
            .unwrap()
            .iter()
            .map(|x| (x["kind"].as_str().unwrap().to_owned(), x["subject"].as_str().unwrap().to_owned()))
            .collect()
    };
    let f = findings(&c);
    assert!(f.contains(&("shadow_ai".into(), "extension:bgnkhhnnamicmpeenaelnjfhikgbkllg".into())), "{f:?}");
    // OpenAI keys are approved for the research group, and alice is in it.
    assert!(!f.iter().any(|(k, s)| k == "shadow_ai" && s.starts_with("token:")), "{f:?}");
    assert!(f.contains(&("software_key_device".into(), laptop.device_id.clone())));
    assert!(!f.iter().any(|(k, _)| k == "orphaned_connector" || k == "shared_credential"), "{f:?}");

    // Offboarding: the IdP deactivates alice; what she left behind is orphaned.
    let id = alice["id"].as_str().unwrap().to_owned();
    let (code, _, _) = call(
        "PATCH",
        format!("/scim/v2/Users/{id}"),
        Some(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#,
        ),
        &scim,
    );
    assert_eq!(code, 200);
    let f = findings(&c);
    let orphaned: Vec<&String> =
        f.iter().filter(|(k, _)| k == "orphaned_connector").map(|(_, s)| s).collect();
    assert_eq!(orphaned.len(), 2, "{f:?}");

    // The same key on bob's laptop: a shared credential.
    let other = enroll(&c).await;
    let (b, _) = other.batch_of(1, GENESIS_HASH, vec![obs(pb::Change::Snapshot, t0 + 5_000, token("bob"))]);
    other.send(vec![b]).await[0].as_ref().unwrap();
    let f = findings(&c);
    assert!(
        f.contains(&("shared_credential".into(), "token:4f5e6d7c8b9a0f1e2d3c4b5a69788796".into())),
        "{f:?}"
    );
    // …held by an account outside the research group: no longer approved.
    assert!(f.contains(&("shadow_ai".into(), "token:4f5e6d7c8b9a0f1e2d3c4b5a69788796".into())), "{f:?}");

    let out = std::process::Command::new(bin("sightline-server"))
        .args(["findings", "--json", "--data-dir"])
        .arg(c.data_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli.as_array().unwrap().len(), f.len());

    // Where is that key? Every place, on both laptops, with owners and evidence.
    let out = std::process::Command::new(bin("sightline-server"))
        .args(["triage", "--token", "4f5e6d7c8b9a0f1e2d3c4b5a69788796", "--data-dir"])
        .arg(c.data_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let places: Vec<(String, serde_json::Value)> = t["presence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["device_id"].as_str().unwrap().to_owned(), p["owner"].clone()))
        .collect();
    assert_eq!(
        places,
        vec![
            (laptop.device_id.clone(), serde_json::json!("alice@example.com")),
            (other.device_id.clone(), serde_json::Value::Null)
        ],
        "{t:#}"
    );
    assert_eq!(t["presence"][0]["appeared_seq"], 3);
    c.stop().await;
}

/// Entra ID sign-in logs imported from a file: once, idempotently; a malformed file is
/// rejected whole with the position of the bad event.
#[test]
fn entra_sign_in_logs_import_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Only `serve` makes a data dir; an empty one is a collector with nothing yet.
    std::fs::create_dir(&data).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin("sightline-server"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let file = dir.path().join("signins.json");
    std::fs::write(
        &file,
        r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns","value":[
          {"id":"66ea54eb-6301-4ee5-be62-ff5a759b0100","createdDateTime":"2026-01-15T09:00:00Z","userDisplayName":"Bob Diaz",
           "userPrincipalName":"bob@contoso.com","appDisplayName":"Microsoft Teams","ipAddress":"203.0.113.9",
           "status":{"errorCode":0},"deviceDetail":{"deviceId":"","displayName":"LAPTOP-BOB","operatingSystem":"Windows10"}}]}"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out) = run(&["signins", "import", "--source", "entra", f]);
    assert!(ok && out.contains("imported 1 sign-ins (0 already known"), "{out}");
    let (ok, out) = run(&["signins", "import", "--source", "entra", f]);
    assert!(ok && out.contains("imported 0 sign-ins (1 already known"), "{out}");
    std::fs::write(&file, "{\"value\":[{\"id\":\"a\",\"createdDateTime\":\"2026-01-15T09:00:00Z\",\"userPrincipalName\":\"x@y\",\"status\":{\"errorCode\":0}},{\"id\":\"b\"}]}").unwrap();
    let (ok, out) = run(&["signins", "import", "--source", "entra", f]);
    assert!(!ok && out.contains("event 2") && out.contains("was not imported"), "{out}");
    let (ok, out) = run(&["signins", "import", "--source", "ldap", f]);
    assert!(!ok && out.contains("okta or entra"), "{out}");
}

/// One curl call with a cookie jar: (status, body).
fn with_jar(
    c: &Collector,
    jar: &std::path::Path,
    method: &str,
    path: &str,
    body: Option<&str>,
    csrf: bool,
) -> (u16, serde_json::Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .arg("--cacert")
        .arg(c.data_dir.path().join("ca.pem"));
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    if csrf {
        cmd.args(["-H", "X-Sightline-CSRF: 1"]);
    }
    let out = cmd.arg(format!("{}{path}", c.api_url)).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// Dashboard sessions: a cookie stands for the token it was opened with (viewer or admin
/// only), a change through a cookie needs the CSRF header, signing out ends it; the views
/// page on the server with bounded limits.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_sessions_and_paged_views() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    a.run_once(&fixtures().join("linux")).await.unwrap();
    let (viewer, admin, scim) = (c.api_token("viewer"), c.api_token("admin"), c.api_token("scim"));
    tokio::task::block_in_place(|| {
        let dir = tempfile::tempdir().unwrap();
        let (vjar, ajar, sjar) = (dir.path().join("v"), dir.path().join("a"), dir.path().join("s"));
        let login = |jar: &std::path::Path, t: &str| {
            with_jar(&c, jar, "POST", "/api/v1/session", Some(&json!({"token": t}).to_string()), false)
        };
        assert_eq!(login(&sjar, &scim).0, 403, "machine tokens cannot sign in");
        assert_eq!(login(&vjar, "sla_wrong").0, 401);
        let (code, r) = login(&vjar, &viewer);
        assert_eq!((code, r["role"].as_str()), (200, Some("viewer")));
        let jar = std::fs::read_to_string(&vjar).unwrap();
        assert!(jar.contains("#HttpOnly_") && jar.contains("sightline_session"), "an HttpOnly cookie: {jar}");
        assert!(!jar.contains(&viewer), "the cookie is not the token");
        let (code, devices) = with_jar(&c, &vjar, "GET", "/api/v1/devices", None, false);
        assert_eq!((code, devices.as_array().map(Vec::len)), (200, Some(1)));

        // Paged, sorted views; limits bounded; bad parameters refused.
        let (code, page) =
            with_jar(&c, &vjar, "GET", "/api/v1/views/connectors?limit=2&sort=kind", None, false);
        assert_eq!(code, 200, "{page}");
        let total = page["total"].as_u64().unwrap();
        assert!(total > 2 && page["items"].as_array().unwrap().len() == 2, "{page}");
        let (_, next) =
            with_jar(&c, &vjar, "GET", "/api/v1/views/connectors?limit=2&offset=2&sort=kind", None, false);
        assert_ne!(next["items"][0]["key"], page["items"][0]["key"]);
        let (_, big) = with_jar(&c, &vjar, "GET", "/api/v1/views/connectors?limit=100000", None, false);
        assert_eq!(big["limit"], 500);
        assert_eq!(with_jar(&c, &vjar, "GET", "/api/v1/views/devices?colour=red", None, false).0, 400);
        let (_, o) = with_jar(&c, &vjar, "GET", "/api/v1/views/overview", None, false);
        assert_eq!(
            (o["devices"]["total"].as_u64(), o["connectors"]["total"].as_u64()),
            (Some(1), Some(total))
        );
        let key = page["items"][0]["key"].as_str().unwrap().to_owned();

        // A viewer session cannot decide; an admin session can, only with the CSRF header.
        let status = format!("/api/v1/connectors/{key}/status");
        let approve = Some(r#"{"status": "approved"}"#);
        assert_eq!(with_jar(&c, &vjar, "POST", &status, approve, true).0, 403);
        assert_eq!(login(&ajar, &admin).0, 200);
        let (code, r) = with_jar(&c, &ajar, "POST", &status, approve, false);
        assert_eq!(code, 403, "no CSRF header: {r}");
        let (code, r) = with_jar(&c, &ajar, "POST", &status, approve, true);
        assert_eq!((code, r["status"].as_str()), (200, Some("approved")), "{r}");
        assert_eq!(with_jar(&c, &ajar, "POST", &status, Some(r#"{"status": "maybe"}"#), true).0, 400);
        // A bearer token needs no CSRF header (no browser involved).
        let (code, _, r) = c.api_body("GET", &format!("/api/v1/connectors/{key}"), Some(&admin), None);
        assert_eq!((code, r["status"].as_str()), (200, Some("approved")));

        // Signing out ends the session on the server, not just in the browser's jar.
        let kept = dir.path().join("kept");
        std::fs::copy(&vjar, &kept).unwrap();
        assert_eq!(with_jar(&c, &vjar, "DELETE", "/api/v1/session", None, true).0, 204);
        assert_eq!(with_jar(&c, &kept, "GET", "/api/v1/devices", None, false).0, 401);
    });
    c.stop().await;
}

/// The OpenAPI document: served as the CLI prints it, every documented operation is routed
/// (no "no such API endpoint" for any of them), and every `/api/v1` route is documented.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_what_is_served() {
    let c = Collector::start().await;
    let admin = c.api_token("admin");
    tokio::task::block_in_place(|| {
        let (code, _, served) = c.api("GET", "/api/v1/openapi.json", None);
        assert_eq!(code, 200);
        let out = std::process::Command::new(bin("sightline-server")).arg("openapi").output().unwrap();
        assert!(out.status.success());
        assert_eq!(served, serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
        assert!(served["openapi"].as_str().unwrap().starts_with("3."));
        let paths = served["paths"].as_object().unwrap();
        for (path, ops) in paths {
            let concrete = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in ops.as_object().unwrap().keys() {
                let body = (method == "post").then_some("{}");
                let (code, _, body) = c.api_body(&method.to_uppercase(), &concrete, Some(&admin), body);
                assert!(
                    body["error"] != "no such API endpoint" && code != 405,
                    "{method} {path} is documented but not served: {code} {body}"
                );
            }
        }
        // The other way: the API's own routes are all in the document.
        for route in [
            "/api/v1/devices",
            "/api/v1/connectors/{key}/revoke",
            "/api/v1/views/overview",
            "/api/v1/session",
        ] {
            assert!(paths.contains_key(route), "{route} is served but not documented");
        }
        let (code, _, body) = c.api("GET", "/api/v1/undocumented", Some(&admin));
        assert_eq!((code, body["error"].as_str()), (404, Some("no such API endpoint")));
    });
    c.stop().await;
}

/// Prometheus metrics: ingest counters and latency histograms move with real traffic,
/// refusals are counted by reason, no series names a device, and a token is required.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_ingest_and_refusals_without_per_device_labels() {
    use sightline_proto::envelope::GENESIS_HASH;
    let c = Collector::start().await;
    let a = enroll(&c).await;
    a.run_once(&fixtures().join("linux")).await.unwrap();
    // A forged batch: one flipped signature byte.
    let (mut forged, _) = a.batch(100, GENESIS_HASH, 1);
    let last = forged.signature.len() - 1;
    forged.signature[last] ^= 1;
    assert!(a.send(vec![forged]).await[0].is_err());
    let viewer = c.api_token("viewer");
    let (code, text) = tokio::task::block_in_place(|| {
        assert_eq!(c.api("GET", "/metrics", None).0, 401);
        let out = std::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
            .arg(c.data_dir.path().join("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {viewer}")])
            .arg(format!("{}/metrics", c.api_url))
            .output()
            .unwrap();
        let t = String::from_utf8(out.stdout).unwrap();
        let (body, code) = t.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap(), body.to_owned())
    });
    assert_eq!(code, 200);
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert!(value("sightline_batches_ingested_total{outcome=\"stored\"}") >= 1.0);
    let stored = c.shared.store.device(&a.device_id).unwrap().unwrap().seq_head as f64;
    assert_eq!(value("sightline_observations_ingested_total"), stored);
    assert_eq!(value("sightline_verification_failures_total{reason=\"bad_signature\"}"), 1.0);
    assert!(value("sightline_ingest_latency_seconds_count") >= 1.0);
    assert!(value("sightline_store_latency_seconds_count") >= 1.0);
    assert!(text.contains("sightline_connected_agents"));
    assert!(!text.contains(&a.device_id), "no per-device labels");
    c.stop().await;
}

/// The connector register through the API: `--user`/`--owner` take a person or an OS account;
/// an admin names a business owner (with a reason) and approves for a time; every change is
/// in the connector's history with who made it; a viewer can read but not change it.
#[tokio::test(flavor = "multi_thread")]
async fn the_register_knows_owners_by_person_and_keeps_who_decided() {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb;
    let c = Collector::start().await;
    let (scim, viewer, admin) = (c.api_token("scim"), c.api_token("viewer"), c.api_token("admin"));
    let call = |m: &'static str, p: &str, body: Option<&str>, t: &String| {
        let (c, t, p, body) = (&c, t.clone(), p.to_owned(), body.map(str::to_owned));
        tokio::task::block_in_place(move || c.api_body(m, &p, Some(&t), body.as_deref()))
    };
    for who in ["alice@example.com", "bob@example.com"] {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{who}","emails":[{{"value":"{who}","primary":true}}],"active":true}}"#
        );
        assert_eq!(call("POST", "/scim/v2/Users", Some(&body), &scim).0, 201);
    }
    // alice's key on her laptop; a key shared by her and bob, on both their laptops.
    let at = 1_768_464_000_000i64;
    let obs = |item| pb::Observation {
        seq: 0,
        observed_at_ms: at,
        change: pb::Change::Snapshot as i32,
        item: Some(item),
    };
    for (user, fps) in [
        ("alice", &["a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"][..]),
        ("bob", &["5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"][..]),
    ] {
        let laptop = enroll(&c).await;
        let (b, _) =
            laptop.batch_of(1, GENESIS_HASH, fps.iter().map(|fp| obs(openai_token(user, fp))).collect());
        laptop.send(vec![b]).await[0].as_ref().unwrap();
    }
    let (mine, shared) = ("token:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "token:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> =
            v.as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap().to_owned()).collect();
        k.sort();
        k
    };

    // By person (any case) or by OS account: the same answer.
    let (code, _, v) = call("GET", "/api/v1/connectors?user=Alice%40Example.com", None, &viewer);
    assert_eq!(code, 200, "{v}");
    assert_eq!(keys(&v), [shared, mine]);
    assert_eq!(keys(&call("GET", "/api/v1/connectors?user=alice", None, &viewer).2), [shared, mine]);
    // Owned: only hers; the shared one has no owner until an admin names one.
    assert_eq!(keys(&call("GET", "/api/v1/connectors?owner=alice%40example.com", None, &viewer).2), [mine]);
    let (_, _, v) = call("GET", &format!("/api/v1/connectors/{shared}"), None, &viewer);
    assert_eq!(v["owner"], serde_json::Value::Null, "{v}");
    let (_, _, v) = call("GET", &format!("/api/v1/connectors/{mine}"), None, &viewer);
    assert_eq!(
        (v["owner"]["user_name"].as_str(), v["owner"]["source"].as_str()),
        (Some("alice@example.com"), Some("attributed"))
    );
    assert_eq!(v["origin"]["os_user"], "alice", "{v}");
    assert_eq!(v["origin"]["appeared_seq"], 1);
    assert_eq!(v["revocation_method"]["local_action"], "quarantine_credential");
    assert_eq!(v["revocation_method"]["provider_page"], "https://platform.openai.com/api-keys");
    assert_eq!(v["history"][0]["event"], "discovered");

    // Naming an owner: an admin only, a provisioned person, a reason.
    let path = format!("/api/v1/connectors/{shared}/owner");
    let body = r#"{"person":"bob@example.com","reason":"team key, bob pays for it"}"#;
    assert_eq!(call("PUT", &path, Some(body), &viewer).0, 403);
    let (code, _, v) = call("PUT", &path, Some(r#"{"person":"carol@example.com","reason":"x"}"#), &admin);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("carol@example.com"), "{v}");
    assert_eq!(call("PUT", &path, Some(r#"{"person":"bob@example.com","reason":"  "}"#), &admin).0, 400);
    let (code, _, v) = call("PUT", &path, Some(body), &admin);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["owner"]["user_name"].as_str(), v["owner"]["source"].as_str()),
        (Some("bob@example.com"), Some("assigned"))
    );
    assert_eq!(keys(&call("GET", "/api/v1/connectors?owner=bob", None, &viewer).2), [shared]);

    // Approving for 30 days: in force now, with its reason and expiry, and in the history.
    let (code, _, v) = call(
        "POST",
        &format!("/api/v1/connectors/{shared}/status"),
        Some(r#"{"status":"approved","reason":"pilot","expires_in":"30d"}"#),
        &admin,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["status_source"].as_str()), (Some("approved"), Some("decision")));
    assert_eq!(v["decision"]["reason"], "pilot");
    assert!(v["decision"]["expires_at"].is_string(), "{v}");
    let bad = r#"{"status":"unsanctioned","expires_in":"30d"}"#;
    assert_eq!(call("POST", &format!("/api/v1/connectors/{shared}/status"), Some(bad), &admin).0, 400);
    let history: Vec<(String, String)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(history[0].0, "discovered");
    assert_eq!(history[1], ("owner_assigned".to_owned(), "admin:token:test".to_owned()));
    assert_eq!(history[2], ("approved".to_owned(), "admin:token:test".to_owned()));
}

/// The provider account a connector is signed in with: an enrolled agent scans a home where
/// Claude Code is signed in with a personal Gmail address, Codex with a corporate ChatGPT
/// workspace, Gemini CLI with the owner's own (consumer-domain) address and Copilot with a
/// GitHub login; the API classifies each for the policy's `org_domains` and the owner's SCIM
/// e-mails, and the personal one is a `personal_account_connector` finding.
#[tokio::test(flavor = "multi_thread")]
async fn connectors_say_which_account_they_are_signed_in_with() {
    let c = Collector::start_with_policy("org_domains = [\"example.com\"]\n").await;
    let a = enroll(&c).await;
    a.run_once(&fixtures().join("linux")).await.unwrap();
    let (viewer, scim) = (c.api_token("viewer"), c.api_token("scim"));
    // bob's own second address is a consumer one: his Gemini sign-in is still his.
    let bob = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@example.com",
      "emails":[{"primary":true,"value":"bob@example.com","type":"work"},{"value":"Bob.Builder@googlemail.com","type":"other"}],
      "active":true}"#;
    let (code, _, body) =
        tokio::task::block_in_place(|| c.api_body("POST", "/scim/v2/Users", Some(&scim), Some(bob)));
    assert_eq!(code, 201, "{body}");

    let (code, _, tokens) =
        tokio::task::block_in_place(|| c.api("GET", "/api/v1/connectors?kind=token", Some(&viewer)));
    assert_eq!(code, 200, "{tokens}");
    let tokens = tokens.as_array().unwrap();
    let at = |user: &str, path_end: &str, locator: &str| {
        let found: Vec<&serde_json::Value> = tokens
            .iter()
            .filter(|t| {
                t["devices"].as_array().unwrap().iter().any(|d| d["user"] == user)
                    && t["label"].is_string()
                    && c.shared.store.connector(t["key"].as_str().unwrap()).unwrap().is_some_and(|s| {
                        s.latest["path"].as_str().is_some_and(|p| p.ends_with(path_end))
                            && s.latest["locator"] == locator
                    })
            })
            .collect();
        assert_eq!(found.len(), 1, "{user} {path_end} {locator}");
        found[0]["authorized_by"].clone()
    };
    let claude = at("alice", ".claude/.credentials.json", "/claudeAiOauth/accessToken");
    assert_eq!(
        claude,
        json!({"account": "alice.w.1987@gmail.com", "org": "alice.w.1987@gmail.com's Organization", "class": "personal"})
    );
    let codex = at("bob", ".codex/auth.json", "/tokens/refresh_token");
    assert_eq!((&codex["account"], &codex["class"]), (&json!("bob@example.com"), &json!("corporate")));
    assert!(codex["org"].as_str().is_some_and(|o| o.len() == 36), "the ChatGPT workspace id: {codex}");
    let gemini = at("bob", ".gemini/oauth_creds.json", "/access_token");
    assert_eq!(
        (&gemini["account"], &gemini["class"]),
        (&json!("bob.builder@googlemail.com"), &json!("corporate"))
    );
    let copilot = at("bob", "github-copilot/apps.json", "/github.com:Iv1.b507a08c87ecfe98/oauth_token");
    assert_eq!(copilot, json!({"account": "bob", "org": null, "class": "unknown"}));
    // API keys carry no account, even beside an ID token; alice's ID token is not a JWT.
    assert_eq!(at("bob", ".codex/auth.json", "/OPENAI_API_KEY"), serde_json::Value::Null);
    assert_eq!(at("alice", ".codex/auth.json", "/tokens/access_token"), serde_json::Value::Null);
    // The API prints what the CLI prints.
    let key =
        tokens.iter().find(|t| t["authorized_by"] == claude).unwrap()["key"].as_str().unwrap().to_owned();
    let (code, _, one) =
        tokio::task::block_in_place(|| c.api("GET", &format!("/api/v1/connectors/{key}"), Some(&viewer)));
    assert_eq!((code, &one["authorized_by"]), (200, &claude), "{one}");

    let (code, _, findings) = tokio::task::block_in_place(|| c.api("GET", "/api/v1/findings", Some(&viewer)));
    assert_eq!(code, 200);
    let personal: Vec<&serde_json::Value> =
        findings.as_array().unwrap().iter().filter(|f| f["kind"] == "personal_account_connector").collect();
    // alice's Claude access and refresh tokens, nothing of bob's.
    assert_eq!(personal.len(), 2, "{personal:#?}");
    for f in personal {
        assert_eq!(f["severity"], "high");
        let e = &f["evidence"];
        assert_eq!(
            (&e["os_user"], &e["account"], &e["class"]),
            (&json!("alice"), &json!("alice.w.1987@gmail.com"), &json!("personal"))
        );
        assert_eq!(e["org"], "alice.w.1987@gmail.com's Organization");
        assert_eq!((&e["device_id"], &e["owner"]), (&json!(a.device_id), &serde_json::Value::Null));
        assert!(e["connector"].as_str().unwrap().starts_with("token:"));
    }
}

/// Recertification over the API: an admin starts a campaign, the mail system reads the
/// reviewers' links from the outbox, each reviewer's link token answers that reviewer's own
/// items and nothing else, and the signed report verifies offline.
#[tokio::test(flavor = "multi_thread")]
async fn review_links_answer_only_their_own_items() {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb;
    use sightline_server::store::{Email, Person, Profile};
    let c = Collector::start().await;
    let person = |id: &str, user: &str, manager: Option<&str>| Person {
        id: id.into(),
        user_name: format!("{user}@example.com"),
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
        active: true,
        ..Person::default()
    };
    for p in [
        person("p-bob", "bob", None),
        person("p-alice", "alice", Some("p-bob")),
        person("p-dave", "dave", None),
    ] {
        c.shared.store.create_person(&p).unwrap();
    }
    let laptop = enroll(&c).await;
    let t0 = 1_768_464_000_000i64;
    let obs = |item| pb::Observation {
        seq: 0,
        observed_at_ms: t0,
        change: pb::Change::Snapshot as i32,
        item: Some(item),
    };
    let (b, _) = laptop.batch_of(
        1,
        GENESIS_HASH,
        vec![
            obs(openai_token("alice", "4f5e6d7c8b9a0f1e2d3c4b5a69788796")),
            obs(openai_token("dave", "0123456789abcdef0123456789abcdef")),
        ],
    );
    for r in laptop.send(vec![b]).await {
        r.unwrap();
    }
    let (admin, viewer, ingest) = (c.api_token("admin"), c.api_token("viewer"), c.api_token("ingest"));
    let call = |m: &'static str, p: String, t: Option<&str>, body: Option<String>| {
        let (c, t) = (&c, t.map(str::to_owned));
        tokio::task::block_in_place(move || c.api_body(m, &p, t.as_deref(), body.as_deref()))
    };
    let (_, _, connectors) = call("GET", "/api/v1/connectors".into(), Some(&viewer), None);
    let key_of = |user: &str| {
        connectors.as_array().unwrap().iter().find(|k| k["devices"][0]["user"] == user).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (alice_key, dave_key) = (key_of("alice"), key_of("dave"));

    let start = json!({"scope": "kind:token", "due_in": "14d", "rule": "escalate"}).to_string();
    assert_eq!(call("POST", "/api/v1/reviews".into(), Some(&viewer), Some(start.clone())).0, 403);
    let (code, _, bad) = call(
        "POST",
        "/api/v1/reviews".into(),
        Some(&admin),
        Some(json!({"scope": "team:x", "due_in": "14d"}).to_string()),
    );
    assert_eq!(code, 400, "{bad}");
    let (code, _, campaign) = call("POST", "/api/v1/reviews".into(), Some(&admin), Some(start));
    assert_eq!(code, 200, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert_eq!(campaign["counts"]["total"], 2);
    assert!(campaign["created_by"].as_str().unwrap().starts_with("admin:token:"), "{campaign}");

    // The outbox: for the mail system (ingest) or an admin, never a viewer.
    assert_eq!(call("GET", "/api/v1/review/reminders".into(), Some(&viewer), None).0, 403);
    let (code, _, outbox) = call("GET", "/api/v1/review/reminders?after=0".into(), Some(&ingest), None);
    assert_eq!(code, 200, "{outbox}");
    let mail = outbox["reminders"].as_array().unwrap();
    assert_eq!(mail.len(), 2, "{outbox}");
    let token_for = |to: &str| {
        let m = mail.iter().find(|m| m["to"] == to).unwrap();
        assert!(m["text"].as_str().unwrap().contains(m["link"].as_str().unwrap()));
        let link = m["link"].as_str().unwrap();
        assert!(link.starts_with(&format!("{}/ui/review/#t=", c.api_url)), "{link}");
        link.rsplit_once("#t=").unwrap().1.to_owned()
    };
    let (alice, dave) = (token_for("alice@example.com"), token_for("dave@example.com"));

    // A link token opens its reviewer's page and nothing else.
    let (code, _, page) = call("GET", "/api/v1/review/me".into(), Some(&alice), None);
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["reviewer"], "alice@example.com");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["connector"]["key"], alice_key.as_str());
    assert_eq!(items[0]["connector"]["owner"]["user_name"], "alice@example.com");
    assert_eq!(call("GET", "/api/v1/review/me".into(), Some(&admin), None).0, 403);
    assert_eq!(call("GET", "/api/v1/review/me".into(), None, None).0, 401);
    assert_eq!(call("GET", "/api/v1/connectors".into(), Some(&alice), None).0, 401);
    assert_eq!(call("GET", format!("/api/v1/reviews/{id}"), Some(&alice), None).0, 401);

    let keep = json!({"decision": "keep", "reason": "the project needs it", "keep_for": "30d"}).to_string();
    let (code, _, body) =
        call("POST", format!("/api/v1/reviews/{id}/items/{dave_key}"), Some(&alice), Some(keep.clone()));
    assert_eq!(code, 403, "not hers: {body}");
    assert_eq!(
        call("POST", format!("/api/v1/reviews/{id}/items/{alice_key}"), Some(&viewer), Some(keep.clone())).0,
        403
    );
    let (code, _, item) =
        call("POST", format!("/api/v1/reviews/{id}/items/{alice_key}"), Some(&alice), Some(keep.clone()));
    assert_eq!(code, 200, "{item}");
    assert_eq!(
        (item["decision"].as_str(), item["reviewer"].as_str()),
        (Some("keep"), Some("alice@example.com"))
    );
    assert!(item["keep_until"].is_string());
    assert_eq!(
        call("POST", format!("/api/v1/reviews/{id}/items/{alice_key}"), Some(&alice), Some(keep)).0,
        409
    );
    let (_, _, conn) = call("GET", format!("/api/v1/connectors/{alice_key}"), Some(&viewer), None);
    assert_eq!(
        (conn["status"].as_str(), conn["status_source"].as_str()),
        (Some("approved"), Some("decision")),
        "{conn}"
    );
    let history = conn["history"].as_array().unwrap();
    assert!(
        history.iter().any(|e| e["event"] == "reviewed" && e["detail"]["campaign"] == id.as_str()),
        "{conn}"
    );

    // Dave revokes his; the campaign closes.
    let revoke = json!({"decision": "revoke", "reason": "left over from a trial"}).to_string();
    let (code, _, item) =
        call("POST", format!("/api/v1/reviews/{id}/items/{dave_key}"), Some(&dave), Some(revoke));
    assert_eq!((code, item["decision"].as_str()), (200, Some("revoke")), "{item}");
    let (code, _, shown) = call("GET", format!("/api/v1/reviews/{id}"), Some(&viewer), None);
    assert_eq!(code, 200);
    assert_eq!(
        (shown["counts"]["answered"].as_u64(), shown["closed_at"].is_string()),
        (Some(2), true),
        "{shown}"
    );

    // The auditor's report verifies offline under the pinned collector key.
    let (code, _, report) = call("GET", format!("/api/v1/reviews/{id}/report"), Some(&viewer), None);
    assert_eq!(code, 200);
    let key_id = sightline_proto::p256::key_id(&c.shared.pki.signing_key_spki());
    let v = sightline_server::review::verify_report(report.to_string().as_bytes(), Some(&key_id)).unwrap();
    assert_eq!((v.items, v.kept, v.revoked), (2, 1, 1));

    // Sent reminders are acknowledged; their text, which held the link, is erased.
    let seqs: Vec<i64> = mail.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let ack = json!({"seqs": seqs}).to_string();
    let (code, _, acked) = call("POST", "/api/v1/review/reminders/ack".into(), Some(&ingest), Some(ack));
    assert_eq!((code, acked["acknowledged"].as_u64()), (200, Some(2)), "{acked}");
    let (_, _, outbox) = call("GET", "/api/v1/review/reminders".into(), Some(&ingest), None);
    assert!(outbox["reminders"].as_array().unwrap().is_empty());
    c.stop().await;
}
