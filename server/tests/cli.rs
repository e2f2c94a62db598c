//! The collector's command line on an empty data dir: clear errors and empty listings.

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sightline-server"))
}

#[test]
fn queries_on_an_empty_data_dir() {
    let d = tempfile::tempdir().unwrap();
    let out = server().args(["devices", "--json", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
    let out = server().args(["connectors", "--data-dir"]).arg(d.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No connectors reported yet.\n");
    let out = server().args(["device", "dev_missing", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device dev_missing"));
}

/// A mistyped `--data-dir` is named, and nothing is created there: only `serve` makes one.
#[test]
fn commands_refuse_a_data_dir_that_does_not_exist() {
    let d = tempfile::tempdir().unwrap();
    let typo = d.path().join("sightline-typo");
    for args in [
        &["devices", "--json"][..],
        &["connectors"],
        &["findings"],
        &["token", "create"],
        &["api-token", "list"],
        &["revoke", "tool:cursor"],
        &["prune", "--keep", "400d"],
    ] {
        let out = server().args(args).arg("--data-dir").arg(&typo).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on a missing data dir");
        assert!(err.contains(&format!("data dir {} does not exist", typo.display())), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

#[test]
fn serve_without_dev_and_without_a_ca_explains_itself() {
    let d = tempfile::tempdir().unwrap();
    let out =
        server().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dev"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn token_create_prints_only_the_token() {
    let d = tempfile::tempdir().unwrap();
    let out =
        server().args(["token", "create", "--ttl", "10m", "--data-dir"]).arg(d.path()).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("slt_") && s.ends_with('\n') && s.trim().len() == 36, "{s:?}");
}

#[test]
fn api_tokens_and_triage_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let out = server()
        .args(["api-token", "create", "--role", "viewer", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("sla_") && s.ends_with('\n') && !s.trim().contains(char::is_whitespace), "{s:?}");

    let out = server()
        .args(["api-token", "create", "--role", "root", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("viewer, admin, scim, ingest"));

    let out = server()
        .args(["triage", "--device", "dev_x", "--at", "yesterday", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a time"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server()
        .args(["triage", "--device", "dev_x", "--at", "now", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device dev_x"));
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn tokens_are_listed_and_revoked_without_being_shown_again() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| server().args(args).arg("--data-dir").arg(d.path()).output().unwrap();
    let enroll = run(&["token", "create", "--name", "rollout-42"]);
    let enroll = String::from_utf8(enroll.stdout).unwrap().trim().to_owned();
    let api = run(&["api-token", "create", "--role", "viewer", "--name", "grafana", "--ttl", "90d"]);
    let api = String::from_utf8(api.stdout).unwrap().trim().to_owned();

    let list = run(&["token", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!((v[0]["name"].as_str(), v[0]["state"].as_str()), (Some("rollout-42"), Some("active")));
    let enroll_id = v[0]["id"].as_str().unwrap().to_owned();
    let list = run(&["api-token", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!((v[0]["role"].as_str(), v[0]["name"].as_str()), (Some("viewer"), Some("grafana")));
    assert!(v[0]["expires_at"].is_string(), "{v}");
    let api_id = v[0]["id"].as_str().unwrap().to_owned();
    for listing in [run(&["token", "list"]), run(&["api-token", "list"])] {
        let t = text(&listing);
        assert!(listing.status.success() && !t.contains(&enroll) && !t.contains(&api), "{t}");
        assert!(t.contains(&enroll_id[..6]) || t.contains(&api_id[..6]), "{t}");
    }

    let out = run(&["api-token", "revoke", &api_id[..8]]);
    assert!(
        out.status.success() && text(&out).contains(&format!("revoked API token {api_id}")),
        "{}",
        text(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&["api-token", "list", "--json"]).stdout).unwrap();
    assert_eq!(v[0]["state"], "revoked");
    let out = run(&["token", "revoke", &enroll_id]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&run(&["token", "list", "--json"]).stdout).unwrap();
    assert_eq!(v[0]["state"], "revoked");
    let out = run(&["token", "revoke", "abc"]);
    assert!(!out.status.success() && text(&out).contains("hex digits"), "{}", text(&out));
    let out = run(&["token", "revoke", "000000"]);
    assert!(!out.status.success() && text(&out).contains("no token"), "{}", text(&out));
}

#[test]
fn database_passwords_never_reach_an_error() {
    let d = tempfile::tempdir().unwrap();
    for url in [
        "postgres://sl:userinfo-s3cret@127.0.0.1:1/db",
        "postgres://sl@127.0.0.1:1/db?password=query-s3cret",
        "postgres://sl@127.0.0.1:1/db?password=query-s3cret&sslmode=bogus",
    ] {
        let out = server().args(["devices", "--database", url, "--data-dir"]).arg(d.path()).output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(!t.contains("s3cret"), "{url}: {t}");
        assert!(t.contains("***"), "the error says which database, redacted: {t}");
    }
}
