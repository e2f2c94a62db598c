//! Wiring: opening a data dir into the application state, and [`run`], which serves the
//! gRPC services, the HTTP edge and the exports on bound listeners until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sightline_proto::pb::{enrollment_server::EnrollmentServer, telemetry_server::TelemetryServer};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::ingest::{enrollment::EnrollmentService, telemetry::TelemetryService};
use crate::listen::{Limits, Listener};
use crate::pki::Pki;
use crate::state::AppState;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;

/// Connection parameters that hold a secret.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// A database URL fit for a log line or an error: every password replaced — in the
/// userinfo (`postgres://u:PW@h/db`), in the query (`?password=PW`) and in the key=value
/// form (`host=h password='PW'`).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return redact_keyvalue(url) };
    let (head, rest) = url.split_at(scheme_end);
    // The userinfo ends at the last `@`, whatever a careless password holds (`/`, `?`, `@`).
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut out = head.to_owned();
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***")),
            None => out.push_str(u),
        }
    }
    out.push_str(rest);
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// libpq's `key=value` form, values optionally single-quoted (with `\'` escapes).
fn redact_keyvalue(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        out.push_str(&key);
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        out.push('=');
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            value.push('\'');
            chars.next();
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                } else if c == '\'' {
                    break;
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if SECRET_PARAMS.contains(&key.to_ascii_lowercase().as_str()) {
            out.push_str("***");
        } else {
            out.push_str(&value);
        }
    }
    out
}

/// Opens the store: the PostgreSQL database at `database` (`postgres://…`) if given, else
/// the data dir's embedded SQLite database (creating the dir, 0700).
pub fn open_store(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = database {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!(
                "--database must be a postgres:// or postgresql:// URL (SQLite needs no URL: it lives in --data-dir)"
            );
        }
        let store = PostgresStore::open(url).with_context(|| format!("opening database {}", redact(url)))?;
        return Ok(Arc::new(store));
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting data dir {}", data_dir.display()))?;
    }
    let db = data_dir.join("sightline.db");
    Ok(Arc::new(SqliteStore::open(&db).with_context(|| format!("opening database {}", db.display()))?))
}

/// Opens a data dir for serving: database plus key material.
pub fn open(data_dir: &Path, database: Option<&str>, dev: bool) -> anyhow::Result<AppState> {
    let store = open_store(data_dir, database)?;
    let pki = Arc::new(Pki::load_or_init(data_dir, dev)?);
    let catalog = Arc::new(crate::catalog::served::Feed::open(data_dir, pki.signing_key_spki()));
    let policy = Arc::new(crate::policy::Policy::load(data_dir)?);
    let metrics: Arc<crate::metrics::Metrics> = Default::default();
    let writer = crate::writer::Writer::start(store.clone(), metrics.clone())
        .context("starting the ingest writer lanes")?;
    Ok(AppState {
        store,
        pki,
        config: Default::default(),
        policy,
        dispatch: Default::default(),
        catalog,
        views: Default::default(),
        metrics,
        writer,
        oidc: None,
        stopping: Default::default(),
    })
}

/// Everything `serve` needs, validated (see `cli::serve::ServeArgs::resolve`).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: std::path::PathBuf,
    /// PostgreSQL URL; None for the data dir's SQLite database.
    pub database: Option<String>,
    /// Create a local CA and server certificate on first start.
    pub dev: bool,
    /// The agents' (gRPC) address.
    pub listen: SocketAddr,
    /// The HTTP API's address, if it is served.
    pub http: Option<SocketAddr>,
    pub ingest: crate::config::IngestConfig,
    pub export: crate::export::ExportConfig,
    /// Dashboard sign-in through an OpenID provider (`--oidc-*`).
    pub oidc: Option<crate::oidc::OidcConfig>,
}

impl ServeConfig {
    /// Opens the data dir with this configuration in force.
    pub fn open(&self) -> anyhow::Result<AppState> {
        let mut app = open(&self.data_dir, self.database.as_deref(), self.dev)?;
        app.config = self.ingest.clone();
        app.oidc = match &self.oidc {
            Some(c) => Some(Arc::new(crate::oidc::Oidc::new(c.clone())?)),
            None => None,
        };
        Ok(app)
    }
}

/// The bound sockets [`run`] serves on.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(grpc: SocketAddr, http: Option<SocketAddr>) -> anyhow::Result<Listeners> {
        let grpc_l = TcpListener::bind(grpc).await.with_context(|| format!("binding {grpc}"))?;
        let http = match http {
            Some(a) => Some(TcpListener::bind(a).await.with_context(|| format!("binding {a}"))?),
            None => None,
        };
        Ok(Listeners { grpc: grpc_l, http })
    }
}

/// Serves the collector on `listeners` until `shutdown` resolves: gRPC for agents, the
/// HTTP edge if it has a listener, and the configured exports.
pub async fn run(
    app: AppState,
    export: crate::export::ExportConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_signal.cancel();
    });
    if export.any() {
        tokio::spawn(crate::export::run(app.clone(), export, stop.clone().cancelled_owned()));
    }
    let grpc = serve(listeners.grpc, app.clone(), stop.clone().cancelled_owned());
    match listeners.http {
        Some(l) => {
            let http = crate::http::api::serve(l, app, stop.cancelled_owned());
            tokio::try_join!(grpc, http).map(|_| ())
        }
        None => grpc.await,
    }
}

