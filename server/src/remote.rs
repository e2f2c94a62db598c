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
        let certs = crate::pki::read_pem_certificates(&[ca.to_owned()])?;
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

    /// GET `path` (with query); the JSON body, or an error carrying the API's message. A
    /// paged list (`Link: <…>; rel="next"`) is followed to its end and returned whole.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (mut v, mut next) = self.call(hyper::Method::GET, path, None).await?;
        // Bounded: a collector that kept answering `next` would otherwise hold us forever.
        for _ in 0..10_000 {
            let Some(path) = next.take() else { return Ok(v) };
            let (more, after) = self.call(hyper::Method::GET, &path, None).await?;
            match (&mut v, more) {
                (Value::Array(all), Value::Array(page)) => all.extend(page),
                _ => anyhow::bail!("{path}: a `next` page that is not a list"),
            }
            next = after;
        }
        anyhow::bail!("{path}: more than 10,000 pages")
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(hyper::Method::DELETE, path, None).await?.0)
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.call(hyper::Method::PUT, path, Some(body.to_string())).await?.0)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.call(hyper::Method::POST, path, Some(body.to_string())).await?.0)
    }

    /// One request: the JSON body and the path of the next page, if the answer names one.
    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(Value, Option<String>)> {
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
        let next = resp.headers().get(hyper::header::LINK).and_then(|l| l.to_str().ok()).and_then(next_link);
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes =
            limited.collect().await.map_err(|e| anyhow::anyhow!("reading the response: {e}"))?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v["error"].as_str().or(v["detail"].as_str()).unwrap_or("no detail");
            anyhow::bail!("{path}: HTTP {}: {msg}", status.as_u16());
        }
        Ok((v, next))
    }
}

/// The `rel="next"` target of a `Link` header, if it is a path on this server.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        (params.contains("rel=\"next\"") && target.starts_with('/')).then(|| target.to_owned())
    })
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

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_next_link_on_this_server_is_followed() {
        assert_eq!(
            super::next_link("</api/v1/devices?offset=10&limit=10>; rel=\"next\"").as_deref(),
            Some("/api/v1/devices?offset=10&limit=10")
        );
        assert_eq!(super::next_link("<https://elsewhere/x>; rel=\"next\""), None);
        assert_eq!(super::next_link("</a>; rel=\"prev\""), None);
    }
}
