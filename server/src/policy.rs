//! The collector's policy (`DATA_DIR/policy.toml`, optional): which AI connectors are
//! approved, how OS accounts map to people, when an agent counts as stale.
//!
//! ```toml
//! stale_after = "24h"
//!
//! [identity]
//! rules = ["email_local_part", "user_name"]   # tried in order; the default is email_local_part
//! [identity.accounts]                          # explicit mappings win over rules
//! "bdiaz" = "robert.diaz@contoso.com"
//!
//! [approved]                                   # without this section nothing is judged:
//! tools = ["github_copilot"]                   # connectors stay `discovered`
//! extensions = ["jgjaeacdkonaoafenlfkkkmbaopkbilf"]
//! providers = ["openai"]
//! mcp_servers = ["github"]
//! ```
//!
//! Attribution is explicit about how sure it is: `exact` (an explicit mapping), `inferred`
//! (one person matches a rule), `unknown` (no match, or several: never guessed).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::store::{Connector, Person};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub identity: Identity,
    pub approved: Option<Approved>,
    /// An agent not heard from for this long is stale (default "24h").
    pub stale_after: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default = "default_rules")]
    pub rules: Vec<Rule>,
    /// OS account → userName (or email) of the person.
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity { rules: default_rules(), accounts: BTreeMap::new() }
    }
}

fn default_rules() -> Vec<Rule> {
    vec![Rule::EmailLocalPart]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `alice` ↔ a person whose userName or an email is `alice@…`.
    EmailLocalPart,
    /// `alice` ↔ a person whose userName is `alice` (directory-style names; a Windows
    /// `DOMAIN\alice` account is compared as `alice`).
    UserName,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approved {
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    #[serde(default)]
    pub mcp_servers: Vec<String>,
}

/// Who an OS account is, and how sure that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub person: Option<Person>,
    /// `exact`, `inferred` or `unknown`.
    pub confidence: &'static str,
    pub how: String,
}

impl Policy {
    /// `DATA_DIR/policy.toml` if present; the defaults otherwise.
    pub fn load(data_dir: &Path) -> anyhow::Result<Policy> {
        let path = data_dir.join("policy.toml");
        let p: Policy = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("invalid policy {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Policy::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        p.stale_after()?;
        Ok(p)
    }

    pub fn stale_after(&self) -> anyhow::Result<Duration> {
        match &self.stale_after {
            None => Ok(Duration::from_secs(24 * 3600)),
            Some(s) => {
                humantime::parse_duration(s).with_context(|| format!("stale_after {s:?} is not a duration"))
            }
        }
    }

    /// `revoked` (an admin revoked it and every device enforced that or no longer has it),
    /// `removed` (on no device now), `approved`, `unsanctioned`, or `discovered` when the
    /// policy approves nothing (nothing is judged).
    pub fn status(&self, c: &Connector) -> &'static str {
        if c.revocation.as_ref().is_some_and(|r| r.state() == "enforced") {
            return "revoked";
        }
        if !c.devices.iter().any(|d| d.present) {
            return "removed";
        }
        let Some(a) = &self.approved else { return "discovered" };
        let field = |k: &str| c.latest.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let approved = match c.kind.as_str() {
            "tool" => a.tools.contains(&field("tool")),
            "extension" => a.extensions.contains(&field("extension_id")) || a.tools.contains(&field("tool")),
            "token" => a.providers.contains(&field("provider")),
            "mcp_server" => a.mcp_servers.contains(&field("name")),
            _ => false,
        };
        if approved { "approved" } else { "unsanctioned" }
    }

