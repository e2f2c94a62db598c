//! Throwaway PostgreSQL databases on the test server (`SIGHTLINE_TEST_POSTGRES`, started by
//! scripts/postgres.sh), one per test or benchmark run, dropped afterwards.

/// A database of its own, dropped (connections forced off) with the value.
pub struct TestDb {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database, or None when no test server is configured (a failure under CI,
    /// where the test command starts one: a silent skip there would hide a missing step).
    pub fn for_test(tag: &str) -> Option<TestDb> {
        let Ok(admin) = std::env::var("SIGHTLINE_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL tests: set SIGHTLINE_TEST_POSTGRES"
            );
            eprintln!("SIGHTLINE_TEST_POSTGRES is not set: PostgreSQL test skipped");
            return None;
        };
        Some(
            TestDb::create(&admin, &format!("{tag}_{}", std::process::id()))
                .expect("creating a test database"),
        )
    }

    pub fn create(admin: &str, name: &str) -> anyhow::Result<TestDb> {
        anyhow::ensure!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "database name {name:?}"
        );
        let base = admin.rfind('/').filter(|i| *i > "postgres://".len()).map(|i| &admin[..i]);
        let base = base.ok_or_else(|| anyhow::anyhow!("SIGHTLINE_TEST_POSTGRES must end in /DATABASE"))?;
        admin_sql(admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        admin_sql(admin, format!("CREATE DATABASE {name}"))?;
        Ok(TestDb { admin: admin.to_owned(), url: format!("{base}/{name}"), name: name.to_owned() })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Err(e) = admin_sql(&self.admin, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Runs statements on the admin connection on a thread of its own: the synchronous client
/// must not run on an async runtime's threads, and drops happen anywhere.
fn admin_sql(admin: &str, sql: String) -> Result<(), postgres::Error> {
    let admin = admin.to_owned();
    std::thread::spawn(move || postgres::Client::connect(&admin, postgres::NoTls)?.batch_execute(&sql))
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A PostgreSQL cluster of one test's own, listening on a Unix socket in its directory only
/// (no TCP port to collide with anything), so the test can stop and start it under load.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// URL of the `postgres` database, over the socket (`postgres:///postgres?host=DIR&…`).
    pub conninfo: String,
}

impl PrivateCluster {
    /// initdb and start; None without a PostgreSQL installation (a failure under CI).
    pub fn start() -> Option<PrivateCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max();
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have PostgreSQL installed (scripts/test.sh does)"
            );
            eprintln!("no PostgreSQL installation: test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            std::process::Command::new("chown").args(["postgres:"]).arg(dir.path()).status().unwrap();
        }
        let data = dir.path().join("data");
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "sightline", "-A", "trust", "--locale=C", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let conninfo = format!("postgres:///postgres?host={}&user=sightline", dir.path().display());
        let c = PrivateCluster { dir, bin, conninfo };
        c.start_again();
        Some(c)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn start_again(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start", "-o"])
            .arg(format!("-c listen_addresses='' -k {} -c max_connections=100", self.dir.path().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `pg_ctl stop -m fast`: open connections are cut, as in a database failover.
    pub fn stop(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output()
            .ok();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// PostgreSQL refuses to run as root: as the postgres account then.
fn as_owner(program: &std::path::Path) -> std::process::Command {
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}
