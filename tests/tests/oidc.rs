//! Dashboard sign-in with OpenID Connect against a real provider: panva's `oidc-provider`
//! (`tests/browser/provider.mjs`) on loopback, driven in Debian's Chromium by playwright-core
//! (`tests/browser/oidc.mjs`): an admin signs in through the provider's login and consent
//! pages and out again, a person in no mapped group is refused, a replayed callback is
//! refused, and the API-token form still works. Screenshots land in `target/screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use sightline_server::oidc::{Oidc, OidcConfig};
use sightline_tests::*;

/// The provider process, killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
    log: tempfile::NamedTempFile,
    /// Held open: the provider must not find its stdout closed.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Provider {
    fn start(browser_dir: &Path, redirect: &str, secret: &str) -> Provider {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("node")
            .arg(browser_dir.join("provider.mjs"))
            .env("SIGHTLINE_REDIRECT", redirect)
            .env("OIDC_CLIENT_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let Some(issuer) = line.trim().strip_prefix("issuer ").map(str::to_owned) else {
            child.kill().ok();
            panic!(
                "the provider did not start: {line:?} {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        };
        Provider { child, issuer, log, _stdout: stdout }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_sso_through_a_real_openid_provider() {
    let browser_dir = browser_dir(&["playwright-core", "oidc-provider"]);
    let secret = hex::encode(sightline_server::tokens::random(24).unwrap());
    let mut provider = None;
    let c = Collector::start_prepared_by(|api_url, app| {
        let p = tokio::task::block_in_place(|| {
            Provider::start(&browser_dir, &format!("{api_url}/ui/oidc/callback"), &secret)
        });
        let config = OidcConfig {
            issuer: p.issuer.clone(),
            client_id: "sightline".into(),
            client_secret: Some(secret.clone()),
            redirect_url: format!("{api_url}/ui/oidc/callback"),
            scopes: "openid email groups".into(),
            groups_claim: "groups".into(),
            admin_groups: vec!["sightline-admins".into()],
            viewer_groups: vec!["sightline-viewers".into()],
            allow_http: true,
            roots: Vec::new(),
        };
        app.oidc = Some(Arc::new(Oidc::new(config).unwrap()));
        provider = Some(p);
    })
    .await;
    let provider = provider.expect("the provider started");
    let admin = c.api_token("admin");

    let (ok, log) = tokio::task::block_in_place(|| {
        run_browser(
            "oidc.mjs",
            &[
                ("SIGHTLINE_URL", &c.api_url),
                ("SIGHTLINE_ISSUER", &provider.issuer),
                ("SIGHTLINE_ADMIN", &admin),
            ],
        )
    });
    assert!(
        ok,
        "the browser run failed:\n{log}\nprovider log:\n{}",
        std::fs::read_to_string(provider.log.path()).unwrap_or_default()
    );
    for page in ["sso-provider-login", "sso-signed-in", "sso-refused", "sso-login"] {
        assert!(screenshots().join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
    c.stop().await;
}

/// The shipped binary with the `--oidc-*` flags: "Sign in with SSO" is offered, and
/// `/ui/oidc/login` sends the browser to the provider's authorization endpoint (found by
/// discovery) with the code flow's parameters and a login cookie that survives the
/// provider's cross-site redirect back.
#[test]
fn the_serve_flags_configure_the_provider() {
    let browser_dir = browser_dir(&["oidc-provider"]);
    let redirect = "https://127.0.0.1:8444/ui/oidc/callback";
    let provider = Provider::start(&browser_dir, redirect, "s3cret");
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("client-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let data = work.path().join("data");
    let secret = secret.to_str().unwrap();
    let server = ServerProcess::start_http(
        &data,
        &[
            "--oidc-issuer",
            &provider.issuer,
            "--oidc-allow-http",
            "--oidc-client-id",
            "sightline",
            "--oidc-client-secret-file",
            secret,
            "--oidc-redirect-url",
            redirect,
            "--oidc-admin-group",
            "sightline-admins",
        ],
    );
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--cacert"])
            .arg(data.join("ca.pem"))
            .arg(format!("{}{path}", server.api_url()))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(curl("/ui/oidc").ends_with(r#"{"enabled":true}"#));
    let answer = curl("/ui/oidc/login");
    let header = |name: &str| {
        answer
            .lines()
            .find_map(|l| {
                l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
            })
            .unwrap_or_else(|| panic!("no {name} in {answer}"))
            .to_owned()
    };
    let status =
        |a: &str| a.lines().next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned();
    assert_eq!(status(&answer), "303", "{answer}");
    let location = header("location");
    assert!(location.starts_with(&format!("{}/auth?", provider.issuer)), "{location}");
    for part in [
        "response_type=code",
        "client_id=sightline",
        "code_challenge_method=S256",
        "redirect_uri=https%3A%2F%2F127.0.0.1%3A8444%2Fui%2Foidc%2Fcallback",
        "scope=openid%20email%20profile",
    ] {
        assert!(location.contains(part), "{part} missing from {location}");
    }
    for part in ["state=", "nonce=", "code_challenge="] {
        assert!(location.contains(part), "{part} missing from {location}");
    }
    let cookie = header("set-cookie");
    assert!(
        cookie.starts_with("sightline_oidc=") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
    // A callback without that cookie is refused, not signed in.
    let refused = curl("/ui/oidc/callback?code=x&state=y");
    assert!(status(&refused) == "400" && refused.contains("Sign-in expired"), "{refused}");
}
