//! Golden documents: the JSON the HTTP API answers and the CLI's `--json` prints for a fixed
//! fleet, pinned byte for byte in `tests/data/golden/`, so a refactor of the HTTP edge or of
//! the query layer cannot change a field, its order, its type or a `null` unnoticed.
//!
//! `SIGHTLINE_UPDATE_GOLDEN=1` rewrites the files; a diff in review is then the change of
//! contract, on purpose or not.
//!
//! What varies from run to run, and only that, is normalised before comparing:
//! - identifiers drawn at random (device ids and key ids from fresh device keys, token ids and
//!   tokens, the SCIM person id, directive ids, the collector-keyed token fingerprints) are
//!   replaced by `<field-N>`, numbered in order of first appearance;
//! - instants of the test run itself (enrollment, last seen, `now`), and days of the 30-day
//!   trend, are `"<recent>"`; the fleet's reported times are fixed (January 2026) and kept;
//! - `clock_skew_ms`, the few milliseconds between agent and collector clocks, is 0.
//!
//! Everything else (field order, nulls, numbers, nesting) is compared as served.

use std::path::PathBuf;
use std::time::Duration;

use sightline_proto::envelope::GENESIS_HASH;
use sightline_proto::pb::{self, observation::Item};
use sightline_tests::*;

/// A fixed instant of the fleet's history: 2026-01-15T08:00:00Z.
const T0: i64 = 1_768_464_000_000;
const INSIDE: &str = "2026-01-15T08:30:00Z";
const EXTENSION: &str = "extension:bgnkhhnnamicmpeenaelnjfhikgbkllg";
const FINGERPRINT: &str = "4f5e6d7c8b9a0f1e2d3c4b5a69788796";
const POLICY: &str = "[groups]\nresearch = [\"alice@example.com\"]\n[approved]\ntools = [\"github_copilot\"]\n\
                      providers = [\"anthropic\"]\n[approved.groups.research]\nproviders = [\"openai\"]\n\
                      [identity]\nrules = [\"email_local_part\"]\n";

/// A collector with a small fleet: alice provisioned through SCIM, her laptop reporting a
/// session, an extension and a token at fixed times, bob's laptop holding the same token, a
/// third laptop scanned from the Linux fixture tree, and an Okta sign-in.
pub(crate) struct Fleet {
    pub c: Collector,
    pub viewer: String,
    pub admin: String,
    pub ingest: String,
    pub scim: String,
    /// Alice's laptop.
    pub a: Agent,
    /// Bob's laptop, holding alice's token too.
    pub b: Agent,
    /// A laptop scanned from the Linux fixture tree by the real agent.
    pub scanned: Agent,
    /// A connector of the second laptop, decided `approved`.
    pub tool: String,
}

impl Fleet {
    pub(crate) async fn start() -> Fleet {
        // Lists order devices by hostname (fixed below) or by enrollment, but a token's
        // places, the holders of a shared one and a person's devices by device id, which is
        // random: the ids must sort as the devices were enrolled for the documents to be the
        // same every run, so a fleet whose ids do not is started again.
        let (c, a, b, scanned) = loop {
            let c = Collector::start_with_fingerprint_key(POLICY, [7; 32]).await;
            let (a, b, s) = (enroll(&c).await, enroll(&c).await, enroll(&c).await);
            if a.device_id < b.device_id && b.device_id < s.device_id {
                break (c, a, b, s);
            }
            c.stop().await;
        };
        // Apart in time: token lists are ordered by creation, then by a hash of the token.
        let mut tokens = Vec::new();
        for role in ["scim", "viewer", "admin", "ingest"] {
            tokens.push(c.api_token(role));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let [scim, viewer, admin, ingest] = <[String; 4]>::try_from(tokens).unwrap();

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
            started_at_ms: T0,
        });
        let ext = Item::Extension(pb::ExtensionItem {
            tool: None,
            user: Some("alice".into()),
            browser: "chrome".into(),
            profile: "Default".into(),
            extension_id: "bgnkhhnnamicmpeenaelnjfhikgbkllg".into(),
            name: "AI Sidebar".into(),
            path: "/home/alice/.config/google-chrome/Default/Extensions/bgnkhhnnamicmpeenaelnjfhikgbkllg"
                .into(),
            signals: vec!["host:api.openai.com".into()],
            ..Default::default()
        });
        // The laptops' own names, not the test machine's.
        let inventory = |hostname: &str, user: &str| {
            Item::DeviceInventory(pb::DeviceInventory {
                hostname: hostname.into(),
                os: "linux".into(),
                os_version: "Debian GNU/Linux 12 (bookworm)".into(),
                agent_version: "0.1.0".into(),
                serial: None,
                users: vec![user.into()],
            })
        };
        let token = |user: &str| openai_token(user, FINGERPRINT);
        let (batch, head) = a.batch_of(
            1,
            GENESIS_HASH,
            vec![
                obs(pb::Change::Snapshot, T0 + 1_000, inventory("alice-laptop", "alice")),
                obs(pb::Change::Snapshot, T0 + 1_000, session.clone()),
                obs(pb::Change::Snapshot, T0 + 1_000, ext),
                obs(pb::Change::Snapshot, T0 + 1_000, token("alice")),
            ],
        );
        let (later, _) = a.batch_of(5, head, vec![obs(pb::Change::Disappeared, T0 + 3_600_000, session)]);
        for r in a.send(vec![batch, later]).await {
            r.unwrap();
        }
        let (batch, _) = b.batch_of(
            1,
            GENESIS_HASH,
            vec![
                obs(pb::Change::Snapshot, T0 + 2_000, inventory("bob-laptop", "bob")),
                obs(pb::Change::Snapshot, T0 + 2_000, token("bob")),
            ],
        );
        for r in b.send(vec![batch]).await {
            r.unwrap();
        }
        scanned.run_once(&fixtures().join("linux")).await.unwrap();

