//! `cargo run --release -p sightline-tests --features bench --bin sightline-triage-bench [-- DEVICES OBSERVATIONS]`
//! (defaults: 10,000 devices, 10,000,000 observations)
//!
//! A synthetic fleet history loaded into the embedded SQLite store through `Store::ingest` —
//! the same transaction live ingest uses (presence and session intervals included), without
//! TLS and signatures, which the ingest bench measures — then the latency of each triage,
//! inventory and finding query, p50/p99 over random devices, people and times, beside the
//! 10 ms triage goal. Bounded: fixed counts, one temp dir, no network.
//!
//! `SIGHTLINE_BENCH_DIR=DIR` keeps the loaded history in DIR and, when DIR already holds one
//! of the same size, measures the queries on it without loading again.
//! `SIGHTLINE_BENCH_DATABASE=postgres://…` runs it on PostgreSQL instead of SQLite (the
//! database keeps the history the same way).

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use sightline_proto::envelope::GENESIS_HASH;
use sightline_server::domain::{Change, ObservationKind};
use sightline_server::store::{ConnectorRef, IngestBatch, ObservationRecord, Person, SessionRef, Store};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;
const SPAN_DAYS: i64 = 90;

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Triage, inventory and finding query latency over a synthetic fleet history.
///
/// Loads the history into the collector's store (SQLite, or PostgreSQL with
/// SIGHTLINE_BENCH_DATABASE=URL), then measures each query, p50/p99, beside the 10 ms triage
/// goal. SIGHTLINE_BENCH_DIR=DIR keeps the history in DIR and reuses it when it already holds
/// one of the same size.
#[derive(Parser)]
#[command(name = "sightline-triage-bench")]
struct Args {
    /// Devices in the fleet history.
    #[arg(value_name = "DEVICES", default_value_t = 10_000, value_parser = at_least_one)]
    devices: usize,
    /// Observations in the fleet history, spread over the devices (at least 20 each).
    #[arg(value_name = "OBSERVATIONS", default_value_t = 10_000_000)]
    observations: u64,
}

fn at_least_one(v: &str) -> Result<usize, String> {
    match v.parse::<usize>().map_err(|e| e.to_string())? {
        0 => Err("at least 1".into()),
        n => Ok(n),
    }
}

