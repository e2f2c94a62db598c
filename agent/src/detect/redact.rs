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
            // Under a secret name the value is hidden whatever it looks like; a key-shaped
            // or random value is hidden when real. Only real values are reported.
            let named = key.is_some_and(secret_like_name) && !s.is_empty();
            let shaped = !scan_text(catalog, s).is_empty() || high_entropy(catalog, s);
            if named || (shaped && real(catalog, s)) {
                let value = std::mem::replace(s, REDACTED.to_owned());
                if real(catalog, &value) {
                    found.push(value);
                }
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
    // What sits in a credential's place (after `Bearer`, under `token=`) is hidden whatever
    // it looks like, and reported only when real; elsewhere only real secrets are taken.
    let mut take = |secret: &str, s: &mut String, in_place: bool| {
        if secret.is_empty() || !s.contains(secret) {
            return;
        }
        let is_real = real(catalog, secret);
        if is_real {
            found.push(secret.to_owned());
        }
        // (A one- to three-character stand-in is no credential, and replacing it everywhere
        // would mangle the rest of the line.)
        if is_real || (in_place && secret.len() > 3) {
            *s = s.replace(secret, REDACTED);
        }
    };
    // `Bearer abc`, `Basic dXNlcjpwdw==` anywhere.
    let words: Vec<&str> = v.split_whitespace().collect();
    for w in words.windows(2) {
        if AUTH_SCHEMES.iter().any(|a| a.eq_ignore_ascii_case(w[0].trim_matches(['"', '\'']))) {
            take(w[1].trim_matches(['"', '\'', ',', ';']), &mut s, true);
        }
    }
    // `token=abc`, `api_key=abc` inside a query-like or option string.
    for part in v.split(['&', ';', ',', ' ', '?']) {
        if let Some((k, val)) = part.split_once('=') {
            let k = k.trim_start_matches('-');
            if secret_like_name(k) && !k.is_empty() {
                take(val.trim_matches(['"', '\'']), &mut s, true);
            }
        }
    }
    for (m, _) in scan_text(catalog, v) {
        take(m, &mut s, false);
    }
    // Whatever random string is left.
    for piece in s.clone().split(|c: char| c.is_whitespace() || "=&;,\"'".contains(c)) {
        if high_entropy(catalog, piece) {
            take(piece, &mut s, false);
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

/// A parameter whose value is hidden when shown: under a secret name whatever it holds
/// (a value that looks like a placeholder may still be the credential), or key-shaped.
fn secret_param(catalog: &Catalog, k: &str, v: &str) -> bool {
    !v.is_empty()
        && (secret_like_name(k)
            || URL_SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str())
            || (!is_placeholder(catalog, v)
                && (!scan_text(catalog, v).is_empty() || high_entropy(catalog, v))))
}

/// A URL as it may be shown, and the secrets it carries as (which part, value): a userinfo
/// password, key-shaped path segments, secret query and fragment parameters.
fn redact_url(catalog: &Catalog, u: &str) -> (String, Vec<(String, String)>) {
    let mut found = Vec::new();
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (userinfo, host, tail) = split_authority(rest);
    // Behind userinfo read from raw input, what is left may not be a host at all (the
    // last `@` was in a query): hidden rather than risk showing a credential.
    let host = if userinfo.is_some() && !plausible_host(host) { REDACTED } else { host };
    // Userinfo is always hidden; what is reported is only what is a real credential (not a
    // placeholder such as `${env:PASSWORD}` or `<token>`).
    let authority = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, pass)) => {
                if !pass.is_empty() && !is_placeholder(catalog, pass) {
                    found.push(("password".to_owned(), pass.to_owned()));
                }
                format!("{user}:{REDACTED}@{host}")
            }
            None if userinfo.is_empty() => format!("@{host}"),
            None => {
                if looks_secret(catalog, userinfo) && !is_placeholder(catalog, userinfo) {
                    found.push(("userinfo".to_owned(), userinfo.to_owned()));
                }
                format!("{REDACTED}@{host}")
            }
        },
        None => host.to_owned(),
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
                    // Hidden either way; reported only when it is not a placeholder.
                    if !is_placeholder(catalog, v) {
                        found.push((format!("{part}/{k}"), v.to_owned()));
                    }
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

/// Splits what follows `scheme://` into (userinfo, host[:port], path-query-fragment).
///
/// RFC 3986 ends the authority at the first `/`, `?` or `#`. Raw input is not always
/// encoded, though: `https://u:pa/ss@h` is a password with a `/` in it, and the RFC reading
/// would show `u:pa` as host and port. So when the RFC authority is not a plausible
/// `host[:port]` and an `@` follows, the userinfo runs to the LAST `@` that does not open a
/// path segment (`/@scope/pkg` stays a path). Plausible authorities keep the RFC reading, so
/// `https://unpkg.com/react@18/…` is not mistaken for userinfo.
pub(crate) fn split_authority(rest: &str) -> (Option<&str>, &str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if let Some((userinfo, host)) = authority.rsplit_once('@') {
        return (Some(userinfo), host, tail);
    }
    if plausible_host(authority) {
        return (None, authority, tail);
    }
    let last_at = rest.char_indices().rev().find(|&(i, c)| c == '@' && !rest[..i].ends_with('/'));
    match last_at {
        Some((i, _)) => {
            let after = &rest[i + 1..];
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (Some(&rest[..i]), &after[..end], &after[end..])
        }
        None => (None, authority, tail),
    }
}

