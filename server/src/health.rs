//! `grpc.health.v1.Health` on the agent listener, for load balancers and Kubernetes probes:
//! the collector is `SERVING` while its store answers, `NOT_SERVING` when the database does
//! not (within [`PROBE_TIMEOUT`]) and from the moment shutdown begins, so a balancer drains
//! a replica before it stops taking streams.
//!
//! The overall status (service `""`) and each gRPC service's own name report the same
//! thing: every service needs the store.

use std::time::Duration;

use sightline_proto::pb::{enrollment_server::EnrollmentServer, telemetry_server::TelemetryServer};
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::ingest::{enrollment::EnrollmentService, telemetry::TelemetryService};
use crate::state::{AppState, blocking};

/// A store that takes longer than this to answer `SELECT 1` is not ready.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The names the health service answers for.
pub fn services() -> [&'static str; 3] {
    [
        "",
        <TelemetryServer<TelemetryService> as NamedService>::NAME,
        <EnrollmentServer<EnrollmentService> as NamedService>::NAME,
    ]
}

/// Probes the store every `every` and reports the result until `stop` is cancelled; then
/// reports `NOT_SERVING` for good.
pub async fn watch(app: AppState, reporter: HealthReporter, every: Duration, stop: CancellationToken) {
    let mut last = None;
    loop {
        let status = probe(&app).await;
        if last != Some(status) {
            match status {
                ServingStatus::Serving => tracing::info!("Health: serving (the store answers)."),
                _ => tracing::warn!("Health: not serving (the store does not answer)."),
            }
            set(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
    }
    set(&reporter, ServingStatus::NotServing).await;
}

async fn probe(app: &AppState) -> ServingStatus {
    let ping = blocking(&app.store, |s| s.ping());
    match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
        Ok(Ok(Ok(()))) => ServingStatus::Serving,
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "Health probe: the store refused.");
            ServingStatus::NotServing
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Health probe failed.");
            ServingStatus::NotServing
        }
        Err(_) => ServingStatus::NotServing,
    }
}

async fn set(reporter: &HealthReporter, status: ServingStatus) {
    for name in services() {
        reporter.set_service_status(name, status).await;
    }
}
