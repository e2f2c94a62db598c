//! Acting on collector directives (revocation).
//!
//! A directive arrives on the stream; the agent
//! 1. verifies it with `sightline_proto::directive::open`: the collector signing key from
//!    enrollment (never one offered later), this device's id, not expired — anything else
//!    is refused and the refusal reported;
//! 2. acts at most once per directive id (a ledger in the state dir, `directives.json`);
//! 3. plans the action from its own last known view (the inventory), not from what the
//!    directive claims: it only ever touches what it itself reported;
//! 4. in `enforce` mode carries it out ([`terminate`], [`blocklist`], [`quarantine`]); in
//!    `report` mode (the default, set by the MDM) changes nothing and says what it would do;
//! 5. records the outcome as a `DirectiveOutcome` observation, so it travels in the signed
//!    chain like any evidence, and rescans what it changed so the disappearance follows.
//!
//! **Invariant:** enforcement is the only code in the agent that writes outside the state
//! dir, and only in enforce mode, only for a verified directive, only at paths it derived
//! itself (a browser's managed-policy directory from the catalog; a credential file it
//! found, resolved beneath its owner's home without following links out of it).

pub mod blocklist;
pub mod quarantine;
pub mod terminate;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use sightline_proto::directive::{self, DirectiveError};
use sightline_proto::pb::{self, observation::Item};

use crate::catalog::Catalog;
use crate::config::Enforcement;
use crate::detect::processes::Sampler;

/// What one step of an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Done (enforce mode).
    Done(String),
    /// Would be done (report mode).
    Would(String),
    /// Cannot be done here; says what to do instead.
    Unsupported(String),
    Failed(String),
}

