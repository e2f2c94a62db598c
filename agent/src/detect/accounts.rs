//! The provider account a tool's OAuth/session credential was issued to (catalog
//! `[[account]]`): read from the tool's own files, through the home's sandboxed tree like
//! every other read, and never asked of the provider.
//!
//! Runs after the other detectors of a home and attaches the account to what they found of
//! that tool: its OAuth/session credentials from its own credential files (API keys carry no
//! account; grants Claude Code keeps for MCP servers are issued by those servers, not by the
//! tool's provider), or — where none was found but the account is recorded (Claude Code on
//! macOS keeps the credential in the Keychain) — the tool's installs in that home.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::jsonc::{parse, select};
use super::{Ctx, Finding, Home, ProviderAccount, TokenSource, expand, jwt};
use crate::catalog::{Account, FileFormat, TokenKind};
use crate::secret::Secret;

/// Longest account or org name reported: an e-mail address is at most 254 characters; a
/// longer value is not an account a person would recognise.
const MAX_NAME: usize = 320;

pub(crate) fn attach(ctx: &mut Ctx<'_>, home: &Home) {
    let catalog = ctx.catalog;
    for entry in &catalog.accounts {
        // This tool's credential files in this home, by the path findings report.
        let mut files: HashMap<String, (PathBuf, FileFormat)> = HashMap::new();
        for c in catalog.credential_files.iter().filter(|c| c.tool.as_deref() == Some(entry.tool.as_str())) {
            for p in &c.paths {
                for rel in expand(ctx, &home.tree, p) {
                    files.insert(home.tree.display(&rel), (rel, c.format));
                }
            }
        }
        let recorded = if entry.beside { None } else { recorded(ctx, home, entry) };
        // (index, path, locator) of this tool's session credentials found in this home.
        let sessions: Vec<(usize, String, String)> = ctx
            .findings
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Finding::Token(t) if is_session(t) && files.contains_key(&t.path) => {
                    Some((i, t.path.clone(), t.locator.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        let mut parsed: HashMap<String, Option<Value>> = HashMap::new();
        let mut attached = false;
        for (i, path, locator) in sessions {
            let account = match (&files.get(&path), entry.beside) {
                (Some((rel, format)), true) => {
                    if !parsed.contains_key(&path) {
                        let text = ctx.read_text(&home.tree, rel, ctx.limits.large_file);
                        parsed.insert(path.clone(), text.and_then(|t| parse(*format, &t).ok()));
                    }
                    parsed.get(&path).and_then(Option::as_ref).and_then(|v| beside(entry, v, &locator))
                }
                _ => recorded.clone(),
            };
            if let Some(Finding::Token(t)) = ctx.findings.get_mut(i) {
                attached |= account.is_some();
                t.authorized_by = account;
            }
        }
        let Some(account) = recorded.filter(|_| !attached) else { continue };
        for f in &mut ctx.findings {
            if let Finding::App(a) = f
                && a.tool == entry.tool
                && a.user.as_deref() == Some(home.user.as_str())
            {
                a.authorized_by = Some(account.clone());
            }
        }
    }
}

/// An OAuth or session credential in a tool's own credential file or state.
fn is_session(t: &super::TokenFinding) -> bool {
    matches!(t.kind, TokenKind::OauthAccess | TokenKind::OauthRefresh)
        && matches!(t.source, TokenSource::CredentialFile | TokenSource::IdeConfig)
        && t.mcp_server.is_none()
}

/// The account recorded in the entry's own file (the first of its paths that exists).
fn recorded(ctx: &mut Ctx<'_>, home: &Home, entry: &Account) -> Option<ProviderAccount> {
    let format = entry.format?;
    let rels: Vec<PathBuf> = entry.paths.iter().flat_map(|p| expand(ctx, &home.tree, p)).collect();
    let rel = rels.into_iter().find(|r| home.tree.exists(r))?;
    let text = ctx.read_text(&home.tree, &rel, ctx.limits.large_file)?;
    let value = match parse(format, &text) {
        Ok(v) => v,
        Err(e) => {
            ctx.error(&home.tree, &rel, e);
            return None;
        }
    };
    let Some(pointer) = &entry.jwt else { return from(entry, &value) };
    let token = select(&value, pointer).first().and_then(|(_, v)| v.as_str()).map(Secret::new)?;
    match jwt::payload(&token) {
        Ok(claims) => from(entry, &Value::Object(claims)),
        Err(e) => {
            ctx.error(
                &home.tree,
                &rel,
                format!("{}: {e}; its account was not read", pointer.trim_start_matches('/')),
            );
            None
        }
    }
}

/// `account` and `org` at the entry's pointers in `value`.
fn from(entry: &Account, value: &Value) -> Option<ProviderAccount> {
    let at = |p: &str| select(value, p).first().and_then(|(_, v)| name(v));
    Some(ProviderAccount { account: at(&entry.account)?, org: entry.org.as_deref().and_then(at) })
}

/// `account` and `org` as keys of the object holding the credential at `locator`.
fn beside(entry: &Account, value: &Value, locator: &str) -> Option<ProviderAccount> {
    let parent = locator.rsplit_once('/').map_or("", |(p, _)| p);
    let key = |k: &str| select(value, &format!("{parent}/{}", k.replace('~', "~0").replace('/', "~1")));
    let at = |k: &str| key(k).first().and_then(|(_, v)| name(v));
    Some(ProviderAccount { account: at(&entry.account)?, org: entry.org.as_deref().and_then(at) })
}

/// A recorded name: a non-empty string of reasonable length without control characters
/// (`null`, as Gemini CLI writes `active` when signed out, is no account).
fn name(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(account: &str, org: Option<&str>, beside: bool) -> Account {
        Account {
            tool: "t".into(),
            paths: vec![],
            format: None,
            jwt: None,
            account: account.into(),
            org: org.map(Into::into),
            beside,
            source: String::new(),
        }
    }

    #[test]
    fn account_and_org_at_their_pointers() {
        let v =
            serde_json::json!({"oauthAccount": {"emailAddress": " ana@gmail.com ", "organizationName": ""}});
        let e = entry("/oauthAccount/emailAddress", Some("/oauthAccount/organizationName"), false);
        // A blank org is no org; the account is trimmed.
        assert_eq!(from(&e, &v), Some(ProviderAccount { account: "ana@gmail.com".into(), org: None }));
        assert_eq!(
            from(&entry("/active", None, false), &serde_json::json!({"active": null, "old": ["x@y.z"]})),
            None
        );
        let long = serde_json::json!({"a": "x".repeat(MAX_NAME + 1), "b": "two\nlines"});
        assert_eq!(from(&entry("/a", None, false), &long), None);
        assert_eq!(from(&entry("/b", None, false), &long), None);
    }

    #[test]
    fn beside_reads_the_credentials_own_object() {
        let v = serde_json::json!({
            "github.com:Iv1.b507a08c87ecfe98": {"user": "octo", "oauth_token": "t"},
            "github.com": {"oauth_token": "t"},
        });
        let e = entry("user", None, true);
        let got = beside(&e, &v, "/github.com:Iv1.b507a08c87ecfe98/oauth_token");
        assert_eq!(got.map(|a| a.account).as_deref(), Some("octo"));
        assert_eq!(beside(&e, &v, "/github.com/oauth_token"), None);
    }
}
