//! Deciding whether a value is an AI credential, and of which provider and kind.
//!
//! Order of evidence: a key format (a distinctive prefix or marker) wins; then the name of
//! the variable or field holding it (`MISTRAL_API_KEY=`); then what the credential file's
//! catalog entry says the field is. Placeholders and example values are never findings.

use std::path::Path;

use super::{Ctx, Finding, Home, TokenFinding, TokenSource};
use crate::catalog::{Catalog, TokenKind};
use crate::secret::Secret;

/// A classified credential: who issued it and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    pub provider: String,
    pub kind: TokenKind,
}

/// Classifies a value found under an optional variable/field name.
pub(crate) fn classify(
    catalog: &Catalog,
    value: &str,
    name: Option<&str>,
    fallback: Option<(&str, TokenKind)>,
) -> Option<Class> {
    let value = value.trim();
    if is_placeholder(catalog, value) {
        return None;
    }
    if let Some(f) = catalog.classify_value(value) {
        return Some(Class { provider: f.provider.clone(), kind: f.kind });
    }
    if !looks_secret(catalog, value) {
        return None;
    }
    if let Some((provider, kind)) = name.and_then(|n| catalog.env_vars.get(n)) {
        return Some(Class { provider: provider.clone(), kind: kind.unwrap_or(TokenKind::ApiKey) });
    }
    fallback.map(|(provider, kind)| Class { provider: provider.to_owned(), kind })
}

/// Finds key-format matches anywhere in a line of free text.
pub(crate) fn scan_text<'t>(catalog: &Catalog, text: &'t str) -> Vec<(&'t str, Class)> {
    let mut out = Vec::new();
    for caps in catalog.key_scan.captures_iter(text) {
        let Some(m) = caps.get(1) else { continue };
        if let Some(class) = classify(catalog, m.as_str(), None, None) {
            out.push((m.as_str(), class));
        }
    }
    out
}

/// Example values, references to other variables and obviously fake keys.
pub(crate) fn is_placeholder(catalog: &Catalog, value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if value.is_empty() || value.starts_with('$') || value.starts_with('%') {
        return true;
    }
    if catalog.placeholders.contains.iter().any(|p| lower.contains(p.as_str())) {
        return true;
    }
    // A long run of one character ("sk-aaaaaaaa…", "0000…") is a template, not a key.
    let mut run = 1;
    let bytes = value.as_bytes();
    for w in bytes.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 8 {
            return true;
        }
    }
    false
}

/// Whether a value without a known format is shaped like a secret at all.
pub(crate) fn looks_secret(catalog: &Catalog, value: &str) -> bool {
    value.len() >= catalog.placeholders.min_len
        && value.len() <= 4096
        && !value.chars().any(char::is_whitespace)
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

/// Whether a value with no known format or telling name still looks like a random secret:
/// its longest run of letters and digits is at least 16 long, mixes letters and digits, is
/// not word-like (at most 40 % vowels among its letters) and carries at least 3.2 bits of
/// entropy per character; a hex run counts from 32 digits. Paths, package names, versions,
/// UUIDs and words with a year in them are not; about 19 random 24-character keys in 20 are.
pub(crate) fn high_entropy(catalog: &Catalog, value: &str) -> bool {
    let value = value.trim();
    if value.len() > 4096 || value.chars().any(char::is_whitespace) || is_placeholder(catalog, value) {
        return false;
    }
    if is_uuid(value) {
        return false;
    }
    // Runs of the base64 and base64url alphabets: `-` and `_` belong to a key, while `/`
    // and `.` separate path and package segments.
    let run = value
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_')))
        .max_by_key(|r| r.len())
        .unwrap_or_default()
        .trim_matches(['-', '_']);
    if run.len() < 16 {
        return false;
    }
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    let letters: Vec<u8> = run.bytes().filter(u8::is_ascii_alphabetic).collect();
    if digits == 0 || letters.len() < 2 {
        return false;
    }
    // Words and numbers joined by dashes (`mcp-server-github-2024`, `x86_64-unknown-linux`)
    // are names, not keys: all words, or many short pieces. (In a random base64url key a
    // separator is one character in 32.)
    let pieces: Vec<&str> = run.split(['-', '_']).filter(|w| !w.is_empty()).collect();
    if pieces.len() > 1
        && (pieces
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_alphabetic()) || w.bytes().all(|b| b.is_ascii_digit()))
            || (pieces.len() >= 4 && run.len() / pieces.len() < 8))
    {
        return false;
    }
    if run.bytes().all(|b| b.is_ascii_hexdigit()) {
        return run.len() >= 32 && entropy(run) >= 3.0;
    }
    let vowels = letters.iter().filter(|b| b"aeiouAEIOU".contains(b)).count();
    vowels * 10 <= letters.len() * 4 && entropy(run) >= 3.2
}

