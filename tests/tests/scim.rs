//! SCIM 2.0 end to end over the collector's TLS HTTP listener on loopback: the requests
//! Okta and Entra ID document (tests/data/scim/), the protocol's edges (discovery, errors,
//! locations), SCIM groups deciding the policy's group approvals, and scim2-tester (the
//! python-scim project's conformance checker) run against the live server.

use serde_json::{Value, json};
use sightline_tests::*;

/// Percent-encodes a query value (curl sends the URL as given; `[` would be a glob).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Scim<'a> {
    c: &'a Collector,
    token: String,
}

impl Scim<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, Value) {
        tokio::task::block_in_place(|| self.c.api_body(method, path, Some(&self.token), body))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&str>, want: u16) -> (String, Value) {
        let (code, headers, v) = self.call(method, path, body);
        assert_eq!(code, want, "{method} {path}: {v:#}");
        assert!(
            headers.to_ascii_lowercase().contains("content-type: application/scim+json") || code == 204,
            "{method} {path}: {headers}"
        );
        (headers, v)
    }

    fn filter(&self, resource: &str, f: &str) -> Value {
        self.ok("GET", &format!("/scim/v2/{resource}?filter={}", enc(f)), None, 200).1
    }
}

/// Sightline's extension of the draft's Agent.
const CONNECTOR: &str = "urn:sightline:params:scim:schemas:extension:connector:2.0:Agent";

/// The `Location` header of a response.
fn location(headers: &str) -> Option<String> {
    headers
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")))
        .map(|(_, v)| v.trim().to_owned())
}

