//! AI credentials in shell start-up files and dotenv files.
//!
//! Understands the assignment forms people paste keys with: `export NAME=value`,
//! `NAME=value`, `declare -x`, csh `setenv NAME value`, fish `set -gx NAME value`,
//! PowerShell `$env:NAME = "value"` and `[Environment]::SetEnvironmentVariable(...)`.
//! Besides assignments, every line is searched for distinctive key formats, so a key in an
//! alias or a curl command is found too. Windows `setx NAME value` counts as an assignment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::tokens::{Site, classify, scan_text};
use super::{Ctx, Home, TokenSource, rel_path};
use crate::fsview::ReadError;
use crate::secret::Secret;

pub(crate) fn detect_rc(ctx: &mut Ctx<'_>, home: &Home) {
    let files: Vec<PathBuf> = ctx.catalog.env_files.shell_rc.iter().map(|p| rel_path(p)).collect();
    for rel in files {
        scan_file(ctx, home, &rel, TokenSource::ShellRc);
    }
}

pub(crate) fn detect_dotenv(ctx: &mut Ctx<'_>, home: &Home, files: &[PathBuf]) {
    for rel in files {
        // A dotenv linked from another project (or from the home's dotfiles) is found twice
        // by the walk; the first path found, the shallower one, reports it.
        if ctx.claimed_already(&home.tree, rel) {
            continue;
        }
        scan_file(ctx, home, rel, TokenSource::Dotenv);
    }
}

/// Project text files: same line rules, but a file is skipped quietly when it is too large
/// or binary (a repository is full of both). A credential another detector already reported
/// from the same file is not reported again (`Ctx::token`).
pub(crate) fn detect_sources(ctx: &mut Ctx<'_>, home: &Home, files: &[PathBuf]) {
    // Skipping a large file is quiet per file, but the home's errors say it happened.
    let mut too_large = 0usize;
    let mut first_large = None;
    for rel in files {
        if ctx.claimed_already(&home.tree, rel) {
            continue;
        }
        let text = match home.tree.read(rel, ctx.limits.source_file_size) {
            Ok(bytes) if bytes.iter().take(4096).any(|&b| b == 0) => continue,
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(ReadError::TooLarge { .. }) => {
                too_large += 1;
                first_large.get_or_insert(rel);
                continue;
            }
            Err(e) => {
                ctx.read_error(&home.tree, rel, e);
                continue;
            }
        };
        scan_lines(ctx, home, rel, TokenSource::SourceFile, &text);
    }
    if let Some(rel) = first_large {
        let limit = ctx.limits.source_file_size;
        ctx.bound(
            &home.tree,
            rel,
            super::Bound::SourceFileSize,
            format!("{too_large} project file(s) over the {limit}-byte limit were not searched for keys"),
        );
    }
}

fn scan_file(ctx: &mut Ctx<'_>, home: &Home, rel: &Path, source: TokenSource) {
    let Some(text) = ctx.read_text(&home.tree, rel, ctx.limits.small_file) else {
        return;
    };
    ctx.claim(&home.tree, rel);
    scan_lines(ctx, home, rel, source, &text);
}

fn scan_lines(ctx: &mut Ctx<'_>, home: &Home, rel: &Path, source: TokenSource, text: &str) {
    let site = Site { home, rel, source };
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with("//") || trimmed.is_empty() {
            continue;
        }
        if let Some((name, value)) = parse_assignment(trimmed)
            && let Some(class) = classify(ctx.catalog, &value, Some(&name), None)
        {
            {
                seen.insert(value.clone());
                ctx.token(&site, Secret::new(value), class, Some(format!("{name} (line {line_no})")), None);
                continue;
            }
        }
        for (value, class) in scan_text(ctx.catalog, trimmed) {
            if seen.insert(value.to_owned()) {
                ctx.token(&site, Secret::new(value), class, Some(format!("line {line_no}")), None);
            }
        }
    }
}

