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
//!
//! [groups]                                     # people by userName or email
//! engineering = ["alice@contoso.com", "bob@contoso.com"]
//!
//! [approved.groups.engineering]                # approved for these people only
//! tools = ["cursor"]
//! providers = ["anthropic"]
//! ```
//!
//! `[approved.groups.NAME]` is satisfied by a member of the static `[groups]` list NAME, if
//! the policy has one, or of the SCIM group whose displayName is NAME (compared
//! case-insensitively; membership as the identity provider provisions it through
//! `/scim/v2/Groups`). A name in neither simply approves nobody yet, so a group can be named
//! before the IdP pushes it. A connector approved for a group is `approved` only where every
//! account it is present under is attributed to a member of such a group; anywhere else it
//! is `unsanctioned`.
//!
//! Attribution is explicit about how sure it is: `exact` (an explicit mapping), `inferred`
//! (one person matches a rule), `unknown` (no match, or several: never guessed).
//!
//! The provider account a connector is signed in with (as the agent read it from the tool's
//! own files) is classified by [`Policy::classify_account`]:
//!
//! ```toml
//! org_domains = ["contoso.com"]        # the organization's own e-mail domains (and subdomains)
//! personal_domains = ["fastmail.com"]  # consumer domains beyond the built-in list
//! ```
//!
//! `corporate`: the owner's own SCIM e-mail or userName, or a domain in `org_domains`;
//! `personal`: a consumer domain ([`CONSUMER_DOMAINS`] or `personal_domains`), or — once the
//! policy names its `org_domains` — any other domain; `unknown`: a bare login (a GitHub user
//! name says nothing about who controls the account; an org grants access to personal GitHub
//! accounts by design), or another domain while `org_domains` is not set (nothing to tell it
//! from a corporate one).
//!
//! The offboarding playbook (the `offboarding` module runs it):
//!
//! ```toml
//! [offboarding]
//! action = "revoke"          # "report" (the default): findings only
//! grace = "7d"               # revoke this long after the IdP deprovisioned the owner (default 7d)
//! kinds = ["token", "extension"]   # optional: revoke only these (tool, extension, token); the rest is reported
//! unowned_after = "30d"      # optional: a connector nobody owns for this long is an `unowned_connector` finding
//! unowned_action = "revoke"  # and is revoked `grace` later ("report", the default: the finding only)
//! ```
//!
//! A connector belongs to the person `register::owner_of` names (an assigned owner, else
//! the one person behind every account it is present under). When SCIM deactivates or
//! deletes that person, `action = "revoke"` revokes each of their connectors present on any
//! device once `grace` has passed since the deprovisioning, as an admin's revocation would
//! (a directive per device, outcomes per device). Unowned means attribution finds nobody
//! (source `unknown`); a connector `shared` by several people is not unowned — its people
//! are known, the `shared_credential` finding asks for an owner — and is never revoked by the
//! playbook. MCP server entries cannot be revoked by agents: they stay findings.

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
    /// Named groups of people (userNames or emails), for approvals by group.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// What happens to connectors whose owner leaves, and to connectors nobody owns.
    #[serde(default)]
    pub offboarding: OffboardingRules,
    /// The organization's e-mail domains: an account there is `corporate`.
    #[serde(default)]
    pub org_domains: Vec<String>,
    /// Consumer e-mail domains beyond [`CONSUMER_DOMAINS`].
    #[serde(default)]
    pub personal_domains: Vec<String>,
}

/// Consumer e-mail domains: an account there is `personal` whatever else the policy says
/// (unless it is the owner's own address). Policy adds to them with `personal_domains`.
pub const CONSUMER_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "zoho.com",
    "qq.com",
    "163.com",
    "fastmail.com",
    "tutanota.com",
];

/// Whose a provider account is, as far as the policy can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountClass {
    Corporate,
    Personal,
    Unknown,
}

impl AccountClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountClass::Corporate => "corporate",
            AccountClass::Personal => "personal",
            AccountClass::Unknown => "unknown",
        }
    }
}

/// `[offboarding]` as written; [`Policy::playbook`] checks and reads it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffboardingRules {
    #[serde(default)]
    pub action: PlaybookAction,
    /// How long after deprovisioning before revoking (default "7d").
    pub grace: Option<String>,
    /// Only these kinds are revoked; the others are reported.
    pub kinds: Option<Vec<String>>,
    /// A connector with no owner for this long is reported; off when absent.
    pub unowned_after: Option<String>,
    #[serde(default)]
    pub unowned_action: PlaybookAction,
}

