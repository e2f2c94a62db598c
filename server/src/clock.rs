//! Instants: device-supplied times checked against the collector's clock, and formatting
//! that cannot fail.
//!
//! A laptop's clock is whatever its owner (or a dead CMOS battery) made it, and the times in
//! a signed batch are the device's word. Refusing a batch for a bad time would wedge the
//! device's chain (the agent resends the same signed bytes forever), so a time outside
//! [`EARLIEST_MS`, receive time + [`MAX_AHEAD`]] is *clamped*: stored as the receive time —
//! the latest moment the observation can have been true by the collector's own clock — with
//! the device's claim kept beside it and counted. Everything shown or exported then stays
//! in range, whatever a device sent.

/// 2000-01-01T00:00:00Z. Earlier is a clock that was never set.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// How far ahead of the collector a device's clock may run before its times are clamped.
pub const MAX_AHEAD: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write.
pub const LATEST_FORMATTABLE_MS: i64 = 253_402_300_799_999;

/// A device-supplied instant as it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceTime {
    /// Plausible: stored as given.
    Kept(i64),
    /// Out of range: stored as `stored`; the device said `claimed`.
    Clamped { stored: i64, claimed: i64 },
}

impl DeviceTime {
    /// Checks `claimed` against the collector's receive time `received_ms`.
    pub fn check(claimed: i64, received_ms: i64) -> DeviceTime {
        let latest = received_ms.saturating_add(MAX_AHEAD.as_millis() as i64);
        if (EARLIEST_MS..=latest).contains(&claimed) {
            DeviceTime::Kept(claimed)
        } else {
            DeviceTime::Clamped { stored: received_ms, claimed }
        }
    }

    pub fn stored(self) -> i64 {
        match self {
            DeviceTime::Kept(t) | DeviceTime::Clamped { stored: t, .. } => t,
        }
    }
}

fn system_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(ms.clamp(0, LATEST_FORMATTABLE_MS).unsigned_abs())
}

/// RFC 3339 to the second (`2026-11-29T10:00:00Z`). Instants before 1970 print as 1970 and
/// after 9999 as the end of 9999: never a panic, whatever is stored.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(ms)).to_string()
}

/// As [`rfc3339`], to the millisecond.
pub fn rfc3339_millis(ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

/// The collector's clock, in Unix milliseconds (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_instant_formats() {
        for ms in [i64::MIN, -1, 0, LATEST_FORMATTABLE_MS, LATEST_FORMATTABLE_MS + 1, i64::MAX] {
            let s = rfc3339(ms);
            assert!(s.ends_with('Z'), "{ms}: {s}");
            let _ = rfc3339_millis(ms);
        }
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_410_400_000), "2025-11-29T10:00:00Z");
    }

    #[test]
    fn device_times_outside_the_plausible_window_are_clamped_to_receipt() {
        let now = 1_764_410_400_000;
        assert_eq!(DeviceTime::check(now - 86_400_000, now), DeviceTime::Kept(now - 86_400_000));
        assert_eq!(DeviceTime::check(now + 60_000, now), DeviceTime::Kept(now + 60_000));
        for bad in [i64::MAX, now + 3_600_000, 0, -1, i64::MIN, EARLIEST_MS - 1] {
            assert_eq!(
                DeviceTime::check(bad, now),
                DeviceTime::Clamped { stored: now, claimed: bad },
                "{bad}"
            );
        }
        assert_eq!(DeviceTime::check(i64::MAX, i64::MAX).stored(), i64::MAX, "no overflow");
    }
}
