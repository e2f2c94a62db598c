//! Application state: the one value every edge (gRPC, HTTP API, SCIM, dashboard) and
//! background task is handed. It sits below the edges so none of them depends on another.

use std::sync::Arc;

use crate::pki::Pki;
use crate::store::Store;

/// The application: what the gRPC services, the HTTP API, SCIM and the dashboard share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub pki: Arc<Pki>,
    pub config: crate::config::IngestConfig,
    /// Approved connectors, identity rules (`DATA_DIR/policy.toml`).
    pub policy: Arc<crate::policy::Policy>,
    /// Open streams by device, for directive delivery.
    pub dispatch: Arc<crate::directives::Dispatch>,
    /// The detection catalog installed for agents (`DATA_DIR/catalog.pb`), as streams follow it.
    pub catalog: Arc<crate::catalog::served::Feed>,
    /// The dashboard's whole-fleet snapshot.
    pub views: Arc<crate::views::Cache>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Group commit of verified batches (`writer`).
    pub writer: crate::writer::Writer,
    /// Dashboard sign-in through an OpenID provider (`serve --oidc-*`), when configured.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// Cancelled when the collector begins to shut down: open streams end (agents reconnect,
    /// to another replica if there is one) so the server can finish.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// A store call's blocking task panicked or was cancelled: nothing is known of its outcome.
#[derive(Debug, thiserror::Error)]
#[error("store task failed: {0}")]
pub struct TaskFailed(#[from] tokio::task::JoinError);

/// Runs a store call on a blocking thread, as every edge must: the store is synchronous and
/// an async worker thread blocked on the database would stall every connection it serves.
pub async fn blocking<T, E>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>, TaskFailed>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(store.as_ref())).await?)
}

/// What an edge tells its caller about a failure behind it; the detail goes to the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot be reached: retry later, with backoff.
    Unavailable,
    /// Anything else.
    Internal,
}

impl Failure {
    /// Classifies `e` (a store error, possibly inside an `anyhow::Error`, or anything else)
    /// and logs it once, with `edge` naming who failed.
    pub fn of(e: &(impl std::fmt::Display + std::any::Any), edge: &'static str) -> Failure {
        let any = e as &dyn std::any::Any;
        let store = any.downcast_ref::<crate::store::StoreError>().or_else(|| {
            any.downcast_ref::<anyhow::Error>().and_then(|a| a.downcast_ref::<crate::store::StoreError>())
        });
        if store.is_some_and(crate::store::StoreError::is_unavailable) {
            tracing::warn!(error = %e, edge, "Storage unavailable; the caller is told to retry.");
            Failure::Unavailable
        } else {
            tracing::error!(error = %e, edge, "Request failed.");
            Failure::Internal
        }
    }

    /// The caller's message, the same on every edge.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Unavailable => "collector storage is unavailable; retry later",
            Failure::Internal => "collector storage failure",
        }
    }
}
