//! Serving configuration shared by the edges, validated before anything starts.

use crate::domain::Assurance;

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
    /// How often the offboarding playbook runs (`--offboarding-interval`).
    pub offboarding_poll: std::time::Duration,
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
    /// How often the gRPC health service probes the store.
    pub health_poll: std::time::Duration,
    /// Serve gRPC server reflection (`--grpc-reflection`): off unless asked, as it hands
    /// anyone who connects the whole contract.
    pub grpc_reflection: bool,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            require_assurance: Assurance::Software,
            revocation_poll: std::time::Duration::from_secs(5),
            directive_poll: std::time::Duration::from_secs(2),
            offboarding_poll: std::time::Duration::from_secs(60),
            claims_timeout: std::time::Duration::from_secs(30),
            ek_roots: Vec::new(),
            ek_allowlist: Vec::new(),
            max_streams: 20_000,
            max_connections: 23_000,
            http_max_connections: 1_024,
            stream_rate: 500.0,
            slow_down: std::time::Duration::from_secs(10),
            health_poll: std::time::Duration::from_secs(5),
            grpc_reflection: false,
        }
    }
}
