//! The Sightline endpoint agent.
//!
//! Data flow of the daemon ([`run`]): timers, [`watch`] events and collector directives
//! schedule looks by [`observe`]. A look runs [`detect`] (detectors over [`fsview::Tree`]s,
//! driven by the [`catalog`]; the live process table and login sessions), turns what it
//! found into wire items with [`convert`] (the only builder of `pb::Observation`) and diffs
//! them against the last known view in [`inventory`] (a resync reports everything, other
//! looks only what changed) → [`recorder`]: recorded in the [`spool`] (fsync'd), sealed on
//! demand into [`outbox`] batches (numbered, signed by [`keys`], hash-chained) → [`deliver`]
//! (one mutual-TLS gRPC stream: device claims from facts the caller supplies, presented
//! batches, deleted on ack). Directives arrive on that stream and [`enforce`] handles them
//! in a look; their outcome is recorded like any other observation.
//!
//! The `scan` command is the one-shot path: [`scan`] (one full scan) → [`report`] (JSON or
//! a table). [`enroll`] obtains the identity the stream uses; [`state`] owns every file the
//! agent writes. The OS FFI (`macos`, `windows`) hands plain values to [`platform`], where
//! what they mean is decided and tested on every platform.
//!
//! Top-level modules depend on each other without cycles: the OS layers at the bottom,
//! then state and keys, the catalog and detection, recording, and the daemon on top.

// Library code never writes to the terminal: output belongs to the binary and logs to
// `tracing`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod acl;
pub mod backoff;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod damage;
pub mod deliver;
pub mod detect;
pub mod enforce;
pub mod enroll;
pub mod fsview;
pub mod govern;
pub mod inventory;
pub mod keys;
#[cfg(target_os = "macos")]
pub mod macos;
pub mod observe;
pub mod outbox;
pub mod platform;
pub mod plist_bounded;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scan;
pub mod secret;
pub mod shutdown;
pub mod spool;
pub mod state;
pub mod transport;
pub mod watch;
#[cfg(windows)]
pub mod windows;
#[cfg(windows)]
pub mod winservice;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;

    /// A symbolic link at `link` pointing at `target` (relative targets as written). On
    /// Windows the tests that call this are ignored where links cannot be made (Wine 8;
    /// Windows without the privilege), so a failure here is a real one.
    pub(crate) fn symlink(target: &Path, link: &Path) {
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, link).unwrap();
        #[cfg(windows)]
        {
            let dir = link.parent().map_or(target.to_owned(), |p| p.join(target)).is_dir();
            if dir {
                std::os::windows::fs::symlink_dir(target, link).unwrap();
            } else {
                std::os::windows::fs::symlink_file(target, link).unwrap();
            }
        }
    }
}
