//! The agent's integration tests, one module per area, in one binary.

mod activity;
mod activity_truth;
mod detect;
#[cfg(feature = "tpm")]
mod tpm;
