//! Telling whether a file read before is the same file, grown only by appending: device and
//! inode where the platform has them, and a hash of its first bytes. Used by the readers
//! that remember how far they read (shell histories, AI session records).

use std::sync::atomic::{AtomicU64, Ordering};

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::fsview::RangeFile;

/// How many leading bytes identify a file across looks.
pub const HEAD: u64 = 4096;

/// What a file was when it was last read. Holds a hash of its head, never its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub id: Option<(u64, u64)>,
    pub head_len: u64,
    pub head_hash: Vec<u8>,
}

impl FileIdentity {
    /// Whether `file` is the file this identity was taken of and still holds the `offset`
    /// bytes read from it (a file that shrank or was replaced is not). Bytes read to check
    /// its head are added to `probed`.
    pub fn matches(&self, file: &mut RangeFile, offset: u64, probed: &AtomicU64) -> bool {
        if file.size() < offset || (self.id.is_some() && file.id() != self.id) {
            return false;
        }
        match file.read_range(0, self.head_len) {
            Ok(head) => {
                probed.fetch_add(head.len() as u64, Ordering::Relaxed);
                head.len() as u64 == self.head_len
                    && digest::digest(&digest::SHA256, &head).as_ref() == self.head_hash.as_slice()
            }
            Err(_) => false,
        }
    }

    /// The identity of `file` from its first bytes up to `read_upto` (at most [`HEAD`]):
    /// only bytes already read count, so a file growing later still matches. `from_zero`,
    /// when the caller just read the file from its start, saves reading the head again.
    pub fn take(
        file: &mut RangeFile,
        read_upto: u64,
        from_zero: Option<&[u8]>,
        probed: &AtomicU64,
    ) -> std::io::Result<FileIdentity> {
        let head_len = HEAD.min(read_upto);
        let hash = match from_zero.filter(|b| b.len() as u64 >= head_len) {
            Some(b) => digest::digest(&digest::SHA256, &b[..head_len as usize]),
            None => {
                let h = file.read_range(0, head_len)?;
                probed.fetch_add(h.len() as u64, Ordering::Relaxed);
                digest::digest(&digest::SHA256, &h)
            }
        };
        Ok(FileIdentity { id: file.id(), head_len, head_hash: hash.as_ref().to_vec() })
    }
}