/// Concurrent HTTP/2 streams on one agent connection (telemetry plus an enrollment or two).
const MAX_STREAMS_PER_CONNECTION: u32 = 8;
/// Header block size an agent never comes near.
const MAX_HEADER_BYTES: u32 = 16 * 1024;

/// Serves enrollment and telemetry on an already-bound listener until `shutdown` resolves.
///
/// Client certificates are optional at the TLS layer because enrolling agents have none
/// yet; the telemetry service refuses any stream without an enrolled device's certificate.
pub async fn serve(
    listener: TcpListener,
    shared: AppState,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&shared.pki.server_cert_pem, &shared.pki.server_key_pem))
        .client_ca_root(Certificate::from_pem(shared.pki.ca_pem()))
        .client_auth_optional(true)
        // A client that opens TCP and never finishes the handshake holds a slot no longer.
        .timeout(Duration::from_secs(10));
    let limits = Limits::grpc(shared.config.max_connections);
    let incoming = Listener::new(listener, limits, "grpc", shared.metrics.clone()).incoming();
    tracing::info!(%addr, max_connections = limits.max_connections, "Collector listening (gRPC over TLS).");
    let follow = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::directives::run(
        shared.store.clone(),
        shared.pki.clone(),
        shared.dispatch.clone(),
        shared.config.directive_poll,
        crate::directives::Playbook { policy: shared.policy.clone(), every: shared.config.offboarding_poll },
        follow.clone().cancelled_owned(),
    ));
    tokio::spawn(crate::catalog::served::follow(
        shared.catalog.clone(),
        shared.config.directive_poll,
        follow.clone().cancelled_owned(),
    ));
    tokio::spawn(crate::directives::watch_standing(
        shared.store.clone(),
        shared.dispatch.clone(),
        shared.config.revocation_poll,
        follow.clone().cancelled_owned(),
    ));
    let _stop_poller = follow.drop_guard();
    // Telemetry streams never end on their own: tell them to, or the graceful shutdown below
    // would wait for every agent to hang up.
    let stopping = shared.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    // Not serving until the first probe of the store says otherwise.
    for name in crate::health::services() {
        reporter.set_service_status(name, tonic_health::ServingStatus::NotServing).await;
    }
    let health_stop = shared.stopping.clone();
    tokio::spawn(crate::health::watch(shared.clone(), reporter, shared.config.health_poll, health_stop));
    // Both reflection versions: grpcurl asks v1 first, many clients (grpcio's among them)
    // know only v1alpha.
    let (reflection, reflection_alpha) = if shared.config.grpc_reflection {
        tracing::info!("gRPC server reflection is on (--grpc-reflection).");
        let builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(sightline_proto::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        (
            Some(builder().build_v1().context("building the gRPC reflection service")?),
            Some(builder().build_v1alpha().context("building the gRPC reflection service")?),
        )
    } else {
        (None, None)
    };
    Server::builder()
        .tls_config(tls)
        .context("configuring TLS")?
        // Dead peers of long-lived streams are noticed; an agent needs one or two streams.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_max_header_list_size(MAX_HEADER_BYTES)
        .add_service(EnrollmentServer::new(EnrollmentService { shared: shared.clone() }))
        .add_service(
            TelemetryServer::new(TelemetryService::new(shared))
                .max_decoding_message_size(crate::ingest::telemetry::MAX_MESSAGE_BYTES),
        )
        .add_service(health)
        .add_optional_service(reflection)
        .add_optional_service(reflection_alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("serving gRPC")?;
    tracing::info!("Collector stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls_lose_their_password_in_logs() {
        assert_eq!(
            super::redact("postgres://sl:s3cret@db:5432/sightline"),
            "postgres://sl:***@db:5432/sightline"
        );
        assert_eq!(super::redact("postgres://sl@db/sightline"), "postgres://sl@db/sightline");
        assert_eq!(super::redact("postgresql://db/sightline"), "postgresql://db/sightline");
        assert!(!super::redact("postgres://a:p@ss@h/d").contains("p@ss"), "a password holding @");
        assert_eq!(
            super::redact("postgres://sl@db/s?sslmode=require&password=s3cret&application_name=x"),
            "postgres://sl@db/s?sslmode=require&password=***&application_name=x"
        );
        assert_eq!(
            super::redact("postgresql://sl:pw@db/s?PassWord=s3cret"),
            "postgresql://sl:***@db/s?PassWord=***"
        );
        assert_eq!(
            super::redact("host=db user=sl password='it s\\'3cret' dbname=s sslpassword=k3y"),
            "host=db user=sl password=*** dbname=s sslpassword=***"
        );
        assert_eq!(super::redact("host=db password=s3cret"), "host=db password=***");
        for raw in
            ["postgres://u:p?ss@h/db", "postgres://u:p/ss@h/db", "postgres://u:p@s?s/x@h/db?sslmode=require"]
        {
            let r = super::redact(raw);
            assert!(!r.contains("p?ss") && !r.contains("p/ss") && !r.contains("s?s/x"), "{raw} → {r}");
        }
    }
}
