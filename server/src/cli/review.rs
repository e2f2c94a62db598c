//! `review …`: recertification campaigns from the command line, on the data dir or (with
//! `--server`) through a running collector's API; `review verify` works offline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::output::{cli_user, print, print_json};
use super::{DataArgs, RemoteArgs};
use crate::clock::now_ms;
use crate::remote::encode;
use crate::review::{self, Decider};

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Open a campaign: each connector present now in the scope goes to its owner (or their
    /// SCIM manager when the owner is gone; else the admins' queue) to keep or revoke by the
    /// due date. Reviewers' links go to the reminder outbox (`GET /api/v1/review/reminders`).
    Start {
        /// `all`, `group:NAME` (connectors whose owner is in that SCIM group) or `kind:KIND`.
        #[arg(long)]
        scope: String,
        /// How long reviewers have (e.g. 14d).
        #[arg(long, value_parser = humantime::parse_duration)]
        due: Duration,
        /// What happens to an item unanswered at its due date: revoke it, or escalate it to
        /// the reviewer's manager (7 more days; with no manager, the admins' queue).
        #[arg(long, default_value = "revoke")]
        rule: String,
        /// Who reviews: `owner` (each connector's owner; their manager once they are gone)
        /// or `manager` (the owner's manager, as in a manager access review).
        #[arg(long, default_value = "owner")]
        reviewers: String,
        /// The dashboard's address reviewers' links point to (https://host:port); with
        /// --server, the server's address by default.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Campaigns and how far each has come.
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One campaign: every item, its reviewer and answer.
    Show {
        campaign: String,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Answer an item on a reviewer's behalf (admin): keep or revoke.
    Decide {
        campaign: String,
        /// Connector key.
        key: String,
        /// keep or revoke.
        decision: String,
        /// Why (required: the review is an audit record).
        #[arg(long)]
        reason: String,
        /// With keep: the approval lapses after this long (e.g. 30d).
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_for: Option<Duration>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write the campaign's decisions signed by the collector, for auditors.
    Report {
        campaign: String,
        /// Where to write the report (JSON).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check a report offline: the collector's signature over every decision. Exit 0 only if
    /// it verifies.
    Verify {
        report: PathBuf,
        /// The collector signing key id (or hex SPKI) you trust; shown by `review report`.
        #[arg(long, conflicts_with = "trust_embedded_key")]
        collector_key: Option<String>,
        /// Accept whatever collector key the report carries.
        #[arg(long)]
        trust_embedded_key: bool,
    },
}

pub(super) fn run(command: ReviewCommand, db: Option<&str>) -> anyhow::Result<()> {
    match command {
        ReviewCommand::Start { scope, due, rule, reviewers, url, data, json, remote } => {
            let body = serde_json::json!({
                "scope": scope, "due_in": humantime::format_duration(due).to_string(), "rule": rule,
                "reviewers": reviewers, "link_base": url,
            });
            if let Some(out) = remote.call(|r| async move { r.post("/api/v1/reviews", &body).await })? {
                return print(&out);
            }
            let url =
                url.context("--url: the dashboard's address (https://host:port) reviewers' links point to")?;
            let app = data.open(db)?;
            let now = now_ms();
            let due_ms = now + due.as_millis() as i64;
            let started = review::start(
                app.store.as_ref(),
                &app.policy,
                &scope,
                &rule,
                &reviewers,
                due_ms,
                &url,
                &cli_user(),
                now,
            )?;
            let v = review::campaign_value(app.store.as_ref(), &started.campaign.id, true)?
                .context("the campaign just made is gone")?;
            if json {
                return print_json(&v);
            }
            print(&format!(
                "started {}: {} item(s), {} in the admins' queue, {} reminder(s) queued for the mail system\n",
                started.campaign.id, started.items, started.admin_queue, started.reminders
            ))
        }
        ReviewCommand::List { data, json, remote } => {
            if let Some(out) = remote.call(|r| async move { r.get("/api/v1/reviews").await })? {
                return print(&out);
            }
            let list = review::campaigns_value(data.store(db)?.as_ref())?;
            if json {
                return print_json(&list);
            }
            print(&review::render_list(&list))
        }
        ReviewCommand::Show { campaign, data, json, remote } => {
            let path = format!("/api/v1/reviews/{}", encode(&campaign));
            if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
                return print(&out);
            }
            let v = review::campaign_value(data.store(db)?.as_ref(), &campaign, true)?
                .with_context(|| format!("no campaign {campaign}"))?;
            if json {
                return print_json(&v);
            }
            print(&review::render_campaign(&v))
        }
        ReviewCommand::Decide { campaign, key, decision, reason, keep_for, data, json, remote } => {
            let path = format!("/api/v1/reviews/{}/items/{}", encode(&campaign), encode(&key));
            let body = serde_json::json!({
                "decision": decision, "reason": reason,
                "keep_for": keep_for.map(|d| humantime::format_duration(d).to_string()),
            });
            if let Some(out) = remote.call(|r| async move { r.post(&path, &body).await })? {
                return print(&out);
            }
            let app = data.open(db)?;
            let now = now_ms();
            let until = keep_for.map(|d| now + d.as_millis() as i64);
            let who = Decider::Admin(cli_user());
            let item = review::decide(
                app.store.as_ref(),
                &app.pki,
                &campaign,
                &key,
                &decision,
                &reason,
                until,
                &who,
                now,
            )?;
            let v = review::item_value(app.store.as_ref(), &item)?;
            if json {
                return print_json(&v);
            }
            print(&format!(
                "{} {}: {}{}\n",
                campaign,
                key,
                decision,
                v.keep_until.map(|t| format!(" until {t}")).unwrap_or_default()
            ))
        }
        ReviewCommand::Report { campaign, out, data, remote } => {
            let path = format!("/api/v1/reviews/{}/report", encode(&campaign));
            let text = match remote.call(|r| async move { r.get(&path).await })? {
                Some(text) => text,
                None => {
                    let app = data.open(db)?;
                    let r = review::report(app.store.as_ref(), &app.pki, &campaign, now_ms())?
                        .with_context(|| format!("no campaign {campaign}"))?;
                    serde_json::to_string_pretty(&r)? + "\n"
                }
            };
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            let key = review::verify_report(text.as_bytes(), None).map(|v| v.collector_key_id)?;
            print(&format!("wrote {}, signed by collector key {key}\n", out.display()))
        }
        ReviewCommand::Verify { report, collector_key, trust_embedded_key } => {
            verify(&report, collector_key.as_deref(), trust_embedded_key)
        }
    }
}

fn verify(report: &Path, collector_key: Option<&str>, trust_embedded_key: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(report).with_context(|| format!("reading {}", report.display()))?;
    let v = review::verify_report(&bytes, collector_key).map_err(|e| anyhow::anyhow!("FAILED: {e:#}"))?;
    if collector_key.is_none() && !trust_embedded_key {
        anyhow::bail!(
            "NOT VERIFIED: the report is consistent under the collector key it carries ({}), but nothing says \
             that key is your collector's; pass --collector-key {} if it is, or --trust-embedded-key",
            v.collector_key_id,
            v.collector_key_id
        );
    }
    print(&format!(
        "OK: campaign {} (scope {}), {} items: {} kept, {} revoked, {} open; collector key {}{}\n",
        v.campaign,
        crate::query::printable(&v.scope),
        v.items,
        v.kept,
        v.revoked,
        v.open,
        v.collector_key_id,
        if collector_key.is_none() { " (not pinned: trusted as embedded)" } else { "" }
    ))
}
