//! The Sightline wire contract.
//!
//! - [`pb`]: the protobuf and gRPC types generated from `proto/sightline/v1/*.proto`.
//! - [`envelope`]: how a batch is signed, verified and chained. Agent and collector both
//!   use this module, so there is exactly one definition of what a valid batch is.
//! - [`directive`]: how a collector directive is signed and what makes one acceptable.
//! - [`catalog`]: how a detection catalog update is signed and verified.
//! - [`p256`]: the few ECDSA P-256 helpers the envelope and enrollment share.
//! - [`activity`]: the bounds of an `ACTIVITY` report, held by the agent and the collector.
//!
//! Nothing else lives here: detection, storage and transport logic belong to the crates
//! that use the contract.

// Library code never writes to the terminal: output belongs to the binaries and logs to
// `tracing`, so an embedding program (a test, a benchmark) decides where text goes.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod activity;
pub mod catalog;
pub mod directive;
pub mod envelope;
pub mod p256;

/// Generated protobuf and gRPC types for `sightline.v1`.
#[allow(unreachable_pub, unused_qualifications, clippy::all, reason = "generated code")]
pub mod pb {
    tonic::include_proto!("sightline.v1");

    /// The encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sightline_descriptor.bin"));
}
