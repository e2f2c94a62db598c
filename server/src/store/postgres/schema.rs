//! The PostgreSQL schema: numbered migrations, applied under an advisory lock so replicas
//! starting together do not race, and the monthly partitions of `observations`.
//!
//! Observations are partitioned by the collector's receive time (never the device's clock,
//! which a device controls), one partition per UTC month: retention drops whole partitions.

use postgres::Client;

use crate::store::schema as store_schema;
use crate::store::sql::Dialect;
use crate::store::{Result, StoreError};

/// Serialises schema changes and partition creation across replicas.
const SCHEMA_LOCK: i64 = 0x5167_6874_6c69_6e65; // "Sightline"

/// The schema as numbered migrations; step `i` takes a database from version `i` to `i + 1`.
fn migrations() -> Vec<String> {
    let m = |pieces: &[&str]| store_schema::migration(Dialect::Postgres, pieces);
    vec![
        m(&[
            store_schema::ENROLLMENT,
            store_schema::TPM_CHALLENGES,
            r#"
CREATE INDEX enrollment_challenges_expiry ON enrollment_challenges(expires_at_ms);
ALTER TABLE devices ADD COLUMN next_cert_sha256 TEXT;
ALTER TABLE devices ADD COLUMN last_attested_ms BIGINT;
ALTER TABLE devices ADD COLUMN hardware_id TEXT;
CREATE UNIQUE INDEX devices_hardware_id ON devices(hardware_id) WHERE hardware_id IS NOT NULL;
CREATE INDEX devices_next_cert ON devices(next_cert_sha256) WHERE next_cert_sha256 IS NOT NULL;
CREATE INDEX devices_hostname ON devices(hostname);
CREATE INDEX devices_last_seen ON devices(last_seen_ms);
CREATE INDEX devices_enrolled ON devices(enrolled_at_ms, id);
"#,
            store_schema::BATCHES,
            r#"
CREATE INDEX batches_received ON batches(received_at_ms);
-- Migration 2 sets how signed payloads are stored (compressed).
ALTER TABLE batches ALTER COLUMN payload SET STORAGE EXTERNAL;
-- The export cursor: insertion order across partitions.
CREATE SEQUENCE observations_id_seq;
-- No per-row unique index: a (device, sequence) is stored once because its batch is (the
-- batches key, decided under the device's row lock), and the hottest table pays for no
-- b-tree it does not need. Counts per device come from the batches.
CREATE TABLE observations (
    id             BIGINT NOT NULL DEFAULT nextval('observations_id_seq'),
    device_id      TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    observed_at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    change         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    connector_key  TEXT,
    os_user        TEXT,
    data           TEXT NOT NULL,
    assurance      TEXT NOT NULL
) PARTITION BY RANGE (received_at_ms);
-- Ids only grow: BRIN serves the export cursor's range scans for a tiny upkeep.
CREATE INDEX observations_id ON observations USING brin (id);
CREATE INDEX observations_gap ON observations(observed_at_ms) WHERE kind = 'gap';
"#,
            store_schema::CONNECTORS,
            store_schema::DEVICE_CLAIMS,
            store_schema::PRESENCE,
            "CREATE INDEX presence_user ON presence(os_user, appeared_at_ms);\n",
            store_schema::API_TOKENS,
            store_schema::PEOPLE,
            "CREATE UNIQUE INDEX people_user_name ON people(lower(user_name)) WHERE deleted_at_ms IS NULL;\n",
            store_schema::PERSON_KEYS,
            "CREATE INDEX person_keys_person ON person_keys(person_id);\n",
            store_schema::SESSIONS,
            "CREATE INDEX sessions_device ON sessions(device_id, started_at_ms);\n",
            store_schema::SIGNINS,
            "CREATE INDEX signins_user ON signins(lower(user_name), at_ms);\n",
            store_schema::DIRECTIVES,
            store_schema::DECISIONS_AND_UI_SESSIONS,
            store_schema::EXPORTS,
        ]),
        m(&[
            // 2: signed payloads compressed after all. A batch's protobuf repeats its user, paths and
            // tools: lz4 stores a 50-observation payload in about a sixth of its size (5.5 KB to under
            // 1 KB measured with the load generator) for a few microseconds, and every byte saved is a
            // byte less of WAL per batch. pglz (always built) where lz4 is not.
            r#"
ALTER TABLE batches ALTER COLUMN payload SET STORAGE EXTENDED;
DO $$ BEGIN
    ALTER TABLE batches ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not built into this server; payloads use pglz';
END $$;
"#,
        ]),
        m(&[store_schema::LIFECYCLE]),
        m(&[store_schema::EXPORT_CHANGES]),
        m(&[store_schema::OIDC]),
        m(&[
            store_schema::SCIM_PROFILE_AND_GROUPS,
            "CREATE UNIQUE INDEX scim_groups_name ON scim_groups(lower(display_name));\n",
        ]),
        m(&[store_schema::CATALOG_STATUS]),
        m(&[store_schema::REGISTER]),
        m(&[store_schema::APPROVALS]),
        m(&[store_schema::REVIEWS]),
        m(&[store_schema::ACTIVITY]),
    ]
}

/// Applies the migrations this database has not seen yet, in one transaction each.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sightline_schema (version INTEGER NOT NULL)")?;
    let version: i32 =
        tx.query_opt("SELECT version FROM sightline_schema", &[])?.map(|r| r.get(0)).unwrap_or(0);
    let migrations = migrations();
    let known = migrations.len() as i32;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this collector understands ({known})"
        )));
    }
    for m in migrations.iter().skip(version as usize) {
        tx.batch_execute(m)?;
    }
    tx.execute("DELETE FROM sightline_schema", &[])?;
    tx.execute("INSERT INTO sightline_schema (version) VALUES ($1)", &[&known])?;
    tx.commit()?;
    Ok(())
}

