//! Collector directives. Anything off the wire is refused without a panic; a sealed body
//! opens exactly when it names a known action, a target, an unexpired time and an id of the
//! one format the collector issues — and such an id is always a single, plain path
//! component (agents name quarantine directories after it).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_proto::directive::{self, DirectiveId};
use sightline_proto::pb;

fn plain_component(id: &DirectiveId) {
    let p = std::path::Path::new(id.as_str());
    assert_eq!(p.components().count(), 1, "{id}");
    assert!(matches!(p.components().next(), Some(std::path::Component::Normal(_))), "{id}");
    assert!(!id.as_str().contains(['/', '\\', ':', '.']), "{id}");
}

fuzz_target!(|data: &[u8]| {
    let key = &*common::KEY;
    if let Ok(d) = pb::Directive::decode(data) {
        let _ = directive::open(&d, &key.spki, "dev", 0);
        assert!(directive::claimed_id(&d).chars().count() <= 64);
    }
    if let Ok(body) = pb::DirectiveBody::decode(data) {
        let sealed = directive::seal(&body, |m| key.sign(m)).expect("signing");
        let known =
            pb::DirectiveAction::try_from(body.action).is_ok_and(|a| a != pb::DirectiveAction::Unspecified);
        let valid_id = DirectiveId::parse(&body.id);
        let expect = known && !body.target.is_empty() && body.expires_at_ms > 0 && valid_id.is_ok();
        let opened = directive::open(&sealed, &key.spki, &body.device_id, 0);
        assert_eq!(opened.is_ok(), expect, "{opened:?}");
        if let Ok(id) = valid_id {
            plain_component(&id);
        }
        assert!(directive::open(&sealed, &key.spki, &format!("{}x", body.device_id), 0).is_err());
    }
    if let Ok(id) = DirectiveId::parse(&String::from_utf8_lossy(data)) {
        plain_component(&id);
    }
});
