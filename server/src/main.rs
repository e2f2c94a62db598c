//! `sightline-server`: parse the command line, set up logging, dispatch.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sightline_server::domain::Assurance;
use sightline_server::domain::Role;
use sightline_server::remote::encode;
use sightline_server::{query, server};

fn parse_assurance(s: &str) -> Result<Assurance, String> {
    Assurance::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of software, hardware_unattested, hardware_attested"))
}

#[derive(Parser)]
#[command(
    name = "sightline-server",
    version,
    about = "The Sightline collector: enrollment, verified ingest, queries."
)]
struct Cli {
    /// PostgreSQL database shared by collector replicas (postgres://user@host/db). Without
    /// it the embedded SQLite database in --data-dir is used. Prefer the environment
    /// variable when the URL holds a password: the command line is visible to `ps`.
    #[arg(long, global = true, env = "SIGHTLINE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Serve {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Also serve the HTTP API (JSON under /api/v1, TLS with the server certificate).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Create a local CA and server certificate on first start (writes DATA_DIR/ca.pem).
        #[arg(long)]
        dev: bool,
        /// Refuse enrollments and streams below this assurance.
        #[arg(long, default_value = "software", value_parser = parse_assurance)]
        require_assurance: Assurance,
        /// PEM file of CA certificates that TPM EK certificates must chain to (repeatable).
        /// Without it no TPM device is more than hardware_unattested.
        #[arg(long)]
        ek_roots: Vec<PathBuf>,
        /// SHA-256 (hex) of a TPM EK public area to trust without a certificate (repeatable):
        /// for TPMs that ship none. `devices --json` shows it as `hardware_id`.
        #[arg(long)]
        ek_allow: Vec<String>,
        /// At most this many agent streams open at once; more are told to slow down.
        #[arg(long, default_value_t = 20_000)]
        max_streams: usize,
        /// At most this many connections open on the agent (gRPC) listener; past it new
        /// ones wait. Default: --max-streams plus a tenth, plus 1,000 for enrollments.
        #[arg(long)]
        max_connections: Option<usize>,
        /// At most this many connections open on the HTTP listener.
        #[arg(long, default_value_t = 1_024)]
        http_max_connections: usize,
        /// New agent streams admitted per second (reconnect storms after an outage are
        /// spread out by telling the rest to slow down).
        #[arg(long, default_value_t = 500.0)]
        stream_rate: f64,
        /// Write OCSF events to rotating JSON-lines files in this directory.
        #[arg(long)]
        export_dir: Option<PathBuf>,
        /// Start a new export file past this size.
        #[arg(long, default_value_t = 64)]
        export_rotate_mb: u64,
        /// Send OCSF events to a Splunk HTTP Event Collector, e.g.
        /// https://splunk:8088/services/collector/event.
        #[arg(long)]
        hec_url: Option<String>,
        /// File holding the HEC token (kept off the command line).
        #[arg(long, requires = "hec_url")]
        hec_token_file: Option<PathBuf>,
        /// PEM CA of an https HEC endpoint.
        #[arg(long, requires = "hec_url")]
        hec_ca: Option<PathBuf>,
        /// Allow an http:// --hec-url (token and events unencrypted on the wire).
        #[arg(long, requires = "hec_url")]
        hec_allow_http: bool,
    },
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List enrolled devices.
    Devices {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List AI connectors reported by devices.
    Connectors {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Only this kind: tool, extension, token, mcp_server.
        #[arg(long)]
        kind: Option<String>,
        /// Only this status: discovered, approved, unsanctioned, revoked, removed.
        #[arg(long)]
        status: Option<String>,
        /// Only those seen under this OS account.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// What needs attention: orphaned and shadow-AI connectors, shared credentials,
    /// unattested devices, stale agents, delivery gaps.
    Findings {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
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
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
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
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print the OpenAPI document of the HTTP API (the one served at /api/v1/openapi.json).
    Openapi,
    /// Retention: drop observations and signed batches received longer ago than --keep.
    /// On PostgreSQL whole monthly partitions go (only months entirely older than that).
    Prune {
        /// How long to keep evidence, e.g. `400d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        keep: Duration,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one device, or revoke it.
    Device {
        #[command(subcommand)]
        command: Option<DeviceCommand>,
        /// Device id.
        id: Option<String>,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Where a query command reads: the data dir (default) or a running collector's HTTP API.
#[derive(clap::Args, Debug, Default)]
struct RemoteArgs {
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
    fn call<F, Fut>(&self, call: F) -> anyhow::Result<Option<String>>
    where
        F: FnOnce(sightline_server::remote::Remote) -> Fut,
        Fut: Future<Output = anyhow::Result<serde_json::Value>>,
    {
        let Some(server) = &self.server else { return Ok(None) };
        let ca = self.ca.as_ref().context("--server needs --ca (the collector's CA certificate, PEM)")?;
        let token = match &self.api_token_file {
            Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            None => std::env::var("SIGHTLINE_API_TOKEN")
                .context("--server needs an API token: set SIGHTLINE_API_TOKEN or pass --api-token-file")?,
        };
        let remote = sightline_server::remote::Remote::new(server, ca, token.trim().to_owned())?;
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
    query::parse_instant(s, sightline_server::clock::now_ms())
}

#[derive(Subcommand)]
enum SigninsCommand {
    /// Import an Okta System Log export or Entra ID sign-in logs (JSON array, Graph page or
    /// JSON lines). All or nothing: one malformed event rejects the file.
    Import {
        /// okta or entra.
        #[arg(long)]
        source: String,
        file: PathBuf,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Write a device's signed batches and enrollment facts, signed by the collector.
    Export {
        #[arg(long)]
        device: String,
        /// Where to write the bundle (JSON).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
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
enum ApiTokenCommand {
    /// Create an API token; prints the token alone (it is stored only as a hash).
    Create {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        /// viewer (read), admin (read and act), scim (identity provisioning), ingest (sign-in log push).
        #[arg(long, value_parser = parse_role)]
        role: Role,
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
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by the id `list` shows (a unique prefix of at least 6 digits);
    /// its dashboard sessions end at once.
    Revoke {
        id: String,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not one of viewer, admin, scim, ingest"))
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a one-time enrollment token; prints the token alone.
    Create {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        /// How long the token stays valid, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// What the token is for (a person, a rollout), kept beside it.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List enrollment tokens: id, name, state (active, used, expired, revoked), times.
    List {
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an unused enrollment token by the id `list` shows.
    Revoke {
        id: String,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Revoke a device: its streams are refused from now on.
    Revoke {
        id: String,
        #[arg(long, default_value = "/var/lib/sightline-server")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGHTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr, reason = "the binary's error edge")]
            {
                eprintln!("sightline-server: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing output"),
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let database = cli.database;
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            http,
            dev,
            require_assurance,
            ek_roots,
            ek_allow,
            max_streams,
            max_connections,
            http_max_connections,
            stream_rate,
            export_dir,
            export_rotate_mb,
            hec_url,
            hec_token_file,
            hec_ca,
            hec_allow_http,
        } => {
            let hec = match hec_url {
                Some(url) => {
                    let f = hec_token_file.context("--hec-url needs --hec-token-file")?;
                    let token =
                        std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
                    Some(sightline_server::export::sink::HecConfig {
                        url,
                        token: token.trim().to_owned(),
                        ca: hec_ca,
                        allow_http: hec_allow_http,
                    })
                }
                None => None,
            };
            let export = sightline_server::export::ExportConfig {
                dir: export_dir,
                rotate_bytes: export_rotate_mb << 20,
                hec,
                findings_every: Duration::from_secs(60),
                batch: 500,
                retry_base: Duration::from_secs(1),
                retry_max: Duration::from_secs(60),
            };
            let mut shared = server::open(&data_dir, database.as_deref(), dev)?;
            shared.config.require_assurance = require_assurance;
            shared.config.max_streams = max_streams;
            shared.config.stream_rate = stream_rate;
            // Both caps must fit the file-descriptor limit, or a flood would exhaust it first.
            let grpc_cap = max_connections
                .unwrap_or_else(|| max_streams.saturating_add(max_streams / 10).saturating_add(1_000));
            let http_cap = if http.is_some() { http_max_connections } else { 0 };
            let want = grpc_cap.saturating_add(http_cap);
            let fit = sightline_server::listen::fit_descriptors(want);
            if fit < want {
                // Short of descriptors: the API keeps a small share, the agents the rest.
                let http_fit = http_cap.min((fit / 8).max(8)).min(fit / 2);
                shared.config.http_max_connections = http_fit.max(1);
                shared.config.max_connections = fit.saturating_sub(http_fit).max(1);
            } else {
                shared.config.max_connections = grpc_cap;
                shared.config.http_max_connections = http_cap.max(1);
            }
            shared.config.ek_roots = sightline_server::pki::read_pem_certificates(&ek_roots)?;
            if let Some(bad) =
                ek_allow.iter().find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                anyhow::bail!("--ek-allow {bad:?} is not a SHA-256 hex digest");
            }
            shared.config.ek_allowlist = ek_allow;
            let rt = tokio::runtime::Builder::new_multi_thread()
                // Store calls and signature checks run on blocking threads. Tokio's default of
                // 512 lets a reconnect storm of 10,000 agents grow the pool to hundreds of idle
                // threads that then contend on its one lock at every spawn (acks took seconds
                // with the CPU idle); the database pool bounds useful concurrency far lower.
                .max_blocking_threads(64)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let lanes = shared.writer.lanes();
            let served = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
                // The bound address, for whoever started us with port 0 (tests, supervisors).
                print(&format!("listening grpc {}\n", listener.local_addr()?))?;
                tracing::info!(
                    version = env!("CARGO_PKG_VERSION"),
                    data_dir = %data_dir.display(),
                    database = %database.as_deref().map(server::redact).unwrap_or_else(|| "sqlite (data dir)".into()),
                    "Starting collector."
                );
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    shutdown().await;
                    on_signal.cancel();
                });
                if export.any() {
                    tokio::spawn(sightline_server::export::run(shared.clone(), export, stop.clone().cancelled_owned()));
                }
                let grpc = server::serve(listener, shared.clone(), stop.clone().cancelled_owned());
                match http {
                    Some(addr) => {
                        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
                        print(&format!("listening http {}\n", l.local_addr()?))?;
                        let api = sightline_server::http::api::serve(l, shared, stop.cancelled_owned());
                        tokio::try_join!(grpc, api).map(|_| ())
                    }
                    None => grpc.await,
                }
            });
            // Dropping the runtime drops every task's handle on the writer; then the lanes
            // commit what they hold and exit, and the store writes what it keeps in memory.
            drop(rt);
            lanes.join(Duration::from_secs(30));
            served
        }
        Command::Token { command } => token_command(command, database.as_deref()),
        Command::ApiToken { command } => api_token_command(command, database.as_deref()),
        Command::Devices { data_dir, json, remote } => {
            if let Some(out) = remote.call(|r| async move { r.get("/api/v1/devices").await })? {
                return print(&out);
            }
            print(&query::devices(server::open_store(&data_dir, database.as_deref())?.as_ref(), json)?)
        }
        Command::Connectors { data_dir, json, kind, status, user, remote } => {
            let q: Vec<String> = [("kind", &kind), ("status", &status), ("user", &user)]
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
                .collect();
            let path = format!("/api/v1/connectors?{}", q.join("&"));
            if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
                return print(&out);
            }
            let filter = query::ConnectorFilter { kind, status, user };
            let policy = sightline_server::policy::Policy::load(&data_dir)?;
            print(&query::connectors(
                server::open_store(&data_dir, database.as_deref())?.as_ref(),
                &filter,
                &policy,
                json,
            )?)
        }
        Command::Signins { command: SigninsCommand::Import { source, file, data_dir } } => {
            let src = sightline_server::signins::Source::parse(&source)
                .ok_or_else(|| anyhow::anyhow!("--source {source:?}: use okta or entra"))?;
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let (signins, skipped) = sightline_server::signins::parse(src, &text)
                .with_context(|| format!("{} was not imported", file.display()))?;
            let added = server::open_store(&data_dir, database.as_deref())?.add_signins(&signins)?;
            print(&format!(
                "imported {added} sign-ins ({} already known, {skipped} other events skipped)\n",
                signins.len() - added
            ))
        }
        Command::Evidence { command: EvidenceCommand::Export { device, out, data_dir } } => {
            let shared = server::open(&data_dir, database.as_deref(), false)?;
            let bundle = sightline_server::evidence::export(
                shared.store.as_ref(),
                &shared.pki,
                &device,
                sightline_server::clock::now_ms(),
            )?;
            std::fs::write(&out, serde_json::to_vec_pretty(&bundle)?)
                .with_context(|| format!("writing {}", out.display()))?;
            print(&format!(
                "wrote {} ({} batches), signed by collector key {}\n",
                out.display(),
                bundle["batches"].as_array().map_or(0, Vec::len),
                sightline_proto::p256::key_id(&shared.pki.signing_key_spki())
            ))
        }
        Command::Evidence {
            command: EvidenceCommand::Verify { bundle, collector_key, trust_embedded_key },
        } => {
            let bytes = std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?;
            let v = sightline_server::evidence::verify(&bytes, collector_key.as_deref())
                .map_err(|e| anyhow::anyhow!("FAILED: {e:#}"))?;
            if collector_key.is_none() && !trust_embedded_key {
                anyhow::bail!(
                    "NOT VERIFIED: the bundle is consistent under the collector key it carries ({}), but nothing \
                     says that key is your collector's; pass --collector-key {} if it is (as `evidence export` \
                     printed it), or --trust-embedded-key to accept it as is",
                    v.collector_key_id,
                    v.collector_key_id
                );
            }
            print(&format!(
                "OK: device {} ({}), {} batches, {} observations, seq {}..{}, collector key {}{}\n",
                v.device_id,
                v.assurance,
                v.batches,
                v.observations,
                v.first_seq,
                v.last_seq,
                v.collector_key_id,
                if collector_key.is_none() { " (not pinned: trusted as embedded)" } else { "" }
            ))
        }
        Command::Device { command: Some(DeviceCommand::Revoke { id, data_dir }), .. } => {
            server::open_store(&data_dir, database.as_deref())?
                .revoke_device(&id, sightline_server::clock::now_ms())?;
            print(&format!("revoked device {id}\n"))
        }
        Command::Device { command: None, id: Some(id), data_dir, json, remote } => {
            let path = format!("/api/v1/devices/{}", encode(&id));
            if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
                return print(&out);
            }
            let policy = sightline_server::policy::Policy::load(&data_dir)?;
            print(&query::device(
                server::open_store(&data_dir, database.as_deref())?.as_ref(),
                &id,
                &policy,
                json,
            )?)
        }
        Command::Triage { device, user, token, connector, at, data_dir, json, remote } => {
            if remote.server.is_some() {
                // Millisecond precision: `--at now` must not move to the start of its second.
                let at_q = at
                    .map(|t| format!("?at={}", encode(&sightline_server::clock::rfc3339_millis(t))))
                    .unwrap_or_default();
                let path = match (&device, &user, &token, &connector) {
                    (Some(d), ..) => format!("/api/v1/triage/device/{}{at_q}", encode(d)),
                    (None, Some(u), ..) => format!("/api/v1/triage/user/{}{at_q}", encode(u)),
                    (None, None, Some(t), _) => format!("/api/v1/triage/token/{}", encode(t)),
                    (None, None, None, Some(c)) => format!("/api/v1/triage/connector/{}", encode(c)),
                    _ => anyhow::bail!("triage needs --device, --user, --token or --connector"),
                };
                if let Some(out) = remote.call(|r| async move { r.get(&path).await })? {
                    return print(&out);
                }
            }
            let store = server::open_store(&data_dir, database.as_deref())?;
            let policy = sightline_server::policy::Policy::load(&data_dir)?;
            let need_at =
                || at.ok_or_else(|| anyhow::anyhow!("--at TIME is required with --device and --user"));
            let v = match (device, user, token.map(|t| format!("token:{t}")).or(connector)) {
                (Some(d), _, _) => return print(&query::device_at(store.as_ref(), &d, need_at()?, json)?),
                (None, Some(u), _) => query::user_at_value(store.as_ref(), &policy, &u, need_at()?)?
                    .ok_or_else(|| anyhow::anyhow!("no person {u} (provision them through SCIM)"))?,
                (None, None, Some(key)) => query::connector_value(store.as_ref(), &policy, &key)?
                    .ok_or_else(|| anyhow::anyhow!("no connector {key} has been reported"))?,
                _ => anyhow::bail!("triage needs --device, --user, --token or --connector"),
            };
            print(&(serde_json::to_string_pretty(&v)? + "\n"))
        }
        Command::Revoke { connector, reason, withdraw, data_dir, json, remote } => {
            let path = format!("/api/v1/connectors/{}/revoke", encode(&connector));
            let body = serde_json::json!({ "reason": reason });
            let out = if withdraw {
                remote.call(|r| async move { r.delete(&path).await })?
            } else {
                remote.call(|r| async move { r.post(&path, &body).await })?
            };
            if let Some(out) = out {
                return print(&out);
            }
            if withdraw {
                let store = server::open_store(&data_dir, database.as_deref())?;
                sightline_server::revoke::withdraw(
                    store.as_ref(),
                    &connector,
                    &cli_user(),
                    sightline_server::clock::now_ms(),
                )?;
                return print(&format!("withdrew the revocation of {connector}\n"));
            }
            let shared = server::open(&data_dir, database.as_deref(), false)?;
            let by = cli_user();
            let issued = sightline_server::revoke::revoke(
                shared.store.as_ref(),
                &shared.pki,
                &connector,
                &by,
                &reason,
                sightline_server::clock::now_ms(),
            )?;
            print(&query::revoked(&issued, json)?)
        }
        Command::Prune { keep, data_dir, json } => {
            let cutoff = sightline_server::clock::now_ms() - keep.as_millis() as i64;
            let p = server::open_store(&data_dir, database.as_deref())?.prune(cutoff)?;
            if json {
                let v = serde_json::json!({
                    "cutoff_ms": cutoff,
                    "partitions_dropped": p.partitions,
                    "observations_removed": p.observations,
                    "batches_removed": p.batches,
                    "claims_removed": p.claims,
                });
                print(&(v.to_string() + "\n"))
            } else {
                print(&format!(
                    "removed {} observations, {} batches and {} stream claims{}\n",
                    p.observations,
                    p.batches,
                    p.claims,
                    if p.partitions.is_empty() {
                        String::new()
                    } else {
                        format!(" (dropped {})", p.partitions.join(", "))
                    }
                ))
            }
        }
        Command::Openapi => {
            let (_, doc) = sightline_server::http::api::api_routes();
            print(&(serde_json::to_string_pretty(&doc)? + "\n"))
        }
        Command::Findings { data_dir, json, remote } => {
            if let Some(out) = remote.call(|r| async move { r.get("/api/v1/findings").await })? {
                return print(&out);
            }
            let policy = sightline_server::policy::Policy::load(&data_dir)?;
            let store = server::open_store(&data_dir, database.as_deref())?;
            print(&query::findings(store.as_ref(), &policy, sightline_server::clock::now_ms(), json)?)
        }
        Command::Device { command: None, id: None, .. } => {
            anyhow::bail!("usage: sightline-server device ID [--json] | device revoke ID")
        }
    }
}

fn token_command(command: TokenCommand, database: Option<&str>) -> anyhow::Result<()> {
    use sightline_server::tokens;
    let now = sightline_server::clock::now_ms();
    match command {
        TokenCommand::Create { data_dir, ttl, name } => {
            let store = server::open_store(&data_dir, database)?;
            print(&(tokens::create_enrollment(store.as_ref(), ttl, &name, now)? + "\n"))
        }
        TokenCommand::List { data_dir, json } => {
            let store = server::open_store(&data_dir, database)?;
            let rows: Vec<_> =
                store.enrollment_tokens()?.iter().map(|t| tokens::enrollment_token_json(t, now)).collect();
            print(&if json {
                serde_json::to_string_pretty(&rows)? + "\n"
            } else {
                tokens::table(&rows, &["id", "name", "state", "created_at", "expires_at", "used_at"])
            })
        }
        TokenCommand::Revoke { id, data_dir } => {
            let store = server::open_store(&data_dir, database)?;
            let r = tokens::revoke_enrollment(store.as_ref(), &id, now)?;
            print(&format!(
                "{} enrollment token {}\n",
                if r.now { "revoked" } else { "already revoked:" },
                r.id
            ))
        }
    }
}

fn api_token_command(command: ApiTokenCommand, database: Option<&str>) -> anyhow::Result<()> {
    use sightline_server::tokens;
    let now = sightline_server::clock::now_ms();
    match command {
        ApiTokenCommand::Create { data_dir, role, name, ttl } => {
            let store = server::open_store(&data_dir, database)?;
            print(&(tokens::create_api(store.as_ref(), role, &name, ttl, now, &cli_user())? + "\n"))
        }
        ApiTokenCommand::List { data_dir, json } => {
            let store = server::open_store(&data_dir, database)?;
            let rows: Vec<_> = store.api_tokens()?.iter().map(|t| tokens::api_token_json(t, now)).collect();
            print(&if json {
                serde_json::to_string_pretty(&rows)? + "\n"
            } else {
                tokens::table(&rows, &["id", "role", "name", "state", "expires_at", "last_used_at"])
            })
        }
        ApiTokenCommand::Revoke { id, data_dir } => {
            let store = server::open_store(&data_dir, database)?;
            let r = tokens::revoke_api(store.as_ref(), &id, now)?;
            let heirs = if r.heirs.is_empty() {
                String::new()
            } else {
                format!("; also revoked the tokens it made: {}", r.heirs.join(", "))
            };
            print(&format!(
                "{} API token {} (its dashboard sessions have ended){heirs}\n",
                if r.now { "revoked" } else { "already revoked:" },
                r.id
            ))
        }
    }
}

/// Who runs a CLI change, for the record.
fn cli_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .map_or_else(|_| "cli".to_owned(), |u| format!("cli:{u}"))
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("Shutdown requested; finishing open requests.");
            return;
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "Cannot listen for Ctrl-C; stop the collector with a signal.");
        std::future::pending::<()>().await;
    }
    tracing::info!("Shutdown requested; finishing open requests.");
}
