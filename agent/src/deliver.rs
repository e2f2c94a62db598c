//! Delivery of the outbox over the telemetry stream (mutual TLS).
//!
//! Sends every pending batch in order and waits until the collector has acknowledged the
//! last one; each `Ack` deletes what it covers from the outbox. A refusal (bad signature,
//! broken chain, unknown device) ends delivery with the collector's reason.

use std::time::Duration;

use anyhow::Context;
use sightline_proto::pb::{self, telemetry_client::TelemetryClient};
use tokio_stream::StreamExt;

use crate::outbox::Outbox;
use crate::state::{Enrollment, StateDir};
use crate::transport;

/// What one delivery achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    pub batches: usize,
    pub through_seq: u64,
}

pub async fn deliver(
    state: &StateDir,
    enrollment: &Enrollment,
    outbox: &Outbox,
    timeout: Duration,
) -> anyhow::Result<Delivered> {
    let pending = outbox.pending()?;
    let Some(last) = pending.last().map(|p| p.last_seq) else {
        return Ok(Delivered::default());
    };
    let ca = state.read("ca.pem")?.context("ca.pem missing from the state dir; re-enroll")?;
    let cert = state.read("client.pem")?.context("client.pem missing from the state dir; re-enroll")?;
    let key = state.read("client.key")?.context("client.key missing from the state dir; re-enroll")?;
    let channel = transport::connect(&enrollment.server_url, &ca, Some((cert, key))).await?;
    let mut client = TelemetryClient::new(channel);

    let mut batches = Vec::with_capacity(pending.len());
    for p in &pending {
        batches.push(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Batch(outbox.load(p)?)) });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let sender = tokio::spawn(async move {
        for b in batches {
            if tx.send(b).await.is_err() {
                break;
            }
        }
        // Keep the request stream open until acks arrive; dropping tx would half-close it.
        tx.closed().await;
    });

    let result = tokio::time::timeout(timeout, async {
        let mut responses = client
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| anyhow::anyhow!("collector refused the stream: {}", transport::status_message(&s)))?
            .into_inner();
        let mut delivered = Delivered::default();
        while let Some(msg) = responses.next().await {
            let msg = msg.map_err(|s| {
                anyhow::anyhow!("collector refused a batch: {}", transport::status_message(&s))
            })?;
            match msg.msg {
                Some(pb::collector_message::Msg::Ack(ack)) => {
                    delivered.batches += outbox.ack(ack.through_seq)?;
                    delivered.through_seq = ack.through_seq;
                    tracing::debug!(through_seq = ack.through_seq, "Collector acknowledged.");
                    if ack.through_seq >= last {
                        return Ok(delivered);
                    }
                }
                Some(pb::collector_message::Msg::SlowDown(s)) => {
                    tracing::info!(
                        retry_after_ms = s.retry_after_ms,
                        "Collector asked the agent to slow down."
                    );
                }
                Some(pb::collector_message::Msg::Directive(_)) => {
                    tracing::info!("Directive received; this agent runs in report mode and takes no action.");
                }
                None => {}
            }
        }
        anyhow::bail!("collector closed the stream before acknowledging sequence {last}")
    })
    .await;
    sender.abort();
    match result {
        Ok(r) => r,
        Err(_) => anyhow::bail!("no acknowledgement for sequence {last} within {timeout:?}"),
    }
}
