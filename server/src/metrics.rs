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

    /// The exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Only a String is written to, which cannot fail; say so if it ever does.
            tracing::error!(error = %e, "Encoding metrics failed.");
        }
        match format {
            Format::OpenMetrics => out,
            Format::Classic => classic(&out),
        }
    }
}

/// The two text expositions a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`: what Prometheus prefers, and our default.
    OpenMetrics,
    /// `text/plain; version=0.0.4`: the classic format older scrapers and agents parse.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: the classic one only when `text/plain` is
    /// acceptable and ranked above OpenMetrics (which an absent header, `*/*`, or a tie
    /// leaves as the default).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::OpenMetrics };
        let (mut open, mut plain) = (None::<f32>, None::<f32>);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)));
            let Some(q) = q else { continue };
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut open,
                "text/plain" => &mut plain,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
        }
        match (open, plain) {
            (o, Some(p)) if p > 0.0 && p > o.unwrap_or(0.0) => Format::Classic,
            _ => Format::OpenMetrics,
        }
    }
}

/// OpenMetrics text rewritten in the classic 0.0.4 format: a counter's family is named by
/// its `_total` sample, `# UNIT` and `# EOF` go, and exemplars are cut from samples.
fn classic(open: &str) -> String {
    use std::collections::HashMap;
    let mut renamed: HashMap<&str, String> = HashMap::new();
    // First pass: which families need a new name (TYPE lines may follow HELP lines).
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            match kind {
                "counter" => {
                    renamed.insert(name, format!("{name}_total"));
                }
                "info" => {
                    renamed.insert(name, format!("{name}_info"));
                }
                _ => {}
            }
        }
    }
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" => "gauge",
                _ => "untyped",
            };
            let name = renamed.get(name).map_or(name, String::as_str);
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = renamed.get(name).map_or(name, String::as_str);
            // OpenMetrics escapes quotes in help text; the classic format does not.
            out.push_str(&format!("# HELP {name} {}\n", help.replace("\\\"", "\"")));
        } else {
            out.push_str(without_exemplar(line));
            out.push('\n');
        }
    }
    out
}

/// A sample line without its exemplar (` # {…} value` after the value), which the classic
/// format does not know. Quoted label values may hold anything, so they are skipped whole.
fn without_exemplar(line: &str) -> &str {
    let (mut quoted, mut escaped, mut depth) = (false, false, 0u32);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth = depth.saturating_sub(1),
            ' ' if !quoted && depth == 0 && line[i..].starts_with(" # ") => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_is_chosen_only_when_ranked_above_openmetrics() {
        use Format::*;
        for (accept, want) in [
            (None, OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some("text/plain; version=0.0.4"), Classic),
            (Some("text/plain;version=0.0.4;q=0.3,*/*;q=0.2"), Classic),
            // What Prometheus 2.x sends: OpenMetrics first.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text; q=0.2, text/plain; q=0.9"), Classic),
            (Some("TEXT/PLAIN"), Classic),
            (Some("text/plain;q=0"), OpenMetrics),
            (Some("text/plain;q=nonsense"), OpenMetrics),
            (Some("application/json"), OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn openmetrics_is_rewritten_to_the_classic_format() {
        let open = "# HELP sightline_batches_ingested Signed \\\"batches\\\".\n\
                    # TYPE sightline_batches_ingested counter\n\
                    sightline_batches_ingested_total{outcome=\"a # b}\"} 3 # {trace=\"x\"} 1.0\n\
                    # HELP sightline_up Up.\n\
                    # TYPE sightline_up gauge\n\
                    # UNIT sightline_up seconds\n\
                    sightline_up 1\n\
                    # EOF\n";
        let want = "# HELP sightline_batches_ingested_total Signed \"batches\".\n\
                    # TYPE sightline_batches_ingested_total counter\n\
                    sightline_batches_ingested_total{outcome=\"a # b}\"} 3\n\
                    # HELP sightline_up Up.\n\
                    # TYPE sightline_up gauge\n\
                    sightline_up 1\n";
        assert_eq!(classic(open), want);
    }
}