/// What a playbook rule does: report (findings only) or revoke.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybookAction {
    #[default]
    Report,
    Revoke,
}

impl PlaybookAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybookAction::Report => "report",
            PlaybookAction::Revoke => "revoke",
        }
    }
}

/// The offboarding playbook, checked: durations parsed, kinds known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playbook {
    pub action: PlaybookAction,
    pub grace: Duration,
    /// None: every kind the agents can revoke.
    pub kinds: Option<Vec<String>>,
    /// The rule for connectors nobody owns, when `unowned_after` is set.
    pub unowned: Option<UnownedRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnownedRule {
    pub after: Duration,
    pub action: PlaybookAction,
}

impl Playbook {
    /// Whether any rule revokes: only then does the runner read anything.
    pub fn acts(&self) -> bool {
        self.action == PlaybookAction::Revoke
            || self.unowned.is_some_and(|u| u.action == PlaybookAction::Revoke)
    }

    /// Whether the playbook may revoke connectors of `kind`.
    pub fn covers(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.iter().any(|x| x == kind))
    }
}

/// Kinds a playbook may name: the ones agents can revoke (`crate::revoke`'s table).
const REVOCABLE_KINDS: [&str; 3] = ["tool", "extension", "token"];

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
    /// Approvals that hold only for members of a group (`[approved.groups.NAME]`).
    #[serde(default)]
    pub groups: BTreeMap<String, Approved>,
}

impl Approved {
    /// Whether these lists (not the per-group ones) approve `c`.
    fn allows(&self, c: &Connector) -> bool {
        let field = |k: &str| c.latest.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        match c.kind.as_str() {
            "tool" => self.tools.contains(&field("tool")),
            "extension" => {
                self.extensions.contains(&field("extension_id")) || self.tools.contains(&field("tool"))
            }
            "token" => self.providers.contains(&field("provider")),
            "mcp_server" => self.mcp_servers.contains(&field("name")),
            _ => false,
        }
    }
}

/// People indexed by every name they can be found by (lower-cased userName and emails, and
/// their local parts), so attributing an account reads only who could match it.
#[derive(Debug, Default, Clone)]
pub struct People {
    list: Vec<Person>,
    by_key: std::collections::HashMap<String, Vec<usize>>,
    ids: std::collections::HashMap<String, usize>,
}

impl People {
    pub fn new(list: Vec<Person>) -> People {
        let mut by_key: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, p) in list.iter().enumerate() {
            let mut keys = Vec::new();
            for name in std::iter::once(&p.user_name).chain(&p.emails) {
                let name = name.to_lowercase();
                if let Some((local, _)) = name.split_once('@') {
                    keys.push(local.to_owned());
                }
                keys.push(name);
            }
            keys.sort();
            keys.dedup();
            for k in keys {
                by_key.entry(k).or_default().push(i);
            }
        }
        let ids = list.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        People { list, by_key, ids }
    }

    pub fn all(&self) -> &[Person] {
        &self.list
    }

    /// The person with this SCIM id.
    pub fn by_id(&self, id: &str) -> Option<&Person> {
        self.ids.get(id).map(|&i| &self.list[i])
    }

    /// The person a human names: their userName or one of their emails, whole
    /// (case-insensitive; a bare local part is an OS account's business, not a name).
    pub fn named(&self, name: &str) -> Option<&Person> {
        let name = name.to_lowercase();
        self.by_key.get(&name)?.iter().map(|&i| &self.list[i]).find(|p| names_person(p, &name))
    }

    /// Everyone found by one of `keys`, in the original order.
    pub fn by_keys(&self, keys: &[String]) -> Vec<Person> {
        let mut idx: Vec<usize> =
            keys.iter().filter_map(|k| self.by_key.get(&k.to_lowercase())).flatten().copied().collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| self.list[i].clone()).collect()
    }
}

/// A connector's status and what decided it: `decision` (an admin's or reviewer's, in
/// force), `policy` (policy.toml's lists), `policy:groups:A,B` (approved for those groups),
/// `expired` (an approval lapsed), `revocation`, `presence` (removed), `none` (not judged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub status: &'static str,
    pub source: String,
}

