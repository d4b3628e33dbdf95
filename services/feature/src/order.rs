//! Per-machine event order by `seq`: duplicates are dropped, short reorderings are put back in
//! order, gaps are reported with the reading after them, and readings later than the tolerance
//! are refused as too late.
//!
//! A reading whose `seq` is ahead of the next expected one is held until the missing readings
//! arrive, until the newest held reading is `tolerance` readings ahead of the missing one, or
//! until it has been held `max_hold_ms` (checked by [`Sequencer::expire`]); then the held
//! readings are released in order and the missing ones count as a gap. A reading older than
//! what was already released is a duplicate when it was released before (remembered for the
//! last 64 sequence numbers), too late otherwise; unless its timestamp is newer than
//! everything released, which is a publisher that restarted its sequence: the sequencer
//! starts over from it.
//!
//! Pure: no clock, the caller passes a monotonic `now_ms`.

use dtwin_schema::Telemetry;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// How much disorder is tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderConfig {
    /// Readings a missing one may be overtaken by before it is given up (0: never hold; every
    /// jump is a gap at once).
    pub tolerance: u64,
    /// Longest a reading is held waiting for missing ones, in milliseconds.
    pub max_hold_ms: u64,
}

impl Default for OrderConfig {
    /// 4 readings or 500 ms: a swapped pair of readings is put back in order, a lost reading
    /// delays the next ones by at most half a second.
    fn default() -> Self {
        Self {
            tolerance: 4,
            max_hold_ms: 500,
        }
    }
}

/// What the sequencer orders: anything with a `seq` and a timestamp (a [`Telemetry`], or the
/// feature processor's reading with its profile values), so a held reading keeps what it
/// carries until it is released.
pub trait Ordered {
    /// The per-machine sequence number.
    fn seq(&self) -> u64;
    /// When it was taken.
    fn ts(&self) -> OffsetDateTime;
}

impl Ordered for Telemetry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn ts(&self) -> OffsetDateTime {
        self.ts
    }
}

/// A reading released in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Released<T = Telemetry> {
    /// The reading.
    pub reading: T,
    /// Readings missing just before it.
    pub gap: u64,
}

/// What happened to one pushed reading (besides what it released).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Released at once, or held for later release.
    Accepted,
    /// Released and filled a hole: it arrived after a later reading.
    Reordered,
    /// Seen before: dropped.
    Duplicate,
    /// Older than what was already released and not seen: refused.
    TooLate {
        /// The next `seq` the machine expected.
        expected: u64,
    },
    /// Older `seq` with a newer timestamp: the publisher restarted; the sequence starts over.
    Restarted,
}

/// The order state of one machine.
#[derive(Debug, Clone)]
pub struct Sequencer<T = Telemetry> {
    /// Next expected seq; `None` before the first reading.
    next: Option<u64>,
    /// Timestamp of the newest released reading.
    last_ts: Option<OffsetDateTime>,
    /// Bit i set: seq `next - 1 - i` was released.
    recent: u64,
    held: BTreeMap<u64, T>,
    held_since_ms: u64,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Self {
            next: None,
            last_ts: None,
            recent: 0,
            held: BTreeMap::new(),
            held_since_ms: 0,
        }
    }
}

impl<T: Ordered> Sequencer<T> {
    /// A sequencer that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Readings currently held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Pushes a reading; released readings are appended to `out` in order.
    pub fn push(
        &mut self,
        t: T,
        cfg: &OrderConfig,
        now_ms: u64,
        out: &mut Vec<Released<T>>,
    ) -> Fate {
        let s = t.seq();
        let Some(next) = self.next else {
            self.release(t, 0, out);
            return Fate::Accepted;
        };
        if s < next {
            let back = next - 1 - s;
            if back < 64 && self.recent & (1 << back) != 0 {
                return Fate::Duplicate;
            }
            if self.last_ts.is_some_and(|last| t.ts() > last) {
                // Flush what was waiting for the old sequence, then start over.
                self.release_all_held(out);
                *self = Self::default();
                self.release(t, 0, out);
                return Fate::Restarted;
            }
            return Fate::TooLate { expected: next };
        }
        if self.held.contains_key(&s) {
            return Fate::Duplicate;
        }
        if s == next {
            let filled_hole = !self.held.is_empty();
            self.release(t, 0, out);
            self.drain_contiguous(out);
            return if filled_hole {
                Fate::Reordered
            } else {
                Fate::Accepted
            };
        }
        if cfg.tolerance == 0 {
            self.release(t, s - next, out);
            return Fate::Accepted;
        }
        if self.held.is_empty() {
            self.held_since_ms = now_ms;
        }
        self.held.insert(s, t);
        // Give up on missing readings the newest held one is `tolerance` or more ahead of.
        while let (Some(&newest), Some(next)) = (self.held.keys().next_back(), self.next) {
            if newest - next < cfg.tolerance {
                break;
            }
            self.release_first_held(out);
        }
        Fate::Accepted
    }

