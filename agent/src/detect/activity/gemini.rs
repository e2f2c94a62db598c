//! Gemini CLI's chat recordings. (Being written: this skeleton reads nothing yet.)

use super::{FileSessions, Rules};

pub(super) fn line(_line: &[u8], _file: &mut FileSessions, _rules: &Rules) {}

pub(super) fn document(_bytes: &[u8], _rules: &Rules) -> FileSessions {
    FileSessions::default()
}
