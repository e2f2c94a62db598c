//! The structures the Windows Platform Crypto Provider hands out, parsed portably so the
//! parsing is tested on Linux (the provider itself only runs on Windows).
//!
//! Filled in by the Windows key backend work.
