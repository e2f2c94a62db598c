use super::*;
use crate::store::{ConnectorDevice, OwnerAssignment, Profile, Revocation, RevocationState};

const DAY: i64 = 24 * 3600 * 1000;
/// When alice was deprovisioned.
const GONE: i64 = 100 * DAY;

fn person(id: &str, user_name: &str, deprovisioned_at_ms: Option<i64>) -> Person {
    Person {
        id: id.into(),
        user_name: user_name.into(),
        emails: vec![user_name.to_lowercase()],
        profile: Profile::default(),
        active: deprovisioned_at_ms.is_none(),
        deprovisioned_at_ms,
        ..Default::default()
    }
}

fn people() -> People {
    People::new(vec![person("p1", "alice@example.com", Some(GONE)), person("p2", "bob@example.com", None)])
}

/// A connector of `kind` present (or not) under each account, first seen at day 1.
fn connector(key: &str, kind: &str, users: &[(&str, bool)]) -> Connector {
    Connector {
        key: key.into(),
        kind: kind.into(),
        label: "x".into(),
        first_seen_ms: DAY,
        last_seen_ms: 2 * DAY,
        latest: serde_json::json!({ "provider": "openai", "fingerprint": "ab", "extension_id": "ext", "name": "github" }),
        devices: users
            .iter()
            .enumerate()
            .map(|(i, (u, present))| ConnectorDevice {
                device_id: format!("d{i}"),
                hostname: format!("h{i}"),
                user: Some((*u).into()),
                first_seen_ms: DAY,
                last_seen_ms: 2 * DAY,
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

fn revoked_by(mut c: Connector, by: &str, at_ms: i64) -> Connector {
    c.revocation = Some(RevocationState {
        revocation: Revocation {
            connector_key: c.key.clone(),
            requested_at_ms: at_ms,
            requested_by: by.into(),
            reason: String::new(),
        },
        latest: Vec::new(),
    });
    c
}

fn policy(toml_text: &str) -> (Policy, Playbook) {
    let p: Policy = toml::from_str(toml_text).unwrap();
    let b = p.playbook().unwrap();
    (p, b)
}

const REVOKE: &str = "[offboarding]\naction = \"revoke\"\ngrace = \"7d\"\n";

fn event(key: &str, name: &str, at_ms: i64) -> ConnectorEvent {
    ConnectorEvent::new(key, at_ms, name, ACTOR, None)
}

/// name, policy, connector, events recorded, now → the step, the action.
type Case =
    (&'static str, &'static str, Connector, Vec<ConnectorEvent>, i64, Option<Step>, Option<ActionKind>);

/// Each case: a policy, one connector, the events already recorded, the time → the step the
/// playbook is at, and the action it takes (None: nothing).
#[test]
fn the_planner_acts_once_past_grace_and_never_on_what_it_cannot_or_should_not() {
    let alice = |kind: &str| connector(&format!("{kind}:a"), kind, &[("alice", true)]);
    let due = GONE + 7 * DAY;
    let mcp_why: String =
        "mcp_server:a is an MCP server entry; revoke what it is handed (its token:… connectors) or the client tool".into();
    let cases: Vec<Case> = vec![
        ("grace not over yet", REVOKE, alice("token"), vec![], due - 1, Some(Step::RevokeAt(due)), None),
        (
            "grace over",
            REVOKE,
            alice("token"),
            vec![],
            due,
            Some(Step::RevokeAt(due)),
            Some(ActionKind::Revoke),
        ),
        (
            "tools and extensions too",
            REVOKE,
            alice("extension"),
            vec![],
            due + 1,
            Some(Step::RevokeAt(due)),
            Some(ActionKind::Revoke),
        ),
        (
            "already revoked by an admin",
            REVOKE,
            revoked_by(alice("token"), "admin:token:ops", GONE + DAY),
            vec![],
            due,
            Some(Step::RevokedBy("admin:token:ops".into())),
            None,
        ),
        (
            "revoked by the playbook, event recorded",
            REVOKE,
            revoked_by(alice("token"), ACTOR, due),
            vec![event("token:a", "offboarding_revoked", due)],
            due + DAY,
            Some(Step::Revoked(due)),
            None,
        ),
        (
            "revoked by the playbook, event missing (a crash in between)",
            REVOKE,
            revoked_by(alice("token"), ACTOR, due),
            vec![],
            due + DAY,
            Some(Step::Revoked(due)),
            Some(ActionKind::RecordRevoked),
        ),
        (
            "the playbook's revocation withdrawn by an admin: left alone",
            REVOKE,
            alice("token"),
            vec![event("token:a", "offboarding_revoked", due)],
            due + DAY,
            Some(Step::RevokeAt(due)),
            None,
        ),
        (
            "an event from before this deprovisioning does not count",
            REVOKE,
            alice("token"),
            vec![event("token:a", "offboarding_revoked", GONE - 1)],
            due,
            Some(Step::RevokeAt(due)),
            Some(ActionKind::Revoke),
        ),
        (
            "an MCP entry: recorded as unsupported once due",
            REVOKE,
            alice("mcp_server"),
            vec![],
            due,
            Some(Step::Unsupported(mcp_why.clone())),
            Some(ActionKind::RecordUnsupported(mcp_why.clone())),
        ),
        (
            "an MCP entry already recorded",
            REVOKE,
            alice("mcp_server"),
            vec![event("mcp_server:a", "offboarding_unsupported", due)],
            due + DAY,
            Some(Step::Unsupported(mcp_why.clone())),
            None,
        ),
        (
            "report only",
            "[offboarding]\ngrace = \"1d\"\n",
            alice("token"),
            vec![],
            due,
            Some(Step::Report("[offboarding] action is \"report\"".into())),
            None,
        ),
        (
            "a kind the playbook does not cover",
            "[offboarding]\naction = \"revoke\"\nkinds = [\"extension\"]\n",
            alice("token"),
            vec![],
            due,
            Some(Step::Report("token is not among [offboarding] kinds".into())),
            None,
        ),
        (
            "no policy: report",
            "",
            alice("token"),
            vec![],
            due,
            Some(Step::Report("[offboarding] action is \"report\"".into())),
            None,
        ),
        (
            "gone from every device",
            REVOKE,
            connector("token:a", "token", &[("alice", false)]),
            vec![],
            due,
            Some(Step::Gone),
            None,
        ),
        ("an active owner", REVOKE, connector("token:b", "token", &[("bob", true)]), vec![], due, None, None),
        (
            "shared by alice and bob: nobody's to revoke",
            "[offboarding]\naction = \"revoke\"\nunowned_after = \"1d\"\nunowned_action = \"revoke\"\n",
            connector("token:s", "token", &[("alice", true), ("bob", true)]),
            vec![],
            due + 100 * DAY,
            None,
            None,
        ),
    ];
    let people = people();
    for (name, text, c, events, now, step, action) in cases {
        let (p, b) = policy(text);
        let a = assess(&c, &p, &b, &people, now);
        let got_step = a.as_ref().map(|a| a.step.clone());
        assert_eq!(got_step, step, "{name}");
        let events: HashMap<String, Vec<ConnectorEvent>> = [(c.key.clone(), events)].into_iter().collect();
        let planned = plan(std::slice::from_ref(&c), &p, &b, &people, &events, now);
        assert_eq!(
            planned.iter().map(|a| a.kind.clone()).collect::<Vec<_>>(),
            action.into_iter().collect::<Vec<_>>(),
            "{name}"
        );
        if let Some(a) = planned.first() {
            assert_eq!(
                a.trigger,
                Trigger::Offboarded {
                    person_id: "p1".into(),
                    user_name: "alice@example.com".into(),
                    deprovisioned_at_ms: GONE
                },
                "{name}"
            );
        }
    }
}

#[test]
fn an_assigned_owner_decides_whose_connector_it_is() {
    let (p, b) = policy(REVOKE);
    let people = people();
    let now = GONE + 8 * DAY;
    // Under alice's account but assigned to bob, who is still here: nothing to do.
    let mut c = connector("token:a", "token", &[("alice", true)]);
    c.owner = Some(OwnerAssignment {
        person_id: "p2".into(),
        reason: "team key".into(),
        by: "admin".into(),
        at_ms: 1,
    });
    assert_eq!(assess(&c, &p, &b, &people, now), None);
    assert_eq!(
        playbook_for(&c, people.by_id("p1").unwrap(), &p, &b, &people, now),
        "report only: bob@example.com owns it (assigned)"
    );
    // Under bob's account but assigned to alice, who left: revoked.
    let mut c = connector("token:b", "token", &[("bob", true)]);
    c.owner =
        Some(OwnerAssignment { person_id: "p1".into(), reason: "hers".into(), by: "admin".into(), at_ms: 1 });
    let planned = plan(std::slice::from_ref(&c), &p, &b, &people, &HashMap::new(), now);
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].kind, ActionKind::Revoke);
}

#[test]
fn unowned_connectors_are_reported_then_revoked_a_grace_later() {
    let nobody = connector("token:n", "token", &[("root", true)]);
    let people = people();
    let unowned_since = DAY;
    let reported_at = unowned_since + 30 * DAY;
    let revoke_at = reported_at + 2 * DAY;
    for (action, text) in [
        ("report", "[offboarding]\ngrace = \"2d\"\nunowned_after = \"30d\"\n"),
        ("revoke", "[offboarding]\ngrace = \"2d\"\nunowned_after = \"30d\"\nunowned_action = \"revoke\"\n"),
    ] {
        let (p, b) = policy(text);
        assert_eq!(
            assess(&nobody, &p, &b, &people, reported_at - 1),
            None,
            "{action}: not unowned long enough yet"
        );
        let a = assess(&nobody, &p, &b, &people, reported_at).expect("reported");
        assert_eq!(a.trigger, Trigger::Unowned { since_ms: unowned_since });
        let plan_at = |now| plan(std::slice::from_ref(&nobody), &p, &b, &people, &HashMap::new(), now);
        match action {
            "report" => {
                assert_eq!(a.step, Step::Report("[offboarding] unowned_action is \"report\"".into()));
                assert!(plan_at(revoke_at + DAY).is_empty());
            }
            _ => {
                assert_eq!(a.step, Step::RevokeAt(revoke_at), "the finding gives time to name an owner");
                assert!(plan_at(revoke_at - 1).is_empty());
                let due = plan_at(revoke_at);
                assert_eq!(due.iter().map(|a| a.kind.clone()).collect::<Vec<_>>(), vec![ActionKind::Revoke]);
                let recorded: HashMap<String, Vec<ConnectorEvent>> =
                    [("token:n".to_owned(), vec![event("token:n", "unowned_revoked", revoke_at)])]
                        .into_iter()
                        .collect();
                assert!(
                    plan(std::slice::from_ref(&nobody), &p, &b, &people, &recorded, revoke_at + 1).is_empty()
                );
            }
        }
    }
    // Without unowned_after nobody-owned connectors are not the playbook's business.
    let (p, b) = policy(REVOKE);
    assert_eq!(assess(&nobody, &p, &b, &people, revoke_at * 10), None);
}

#[test]
fn the_playbook_is_checked_when_the_policy_loads() {
    let err = |text: &str| {
        let p: Policy = toml::from_str(text).unwrap();
        format!("{:#}", p.playbook().unwrap_err())
    };
    assert!(err("[offboarding]\ngrace = \"a week\"\n").contains("grace = \"a week\" is not a duration"));
    assert!(err("[offboarding]\nunowned_after = \"soon\"\n").contains("unowned_after"));
    assert!(err("[offboarding]\nkinds = [\"mcp_server\"]\n").contains("cannot revoke MCP server entries"));
    assert!(
        err("[offboarding]\nkinds = [\"printer\"]\n")
            .contains("\"printer\" is not one of tool, extension, token")
    );
    assert!(err("[offboarding]\nunowned_action = \"revoke\"\n").contains("needs unowned_after"));
    assert!(toml::from_str::<Policy>("[offboarding]\naction = \"delete\"\n").is_err());
    assert!(toml::from_str::<Policy>("[offboarding]\ngrace_period = \"1d\"\n").is_err());
    let (_, b) = policy("");
    assert_eq!(
        (b.action, b.grace, b.unowned, b.acts()),
        (PlaybookAction::Report, Duration::from_secs(7 * 86_400), None, false)
    );
    let (_, b) = policy("[offboarding]\nunowned_after = \"30d\"\nunowned_action = \"revoke\"\n");
    assert!(b.acts(), "revoking unowned connectors is acting");
    // Policy::load refuses it with the file named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), "[offboarding]\ngrace = \"7 fortnights\"\n").unwrap();
    let e = format!("{:#}", Policy::load(dir.path()).unwrap_err());
    assert!(e.contains("policy.toml") && e.contains("not a duration"), "{e}");
}
