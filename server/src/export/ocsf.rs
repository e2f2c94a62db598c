//! Sightline's evidence as OCSF 1.3.0 events (schema.ocsf.io), each valid against the
//! official schema (the export tests validate every line with the schema's own files):
//!
//! | what                                   | class                        | activity                     |
//! |----------------------------------------|------------------------------|------------------------------|
//! | device facts, first or changed         | 5001 Device Inventory Info   | 1 Log                        |
//! | app or extension added/changed/removed | 5020 Software Inventory Info | 1 Log (`message` says which) |
//! | AI tool process                        | 1007 Process Activity        | 1 Launch, 2 Terminate        |
//! | stored credential (fingerprint)        | 2006 Data Security Finding   | 1 Create, 2 Update, 3 Close  |
//! | shadow AI, orphaned, shared, unenforced| 2004 Detection Finding       | 1 Create                     |
//! | AI used after offboarding, or through an unsanctioned connector | 2004 Detection Finding | 1 Create |
//! | enrollment                             | 3002 Authentication          | 1 Logon                      |
//! | register decision (owner, approval…)   | 3004 Entity Management       | 8 Enable, 9 Disable, 3 Update|
//! | AI tool session (see [`super::activity`]) | 6003 API Activity         | 99 Other (`AI Session`)      |
//!
//! Only changes are events: an observation that opened or closed a presence interval, one
//! the agent reported as changed, a device inventory unlike the one before. A resync's
//! re-sightings are stored evidence, not news. Every event's `metadata.uid` is a UUID derived
//! from what changed — for presence, the device, connector, locus and the sequence number of
//! the observation that opened the interval, and which end — so a redelivery carries the
//! same uid and a receiver can drop it. `unmapped.sightline` points back at the signed
//! evidence (device, sequence number, and what OCSF 1.3.0 has no attribute for: install
//! paths, extension ids). A credential appears only as its keyed fingerprint. Classes whose
//! `device` and `actor` come from the `host` profile name it in `metadata.profiles`.

use crate::domain::{Change, ObservationKind};
use serde_json::{Value, json};

use crate::findings::Finding;
use crate::store::{ConnectorEvent, Device, ExportObservation};

pub const VERSION: &str = "1.3.0";

pub(super) fn metadata(uid: String, logged_ms: i64) -> Value {
    json!({
        "version": VERSION,
        "uid": uid,
        "logged_time": logged_ms,
        "product": {"name": "Sightline", "vendor_name": "Sightline", "version": env!("CARGO_PKG_VERSION")},
    })
}

pub(super) fn os(name: &str, version: &str) -> Value {
    let (type_id, caption) = match name {
        "windows" => (100, "Windows"),
        "linux" => (200, "Linux"),
        "macos" => (300, "macOS"),
        _ => (0, "Unknown"),
    };
    json!({"name": caption, "type_id": type_id, "type": caption, "version": version})
}

pub(super) fn device(id: &str, hostname: &str, os_name: &str, os_version: &str) -> Value {
    // The agent does not tell a laptop from a desktop: type Unknown, honestly.
    json!({"uid": id, "hostname": hostname, "name": hostname, "type_id": 0, "type": "Unknown", "os": os(os_name, os_version)})
}

#[allow(clippy::too_many_arguments, reason = "the base event's fields, named")]
pub(super) fn event(
    class_uid: u32,
    class_name: &str,
    category_uid: u32,
    category_name: &str,
    activity_id: u32,
    activity_name: &str,
    severity_id: u32,
    time_ms: i64,
    meta: Value,
) -> Value {
    json!({
        "class_uid": class_uid, "class_name": class_name,
        "category_uid": category_uid, "category_name": category_name,
        "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": u64::from(class_uid) * 100 + u64::from(activity_id),
        "type_name": format!("{class_name}: {activity_name}"),
        "severity_id": severity_id, "severity": severity_name(severity_id),
        "time": time_ms,
        "metadata": meta,
    })
}

pub(super) fn severity_name(id: u32) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// What an exported observation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    /// It opened a presence interval.
    Appeared,
    /// It closed one.
    Disappeared,
    /// The agent saw something already present change.
    Modified,
    /// The device's facts, first or changed.
    Inventory,
}

