//! `cargo run --release -p sightline-tests --features bench --bin sightline-bench`
//!
//! Prints speed and footprint figures, each next to a baseline measured in the same run:
//! - scan: a synthetic fleet-sized home tree, the full file scan vs a raw directory walk of
//!   the same tree (the floor any scanner pays);
//! - ingest: signed batches from concurrent agents over real mTLS into SQLite vs the store
//!   alone (no TLS, no signatures) and vs raw ECDSA P-256 verifications per second.
//!
//! Bounded: fixed sizes, loopback only, stops by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use sightline_agent::catalog::Catalog;
use sightline_agent::detect::{Limits, scan_files};
use sightline_agent::fsview::Tree;
use sightline_agent::secret::Fingerprinter;
use sightline_proto::envelope::{self, GENESIS_HASH};
use sightline_server::store::IngestBatch;
use sightline_tests::{Collector, enroll};

const USERS: usize = 4;
const PROJECTS: usize = 400;
const AGENTS: usize = 16;
const BATCHES_PER_AGENT: u64 = 20;
const OBS_PER_BATCH: u64 = 500;

/// Scan and ingest speed, each beside a baseline measured in the same run.
///
/// The file scan of a synthetic home tree vs a raw directory walk, and signed batches over
/// mTLS into SQLite vs the store alone and raw P-256 verifications. Fixed sizes, loopback
/// only; takes no arguments.
#[derive(Parser)]
#[command(name = "sightline-bench")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    scan_bench()?;
    rt.block_on(ingest_bench())?;
    Ok(())
}

fn build_tree(root: &Path) -> anyhow::Result<usize> {
    let mut files = 0;
    for u in 0..USERS {
        let home = root.join(format!("home/user{u}"));
        std::fs::create_dir_all(&home)?;
        std::fs::write(
            home.join(".bashrc"),
            format!(
                "export PATH=$PATH:/x\nexport OPENAI_API_KEY=sk-proj-{}T3BlbkFJ{}\n",
                "a1B2".repeat(15),
                "c3D4".repeat(15)
            ),
        )?;
        files += 1;
        for p in 0..PROJECTS {
            let proj = home.join(format!("src/proj{p}"));
            std::fs::create_dir_all(proj.join("src"))?;
            std::fs::create_dir_all(proj.join("node_modules/dep/lib"))?;
            for f in 0..8 {
                std::fs::write(proj.join(format!("src/file{f}.rs")), "fn main() {}\n")?;
                std::fs::write(proj.join(format!("node_modules/dep/lib/m{f}.js")), "module.exports = 1;\n")?;
            }
            std::fs::write(proj.join(".env"), format!("GROQ_API_KEY=gsk_{}\nDEBUG=1\n", "Ab3d".repeat(13)))?;
            files += 17;
        }
        for e in 0..40 {
            let id: String = (0..32).map(|i| (b'a' + ((e * 7 + i) % 16) as u8) as char).collect();
            let d = home.join(format!(".config/google-chrome/Default/Extensions/{id}/1.0_0"));
            std::fs::create_dir_all(&d)?;
            std::fs::write(
                d.join("manifest.json"),
                format!(
                    "{{\"name\":\"Ext {e}\",\"version\":\"1.0\",\"host_permissions\":[\"https://api.openai.com/*\"]}}"
                ),
            )?;
            files += 1;
        }
    }
    Ok(files)
}

fn raw_walk(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                n += 1;
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    n
}

fn scan_bench() -> anyhow::Result<()> {
    let t = tempfile::tempdir()?;
    let files = build_tree(t.path())?;
    let catalog = Catalog::builtin()?;
    let fp = Fingerprinter::new(b"bench", true);
    let tree = Tree::open_root(t.path())?;
    // Warm the page cache so both sides measure the same thing.
    raw_walk(t.path());
    let runs = 5;
    let mut walk = Duration::MAX;
    let mut scan = Duration::MAX;
    let mut findings = 0;
    let mut entries = 0;
    for _ in 0..runs {
        let s = Instant::now();
        entries = raw_walk(t.path());
        walk = walk.min(s.elapsed());
        let s = Instant::now();
        let r = scan_files(&tree, &catalog, &fp, &Limits::default());
        scan = scan.min(s.elapsed());
        findings = r.findings.len();
    }
    println!("scan  tree: {USERS} homes, {files} files, {entries} entries (best of {runs})");
    println!("scan  raw directory walk (baseline):  {:>8.1} ms", walk.as_secs_f64() * 1e3);
    println!(
        "scan  full file scan:                 {:>8.1} ms   ({:.2}x the raw walk, {findings} findings, node_modules skipped)",
        scan.as_secs_f64() * 1e3,
        scan.as_secs_f64() / walk.as_secs_f64()
    );
    Ok(())
}

