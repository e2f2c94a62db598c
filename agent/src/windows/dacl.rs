//! Explicit DACLs.
