//! The command line: what each subcommand takes (clap) and what it does. `main.rs` only
//! parses and calls [`run`].

mod act;
mod approve;
mod output;
mod read;
mod review;
pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::domain::Role;
use crate::policy::Policy;
use crate::state::AppState;
use crate::store::Store;

/// Where a command finds the collector's data: the data dir (key material, policy, the
/// embedded database) and, with the global `--database`, PostgreSQL instead.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// The collector's data dir: CA and keys, policy.toml, and the SQLite database unless
    /// --database names a PostgreSQL one.
    #[arg(long, default_value = "/var/lib/sightline-server")]
    pub data_dir: PathBuf,
}

impl DataArgs {
    pub fn store(&self, database: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
        self.existing(database)?;
        // Tools an installed catalog update adds are shown by name, as the serving collector
        // shows them; without key material (a PostgreSQL-only host) by id.
        if let Ok(pki) = crate::pki::Pki::load_or_init(&self.data_dir, false) {
            crate::catalog::served::inspect(&self.data_dir, &pki.signing_key_spki()).ok();
        }
        crate::server::open_store(&self.data_dir, database)
    }

    /// Only `serve` makes a data dir: every other command works on an existing collector's,
    /// so a mistyped `--data-dir` is named instead of becoming a new, empty database.
    fn existing(&self, database: Option<&str>) -> anyhow::Result<()> {
        // With PostgreSQL the data dir holds only key material, which the commands that
        // need it report missing themselves.
        if database.is_none() && !self.data_dir.is_dir() {
            anyhow::bail!(
                "data dir {} does not exist: give the collector's --data-dir (`sightline-server serve` creates one)",
                self.data_dir.display()
            );
        }
        Ok(())
    }

    pub fn policy(&self) -> anyhow::Result<Policy> {
        Policy::load(&self.data_dir)
    }

    /// The whole application (store, key material, policy), as a command that signs needs it.
    pub fn open(&self, database: Option<&str>) -> anyhow::Result<AppState> {
        self.existing(database)?;
        crate::server::open(&self.data_dir, database, false)
    }
}

