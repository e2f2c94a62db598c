//! fish universal variables (`~/.config/fish/fish_variables`): `set -Ux OPENAI_API_KEY …`
//! keeps the key here, not in `config.fish`.
//!
//! Lines are `SETUVAR [--export] [--path] NAME:value` (fish 3; fish 2 wrote `SET` and
//! `SET_EXPORT`), with every character of the value but ASCII letters, digits, `/` and `_`
//! escaped as `\xHH` (`\uXXXX` / `\UXXXXXXXX` beyond ASCII) and list elements separated by
//! `\x1e` (fish-shell `src/env_universal_common.rs`, `full_escape`). Values are unescaped
//! before they are matched, so the key is fingerprinted as it is used.

use super::tokens::Site;
use super::{Ctx, Home, TokenSource, rel_path};

pub(crate) fn detect(ctx: &mut Ctx<'_>, home: &Home) {
    for path in ctx.catalog.env_files.fish_variables.clone() {
        let rel = rel_path(&path);
        let Some(text) = ctx.read_text(&home.tree, &rel, ctx.limits.small_file) else {
            continue;
        };
        // Universal variables are shell configuration: they reach every fish session's
        // environment as a start-up file's `set -gx` would.
        let site = Site { home, rel: &rel, source: TokenSource::ShellRc };
        for (i, line) in text.lines().enumerate() {
            let Some((name, raw)) = parse_line(line) else { continue };
            let value = unescape(raw);
            let locator = format!("{name} (line {})", i + 1);
            for element in value.split('\u{1e}') {
                ctx.named_value(&site, name, element, locator.clone());
            }
        }
    }
}

/// `SETUVAR --export NAME:escaped` → (`NAME`, `escaped`).
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let mut rest = ["SETUVAR ", "SET_EXPORT ", "SET "].iter().find_map(|p| line.strip_prefix(p))?;
    while let Some(r) = rest.strip_prefix("--export ").or_else(|| rest.strip_prefix("--path ")) {
        rest = r;
    }
    let (name, value) = rest.split_once(':')?;
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some((name, value))
}

/// Undoes fish's `full_escape`. A malformed escape is kept as written.
fn unescape(s: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let width = match bytes.get(i..i + 2) {
            Some(b"\\x") => 2,
            Some(b"\\u") => 4,
            Some(b"\\U") => 8,
            Some(b"\\\\") => {
                out.push(b'\\');
                i += 2;
                continue;
            }
            _ => 0,
        };
        let code = (width > 0)
            .then(|| s.get(i + 2..i + 2 + width))
            .flatten()
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match code {
            // `\xHH` is one byte (fish writes non-UTF-8 bytes this way too).
            Some(b) if width == 2 => out.push(b as u8),
            Some(c) => {
                let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            None => {
                out.push(bytes[i]);
                i += 1;
                continue;
            }
        }
        i += 2 + width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_escapes() {
        assert_eq!(
            parse_line("SETUVAR --export OPENAI_API_KEY:sk\\x2dx"),
            Some(("OPENAI_API_KEY", "sk\\x2dx"))
        );
        assert_eq!(parse_line("SETUVAR --export --path P:/a"), Some(("P", "/a")));
        assert_eq!(parse_line("SET_EXPORT A:b"), Some(("A", "b")));
        assert_eq!(parse_line("# VERSION: 3.0"), None);
        assert_eq!(parse_line("SETUVAR bad name:x"), None);
        assert_eq!(unescape("sk\\x2dproj\\x2dAb_9/z"), "sk-proj-Ab_9/z");
        assert_eq!(unescape("a\\x1eb"), "a\u{1e}b");
        assert_eq!(unescape("caf\\u00e9 \\U0001f600"), "café 😀");
        assert_eq!(unescape("\\xc3\\xa9"), "é");
        // Truncated or non-hex escapes stay as written.
        assert_eq!(unescape("a\\x2"), "a\\x2");
        assert_eq!(unescape("a\\xzz\\\\"), "a\\xzz\\");
    }
}