/// Whether an observation is a change worth an event. A resync re-sights everything the
/// device has: those sightings open nothing, close nothing and change nothing, so they are
/// not exported again (the store keeps them as evidence all the same).
fn reported(o: &ExportObservation) -> Option<Reported> {
    match o.kind {
        ObservationKind::App
        | ObservationKind::Extension
        | ObservationKind::Token
        | ObservationKind::Process => {
            match &o.edge {
                Some(e) if e.closes => Some(Reported::Disappeared),
                Some(_) => Some(Reported::Appeared),
                // A process does not change while it runs, as far as OCSF's activities go.
                None if o.change == Change::Changed && o.kind != ObservationKind::Process => {
                    Some(Reported::Modified)
                }
                None => None,
            }
        }
        ObservationKind::DeviceInventory => {
            // The agent's clamp note differs between two looks at the same facts.
            let facts = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("device_observed_at_ms");
                }
                v
            };
            match &o.previous {
                Some(p) if facts(p) == facts(&o.data) => None,
                _ => Some(Reported::Inventory),
            }
        }
        _ => None,
    }
}

/// The event's `metadata.uid`: what identifies the change, not the delivery. A presence
/// change is named by its interval (device, connector, locus and the sequence number of the
/// observation that opened it) and which end it is; anything else by its own observation.
fn observation_uid(o: &ExportObservation, r: Reported) -> String {
    let key = o.connector_key.as_deref().unwrap_or(o.kind.as_str());
    match (&o.edge, r) {
        (Some(e), Reported::Appeared | Reported::Disappeared) => stable_uid(&[
            &o.device_id,
            key,
            &e.locus,
            &e.appeared_seq.to_string(),
            if e.closes { "disappeared" } else { "appeared" },
        ]),
        _ => stable_uid(&[&o.device_id, key, o.change.as_str(), &o.seq.to_string()]),
    }
}

/// A deterministic UUID (RFC 9562 version 8: SHA-256 of the parts, NUL-separated).
pub fn stable_uid(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    let d = ctx.finish();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A file as OCSF has it: `name` and `type_id` are required; a path's last part is its name.
fn file(path: &str, name: Option<&str>) -> Value {
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| path.rsplit(['/', '\\']).find(|s| !s.is_empty()).unwrap_or(path));
    json!({"name": name, "path": path, "type_id": 1, "type": "Regular File"})
}

