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
