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

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<crate::store::Result<T>, tonic::Status> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(|e| {
        tracing::error!(error = %e, "Store task failed.");
        tonic::Status::internal("collector storage failure")
    })
}

/// A failure behind the edge, as the agent sees it: `UNAVAILABLE` (retry later, with
/// backoff) when the database cannot be reached, `INTERNAL` otherwise; the detail goes to
/// the log only.
pub(crate) fn internal(e: impl std::fmt::Display + std::any::Any) -> tonic::Status {
    let unavailable = (&e as &dyn std::any::Any)
        .downcast_ref::<crate::store::StoreError>()
        .is_some_and(crate::store::StoreError::is_unavailable);
    if unavailable {
        tracing::warn!(error = %e, "Storage unavailable; agents are told to retry.");
        return tonic::Status::unavailable("collector storage is unavailable; retry later");
    }
    tracing::error!(error = %e, "Storage error.");
    tonic::Status::internal("collector storage failure")
}
