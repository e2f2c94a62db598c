//! Raw secrets and their keyed fingerprints.
//!
//! A [`Secret`] is the only type that holds a credential's value. It cannot be printed
//! (`Debug` is redacted, there is no `Display`), is wiped on drop, and the only thing the
//! rest of the agent can get out of it is a [`Fingerprinter::fingerprint`].

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

/// A raw credential value. Never leaves this process, never reaches a log.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The raw value, for classification and fingerprinting only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} chars>)", self.0.chars().count())
    }
}

/// Computes token fingerprints: HMAC-SHA256 under the org fingerprint key, hex, truncated
/// to 128 bits. The same token has the same fingerprint on every device of one org, and an
/// unrelated fingerprint anywhere else, so a fingerprint reveals nothing without the key.
pub struct Fingerprinter {
    key: hmac::Key,
    /// Whether the key is the org's (after enrollment) or a local one.
    pub org_keyed: bool,
}

impl Fingerprinter {
    pub fn new(key: &[u8], org_keyed: bool) -> Fingerprinter {
        Fingerprinter { key: hmac::Key::new(hmac::HMAC_SHA256, key), org_keyed }
    }

    pub fn fingerprint(&self, secret: &Secret) -> String {
        let tag = hmac::sign(&self.key, secret.expose().as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fingerprinter").field("org_keyed", &self.org_keyed).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-live-very-secret-value");
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn fingerprints_depend_on_key_and_value() {
        let a = Fingerprinter::new(b"org-key-a", true);
        let b = Fingerprinter::new(b"org-key-b", true);
        let t = Secret::new("token-1");
        assert_eq!(a.fingerprint(&t), a.fingerprint(&Secret::new("token-1")));
        assert_ne!(a.fingerprint(&t), b.fingerprint(&t));
        assert_ne!(a.fingerprint(&t), a.fingerprint(&Secret::new("token-2")));
        assert_eq!(a.fingerprint(&t).len(), 32);
    }
}
