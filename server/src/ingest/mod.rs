//! The gRPC edge: enrollment and telemetry services, and the only code that sees `pb`
//! types besides the agent's transport.
//!
//! Every refusal maps to a gRPC status with a message that says what was wrong; detail
//! beyond that goes to the log. Nothing from a refused request is stored.

pub mod admission;
pub mod convert;
pub mod directives;
pub mod enrollment;
pub mod telemetry;
pub mod writer;

use std::sync::Arc;

use crate::pki::Pki;
use crate::store::Store;

/// What both services share.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub pki: Arc<Pki>,
    pub config: IngestConfig,
    /// Approved connectors, identity rules (`DATA_DIR/policy.toml`).
    pub policy: Arc<crate::policy::Policy>,
    /// Open streams by device, for directive delivery.
    pub dispatch: Arc<directives::Dispatch>,
    /// The dashboard's whole-fleet snapshot.
    pub views: Arc<crate::views::Cache>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Group commit of verified batches (`writer`).
    pub writer: writer::Writer,
    /// Cancelled when the collector begins to shut down: open streams end (agents reconnect,
    /// to another replica if there is one) so the server can finish.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// How strict ingest is; set from `serve` flags.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Enrollments and streams below this assurance are refused.
    pub require_assurance: Assurance,
    /// How often an open stream re-checks that its device is still enrolled and not revoked.
    pub revocation_poll: std::time::Duration,
    /// How often the collector looks for directives issued elsewhere (the `revoke` command,
    /// another replica) and for revoked connectors that showed up again.
    pub directive_poll: std::time::Duration,
    /// How long a new stream may take to send its signed claims.
    pub claims_timeout: std::time::Duration,
    /// DER certificates that EK certificates must chain to (`--ek-roots`); empty: no TPM
    /// device can be more than `hardware_unattested`.
    pub ek_roots: Vec<Vec<u8>>,
    /// SHA-256 hex of EK public areas trusted without a certificate (`--ek-allow`).
    pub ek_allowlist: Vec<String>,
    /// At most this many telemetry streams open at once (`--max-streams`).
    pub max_streams: usize,
    /// Open connections on the gRPC listener (`--max-connections`): the streams plus
    /// enrollments and reconnects overlapping them.
    pub max_connections: usize,
    /// Open connections on the HTTP listener (`--http-max-connections`).
    pub http_max_connections: usize,
    /// New telemetry streams admitted per second (`--stream-rate`); the rest are told to
    /// slow down.
    pub stream_rate: f64,
    /// How long a turned-away agent waits, before jitter (up to as much again).
    pub slow_down: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            require_assurance: Assurance::Software,
            revocation_poll: std::time::Duration::from_secs(5),
            directive_poll: std::time::Duration::from_secs(2),
            claims_timeout: std::time::Duration::from_secs(30),
            ek_roots: Vec::new(),
            ek_allowlist: Vec::new(),
            max_streams: 20_000,
            max_connections: 23_000,
            http_max_connections: 1_024,
            stream_rate: 500.0,
            slow_down: std::time::Duration::from_secs(10),
        }
    }
}

/// Assurance levels, weakest first (design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assurance {
    Software,
    HardwareUnattested,
    HardwareAttested,
}

impl Assurance {
    pub fn as_str(self) -> &'static str {
        match self {
            Assurance::Software => "software",
            Assurance::HardwareUnattested => "hardware_unattested",
            Assurance::HardwareAttested => "hardware_attested",
        }
    }

    pub fn parse(s: &str) -> Option<Assurance> {
        [Assurance::Software, Assurance::HardwareUnattested, Assurance::HardwareAttested]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// Whether a device recorded at `level` meets this requirement.
    pub fn allows(self, level: &str) -> bool {
        Assurance::parse(level).is_some_and(|l| l >= self)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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
