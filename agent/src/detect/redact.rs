//! Redaction of command lines and URLs before they leave the device.
//!
//! MCP server definitions carry secrets in argv in many shapes: after a secret-named flag
//! (`--api-key sk-…`, `--jira-token=…`), in a header handed to a proxy (`mcp-remote URL
//! --header "Authorization: Bearer …"`), as `NAME=secret` (`-e TOKEN=…`), inside a value
//! (`--config=token=…`), in URLs (`https://x/mcp/<key>/sse`, `?api_key=…`, `user:pass@`), or
//! as a bare random string. What is reported keeps the shape an admin needs and loses the
//! secret; every secret taken out is returned too, so the detector can report it as a
//! credential of the server (fingerprinted, never the value).

use super::tokens::{high_entropy, is_placeholder, looks_secret, scan_text, secret_like_name};
use crate::catalog::Catalog;
use crate::secret::Secret;

pub(crate) const REDACTED: &str = "[REDACTED]";

/// Flags whose value is an HTTP header (`Name: value`).
const HEADER_FLAGS: &[&str] = &["header", "headers", "h", "http-header", "extra-header", "add-header"];

/// Flags whose value is `user:password` (curl's `-u`, proxies).
const USERINFO_FLAGS: &[&str] = &["u", "user", "basic-auth", "proxy-user", "credentials"];

/// Authorization schemes whose parameter is the credential.
const AUTH_SCHEMES: &[&str] = &["Bearer", "Basic", "Token", "Bot", "ApiKey", "Api-Key", "Key", "Digest"];

/// A command line as it may be reported, and the secrets taken out of it, each with the
/// index of the argument that held it.
#[derive(Debug, Default)]
pub(crate) struct Redacted {
    pub shown: String,
    pub secrets: Vec<(usize, Secret)>,
}

/// What one argument needs redacting because of the one before it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    Secret,
    Header,
    Userinfo,
}

/// Redacts an argv list and joins it into one display string.
pub(crate) fn command_line(catalog: &Catalog, argv: &[String]) -> Redacted {
    let mut out = Redacted::default();
    let mut shown = Vec::with_capacity(argv.len());
    let mut next = Next::Plain;
    for (i, arg) in argv.iter().enumerate() {
        let mut found = Vec::new();
        let s = match std::mem::replace(&mut next, Next::Plain) {
            // A secret may itself begin with `-`; only a long option ends the flag's value.
            Next::Secret if !arg.starts_with("--") => {
                if real(catalog, arg) {
                    found.push(arg.clone());
                }
                REDACTED.to_owned()
            }
            Next::Header => header(catalog, arg, &mut found),
            Next::Userinfo if !arg.starts_with("--") => userinfo(catalog, arg, &mut found),
            _ => match arg.strip_prefix('-') {
                Some(flag) => {
                    let flag_name = flag.trim_start_matches('-');
                    match flag_name.split_once('=') {
                        Some((name, v)) if is_header_flag(name) => {
                            format!("{}={}", &arg[..arg.len() - v.len() - 1], header(catalog, v, &mut found))
                        }
                        Some((name, v)) if is_userinfo_flag(name) => {
                            format!(
                                "{}={}",
                                &arg[..arg.len() - v.len() - 1],
                                userinfo(catalog, v, &mut found)
                            )
                        }
                        Some((name, v)) if secret_like_name(name) && !v.is_empty() => {
                            if real(catalog, v) {
                                found.push(v.to_owned());
                            }
                            format!("{}={REDACTED}", &arg[..arg.len() - v.len() - 1])
                        }
                        Some((_, v)) => {
                            format!(
                                "{}={}",
                                &arg[..arg.len() - v.len() - 1],
                                value_into(catalog, v, &mut found)
                            )
                        }
                        None if is_header_flag(flag_name) => {
                            next = Next::Header;
                            arg.clone()
                        }
                        None if is_userinfo_flag(flag_name) => {
                            next = Next::Userinfo;
                            arg.clone()
                        }
                        None if secret_like_name(flag_name) => {
                            next = Next::Secret;
                            arg.clone()
                        }
                        None => arg.clone(),
                    }
                }
                None => value_into(catalog, arg, &mut found),
            },
        };
        shown.push(s);
        out.secrets.extend(found.into_iter().map(|v| (i, Secret::new(v))));
    }
    out.shown = shown.join(" ");
    out
}