/// `8-4-4-4-12` hex digits: an identifier, not a secret.
fn is_uuid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Shannon entropy of the bytes, in bits per byte.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| -(f64::from(c) / n) * (f64::from(c) / n).log2()).sum()
}

/// Variable or header names that conventionally hold credentials.
pub(crate) fn secret_like_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "AUTH", "CREDENTIAL", "BEARER"]
        .iter()
        .any(|w| upper.contains(w))
}

/// Where credentials are being read from: one file of one home.
pub(crate) struct Site<'a> {
    pub home: &'a Home,
    pub rel: &'a Path,
    pub source: TokenSource,
}

impl Ctx<'_> {
    /// A value set under a variable name (an environment entry): the value itself when its
    /// name or format says it is a credential, else any key formats inside it.
    pub(crate) fn named_value(&mut self, site: &Site<'_>, name: &str, value: &str, locator: String) {
        if let Some(class) = classify(self.catalog, value, Some(name), None) {
            return self.token(site, Secret::new(value), class, Some(locator), None);
        }
        for (key, class) in scan_text(self.catalog, value) {
            self.token(site, Secret::new(key), class, Some(locator.clone()), None);
        }
    }

    /// Records a token finding; the value is fingerprinted here and dropped.
    ///
    /// A credential another detector already reported from the same file is not reported
    /// again by the source-file sweep. Two different credentials that would share an
    /// identity (path, locator, provider: two keys in one argument or on one line) are told
    /// apart by a `#2`, `#3`… on the locator, in the order they were found.
    pub(crate) fn token(
        &mut self,
        site: &Site<'_>,
        value: Secret,
        class: Class,
        locator: Option<String>,
        mcp_server: Option<&str>,
    ) {
        let fingerprint = self.fp.fingerprint(&value);
        let path = site.home.tree.display(site.rel);
        if site.source == TokenSource::SourceFile {
            if self.claimed.get(&path).is_some_and(|c| c.contains(&fingerprint)) {
                return;
            }
        } else {
            self.claimed.entry(path.clone()).or_default().insert(fingerprint.clone());
        }
        let mut locator = locator;
        if let Some(base) = locator.clone() {
            let taken = |loc: &Option<String>, findings: &[Finding]| {
                findings.iter().any(|f| {
                    matches!(f, Finding::Token(t) if t.path == path
                        && t.provider == class.provider
                        && t.locator == *loc
                        && t.fingerprint != fingerprint)
                })
            };
            let mut n = 1;
            while taken(&locator, &self.findings) {
                n += 1;
                locator = Some(format!("{base}#{n}"));
            }
        }
        self.findings.push(Finding::Token(TokenFinding {
            provider: class.provider,
            kind: class.kind,
            user: Some(site.home.user.clone()),
            path,
            source: site.source,
            fingerprint,
            locator,
            mcp_server: mcp_server.map(str::to_owned),
            // Set by `accounts`, which runs after every detector of the home.
            authorized_by: None,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn formats_names_and_fallbacks() {
        let c = cat();
        let hf = format!("hf_{}", "AbCdEfGhIjKlMnOpQrStUvWxYz01234567");
        assert_eq!(classify(&c, &hf, None, None).unwrap().provider, "huggingface");
        let m = classify(&c, "Zq8vN2xL0pR4tY7uW1eK5sD9", Some("MISTRAL_API_KEY"), None).unwrap();
        assert_eq!((m.provider.as_str(), m.kind), ("mistral", TokenKind::ApiKey));
        assert!(classify(&c, "Zq8vN2xL0pR4tY7uW1eK5sD9", Some("PATH"), None).is_none());
        let f = classify(&c, "Zq8vN2xL0pR4tY7uW1eK5sD9", None, Some(("codeium", TokenKind::ApiKey))).unwrap();
        assert_eq!(f.provider, "codeium");
    }

    #[test]
    fn placeholders_are_not_credentials() {
        let c = cat();
        for v in [
            "your-api-key-here",
            "sk-xxxxxxxxxxxxxxxxxxxxxxxx",
            "${OPENAI_API_KEY}",
            "$OPENAI_API_KEY",
            "<paste key>",
            "changeme",
            "short1",
        ] {
            assert!(classify(&c, v, Some("OPENAI_API_KEY"), None).is_none(), "{v}");
        }
        // Editor and template variable syntaxes, with digits so they look secret-shaped.
        for v in [
            "${env:OPENAI_API_KEY_2}",
            "${input:openai_key_2}",
            "${OPENAI_API_KEY_2}",
            "$OPENAI_API_KEY_2",
            "{{OPENAI_API_KEY_2}}",
            "<YOUR_OPENAI_KEY_2>",
            "%OPENAI_API_KEY_2%",
        ] {
            assert!(is_placeholder(&c, v), "{v}");
            assert!(looks_secret(&c, v), "{v}: the shape alone would pass");
            assert!(!high_entropy(&c, v), "{v}");
            assert!(
                classify(&c, v, Some("OPENAI_API_KEY"), Some(("openai", TokenKind::ApiKey))).is_none(),
                "{v}"
            );
        }
        let fake_format = format!("hf_{}", "a".repeat(34));
        assert!(classify(&c, &fake_format, None, None).is_none());
    }

    #[test]
    fn random_values_look_secret_and_names_do_not() {
        let c = cat();
        for secret in [
            "Zq8vN2xL0pR4tY7uW1eK5sD9",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "lin_api_7Hk2Qw9Zp4Lx8Nv3Bc6Rt1Ys5Mf0Gd",
            "k3Jx9QpL2mN7vR4tW8yZ1bC6",
            "Xq7kL2m9Pz4Rt8-Wv3Ny6bH1s",
        ] {
            assert!(high_entropy(&c, secret), "{secret}");
        }
        for name in [
            "@modelcontextprotocol/server-filesystem",
            "ghcr.io/github/github-mcp-server",
            "123e4567-e89b-12d3-a456-426614174000",
            "/home/alice/projects/webapp",
            "ProductionDatabase2024",
            "x86_64-unknown-linux-gnu",
            "Version20241203Release",
            "1234567890123456",
            "sk-xxxxxxxxxxxxxxxxxxxxxxxx1",
            "https://mcp.linear.app/sse",
            "a b c d e f g h i j k l m n o p 1 2 3",
        ] {
            assert!(!high_entropy(&c, name), "{name}");
        }
    }

    #[test]
    fn text_scan_respects_token_boundaries() {
        let c = cat();
        let key = format!("gsk_{}", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4Cd5Ef6Gh7I");
        assert_eq!(key.len(), 56);
        let line = format!("alias g='GROQ={key} groq'");
        let found = scan_text(&c, &line);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.provider, "groq");
        assert!(scan_text(&c, &format!("x{key}x")).is_empty());
    }
}
