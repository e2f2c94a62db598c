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
