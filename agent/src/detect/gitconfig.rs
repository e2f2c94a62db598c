//! Credentials in the user's own repositories' `.git/config`.
//!
//! The bounded walk never enters `.git`; it only notes `<repo>/.git/config` for each
//! repository it passes, and this is the one file read there (small-file bound). Credentials
//! live in three places (git-config(1)):
//! - userinfo of a remote or submodule URL: `https://x-access-token:ghp_…@github.com/o/r`;
//! - a `url.<base>.insteadOf` rewrite whose base carries the userinfo;
//! - `http.extraHeader` / `http.<url>.extraHeader`: `AUTHORIZATION: bearer …`, or `basic`
//!   with base64 `user:token` (what actions/checkout writes).
//!
//! A value with a known key format always counts; one without counts only when the URL's
//! host is in the catalog's `[git_config]` hosts (a bare password for an in-house Git
//! server is not an AI credential). Credential helpers store nothing here and are ignored.

use std::path::PathBuf;

use base64::Engine as _;

use super::tokens::{Site, classify, secret_like_name};
use super::{Ctx, Home, TokenSource};
use crate::catalog::{Catalog, TokenKind};
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home, configs: &[PathBuf]) {
    for rel in configs {
        let Some(text) = ctx.read_text(&home.tree, rel, ctx.limits.small_file) else {
            continue;
        };
        let entries = parse(&text);
        // A bare `http.extraHeader` applies to every remote: its host is the remotes'.
        let remote_host = entries
            .iter()
            .filter(|e| e.section == "remote" && e.key == "url")
            .find_map(|e| url_parts(&e.value).map(|u| u.host.to_owned()));
        for e in &entries {
            if let Some(found) = credentials(ctx.catalog, e, remote_host.as_deref()) {
                ctx.token(
                    &Site { home, rel, source: TokenSource::GitConfig },
                    found.secret,
                    found.class,
                    Some(format!("{} (line {})", e.locator(), e.line)),
                    None,
                );
            }
        }
    }
}

/// One `key = value` of a git config file, with its section.
#[derive(Debug, PartialEq)]
struct Entry {
    /// Lower-cased, as git compares them.
    section: String,
    /// Case-sensitive, as git compares them; empty when absent.
    subsection: String,
    key: String,
    value: String,
    line: usize,
}

impl Entry {
    /// The entry's name in git's own syntax, without anything secret: a `url.<base>`
    /// section's base is itself a URL with the credential, so it is never shown, and other
    /// subsections lose any userinfo.
    fn locator(&self) -> String {
        match (self.section.as_str(), self.subsection.is_empty()) {
            (_, true) => format!("{}.{}", self.section, self.key),
            ("url", false) => format!("url.<base>.{}", self.key),
            (_, false) => format!("{}.{}.{}", self.section, shown_subsection(&self.subsection), self.key),
        }
    }
}

/// Parses git config syntax: `[section]`, `[section "sub"]` (and the old `[section.sub]`),
/// `key = value` with quoting, backslash escapes and `#`/`;` comments. Continuation lines
/// (a trailing backslash) are joined. Keys without `=` (boolean true) are skipped.
fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let (mut section, mut subsection) = (String::new(), String::new());
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let mut line = raw.to_owned();
        while line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let mut rest = line.trim_start();
        if let Some(header) = rest.strip_prefix('[') {
            let Some(end) = header.find(']') else { continue };
            let inner = &header[..end];
            match inner.split_once(char::is_whitespace) {
                Some((s, sub)) => {
                    section = s.to_ascii_lowercase();
                    subsection = unquote(sub.trim()).0;
                }
                None => match inner.split_once('.') {
                    Some((s, sub)) => {
                        section = s.to_ascii_lowercase();
                        subsection = sub.to_owned();
                    }
                    None => {
                        section = inner.to_ascii_lowercase();
                        subsection.clear();
                    }
                },
            }
            // A key may follow the header on the same line.
            rest = header[end + 1..].trim_start();
        }
        if rest.is_empty() || rest.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = rest.split_once('=') else { continue };
        out.push(Entry {
            section: section.clone(),
            subsection: subsection.clone(),
            key: key.trim().to_ascii_lowercase(),
            value: unquote(value.trim()).0,
            line: i + 1,
        });
    }
    out
}

/// A git config value: quotes removed, escapes resolved, a trailing comment dropped.
/// Returns the value and whether it was cut at a comment.
fn unquote(v: &str) -> (String, bool) {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('b') => {
                    out.pop();
                }
                Some(other) => out.push(other),
                None => {}
            },
            '#' | ';' if !quoted => return (out.trim_end().to_owned(), true),
            c => out.push(c),
        }
    }
    (out.trim_end().to_owned(), false)
}

