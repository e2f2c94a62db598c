//! The bounds of an `ACTIVITY` report (`ActivityItem`): the agent holds a session's tally to
//! them while reading a tool's records, and the collector holds every report to them again
//! on ingest, because a report is only as honest as the device that signed it. One
//! definition, so the two sides cannot drift.

/// Model names per session.
pub const MAX_MODELS: usize = 16;
/// MCP servers per session.
pub const MAX_MCP_SERVERS: usize = 64;
/// Tool names per MCP server.
pub const MAX_MCP_TOOLS: usize = 128;
/// Longest model, server or tool name; longer ones are not names.
pub const MAX_NAME: usize = 128;

/// A name worth keeping: short, printable ASCII, no whitespace. Anything else is not a name
/// a tool gave a model, server or tool, and is dropped rather than reported or stored.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_printable_and_unspaced() {
        assert!(is_name("claude-sonnet-4"));
        assert!(is_name(&"m".repeat(MAX_NAME)));
        assert!(!is_name(&"m".repeat(MAX_NAME + 1)));
        for bad in ["", "has space", "tab\there", "nul\0", "é"] {
            assert!(!is_name(bad), "{bad:?}");
        }
    }
}
