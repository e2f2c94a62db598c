//! The OpenAPI document is the API's contract: every operation it lists is called for real
//! against a collector with a small fleet, and each success body is validated against the
//! schema the document declares for it (its `$ref`s resolved to the document's
//! components). An operation the document lists and this test does not call fails it, so a
//! new endpoint cannot arrive without its schema being checked.

use serde_json::Value;

use super::golden::Fleet;

/// An operation's success schema is typed when it names a component, or is an array of one.
fn typed(schema: &Value) -> bool {
    let named = |s: &Value| s.get("$ref").and_then(Value::as_str).is_some();
    named(schema) || (schema["type"] == "array" && named(&schema["items"]))
}

/// (typed, with a body): operations whose 2xx JSON body names a schema, of those with a body.
pub(crate) fn typed_success_bodies(doc: &Value) -> (usize, usize) {
    let (mut typed_n, mut total) = (0, 0);
    for ops in doc["paths"].as_object().into_iter().flat_map(|p| p.values()) {
        for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
            let Some(responses) = op["responses"].as_object() else { continue };
            for (code, r) in responses {
                if code.starts_with('2')
                    && let Some(schema) = r.pointer("/content/application~1json/schema")
                {
                    total += 1;
                    typed_n += usize::from(typed(schema));
                }
            }
        }
    }
    (typed_n, total)
}

