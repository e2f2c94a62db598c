//! `serve`: the flags as given ([`ServeArgs`]), validated once into a [`ServeConfig`]
//! (files read, caps fitted to the descriptor limit), then the collector run until a
//! shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::DataArgs;
use super::output::print;
use crate::config::IngestConfig;
use crate::domain::Assurance;
use crate::export::ExportConfig;
use crate::export::sink::HecConfig;
use crate::oidc::OidcConfig;
use crate::server::{Listeners, ServeConfig};

fn parse_assurance(s: &str) -> Result<Assurance, String> {
    Assurance::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of software, hardware_unattested, hardware_attested"))
}

/// `serve`'s flags, as given.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Also serve the HTTP API (JSON under /api/v1, TLS with the server certificate).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Create a local CA and server certificate on first start (writes DATA_DIR/ca.pem).
    #[arg(long)]
    pub dev: bool,
    /// Refuse enrollments and streams below this assurance.
    #[arg(long, default_value = "software", value_parser = parse_assurance)]
    pub require_assurance: Assurance,
    /// PEM file of CA certificates that TPM EK certificates must chain to (repeatable).
    /// Without it no TPM device is more than hardware_unattested.
    #[arg(long)]
    pub ek_roots: Vec<PathBuf>,
    /// SHA-256 (hex) of a TPM EK public area to trust without a certificate (repeatable):
    /// for TPMs that ship none. `devices --json` shows it as `hardware_id`.
    #[arg(long)]
    pub ek_allow: Vec<String>,
    /// At most this many agent streams open at once; more are told to slow down.
    #[arg(long, default_value_t = 20_000)]
    pub max_streams: usize,
    /// At most this many connections open on the agent (gRPC) listener; past it new
    /// ones wait. Default: --max-streams plus a tenth, plus 1,000 for enrollments.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// At most this many connections open on the HTTP listener.
    #[arg(long, default_value_t = 1_024)]
    pub http_max_connections: usize,
    /// New agent streams admitted per second (reconnect storms after an outage are
    /// spread out by telling the rest to slow down).
    #[arg(long, default_value_t = 500.0)]
    pub stream_rate: f64,
    /// Write OCSF events to rotating JSON-lines files in this directory.
    #[arg(long)]
    pub export_dir: Option<PathBuf>,
    /// Start a new export file past this size.
    #[arg(long, default_value_t = 64)]
    pub export_rotate_mb: u64,
    /// Send OCSF events to a Splunk HTTP Event Collector, e.g.
    /// https://splunk:8088/services/collector/event.
    #[arg(long)]
    pub hec_url: Option<String>,
    /// File holding the HEC token (kept off the command line).
    #[arg(long, requires = "hec_url")]
    pub hec_token_file: Option<PathBuf>,
    /// PEM CA of an https HEC endpoint.
    #[arg(long, requires = "hec_url")]
    pub hec_ca: Option<PathBuf>,
    /// Allow an http:// --hec-url (token and events unencrypted on the wire).
    #[arg(long, requires = "hec_url")]
    pub hec_allow_http: bool,
    /// Serve gRPC server reflection on the agent listener (for grpcurl and the like).
    #[arg(long)]
    pub grpc_reflection: bool,
    /// How often grpc.health.v1 probes the store (NOT_SERVING when it does not answer).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// How often the offboarding playbook (policy.toml `[offboarding]`) looks for connectors
    /// to revoke.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub offboarding_interval: Duration,
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// Dashboard sign-in through an OpenID Connect provider (Okta, Entra ID, …).
#[derive(clap::Args, Debug)]
pub struct OidcArgs {
    /// The provider's issuer, exactly as its discovery document spells it, e.g.
    /// https://example.okta.com/oauth2/default or https://login.microsoftonline.com/TENANT/v2.0.
    #[arg(long, requires_all = ["oidc_client_id", "oidc_redirect_url"])]
    pub oidc_issuer: Option<String>,
    /// The client (application) id registered at the provider.
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// File holding the client secret (kept off the command line); without it the client is
    /// public and PKCE alone protects the code.
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Where the provider sends the browser back: https://HOST:PORT/ui/oidc/callback on the
    /// --http listener, registered at the provider.
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_redirect_url: Option<String>,
    /// Scopes asked for, space-separated (Okta's org server needs `groups` too).
    #[arg(long, default_value = "openid email profile")]
    pub oidc_scopes: String,
    /// The ID token claim that lists the person's groups.
    #[arg(long, default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Members of this group sign in as admin (repeatable).
    #[arg(long)]
    pub oidc_admin_group: Vec<String>,
    /// Members of this group sign in as viewer (repeatable); people in no mapped group are refused.
    #[arg(long)]
    pub oidc_viewer_group: Vec<String>,
    /// PEM bundle the provider's TLS certificate must chain to.
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt", requires = "oidc_issuer")]
    pub oidc_ca: PathBuf,
    /// Allow an http:// issuer on a loopback address (tests; never for a real provider).
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_allow_http: bool,
}

