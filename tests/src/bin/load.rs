//! `cargo run --release -p sightline-tests --features bench --bin sightline-load -- [OPTIONS]` (`--help` lists them)
//!
//! A fleet load against the shipped collector binary on loopback, SQLite and PostgreSQL side
//! by side, with the machine's raw ceilings measured in the same run:
//!
//! - **raw**: ring P-256 signature verifications per second (one core), and the database's
//!   own batched insert rate (500-row batches of observation-shaped rows, one transaction
//!   each, no collector in between);
//! - **fleet**: `--agents` simulated agents (real enrollment, real mTLS, signed claims and
//!   batches; see `fleet.rs`) each hold a stream, send `--hold-batch` observations every
//!   `--hold-interval` and reconnect after about `--stream-life` (churn): streams held, collector RSS per
//!   connected agent, ingest rate and p99 acknowledgement latency at that load;
//! - **saturation**: `--burst-agents` of them send `--burst-batch`-observation batches back
//!   to back for `--burst` seconds: observations and batches per second stored, p99, and
//!   observations per collector CPU-second (the per-core figure on a machine that also runs
//!   the database and the load generator).
//!
//! PostgreSQL comes from `SIGHTLINE_TEST_POSTGRES` (scripts/postgres.sh); each run uses a
//! fresh database and drops it. `--replicas 2` puts that many collector processes behind a
//! TCP balancer for the PostgreSQL run. Bounded: fixed counts and durations, loopback only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use sightline_server::store::Store;
use sightline_tests::ServerProcess;
use sightline_tests::fleet::{Load, SimAgent, Stats, enroll_fleet};
use sightline_tests::pg::TestDb;
use sightline_tests::procfs;
use sightline_tests::proxy::Proxy;
use tokio_util::sync::CancellationToken;

/// A fleet load against the shipped collector, SQLite and PostgreSQL side by side.
///
/// Simulated agents against the sightline-server built next to this binary, on loopback,
/// beside the machine's raw P-256 verification and batched-insert ceilings. PostgreSQL comes
/// from SIGHTLINE_TEST_POSTGRES (scripts/postgres.sh); without it that backend is skipped.
/// Durations are in seconds (fractions allowed).
#[derive(Debug, Clone, Parser)]
#[command(name = "sightline-load")]
struct Options {
    /// Simulated agents (real enrollment, mTLS, signed batches); at most 15,000 (file descriptors).
    #[arg(long, value_name = "N", default_value_t = 2_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(..=15_000))]
    agents: usize,
    /// Seconds the fleet holds its streams (the steady-load phase); at most 600.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = phase_secs)]
    hold: Duration,
    /// Seconds between one agent's batches while holding.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = secs)]
    hold_interval: Duration,
    /// Observations per batch while holding.
    #[arg(long, value_name = "N", default_value_t = 25)]
    hold_batch: usize,
    /// Each fleet stream reconnects after about this many seconds (churn).
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = secs)]
    stream_life: Duration,
    /// Agents sending back to back in the saturation phase (at most --agents).
    #[arg(long, value_name = "N", default_value_t = 200)]
    burst_agents: usize,
    /// Seconds of the saturation phase; at most 600.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = phase_secs)]
    burst: Duration,
    /// Observations per batch in the saturation phase.
    #[arg(long, value_name = "N", default_value_t = 50)]
    burst_batch: usize,
    /// Collector processes behind a TCP balancer for the PostgreSQL run (0 counts as 1).
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicas: usize,
    /// Backends to run, in order, comma-separated [default: sqlite,postgres].
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values = ["sqlite", "postgres"],
          hide_default_value = true, value_parser = ["sqlite", "postgres"])]
    backends: Vec<String>,
}

/// A duration in seconds, fractions allowed; at most 10^9 (the fleet's jitter scales it by 1.5).
fn secs(v: &str) -> Result<Duration, String> {
    let s: f64 = v.parse().map_err(|e| format!("{e}"))?;
    let d = Duration::try_from_secs_f64(s).map_err(|e| format!("{e}"))?;
    if d > Duration::from_secs(1_000_000_000) {
        return Err("at most 1000000000 s".into());
    }
    Ok(d)
}

