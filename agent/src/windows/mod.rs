//! Windows system APIs the agent needs, behind `cfg(windows)`: the registry, DACLs and
//! Terminal Services sessions. The FFI is here, in `keys/pcp.rs` and in `winservice.rs`.

pub mod accounts;
pub mod dacl;
pub mod registry;
pub mod sessions;
