//! Catalog updates end to end: the shipped collector and agent binaries as processes. An
//! admin installs a catalog naming a tool the built-in catalog lacks; the running agent gets
//! it over its open stream, verifies it with the collector key from enrollment, keeps it and
//! reports the tool at once; a catalog changed after signing is refused and the refusal is
//! visible on the collector (`catalog status`, the API); the kept catalog survives a restart.

use std::path::Path;
use std::time::Duration;

use prost::Message;
use sightline_proto::pb;
use sightline_tests::*;

/// A tool no built-in catalog entry names, installed where its catalog entry says.
const ACME: &str = r#"schema_version = 1
version = {VERSION}

[[tool]]
id = "acme_ai"
name = "Acme AI"
vendor = "Acme"
linux = [".acme/bin/acme-ai"]
source = "test fixture: a tool newer than the agent's release"
"#;

fn cli(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin("sightline-server"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}

/// `catalog status --json`, and this device's line of it.
fn status(data_dir: &Path, device: &str) -> (serde_json::Value, serde_json::Value) {
    let (ok, out) = cli(data_dir, &["catalog", "status", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = v["devices"].as_array().unwrap().iter().find(|d| d["device_id"] == device).cloned().unwrap();
    (v, d)
}

fn reports_acme(db: &Db, device: &str) -> bool {
    db.observations(device).iter().any(|o| o.kind == "app" && o.data["tool"] == "acme_ai")
}

#[test]
fn a_running_agent_takes_a_catalog_update_and_refuses_a_tampered_one() {
    let work = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_http(&work.path().join("data"), &[]);
    let data = server.data_dir.clone();
    let root = work.path().join("root");
    plant_claude_extension(&root, "alice");
    let acme = root.join("home/alice/.acme/bin");
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("acme-ai"), "#!/bin/sh\n").unwrap();

    // Resyncs an hour apart: what follows is the update's own rescan, not the schedule's.
    let mut agent = AgentProcess::enroll(&server, work.path(), &root, "resync_interval = \"1h\"\n");
    agent.start();
    let id = agent.device_id();
    let db = server.db();
    wait_for(Duration::from_secs(30), "the first resync", || {
        db.observations(&id).iter().any(|o| o.kind == "extension").then_some(())
    });
    assert!(!reports_acme(&db, &id), "the built-in catalog does not know Acme AI");
    let (all, mine) = status(&data, &id);
    let builtin = all["builtin_version"].as_u64().unwrap();
    assert_eq!(
        (all["served_version"].clone(), mine["version"].as_u64()),
        (serde_json::Value::Null, Some(builtin))
    );

    // An older or equal version is refused at install, before anything is signed.
    let file = work.path().join("acme.toml");
    std::fs::write(&file, ACME.replace("{VERSION}", &builtin.to_string())).unwrap();
    let (ok, out) = cli(&data, &["catalog", "install", file.to_str().unwrap()]);
    assert!(!ok && out.contains("not above"), "{out}");

    let v2 = builtin + 1;
    std::fs::write(&file, ACME.replace("{VERSION}", &v2.to_string())).unwrap();
    let (ok, out) = cli(&data, &["catalog", "install", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    wait_for(Duration::from_secs(30), "Acme AI reported under the new catalog", || {
        reports_acme(&db, &id).then_some(())
    });
    let pid = agent.child.as_ref().unwrap().id();
    assert!(agent.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the agent was not restarted");
    wait_for(Duration::from_secs(30), "the device's new catalog version", || {
        let (_, mine) = status(&data, &id);
        (mine["version"].as_u64() == Some(v2)).then_some(())
    });
    let (all, mine) = status(&data, &id);
    assert_eq!(all["served_version"].as_u64(), Some(v2));
    assert_eq!((mine["error"].clone(), mine["current"].clone()), (serde_json::Value::Null, true.into()));
    assert!(agent.state_dir.join("catalog.pb").exists(), "the agent keeps the update");

    // The API serves the same document (viewer token, as every read).
    let viewer = {
        let (ok, out) = cli(&data, &["api-token", "create", "--role", "viewer"]);
        assert!(ok, "{out}");
        out.trim().to_owned()
    };
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(data.join("ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {viewer}")])
        .arg(format!("{}/api/v1/catalog/status", server.api_url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let api: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(api, status(&data, &id).0);
    assert_eq!(api["served_verifies"], true);
    // The new tool is shown by the name its catalog entry gives, by the CLI as by the API.
    let (ok, out) = cli(&data, &["connectors", "--kind", "tool", "--json"]);
    assert!(ok, "{out}");
    let tools: serde_json::Value = serde_json::from_str(&out).unwrap();
    let acme_tool = tools.as_array().unwrap().iter().find(|c| c["key"] == "tool:acme_ai").cloned();
    assert_eq!(acme_tool.map(|c| c["display_name"].clone()), Some("Acme AI".into()), "{out}");

    // Changed after signing: a newer version and another tool under the old signature, as an
    // attacker with write access to the collector's disk (but not its key) could do.
    let path = data.join("catalog.pb");
    let mut signed = pb::CatalogUpdate::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    let forged = String::from_utf8(signed.payload.clone())
        .unwrap()
        .replace(&format!("version = {v2}"), &format!("version = {}", v2 + 1))
        + "\n[[tool]]\nid = \"evil_ai\"\nname = \"Evil\"\nvendor = \"x\"\nlinux = [\".acme\"]\nsource = \"x\"\n";
    signed.payload = forged.into_bytes();
    let tmp = data.join("catalog.pb.new");
    std::fs::write(&tmp, signed.encode_to_vec()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let refused = wait_for(Duration::from_secs(30), "the refusal on the collector", || {
        let (_, mine) = status(&data, &id);
        mine["error"].as_str().map(str::to_owned)
    });
    assert!(refused.contains(&format!("version {}", v2 + 1)) && refused.contains("signature"), "{refused}");
    let (_, mine) = status(&data, &id);
    assert_eq!(mine["version"].as_u64(), Some(v2), "the agent still runs the last good catalog");
    let (ok, text) = cli(&data, &["catalog", "status"]);
    assert!(
        ok && text.contains("refused:") && text.contains(&format!("Serving catalog version {}", v2 + 1)),
        "{text}"
    );
    assert!(text.contains("does NOT verify"), "the collector says its own file is broken: {text}");
    assert_eq!(status(&data, &id).0["served_verifies"], false);
    assert!(agent.log_text().contains("Catalog update refused"), "{}", agent.log_text());

    // Restarted, the agent runs the kept version (the built-in one would forget Acme AI and
    // report it gone) and is refused the tampered one again.
    let (exit, _) = agent.terminate(Duration::from_secs(15));
    assert!(exit.success());
    let before = db.observations(&id).len();
    agent.start();
    assert_ne!(agent.child.as_ref().unwrap().id(), pid);
    wait_for(Duration::from_secs(30), "the restarted agent's resync", || {
        (db.observations(&id).len() > before + 1).then_some(())
    });
    wait_for(Duration::from_secs(30), "the restarted agent's catalog status", || {
        let (_, mine) = status(&data, &id);
        (mine["version"].as_u64() == Some(v2)
            && mine["error"].as_str().is_some_and(|e| e.contains("signature")))
        .then_some(())
    });
    let gone = db.observations(&id).iter().any(|o| o.data["tool"] == "acme_ai" && o.change == "disappeared");
    assert!(!gone, "Acme AI was reported gone after the restart");
    assert!(!db.observations(&id).iter().any(|o| o.data["tool"] == "evil_ai"), "the forged tool was used");
}
