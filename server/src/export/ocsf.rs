//! Sightline's evidence as OCSF 1.3.0 events (schema.ocsf.io):
//!
//! | what                               | class                         | activity             |
//! |------------------------------------|-------------------------------|----------------------|
//! | device facts (`device_inventory`)  | 5001 Device Inventory Info    | 1 Log                |
//! | app or extension                   | 5020 Software Inventory Info  | 1 Log                |
//! | AI tool process                    | 1007 Process Activity         | 1 Launch, 2 Terminate|
//! | stored credential (fingerprint)    | 2006 Data Security Finding    | 1 Create, 3 Close    |
//! | shadow AI, orphaned, shared, …     | 2004 Detection Finding        | 1 Create             |
//! | enrollment                         | 3002 Authentication           | 1 Logon              |
//!
//! Every event has a stable `metadata.uid` (device and sequence number, finding key,
//! enrollment), so a receiver can drop a redelivery, and `unmapped.sightline` points back
//! at the signed evidence. A credential appears only as its keyed fingerprint.

use crate::domain::ObservationKind;
use serde_json::{Value, json};

use crate::findings::Finding;
use crate::store::{Device, ExportObservation};

pub const VERSION: &str = "1.3.0";

fn metadata(uid: String, logged_ms: i64) -> Value {
    json!({
        "version": VERSION,
        "uid": uid,
        "logged_time": logged_ms,
        "product": {"name": "Sightline", "vendor_name": "Sightline", "version": env!("CARGO_PKG_VERSION")},
    })
}

fn os(name: &str, version: &str) -> Value {
    let (type_id, caption) = match name {
        "windows" => (100, "Windows"),
        "linux" => (200, "Linux"),
        "macos" => (300, "macOS"),
        _ => (0, "Unknown"),
    };
    json!({"name": caption, "type_id": type_id, "type": caption, "version": version})
}

fn device(id: &str, hostname: &str, os_name: &str, os_version: &str) -> Value {
    // The agent does not tell a laptop from a desktop: type Unknown, honestly.
    json!({"uid": id, "hostname": hostname, "name": hostname, "type_id": 0, "type": "Unknown", "os": os(os_name, os_version)})
}

#[allow(clippy::too_many_arguments, reason = "the base event's fields, named")]
fn event(
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

fn severity_name(id: u32) -> &'static str {
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

/// The event an observation becomes, if it is one that is exported.
pub fn from_observation(o: &ExportObservation) -> Option<Value> {
    let uid = format!("{}:{}", o.device_id, o.seq);
    let meta = metadata(uid, o.received_at_ms);
    let dev = device(&o.device_id, &o.hostname, &o.os, &o.os_version);
    let back = json!({"device_id": o.device_id, "seq": o.seq, "change": o.change.as_str(), "assurance": o.assurance});
    let gone = o.change.ends_presence();
    let user = |d: &Value| d.get("user").and_then(Value::as_str).map(|u| json!({"name": u}));
    let mut e = match o.kind {
        ObservationKind::DeviceInventory => {
            let mut e =
                event(5001, "Device Inventory Info", 5, "Discovery", 1, "Log", 1, o.observed_at_ms, meta);
            let mut d = dev;
            d["hostname"] = json!(str_of(&o.data, "hostname"));
            d["os"] = os(str_of(&o.data, "os"), str_of(&o.data, "os_version"));
            e["device"] = d;
            e
        }
        ObservationKind::App | ObservationKind::Extension => {
            let mut e =
                event(5020, "Software Inventory Info", 5, "Discovery", 1, "Log", 1, o.observed_at_ms, meta);
            let d = &o.data;
            let name =
                if o.kind == ObservationKind::Extension { str_of(d, "name") } else { str_of(d, "tool") };
            e["device"] = dev;
            e["package"] = json!({
                "name": name,
                "version": d.get("version").and_then(Value::as_str).unwrap_or("unknown"),
                "type": if o.kind == ObservationKind::Extension { format!("browser extension ({})", str_of(d, "browser")) } else { "application".into() },
                "uid": if o.kind == ObservationKind::Extension { str_of(d, "extension_id") } else { str_of(d, "tool") },
                "path": str_of(d, "path"),
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
            let d = &o.data;
            e["device"] = dev;
            e["process"] = json!({"pid": d.get("pid"), "name": str_of(d, "name"), "file": {"path": str_of(d, "exe"), "name": str_of(d, "name")}});
            e["actor"] = json!({"user": user(d).unwrap_or_else(|| json!({"name": "unknown"}))});
            e
        }
        ObservationKind::Token => {
            let (id, name) = if gone { (3, "Close") } else { (1, "Create") };
            let mut e =
                event(2006, "Data Security Finding", 2, "Findings", id, name, 3, o.observed_at_ms, meta);
            let d = &o.data;
            e["device"] = dev;
            e["finding_info"] = json!({
                "uid": format!("credential:{}:{}", o.device_id, str_of(d, "fingerprint")),
                "title": format!("{} credential stored on device", str_of(d, "provider")),
                "types": ["AI credential"],
                "desc": format!("A {} {} in {} ({}); fingerprint {}", str_of(d, "provider"), str_of(d, "token_kind"), str_of(d, "path"), str_of(d, "source"), str_of(d, "fingerprint")),
            });
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
    let uid = format!("enroll:{}:{}", d.id, d.enrolled_at_ms);
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
    e["user"] = json!({"uid": d.id, "name": d.hostname, "type": "System", "type_id": 99});
    e["device"] = device(&d.id, &d.hostname, &d.os, &d.os_version);
    e["auth_protocol"] = json!(format!("sightline enrollment ({} key, {})", d.key_backend, d.assurance));
    e["is_mfa"] = json!(false);
    e["status_id"] = json!(1);
    e["status"] = json!("Success");
    e["unmapped"] = json!({"sightline": {"assurance": d.assurance, "key_backend": d.key_backend, "hardware_id": d.hardware_id}});
    e
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
        "shared_credential" => "AI credential shared across devices or accounts",
        "revocation_not_enforced" => "Revocation not enforced on a device",
        _ => return None,
    };
    let severity = match f.severity {
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
        metadata(key.clone(), now_ms),
    );
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
