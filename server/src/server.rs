//! Opening a data dir and serving the gRPC services over TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sightline_proto::pb::{enrollment_server::EnrollmentServer, telemetry_server::TelemetryServer};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::ingest::{Shared, enrollment::EnrollmentService, telemetry::TelemetryService};
use crate::pki::Pki;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;

/// A database URL fit for a log line: the password replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
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

/// Reads every certificate from PEM files (the `--ek-roots` bundles), as DER.
pub fn read_pem_certificates(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut out = Vec::new();
    for p in paths {
        let before = out.len();
        for cert in CertificateDer::pem_file_iter(p).with_context(|| format!("reading {}", p.display()))? {
            out.push(
                cert.with_context(|| format!("{} holds a malformed certificate", p.display()))?.to_vec(),
            );
        }
        if out.len() == before {
            anyhow::bail!("{} holds no PEM certificate", p.display());
        }
    }
    Ok(out)
}

/// Opens a data dir for serving: database plus key material.
pub fn open(data_dir: &Path, database: Option<&str>, dev: bool) -> anyhow::Result<Shared> {
    let store = open_store(data_dir, database)?;
    let pki = Arc::new(Pki::load_or_init(data_dir, dev)?);
    let policy = Arc::new(crate::policy::Policy::load(data_dir)?);
    let metrics: Arc<crate::metrics::Metrics> = Default::default();
    let writer = crate::ingest::writer::Writer::start(store.clone(), metrics.clone())
        .context("starting the ingest writer lanes")?;
    Ok(Shared {
        store,
        pki,
        config: Default::default(),
        policy,
        dispatch: Default::default(),
        views: Default::default(),
        metrics,
        writer,
        stopping: Default::default(),
    })
}

/// Serves enrollment and telemetry on an already-bound listener until `shutdown` resolves.
///
/// Client certificates are optional at the TLS layer because enrolling agents have none
/// yet; the telemetry service refuses any stream without an enrolled device's certificate.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&shared.pki.server_cert_pem, &shared.pki.server_key_pem))
        .client_ca_root(Certificate::from_pem(shared.pki.ca_pem()))
        .client_auth_optional(true);
    tracing::info!(%addr, "Collector listening (gRPC over TLS).");
    let follow = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::ingest::directives::run(
        shared.clone(),
        shared.config.directive_poll,
        follow.clone().cancelled_owned(),
    ));
    tokio::spawn(crate::ingest::directives::watch_standing(
        shared.clone(),
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
    Server::builder()
        .tls_config(tls)
        .context("configuring TLS")?
        .add_service(EnrollmentServer::new(EnrollmentService { shared: shared.clone() }))
        .add_service(TelemetryServer::new(TelemetryService::new(shared)))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
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
    }
}
