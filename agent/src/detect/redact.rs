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

/// Arguments after which a shell runs the next argument as a whole command line
/// (`sh -c "…"`, `cmd /c "…"`, `powershell -Command "…"`).
const SHELL_COMMAND_FLAGS: &[&str] = &["-c", "-lc", "-ic", "/c", "/k", "-command", "-Command"];

/// Secret-named flags whose value says where a secret is, not what it is
/// (`--token-file`, `--api-key-env`, `--auth-url`): their value is judged as any other.
const REFERENCE_SUFFIXES: &[&str] = &[
    "file", "path", "url", "uri", "endpoint", "env", "var", "dir", "type", "mode", "method", "name", "cmd",
    "command", "helper", "id",
];

fn names_a_reference(flag: &str) -> bool {
    flag.contains(['-', '_'])
        && flag
            .rsplit(['-', '_'])
            .next()
            .is_some_and(|last| REFERENCE_SUFFIXES.iter().any(|s| s.eq_ignore_ascii_case(last)))
}

fn secret_flag(name: &str) -> bool {
    secret_like_name(name) && !names_a_reference(name)
}

/// Redacts an argv list and joins it into one display string.
pub(crate) fn command_line(catalog: &Catalog, argv: &[String]) -> Redacted {
    command_line_at(catalog, argv, 0)
}

/// Nested command lines (a shell's command string) are followed this deep.
const MAX_NESTING: usize = 4;