fn main() -> anyhow::Result<()> {
    let Args { devices, observations } = Args::parse();
    let per_device = (observations / devices as u64).max(20);
    let temp = tempfile::tempdir()?;
    let dir = std::env::var_os("SIGHTLINE_BENCH_DIR").map_or_else(|| temp.path().to_owned(), Into::into);
    let database = std::env::var("SIGHTLINE_BENCH_DATABASE").ok();
    let shared = sightline_server::server::open(&dir, database.as_deref(), true)?;
    println!(
        "store: {}",
        database.as_deref().map(sightline_server::server::redact).unwrap_or_else(|| "sqlite".into())
    );
    let store = shared.store.clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let started = Instant::now();
    let mut ids: Vec<String> = store.devices()?.into_iter().map(|d| d.id).collect();
    let reuse = ids.len() == devices;
    if reuse {
        println!("reusing the history in {} ({} devices)", dir.display(), ids.len());
    } else if !ids.is_empty() {
        anyhow::bail!("{} holds another history ({} devices); use an empty dir", dir.display(), ids.len());
    }
    for i in (0..devices).filter(|_| !reuse) {
        ids.push(enroll(store.as_ref(), i)?);
        store.create_person(&Person {
            id: format!("p{i}"),
            user_name: format!("user{i}@example.com"),
            external_id: None,
            display_name: None,
            emails: vec![format!("user{i}@example.com")],
            active: !i.is_multiple_of(50), // 2 % have left the company
            created_at_ms: T0,
            modified_at_ms: T0,
            deprovisioned_at_ms: i.is_multiple_of(50).then_some(T0 + 30 * DAY),
            deleted_at_ms: None,
            ..Default::default()
        })?;
    }
    let mut stored = 0u64;
    for (i, id) in ids.iter().enumerate().filter(|_| !reuse) {
        stored += load_device(store.as_ref(), id, i, per_device, &mut rng)?;
    }
    let load = started.elapsed();
    let db_bytes = match &database {
        Some(url) => postgres::Client::connect(url, postgres::NoTls)?
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .get::<_, i64>(0) as u64,
        None => std::fs::metadata(dir.join("sightline.db"))?.len(),
    };
    println!(
        "loaded {devices} devices, {stored} observations in {:.1}s ({:.0} obs/s); database {:.0} MiB",
        load.as_secs_f64(),
        stored as f64 / load.as_secs_f64(),
        db_bytes as f64 / 1048576.0
    );

    let policy = sightline_server::policy::Policy::default();
    let samples = 500;
    let mut table = Vec::new();
    let mut time_it =
        |name: &str, n: usize, f: &mut dyn FnMut(&mut Rng) -> anyhow::Result<()>| -> anyhow::Result<()> {
            let mut lat = Vec::with_capacity(n);
            let mut r = Rng(0xDEAD_BEEF ^ name.len() as u64);
            for _ in 0..n {
                let s = Instant::now();
                f(&mut r)?;
                lat.push(s.elapsed());
            }
            lat.sort();
            let p = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1];
            table.push((name.to_owned(), n, p(0.5), p(0.99)));
            Ok(())
        };
    let at = |r: &mut Rng| T0 + r.below((SPAN_DAYS * DAY) as u64) as i64;
    let s = store.as_ref();
    time_it("triage --device D --at T (presence)", samples, &mut |r| {
        s.present_at(&ids[r.below(ids.len() as u64) as usize], at(r))?;
        Ok(())
    })?;
    time_it("triage --device D --at T (JSON)", samples, &mut |r| {
        sightline_server::query::device_at_value(
            s,
            &policy,
            &ids[r.below(ids.len() as u64) as usize],
            at(r),
        )?;
        Ok(())
    })?;
    time_it("who was logged in on D at T", samples, &mut |r| {
        s.sessions_at(Some(&ids[r.below(ids.len() as u64) as usize]), at(r))?;
        Ok(())
    })?;
    time_it("triage --user U --at T (JSON)", samples, &mut |r| {
        let u = format!("user{}@example.com", r.below(ids.len() as u64));
        sightline_server::query::user_at_value(s, &policy, &u, at(r))?;
        Ok(())
    })?;
    time_it("triage --token FP (JSON)", samples, &mut |r| {
        let key = format!("token:{:032x}", r.below(ids.len() as u64 * 3));
        sightline_server::query::connector_value(s, &policy, &key)?;
        Ok(())
    })?;
    // The dashboard: a cold snapshot (every connector judged, every finding), then pages.
    let cache = sightline_server::views::Cache::default();
    time_it("dashboard: fleet snapshot (cold)", 3, &mut |_| {
        cache.clear();
        cache.get(s, &policy, T0 + SPAN_DAYS * DAY)?;
        Ok(())
    })?;
    let snap = cache.get(s, &policy, T0 + SPAN_DAYS * DAY)?;
    time_it("dashboard: overview (warm snapshot)", 20, &mut |_| {
        sightline_server::views::overview(s, &policy, &snap)?;
        Ok(())
    })?;
    time_it("dashboard: devices page, by last seen", samples, &mut |r| {
        let q = sightline_server::views::TableQuery {
            sort: Some("last_seen".into()),
            order: Some("desc".into()),
            offset: Some(r.below(devices as u64 / 50) as usize * 50),
            ..Default::default()
        };
        sightline_server::views::devices(s, &q)?;
        Ok(())
    })?;
    time_it("dashboard: connectors page (warm)", samples, &mut |r| {
        let q = sightline_server::views::TableQuery {
            sort: Some("devices".into()),
            offset: Some(r.below(100) as usize * 50),
            ..Default::default()
        };
        sightline_server::views::connectors(&snap, &policy, &q);
        Ok(())
    })?;
    time_it("dashboard: findings page (warm)", samples, &mut |r| {
        let q = sightline_server::views::TableQuery {
            offset: Some(r.below(100) as usize * 50),
            ..Default::default()
        };
        sightline_server::views::findings(&snap, &q);
        Ok(())
    })?;
    time_it("connectors (whole inventory)", 5, &mut |_| {
        sightline_server::query::connectors_value(s, &Default::default(), &policy)?;
        Ok(())
    })?;
    // The connector register: the same inventory by person (resolved among the people, every
    // account attributed to them) and by owner, beside the OS-account filter as the baseline.
    let filter = |user: Option<String>, owner: Option<String>| sightline_server::query::ConnectorFilter {
        user,
        owner,
        ..Default::default()
    };
    time_it("connectors --user ACCOUNT (baseline)", 5, &mut |r| {
        let f = filter(Some(format!("user{}", r.below(ids.len() as u64))), None);
        sightline_server::query::connectors_value(s, &f, &policy)?;
        Ok(())
    })?;
    time_it("connectors --user PERSON (register)", 5, &mut |r| {
        let f = filter(Some(format!("user{}@example.com", r.below(ids.len() as u64))), None);
        sightline_server::query::connectors_value(s, &f, &policy)?;
        Ok(())
    })?;
    time_it("connectors --owner PERSON (register)", 5, &mut |r| {
        let f = filter(None, Some(format!("user{}@example.com", r.below(ids.len() as u64))));
        sightline_server::query::connectors_value(s, &f, &policy)?;
        Ok(())
    })?;
    time_it("connector KEY (register entry)", samples, &mut |r| {
        let key = format!("token:{:032x}", r.below(ids.len() as u64 * 3));
        let v = sightline_server::query::connector_value(s, &policy, &key)?;
        if let Some(v) = v {
            std::hint::black_box(sightline_server::query::render_register(&v));
        }
        Ok(())
    })?;
    time_it("dashboard: connectors page, owner search", samples, &mut |r| {
        let q = sightline_server::views::TableQuery {
            q: Some(format!("user{}@example.com", r.below(ids.len() as u64))),
            ..Default::default()
        };
        sightline_server::views::connectors(&snap, &policy, &q);
        Ok(())
    })?;
    time_it("findings (whole fleet)", 5, &mut |_| {
        sightline_server::findings::compute(s, &policy, T0 + SPAN_DAYS * DAY)?;
        Ok(())
    })?;

    println!();
    println!("{:<40} {:>8} {:>11} {:>11} {:>8}", "query", "samples", "p50", "p99", "goal");
    for (name, n, p50, p99) in table {
        let goal = if name.starts_with("triage") || name.starts_with("who") {
            "10 ms"
        } else if name.contains("page") || name.contains("overview") {
            "100 ms"
        } else {
            ""
        };
        println!("{name:<40} {n:>8} {:>11} {:>11} {goal:>8}", fmt(p50), fmt(p99));
    }
    Ok(())
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn enroll(store: &dyn Store, i: usize) -> anyhow::Result<String> {
    let token = sightline_server::create_token(store, Duration::from_secs(3600))?;
    let hash = sightline_server::ingest::enrollment::token_hash(&token);
    let d = sightline_server::store::Device {
        id: format!("dev_{i:08}"),
        hostname: format!("laptop-{i}"),
        os: "macos".into(),
        os_version: "15.1".into(),
        agent_version: "0.1.0".into(),
        key_backend: if i.is_multiple_of(3) { "software" } else { "tpm" }.into(),
        assurance: if i.is_multiple_of(3) { "software" } else { "hardware_attested" }.into(),
        key_spki: Vec::new(),
        cert_sha256: format!("cert{i}"),
        next_cert_sha256: None,
        enrolled_at_ms: T0,
        last_seen_ms: None,
        last_attested_ms: None,
        hardware_id: None,
        clock_skew_ms: None,
        seq_head: 0,
        head_hash: GENESIS_HASH,
        revoked_at_ms: None,
        users: Vec::new(),
    };
    store.complete_enrollment(&hash, &d, &[], T0)?;
    Ok(d.id)
}

