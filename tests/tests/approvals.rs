//! Approvals as a workflow over the real HTTP API (curl, TLS on loopback against the dev CA):
//! an owner token sees and asks about only its person's connectors, admins decide, every step
//! is in the audit log, and a lapsed approval is recorded by the collector's own sweep.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use sightline_server::store::Person;
use sightline_tests::*;

/// One API call with a JSON body: (status, response headers, JSON body).
fn call(c: &Collector, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, String, Value) {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "-D"])
        .arg(headers.path())
        .arg("--cacert")
        .arg(c.data_dir.path().join("ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &b.to_string()]);
    }
    let out = cmd.arg(format!("{}{path}", c.api_url)).output().unwrap();
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let body = if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap() };
    (code.parse().unwrap(), std::fs::read_to_string(headers.path()).unwrap(), body)
}

fn provision(c: &Collector, id: &str, user_name: &str) {
    let p = Person {
        id: id.into(),
        user_name: user_name.into(),
        emails: vec![user_name.into()],
        active: true,
        ..Default::default()
    };
    c.shared.store.create_person(&p).unwrap();
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_ask_admins_decide_and_every_step_is_audited() {
    let c = Collector::start_with_policy("[identity]\nrules = [\"email_local_part\"]\n").await;
    let laptop = enroll(&c).await;
    // The Linux fixture has alice's and bob's homes, each with AI connectors of their own.
    laptop.run_once(&fixtures().join("linux")).await.unwrap();
    provision(&c, "p-alice", "alice@example.com");
    provision(&c, "p-bob", "bob@example.com");
    let (viewer, admin, scim) = (c.api_token("viewer"), c.api_token("admin"), c.api_token("scim"));
    let now = sightline_server::clock::now_ms();
    let alice = sightline_server::tokens::create_owner(
        c.shared.store.as_ref(),
        "alice@example.com",
        "alice",
        None,
        now,
        "test",
    )
    .unwrap();
    let bob_token = sightline_server::tokens::create_owner(
        c.shared.store.as_ref(),
        "bob@example.com",
        "bob",
        None,
        now,
        "test",
    )
    .unwrap();
    let api = |m: &'static str, p: String, t: &str, b: Option<Value>| {
        let (c, t) = (&c, t.to_owned());
        tokio::task::block_in_place(move || call(c, m, &p, &t, b))
    };

    // What an owner token sees: what alice owns or holds, nothing of bob's.
    let (_, _, all) = api("GET", "/api/v1/connectors".into(), &viewer, None);
    let (_, _, alices) = api("GET", "/api/v1/connectors?user=alice@example.com".into(), &viewer, None);
    let (_, _, bobs) = api("GET", "/api/v1/connectors?user=bob@example.com".into(), &viewer, None);
    let (code, _, seen) = api("GET", "/api/v1/connectors".into(), &alice, None);
    assert_eq!(code, 200, "{seen}");
    assert!(!keys(&alices).is_empty() && keys(&alices).len() < keys(&all).len());
    assert_eq!(keys(&seen), keys(&alices), "alice's token lists what she holds");
    let mine =
        keys(&alices).into_iter().find(|k| !keys(&bobs).contains(k)).expect("a connector only alice holds");
    let theirs =
        keys(&bobs).into_iter().find(|k| !keys(&alices).contains(k)).expect("a connector only bob holds");
    let enc = sightline_server::remote::encode;
    assert_eq!(api("GET", format!("/api/v1/connectors/{}", enc(&mine)), &alice, None).0, 200);
    assert_eq!(api("GET", format!("/api/v1/connectors/{}", enc(&theirs)), &alice, None).0, 403);

    // Nothing else: the inventory, SCIM, acting, token management, the audit log.
    for (m, p) in [
        ("GET", "/api/v1/devices".to_owned()),
        ("GET", "/api/v1/findings".into()),
        ("GET", "/api/v1/audit".into()),
        ("GET", "/api/v1/tokens/api".into()),
        ("GET", "/scim/v2/Users".into()),
        ("GET", "/api/v1/views/overview".into()),
        ("POST", format!("/api/v1/connectors/{}/revoke", enc(&mine))),
    ] {
        let (code, _, body) = api(m, p.clone(), &alice, None);
        assert_eq!(code, 403, "{m} {p}: {body}");
    }
    let (code, _, _) = api(
        "POST",
        format!("/api/v1/connectors/{}/status", enc(&mine)),
        &alice,
        Some(json!({"status": "approved"})),
    );
    assert_eq!(code, 403);
    let (code, _, _) = api("POST", "/api/v1/session".into(), &alice, Some(json!({"token": alice})));
    assert_ne!(code, 200, "an owner token opens no dashboard session");

    // Asking: alice for her own connector; not for bob's, not on someone else's behalf.
    let ask = |key: &str, t: &str, body: Value| {
        api("POST", format!("/api/v1/connectors/{}/approval-requests", enc(key)), t, Some(body))
    };
    let (code, _, body) = ask(&theirs, &alice, json!({"reason": "mine now"}));
    assert_eq!(code, 403, "{body}");
    let (code, _, _) = ask(&mine, &alice, json!({"reason": "x", "on_behalf_of": "bob@example.com"}));
    assert_eq!(code, 403);
    assert_eq!(ask(&mine, &viewer, json!({"reason": "x", "on_behalf_of": "alice@example.com"})).0, 403);
    assert_eq!(ask(&mine, &alice, json!({"reason": "x", "duration": "soon"})).0, 400);
    let (code, _, r1) = ask(&mine, &alice, json!({"reason": "I use it daily", "duration": "30d"}));
    assert_eq!(code, 201, "{r1}");
    assert_eq!(
        (r1["state"].as_str(), r1["requested_by"].as_str(), r1["on_behalf_of"].as_str()),
        (Some("open"), Some("person:alice@example.com"), Some("alice@example.com"))
    );
    assert_eq!(
        ask(&mine, &admin, json!({"reason": "dup", "on_behalf_of": "alice@example.com"})).0,
        409,
        "one open request per connector"
    );
    let id1 = r1["id"].as_i64().unwrap();

    // Deciding is an admin's.
    let approve = format!("/api/v1/approval-requests/{id1}/approve");
    assert_eq!(api("POST", approve.clone(), &alice, Some(json!({"reason": "self-approved"}))).0, 403);
    assert_eq!(api("POST", approve.clone(), &viewer, Some(json!({"reason": "no"}))).0, 403);
    assert_eq!(api("POST", approve.clone(), &scim, Some(json!({"reason": "no"}))).0, 403);
    assert_eq!(api("POST", approve.clone(), &admin, Some(json!({}))).0, 400, "a reason is required");
    let (code, _, a1) =
        api("POST", approve.clone(), &admin, Some(json!({"reason": "team tool", "expires_in": "7d"})));
    assert_eq!((code, a1["state"].as_str()), (200, Some("approved")), "{a1}");
    assert!(a1["decided_by"].as_str().unwrap().starts_with("admin:token:"), "{a1}");
    assert_eq!(api("POST", approve, &admin, Some(json!({"reason": "again"}))).0, 409, "a closed request");
    let (_, _, c1) = api("GET", format!("/api/v1/connectors/{}", enc(&mine)), &alice, None);
    assert_eq!(
        (c1["status"].as_str(), c1["status_source"].as_str()),
        (Some("approved"), Some("decision")),
        "{c1:#}"
    );

    // An admin asks for bob; denied.
    let (code, _, r2) =
        ask(&theirs, &admin, json!({"reason": "bob asked by mail", "on_behalf_of": "bob@example.com"}));
    assert_eq!(code, 201, "{r2}");
    let id2 = r2["id"].as_i64().unwrap();
    assert_eq!(
        api("POST", format!("/api/v1/approval-requests/{id2}/withdraw"), &alice, None).0,
        403,
        "not alice's"
    );
    let (code, _, d2) = api(
        "POST",
        format!("/api/v1/approval-requests/{id2}/deny"),
        &admin,
        Some(json!({"reason": "use the hosted one"})),
    );
    assert_eq!((code, d2["state"].as_str()), (200, Some("denied")));
    let (_, _, c2) = api("GET", format!("/api/v1/connectors/{}", enc(&theirs)), &bob_token, None);
    assert_eq!(c2["status"].as_str(), Some("unsanctioned"));

    // Lists: admins and viewers see all, an owner their own.
    let (_, _, open) = api("GET", "/api/v1/approval-requests?state=denied".into(), &viewer, None);
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (_, _, own) = api("GET", "/api/v1/approval-requests".into(), &alice, None);
    assert_eq!(own.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [id1]);
    assert_eq!(api("GET", "/api/v1/approval-requests?state=maybe".into(), &viewer, None).0, 400);

    // Alice withdraws her approval: policy.toml decides again.
    let (code, _, w1) = api(
        "POST",
        format!("/api/v1/approval-requests/{id1}/withdraw"),
        &alice,
        Some(json!({"reason": "no longer needed"})),
    );
    assert_eq!((code, w1["state"].as_str()), (200, Some("withdrawn")), "{w1}");
    let (_, _, c1) = api("GET", format!("/api/v1/connectors/{}", enc(&mine)), &viewer, None);
    assert_ne!(c1["status"].as_str(), Some("approved"));

    // A short approval lapses by itself, and the collector's sweep records it once.
    let (_, _, r3) = ask(&mine, &alice, json!({"reason": "one more day"}));
    let id3 = r3["id"].as_i64().unwrap();
    let (code, _, _) = api(
        "POST",
        format!("/api/v1/approval-requests/{id3}/approve"),
        &admin,
        Some(json!({"reason": "briefly", "expires_in": "1s"})),
    );
    assert_eq!(code, 200);
    let expired = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(30), "the lapse to be recorded", || {
            let (_, _, events) =
                call(&c, "GET", &format!("/api/v1/audit?connector={}", enc(&mine)), &viewer, None);
            events.as_array().unwrap().iter().find(|e| e["event"] == "approval_expired").cloned()
        })
    });
    assert_eq!((expired["actor"].as_str(), &expired["detail"]["request"]), (Some("system"), &json!(id3)));
    let (_, _, c1) = api("GET", format!("/api/v1/connectors/{}", enc(&mine)), &viewer, None);
    assert_eq!(
        (c1["status"].as_str(), c1["status_source"].as_str()),
        (Some("unsanctioned"), Some("expired")),
        "{c1:#}"
    );

    // The audit log, paged by its cursor, holds every step in order, with who and why.
    let (code, headers, page) = api("GET", "/api/v1/audit?limit=3".into(), &viewer, None);
    assert_eq!((code, page.as_array().unwrap().len()), (200, 3));
    let last = page[2]["seq"].as_i64().unwrap();
    assert!(headers.to_ascii_lowercase().contains(&format!("after={last}&limit=3")), "{headers}");
    let (_, _, rest) = api("GET", format!("/api/v1/audit?after={last}"), &viewer, None);
    let all: Vec<Value> = page.as_array().unwrap().iter().chain(rest.as_array().unwrap()).cloned().collect();
    let steps: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["actor"].as_str().unwrap().split(':').next().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("approval_requested", "person"),
            ("approved", "admin"),
            ("approval_requested", "admin"),
            ("denied", "admin"),
            ("approval_withdrawn", "person"),
            ("approval_requested", "person"),
            ("approved", "admin"),
            ("approval_expired", "system"),
        ]
    );
    assert_eq!(all[0]["reason"], "I use it daily");
    assert_eq!(all[3]["detail"]["request"], json!(id2));
    assert_eq!(api("GET", "/api/v1/audit?limit=0".into(), &viewer, None).0, 400);
    c.stop().await;
}
