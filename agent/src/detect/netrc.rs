//! AI credentials in `.netrc` (and Windows' `_netrc`): `machine api.openai.com login x
//! password sk-…`, which curl (`--netrc`), git and Python's `netrc` module hand to that host.
//!
//! The file is a stream of whitespace-separated tokens, entries on one line or many:
//! `machine HOST`, `default`, `login`, `account` and `password` each followed by a value;
//! `macdef NAME` starts a macro whose body runs to the next empty line and is skipped.
//! Values may be double-quoted with backslash escapes (curl `lib/netrc.c`). A password is
//! classified by its format first; a value without a known format counts only for a
//! catalogued AI API host (`[[api_host]]`), as that host's provider's key.

use super::tokens::{Site, classify};
use super::{Ctx, Home, TokenSource, rel_path};
use crate::catalog::TokenKind;
use crate::secret::Secret;

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    for path in ctx.catalog.env_files.netrc.clone() {
        let rel = rel_path(&path);
        let Some(text) = ctx.read_text(&home.tree, &rel, ctx.limits.small_file) else {
            continue;
        };
        let site = Site { home, rel: &rel, source: TokenSource::Netrc };
        for p in passwords(&text) {
            let provider =
                p.machine.as_deref().and_then(|m| ctx.catalog.api_hosts.get(&m.to_ascii_lowercase()));
            let fallback = provider.map(|p| (p.as_str(), TokenKind::ApiKey));
            let Some(class) = classify(ctx.catalog, &p.value, None, fallback) else { continue };
            let entry = p.machine.as_deref().map_or("default".to_owned(), |m| format!("machine {m}"));
            let locator = format!("{entry} (line {})", p.line);
            ctx.token(&site, Secret::new(p.value), class, Some(locator), None);
        }
    }
}

/// A password and the entry it belongs to (None: the `default` entry).
#[derive(Debug, PartialEq, Eq)]
struct Password {
    machine: Option<String>,
    value: String,
    line: usize,
}

fn passwords(text: &str) -> Vec<Password> {
    let mut out = Vec::new();
    // The entry being read: None before the first `machine`/`default`.
    let mut entry: Option<Option<String>> = None;
    let mut in_macro = false;
    // A keyword waiting for its value (it may be on the next line).
    let mut pending: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        if in_macro {
            in_macro = !line.trim().is_empty();
            continue;
        }
        for tok in tokens(line) {
            if let Some(keyword) = pending.take() {
                match keyword.as_str() {
                    "machine" => entry = Some(Some(tok)),
                    "password" => {
                        if let Some(machine) = &entry {
                            out.push(Password { machine: machine.clone(), value: tok, line: i + 1 });
                        }
                    }
                    "macdef" => {
                        // The body starts on the next line and runs to an empty one.
                        in_macro = true;
                        break;
                    }
                    _ => {} // login, account
                }
                continue;
            }
            match tok.as_str() {
                "default" => entry = Some(None),
                "machine" | "login" | "account" | "password" | "macdef" => pending = Some(tok),
                _ => {}
            }
        }
    }
    out
}

/// The tokens of one line; `"…"` is one token with `\"`, `\\`, `\n`, `\r`, `\t` escapes.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => tok.push('\n'),
                        Some('r') => tok.push('\r'),
                        Some('t') => tok.push('\t'),
                        Some(o) => tok.push(o),
                        None => {}
                    },
                    o => tok.push(o),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                tok.push(c);
                chars.next();
            }
        }
        out.push(tok);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(machine: Option<&str>, value: &str, line: usize) -> Password {
        Password { machine: machine.map(str::to_owned), value: value.to_owned(), line }
    }

    #[test]
    fn entries_one_line_many_lines_default_and_macros() {
        let text = "machine a.example login me password p1\n\
                    machine b.example\n  login me\n  password\n  \"p 2\\\"x\"\n\
                    macdef init\npassword inside-macro\nmachine c.example password p3\n\n\
                    default login anon password p4\n";
        assert_eq!(
            passwords(text),
            vec![pw(Some("a.example"), "p1", 1), pw(Some("b.example"), "p 2\"x", 5), pw(None, "p4", 10)]
        );
        // A password before any entry belongs to none.
        assert!(passwords("password orphan\n").is_empty());
        assert_eq!(tokens(r#"  a "b c"  "d\\e" "#), vec!["a", "b c", "d\\e"]);
    }
}
