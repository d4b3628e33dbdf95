//! RFC 3339 UTC timestamps, the `ts` of every message.

use time::OffsetDateTime;

/// The current UTC time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Milliseconds from `earlier` to `later` (negative when `later` is before `earlier`).
pub fn millis_between(earlier: OffsetDateTime, later: OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64() * 1000.0
}

/// Formats a timestamp as RFC 3339 in UTC, e.g. `2026-11-22T10:00:00.123Z`.
pub fn format(ts: OffsetDateTime) -> String {
    ts.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ts.unix_timestamp().to_string())
}
