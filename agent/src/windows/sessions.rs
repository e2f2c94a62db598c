//! Terminal Services sessions.

use crate::detect::sessions::OsSession;

pub fn list() -> Vec<OsSession> {
    Vec::new()
}
