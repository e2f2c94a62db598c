//! Reviewer choice, answers, the deadline rule and reports, on a real SQLite store with a
//! real collector key.

use super::*;
use crate::domain::{Change, ObservationKind};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    ConnectorRef, Device, Email, EnrollmentStore, IngestBatch, IngestStore, ObservationRecord, Profile,
};

const DAY: i64 = 24 * 3600 * 1000;
const T0: i64 = 1_800_000_000_000;

fn person(id: &str, user: &str, manager: Option<&str>, gone: bool) -> Person {
    Person {
        id: id.into(),
        user_name: format!("{user}@example.com"),
        display_name: Some(user.to_uppercase()),
        emails: vec![format!("{user}@example.com")],
        profile: Profile {
            emails: vec![Email {
                value: format!("{user}@example.com"),
                primary: Some(true),
                ..Email::default()
            }],
            ..Profile::default()
        },
        manager_id: manager.map(str::to_owned),
        active: !gone,
        deprovisioned_at_ms: gone.then_some(T0 - DAY),
        ..Person::default()
    }
}

/// alice (active, manager bob), carol (gone, manager bob), bob (manager dave), dave, erin
/// (gone, manager frank, also gone), frank (gone, manager erin: a cycle).
fn org() -> Vec<Person> {
    vec![
        person("p-alice", "alice", Some("p-bob"), false),
        person("p-carol", "carol", Some("p-bob"), true),
        person("p-bob", "bob", Some("p-dave"), false),
        person("p-dave", "dave", None, false),
        person("p-erin", "erin", Some("p-frank"), true),
        person("p-frank", "frank", Some("p-erin"), true),
    ]
}

#[test]
fn the_owner_reviews_else_the_first_active_manager_else_the_admins() {
    let people = People::new(org());
    let who = |id: Option<&str>| {
        let (p, why) = reviewer_for(id.and_then(|i| people.by_id(i)), &people, "owner");
        (p.map(|p| p.id), why)
    };
    assert_eq!(who(Some("p-alice")), (Some("p-alice".into()), "owner"));
    assert_eq!(who(Some("p-carol")), (Some("p-bob".into()), "manager"));
    // A chain of people who are gone, looping back on itself, ends with the admins.
    assert_eq!(who(Some("p-erin")), (None, "admin"));
    assert_eq!(who(None), (None, "admin"));
    let mut gone_bob = org();
    gone_bob[2].deprovisioned_at_ms = Some(T0);
    let people = People::new(gone_bob);
    let (p, _) = reviewer_for(people.by_id("p-carol"), &people, "owner");
    assert_eq!(p.map(|p| p.id), Some("p-dave".into()), "past a departed manager to theirs");
}

#[test]
fn a_manager_review_asks_the_owners_manager_and_the_owner_when_there_is_none() {
    let people = People::new(org());
    let who = |id: &str| {
        let (p, why) = reviewer_for(people.by_id(id), &people, "manager");
        (p.map(|p| p.id), why)
    };
    // alice's manager is bob (active); dave has no manager: he reviews his own.
    assert_eq!(who("p-alice"), (Some("p-bob".into()), "manager"));
    assert_eq!(who("p-dave"), (Some("p-dave".into()), "owner"));
    assert_eq!(parse_reviewers("manager").ok(), Some("manager"));
    assert!(parse_reviewers("peer").is_err());
}

#[test]
fn scopes_and_rules_are_spelled_one_way() {
    assert_eq!(Scope::parse("all").ok(), Some(Scope::All));
    assert_eq!(Scope::parse("group:Eng").ok(), Some(Scope::Group("Eng".into())));
    assert_eq!(Scope::parse("kind:token").ok(), Some(Scope::Kind("token".into())));
    for bad in ["", "group:", "everything", "team:x"] {
        assert!(matches!(Scope::parse(bad), Err(ReviewError::Invalid(_))), "{bad}");
    }
    assert!(parse_rule("escalate").is_ok() && parse_rule("ignore").is_err());
}

struct World {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    pki: Pki,
    policy: Policy,
}

