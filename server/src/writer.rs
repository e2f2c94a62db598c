//! Group commit: verified batches from every stream go through a few writer lanes, and each
//! lane stores whatever has queued up meanwhile in one transaction (`Store::ingest_many`).
//!
//! Every acknowledgement still waits for a durable commit, but a commit now covers many
//! batches: one fsync and one BEGIN/COMMIT for the group instead of one each. Under light
//! load a group is one batch and nothing changes; when 10,000 agents reconnect at once and
//! send their backlog, groups grow and the store keeps up instead of queueing behind one
//! connection (SQLite) or one fsync per batch.
//!
//! Lanes are plain threads: they block on the store, never on a runtime thread. They end
//! when the last [`Writer`] handle is dropped, after finishing the group in hand.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{ClaimsRecord, IngestBatch, IngestOutcome, IngestStore, StoreError};

/// Most batches (or claims records) one group takes: bounds its latency and its lock set.
const MAX_GROUP_BATCHES: usize = 64;
/// Most observations one transaction takes (about eight full agent batches).
const MAX_GROUP_OBSERVATIONS: usize = 4_000;
/// Batches waiting for a lane before senders wait too (backpressure onto the streams).
const QUEUE: usize = 8_192;

/// What a stream waits on: its batch stored, or its signed claims recorded (a reconnect storm
/// is one claims record per stream, each needing a durable commit too).
enum Job {
    Batch(IngestBatch, Instant, oneshot::Sender<crate::store::Result<IngestOutcome>>),
    Claims(ClaimsRecord, oneshot::Sender<crate::store::Result<()>>),
}

impl Job {
    fn observations(&self) -> usize {
        match self {
            Job::Batch(b, ..) => b.observations.len(),
            Job::Claims(..) => 1,
        }
    }
}

/// Where streams hand their verified batches.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    lanes: Arc<Lanes>,
}

/// The lane threads, to wait for at shutdown (holding this keeps no lane alive).
pub struct Lanes(Mutex<Vec<std::thread::JoinHandle<()>>>);

