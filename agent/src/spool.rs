//! The spool: observations recorded on disk until they are sealed into a signed batch.
//!
//! The agent may be offline for weeks. Everything it observes in that time lands here first,
//! and only here is loss possible — when the spool is full — so loss is counted, persisted and
//! later reported to the collector as a `GAP` observation, never silent.
//!
//! # On-disk format (`STATE/spool/`)
//!
//! ```text
//! {first_id:020}.seg   records with ids first_id, first_id+1, … in order
//! spool.json           {"head": H, "evicted": E, "reported": R}, written atomically
//! ```
//!
//! A record is `[len: u32 LE][crc32(payload): u32 LE][payload: len bytes]`; the payload is
//! opaque here (the agent stores an encoded `Observation`). Record ids are contiguous across
//! segments, so a segment's name plus its record count places every record.
//!
//! # Invariants
//!
//! 1. **Recorded means durable.** [`Spool::append`] returns only after the records and (for a
//!    new segment) the directory entry are fsync'd.
//! 2. **Records leave in order, and only by [`Spool::commit`] or eviction.** `head` is the
//!    first id not yet handed on; everything below it is gone from the spool's point of view.
//!    `commit` persists the new head *before* deleting a segment, so a crash between the two
//!    leaves a stale segment that the next open deletes — never a hole.
//! 3. **Bounded.** Segment bytes never exceed `max_bytes`; to make room the oldest segment is
//!    evicted: `evicted` grows by the number of its records at or above `head`, persisted
//!    before the file goes. `evicted - reported` is loss not yet reported in a `GAP`.
//! 4. **Torn tails are dropped, corruption is counted.** Only the last segment is ever
//!    appended to, so a record that fails its length or checksum there is a torn write from a
//!    crash (its `append` never returned): the file is truncated at it. The same failure in an
//!    older segment is corruption: the ids it hides (known from the next segment's name) are
//!    added to `evicted` so they, too, are reported.
//!
//! # Recovery
//!
//! [`Spool::open`] reads `spool.json`, deletes segments wholly below `head`, validates every
//! record of the rest (checksums, contiguity) and truncates a torn tail. The caller then
//! applies what the sealed-batch outbox knows (a batch may have been written just before a
//! crash that kept `spool.json` from moving) with [`Spool::reconcile`].

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{sync_dir, write_atomic};

const HEADER: u64 = 8;
/// A record larger than this is refused (an observation is a few hundred bytes).
pub const MAX_RECORD: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool state {path} is malformed: {reason}")]
    Meta { path: PathBuf, reason: String },
    #[error("a record of {0} bytes is larger than the spool accepts ({MAX_RECORD})")]
    TooLarge(usize),
}

type Result<T> = std::result::Result<T, SpoolError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Clone, Copy)]
pub struct SpoolConfig {
    /// Upper bound on segment bytes on disk.
    pub max_bytes: u64,
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u64,
}

impl SpoolConfig {
    /// A bound of `max_bytes` with segments small enough that eviction frees space in steps
    /// of at most an eighth of it.
    pub fn with_max_bytes(max_bytes: u64) -> SpoolConfig {
        let max_bytes = max_bytes.max(64 * 1024);
        SpoolConfig { max_bytes, segment_bytes: (max_bytes / 8).clamp(16 * 1024, 8 << 20) }
    }
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig::with_max_bytes(256 << 20)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    head: u64,
    evicted: u64,
    reported: u64,
}

#[derive(Debug)]
struct Segment {
    first_id: u64,
    count: u64,
    bytes: u64,
    path: PathBuf,
}

/// What [`Spool::open`] had to repair.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn final record cut off the last segment.
    pub torn_bytes: u64,
    /// Records lost to corruption or missing segments (also added to the unreported loss).
    pub corrupt_records: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cfg: SpoolConfig,
    meta: Meta,
    segments: VecDeque<Segment>,
    /// Byte offset of record `meta.head` in the first segment.
    head_offset: u64,
    active: Option<File>,
}