fn command_line_at(catalog: &Catalog, argv: &[String], depth: usize) -> Redacted {
    let mut out = Redacted::default();
    let mut shown = Vec::with_capacity(argv.len());
    let mut next = Next::Plain;
    for (i, arg) in argv.iter().enumerate() {
        let mut found = Vec::new();
        // One argument that is itself a command line: the string a shell runs (`cmd /c
        // "npx srv --access-token …"`), or a flag and its value written as one argument
        // (`"--api-key abc"`). Its words are redacted as a command line of their own.
        if next == Next::Plain
            && depth < MAX_NESTING
            && let Some(words) = nested_words(argv, i)
        {
            let inner = command_line_at(catalog, &words, depth + 1);
            shown.push(inner.shown);
            out.secrets.extend(inner.secrets.into_iter().map(|(_, s)| (i, s)));
            continue;
        }
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
                        Some((name, v)) if secret_flag(name) && !v.is_empty() => {
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
                        None if secret_flag(flag_name) => {
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

/// The words of argument `i` when it is a command line of its own (see `command_line_at`).
fn nested_words(argv: &[String], i: usize) -> Option<Vec<String>> {
    let arg = argv[i].trim();
    if !arg.contains(char::is_whitespace) {
        return None;
    }
    let after_shell_flag = i > 0 && SHELL_COMMAND_FLAGS.contains(&argv[i - 1].as_str());
    if after_shell_flag && !arg.starts_with(['{', '[']) {
        return Some(split_command(arg));
    }
    // `--flag value…`: a space before any `=`.
    let (flag, rest) = arg.split_once(char::is_whitespace)?;
    if !flag.starts_with('-') || flag.contains('=') || flag.len() < 2 {
        return None;
    }
    let rest = rest.trim();
    if is_header_flag(flag.trim_start_matches('-')) {
        // A header value keeps its spaces (`-H Authorization: Bearer …`).
        return Some(vec![flag.to_owned(), rest.to_owned()]);
    }
    let mut words = vec![flag.to_owned()];
    words.extend(split_command(rest));
    Some(words)
}

/// Shell-like words: whitespace separates, quotes group (single quotes literally), a
/// backslash escapes the next character outside single quotes.
pub(crate) fn split_command(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
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
    // `NAME={json}` (`-e OPENAPI_MCP_HEADERS={"Authorization": "Bearer …"}`): the JSON is
    // judged key by key, so the credential inside is found under its own name.
    if let Some((name, val)) = v.split_once('=')
        && is_header_name(name)
        && val.trim_start().starts_with(['{', '['])
        && let Ok(mut json) = serde_json::from_str::<serde_json::Value>(val)
    {
        json_value(catalog, &mut json, Some(name), found);
        return format!("{name}={json}");
    }
    // (`token=a&secret=b` is a query of several values: `inline` takes each.)
    if let Some((name, val)) = v.split_once('=')
        && secret_like_name(name)
        && !name.contains(char::is_whitespace)
        && !val.is_empty()
        && !val.contains('&')
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
                // `https://svc:${env:PASSWORD}@host`: a reference, shown redacted all the same.
                if !pass.is_empty() && !is_placeholder(catalog, pass) {
                    found.push(("password".to_owned(), pass.to_owned()));
                }
                format!("{user}:{REDACTED}@{host}")
            }
            None if looks_secret(catalog, userinfo) && !is_placeholder(catalog, userinfo) => {
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

    /// Shapes that used to be shown as they were, their credential never reported: a shell's
    /// command string, a flag and its value in one argument, JSON after `NAME=`.
    #[test]
    fn credentials_inside_one_argument_are_redacted_and_returned() {
        let c = Catalog::builtin().unwrap();
        // Short: neither a key format nor random enough to be caught on its own.
        let pw = "Tr0ub4dor3x";
        let cases: Vec<(Vec<String>, String)> = vec![
            (
                argv(&["cmd", "/c", &format!("npx -y @acme/mcp --access-token {pw}")]),
                "cmd /c npx -y @acme/mcp --access-token [REDACTED]".into(),
            ),
            (argv(&["sh", "-c", &format!("srv --api-key={pw} --v")]), "sh -c srv --api-key=[REDACTED] --v".into()),
            (argv(&["srv", &format!("--token {pw}")]), "srv --token [REDACTED]".into()),
            (argv(&["srv", &format!("--config=token={pw}&v=1")]), "srv --config=token=[REDACTED]&v=1".into()),
            (
                argv(&["srv", &format!("-H Authorization: Bearer {pw}")]),
                "srv -H Authorization: Bearer [REDACTED]".into(),
            ),
            (
                argv(&[
                    "docker",
                    "-e",
                    &format!("OPENAPI_MCP_HEADERS={{\"Authorization\": \"Bearer {pw}\", \"Notion-Version\": \"2022-06-28\"}}"),
                ]),
                "docker -e OPENAPI_MCP_HEADERS={\"Authorization\":\"[REDACTED]\",\"Notion-Version\":\"2022-06-28\"}"
                    .into(),
            ),
        ];
        for (a, want) in &cases {
            let r = command_line(&c, a);
            assert_eq!(r.shown, *want);
            assert_eq!(r.secrets.len(), 1, "{want}: {:?}", r.secrets);
            assert!(r.secrets[0].1.expose().ends_with(pw));
            assert_eq!(r.secrets[0].0, a.len() - 1, "the secret's index is the argument that held it");
        }
    }

    /// Flags that name where a secret is, and references, are not credentials.
    #[test]
    fn references_are_not_credentials() {
        let c = Catalog::builtin().unwrap();
        for a in [
            argv(&["srv", "--token-file", "/run/secrets/mcp_token_2024"]),
            argv(&["srv", "--api-key-env=ACME_API_KEY_V2"]),
            argv(&["srv", "--auth-url", "https://login.acme.example/oauth2/token"]),
            argv(&["srv", "--api-key", "${env:ACME_API_KEY_2}"]),
            argv(&["srv", "--token", "${input:acme_token_1}"]),
            argv(&["srv", "--token", "{{ACME_TOKEN_1}}"]),
            argv(&["srv", "--password", "<YOUR_PASSWORD_1>"]),
            argv(&["srv", "https://svc:${env:SVC_PASSWORD_1}@mcp.acme.example/sse"]),
        ] {
            let r = command_line(&c, &a);
            assert!(r.secrets.is_empty(), "{a:?}: {:?}", r.secrets);
        }
        assert!(names_a_reference("token-file") && names_a_reference("API_KEY_ENV"));
        assert!(!names_a_reference("api-key") && !names_a_reference("token") && !names_a_reference("file"));
    }

    #[test]
    fn a_command_in_one_string_splits_like_a_shell() {
        assert_eq!(
            split_command(r#"srv --api-key 'a b' --name "x y" c\ d"#),
            ["srv", "--api-key", "a b", "--name", "x y", "c d"]
        );
        assert_eq!(split_command("npx"), ["npx"]);
        assert_eq!(split_command("  "), Vec::<String>::new());
        assert_eq!(split_command("a ''"), ["a", ""]);
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