/// The parts of a `scheme://[userinfo@]host[:port]/path` URL the detector needs.
#[derive(Debug, PartialEq)]
struct UrlParts<'u> {
    user: Option<&'u str>,
    password: Option<&'u str>,
    host: &'u str,
}

fn url_parts(url: &str) -> Option<UrlParts<'_>> {
    let (_, rest) = url.split_once("://")?;
    // Read as the display reads it: an unencoded `/` in a password does not end it.
    let (userinfo, hostport, _) = super::redact::split_authority(rest);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => hostport.split(':').next().unwrap_or(hostport),
    };
    let (user, password) = match userinfo.map(|u| u.split_once(':')) {
        Some(Some((u, p))) => (Some(u), Some(p)),
        Some(None) => (userinfo, None),
        None => (None, None),
    };
    Some(UrlParts {
        user: user.filter(|u| !u.is_empty()),
        password: password.filter(|p| !p.is_empty()),
        host,
    })
}

/// A subsection as a locator may show it. A URL (`[http "https://hf.co/x?access_token=…"]`)
/// is cut to its origin: userinfo, path, query and fragment can all carry a credential.
/// Anything else (`[remote "origin"]`) is a name, shown up to any `?`/`#`, without a
/// userinfo-like prefix.
fn shown_subsection(sub: &str) -> String {
    if sub.contains("://") {
        return super::redact::origin(sub);
    }
    let name = sub.split(['?', '#']).next().unwrap_or(sub);
    name.rsplit_once('@').map_or(name, |(_, rest)| rest).to_owned()
}

struct Found {
    secret: Secret,
    class: super::tokens::Class,
}

/// The catalog's provider for a host (or a subdomain of it).
fn host_class<'c>(catalog: &'c Catalog, host: &str) -> Option<(&'c str, TokenKind)> {
    let host = host.to_ascii_lowercase();
    catalog
        .git_config
        .hosts
        .iter()
        .find(|h| host == h.host || host.ends_with(&format!(".{}", h.host)))
        .map(|h| (h.provider.as_str(), h.kind))
}

/// A classified credential, or nothing.
fn found(catalog: &Catalog, value: &str, fallback: Option<(&str, TokenKind)>) -> Option<Found> {
    classify(catalog, value, None, fallback).map(|class| Found { secret: Secret::new(value), class })
}

/// The credential in a URL's userinfo: the password, else a user part that has a known key
/// format (`https://<token>@host/`; any user name would do otherwise).
fn from_url(catalog: &Catalog, url: &str) -> Option<Found> {
    let u = url_parts(url)?;
    match (u.user, u.password) {
        (_, Some(p)) => found(catalog, p, host_class(catalog, u.host)),
        (Some(user), None) => found(catalog, user, None),
        (None, None) => None,
    }
}