fn fixture(name: &str, ids: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/scim").join(name);
    let mut s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (k, v) in ids {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_documented_requests_provision_users_and_push_groups() {
    let c = Collector::start().await;
    let s = Scim { c: &c, token: c.api_token("scim") };
    let base = format!("{}/scim/v2", c.api_url);

    // Okta first looks the user up by userName, then creates.
    let none = s.filter("Users", r#"userName eq "test.user@okta.local""#);
    assert_eq!(none["totalResults"], 0);
    let (h, u) = s.ok("POST", "/scim/v2/Users", Some(&fixture("okta/01-create-user.json", &[])), 201);
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(location(&h).as_deref(), Some(format!("{base}/Users/{id}").as_str()), "{h}");
    assert_eq!(u["meta"]["location"], format!("{base}/Users/{id}"));
    assert_eq!(u["name"], json!({"givenName": "Test", "familyName": "User"}));
    assert_eq!(u["emails"], json!([{"value": "test.user@okta.local", "type": "work", "primary": true}]));
    assert_eq!(
        (u["externalId"].as_str(), u["displayName"].as_str()),
        (Some("00ujl29u0le5T6Aj10h7"), Some("Test User"))
    );
    assert!(u.get("password").is_none() && !u.to_string().contains("1mz050nq"), "{u}");
    let ids = [("USER_ID", id.as_str())];

    let (_, u) =
        s.ok("PUT", &format!("/scim/v2/Users/{id}"), Some(&fixture("okta/02-replace-user.json", &ids)), 200);
    assert_eq!(
        (u["name"]["middleName"].as_str(), u["displayName"].as_str()),
        (Some("Q"), Some("Another User"))
    );
    let (_, u) = s.ok(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(&fixture("okta/03-deactivate-user.json", &[])),
        200,
    );
    assert_eq!(u["active"], false);
    assert!(c.shared.store.person(&id).unwrap().unwrap().deprovisioned_at_ms.is_some());
    let (_, u) = s.ok(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(&fixture("okta/04-reactivate-user.json", &[])),
        200,
    );
    assert_eq!(u["active"], true);

    // Group push.
    let (_, groups) = s.ok("GET", "/scim/v2/Groups?startIndex=1&count=100", None, 200);
    assert_eq!(groups["totalResults"], 0);
    let (h, g) = s.ok("POST", "/scim/v2/Groups", Some(&fixture("okta/05-create-group.json", &[])), 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(location(&h).as_deref(), Some(format!("{base}/Groups/{gid}").as_str()));
    let ids = [("USER_ID", id.as_str()), ("GROUP_ID", gid.as_str())];
    let path = format!("/scim/v2/Groups/{gid}");
    let (_, g) = s.ok("PATCH", &path, Some(&fixture("okta/06-rename-group.json", &ids)), 200);
    assert_eq!(g["displayName"], "Test SCIMv2 Renamed");
    let (_, g) = s.ok("PATCH", &path, Some(&fixture("okta/07-add-members.json", &ids)), 200);
    assert_eq!(
        g["members"],
        json!([{"value": id, "display": "Another User", "$ref": format!("{base}/Users/{id}"), "type": "User"}])
    );
    let (_, u) = s.ok("GET", &format!("/scim/v2/Users/{id}"), None, 200);
    assert_eq!(u["groups"][0]["value"], gid.as_str(), "{u}");
    assert_eq!(u["groups"][0]["display"], "Test SCIMv2 Renamed");
    assert_eq!(s.filter("Groups", &format!(r#"members.value eq "{id}""#))["totalResults"], 1);
    assert_eq!(s.filter("Groups", r#"displayName eq "test scimv2 renamed""#)["totalResults"], 1);
    let (_, g) = s.ok("PATCH", &path, Some(&fixture("okta/08-remove-member.json", &ids)), 200);
    assert_eq!(g["members"], json!([]));
    assert_eq!(s.filter("Groups", &format!(r#"members.value eq "{id}""#))["totalResults"], 0);
    let (_, g) = s.ok("PUT", &path, Some(&fixture("okta/09-replace-group.json", &ids)), 200);
    assert_eq!(g["members"][0]["value"], id.as_str());
    s.ok("DELETE", &path, None, 204);
    s.ok("GET", &path, None, 404);
    let (_, u) = s.ok("GET", &format!("/scim/v2/Users/{id}"), None, 200);
    assert!(u.get("groups").is_none(), "{u}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_documented_requests_round_trip_the_enterprise_user_and_groups() {
    let c = Collector::start().await;
    let s = Scim { c: &c, token: c.api_token("scim") };
    let base = format!("{}/scim/v2", c.api_url);
    let (_, m) = s.ok("POST", "/scim/v2/Users", Some(&fixture("entra/01-create-manager.json", &[])), 201);
    let mid = m["id"].as_str().unwrap().to_owned();
    let (_, u) = s.ok(
        "POST",
        "/scim/v2/Users",
        Some(&fixture("entra/02-create-user.json", &[("MANAGER_ID", &mid)])),
        201,
    );
    let id = u["id"].as_str().unwrap().to_owned();
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(u["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ext]));
    assert_eq!(
        u[ext],
        json!({"employeeNumber": "701984", "department": "Tour Operations",
               "manager": {"value": mid, "$ref": format!("{base}/Users/{mid}"), "displayName": "Test_Manager_2d1c@testuser.com"}})
    );
    assert_eq!(u["name"]["formatted"], "givenName familyName");
    let p = c.shared.store.person(&id).unwrap().unwrap();
    assert_eq!(
        (p.manager_id.as_deref(), p.department.as_deref(), p.employee_number.as_deref()),
        (Some(mid.as_str()), Some("Tour Operations"), Some("701984"))
    );

    // The lookups Entra makes.
    assert_eq!(
        s.filter("Users", r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#)["totalResults"],
        1
    );
    assert_eq!(
        s.filter("Users", r#"externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF""#)["totalResults"],
        0
    );
    let by_mail = r#"emails[type eq "work" and value eq "TEST_USER_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"]"#;
    assert_eq!(s.filter("Users", by_mail)["Resources"][0]["id"], id.as_str());

    let user = format!("/scim/v2/Users/{id}");
    let ids = [("USER_ID", id.as_str()), ("MANAGER_ID", mid.as_str())];
    let (_, u) = s.ok("PATCH", &user, Some(&fixture("entra/03-update-multi-valued.json", &ids)), 200);
    assert_eq!(
        u["emails"],
        json!([{"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}])
    );
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(c.shared.store.person(&id).unwrap().unwrap().emails, vec!["updatedemail@microsoft.com"]);
    let (_, u) = s.ok("PATCH", &user, Some(&fixture("entra/04-update-single-valued.json", &ids)), 200);
    assert_eq!(u["userName"], "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com");
    // `title` is not kept (and not advertised): accepted, not stored.
    let (_, u) = s.ok("PATCH", &user, Some(&fixture("entra/05-add-instead-of-replace.json", &ids)), 200);
    assert_eq!(u["emails"][1], json!({"type": "home", "value": "home@example.org"}));
    assert_eq!(
        (u[ext]["department"].as_str(), u[ext]["manager"]["value"].as_str()),
        (Some("Finance"), Some(mid.as_str()))
    );
    assert!(u.get("title").is_none());
    let (_, u) = s.ok("PATCH", &user, Some(&fixture("entra/06-disable-user.json", &ids)), 200);
    assert_eq!(u["active"], false);
    assert_eq!(s.filter("Users", "active eq false")["totalResults"], 1);
    let (_, u) = s.ok("PATCH", &user, Some(&fixture("entra/07-remove-manager.json", &ids)), 200);
    assert!(u[ext].get("manager").is_none(), "{u}");
    assert_eq!(c.shared.store.person(&id).unwrap().unwrap().manager_id, None);

    // Groups: Entra looks the group up by displayName without its members, then creates.
    let lookup = format!(
        "/scim/v2/Groups?excludedAttributes=members&filter={}",
        enc(r#"displayName eq "displayName""#)
    );
    assert_eq!(s.ok("GET", &lookup, None, 200).1["totalResults"], 0);
    let (_, g) = s.ok("POST", "/scim/v2/Groups", Some(&fixture("entra/08-create-group.json", &[])), 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, found) = s.ok("GET", &lookup, None, 200);
    assert_eq!(found["Resources"][0]["id"], gid.as_str());
    assert!(found["Resources"][0].get("members").is_none(), "{found}");
    let group = format!("/scim/v2/Groups/{gid}");
    let (_, g) = s.ok("PATCH", &group, Some(&fixture("entra/09-add-member.json", &ids)), 200);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(2), "{g}");
    let (_, g) = s.ok("PATCH", &group, Some(&fixture("entra/10-rename-group.json", &ids)), 200);
    assert_eq!(g["displayName"], "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName");
    let (_, g) = s.ok("PATCH", &group, Some(&fixture("entra/11-remove-member.json", &ids)), 200);
    let members: Vec<&str> =
        g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(members, vec![id.as_str()]);
    assert_eq!(g["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scim_discovery_errors_and_status_codes_follow_rfc_7644() {
    let c = Collector::start().await;
    let s = Scim { c: &c, token: c.api_token("scim") };
    let base = format!("{}/scim/v2", c.api_url);

    let (_, spc) = s.ok("GET", "/scim/v2/ServiceProviderConfig", None, 200);
    assert_eq!(
        (
            spc["patch"]["supported"].as_bool(),
            spc["filter"]["supported"].as_bool(),
            spc["filter"]["maxResults"].as_u64()
        ),
        (Some(true), Some(true), Some(200))
    );
    for f in ["bulk", "sort", "etag", "changePassword"] {
        assert_eq!(spc[f]["supported"], false, "{f}");
    }
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let (_, schemas) = s.ok("GET", "/scim/v2/Schemas", None, 200);
    let ids: Vec<&str> =
        schemas["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:ietf:params:scim:schemas:core:2.0:Agent",
            CONNECTOR,
        ]
    );
    let (_, one) = s.ok("GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", None, 200);
    assert_eq!(
        one["meta"]["location"],
        format!("{base}/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group")
    );
    let (_, types) = s.ok("GET", "/scim/v2/ResourceTypes", None, 200);
    assert_eq!(types["totalResults"], 3);
    let (_, user_type) = s.ok("GET", "/scim/v2/ResourceTypes/User", None, 200);
    assert_eq!(
        user_type["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    assert_eq!(user_type["endpoint"], "/Users");
    s.ok("GET", "/scim/v2/ResourceTypes/Device", None, 404);
    s.ok("GET", "/scim/v2/Schemas/urn:nope", None, 404);

    // Unknown paths and methods: SCIM errors, not the API's.
    for (method, path, code) in [
        ("GET", "/scim/v2/Nope", 404),
        ("GET", "/scim/v2/Users/nobody", 404),
        ("POST", "/scim/v2/Bulk", 404),
        ("DELETE", "/scim/v2/Users", 405),
        ("POST", "/scim/v2/ServiceProviderConfig", 405),
    ] {
        let (_, err) = s.ok(method, path, None, code);
        assert_eq!(err["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{method} {path}");
        assert_eq!(err["status"], code.to_string(), "{method} {path}");
    }
    // Without a token: 401 with a Bearer challenge; the wrong role: 403, also challenged.
    let (code, h, err) = tokio::task::block_in_place(|| c.api("GET", "/scim/v2/Users", None));
    assert_eq!((code, err["status"].as_str()), (401, Some("401")), "{err}");
    assert!(
        h.contains("www-authenticate: Bearer realm=\"sightline\"")
            || h.contains("WWW-Authenticate: Bearer realm=\"sightline\""),
        "{h}"
    );
    let viewer = c.api_token("viewer");
    let (code, h, err) = tokio::task::block_in_place(|| c.api("GET", "/scim/v2/Groups", Some(&viewer)));
    assert_eq!(
        (code, err["schemas"][0].as_str()),
        (403, Some("urn:ietf:params:scim:api:messages:2.0:Error"))
    );
    assert!(h.to_ascii_lowercase().contains("www-authenticate: bearer realm=\"sightline\""), "{h}");

    // Uniqueness, then each 400 with its scimType.
    let alice =
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com"}"#;
    let (_, a) = s.ok("POST", "/scim/v2/Users", Some(alice), 201);
    let aid = a["id"].as_str().unwrap().to_owned();
    let (_, err) = s.ok("POST", "/scim/v2/Users", Some(&alice.replace("alice@", "ALICE@")), 409);
    assert_eq!((err["scimType"].as_str(), err["status"].as_str()), (Some("uniqueness"), Some("409")));
    let group = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering"}"#;
    let (_, g) = s.ok("POST", "/scim/v2/Groups", Some(group), 201);
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, err) = s.ok("POST", "/scim/v2/Groups", Some(&group.replace("Engineering", "engineering")), 409);
    assert_eq!(err["scimType"], "uniqueness");
    let patch = |ops: &str| {
        format!(r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{ops}}}"#)
    };
    let user = format!("/scim/v2/Users/{aid}");
    let group = format!("/scim/v2/Groups/{gid}");
    for (method, path, body, scim_type) in [
        ("GET", "/scim/v2/Users?filter=userName%20eq".to_owned(), String::new(), "invalidFilter"),
        ("GET", format!("/scim/v2/Groups?filter={}", enc("displayName sw")), String::new(), "invalidFilter"),
        ("GET", format!("/scim/v2/Users?filter={}", enc("(userName pr")), String::new(), "invalidFilter"),
        ("POST", "/scim/v2/Users".into(), "[1]".into(), "invalidSyntax"),
        ("POST", "/scim/v2/Groups".into(), r#"{"displayName":""}"#.into(), "invalidValue"),
        (
            "POST",
            "/scim/v2/Groups".into(),
            r#"{"displayName":"x","members":[{"value":"nobody"}]}"#.into(),
            "invalidValue",
        ),
        (
            "POST",
            "/scim/v2/Users".into(),
            r#"{"userName":"b@example.com","emails":[{"type":"work"}]}"#.into(),
            "invalidValue",
        ),
        ("PATCH", user.clone(), patch(r#"[{"op":"move","path":"userName"}]"#), "invalidSyntax"),
        (
            "PATCH",
            user.clone(),
            patch(r#"[{"op":"replace","path":"emails[type eq \"work\"","value":"x"}]"#),
            "invalidPath",
        ),
        (
            "PATCH",
            user.clone(),
            patch(r#"[{"op":"replace","path":"emails[type eq \"other\"].value","value":"x"}]"#),
            "noTarget",
        ),
        ("PATCH", user.clone(), patch(r#"[{"op":"replace","path":"id","value":"x"}]"#), "mutability"),
        (
            "PATCH",
            user.clone(),
            patch(r#"[{"op":"add","path":"groups","value":[{"value":"x"}]}]"#),
            "mutability",
        ),
        (
            "PATCH",
            user.clone(),
            patch(r#"[{"op":"replace","path":"active","value":"maybe"}]"#),
            "invalidValue",
        ),
        (
            "PATCH",
            user.clone(),
            patch(&format!(
                r#"[{{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{aid}"}}]"#
            )),
            "invalidValue",
        ),
        (
            "PATCH",
            group.clone(),
            patch(r#"[{"op":"add","path":"members","value":[{"value":"nobody"}]}]"#),
            "invalidValue",
        ),
        ("PUT", group.clone(), r#"{"id":"other","displayName":"Engineering"}"#.into(), "mutability"),
    ] {
        let (_, err) = s.ok(method, &path, (!body.is_empty()).then_some(body.as_str()), 400);
        assert_eq!(
            (err["scimType"].as_str(), err["status"].as_str()),
            (Some(scim_type), Some("400")),
            "{method} {path} {body}: {err}"
        );
    }

    // Value filters in PATCH paths, and ops in any case.
    let (_, a) = s.ok("PATCH", &user, Some(&patch(r#"[{"op":"Add","path":"emails","value":[{"value":"a@work.example","type":"work"},{"value":"a@home.example","type":"home"}]},
        {"op":"Replace","path":"emails[type eq \"work\"].primary","value":true},{"op":"Remove","path":"emails[type eq \"home\"]"},
        {"op":"add","value":{"name":{"givenName":"Alice","honorificPrefix":"Dr."},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"7"}}}]"#)), 200);
    assert_eq!(a["emails"], json!([{"value": "a@work.example", "type": "work", "primary": true}]));
    assert_eq!(a["name"], json!({"givenName": "Alice", "honorificPrefix": "Dr."}));
    assert_eq!(a["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], "7");
    let (_, a) = s.ok(
        "PATCH",
        &user,
        Some(&patch(r#"[{"op":"remove","path":"name.honorificPrefix"},{"op":"REMOVE","path":"emails"}]"#)),
        200,
    );
    assert_eq!(a["name"], json!({"givenName": "Alice"}));
    assert!(a.get("emails").is_none());
    // Projection: only what was asked for (and id, schemas, meta).
    let (_, a) = s.ok("GET", &format!("{user}?attributes=userName,name.givenName"), None, 200);
    let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "meta", "name", "schemas", "userName"]);
    // Paging: startIndex is 1-based, count caps the page, totalResults counts all matches.
    for n in 0..3 {
        let body =
            format!(r#"{{"userName":"p{n}@example.com","displayName":"Person {n}","active":{}}}"#, n != 1);
        s.ok("POST", "/scim/v2/Users", Some(&body), 201);
    }
    let (_, page) = s.ok(
        "GET",
        &format!("/scim/v2/Users?startIndex=2&count=1&filter={}", enc(r#"userName sw "p""#)),
        None,
        200,
    );
    assert_eq!((page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()), (Some(3), Some(1)));
    assert_eq!(page["Resources"][0]["userName"], "p1@example.com");
    let f = r#"(displayName co "person" and active eq true) or userName eq "ALICE@example.com""#;
    assert_eq!(s.filter("Users", f)["totalResults"], 3);
    assert_eq!(s.filter("Users", r#"displayName pr and not (active eq true)"#)["totalResults"], 1);
    // The same query as a POST /.search body (RFC 7644 §3.4.3), per type and at the root.
    let search = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName sw \"p\"","attributes":["userName"],"count":2}"#;
    let (_, found) = s.ok("POST", "/scim/v2/Users/.search", Some(search), 200);
    assert_eq!((found["totalResults"].as_u64(), found["itemsPerPage"].as_u64()), (Some(3), Some(2)));
    assert!(found["Resources"][0].get("displayName").is_none(), "{found}");
    let everything = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}"#;
    let (_, found) = s.ok("POST", "/scim/v2/.search", Some(everything), 200);
    assert_eq!(found["totalResults"], 5, "4 users and 1 group: {found}");
    c.stop().await;
}

/// `[approved.groups.Engineering]` with no `[groups]` list: the SCIM group of that name
/// decides. A connector is approved while its owner is a member, unsanctioned once Entra's
/// PATCH removes them.
#[tokio::test(flavor = "multi_thread")]
async fn a_scim_group_decides_the_policy_group_approval() {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb::{self, observation::Item};
    let c = Collector::start_with_policy(
        "[approved]\ntools = []\n[approved.groups.Engineering]\nproviders = [\"openai\"]\n[identity]\nrules = [\"email_local_part\"]\n",
    )
    .await;
    let s = Scim { c: &c, token: c.api_token("scim") };
    let viewer = c.api_token("viewer");
    let (_, dana) = s.ok(
        "POST",
        "/scim/v2/Users",
        Some(r#"{"userName":"dana@example.com","emails":[{"value":"dana@example.com","type":"work"}]}"#),
        201,
    );
    let dana = dana["id"].as_str().unwrap().to_owned();
    let laptop = enroll(&c).await;
    let token = Item::Token(pb::TokenItem {
        provider: "openai".into(),
        kind: pb::TokenKind::ApiKey as i32,
        user: Some("dana".into()),
        path: "/home/dana/.codex/auth.json".into(),
        source: pb::TokenSource::CredentialFile as i32,
        fingerprint: "0a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
        locator: Some("/OPENAI_API_KEY".into()),
        mcp_server: None,
        authorized_by: None,
    });
    let at = 1_768_464_000_000i64;
    let (b, _) = laptop.batch_of(
        1,
        GENESIS_HASH,
        vec![pb::Observation {
            seq: 0,
            observed_at_ms: at,
            change: pb::Change::Snapshot as i32,
            item: Some(token),
        }],
    );
    for r in laptop.send(vec![b]).await {
        r.unwrap();
    }
    let status = || {
        let (code, _, list) =
            tokio::task::block_in_place(|| c.api("GET", "/api/v1/connectors", Some(&viewer)));
        assert_eq!(code, 200, "{list}");
        let list = list
            .as_array()
            .cloned()
            .unwrap_or_else(|| list["connectors"].as_array().cloned().unwrap_or_default());
        let token = list
            .iter()
            .find(|c| c["kind"] == "token")
            .cloned()
            .unwrap_or_else(|| panic!("no token connector: {list:?}"));
        token["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status(), "unsanctioned", "no group Engineering yet");
    let (_, g) = s.ok(
        "POST",
        "/scim/v2/Groups",
        Some(&format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"engineering","members":[{{"value":"{dana}"}}]}}"#)),
        201,
    );
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(status(), "approved", "dana is in the SCIM group engineering");
    let remove = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Remove","path":"members","value":[{{"value":"{dana}"}}]}}]}}"#
    );
    s.ok("PATCH", &format!("/scim/v2/Groups/{gid}"), Some(&remove), 200);
    assert_eq!(status(), "unsanctioned", "removed from the group");
    c.stop().await;
}

/// A small fleet for the Agent resources: ada and bob provisioned through SCIM, one laptop
/// reporting Cursor (ada, approved by the policy), an uncatalogued browser extension (bob),
/// an MCP server (ada) and an OpenAI key (ada) that is gone again. Returns ada's and bob's
/// User ids.
async fn agent_fleet(c: &Collector, s: &Scim<'_>) -> (String, String) {
    use sightline_proto::envelope::GENESIS_HASH;
    use sightline_proto::pb::{self, observation::Item};
    let person = |name: &str| {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{name}@example.com"), "displayName": format!("{name} Example"), "active": true});
        s.ok("POST", "/scim/v2/Users", Some(&body.to_string()), 201).1["id"].as_str().unwrap().to_owned()
    };
    let (ada, bob) = (person("ada"), person("bob"));
    let t0 = 1_768_464_000_000i64; // 2026-01-15T08:00:00Z: device times must be in the past
    let obs = |change: pb::Change, at: i64, item: Item| pb::Observation {
        seq: 0,
        observed_at_ms: at,
        change: change as i32,
        item: Some(item),
    };
    let cursor = Item::App(pb::AppItem {
        tool: "cursor".into(),
        user: Some("ada".into()),
        path: "/usr/share/cursor/cursor".into(),
        ..Default::default()
    });
    let ext = Item::Extension(pb::ExtensionItem {
        user: Some("bob".into()),
        browser: "chrome".into(),
        profile: "Default".into(),
        extension_id: "bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
        name: "AI Sidebar".into(),
        path: "/home/bob/.config/google-chrome/Default/Extensions/bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
        ..Default::default()
    });
    let mcp = Item::McpServer(pb::McpServerItem {
        client: "claude_desktop".into(),
        user: Some("ada".into()),
        name: "github".into(),
        transport: "stdio".into(),
        command: Some("npx -y @modelcontextprotocol/server-github".into()),
        url: None,
        path: "/home/ada/.config/Claude/claude_desktop_config.json".into(),
    });
    let token = openai_token("ada", "4f5e6d7c8b9a0f1e2d3c4b5a69788796");
    let laptop = enroll(c).await;
    let snap = |item: Item| obs(pb::Change::Snapshot, t0 + 1_000, item);
    let (b, h) =
        laptop.batch_of(1, GENESIS_HASH, vec![snap(cursor), snap(ext), snap(mcp), snap(token.clone())]);
    let (b2, _) = laptop.batch_of(5, h, vec![obs(pb::Change::Disappeared, t0 + 60_000, token)]);
    for r in laptop.send(vec![b, b2]).await {
        r.unwrap();
    }
    (ada, bob)
}

/// The connector register as the draft's Agent resources, as an identity-governance tool
/// reads it: each connector with its owner (a User reference that resolves) and status,
/// found by filter, paged, projected, one by id; writes refused with a SCIM 405.
#[tokio::test(flavor = "multi_thread")]
async fn the_register_reads_as_agents_with_owner_and_status() {
    let c = Collector::start_with_policy("[approved]\ntools = [\"cursor\"]\n").await;
    let s = Scim { c: &c, token: c.api_token("scim") };
    let (ada, bob) = agent_fleet(&c, &s).await;
    let base = format!("{}/scim/v2", c.api_url);

    let (_, all) = s.ok("GET", "/scim/v2/Agents", None, 200);
    assert_eq!(all["totalResults"], 4, "{all:#}");
    let agents = all["Resources"].as_array().unwrap();
    let by_type =
        |t: &str| agents.iter().find(|a| a["agentType"] == t).unwrap_or_else(|| panic!("{t}: {all:#}"));
    for a in agents {
        assert_eq!(a["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Agent", CONNECTOR]));
        assert_eq!(a["meta"]["location"], format!("{base}/Agents/{}", a["id"].as_str().unwrap()));
    }
    let cursor = by_type("tool");
    assert_eq!(
        (cursor["name"].as_str(), cursor["displayName"].as_str()),
        (Some("tool:cursor"), Some("Cursor"))
    );
    assert_eq!(
        (cursor["active"].as_bool(), cursor[CONNECTOR]["status"].as_str()),
        (Some(true), Some("approved"))
    );
    assert_eq!(cursor["owners"][0]["value"], ada.as_str());
    assert_eq!(cursor["owners"][0]["display"], "ada Example");
    assert_eq!(cursor[CONNECTOR]["devices"], 1);
    // The owner reference leads to the owning User.
    let owner_ref = cursor["owners"][0]["$ref"].as_str().unwrap();
    assert_eq!(owner_ref, format!("{base}/Users/{ada}"));
    let (_, user) = s.ok("GET", owner_ref.trim_start_matches(&c.api_url), None, 200);
    assert_eq!(user["userName"], "ada@example.com");
    let ext = by_type("extension");
    assert_eq!(
        (ext["owners"][0]["value"].as_str(), ext[CONNECTOR]["status"].as_str()),
        (Some(bob.as_str()), Some("unsanctioned"))
    );
    assert_eq!(by_type("mcp_server")["protocols"], json!([{"type": "MCP-Server"}]));
    let token = by_type("token");
    assert_eq!(
        (token["active"].as_bool(), token[CONNECTOR]["status"].as_str()),
        (Some(false), Some("removed"))
    );
    assert_eq!(token[CONNECTOR]["provider"], "openai");

    // Filters over the resource's SCIM JSON: by displayName, by status, by owner.
    let names = |f: &str| -> Vec<String> {
        let mut v: Vec<String> = s.filter("Agents", f)["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names("displayName eq \"cursor\""),
        ["tool:cursor"],
        "case-insensitive, as the draft's schema says"
    );
    let mut unsanctioned: Vec<String> =
        [ext, by_type("mcp_server")].iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    unsanctioned.sort();
    assert_eq!(names(&format!("{CONNECTOR}:status eq \"unsanctioned\"")), unsanctioned);
    assert_eq!(names("active eq false"), [token["name"].as_str().unwrap()]);
    assert_eq!(names(&format!("owners[value eq \"{bob}\"]")), [ext["name"].as_str().unwrap()]);
    assert_eq!(names("name eq \"tool:cursor\" and active eq true"), ["tool:cursor"]);
    s.ok("GET", &format!("/scim/v2/Agents?filter={}", enc("displayName eq")), None, 400);

    // Paging: two pages of two cover the four, in the same order as the whole list.
    let page = |start: u32| s.ok("GET", &format!("/scim/v2/Agents?startIndex={start}&count=2"), None, 200).1;
    let (p1, p2) = (page(1), page(3));
    assert_eq!(
        (p1["totalResults"].as_u64(), p1["itemsPerPage"].as_u64(), p1["startIndex"].as_u64()),
        (Some(4), Some(2), Some(1))
    );
    assert_eq!((p2["itemsPerPage"].as_u64(), p2["startIndex"].as_u64()), (Some(2), Some(3)));
    let paged: Vec<&Value> =
        p1["Resources"].as_array().unwrap().iter().chain(p2["Resources"].as_array().unwrap()).collect();
    assert_eq!(paged, agents.iter().collect::<Vec<_>>());
    assert_eq!(page(5)["Resources"], json!([]));

    // One by id: the same resource, with Location; projections; an unknown id is a 404.
    let id = cursor["id"].as_str().unwrap();
    let (h, one) = s.ok("GET", &format!("/scim/v2/Agents/{id}"), None, 200);
    assert_eq!(&one, cursor);
    assert!(
        h.to_ascii_lowercase().contains(&format!("location: {base}/agents/{id}").to_ascii_lowercase()),
        "{h}"
    );
    let (_, slim) = s.ok("GET", &format!("/scim/v2/Agents/{id}?attributes=displayName"), None, 200);
    let mut keys: Vec<&str> = slim.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "id", "meta", "schemas"]);
    let (_, listed) = s.ok("GET", "/scim/v2/Agents?excludedAttributes=owners", None, 200);
    assert!(listed["Resources"].as_array().unwrap().iter().all(|a| a.get("owners").is_none()));
    let (_, searched) =
        s.ok("POST", "/scim/v2/Agents/.search", Some(r#"{"filter": "agentType eq \"token\""}"#), 200);
    assert_eq!(searched["totalResults"], 1);
    // At the root, a search covers every resource type, Agents included.
    let root = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"agentType eq \"tool\" or userName eq \"bob@example.com\""}"#;
    let (_, both) = s.ok("POST", "/scim/v2/.search", Some(root), 200);
    let mut found: Vec<&str> = both["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["Agent", "User"]);
    for missing in ["dG9vbDpub3BlCg", "***"] {
        let (_, err) = s.ok("GET", &format!("/scim/v2/Agents/{missing}"), None, 404);
        assert_eq!(err["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    }

    // Read-only: every write is a SCIM 405; a viewer token is refused like elsewhere in SCIM.
    let body = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Agent"],"name":"x"}"#;
    for (method, path) in [
        ("POST", "/scim/v2/Agents".to_owned()),
        ("PUT", format!("/scim/v2/Agents/{id}")),
        ("PATCH", format!("/scim/v2/Agents/{id}")),
        ("DELETE", format!("/scim/v2/Agents/{id}")),
        ("DELETE", "/scim/v2/Agents".to_owned()),
    ] {
        let (_, err) = s.ok(method, &path, Some(body), 405);
        assert_eq!(
            (err["status"].as_str(), err["schemas"][0].as_str()),
            (Some("405"), Some("urn:ietf:params:scim:api:messages:2.0:Error")),
            "{method} {path}"
        );
    }
    assert_eq!(s.ok("GET", "/scim/v2/Agents", None, 200).1["totalResults"], 4, "nothing changed");
    let viewer = c.api_token("viewer");
    assert_eq!(tokio::task::block_in_place(|| c.api("GET", "/scim/v2/Agents", Some(&viewer))).0, 403);

    // Offboarding as the IGA tool sees it: a deactivated owner is still the owner (her User
    // says active false: an orphaned connector); a deleted one is no User any more, so the
    // connector has no owner reference.
    let deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    s.ok("PATCH", &format!("/scim/v2/Users/{ada}"), Some(deactivate), 200);
    let owners = || s.ok("GET", &format!("/scim/v2/Agents/{id}"), None, 200).1["owners"].clone();
    assert_eq!(owners()[0]["value"], ada.as_str());
    assert_eq!(s.ok("GET", &format!("/scim/v2/Users/{ada}"), None, 200).1["active"], false);
    s.ok("DELETE", &format!("/scim/v2/Users/{ada}"), None, 204);
    assert_eq!(owners(), Value::Null);
    assert_eq!(names(&format!("owners.value eq \"{ada}\"")), Vec::<String>::new());

    // Discovery says so: the resource type and its schemas, every attribute read-only.
    let (_, rt) = s.ok("GET", "/scim/v2/ResourceTypes/Agent", None, 200);
    assert_eq!(
        (rt["endpoint"].as_str(), rt["schema"].as_str()),
        (Some("/Agents"), Some("urn:ietf:params:scim:schemas:core:2.0:Agent"))
    );
    assert_eq!(rt["schemaExtensions"], json!([{"schema": CONNECTOR, "required": true}]));
    for urn in ["urn:ietf:params:scim:schemas:core:2.0:Agent", CONNECTOR] {
        let (_, schema) = s.ok("GET", &format!("/scim/v2/Schemas/{urn}"), None, 200);
        let attrs = schema["attributes"].as_array().unwrap();
        assert!(attrs.iter().all(|a| a["mutability"] == "readOnly"), "{schema:#}");
        // Every attribute a resource carries is defined.
        let defined: Vec<&str> = attrs.iter().map(|a| a["name"].as_str().unwrap()).collect();
        let carried = if urn == CONNECTOR {
            token[CONNECTOR].as_object().unwrap()
        } else {
            cursor.as_object().unwrap()
        };
        for k in carried.keys().filter(|k| !["schemas", "id", "meta", CONNECTOR].contains(&k.as_str())) {
            assert!(defined.contains(&k.as_str()), "{k} is not in {urn}");
        }
    }
    // The draft's `agentExtension` flag is left out of ServiceProviderConfig: strict clients
    // refuse undeclared attributes there (scim2-tester checks it).
    let (_, spc) = s.ok("GET", "/scim/v2/ServiceProviderConfig", None, 200);
    assert!(spc.get("agentExtension").is_none(), "{spc:#}");
    c.stop().await;
}

/// scim2-tester (PyPI, pinned in tests/scim/requirements.txt; scripts/test.sh installs it in
/// target/scim2-tester) runs its checks against the live collector: discovery, then create,
/// read, query, replace, patch (add, replace, remove) and delete of every resource type the
/// server advertises. Every check is printed; any applicable ERROR or CRITICAL fails.
#[tokio::test(flavor = "multi_thread")]
async fn scim2_tester_finds_no_failing_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = venv_python("scim2-tester");
    let c = Collector::start().await;
    let token = c.api_token("scim");
    // Connectors to read: the read-only Agents are checked with what the fleet reported.
    agent_fleet(&c, &Scim { c: &c, token: token.clone() }).await;
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(&python)
            .arg(root.join("tests/scim/run_scim2_tester.py"))
            .arg(format!("{}/scim/v2", c.api_url))
            .arg(c.data_dir.path().join("ca.pem"))
            .env("SIGHTLINE_SCIM_TOKEN", &token)
            .output()
            .unwrap()
    });
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}\n{}", String::from_utf8_lossy(&out.stderr));
    if let Ok(path) = std::env::var("SCIM2_TESTER_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    assert!(
        out.status.success(),
        "scim2-tester reported failing checks:\n{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: discovery and the resources' lifecycles were checked.
    for check in ["ServiceProviderConfig", "User", "Group", "Agent     read_only_get"] {
        assert!(table.contains(check), "no {check} check in:\n{table}");
    }
    c.stop().await;
}

/// Offboarding through SCIM ends the person's dashboard sessions opened through SSO at once
/// (matched by the addresses the IdP provisioned), both on deactivation and on deletion;
/// another person's session stays.
#[tokio::test(flavor = "multi_thread")]
async fn offboarding_ends_the_persons_sso_sessions() {
    use sightline_server::store::SsoIdentity;
    let c = Collector::start().await;
    let scim = Scim { c: &c, token: c.api_token("scim") };
    let user = |name: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@example.com"),
               "emails": [{"value": format!("{name}.alias@Example.com"), "type": "work"}], "active": true})
        .to_string()
    };
    let ada = scim.ok("POST", "/scim/v2/Users", Some(&user("ada")), 201).1["id"].as_str().unwrap().to_owned();
    let bob = scim.ok("POST", "/scim/v2/Users", Some(&user("bob")), 201).1["id"].as_str().unwrap().to_owned();
    // Sessions as the SSO callback opens them: the ID token's address, in its own case.
    let store = c.shared.store.clone();
    let now = sightline_server::clock::now_ms();
    let session = |hash: &'static [u8], email: &str| {
        let who = SsoIdentity { subject: format!("sub-{email}"), email: email.into(), role: "admin".into() };
        store.create_sso_session(hash, &who, now, now + 3_600_000).unwrap();
    };
    session(b"ada-session", "Ada.Alias@example.com");
    session(b"bob-session", "bob@example.com");
    let role = |hash: &[u8]| c.shared.store.session_role(hash, sightline_server::clock::now_ms()).unwrap();
    assert_eq!(role(b"ada-session").as_deref(), Some("admin"));

    let deactivate = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
    scim.ok("PATCH", &format!("/scim/v2/Users/{ada}"), Some(deactivate), 200);
    assert_eq!(role(b"ada-session"), None, "deactivation ends her SSO session");
    assert_eq!(role(b"bob-session").as_deref(), Some("admin"), "another person's session stays");

    scim.ok("DELETE", &format!("/scim/v2/Users/{bob}"), None, 204);
    assert_eq!(role(b"bob-session"), None, "deletion ends his SSO session");
    c.stop().await;
}
