//! The whole-system tests, one module per area, in one binary.

mod activity;
mod api;
mod approvals;
mod catalog;
mod clients;
mod contract;
mod daemon;
mod dashboard;
mod export;
mod faults;
mod golden;
mod hardening;
mod offboarding;
mod oidc;
mod replicas;
mod revoke;
mod scim;
mod story;
mod system;
mod tidy;
#[cfg(feature = "tpm")]
mod tpm;