impl Spool {
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<(Spool, Recovery)> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let meta_path = dir.join("spool.json");
        let mut meta = match fs::read(&meta_path) {
            Ok(b) => serde_json::from_slice::<Meta>(&b)
                .map_err(|e| SpoolError::Meta { path: meta_path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Meta { head: 1, ..Meta::default() },
            Err(e) => return Err(io_err(&meta_path)(e)),
        };
        meta.head = meta.head.max(1);

        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse().ok())
            {
                names.push((id, entry.path()));
            } else if name.to_str().is_some_and(|n| n.ends_with(".tmp")) {
                // A meta write interrupted before its rename.
                fs::remove_file(entry.path()).ok();
            }
        }
        names.sort();

        let mut recovery = Recovery::default();
        let mut segments: VecDeque<Segment> = VecDeque::new();
        let last = names.len().saturating_sub(1);
        for (i, (first_id, path)) in names.iter().enumerate() {
            let (count, valid_bytes, file_len) = scan_segment(path)?;
            if valid_bytes < file_len {
                if i == last {
                    recovery.torn_bytes += file_len - valid_bytes;
                }
                // Elsewhere it is corruption; the hole it leaves is counted below.
                truncate(path, valid_bytes)?;
            }
            if first_id + count <= meta.head || (count == 0 && i != last) {
                // Committed or evicted before a crash, or emptied by corruption.
                fs::remove_file(path).map_err(io_err(path))?;
                continue;
            }
            segments.push_back(Segment {
                first_id: *first_id,
                count,
                bytes: valid_bytes,
                path: path.clone(),
            });
        }
        // Ids between head and the first segment, or between segments, are gone: a segment
        // deleted by hand or cut short by corruption.
        let mut expected = meta.head;
        for s in &segments {
            if s.first_id > expected {
                recovery.corrupt_records += s.first_id - expected;
            }
            expected = expected.max(s.first_id + s.count);
        }
        if let Some(s) = segments.front() {
            meta.head = meta.head.max(s.first_id);
        }
        meta.evicted += recovery.corrupt_records;

