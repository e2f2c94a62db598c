//! Property lists read from files the agent does not trust (LaunchAgents, app bundles,
//! managed preferences, an image's system files), built only once they are known small.
//!
//! `plist` refuses reference cycles in a binary plist but not shared references: a few
//! hundred bytes of arrays that each reference the next twice expand to 2^30 values when
//! the document is built. So the document is first walked as an event stream, which costs
//! one step per value it expands to, stopping at [`MAX_VALUES`] values or [`MAX_DEPTH`]
//! levels of nesting; only then is the `plist::Value` built.

use std::io::Cursor;

use plist::stream::{Event, Reader};

/// Values (strings, numbers, collection starts and ends…) a document may expand to. App
/// bundles' `Info.plist` and LaunchAgents hold tens to hundreds.
pub const MAX_VALUES: usize = 100_000;

/// Nesting depth at most: building the value recurses once per level.
pub const MAX_DEPTH: usize = 128;

/// Why a property list was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlistReadError {
    #[error("property list expands to more than {MAX_VALUES} values")]
    TooManyValues,
    #[error("property list is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("not a property list ({0})")]
    Malformed(#[from] plist::Error),
}

/// Parses a binary, XML or ASCII property list within the bounds above.
pub fn from_bytes(bytes: &[u8]) -> Result<plist::Value, PlistReadError> {
    let mut depth = 0usize;
    for (count, event) in Reader::new(Cursor::new(bytes)).enumerate() {
        if count >= MAX_VALUES {
            return Err(PlistReadError::TooManyValues);
        }
        match event? {
            Event::StartArray(_) | Event::StartDictionary(_) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(PlistReadError::TooDeep);
                }
            }
            Event::EndCollection => {
                depth = depth.saturating_sub(1);
                // The builder reads one value: what follows the top-level value is ignored
                // by it, so the walk stops there too.
                if depth == 0 {
                    break;
                }
            }
            _ if depth == 0 => break,
            _ => {}
        }
    }
    Ok(plist::Value::from_reader(Cursor::new(bytes))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary plist (the format of CoreFoundation's `CFBinaryPList.c`): `bplist00`, the
    /// objects, their offset table, and a 32-byte trailer. Each of `levels` arrays holds
    /// two references to the next; the last object is the string "x". 2^levels leaves.
    fn laughs(levels: u8) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = Vec::new();
        for i in 0..levels {
            offsets.push(out.len());
            // 0xA2: an array of two object references, one byte each.
            out.extend_from_slice(&[0xA2, i + 1, i + 1]);
        }
        offsets.push(out.len());
        out.extend_from_slice(&[0x51, b'x']); // ASCII string of length 1
        let table_at = out.len();
        for o in &offsets {
            out.push(u8::try_from(*o).expect("offsets fit one byte"));
        }
        // Trailer: 5 unused bytes, sort version, offset size, reference size, object
        // count, top object, offset table position (big-endian u64s).
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1]);
        out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&(table_at as u64).to_be_bytes());
        out
    }

    #[test]
    fn shared_references_that_expand_past_the_bound_are_refused() {
        // Small and honest: 2^3 leaves, built as plist itself would.
        let small = from_bytes(&laughs(3)).unwrap();
        let mut leaves = 0;
        let mut stack = vec![&small];
        while let Some(v) = stack.pop() {
            match v {
                plist::Value::Array(a) => stack.extend(a.iter()),
                plist::Value::String(s) => {
                    assert_eq!(s, "x");
                    leaves += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(leaves, 8);
        // 120 bytes that expand to 2^30 strings: refused after a bounded walk.
        let bomb = laughs(30);
        assert!(bomb.len() < 200);
        assert!(matches!(from_bytes(&bomb), Err(PlistReadError::TooManyValues)));
    }

    #[test]
    fn deep_nesting_and_garbage_are_refused_and_ordinary_lists_read() {
        let deep = format!(
            "<plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(MAX_DEPTH + 1),
            "</array>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(from_bytes(deep.as_bytes()), Err(PlistReadError::TooDeep)));
        assert!(matches!(from_bytes(b"bplist00 not really"), Err(PlistReadError::Malformed(_))));
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>Label</key><string>com.example.agent</string>
<key>ProgramArguments</key><array><string>/bin/true</string></array></dict></plist>"#;
        let v = from_bytes(xml).unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(d.get("Label").and_then(plist::Value::as_string), Some("com.example.agent"));
        // The same document in binary form, as plist writes it.
        let mut bin = Vec::new();
        v.to_writer_binary(&mut bin).unwrap();
        assert!(bin.starts_with(b"bplist00"));
        assert_eq!(from_bytes(&bin).unwrap(), v);
    }
}