#[derive(Parser)]
#[command(
    name = "sightline-server",
    version,
    about = "The Sightline collector: enrollment, verified ingest, queries."
)]
pub struct Cli {
    /// PostgreSQL database shared by collector replicas (postgres://user@host/db). Without
    /// it the embedded SQLite database in --data-dir is used. Prefer the environment
    /// variable when the URL holds a password: the command line is visible to `ps`.
    #[arg(long, global = true, env = "SIGHTLINE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the collector.
    // Boxed: its flags outweigh every other command's many times over.
    Serve(Box<serve::ServeArgs>),
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List enrolled devices.
    Devices {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List AI connectors reported by devices.
    Connectors {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        /// Only this kind: tool, extension, token, mcp_server.
        #[arg(long)]
        kind: Option<String>,
        /// Only this status: discovered, approved, unsanctioned, revoked, removed.
        #[arg(long)]
        status: Option<String>,
        /// Only those seen under this person (userName or e-mail: any account attributed to
        /// them) or OS account.
        #[arg(long)]
        user: Option<String>,
        /// Only those owned by this person (userName or e-mail) or OS account.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// AI activity from the tools' own records (metadata only): who used which tool and
    /// connector, on which device, inside which OS session, when. Newest first.
    Activity {
        /// A person (userName or e-mail: any OS account attributed to them) or an OS account.
        #[arg(long)]
        user: Option<String>,
        /// Device id or hostname.
        #[arg(long)]
        device: Option<String>,
        /// Connector key, or a prefix of one up to a `:` (`mcp:github`, `tool:claude_code`).
        #[arg(long)]
        connector: Option<String>,
        /// Sessions that overlap [since, until]: RFC 3339, `now`, or `7d ago` / `-12h`.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// How many sessions (default 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// What needs attention: orphaned and shadow-AI connectors, shared credentials,
    /// unattested devices, stale agents, delivery gaps.
    Findings {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Identity-provider sign-in logs.
    Signins {
        #[command(subcommand)]
        command: SigninsCommand,
    },
    /// Recertification campaigns: owners (or their managers) keep or revoke each connector
    /// by a due date; signed reports for auditors.
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// Evidence bundles an auditor verifies offline.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// HTTP API tokens.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Dashboard sessions opened with SSO (OpenID Connect).
    Sso {
        #[command(subcommand)]
        command: SsoCommand,
    },
    /// Incident triage at an instant: a device (what was on it) or a person (their devices,
    /// sessions and connectors), with assurance and references to the signed evidence.
    Triage {
        /// Device id.
        #[arg(long, group = "subject")]
        device: Option<String>,
        /// A person: SCIM userName or email.
        #[arg(long, group = "subject")]
        user: Option<String>,
        /// A token fingerprint: every place it is or was, on every device.
        #[arg(long, group = "subject")]
        token: Option<String>,
        /// A connector key (`extension:ID`, `tool:ID`, `token:FP`, `mcp:NAME:HASH`).
        #[arg(long, group = "subject")]
        connector: Option<String>,
        /// RFC 3339 time, or `now` (for --device and --user).
        #[arg(long, value_parser = parse_time)]
        at: Option<i64>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Revoke a connector: every device where it is present gets a directive signed by the
    /// collector (now over open streams, or when it next connects). Agents in enforce mode
    /// stop the tool, block the extension or quarantine the credential file; agents in
    /// report mode say what they would have done.
    Revoke {
        /// Connector key: `extension:ID`, `tool:ID` or `token:FP`.
        connector: String,
        /// Why, kept with the revocation and sent to the devices.
        #[arg(long, default_value = "")]
        reason: String,
        /// Withdraw the revocation instead: no more directives, unanswered ones closed.
        #[arg(long)]
        withdraw: bool,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print the OpenAPI document of the HTTP API (the one served at /api/v1/openapi.json).
    Openapi,
    /// Retention: drop observations and signed batches received longer ago than --keep.
    /// On PostgreSQL whole monthly partitions go (only months entirely older than that).
    /// --activity-keep drops AI activity sessions whose latest record is older than that,
    /// independently (activity can be kept for less time than inventory evidence).
    Prune {
        /// How long to keep evidence, e.g. `400d`.
        #[arg(long, value_parser = humantime::parse_duration, required_unless_present = "activity_keep")]
        keep: Option<Duration>,
        /// How long to keep AI activity sessions (by their latest record), e.g. `90d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        activity_keep: Option<Duration>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// The detection catalog served to agents: install a newer one, see which version each
    /// device runs.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// One connector's register entry (owner, authorizing identity, status and what decided
    /// it, origin, how to revoke it, history), or assign its owner.
    Connector {
        #[command(subcommand)]
        command: Option<ConnectorCommand>,
        /// Connector key (`tool:ID`, `extension:ID`, `token:FP`, `mcp:NAME:HASH`).
        key: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The offboarding playbook (policy.toml `[offboarding]`): people the identity provider
    /// deprovisioned, the connectors they own, when the playbook revokes them and what each
    /// device did; and connectors nobody owns.
    Offboarding {
        #[command(subcommand)]
        command: OffboardingCommand,
    },
    /// Approval requests: ask for a connector's approval on a person's behalf, list, approve
    /// (optionally until a time), deny, withdraw. Each step is an event in the audit log.
    Approval {
        #[command(subcommand)]
        command: ApprovalCommand,
    },
    /// The register's audit log: every owner, approval and review decision, oldest first.
    Audit {
        /// Only this connector's events.
        #[arg(long)]
        connector: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one device, or revoke it.
    Device {
        #[command(subcommand)]
        command: Option<DeviceCommand>,
        /// Device id.
        id: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Where a query command reads: the data dir (default) or a running collector's HTTP API.
#[derive(clap::Args, Debug, Default)]
pub struct RemoteArgs {
    /// Ask a running collector's HTTP API (`https://host:port`) instead of reading the data
    /// dir; the output is the JSON form. The API token comes from $SIGHTLINE_API_TOKEN or
    /// --api-token-file.
    #[arg(long)]
    server: Option<String>,
    /// PEM file of the CA that signed the collector's certificate (with --server).
    #[arg(long, requires = "server")]
    ca: Option<PathBuf>,
    /// File holding the API token (with --server; else $SIGHTLINE_API_TOKEN).
    #[arg(long, requires = "server")]
    api_token_file: Option<PathBuf>,
}

impl RemoteArgs {
    /// Runs `call` against the API when --server is given; None to read the data dir.
    pub fn call<F, Fut>(&self, call: F) -> anyhow::Result<Option<String>>
    where
        F: FnOnce(crate::remote::Remote) -> Fut,
        Fut: Future<Output = anyhow::Result<serde_json::Value>>,
    {
        let Some(server) = &self.server else { return Ok(None) };
        let ca = self.ca.as_ref().context("--server needs --ca (the collector's CA certificate, PEM)")?;
        let token = match &self.api_token_file {
            Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            None => std::env::var("SIGHTLINE_API_TOKEN")
                .context("--server needs an API token: set SIGHTLINE_API_TOKEN or pass --api-token-file")?,
        };
        let remote = crate::remote::Remote::new(server, ca, token.trim().to_owned())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let v = rt.block_on(call(remote))?;
        Ok(Some(serde_json::to_string_pretty(&v)? + "\n"))
    }
}

/// An instant: RFC 3339 (`2026-11-29T10:00:00Z`) or `now`.
fn parse_time(s: &str) -> Result<i64, String> {
    crate::query::parse_instant(s, crate::clock::now_ms())
}

#[derive(Subcommand)]
pub enum SigninsCommand {
    /// Import an Okta System Log export or Entra ID sign-in logs (JSON array, Graph page or
    /// JSON lines). All or nothing: one malformed event rejects the file.
    Import {
        /// okta or entra.
        #[arg(long)]
        source: String,
        file: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum EvidenceCommand {
    /// Write a device's signed batches and enrollment facts, signed by the collector.
    Export {
        #[arg(long)]
        device: String,
        /// Where to write the bundle (JSON).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Check a bundle offline: the collector's signature, every batch's device signature,
    /// sequence and hash chain. Exit 0 only if everything verifies.
    Verify {
        bundle: PathBuf,
        /// The collector signing key id (or hex SPKI) you trust; shown by `evidence export`.
        #[arg(long, conflicts_with = "trust_embedded_key")]
        collector_key: Option<String>,
        /// Accept whatever collector key the bundle carries. Without --collector-key or this,
        /// verify exits non-zero even when every signature holds: a forger can sign a bundle
        /// with a key of their own.
        #[arg(long)]
        trust_embedded_key: bool,
    },
}

#[derive(Subcommand)]
pub enum ApiTokenCommand {
    /// Create an API token; prints the token alone (it is stored only as a hash).
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// viewer (read), admin (read and act), scim (identity provisioning), ingest (sign-in
        /// log push), owner (one person: their connectors and approval requests; needs --person).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The person an owner token acts for (userName or e-mail).
        #[arg(long)]
        person: Option<String>,
        /// What the token is for, kept beside it.
        #[arg(long, default_value = "")]
        name: String,
        /// The token stops working this long after it is made (e.g. 90d); without it, it
        /// works until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// List API tokens: id, role, name, state, expiry, last use (never the token).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by the id `list` shows (a unique prefix of at least 6 digits);
    /// its dashboard sessions end at once.
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum SsoCommand {
    /// End every dashboard session of a person signed in with SSO, by the ID token's
    /// subject (logged at sign-in): at the next sign-in their groups decide again.
    End {
        subject: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not one of viewer, admin, scim, ingest, owner"))
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a one-time enrollment token; prints the token alone.
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// How long the token stays valid, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// What the token is for (a person, a rollout), kept beside it.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List enrollment tokens: id, name, state (active, used, expired, revoked), times.
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an unused enrollment token by the id `list` shows.
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Install a catalog update: TOML shaped like the agent's built-in catalog
    /// (agent/catalog/catalog.toml) with `schema_version = 1`, a `version` above the
    /// built-in and the installed one, and only the entries to add or correct. It is signed
    /// with the collector key and sent to every agent that runs an older version (open
    /// streams within the directive poll interval, the others when they connect).
    Install {
        file: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Which catalog version each device runs, and why it refused an update.
    Status {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
pub enum OffboardingCommand {
    /// Where the playbook stands: per person, each connector's step, deadline, the action
    /// taken and each device's revocation outcome.
    Status {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Revoke a device: its streams are refused from now on.
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectorCommand {
    /// Name the business owner (a person's userName or e-mail), with a reason kept in the
    /// history; `--clear` gives it back to the attributed person.
    Owner {
        key: String,
        /// The person (userName or e-mail).
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        person: Option<String>,
        #[arg(long)]
        clear: bool,
        /// Why (required: the history is an audit record).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApprovalCommand {
    /// Ask for a connector's approval for a person who owns or holds it.
    Request {
        key: String,
        /// The person it is for (userName or e-mail).
        #[arg(long = "for")]
        person: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: String,
        /// How long the approval is wanted for (e.g. 30d); without it, until withdrawn.
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Requests, newest first.
    List {
        /// open, approved, denied or withdrawn.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Approve an open request: the connector is approved, until --expires-in (else the
    /// duration asked for, else until withdrawn).
    Approve {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Deny an open request: the connector is unsanctioned by decision.
    Deny {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Withdraw a request: an open one, or an approval still in force.
    Withdraw {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let db = cli.database.as_deref();
    match cli.command {
        Command::Serve(args) => serve::serve(args.resolve(cli.database.clone())?),
        Command::Token { command } => act::token(command, db),
        Command::ApiToken { command } => act::api_token(command, db),
        Command::Sso { command: SsoCommand::End { subject, data } } => {
            let n = data.store(db)?.end_sso_sessions(&subject)?;
            tracing::info!(subject = %subject, sessions = n, "SSO sessions ended from the command line.");
            output::print(&format!("ended {n} dashboard session(s) of {subject}\n"))
        }
        Command::Signins { command: SigninsCommand::Import { source, file, data } } => {
            act::import_signins(&source, &file, &data, db)
        }
        Command::Review { command } => review::run(command, db),
        Command::Evidence { command: EvidenceCommand::Export { device, out, data } } => {
            act::export_evidence(&device, &out, &data, db)
        }
        Command::Evidence {
            command: EvidenceCommand::Verify { bundle, collector_key, trust_embedded_key },
        } => act::verify_evidence(&bundle, collector_key.as_deref(), trust_embedded_key),
        Command::Device { command: Some(DeviceCommand::Revoke { id, data }), .. } => {
            act::revoke_device(&id, &data, db)
        }
        Command::Device { command: None, id: Some(id), data, json, remote } => {
            read::device(&id, &data, db, json, &remote)
        }
        Command::Device { command: None, id: None, .. } => {
            anyhow::bail!("usage: sightline-server device ID [--json] | device revoke ID")
        }
        Command::Devices { data, json, remote } => read::devices(&data, db, json, &remote),
        Command::Connectors { data, json, kind, status, user, owner, remote } => read::connectors(
            crate::query::ConnectorFilter { kind, status, user, owner },
            &data,
            db,
            json,
            &remote,
        ),
        Command::Connector {
            command: Some(ConnectorCommand::Owner { key, person, clear: _, reason, data, json, remote }),
            ..
        } => act::set_owner(&key, person.as_deref(), &reason, &data, db, json, &remote),
        Command::Connector { command: None, key: Some(key), data, json, remote } => {
            read::connector(&key, &data, db, json, &remote)
        }
        Command::Connector { command: None, key: None, .. } => {
            anyhow::bail!(
                "usage: sightline-server connector KEY [--json] | connector owner KEY PERSON --reason R"
            )
        }
        Command::Activity { user, device, connector, since, until, limit, data, json, remote } => {
            read::activity(
                crate::query::activity::ActivityParams { user, device, connector, since, until, limit },
                &data,
                db,
                json,
                &remote,
            )
        }
        Command::Findings { data, json, remote } => read::findings(&data, db, json, &remote),
        Command::Offboarding { command: OffboardingCommand::Status { data, json, remote } } => {
            read::offboarding(&data, db, json, &remote)
        }
        Command::Approval { command } => approve::run(command, db),
        Command::Audit { connector, data, json, remote } => {
            approve::audit(connector.as_deref(), &data, db, json, &remote)
        }
        Command::Triage { device, user, token, connector, at, data, json, remote } => {
            let subject = read::Subject::from_flags(device, user, token, connector)?;
            read::triage(subject, at, &data, db, json, &remote)
        }
        Command::Revoke { connector, reason, withdraw, data, json, remote } => {
            act::revoke(&connector, &reason, withdraw, &data, db, json, &remote)
        }
        Command::Prune { keep, activity_keep, data, json } => {
            act::prune(keep, activity_keep, &data, db, json)
        }
        Command::Catalog { command: CatalogCommand::Install { file, data } } => {
            act::install_catalog(&file, &data)
        }
        Command::Catalog { command: CatalogCommand::Status { data, json, remote } } => {
            read::catalog_status(&data, db, json, &remote)
        }
        Command::Openapi => {
            let (_, doc) = crate::http::api::api_routes();
            output::print(&(serde_json::to_string_pretty(&doc)? + "\n"))
        }
    }
}
