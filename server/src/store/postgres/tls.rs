//! TLS to PostgreSQL, on rustls with the ring provider (the collector's one TLS stack).
//!
//! Chosen in the connection string as libpq users expect: `sslrootcert=PATH` names the CA that
//! signed the database's certificate, and `sslmode=verify-full` (or `require`, `verify-ca`)
//! asks for TLS. Whenever TLS is used the server's chain *and* host name are verified: there
//! is no mode that encrypts without knowing who answers, and no fallback to plaintext once a
//! CA is given. Without either parameter the connection is plain TCP, as before.
//!
//! The driver (`tokio-postgres`) knows only `disable|prefer|require` and refuses other keys,
//! so the two are taken out of the string here before it is parsed.

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{Result, StoreError};

/// What the connection string asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Requested {
    /// The connection string without `sslrootcert` and with `sslmode` as the driver knows it.
    pub conninfo: String,
    pub root_cert: Option<PathBuf>,
    /// `sslmode` was `require`, `verify-ca` or `verify-full`.
    pub tls_required: bool,
}

/// Splits the TLS parameters out of a `postgres://` URL or a `key=value` string.
pub(super) fn parse(url: &str) -> Result<Requested> {
    let mut r = Requested::default();
    let mut mode: Option<String> = None;
    let mut take = |key: &str, value: &str| -> bool {
        match key {
            "sslrootcert" => {
                r.root_cert = Some(PathBuf::from(value));
                true
            }
            "sslmode" => {
                mode = Some(value.to_owned());
                true
            }
            _ => false,
        }
    };
    let conninfo = if let Some((base, query)) =
        url.split_once('?').filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k, &percent_encoding::percent_decode_str(v).decode_utf8_lossy())
            })
            .collect();
        if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.to_owned()
    } else {
        url.split_whitespace()
            .filter(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                !take(k.trim(), v.trim().trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    r.tls_required = match mode.as_deref() {
        None | Some("prefer") | Some("allow") | Some("disable") => false,
        Some("require") | Some("verify-ca") | Some("verify-full") => true,
        Some(other) => {
            return Err(StoreError::Unavailable(format!(
                "database URL: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    if mode.as_deref() == Some("disable") && r.root_cert.is_some() {
        return Err(StoreError::Unavailable(
            "database URL: sslmode=disable contradicts sslrootcert (drop one)".into(),
        ));
    }
    if r.tls_required && r.root_cert.is_none() {
        return Err(StoreError::Unavailable(format!(
            "database URL: sslmode={} needs sslrootcert=PATH, the CA that signed the database's certificate \
             (the server's certificate is always verified)",
            mode.as_deref().unwrap_or_default()
        )));
    }
    r.conninfo = conninfo;
    Ok(r)
}

/// The rustls connector for `root_cert`'s CAs (PEM).
pub(super) fn connector(root_cert: &std::path::Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let bad = |what: String| StoreError::Unavailable(format!("sslrootcert: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for der in
        crate::pki::read_pem_certificates(&[root_cert.to_owned()]).map_err(|e| bad(format!("{e:#}")))?
    {
        roots.add(der.into()).map_err(|e| bad(format!("{}: {e}", root_cert.display())))?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let r = parse(
            "postgres://sl@db:5432/s?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(r.conninfo, "postgres://sl@db:5432/s?application_name=x");
        assert_eq!(r.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert!(r.tls_required);
        let r = parse("host=db user=sl sslrootcert='/etc/ca.pem' dbname=s").unwrap();
        assert_eq!(r.conninfo, "host=db user=sl dbname=s");
        assert_eq!((r.root_cert, r.tls_required), (Some(PathBuf::from("/etc/ca.pem")), false));
        let plain = parse("postgres://sl@127.0.0.1/s").unwrap();
        assert_eq!(
            (plain.conninfo.as_str(), plain.root_cert, plain.tls_required),
            ("postgres://sl@127.0.0.1/s", None, false)
        );
    }

    #[test]
    fn tls_without_a_ca_or_against_one_is_refused() {
        let e = parse("postgres://sl@db/s?sslmode=require").unwrap_err().to_string();
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = parse("postgres://sl@db/s?sslmode=disable&sslrootcert=/ca.pem").unwrap_err().to_string();
        assert!(e.contains("contradicts"), "{e}");
        assert!(parse("postgres://sl@db/s?sslmode=maybe").is_err());
    }
}