/// A store with the org provisioned and one device on which `tool:NAME` is present under
/// each (OS account, tool) given.
fn world(tools: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sightline.db")).unwrap();
    let pki = Pki::load_or_init(dir.path(), true).unwrap();
    for p in org() {
        store.create_person(&p).unwrap();
    }
    store.create_token(b"enroll", "", 0, i64::MAX).unwrap();
    let device = Device {
        id: "dev-1".into(),
        hostname: "laptop-1".into(),
        os: "linux".into(),
        os_version: "6.1".into(),
        agent_version: "0.1.0".into(),
        key_backend: "software".into(),
        assurance: "software".into(),
        key_spki: vec![1, 2, 3],
        cert_sha256: "cert".into(),
        next_cert_sha256: None,
        enrolled_at_ms: T0 - DAY,
        last_seen_ms: None,
        last_attested_ms: None,
        hardware_id: None,
        clock_skew_ms: None,
        seq_head: 0,
        head_hash: [0; 32],
        revoked_at_ms: None,
        users: vec![],
    };
    store.complete_enrollment(b"enroll", &device, &[], T0 - DAY).unwrap();
    let observations = tools
        .iter()
        .enumerate()
        .map(|(i, (user, tool))| ObservationRecord {
            seq: i as u64 + 1,
            observed_at_ms: T0 - DAY,
            change: Change::Appeared,
            kind: ObservationKind::Process,
            connector: Some(ConnectorRef {
                key: format!("tool:{tool}"),
                kind: "tool",
                label: (*tool).into(),
                user: Some((*user).into()),
                locus: format!("/usr/bin/{tool}"),
            }),
            session: None,
            directive: None,
            data: "{}".into(),
        })
        .collect::<Vec<_>>();
    let last = observations.len() as u64;
    store
        .ingest(&IngestBatch {
            device_id: "dev-1".into(),
            first_seq: 1,
            last_seq: last,
            prev_hash: [0; 32],
            hash: [7; 32],
            payload: b"payload".to_vec(),
            signature: vec![9; 64],
            received_at_ms: T0 - DAY,
            observations,
            inventory: None,
        })
        .unwrap();
    World { _dir: dir, store, pki, policy: Policy::default() }
}

fn items(w: &World, id: &str) -> HashMap<String, ReviewItem> {
    w.store.review_items(id).unwrap().into_iter().map(|i| (i.connector_key.clone(), i)).collect()
}

#[test]
fn reviewers_answer_their_own_items_and_keeping_approves_until_the_date() {
    let w = world(&[("alice", "ollama"), ("carol", "lmstudio"), ("root", "jan")]);
    let s = &w.store;
    let started = start(
        s,
        &w.policy,
        "all",
        "escalate",
        "owner",
        T0 + 14 * DAY,
        "https://c.example:8443",
        "cli:ops",
        T0,
    )
    .unwrap();
    let id = started.campaign.id.clone();
    assert_eq!((started.items, started.admin_queue, started.reminders), (3, 1, 2));
    let it = items(&w, &id);
    assert_eq!(
        (it["tool:ollama"].reviewer_id.as_deref(), it["tool:ollama"].why.as_str()),
        (Some("p-alice"), "owner")
    );
    assert_eq!(
        (it["tool:lmstudio"].reviewer_id.as_deref(), it["tool:lmstudio"].why.as_str()),
        (Some("p-bob"), "manager")
    );
    assert_eq!((it["tool:jan"].reviewer_id.as_deref(), it["tool:jan"].why.as_str()), (None, "admin"));

    // Each reviewer's message carries a link whose token, in the fragment, opens their items.
    let mail = s.pending_reminders(0, 10).unwrap();
    assert_eq!(mail.len(), 2);
    let alice = mail.iter().find(|r| r.recipient == "alice@example.com").unwrap();
    let token = alice.link.strip_prefix("https://c.example:8443/ui/review/#t=").unwrap();
    assert!(alice.body.contains(&alice.link) && alice.subject.contains("1 AI connector"));
    let grant = s.review_grant(&crate::tokens::hash(token), T0).unwrap();
    assert_eq!(grant, Some((id.clone(), "p-alice".to_owned())));
    assert_eq!(
        s.review_grant(&crate::tokens::hash(token), T0 + 14 * DAY).unwrap(),
        None,
        "expires at the due date"
    );

    let as_alice = Decider::Reviewer { campaign: id.clone(), person_id: "p-alice".into() };
    let not_hers = decide(s, &w.pki, &id, "tool:lmstudio", "keep", "mine now", None, &as_alice, T0 + DAY);
    assert!(matches!(not_hers, Err(ReviewError::Forbidden(_))));
    let other_campaign = Decider::Reviewer { campaign: "rc-other".into(), person_id: "p-alice".into() };
    let wrong = decide(s, &w.pki, &id, "tool:ollama", "keep", "x", None, &other_campaign, T0 + DAY);
    assert!(matches!(wrong, Err(ReviewError::Forbidden(_))));
    assert!(matches!(
        decide(s, &w.pki, &id, "tool:ollama", "keep", " ", None, &as_alice, T0 + DAY),
        Err(ReviewError::Invalid(_))
    ));

    let until = T0 + 31 * DAY;
    let kept =
        decide(s, &w.pki, &id, "tool:ollama", "keep", "daily driver", Some(until), &as_alice, T0 + DAY)
            .unwrap();
    assert_eq!((kept.decision.as_deref(), kept.keep_until_ms), (Some("keep"), Some(until)));
    let c = s.connector("tool:ollama").unwrap().unwrap();
    let d = c.decision.unwrap();
    assert_eq!((d.status.as_str(), d.expires_at_ms), ("approved", Some(until)));
    assert_eq!(d.by, format!("review:{id}:person:alice@example.com"));
    let events = s.connector_events("tool:ollama").unwrap();
    let reviewed = events.iter().find(|e| e.event == "reviewed").unwrap();
    assert_eq!(reviewed.detail["campaign"], id.as_str());
    assert_eq!(reviewed.detail["decision"], "keep");
    assert_eq!(reviewed.detail["reviewer"], "alice@example.com");
    assert!(events.iter().any(|e| e.event == "approved"));
    // Once answered, an item stays answered.
    let again = decide(s, &w.pki, &id, "tool:ollama", "revoke", "changed my mind", None, &as_alice, T0 + DAY);
    assert!(matches!(again, Err(ReviewError::Conflict(_))));

    // An admin answers the admins' queue on behalf.
    let admin = Decider::Admin("admin:token:ops".into());
    decide(s, &w.pki, &id, "tool:jan", "revoke", "nobody owns it", None, &admin, T0 + DAY).unwrap();
    assert!(s.connector("tool:jan").unwrap().unwrap().revocation.is_some());
    assert!(s.campaign(&id).unwrap().unwrap().closed_at_ms.is_none(), "bob has not answered");

    // Bob leaves before answering: his link no longer answers.
    let mut bob = s.person("p-bob").unwrap().unwrap();
    bob.deprovisioned_at_ms = Some(T0 + 2 * DAY);
    bob.active = false;
    s.update_person(&bob).unwrap();
    let as_bob = Decider::Reviewer { campaign: id.clone(), person_id: "p-bob".into() };
    let gone = decide(s, &w.pki, &id, "tool:lmstudio", "keep", "still needed", None, &as_bob, T0 + 3 * DAY);
    assert!(matches!(gone, Err(ReviewError::Forbidden(_))));
    assert!(reviewer_page(s, &w.policy, &id, "p-bob").unwrap().is_none());
}

