//! Where exported events go: rotating JSON-lines files, or a Splunk HTTP Event Collector.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A Splunk HEC endpoint (`--hec-url https://splunk:8088/services/collector/event`).
#[derive(Clone)]
pub struct HecConfig {
    pub url: String,
    /// Never printed: `Debug` shows only that there is one.
    pub token: String,
    /// PEM CA for an https endpoint.
    pub ca: Option<PathBuf>,
    /// Send to an `http://` URL: the token and every event in clear text. Only when asked
    /// (`--hec-allow-http`), for a collector on the same host or a test.
    pub allow_http: bool,
}

impl std::fmt::Debug for HecConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HecConfig")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .field("ca", &self.ca)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

pub enum Sink {
    File(Arc<Mutex<Files>>),
    Hec(Hec),
}

pub struct Files {
    dir: PathBuf,
    rotate_bytes: u64,
    current: Option<(std::fs::File, u64)>,
}

pub struct Hec {
    cfg: HecConfig,
    uri: hyper::Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Sink {
    pub fn file(dir: PathBuf, rotate_bytes: u64) -> Sink {
        Sink::File(Arc::new(Mutex::new(Files { dir, rotate_bytes: rotate_bytes.max(1), current: None })))
    }

    pub fn hec(cfg: HecConfig) -> anyhow::Result<Sink> {
        let uri: hyper::Uri = cfg.url.parse().with_context(|| format!("invalid --hec-url {:?}", cfg.url))?;
        let tls = match uri.scheme_str() {
            Some("http") if cfg.allow_http => {
                tracing::warn!(url = %cfg.url, "Exporting to HEC over plain HTTP: the token and events travel unencrypted.");
                None
            }
            Some("http") => anyhow::bail!(
                "--hec-url {:?} is plain http: the HEC token and every event would cross the network in clear; \
                 use https:// with --hec-ca, or pass --hec-allow-http if that is really meant",
                cfg.url
            ),
            Some("https") => {
                let mut roots = rustls::RootCertStore::empty();
                let ca = cfg
                    .ca
                    .as_ref()
                    .context("an https --hec-url needs --hec-ca (the CA of the HEC certificate)")?;
                for c in crate::pki::read_pem_certificates(std::slice::from_ref(ca))? {
                    roots.add(c.into()).context("--hec-ca holds a certificate rustls cannot use")?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                Some(Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                ))
            }
            _ => anyhow::bail!("--hec-url must be http:// or https://"),
        };
        Ok(Sink::Hec(Hec { cfg, uri, tls }))
    }

    /// The sink's name, its key for cursors and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::File(_) => "file",
            Sink::Hec(_) => "hec",
        }
    }

    /// Delivers events, all or nothing as far as the cursor is concerned: an error means
    /// the same events are delivered again later.
    pub async fn deliver(&mut self, events: &[Value]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Sink::File(f) => {
                let (f, lines) = (f.clone(), events.iter().map(Value::to_string).collect::<Vec<_>>());
                tokio::task::spawn_blocking(move || f.lock().unwrap_or_else(|p| p.into_inner()).write(&lines))
                    .await?
            }
            Sink::Hec(h) => h.post(events).await,
        }
    }
}

impl Files {
    /// Appends lines to the current file (a new one past the size limit), then fsyncs.
    fn write(&mut self, lines: &[String]) -> anyhow::Result<()> {
        if self.current.as_ref().is_none_or(|(_, n)| *n >= self.rotate_bytes) {
            std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
            let stamp = crate::clock::now_ms();
            let path = self.dir.join(format!("ocsf-{stamp}.jsonl"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            tracing::info!(file = %path.display(), "Export file opened.");
            self.current = Some((f, len));
        }
        let (f, n) = self.current.as_mut().context("no export file open")?;
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf).context("writing the export file")?;
        f.sync_data().context("syncing the export file")?;
        *n += buf.len() as u64;
        Ok(())
    }
}

impl Hec {
    async fn post(&self, events: &[Value]) -> anyhow::Result<()> {
        let host = self.uri.host().context("--hec-url has no host")?.trim_matches(['[', ']']).to_owned();
        let port = self.uri.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let mut body = String::new();
        for e in events {
            let secs = e["time"].as_i64().unwrap_or(0) as f64 / 1000.0;
            let sourcetype = format!("ocsf:{}", e["class_uid"]);
            body.push_str(
                &json!({"time": secs, "source": "sightline", "sourcetype": sourcetype, "event": e})
                    .to_string(),
            );
            body.push('\n');
        }
        let path = self.uri.path_and_query().map_or("/services/collector/event", |p| p.as_str());
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::AUTHORIZATION, format!("Splunk {}", self.cfg.token))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .context("building the HEC request")?;
        let call = async {
            let tcp =
                tokio::net::TcpStream::connect((host.as_str(), port)).await.context("connecting to HEC")?;
            let resp = match &self.tls {
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(host.clone())?;
                    let stream = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await?;
                    send(TokioIo::new(stream), req).await?
                }
                None => send(TokioIo::new(tcp), req).await?,
            };
            anyhow::Ok(resp)
        };
        let (status, text) = tokio::time::timeout(std::time::Duration::from_secs(30), call)
            .await
            .context("HEC did not answer within 30 s")??;
        if !status.is_success() {
            anyhow::bail!("HEC answered {}: {}", status.as_u16(), text.chars().take(200).collect::<String>());
        }
        Ok(())
    }
}

async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> anyhow::Result<(hyper::StatusCode, String)>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HEC connection ended.");
        }
    });
    let resp = tx.send_request(req).await?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the HEC answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hec_token_is_never_printed_and_plain_http_needs_consent() {
        let cfg = HecConfig {
            url: "http://127.0.0.1:8088/services/collector/event".into(),
            token: "hec-secret-4711".into(),
            ca: None,
            allow_http: false,
        };
        assert!(!format!("{cfg:?}").contains("hec-secret-4711"));
        let e = Sink::hec(cfg.clone()).err().expect("plain http refused").to_string();
        assert!(e.contains("--hec-allow-http") && !e.contains("hec-secret-4711"), "{e}");
        assert!(Sink::hec(HecConfig { allow_http: true, ..cfg }).is_ok());
    }
}