/// Splits one line into a variable name and its (unquoted) value.
pub(crate) fn parse_assignment(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    // PowerShell: [Environment]::SetEnvironmentVariable("NAME", "value", "User")
    if let Some(rest) = line
        .strip_prefix("[Environment]::SetEnvironmentVariable(")
        .or_else(|| line.strip_prefix("[System.Environment]::SetEnvironmentVariable("))
    {
        let mut parts = rest.split(',').map(|p| unquote(p.trim().trim_end_matches(')')));
        let name = parts.next()?;
        let value = parts.next()?;
        return valid_name(&name).then_some((name, value));
    }
    // PowerShell: $env:NAME = "value"
    if let Some(rest) = line.strip_prefix("$env:").or_else(|| line.strip_prefix("$Env:")) {
        let (name, value) = rest.split_once('=')?;
        let name = name.trim().to_owned();
        return valid_name(&name).then(|| (name, unquote(value.trim())));
    }
    let mut words = line.split_whitespace();
    match words.next() {
        // Windows: setx NAME value [/M] (the value is one argument, quoted when it has spaces)
        Some(w) if w.eq_ignore_ascii_case("setx") || w.eq_ignore_ascii_case("setx.exe") => {
            let name = words.next()?;
            let value = line.splitn(3, char::is_whitespace).nth(2)?.trim_start();
            let value = if value.starts_with(['"', '\'']) {
                unquote(value)
            } else {
                value.split_whitespace().next()?.to_owned()
            };
            return valid_name(name).then(|| (name.to_owned(), value));
        }
        // csh: setenv NAME value
        Some("setenv") => {
            let name = words.next()?;
            let value = line.splitn(3, char::is_whitespace).nth(2)?.trim();
            return valid_name(name).then(|| (name.to_owned(), unquote(value)));
        }
        // fish: set -gx NAME value
        Some("set") => {
            let mut flags = 0;
            let name = words.by_ref().find(|w| {
                if w.starts_with('-') {
                    flags += 1;
                    false
                } else {
                    true
                }
            })?;
            let value = line.split_once(name)?.1.trim();
            return (flags > 0 && valid_name(name) && !value.is_empty())
                .then(|| (name.to_owned(), unquote(value)));
        }
        _ => {}
    }
    // sh: [export|declare -x|typeset -x] NAME=value
    let mut rest = line;
    for prefix in ["export ", "declare -x ", "typeset -x ", "local ", "readonly "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r.trim_start();
        }
    }
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if !valid_name(name) {
        return None;
    }
    Some((name.to_owned(), unquote(value.trim())))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Removes surrounding quotes; for unquoted values, a trailing ` # comment` or `;`.
fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q) {
            return inner.split(q).next().unwrap_or_default().to_owned();
        }
    }
    let v = v.split(" #").next().unwrap_or(v);
    v.trim().trim_end_matches(';').trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::parse_assignment;

    fn check(line: &str, name: &str, value: &str) {
        assert_eq!(parse_assignment(line), Some((name.to_owned(), value.to_owned())), "{line}");
    }

    #[test]
    fn assignment_forms() {
        check("export OPENAI_API_KEY=abc", "OPENAI_API_KEY", "abc");
        check("export OPENAI_API_KEY=\"abc\" # mine", "OPENAI_API_KEY", "abc");
        check("MISTRAL_API_KEY='q w'", "MISTRAL_API_KEY", "q w");
        check("MISTRAL_API_KEY=abc # c", "MISTRAL_API_KEY", "abc");
        check("declare -x GROQ_API_KEY=abc", "GROQ_API_KEY", "abc");
        check("setenv GROQ_API_KEY abc", "GROQ_API_KEY", "abc");
        check("set -gx ANTHROPIC_API_KEY abc", "ANTHROPIC_API_KEY", "abc");
        check("set -x ANTHROPIC_API_KEY 'abc'", "ANTHROPIC_API_KEY", "abc");
        check("$env:OPENAI_API_KEY = \"abc\"", "OPENAI_API_KEY", "abc");
        check("[Environment]::SetEnvironmentVariable(\"HF_TOKEN\", \"abc\", \"User\")", "HF_TOKEN", "abc");
        check("setx OPENAI_API_KEY abc /M", "OPENAI_API_KEY", "abc");
        check("setx.exe GROQ_API_KEY \"abc\"", "GROQ_API_KEY", "abc");
        assert_eq!(parse_assignment("echo hello"), None);
        assert_eq!(parse_assignment("if [ a = b ]; then"), None);
    }
}
