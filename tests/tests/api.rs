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
    let cli = sightline_server::query::devices_value(c.shared.store.as_ref()).unwrap();
    assert_eq!(devices, cli);
    assert_eq!(devices[0]["device_id"], a.device_id.as_str());
    let (code, _, d) = api("GET", format!("/api/v1/devices/{}", a.device_id), Some(viewer.clone()));
    assert_eq!(code, 200);
    assert!(!d["connectors"].as_array().unwrap().is_empty());
    assert_eq!(api("GET", "/api/v1/devices/dev_nope".into(), Some(viewer.clone())).0, 404);

    // Filters, and bad ones.
    let (_, _, all) = api("GET", "/api/v1/connectors".into(), Some(viewer.clone()));
    let (code, _, tokens) =
        api("GET", "/api/v1/connectors?kind=token&status=present".into(), Some(viewer.clone()));
    assert_eq!(code, 200);
    let tokens = tokens.as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() < all.as_array().unwrap().len());
    assert!(tokens.iter().all(|t| t["kind"] == "token" && t["status"] == "present"));
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
