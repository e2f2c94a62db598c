//! Identity-provider sign-in events: the Okta System Log and Microsoft Entra ID sign-in logs,
//! imported from a file (`signins import`) or pushed to the API (`POST /api/v1/signins/{okta,entra}`
//! with an `ingest` token). They place a person at a time, next to the OS sessions agents
//! report, when triage asks who did what.
//!
//! Accepted shapes: a JSON array, Graph's `{"value": [...]}` page, or JSON lines. A batch is
//! all-or-nothing: one malformed event rejects the batch with its position, so a half-imported
//! file never hides a problem. Events are keyed by the IdP's own id: importing twice stores once.

use anyhow::Context;
use serde_json::Value;

/// One sign-in as Sightline keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `okta:<uuid>` or `entra:<id>`.
    pub id: String,
    pub source: &'static str,
    /// Okta `actor.alternateId` or Entra `userPrincipalName`.
    pub user_name: String,
    pub at_ms: i64,
    pub ip: Option<String>,
    pub app: Option<String>,
    pub device: Option<String>,
    /// `success` or `failure`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Okta,
    Entra,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "okta" => Some(Source::Okta),
            "entra" => Some(Source::Entra),
            _ => None,
        }
    }
}

/// Parses a file or request body into sign-ins; events that are not sign-ins (other Okta
/// event types) are skipped and counted.
pub fn parse(source: Source, text: &str) -> anyhow::Result<(Vec<SignIn>, usize)> {
    let events = events(text)?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for (i, e) in events.iter().enumerate() {
        let parsed = match source {
            Source::Okta => okta(e),
            Source::Entra => entra(e).map(Some),
        }
        .with_context(|| format!("event {} is not a valid {} sign-in", i + 1, source_name(source)))?;
        match parsed {
            Some(s) => out.push(s),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Okta => "Okta System Log",
        Source::Entra => "Entra ID",
    }
}

fn events(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(match v {
            Value::Array(a) => a,
            Value::Object(mut o) if o.get("value").is_some_and(Value::is_array) => match o.remove("value") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            other => vec![other],
        });
    }
    // JSON lines.
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {} is not JSON", i + 1)))
        .collect()
}

fn time_ms(v: &Value, field: &str) -> anyhow::Result<i64> {
    let s = v[field].as_str().with_context(|| format!("`{field}` is missing"))?;
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z').split('.').next().unwrap_or(s))
        .with_context(|| format!("`{field}` {s:?} is not an RFC 3339 time"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned).filter(|s| !s.is_empty())
}

/// An Okta System Log event (`/api/v1/logs`); sign-ins are `user.session.start` and
/// `user.authentication.*` events by a user.
fn okta(e: &Value) -> anyhow::Result<Option<SignIn>> {
    let kind = e["eventType"].as_str().context("`eventType` is missing")?;
    if !(kind == "user.session.start" || kind.starts_with("user.authentication.")) {
        return Ok(None);
    }
    let uuid = e["uuid"].as_str().context("`uuid` is missing")?;
    let user = e["actor"]["alternateId"].as_str().context("`actor.alternateId` is missing")?;
    let outcome = match e["outcome"]["result"].as_str() {
        Some("SUCCESS" | "ALLOW") => "success",
        Some(_) => "failure",
        None => anyhow::bail!("`outcome.result` is missing"),
    };
    Ok(Some(SignIn {
        id: format!("okta:{uuid}"),
        source: "okta",
        user_name: user.to_ascii_lowercase(),
        at_ms: time_ms(e, "published")?,
        ip: text(&e["client"]["ipAddress"]),
        app: e["target"].as_array().and_then(|t| t.iter().find_map(|x| text(&x["displayName"]))),
        device: text(&e["client"]["device"]),
        outcome,
    }))
}

/// A Microsoft Graph `signIn` resource (`/auditLogs/signIns`).
fn entra(e: &Value) -> anyhow::Result<SignIn> {
    let id = e["id"].as_str().context("`id` is missing")?;
    let user = e["userPrincipalName"].as_str().context("`userPrincipalName` is missing")?;
    let code = e["status"]["errorCode"].as_i64().context("`status.errorCode` is missing")?;
    Ok(SignIn {
        id: format!("entra:{id}"),
        source: "entra",
        user_name: user.to_ascii_lowercase(),
        at_ms: time_ms(e, "createdDateTime")?,
        ip: text(&e["ipAddress"]),
        app: text(&e["appDisplayName"]),
        device: text(&e["deviceDetail"]["displayName"]),
        outcome: if code == 0 { "success" } else { "failure" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_and_entra_shapes() {
        let okta_log = r#"[
          {"uuid":"7f3c2b2e-1111-11ef-9a9a-3b1d2c4e5f60","published":"2027-01-15T07:58:12.345Z","eventType":"user.session.start",
           "actor":{"id":"00u1abcd","type":"User","alternateId":"Alice@Example.com","displayName":"Alice Ng"},
           "client":{"ipAddress":"198.51.100.7","device":"Computer","userAgent":{"rawUserAgent":"Mozilla/5.0"}},
           "outcome":{"result":"SUCCESS"},"target":[{"type":"AppInstance","displayName":"Okta Dashboard"}]},
          {"uuid":"7f3c2b2e-2222","published":"2027-01-15T07:59:00Z","eventType":"user.account.update_profile",
           "actor":{"alternateId":"alice@example.com"},"outcome":{"result":"SUCCESS"}}
        ]"#;
        let (s, skipped) = parse(Source::Okta, okta_log).unwrap();
        assert_eq!((s.len(), skipped), (1, 1));
        assert_eq!(s[0].user_name, "alice@example.com");
        assert_eq!(s[0].at_ms, 1_800_000_000_000 - 108_000);
        assert_eq!((s[0].outcome, s[0].app.as_deref()), ("success", Some("Okta Dashboard")));

        let graph = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns","value":[
          {"id":"66ea54eb-6301-4ee5-be62-ff5a759b0100","createdDateTime":"2027-01-15T09:00:00Z","userDisplayName":"Bob Diaz",
           "userPrincipalName":"bob@contoso.com","appDisplayName":"Microsoft Teams","ipAddress":"203.0.113.9",
           "status":{"errorCode":50126,"failureReason":"Invalid username or password."},
           "deviceDetail":{"deviceId":"","displayName":"LAPTOP-BOB","operatingSystem":"Windows10"}}]}"#;
        let (s, _) = parse(Source::Entra, graph).unwrap();
        assert_eq!((s[0].outcome, s[0].device.as_deref()), ("failure", Some("LAPTOP-BOB")));

        let err = format!("{:#}", parse(Source::Entra, r#"[{"id":"x","createdDateTime":"yesterday","userPrincipalName":"a@b","status":{"errorCode":0}}]"#).unwrap_err());
        assert!(err.contains("event 1") && err.contains("createdDateTime"), "{err}");
        assert!(parse(Source::Okta, "{not json").is_err());
    }
}