fn is_header_flag(name: &str) -> bool {
    HEADER_FLAGS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn is_userinfo_flag(name: &str) -> bool {
    USERINFO_FLAGS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// `user:password` → `user:[REDACTED]`; a value without `:` as any other value.
fn userinfo(catalog: &Catalog, v: &str, found: &mut Vec<String>) -> String {
    match v.split_once(':') {
        Some((user, pass)) if !pass.is_empty() => {
            if real(catalog, pass) {
                found.push(pass.to_owned());
            }
            format!("{user}:{REDACTED}")
        }
        _ => value_into(catalog, v, found),
    }
}

/// A JSON argument (`--config '{"password": "…"}'`): every string under a secret-sounding
/// key, of a key format, or random, is taken out; the rest keeps its shape.
fn json_value(catalog: &Catalog, v: &mut serde_json::Value, key: Option<&str>, found: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let secret = key.is_some_and(secret_like_name)
                || !scan_text(catalog, s).is_empty()
                || high_entropy(catalog, s);
            if secret && real(catalog, s) {
                found.push(std::mem::replace(s, REDACTED.to_owned()));
            } else if s.contains("://") {
                let (shown, taken) = redact_url(catalog, s);
                found.extend(taken.into_iter().map(|(_, t)| t));
                *s = shown;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| json_value(catalog, x, key, found)),
        Value::Object(o) => o.iter_mut().for_each(|(k, x)| json_value(catalog, x, Some(k), found)),
        _ => {}
    }
}

/// A value worth reporting: not empty, not a placeholder or a `$VAR` reference.
fn real(catalog: &Catalog, v: &str) -> bool {
    !v.trim().is_empty() && !is_placeholder(catalog, v.trim())
}

/// Redacts one free-standing value — key formats, `NAME=secret`, headers, `Bearer x`, URLs,
/// random strings — collecting what was taken out.
fn value_into(catalog: &Catalog, v: &str, found: &mut Vec<String>) -> String {
    let t = v.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(mut json) = serde_json::from_str::<serde_json::Value>(v)
    {
        json_value(catalog, &mut json, None, found);
        return json.to_string();
    }
    if v.contains("://") && !v.contains(char::is_whitespace) {
        found.extend(url_secrets(catalog, v).into_iter().map(|(_, s)| s));
        return url(catalog, v);
    }
    if let Some((name, val)) = v.split_once(':')
        && is_header_name(name)
        && (secret_like_name(name) || scheme_value(val.trim()).is_some())
    {
        return header(catalog, v, found);
    }
    if let Some((name, val)) = v.split_once('=')
        && secret_like_name(name)
        && !name.contains(char::is_whitespace)
        && !val.is_empty()
    {
        if real(catalog, val) {
            found.push(val.to_owned());
        }
        return format!("{name}={REDACTED}");
    }
    inline(catalog, v, found)
}

/// Secrets inside a longer value: `Bearer x`, `token=x&…`, key formats, random runs.
fn inline(catalog: &Catalog, v: &str, found: &mut Vec<String>) -> String {
    let mut s = v.to_owned();
    let mut take = |secret: &str, s: &mut String| {
        if !secret.is_empty() && real(catalog, secret) && s.contains(secret) {
            found.push(secret.to_owned());
            *s = s.replace(secret, REDACTED);
        }
    };
    // `Bearer abc`, `Basic dXNlcjpwdw==` anywhere.
    let words: Vec<&str> = v.split_whitespace().collect();
    for w in words.windows(2) {
        if AUTH_SCHEMES.iter().any(|a| a.eq_ignore_ascii_case(w[0].trim_matches(['"', '\'']))) {
            take(w[1].trim_matches(['"', '\'', ',', ';']), &mut s);
        }
    }
    // `token=abc`, `api_key=abc` inside a query-like or option string.
    for part in v.split(['&', ';', ',', ' ', '?']) {
        if let Some((k, val)) = part.split_once('=') {
            let k = k.trim_start_matches('-');
            if secret_like_name(k) && !k.is_empty() {
                take(val.trim_matches(['"', '\'']), &mut s);
            }
        }
    }
    for (m, _) in scan_text(catalog, v) {
        take(m, &mut s);
    }
    // Whatever random string is left.
    for piece in s.clone().split(|c: char| c.is_whitespace() || "=&;,\"'".contains(c)) {
        if high_entropy(catalog, piece) {
            take(piece, &mut s);
        }
    }
    s
}

/// A header name: one token of letters, digits and dashes.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The credential of `Scheme credential`, if `v` is one.
fn scheme_value(v: &str) -> Option<&str> {
    let (scheme, rest) = v.split_once(char::is_whitespace)?;
    AUTH_SCHEMES.iter().any(|a| a.eq_ignore_ascii_case(scheme)).then(|| rest.trim())
}

/// Redacts an HTTP header `Name: value`: the credential of an authorization scheme, the
/// whole value of a secret-named header (`X-API-Key`, `Cookie`), or what looks secret in
/// any other.
fn header(catalog: &Catalog, h: &str, found: &mut Vec<String>) -> String {
    let Some((name, val)) = h.split_once(':').filter(|(n, _)| is_header_name(n.trim())) else {
        return value_into(catalog, h, found);
    };
    let val = val.trim();
    if let Some(cred) = scheme_value(val) {
        if real(catalog, cred) {
            found.push(cred.to_owned());
        }
        let scheme = &val[..val.len() - cred.len()];
        return format!("{name}: {}{REDACTED}", scheme.trim_end().to_owned() + " ");
    }
    let lower = name.to_ascii_lowercase();
    if secret_like_name(name) || lower.contains("cookie") || lower.contains("session") {
        if real(catalog, val) {
            found.push(val.to_owned());
        }
        return format!("{name}: {REDACTED}");
    }
    format!("{name}: {}", inline(catalog, val, found))
}

/// Query and fragment parameters that carry credentials under names `secret_like_name`
/// does not know: Azure Functions' `code`, shared access signatures' `sig`.
const URL_SECRET_PARAMS: &[&str] =
    &["code", "sig", "signature", "sas", "apikey", "api-key", "access_token", "id_token"];

fn secret_param(catalog: &Catalog, k: &str, v: &str) -> bool {
    !v.is_empty()
        && !is_placeholder(catalog, v)
        && (secret_like_name(k)
            || URL_SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str())
            || !scan_text(catalog, v).is_empty()
            || high_entropy(catalog, v))
}

