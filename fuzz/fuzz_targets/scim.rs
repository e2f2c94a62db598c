//! SCIM from identity providers: PATCH bodies and `filter` expressions. A patch applies or
//! is refused with a SCIM error, and a patched person still has a usable userName; a filter
//! that parses names a user that, written back as a filter, parses to the same name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_server::http::scim::{apply_patch, user_name_filter};
use sightline_server::store::Person;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = user_name_filter(&text) {
        let again = format!("userName eq {}", serde_json::to_string(&name).expect("a string"));
        assert_eq!(user_name_filter(&again).ok().as_deref(), Some(name.as_str()), "{again}");
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
