//! Okta System Log and Entra sign-in imports. Whatever the file holds, the import is all
//! or nothing with an error that says which event; and the two shapes an export comes in —
//! one JSON array, or JSON lines — give the same sign-ins for the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_server::signins::{Source, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for source in [Source::Okta, Source::Entra] {
        let as_given = parse(source, text);
        if let Ok((signins, _)) = &as_given {
            for s in signins {
                assert!(!s.id.is_empty() && !s.user_name.is_empty(), "{s:?}");
            }
        }
        // The same events as JSON lines agree with the array. (Only events that are objects:
        // a line that is itself an array reads as a whole export, a different document.)
        if let Ok(serde_json::Value::Array(events)) = serde_json::from_str::<serde_json::Value>(text)
            && !events.is_empty()
            && events.iter().all(serde_json::Value::is_object)
        {
            let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
            let as_lines = parse(source, &lines.join("\n"));
            match (&as_given, &as_lines) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("array and JSON lines disagree: {a:?} vs {b:?}"),
            }
        }
    }
});
