//! The last line of defence before findings leave the detectors: any AI key format found in
//! any reported text — a name, a version, a path, a JSON pointer, an error message — is
//! replaced by `[REDACTED]`. Detectors already redact where they expect secrets (command
//! lines, URLs); this catches what nobody expected, such as a key pasted into an extension's
//! name or quoted by a parser's error.

use super::redact::REDACTED;
use super::{Finding, ScanError};
use crate::catalog::Catalog;

/// Redacts key formats in every text field of `findings` and `errors`, in place.
pub(crate) fn scrub(catalog: &Catalog, findings: &mut [Finding], errors: &mut [ScanError]) {
    // Every key format, wherever it sits: glued to other text as well as on its own.
    let one = |s: &mut String| {
        if catalog.key_anywhere.is_match(s) {
            *s = catalog.key_anywhere.replace_all(s, REDACTED).into_owned();
        }
    };
    let opt = |s: &mut Option<String>| {
        if let Some(s) = s {
            one(s);
        }
    };
    for f in findings {
        match f {
            Finding::Process(p) => {
                one(&mut p.name);
                opt(&mut p.exe);
                opt(&mut p.user);
            }
            Finding::App(a) => {
                one(&mut a.path);
                opt(&mut a.version);
                opt(&mut a.bundle_id);
                opt(&mut a.user);
                if let Some(by) = &mut a.authorized_by {
                    one(&mut by.account);
                    opt(&mut by.org);
                }
            }
            Finding::Extension(e) => {
                one(&mut e.name);
                one(&mut e.profile);
                one(&mut e.path);
                opt(&mut e.version);
                opt(&mut e.user);
                e.signals.iter_mut().for_each(one);
                e.permissions.iter_mut().for_each(one);
                e.host_permissions.iter_mut().for_each(one);
            }
            Finding::Token(t) => {
                one(&mut t.path);
                opt(&mut t.locator);
                opt(&mut t.mcp_server);
                opt(&mut t.user);
                if let Some(by) = &mut t.authorized_by {
                    one(&mut by.account);
                    opt(&mut by.org);
                }
            }
            Finding::McpServer(m) => {
                one(&mut m.name);
                one(&mut m.path);
                opt(&mut m.command);
                opt(&mut m.url);
                opt(&mut m.user);
            }
        }
    }
    for e in errors {
        one(&mut e.path);
        one(&mut e.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::ExtensionFinding;

    #[test]
    fn a_key_anywhere_in_a_finding_or_error_is_redacted() {
        let c = Catalog::builtin().unwrap();
        let key = format!(
            "sk-ant-api03-{}AA",
            "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4Cd5Ef6Gh7Ij8Kl9Mn0Op1Qr2St3Uv4Wx5Yz6Ab7Cd8Ef9Gh0Ij1Kl2Mn3Op4Qr5St"
        );
        let mut findings = vec![Finding::Extension(ExtensionFinding {
            tool: None,
            user: Some("alice".into()),
            browser: "chrome".into(),
            profile: "Default".into(),
            extension_id: "abcdefghijklmnopabcdefghijklmnop".into(),
            name: format!("Helper {key}"),
            version: Some(key.clone()),
            enabled: Some(true),
            path: "/home/alice/x".into(),
            signals: vec![key.clone()],
            permissions: vec![],
            host_permissions: vec![],
        })];
        let mut errors = vec![ScanError::new("/home/alice/y".to_owned(), format!("malformed: {key}"))];
        scrub(&c, &mut findings, &mut errors);
        let text = format!("{findings:?} {errors:?}");
        assert!(!text.contains(&key), "{text}");
        assert!(text.contains("Helper [REDACTED]"), "{text}");
        // Glued to other text (found by the fuzzer in a URL's query): still redacted.
        let mut glued = vec![ScanError::new(format!("https://h/x?regi{key}=eu"), String::new())];
        scrub(&c, &mut [], &mut glued);
        assert!(!format!("{glued:?}").contains(&key), "{glued:?}");
    }
}
