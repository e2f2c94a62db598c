//! Prometheus metrics (`GET /metrics` on the HTTP listener, viewer or admin token): what an
//! operator watches to know the collector keeps up. No per-device labels: a fleet of 50,000
//! must not become 50,000 series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Listener {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerReason {
    pub listener: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Sink {
    pub sink: String,
}

pub struct Metrics {
    registry: Registry,
    /// Agents with an attested stream open on this collector.
    pub connected: Gauge,
    /// Batches by outcome: stored, duplicate.
    pub batches: Family<Outcome, Counter>,
    pub observations: Counter,
    /// Refused batches and streams, by why.
    pub refused: Family<Reason, Counter>,
    /// From a batch arriving to its acknowledgement (verification and storage included).
    pub ingest_seconds: Histogram,
    /// Queued for an ingest lane, plus the group's transaction.
    pub store_seconds: Histogram,
    /// Batches per group commit (one transaction).
    pub group_batches: Histogram,
    pub directives_sent: Counter,
    /// Device-supplied times stored as the receive time instead (see `clock`).
    pub device_times_clamped: Counter,
    /// Older streams cut because their device opened a newer one.
    pub streams_replaced: Counter,
    /// Open connections, per listener (grpc, http).
    pub connections: Family<Listener, Gauge>,
    /// Connections the collector closed or never served, by listener and why.
    pub connections_dropped: Family<ListenerReason, Counter>,
    /// Failed accepts (out of file descriptors, …), per listener.
    pub accept_errors: Family<Listener, Counter>,
    /// Events not yet delivered, per export sink.
    pub export_backlog: Family<Sink, Gauge>,
    pub exported: Family<Sink, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("sightline"),
            connected: Gauge::default(),
            batches: Family::default(),
            observations: Counter::default(),
            refused: Family::default(),
            // 100 µs … ~52 s: a reconnect storm's backlog must land in a bucket, not past them.
            ingest_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 20)),
            store_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 20)),
            // 1 … 128.
            group_batches: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            directives_sent: Counter::default(),
            device_times_clamped: Counter::default(),
            streams_replaced: Counter::default(),
            connections: Family::default(),
            connections_dropped: Family::default(),
            accept_errors: Family::default(),
            export_backlog: Family::default(),
            exported: Family::default(),
        };
        m.registry.register(
            "connected_agents",
            "Agents with an attested telemetry stream open",
            m.connected.clone(),
        );
        m.registry.register("batches_ingested", "Signed batches accepted, by outcome", m.batches.clone());
        m.registry.register("observations_ingested", "Observations stored", m.observations.clone());
        m.registry.register(
            "verification_failures",
            "Batches and streams refused, by reason",
            m.refused.clone(),
        );
        m.registry.register(
            "ingest_latency_seconds",
            "Batch received to acknowledged",
            m.ingest_seconds.clone(),
        );
        m.registry.register(
            "store_latency_seconds",
            "Queued for an ingest lane, then the group's transaction",
            m.store_seconds.clone(),
        );
        m.registry.register(
            "ingest_group_batches",
            "Batches stored per transaction (group commit)",
            m.group_batches.clone(),
        );
        m.registry.register(
            "directives_sent",
            "Directives written to agent streams",
            m.directives_sent.clone(),
        );
        m.registry.register(
            "device_times_clamped",
            "Device-supplied times outside the plausible window, stored as the receive time",
            m.device_times_clamped.clone(),
        );
        m.registry.register(
            "streams_replaced",
            "Telemetry streams ended because their device opened a newer one",
            m.streams_replaced.clone(),
        );
        m.registry.register("open_connections", "Open connections, per listener", m.connections.clone());
        m.registry.register(
            "connections_dropped",
            "Connections the collector closed (idle, unauthenticated too long) or held back (cap_reached), per listener and reason",
            m.connections_dropped.clone(),
        );
        m.registry.register(
            "accept_errors",
            "Failed accepts (file descriptors exhausted, …), per listener",
            m.accept_errors.clone(),
        );
        m.registry.register(
            "export_backlog_events",
            "Events waiting to be exported, per sink",
            m.export_backlog.clone(),
        );
        m.registry.register("exported_events", "Events delivered, per sink", m.exported.clone());
        m
    }
}

impl Metrics {
    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    pub fn observe(h: &Histogram, d: Duration) {
        h.observe(d.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Only a String is written to, which cannot fail; say so if it ever does.
            tracing::error!(error = %e, "Encoding metrics failed.");
        }
        out
    }
}
