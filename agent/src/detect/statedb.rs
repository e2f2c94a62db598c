//! VS Code-family state databases (`state.vscdb`): SQLite files whose `ItemTable(key, value)`
//! holds an editor's global state, Cursor's session tokens among it.
//!
//! The laptop's file is never opened by path: its bytes come through the sandboxed, bounded
//! [`Tree`](crate::fsview::Tree) read like every other file, and SQLite opens that copy in
//! memory, read-only. The agent writes nothing.
//!
//! An editor that is running keeps the newest rows in the write-ahead log beside the file
//! (`state.vscdb-wal`) until a checkpoint. Its committed frames (salts and checksum chain
//! intact, up to the last commit record) are laid over the image first, exactly as SQLite
//! itself would on open, so a token refreshed a minute ago is the one reported. The shared
//! memory index (`-shm`) is not needed for that and is not read.

use std::time::Duration;
#[allow(clippy::disallowed_types, reason = "a synchronous deadline")]
use std::time::Instant;

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, MAIN_DB};
use serde_json::{Map, Value};

/// Why a state database could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StateDbError {
    #[error("not an SQLite database")]
    NotSqlite,
    #[error("SQLite database has no ItemTable table")]
    NoItemTable,
    #[error("SQLite database's ItemTable is not (key, value)")]
    UnexpectedColumns,
    #[error("cannot read SQLite database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A value longer than this is chat history or a cache blob, never a credential; skipping
/// it keeps the map small whatever the database holds.
const MAX_VALUE: usize = 16 * 1024;

/// Keys are setting names (`cursorAuth/accessToken`); a longer one is not a name.
const MAX_KEY: usize = 1024;

/// Rows read from `ItemTable` at most. Editors keep a few thousand; a database built to
/// hold millions of tiny rows is cut here rather than grow the map without end.
const MAX_ROWS: usize = 100_000;

/// The longest string or blob SQLite may hold or compute for us. Larger stored values are
/// never loaded (their length is read from the record header, see the query); a crafted
/// schema that computes a huge value fails instead of allocating it.
const MAX_SQLITE_LENGTH: i32 = 1024 * 1024;

/// How long SQLite may run for one database before it is interrupted: a scan of a bounded
/// image takes milliseconds, so only crafted content gets near this.
const DEADLINE: Duration = Duration::from_secs(2);

/// What [`items`] read.
#[derive(Debug)]
pub(crate) struct Items {
    /// `ItemTable`'s `{key: value}` rows.
    pub rows: Map<String, Value>,
    /// How many log frames were laid over the image, or why the log was refused.
    pub wal: Result<usize, WalError>,
    /// More than [`MAX_ROWS`] rows: the rest were not read.
    pub truncated: bool,
}