async fn ingest_bench() -> anyhow::Result<()> {
    let c = Collector::start().await;
    let mut agents = Vec::new();
    for _ in 0..AGENTS {
        agents.push(enroll(&c).await);
    }
    // Pre-sign every batch so the measurement is the collector's work, not the agents'.
    let mut per_agent = Vec::new();
    for a in &agents {
        let mut prev = GENESIS_HASH;
        let mut batches = Vec::new();
        for i in 0..BATCHES_PER_AGENT {
            let (b, h) = a.batch(1 + i * OBS_PER_BATCH, prev, OBS_PER_BATCH);
            prev = h;
            batches.push(b);
        }
        per_agent.push(batches);
    }
    let total_obs = AGENTS as u64 * BATCHES_PER_AGENT * OBS_PER_BATCH;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (a, batches) in agents.iter().zip(per_agent) {
        let mut stream = a.attested_stream().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let presented: Vec<_> = batches.into_iter().map(|b| a.present(b, &stream.nonce)).collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for b in presented {
                let s = Instant::now();
                stream.send(sightline_proto::pb::agent_message::Msg::Batch(b)).await;
                let r = stream.reply().await;
                assert!(matches!(r, Ok(Some(_))), "{r:?}");
                latencies.push(s.elapsed());
            }
            latencies
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let e2e = started.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;

    // Baseline 1: the store alone, same rows, no TLS and no signature checks.
    let d = tempfile::tempdir()?;
    let shared = sightline_server::server::open(d.path(), None, true)?;
    let store = shared.store.clone();
    let a = enroll_direct(&shared)?;
    let mut prev = GENESIS_HASH;
    let mut batches = Vec::new();
    for i in 0..BATCHES_PER_AGENT * 4 {
        let (b, h) = agents[0].batch(1 + i * OBS_PER_BATCH, prev, OBS_PER_BATCH);
        let v = envelope::open(&b, &agents[0].key.public_key_spki())?;
        prev = h;
        batches.push(IngestBatch {
            device_id: a.clone(),
            first_seq: v.first_seq,
            last_seq: v.last_seq,
            prev_hash: v.prev_hash,
            hash: v.hash,
            payload: b.payload,
            signature: b.signature,
            received_at_ms: 1,
            observations: v
                .batch
                .observations
                .iter()
                .map(sightline_server::ingest::convert::record)
                .collect(),
            inventory: None,
        });
    }
    let s = Instant::now();
    for b in &batches {
        store.ingest(b)?;
    }
    let store_only = (batches.len() as u64 * OBS_PER_BATCH) as f64 / s.elapsed().as_secs_f64();

    // Baseline 2: raw ECDSA P-256 verification rate (ring), one core.
    let (b, _) = agents[0].batch(1, GENESIS_HASH, OBS_PER_BATCH);
    let spki = agents[0].key.public_key_spki();
    let n = 2000;
    let s = Instant::now();
    for _ in 0..n {
        sightline_proto::p256::verify(&spki, envelope::BATCH_CONTEXT, &b.payload, &b.signature)?;
    }
    let verifies = n as f64 / s.elapsed().as_secs_f64();

    let e2e_rate = total_obs as f64 / e2e.as_secs_f64();
    println!(
        "ingest {AGENTS} agents x {BATCHES_PER_AGENT} batches x {OBS_PER_BATCH} observations over mTLS: {:.0} obs/s, {:.0} batches/s, ack latency p50 {:.1} ms p99 {:.1} ms",
        e2e_rate,
        (AGENTS as u64 * BATCHES_PER_AGENT) as f64 / e2e.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
    println!(
        "ingest store alone (baseline, no TLS/signatures): {store_only:.0} obs/s  -> end to end is {:.0}% of it",
        100.0 * e2e_rate / store_only
    );
    println!(
        "ingest raw P-256 verifications (baseline, 1 core): {verifies:.0}/s  -> signature cost per 500-obs batch {:.3} ms",
        1e3 / verifies
    );
    println!("ingest collector RSS after run: {:.1} MiB", rss_mib());
    c.stop().await;
    Ok(())
}

/// Creates a device row directly in a second store for the store-only baseline.
fn enroll_direct(shared: &sightline_server::state::AppState) -> anyhow::Result<String> {
    let token = sightline_server::create_token(shared.store.as_ref(), Duration::from_secs(60))?;
    let hash = sightline_server::ingest::enrollment::token_hash(&token);
    let d = sightline_server::store::Device {
        id: "dev_bench".into(),
        hostname: "bench".into(),
        os: "linux".into(),
        os_version: String::new(),
        agent_version: String::new(),
        key_backend: "software".into(),
        assurance: "software".into(),
        key_spki: Vec::new(),
        cert_sha256: "x".into(),
        next_cert_sha256: None,
        enrolled_at_ms: 0,
        last_seen_ms: None,
        last_attested_ms: None,
        hardware_id: None,
        clock_skew_ms: None,
        seq_head: 0,
        head_hash: GENESIS_HASH,
        revoked_at_ms: None,
        users: Vec::new(),
    };
    shared.store.complete_enrollment(&hash, &d, &[], 1)?;
    Ok(d.id)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
