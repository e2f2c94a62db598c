//! The shipped collector binary as a stack for end-to-end tests: its HTTP API on a loopback
//! port, its CLI against the data dir or the API, and curl as a third-party HTTP client.

use std::time::Duration;

use crate::{ServerProcess, bin, wait_for};

/// A collector binary with its HTTP API on another loopback port.
pub struct Stack {
    pub server: ServerProcess,
    pub http: u16,
    _work: tempfile::TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with_policy("")
    }

    /// With `policy` as the data dir's policy.toml (empty: none).
    pub fn start_with_policy(policy: &str) -> Stack {
        Stack::start_with(policy, &[])
    }

    /// With `policy` and extra `serve` flags.
    pub fn start_with(policy: &str, serve: &[&str]) -> Stack {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        if !policy.is_empty() {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("policy.toml"), policy).unwrap();
        }
        let server = ServerProcess::start_http(&data, serve);
        let http = server.http_port.unwrap();
        Stack { server, http, _work: work }
    }

    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = std::process::Command::new(bin("sightline-server"));
        cmd.args(args).arg("--data-dir").arg(&self.server.data_dir);
        outcome(cmd)
    }

    /// A query command against the HTTP API (`--server`), with `token` in the environment.
    pub fn remote_cli(&self, args: &[&str], token: &str) -> (bool, String) {
        let mut cmd = std::process::Command::new(bin("sightline-server"));
        cmd.args(args)
            .args(["--server", &format!("https://127.0.0.1:{}", self.http), "--ca"])
            .arg(self.server.data_dir.join("ca.pem"))
            .env("SIGHTLINE_API_TOKEN", token);
        outcome(cmd)
    }

    pub fn api_token(&self, role: &str) -> String {
        let (ok, out) = self.cli(&["api-token", "create", "--role", role]);
        assert!(ok, "{out}");
        out.trim().to_owned()
    }

    /// (status, JSON body) of one API call through curl.
    pub fn api(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "--cacert"])
            .arg(self.server.data_dir.join("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.arg(format!("https://127.0.0.1:{}{path}", self.http)).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }

    /// The connector as the API shows it, once `done` holds for it.
    pub fn connector_when(
        &self,
        key: &str,
        token: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(Duration::from_secs(40), what, || {
            let (code, v) = self.api("GET", &format!("/api/v1/connectors/{key}"), token, None);
            (code == 200 && done(&v)).then_some(v)
        })
    }
}

/// Whether a command succeeded, and its stdout alone when it did (scripts parse it), with
/// stderr when it did not.
pub fn outcome(mut cmd: std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}