    /// Releases held readings that waited `max_hold_ms` or longer.
    pub fn expire(&mut self, cfg: &OrderConfig, now_ms: u64, out: &mut Vec<Released<T>>) {
        if !self.held.is_empty() && now_ms.saturating_sub(self.held_since_ms) >= cfg.max_hold_ms {
            self.release_all_held(out);
        }
    }

    fn release_all_held(&mut self, out: &mut Vec<Released<T>>) {
        while !self.held.is_empty() {
            self.release_first_held(out);
        }
    }

    /// Releases the oldest held reading (the ones before it count as a gap) and whatever
    /// follows it contiguously.
    fn release_first_held(&mut self, out: &mut Vec<Released<T>>) {
        let Some((s, t)) = self.held.pop_first() else {
            return;
        };
        let gap = self.next.map_or(0, |n| s.saturating_sub(n));
        self.release(t, gap, out);
        self.drain_contiguous(out);
    }

    fn drain_contiguous(&mut self, out: &mut Vec<Released<T>>) {
        while let Some(next) = self.next {
            match self.held.remove(&next) {
                Some(t) => self.release(t, 0, out),
                None => break,
            }
        }
    }

    fn release(&mut self, t: T, gap: u64, out: &mut Vec<Released<T>>) {
        let s = t.seq();
        let shift = self.next.map_or(64, |n| s + 1 - n);
        self.recent = if shift >= 64 {
            1
        } else {
            (self.recent << shift) | 1
        };
        self.next = Some(s.saturating_add(1));
        let ts = t.ts();
        if self.last_ts.is_none_or(|last| ts > last) {
            self.last_ts = Some(ts);
        }
        out.push(Released { reading: t, gap });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::MachineId;
    use proptest::prelude::*;

    fn t(seq: u64) -> Telemetry {
        Telemetry::new(
            MachineId::parse("m").unwrap(),
            OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seq as i64),
            seq,
        )
    }

    fn push(s: &mut Sequencer, seq: u64, now: u64) -> (Fate, Vec<(u64, u64)>) {
        let mut out = Vec::new();
        let fate = s.push(t(seq), &OrderConfig::default(), now, &mut out);
        (fate, out.iter().map(|r| (r.reading.seq, r.gap)).collect())
    }

    #[test]
    fn in_order_readings_pass_straight_through() {
        let mut s = Sequencer::new();
        for i in 5..10 {
            assert_eq!(push(&mut s, i, 0), (Fate::Accepted, vec![(i, 0)]));
        }
        assert_eq!(push(&mut s, 7, 0).0, Fate::Duplicate);
        assert_eq!(push(&mut s, 9, 0).0, Fate::Duplicate);
    }