impl Lanes {
    /// Waits up to `limit` for the lanes to finish the groups in hand and exit, which they do
    /// once every [`Writer`] is dropped. The last lane out drops the store, which writes what
    /// it still holds (PostgreSQL's pending connector summaries).
    pub fn join(&self, limit: std::time::Duration) {
        let handles = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = Instant::now() + limit;
        while handles.iter().any(|h| !h.is_finished()) {
            if Instant::now() >= deadline {
                tracing::warn!("Ingest lanes still busy at shutdown; leaving them.");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for h in handles {
            if h.join().is_err() {
                tracing::error!("An ingest lane panicked.");
            }
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// What the lanes write to: the store's group operations (a seam for the writer's own tests).
trait Sink: Send + Sync {
    fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<crate::store::Result<IngestOutcome>>;
    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<crate::store::Result<()>>;
}

impl Sink for Arc<dyn IngestStore> {
    fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<crate::store::Result<IngestOutcome>> {
        self.as_ref().ingest_many(batches)
    }

    fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<crate::store::Result<()>> {
        self.as_ref().record_claims_many(claims)
    }
}

impl Writer {
    /// Starts `store.ingest_lanes()` lanes.
    pub fn start(store: Arc<dyn IngestStore>, metrics: Arc<Metrics>) -> std::io::Result<Writer> {
        let lanes = store.ingest_lanes();
        Writer::with_sink(Arc::new(store), lanes, metrics)
    }

    fn with_sink(sink: Arc<dyn Sink>, lanes: usize, metrics: Arc<Metrics>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for lane in 0..lanes.max(1) {
            let (sink, metrics, rx) = (sink.clone(), metrics.clone(), rx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("ingest-lane-{lane}"))
                    .spawn(move || run(sink.as_ref(), &metrics, &rx))?,
            );
        }
        Ok(Writer { tx, lanes: Arc::new(Lanes(Mutex::new(handles))) })
    }

    /// The lane threads, for [`Lanes::join`] at shutdown.
    pub fn lanes(&self) -> Arc<Lanes> {
        self.lanes.clone()
    }

    /// Stores one batch with whatever else is queued; resolves after the commit.
    pub async fn ingest(&self, batch: IngestBatch) -> crate::store::Result<IngestOutcome> {
        let (reply, done) = oneshot::channel();
        self.submit(Job::Batch(batch, Instant::now(), reply), done).await
    }

    /// Records a stream's verified claims with whatever else is queued.
    pub async fn record_claims(&self, claims: ClaimsRecord) -> crate::store::Result<()> {
        let (reply, done) = oneshot::channel();
        self.submit(Job::Claims(claims, reply), done).await
    }

    async fn submit<T>(
        &self,
        job: Job,
        done: oneshot::Receiver<crate::store::Result<T>>,
    ) -> crate::store::Result<T> {
        if self.tx.send(job).await.is_err() {
            return Err(StoreError::Unavailable("the collector is shutting down".into()));
        }
        done.await.unwrap_or_else(|_| Err(StoreError::Unavailable("an ingest lane stopped".into())))
    }
}

fn run(store: &dyn Sink, metrics: &Metrics, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let jobs = {
            // One lane at a time waits for work and drains the queue; the others wait for the
            // lock, so whatever arrives while a lane commits becomes the next group.
            let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            let Some(first) = rx.blocking_recv() else { return };
            let mut n = first.observations();
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP_BATCHES && n < MAX_GROUP_OBSERVATIONS {
                match rx.try_recv() {
                    Ok(j) => {
                        n += j.observations();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let (mut batches, mut batch_replies, mut claims, mut claims_replies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for job in jobs {
            match job {
                Job::Batch(b, queued, reply) => {
                    batches.push(b);
                    batch_replies.push((queued, reply));
                }
                Job::Claims(c, reply) => {
                    claims.push(c);
                    claims_replies.push(reply);
                }
            }
        }
        // A batch cannot depend on claims in the same group (its stream's claims were
        // acknowledged before it was sent), so the two kinds commit separately.
        if !claims.is_empty() {
            let results = guarded(claims.len(), || store.record_claims_many(&claims));
            for (reply, result) in claims_replies.into_iter().zip(results) {
                if reply.send(result).is_err() {
                    tracing::debug!("A stream ended before its claims were recorded.");
                }
            }
        }
        if !batches.is_empty() {
            metrics.group_batches.observe(batches.len() as f64);
            let results = guarded(batches.len(), || store.ingest_many(&batches));
            for ((queued, reply), result) in batch_replies.into_iter().zip(results) {
                Metrics::observe(&metrics.store_seconds, queued.elapsed());
                // The stream may have gone meanwhile; the batch is stored regardless and its
                // agent is told so (as a duplicate) when it resends.
                if reply.send(result).is_err() {
                    tracing::debug!("A stream ended before its batch was committed.");
                }
            }
        }
    }
}

/// Runs a group's store call; a panic must not take the lane (for SQLite, the only one) down
/// with it, and refuses the group instead.
fn guarded<T>(n: usize, f: impl FnOnce() -> Vec<crate::store::Result<T>>) -> Vec<crate::store::Result<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!(n, "A group commit panicked; its work is refused.");
        (0..n).map(|_| Err(StoreError::Unavailable("storing failed".into()))).collect()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use super::*;

    /// Records the groups it is given; the first call waits until `open` is called.
    #[derive(Default)]
    struct Gate {
        groups: Mutex<Vec<Vec<u64>>>,
        /// Set when a call reaches the gate.
        entered: std::sync::atomic::AtomicBool,
        open: (Mutex<bool>, Condvar),
        panic_on: Option<u64>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    impl Sink for Gate {
        fn ingest_many(&self, batches: &[IngestBatch]) -> Vec<crate::store::Result<IngestOutcome>> {
            self.entered.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            drop(open);
            self.groups.lock().unwrap().push(batches.iter().map(|b| b.first_seq).collect());
            if batches.iter().any(|b| Some(b.first_seq) == self.panic_on) {
                panic!("store failure");
            }
            batches
                .iter()
                .map(|b| Ok(IngestOutcome::Stored { head: b.last_seq, head_hash: b.hash }))
                .collect()
        }

        fn record_claims_many(&self, claims: &[ClaimsRecord]) -> Vec<crate::store::Result<()>> {
            claims.iter().map(|_| Ok(())).collect()
        }
    }

    fn batch(seq: u64) -> IngestBatch {
        IngestBatch {
            device_id: format!("d{seq}"),
            first_seq: seq,
            last_seq: seq,
            prev_hash: [0; 32],
            hash: [seq as u8; 32],
            received_at_ms: 0,
            observations: Vec::new(),
            inventory: None,
            payload: Vec::new(),
            signature: Vec::new(),
        }
    }

    /// While one group is being committed, everything that arrives becomes the next group,
    /// and each sender gets its own batch's answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_queued_during_a_commit_share_the_next_one() {
        let gate = Arc::new(Gate::default());
        let metrics = Arc::new(Metrics::default());
        let w = Writer::with_sink(gate.clone(), 1, metrics.clone()).unwrap();
        let first = tokio::spawn({
            let w = w.clone();
            async move { w.ingest(batch(1)).await }
        });
        while !gate.entered.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let rest: Vec<_> = (2..=40)
            .map(|seq| {
                let w = w.clone();
                tokio::spawn(async move { w.ingest(batch(seq)).await })
            })
            .collect();
        while w.tx.capacity() > QUEUE - 39 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        gate.open();
        assert_eq!(first.await.unwrap().unwrap(), IngestOutcome::Stored { head: 1, head_hash: [1; 32] });
        for (h, seq) in rest.into_iter().zip(2u64..) {
            let head_hash = [seq as u8; 32];
            assert_eq!(h.await.unwrap().unwrap(), IngestOutcome::Stored { head: seq, head_hash });
        }
        let mut groups = gate.groups.lock().unwrap().clone();
        // The 39 senders raced each other into the queue; which came first is theirs to decide.
        groups[1].sort_unstable();
        assert_eq!(groups, vec![vec![1], (2..=40).collect::<Vec<_>>()]);
    }

    /// A panicking store refuses that group and the lane goes on with the next.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_group_is_refused_and_the_lane_survives() {
        let gate = Arc::new(Gate { panic_on: Some(1), ..Default::default() });
        gate.open();
        let w = Writer::with_sink(gate.clone(), 1, Arc::new(Metrics::default())).unwrap();
        assert!(matches!(w.ingest(batch(1)).await, Err(StoreError::Unavailable(_))));
        assert!(w.ingest(batch(2)).await.is_ok());
        assert!(w.record_claims(claims()).await.is_ok());
    }

    fn claims() -> ClaimsRecord {
        ClaimsRecord {
            clock_skew_ms: None,
            device_id: "d".into(),
            at_ms: 0,
            stream_nonce: Vec::new(),
            payload: Vec::new(),
            signature: Vec::new(),
            hostname: String::new(),
            os: String::new(),
            os_version: String::new(),
            agent_version: String::new(),
            catalog: Default::default(),
            claims: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod shutdown {
    use super::*;

    /// Dropping the last writer ends the lanes, and the store they held is dropped with them.
    #[test]
    fn lanes_exit_when_the_last_writer_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn IngestStore> =
            Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap());
        let w = Writer::start(store.clone(), Arc::new(Metrics::default())).unwrap();
        let lanes = w.lanes();
        let copy = w.clone();
        drop(w);
        assert!(Arc::strong_count(&store) > 1, "a live writer keeps its lanes");
        drop(copy);
        lanes.join(std::time::Duration::from_secs(10));
        assert_eq!(Arc::strong_count(&store), 1, "the lanes let go of the store");
    }
}
