//! What a command writes: its output on stdout, and who ran it for the record.

use std::io::Write;

use anyhow::Context;

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing output"),
    }
}

/// Writes `v` as the API serves it, pretty-printed, one document per command.
pub(super) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    print(&(serde_json::to_string_pretty(v)? + "\n"))
}

/// Who runs a CLI change, for the record.
pub(super) fn cli_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .map_or_else(|_| "cli".to_owned(), |u| format!("cli:{u}"))
}