/// One device's 90 days: a first snapshot, then connectors coming and going, AI processes
/// starting and stopping, and daily login sessions, in batches of 500.
fn load_device(store: &dyn Store, id: &str, i: usize, n: u64, rng: &mut Rng) -> anyhow::Result<u64> {
    let user = format!("user{i}");
    let mut obs: Vec<ObservationRecord> = Vec::with_capacity(n as usize);
    let connector = |rng: &mut Rng, slot: u64| -> (ConnectorRef, serde_json::Value) {
        match slot % 4 {
            0 => {
                let ext = format!("{:032x}", rng.below(400)).replace(|c: char| c.is_ascii_digit(), "a");
                (
                    ConnectorRef {
                        key: format!("extension:{ext}"),
                        kind: "extension",
                        label: "AI helper".into(),
                        user: Some(user.clone()),
                        locus: format!("/Users/{user}/Library/Chrome/Default/Extensions/{ext}"),
                    },
                    json!({"extension_id": ext, "name": "AI helper"}),
                )
            }
            1 => {
                // Mostly one key per device; some keys shared by several devices.
                let fp = if rng.below(100) == 0 { rng.below(50) } else { i as u64 * 3 + slot % 3 };
                (
                    ConnectorRef {
                        key: format!("token:{fp:032x}"),
                        kind: "token",
                        label: "openai".into(),
                        user: Some(user.clone()),
                        locus: format!("/Users/{user}/.env#{slot}"),
                    },
                    json!({"provider": "openai", "fingerprint": format!("{fp:032x}")}),
                )
            }
            2 => (
                ConnectorRef {
                    key: "tool:cursor".into(),
                    kind: "tool",
                    label: "cursor".into(),
                    user: Some(user.clone()),
                    locus: "/Applications/Cursor.app".into(),
                },
                json!({"tool": "cursor"}),
            ),
            _ => (
                ConnectorRef {
                    key: format!("mcp:github:{:012x}", rng.below(20)),
                    kind: "mcp_server",
                    label: "github".into(),
                    user: Some(user.clone()),
                    locus: format!("/Users/{user}/.cursor/mcp.json#{slot}"),
                },
                json!({"name": "github"}),
            ),
        }
    };
    let rec = |at: i64,
               change: &'static str,
               kind: &'static str,
               c: Option<ConnectorRef>,
               s: Option<SessionRef>,
               data| {
        ObservationRecord {
            seq: 0,
            observed_at_ms: at,
            change: Change::parse(change).expect("a change the bench spells right"),
            // Connector kinds name the observation that carries them (a `tool` is an app).
            kind: match kind {
                "tool" => ObservationKind::App,
                other => ObservationKind::parse(other).expect("a kind the bench spells right"),
            },
            connector: c,
            session: s,
            directive: None,
            data: serde_json::Value::to_string(&data),
        }
    };
    let mut t = T0;
    // The first snapshot: 12 connectors.
    let mut present: Vec<(ConnectorRef, serde_json::Value)> = (0..12).map(|k| connector(rng, k)).collect();
    for (c, d) in &present {
        obs.push(rec(t, "snapshot", c.kind, Some(c.clone()), None, d.clone()));
    }
    let mut session_start = t;
    let session = |start: i64| SessionRef {
        os_user: user.clone(),
        terminal: "console".into(),
        host: None,
        started_at_ms: start,
    };
    obs.push(rec(t, "snapshot", "os_session", None, Some(session(t)), json!({})));
    let step = (SPAN_DAYS * DAY) / n as i64;
    while (obs.len() as u64) < n {
        t += step / 2 + rng.below(step as u64) as i64;
        match rng.below(10) {
            // Daily login sessions.
            0 => {
                obs.push(rec(t, "disappeared", "os_session", None, Some(session(session_start)), json!({})));
                session_start = t;
                obs.push(rec(t, "appeared", "os_session", None, Some(session(t)), json!({})));
            }
            // A connector goes, another comes.
            1 | 2 if !present.is_empty() => {
                let k = rng.below(present.len() as u64) as usize;
                let (c, d) = present.swap_remove(k);
                obs.push(rec(t, "disappeared", c.kind, Some(c), None, d));
                let slot = rng.below(1000);
                let (c, d) = connector(rng, slot);
                obs.push(rec(t, "appeared", c.kind, Some(c.clone()), None, d.clone()));
                present.push((c, d));
            }
            // AI processes start and stop.
            _ => {
                let pid = 1000 + rng.below(60000);
                let c = ConnectorRef {
                    key: "tool:ollama".into(),
                    kind: "tool",
                    label: "ollama".into(),
                    user: Some(user.clone()),
                    locus: format!("pid:{pid}"),
                };
                obs.push(rec(
                    t,
                    "appeared",
                    "process",
                    Some(c.clone()),
                    None,
                    json!({"tool": "ollama", "pid": pid}),
                ));
                obs.push(rec(
                    t + 60_000,
                    "disappeared",
                    "process",
                    Some(c),
                    None,
                    json!({"tool": "ollama", "pid": pid}),
                ));
            }
        }
    }
    let mut prev = GENESIS_HASH;
    let mut seq = 1u64;
    let total = obs.len() as u64;
    for chunk in obs.chunks_mut(500) {
        for (k, o) in chunk.iter_mut().enumerate() {
            o.seq = seq + k as u64;
        }
        let last = seq + chunk.len() as u64 - 1;
        let hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, format!("{id}/{seq}").as_bytes())
            .as_ref()
            .try_into()?;
        store.ingest(&IngestBatch {
            device_id: id.to_owned(),
            first_seq: seq,
            last_seq: last,
            prev_hash: prev,
            hash,
            payload: Vec::new(),
            signature: Vec::new(),
            received_at_ms: chunk.last().map_or(T0, |o| o.observed_at_ms),
            observations: chunk.to_vec(),
            inventory: None,
        })?;
        prev = hash;
        seq = last + 1;
    }
    Ok(total)
}