/// The event an observation becomes, if it reports a change (see [`reported`]).
pub fn from_observation(o: &ExportObservation) -> Option<Value> {
    let r = reported(o)?;
    let meta = metadata(observation_uid(o, r), o.received_at_ms);
    let dev = device(&o.device_id, &o.hostname, &o.os, &o.os_version);
    let mut back = json!({"device_id": o.device_id, "seq": o.seq, "change": o.change.as_str(), "assurance": o.assurance});
    if let Some(e) = &o.edge {
        back["presence"] = json!({"locus": e.locus, "appeared_seq": e.appeared_seq, "closes": e.closes});
    }
    let gone = r == Reported::Disappeared;
    let d = &o.data;
    let user = |d: &Value| d.get("user").and_then(Value::as_str).map(|u| json!({"name": u}));
    let mut e = match o.kind {
        ObservationKind::DeviceInventory => {
            let mut e =
                event(5001, "Device Inventory Info", 5, "Discovery", 1, "Log", 1, o.observed_at_ms, meta);
            let mut dv = dev;
            dv["hostname"] = json!(str_of(d, "hostname"));
            dv["name"] = json!(str_of(d, "hostname"));
            dv["os"] = os(str_of(d, "os"), str_of(d, "os_version"));
            e["device"] = dv;
            e
        }
        ObservationKind::App | ObservationKind::Extension => {
            let mut e =
                event(5020, "Software Inventory Info", 5, "Discovery", 1, "Log", 1, o.observed_at_ms, meta);
            let ext = o.kind == ObservationKind::Extension;
            let name = if ext { str_of(d, "name") } else { str_of(d, "tool") };
            e["device"] = dev;
            // OCSF 1.3.0 packages have no place for an install path or an extension id:
            // those stay in `unmapped.sightline`.
            e["package"] = json!({
                "name": name,
                "version": d.get("version").and_then(Value::as_str).filter(|v| !v.is_empty()).unwrap_or("unknown"),
                "type_id": if ext { 99 } else { 1 },
                "type": if ext { format!("Browser Extension ({})", str_of(d, "browser")) } else { "Application".into() },
            });
            back["path"] = json!(str_of(d, "path"));
            if ext {
                back["extension_id"] = json!(str_of(d, "extension_id"));
            } else if let Some(b) = d.get("bundle_id").and_then(Value::as_str) {
                back["bundle_id"] = json!(b);
            }
            e["message"] = json!(match r {
                Reported::Disappeared => format!("{name} is no longer installed"),
                Reported::Modified => format!("{name} changed"),
                _ => format!("{name} is installed"),
            });
            if let Some(u) = user(d) {
                e["actor"] = json!({"user": u});
            }
            e
        }
        ObservationKind::Process => {
            let (id, name) = if gone { (2, "Terminate") } else { (1, "Launch") };
            let mut e =
                event(1007, "Process Activity", 1, "System Activity", id, name, 1, o.observed_at_ms, meta);
            e["device"] = dev;
            let mut p = json!({"pid": d.get("pid"), "name": str_of(d, "name")});
            if let Some(exe) = d.get("exe").and_then(Value::as_str).filter(|x| !x.is_empty()) {
                p["file"] = file(exe, d.get("name").and_then(Value::as_str));
            }
            if let Some(u) = user(d) {
                p["user"] = u;
            }
            e["process"] = p;
            // Who started it is not observed; the account it runs as is the best actor known.
            e["actor"] = json!({"user": user(d).unwrap_or_else(|| json!({"name": "unknown"}))});
            e
        }
        ObservationKind::Token => {
            let (id, name, status) = match r {
                Reported::Disappeared => (3, "Close", (4, "Resolved")),
                Reported::Modified => (2, "Update", (1, "New")),
                _ => (1, "Create", (1, "New")),
            };
            let mut e =
                event(2006, "Data Security Finding", 2, "Findings", id, name, 3, o.observed_at_ms, meta);
            e["metadata"]["profiles"] = json!(["host"]);
            e["device"] = dev;
            e["status_id"] = json!(status.0);
            e["status"] = json!(status.1);
            let interval = o.edge.as_ref().map(|e| e.appeared_seq).unwrap_or(o.seq);
            e["finding_info"] = json!({
                "uid": stable_uid(&[&o.device_id, o.connector_key.as_deref().unwrap_or(""), &interval.to_string()]),
                "title": format!("{} credential stored on device", str_of(d, "provider")),
                "types": ["AI credential"],
                "desc": format!("A {} {} in {} ({}); fingerprint {}", str_of(d, "provider"), str_of(d, "token_kind"), str_of(d, "path"), str_of(d, "source"), str_of(d, "fingerprint")),
            });
            e["file"] = file(str_of(d, "path"), None);
            e["resources"] = json!([{"name": str_of(d, "path"), "type": str_of(d, "source"), "uid": str_of(d, "fingerprint")}]);
            if let Some(u) = user(d) {
                e["actor"] = json!({"user": u});
            }
            e
        }
        _ => return None,
    };
    e["unmapped"] = json!({"sightline": back});
    Some(e)
}

