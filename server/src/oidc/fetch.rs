//! The collector's calls to the OpenID provider (discovery, JWKS, token endpoint): HTTP/1.1
//! over tokio-rustls with ring, as the HEC sink does, and plain TCP only where configuration
//! allowed it for a loopback provider.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// How long one call to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
const MAX_BODY: usize = 1 << 20;
/// Everything but RFC 3986's unreserved characters is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A failed call to the provider; the message is for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

fn err(m: impl std::fmt::Display) -> FetchError {
    FetchError(m.to_string())
}

/// Whether `url` may be called: https, or http to a loopback host when `allow_http`.
pub fn check_url(url: &str, allow_http: bool) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http && is_loopback(host) => Ok(uri),
        Some("http") if allow_http => Err(format!("{url:?} is plain http to a host that is not loopback")),
        Some("http") => Err(format!(
            "{url:?} is plain http: ID tokens and client secrets would cross the network in clear \
             (--oidc-allow-http allows it for a provider on loopback, for tests)"
        )),
        _ => Err(format!("{url:?} must be an https:// URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `application/x-www-form-urlencoded`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, ENCODE), utf8_percent_encode(v, ENCODE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An HTTP client for one provider.
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    allow_http: bool,
}

impl Client {
    pub fn new(roots: rustls::RootCertStore, allow_http: bool) -> anyhow::Result<Client> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client { tls: Arc::new(tls), allow_http })
    }

    /// GET a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<Value, FetchError> {
        let uri = check_url(url, self.allow_http).map_err(err)?;
        let req = hyper::Request::get(path_of(&uri)).header(hyper::header::ACCEPT, "application/json");
        let (status, body) = self.call(&uri, req, Bytes::new()).await?;
        if !status.is_success() {
            return Err(err(format!("{url} answered {}", status.as_u16())));
        }
        serde_json::from_slice(&body).map_err(|e| err(format!("{url} did not answer JSON: {e}")))
    }

    /// POST a form (the token endpoint), with HTTP Basic client authentication when given.
    /// A JSON answer is returned whatever its status: the caller reads OAuth's `error`.
    pub async fn post_form(
        &self,
        url: &str,
        body: String,
        basic: Option<(&str, &str)>,
    ) -> Result<(u16, Value), FetchError> {
        let uri = check_url(url, self.allow_http).map_err(err)?;
        let mut req = hyper::Request::post(path_of(&uri))
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both form-encoded before they are joined.
            let pair = format!("{}:{}", utf8_percent_encode(id, ENCODE), utf8_percent_encode(secret, ENCODE));
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            req = req.header(hyper::header::AUTHORIZATION, format!("Basic {b64}"));
        }
        let (status, body) = self.call(&uri, req, Bytes::from(body)).await?;
        let v = serde_json::from_slice(&body)
            .map_err(|e| err(format!("{url} answered {} without JSON: {e}", status.as_u16())))?;
        Ok((status.as_u16(), v))
    }

    async fn call(
        &self,
        uri: &hyper::Uri,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<(hyper::StatusCode, Bytes), FetchError> {
        let host = uri.host().ok_or_else(|| err("no host"))?.trim_matches(['[', ']']).to_owned();
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri.authority().map_or(host.clone(), |a| a.as_str().to_owned());
        let req = req.header(hyper::header::HOST, authority).body(Full::new(body)).map_err(err)?;
        let call = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(err)?;
            if tls {
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(err)?;
                let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(err)?;
                send(TokioIo::new(stream), req).await
            } else {
                send(TokioIo::new(tcp), req).await
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| err(format!("{host}:{port} did not answer within {} s", TIMEOUT.as_secs())))?
            .map_err(|e| FetchError(format!("{host}:{port}: {}", e.0)))
    }
}

fn path_of(uri: &hyper::Uri) -> String {
    uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned())
}

async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<(hyper::StatusCode, Bytes), FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "OpenID provider connection ended.");
        }
    });
    let resp = tx.send_request(req).await.map_err(err)?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| err(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        assert!(check_url("https://login.example.com/t/v2.0", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000", false).is_err());
        assert!(check_url("http://127.0.0.1:9000", true).is_ok());
        assert!(check_url("http://[::1]:9000/x", true).is_ok());
        assert!(check_url("http://localhost:9000/x", true).is_ok());
        assert!(check_url("http://idp.example.com", true).is_err());
        assert!(check_url("ftp://idp.example.com", true).is_err());
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(form(&[("a b", "x&y=z"), ("c_d", "é-.~")]), "a%20b=x%26y%3Dz&c_d=%C3%A9-.~");
    }
}