/// A UTC month as `yyyymm`, with its bounds in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Month(pub(super) i32);

impl Month {
    pub(super) fn of(ms: i64) -> Month {
        let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Month(t.year() * 100 + u8::from(t.month()) as i32)
    }

    pub(super) fn next(self) -> Month {
        let (y, m) = (self.0 / 100, self.0 % 100);
        if m == 12 { Month((y + 1) * 100 + 1) } else { Month(y * 100 + m + 1) }
    }

    pub(super) fn start_ms(self) -> i64 {
        let month = time::Month::try_from((self.0 % 100) as u8).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(self.0 / 100, month, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }

    pub(super) fn table(self) -> String {
        format!("observations_p{}", self.0)
    }

    /// The month a partition's name stands for, if it is one of ours.
    pub(super) fn from_table(name: &str) -> Option<Month> {
        let digits = name.strip_prefix("observations_p")?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Month)
    }
}

/// Creates the month's partition if it is missing (idempotent, safe across replicas).
pub(super) fn create_partition(client: &mut Client, month: Month) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    // Names and bounds are computed here from integers, never taken from input.
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF observations FOR VALUES FROM ({}) TO ({})",
        month.table(),
        month.start_ms(),
        month.next().start_ms()
    ))?;
    tx.commit()?;
    Ok(())
}

/// Our partitions of `observations`, oldest first.
pub(super) fn partitions(client: &mut Client) -> Result<Vec<Month>> {
    let rows = client.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'observations' \
         AND p.relnamespace = to_regnamespace(current_schema())",
        &[],
    )?;
    let mut months: Vec<Month> = rows.iter().filter_map(|r| Month::from_table(r.get::<_, &str>(0))).collect();
    months.sort_by_key(|m| m.0);
    Ok(months)
}

#[cfg(test)]
mod tests {
    use super::Month;

    #[test]
    fn months_have_utc_bounds_and_roll_over_the_year() {
        let nov = Month::of(1_795_000_000_000); // 2026-11-18
        assert_eq!(nov, Month(202611));
        assert_eq!(nov.start_ms(), 1_793_491_200_000); // 2026-11-01T00:00:00Z
        assert_eq!(nov.next(), Month(202612));
        assert_eq!(Month(202612).next(), Month(202701));
        assert_eq!(Month(202701).start_ms(), 1_798_761_600_000);
        assert_eq!(Month::of(nov.start_ms()), nov);
        assert_eq!(Month::of(nov.start_ms() - 1), Month(202610));
        assert_eq!(Month::from_table("observations_p202611"), Some(nov));
        assert_eq!(Month::from_table("observations_p2026111"), None);
        assert_eq!(Month::from_table("observations_default"), None);
    }
}