/// A device's enrollment (or re-enrollment) as an authentication.
pub fn from_enrollment(d: &Device) -> Value {
    let uid = stable_uid(&[&d.id, "enrollment", &d.enrolled_at_ms.to_string()]);
    let mut e = event(
        3002,
        "Authentication",
        3,
        "Identity & Access Management",
        1,
        "Logon",
        1,
        d.enrolled_at_ms,
        metadata(uid, d.enrolled_at_ms),
    );
    e["metadata"]["profiles"] = json!(["host"]);
    // The device authenticates as itself: a system account named by its id.
    e["user"] = json!({"uid": d.id, "name": d.hostname, "type_id": 3, "type": "System"});
    e["device"] = device(&d.id, &d.hostname, &d.os, &d.os_version);
    e["service"] = json!({"name": "Sightline collector", "version": env!("CARGO_PKG_VERSION")});
    e["auth_protocol_id"] = json!(99);
    e["auth_protocol"] = json!(format!("Sightline enrollment ({} key, {})", d.key_backend, d.assurance));
    e["is_mfa"] = json!(false);
    e["is_remote"] = json!(true);
    e["logon_type_id"] = json!(3);
    e["logon_type"] = json!("Network");
    e["status_id"] = json!(1);
    e["status"] = json!("Success");
    e["unmapped"] = json!({"sightline": {"assurance": d.assurance, "key_backend": d.key_backend, "hardware_id": d.hardware_id}});
    e
}

/// A register audit event (owner assigned, approval requested, approved, denied, withdrawn,
/// expired, reviewed…) as Entity Management (3004): the connector is the managed entity an
/// administrator or its owner acted on, at a management console, which is what that class
/// records — Account Change (3001) is about a user account's own credentials and state, and
/// a connector is not an account. An approval enables the connector (8), a denial disables
/// it (9); every other change updates it (3). The reason is the `comment`; the event's name
/// and detail are under `unmapped.sightline`. `metadata.uid` comes from the event's storage
/// seq and connector: the same event always has the same uid.
pub fn from_audit_event(e: &ConnectorEvent) -> Value {
    let uid = stable_uid(&["register", &e.seq.to_string(), &e.connector_key]);
    let (activity_id, activity_name) = match e.event.as_str() {
        "approved" => (8, "Enable"),
        "denied" => (9, "Disable"),
        _ => (3, "Update"),
    };
    let mut ev = event(
        3004,
        "Entity Management",
        3,
        "Identity & Access Management",
        activity_id,
        activity_name,
        1,
        e.at_ms,
        metadata(uid, e.at_ms),
    );
    // `actor` comes with the host profile in OCSF 1.3.0 (no device: the act was at the
    // collector, not on a laptop).
    ev["metadata"]["profiles"] = json!(["host"]);
    // Who acted: a person with an owner token, an admin (token, SSO address, the command
    // line), or the collector itself (policy, the expiry sweep, a review campaign).
    let (type_id, type_name) = match e.actor.split(':').next().unwrap_or_default() {
        "person" => (1, "User"),
        "admin" | "cli" => (2, "Admin"),
        "system" | "policy" => (3, "System"),
        _ => (99, "Other"),
    };
    ev["actor"] = json!({"user": {"name": e.actor, "uid": e.actor, "type_id": type_id, "type": type_name}});
    ev["entity"] = json!({"uid": e.connector_key, "name": e.connector_key, "type": "AI connector"});
    ev["message"] = json!(format!("{} {}", e.connector_key, e.event.replace('_', " ")));
    if let Some(r) = &e.reason {
        ev["comment"] = json!(r);
    }
    ev["unmapped"] = json!({"sightline": {"event": e.event, "seq": e.seq, "detail": e.detail}});
    ev
}

/// The stable key of a finding (what makes it the same finding on the next look).
pub fn finding_key(f: &Finding) -> String {
    // One connector can be present twice on a device (two profiles, two install paths):
    // where it is tells those findings apart.
    let place = f.evidence.get("where").and_then(Value::as_str).unwrap_or("");
    format!("{}:{}:{}:{place}", f.kind, f.subject, f.device_id.as_deref().unwrap_or(""))
}