/// The provider account a connector was issued to, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub account: String,
    pub org: Option<String>,
    pub class: AccountClass,
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
        p.check_groups().with_context(|| format!("invalid policy {}", path.display()))?;
        p.playbook().with_context(|| format!("invalid policy {}", path.display()))?;
        Ok(p)
    }

    /// `[offboarding]`, checked. [`Policy::load`] refuses a policy this rejects, so a
    /// collector never runs with a playbook it cannot read.
    pub fn playbook(&self) -> anyhow::Result<Playbook> {
        let o = &self.offboarding;
        let duration = |field: &str, s: &str| {
            humantime::parse_duration(s).with_context(|| {
                format!("[offboarding] {field} = {s:?} is not a duration (like \"7d\" or \"12h\")")
            })
        };
        let grace = match &o.grace {
            Some(g) => duration("grace", g)?,
            None => Duration::from_secs(7 * 24 * 3600),
        };
        if let Some(kinds) = &o.kinds {
            for k in kinds {
                if k == "mcp_server" {
                    anyhow::bail!(
                        "[offboarding] kinds: agents cannot revoke MCP server entries (revoke the tokens they \
                         are handed or the client tool); leave mcp_server out"
                    );
                }
                anyhow::ensure!(
                    REVOCABLE_KINDS.contains(&k.as_str()),
                    "[offboarding] kinds: {k:?} is not one of {}",
                    REVOCABLE_KINDS.join(", ")
                );
            }
        }
        let unowned = match &o.unowned_after {
            Some(a) => Some(UnownedRule { after: duration("unowned_after", a)?, action: o.unowned_action }),
            None if o.unowned_action == PlaybookAction::Revoke => {
                anyhow::bail!(
                    "[offboarding] unowned_action = \"revoke\" needs unowned_after (how long unowned)"
                )
            }
            None => None,
        };
        Ok(Playbook { action: o.action, grace, kinds: o.kinds.clone(), unowned })
    }

    fn check_groups(&self) -> anyhow::Result<()> {
        let Some(a) = &self.approved else { return Ok(()) };
        // A name [groups] does not define refers to the SCIM group of that displayName.
        for (name, g) in &a.groups {
            if !g.groups.is_empty() {
                anyhow::bail!("[approved.groups.{name}] cannot nest groups");
            }
        }
        Ok(())
    }

    pub fn stale_after(&self) -> anyhow::Result<Duration> {
        match &self.stale_after {
            None => Ok(Duration::from_secs(24 * 3600)),
            Some(s) => {
                humantime::parse_duration(s).with_context(|| format!("stale_after {s:?} is not a duration"))
            }
        }
    }

    /// The status of `c` now; see [`Policy::judge`].
    pub fn status(&self, c: &Connector, people: &People) -> &'static str {
        self.judge(c, people, crate::clock::now_ms()).status
    }

    /// `revoked` (an admin revoked it and every device enforced that or no longer has it),
    /// `removed` (on no device now), `approved` (by a decision in force, by the policy, or
    /// for a group every account it is present under belongs to), `unsanctioned`, or
    /// `discovered` when nothing judges it (no decision, and a policy that approves nothing).
    /// An approval that lapsed leaves it `unsanctioned` unless the policy approves it: a
    /// time-limited approval must not fall back to "not judged". `people` matters only for
    /// group approvals. The judgement names its source, for the register and audits.
    pub fn judge(&self, c: &Connector, people: &People, now_ms: i64) -> Judgement {
        let by = |status: &'static str, source: &str| Judgement { status, source: source.to_owned() };
        let present = c.devices.iter().any(|d| d.present);
        // A revocation recorded a moment before its directives are stored has none yet: it
        // is not enforced where the connector is still present.
        if c.revocation.as_ref().is_some_and(|r| {
            r.state() == crate::domain::RevocationProgress::Enforced && (!r.latest.is_empty() || !present)
        }) {
            return by("revoked", "revocation");
        }
        if !present {
            return by("removed", "presence");
        }
        let lapsed = match &c.decision {
            Some(d) if d.in_force(now_ms) => match d.status.as_str() {
                "approved" => return by("approved", "decision"),
                "unsanctioned" => return by("unsanctioned", "decision"),
                _ => false,
            },
            Some(d) => d.status == "approved",
            None => false,
        };
        let Some(a) = &self.approved else {
            return if lapsed { by("unsanctioned", "expired") } else { by("discovered", "none") };
        };
        if a.allows(c) {
            return by("approved", "policy");
        }
        let groups: Vec<&str> =
            a.groups.iter().filter(|(_, g)| g.allows(c)).map(|(name, _)| name.as_str()).collect();
        let member = |os_user: &str| {
            self.attribute_among(people, os_user).person.is_some_and(|p| {
                groups.iter().any(|g| {
                    self.groups.get(*g).is_some_and(|members| members.iter().any(|m| names_person(&p, m)))
                        || p.groups.iter().any(|s| s.display_name.eq_ignore_ascii_case(g))
                })
            })
        };
        let mut owners = c.devices.iter().filter(|d| d.present).map(|d| d.user.as_deref());
        if !groups.is_empty() && owners.all(|u| u.is_some_and(member)) {
            Judgement { status: "approved", source: format!("policy:groups:{}", groups.join(",")) }
        } else if lapsed {
            by("unsanctioned", "expired")
        } else {
            by("unsanctioned", "policy")
        }
    }

    /// Whose the provider account `account` (an e-mail address or a login) is: see the module
    /// doc. `owner` is the person the connector belongs to, if known (today the person its OS
    /// account is attributed to).
    pub fn classify_account(&self, account: &str, owner: Option<&Person>) -> AccountClass {
        let account = account.trim();
        if owner.is_some_and(|p| names_person(p, account)) {
            return AccountClass::Corporate;
        }
        let Some((_, domain)) = account.rsplit_once('@') else { return AccountClass::Unknown };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        // A domain or any subdomain of it (`eu.contoso.com` for `contoso.com`).
        let within = |d: &str| {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            !d.is_empty() && (domain == d || domain.ends_with(&format!(".{d}")))
        };
        if self.org_domains.iter().any(|d| within(d)) {
            AccountClass::Corporate
        } else if CONSUMER_DOMAINS.iter().any(|d| within(d))
            || self.personal_domains.iter().any(|d| within(d))
        {
            AccountClass::Personal
        } else if self.org_domains.is_empty() {
            AccountClass::Unknown
        } else {
            AccountClass::Personal
        }
    }

    /// The provider account a connector's last report says it was issued to (a token's
    /// `authorized_by`, which the agent reads from the tool's own files), classified for
    /// `owner`. `None` for connectors without one (API keys carry no account).
    pub fn authorization(&self, c: &Connector, owner: Option<&Person>) -> Option<Authorization> {
        if c.kind != "token" {
            return None;
        }
        let by = c.latest.get("authorized_by")?;
        let account = by.get("account")?.as_str()?.to_owned();
        let org = by.get("org").and_then(|o| o.as_str()).map(str::to_owned);
        let class = self.classify_account(&account, owner);
        Some(Authorization { account, org, class })
    }

    /// The person behind an OS account, among indexed `people` (same answer as
    /// [`Policy::attribute`] over all of them).
    pub fn attribute_among(&self, people: &People, os_user: &str) -> Attribution {
        self.attribute(&people.by_keys(&self.keys_for(os_user)), os_user)
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

    /// The names (see `Store::people_by_keys`) of everyone who could be behind an OS account
    /// under this policy: attributing it among just those people gives the same answer as
    /// among everyone.
    pub fn keys_for(&self, os_user: &str) -> Vec<String> {
        let mut keys = vec![os_user.rsplit('\\').next().unwrap_or(os_user).to_lowercase()];
        keys.extend(self.identity.accounts.get(os_user).map(|t| t.to_lowercase()));
        keys
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
            ..Default::default()
        }
    }

    #[test]
    fn accounts_are_corporate_personal_or_unknown() {
        use AccountClass::*;
        let p: Policy =
            toml::from_str("org_domains = [\"Contoso.com\"]\npersonal_domains = [\"fastmail.fm\"]\n")
                .unwrap();
        let ana = person("ana@contoso.com", &["ana@contoso.com", "ana.lopez@contoso-labs.io"]);
        let class = |account: &str, owner: Option<&Person>| p.classify_account(account, owner);
        // An org domain, any case, and its subdomains.
        assert_eq!(class("bob@CONTOSO.com", None), Corporate);
        assert_eq!(class("bob@eu.contoso.com", None), Corporate);
        assert_eq!(class("bob@notcontoso.com", None), Personal, "a suffix is not a subdomain");
        // The owner's own address on another domain (an acquired company's mail).
        assert_eq!(class("Ana.Lopez@contoso-labs.io", Some(&ana)), Corporate);
        assert_eq!(class("ana.lopez@contoso-labs.io", None), Personal);
        // Consumer domains, built in and from the policy, even for the owner's namesake.
        assert_eq!(class("ana@gmail.com", Some(&ana)), Personal);
        assert_eq!(class("ana@proton.me", None), Personal);
        assert_eq!(class("ana@fastmail.fm", None), Personal);
        // Any other domain, once the org's are known.
        assert_eq!(class("ana@startup.dev", None), Personal);
        // A bare login says nothing about who controls the account.
        assert_eq!(class("octocat", None), Unknown);
        assert_eq!(class("", None), Unknown);
        // ... unless it is the owner's own userName.
        let gh = person("anagh", &[]);
        assert_eq!(class("AnaGH", Some(&gh)), Corporate);
        // Without org_domains nothing tells another domain from the org's own.
        let bare = Policy::default();
        assert_eq!(bare.classify_account("ana@startup.dev", None), Unknown);
        assert_eq!(bare.classify_account("ana@hotmail.com", None), Personal);
        assert_eq!(bare.classify_account("ana@contoso.com", Some(&ana)), Corporate);
        assert_eq!(
            (Corporate.as_str(), Personal.as_str(), Unknown.as_str()),
            ("corporate", "personal", "unknown")
        );
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
        let indexed = People::new(people.clone());
        for account in ["bdiaz", "alice", "CORP\\alice", "bob", "root", "robert.diaz"] {
            assert_eq!(p.attribute_among(&indexed, account), p.attribute(&people, account), "{account}");
        }
        assert!(toml::from_str::<Policy>("[identity]\nrules = [\"guess\"]\n").is_err());
        assert!(toml::from_str::<Policy>("colour = 1\n").is_err());
    }

    #[test]
    fn group_approvals_hold_only_for_members() {
        use crate::store::ConnectorDevice;
        let people = vec![person("alice@example.com", &[]), person("carol@example.com", &[])];
        let p: Policy = toml::from_str(
            "[groups]\nengineering = [\"alice@example.com\"]\n[approved]\ntools = [\"github_copilot\"]\n\
             [approved.groups.engineering]\ntools = [\"cursor\"]\n",
        )
        .unwrap();
        p.check_groups().unwrap();
        let on = |users: &[&str]| Connector {
            key: "tool:cursor".into(),
            kind: "tool".into(),
            label: "cursor".into(),
            first_seen_ms: 0,
            last_seen_ms: 0,
            latest: serde_json::json!({"tool": "cursor"}),
            devices: users
                .iter()
                .map(|u| ConnectorDevice {
                    device_id: format!("d-{u}"),
                    hostname: String::new(),
                    user: Some((*u).to_owned()),
                    first_seen_ms: 0,
                    last_seen_ms: 0,
                    present: true,
                })
                .collect(),
            seen_on: users.len(),
            revocation: None,
            decision: None,
            owner: None,
            last_used_ms: None,
        };
        let people = People::new(people);
        assert_eq!(p.status(&on(&["alice"]), &people), "approved");
        assert_eq!(
            p.status(&on(&["alice", "carol"]), &people),
            "unsanctioned",
            "carol is not in engineering"
        );
        assert_eq!(
            p.status(&on(&["mallory"]), &people),
            "unsanctioned",
            "an unknown account is nobody's member"
        );
        let nobody = People::default();
        assert_eq!(
            p.status(&on(&["alice"]), &nobody),
            "unsanctioned",
            "without the people nothing is inferred"
        );
        let nested: Policy = toml::from_str(
            "[approved.groups.finance]\ntools = [\"x\"]\n[approved.groups.finance.groups.x]\n",
        )
        .unwrap();
        assert!(nested.check_groups().is_err(), "group approvals do not nest");
    }

    #[test]
    fn a_group_the_policy_does_not_list_is_the_scim_group_of_that_name() {
        use crate::store::{ConnectorDevice, GroupRef};
        let p: Policy =
            toml::from_str("[approved]\ntools = []\n[approved.groups.Finance]\ntools = [\"cursor\"]\n")
                .unwrap();
        p.check_groups().unwrap();
        let mut dana = person("dana@example.com", &[]);
        let erin = person("erin@example.com", &[]);
        dana.groups = vec![GroupRef { id: "g1".into(), display_name: "finance".into() }];
        let people = People::new(vec![dana, erin]);
        let on = |user: &str| Connector {
            key: "tool:cursor".into(),
            kind: "tool".into(),
            label: "cursor".into(),
            latest: serde_json::json!({"tool": "cursor"}),
            devices: vec![ConnectorDevice {
                device_id: "d".into(),
                hostname: String::new(),
                user: Some(user.into()),
                first_seen_ms: 0,
                last_seen_ms: 0,
                present: true,
            }],
            seen_on: 1,
            first_seen_ms: 0,
            last_seen_ms: 0,
            revocation: None,
            decision: None,
            owner: None,
            last_used_ms: None,
        };
        assert_eq!(p.status(&on("dana"), &people), "approved", "a member of the SCIM group Finance");
        assert_eq!(p.status(&on("erin"), &people), "unsanctioned", "not a member");
    }
}
