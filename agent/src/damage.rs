//! Whether a failure means this agent must be enrolled again, and setting aside what made it
//! so. Apart from `state` because it reads device-key errors as well as state files, and the
//! keys are stored through the state dir, not the other way round.

use std::path::PathBuf;

use crate::keys::KeyError;
use crate::state::{Damaged, StateDir};

/// Whether `e` means the identity or chain in the state dir is unusable: a [`Damaged`]
/// file, or a device key that is corrupt or no longer works on this hardware.
pub fn needs_enrollment(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Damaged>()
            || matches!(c.downcast_ref::<KeyError>(), Some(KeyError::Corrupt(_) | KeyError::Stale(_)))
    })
}

/// After [`needs_enrollment`]: sets aside what cannot be used (the enrollment record, so
/// `enroll` and MDM enrollment scripts see an unenrolled agent; a damaged chain head; a
/// corrupt software key) and returns what was moved.
pub fn retire(state: &StateDir, e: &anyhow::Error) -> anyhow::Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    let damaged: Vec<&'static str> =
        e.chain().filter_map(|c| c.downcast_ref::<Damaged>().map(|d| d.file)).collect();
    let key_corrupt = e.chain().any(|c| matches!(c.downcast_ref::<KeyError>(), Some(KeyError::Corrupt(_))));
    let mut names = vec!["enrollment.json"];
    names.extend(damaged.into_iter().filter(|f| *f != "enrollment.json"));
    if key_corrupt {
        names.push("device-key.pk8");
    }
    for name in names {
        moved.extend(state.set_aside(name)?);
    }
    Ok(moved)
}
