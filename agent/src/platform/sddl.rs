//! The security descriptors the agent's private directories get on Windows, as SDDL the
//! `windows` module applies; portable so they are tested everywhere.

/// Owner Administrators (`BA`); protected (`P`), auto-inherited (`AI`) DACL; full access
/// (`FA`) for SYSTEM (`SY`) and Administrators, inherited by files (`OI`) and directories
/// (`CI`). SIDs by alias, not names: names are localized ("Administratoren") and a local
/// account could be called "Administrators".
pub const PRIVATE_DIR_SDDL: &str = "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// An empty, unprotected DACL: the object keeps only what its directory passes down.
pub const INHERIT_ONLY_SDDL: &str = "D:AI";

/// The ACEs of an SDDL string's DACL, `(A;OICI;FA;;;SY)` each (portable; tests and audits).
pub fn aces(sddl: &str) -> Vec<&str> {
    let Some(d) = sddl.find("D:") else { return Vec::new() };
    let dacl = &sddl[d..];
    let dacl = dacl.find("S:").map_or(dacl, |s| &dacl[..s]);
    let mut out = Vec::new();
    let mut rest = dacl;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else { break };
        out.push(&rest[open..open + close + 1]);
        rest = &rest[open + close + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_descriptor_names_system_and_administrators_only() {
        assert!(PRIVATE_DIR_SDDL.starts_with("O:BA"), "owned by Administrators");
        assert!(PRIVATE_DIR_SDDL.contains("D:P"), "protected: nothing inherited from ProgramData");
        assert_eq!(aces(PRIVATE_DIR_SDDL), ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)"]);
        assert!(aces(INHERIT_ONLY_SDDL).is_empty() && !INHERIT_ONLY_SDDL.contains("D:P"));
        assert_eq!(
            aces("O:BAG:SYD:(A;;FA;;;WD)S:(AU;;FA;;;WD)"),
            ["(A;;FA;;;WD)"],
            "the SACL is not the DACL"
        );
    }
}
