//! The TLS listener the API, SCIM and the dashboard are served on.

use std::sync::Arc;

use crate::state::AppState;

/// Serves the API over TLS on `listener` until `shutdown` resolves. Connections are capped
/// and bounded in time (`crate::listen`); a request header must arrive within
/// `HEADER_READ`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: AppState,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(shared.pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(shared.pki.server_key_pem.as_bytes())
        .context("reading the server key")?;
    let mut tls =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("configuring the API's TLS certificate")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let limits = crate::listen::Limits::http(shared.config.http_max_connections);
    let listener = crate::listen::Listener::new(listener, limits, "http", shared.metrics.clone());
    let router = super::router(shared);
    tracing::info!(addr = %listener.local_addr()?, max_connections = limits.max_connections, "HTTP API listening (TLS).");
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let state = conn.state().clone();
            let peer = state.remote;
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(conn)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "API TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "API TLS handshake timed out.");
                    return;
                }
            };
            // A request being answered holds off the connection's idle timeout.
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = state.busy();
                let call = tower::ServiceExt::oneshot(router.clone(), req);
                async move {
                    let r = call.await;
                    drop(busy);
                    r
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_HTTP2_STREAMS)
                .max_header_list_size(MAX_HEADER_BYTES)
                .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            // Recycle the connection gracefully before its lifetime ends it hard.
            let recycle = tokio::time::sleep(limits.lifetime.saturating_sub(HANDSHAKE * 3));
            tokio::pin!(recycle);
            let mut recycling = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "API connection ended with an error.");
                        }
                        break;
                    }
                    _ = &mut recycle => {
                        if recycling {
                            // Still not done a grace period after being asked: dropped.
                            tracing::debug!(%peer, "API connection closed at the end of its lifetime.");
                            break;
                        }
                        recycling = true;
                        conn.as_mut().graceful_shutdown();
                        recycle.as_mut().reset(tokio::time::Instant::now() + HANDSHAKE * 3);
                    }
                }
            }
        });
    }
    tracing::info!("HTTP API stopped.");
    Ok(())
}

/// A TLS handshake must finish within this.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);
/// A request's header must arrive within this (HTTP/1; slowloris).
const HEADER_READ: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_HTTP2_STREAMS: u32 = 64;
const MAX_HEADER_BYTES: u32 = 32 * 1024;