#[test]
fn unanswered_items_escalate_up_the_chain_once_per_deadline_and_end_with_the_admins() {
    let w = world(&[("carol", "lmstudio"), ("root", "jan")]);
    let s = &w.store;
    let id =
        start(s, &w.policy, "all", "escalate", "owner", T0 + 14 * DAY, "https://c.example", "cli:ops", T0)
            .unwrap()
            .campaign
            .id;
    // Nothing is due yet.
    assert_eq!(sweep(s, &w.pki, T0 + 13 * DAY).unwrap().escalated, 0);
    let at = T0 + 14 * DAY;
    let first = sweep(s, &w.pki, at).unwrap();
    assert_eq!((first.escalated, first.reminded), (1, 1), "bob's item to dave; the admins' item stays");
    let it = items(&w, &id);
    let lm = &it["tool:lmstudio"];
    assert_eq!((lm.reviewer_id.as_deref(), lm.why.as_str()), (Some("p-dave"), "escalated"));
    assert_eq!(lm.due_at_ms, at + ESCALATION_PERIOD.as_millis() as i64);
    assert_eq!(it["tool:jan"].reviewer_id, None);
    let mail = s.pending_reminders(0, 10).unwrap();
    assert!(mail.iter().any(|r| r.kind == "escalated" && r.recipient == "dave@example.com"));
    let e = s.connector_events("tool:lmstudio").unwrap();
    let esc = e.iter().find(|e| e.event == "review_escalated").unwrap();
    assert_eq!(
        (esc.detail["from"].as_str(), esc.detail["to"].as_str()),
        (Some("bob@example.com"), Some("dave@example.com"))
    );
    // The same sweep again (another replica) changes nothing.
    assert_eq!(sweep(s, &w.pki, at).unwrap(), Swept::default());
    // Dave has no manager: past his date the item goes to the admins, where it waits.
    let later = lm.due_at_ms;
    assert_eq!(sweep(s, &w.pki, later).unwrap().escalated, 1);
    let lm = &items(&w, &id)["tool:lmstudio"];
    assert_eq!((lm.reviewer_id.as_deref(), lm.why.as_str()), (None, "admin"));
    assert_eq!(sweep(s, &w.pki, later + 30 * DAY).unwrap(), Swept::default());
    assert!(s.connector("tool:lmstudio").unwrap().unwrap().revocation.is_none());
}