/// The outcome of a whole action from its steps; no steps means nothing was there to act on.
pub fn combine(steps: &[Step], nothing: &str) -> (pb::Outcome, String) {
    if steps.is_empty() {
        return (pb::Outcome::NotPresent, nothing.to_owned());
    }
    let detail = steps
        .iter()
        .map(|s| match s {
            Step::Done(m) | Step::Would(m) => m.clone(),
            Step::Unsupported(m) => format!("unsupported: {m}"),
            Step::Failed(m) => format!("failed: {m}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let any = |f: fn(&Step) -> bool| steps.iter().any(f);
    let outcome = if any(|s| matches!(s, Step::Failed(_))) {
        pb::Outcome::Failed
    } else if any(|s| matches!(s, Step::Done(_))) {
        pb::Outcome::Enforced
    } else if any(|s| matches!(s, Step::Would(_))) {
        pb::Outcome::ReportOnly
    } else {
        pb::Outcome::Unsupported
    };
    (outcome, detail)
}

/// What handling a directive produced.
#[derive(Debug, Clone)]
pub struct Handled {
    pub outcome: pb::DirectiveOutcome,
    /// Homes whose files changed (rescan them).
    pub homes: Vec<String>,
    /// Processes were stopped (sample again).
    pub processes: bool,
}

/// Everything an action may look at.
pub struct Context<'a> {
    pub root: &'a Path,
    pub catalog: &'a Catalog,
    /// The agent's last known view.
    pub items: Vec<&'a Item>,
    pub sampler: &'a mut Sampler,
}

pub struct Enforcer {
    device_id: String,
    collector_spki: Vec<u8>,
    mode: Enforcement,
    ledger: PathBuf,
    quarantine: PathBuf,
    /// Directive ids refused in this run (a refusal is reported once).
    refused: HashSet<String>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Enforcer {
    /// `collector_signing_key` is the hex SPKI stored at enrollment.
    pub fn new(
        state_dir: &Path,
        device_id: &str,
        collector_signing_key: &str,
        mode: Enforcement,
    ) -> Enforcer {
        Enforcer {
            device_id: device_id.to_owned(),
            // A malformed key verifies nothing: every directive is then refused, loudly.
            collector_spki: hex::decode(collector_signing_key).unwrap_or_default(),
            mode,
            ledger: state_dir.join("directives.json"),
            quarantine: state_dir.join("quarantine"),
            refused: HashSet::new(),
        }
    }

    pub fn mode(&self) -> Enforcement {
        self.mode
    }

    /// Handles one directive; None if it was handled before (a resend). Blocking.
    pub fn handle(&mut self, d: &pb::Directive, ctx: Context<'_>, now_ms: i64) -> Option<Handled> {
        let (body, id) = match directive::open(d, &self.collector_spki, &self.device_id, now_ms)
            .and_then(|b| directive::DirectiveId::parse(&b.id).map(|id| (b, id)))
        {
            Ok(opened) => opened,
            Err(e) => return self.refuse(d, &e),
        };
        let mut ledger = Ledger::load(&self.ledger, now_ms);
        if ledger.contains(&body.id) {
            tracing::debug!(directive = %body.id, "Directive already handled; ignoring the resend.");
            return None;
        }
        let action = pb::DirectiveAction::try_from(body.action).unwrap_or(pb::DirectiveAction::Unspecified);
        let enforce = self.mode == Enforcement::Enforce;
        tracing::info!(directive = %body.id, action = directive::action_name(body.action), target = %body.target,
                       mode = self.mode.as_str(), "Directive verified.");
        let mut homes = Vec::new();
        let mut processes = false;
        let (outcome, detail) = match action {
            pb::DirectiveAction::TerminateProcess => {
                let steps = terminate::run(ctx.catalog, ctx.sampler, &body.target, enforce);
                processes = steps.iter().any(|s| matches!(s, Step::Done(_)));
                combine(&steps, &format!("no {} process is running", body.target))
            }
            pb::DirectiveAction::BlockExtension => {
                let steps = blocklist::run(ctx.root, ctx.catalog, &ctx.items, &body.target, enforce);
                combine(&steps, &format!("extension {} is not installed in any browser here", body.target))
            }
            pb::DirectiveAction::QuarantineCredential => {
                let q = quarantine::Quarantine { dir: &self.quarantine, directive_id: &id, now_ms };
                let (steps, touched) = q.run(ctx.root, &ctx.items, &body.target, enforce);
                homes = touched;
                combine(&steps, "no file on this device holds that credential")
            }
            pb::DirectiveAction::Unspecified => (pb::Outcome::Refused, "unknown action".to_owned()),
        };
        ledger.insert(body.id.clone(), body.expires_at_ms);
        if let Err(e) = ledger.save(&self.ledger) {
            // Acting twice is harmless (every action is idempotent); not recording is not.
            tracing::warn!(error = %e, "Could not save the directive ledger.");
        }
        tracing::info!(directive = %body.id, outcome = directive::outcome_name(outcome as i32), %detail, "Directive handled.");
        Some(Handled {
            outcome: pb::DirectiveOutcome {
                directive_id: body.id,
                action: body.action,
                target: body.target,
                outcome: outcome as i32,
                detail,
                mode: self.mode.as_str().to_owned(),
            },
            homes,
            processes,
        })
    }

    fn refuse(&mut self, d: &pb::Directive, e: &DirectiveError) -> Option<Handled> {
        let claimed = directive::claimed_id(d);
        tracing::warn!(directive = %claimed, reason = %e, "Directive refused.");
        if !self.refused.insert(claimed.clone()) {
            return None;
        }
        Some(Handled {
            outcome: pb::DirectiveOutcome {
                directive_id: claimed,
                action: 0,
                target: String::new(),
                outcome: pb::Outcome::Refused as i32,
                detail: e.to_string(),
                mode: self.mode.as_str().to_owned(),
            },
            homes: Vec::new(),
            processes: false,
        })
    }
}

/// Directive ids already handled, each kept until it expires (after that the directive
/// itself is refused as expired, so the ledger stays small).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Ledger {
    handled: BTreeMap<String, i64>,
}

impl Ledger {
    fn load(path: &Path, now_ms: i64) -> Ledger {
        let mut l: Ledger = match std::fs::read(path) {
            Ok(b) if b.len() < 4 << 20 => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "Directive ledger is damaged; starting a new one.");
                Ledger::default()
            }),
            _ => Ledger::default(),
        };
        l.handled.retain(|_, expires| *expires > now_ms);
        l
    }

    fn contains(&self, id: &str) -> bool {
        self.handled.contains_key(id)
    }

    fn insert(&mut self, id: String, expires_at_ms: i64) {
        self.handled.insert(id, expires_at_ms);
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::state::write_atomic(path, &serde_json::to_vec(self)?, true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_combine_worst_first() {
        let done = Step::Done("a".into());
        let would = Step::Would("b".into());
        let unsup = Step::Unsupported("c".into());
        let failed = Step::Failed("d".into());
        assert_eq!(combine(&[], "none").0, pb::Outcome::NotPresent);
        assert_eq!(combine(&[done.clone(), unsup.clone()], "").0, pb::Outcome::Enforced);
        assert_eq!(combine(&[done, failed], "").0, pb::Outcome::Failed);
        assert_eq!(combine(&[would, unsup.clone()], "").0, pb::Outcome::ReportOnly);
        let (o, detail) = combine(&[unsup], "");
        assert_eq!(o, pb::Outcome::Unsupported);
        assert_eq!(detail, "unsupported: c");
    }

    #[test]
    fn the_ledger_forgets_only_what_expired() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("directives.json");
        let mut l = Ledger::load(&p, 0);
        l.insert("old".into(), 100);
        l.insert("new".into(), 1_000);
        l.save(&p).unwrap();
        let l = Ledger::load(&p, 500);
        assert!(l.contains("new") && !l.contains("old"));
    }
}