    /// The person behind an OS account, among `people`.
    pub fn attribute(&self, people: &[Person], os_user: &str) -> Attribution {
        let unknown = |how: String| Attribution { person: None, confidence: "unknown", how };
        if let Some(target) = self.identity.accounts.get(os_user) {
            return match people.iter().find(|p| names_person(p, target)) {
                Some(p) => Attribution {
                    person: Some(p.clone()),
                    confidence: "exact",
                    how: format!("mapped to {target}"),
                },
                None => unknown(format!("mapped to {target}, who is not provisioned")),
            };
        }
        let account = os_user.rsplit('\\').next().unwrap_or(os_user);
        for rule in &self.identity.rules {
            let matches: Vec<&Person> = people.iter().filter(|p| rule_matches(*rule, p, account)).collect();
            match matches.as_slice() {
                [one] => {
                    return Attribution {
                        person: Some((*one).clone()),
                        confidence: "inferred",
                        how: format!("{} rule", rule_name(*rule)),
                    };
                }
                [] => continue,
                many => return unknown(format!("{} people match the {} rule", many.len(), rule_name(*rule))),
            }
        }
        unknown("no rule or mapping matches".into())
    }

    /// The OS account names that would attribute to `p` (for looking a person up on devices).
    pub fn accounts_of(&self, p: &Person) -> Vec<String> {
        let mut out: Vec<String> = self
            .identity
            .accounts
            .iter()
            .filter(|(_, t)| names_person(p, t))
            .map(|(a, _)| a.clone())
            .collect();
        for rule in &self.identity.rules {
            match rule {
                Rule::EmailLocalPart => out.extend(
                    std::iter::once(&p.user_name)
                        .chain(&p.emails)
                        .filter_map(|e| e.split_once('@').map(|(l, _)| l.to_ascii_lowercase())),
                ),
                Rule::UserName => out.push(p.user_name.to_ascii_lowercase()),
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn names_person(p: &Person, target: &str) -> bool {
    p.user_name.eq_ignore_ascii_case(target) || p.emails.iter().any(|e| e.eq_ignore_ascii_case(target))
}

fn rule_matches(rule: Rule, p: &Person, account: &str) -> bool {
    match rule {
        Rule::EmailLocalPart => std::iter::once(&p.user_name)
            .chain(&p.emails)
            .filter_map(|e| e.split_once('@'))
            .any(|(local, _)| local.eq_ignore_ascii_case(account)),
        Rule::UserName => p.user_name.eq_ignore_ascii_case(account),
    }
}

fn rule_name(r: Rule) -> &'static str {
    match r {
        Rule::EmailLocalPart => "email_local_part",
        Rule::UserName => "user_name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(user_name: &str, emails: &[&str]) -> Person {
        Person {
            id: user_name.into(),
            user_name: user_name.into(),
            external_id: None,
            display_name: None,
            emails: emails.iter().map(|e| e.to_string()).collect(),
            active: true,
            created_at_ms: 0,
            modified_at_ms: 0,
            deprovisioned_at_ms: None,
            deleted_at_ms: None,
        }
    }

    #[test]
    fn attribution_says_how_sure_it_is() {
        let people = vec![
            person("alice@example.com", &["alice@example.com"]),
            person("bob@example.com", &[]),
            person("bob@other.example", &[]),
            person("robert.diaz@contoso.com", &[]),
        ];
        let p: Policy = toml::from_str("[identity.accounts]\nbdiaz = \"Robert.Diaz@contoso.com\"\n").unwrap();
        let a = p.attribute(&people, "bdiaz");
        assert_eq!((a.confidence, a.person.unwrap().id.as_str()), ("exact", "robert.diaz@contoso.com"));
        let a = p.attribute(&people, "alice");
        assert_eq!((a.confidence, a.person.map(|p| p.id)), ("inferred", Some("alice@example.com".into())));
        let a = p.attribute(&people, "CORP\\alice");
        assert_eq!(a.confidence, "inferred");
        let a = p.attribute(&people, "bob");
        assert_eq!((a.confidence, a.person), ("unknown", None), "two bobs: never guessed");
        assert!(a.how.contains("2 people"));
        assert_eq!(p.attribute(&people, "root").confidence, "unknown");
        assert_eq!(p.accounts_of(&people[3]), vec!["bdiaz".to_owned(), "robert.diaz".to_owned()]);
        assert!(toml::from_str::<Policy>("[identity]\nrules = [\"guess\"]\n").is_err());
        assert!(toml::from_str::<Policy>("colour = 1\n").is_err());
    }
}
