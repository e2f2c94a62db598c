//! The collector's key material, kept in the data dir:
//!
//! ```text
//! ca.pem / ca.key                  CA that signs the server and device certificates (key 0600)
//! server.pem / server.key          TLS server certificate for the gRPC listener (key 0600)
//! org-fingerprint.key              32 random bytes handed to agents at enrollment (0600)
//! collector-signing.pk8            ECDSA P-256 key that signs directives (0600)
//! ```
//!
//! `serve --dev` creates all of it on first start; without `--dev` it must already exist.
//! Device certificates are short-lived client certificates whose SHA-256 is stored on the
//! device row, so the telemetry stream maps a TLS peer to a device without parsing X.509.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SignatureAlgorithm,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use sightline_proto::p256;
use time::{Duration as TimeDuration, OffsetDateTime};

/// How long a device's client certificate is valid.
pub const DEVICE_CERT_DAYS: i64 = 90;

pub struct Pki {
    ca_pem: String,
    ca_issuer: Issuer<'static, KeyPair>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub org_fingerprint_key: Vec<u8>,
    signing_key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sightline");
    dn.push(DnType::CommonName, "Sightline collector CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

impl Pki {
    /// Loads the data dir's key material, creating it when `dev` is set.
    pub fn load_or_init(data_dir: &Path, dev: bool) -> anyhow::Result<Pki> {
        let path = |n: &str| data_dir.join(n);
        if !path("ca.pem").exists() {
            if !dev {
                anyhow::bail!(
                    "no CA in {} (ca.pem, ca.key, server.pem, server.key); start once with --dev to create a local CA",
                    data_dir.display()
                );
            }
            create_dev_pki(data_dir)?;
        }
        let ca_pem = read(&path("ca.pem"))?;
        let ca_key =
            KeyPair::from_pem(&read(&path("ca.key"))?).context("ca.key is not a valid private key")?;
        // The issuer is rebuilt from the same fixed parameters the CA was created with, so
        // issued certificates carry a matching issuer name and key identifier.
        let ca_issuer = Issuer::new(ca_params(), ca_key);
        let org_fingerprint_key =
            fs::read(path("org-fingerprint.key")).context("reading org-fingerprint.key")?;
        if org_fingerprint_key.len() != 32 {
            anyhow::bail!("org-fingerprint.key must be 32 bytes");
        }
        let rng = SystemRandom::new();
        let signing_key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &fs::read(path("collector-signing.pk8")).context("reading collector-signing.pk8")?,
            &rng,
        )
        .map_err(|e| anyhow::anyhow!("collector-signing.pk8 is not a P-256 key: {e}"))?;
        Ok(Pki {
            ca_pem,
            ca_issuer,
            server_cert_pem: read(&path("server.pem"))?,
            server_key_pem: read(&path("server.key"))?,
            org_fingerprint_key,
            signing_key,
            rng,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a client certificate for a device's TLS key.
    pub fn issue_device_cert(&self, device_id: &str, tls_key_spki: &[u8]) -> anyhow::Result<IssuedCert> {
        let key = ExternalP256Key::from_spki(tls_key_spki)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Sightline device");
        dn.push(DnType::CommonName, device_id);
        p.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        p.not_before = now - TimeDuration::minutes(5);
        p.not_after = now + TimeDuration::days(DEVICE_CERT_DAYS);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        let not_after_ms = (p.not_after.unix_timestamp_nanos() / 1_000_000) as i64;
        let cert = p.signed_by(&key, &self.ca_issuer).context("signing device certificate")?;
        Ok(IssuedCert { pem: cert.pem(), sha256: cert_sha256(cert.der()), not_after_ms })
    }

    /// DER SubjectPublicKeyInfo of the directive signing key.
    pub fn signing_key_spki(&self) -> Vec<u8> {
        p256::spki_from_point(self.signing_key.public_key().as_ref()).unwrap_or_default()
    }

    /// Signs `context || msg` with the collector's signing key.
    pub fn sign(&self, context: &[u8], msg: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut m = context.to_vec();
        m.extend_from_slice(msg);
        Ok(self
            .signing_key
            .sign(&self.rng, &m)
            .map_err(|_| anyhow::anyhow!("signing failed"))?
            .as_ref()
            .to_vec())
    }
}

/// A freshly issued device certificate.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    /// SHA-256 of the DER, hex: how the collector recognises the device's TLS peer.
    pub sha256: String,
    pub not_after_ms: i64,
}

/// SHA-256 of a DER certificate, hex: how the collector recognises a device's TLS peer.
pub fn cert_sha256(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// A P-256 public key rcgen can certify without holding its private half.
struct ExternalP256Key {
    point: Vec<u8>,
}

impl ExternalP256Key {
    fn from_spki(spki: &[u8]) -> anyhow::Result<ExternalP256Key> {
        Ok(ExternalP256Key { point: p256::point_from_spki(spki)?.to_vec() })
    }
}

impl PublicKeyData for ExternalP256Key {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn create_dev_pki(data_dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - TimeDuration::minutes(5);
    params.not_after = now + TimeDuration::days(3650);
    let ca_cert = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params(), &ca_key);

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut names = vec!["localhost".to_owned()];
    if let Some(h) = hostname() {
        names.push(h);
    }
    let mut sp = CertificateParams::new(names)?;
    sp.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse()?));
    sp.subject_alt_names.push(SanType::IpAddress("::1".parse()?));
    sp.distinguished_name.push(DnType::CommonName, "Sightline collector");
    sp.not_before = now - TimeDuration::minutes(5);
    sp.not_after = now + TimeDuration::days(825);
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.use_authority_key_identifier_extension = true;
    let server_cert = sp.signed_by(&server_key, &issuer)?;

    let rng = SystemRandom::new();
    let mut org = [0u8; 32];
    rng.fill(&mut org).map_err(|_| anyhow::anyhow!("random number generator failed"))?;
    let signing = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("generating collector signing key failed"))?;

    // Keys first, CA certificate last: its presence marks the set complete.
    write(&data_dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?;
    write(&data_dir.join("server.key"), server_key.serialize_pem().as_bytes(), true)?;
    write(&data_dir.join("server.pem"), server_cert.pem().as_bytes(), false)?;
    write(&data_dir.join("org-fingerprint.key"), &org, true)?;
    write(&data_dir.join("collector-signing.pk8"), signing.as_ref(), true)?;
    write(&data_dir.join("ca.pem"), ca_cert.pem().as_bytes(), false)?;
    tracing::info!(ca = %data_dir.join("ca.pem").display(), "Created a development CA; agents must trust this file.");
    Ok(())
}

fn hostname() -> Option<String> {
    fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains(' '))
}

fn read(p: &PathBuf) -> anyhow::Result<String> {
    fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

/// Atomic write; `secret` files are 0600.
pub fn write(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = opts.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads every certificate from PEM files (the `--ek-roots` bundles), as DER.
pub fn read_pem_certificates(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
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
