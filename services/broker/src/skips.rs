//! Counts the QoS 1 messages the broker still skips for a stalled subscriber.
//!
//! When a subscriber's read cursor falls behind the oldest segment of a filter's commit log
//! (see [`crate::backlog_segments`]), rumqttd moves the cursor to the log's head and says so only
//! in a WARN event, `Read cursor start jumped`, with the cursor it had (`request_cursor`) and
//! the one it jumped to (`start_cursor`), each `(segment, offset)`: the offsets in between are
//! the messages lost. [`observe`] reads such an event: the tracing subscriber of the process
//! passes it rumqttd's WARN events (`dtwin` does, even with rumqttd's own logs off), and it
//! adds the count to [`skipped`] and logs one line of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use tracing::field::{Field, Visit};

static SKIPPED: AtomicU64 = AtomicU64::new(0);
static JUMPS: AtomicU64 = AtomicU64::new(0);

/// Messages skipped so far by every embedded broker of this process.
#[must_use]
pub fn skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

/// Cursor jumps so far (stalls that lost something).
#[must_use]
pub fn jumps() -> u64 {
    JUMPS.load(Ordering::Relaxed)
}

/// Whether events of this callsite may be cursor jumps: rumqttd's WARN events.
#[must_use]
pub fn interesting(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("rumqttd") && *meta.level() <= tracing::Level::WARN
}

#[derive(Default)]
struct Jump {
    is_jump: bool,
    from: Option<u64>,
    to: Option<u64>,
    filter: String,
}

/// The offset of a `(segment, offset)` cursor's Debug form.
fn offset(text: &str) -> Option<u64> {
    text.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

impl Visit for Jump {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "request_cursor" => self.from = offset(&text),
            "start_cursor" => self.to = offset(&text),
            "error" | "message" if text.contains("Read cursor start jumped") => {
                self.is_jump = true;
                if let Some((_, filter)) = text.rsplit_once(" on ") {
                    self.filter = filter.trim_end_matches('"').to_owned();
                }
            }
            _ => {}
        }
    }
}

/// Counts and logs the messages a rumqttd cursor jump skipped; returns them (`None` for any
/// other event).
pub fn observe(event: &tracing::Event<'_>) -> Option<u64> {
    if !interesting(event.metadata()) {
        return None;
    }
    let mut jump = Jump::default();
    event.record(&mut jump);
    if !jump.is_jump {
        return None;
    }
    let lost = match (jump.from, jump.to) {
        (Some(from), Some(to)) => to.saturating_sub(from),
        _ => 0,
    };
    let total = SKIPPED.fetch_add(lost, Ordering::Relaxed) + lost;
    JUMPS.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "dtwin_broker",
        filter = %jump.filter,
        lost,
        total_lost = total,
        "embedded broker skipped QoS 1 messages: a subscriber stalled longer than its backlog (raise --backlog-s)"
    );
    Some(lost)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_rumqttd_cursors() {
        assert_eq!(super::offset("(3, 70123)"), Some(70123));
        assert_eq!(super::offset("(0, 0)"), Some(0));
        assert_eq!(super::offset("nonsense"), None);
    }
}
