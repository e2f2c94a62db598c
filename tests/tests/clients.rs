//! Third-party clients against the collector's standard protocols: gRPC's own Python client
//! (grpcio) for `grpc.health.v1` and server reflection, and the Prometheus project's
//! parsers for both `/metrics` formats. They come from PyPI (`tests/clients/*.py`, installed
//! by the test command), so a mistake in our reading of a standard fails here.

use std::time::Duration;

use sightline_tests::pg::PrivateCluster;
use sightline_tests::*;

fn health(server: &ServerProcess, services: &[&str]) -> serde_json::Value {
    let target = server.url().trim_start_matches("https://").to_owned();
    let ca = server_ca(server);
    let mut args = vec![target.as_str(), ca.as_str(), "health"];
    args.extend_from_slice(services);
    python_client("grpc_probe.py", &args, None)
}

fn server_ca(server: &ServerProcess) -> String {
    server.data_dir.join("ca.pem").display().to_string()
}

const SERVICES: [&str; 3] = ["", "sightline.v1.Telemetry", "sightline.v1.Enrollment"];

fn all(status: &str) -> serde_json::Value {
    serde_json::Value::Object(SERVICES.iter().map(|s| (s.to_string(), status.into())).collect())
}

/// A load balancer's probe (no client certificate) sees SERVING for the collector and each
/// of its services while the database answers, NOT_SERVING while it is down, SERVING again
/// when it is back; an unknown service is NOT_FOUND. Reflection is off unless asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_follows_the_database_and_reflection_is_off_by_default() {
    let Some(pg) = tokio::task::spawn_blocking(PrivateCluster::start).await.unwrap() else { return };
    let work = tempfile::tempdir().unwrap();
    let server = tokio::task::spawn_blocking({
        let (data, db) = (work.path().join("data"), pg.conninfo.clone());
        move || ServerProcess::start(&data, &["--database", &db, "--health-interval", "200ms"])
    })
    .await
    .unwrap();
    let result = tokio::task::spawn_blocking(move || {
        let serving = wait_for(Duration::from_secs(10), "SERVING", || {
            Some(health(&server, &SERVICES)).filter(|h| *h == all("SERVING"))
        });
        assert_eq!(serving, all("SERVING"));
        assert_eq!(health(&server, &["sightline.v1.Nothing"])["sightline.v1.Nothing"], "NOT_FOUND");
        let off = python_client(
            "grpc_probe.py",
            &[server.url().trim_start_matches("https://"), &server_ca(&server), "reflection"],
            None,
        );
        assert_eq!(off["error"], "UNIMPLEMENTED", "reflection must be off by default: {off}");

        pg.stop();
        wait_for(Duration::from_secs(20), "NOT_SERVING with the database down", || {
            Some(()).filter(|_| health(&server, &SERVICES) == all("NOT_SERVING"))
        });
        assert!(server.log().contains("Health: not serving"), "{}", server.log());
        pg.start_again();
        wait_for(Duration::from_secs(30), "SERVING with the database back", || {
            Some(()).filter(|_| health(&server, &SERVICES) == all("SERVING"))
        });
        server
    })
    .await;
    drop(result.unwrap());
}

/// `--grpc-reflection` serves the contract: grpcio's reflection client lists the agent
/// services and the health service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reflection_lists_the_services_when_turned_on() {
    let work = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        let server = ServerProcess::start(&work.path().join("data"), &["--grpc-reflection"]);
        let listed = python_client(
            "grpc_probe.py",
            &[server.url().trim_start_matches("https://"), &server_ca(&server), "reflection"],
            None,
        );
        let names: Vec<&str> = listed["services"]
            .as_array()
            .unwrap_or_else(|| panic!("{listed}"))
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        for want in ["sightline.v1.Telemetry", "sightline.v1.Enrollment", "grpc.health.v1.Health"] {
            assert!(names.contains(&want), "{want} not in {names:?}");
        }
    })
    .await
    .unwrap();
}

/// `/metrics` in the format the scraper asks for, each parsed strictly by the Prometheus
/// project's own parser for that format, with the same samples in both.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_in_the_format_the_scraper_asks_for() {
    let c = Collector::start().await;
    let a = enroll(&c).await;
    a.run_once(&fixtures().join("linux")).await.unwrap();
    let viewer = c.api_token("viewer");
    let scrape = |accept: Option<&str>| -> (String, String) {
        let headers = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-D"]).arg(headers.path()).arg("--cacert").arg(c.data_dir.path().join("ca.pem"));
        cmd.args(["-H", &format!("Authorization: Bearer {viewer}")]);
        if let Some(a) = accept {
            cmd.args(["-H", &format!("Accept: {a}")]);
        }
        let out = cmd.arg(format!("{}/metrics", c.api_url)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let headers = std::fs::read_to_string(headers.path()).unwrap();
        let content_type = headers
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
            .unwrap_or_default();
        (content_type, String::from_utf8(out.stdout).unwrap())
    };
    let (classic_type, classic_body, open_type, open_body, prometheus_type) = tokio::task::block_in_place(
        || {
            let (ct, cb) = scrape(Some("text/plain; version=0.0.4"));
            let (ot, ob) = scrape(None);
            // Prometheus 2.x's own Accept header.
            let (pt, _) = scrape(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            ));
            (ct, cb, ot, ob, pt)
        },
    );
    assert_eq!(classic_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(open_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(prometheus_type, open_type);
    assert!(!classic_body.contains("# EOF") && open_body.trim_end().ends_with("# EOF"));
    assert!(classic_body.contains("# TYPE sightline_batches_ingested_total counter\n"), "{classic_body}");

    let classic = python_client("metrics_parse.py", &[&classic_type], Some(&classic_body));
    let open = python_client("metrics_parse.py", &[&open_type], Some(&open_body));
    // The classic parser fails on the OpenMetrics-only syntax and vice versa; both parsed,
    // and they agree on the counters that moved.
    let stored = "sightline_batches_ingested_total{outcome=\"stored\"}|counter";
    assert!(classic[stored].as_f64().unwrap_or_else(|| panic!("{classic}")) >= 1.0);
    assert_eq!(classic[stored], open[stored], "{classic}\n{open}");
    let observations = "sightline_observations_ingested_total{}|counter";
    assert_eq!(classic[observations], open[observations]);
    c.stop().await;
}
