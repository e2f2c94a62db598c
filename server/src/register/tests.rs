use super::*;
use crate::store::{ConnectorDevice, Profile};

fn person(id: &str, user_name: &str) -> Person {
    Person {
        id: id.into(),
        user_name: user_name.into(),
        external_id: None,
        display_name: None,
        emails: vec![user_name.to_lowercase()],
        profile: Profile::default(),
        manager_id: None,
        department: None,
        employee_number: None,
        groups: Vec::new(),
        active: true,
        created_at_ms: 0,
        modified_at_ms: 0,
        deprovisioned_at_ms: None,
        deleted_at_ms: None,
    }
}

fn connector(users: &[(&str, bool)]) -> Connector {
    Connector {
        key: "token:ab".into(),
        kind: "token".into(),
        label: "openai".into(),
        first_seen_ms: 1,
        last_seen_ms: 2,
        latest: serde_json::json!({ "provider": "openai", "fingerprint": "ab" }),
        devices: users
            .iter()
            .enumerate()
            .map(|(i, (u, present))| ConnectorDevice {
                device_id: format!("d{i}"),
                hostname: format!("h{i}"),
                user: Some((*u).into()),
                first_seen_ms: 1,
                last_seen_ms: 2,
                present: *present,
            })
            .collect(),
        seen_on: users.len(),
        revocation: None,
        decision: None,
        owner: None,
        last_used_ms: None,
    }
}

fn people() -> People {
    People::new(vec![person("p1", "alice@example.com"), person("p2", "bob@example.com")])
}

#[test]
fn the_owner_is_assigned_else_the_one_attributed_person_never_a_guess() {
    let (policy, people) = (Policy::default(), people());
    let o = owner_of(&connector(&[("alice", true)]), &policy, &people);
    assert_eq!(
        (o.person.map(|p| p.id), o.source, o.attribution),
        (Some("p1".into()), "attributed", "inferred")
    );
    // Two people hold it: a shared credential has no owner until an admin names one.
    let shared = connector(&[("alice", true), ("bob", true)]);
    let o = owner_of(&shared, &policy, &people);
    assert_eq!((o.person.is_none(), o.source), (true, "shared"));
    // Only where it is present counts while it is present somewhere.
    let moved = connector(&[("alice", false), ("bob", true)]);
    assert_eq!(owner_of(&moved, &policy, &people).person.map(|p| p.id), Some("p2".into()));
    // Gone everywhere: whoever held it.
    let gone = connector(&[("alice", false)]);
    assert_eq!(owner_of(&gone, &policy, &people).person.map(|p| p.id), Some("p1".into()));
    let nobody = connector(&[("root", true)]);
    assert_eq!(owner_of(&nobody, &policy, &people).source, "unknown");
    let mut assigned = shared.clone();
    assigned.owner =
        Some(OwnerAssignment { person_id: "p2".into(), reason: "r".into(), by: "a".into(), at_ms: 1 });
    let o = owner_of(&assigned, &policy, &people);
    assert_eq!((o.person.map(|p| p.id), o.source), (Some("p2".into()), "assigned"));
}

#[test]
fn filters_take_a_person_or_an_os_account() {
    let (policy, people) = (Policy::default(), people());
    let c = connector(&[("alice", true)]);
    // By e-mail (any case): held and owned by alice.
    let alice = Named::resolve("Alice@Example.com", &policy, &people);
    assert!(matches!(alice, Named::Person(_)));
    assert!(alice.holds(&c, &policy, &people) && alice.owns(&c, &policy, &people));
    // By OS account: the same connector, the same owner.
    let account = Named::resolve("alice", &policy, &people);
    assert!(matches!(account, Named::Account(_, Some(_))));
    assert!(account.holds(&c, &policy, &people) && account.owns(&c, &policy, &people));
    let bob = Named::resolve("bob@example.com", &policy, &people);
    assert!(!bob.holds(&c, &policy, &people) && !bob.owns(&c, &policy, &people));
    // An account nobody is attributed to owns what only it holds.
    let root = Named::resolve("root", &policy, &people);
    let c = connector(&[("root", true)]);
    assert!(root.holds(&c, &policy, &people) && root.owns(&c, &policy, &people));
    assert!(!Named::resolve("svc", &policy, &people).owns(&c, &policy, &people));
}

#[test]
fn a_lapsed_approval_leaves_the_connector_unsanctioned_not_undecided() {
    let (policy, people) = (Policy::default(), people());
    let mut c = connector(&[("alice", true)]);
    assert_eq!(policy.judge(&c, &people, 5).status, "discovered");
    c.decision = Some(Decision {
        status: "approved".into(),
        by: "admin".into(),
        at_ms: 1,
        reason: None,
        expires_at_ms: Some(10),
    });
    let j = policy.judge(&c, &people, 9);
    assert_eq!((j.status, j.source.as_str()), ("approved", "decision"));
    let j = policy.judge(&c, &people, 10);
    assert_eq!((j.status, j.source.as_str()), ("unsanctioned", "expired"));
}

#[test]
fn the_history_starts_at_discovery_and_ends_with_removal() {
    let c = connector(&[("alice", false)]);
    let events = vec![ConnectorEvent::new("token:ab", 1, "approved", "admin:token:ops", Some("ok"))];
    let h = history(&c, &events, None, "removed");
    let names: Vec<&str> = h.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["discovered", "approved", "removed"]);
    assert_eq!(h[1].reason.as_deref(), Some("ok"));
}

#[test]
fn a_token_is_revoked_on_the_devices_and_at_its_providers_page() {
    let m = revocation_method(&connector(&[("alice", true)]));
    assert_eq!(m.local_action.as_deref(), Some("quarantine_credential"));
    assert_eq!(m.provider_page.as_deref(), Some("https://platform.openai.com/api-keys"));
}
