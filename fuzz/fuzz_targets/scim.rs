//! SCIM from identity providers: PATCH bodies and `filter` expressions. A patch applies or
//! is refused with a SCIM error, and a patched person still has a usable userName; a filter
//! that parses, written back, parses to the same filter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_server::http::scim::apply_patch;
use sightline_server::http::scim::filter::parse;
use sightline_server::store::Person;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = parse(&text) {
        let again = f.to_string();
        assert_eq!(parse(&again).ok().as_ref(), Some(&f), "{again}");
    }
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let person = Person {
            id: "p1".into(),
            user_name: "alice@example.com".into(),
            external_id: None,
            display_name: None,
            emails: vec!["alice@example.com".into()],
            active: true,
            created_at_ms: 1,
            modified_at_ms: 1,
            deprovisioned_at_ms: None,
            deleted_at_ms: None,
            ..Default::default()
        };
        if let Ok(p) = apply_patch(person, &body) {
            assert!(!p.user_name.trim().is_empty() && p.user_name.trim() == p.user_name, "{:?}", p.user_name);
            assert_eq!(p.id, "p1", "a patch cannot change the id");
        }
    }
});