#[test]
fn under_the_revoke_rule_unanswered_items_are_revoked_and_the_campaign_closes() {
    let w = world(&[("alice", "ollama"), ("root", "jan")]);
    let s = &w.store;
    let id = start(
        s,
        &w.policy,
        "kind:tool",
        "revoke",
        "owner",
        T0 + 14 * DAY,
        "https://c.example",
        "cli:ops",
        T0,
    )
    .unwrap()
    .campaign
    .id;
    // The second reminder goes out REMIND_BEFORE the date, once.
    let soon = T0 + 14 * DAY - REMIND_BEFORE.as_millis() as i64;
    assert_eq!(sweep(s, &w.pki, soon).unwrap().reminded, 1);
    assert_eq!(sweep(s, &w.pki, soon + 1).unwrap().reminded, 0);
    assert!(s.pending_reminders(0, 10).unwrap().iter().any(|r| r.kind == "due_soon"));
    let done = sweep(s, &w.pki, T0 + 14 * DAY).unwrap();
    assert_eq!(done.revoked, 2);
    for key in ["tool:ollama", "tool:jan"] {
        let c = s.connector(key).unwrap().unwrap();
        let r = c.revocation.unwrap();
        assert_eq!(r.revocation.requested_by, format!("review:{id}:deadline"));
        assert!(
            s.connector_events(key)
                .unwrap()
                .iter()
                .any(|e| e.event == "reviewed" && e.detail["decision"] == "revoke")
        );
    }
    assert!(s.campaign(&id).unwrap().unwrap().closed_at_ms.is_some());
    assert_eq!(sweep(s, &w.pki, T0 + 15 * DAY).unwrap(), Swept::default());
}

#[test]
fn a_group_scope_covers_connectors_whose_owner_is_a_member() {
    let w = world(&[("alice", "ollama"), ("dave", "jan")]);
    let s = &w.store;
    s.create_group(&crate::store::ScimGroup {
        id: "g1".into(),
        display_name: "Engineering".into(),
        members: vec![crate::store::GroupMember { id: "p-alice".into(), display: None }],
        ..Default::default()
    })
    .unwrap();
    let started = start(
        s,
        &w.policy,
        "group:engineering",
        "revoke",
        "owner",
        T0 + DAY,
        "https://c.example",
        "cli:ops",
        T0,
    )
    .unwrap();
    let keys: Vec<String> =
        s.review_items(&started.campaign.id).unwrap().into_iter().map(|i| i.connector_key).collect();
    assert_eq!(keys, ["tool:ollama"]);
    assert!(matches!(
        start(
            s,
            &w.policy,
            "kind:extension",
            "revoke",
            "owner",
            T0 + DAY,
            "https://c.example",
            "cli:ops",
            T0
        ),
        Err(ReviewError::Invalid(_))
    ));
}

#[test]
fn the_report_verifies_offline_and_any_change_to_it_is_detected() {
    let w = world(&[("alice", "ollama")]);
    let s = &w.store;
    let id = start(s, &w.policy, "all", "revoke", "owner", T0 + 14 * DAY, "https://c.example", "cli:ops", T0)
        .unwrap()
        .campaign
        .id;
    let as_alice = Decider::Reviewer { campaign: id.clone(), person_id: "p-alice".into() };
    decide(s, &w.pki, &id, "tool:ollama", "keep", "needed", Some(T0 + 30 * DAY), &as_alice, T0 + DAY)
        .unwrap();
    let r = report(s, &w.pki, &id, T0 + 2 * DAY).unwrap().unwrap();
    let bytes = serde_json::to_vec(&r).unwrap();
    let key_id = sightline_proto::p256::key_id(&w.pki.signing_key_spki());
    let v = verify_report(&bytes, Some(&key_id)).unwrap();
    assert_eq!((v.campaign.as_str(), v.items, v.kept, v.revoked, v.open), (id.as_str(), 1, 1, 0, 0));
    assert!(verify_report(&bytes, Some("0000")).unwrap_err().to_string().contains("not the pinned"));

    // A decision changed after signing.
    let mut forged: Value = serde_json::from_slice(&bytes).unwrap();
    let text = forged["manifest"].as_str().unwrap().replace("\"keep\"", "\"revoke\"");
    forged["manifest"] = text.into();
    let err = verify_report(&serde_json::to_vec(&forged).unwrap(), Some(&key_id)).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // An evidence bundle's signature is no report's.
    let mut relabelled: Value = serde_json::from_slice(&bytes).unwrap();
    relabelled["schema"] = "sightline.evidence.v1".into();
    assert!(crate::evidence::verify(&serde_json::to_vec(&relabelled).unwrap(), Some(&key_id)).is_err());
}