/// A URL as it may be shown, and the secrets it carries as (which part, value): a userinfo
/// password, key-shaped path segments, secret query and fragment parameters.
fn redact_url(catalog: &Catalog, u: &str) -> (String, Vec<(String, String)>) {
    let mut found = Vec::new();
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pass)) => {
                if !pass.is_empty() {
                    found.push(("password".to_owned(), pass.to_owned()));
                }
                format!("{user}:{REDACTED}@{host}")
            }
            None if looks_secret(catalog, userinfo) => {
                found.push(("userinfo".to_owned(), userinfo.to_owned()));
                format!("{REDACTED}@{host}")
            }
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (tail, None),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let path: Vec<String> = path
        .split('/')
        .enumerate()
        .map(|(i, seg)| {
            if key_shaped_segment(catalog, seg) {
                found.push((format!("path/{i}"), seg.to_owned()));
                REDACTED.to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect();
    let mut out = format!("{scheme}://{authority}{}", path.join("/"));
    let params = |part: &str, text: &str, found: &mut Vec<(String, String)>| -> String {
        let pairs: Vec<String> = text
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if secret_param(catalog, k, v) => {
                    found.push((format!("{part}/{k}"), v.to_owned()));
                    format!("{k}={REDACTED}")
                }
                None if high_entropy(catalog, pair) => {
                    found.push((part.to_owned(), pair.to_owned()));
                    REDACTED.to_owned()
                }
                _ => pair.to_owned(),
            })
            .collect();
        pairs.join("&")
    };
    if !query.is_empty() {
        out.push('?');
        out.push_str(&params("query", query, &mut found));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(&params("fragment", f, &mut found));
    }
    (out, found)
}

/// The secrets a URL carries, as (which part, value): what [`url`] redacts.
pub(crate) fn url_secrets(catalog: &Catalog, u: &str) -> Vec<(String, String)> {
    redact_url(catalog, u).1
}

fn key_shaped_segment(catalog: &Catalog, seg: &str) -> bool {
    !scan_text(catalog, seg).is_empty()
        || (seg.len() >= 24
            && looks_secret(catalog, seg)
            && !is_placeholder(catalog, seg)
            && !seg.contains('.'))
}