        let fleet = Fleet { c, viewer, admin, ingest, scim, a, b, scanned, tool: String::new() };
        let alice = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","emails":[{"value":"alice@example.com","primary":true}],"active":true}"#;
        let (code, _) = fleet.call("POST", "/scim/v2/Users", &fleet.scim, Some(alice));
        assert_eq!(code, 201);
        let okta = r#"[{"uuid":"7f3c2b2e-1111-11ef-9a9a-3b1d2c4e5f60","published":"2026-01-15T07:58:12.345Z","eventType":"user.session.start",
          "actor":{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice Ng"},
          "client":{"ipAddress":"198.51.100.7","device":"Computer"},"outcome":{"result":"SUCCESS"},
          "target":[{"type":"AppInstance","displayName":"Okta Dashboard"}]}]"#;
        let (code, _) = fleet.call("POST", "/api/v1/signins/okta", &fleet.ingest, Some(okta));
        assert_eq!(code, 200);
        let (_, list) = fleet.call("GET", "/api/v1/connectors?kind=tool", &fleet.viewer, None);
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let tool = list[0]["key"].as_str().expect("the Linux fixture has a tool").to_owned();
        Fleet { tool, ..fleet }
    }

    /// One API call through curl: (status, the body exactly as served).
    pub(crate) fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
        let (c, method, path, token, body) =
            (&self.c, method.to_owned(), path.to_owned(), token.to_owned(), body.map(str::to_owned));
        tokio::task::block_in_place(move || {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sS", "-X", &method, "-w", "\n%{http_code}", "--cacert"])
                .arg(c.data_dir.path().join("ca.pem"))
                .args(["-H", &format!("Authorization: Bearer {token}")]);
            if let Some(b) = body {
                cmd.args(["-H", "Content-Type: application/json", "--data-binary", &b]);
            }
            let out = cmd.arg(format!("{}{path}", c.api_url)).output().unwrap();
            assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8(out.stdout).unwrap();
            let (body, code) = text.rsplit_once('\n').unwrap();
            (code.parse().unwrap(), body.to_owned())
        })
    }

    /// The collector's command line on the fleet's data dir: stdout exactly as printed.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(bin("sightline-server"))
            .args(args)
            .arg("--data-dir")
            .arg(self.c.data_dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The read operations, as (golden name, path): every GET of the API with a JSON body.
    pub(crate) fn reads(&self) -> Vec<(&'static str, String)> {
        let (a, b, s) = (&self.a.device_id, &self.b.device_id, &self.scanned.device_id);
        vec![
            ("api-health", "/api/v1/health".into()),
            ("api-session", "/api/v1/session".into()),
            ("api-devices", "/api/v1/devices".into()),
            ("api-devices-page", "/api/v1/devices?limit=1&offset=1".into()),
            ("api-device-a", format!("/api/v1/devices/{a}")),
            ("api-device-b", format!("/api/v1/devices/{b}")),
            ("api-device-scanned", format!("/api/v1/devices/{s}")),
            ("api-connectors", "/api/v1/connectors".into()),
            ("api-connectors-token", "/api/v1/connectors?kind=token".into()),
            ("api-connector-extension", format!("/api/v1/connectors/{EXTENSION}")),
            ("api-connector-tool", format!("/api/v1/connectors/{}", self.tool)),
            ("api-triage-connector", format!("/api/v1/triage/connector/{EXTENSION}")),
            ("api-triage-token", format!("/api/v1/triage/token/{FINGERPRINT}")),
            ("api-triage-device-a", format!("/api/v1/triage/device/{a}?at={INSIDE}")),
            ("api-triage-device-scanned", format!("/api/v1/triage/device/{s}")),
            ("api-triage-user", format!("/api/v1/triage/user/alice@example.com?at={INSIDE}")),
            ("api-findings", "/api/v1/findings".into()),
            ("api-person", "/api/v1/people/alice@example.com".into()),
            ("api-views-overview", "/api/v1/views/overview".into()),
            ("api-views-devices", "/api/v1/views/devices".into()),
            ("api-views-connectors", "/api/v1/views/connectors?sort=kind".into()),
            ("api-views-findings", "/api/v1/views/findings".into()),
            ("api-views-people", "/api/v1/views/people".into()),
            ("api-tokens-api", "/api/v1/tokens/api".into()),
            ("api-tokens-enrollment", "/api/v1/tokens/enrollment".into()),
            ("api-catalog-status", "/api/v1/catalog/status".into()),
        ]
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/golden")
}

/// Replaces what varies run to run (see the module's comment); `ids` maps each random
/// identifier seen to its placeholder.
fn normalise(text: &str, ids: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (value, placeholder) in ids {
        out = out.replace(value.as_str(), placeholder);
    }
    let today =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    let instant = regex::Regex::new(r#""(\d{4})-(\d{2})-(\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?""#).unwrap();
    let out = instant.replace_all(&out, |c: &regex::Captures<'_>| {
        let n = |i: usize| c[i].parse::<i64>().unwrap();
        let day = days_from_civil(n(1), n(2), n(3));
        if (day - today as i64).abs() <= 40 { "\"<recent>\"".to_owned() } else { c[0].to_owned() }
    });
    let skew = regex::Regex::new(r#""clock_skew_ms":( ?)-?\d+"#).unwrap();
    skew.replace_all(&out, "\"clock_skew_ms\":${1}0").into_owned()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Random identifiers in the documents, in order of first appearance, each with its
/// placeholder: the same run always numbers them the same way.
fn random_ids(docs: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    const FIELDS: &[&str] =
        &["device_id", "key_id", "hardware_id", "directive_id", "id", "token", "fingerprint", "also_revoked"];
    let mut seen: Vec<(String, String)> = Vec::new();
    let add = |field: &str, v: &str, seen: &mut Vec<(String, String)>| {
        if v.len() >= 6 && !seen.iter().any(|(s, _)| s == v) {
            let n = seen.iter().filter(|(_, p)| p.starts_with(&format!("<{field}-"))).count() + 1;
            seen.push((v.to_owned(), format!("<{field}-{n}>")));
        }
    };
    for (field, v) in extra {
        add(field, v, &mut seen);
    }
    fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&str, &str)) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if FIELDS.contains(&k.as_str()) {
                        match v {
                            serde_json::Value::String(s) => f(k, s),
                            serde_json::Value::Array(a) => {
                                a.iter().filter_map(|x| x.as_str()).for_each(|s| f(k, s))
                            }
                            _ => {}
                        }
                    }
                    walk(v, f);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    for (_, text) in docs {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            walk(&v, &mut |k, s| add(k, s, &mut seen));
        }
    }
    // Longest first, so no identifier is replaced inside a longer one.
    seen.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn api_and_cli_json_are_the_golden_documents() {
    let f = Fleet::start().await;
    let mut docs: Vec<(String, String)> = Vec::new();
    let take = |docs: &mut Vec<(String, String)>, name: &str, (code, body): (u16, String)| {
        assert_eq!(code, 200, "{name}: {body}");
        docs.push((format!("{name}.json"), body));
    };

    // Changes first, so the reads below see their effect.
    take(
        &mut docs,
        "api-revoke-connector",
        f.call(
            "POST",
            &format!("/api/v1/connectors/{EXTENSION}/revoke"),
            &f.admin,
            Some(r#"{"reason":"golden"}"#),
        ),
    );
    take(
        &mut docs,
        "api-set-status",
        f.call(
            "POST",
            &format!("/api/v1/connectors/{}/status", f.tool),
            &f.admin,
            Some(r#"{"status":"approved"}"#),
        ),
    );
    take(
        &mut docs,
        "api-create-enrollment-token",
        f.call("POST", "/api/v1/tokens/enrollment", &f.admin, Some(r#"{"name":"rollout","ttl":"2h"}"#)),
    );
    take(
        &mut docs,
        "api-create-api-token",
        f.call("POST", "/api/v1/tokens/api", &f.admin, Some(r#"{"role":"viewer","name":"grafana"}"#)),
    );
    for (name, path) in f.reads() {
        let token = if name.starts_with("api-tokens") { &f.admin } else { &f.viewer };
        take(&mut docs, name, f.call("GET", &path, token, None));
    }

    let (a, b, s) = (f.a.device_id.clone(), f.b.device_id.clone(), f.scanned.device_id.clone());
    for (name, args) in [
        ("cli-devices", vec!["devices", "--json"]),
        ("cli-device-a", vec!["device", &a, "--json"]),
        ("cli-device-scanned", vec!["device", &s, "--json"]),
        ("cli-connectors", vec!["connectors", "--json"]),
        ("cli-connectors-token", vec!["connectors", "--kind", "token", "--json"]),
        ("cli-findings", vec!["findings", "--json"]),
        ("cli-triage-device", vec!["triage", "--device", &a, "--at", INSIDE, "--json"]),
        ("cli-triage-user", vec!["triage", "--user", "alice@example.com", "--at", INSIDE, "--json"]),
        ("cli-triage-connector", vec!["triage", "--connector", EXTENSION, "--json"]),
        ("cli-triage-token", vec!["triage", "--token", FINGERPRINT, "--json"]),
        ("cli-token-list", vec!["token", "list", "--json"]),
        ("cli-api-token-list", vec!["api-token", "list", "--json"]),
        ("cli-catalog-status", vec!["catalog", "status", "--json"]),
    ] {
        let out = tokio::task::block_in_place(|| f.cli(&args));
        docs.push((format!("{name}.json"), out));
    }

    // Last, as they end what the reads looked at.
    take(
        &mut docs,
        "api-withdraw-revocation",
        f.call("DELETE", &format!("/api/v1/connectors/{EXTENSION}/revoke"), &f.admin, None),
    );
    take(
        &mut docs,
        "api-revoke-device",
        f.call("POST", &format!("/api/v1/devices/{b}/revoke"), &f.admin, None),
    );

    // The CLI prints what the API serves (pretty, where the API is compact).
    let doc = |name: &str| -> serde_json::Value {
        let (_, text) = docs.iter().find(|(n, _)| n == &format!("{name}.json")).unwrap();
        serde_json::from_str(text).unwrap()
    };
    for (api, cli) in [
        ("api-devices", "cli-devices"),
        ("api-device-a", "cli-device-a"),
        ("api-device-scanned", "cli-device-scanned"),
        ("api-connectors", "cli-connectors"),
        ("api-connectors-token", "cli-connectors-token"),
        ("api-findings", "cli-findings"),
        ("api-triage-device-a", "cli-triage-device"),
        ("api-triage-user", "cli-triage-user"),
        ("api-triage-connector", "cli-triage-connector"),
        ("api-triage-token", "cli-triage-token"),
        ("api-catalog-status", "cli-catalog-status"),
    ] {
        assert_eq!(doc(api), doc(cli), "{api} and {cli} differ");
    }

    let ids = random_ids(&docs, &[("device_id", &a), ("device_id", &b), ("device_id", &s)]);
    let dir = golden_dir();
    let update = std::env::var_os("SIGHTLINE_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut wrong = Vec::new();
    for (name, text) in &docs {
        let got = normalise(text, &ids);
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            wrong.push(format!("{name}:\n  want {want}\n  got  {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "documents differ from tests/data/golden (SIGHTLINE_UPDATE_GOLDEN=1 rewrites them):\n{}",
        wrong.join("\n")
    );
    f.c.stop().await;
}