/// The `{key: value}` rows of `ItemTable`, after laying the log's committed frames (if any)
/// over the database image. `max` bounds the database the log may grow the image to.
/// The image is taken by value and patched in place: a database near the size bound is not
/// copied a second time.
pub(crate) fn items(mut image: Vec<u8>, wal: Option<&[u8]>, max: u64) -> Result<Items, StateDbError> {
    let wal = match wal {
        Some(w) => apply_wal(&mut image, w, max),
        None => Ok(0),
    };
    if image.len() < 100 || !image.starts_with(b"SQLite format 3\0") {
        return Err(StateDbError::NotSqlite);
    }
    // Bytes 18-19 say "WAL mode" in a database that uses a log; an in-memory copy has no
    // shared memory for one, so it is marked as a rollback-journal database (the log's
    // content is already in the image).
    image[18] = 1;
    image[19] = 1;

    let mut conn = Connection::open_in_memory()?;
    confine(&conn)?;
    let len = image.len();
    conn.deserialize_read_exact(MAIN_DB, image.as_slice(), len, true)?;
    // SQLite holds its own copy now.
    drop(image);
    let kind: Option<String> =
        conn.query_row("SELECT type FROM sqlite_master WHERE name = 'ItemTable'", [], |r| r.get(0)).ok();
    if kind.as_deref() != Some("table") {
        return Err(StateDbError::NoItemTable);
    }
    plain_columns(&conn)?;
    // `octet_length` is answered from the record header without loading the value, so an
    // oversized value is skipped instead of tripping the length limit for the whole scan.
    let mut stmt = conn.prepare(&format!(
        "SELECT CASE WHEN octet_length(key) <= {MAX_KEY} THEN key END, \
                CASE WHEN octet_length(value) <= {MAX_VALUE} THEN value END \
         FROM ItemTable"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Map::new();
    let mut truncated = false;
    let mut read = 0;
    while let Some(row) = rows.next()? {
        read += 1;
        if read > MAX_ROWS {
            truncated = true;
            break;
        }
        let key = match row.get_ref(0)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            _ => continue,
        };
        let value = match row.get_ref(1)? {
            // VS Code writes strings; some versions store them as BLOB.
            ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        out.insert(key, Value::String(value));
    }
    Ok(Items { rows: out, wal, truncated })
}

/// Makes the connection safe for a hostile file: nothing in it may run code with side
/// effects, write the schema, or make SQLite compute without end or allocate without bound.
#[allow(clippy::disallowed_types, reason = "SQLite's deadline within a synchronous scan; no tokio time here")]
fn confine(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    for (limit, value) in [
        (Limit::SQLITE_LIMIT_LENGTH, MAX_SQLITE_LENGTH),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
        (Limit::SQLITE_LIMIT_COLUMN, 100),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 8),
        (Limit::SQLITE_LIMIT_VDBE_OP, 10_000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 8),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 10),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 1),
    ] {
        conn.set_limit(limit, value)?;
    }
    // Interrupts whatever runs past the deadline (checked every 1000 VM steps); the query
    // then fails with SQLITE_INTERRUPT and the database is reported unreadable.
    let deadline = Instant::now() + DEADLINE;
    conn.progress_handler(1000, Some(move || Instant::now() > deadline));
    Ok(())
}

/// `ItemTable` must be VS Code's: exactly the stored columns `key` and `value`. A hidden
/// or generated column would have SQLite evaluate an expression from the file on read.
fn plain_columns(conn: &Connection) -> Result<(), StateDbError> {
    let mut stmt = conn.prepare("SELECT name, hidden FROM pragma_table_xinfo('ItemTable')")?;
    let cols: Vec<(String, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if cols.iter().any(|(_, hidden)| *hidden != 0) || names != ["key", "value"] {
        return Err(StateDbError::UnexpectedColumns);
    }
    Ok(())
}

const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// A log frame's page number and content.
type Frame<'w> = (usize, &'w [u8]);

/// Why a write-ahead log was refused as a whole (it is then not applied at all).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WalError {
    /// A commit record (or one of its pages) puts the database past the size bound: a
    /// crafted log could otherwise make the agent allocate gigabytes for a few bytes.
    #[error("write-ahead log grows the database past {max} bytes; newer values in it were not read")]
    TooLarge { max: u64 },
}

