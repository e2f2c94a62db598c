//! The collector's integration tests, one module per area, in one binary.

mod cli;
mod store_conformance;