/// Validates `body` against `schema`, resolving `#/components/...` in `doc`.
fn check(doc: &Value, schema: &Value, body: &Value) -> Result<(), String> {
    let mut root = schema.clone();
    if let Value::Object(m) = &mut root {
        m.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::validator_for(&root).map_err(|e| format!("schema does not compile: {e}"))?;
    let errors: Vec<String> =
        validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_its_document_says() {
    let f = Fleet::start().await;
    let (code, doc) = f.call("GET", "/api/v1/openapi.json", &f.viewer, None);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let (a, b) = (f.a.device_id.as_str(), f.b.device_id.as_str());
    let ext = "extension:bgnkhhnnamicmpeenaelnjfhikgbkllg";
    let fp = "4f5e6d7c8b9a0f1e2d3c4b5a69788796";
    let okta = r#"[{"uuid":"7f3c2b2e-2222-11ef-9a9a-3b1d2c4e5f60","published":"2026-01-15T07:59:12.345Z","eventType":"user.session.start",
      "actor":{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice Ng"},
      "client":{"ipAddress":"198.51.100.7","device":"Computer"},"outcome":{"result":"SUCCESS"},"target":[]}]"#;
    let (_, made) = f.call("POST", "/api/v1/tokens/api", &f.admin, Some(r#"{"role":"viewer"}"#));
    let made: Value = serde_json::from_str(&made).unwrap();
    let (_, enrollment) = f.call("POST", "/api/v1/tokens/enrollment", &f.admin, Some("{}"));
    let enrollment: Value = serde_json::from_str(&enrollment).unwrap();
    let (made_id, enrollment_id) = (made["id"].as_str().unwrap(), enrollment["id"].as_str().unwrap());

    // A recertification campaign over alice's extension, and her link's token from the
    // reminder outbox, for the reviewer's calls.
    let start = r#"{"scope":"kind:extension","due_in":"14d","rule":"escalate"}"#;
    let (code, campaign) = f.call("POST", "/api/v1/reviews", &f.admin, Some(start));
    assert_eq!(code, 200, "{campaign}");
    let campaign: Value = serde_json::from_str(&campaign).unwrap();
    let review = campaign["id"].as_str().unwrap().to_owned();
    let (_, outbox) = f.call("GET", "/api/v1/review/reminders", &f.ingest, None);
    let outbox: Value = serde_json::from_str(&outbox).unwrap();
    let reminder = &outbox["reminders"][0];
    let reviewer = reminder["link"].as_str().unwrap().rsplit_once("#t=").unwrap().1.to_owned();
    let ack = format!(r#"{{"seqs":[{}]}}"#, reminder["seq"]);

    // (method, documented path, concrete path, token, body), reads before the changes that
    // end what they read.
    let calls: Vec<(&str, &str, String, &str, Option<&str>)> = vec![
        ("get", "/api/v1/health", "/api/v1/health".into(), &f.viewer, None),
        ("get", "/api/v1/session", "/api/v1/session".into(), &f.viewer, None),
        ("post", "/api/v1/session", "/api/v1/session".into(), &f.viewer, None),
        ("get", "/api/v1/devices", "/api/v1/devices".into(), &f.viewer, None),
        ("get", "/api/v1/devices/{id}", format!("/api/v1/devices/{a}"), &f.viewer, None),
        ("get", "/api/v1/connectors", "/api/v1/connectors".into(), &f.viewer, None),
        ("get", "/api/v1/connectors/{key}", format!("/api/v1/connectors/{ext}"), &f.viewer, None),
        (
            "get",
            "/api/v1/triage/connector/{key}",
            format!("/api/v1/triage/connector/{}", f.tool),
            &f.viewer,
            None,
        ),
        ("get", "/api/v1/triage/token/{fp}", format!("/api/v1/triage/token/{fp}"), &f.viewer, None),
        (
            "get",
            "/api/v1/triage/device/{id}",
            format!("/api/v1/triage/device/{a}?at=2026-01-15T08:30:00Z"),
            &f.viewer,
            None,
        ),
        (
            "get",
            "/api/v1/triage/user/{user}",
            "/api/v1/triage/user/alice@example.com?at=2026-01-15T08:30:00Z".into(),
            &f.viewer,
            None,
        ),
        ("get", "/api/v1/findings", "/api/v1/findings".into(), &f.viewer, None),
        (
            "get",
            "/api/v1/activity",
            "/api/v1/activity?user=alice@example.com&since=2026-01-01T00:00:00Z".into(),
            &f.viewer,
            None,
        ),
        ("get", "/api/v1/offboarding", "/api/v1/offboarding".into(), &f.viewer, None),
        ("get", "/api/v1/catalog/status", "/api/v1/catalog/status".into(), &f.viewer, None),
        ("get", "/api/v1/people/{user}", "/api/v1/people/alice@example.com".into(), &f.viewer, None),
        ("get", "/api/v1/views/overview", "/api/v1/views/overview".into(), &f.viewer, None),
        ("get", "/api/v1/views/devices", "/api/v1/views/devices".into(), &f.viewer, None),
        ("get", "/api/v1/views/connectors", "/api/v1/views/connectors".into(), &f.viewer, None),
        ("get", "/api/v1/views/findings", "/api/v1/views/findings".into(), &f.viewer, None),
        ("get", "/api/v1/views/people", "/api/v1/views/people".into(), &f.viewer, None),
        ("get", "/api/v1/tokens/api", "/api/v1/tokens/api".into(), &f.admin, None),
        (
            "put",
            "/api/v1/connectors/{key}/owner",
            format!("/api/v1/connectors/{ext}/owner"),
            &f.admin,
            Some(r#"{"person":"alice@example.com","reason":"contract"}"#),
        ),
        ("get", "/api/v1/reviews", "/api/v1/reviews".into(), &f.viewer, None),
        ("get", "/api/v1/reviews/{id}", format!("/api/v1/reviews/{review}"), &f.viewer, None),
        ("get", "/api/v1/review/me", "/api/v1/review/me".into(), &reviewer, None),
        ("get", "/api/v1/review/reminders", "/api/v1/review/reminders?after=0".into(), &f.ingest, None),
        ("post", "/api/v1/reviews", "/api/v1/reviews".into(), &f.admin, Some(start)),
        (
            "post",
            "/api/v1/reviews/{id}/items/{key}",
            format!("/api/v1/reviews/{review}/items/{ext}"),
            &reviewer,
            Some(r#"{"decision":"keep","reason":"contract","keep_for":"30d"}"#),
        ),
        ("get", "/api/v1/reviews/{id}/report", format!("/api/v1/reviews/{review}/report"), &f.viewer, None),
        (
            "post",
            "/api/v1/review/reminders/ack",
            "/api/v1/review/reminders/ack".into(),
            &f.ingest,
            Some(&ack),
        ),
        ("get", "/api/v1/tokens/enrollment", "/api/v1/tokens/enrollment".into(), &f.admin, None),
        ("post", "/api/v1/signins/{source}", "/api/v1/signins/okta".into(), &f.ingest, Some(okta)),
        (
            "post",
            "/api/v1/connectors/{key}/revoke",
            format!("/api/v1/connectors/{ext}/revoke"),
            &f.admin,
            Some(r#"{"reason":"contract"}"#),
        ),
        (
            "delete",
            "/api/v1/connectors/{key}/revoke",
            format!("/api/v1/connectors/{ext}/revoke"),
            &f.admin,
            None,
        ),
        (
            "put",
            "/api/v1/connectors/{key}/owner",
            format!("/api/v1/connectors/{ext}/owner"),
            &f.admin,
            Some(r#"{"person":"alice@example.com","reason":"contract"}"#),
        ),
        // Approvals: asked for alice (who holds the extension), approved, withdrawn; asked
        // again and denied; then the audit log that recorded each step.
        (
            "post",
            "/api/v1/connectors/{key}/approval-requests",
            format!("/api/v1/connectors/{ext}/approval-requests"),
            &f.admin,
            Some(r#"{"reason":"contract","on_behalf_of":"alice@example.com","duration":"30d"}"#),
        ),
        ("get", "/api/v1/approval-requests", "/api/v1/approval-requests?state=open".into(), &f.viewer, None),
        (
            "post",
            "/api/v1/approval-requests/{id}/approve",
            "/api/v1/approval-requests/1/approve".into(),
            &f.admin,
            Some(r#"{"reason":"contract","expires_in":"7d"}"#),
        ),
        (
            "post",
            "/api/v1/approval-requests/{id}/withdraw",
            "/api/v1/approval-requests/1/withdraw".into(),
            &f.admin,
            Some(r#"{"reason":"contract"}"#),
        ),
        (
            "post",
            "/api/v1/connectors/{key}/approval-requests",
            format!("/api/v1/connectors/{ext}/approval-requests"),
            &f.admin,
            Some(r#"{"reason":"again","on_behalf_of":"alice@example.com"}"#),
        ),
        (
            "post",
            "/api/v1/approval-requests/{id}/deny",
            "/api/v1/approval-requests/2/deny".into(),
            &f.admin,
            Some(r#"{"reason":"contract"}"#),
        ),
        ("get", "/api/v1/audit", "/api/v1/audit?after=0&limit=100".into(), &f.viewer, None),
        (
            "post",
            "/api/v1/connectors/{key}/status",
            format!("/api/v1/connectors/{}/status", f.tool),
            &f.admin,
            Some(r#"{"status":"unsanctioned"}"#),
        ),
        (
            "put",
            "/api/v1/connectors/{key}/owner",
            format!("/api/v1/connectors/{}/owner", f.tool),
            &f.admin,
            Some(r#"{"person":null,"reason":"back to whoever attribution finds"}"#),
        ),
        (
            "post",
            "/api/v1/tokens/api",
            "/api/v1/tokens/api".into(),
            &f.admin,
            Some(r#"{"role":"admin","ttl":"1h"}"#),
        ),
        (
            "post",
            "/api/v1/tokens/enrollment",
            "/api/v1/tokens/enrollment".into(),
            &f.admin,
            Some(r#"{"name":"x"}"#),
        ),
        ("delete", "/api/v1/tokens/api/{id}", format!("/api/v1/tokens/api/{made_id}"), &f.admin, None),
        (
            "delete",
            "/api/v1/tokens/enrollment/{id}",
            format!("/api/v1/tokens/enrollment/{enrollment_id}"),
            &f.admin,
            None,
        ),
        ("post", "/api/v1/devices/{id}/revoke", format!("/api/v1/devices/{b}/revoke"), &f.admin, None),
        ("delete", "/api/v1/session", "/api/v1/session".into(), &f.viewer, None),
    ];

    let mut problems = Vec::new();
    let mut called = std::collections::BTreeSet::new();
    for (method, path, concrete, token, body) in &calls {
        called.insert((method.to_string(), path.to_string()));
        let op = &doc["paths"][*path][*method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        // Signing in takes the token in the body, not the header.
        let sign_in = format!(r#"{{"token":"{}"}}"#, f.viewer);
        let body =
            if *method == "post" && *path == "/api/v1/session" { Some(sign_in.as_str()) } else { *body };
        let (code, text) = f.call(&method.to_uppercase(), concrete, token, body);
        if !(200..300).contains(&code) {
            problems.push(format!("{method} {concrete}: {code} {text}"));
            continue;
        }
        let declared = &op["responses"][code.to_string()];
        let Some(schema) = declared.pointer("/content/application~1json/schema") else {
            if !text.is_empty() {
                problems.push(format!("{method} {path}: {code} has a body the document does not describe"));
            }
            continue;
        };
        if !typed(schema) {
            problems.push(format!("{method} {path}: its {code} body is not a named schema: {schema}"));
        }
        let body: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{method} {path}: not JSON ({e}): {text}"));
                continue;
            }
        };
        if let Err(e) = check(&doc, schema, &body) {
            problems.push(format!("{method} {path}: {e}\n  body: {body}"));
        }
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if !called.contains(&(method.clone(), path.clone())) {
                problems.push(format!("{method} {path} is documented but this test does not call it"));
            }
        }
    }
    let (typed_n, total) = typed_success_bodies(&doc);
    assert_eq!(typed_n, total, "typed 2xx bodies: {typed_n}/{total}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    f.c.stop().await;
}
