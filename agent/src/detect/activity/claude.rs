//! Claude Code's JSONL transcripts. (Being written: this skeleton reads nothing yet.)

use super::{FileSessions, Rules};

pub(super) fn line(_line: &[u8], _file: &mut FileSessions, _rules: &Rules) {}