        let mut spool = Spool { dir: dir.to_owned(), cfg, meta, segments, head_offset: 0, active: None };
        spool.head_offset = spool.offset_of(spool.meta.head)?;
        if recovery.corrupt_records > 0 {
            spool.write_meta()?;
        }
        Ok((spool, recovery))
    }

    /// The next id [`append`](Spool::append) will assign.
    pub fn next_id(&self) -> u64 {
        self.segments.back().map_or(self.meta.head, |s| s.first_id + s.count)
    }

    /// Records waiting to be handed on.
    pub fn depth(&self) -> u64 {
        self.next_id() - self.meta.head
    }

    /// Segment bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Records dropped (evicted or corrupt) and not yet reported in a `GAP`.
    pub fn unreported_loss(&self) -> u64 {
        self.meta.evicted - self.meta.reported
    }

    /// Records dropped since the spool was created.
    pub fn evicted_total(&self) -> u64 {
        self.meta.evicted
    }

    /// `(evicted, reported)` as persisted, for the sealer to record beside a batch.
    pub fn loss_counters(&self) -> (u64, u64) {
        (self.meta.evicted, self.meta.reported)
    }

    /// Durably appends records; returns the id of the first. Makes room under the bound by
    /// evicting the oldest segments first (which, for an append larger than the whole bound,
    /// can include the start of this very append: counted like any other eviction).
    pub fn append(&mut self, records: &[Vec<u8>]) -> Result<u64> {
        let first = self.next_id();
        if let Some(r) = records.iter().find(|r| r.len() > MAX_RECORD) {
            return Err(SpoolError::TooLarge(r.len()));
        }
        let mut rest = records;
        while !rest.is_empty() {
            let mut buf = Vec::new();
            let mut n = 0;
            let room = self.segments.back().map_or(0, |s| self.cfg.segment_bytes.saturating_sub(s.bytes));
            let limit = if room > 0 { room } else { self.cfg.segment_bytes };
            for r in rest {
                if n > 0 && (buf.len() + r.len()) as u64 + HEADER > limit {
                    break;
                }
                buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
                buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
                buf.extend_from_slice(r);
                n += 1;
            }
            rest = &rest[n..];
            let needs_new = room == 0;
            self.make_room(buf.len() as u64, needs_new)?;
            self.write_chunk(&buf, n as u64, needs_new)?;
        }
        if let Some(f) = &self.active {
            let path = self.segments.back().map(|s| s.path.clone()).unwrap_or_default();
            f.sync_data().map_err(io_err(&path))?;
        }
        Ok(first)
    }

    fn write_chunk(&mut self, buf: &[u8], count: u64, new_segment: bool) -> Result<()> {
        if new_segment || self.active.is_none() || self.segments.is_empty() {
            self.open_active(new_segment || self.segments.is_empty())?;
        }
        let (Some(seg), Some(file)) = (self.segments.back_mut(), self.active.as_mut()) else {
            return Err(SpoolError::Meta { path: self.dir.clone(), reason: "no active segment".into() });
        };
        if let Err(e) = file.seek(SeekFrom::Start(seg.bytes)).and_then(|_| file.write_all(buf)) {
            // Leave the segment as it was known; a partial write is a torn tail.
            self.active = None;
            truncate(&seg.path, seg.bytes).ok();
            return Err(io_err(&seg.path)(e));
        }
        seg.bytes += buf.len() as u64;
        seg.count += count;
        Ok(())
    }

    /// Up to `max_records` records (at most `max_bytes` of payload, but at least one) from
    /// the head, oldest first, with their ids.
    pub fn peek(&self, max_records: usize, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut id = self.meta.head;
        for (i, seg) in self.segments.iter().enumerate() {
            if id >= seg.first_id + seg.count {
                continue;
            }
            id = id.max(seg.first_id);
            let mut f = File::open(&seg.path).map_err(io_err(&seg.path))?;
            let start = if i == 0 && id == self.meta.head { self.head_offset } else { 0 };
            f.seek(SeekFrom::Start(start)).map_err(io_err(&seg.path))?;
            let mut r = io::BufReader::new(f.take(seg.bytes - start));
            while id < seg.first_id + seg.count {
                if out.len() >= max_records || (!out.is_empty() && bytes >= max_bytes) {
                    return Ok(out);
                }
                let payload = read_record(&mut r).map_err(io_err(&seg.path))?.ok_or_else(|| {
                    SpoolError::Meta { path: seg.path.clone(), reason: format!("record {id} vanished") }
                })?;
                bytes += payload.len();
                out.push((id, payload));
                id += 1;
            }
        }
        Ok(out)
    }

    /// Marks every record up to `through_id` as handed on (sealed into a durable batch) and
    /// `reported` as the loss count already reported; deletes segments no longer needed.
    pub fn commit(&mut self, through_id: u64, reported: u64) -> Result<()> {
        let head = (through_id + 1).min(self.next_id()).max(self.meta.head);
        let reported = reported.clamp(self.meta.reported, self.meta.evicted);
        if head == self.meta.head && reported == self.meta.reported {
            return Ok(());
        }
        self.meta.head = head;
        self.meta.reported = reported;
        self.write_meta()?;
        self.drop_consumed()?;
        self.head_offset = self.offset_of(self.meta.head)?;
        Ok(())
    }

    /// Applies what a sealed batch written just before a crash knows: the spool position it
    /// consumed and the loss it reported.
    pub fn reconcile(&mut self, through_id: u64, reported: u64) -> Result<()> {
        if through_id >= self.meta.head || reported > self.meta.reported {
            self.commit(through_id.max(self.meta.head.saturating_sub(1)), reported.max(self.meta.reported))?;
        }
        Ok(())
    }

    fn drop_consumed(&mut self) -> Result<()> {
        while self.segments.len() > 1 {
            let Some(s) = self.segments.front() else { break };
            if s.first_id + s.count > self.meta.head {
                break;
            }
            fs::remove_file(&s.path).map_err(io_err(&s.path))?;
            self.segments.pop_front();
        }
        Ok(())
    }

    /// Evicts oldest segments until `incoming` more bytes fit under the bound.
    fn make_room(&mut self, incoming: u64, new_segment: bool) -> Result<()> {
        loop {
            let total = self.bytes();
            if total + incoming <= self.cfg.max_bytes {
                return Ok(());
            }
            // The active segment can be evicted only when a new one is about to start.
            let evictable =
                if new_segment { self.segments.len() } else { self.segments.len().saturating_sub(1) };
            if evictable == 0 {
                return Ok(());
            }
            let Some(s) = self.segments.front() else { return Ok(()) };
            let end = s.first_id + s.count;
            // Ids below the segment's start are a hole already counted at recovery.
            let lost = end.saturating_sub(self.meta.head.max(s.first_id));
            self.meta.evicted += lost;
            self.meta.head = self.meta.head.max(end);
            self.write_meta()?;
            let path = s.path.clone();
            fs::remove_file(&path).map_err(io_err(&path))?;
            self.segments.pop_front();
            if self.segments.is_empty() {
                self.active = None;
            }
            self.head_offset = self.offset_of(self.meta.head)?;
            tracing::warn!(lost, "Spool full: evicted the oldest observations; a GAP will report them.");
        }
    }

    fn open_active(&mut self, new_segment: bool) -> Result<()> {
        if new_segment {
            if let (Some(f), Some(s)) = (self.active.take(), self.segments.back()) {
                f.sync_data().map_err(io_err(&s.path))?;
            }
            let first_id = self.next_id();
            let path = self.dir.join(format!("{first_id:020}.seg"));
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(io_err(&path))?;
            sync_dir(&self.dir).map_err(io_err(&self.dir))?;
            self.segments.push_back(Segment { first_id, count: 0, bytes: 0, path });
            self.active = Some(file);
        } else if let Some(s) = self.segments.back() {
            self.active = Some(OpenOptions::new().write(true).open(&s.path).map_err(io_err(&s.path))?);
        }
        Ok(())
    }

    /// Byte offset of record `id` within the first segment (0 if it is not there).
    fn offset_of(&self, id: u64) -> Result<u64> {
        let Some(seg) = self.segments.front() else { return Ok(0) };
        if id <= seg.first_id || id >= seg.first_id + seg.count {
            return Ok(if id >= seg.first_id + seg.count { seg.bytes } else { 0 });
        }
        let mut r = io::BufReader::new(File::open(&seg.path).map_err(io_err(&seg.path))?);
        let mut offset = 0;
        for _ in seg.first_id..id {
            let mut h = [0u8; HEADER as usize];
            r.read_exact(&mut h).map_err(io_err(&seg.path))?;
            let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
            r.seek_relative(len as i64).map_err(io_err(&seg.path))?;
            offset += HEADER + len;
        }
        Ok(offset)
    }

    fn write_meta(&self) -> Result<()> {
        let path = self.dir.join("spool.json");
        let bytes = serde_json::to_vec(&self.meta)
            .map_err(|e| SpoolError::Meta { path: path.clone(), reason: e.to_string() })?;
        write_atomic(&path, &bytes, false).map_err(io_err(&path))
    }
}

/// Counts the valid records of a segment: `(count, valid_bytes, file_len)`.
fn scan_segment(path: &Path) -> Result<(u64, u64, u64)> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = io::BufReader::new(file);
    let (mut count, mut valid) = (0u64, 0u64);
    loop {
        match read_record(&mut r) {
            Ok(Some(p)) => {
                count += 1;
                valid += HEADER + p.len() as u64;
            }
            Ok(None) => break,
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData) => break,
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok((count, valid, len))
}

/// One record, or `None` at a clean end. A short or failing record is `UnexpectedEof` or
/// `InvalidData`.
fn read_record(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; HEADER as usize];
    let mut got = 0;
    while got < h.len() {
        match r.read(&mut h[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "record length out of range"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "record checksum mismatch"));
    }
    Ok(Some(payload))
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
    f.set_len(len).and_then(|_| f.sync_all()).map_err(io_err(path))
}

#[cfg(test)]
mod tests;
