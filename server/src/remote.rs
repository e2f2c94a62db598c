//! The query commands against a running collector's HTTP API instead of a data dir
//! (`--server https://collector:8444`): the same JSON, for an admin who has no shell on the
//! collector. The API token comes from `SIGHTLINE_API_TOKEN` or `--api-token-file` (never
//! the command line, where `ps` would show it); the collector's CA from `--ca`.
//!
//! One request per command over HTTP/1.1 and TLS (rustls, ring): no HTTP client stack
//! beyond the hyper and rustls the collector already carries.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Largest response read (the fleet inventory of a large org is a few MB).
const MAX_RESPONSE: usize = 256 << 20;

pub struct Remote {
    base: hyper::Uri,
    host: String,
    port: u16,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Remote {
    /// `ca` is a PEM file of the CA that signed the collector's certificate.
    pub fn new(server: &str, ca: &Path, token: String) -> anyhow::Result<Remote> {
        let base: hyper::Uri = server.parse().with_context(|| format!("invalid --server URL {server:?}"))?;
        if base.scheme_str() != Some("https") {
            anyhow::bail!("--server must be an https:// URL (got {server:?})");
        }
        let host = base.host().context("--server URL has no host")?.trim_matches(['[', ']']).to_owned();
        let port = base.port_u16().unwrap_or(443);
        let mut roots = rustls::RootCertStore::empty();
        let certs = crate::server::read_pem_certificates(&[ca.to_owned()])?;
        for c in certs {
            roots.add(c.into()).context("--ca holds a certificate rustls cannot use")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Remote { base, host, port, token, tls: Arc::new(tls) })
    }

    /// GET `path` (with query); the JSON body, or an error carrying the API's message.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(hyper::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(hyper::Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(hyper::Method::POST, path, Some(body.to_string())).await
    }

    async fn call(&self, method: hyper::Method, path: &str, body: Option<String>) -> anyhow::Result<Value> {
        let where_ = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {where_}"))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .with_context(|| format!("{:?} is not a valid server name", self.host))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS with {where_} (is --ca the collector's CA?)"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.context("HTTP handshake")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API connection ended.");
            }
        });
        let base = self.base.path().trim_end_matches('/');
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header(hyper::header::HOST, where_.as_str())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request")?;
        let resp = send.send_request(req).await.with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes =
            limited.collect().await.map_err(|e| anyhow::anyhow!("reading the response: {e}"))?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v["error"].as_str().or(v["detail"].as_str()).unwrap_or("no detail");
            anyhow::bail!("{path}: HTTP {}: {msg}", status.as_u16());
        }
        Ok(v)
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
