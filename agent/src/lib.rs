//! The Sightline endpoint agent.
//!
//! Data flow: [`detect`] (pure detectors over a [`fsview::Tree`] and the [`catalog`]) →
//! [`scan`] (one full scan) → [`convert`] (findings → wire observations) → [`outbox`]
//! (numbered, signed by [`keys`], hash-chained, fsync'd) → [`deliver`] (mutual-TLS gRPC
//! stream, deleted on ack). [`enroll`] obtains the identity the stream uses; [`state`] owns
//! every file the agent writes.

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
