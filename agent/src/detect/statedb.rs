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
    #[error("cannot read SQLite database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A value longer than this is chat history or a cache blob, never a credential; skipping
/// it keeps the map small whatever the database holds.
const MAX_VALUE: usize = 16 * 1024;

/// The `{key: value}` rows of `ItemTable`, after laying the log's committed frames (if any)
/// over the database image. Returns the rows and how many log frames were applied.
/// The image is taken by value and patched in place: a database near the size bound is not
/// copied a second time.
pub(crate) fn items(
    mut image: Vec<u8>,
    wal: Option<&[u8]>,
) -> Result<(Map<String, Value>, usize), StateDbError> {
    let applied = match wal {
        Some(w) => apply_wal(&mut image, w),
        None => 0,
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
    // A hostile file must not run anything: no schema-defined functions with side effects,
    // no writes to the schema, and only a plain table is read (a view could be made to
    // compute for ever; a table scan is linear in the bounded image).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    let len = image.len();
    conn.deserialize_read_exact(MAIN_DB, image.as_slice(), len, true)?;
    // SQLite holds its own copy now.
    drop(image);
    let kind: Option<String> =
        conn.query_row("SELECT type FROM sqlite_master WHERE name = 'ItemTable'", [], |r| r.get(0)).ok();
    if kind.as_deref() != Some("table") {
        return Err(StateDbError::NoItemTable);
    }
    let mut stmt = conn.prepare("SELECT key, value FROM ItemTable")?;
    let mut rows = stmt.query([])?;
    let mut out = Map::new();
    while let Some(row) = rows.next()? {
        let key = match row.get_ref(0)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            _ => continue,
        };
        let value = match row.get_ref(1)? {
            // VS Code writes strings; some versions store them as BLOB.
            ValueRef::Text(b) | ValueRef::Blob(b) if b.len() <= MAX_VALUE => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => continue,
        };
        out.insert(key, Value::String(value));
    }
    Ok((out, applied))
}

const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// Lays the committed frames of a write-ahead log over `image` and returns how many were
/// applied. A log that does not match (bad magic, page size or header checksum) is ignored;
/// frames after the last commit, or from an older generation of the log (other salts), or
/// past the first broken checksum are not committed content and are ignored too.
fn apply_wal(image: &mut Vec<u8>, wal: &[u8]) -> usize {
    let Some(header) = wal.get(..WAL_HEADER) else { return 0 };
    let word = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let magic = word(header, 0);
    if magic & !1 != 0x377f_0682 {
        return 0;
    }
    let big_endian = magic & 1 == 1;
    let page_size = word(header, 8) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return 0;
    }
    // The image's own page size must agree (bytes 16-17; 1 means 65536).
    if image.len() >= 100 {
        let db_page = match u16::from_be_bytes([image[16], image[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        if db_page != page_size {
            return 0;
        }
    }
    let salts = (word(header, 16), word(header, 20));
    let mut sum = checksum(big_endian, &header[..24], (0, 0));
    if sum != (word(header, 24), word(header, 28)) {
        return 0;
    }
    let mut pending: Vec<(usize, &[u8])> = Vec::new();
    let mut applied = 0;
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
        pending.push((pgno, page));
        let commit_pages = word(fh, 4) as usize;
        if commit_pages != 0 {
            // A commit record: every frame since the last one is now part of the database,
            // whose size after this transaction is `commit_pages` pages.
            image.resize(commit_pages * page_size, 0);
            for (pgno, page) in pending.drain(..) {
                if pgno <= commit_pages {
                    let at = (pgno - 1) * page_size;
                    image[at..at + page_size].copy_from_slice(page);
                    applied += 1;
                }
            }
        }
    }
    applied
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
                let (m, applied) = items(db.clone(), None).unwrap();
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
                assert_eq!(items(db.clone(), None).unwrap().0["cursorAuth/accessToken"], "old-token");
                let (m, applied) = items(db.clone(), Some(&wal)).unwrap();
                assert!(applied > 0);
                assert_eq!(m["cursorAuth/accessToken"], "new-token");
                assert_eq!(m["c"], "d");

                // A torn last frame (a crash mid-write) ends the log at the commit before it.
                let mut torn = wal.clone();
                let n = torn.len();
                torn[n - 1] ^= 0xff;
                let (m, _) = items(db.clone(), Some(&torn)).unwrap();
                assert_eq!(m["cursorAuth/accessToken"], "old-token");

                // Another generation's log (salts differ) is ignored, not mixed in.
                let mut stale = wal.clone();
                stale[16] ^= 1;
                assert_eq!(items(db.clone(), Some(&stale)).unwrap().1, 0);
            },
        );
    }

    #[test]
    fn not_a_database_or_no_item_table_is_an_error() {
        assert!(matches!(items(b"hello".to_vec(), None), Err(StateDbError::NotSqlite)));
        assert!(matches!(items(Vec::new(), None), Err(StateDbError::NotSqlite)));
        with_db("CREATE TABLE other (k TEXT);", "", |db, _| {
            assert!(matches!(items(db.clone(), None), Err(StateDbError::NoItemTable)));
        });
        with_db(
            "CREATE TABLE t (key TEXT, value BLOB); CREATE VIEW ItemTable AS SELECT * FROM t;",
            "",
            |db, _| assert!(matches!(items(db.clone(), None), Err(StateDbError::NoItemTable))),
        );
    }
}
