//! The gRPC edge: enrollment and telemetry services, and the only code that sees `pb`
//! types besides the agent's transport.
//!
//! Every refusal maps to a gRPC status with a message that says what was wrong; detail
//! beyond that goes to the log. Nothing from a refused request is stored.

pub mod admission;
pub mod convert;
pub mod enrollment;
pub mod telemetry;

use std::sync::Arc;

use crate::store::Store;

/// Runs a store call on a blocking thread (`state::blocking`); a task that failed is the
/// collector's failure, not the agent's.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<crate::store::Result<T>, tonic::Status> {
    crate::state::blocking(store, f).await.map_err(internal)
}

/// A failure behind the edge, as the agent sees it: `UNAVAILABLE` (retry later, with
/// backoff) when the database cannot be reached, `INTERNAL` otherwise; the detail goes to
/// the log only. The same classification and words as the HTTP edge (`state::Failure`).
pub(crate) fn internal(e: impl std::fmt::Display + std::any::Any) -> tonic::Status {
    let f = crate::state::Failure::of(&e, "grpc");
    match f {
        crate::state::Failure::Unavailable => tonic::Status::unavailable(f.message()),
        crate::state::Failure::Internal => tonic::Status::internal(f.message()),
    }
}
