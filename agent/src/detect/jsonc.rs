//! Parsing the config formats detectors read into one JSON value model.
//!
//! VS Code and Zed write JSON with comments and trailing commas (JSONC); Codex writes
//! TOML; aider, Continue and Goose write YAML; Hugging Face's `stored_tokens` is INI. Everything becomes a `serde_json::Value`
//! so pointer lookups work the same way for all of them.

use serde_json::{Map, Value};

use crate::catalog::FileFormat;

/// Parses text in the given format.
pub(crate) fn parse(format: FileFormat, text: &str) -> Result<Value, String> {
    match format {
        FileFormat::Json => serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| format!("malformed JSON: {e}")),
        FileFormat::Jsonc => serde_json::from_str(&strip_jsonc(text.trim_start_matches('\u{feff}')))
            .map_err(|e| format!("malformed JSON: {e}")),
        FileFormat::Toml => {
            let v: toml::Value =
                toml::from_str(text).map_err(|e| format!("malformed TOML: {}", e.message()))?;
            serde_json::to_value(v).map_err(|e| format!("TOML value not representable: {e}"))
        }
        FileFormat::Yaml => {
            // Non-string keys or tags have no JSON form: such a file is reported, not guessed at.
            serde_yaml_ng::from_str::<Value>(text).map_err(|e| format!("malformed or unsupported YAML: {e}"))
        }
        FileFormat::Ini => Ok(parse_ini(text)),
        FileFormat::Text => Ok(Value::String(text.trim().to_owned())),
        // Binary: read by `statedb` from the file's bytes, never as text.
        FileFormat::SqliteItems => Err("an SQLite database is not a text config".to_owned()),
    }
}

/// Removes `//` and `/* */` comments and trailing commas outside strings. Linear time:
/// the look-ahead after a comma only skips whitespace and comments, which are then
/// skipped again by the main loop.
pub(crate) fn strip_jsonc(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.extend_from_slice(&b[start..i]);
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                out.push(b' ');
            }
            b',' => {
                if !matches!(b.get(skip_insignificant(b, i + 1)), Some(b'}' | b']')) {
                    out.push(b',');
                }
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII delimiters were removed, so the bytes are still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Index of the next byte that is not whitespace or inside a comment.
fn skip_insignificant(b: &[u8], mut i: usize) -> usize {
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(b.len());
        } else {
            return i;
        }
    }
}

/// INI as `{section: {key: value}}`; keys before any section go under `""`.
fn parse_ini(text: &str) -> Value {
    let mut root = Map::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let entry = root.entry(section.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
            }
        }
    }
    Value::Object(root)
}

/// Resolves a JSON pointer whose segments may be `*` (every key or element), returning
/// each match with its concrete pointer.
pub(crate) fn select<'v>(root: &'v Value, pointer: &str) -> Vec<(String, &'v Value)> {
    let mut current = vec![(String::new(), root)];
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let mut next = Vec::new();
        for (path, v) in current {
            match (v, seg.as_str()) {
                (Value::Object(m), "*") => {
                    next.extend(m.iter().map(|(k, v)| (format!("{path}/{}", escape(k)), v)));
                }
                (Value::Array(a), "*") => {
                    next.extend(a.iter().enumerate().map(|(i, v)| (format!("{path}/{i}"), v)))
                }
                (Value::Object(m), key) => {
                    if let Some(v) = m.get(key) {
                        next.push((format!("{path}/{}", escape(key)), v));
                    }
                }
                (Value::Array(a), idx) => {
                    if let Some(v) = idx.parse::<usize>().ok().and_then(|i| a.get(i)) {
                        next.push((format!("{path}/{idx}"), v));
                    }
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let text = "{\n // c\n \"a\": \"x//y\", /* b */ \"b\": [1, 2,],\n}";
        let v = parse(FileFormat::Jsonc, text).unwrap();
        assert_eq!(v["a"], "x//y");
        assert_eq!(v["b"][1], 2);
    }

    #[test]
    fn wildcard_pointers() {
        let v: Value = serde_json::from_str(
            r#"{"github.com:Iv1": {"oauth_token": "t1"}, "x/y": {"oauth_token": "t2"}}"#,
        )
        .unwrap();
        let got: Vec<_> =
            select(&v, "/*/oauth_token").into_iter().map(|(p, v)| (p, v.as_str().unwrap())).collect();
        assert_eq!(
            got,
            vec![("/github.com:Iv1/oauth_token".into(), "t1"), ("/x~1y/oauth_token".into(), "t2")]
        );
        assert!(select(&v, "/missing/x").is_empty());
    }

    #[test]
    fn ini_and_toml() {
        let v = parse(FileFormat::Ini, "[work]\nhf_token = abc\n").unwrap();
        assert_eq!(v["work"]["hf_token"], "abc");
        let v = parse(FileFormat::Toml, "[mcp_servers.gh]\ncommand = \"npx\"\n").unwrap();
        assert_eq!(v["mcp_servers"]["gh"]["command"], "npx");
        assert!(parse(FileFormat::Json, "{").unwrap_err().contains("malformed JSON"));
    }
}
