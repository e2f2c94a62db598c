//! Dashboard sign-in with OpenID Connect: the authorization code flow with PKCE (S256),
//! `state` and `nonce`. The provider's discovery document
//! (`{issuer}/.well-known/openid-configuration`) is kept for five minutes (so a stranger
//! opening the sign-in URL in a loop does not make the collector hammer the provider), and
//! its JWKS is read at each callback, so key rotation needs nothing here. The ID token is
//! verified by [`jwt`]; the person's role comes from a groups claim mapped in configuration.
//! What a login in progress must match is kept by the caller (the HTTP edge stores it in the
//! database, bound to a cookie, so any replica can finish it).

pub mod fetch;
pub mod jwt;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::domain::Role;

/// The path the provider sends the browser back to; `redirect_url` must name it.
pub const CALLBACK_PATH: &str = "/ui/oidc/callback";

/// The `serve --oidc-*` settings, checked (see [`OidcConfig::check`]).
#[derive(Clone)]
pub struct OidcConfig {
    /// Exactly as the provider spells it in its discovery document and ID tokens.
    pub issuer: String,
    pub client_id: String,
    /// None for a public client (PKCE alone).
    pub client_secret: Option<String>,
    /// `https://HOST:PORT/ui/oidc/callback`, as registered at the provider.
    pub redirect_url: String,
    /// Space-separated scopes asked for (`openid` always among them).
    pub scopes: String,
    /// The ID token claim listing the person's groups.
    pub groups_claim: String,
    pub admin_groups: Vec<String>,
    pub viewer_groups: Vec<String>,
    /// A plain-http provider on loopback is allowed (tests).
    pub allow_http: bool,
    /// CA certificates (DER) the provider's TLS certificate must chain to.
    pub roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("admin_groups", &self.admin_groups)
            .field("viewer_groups", &self.viewer_groups)
            .field("allow_http", &self.allow_http)
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl OidcConfig {
    /// Refuses a configuration that cannot work or would be unsafe, before the collector
    /// starts: a plain-http issuer (unless allowed, and then on loopback only), a redirect
    /// that is not this collector's https callback, no group mapped to any role.
    pub fn check(&self) -> Result<(), String> {
        fetch::check_url(&self.issuer, self.allow_http).map_err(|e| format!("--oidc-issuer {e}"))?;
        let redirect: hyper::Uri =
            self.redirect_url.parse().map_err(|e| format!("--oidc-redirect-url is not a URL: {e}"))?;
        if redirect.scheme_str() != Some("https") || redirect.path() != CALLBACK_PATH {
            return Err(format!(
                "--oidc-redirect-url must be https://HOST:PORT{CALLBACK_PATH} (the collector's HTTP listener), not {:?}",
                self.redirect_url
            ));
        }
        if self.client_id.is_empty() {
            return Err("--oidc-client-id is empty".into());
        }
        if !self.scopes.split(' ').any(|s| s == "openid") {
            return Err("--oidc-scopes must include openid".into());
        }
        if self.admin_groups.is_empty() && self.viewer_groups.is_empty() {
            return Err("map at least one group to a role: --oidc-admin-group or --oidc-viewer-group".into());
        }
        Ok(())
    }

    /// The role a person in `groups` gets: admin if any is an admin group, else viewer if
    /// any is a viewer group, else none (refused).
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        let any = |mapped: &[String]| groups.iter().any(|g| mapped.contains(g));
        if any(&self.admin_groups) {
            Some(Role::Admin)
        } else if any(&self.viewer_groups) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

/// What a sign-in must match when the browser comes back.
#[derive(Debug, Clone)]
pub struct Login {
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// `email`, else `preferred_username`, else the subject.
    pub email: String,
    pub groups: Vec<String>,
}

/// Why a sign-in could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be used: {0}")]
    Provider(String),
    #[error("the identity provider refused the code: {0}")]
    Token(String),
    #[error(transparent)]
    IdToken(#[from] jwt::IdTokenError),
    #[error("random number generator failed")]
    Random,
}

/// How long a discovery document is reused.
const DISCOVERY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The endpoints a discovery document names.
#[derive(Debug)]
struct Discovery {
    authorization: String,
    token: String,
    jwks: String,
    /// The provider accepts `client_secret_basic` (the default when it does not say).
    basic_auth: bool,
}

/// A configured provider.
pub struct Oidc {
    pub config: OidcConfig,
    client: fetch::Client,
    discovered: std::sync::Mutex<Option<(std::time::Instant, Arc<Discovery>)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("config", &self.config).finish()
    }
}

fn random_b64(n: usize) -> Result<String, OidcError> {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| OidcError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// The S256 code challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

impl Oidc {
    pub fn new(config: OidcConfig) -> anyhow::Result<Oidc> {
        config.check().map_err(anyhow::Error::msg)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in &config.roots {
            // A system bundle may hold certificates rustls cannot use; the rest still count.
            if let Err(e) = roots.add(rustls::pki_types::CertificateDer::from(c.clone())) {
                tracing::debug!(error = %e, "A certificate of --oidc-ca is skipped.");
            }
        }
        let client = fetch::Client::new(roots, config.allow_http)?;
        Ok(Oidc { config, client, discovered: Default::default() })
    }

    async fn discover(&self) -> Result<Arc<Discovery>, OidcError> {
        let cached = self.discovered.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, d)) = cached.filter(|(at, _)| at.elapsed() < DISCOVERY_TTL) {
            return Ok(d);
        }
        let d = Arc::new(self.read_discovery().await?);
        *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), d.clone()));
        Ok(d)
    }

    async fn read_discovery(&self) -> Result<Discovery, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let d = self.client.get_json(&url).await.map_err(|e| OidcError::Provider(e.0))?;
        // Core: the document's issuer is exactly the one configured (no mix-up of providers).
        if d.get("issuer").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(OidcError::Provider(format!("{url} names another issuer: {:?}", d.get("issuer"))));
        }
        let endpoint = |name: &str| {
            let u = d
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| OidcError::Provider(format!("{url} has no {name}")))?;
            fetch::check_url(u, self.config.allow_http).map_err(OidcError::Provider)?;
            Ok::<_, OidcError>(u.to_owned())
        };
        let basic_auth = d
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
        Ok(Discovery {
            authorization: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
            jwks: endpoint("jwks_uri")?,
            basic_auth,
        })
    }

    /// Starts a sign-in: the provider URL to send the browser to, and what the callback
    /// must match.
    pub async fn begin(&self) -> Result<(String, Login), OidcError> {
        let d = self.discover().await?;
        let login = Login { state: random_b64(32)?, nonce: random_b64(32)?, verifier: random_b64(32)? };
        let query = fetch::form(&[
            ("response_type", "code"),
            ("client_id", &self.config.client_id),
            ("redirect_uri", &self.config.redirect_url),
            ("scope", &self.config.scopes),
            ("state", &login.state),
            ("nonce", &login.nonce),
            ("code_challenge", &challenge(&login.verifier)),
            ("code_challenge_method", "S256"),
        ]);
        let sep = if d.authorization.contains('?') { '&' } else { '?' };
        Ok((format!("{}{sep}{query}", d.authorization), login))
    }

    /// Finishes a sign-in: redeems `code` with the PKCE verifier, verifies the ID token and
    /// reads who it names. `now` is seconds since the epoch.
    pub async fn finish(&self, code: &str, login: &Login, now: i64) -> Result<Identity, OidcError> {
        let d = self.discover().await?;
        let c = &self.config;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_url.as_str()),
            ("code_verifier", login.verifier.as_str()),
        ];
        let basic = match &c.client_secret {
            Some(secret) if d.basic_auth => Some((c.client_id.as_str(), secret.as_str())),
            Some(secret) => {
                pairs.extend([("client_id", c.client_id.as_str()), ("client_secret", secret.as_str())]);
                None
            }
            None => {
                pairs.push(("client_id", c.client_id.as_str()));
                None
            }
        };
        let (status, answer) = self
            .client
            .post_form(&d.token, fetch::form(&pairs), basic)
            .await
            .map_err(|e| OidcError::Provider(e.0))?;
        if !(200..300).contains(&status) {
            let e = answer.get("error").and_then(Value::as_str).unwrap_or("no error code");
            let why = answer.get("error_description").and_then(Value::as_str).unwrap_or("");
            return Err(OidcError::Token(format!("HTTP {status}: {e} {why}").trim_end().to_owned()));
        }
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Token("the token endpoint returned no id_token".into()))?;
        let jwks = self.client.get_json(&d.jwks).await.map_err(|e| OidcError::Provider(e.0))?;
        let expect = jwt::Expected { issuer: &c.issuer, client_id: &c.client_id, nonce: &login.nonce, now };
        let claims = jwt::verify(id_token, &jwks, &expect)?;
        Ok(identity(&claims, &c.groups_claim))
    }
}

/// Subject, shown address and groups from verified claims. A groups claim may be a list or,
/// from some providers with one group, a single string.
pub fn identity(claims: &Map<String, Value>, groups_claim: &str) -> Identity {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let subject = text("sub").unwrap_or_default();
    let email = text("email").or_else(|| text("preferred_username")).unwrap_or_else(|| subject.clone());
    let groups = match claims.get(groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Identity { subject, email, groups }
}

#[cfg(test)]
mod tests;
