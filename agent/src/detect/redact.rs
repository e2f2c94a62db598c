//! Redaction of command lines and URLs before they leave the device.
//!
//! MCP server definitions carry secrets in argv (`--api-key sk-…`, `-e TOKEN=…`,
//! connection strings) and URLs (`https://x/mcp/<key>/sse`, `?api_key=…`,
//! `user:pass@`). What is reported keeps the shape an admin needs and loses the secret.

use super::tokens::{is_placeholder, looks_secret, scan_text, secret_like_name};
use crate::catalog::Catalog;

pub(crate) const REDACTED: &str = "[REDACTED]";

/// Redacts an argv list and joins it into one display string.
pub(crate) fn command_line(catalog: &Catalog, argv: &[String]) -> String {
    let mut out = Vec::with_capacity(argv.len());
    let mut redact_next = false;
    for arg in argv {
        if redact_next {
            out.push(REDACTED.to_owned());
            redact_next = false;
            continue;
        }
        if let Some(flag) = arg.strip_prefix('-') {
            let (name, value) = flag.split_once('=').map_or((flag, None), |(n, v)| (n, Some(v)));
            if secret_like_name(name) {
                match value {
                    Some(_) => out.push(format!("-{name}={REDACTED}")),
                    None => {
                        out.push(arg.clone());
                        redact_next = true;
                    }
                }
                continue;
            }
        }
        out.push(value(catalog, arg));
    }
    out.join(" ")
}

/// Redacts one free-standing value: key formats, `NAME=secret`, URLs.
pub(crate) fn value(catalog: &Catalog, v: &str) -> String {
    if v.contains("://") {
        return url(catalog, v);
    }
    if let Some((name, val)) = v.split_once('=')
        && secret_like_name(name)
        && !val.is_empty()
    {
        return format!("{name}={REDACTED}");
    }
    let mut s = v.to_owned();
    for (m, _) in scan_text(catalog, v) {
        s = s.replace(m, REDACTED);
    }
    s
}

/// The secrets a URL carries, as (which part, value): what [`url`] redacts.
pub(crate) fn url_secrets(catalog: &Catalog, u: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        match userinfo.split_once(':') {
            Some((_, pass)) if !pass.is_empty() => out.push(("password".to_owned(), pass.to_owned())),
            None if looks_secret(catalog, userinfo) => out.push(("userinfo".to_owned(), userinfo.to_owned())),
            _ => {}
        }
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    for (i, seg) in path.split('/').enumerate() {
        if key_shaped_segment(catalog, seg) {
            out.push((format!("path/{i}"), seg.to_owned()));
        }
    }
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && !v.is_empty()
            && (secret_like_name(k) || !scan_text(catalog, v).is_empty())
            && !is_placeholder(catalog, v)
        {
            out.push((format!("query/{k}"), v.to_owned()));
        }
    }
    out
}

fn key_shaped_segment(catalog: &Catalog, seg: &str) -> bool {
    !scan_text(catalog, seg).is_empty()
        || (seg.len() >= 24
            && looks_secret(catalog, seg)
            && !is_placeholder(catalog, seg)
            && !seg.contains('.'))
}

/// Redacts userinfo passwords, secret-named query values and key-shaped path segments.
pub(crate) fn url(catalog: &Catalog, u: &str) -> String {
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None if looks_secret(catalog, userinfo) => format!("{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let path: Vec<String> = path
        .split('/')
        .map(|seg| if key_shaped_segment(catalog, seg) { REDACTED.to_owned() } else { seg.to_owned() })
        .collect();
    let mut out = format!("{scheme}://{authority}{}", path.join("/"));
    if !query.is_empty() {
        let q: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if secret_like_name(k) || !scan_text(catalog, v).is_empty() => {
                    format!("{k}={REDACTED}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_lose_their_secrets() {
        let c = Catalog::builtin().unwrap();
        let key = format!("ghp_{}", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2");
        let argv: Vec<String> =
            ["docker", "run", "-e", &format!("GITHUB_TOKEN={key}"), "--api-key", "s3cr3tvalue", "img", &key]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let line = command_line(&c, &argv);
        assert!(!line.contains(&key) && !line.contains("s3cr3t"), "{line}");
        assert_eq!(line, "docker run -e GITHUB_TOKEN=[REDACTED] --api-key [REDACTED] img [REDACTED]");
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