/// A phase's duration in seconds: at most 600.
fn phase_secs(v: &str) -> Result<Duration, String> {
    let d = secs(v)?;
    if d > Duration::from_secs(600) {
        return Err("at most 600 s a phase".into());
    }
    Ok(d)
}

fn options() -> Options {
    let mut o = Options::parse();
    o.replicas = o.replicas.max(1);
    o.burst_agents = o.burst_agents.min(o.agents);
    o
}

/// What one backend's run measured.
#[derive(Default)]
struct Figures {
    raw_insert: f64,
    /// Database CPU over the raw insert phase, in cores busy.
    raw_db_cores: f64,
    enroll_per_s: f64,
    streams_held: i64,
    /// From the fleet's first connect to every agent's first batch acknowledged.
    storm_secs: f64,
    storm_p50: Duration,
    storm_p99: Duration,
    rss_idle_mb: f64,
    rss_held_mb: f64,
    hold_collector_cores: f64,
    /// The collector's own received-to-acknowledged latency (its histogram), p50 / p99.
    hold_server_p50: f64,
    hold_server_p99: f64,
    hold_obs: f64,
    hold_batches: f64,
    hold_p50: Duration,
    hold_p99: Duration,
    burst_obs: f64,
    burst_batches: f64,
    burst_p50: Duration,
    burst_p99: Duration,
    collector_cores: f64,
    db_cores: f64,
    obs_per_core: f64,
    /// Mean batches per group commit during the burst.
    burst_group: f64,
    /// PostgreSQL write-ahead log per row: the raw insert's, and per stored observation
    /// during the burst (its batch, presence and connector rows included).
    raw_wal_per_row: f64,
    burst_wal_per_obs: f64,
}