/// The credential one entry carries (each carries at most one).
fn credentials(catalog: &Catalog, e: &Entry, remote_host: Option<&str>) -> Option<Found> {
    match (e.section.as_str(), e.key.as_str()) {
        ("remote", "url" | "pushurl") | ("submodule", "url") => from_url(catalog, &e.value),
        ("url", "insteadof" | "pushinsteadof") => from_url(catalog, &e.subsection),
        ("http", "extraheader") => {
            let (name, value) = e.value.split_once(':')?;
            if !secret_like_name(name.trim()) {
                return None;
            }
            let host = if e.subsection.is_empty() {
                remote_host.map(str::to_owned)
            } else {
                url_parts(&e.subsection).map(|u| u.host.to_owned())
            };
            let fallback = host.as_deref().and_then(|h| host_class(catalog, h));
            let value = value.trim();
            let (scheme, credential) = value.split_once(char::is_whitespace).unwrap_or(("", value));
            let credential = credential.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.decode(credential).ok()?,
                );
                let decoded = Secret::new(String::from_utf8_lossy(&decoded).into_owned());
                let userpass = decoded.expose();
                let token = userpass.split_once(':').map_or(userpass, |(_, p)| p);
                found(catalog, token, fallback)
            } else {
                found(catalog, credential, fallback)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn parses_sections_quotes_comments_and_continuations() {
        let text = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = \"https://h/x\" # note\n\
                    [http \"https://github.com/\"]\n\textraHeader = AUTHORIZATION: bearer a\\\n b\n\
                    [Branch.Main] remote = origin\n; comment\nflag\n";
        let e = parse(text);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert_eq!(
            (e[1].section.as_str(), e[1].subsection.as_str(), e[1].key.as_str()),
            ("remote", "origin", "url")
        );
        assert_eq!(e[1].value, "https://h/x");
        assert_eq!(
            (e[2].key.as_str(), e[2].value.as_str(), e[2].line),
            ("extraheader", "AUTHORIZATION: bearer a b", 6)
        );
        assert_eq!(
            (e[3].section.as_str(), e[3].subsection.as_str(), e[3].value.as_str()),
            ("branch", "Main", "origin")
        );
    }

    #[test]
    fn url_userinfo_hosts_and_display() {
        let u = url_parts("https://x-access-token:tok@github.com:443/o/r.git").unwrap();
        assert_eq!((u.user, u.password, u.host), (Some("x-access-token"), Some("tok"), "github.com"));
        let u = url_parts("https://tok@hf.co/spaces/a").unwrap();
        assert_eq!((u.user, u.password), (Some("tok"), None));
        assert_eq!(url_parts("git@github.com:o/r.git"), None);
        let u = url_parts("https://u:pa/ss@github.com/r").unwrap();
        assert_eq!((u.user, u.password, u.host), (Some("u"), Some("pa/ss"), "github.com"));
        assert_eq!(shown_subsection("https://u:p@github.com/o?a=b"), "https://github.com");
        assert_eq!(
            shown_subsection("https://hf.co:8443/x?access_token=S3cr3tS3cr3t#f"),
            "https://hf.co:8443"
        );
        // An unencoded `/` in a password does not make its first half a host.
        assert_eq!(shown_subsection("https://u:pa/ss@h.example/r"), "https://h.example");
        assert_eq!(shown_subsection("origin"), "origin");
        assert_eq!(shown_subsection("tok@mirror?x=1"), "mirror");
        let e = Entry {
            section: "url".into(),
            subsection: "https://u:secretvalue@github.com/".into(),
            key: "insteadof".into(),
            value: String::new(),
            line: 1,
        };
        assert!(!e.locator().contains("secretvalue"));
    }

    #[test]
    fn only_known_formats_or_catalog_hosts_count() {
        let c = cat();
        let ghp = format!("ghp_{}", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2");
        let entry = |section: &str, sub: &str, key: &str, value: &str| Entry {
            section: section.into(),
            subsection: sub.into(),
            key: key.into(),
            value: value.into(),
            line: 1,
        };
        let found = |e: &Entry, remote: Option<&str>| -> Vec<(String, TokenKind)> {
            credentials(&c, e, remote).into_iter().map(|f| (f.class.provider, f.class.kind)).collect()
        };
        // A random password for github.com counts (host); for an in-house server it does not.
        let pw = "Zq8vN2xL0pR4tY7uW1eK5sD9";
        assert_eq!(
            found(&entry("remote", "o", "url", &format!("https://me:{pw}@github.com/o/r")), None),
            [("github".to_owned(), TokenKind::Pat)]
        );
        assert!(
            found(&entry("remote", "o", "url", &format!("https://me:{pw}@git.acme.internal/r")), None)
                .is_empty()
        );
        // A known format counts anywhere, also as the user part.
        assert_eq!(
            found(&entry("remote", "o", "url", &format!("https://{ghp}@git.acme.internal/r")), None).len(),
            1
        );
        // A plain user name, a credential helper, a placeholder: nothing.
        assert!(found(&entry("remote", "o", "url", "https://alice@github.com/o/r"), None).is_empty());
        assert!(found(&entry("credential", "", "helper", "store"), None).is_empty());
        assert!(
            found(&entry("remote", "o", "url", "https://me:${GITHUB_TOKEN}@github.com/o"), None).is_empty()
        );
        // Basic auth is decoded; the bare http section takes the remote's host.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{pw}"));
        let h = entry("http", "", "extraheader", &format!("AUTHORIZATION: basic {basic}"));
        assert_eq!(found(&h, Some("github.com")).len(), 1);
        assert!(found(&h, Some("git.acme.internal")).is_empty());
        let h =
            entry("http", "https://huggingface.co/", "extraheader", &format!("Authorization: Bearer {pw}"));
        assert_eq!(found(&h, None), [("huggingface".to_owned(), TokenKind::ApiKey)]);
        // A header that is not a credential is not read.
        assert!(
            found(&entry("http", "", "extraheader", &format!("X-Request-Id: {pw}")), Some("github.com"))
                .is_empty()
        );
        // The rewrite's base carries the credential.
        assert_eq!(
            found(
                &entry("url", &format!("https://me:{pw}@github.com/"), "insteadof", "https://github.com/"),
                None
            )
            .len(),
            1
        );
    }
}