/// `host`, `host:port` or `[v6]:port` made of the characters hosts are made of (a
/// `${HOST}` template is not one, which only matters when an `@` follows it).
fn plausible_host(a: &str) -> bool {
    let (host, port) = match a.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') => {
                match rest.strip_prefix(':') {
                    Some(p) => ("v6", p),
                    None if rest.is_empty() => ("v6", ""),
                    None => return false,
                }
            }
            _ => return false,
        },
        None => a.split_once(':').unwrap_or((a, "")),
    };
    port.bytes().all(|b| b.is_ascii_digit())
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
}

/// `scheme://host[:port]` of a URL: its origin, without userinfo, path, query or
/// fragment, for locators that name a URL-keyed setting. An authority that is not a
/// plausible host (raw input around a credential) is shown redacted.
pub(crate) fn origin(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else { return REDACTED.to_owned() };
    let (_, host, _) = split_authority(rest);
    if plausible_host(host) { format!("{scheme}://{host}") } else { format!("{scheme}://{REDACTED}") }
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
        assert_eq!(
            split_command(r#"launchctl setenv 'A B' "c\"d" e\ f ''"#),
            vec!["launchctl", "setenv", "A B", "c\"d", "e f", ""]
        );
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

    /// A value in a credential's place is hidden even when it looks like a placeholder
    /// (the real credential may contain `todo`, `insert`, `xxxx`, `<` or a run of one
    /// character); the placeholder test only decides whether it is reported.
    #[test]
    fn credentials_that_look_like_placeholders_are_still_hidden() {
        let c = Catalog::builtin().unwrap();
        for (secret, u) in [
            ("todo-9f8e7d6c5b4a", "https://mcp.example.com/sse?token=todo-9f8e7d6c5b4a&region=eu"),
            ("insertAbc123xyz", "https://mcp.example.com/sse#access_token=insertAbc123xyz"),
            ("zzzzzzzzQ1", "https://mcp.example.com/sse?api_key=zzzzzzzzQ1"),
        ] {
            let shown = url(&c, u);
            assert!(!shown.contains(secret), "{u} shown as {shown}");
            assert!(shown.starts_with("https://mcp.example.com/sse"), "{shown}");
        }
        for a in [
            argv(&["curl", "-H", "Authorization: Bearer xxxx1234abcd", "https://h.example"]),
            argv(&["srv", "--header", "X-Trace: on; Bearer <my-real-token-1>"]),
            argv(&["srv", "--opts", "mode=fast&token=TODO-4f3e2d1c&x=1"]),
            argv(&["srv", "--config", r#"{"password": "xxxx1234abcd"}"#]),
        ] {
            let r = command_line(&c, &a);
            for secret in ["xxxx1234abcd", "<my-real-token-1>", "TODO-4f3e2d1c"] {
                assert!(!r.shown.contains(secret), "{a:?} shown as {}", r.shown);
            }
        }
        // Hidden, but a reference is still not reported as a credential.
        let r = command_line(&c, &argv(&["srv", "--opts", "mode=fast&token=<YOUR_TOKEN_1>"]));
        assert!(r.secrets.is_empty() && !r.shown.contains("YOUR_TOKEN"), "{r:?}");
        assert!(url_secrets(&c, "https://h.example/?token=<YOUR_TOKEN_1>").is_empty());
    }

    /// Raw input may leave `/`, `?` or `#` unencoded in a password: no part of it is shown.
    #[test]
    fn raw_userinfo_is_never_shown() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(url(&c, "https://u:pa/ss@h.example/p"), "https://u:[REDACTED]@h.example/p");
        assert_eq!(url(&c, "https://u:pa?ss@h.example"), "https://u:[REDACTED]@h.example");
        assert_eq!(url(&c, "https://u:pa#ss@h.example/x?q=1"), "https://u:[REDACTED]@h.example/x?q=1");
        let secrets: Vec<String> =
            url_secrets(&c, "https://u:pa/ss@h.example/p").into_iter().map(|(_, s)| s).collect();
        assert_eq!(secrets, ["pa/ss"]);
        // Bare userinfo is hidden whatever it looks like.
        assert_eq!(url(&c, "https://deploy@h.example/x"), "https://[REDACTED]@h.example/x");
        // The last `@` in a query after raw userinfo: nothing past the first `@` is trusted.
        let shown = url(&c, "https://u:pa/ss@h.example/p?mail=a@b.example&token=tok-123456");
        assert!(!shown.contains("pa") && !shown.contains("ss@") && !shown.contains("tok-123456"), "{shown}");
        // Plausible hosts keep the RFC reading: `@` in a path is a path.
        assert_eq!(url(&c, "https://unpkg.com/react@18/umd/x.js"), "https://unpkg.com/react@18/umd/x.js");
        assert_eq!(
            url(&c, "https://server.smithery.ai/@acme/tools/mcp"),
            "https://server.smithery.ai/@acme/tools/mcp"
        );
        assert_eq!(origin("https://u:pa/ss@h.example:8443/p?q#f"), "https://h.example:8443");
        assert_eq!(origin("http://[::1]:8080/x"), "http://[::1]:8080");
        assert_eq!(origin("not a url"), REDACTED);
    }
}
