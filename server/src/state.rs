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
    /// The dashboard's whole-fleet snapshot.
    pub views: Arc<crate::views::Cache>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Group commit of verified batches (`writer`).
    pub writer: crate::writer::Writer,
    /// Cancelled when the collector begins to shut down: open streams end (agents reconnect,
    /// to another replica if there is one) so the server can finish.
    pub stopping: tokio_util::sync::CancellationToken,
}