/// Redacts userinfo passwords, key-shaped path segments, and secret query and fragment
/// parameters.
pub(crate) fn url(catalog: &Catalog, u: &str) -> String {
    redact_url(catalog, u).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_lose_their_secrets() {
        let c = Catalog::builtin().unwrap();
        let key = format!("ghp_{}", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2");
        let line = command_line(
            &c,
            &argv(&[
                "docker",
                "run",
                "-e",
                &format!("GITHUB_TOKEN={key}"),
                "--api-key",
                "s3cr3tvalue",
                "img",
                &key,
            ]),
        );
        assert!(!line.shown.contains(&key) && !line.shown.contains("s3cr3t"), "{}", line.shown);
        assert_eq!(line.shown, "docker run -e GITHUB_TOKEN=[REDACTED] --api-key [REDACTED] img [REDACTED]");
        let at: Vec<usize> = line.secrets.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [3, 5, 7]);
    }

    #[test]
    fn every_shape_of_argv_credential_is_redacted_and_returned() {
        let c = Catalog::builtin().unwrap();
        let t = |n: u8| format!("Qm{n}x7Lp2Vz9Rk4Wn8Tb3Yc6Hd1Fs5Gj0");
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                argv(&[
                    "npx",
                    "-y",
                    "mcp-remote",
                    "https://mcp.linear.app/sse",
                    "--header",
                    &format!("Authorization: Bearer {}", t(1)),
                ]),
                "npx -y mcp-remote https://mcp.linear.app/sse --header Authorization: Bearer [REDACTED]",
            ),
            (
                argv(&["mcp-remote", "-H", &format!("X-API-Key: {}", t(2))]),
                "mcp-remote -H X-API-Key: [REDACTED]",
            ),
            (
                argv(&["proxy", &format!("--header=Cookie: sid={}", t(3))]),
                "proxy --header=Cookie: [REDACTED]",
            ),
            (argv(&["srv", &format!("--api-key={}", t(4))]), "srv --api-key=[REDACTED]"),
            (argv(&["srv", "--jira-token", &t(5)]), "srv --jira-token [REDACTED]"),
            (
                argv(&["srv", &format!("--config=region=eu&token={}&debug=1", t(6))]),
                "srv --config=region=eu&token=[REDACTED]&debug=1",
            ),
            (argv(&["srv", &format!("Basic {}", t(7))]), "srv Basic [REDACTED]"),
            (argv(&["srv", &t(8)]), "srv [REDACTED]"),
            (
                argv(&["srv", &format!("https://bot:{}@mcp.example.com/sse", t(9))]),
                "srv https://bot:[REDACTED]@mcp.example.com/sse",
            ),
            (
                argv(&["srv", &format!("--url=https://x.example/mcp?access_token={}", t(10))]),
                "srv --url=https://x.example/mcp?access_token=[REDACTED]",
            ),
        ];
        for (n, (a, want)) in cases.iter().enumerate() {
            let r = command_line(&c, a);
            let secret = t(n as u8 + 1);
            assert_eq!(r.shown, *want, "case {n}");
            assert!(!r.shown.contains(&secret), "case {n}: {}", r.shown);
            assert!(
                r.secrets.iter().any(|(_, s)| s.expose().contains(&secret)),
                "case {n}: the credential is returned to be reported: {:?}",
                r.secrets
            );
        }
        let more: Vec<(Vec<String>, &str)> = vec![
            (argv(&["curl", "-u", &format!("admin:{}", t(11))]), "curl -u admin:[REDACTED]"),
            (argv(&["srv", "--api-key", &format!("-{}", t(12))]), "srv --api-key [REDACTED]"),
            (
                argv(&[
                    "srv",
                    "--config",
                    &format!("{{\"db\":{{\"password\":\"{}\",\"host\":\"h\"}}}}", t(13)),
                ]),
                "srv --config {\"db\":{\"host\":\"h\",\"password\":\"[REDACTED]\"}}",
            ),
            (
                argv(&["srv", &format!("https://fn.azurewebsites.net/api/mcp?code={}", t(14))]),
                "srv https://fn.azurewebsites.net/api/mcp?code=[REDACTED]",
            ),
            (
                argv(&["srv", &format!("https://app.example/cb#access_token={}&state=x", t(15))]),
                "srv https://app.example/cb#access_token=[REDACTED]&state=x",
            ),
        ];
        for (a, want) in &more {
            let r = command_line(&c, a);
            assert_eq!(r.shown, *want);
            assert_eq!(r.secrets.len(), 1, "{want}: the credential is returned");
        }
        // What is not a secret stays, and nothing is reported for it.
        let plain = argv(&[
            "npx",
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/home/alice/Documents",
            "--header",
            "Accept: application/json",
            "--token",
            "$LINEAR_TOKEN",
        ]);
        let r = command_line(&c, &plain);
        assert_eq!(
            r.shown,
            "npx -y @modelcontextprotocol/server-filesystem /home/alice/Documents --header Accept: application/json --token [REDACTED]"
        );
        assert!(r.secrets.is_empty(), "{:?}", r.secrets);
    }

    #[test]
    fn urls_lose_their_secrets() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(url(&c, "postgres://app:hunter2@db:5432/x"), "postgres://app:[REDACTED]@db:5432/x");
        assert_eq!(
            url(&c, "https://mcp.example.com/v1/a9F3kQ7zL2xP8mN4bV6cR1tY/sse?api_key=abc&region=eu"),
            "https://mcp.example.com/v1/[REDACTED]/sse?api_key=[REDACTED]&region=eu"
        );
        assert_eq!(url(&c, "https://api.githubcopilot.com/mcp/"), "https://api.githubcopilot.com/mcp/");
    }
}