impl OidcArgs {
    fn resolve(self) -> anyhow::Result<Option<OidcConfig>> {
        let Some(issuer) = self.oidc_issuer else { return Ok(None) };
        let client_secret = match &self.oidc_client_secret_file {
            Some(f) => {
                let secret =
                    std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                let secret = secret.trim();
                anyhow::ensure!(!secret.is_empty(), "--oidc-client-secret-file {} is empty", f.display());
                Some(secret.to_owned())
            }
            None => None,
        };
        // Only an https issuer needs trust anchors; a loopback http one (tests) has none to read.
        let roots = if issuer.starts_with("https://") {
            crate::pki::read_pem_certificates(std::slice::from_ref(&self.oidc_ca))
                .with_context(|| format!("reading --oidc-ca {}", self.oidc_ca.display()))?
        } else {
            Vec::new()
        };
        let config = OidcConfig {
            issuer,
            client_id: self.oidc_client_id.context("--oidc-issuer needs --oidc-client-id")?,
            client_secret,
            redirect_url: self.oidc_redirect_url.context("--oidc-issuer needs --oidc-redirect-url")?,
            scopes: self.oidc_scopes,
            groups_claim: self.oidc_groups_claim,
            admin_groups: self.oidc_admin_group,
            viewer_groups: self.oidc_viewer_group,
            allow_http: self.oidc_allow_http,
            roots,
        };
        config.check().map_err(anyhow::Error::msg)?;
        if config.allow_http && config.issuer.starts_with("http://") {
            tracing::warn!(issuer = %config.issuer, "OpenID provider over plain HTTP (loopback only): for tests.");
        }
        Ok(Some(config))
    }
}

impl ServeArgs {
    /// Checks every flag and reads every file they name, so a mistake stops the collector
    /// before it binds a port.
    pub fn resolve(self, database: Option<String>) -> anyhow::Result<ServeConfig> {
        let hec = match self.hec_url {
            Some(url) => {
                let f = self.hec_token_file.context("--hec-url needs --hec-token-file")?;
                let token =
                    std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
                Some(HecConfig {
                    url,
                    token: token.trim().to_owned(),
                    ca: self.hec_ca,
                    allow_http: self.hec_allow_http,
                })
            }
            None => None,
        };
        let export = ExportConfig {
            dir: self.export_dir,
            rotate_bytes: self.export_rotate_mb << 20,
            hec,
            findings_every: Duration::from_secs(60),
            batch: 500,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        };
        if let Some(bad) =
            self.ek_allow.iter().find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            anyhow::bail!("--ek-allow {bad:?} is not a SHA-256 hex digest");
        }
        let mut ingest = IngestConfig {
            require_assurance: self.require_assurance,
            max_streams: self.max_streams,
            stream_rate: self.stream_rate,
            ek_roots: crate::pki::read_pem_certificates(&self.ek_roots)?,
            ek_allowlist: self.ek_allow,
            grpc_reflection: self.grpc_reflection,
            health_poll: self.health_interval.max(Duration::from_millis(100)),
            offboarding_poll: self.offboarding_interval.max(Duration::from_millis(100)),
            ..IngestConfig::default()
        };
        // Both caps must fit the file-descriptor limit, or a flood would exhaust it first.
        let grpc_cap = self
            .max_connections
            .unwrap_or_else(|| self.max_streams.saturating_add(self.max_streams / 10).saturating_add(1_000));
        let http_cap = if self.http.is_some() { self.http_max_connections } else { 0 };
        let want = grpc_cap.saturating_add(http_cap);
        let fit = crate::listen::fit_descriptors(want);
        if fit < want {
            // Short of descriptors: the API keeps a small share, the agents the rest.
            let http_fit = http_cap.min((fit / 8).max(8)).min(fit / 2);
            ingest.http_max_connections = http_fit.max(1);
            ingest.max_connections = fit.saturating_sub(http_fit).max(1);
        } else {
            ingest.max_connections = grpc_cap;
            ingest.http_max_connections = http_cap.max(1);
        }
        if self.oidc.oidc_issuer.is_some() && self.http.is_none() {
            anyhow::bail!("--oidc-issuer signs people in to the dashboard, which needs --http");
        }
        Ok(ServeConfig {
            data_dir: self.data.data_dir,
            database,
            dev: self.dev,
            listen: self.listen,
            http: self.http,
            ingest,
            export,
            oidc: self.oidc.resolve()?,
        })
    }
}

/// Runs the collector until SIGTERM or Ctrl-C, then lets the writer lanes commit what
/// they hold.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let app = config.open()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        // Store calls and signature checks run on blocking threads. Tokio's default of
        // 512 lets a reconnect storm of 10,000 agents grow the pool to hundreds of idle
        // threads that then contend on its one lock at every spawn (acks took seconds
        // with the CPU idle); the database pool bounds useful concurrency far lower.
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lanes = app.writer.lanes();
    let served = rt.block_on(async {
        let listeners = Listeners::bind(config.listen, config.http).await?;
        // The bound addresses, for whoever started us with port 0 (tests, supervisors).
        print(&format!("listening grpc {}\n", listeners.grpc.local_addr()?))?;
        if let Some(http) = &listeners.http {
            print(&format!("listening http {}\n", http.local_addr()?))?;
        }
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            data_dir = %config.data_dir.display(),
            database = %config.database.as_deref().map(crate::server::redact).unwrap_or_else(|| "sqlite (data dir)".into()),
            "Starting collector."
        );
        crate::server::run(app, config.export, listeners, crate::shutdown::signal()).await
    });
    // Dropping the runtime drops every task's handle on the writer; then the lanes
    // commit what they hold and exit, and the store writes what it keeps in memory.
    drop(rt);
    lanes.join(Duration::from_secs(30));
    served
}