/// A connector finding as a detection; device-health findings are not exported as detections.
pub fn from_finding(f: &Finding, now_ms: i64) -> Option<Value> {
    let title = match f.kind {
        "shadow_ai" => "Unsanctioned AI connector",
        "orphaned_connector" => "AI connector of a deprovisioned person",
        "unowned_connector" => "AI connector nobody owns",
        "shared_credential" => "AI credential shared across devices or accounts",
        "revocation_not_enforced" => "Revocation not enforced on a device",
        "personal_account_connector" => "AI connector signed in with a personal account",
        "used_after_offboarding" => "AI used after its person was offboarded",
        "unsanctioned_connector_in_use" => "Unsanctioned or revoked AI connector in use",
        _ => return None,
    };
    let severity = match f.severity {
        "critical" => 5,
        "high" => 4,
        "medium" => 3,
        _ => 2,
    };
    let key = finding_key(f);
    let mut e = event(
        2004,
        "Detection Finding",
        2,
        "Findings",
        1,
        "Create",
        severity,
        now_ms,
        metadata(stable_uid(&["finding", &key, "create"]), now_ms),
    );
    e["metadata"]["profiles"] = json!(["host"]);
    e["status_id"] = json!(1);
    e["status"] = json!("New");
    e["finding_info"] = json!({
        "uid": key, "title": title, "types": [f.kind],
        "first_seen_time": f.first_seen_ms, "desc": format!("{title}: {}", f.subject),
    });
    e["resources"] = json!([{"uid": f.subject, "type": "AI connector"}]);
    if let Some(d) = &f.device_id {
        e["device"] = json!({"uid": d, "type_id": 0, "type": "Unknown"});
    }
    e["evidences"] = json!([{"data": f.evidence}]);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PresenceEdge;

    fn obs(kind: ObservationKind, change: Change, edge: Option<(u64, bool)>, seq: u64) -> ExportObservation {
        ExportObservation {
            rowid: seq as i64,
            device_id: "dev_1".into(),
            hostname: "h".into(),
            os: "linux".into(),
            os_version: "6.8".into(),
            seq,
            observed_at_ms: 1_000,
            received_at_ms: 2_000,
            change,
            kind,
            assurance: "tpm".into(),
            data: json!({"tool": "ollama", "name": "ollama", "pid": 7, "exe": "/usr/bin/ollama", "hostname": "h"}),
            connector_key: Some("tool:ollama".into()),
            edge: edge.map(|(appeared_seq, closes)| PresenceEdge {
                locus: "pid:7".into(),
                appeared_seq,
                closes,
            }),
            previous: None,
        }
    }

    #[test]
    fn only_changes_are_events_and_their_uids_name_the_change() {
        let launch =
            from_observation(&obs(ObservationKind::Process, Change::Snapshot, Some((3, false)), 3)).unwrap();
        let stop = from_observation(&obs(ObservationKind::Process, Change::Disappeared, Some((3, true)), 9))
            .unwrap();
        assert_eq!((launch["activity_id"].as_u64(), stop["activity_id"].as_u64()), (Some(1), Some(2)));
        assert_ne!(launch["metadata"]["uid"], stop["metadata"]["uid"]);
        // The same change read again (a redelivery) has the same uid.
        let again =
            from_observation(&obs(ObservationKind::Process, Change::Snapshot, Some((3, false)), 3)).unwrap();
        assert_eq!(again["metadata"]["uid"], launch["metadata"]["uid"]);
        // A re-sighting, or a disappearance that closed nothing, is no event.
        assert!(from_observation(&obs(ObservationKind::Process, Change::Snapshot, None, 4)).is_none());
        assert!(from_observation(&obs(ObservationKind::App, Change::Disappeared, None, 5)).is_none());
        // A change the agent saw on something present is one.
        let changed = from_observation(&obs(ObservationKind::App, Change::Changed, None, 6)).unwrap();
        assert_eq!(changed["message"], "ollama changed");
        // A device inventory exports when it differs from the one before.
        let mut inv = obs(ObservationKind::DeviceInventory, Change::Snapshot, None, 7);
        assert!(from_observation(&inv).is_some(), "the first");
        inv.previous = Some(inv.data.clone());
        assert!(from_observation(&inv).is_none(), "the same facts again");
        inv.previous = Some(json!({"hostname": "old"}));
        assert!(from_observation(&inv).is_some(), "changed facts");
    }

    #[test]
    fn stable_uids_are_version_8_uuids_of_their_parts() {
        let u = stable_uid(&["a", "b"]);
        assert_eq!(u, stable_uid(&["a", "b"]));
        assert_ne!(u, stable_uid(&["ab", ""]), "parts are separated");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