    #[test]
    fn a_swapped_pair_is_put_back_in_order() {
        let mut s = Sequencer::new();
        push(&mut s, 1, 0);
        assert_eq!(push(&mut s, 3, 0), (Fate::Accepted, vec![]));
        assert_eq!(push(&mut s, 3, 0).0, Fate::Duplicate, "held twice");
        assert_eq!(push(&mut s, 2, 0), (Fate::Reordered, vec![(2, 0), (3, 0)]));
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn a_lost_reading_becomes_a_gap_after_the_tolerance_or_the_hold_time() {
        let mut s = Sequencer::new();
        push(&mut s, 1, 0);
        // 2 is lost; 3, 4, 5 wait; 6 is the 4th reading past the hole: give up on 2.
        for i in 3..=5 {
            assert_eq!(push(&mut s, i, 0).1, vec![]);
        }
        assert_eq!(push(&mut s, 6, 0).1, vec![(3, 1), (4, 0), (5, 0), (6, 0)]);
        // 2 arrives now: too late.
        assert_eq!(push(&mut s, 2, 0).0, Fate::TooLate { expected: 7 });
        // 8 waits for 7 until the hold time is over.
        assert_eq!(push(&mut s, 8, 100).1, vec![]);
        let mut out = Vec::new();
        s.expire(&OrderConfig::default(), 599, &mut out);
        assert!(out.is_empty());
        s.expire(&OrderConfig::default(), 600, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].reading.seq, out[0].gap), (8, 1));
    }

    #[test]
    fn a_restarted_publisher_starts_a_new_sequence() {
        let mut s = Sequencer::new();
        for i in 100..105 {
            push(&mut s, i, 0);
        }
        let mut r = t(1);
        r.ts = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let mut out = Vec::new();
        assert_eq!(
            s.push(r, &OrderConfig::default(), 0, &mut out),
            Fate::Restarted
        );
        assert_eq!(out[0].reading.seq, 1);
        assert_eq!(push(&mut s, 2, 0).1.len(), 1);
    }

    #[test]
    fn zero_tolerance_never_holds() {
        let cfg = OrderConfig {
            tolerance: 0,
            max_hold_ms: 0,
        };
        let mut s = Sequencer::new();
        let mut out = Vec::new();
        s.push(t(1), &cfg, 0, &mut out);
        s.push(t(4), &cfg, 0, &mut out);
        assert_eq!(out[1].gap, 2);
        assert_eq!(
            s.push(t(3), &cfg, 0, &mut out),
            Fate::TooLate { expected: 5 }
        );
    }

    proptest! {
        /// Any shuffle within the tolerance comes out complete and in order; any stream comes
        /// out strictly increasing with gaps that account for every skipped number, and every
        /// pushed reading is released, dropped as a duplicate or refused, exactly once.
        #[test]
        fn releases_are_ordered_and_account_for_everything(
            swaps in proptest::collection::vec(0usize..4, 0..20),
            dups in proptest::collection::vec(0usize..80, 0..10),
            drops in proptest::collection::vec(0usize..80, 0..5),
        ) {
            // Shuffle within blocks of 4 (the tolerance): no reading is overtaken by 4 others.
            let mut seqs: Vec<u64> = (1..=80).collect();
            for (block, &k) in seqs.chunks_mut(4).zip(&swaps) {
                block.rotate_left(k);
            }
            for &d in &dups { let v = seqs[d]; seqs.insert(d + 1, v); }
            for &d in &drops { if d < seqs.len() { seqs.remove(d); } }
            let cfg = OrderConfig::default();
            let mut s = Sequencer::new();
            let mut out = Vec::new();
            let (mut dup, mut late) = (0, 0);
            for &q in &seqs {
                match s.push(t(q), &cfg, 0, &mut out) {
                    Fate::Duplicate => dup += 1,
                    Fate::TooLate { .. } => late += 1,
                    Fate::Restarted => prop_assert!(false, "no restart here"),
                    Fate::Accepted | Fate::Reordered => {}
                }
            }
            s.expire(&cfg, u64::MAX, &mut out);
            let released: Vec<u64> = out.iter().map(|r| r.reading.seq).collect();
            prop_assert!(released.windows(2).all(|w| w[0] < w[1]), "{:?}", released);
            let first = released[0];
            let gaps: u64 = out.iter().map(|r| r.gap).sum();
            prop_assert_eq!(released.last().unwrap() - first + 1, released.len() as u64 + gaps);
            prop_assert_eq!(released.len() + dup + late, seqs.len());
            if drops.is_empty() && first == 1 {
                // Only swaps (within the tolerance) and duplicates: everything, in order.
                prop_assert_eq!(released, (1..=80).collect::<Vec<u64>>());
            }
        }
    }
}