fn main() -> anyhow::Result<()> {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!("sightline-load: {o:?}");
    println!("machine: {} cores; everything (generator, collector, database) shares them", cores());
    let verifies = p256_verifications_per_sec()?;
    println!("raw   ring P-256 verifications/s (one core): {verifies:.0}");
    let mut results = Vec::new();
    for backend in &o.backends {
        let f = match backend.as_str() {
            "sqlite" => rt.block_on(run(&o, None))?,
            "postgres" => match std::env::var("SIGHTLINE_TEST_POSTGRES") {
                Ok(admin) => rt.block_on(run(&o, Some(&admin)))?,
                Err(_) => {
                    println!("postgres: SIGHTLINE_TEST_POSTGRES not set (scripts/postgres.sh); skipped");
                    continue;
                }
            },
            other => anyhow::bail!("unknown backend {other}"),
        };
        results.push((backend.clone(), f));
    }
    report(&o, verifies, &results);
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn p256_verifications_per_sec() -> anyhow::Result<f64> {
    use ring::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
    };
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("keygen"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("key"))?;
    let msg = vec![7u8; 4096];
    let sig = key.sign(&rng, &msg).map_err(|_| anyhow::anyhow!("sign"))?;
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        public.verify(&msg, sig.as_ref()).map_err(|_| anyhow::anyhow!("verify"))?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The database's batched insert rate for observation-shaped rows (the fleet's own JSON, about
/// 200 bytes a row): 500 rows a transaction,
/// `writers` connections at once (what the collector's pool does), for [`RAW_WINDOW`].
fn raw_insert_rate(admin: Option<&str>, url: Option<&str>, dir: &std::path::Path) -> anyhow::Result<f64> {
    const BATCH: usize = 500;
    let window = RAW_WINDOW;
    // Rows the size of what the fleet sends: the JSON the collector stores for the load
    // generator's own observations (a plain table of tiny rows would flatter the database).
    let shapes: Vec<String> = sightline_tests::fleet::laptop_observations(7, 1, 60)
        .iter()
        .map(|o| sightline_server::ingest::convert::record(o).data)
        .collect();
    let row = |i: usize| (format!("dev{}", i % 64), i as i64, shapes[i % shapes.len()].clone());
    match (admin, url) {
        (Some(_), Some(url)) => {
            let mut c = postgres::Client::connect(url, postgres::NoTls)?;
            c.batch_execute(
                "CREATE TABLE raw_insert (device_id TEXT, seq BIGINT, observed_at_ms BIGINT, change TEXT, kind TEXT, \
                 connector_key TEXT, data TEXT, PRIMARY KEY (device_id, seq))",
            )?;
            let writers = 4;
            let total: usize = std::thread::scope(|s| {
                let hs: Vec<_> = (0..writers)
                    .map(|w| {
                        s.spawn(move || -> anyhow::Result<usize> {
                            let mut c = postgres::Client::connect(url, postgres::NoTls)?;
                            let start = Instant::now();
                            let mut n = 0;
                            while start.elapsed() < window {
                                let rows: Vec<_> = (0..BATCH).map(|i| row(w * 100_000_000 + n + i)).collect();
                                let dev: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
                                let seq: Vec<i64> = rows.iter().map(|r| r.1).collect();
                                let data: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
                                let mut tx = c.transaction()?;
                                tx.execute(
                                    "INSERT INTO raw_insert SELECT d, s, s, 'snapshot', 'token', 'token:' || s, j \
                                     FROM unnest($1::text[], $2::bigint[], $3::text[]) AS t(d, s, j)",
                                    &[&dev, &seq, &data],
                                )?;
                                tx.commit()?;
                                n += BATCH;
                            }
                            Ok(n)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("writer").unwrap_or(0)).sum()
            });
            c.batch_execute("DROP TABLE raw_insert")?;
            Ok(total as f64 / window.as_secs_f64())
        }
        _ => {
            let c = rusqlite::Connection::open(dir.join("raw.db"))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch(
                "CREATE TABLE raw_insert (device_id TEXT, seq INTEGER, observed_at_ms INTEGER, change TEXT, kind TEXT, \
                 connector_key TEXT, data TEXT, PRIMARY KEY (device_id, seq))",
            )?;
            let start = Instant::now();
            let mut n = 0;
            let mut c = c;
            while start.elapsed() < window {
                let tx = c.transaction()?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO raw_insert VALUES (?1, ?2, ?2, 'snapshot', 'token', 'token:' || ?2, ?3)",
                    )?;
                    for i in 0..BATCH {
                        let r = row(n + i);
                        st.execute(rusqlite::params![r.0, r.1, r.2])?;
                    }
                }
                tx.commit()?;
                n += BATCH;
            }
            Ok(n as f64 / start.elapsed().as_secs_f64())
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

async fn run(o: &Options, admin: Option<&str>) -> anyhow::Result<Figures> {
    let name = if admin.is_some() { "postgres" } else { "sqlite" };
    println!("\n== {name} ==");
    let work = tempfile::tempdir()?;
    let db = match admin {
        Some(a) => {
            let a = a.to_owned();
            Some(blocking(move || TestDb::create(&a, &format!("load_{}", std::process::id()))).await??)
        }
        None => None,
    };
    let url = db.as_ref().map(|d| d.url.clone());
    let mut f = Figures::default();
    {
        // The database's CPU: PostgreSQL's processes, or this process for embedded SQLite.
        let db_cpu =
            |pg: bool| if pg { procfs::cpu_secs_of_all("postgres") } else { cpu(&[std::process::id()]) };
        let c0 = db_cpu(url.is_some());
        let w0 = wal_bytes(url.as_deref()).await;
        let started = Instant::now();
        let (a, u, d) = (admin.map(str::to_owned), url.clone(), work.path().to_owned());
        f.raw_insert = blocking(move || raw_insert_rate(a.as_deref(), u.as_deref(), &d)).await??;
        f.raw_db_cores = (db_cpu(url.is_some()) - c0) / started.elapsed().as_secs_f64();
        // The raw phase writes for RAW_WINDOW at the rate it reports.
        f.raw_wal_per_row =
            (wal_bytes(url.as_deref()).await - w0) / (f.raw_insert * RAW_WINDOW.as_secs_f64()).max(1.0);
    }
    println!("raw   batched inserts/s: {:.0} ({:.2} cores busy)", f.raw_insert, f.raw_db_cores);

    let replicas = if url.is_some() { o.replicas } else { 1 };
    let max_streams = (o.agents + 1_000).to_string();
    let mut args = vec!["--stream-rate", "100000", "--max-streams", max_streams.as_str()];
    if let Some(u) = &url {
        args.extend(["--database", u.as_str()]);
    }
    let mut servers = Vec::new();
    for r in 0..replicas {
        let dir = work.path().join(format!("replica{r}"));
        if r > 0 {
            std::fs::create_dir_all(&dir)?;
            for f in [
                "ca.key",
                "ca.pem",
                "server.key",
                "server.pem",
                "org-fingerprint.key",
                "collector-signing.pk8",
            ] {
                std::fs::copy(work.path().join("replica0").join(f), dir.join(f))?;
            }
        }
        // The first replica also serves the HTTP API (for /metrics).
        servers.push(if r == 0 {
            ServerProcess::start_http(&dir, &args)
        } else {
            ServerProcess::start(&dir, &args)
        });
    }
    let http_addr = format!("127.0.0.1:{}", servers[0].http_port.unwrap_or_default());
    let proxy = if replicas > 1 {
        Some(Proxy::start(servers.iter().map(|s| ([127, 0, 0, 1], s.port).into()).collect()).await?)
    } else {
        None
    };
    let target = proxy.as_ref().map_or_else(|| servers[0].url(), Proxy::url);
    let pids: Vec<u32> = servers.iter().filter_map(ServerProcess::pid).collect();
    let ca = std::fs::read(work.path().join("replica0/ca.pem"))?;
    let store: Arc<dyn Store> = {
        let (dir, u) = (work.path().join("replica0"), url.clone());
        blocking(move || sightline_server::server::open_store(&dir, u.as_deref())).await??
    };

    let viewer = {
        let s = store.clone();
        blocking(move || {
            sightline_server::create_api_token(s.as_ref(), sightline_server::domain::Role::Viewer, "load")
        })
        .await??
    };
    // Both histograms from one read of /metrics: (ingest, store).
    let scrape = || -> anyhow::Result<(Histogram, Histogram)> {
        let text = metrics(&http_addr, &work.path().join("replica0/ca.pem"), &viewer)?;
        Ok((
            Histogram::parse(&text, "sightline_ingest_latency_seconds_bucket")?,
            Histogram::parse(&text, "sightline_store_latency_seconds_bucket")?,
        ))
    };
    let started = Instant::now();
    let tokens = {
        let (s, n) = (store.clone(), o.agents);
        blocking(move || {
            (0..n)
                .map(|_| sightline_server::create_token(s.as_ref(), Duration::from_secs(3600)))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??
    };
    let enrolled = enroll_fleet(&target, &ca, tokens, 64).await?;
    f.enroll_per_s = o.agents as f64 / started.elapsed().as_secs_f64();
    println!("setup enrolled {} agents in {:.1} s", o.agents, started.elapsed().as_secs_f64());
    f.rss_idle_mb = rss_mb(&pids);
    let sims: Vec<SimAgent> =
        enrolled.iter().enumerate().map(|(i, a)| SimAgent::from(a, i)).collect::<anyhow::Result<_>>()?;
    drop(enrolled);

    // Fleet: every agent holds a stream.
    let hold = Load {
        obs_per_batch: o.hold_batch,
        interval: o.hold_interval,
        batches: None,
        stream_life: Some(o.stream_life),
    };
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let tasks = spawn(sims, &target, &hold, &stats, &stop);
    let ramp = Instant::now();
    while stats.streams.load(Ordering::Relaxed) < o.agents as i64 && ramp.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "fleet {} streams open after {:.1} s ({} stream errors while connecting)",
        stats.streams.load(Ordering::Relaxed),
        ramp.elapsed().as_secs_f64(),
        stats.errors.load(Ordering::Relaxed)
    );
    // The reconnect storm: every agent sends its first batch as soon as its stream is open,
    // far faster than steady state. Measure how long the collector takes to absorb it, then
    // measure steady state on its own.
    while stats.batches.load(Ordering::Relaxed) < o.agents as u64 && ramp.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f.storm_secs = ramp.elapsed().as_secs_f64();
    (f.storm_p50, f.storm_p99) = (stats.p(0.50), stats.p(0.99));
    println!(
        "fleet storm: {} streams and their first batches absorbed in {:.1} s, first-batch ack p50 {:?} p99 {:?}",
        o.agents, f.storm_secs, f.storm_p50, f.storm_p99
    );
    stats.reset_latencies();
    let (b0, n0, t0) =
        (stats.batches.load(Ordering::Relaxed), stats.observations.load(Ordering::Relaxed), Instant::now());
    let hold_cpu0 = cpu(&pids);
    let (server0, store0) = scrape()?;
    let me = std::process::id();
    let (gen0, err0, conn0) =
        (cpu(&[me]), stats.errors.load(Ordering::Relaxed), stats.connects.load(Ordering::Relaxed));
    let mut held = i64::MAX;
    while t0.elapsed() < o.hold {
        tokio::time::sleep(Duration::from_millis(500)).await;
        held = held.min(stats.streams.load(Ordering::Relaxed));
    }
    let secs = t0.elapsed().as_secs_f64();
    f.streams_held = held;
    f.hold_collector_cores = (cpu(&pids) - hold_cpu0) / secs;
    let (server1, store1) = scrape()?;
    (f.hold_server_p50, f.hold_server_p99) = server0.since(&server1);
    let (s50, s99) = store0.since(&store1);
    println!("fleet store transaction p50 ≤{:.1} ms, p99 ≤{:.1} ms", s50 * 1e3, s99 * 1e3);
    println!(
        "fleet load generator {:.2} cores busy; {} stream errors, {} reconnects while measuring",
        (cpu(&[me]) - gen0) / secs,
        stats.errors.load(Ordering::Relaxed) - err0,
        stats.connects.load(Ordering::Relaxed) - conn0
    );
    for e in stats.error_sample.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("fleet error: {e}");
    }
    f.rss_held_mb = rss_mb(&pids);
    f.hold_obs = (stats.observations.load(Ordering::Relaxed) - n0) as f64 / secs;
    f.hold_batches = (stats.batches.load(Ordering::Relaxed) - b0) as f64 / secs;
    (f.hold_p50, f.hold_p99) = (stats.p(0.50), stats.p(0.99));
    println!(
        "fleet held ≥{held} streams for {secs:.0} s: {:.0} obs/s, {:.0} batches/s, p99 {:?}, collector RSS {:.0} MB ({:.0} MB idle)",
        f.hold_obs, f.hold_batches, f.hold_p99, f.rss_held_mb, f.rss_idle_mb
    );
    stop.cancel();
    let mut sims = Vec::with_capacity(tasks.len());
    for t in tasks {
        sims.push(t.await?);
    }

    // Saturation: a subset sends back to back.
    let burst =
        Load { obs_per_batch: o.burst_batch, interval: Duration::ZERO, batches: None, stream_life: None };
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    sims.truncate(o.burst_agents);
    let tasks = spawn(sims, &target, &burst, &stats, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.reset_latencies();
    let db_cpu = || if url.is_some() { procfs::cpu_secs_of_all("postgres") } else { 0.0 };
    let (c0, d0) = (cpu(&pids), db_cpu());
    let w0 = wal_bytes(url.as_deref()).await;
    let groups0 = sum_count(&metrics(&http_addr, &work.path().join("replica0/ca.pem"), &viewer)?, GROUPS);
    let (b0, n0, t0) =
        (stats.batches.load(Ordering::Relaxed), stats.observations.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(o.burst).await;
    let groups1 = sum_count(&metrics(&http_addr, &work.path().join("replica0/ca.pem"), &viewer)?, GROUPS);
    f.burst_group = (groups1.0 - groups0.0) / (groups1.1 - groups0.1).max(1.0);
    let secs = t0.elapsed().as_secs_f64();
    let stored = (stats.observations.load(Ordering::Relaxed) - n0) as f64;
    f.burst_obs = stored / secs;
    f.burst_batches = (stats.batches.load(Ordering::Relaxed) - b0) as f64 / secs;
    f.collector_cores = (cpu(&pids) - c0) / secs;
    f.db_cores = (db_cpu() - d0) / secs;
    f.burst_wal_per_obs = (wal_bytes(url.as_deref()).await - w0) / stored.max(1.0);
    f.obs_per_core = stored / (f.collector_cores * secs).max(1e-9);
    (f.burst_p50, f.burst_p99) = (stats.p(0.50), stats.p(0.99));
    println!(
        "burst {} agents for {secs:.0} s: {:.0} obs/s, {:.0} batches/s, p99 {:?}; collector {:.2} cores, database {:.2} cores, {:.1} batches per commit",
        o.burst_agents,
        f.burst_obs,
        f.burst_batches,
        f.burst_p99,
        f.collector_cores,
        f.db_cores,
        f.burst_group
    );
    stop.cancel();
    for t in tasks {
        t.await?;
    }
    // Everything acknowledged is stored, once.
    let total: u64 = {
        let s = store.clone();
        blocking(move || -> anyhow::Result<u64> { Ok(s.devices()?.iter().map(|d| d.seq_head).sum()) })
            .await??
    };
    println!("check {total} observations stored in unbroken chains");
    drop(proxy);
    drop(servers);
    // The store's connections close off the runtime.
    blocking(move || drop(store)).await?;
    if let Some(db) = db {
        blocking(move || drop(db)).await?;
    }
    Ok(f)
}

fn spawn(
    sims: Vec<SimAgent>,
    url: &str,
    load: &Load,
    stats: &Arc<Stats>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<SimAgent>> {
    sims.into_iter()
        .map(|mut sim| {
            let (url, load, stats, stop) = (url.to_owned(), load.clone(), stats.clone(), stop.clone());
            tokio::spawn(async move {
                sim.run(&url, &load, &stats, &stop).await;
                sim
            })
        })
        .collect()
}

/// One of the collector's latency histograms (cumulative buckets), from /metrics.
struct Histogram(Vec<(f64, f64)>);

impl Histogram {
    /// The cumulative buckets of histogram `name` in Prometheus text.
    fn parse(text: &str, name: &str) -> anyhow::Result<Histogram> {
        let mut buckets = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(name)) {
            let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse()? };
            let n: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
            buckets.push((le, n));
        }
        Ok(Histogram(buckets))
    }

    /// Upper bounds of the buckets holding p50 and p99 of what was observed since `self`.
    fn since(&self, later: &Histogram) -> (f64, f64) {
        let delta: Vec<(f64, f64)> =
            later.0.iter().zip(&self.0).map(|((le, n), (_, m))| (*le, n - m)).collect();
        let total = delta.last().map_or(0.0, |d| d.1);
        let q = |q: f64| delta.iter().find(|(_, n)| *n >= q * total).map_or(f64::NAN, |d| d.0);
        (q(0.5), q(0.99))
    }
}

/// How long the raw insert ceiling is measured (short windows vary ±20 % on a shared VM).
const RAW_WINDOW: Duration = Duration::from_secs(5);

/// PostgreSQL's write-ahead log written so far (0 for SQLite or when unreadable).
async fn wal_bytes(url: Option<&str>) -> f64 {
    let Some(url) = url.map(str::to_owned) else { return 0.0 };
    blocking(move || -> anyhow::Result<f64> {
        let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
        let bytes: f64 =
            c.query_one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8", &[])?.get(0);
        Ok(bytes)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or(0.0)
}

/// The collector's group-commit histogram: batches per transaction.
const GROUPS: &str = "sightline_ingest_group_batches";

/// A histogram's `_sum` and `_count` in Prometheus text (zeros if absent).
fn sum_count(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        let prefix = format!("{name}_{suffix} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

/// The collector's /metrics page, read with its viewer token.
fn metrics(addr: &str, ca: &std::path::Path, token: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(ca)
        .args(["-H", &format!("Authorization: Bearer {token}"), &format!("https://{addr}/metrics")])
        .output()?;
    anyhow::ensure!(out.status.success(), "scraping /metrics failed");
    Ok(String::from_utf8(out.stdout)?)
}

/// CPU seconds used so far by these processes.
fn cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| procfs::cpu_secs(*p).ok()).sum()
}

fn rss_mb(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| procfs::status_kb(*p, "VmRSS:").ok()).sum::<u64>() as f64 / 1024.0
}

fn report(o: &Options, verifies: f64, results: &[(String, Figures)]) {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!("\n{:<44} {}", "figure", results.iter().map(|(n, _)| format!("{n:>24}")).collect::<String>());
    let row = |label: &str, v: &dyn Fn(&Figures) -> String| {
        println!("{label:<44} {}", results.iter().map(|(_, f)| format!("{:>24}", v(f))).collect::<String>());
    };
    row("raw batched inserts/s (database alone)", &|f| format!("{:.0}", f.raw_insert));
    row("raw P-256 verifications/s (one core)", &|_| format!("{verifies:.0}"));
    row("enrollments/s", &|f| format!("{:.0}", f.enroll_per_s));
    row(&format!("streams held (of {})", o.agents), &|f| f.streams_held.to_string());
    row("collector RSS with streams held", &|f| format!("{:.0} MB", f.rss_held_mb));
    row("collector RSS per connected agent", &|f| {
        format!("{:.1} KB", (f.rss_held_mb - f.rss_idle_mb) * 1024.0 / f.streams_held.max(1) as f64)
    });
    row("storm: streams + first batches absorbed in", &|f| format!("{:.1} s", f.storm_secs));
    row("storm: first-batch ack p50 / p99", &|f| format!("{} / {}", ms(f.storm_p50), ms(f.storm_p99)));
    row("fleet: observations/s stored", &|f| format!("{:.0}", f.hold_obs));
    row("fleet: batches/s", &|f| format!("{:.0}", f.hold_batches));
    row("fleet: ack latency p50 / p99", &|f| format!("{} / {}", ms(f.hold_p50), ms(f.hold_p99)));
    row("fleet: collector's own ingest p50 / p99", &|f| {
        format!("≤{:.1} ms / ≤{:.1} ms", f.hold_server_p50 * 1e3, f.hold_server_p99 * 1e3)
    });
    row("fleet: collector CPU (cores busy)", &|f| format!("{:.2}", f.hold_collector_cores));
    row("burst: observations/s stored", &|f| format!("{:.0}", f.burst_obs));
    row("burst: batches/s", &|f| format!("{:.0}", f.burst_batches));
    row("burst: ack latency p50 / p99", &|f| format!("{} / {}", ms(f.burst_p50), ms(f.burst_p99)));
    row("burst: collector CPU (cores busy)", &|f| format!("{:.2}", f.collector_cores));
    row("burst: database CPU (cores busy)", &|f| format!("{:.2}", f.db_cores));
    row("burst: batches per commit (group commit)", &|f| format!("{:.1}", f.burst_group));
    row("burst: observations per collector core-s", &|f| format!("{:.0}", f.obs_per_core));
    row("burst: stored / raw insert rate", &|f| {
        format!("{:.0} %", 100.0 * f.burst_obs / f.raw_insert.max(1.0))
    });
    // The same ratio per unit of database CPU: what the ingest path costs the database
    // against a plain batched insert, whatever else shares the machine's cores.
    row("burst: per database core-s, stored / raw", &|f| {
        if f.db_cores > 0.0 && f.raw_db_cores > 0.0 {
            format!("{:.0} %", 100.0 * (f.burst_obs / f.db_cores) / (f.raw_insert / f.raw_db_cores))
        } else {
            "— (in process)".into()
        }
    });
    // Each batch costs the collector two verifications: the batch and its presentation.
    row("burst: WAL bytes per stored obs / raw row", &|f| {
        if f.raw_wal_per_row > 0.0 {
            format!("{:.0} / {:.0}", f.burst_wal_per_obs, f.raw_wal_per_row)
        } else {
            "—".into()
        }
    });
    row("burst: signature checks / P-256 ceiling", &|f| {
        format!("{:.1} %", 100.0 * 2.0 * f.burst_batches / verifies.max(1.0))
    });
}
