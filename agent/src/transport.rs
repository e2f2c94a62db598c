//! gRPC channels to the collector over TLS (rustls, ring provider, via tonic).
//!
//! Enrollment uses server-authenticated TLS (the agent has no certificate yet); telemetry
//! uses mutual TLS with the client certificate enrollment issued.

use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Connects to `url` trusting only `ca_pem`, presenting `identity` if given.
pub async fn connect(
    url: &str,
    ca_pem: &[u8],
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Channel> {
    let uri: tonic::transport::Uri = url.parse().with_context(|| format!("invalid collector URL {url:?}"))?;
    if uri.scheme_str() != Some("https") {
        anyhow::bail!("collector URL must start with https:// (got {url:?})");
    }
    let host = uri
        .host()
        .context("collector URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name(host);
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid collector URL {url:?}"))?
        .tls_config(tls)
        .context("configuring TLS")?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    endpoint.connect().await.with_context(|| format!("connecting to collector at {url}"))
}

/// Renders a gRPC status for a person: the code and the collector's message.
pub fn status_message(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}