/// Lays the committed frames of a write-ahead log over `image` and returns how many were
/// applied. A log that does not match (bad magic, page size or header checksum) is ignored;
/// frames after the last commit, or from an older generation of the log (other salts), or
/// past the first broken checksum are not committed content and are ignored too. A log
/// whose committed database would exceed `max` bytes is refused before the image changes.
fn apply_wal(image: &mut Vec<u8>, wal: &[u8], max: u64) -> Result<usize, WalError> {
    let Some(header) = wal.get(..WAL_HEADER) else { return Ok(0) };
    let word = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let magic = word(header, 0);
    if magic & !1 != 0x377f_0682 {
        return Ok(0);
    }
    let big_endian = magic & 1 == 1;
    let page_size = word(header, 8) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Ok(0);
    }
    // The image's own page size must agree (bytes 16-17; 1 means 65536).
    if image.len() >= 100 {
        let db_page = match u16::from_be_bytes([image[16], image[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        if db_page != page_size {
            return Ok(0);
        }
    }
    let salts = (word(header, 16), word(header, 20));
    let mut sum = checksum(big_endian, &header[..24], (0, 0));
    if sum != (word(header, 24), word(header, 28)) {
        return Ok(0);
    }
    // Pages are in bytes `(pgno - 1) * page_size ..` of a database of `pages` pages: both
    // ends are checked against the bound, in arithmetic that cannot wrap.
    let within = |pages: usize| {
        pages.checked_mul(page_size).and_then(|n| u64::try_from(n).ok()).is_some_and(|n| n <= max)
    };
    // First pass, read-only: the committed transactions, so that a refusal leaves the
    // image exactly as the file had it.
    let mut commits: Vec<(usize, Vec<Frame<'_>>)> = Vec::new();
    let mut pending: Vec<Frame<'_>> = Vec::new();
    for frame in wal[WAL_HEADER..].chunks_exact(FRAME_HEADER + page_size) {
        let (fh, page) = frame.split_at(FRAME_HEADER);
        if (word(fh, 8), word(fh, 12)) != salts {
            break;
        }
        sum = checksum(big_endian, page, checksum(big_endian, &fh[..8], sum));
        if sum != (word(fh, 16), word(fh, 20)) {
            break;
        }
        let pgno = word(fh, 0) as usize;
        if pgno == 0 {
            break;
        }
        if !within(pgno) {
            return Err(WalError::TooLarge { max });
        }
        pending.push((pgno, page));
        let commit_pages = word(fh, 4) as usize;
        if commit_pages != 0 {
            // A commit record: every frame since the last one is now part of the database,
            // whose size after this transaction is `commit_pages` pages.
            if !within(commit_pages) {
                return Err(WalError::TooLarge { max });
            }
            commits.push((commit_pages, std::mem::take(&mut pending)));
        }
    }
    let mut applied = 0;
    for (commit_pages, pages) in commits {
        // Cannot overflow: checked by `within` above.
        image.resize(commit_pages * page_size, 0);
        for (pgno, page) in pages {
            if pgno <= commit_pages {
                let at = (pgno - 1) * page_size;
                image[at..at + page_size].copy_from_slice(page);
                applied += 1;
            }
        }
    }
    Ok(applied)
}

/// SQLite's WAL checksum: two running 32-bit sums over pairs of words.
fn checksum(big_endian: bool, data: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    let read = |b: &[u8]| {
        let w = [b[0], b[1], b[2], b[3]];
        if big_endian { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }
    };
    for pair in data.chunks_exact(8) {
        s0 = s0.wrapping_add(read(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(read(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: u64 = 64 * 1024 * 1024;

    /// A real database file written by SQLite in a tempdir, and its log while a writer
    /// still holds it open (no checkpoint).
    fn with_db(setup: &str, in_wal: &str, check: impl FnOnce(Vec<u8>, Vec<u8>)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.vscdb");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(setup).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;").unwrap();
        conn.execute_batch(in_wal).unwrap();
        let db = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("state.vscdb-wal")).unwrap_or_default();
        check(db, wal);
        drop(conn);
    }

    const SCHEMA: &str = "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
        INSERT INTO ItemTable VALUES ('cursorAuth/accessToken', 'old-token'), ('a', 'b');";

    #[test]
    fn rows_come_back_as_a_map_and_long_or_odd_values_are_skipped() {
        let big = "x".repeat(MAX_VALUE + 1);
        with_db(
            &format!(
                "{SCHEMA} INSERT INTO ItemTable VALUES ('big', '{big}'), ('n', 7), ('blob', X'6869'), (NULL, 'v');"
            ),
            "",
            |db, _| {
                let m = items(db.clone(), None, BOUND).unwrap();
                let (m, applied) = (m.rows, m.wal.unwrap());
                assert_eq!(applied, 0);
                assert_eq!(m["cursorAuth/accessToken"], "old-token");
                assert_eq!(m["blob"], "hi");
                assert!(!m.contains_key("big") && !m.contains_key("n"));
                assert_eq!(m.len(), 3);
            },
        );
    }

    #[test]
    fn committed_log_frames_win_over_the_file() {
        with_db(
            SCHEMA,
            "INSERT INTO ItemTable VALUES ('cursorAuth/accessToken', 'new-token'), ('c', 'd');",
            |db, wal| {
                assert!(!wal.is_empty(), "the writer's log should hold the change");
                assert_eq!(
                    items(db.clone(), None, BOUND).unwrap().rows["cursorAuth/accessToken"],
                    "old-token"
                );
                let m = items(db.clone(), Some(&wal), BOUND).unwrap();
                let (m, applied) = (m.rows, m.wal.unwrap());
                assert!(applied > 0);
                assert_eq!(m["cursorAuth/accessToken"], "new-token");
                assert_eq!(m["c"], "d");

                // A torn last frame (a crash mid-write) ends the log at the commit before it.
                let mut torn = wal.clone();
                let n = torn.len();
                torn[n - 1] ^= 0xff;
                let m = items(db.clone(), Some(&torn), BOUND).unwrap().rows;
                assert_eq!(m["cursorAuth/accessToken"], "old-token");

                // Another generation's log (salts differ) is ignored, not mixed in.
                let mut stale = wal.clone();
                stale[16] ^= 1;
                assert_eq!(items(db.clone(), Some(&stale), BOUND).unwrap().wal, Ok(0));
            },
        );
    }

    #[test]
    fn not_a_database_or_no_item_table_is_an_error() {
        assert!(matches!(items(b"hello".to_vec(), None, BOUND), Err(StateDbError::NotSqlite)));
        assert!(matches!(items(Vec::new(), None, BOUND), Err(StateDbError::NotSqlite)));
        with_db("CREATE TABLE other (k TEXT);", "", |db, _| {
            assert!(matches!(items(db.clone(), None, BOUND), Err(StateDbError::NoItemTable)));
        });
        with_db(
            "CREATE TABLE t (key TEXT, value BLOB); CREATE VIEW ItemTable AS SELECT * FROM t;",
            "",
            |db, _| assert!(matches!(items(db.clone(), None, BOUND), Err(StateDbError::NoItemTable))),
        );
    }

    /// Rewrites frame `i`'s page number and commit size and re-signs the whole chain, as a
    /// crafted log would: the checksums stay valid, so only the bounds can refuse it.
    fn forge(wal: &[u8], i: usize, pgno: u32, commit: u32) -> Vec<u8> {
        let mut w = wal.to_vec();
        let word = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let big_endian = word(&w, 0) & 1 == 1;
        let page_size = word(&w, 8) as usize;
        let frame = FRAME_HEADER + page_size;
        let at = WAL_HEADER + i * frame;
        w[at..at + 4].copy_from_slice(&pgno.to_be_bytes());
        w[at + 4..at + 8].copy_from_slice(&commit.to_be_bytes());
        let mut sum = (word(&w, 24), word(&w, 28));
        let mut f = WAL_HEADER;
        while f + frame <= w.len() {
            sum = checksum(
                big_endian,
                &w[f + FRAME_HEADER..f + frame],
                checksum(big_endian, &w[f..f + 8], sum),
            );
            w[f + 16..f + 20].copy_from_slice(&sum.0.to_be_bytes());
            w[f + 20..f + 24].copy_from_slice(&sum.1.to_be_bytes());
            f += frame;
        }
        w
    }

    #[test]
    fn a_log_that_grows_the_database_past_the_bound_is_refused_whole() {
        with_db(
            SCHEMA,
            "INSERT INTO ItemTable VALUES ('cursorAuth/accessToken', 'new-token');",
            |db, wal| {
                let frames = (wal.len() - WAL_HEADER) / (FRAME_HEADER + 4096);
                assert!(
                    frames >= 1 && (wal.len() - WAL_HEADER).is_multiple_of(FRAME_HEADER + 4096),
                    "4 KiB pages expected"
                );
                let last = frames - 1;
                // Re-signed but unchanged, the log is byte for byte the writer's: `forge` is faithful.
                let head = |i: usize, at: usize| {
                    let f = WAL_HEADER + i * (FRAME_HEADER + 4096) + at;
                    u32::from_be_bytes([wal[f], wal[f + 1], wal[f + 2], wal[f + 3]])
                };
                let same = forge(&wal, last, head(last, 0), head(last, 4));
                assert_eq!(same, wal);

                // A commit record claiming 2^32-1 pages (16 TiB) is refused before any
                // allocation, and the file's own rows are read.
                let huge = forge(&wal, last, 1, u32::MAX);
                let got = items(db.clone(), Some(&huge), BOUND).unwrap();
                assert_eq!(got.wal, Err(WalError::TooLarge { max: BOUND }));
                assert_eq!(got.rows["cursorAuth/accessToken"], "old-token");
                // A page number far past the bound, likewise.
                let far = forge(&wal, 0, u32::MAX, if last == 0 { u32::MAX } else { 0 });
                assert!(items(db.clone(), Some(&far), BOUND).unwrap().wal.is_err());
                // The bound is the database's: an honest log over a bound of one page is refused
                // too, leaving the image as the file had it.
                let got = items(db.clone(), Some(&wal), 4096).unwrap();
                assert_eq!(got.wal, Err(WalError::TooLarge { max: 4096 }));
                assert_eq!(got.rows["cursorAuth/accessToken"], "old-token");
                // With no image to take the page size from (a file shorter than its header),
                // the bound holds all the same.
                let empty = items(Vec::new(), Some(&huge), BOUND);
                assert!(matches!(empty, Err(StateDbError::NotSqlite)));
                let mut image = Vec::new();
                assert_eq!(apply_wal(&mut image, &huge, BOUND), Err(WalError::TooLarge { max: BOUND }));
                assert!(image.is_empty());
            },
        );
    }

    #[test]
    fn generated_or_extra_columns_are_refused() {
        // Reading a virtual generated column makes SQLite compute it: 2 MB here, 900 MB in
        // a crafted file.
        for schema in [
            "CREATE TABLE ItemTable (key TEXT, value BLOB GENERATED ALWAYS AS (printf('%.*c', 2000000, 'x')) VIRTUAL);",
            "CREATE TABLE ItemTable (key TEXT, v BLOB, value BLOB GENERATED ALWAYS AS (v) STORED);",
            "CREATE TABLE ItemTable (key TEXT, value BLOB, extra TEXT);",
            "CREATE TABLE ItemTable (k TEXT, value BLOB);",
        ] {
            with_db(&format!("{schema} INSERT INTO ItemTable DEFAULT VALUES;"), "", |db, _| {
                let got = items(db.clone(), None, BOUND);
                assert!(matches!(got, Err(StateDbError::UnexpectedColumns)), "{schema}: {got:?}");
            });
        }
    }

    #[test]
    fn huge_values_long_keys_and_endless_tables_are_bounded() {
        // A 2 MiB value (over SQLite's length limit here) is skipped without failing the
        // scan; a key over 1 KiB is not a setting name.
        let long_key = "k".repeat(MAX_KEY + 1);
        with_db(
            &format!(
                "{SCHEMA} INSERT INTO ItemTable VALUES ('chat', zeroblob(2097152)), ('{long_key}', 'v'), ('z', 'last');"
            ),
            "",
            |db, _| {
                let got = items(db.clone(), None, BOUND).unwrap();
                assert_eq!(got.rows["cursorAuth/accessToken"], "old-token");
                assert_eq!(got.rows["z"], "last");
                assert!(!got.rows.contains_key("chat") && !got.rows.contains_key(&long_key));
                assert!(!got.truncated);
            },
        );
        with_db(
            &format!(
                "{SCHEMA} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
                 INSERT INTO ItemTable SELECT 'k' || i, 'v' FROM n;",
                MAX_ROWS + 10
            ),
            "",
            |db, _| {
                let got = items(db.clone(), None, BOUND).unwrap();
                assert!(got.truncated);
                assert_eq!(got.rows.len(), MAX_ROWS);
            },
        );
    }

    #[test]
    #[allow(clippy::disallowed_types, reason = "measures a synchronous query")]
    fn the_connection_refuses_huge_values_and_endless_queries() {
        let conn = Connection::open_in_memory().unwrap();
        confine(&conn).unwrap();
        // SQLite's printf stops at the limit (NULL); other functions fail outright.
        let big: Option<String> =
            conn.query_row("SELECT printf('%.*c', 900000000, 'x')", [], |r| r.get(0)).unwrap();
        assert_eq!(big, None);
        let blob: Result<Vec<u8>, _> = conn.query_row("SELECT zeroblob(2000000)", [], |r| r.get(0));
        assert!(
            matches!(blob, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::TooBig),
            "{blob:?}"
        );
        let started = Instant::now();
        let endless: Result<i64, _> = conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            [],
            |r| r.get(0),
        );
        assert!(
            matches!(endless, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::OperationInterrupted),
            "{endless:?}"
        );
        assert!(started.elapsed() < DEADLINE + Duration::from_secs(3));
    }
}
